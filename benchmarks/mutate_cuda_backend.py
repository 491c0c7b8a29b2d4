"""Do the CUDA tests bite? Apply each known-bad edit to latbench/timing/cuda.py, run the CUDA tests
against the mutated copy, and count the mutations the tests catch (at least one test fails).

    python benchmarks/mutate_cuda_backend.py [--out docs/benchmarks/mutate_cuda_backend.md]

Each mutation runs in a scratch copy (latbench/, benchmarks/, tests/conftest.py, tests/fakes.py
and the CUDA test files): the working tree is never edited. Exit 0 when every mutation not marked equivalent is
caught, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = "latbench/timing/cuda.py"
TESTS = ["tests/test_cuda_backend.py"]

# (name, text in cuda.py, replacement, why a GPU would show it)
MUTATIONS = [
    ("events without enable_timing",
     "self._start = cuda.Event(enable_timing=True)\n        self._end = cuda.Event(enable_timing=True)",
     "self._start = cuda.Event()\n        self._end = cuda.Event()",
     "elapsed_time raises on events made without timing"),
    ("side.wait_stream(current) removed", "side.wait_stream(current)", "pass",
     "the warm-up reads the input before its upload on the current stream finished"),
    ("current.wait_stream(side) removed", "current.wait_stream(side)", "pass",
     "equivalent while torch.cuda.graph synchronizes on entry (torch 2.13 graphs.py __enter__)"),
    ("side stream removed (capture on the current stream)", "side = cuda.Stream()", "side = current",
     "capture on the default stream is refused"),
    ("sync before the start event dropped", "self._cuda.synchronize()\n        start.record()",
     "start.record()", "queued work hides the block's first launch"),
    ("graph not keeping references", "self.graph, self.fn = graph, fn", "self.graph, self.fn = graph, None",
     "replay after the model or input is freed reads freed memory"),
    ("no wait for the end event", "end.record()\n        end.synchronize()\n        return start",
     "end.record()\n        return start", "elapsed_time before the end event completed"),
    ("single request without the per-call sync",
     "            cuda.synchronize()  # idle GPU: the call pays its launch\n", "",
     "the call's launch hides behind queued work"),
    ("no warm-up before capture", "GRAPH_WARMUP_ITERS = 3", "GRAPH_WARMUP_ITERS = 0",
     "cuDNN autotuning during capture is refused"),
    ("L2 flush inside the timed region",
     "flush()  # not timed: it runs before the start event\n            start.record()",
     "start.record()\n            flush()", "the flush's time is counted as the model's"),
    ("release() keeps the graphs", "            g.release()\n", "            pass\n",
     "private pools are never freed"),
]
EQUIVALENT = {"current.wait_stream(side) removed"}


def run_one(old: str, new: str, python: str) -> tuple[int, int, str]:
    """(tests failed, tests run, first failing test) with the mutation applied in a scratch copy."""
    with tempfile.TemporaryDirectory(prefix="latbench-mutant-") as tmp:
        tmp_root = Path(tmp)
        shutil.copytree(ROOT / "latbench", tmp_root / "latbench",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "benchmarks", tmp_root / "benchmarks",
                        ignore=shutil.ignore_patterns("__pycache__", "*.json", "*.md"))
        (tmp_root / "tests").mkdir()
        for name in ("conftest.py", "fakes.py", *[Path(t).name for t in TESTS]):
            shutil.copy(ROOT / "tests" / name, tmp_root / "tests" / name)
        shutil.copy(ROOT / "pyproject.toml", tmp_root / "pyproject.toml")
        target = tmp_root / TARGET
        src = target.read_text()
        if src.count(old) != 1:
            raise SystemExit(f"mutation text not found exactly once in {TARGET}: {old!r}")
        target.write_text(src.replace(old, new))
        env = {**os.environ, "PYTHONPATH": str(tmp_root), "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not cuda", *TESTS],
                              cwd=tmp_root, env=env, capture_output=True, text=True)
        out = proc.stdout + proc.stderr
        failed = int(m.group(1)) if (m := re.search(r"(\d+) failed", out)) else 0
        passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", out)) else 0
        first = m.group(1) if (m := re.search(r"FAILED \S+::(\S+)", out)) else ""
        if proc.returncode not in (0, 1):
            first = first or f"pytest exit {proc.returncode}: {out.strip().splitlines()[-1] if out.strip() else ''}"
            failed = max(failed, 1)
        return failed, failed + passed, first


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also write the table as markdown here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    base_failed, base_run, _ = run_one("GRAPH_WARMUP_ITERS = 3", "GRAPH_WARMUP_ITERS = 3", sys.executable)
    if base_failed:
        print(f"the unmutated backend fails {base_failed} of {base_run} tests; fix that first", file=sys.stderr)
        return 1
    rows, caught, missed = [], 0, []
    for name, old, new, why in MUTATIONS:
        failed, run, first = run_one(old, new, sys.executable)
        hit = failed > 0
        caught += hit
        if not hit and name not in EQUIVALENT:
            missed.append(name)
        verdict = "caught" if hit else ("survived (equivalent)" if name in EQUIVALENT else "SURVIVED")
        rows.append(f"| {name} | {failed} of {run} | {first or '-'} | {verdict} | {why} |")
        print(rows[-1], flush=True)
    lines = [
        f"Mutations of `{TARGET}` against `{' '.join(TESTS)}` (unmutated: {base_run} tests pass).",
        "",
        "| mutation | tests failed | first failing test | verdict | what a GPU would show |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"**Mutations tried: {len(MUTATIONS)}; caught: {caught}; equivalent: {len(EQUIVALENT)}; "
        f"missed: {len(missed)}** ({time.perf_counter() - t0:.0f} s).",
    ]
    print("\n".join(lines[-1:]))
    if args.out:
        args.out.write_text("# Do the CUDA tests bite?\n\n`python benchmarks/mutate_cuda_backend.py "
                            f"--out {args.out}` printed:\n\n" + "\n".join(lines) + "\n")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
