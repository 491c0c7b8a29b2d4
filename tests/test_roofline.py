"""Roofline ceilings (fake probes, cache) and per-row columns; the op breakdown on a tiny real network."""

import functools
import json
import math

import pytest
import torch

from latbench import roofline
from latbench.cost import build_network
from latbench.opbreakdown import FLOP_OP_NAMES, profile_forward


def fake_probes(calls):
    def gemm(device, dtype):
        calls.append("gemm")
        return {"peak_flops_per_s": 100e9, "gemm_n": 8}

    def copy(device):
        calls.append("copy")
        return {"bandwidth_bytes_per_s": 20e9}

    return gemm, copy


def test_ceilings_are_probed_once_per_fingerprint_and_cached(tmp_path):
    calls, path = [], tmp_path / "roofline.json"
    gemm, copy = fake_probes(calls)
    c1, cached1 = roofline.measure_ceilings("cpu", "Fake CPU", 1, gemm_probe=gemm, copy_probe=copy, path=path)
    c2, cached2 = roofline.measure_ceilings("cpu", "Fake CPU", 1, gemm_probe=gemm, copy_probe=copy, path=path)
    assert (cached1, cached2) == (False, True) and calls == ["gemm", "copy"]
    assert c2 == c1 and c1.peak_flops_per_s == 100e9 and c1.ridge_flops_per_byte == 5.0
    c3, cached3 = roofline.measure_ceilings("cpu", "Fake CPU", 2, gemm_probe=gemm, copy_probe=copy, path=path)
    assert not cached3 and c3.key != c1.key  # another thread count is another fingerprint
    assert len(json.loads(path.read_text())) == 2


def test_cache_location_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LATBENCH_CACHE", str(tmp_path))
    assert roofline.cache_file() == tmp_path / "roofline.json"


def test_row_columns_compute_and_memory_bound():
    c = roofline.Ceilings(100e9, 20e9, "cpu", "x", 1, "float32", "k", "t", {})
    # compute-bound: 1 GFLOP, 10 MB -> bound = max(10 ms, 0.5 ms) = 10 ms; measured 40 ms -> 25 %
    cols = roofline.row_columns(1e9, 10e6, 40.0, c)
    assert cols["roofline_bound_ms"] == pytest.approx(10.0) and cols["roofline_pct"] == pytest.approx(25.0)
    assert cols["achieved_flops_per_s"] == pytest.approx(25e9)
    assert cols["achieved_bytes_per_s"] == pytest.approx(0.25e9)
    assert cols["arithmetic_intensity_flops_per_byte"] == pytest.approx(100.0)
    # memory-bound: 1 MFLOP, 200 MB -> 10 ms from bandwidth
    assert roofline.row_columns(1e6, 200e6, 20.0, c)["roofline_bound_ms"] == pytest.approx(10.0)


def test_row_columns_without_ceilings_or_latency():
    cols = roofline.row_columns(1e9, 1e6, math.nan, None)
    assert cols["arithmetic_intensity_flops_per_byte"] == 1000.0
    assert cols["roofline_bound_ms"] is None and cols["achieved_flops_per_s"] is None


def test_real_probes_are_sane_and_short():
    g = roofline.probe_gemm("cpu", n=64, budget_s=0.02)
    c = roofline.probe_copy("cpu", budget_s=0.02, sizes=(1 << 16,))
    assert 1e6 < g["peak_flops_per_s"] < 1e15 and 1e6 < c["bandwidth_bytes_per_s"] < 1e15


def test_flop_ops_are_the_flop_counters_registry():
    assert "aten::convolution" in FLOP_OP_NAMES and "aten::mm" in FLOP_OP_NAMES
    assert "aten::relu_" not in FLOP_OP_NAMES and "aten::add_" not in FLOP_OP_NAMES


def _profile(relu, shortcut):
    torch.manual_seed(0)
    model, x = build_network("g4_bottleneck", {"relu": relu, "shortcut": shortcut, "c": 16}, 2, 1, 8, 8, "cpu")
    return profile_forward(functools.partial(model, x), "cpu", forwards=2)


def test_profile_counts_ops_and_zero_flop_share():
    full, bare = _profile(True, True), _profile(False, False)
    # per block: 3 convs + 3 ReLU + 1 add = 7 ops; bare: 3 convs. 2 blocks.
    assert full["op_count_per_forward"] == 14 and bare["op_count_per_forward"] == 6
    assert 0 < full["zero_flop_time_pct"] < 100
    assert bare["zero_flop_time_pct"] == 0


def test_probes_take_the_device_object(tmp_path):
    from latbench import devices

    calls = []
    gemm, copy = fake_probes(calls)
    dev = devices.of("cpu")
    c, _ = roofline.measure_ceilings(dev, "Fake CPU", 1, gemm_probe=gemm, copy_probe=copy, path=tmp_path / "r.json")
    assert c.device == "cpu" and c.key == roofline.ceiling_key("cpu", "Fake CPU", 1, "float32")
    assert roofline.probe_copy(dev, budget_s=0.01, sizes=(1 << 12,))["bandwidth_bytes_per_s"] > 0
