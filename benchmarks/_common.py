"""Small helpers the benchmark scripts share: spread, strict JSON, the machine-load footer, a noisy neighbour."""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def cov(values: list[float]) -> float:
    """Coefficient of variation: sample standard deviation over mean (nan with fewer than two values)."""
    if len(values) < 2:
        return math.nan
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean else math.nan


def pct(x: float) -> str:
    """A percentage for a table; 'n/a' when undefined."""
    return "n/a" if not math.isfinite(x) else f"{x:.2f}%"


def json_safe(obj: Any) -> Any:
    """NaN and inf become null, so the file is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(json_safe(report), indent=2) + "\n")


def load_note(before: tuple[float, ...], after: tuple[float, ...]) -> str:
    """A reminder on stderr: figures from a busy machine are not evidence."""
    return (f"load average before {before[0]:.2f}, after {after[0]:.2f} (on {os.cpu_count()} cores; "
            f"figures are only meaningful on a quiet machine)")


def base_parser(doc: str, reps: int, budget_help: str, reps_help: str) -> argparse.ArgumentParser:
    """The flags both scripts share: --budget, --reps, --threads, --out."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, default=1.0, help=f"{budget_help} (1.0)")
    p.add_argument("--reps", type=int, default=reps, help=f"{reps_help} ({reps})")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1, as latbench on cpu)")
    p.add_argument("--out", type=Path, help="write the full results as JSON here")
    return p


def finish(report: dict[str, Any], out: Path | None, started: float, load_before: tuple[float, ...]) -> None:
    """Add load, elapsed time and the machine fingerprint; write the JSON; remind about load on stderr."""
    from latbench.env import fingerprint

    report.update(load_avg_before=load_before, load_avg_after=os.getloadavg(), elapsed_s=time.time() - started,
                  fingerprint=fingerprint())
    if out:
        write_json(out, report)
        print(f"wrote {out}", file=sys.stderr)
    print(load_note(load_before, report["load_avg_after"]), file=sys.stderr)


NEIGHBOUR = """
import numpy as np
a = np.ones(8 * 2**20); b = np.empty_like(a)
while True:
    np.copyto(b, a); np.copyto(a, b)
"""


def start_neighbour() -> subprocess.Popen:
    """A noisy neighbour: one process streaming 128 MiB through memory (shared caches and bandwidth).

    When this script is pinned to some cores (`taskset -c 0 python benchmarks/...`), the neighbour goes
    on the others, as a neighbour on a shared machine would: it competes for memory and the last-level
    cache, not for the measuring core's time slices (which would halve every sample, not disturb it)."""
    proc = subprocess.Popen([sys.executable, "-c", NEIGHBOUR])
    mine, every = os.sched_getaffinity(0), set(range(os.cpu_count() or 1))
    if every - mine:
        os.sched_setaffinity(proc.pid, every - mine)
    return proc
