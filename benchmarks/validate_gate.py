"""Validate the latency gates on this machine (issue 12, item 6): A/A false alarms and detections of
+5 / +10 / +20 % slowdowns made by a REAL code change, for three gates, with wall time per decision.

The code under test is a user module (`builder: user`, factory 'gatepkg.net:make'): a stack of LAYERS
identical 3x3 convolutions. A slowdown of s % is the same module with round(LAYERS * (1 + s)) layers
(20 -> 21, 22, 24 by default): a change in the source, not an edited CSV. Level 0 is A/A: the same code
in a second directory.

Gates, one decision per trial and level, each in fresh processes as CI runs them:
  ab     'latbench ab SUITE --base A --head B --allow-import': both in the same interleaved rounds
  multi  'latbench run' --runs-per-side times a side, alternated ABAB, then 'latbench gate'
  asv    asv-style: the first base run, then the first head run (sequential), slower when the ratio of
         medians > --asv-factor (1.1) and Mann-Whitney p < 0.05 (asv_style_slower)
A trial of a level > 0 is a detection when the gate says "slower"; at level 0 any "slower" is a false
alarm. The gates also fail closed (inconclusive, ...): those counts are reported separately.

    python benchmarks/validate_gate.py --trials 20                       # the full validation (long)
    python benchmarks/validate_gate.py --trials 1 --levels 20 --max-time 1 --runs-per-side 1   # smoke

Prints progress on stderr and a markdown summary on stdout; --output writes every decision as JSON.
Figures depend on the machine and its load: docs quote only what a command here produced.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("ab", "multi", "asv")

SUITE = """\
# written by benchmarks/validate_gate.py
suite: gatecheck
experiment: GATE
builder: user
blocks: 1
cases:
  - name: net
    params:
      factory: "gatepkg.net:make"
      kwargs: {{c: {c}}}
      input_shape: [{c}, {hw}, {hw}]
"""

CODE = """\
# written by benchmarks/validate_gate.py: {layers} layers
from torch import nn

LAYERS = {layers}


def make(c):
    return nn.Sequential(*[nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(LAYERS)])
"""


def write_code(root: Path, layers: int) -> Path:
    (root / "gatepkg").mkdir(parents=True, exist_ok=True)
    (root / "gatepkg" / "__init__.py").write_text("")
    (root / "gatepkg" / "net.py").write_text(CODE.format(layers=layers))
    return root


def layers_for(level_pct: float, base_layers: int) -> int:
    return round(base_layers * (1 + level_pct / 100))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "LATBENCH_FAKE_BACKEND": "0"}


def _latbench(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "latbench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=_env())


def _verdict(proc: subprocess.CompletedProcess) -> tuple[str, dict[str, Any]]:
    """(status of the case, JSON doc) from a gate's --json output; 'error' when it exited 2."""
    if proc.returncode not in (0, 1):
        return "error", {"stderr": proc.stderr.strip().splitlines()[-1:] if proc.stderr else []}
    doc = json.loads(proc.stdout)
    return doc["cases"][0]["status"], {"ratio": doc["cases"][0].get("ratio"), "ci": [doc["cases"][0].get("ci_low"),
                                       doc["cases"][0].get("ci_high")], "passed": doc["gate"]["passed"]}


def ab_decision(suite: Path, base: Path, head: Path, opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = _latbench(["ab", suite, "--base", base, "--head", head, "--allow-import", "--json", "-q",
                      "--threshold", opts.threshold, "--max-time", opts.max_time, "--threads", opts.threads], work)
    status, info = _verdict(proc)
    return {"status": status, "wall_s": time.perf_counter() - t0, **info}


def _run(suite: Path, side: Path, out: Path, opts: argparse.Namespace, seed: int) -> Path:
    before = set(out.glob("*.csv")) if out.exists() else set()
    proc = _latbench(["run", suite, "--allow-import", "-q", "--results-dir", out, "--max-time", opts.max_time,
                      "--threads", opts.threads, "--seed", seed], side)
    if proc.returncode != 0:
        raise RuntimeError(f"latbench run failed in {side}: {proc.stderr.strip()[-500:]}")
    new = sorted(p for p in set(out.glob("*.csv")) - before if not p.name.endswith("-samples.csv"))
    return new[-1]


def asv_style_slower(base: Sequence[float], cand: Sequence[float], factor: float = 1.1,
                     alpha: float = 0.05) -> tuple[bool, float, float]:
    """The decision `asv compare` makes between two sequential runs: slower when the ratio of medians
    exceeds `factor` AND a two-sided Mann-Whitney U test on the raw samples (scipy.stats.mannwhitneyu)
    gives p < alpha. Returns (slower, ratio, p). The baseline the A/B gate is validated against."""
    import math

    import numpy as np
    from scipy import stats

    b, c = np.asarray(base, float), np.asarray(cand, float)
    if b.size == 0 or c.size == 0:
        return False, math.nan, math.nan
    ratio = float(np.median(c) / np.median(b))
    p = float(stats.mannwhitneyu(c, b, alternative="two-sided").pvalue)
    return bool(ratio > factor and p < alpha), ratio, p


def multi_and_asv(suite: Path, base: Path, head: Path, opts: argparse.Namespace, work: Path,
                  trial: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """ABAB runs for the multi-run gate; its first base and first head run are the asv-style decision."""
    from latbench.results.read import read_run

    bdir, hdir = work / "results-base", work / "results-head"
    t0 = time.perf_counter()
    bfiles, hfiles, first_pair_s = [], [], 0.0
    for i in range(opts.runs_per_side):
        bfiles.append(_run(suite, base, bdir, opts, 1000 * trial + i))
        hfiles.append(_run(suite, head, hdir, opts, 1000 * trial + i))
        if i == 0:
            first_pair_s = time.perf_counter() - t0
    proc = _latbench(["gate", *sum((["-b", p] for p in bfiles), []), *sum((["-c", p] for p in hfiles), []),
                      "--json", "-q", "--threshold", opts.threshold], work)
    status, info = _verdict(proc)
    multi = {"status": status, "wall_s": time.perf_counter() - t0, **info}
    t1 = time.perf_counter()
    b, h = read_run(bfiles[0]).samples, read_run(hfiles[0]).samples
    slower, ratio, p = asv_style_slower(b["latency_ms"].to_numpy(float), h["latency_ms"].to_numpy(float),
                                        opts.asv_factor)
    asv = {"status": "slower" if slower else "same", "ratio": ratio, "p": p,
           "wall_s": first_pair_s + time.perf_counter() - t1}
    return multi, asv


def validate(opts: argparse.Namespace) -> dict[str, Any]:
    work = Path(opts.workdir or tempfile.mkdtemp(prefix="validate-gate-"))
    work.mkdir(parents=True, exist_ok=True)
    suite = work / "gatecheck.yaml"
    suite.write_text(SUITE.format(c=opts.channels, hw=opts.size))
    base = write_code(work / "code-base", opts.layers)
    decisions: list[dict[str, Any]] = []
    for level in opts.levels:
        layers = layers_for(level, opts.layers)
        head = write_code(work / f"code-{level:g}pct", layers)  # level 0: the same code, another directory
        for trial in range(opts.trials):
            tdir = work / f"trial-{level:g}-{trial}"
            tdir.mkdir(exist_ok=True)
            row = {"level_pct": level, "layers": [opts.layers, layers], "trial": trial}
            if "ab" in opts.methods:
                decisions.append({**row, "method": "ab", **ab_decision(suite, base, head, opts, tdir)})
            if "multi" in opts.methods or "asv" in opts.methods:
                multi, asv = multi_and_asv(suite, base, head, opts, tdir, trial)
                decisions += [{**row, "method": m, **d} for m, d in (("multi", multi), ("asv", asv))
                              if m in opts.methods]
            for d in decisions[-len(opts.methods):]:
                print(f"level +{level:g}% trial {trial + 1}/{opts.trials} {d['method']}: {d['status']} "
                      f"({d['wall_s']:.1f} s)", file=sys.stderr)
            if not opts.keep:
                shutil.rmtree(tdir, ignore_errors=True)
    return {"settings": {k: v for k, v in vars(opts).items() if k != "output"}, "decisions": decisions,
            "summary": summarize(decisions)}


def summarize(decisions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method and level: trials, 'slower' verdicts (detections; false alarms at level 0), gate
    failures of any kind (fail-closed: inconclusive too), and the median wall time per decision."""
    import statistics

    out = []
    keys = sorted({(d["method"], d["level_pct"]) for d in decisions}, key=lambda k: (METHODS.index(k[0]), k[1]))
    for method, level in keys:
        ds = [d for d in decisions if d["method"] == method and d["level_pct"] == level]
        out.append({"method": method, "level_pct": level, "trials": len(ds),
                    "slower": sum(d["status"] == "slower" for d in ds),
                    "gate_failed": sum(d.get("passed") is False or d["status"] == "slower" for d in ds),
                    "statuses": {s: sum(d["status"] == s for d in ds) for s in sorted({d["status"] for d in ds})},
                    "median_wall_s": statistics.median(d["wall_s"] for d in ds)})
    return out


def markdown(summary: Sequence[dict[str, Any]]) -> str:
    lines = ["| gate | change | trials | 'slower' | gate failed (any reason) | median wall s / decision |",
             "|---|--:|--:|--:|--:|--:|"]
    for s in summary:
        what = "A/A (false alarms)" if s["level_pct"] == 0 else f"+{s['level_pct']:g}%"
        lines.append(f"| {s['method']} | {what} | {s['trials']} | {s['slower']} | {s['gate_failed']} | "
                     f"{s['median_wall_s']:.1f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="decisions per gate and level (default 20)")
    ap.add_argument("--levels", type=lambda s: [float(x) for x in s.split(",")], default=[0.0, 5.0, 10.0, 20.0],
                    help="slowdowns in percent, 0 = A/A (default 0,5,10,20)")
    ap.add_argument("--methods", type=lambda s: [m for m in s.split(",") if m], default=list(METHODS),
                    help="ab,multi,asv (default all)")
    ap.add_argument("--threshold", default="3%", help="the gates' threshold (default 3%%)")
    ap.add_argument("--asv-factor", type=float, default=1.1, help="asv-style factor (default 1.1)")
    ap.add_argument("--max-time", type=float, default=20.0, help="seconds of measurement per run or A/B (default 20)")
    ap.add_argument("--runs-per-side", type=int, default=3, help="multi-run gate: runs per side, ABAB (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--layers", type=int, default=20, help="convolutions in the base module (default 20)")
    ap.add_argument("--channels", type=int, default=16, help="their channels (default 16)")
    ap.add_argument("--size", type=int, default=28, help="input height and width (default 28)")
    ap.add_argument("--workdir", help="keep the code and results here (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep each trial's results files")
    ap.add_argument("--output", help="write every decision and the summary as JSON here")
    opts = ap.parse_args(argv)
    bad = [m for m in opts.methods if m not in METHODS]
    if bad or opts.trials < 1 or opts.runs_per_side < 1:
        ap.error(f"bad --methods {bad}" if bad else "--trials and --runs-per-side must be >= 1")
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    res = validate(opts)
    sys.stdout.write(markdown(res["summary"]))
    if opts.output:
        Path(opts.output).write_text(json.dumps(res, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
