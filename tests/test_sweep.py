"""Sweep axes: expansion into cases with a stable identity, one group per point, skip rows,
threads per group, torch.compile as a mode; and the results schema they extend."""

from __future__ import annotations

import textwrap

import pytest
import torch

from latbench.run import pipeline

import runhelp
from latbench.timing import prepare
from latbench.errors import SuiteError
from latbench.records import KEY_COLUMNS, RESULT_COLUMNS, SAMPLE_COLUMNS
from latbench.suite import expand, load_suite
from latbench.suite.sweep import SweepModel, points
from latbench.timing.cpu import CpuBackend
from latbench.timing.loop import StopPolicy

FAST = StopPolicy(warmup_s=0.0, warmup_min_iters=1, block_s=0.0005, min_rounds=3, max_rounds=3,
                  min_time_s=0.0, max_time_s=1.0)

BASE = """\
experiment: sw
builder: conv
input: {height: 4, width: 4}
blocks: 1
cases:
  - name: dense
    params: {kernel: 3}
    widths: {arm: {c: 4}}
  - name: dw
    params: {kernel: 3, group_channels: 1, pointwise: true}
    widths: {arm: {c: 4}}
"""


def _suite(tmp_path, extra: str = ""):
    p = tmp_path / "sw.yaml"
    p.write_text(BASE + textwrap.dedent(extra))
    return load_suite(p)


def test_points_are_the_product_batch_outermost():
    pts = points(SweepModel(batch=[1, 8], dtype=["float32", "bfloat16"], threads=[1, 2]), batch=1)
    assert len(pts) == 8
    assert [(p.batch, p.dtype, p.threads) for p in pts[:3]] == [(1, "float32", 1), (1, "float32", 2),
                                                               (1, "bfloat16", 1)]
    assert points(None, batch=4) == points(SweepModel(), batch=4)
    assert [p.batch for p in points(SweepModel(batch=[1, 8]), batch=1, batch_override=16)] == [16]


def test_expand_gives_each_point_its_own_group_with_cases_adjacent(tmp_path):
    suite = _suite(tmp_path, "sweep: {batch: [1, 4], memory_format: [contiguous, channels_last]}\n")
    specs = expand(suite, "arm")
    assert len(specs) == 2 * 2 * 2
    groups = [s.group for s in specs]
    assert len(set(groups)) == 4
    assert groups[0] == groups[1] and groups[1] != groups[2]  # both cases of a point, then the next point
    assert [(s.case, s.batch, s.memory_format) for s in specs[:4]] == [
        ("dense", 1, "contiguous"), ("dw", 1, "contiguous"), ("dense", 1, "channels_last"), ("dw", 1, "channels_last")]
    assert specs[2].point == "channels_last" and specs[4].point == "b4"


def test_identity_of_each_row_includes_the_sweep_point(tmp_path):
    suite = _suite(tmp_path, "sweep: {dtype: [float32, bfloat16], threads: [1, 2]}\n")
    specs = expand(suite, "arm")
    ids = {(s.case, s.batch, s.dtype, s.memory_format, s.threads, s.mode) for s in specs}
    assert len(ids) == len(specs)  # no two rows share an identity
    assert {"dtype", "memory_format", "threads", "batch", "mode"} <= set(KEY_COLUMNS)


def test_flops_target_follows_the_batch(tmp_path):
    p = tmp_path / "f.yaml"
    p.write_text(BASE.replace("blocks: 1", "blocks: 1\nwidths: flops\nflops_target: {arm: 9216}")
                 + "sweep: {batch: [1, 3]}\n")
    specs = expand(load_suite(p), "arm")
    assert [s.flops_target for s in specs] == [2 * 9216] * 2 + [3 * 2 * 9216] * 2
    assert specs[0].params == specs[2].params  # widths do not depend on batch


@pytest.mark.parametrize("sweep,msg", [
    ("sweep: {batches: [1]}", "unknown key 'sweep.batches'.*did you mean 'batch'"),
    ("sweep: {dtype: [float64]}", "sweep.dtype\\[0\\]"),
    ("sweep: {batch: [1, 1]}", "distinct"),
    ("sweep: {mode: [jit]}", "sweep.mode\\[0\\]"),
])
def test_bad_sweeps_are_located_errors(tmp_path, sweep, msg):
    with pytest.raises(SuiteError, match=msg) as exc:
        _suite(tmp_path, sweep + "\n")
    assert ":12:" in str(exc.value)  # the sweep line


def test_new_columns_are_appended_not_inserted():
    old_results = RESULT_COLUMNS[:RESULT_COLUMNS.index("source") + 1]
    assert old_results[:5] == ("schema_version", "run_id", "suite", "experiment", "case")
    i = RESULT_COLUMNS.index("memory_format")  # schema 2's, followed only by later schemas' columns
    assert RESULT_COLUMNS[i:i + 3] == ("memory_format", "latency_p99_ms", "compile_s")
    j = SAMPLE_COLUMNS.index("dtype")
    assert SAMPLE_COLUMNS[j:j + 3] == ("dtype", "memory_format", "threads")


def _run(specs, modes=("eager",)):
    cfg = pipeline.RunConfig(device=runhelp.cpu(CpuBackend()), run_id="t", modes=modes, policy=FAST)
    return runhelp.run_specs(specs, cfg)


def test_a_sweep_runs_with_identity_columns_and_p99(tmp_path):
    specs = expand(_suite(tmp_path, "sweep: {batch: [1, 2], dtype: [float32, bfloat16], "
                                    "memory_format: [channels_last]}\n"), "arm")
    rows, samples = _run(specs)
    assert [(r["batch"], r["dtype"], r["memory_format"]) for r in rows[::2]] == [
        (1, "float32", "channels_last"), (1, "bfloat16", "channels_last"), (2, "float32", "channels_last"),
        (2, "bfloat16", "channels_last")]
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    assert all(r["latency_p99_ms"] >= r["latency_ms"] for r in rows)
    assert rows[2]["mac_bytes"] * 2 == rows[0]["mac_bytes"]  # bfloat16: half the bytes
    assert {s["dtype"] for s in samples} == {"float32", "bfloat16"}
    # ratios are within a point: each point's first case is its own baseline
    assert [r["ratio_to_baseline"] for r in rows[::2]] == [1.0] * 4


def test_what_the_device_cannot_run_is_a_skip_row_not_a_crash(tmp_path, monkeypatch):
    specs = expand(_suite(tmp_path, "sweep: {mode: [cudagraph]}\n"), "arm")
    rows, _ = _run(specs)
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert "not available on cpu" in rows[0]["error"]

    from latbench.devices import CpuDevice

    monkeypatch.setattr(CpuDevice, "dtype_skip", lambda self, dtype: "float16 is not supported here (test)"
                        if dtype == "float16" else None)
    specs = expand(_suite(tmp_path, "sweep: {dtype: [float32, float16]}\n"), "arm")
    rows, _ = _run(specs)
    assert [r["status"] for r in rows] == ["ok", "ok", "skipped", "skipped"]
    assert rows[2]["error"] == "float16 is not supported here (test)"
    assert rows[2]["flops"] == rows[0]["flops"]  # costs are still reported


def test_a_dtype_whose_kernels_fail_is_skipped(tmp_path, monkeypatch):
    real = torch.nn.Conv2d.forward

    def no_half(self, x):
        if x.dtype == torch.bfloat16 and x.device.type != "meta":  # meta counting still works
            raise RuntimeError('"slow_conv2d_cpu" not implemented for \'BFloat16\'')
        return real(self, x)

    monkeypatch.setattr(torch.nn.Conv2d, "forward", no_half)
    rows, _ = _run(expand(_suite(tmp_path, "sweep: {dtype: [bfloat16]}\n"), "arm"))
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert rows[0]["error"].startswith("bfloat16 does not run on cpu here: RuntimeError")


def test_threads_hold_for_their_group_and_are_restored(tmp_path, monkeypatch):
    seen = []
    real_measure = pipeline.measure

    def spy(items, *a, **kw):
        seen.append(torch.get_num_threads())
        return real_measure(items, *a, **kw)

    monkeypatch.setattr(pipeline, "measure", spy)
    before = torch.get_num_threads()
    rows, _ = _run(expand(_suite(tmp_path, "sweep: {threads: [2, 1]}\n"), "arm"))
    assert seen == [2, 1]
    assert torch.get_num_threads() == before
    assert [r["threads"] for r in rows] == [2, 2, 1, 1]


def test_compile_mode_builds_outside_the_timed_region(tmp_path, monkeypatch):
    monkeypatch.setattr(prepare, "COMPILE_BACKEND", "eager")  # dynamo only: inductor takes ~15 s here
    rows, _ = _run(expand(_suite(tmp_path, "sweep: {mode: [eager, compile]}\n"), "arm"))
    compiled = [r for r in rows if r["mode"] == "compile"]
    assert len(compiled) == 2
    if compiled[0]["status"] == "skipped":
        pytest.skip(f"torch.compile unavailable: {compiled[0]['error']}")
    assert all(r["status"] == "ok" and r["compile_s"] > 0 for r in compiled)
    assert all(r["compile_s"] is None for r in rows if r["mode"] == "eager")


def test_schema_1_results_read_as_contiguous(tmp_path):
    import pandas as pd

    from latbench.results.read import read_results

    old = [c for c in RESULT_COLUMNS if c not in ("memory_format", "latency_p99_ms", "compile_s")]
    p = tmp_path / "old.csv"
    pd.DataFrame([{c: None for c in old} | {"schema_version": 1, "latency_ms": 1.0}]).to_csv(p, index=False)
    assert list(read_results(p)["memory_format"]) == ["contiguous"]
