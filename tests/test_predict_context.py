"""What a network does that its blocks timed alone do not (docs/prediction.md, issue 25): max-pool
blocks timed on the network's own tensors, the calibration's cost per block use and per MB of cold
weights with a leave-one-out conformal interval, and only weights that fit in the last-level cache counted."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from latbench.predict.blocks import BlockError, BlockModule, network_tensors
from latbench.predict.blocks import network_blocks as cut_network
from latbench.predict.measure import network_blocks
from latbench.predict.model import MIN_TERMS, calibrate, conformal_halfwidth, last_level_cache, predict_blocks
from latbench.predict.networks import resolve
from latbench.predict.table import Table

CTX = {"device": "cpu", "threads": 1, "mode": "eager", "latency_semantics": "throughput"}


def _net(factory="pooled", shape="3x16x16"):
    return resolve([f"predict_factory:{factory}"], input=shape)[0]


def test_a_max_pool_block_reads_the_network_s_own_tensor_after_its_in_place_relu():
    net = _net()
    blocks = network_blocks(net)
    pools = [b for b in blocks if "data" in b.desc]
    assert [b.kind for b in pools] == ["pool", "pool"] and all(b.data_dependent for b in pools)
    assert not any("data" in b.desc for b in blocks if b.kind == "conv")  # shape-only blocks stay shared
    # what the network's pools read in the same seeded forward pass
    seen = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, x = net.build("cpu")
        hooks = [m.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
                 for m in model.modules() if isinstance(m, torch.nn.MaxPool2d)]
        with torch.inference_mode():
            model(x)
    for h in hooks:
        h.remove()
    assert len(seen) == 2
    for b, want in zip(pools, seen):
        got = BlockModule(json.loads(json.dumps(b.desc))).in0
        assert torch.equal(got, want)  # the ReLU applied in place after the conv is in it
        assert (got == 0).any() and (got >= 0).all()


def test_the_key_of_a_data_block_is_its_network_s_and_random_data_is_another_block():
    a, b = _net("pooled"), resolve(["predict_factory:pooled"], input="3x16x16", kwargs='{"c": 8}')[0]
    ka = [blk.key(CTX) for blk in network_blocks(a) if "data" in blk.desc]
    plain = [blk for blk in cut_network(*a.build("meta")) if blk.data_dependent]  # as traced, random inputs
    assert ka and all(k not in {p.key(CTX) for p in plain} for k in ka)
    assert [blk.key(CTX) for blk in network_blocks(b) if "data" in blk.desc] != ka  # another network's recipe


def test_a_network_that_runs_other_ops_than_it_traced_is_a_block_error():
    b = next(b for b in network_blocks(_net()) if "data" in b.desc)
    data = json.loads(json.dumps(b.desc["data"]))
    key = next(iter(data["inputs"]))
    data["inputs"][key][2] = "aten.tanh.default"  # the op that made it, as if the trace had said so
    with pytest.raises(BlockError, match="ran aten.conv2d.default where it traced aten.tanh.default"):
        network_tensors(data, torch.device("cpu"))
    data["inputs"][key][0] = 10_000
    with pytest.raises(BlockError, match="fewer than"):
        network_tensors(data, torch.device("cpu"))


def _obs(rng, n, noise=0.0, factor=1.0, per_block=0.004, per_mb=0.1):
    """Synthetic calibration networks: measured = factor x sum + 4 us per block use + 0.1 ms per MB of weights."""
    out = {}
    for i in range(n):
        s, uses, w = rng.uniform(5, 100), int(rng.integers(20, 300)), rng.uniform(1e6, 1e8)
        out[f"n{i}"] = (s, (factor * s + per_block * uses + per_mb * w / 1e6) * math.exp(rng.normal(0, noise)), uses, w)
    return out


def test_the_calibration_recovers_the_cost_per_block_and_per_mb_of_weights():
    cal = calibrate(_obs(np.random.default_rng(1), 30))
    assert cal["model"] == "blocks + per block + weights" and cal["n"] == 30
    assert cal["factor"] == 1.0  # a block's own time is not scaled
    assert cal["per_block_ms"] == pytest.approx(0.004, rel=1e-4)
    assert cal["per_weight_mb_ms"] == pytest.approx(0.1, rel=1e-4)
    assert cal["log_halfwidth"] == pytest.approx(0.0, abs=1e-9)
    few = calibrate(_obs(np.random.default_rng(1), MIN_TERMS - 1))  # too few networks for the terms
    assert few["model"] == "factor" and few["per_block_ms"] == 0 and few["per_weight_mb_ms"] == 0
    old = calibrate({f"n{i}": (10.0, 11.0 + i / 10) for i in range(12)})  # (sum, measured) pairs: no terms to fit
    assert old["model"] == "factor"


def test_networks_faster_than_their_blocks_get_the_factor():
    """The terms are >= 0 and cannot say that networks run faster than their blocks (a device that overlaps
    kernels): the factor model is kept, and it recovers the factor."""
    cal = calibrate(_obs(np.random.default_rng(2), 30, factor=0.8, per_block=0.0, per_mb=0.0))
    assert cal["model"] == "factor" and cal["factor"] == pytest.approx(0.8, rel=1e-9)
    assert cal["per_block_ms"] == 0 and cal["per_weight_mb_ms"] == 0


def test_the_terms_do_not_scale_large_networks_as_the_small_ones_run():
    """The 2026-12-06 failure: calibration networks that are small (many blocks per ms, weights read cold)
    run 1.1x their blocks; a large network with few blocks runs at its blocks' sum. The additive terms
    carry that; a factor fitted on the small ones over-predicts the large one by about 10 %."""
    rng = np.random.default_rng(4)
    small = _obs(rng, 30, noise=0.01)
    small = {k: (s / 10, (m - 0.9 * s) , u, w) for k, (s, m, u, w) in small.items()}  # sums of 0.5-10 ms
    cal = calibrate(small)
    big = (200.0, 200.0 + 0.004 * 40 + 0.1 * 30, 40, 30e6)  # 200 ms of blocks, 40 uses, 30 MB
    pred = big[0] * cal["factor"] + cal["per_block_ms"] * big[2] + cal["per_weight_mb_ms"] * big[3] / 1e6
    assert abs(pred / big[1] - 1) < 0.03, (cal, pred)
    mean_ratio = math.exp(np.mean([math.log(m / s) for s, m, _, _ in small.values()]))
    assert mean_ratio > 1.05  # what a factor would have scaled the large network by


def test_the_interval_is_the_conformal_quantile_of_leave_one_out_residuals():
    from scipy.optimize import nnls

    obs = _obs(np.random.default_rng(7), 25, noise=0.05)
    cal = calibrate(obs)
    names = list(obs)

    def fit(keep):
        x = np.array([[obs[k][2], obs[k][3] / 1e6] for k in keep])
        y = np.array([obs[k][1] for k in keep])
        s = np.array([obs[k][0] for k in keep])
        return nnls(x / y[:, None], (y - s) / y)[0]

    def pred(c, k):
        return obs[k][0] + c[0] * obs[k][2] + c[1] * obs[k][3] / 1e6

    loo = [math.log(obs[k][1] / pred(fit([o for o in names if o != k]), k)) for k in names]
    c = fit(names)
    inside = [math.log(obs[k][1] / pred(c, k)) for k in names]
    assert cal["model"] == "blocks + per block + weights"
    assert cal["log_halfwidth"] == pytest.approx(conformal_halfwidth(loo, 0.9))
    assert cal["log_halfwidth"] > conformal_halfwidth(inside, 0.9)  # in-sample residuals flatter the fit


def test_the_interval_covers_new_networks_at_its_stated_rate():
    """Seeded simulation: calibrate on 30 networks, predict 30 new ones from the same population."""
    rng = np.random.default_rng(3)
    hits = total = 0
    for _ in range(60):
        cal = calibrate(_obs(rng, 30, noise=0.06))
        for s, m, uses, w in _obs(rng, 30, noise=0.06).values():
            pred = cal["factor"] * s + cal["per_block_ms"] * uses + cal["per_weight_mb_ms"] * w / 1e6
            hits += abs(math.log(m / pred)) <= cal["log_halfwidth"]
            total += 1
    assert 0.87 <= hits / total <= 0.95, hits / total


def test_the_prediction_adds_the_terms_and_its_blocks_add_up_to_it():
    net = _net()
    keyed = [(b.key(CTX), b) for b in network_blocks(net)]
    blocks = {k: {"kind": b.kind, "label": b.label, "desc": b.desc, "flops": 100, "mac_bytes": 100, "activations": 1,
                  "latency_ms": 0.5, "ci_low_ms": 0.5, "ci_high_ms": 0.5} for k, b in keyed}
    cal = {"factor": 1.1, "per_block_ms": 0.01, "per_weight_mb_ms": 2.0, "log_halfwidth": 0.05, "n": 12, "level": 0.9}
    table = Table({"fingerprint": {"cpu_caches": "L1d 32K, L2 1024K"}}, blocks, cal)
    p = predict_blocks("pooled", keyed, table)
    weights = sum(b.weight_bytes for _, b in keyed)
    assert weights == sum(t.numel() * 4 for t in net.build("cpu")[0].parameters())
    assert p.block_uses == len(keyed) and p.weight_bytes == weights
    assert p.latency_ms == pytest.approx(1.1 * 0.5 * len(keyed) + 0.01 * len(keyed) + 2.0 * weights / 1e6)
    assert sum(p.block_ms(b) for b in p.blocks) == pytest.approx(p.latency_ms)
    assert p.low_ms == pytest.approx(p.latency_ms * math.exp(-0.05))


def test_only_weights_that_fit_in_the_last_level_cache_count():
    net = _net()
    keyed = [(b.key(CTX), b) for b in network_blocks(net)]
    biggest = max(b.weight_bytes for _, b in keyed)
    blocks = {k: {"kind": b.kind, "label": b.label, "desc": b.desc, "flops": 1, "mac_bytes": 1, "activations": 1,
                  "latency_ms": 1.0, "ci_low_ms": 1.0, "ci_high_ms": 1.0} for k, b in keyed}
    small = f"L1d {biggest // 2048}K"  # a last-level cache half the largest block's weights
    table = Table({"fingerprint": {"cpu_caches": small}}, blocks, None)
    assert last_level_cache(table) == (biggest // 2048) * 1024
    p = predict_blocks("pooled", keyed, table)
    llc = (biggest // 2048) * 1024
    assert p.weight_bytes == sum(b.weight_bytes for _, b in keyed if b.weight_bytes <= llc)  # larger ones: none
    assert 0 < p.weight_bytes < sum(b.weight_bytes for _, b in keyed)
    assert last_level_cache(Table({}, {}, None)) == math.inf


def test_a_network_unlike_the_calibration_networks_is_flagged():
    from latbench.predict.model import outside_calibration

    cal = {"networks": {f"n{i}": [10.0 + i, 11.0 + i, 100, 1e6] for i in range(11)}}  # 10-20 ms, 0.1-0.2 ms a use
    assert outside_calibration(cal, 15.0, 100) is None
    big = outside_calibration(cal, 50.0, 300)
    assert big.startswith("outside the calibration") and "sum of blocks 50 ms (theirs 10-20)" in big
    many = outside_calibration(cal, 15.0, 1000)
    assert "15 us per block use (theirs 100-200)" in many and "sum of blocks" not in many
    assert outside_calibration({"networks": {}}, 50.0, 300) is None  # nothing to compare with
    assert outside_calibration({}, 50.0, 300) is None
    garbled = {"networks": {"a": ["x", 1, 2], "b": [float("nan"), 1, 100], "c": [1.0, 1, True], "d": "x"}}
    assert outside_calibration(garbled, 50.0, 300) is None  # a hand-edited table: nothing usable, no crash
    assert outside_calibration({"networks": ["x"]}, 50.0, 300) is None
    net = _net()
    keyed = [(b.key(CTX), b) for b in network_blocks(net)]
    blocks = {k: {"kind": b.kind, "label": b.label, "desc": b.desc, "flops": 1, "mac_bytes": 1, "activations": 1,
                  "latency_ms": 0.5, "ci_low_ms": 0.5, "ci_high_ms": 0.5} for k, b in keyed}
    total = 0.5 * len(keyed)
    inside = {"factor": 1.0, "log_halfwidth": 0.05, "n": 2, "level": 0.9,
              "networks": {"a": [total / 2, 1.0, len(keyed)], "b": [total * 2, 1.0, len(keyed)]}}
    p = predict_blocks("pooled", keyed, Table({}, blocks, inside))
    assert not p.outside_calibration and not any("outside" in n for n in p.notes)
    outside = dict(inside, networks={"a": [total * 2, 1.0, len(keyed)], "b": [total * 3, 1.0, len(keyed)]})
    p = predict_blocks("pooled", keyed, Table({}, blocks, outside))
    assert p.outside_calibration and any(n.startswith("outside the calibration") for n in p.notes)
    assert p.as_dict()["outside_calibration"] is True
