"""Acceptance checks of the CUDA timing path on a real GPU: one table, one line per check.

    python benchmarks/gpu_acceptance.py [--quick]

Checks (issue 13, "GPU evidence"):
  mm_vs_host_clock      a large fp32 mm: the backend's time within 1 % of the host clock around a synchronize
  replay_after_scope    a graph replays correctly after its builder's model and input go out of scope
                        and their memory would have been reused
  memory_flat           torch.cuda.memory_reserved flat (within 5 % of the first) across groups when
                        each group's graphs are released
  graph_le_eager        cudagraph median <= eager median (+2 % for noise) for every G1 case (throughput and single)
  vs_torch_benchmark    the cudagraph median within +-3 % of torch.utils.benchmark's on the same replay
  op_count              latbench's op_count_per_forward equals the profiler's kernel launches per
                        forward (memcpy/memset and the record_function range excluded)
  roofline_le_100       roofline_pct <= 100 for every G1 case and mode, float32 (against the TF32
                        ceiling when cuDNN allows TF32) and bfloat16 (where the GPU has it natively)

Exit 0 when every check passes, 1 when one fails, 2 without a CUDA device. tests/test_cuda_hw.py runs
the same checks under `pytest -m cuda`.
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from latbench.cost import build_network  # noqa: E402
from latbench.timing.cuda import CudaBackend  # noqa: E402
from latbench.timing.loop import StopPolicy, measure  # noqa: E402

G1_GPU = {"1:1": (1, 128, 128), "1:2": (2, 90, 180), "1:6": (6, 52, 312), "1:12": (12, 36, 432)}
POLICY = StopPolicy(warmup_s=0.5, warmup_min_iters=10, min_rounds=10, min_time_s=0.5, max_time_s=5.0)
QUICK_POLICY = StopPolicy(warmup_s=0.2, warmup_min_iters=10, block_s=0.01, min_rounds=5, min_time_s=0.2,
                          max_time_s=1.0)


@dataclass
class Check:
    name: str
    value: str
    limit: str
    passed: bool
    detail: str = ""


def g1_case(ratio_name: str = "1:1", scale: int = 1, batch: int = 1) -> tuple[torch.nn.Module, torch.Tensor]:
    ratio, c1, c2 = G1_GPU[ratio_name]
    return build_network("g1_conv_pair", {"ratio": ratio, "c1": c1 * scale, "c2": c2 * scale}, 10, batch, 56, 56,
                         "cuda", torch.float32)


def check_mm_vs_host_clock(n: int = 8192, iters: int = 20) -> Check:
    a, b = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
    fn = functools.partial(torch.mm, a, b)
    backend = CudaBackend()
    backend.time_block(fn, 3)  # warm
    worst = 0.0
    pairs = []
    for _ in range(3):
        events = backend.time_block(fn, iters)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
        host = time.perf_counter() - t0
        pairs.append((events, host))
        worst = max(worst, abs(events / host - 1))
    ev, host = pairs[-1]
    return Check("mm_vs_host_clock", f"{100 * worst:.2f} % (events {1e3 * ev / iters:.3f} ms, host "
                 f"{1e3 * host / iters:.3f} ms per mm)", "<= 1 %", worst <= 0.01)


def check_replay_after_scope() -> Check:
    backend = CudaBackend()

    def build() -> tuple[Callable[[], object], torch.Tensor, torch.Tensor]:
        model, x = g1_case()
        with torch.inference_mode():
            ref = model(x).clone()
            out = torch.empty_like(ref)
            replay = backend.prepare(lambda: out.copy_(model(x)), "cudagraph")
        return replay, out, ref  # model and x go out of scope here; only the replay may keep them

    with torch.inference_mode():  # out and ref are inference tensors
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
    return Check("replay_after_scope", "output matches" if ok else "output differs", "matches eager", ok)


def check_memory_flat(groups: int = 4, cases: int = 4, batch: int = 8) -> Check:
    backend = CudaBackend()
    reserved = []
    with torch.inference_mode():
        for _ in range(groups):
            fns = []
            for i in range(cases):
                model, x = g1_case(list(G1_GPU)[i % 4], 2, batch)
                fns.append(backend.prepare(functools.partial(model, x), "cudagraph"))
            for fn in fns:
                backend.time_block(fn, 3)
            del fns, model, x
            backend.release()
            gc.collect()
            torch.cuda.empty_cache()
            reserved.append(torch.cuda.memory_reserved())
    spread = (max(reserved) - min(reserved)) / max(reserved[0], 1)
    return Check("memory_flat", " ".join(f"{r / 2**20:.0f}" for r in reserved) + " MiB", "within 5 %",
                 spread <= 0.05)


def _medians(latency: str, policy: StopPolicy) -> dict[tuple[str, str], float]:
    backend = CudaBackend(latency=latency)
    items = []
    with torch.inference_mode():
        for name in G1_GPU:
            model, x = g1_case(name)
            fn = functools.partial(model, x)
            items += [((name, mode), backend.prepare(fn, mode)) for mode in ("eager", "cudagraph")]
        done, failed = measure(items, backend, policy)
    backend.release()
    if failed:
        raise RuntimeError(f"measure failed: {failed}")
    return {k: statistics.median(m.samples_s) for k, m in done.items()}


def check_graph_le_eager(policy: StopPolicy) -> list[Check]:
    out = []
    for latency in ("throughput", "single"):
        med = _medians(latency, policy)
        worst = max(med[n, "cudagraph"] / med[n, "eager"] for n in G1_GPU)
        detail = ", ".join(f"{n} {1e3 * med[n, 'eager']:.3f}/{1e3 * med[n, 'cudagraph']:.3f}" for n in G1_GPU)
        out.append(Check(f"graph_le_eager ({latency})", f"max graph/eager {worst:.3f}", "<= 1.02",
                         worst <= 1.02, f"eager/graph ms: {detail}"))
    return out


def check_vs_torch_benchmark(policy: StopPolicy) -> Check:
    from torch.utils import benchmark

    backend = CudaBackend()
    with torch.inference_mode():
        model, x = g1_case()
        replay = backend.prepare(functools.partial(model, x), "cudagraph")
        done, failed = measure([("g", replay)], backend, policy)
        ours = statistics.median(done["g"].samples_s)
        theirs = benchmark.Timer(stmt="replay()", globals={"replay": replay}).blocked_autorange(min_run_time=2).median
    backend.release()
    diff = ours / theirs - 1
    return Check("vs_torch_benchmark", f"{100 * diff:+.2f} % ({1e3 * ours:.4f} vs {1e3 * theirs:.4f} ms)", "+-3 %",
                 abs(diff) <= 0.03)


def check_op_count(forwards: int = 10) -> Check:
    from torch.profiler import ProfilerActivity, profile

    from latbench.opbreakdown import profile_forward

    with torch.inference_mode():
        model, x = g1_case()
        fn = functools.partial(model, x)
        ours = profile_forward(fn, "cuda", forwards)["op_count_per_forward"]
        fn()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(forwards):
                fn()
            torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
               and not e.name.lower().startswith(("memcpy", "memset")) and "::" not in e.name]
    truth = len(kernels) / forwards
    return Check("op_count", f"latbench {ours} vs profiler {truth}", "equal", ours == truth)


def check_roofline_le_100(policy: StopPolicy) -> Check:
    from latbench import roofline
    from latbench.cost import count
    from latbench.devices import CudaDevice

    dev = CudaDevice()
    dtypes = ["float32"] + (["bfloat16"] if dev.dtype_skip("bfloat16") is None else [])
    ceilings, _, missing = roofline.measure_ceiling_set(dev, torch.cuda.get_device_name(), torch.get_num_threads(),
                                                        dtypes, refresh=True)
    if missing:
        raise RuntimeError(f"no ceiling for {missing}")
    backend = CudaBackend()
    worst, detail = 0.0, []
    for dtype in dtypes:
        items, costs = [], {}
        with torch.inference_mode():
            for name, (ratio, c1, c2) in G1_GPU.items():
                params = {"ratio": ratio, "c1": c1, "c2": c2}
                model, x = build_network("g1_conv_pair", params, 10, 1, 56, 56, "cuda", getattr(torch, dtype))
                costs[name] = count("g1_conv_pair", params, 10, 1, 56, 56, getattr(torch, dtype))
                fn = functools.partial(model, x)
                items += [((name, mode), backend.prepare(fn, mode)) for mode in ("eager", "cudagraph")]
            done, failed = measure(items, backend, policy)
        backend.release()
        if failed:
            raise RuntimeError(f"measure failed: {failed}")
        for (name, mode), m in done.items():
            cols = roofline.row_columns(costs[name].flops, costs[name].mac_bytes, 1e3 * statistics.median(m.samples_s),
                                        ceilings, dtype)
            pct = cols["roofline_pct"] if cols["roofline_pct"] is not None else float("inf")
            worst = max(worst, pct)
            detail.append(f"{dtype} {name} {mode} {pct:.1f} % of {cols['roofline_ceiling']}")
    return Check("roofline_le_100", f"max {worst:.1f} %", "<= 100 %", worst <= 100, "; ".join(detail))


def run_checks(quick: bool = False) -> list[Check]:
    policy = QUICK_POLICY if quick else POLICY
    torch.backends.cudnn.benchmark = True
    steps: list[tuple[str, Callable[[], object]]] = [
        ("mm_vs_host_clock", check_mm_vs_host_clock),
        ("replay_after_scope", check_replay_after_scope),
        ("memory_flat", check_memory_flat),
        ("graph_le_eager", lambda: check_graph_le_eager(policy)),
        ("vs_torch_benchmark", lambda: check_vs_torch_benchmark(policy)),
        ("op_count", check_op_count),
        ("roofline_le_100", lambda: check_roofline_le_100(policy)),
    ]
    checks: list[Check] = []
    for name, step in steps:
        try:
            got = step()
            checks.extend(got if isinstance(got, list) else [got])
        except Exception as exc:  # noqa: BLE001 - a check that crashes is a failed check, the others still run
            checks.append(Check(name, "error", "-", False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"))
    return checks


def table(checks: list[Check]) -> str:
    lines = ["| check | value | limit | pass |", "|---|---|---|---|"]
    lines += [f"| {c.name} | {c.value} | {c.limit} | {'yes' if c.passed else 'NO'} |" for c in checks]
    lines += [f"\n{c.name}: {c.detail}" for c in checks if c.detail]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter measurements (a smoke test, not evidence)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"gpu_acceptance: no CUDA device (torch {torch.__version__}, built with CUDA "
              f"{torch.version.cuda or 'none'}); run it on a machine with a GPU", file=sys.stderr)
        return 2
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | CUDA {torch.version.cuda}")
    checks = run_checks(args.quick)
    print(table(checks))
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
