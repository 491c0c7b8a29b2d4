"""Validate the latency gates on this machine (issues 12 and 21): A/A false alarms and detections of
+3 / +5 / +10 % slowdowns made by a REAL code change, for three gates, with wall time per decision,
on two user networks, quiet or with a noisy neighbour.

The code under test is a user module (`builder: user`, factory 'gatepkg.net:make'), one of
  conv   a stack of LAYERS identical 3x3 convolutions (the gate's own test network)
  mixed  a realistic user network: LAYERS inverted-residual blocks (pointwise expand, ReLU6, depthwise
         3x3, ReLU6, pointwise project, residual add), the depthwise/pointwise/elementwise mix of
         MobileNetV2-style networks
A slowdown of s % is the same module with round(LAYERS * (1 + s)) layers (40 -> 41, 42, 44 by default):
a change in the source, not an edited CSV. Level 0 is A/A: the same code in a second directory.

Gates, one decision per trial and level, each in fresh processes as CI runs them:
  ab     'latbench ab SUITE --base A --head B --allow-import': both in the same interleaved rounds
  multi  'latbench run' --runs-per-side times a side, alternated ABAB, then 'latbench gate'
  asv    asv-style: the first base run, then the first head run (sequential), slower when the ratio of
         medians > --asv-factor (1.1) and Mann-Whitney p < 0.05 (asv_style_slower)
A trial of a level > 0 is a detection when the gate says "slower"; at level 0 any "slower" is a false
alarm. The gates also fail closed (inconclusive, ...): "passed" counts the gate's exit 0 (at level 0:
unchanged code that passed; at a level > 0: a slowdown that got through). --neighbour runs a process
streaming memory (numpy copies of 64 MiB) through all trials; every decision records the load average.

    python benchmarks/validate_gate.py --trials 20                       # the full validation (long)
    python benchmarks/validate_gate.py --methods ab --networks conv,mixed --levels 0,3,5,10 --trials 10
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
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks._common import start_neighbour  # noqa: E402
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

MIXED = """\
# written by benchmarks/validate_gate.py: {layers} inverted-residual blocks (MobileNetV2-style)
from torch import nn

LAYERS = {layers}


class Block(nn.Module):
    def __init__(self, c, expand=4):
        super().__init__()
        h = c * expand
        self.expand = nn.Conv2d(c, h, 1, bias=False)  # pointwise
        self.depthwise = nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False)
        self.project = nn.Conv2d(h, c, 1, bias=False)  # pointwise
        self.act = nn.ReLU6()

    def forward(self, x):
        return x + self.project(self.act(self.depthwise(self.act(self.expand(x)))))  # elementwise add


def make(c):
    return nn.Sequential(*[Block(c) for _ in range(LAYERS)])
"""
NETWORKS = {"conv": CODE, "mixed": MIXED}


def write_code(root: Path, layers: int, network: str = "conv") -> Path:
    (root / "gatepkg").mkdir(parents=True, exist_ok=True)
    (root / "gatepkg" / "__init__.py").write_text("")
    (root / "gatepkg" / "net.py").write_text(NETWORKS[network].format(layers=layers))
    return root


def layers_for(level_pct: float, base_layers: int) -> int:
    return round(base_layers * (1 + level_pct / 100))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "LATBENCH_FAKE_BACKEND": "0"}


def _latbench(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "latbench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=_env())


def _verdict(proc: subprocess.CompletedProcess) -> tuple[str, dict[str, Any]]:
    """(status of the case, JSON doc) from a gate's --json output; 'error' when it exited 2 or printed no
    verdict (an error is counted, never read as a pass or a detection)."""
    err = {"rc": proc.returncode, "stderr": proc.stderr.strip().splitlines()[-3:] if proc.stderr else []}
    try:
        doc = json.loads(proc.stdout) if proc.returncode in (0, 1) else None
        case = doc["cases"][0] if doc else None
    except (ValueError, KeyError, IndexError, TypeError):
        case = None
    if case is None:
        return "error", err
    return case["status"], {"ratio": case.get("ratio"), "ci": [case.get("ci_low"), case.get("ci_high")],
                            "passed": doc["gate"]["passed"], "note": case.get("note", "")}


def ab_decision(suite: Path, base: Path, head: Path, opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = _latbench(["ab", suite, "--base", base, "--head", head, "--allow-import", "--json", "-q",
                      "--threshold", opts.threshold, "--max-time", opts.max_time, "--threads", opts.threads], work)
    status, info = _verdict(proc)
    return {"status": status, "wall_s": time.perf_counter() - t0, **info}


def _run(suite: Path, side: Path, out: Path, opts: argparse.Namespace, seed: int) -> Path:
    before = set(out.glob("*.csv")) if out.exists() else set()
    budget = ["--max-time", opts.run_max_time] if opts.run_max_time is not None else []
    proc = _latbench(["run", suite, "--allow-import", "-q", "--results-dir", out, *budget,
                      "--threads", opts.threads, "--seed", seed, *opts.run_args.split()], side)
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
    decisions: list[dict[str, Any]] = []
    neighbour = start_neighbour() if opts.neighbour else None
    try:
        if neighbour is not None:
            time.sleep(5)
        for network in opts.networks:
            base = write_code(work / f"code-{network}-base", opts.layers, network)
            for level in opts.levels:
                layers = layers_for(level, opts.layers)
                head = write_code(work / f"code-{network}-{level:g}pct", layers, network)  # level 0: same code
                for trial in range(opts.trials):
                    tdir = work / f"trial-{network}-{level:g}-{trial}"
                    tdir.mkdir(exist_ok=True)
                    row = {"network": network, "level_pct": level, "layers": [opts.layers, layers], "trial": trial,
                           "neighbour": bool(neighbour), "load_before": round(os.getloadavg()[0], 2)}
                    got: list[dict[str, Any]] = []
                    if "ab" in opts.methods:
                        got.append({**row, "method": "ab", **ab_decision(suite, base, head, opts, tdir)})
                    if "multi" in opts.methods or "asv" in opts.methods:
                        multi, asv = multi_and_asv(suite, base, head, opts, tdir, trial)
                        got += [{**row, "method": m, **d} for m, d in (("multi", multi), ("asv", asv))
                                if m in opts.methods]
                    for d in got:
                        d["load_after"] = round(os.getloadavg()[0], 2)
                        print(f"{network} +{level:g}% trial {trial + 1}/{opts.trials} {d['method']}: {d['status']} "
                              f"ratio {d.get('ratio')} ({d['wall_s']:.1f} s, load {d['load_before']})", file=sys.stderr)
                    decisions += got
                    if not opts.keep:
                        shutil.rmtree(tdir, ignore_errors=True)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    return {"settings": {k: v for k, v in vars(opts).items() if k != "output"}, "decisions": decisions,
            "summary": summarize(decisions)}


def summarize(decisions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per network, method and level: trials, 'slower' verdicts (detections; false alarms at level 0),
    gate passes, gate failures of any kind (fail-closed: inconclusive too), the median ratio and the
    share of intervals holding 1 (A/A: the side bias), the median wall time and the load averages."""
    import math
    import statistics

    out = []
    keys = sorted({(d.get("network", "conv"), d["method"], d["level_pct"]) for d in decisions},
                  key=lambda k: (k[0], METHODS.index(k[1]), k[2]))
    for network, method, level in keys:
        ds = [d for d in decisions if d.get("network", "conv") == network and d["method"] == method
              and d["level_pct"] == level]
        ratios = [float(d["ratio"]) for d in ds if isinstance(d.get("ratio"), (int, float))
                  and math.isfinite(float(d["ratio"]))]
        cis = [d["ci"] for d in ds if isinstance(d.get("ci"), list) and None not in d["ci"]]
        loads = [d[k] for d in ds for k in ("load_before", "load_after") if isinstance(d.get(k), (int, float))]
        out.append({"network": network, "method": method, "level_pct": level, "trials": len(ds),
                    "slower": sum(d["status"] == "slower" for d in ds),
                    "passed": sum(d.get("passed") is True for d in ds),
                    "gate_failed": sum(d.get("passed") is False or d["status"] == "slower" for d in ds),
                    "statuses": {s: sum(d["status"] == s for d in ds) for s in sorted({d["status"] for d in ds})},
                    "median_ratio": statistics.median(ratios) if ratios else math.nan,
                    "ci_holds_1": sum(lo <= 1 <= hi for lo, hi in cis), "cis": len(cis),
                    "median_wall_s": statistics.median(d["wall_s"] for d in ds),
                    "load": [min(loads), max(loads)] if loads else []})
    return out


def markdown(summary: Sequence[dict[str, Any]]) -> str:
    lines = ["| network | gate | change | trials | 'slower' | passed | gate failed (any reason) | statuses | "
             "median ratio | CIs holding 1 | median wall s / decision | load |",
             "|---|---|--:|--:|--:|--:|--:|---|--:|--:|--:|---|"]
    for s in summary:
        what = "A/A (false alarms)" if s["level_pct"] == 0 else f"+{s['level_pct']:g}%"
        statuses = ", ".join(f"{k} {v}" for k, v in s.get("statuses", {}).items())
        load = "-".join(f"{x:.1f}" for x in s.get("load", []))
        lines.append(f"| {s.get('network', 'conv')} | {s['method']} | {what} | {s['trials']} | {s['slower']} | "
                     f"{s.get('passed', 0)} | {s['gate_failed']} | {statuses} | {s.get('median_ratio', float('nan')):.4f} | "
                     f"{s.get('ci_holds_1', 0)}/{s.get('cis', 0)} | {s['median_wall_s']:.1f} | {load} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="decisions per gate and level (default 20)")
    ap.add_argument("--levels", type=lambda s: [float(x) for x in s.split(",")], default=[0.0, 3.0, 5.0, 10.0],
                    help="slowdowns in percent, 0 = A/A (default 0,3,5,10)")
    ap.add_argument("--methods", type=lambda s: [m for m in s.split(",") if m], default=list(METHODS),
                    help="ab,multi,asv (default all)")
    ap.add_argument("--threshold", default="3%", help="the gates' threshold (default 3%%)")
    ap.add_argument("--asv-factor", type=float, default=1.1, help="asv-style factor (default 1.1)")
    ap.add_argument("--max-time", type=float, default=20.0, help="ab: seconds of measurement per case (default 20)")
    ap.add_argument("--run-max-time", type=float, default=None,
                    help="multi/asv: 'latbench run --max-time' (default: run's own default)")
    ap.add_argument("--run-args", default="", help="multi/asv: more 'latbench run' options, e.g. '--repeats 8'")
    ap.add_argument("--runs-per-side", type=int, default=3, help="multi-run gate: runs per side, ABAB (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--networks", type=lambda s: [n for n in s.split(",") if n], default=["conv"],
                    help="conv,mixed: the user networks (default conv)")
    ap.add_argument("--neighbour", action="store_true", help="a memory-streaming process runs meanwhile")
    ap.add_argument("--layers", type=int, default=40, help="layers (conv) or blocks (mixed) in the base module "
                                                           "(default 40: +3/+5/+10 %% are 41/42/44)")
    ap.add_argument("--channels", type=int, default=16, help="their channels (default 16)")
    ap.add_argument("--size", type=int, default=28, help="input height and width (default 28)")
    ap.add_argument("--workdir", help="keep the code and results here (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep each trial's results files")
    ap.add_argument("--output", help="write every decision and the summary as JSON here")
    opts = ap.parse_args(argv)
    bad = [m for m in opts.methods if m not in METHODS] + [n for n in opts.networks if n not in NETWORKS]
    if bad or opts.trials < 1 or opts.runs_per_side < 1:
        ap.error(f"bad --methods/--networks {bad}" if bad else "--trials and --runs-per-side must be >= 1")
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
