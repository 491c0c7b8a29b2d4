"""Issue 21, item 1: do the intervals of a DEFAULT `latbench run` cover run-to-run variation, how wide
are they, and what does the default cost in wall time? Old default (one process) against the new one
(several worker processes per group, pooled), measured alike and interleaved in time.

Each repetition runs `latbench run SUITES --device cpu --repeats N -q` once per configuration N (the
order alternates between repetitions, so slow drift of the machine lands on every configuration), in
a fresh process as a user runs it, and keeps its results files. Then, per configuration and per ratio
(every non-baseline case x scale of every suite):

  coverage    runs whose ratio CI holds the mean ratio of the OTHER runs of the same configuration
  half-width  the median relative half-width of the runs' ratio CIs
  CoV         run-to-run sample sd / mean of the ratio

and the wall time of each run (whole command). `--neighbour` runs a noisy neighbour while measuring: a
process streaming memory (numpy copies of 64 MiB, one core), as another tenant would. The load average
is recorded before and after every run.

    python benchmarks/default_intervals.py --reps 5 --configs 1,8 --out docs/benchmarks/default_intervals.json
    python benchmarks/default_intervals.py --reps 5 --configs 1,8 --neighbour --out ...-neighbour.json
    python benchmarks/default_intervals.py --reps 2 --configs 1,3 --quick --suites g2          (a minute)

Prints a markdown summary on stdout (progress on stderr); --out writes every run and ratio as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
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


def load() -> float:
    return os.getloadavg()[0]


def run_once(suites: Sequence[str], repeats: int, out: Path, quick: bool, extra: Sequence[str]) -> dict[str, Any]:
    """One `latbench run` of the suites with --repeats N into `out`; its wall time and loads."""
    cmd = [sys.executable, "-m", "latbench", "run", *suites, "--device", "cpu", "--repeats", str(repeats), "-q",
           "--results-dir", str(out), "--format", "csv", *(["--quick"] if quick else []), *extra]
    load0, t0 = load(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "LATBENCH_FAKE_BACKEND": "0"})
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
    return {"repeats": repeats, "dir": str(out), "wall_s": wall, "load_before": load0, "load_after": load(),
            "command": " ".join(cmd[1:])}


def ratios_of(run_dir: Path) -> dict[str, dict[str, float]]:
    """{suite/case/xscale: {ratio, lo, hi, interval}} of every non-baseline ok row of the run's files."""
    import pandas as pd

    out: dict[str, dict[str, float]] = {}
    for f in sorted(run_dir.glob("*.csv")):
        if f.name.endswith("-samples.csv"):
            continue
        for _, r in pd.read_csv(f).iterrows():
            if r["case"] == r["baseline_case"] or r["status"] != "ok":
                continue
            out[f"{r['suite']}/{r['case']}/x{r['scale']}"] = {
                "ratio": float(r["ratio_to_baseline"]), "lo": float(r["ratio_ci_low"]), "hi": float(r["ratio_ci_high"]),
                "interval": str(r.get("ratio_interval", "")), "stop_reason": str(r.get("stop_reason", ""))}
    return out


def repooled(run_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """{method: ratios_of-like dict} re-made from a multi-process run's samples (each sample's `process`):
    per ratio and process the paired ratio and its order-ess interval, pooled by
      processes-t      the geometric mean of the process medians with a t interval on N - 1 df, never
                       narrower than the processes' own intervals allow (stats.pool_processes below 6)
      processes-order  the median of the process medians with their order-statistic interval, floored by
                       the interval of all rounds pooled (stats.pool_processes from 6 processes on)
    so that the two are compared on the same measurements."""
    import math

    import numpy as np
    import pandas as pd
    from scipy import stats as st

    from latbench.records import Ratio
    from latbench.stats import median_ci_dependent, paired_ratio, per_round_ratios, pool_processes

    out: dict[str, dict[str, dict[str, float]]] = {"processes-t": {}, "processes-order": {}}
    for f in sorted(run_dir.glob("*-samples.csv")):
        s = pd.read_csv(f)
        rows = pd.read_csv(f.with_name(f.name.replace("-samples.csv", ".csv")))
        for _, r in rows.iterrows():
            if r["case"] == r["baseline_case"] or r["status"] != "ok":
                continue
            g = s[s["scale"] == r["scale"]]
            per = []
            for _, gp in g.groupby("process"):
                a, b = gp[gp["case"] == r["case"]], gp[gp["case"] == r["baseline_case"]]
                q = per_round_ratios(list(a["latency_ms"]), list(a["round"]), list(b["latency_ms"]), list(b["round"]))
                if q:
                    per.append(Ratio(float(np.median(q)), *median_ci_dependent(q), len(q)))
            if len(per) < 2:
                continue
            key = f"{r['suite']}/{r['case']}/x{r['scale']}"
            a, b = g[g["case"] == r["case"]], g[g["case"] == r["baseline_case"]]
            every = paired_ratio(list(a["latency_ms"]), list(a["round"]), list(b["latency_ms"]), list(b["round"]))
            p = pool_processes(per, pooled=(every.ci_low, every.ci_high))
            out["processes-order"][key] = {"ratio": p.value, "lo": p.ci_low, "hi": p.ci_high, "interval": p.interval}
            y, k = np.log([x.value for x in per]), len(per)
            half = float(st.t.ppf(0.975, k - 1)) * float(y.std(ddof=1)) / math.sqrt(k)
            within = [math.log1p((x.ci_high - x.ci_low) / 2 / x.value) / 1.959964 for x in per]
            half = max(half, 1.959964 * math.sqrt(sum(w * w for w in within)) / k)
            c = float(y.mean())
            out["processes-t"][key] = {"ratio": math.exp(c), "lo": math.exp(c - half), "hi": math.exp(c + half),
                                       "interval": "processes-t"}
    return out


def analyse(dirs: Sequence[Path], repeats: int) -> list[dict[str, Any]]:
    """The runs in `dirs` (one run's files each) re-pooled by every method of repooled(), as runs for
    summarize() (repeats: the processes they were measured with; the method goes into the label)."""
    runs = []
    for d in dirs:
        for method, ratios in repooled(Path(d)).items():
            runs.append({"repeats": f"{repeats} ({method})", "wall_s": math.nan, "load_before": math.nan,
                         "load_after": math.nan, "ratios": ratios})
    return runs


def all_cover_if_exact(runs: int, level: float = 0.95, draws: int = 100_000) -> float:
    """The chance that every one of `runs` runs' intervals holds the mean of the others when each is an exact
    `level` interval for its own run's mean (normal runs, known spread): the ceiling of "ratios covered in every
    run" for a calibrated interval (4 runs: 0.72, each run alone 0.910; 3 runs: 0.76, each 0.891). Seeded."""
    rng = random.Random(0)
    z = statistics.NormalDist().inv_cdf(0.5 + level / 2)
    hits = 0
    for _ in range(draws):
        xs = [rng.gauss(0.0, 1.0) for _ in range(runs)]
        total = sum(xs)
        hits += all(abs(x - (total - x) / (runs - 1)) <= z for x in xs)
    return hits / draws


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per configuration: per-ratio coverage, half-width and CoV; the totals."""
    by_config: dict[Any, list[dict[str, Any]]] = {}
    for r in runs:
        by_config.setdefault(r["repeats"], []).append(r)
    out: dict[str, Any] = {}
    for n, rs in sorted(by_config.items(), key=lambda kv: str(kv[0])):
        keys = sorted({k for r in rs for k in r["ratios"]})
        per_ratio = []
        for k in keys:
            vals = [r["ratios"][k] for r in rs if k in r["ratios"]]
            ratios = [v["ratio"] for v in vals]
            covered = judged = 0
            for i, v in enumerate(vals):
                others = [o for j, o in enumerate(ratios) if j != i]
                if not others:
                    continue
                judged += 1
                covered += v["lo"] <= statistics.fmean(others) <= v["hi"]
            halves = [(v["hi"] - v["lo"]) / 2 / v["ratio"] for v in vals if v["ratio"] > 0]
            per_ratio.append({"ratio": k, "runs": len(vals), "mean": statistics.fmean(ratios),
                              "cov_pct": 100 * statistics.stdev(ratios) / statistics.fmean(ratios) if len(ratios) > 1
                              else math.nan, "covered": covered, "judged": judged,
                              "median_halfwidth_pct": 100 * statistics.median(halves) if halves else math.nan,
                              "interval": sorted({v["interval"] for v in vals})})
        judged = sum(p["judged"] for p in per_ratio)
        rate = sum(p["covered"] for p in per_ratio) / judged if judged else math.nan
        runs_judged = max((p["judged"] for p in per_ratio), default=0)
        walls = [r["wall_s"] for r in rs]
        out[str(n)] = {
            "repeats": n, "runs": len(rs), "ratios": len(per_ratio),
            "coverage": sum(p["covered"] for p in per_ratio) / judged if judged else math.nan,
            "ratios_all_covered": sum(p["covered"] == p["judged"] for p in per_ratio),
            # Were the misses spread as one common coverage rate spreads them, or piled on a few ratios?
            "ratios_missed": sum(p["covered"] < p["judged"] for p in per_ratio),
            "ratios_missed_if_one_rate": sum(1 - rate ** p["judged"] for p in per_ratio),
            "most_misses_of_a_ratio": max((p["judged"] - p["covered"] for p in per_ratio), default=0),
            "ratios_all_covered_if_exact95": len(per_ratio) * all_cover_if_exact(runs_judged) if runs_judged > 1
            else math.nan,
            "ratios_at_least_90pct": sum(p["judged"] and p["covered"] / p["judged"] >= 0.9 for p in per_ratio),
            "worst": min(per_ratio, key=lambda p: p["covered"] / p["judged"] if p["judged"] else 1.0)["ratio"]
            if per_ratio else None,
            "median_halfwidth_pct": statistics.median(p["median_halfwidth_pct"] for p in per_ratio) if per_ratio
            else math.nan,
            "median_cov_pct": statistics.median(p["cov_pct"] for p in per_ratio if math.isfinite(p["cov_pct"]))
            if per_ratio else math.nan,
            "wall_s_median": statistics.median(walls) if walls else math.nan, "wall_s": walls,
            "load": [round(r["load_before"], 2) for r in rs] + [round(rs[-1]["load_after"], 2)],
            "per_ratio": per_ratio}
    return out


def markdown(summary: dict[str, Any]) -> str:
    lines = ["| processes per group | runs | ratios | coverage (all ratios) | ratios covered in every run "
             "(an exact 95 % interval: expected) | ratios missed at least once (one common rate: expected) | "
             "most misses of one ratio | worst ratio | median CI half-width | median run-to-run CoV | median wall s | "
             "load averages |", "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for s in summary.values():
        lines.append(f"| {s['repeats']} | {s['runs']} | {s['ratios']} | {100 * s['coverage']:.1f}% | "
                     f"{s['ratios_all_covered']}/{s['ratios']} ({s['ratios_all_covered_if_exact95']:.1f}) | "
                     f"{s['ratios_missed']} ({s['ratios_missed_if_one_rate']:.1f}) | {s['most_misses_of_a_ratio']} | "
                     f"{s['worst']} | {s['median_halfwidth_pct']:.2f}% | {s['median_cov_pct']:.2f}% | "
                     f"{s['wall_s_median']:.1f} | {', '.join(map(str, s['load']))} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="runs per configuration (default 5)")
    ap.add_argument("--configs", default="1,8", help="--repeats values to compare (default 1,8)")
    ap.add_argument("--suites", default="g1,g2,g3,g4", help="suites, comma-separated (default g1,g2,g3,g4)")
    ap.add_argument("--quick", action="store_true", help="run with --quick")
    ap.add_argument("--neighbour", action="store_true", help="a memory-streaming process runs meanwhile")
    ap.add_argument("--extra", default="", help="more 'latbench run' options, e.g. '--max-time 2'")
    ap.add_argument("--workdir", help="keep the results files here (default: a temporary directory)")
    ap.add_argument("--out", help="write every run and the summary as JSON here")
    ap.add_argument("--analyse", nargs="+", metavar="RUN_DIR",
                    help="measure nothing: re-pool these multi-process runs' samples by every method "
                         "(repooled) and print their coverage and width")
    ap.add_argument("--summarise", metavar="JSON", help="measure nothing: summarise the runs of an --out file again")
    ap.add_argument("--analyse-repeats", type=int, default=6, help="the processes the --analyse runs used")
    opts = ap.parse_args(argv)
    if opts.analyse:
        sys.stdout.write(markdown(summarize(analyse([Path(d) for d in opts.analyse], opts.analyse_repeats))))
        return 0
    if opts.summarise:
        sys.stdout.write(markdown(summarize(json.loads(Path(opts.summarise).read_text())["runs"])))
        return 0
    configs = [int(c) for c in opts.configs.split(",")]
    suites = [s for s in opts.suites.split(",") if s]
    work = Path(opts.workdir or tempfile.mkdtemp(prefix="default-intervals-"))
    neighbour = start_neighbour() if opts.neighbour else None
    runs = []
    try:
        if neighbour is not None:
            time.sleep(5)
        for rep in range(opts.reps):
            for n in (configs if rep % 2 == 0 else configs[::-1]):
                run = run_once(suites, n, work / f"repeats-{n}" / f"rep-{rep}", opts.quick, opts.extra.split())
                run["ratios"] = ratios_of(Path(run["dir"]))
                runs.append(run)
                print(f"rep {rep + 1}/{opts.reps} --repeats {n}: {run['wall_s']:.1f} s, load "
                      f"{run['load_before']:.2f}->{run['load_after']:.2f}", file=sys.stderr)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    summary = summarize(runs)
    sys.stdout.write(markdown(summary))
    if opts.out:
        doc = {"settings": vars(opts), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "runs": runs, "summary": summary}
        Path(opts.out).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
