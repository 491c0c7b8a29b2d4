"""Acceptance of latbench's CUDA path on a real GPU (issue 23): one table of checks with their figures.

    python benchmarks/gpu_acceptance.py --out results/gpu-acceptance [--quick] [--only SECTION ...]

Every section runs in its own Python process (a sticky CUDA error, a crash or a hang fails that
section only; this process never creates a CUDA context, so it is not "another compute process"),
with a time limit. latbench's numbers are held against references latbench does not share code with:

  env                  the GPU, torch, CUDA, triton; L2 size (information)
  events_vs_host_clock a large fp32 mm: backend events within 1 % of the host clock around a sync
  vs_torch_benchmark   throughput eager and cudagraph medians vs torch.utils.benchmark (blocked_autorange)
  vs_triton            cudagraph vs triton.testing.do_bench_cudagraph; flushed eager vs do_bench (which
                       flushes the L2 before each call); skipped without triton
  vs_profiler          a GPU-bound case: the profiler's kernel-time sum per forward (chrome trace) <=
                       latbench's cudagraph and eager throughput, cudagraph within 15 % of it
  vs_host_loop         single-request eager and cudagraph vs a host-clock loop of single synced calls
                       (the host pays a wake-up more, never less); cudagraph <= eager
  l2_flushed_vs_warm   a case 2x larger than the L2: flushed ~ warm (+-10 %); an L2-resident case:
                       flushed >= warm; the flushed run's wall time within 2x its --max-time budget
  replay_after_scope   a graph replays correctly after its builder's model and input went out of scope
  memory_flat          torch.cuda.memory_reserved after each of 4 identical groups (pipeline, devices)
                       within 5 % of the first
  telemetry            NVML's handle by torch's UUID (GPU or MIG), readings present, latbench alone is
                       not "under load"
  roofline             roofline_pct <= 100 for G1 rows (float32; bfloat16 where native) against their
                       own ceiling; the L2-sized copy is faster than the HBM-sized one (the probe sees L2)
  op_count             latbench's kernels per forward == the chrome trace's kernel events per forward
                       (cudnn::, at::native::, cutlass:: kernels included)
  compile              torch.compile (inductor, fullgraph) of a case: compiled once, timed, no recompile
  cli                  `latbench run suites/g1.yaml --device cuda --quick --isolate --repeats 2`: exit 0,
                       every row ok, both modes, 2 repeats, no false "under load"

Writes OUT/acceptance.md (the table, details, environment) and OUT/acceptance.json. Exit 0 when no
check fails, 1 when one does, 2 without a CUDA device or without latbench's dependencies. Sized for
< 8 minutes on one H200; --budget (default 480 s) bounds the whole run, sections left when it is spent
fail as "not run" (--quick: shorter measurements, a smoke test). `pytest -m cuda` runs the
sections in-process (tests/test_cuda_hw.py); tests/test_gpu_acceptance.py runs the logic on fakes.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import importlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

G1_GPU = {"1:1": (1, 128, 128), "1:2": (2, 90, 180), "1:6": (6, 52, 312), "1:12": (12, 36, 432)}
SECTION_TIMEOUT_S = {"cli": 300, "compile": 240}  # others: DEFAULT_TIMEOUT_S
DEFAULT_TIMEOUT_S = 150
MIN_SECTION_S = 10  # a section is not started with less of the budget left


@dataclass
class Check:
    name: str
    value: str
    limit: str
    passed: bool
    detail: str = ""
    skipped: bool = False

    @property
    def result(self) -> str:
        return "skip" if self.skipped else "pass" if self.passed else "FAIL"


@dataclass
class Ctx:
    """What a section gets: where to write, how long to measure."""

    out: Path
    quick: bool = False
    figures: dict[str, Any] = field(default_factory=dict)

    def policy(self, short: bool = False) -> Any:
        """The stop rule of latbench's measurements; `short` where no figure hangs on precision."""
        from latbench.timing.loop import StopPolicy

        if self.quick or short:
            return StopPolicy(warmup_s=0.2, warmup_min_iters=10, block_s=0.01, min_rounds=5, min_time_s=0.2,
                              max_time_s=0.8)
        return StopPolicy(warmup_s=0.5, warmup_min_iters=10, min_rounds=10, min_time_s=1.0, max_time_s=3.0)


# ---------------------------------------------------------------- pure checks (tested on fakes)

def ratio_check(name: str, ours_s: float, ref_s: float, lo: float, hi: float, ref: str) -> Check:
    """ours / reference within [lo, hi]."""
    r = ours_s / ref_s if ref_s > 0 else math.inf
    return Check(name, f"{r:.3f} (latbench {1e3 * ours_s:.4f} ms, {ref} {1e3 * ref_s:.4f} ms)",
                 f"{lo:.2f}..{hi:.2f}", lo <= r <= hi)


def overhead_check(name: str, ours_s: float, host_s: float, max_extra_s: float = 50e-6, rel: float = 0.05) -> Check:
    """A host-clock loop of synced single calls pays the host's wake-up besides what latbench's events
    time: host - ours in [-2 us, max_extra_s + rel x ours]. Much more means latbench hides launch time."""
    extra = host_s - ours_s
    limit = max_extra_s + rel * ours_s
    return Check(name, f"host - latbench = {1e6 * extra:+.1f} us (latbench {1e3 * ours_s:.4f} ms, host "
                       f"{1e3 * host_s:.4f} ms)", f"-2 us..{1e6 * limit:.0f} us", -2e-6 <= extra <= limit)


def flat_check(name: str, values: list[float], tol: float = 0.05, unit: float = 2 ** 20) -> Check:
    first = values[0] if values else 0.0
    spread = (max(values) - min(values)) / max(first, 1.0) if values else math.inf
    return Check(name, " ".join(f"{v / unit:.0f}" for v in values) + " MiB", f"within {100 * tol:.0f} %",
                 bool(values) and spread <= tol)


def kernels_in_trace(trace: dict[str, Any]) -> tuple[int, float]:
    """(kernel events, their summed duration in seconds) in a chrome trace torch.profiler exported:
    events of category "kernel" whatever their name (cudnn::, at::native::, cutlass::, sm90_...);
    memcpy, memset and annotations have categories of their own."""
    n, us = 0, 0.0
    for e in trace.get("traceEvents", []):
        if e.get("ph") == "X" and str(e.get("cat", "")).lower() == "kernel":
            n += 1
            us += float(e.get("dur", 0.0))
    return n, us * 1e-6


def host_loop(fn: Callable[[], object], sync: Callable[[], None], clock: Callable[[], float], calls: int) -> float:
    """Median seconds of `calls` single calls, each timed by the host clock around fn() and a sync."""
    sync()
    times = []
    for _ in range(calls):
        t0 = clock()
        fn()
        sync()
        times.append(clock() - t0)
    return statistics.median(times)


def latbench_medians(items: list[tuple[Any, Callable[[], object]]], backend: Any, policy: Any) -> dict[Any, float]:
    """latbench's median seconds per call of each item (measure(), interleaved)."""
    from latbench.timing.loop import measure

    done, failed = measure(items, backend, policy)
    if failed:
        raise RuntimeError(f"latbench failed to measure: {failed}")
    return {k: statistics.median(m.samples_s) for k, m in done.items()}


def cli_checks(exit_code: int, results_dir: Path, repeats: int, modes: tuple[str, ...]) -> list[Check]:
    """What `latbench run ... --isolate --repeats N` must have written: every row ok, every mode, N repeats,
    a latency, and no row 'under load' for another process on the GPU (the manager's own CUDA context
    and the workers are latbench's; other CPU load, real on a shared host, is reported, not failed)."""
    import pandas as pd

    csvs = sorted(p for p in results_dir.glob("*.csv") if not p.name.endswith("-samples.csv"))
    checks = [Check("cli exit", f"exit {exit_code}, {len(csvs)} results file(s)", "exit 0, 1 file",
                    exit_code == 0 and len(csvs) == 1)]
    if len(csvs) != 1:
        return checks
    df = pd.read_csv(csvs[0])
    ok = df["status"].eq("ok")
    checks.append(Check("cli rows ok", f"{int(ok.sum())} of {len(df)} ok", "all", len(df) > 0 and bool(ok.all()),
                        "; ".join(f"{r.case} {r.mode}: {r.error}" for r in df[~ok].itertuples())[:500]))
    checks.append(Check("cli modes", ", ".join(sorted(set(df["mode"]))), ", ".join(modes),
                        set(df["mode"]) == set(modes)))
    reps = set(df["repeats"].dropna().astype(int)) if "repeats" in df else set()
    checks.append(Check("cli repeats", ", ".join(map(str, sorted(reps))) or "none", str(repeats), reps == {repeats}))
    lat = pd.to_numeric(df["latency_ms"], errors="coerce")
    checks.append(Check("cli latency", f"{lat.min():.4f}..{lat.max():.4f} ms", "> 0",
                        bool((lat > 0).all())))
    loaded = df["under_load"].astype(str).str.lower().isin(["true", "1"]) if "under_load" in df else ok & False
    on_gpu = df["warnings"].astype(object).fillna("").astype(str).str.contains("computed on the GPU") \
        if "warnings" in df else loaded
    checks.append(Check("cli not under load on the GPU", f"{int(on_gpu.sum())} row(s) with another GPU process "
                        f"({int(loaded.sum())} under load in all)", "0", not bool(on_gpu.any()),
                        "; ".join(sorted(set(str(w) for w in df.loc[loaded, "warnings"].dropna())))[:500]))
    return checks


def cli_command(results_dir: Path, device: str = "cuda", suite: str = "suites/g1.yaml",
                extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "latbench", "run", suite, "--device", device, "--quick", "--isolate",
            "--repeats", "2", "--results-dir", str(results_dir), "-q", *extra]


def run_cli(ctx: Ctx, device: str = "cuda", suite: str = "suites/g1.yaml", extra: tuple[str, ...] = (),
            env: dict[str, str] | None = None, modes: tuple[str, ...] = ("eager", "cudagraph")) -> list[Check]:
    results = ctx.out / "cli"
    results.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(cli_command(results, device, suite, extra), cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=SECTION_TIMEOUT_S["cli"] - 20)
    (ctx.out / "cli.log").write_text(proc.stdout + proc.stderr)
    checks = cli_checks(proc.returncode, results, 2, modes)
    if proc.returncode != 0:
        checks[0].detail = (proc.stderr.strip().splitlines() or [""])[-1][:300]
    return checks


# ---------------------------------------------------------------- GPU sections

def g1_case(ratio: str = "1:1", scale: int = 1, batch: int = 1, dtype: Any = None) -> tuple[Any, Any]:
    from latbench.cost import build_network

    r, c1, c2 = G1_GPU[ratio]
    return build_network("g1_conv_pair", {"ratio": r, "c1": c1 * scale, "c2": c2 * scale}, 10, batch, 56, 56,
                         "cuda", dtype or torch.float32)


def _backend(**kw: Any) -> Any:
    from latbench.timing.cuda import CudaBackend

    return CudaBackend(**kw)


def section_env(ctx: Ctx) -> list[Check]:
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    try:
        import triton

        tri = triton.__version__
    except Exception:  # noqa: BLE001
        tri = "not installed"
    l2 = int(getattr(props, "L2_cache_size", 0) or 0)
    ctx.figures.update(gpu=props.name, torch=torch.__version__, cuda=torch.version.cuda, triton=tri,
                       l2_bytes=l2, capability=f"{props.major}.{props.minor}", uuid=str(getattr(props, "uuid", "")))
    return [Check("environment", f"{props.name} (sm {props.major}.{props.minor}, L2 {l2 / 2 ** 20:.0f} MiB) | torch "
                  f"{torch.__version__} | CUDA {torch.version.cuda} | triton {tri}", "-", True)]


def section_events_vs_host_clock(ctx: Ctx, n: int = 8192, iters: int = 20) -> list[Check]:
    a, b = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
    fn = functools.partial(torch.mm, a, b)
    backend = _backend()
    backend.time_block(fn, 3)
    worst, ev, host = 0.0, 0.0, 0.0
    for _ in range(3):
        ev = backend.time_block(fn, iters)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
        host = time.perf_counter() - t0
        worst = max(worst, abs(ev / host - 1))
    return [Check("events_vs_host_clock", f"{100 * worst:.2f} % (events {1e3 * ev / iters:.3f} ms, host "
                  f"{1e3 * host / iters:.3f} ms per mm)", "<= 1 %", worst <= 0.01)]


def _eager_and_graph(backend: Any, batch: int = 1) -> tuple[Callable[[], object], Callable[[], object]]:
    model, x = g1_case(batch=batch)
    eager = functools.partial(model, x)
    return eager, backend.prepare(eager, "cudagraph")


def section_vs_torch_benchmark(ctx: Ctx) -> list[Check]:
    from torch.utils import benchmark

    backend = _backend()
    with torch.inference_mode():
        eager, graph = _eager_and_graph(backend)
        med = latbench_medians([("eager", eager), ("cudagraph", graph)], backend, ctx.policy())
        theirs = {k: benchmark.Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(
            min_run_time=0.5 if ctx.quick else 2.0).median for k, fn in (("eager", eager), ("cudagraph", graph))}
    backend.release()
    return [ratio_check("vs torch.utils.benchmark: cudagraph", med["cudagraph"], theirs["cudagraph"], 0.97, 1.03,
                        "torch.utils.benchmark"),
            ratio_check("vs torch.utils.benchmark: eager", med["eager"], theirs["eager"], 0.95, 1.05,
                        "torch.utils.benchmark")]


def _triton_ms(fn: Callable[..., float], *args: Any, **kw: Any) -> float:
    try:
        return float(fn(*args, return_mode="median", **kw))
    except TypeError:  # an older triton without return_mode: its mean
        return float(fn(*args, **kw))


def section_vs_triton(ctx: Ctx) -> list[Check]:
    try:
        from triton.testing import do_bench, do_bench_cudagraph
    except Exception as exc:  # noqa: BLE001
        return [Check("vs triton", f"triton not importable ({type(exc).__name__})", "-", True, skipped=True)]
    warm, flushed = _backend(), _backend(l2="flushed")
    with torch.inference_mode():
        eager, graph = _eager_and_graph(warm)
        med = latbench_medians([("cudagraph", graph)], warm, ctx.policy())
        cold = latbench_medians([("eager", eager)], flushed, ctx.policy())
        rep = 200 if ctx.quick else 1000
        t_graph = _triton_ms(do_bench_cudagraph, eager, rep=rep) * 1e-3
        t_cold = _triton_ms(do_bench, eager, warmup=100, rep=rep) * 1e-3
    warm.release()
    return [ratio_check("vs triton do_bench_cudagraph: cudagraph (warm L2)", med["cudagraph"], t_graph, 0.95, 1.05,
                        "do_bench_cudagraph"),
            ratio_check("vs triton do_bench: eager, L2 flushed", cold["eager"], t_cold, 0.90, 1.10, "do_bench")]


def section_vs_profiler(ctx: Ctx, batch: int = 32, forwards: int = 20) -> list[Check]:
    from torch.profiler import ProfilerActivity, profile

    backend = _backend()
    with torch.inference_mode():
        eager, graph = _eager_and_graph(backend, batch=batch)  # GPU-bound: launches hidden behind kernels
        med = latbench_medians([("eager", eager), ("cudagraph", graph)], backend, ctx.policy())
        eager()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(forwards):
                eager()
            torch.cuda.synchronize()
    backend.release()
    path = ctx.out / "vs_profiler.trace.json"
    prof.export_chrome_trace(str(path))
    n, seconds = kernels_in_trace(json.loads(path.read_text()))
    ksum = seconds / forwards
    ctx.figures["kernels_per_forward"] = n / forwards
    return [ratio_check(f"vs profiler kernel sum: cudagraph (batch {batch})", med["cudagraph"], ksum, 0.98, 1.15,
                        "kernel sum"),
            ratio_check(f"vs profiler kernel sum: eager (batch {batch})", med["eager"], ksum, 0.98, 1.30, "kernel sum")]


def section_vs_host_loop(ctx: Ctx, cuda: Any = None, clock: Callable[[], float] = time.perf_counter,
                         make: Callable[[Any], tuple[Callable[[], object], Callable[[], object]]] | None = None,
                         calls: int = 200) -> list[Check]:
    """cuda, clock and make are injectable: tests run this section on FakeCuda."""
    from latbench.timing.cuda import CudaBackend

    cuda = cuda or torch.cuda
    backend = CudaBackend(cuda, latency="single")
    with torch.inference_mode():
        eager, graph = (make or _eager_and_graph)(backend)
        med = latbench_medians([("eager", eager), ("cudagraph", graph)], backend, ctx.policy())
        host = {k: host_loop(fn, cuda.synchronize, clock, calls) for k, fn in (("eager", eager), ("cudagraph", graph))}
    backend.release()
    return [overhead_check("vs host loop: single eager", med["eager"], host["eager"]),
            overhead_check("vs host loop: single cudagraph", med["cudagraph"], host["cudagraph"]),
            ratio_check("single: cudagraph <= eager", med["cudagraph"], med["eager"], 0.0, 1.02, "eager")]


def section_l2_flushed_vs_warm(ctx: Ctx) -> list[Check]:
    from latbench.timing.loop import measure

    l2 = int(getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "L2_cache_size", 0) or 50 << 20)
    per_sample = 128 * 56 * 56 * 4  # one G1 1:1 activation per sample, float32
    big_batch = max(1, math.ceil(2 * l2 / per_sample))
    policy = ctx.policy()
    warm, flushed = _backend(), _backend(l2="flushed")
    out: list[Check] = []
    with torch.inference_mode():
        for label, batch, lo, hi in (("larger than L2", big_batch, 0.90, 1.10), ("in L2", 1, 0.98, math.inf)):
            model, x = g1_case(batch=batch)
            fn = functools.partial(model, x)
            w = latbench_medians([("w", fn)], warm, policy)["w"]
            t0 = time.perf_counter()
            done, failed = measure([("f", fn)], flushed, policy)
            wall = time.perf_counter() - t0
            if failed:
                raise RuntimeError(f"flushed measure failed: {failed}")
            f = statistics.median(done["f"].samples_s)
            c = ratio_check(f"flushed / warm, {label} (batch {batch})", f, w, lo, hi, "warm")
            out.append(c)
            budget = policy.warmup_s + policy.max_time_s
            out.append(Check(f"flushed wall time, {label}", f"{wall:.2f} s", f"<= {2 * budget:.1f} s "
                             f"(2x warm-up + --max-time)", wall <= 2 * budget))
            del model, x, fn
    return out


def section_replay_after_scope(ctx: Ctx) -> list[Check]:
    backend = _backend()

    def build() -> tuple[Callable[[], object], Any, Any]:
        model, x = g1_case()
        ref = model(x).clone()
        out = torch.empty_like(ref)
        replay = backend.prepare(lambda: out.copy_(model(x)), "cudagraph")
        return replay, out, ref  # model and x go out of scope here; only the replay may keep them

    with torch.inference_mode():
        replay, out, ref = build()
        gc.collect()
        torch.cuda.empty_cache()
        junk = [torch.full((1 << 20,), float("nan"), device="cuda") for _ in range(256)]  # reuse freed blocks
        out.zero_()
        replay()
        torch.cuda.synchronize()
        ok = bool(torch.allclose(out, ref))
        del junk
    backend.release()
    return [Check("replay_after_scope", "output matches" if ok else "output differs", "matches eager", ok)]


def section_memory_flat(ctx: Ctx, groups: int = 4) -> list[Check]:
    from latbench import devices
    from latbench.run import pipeline
    from latbench.suite import expand, load_suite

    dev = devices.get("cuda", None)
    specs = expand(load_suite(ROOT / "suites" / "g1.yaml"), "gpu", quick=True)
    group = pipeline.groups_of(specs)[0]
    cfg = pipeline.RunConfig(device=dev, run_id="acceptance", modes=("eager", "cudagraph"), policy=ctx.policy(True))
    reserved: list[float] = []
    statuses: list[str] = []

    def done(rows: list[Any], samples: list[Any]) -> None:
        statuses.extend(r.status for r in rows)
        reserved.append(float(torch.cuda.memory_reserved()))

    pipeline.run_in_process([list(group) for _ in range(groups)], cfg, done)
    return [flat_check("memory_reserved after each group", reserved),
            Check("memory_flat rows ok", f"{statuses.count('ok')} of {len(statuses)}", "all",
                  bool(statuses) and all(s == "ok" for s in statuses))]


def section_compile(ctx: Ctx) -> list[Check]:
    from latbench import devices
    from latbench.run import pipeline
    from latbench.suite import expand, load_suite
    from latbench.timing.loop import measure
    from latbench.timing.prepare import prepare_case, release

    dev = devices.get("cuda", None)
    spec = expand(load_suite(ROOT / "suites" / "g1.yaml"), "gpu", quick=True)[0]
    with torch.inference_mode():
        prepared = prepare_case(spec, ("eager", "compile"), dev, dev.backend, 0, pipeline._build)
        comp = prepared["compile"]
        if comp.fn is None:
            return [Check("compile prepared", comp.error or comp.skip or "?", "compiled once", False)]
        done, failed = measure([(m, p.fn) for m, p in prepared.items()], dev.backend, ctx.policy(True))
    release(dev.backend)
    ok = not failed and "compile" in done
    med = {k: statistics.median(m.samples_s) for k, m in done.items()}
    return [Check("compile: compiled once, timed with no recompile",
                  f"compile {1e3 * med.get('compile', math.nan):.4f} ms, eager {1e3 * med.get('eager', math.nan):.4f} ms,"
                  f" compile_s {comp.compile_s:.1f}", "no error", ok, "; ".join(f"{k}: {v}" for k, v in failed.items()))]


def section_telemetry(ctx: Ctx, seconds: float = 2.0) -> list[Check]:
    from latbench import devices
    from latbench.env import load_nvml
    from latbench.telemetry import TelemetrySampler, bare_uuid, find_gpu

    dev = devices.get("cuda", None)
    uuid, index = dev.telemetry_gpu_uuid(), dev.telemetry_gpu_index()
    a = torch.randn(4096, 4096, device="cuda")
    sampler = TelemetrySampler(threads=1, gpu_index=index, gpu_uuid=uuid, interval_s=0.2)
    sampler.start()
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()
    t = sampler.stop()
    nv = load_nvml()
    matched = "no NVML"
    if nv is not None:
        found = find_gpu(nv, uuid, index)
        h = found.procs_handle
        got = nv.nvmlDeviceGetUUID(h) if h is not None else None
        got = got.decode() if isinstance(got, bytes) else got
        matched = "yes" if got is not None and bare_uuid(got) == bare_uuid(uuid) else f"no ({got})"
        nv.nvmlShutdown()
    return [Check("telemetry: NVML handle by torch's UUID", f"uuid {uuid}, nvml index {index}, matched {matched}",
                  "matched yes", matched == "yes"),
            Check("telemetry: readings", f"sm {t.gpu_sm_clock_mhz} MHz, {t.gpu_temp_c} C, {t.gpu_power_w} W, "
                  f"reasons {t.gpu_throttle_reasons}", "present", t.gpu_sm_clock_mhz is not None,
                  "; ".join(t.notes)),
            Check("telemetry: latbench alone is not under load", f"{t.gpu_compute_processes} compute process(es), "
                  f"under_load {t.under_load}", "1, False", t.gpu_compute_processes == 1 and not t.under_load)]


def section_roofline(ctx: Ctx) -> list[Check]:
    from latbench import devices, roofline
    from latbench.cost import count

    os.environ["LATBENCH_CACHE"] = str(ctx.out / "roofline-cache")
    dev = devices.get("cuda", None)
    dtypes = ["float32"] + (["bfloat16"] if dev.dtype_skip("bfloat16") is None else [])
    ceilings, _, missing = roofline.measure_ceiling_set(dev, torch.cuda.get_device_name(), dev.threads, dtypes,
                                                        refresh=True)
    checks = [Check("roofline ceilings", "; ".join(
        f"{c.label}: {c.peak_flops_per_s / 1e12:.1f} TFLOP/s, {c.bandwidth_bytes_per_s / 1e12:.2f} TB/s"
        for c in ceilings.by_dtype.values()), "probed", not missing, "; ".join(f"{k}: {v}" for k, v in missing.items()))]
    f32 = ceilings.for_dtype("float32")
    by_size = f32.probes.get("copy_bytes_per_s_by_buffer_size", {}) if f32 else {}
    small, large = (by_size.get(str(s)) for s in devices.CudaDevice.copy_sizes)
    checks.append(Check("roofline: the L2-sized copy is faster than the HBM-sized one",
                        f"{(small or 0) / 1e12:.2f} vs {(large or 0) / 1e12:.2f} TB/s", "L2 > HBM",
                        bool(small and large and small > large)))
    backend = _backend()
    worst, detail = 0.0, []
    for dtype in dtypes:
        items, costs = [], {}
        with torch.inference_mode():
            for name, (r, c1, c2) in G1_GPU.items():
                params = {"ratio": r, "c1": c1, "c2": c2}
                model, x = g1_case(name, dtype=getattr(torch, dtype))
                costs[name] = count("g1_conv_pair", params, 10, 1, 56, 56, getattr(torch, dtype))
                fn = functools.partial(model, x)
                items += [((name, mode), backend.prepare(fn, mode)) for mode in ("eager", "cudagraph")]
            med = latbench_medians(items, backend, ctx.policy(True))
        backend.release()
        for (name, mode), s in med.items():
            cols = roofline.row_columns(costs[name].flops, costs[name].mac_bytes, 1e3 * s, ceilings, dtype)
            pct = cols["roofline_pct"] if cols["roofline_pct"] is not None else math.inf
            worst = max(worst, pct)
            detail.append(f"{dtype} {name} {mode} {pct:.1f} % of {cols['roofline_ceiling']}")
    checks.append(Check("roofline_pct <= 100", f"max {worst:.1f} %", "<= 100 %", worst <= 100, "; ".join(detail)))
    return checks


def section_op_count(ctx: Ctx, forwards: int = 10) -> list[Check]:
    from torch.profiler import ProfilerActivity, profile

    from latbench import devices
    from latbench.opbreakdown import profile_forward

    dev = devices.get("cuda", None)
    with torch.inference_mode():
        model, x = g1_case()
        fn = functools.partial(model, x)
        ours = profile_forward(fn, dev, forwards)["op_count_per_forward"]
        fn()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(forwards):
                fn()
            torch.cuda.synchronize()
    path = ctx.out / "op_count.trace.json"
    prof.export_chrome_trace(str(path))
    n, _ = kernels_in_trace(json.loads(path.read_text()))
    return [Check("op_count", f"latbench {ours} vs chrome trace {n / forwards}", "equal", ours == n / forwards)]


def section_cli(ctx: Ctx) -> list[Check]:
    return run_cli(ctx)


SECTIONS: dict[str, Callable[[Ctx], list[Check]]] = {  # in running order: the longest (compile, cli) last
    "env": section_env, "events_vs_host_clock": section_events_vs_host_clock,
    "vs_torch_benchmark": section_vs_torch_benchmark, "vs_triton": section_vs_triton,
    "vs_profiler": section_vs_profiler, "vs_host_loop": section_vs_host_loop,
    "l2_flushed_vs_warm": section_l2_flushed_vs_warm, "replay_after_scope": section_replay_after_scope,
    "memory_flat": section_memory_flat, "telemetry": section_telemetry, "roofline": section_roofline,
    "op_count": section_op_count, "compile": section_compile, "cli": section_cli,
}


# ---------------------------------------------------------------- one process per section

def run_one(target: str, out: Path, quick: bool, result: Path) -> int:
    """In a section's process: run it, write its checks (and figures) as JSON to `result`."""
    module, _, name = target.rpartition(":")
    fn = getattr(importlib.import_module(module), name) if module else SECTIONS[name]
    ctx = Ctx(out=out, quick=quick)
    if module or name != "env":
        torch.backends.cudnn.benchmark = True
    try:
        checks = fn(ctx)
    except Exception as exc:  # noqa: BLE001 - a crashed section is a failed check; the others still run
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        checks = [Check(target, "error", "-", False, f"{type(exc).__name__}: {first}"[:300])]
    result.write_text(json.dumps({"checks": [dataclasses.asdict(c) for c in checks], "figures": ctx.figures},
                                 default=str))
    return 0


def run_sections(targets: list[tuple[str, str]], out: Path, quick: bool = False,
                 timeouts: dict[str, float] | None = None, pythonpath: list[str] | None = None,
                 on_done: Callable[[str, list[Check]], None] | None = None,
                 budget_s: float | None = None) -> tuple[list[tuple[str, Check]], dict]:
    """Each (section, target) in a process of its own: [(section, check)], figures. A process that
    crashes, exits without a result or outlives its time limit is one failed check of its section;
    once `budget_s` is spent, the sections left are failed checks too ("not run"), not run late."""
    rows: list[tuple[str, Check]] = []
    figures: dict[str, Any] = {}
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([*pythonpath, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    start = time.perf_counter()
    for section, target in targets:
        limit = (timeouts or {}).get(section, SECTION_TIMEOUT_S.get(section, DEFAULT_TIMEOUT_S))
        if budget_s is not None:
            left = budget_s - (time.perf_counter() - start)
            if left < MIN_SECTION_S:
                rows.append((section, Check(section, "not run", "-", False, f"the {budget_s:.0f} s budget was spent")))
                continue
            limit = min(limit, left)
        with tempfile.TemporaryDirectory() as tmp:
            result = Path(tmp) / "result.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--section", target, "--result", str(result),
                   "--out", str(out), *(["--quick"] if quick else [])]
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit)
                tail = (proc.stderr.strip().splitlines() or [""])[-1][:300]
                code: int | str = proc.returncode
            except subprocess.TimeoutExpired:
                code, tail = "timeout", f"no result within {limit:.0f} s"
            seconds = time.perf_counter() - t0
            if result.exists():
                data = json.loads(result.read_text())
                checks = [Check(**c) for c in data["checks"]]
                figures.update(data.get("figures", {}))
            else:
                checks = [Check(section, "error", "-", False, f"process ended ({code}) without a result: {tail}")]
        figures.setdefault("section_seconds", {})[section] = round(seconds, 1)
        rows += [(section, c) for c in checks]
        if on_done:
            on_done(section, checks)
    return rows, figures


def table(rows: list[tuple[str, Check]]) -> str:
    lines = ["| section | check | value | limit | result |", "|---|---|---|---|---|"]
    lines += [f"| {s} | {c.name} | {c.value} | {c.limit} | {c.result} |" for s, c in rows]
    details = [f"- {c.name}: {c.detail}" for _, c in rows if c.detail]
    return "\n".join(lines + ([""] + details if details else []))


def write_report(out: Path, rows: list[tuple[str, Check]], figures: dict[str, Any], argv: list[str]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    failed = sum(1 for _, c in rows if not c.passed and not c.skipped)
    md = out / "acceptance.md"
    md.write_text(f"# GPU acceptance (benchmarks/gpu_acceptance.py)\n\n`python benchmarks/gpu_acceptance.py "
                  f"{' '.join(argv)}` on {time.strftime('%Y-%m-%d %H:%M:%S')}: {len(rows)} checks, "
                  f"{failed} failed.\n\n{table(rows)}\n\n## Environment and figures\n\n```json\n"
                  f"{json.dumps(figures, indent=2, default=str)}\n```\n")
    (out / "acceptance.json").write_text(json.dumps(
        {"argv": argv, "checks": [{"section": s, **dataclasses.asdict(c)} for s, c in rows], "figures": figures},
        indent=2, default=str))
    return md


def preflight() -> str | None:
    """Why this machine cannot run the checks (exit 2), or None."""
    if not torch.cuda.is_available():
        return (f"gpu_acceptance: no CUDA device (torch {torch.__version__}, built with CUDA "
                f"{torch.version.cuda or 'none'}); run it on a machine with a GPU")
    for mod in ("pydantic", "typer", "pandas", "scipy", "yaml", "psutil"):
        try:
            importlib.import_module(mod)
        except ImportError:
            return (f"gpu_acceptance: latbench needs {mod}, which this Python lacks ({sys.executable}); "
                    f"README, CUDA section, 'GPU machine' says how to carry its wheel there")
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("results") / "gpu-acceptance",
                    help="directory for acceptance.md/.json and the sections' files")
    ap.add_argument("--quick", action="store_true", help="shorter measurements (a smoke test, not evidence)")
    ap.add_argument("--only", action="append", default=[], choices=list(SECTIONS), help="run only these sections")
    ap.add_argument("--budget", type=float, default=480.0,
                    help="seconds for all sections (default 480); sections left when it is spent fail as 'not run'")
    ap.add_argument("--section", help=argparse.SUPPRESS)  # internal: run one section in this process
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.section:
        return run_one(args.section, args.out, args.quick, args.result)
    why = preflight()
    if why:
        print(why, file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(SECTIONS)
    t0 = time.perf_counter()

    def progress(section: str, checks: list[Check]) -> None:
        print(f"[{time.perf_counter() - t0:5.0f} s] {section}: " + ", ".join(f"{c.name} {c.result}" for c in checks),
              file=sys.stderr, flush=True)

    rows, figures = run_sections([(n, n) for n in names], args.out, args.quick, on_done=progress,
                                 budget_s=args.budget)
    figures["total_seconds"] = round(time.perf_counter() - t0, 1)
    md = write_report(args.out, rows, figures, argv)
    print(table(rows))
    print(f"\nwritten: {md}", file=sys.stderr)
    return 0 if all(c.passed or c.skipped for _, c in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
