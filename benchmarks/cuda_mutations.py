"""Do the CUDA tests bite? Apply each known-bad edit of the CUDA path (backend, device, telemetry,
roofline probe, the group's memory release) to a scratch copy of the repository, run the tests that
should notice, and count the mutations caught (at least one test fails).

    python benchmarks/cuda_mutations.py [--out docs/benchmarks/cuda-mutations.md] [--only NAME]

Each mutation is a source-level text replacement (it must match exactly once) in a scratch copy of
latbench/, tests/ and benchmarks/: the working tree is never edited. To stay fast (< 2 min on 2 cores, CPU only)
torch and pytest are imported once, and each mutation's tests run in a forked child that imports
latbench from its scratch copy (`-x`: the first failure is enough). Without fork (not Linux/macOS)
each runs in a subprocess instead. The unmutated copy must pass every test first.

Exit 0 when every mutation is caught or listed in EQUIVALENT with the argument why, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKEND = ["tests/test_cuda_backend.py"]
DEVICE = ["tests/test_devices.py", "tests/test_env_telemetry.py", "tests/test_roofline.py"]
TELEMETRY = ["tests/test_env_telemetry.py"]
ROOFLINE = ["tests/test_roofline.py"]
GROUP = ["tests/test_cuda_group_memory.py"]


# Third-party modules latbench and its tests import: loaded before forking (not latbench itself).
PRELOAD = ("torch", "pytest", "hypothesis", "numpy", "scipy.stats", "pandas", "typer", "typer.testing", "rich",
           "pydantic", "psutil", "pynvml", "yaml", "torch.utils.flop_counter", "torch.profiler", "torch._dynamo")


@dataclass(frozen=True)
class Mutation:
    name: str
    target: str  # file in the repository
    old: str  # text replaced (must occur exactly once)
    new: str
    tests: tuple[str, ...]
    why: str  # what a GPU would show


def m(name: str, target: str, old: str, new: str, tests: list[str], why: str) -> Mutation:
    return Mutation(name, target, old, new, tuple(tests), why)


CUDA = "latbench/timing/cuda.py"
MUTATIONS = [
    # --- the eleven of benchmarks/mutate_cuda_backend.py (issue 13) ---------------------------------
    m("events without enable_timing", CUDA,
      "self._start = cuda.Event(enable_timing=True)\n        self._end = cuda.Event(enable_timing=True)",
      "self._start = cuda.Event()\n        self._end = cuda.Event()", BACKEND,
      "elapsed_time raises on events made without timing"),
    m("side.wait_stream(current) removed", CUDA, "side.wait_stream(current)", "pass", BACKEND,
      "the warm-up reads the input before its upload on the current stream finished"),
    m("current.wait_stream(side) removed", CUDA, "current.wait_stream(side)", "pass", BACKEND,
      "nothing: torch.cuda.graph synchronizes the device on entry (graphs.py __enter__)"),
    m("side stream removed (capture on the current stream)", CUDA, "side = cuda.Stream()", "side = current",
      BACKEND, "capture on the default stream is refused"),
    m("sync before the start event dropped", CUDA, "self._cuda.synchronize()\n        start.record()",
      "start.record()", BACKEND, "queued work hides the block's first launch"),
    m("graph not keeping references", CUDA, "self.graph, self.fn = graph, fn", "self.graph, self.fn = graph, None",
      BACKEND, "replay after the model or input is freed reads freed memory"),
    m("no wait for the end event", CUDA, "end.record()\n        end.synchronize()\n        return start",
      "end.record()\n        return start", BACKEND, "elapsed_time before the end event completed"),
    m("single request without the per-call sync", CUDA,
      "            cuda.synchronize()  # idle GPU: the call pays its launch\n", "", BACKEND,
      "the call's launch hides behind queued work"),
    m("no warm-up before capture", CUDA, "GRAPH_WARMUP_ITERS = 3", "GRAPH_WARMUP_ITERS = 0", BACKEND,
      "cuDNN autotuning during capture is refused"),
    m("L2 flush inside the timed region", CUDA,
      "flush()  # not timed: it runs before the start event\n                start.record()",
      "start.record()\n                flush()", BACKEND, "the flush's time is counted as the model's"),
    m("release() keeps the graphs", CUDA, "            g.release()\n", "            pass\n", BACKEND,
      "private pools are never freed"),
    # --- issue 23: the five the suite missed -------------------------------------------------------
    m("start event recorded before the synchronize", CUDA,
      "self._cuda.synchronize()\n        start.record()", "start.record()\n        self._cuda.synchronize()",
      BACKEND, "the host's wake-up after the sync is timed as the model's"),
    m("flush on its own unordered stream", CUDA,
      "flush()  # not timed: it runs before the start event",
      "with cuda.stream(cuda.Stream()):\n                    flush()", BACKEND,
      "the flush overlaps the call: a warm, contended L2 instead of a cold one"),
    m("flush after the sync in single+flushed (hides the launch)", CUDA,
      "            if flush is not None:\n                flush()  # before the sync: the call must not start behind "
      "it (the flush would hide its launch)\n            cuda.synchronize()  # idle GPU: the call pays its launch\n",
      "            cuda.synchronize()  # idle GPU: the call pays its launch\n            if flush is not None:\n"
      "                flush()\n", BACKEND, "the call is launched while the flush runs: single latency without its launch"),
    m("flush buffer smaller than the L2", CUDA, "return max(2 * int(l2_bytes or 0), L2_FLUSH_MIN_BYTES)",
      "return max(int(l2_bytes or 0) // 2, 1 << 20)", BACKEND, "part of the model's data stays in L2: not cold"),
    m("flushed mode reads every event pair ever made", CUDA,
      "total_ms += sum(start.elapsed_time(end) for start, end in chunk)",
      "total_ms += sum(start.elapsed_time(end) for start, end in pairs)", BACKEND,
      "earlier blocks' (or never recorded) pairs summed into this block"),
    # --- issue 23: the defects fixed here, put back ------------------------------------------------
    m("flushed mode: one event pair per call of the block", CUDA, "n = min(FLUSH_PAIRS, calls - done)",
      "n = calls - done", BACKEND, "event pairs grow to the largest warm-up block"),
    m("flushed mode times every call of the block", CUDA,
      "        if per_call is None or per_call <= 0:\n            return iters\n",
      "        return iters\n", BACKEND, "wall time ~(flush + call) / call x --max-time"),
    m("failed capture leaves torch on the side stream", CUDA, "            cuda.set_stream(current)\n",
      "            pass\n", BACKEND, "later eager calls and events run on the capture's side stream"),
    m("capture_end's generic error as the skip reason", CUDA,
      "failed = first[0] if first and isinstance(first[0], Exception) else exc", "failed = exc", BACKEND,
      "every skip says 'operation failed due to a previous error during capture'"),
    m("out of memory during capture is a skip", CUDA,
      "            if is_oom(failed):\n                raise failed", "            if False:\n                raise failed",
      BACKEND, "a case too big for the GPU reads as 'cannot be captured'"),
    m("TF32 ceiling when either cuDNN or matmul allows TF32", "latbench/devices.py",
      'return "tf32" if modes["conv"] == modes["matmul"] == "tf32" else "ieee"',
      'return "tf32" if "tf32" in (modes["conv"], modes["matmul"]) else "ieee"', ROOFLINE,
      "a Linear-heavy float32 model held to a TF32 peak its IEEE matmuls never reach"),
    m("legacy allow_tf32 flags read unguarded", "latbench/devices.py",
      '        value = _read(new)\n        if isinstance(value, str):\n            return "tf32" if value == "tf32" '
      'else "ieee"\n        return "tf32" if _read(old) is True else "ieee"',
      '        return "tf32" if old() is True else "ieee"', ROOFLINE,
      "torch >= 2.9 raises once fp32_precision is set: latbench crashes"),
    m("GEMM probe sets matmul precision through the legacy flag", "latbench/roofline.py",
      "    if isinstance(before, str):\n        matmul.fp32_precision = math_mode",
      "    if False:\n        matmul.fp32_precision = math_mode", ROOFLINE,
      "reading allow_tf32 raises after a user set fp32_precision"),
    m("roofline probe on the host clock around one synced call", "latbench/roofline.py",
      "dt = device.time_calls(fn, n)",
      "dt = __import__('latbench.devices').devices.CpuDevice.time_calls(device, lambda: (fn(), "
      "device.synchronize()), n)", ROOFLINE, "sync overhead swamps a ~1 us L2-sized copy"),
    m("probe batch launched onto an idle GPU (no hold)", "latbench/devices.py",
      "        if hold is not None:\n            hold(", "        if False:\n            hold(", ROOFLINE,
      "a copy shorter than its launch: the probe times launches"),
    m("torch's UUID prefixed 'GPU-' (MIG instances not found)", "latbench/devices.py", "        return text or None\n",
      '        return (text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}") if text else None\n',
      DEVICE, "a MIG instance's telemetry read from another card"),
    m("unknown UUID falls back to NVML's index", "latbench/devices.py",
      "                return int(g[\"index\"])\n        return None\n", "                return int(g[\"index\"])\n",
      DEVICE, "NVML's GPU 0 (another card) stands in for a MIG instance"),
    m("only 'GPU-' tried for a bare UUID", "latbench/telemetry.py",
      'return [f"GPU-{text}", f"MIG-{text}"]', 'return [f"GPU-{text}"]', TELEMETRY,
      "a MIG instance is never found"),
    m("MIG readings asked of the instance handle", "latbench/telemetry.py",
      "return FoundGpu(handle=parent if parent is not None else h, procs_handle=h)",
      "return FoundGpu(handle=h, procs_handle=h)", TELEMETRY, "clocks, power, throttling: Not Supported on MIG"),
    m("MIG processes counted on the parent GPU", "latbench/telemetry.py",
      "return FoundGpu(handle=parent if parent is not None else h, procs_handle=h)",
      "return FoundGpu(handle=parent if parent is not None else h, procs_handle=parent)", TELEMETRY,
      "other instances' processes read as 'under load'"),
    m("unknown UUID read at the given index", "latbench/telemetry.py",
      "if h is not None and _same_uuid(_try(lambda: nv.nvmlDeviceGetUUID(h)), uuid):",
      "if h is not None:", TELEMETRY, "another GPU's readings"),
    m("throttling from the 0.5 s samples only", "latbench/telemetry.py",
      "        throttle_ns1 = self._throttle_ns()\n", "        throttle_ns1 = None\n", TELEMETRY,
      "throttling between samples goes unseen"),
    m("no violation-status fallback", "latbench/telemetry.py",
      "for policy, name in THROTTLE_POLICIES.items():", "for policy, name in {}.items():", TELEMETRY,
      "older drivers: throttling between samples unseen"),
    m("memory reset while the group's callables are referenced", "latbench/run/pipeline.py",
      "    items.clear()\n    fns.clear()\n    prepared = prep = fn = None", "    pass", GROUP,
      "empty_cache() cannot free the group's models, inputs and compiled code"),
]

# Mutations that change nothing observable, with the argument (checked against torch's source).
EQUIVALENT = {
    "current.wait_stream(side) removed":
        "torch.cuda.graph.__enter__ calls torch.cuda.synchronize() before capture (torch/cuda/graphs.py), so the "
        "current stream is ordered after the side-stream warm-up anyway; kept for clarity and for a torch "
        "that stops synchronizing there",
}


def scratch_copy(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(ROOT / "latbench", dest / "latbench", ignore=ignore)
    shutil.copytree(ROOT / "tests", dest / "tests", ignore=ignore)
    shutil.copytree(ROOT / "benchmarks", dest / "benchmarks", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def apply(dest: Path, mut: Mutation) -> None:
    path = dest / mut.target
    src = path.read_text()
    if src.count(mut.old) != 1:
        raise SystemExit(f"{mut.name}: the text to replace occurs {src.count(mut.old)} times in {mut.target}, "
                         f"not once (the source changed: update the mutation)")
    path.write_text(src.replace(mut.old, mut.new))


def _pytest_args(tests: tuple[str, ...]) -> list[str]:
    return ["-q", "-x", "-p", "no:cacheprovider", "-W", "ignore", *tests]


def run_tests(dest: Path, tests: tuple[str, ...]) -> tuple[bool, str]:
    """(all passed, first failing test or why) for `tests` in the scratch copy `dest`."""
    out_file = dest / "pytest.out"
    if hasattr(os, "fork"):
        pid = os.fork()
        if pid == 0:  # the child: latbench comes from the scratch copy
            code = 3
            try:
                fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.chdir(dest)
                sys.path[:0] = [str(dest), str(dest / "tests")]
                import pytest

                code = int(pytest.main(_pytest_args(tests)))
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
    else:
        env = {**os.environ, "PYTHONPATH": str(dest), "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.run([sys.executable, "-m", "pytest", *_pytest_args(tests)], cwd=dest, env=env,
                              capture_output=True, text=True)
        out_file.write_text(proc.stdout + proc.stderr)
        code = proc.returncode
    out = out_file.read_text(errors="replace")
    if code == 0:
        return True, ""
    first = re.search(r"FAILED (\S+?)(?: - |\s*$)", out, re.M)
    if first:
        return False, first.group(1).split("::", 1)[-1]
    last = out.strip().splitlines()[-1] if out.strip() else ""
    return False, f"pytest exit {code}: {last[:120]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also write the table as markdown here")
    ap.add_argument("--only", action="append", default=[], help="run only mutations whose name contains this")
    args = ap.parse_args(argv)
    muts = [x for x in MUTATIONS if not args.only or any(o in x.name for o in args.only)]
    import importlib

    for name in PRELOAD:  # imported once here, so the forked children start warm (never latbench itself)
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional module missing only costs time
            pass
    import gc

    gc.collect()
    gc.freeze()  # the preloaded heap is left out of the children's collections (tests call gc.collect())

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="latbench-mutants-") as tmp:
        base = Path(tmp) / "base"
        scratch_copy(base)
        all_tests = tuple(dict.fromkeys(t for x in muts for t in x.tests))
        ok, why = run_tests(base, all_tests)
        if not ok:
            print(f"the unmutated copy fails ({why}); fix that first", file=sys.stderr)
            return 1
        rows, caught, missed = [], 0, []
        for i, mut in enumerate(muts):
            dest = Path(tmp) / f"m{i}"
            shutil.copytree(base, dest, ignore=shutil.ignore_patterns("pytest.out"))
            apply(dest, mut)
            passed, first = run_tests(dest, mut.tests)
            shutil.rmtree(dest, ignore_errors=True)
            hit = not passed
            caught += hit
            if hit:
                verdict = "caught"
            elif mut.name in EQUIVALENT:
                verdict = "equivalent: " + EQUIVALENT[mut.name]
            else:
                verdict, _ = "MISSED", missed.append(mut.name)
            rows.append(f"| {mut.name} | `{mut.target}` | {first or '-'} | {verdict} | {mut.why} |")
            print(rows[-1], flush=True)
    seconds = time.perf_counter() - t0
    equivalent = sum(1 for x in muts if x.name in EQUIVALENT)
    summary = (f"**Mutations: {len(muts)}; caught: {caught}; argued equivalent: {equivalent}; "
               f"missed: {len(missed)}** ({seconds:.0f} s)")
    print(summary)
    if args.out:
        today = datetime.date.today().isoformat()
        machine = f"{platform.machine()}, {os.cpu_count()} cores, CPU only (no GPU): fakes (tests/fakes.py)"
        import torch

        lines = ["# Do the CUDA tests bite? (issue 23)", "",
                 f"Run on {today}, {machine}, Python {platform.python_version()}, torch {torch.__version__}:", "",
                 "```bash", f"python benchmarks/cuda_mutations.py --out {args.out}", "```", "",
                 "Each mutation is a text replacement in a scratch copy of the repository; the tests named by the "
                 "mutation ran against it (`pytest -x`, so the first failure is shown). The unmutated copy passed "
                 "them all first. No GPU ran: what a GPU would show is the fakes' model of it.", "",
                 "| mutation | file | caught by (first failing test) | verdict | what a GPU would show |",
                 "|---|---|---|---|---|", *rows, "", summary, ""]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
