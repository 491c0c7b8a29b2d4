"""benchmarks/gpu_acceptance.py without a GPU: exit 2 on this machine, one process per section (a
crash, a hang or a poisoned process fails its section only), the report, and the checks' logic on
fakes: the reference comparisons, the host-clock loop section on FakeCuda, the trace's kernel count,
and the CLI section end to end on the CPU (fake backend, --isolate --repeats 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmarks import gpu_acceptance as acc
from fakes import FakeClock, FakeCuda

MS = 1e-3
TESTS = Path(__file__).resolve().parent


def test_no_cuda_device_exits_2_with_one_clear_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert acc.main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no CUDA device" in err
    assert not (tmp_path / "out").exists()


def test_a_missing_dependency_exits_2_naming_it(monkeypatch, capsys):
    import importlib

    real = importlib.import_module
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a: (_ for _ in ()).throw(ImportError(name)) if name == "pydantic" else real(name, *a))
    assert acc.main([]) == 2
    assert "needs pydantic" in capsys.readouterr().err


@pytest.mark.slow
def test_each_section_runs_in_its_own_process_and_fails_alone(tmp_path):
    targets = [(name, f"acceptance_toys:{name}") for name in ("ok", "poison", "clean", "fails", "raises", "crashes",
                                                               "hangs")]
    rows, figures = acc.run_sections(targets, tmp_path, quick=True, timeouts={"hangs": 3},
                                     pythonpath=[str(TESTS), str(TESTS.parent)])
    by = {}
    for section, check in rows:
        by.setdefault(section, []).append(check)
    assert [c.result for c in by["ok"]] == ["pass", "skip"] and figures["ok_figure"] == 42
    assert by["clean"][0].passed  # the poisoned process did not leak into the next section
    assert by["fails"][0].result == "FAIL" and by["fails"][0].detail == "twice as slow"
    assert not by["raises"][0].passed and "illegal memory access" in by["raises"][0].detail
    assert not by["crashes"][0].passed and "(134)" in by["crashes"][0].detail
    assert not by["hangs"][0].passed and "no result within 3 s" in by["hangs"][0].detail
    md = acc.write_report(tmp_path, rows, figures, ["--quick"])
    text = md.read_text()
    assert "| ok | toy ok | 1.00 | 0.9..1.1 | pass |" in text and "| hangs |" in text and "8 checks, 4 failed" in text
    data = json.loads((tmp_path / "acceptance.json").read_text())
    assert len(data["checks"]) == 8 and set(figures["section_seconds"]) == {t for t, _ in targets}


def test_reference_checks():
    assert acc.ratio_check("x", 1.01e-3, 1e-3, 0.97, 1.03, "ref").passed
    assert not acc.ratio_check("x", 1.05e-3, 1e-3, 0.97, 1.03, "ref").passed
    # a host loop pays its wake-up (~15 us) more than latbench's events: fine
    assert acc.overhead_check("x", 200e-6, 215e-6).passed
    # latbench reading less than a launch-free GPU time: launches hidden, caught
    assert not acc.overhead_check("x", 100e-6, 400e-6).passed
    assert not acc.overhead_check("x", 200e-6, 150e-6).passed  # events longer than the host clock: impossible
    assert acc.flat_check("m", [1000e6, 1010e6, 1000e6]).passed and not acc.flat_check("m", [1e9, 1.5e9]).passed


def test_the_trace_kernel_count_includes_namespaced_kernels():
    """The old truth dropped every kernel with '::' in its name (cudnn::, at::native::, cutlass::)."""
    trace = {"traceEvents": [
        {"ph": "X", "cat": "kernel", "name": "void cudnn::engines_precompiled::nchwToNhwcKernel", "dur": 3.0},
        {"ph": "X", "cat": "kernel", "name": "void at::native::vectorized_elementwise_kernel<4>", "dur": 2.0},
        {"ph": "X", "cat": "kernel", "name": "void cutlass::Kernel2<cutlass_80_tensorop_s1688gemm>", "dur": 5.0},
        {"ph": "X", "cat": "kernel", "name": "sm90_xmma_fprop_implicit_gemm", "dur": 10.0},
        {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD (Pageable -> Device)", "dur": 7.0},
        {"ph": "X", "cat": "gpu_memset", "name": "Memset (Device)", "dur": 1.0},
        {"ph": "X", "cat": "gpu_user_annotation", "name": "latbench::forward", "dur": 30.0},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "dur": 4.0},
        {"ph": "i", "cat": "kernel", "name": "instant"},
    ]}
    n, seconds = acc.kernels_in_trace(trace)
    assert n == 4 and seconds == pytest.approx(20e-6)


def _fake_case(cuda, launch_s=0.03 * MS, cost_s=0.1 * MS):
    def make(backend):
        work = cuda.work(cost_s, launch_s=launch_s)
        return work, backend.prepare(work, "cudagraph")

    return make


def test_the_host_loop_section_passes_on_a_fake_gpu_and_catches_hidden_launches(tmp_path, monkeypatch):
    cuda = FakeCuda(FakeClock(), sync_wake_s=0.015 * MS, graph_launch_s=0.005 * MS)
    ctx = acc.Ctx(out=tmp_path, quick=True)
    checks = acc.section_vs_host_loop(ctx, cuda=cuda, clock=lambda: cuda.clock.now_s, make=_fake_case(cuda), calls=50)
    assert [c.result for c in checks] == ["pass"] * 3, [c.value for c in checks]
    # a backend whose single latency leaves the 0.3 ms launch out (GPU time only): caught
    from latbench.timing.cuda import CudaBackend

    monkeypatch.setattr(CudaBackend, "time_block", lambda self, fn, iters: iters * 0.1 * MS)
    cuda = FakeCuda(FakeClock(), sync_wake_s=0.015 * MS)
    checks = acc.section_vs_host_loop(ctx, cuda=cuda, clock=lambda: cuda.clock.now_s,
                                      make=_fake_case(cuda, launch_s=0.3 * MS), calls=50)
    assert checks[0].result == "FAIL" and "host - latbench = +3" in checks[0].value


def _results(tmp_path, rows):
    d = tmp_path / "cli"
    d.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(d / "run.csv", index=False)
    pd.DataFrame([{"x": 1}]).to_csv(d / "run-samples.csv", index=False)
    return d


def test_cli_checks_flag_failed_rows_missing_repeats_and_false_under_load(tmp_path):
    base = {"case": "1:1", "status": "ok", "error": "", "latency_ms": 0.1, "repeats": 2, "under_load": False,
            "warnings": ""}
    good = _results(tmp_path / "a", [{**base, "mode": "eager"}, {**base, "mode": "cudagraph"}])
    assert all(c.passed for c in acc.cli_checks(0, good, 2, ("eager", "cudagraph")))
    bad = _results(tmp_path / "b", [{**base, "mode": "eager", "under_load": True,
                                     "warnings": "under load: 1 other process(es) computed on the GPU"},
                                    {**base, "mode": "cudagraph", "status": "failed", "error": "boom", "repeats": 1}])
    failed = {c.name for c in acc.cli_checks(0, bad, 2, ("eager", "cudagraph")) if not c.passed}
    assert failed == {"cli rows ok", "cli repeats", "cli not under load on the GPU"}
    assert [c.passed for c in acc.cli_checks(1, tmp_path / "none", 2, ("eager",))] == [False]


@pytest.mark.slow
def test_the_cli_section_end_to_end_on_the_cpu(tmp_path):
    """The section's command (--isolate --repeats 2) and checks, on the CPU with the fake backend."""
    ctx = acc.Ctx(out=tmp_path)
    checks = acc.run_cli(ctx, device="cpu", suite=str(TESTS / "data" / "tiny.yaml"), extra=("--no-roofline",),
                         env={"LATBENCH_FAKE_BACKEND": "1"}, modes=("eager",))
    assert all(c.passed for c in checks), [(c.name, c.value, c.detail) for c in checks]
    assert "--isolate" in acc.cli_command(tmp_path) and "--repeats" in acc.cli_command(tmp_path)


@pytest.mark.slow
def test_sections_left_when_the_budget_is_spent_fail_as_not_run(tmp_path, monkeypatch):
    monkeypatch.setattr(acc, "MIN_SECTION_S", 1)
    targets = [("hangs", "acceptance_toys:hangs"), ("ok", "acceptance_toys:ok")]
    rows, _ = acc.run_sections(targets, tmp_path, budget_s=4, pythonpath=[str(TESTS), str(TESTS.parent)])
    assert [(s, c.value) for s, c in rows] == [("hangs", "error"), ("ok", "not run")]
    assert "no result within 4 s" in rows[0][1].detail
