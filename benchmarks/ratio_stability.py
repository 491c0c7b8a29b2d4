"""Issue 8: how stable is a case's latency ratio to its baseline from one run to the next, when the
cases are interleaved versus measured one after another, at the same time budget?

For each suite, repeat `reps` times: run the suite's groups at one scale with schedule=interleaved
and with schedule=sequential (which goes first alternates by repetition), each through the library
(latbench.runner.run_group with a CpuBackend: the same code path as `latbench run`, without paying
process start and imports per run). Both schedules get --quick's policy with min and max time set
to the budget and no round cap, so every case is measured for the budget in timed seconds (interleaved
stops when the first case reaches it, so its other cases get slightly less; primes, warm-up and
model building come on top, see wall_s).

Reported per case and schedule: mean ratio to the baseline over the runs, run-to-run CoV of that
ratio (sample std / mean), the median half-width of the runs' own 95 % CIs of the ratio, and how many
of those CIs contain the mean over all runs (if the in-run CIs are honest and runs are alike, about
95 % of them should). Goal (issue 8): CoV <= 2 % for every G2/G3 case.

Run from the repository root:  python benchmarks/ratio_stability.py --out ratio_stability.json
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks._common import base_parser, cov, finish, pct  # noqa: E402
from latbench import runner  # noqa: E402
from latbench.errors import LatbenchError  # noqa: E402
from latbench.records import CaseSpec  # noqa: E402
from latbench.suite import expand, load_suite  # noqa: E402
from latbench.timing.backend import TimingBackend  # noqa: E402
from latbench.timing.cpu import CpuBackend  # noqa: E402
from latbench.timing.loop import StopPolicy  # noqa: E402

SCHEDULES = ("interleaved", "sequential")
GOAL_COV = 0.02  # issue 8: run-to-run CoV of every ratio at most 2 %
PLATFORM = "arm"  # the widths `latbench run --device cpu` uses


def suite_specs(path: str | Path, scale: int | None = None) -> list[CaseSpec]:
    """The suite's cases at one scale (default: its first, as --quick runs it)."""
    suite = load_suite(path)
    scale = scale if scale is not None else suite.model.scales[0]
    if scale not in suite.model.scales:
        raise ValueError(f"{path}: scale {scale} is not among the suite's scales {suite.model.scales}")
    return [s for s in expand(suite, PLATFORM) if s.scale == scale]


def budget_policy(budget_s: float) -> StopPolicy:
    """--quick's policy, but every case measured for exactly `budget_s` timed seconds."""
    return dataclasses.replace(runner.QUICK_POLICY, min_time_s=budget_s, max_time_s=budget_s,
                               max_rounds=10**9)  # QUICK_POLICY's 40-round cap would end runs first


def run_once(specs: list[CaseSpec], schedule: str, policy: StopPolicy, backend: TimingBackend,
             threads: int, seed: int = 0) -> tuple[list[dict[str, Any]], float]:
    """One run of the specs (all their groups); returns (result rows, wall seconds)."""
    cfg = runner.RunConfig(device="cpu", run_id=f"stability-{schedule}", schedule=schedule, policy=policy,
                           threads=threads, seed=seed)
    t0 = time.perf_counter()
    rows = runner.run_specs(specs, cfg, backend, lambda rows, samples: None)
    return rows, time.perf_counter() - t0


def stability(suite_paths: list[str], reps: int, budget_s: float, scale: int | None = None, threads: int = 1,
              backend: TimingBackend | None = None, seed: int = 0) -> dict[str, Any]:
    """Repeat every suite `reps` times per schedule; returns per-run records and per-case statistics."""
    torch.set_num_threads(threads)
    backend = backend or CpuBackend()
    policy = budget_policy(budget_s)
    runs: list[dict[str, Any]] = []
    for path in suite_paths:
        specs = suite_specs(path, scale)
        runner.count_spec(specs[0])  # pay one-time set-up (FlopCounterMode: seconds) before any run's wall_s
        for rep in range(reps):
            order = SCHEDULES if rep % 2 == 0 else SCHEDULES[::-1]
            for schedule in order:
                rows, wall = run_once(specs, schedule, policy, backend, threads, seed)
                runs.append({"suite": str(path), "rep": rep, "schedule": schedule, "wall_s": wall,
                             "rows": [_row_view(r) for r in rows]})
    cases = case_stats(runs)
    return {"runs": runs, "cases": cases, "summary": goal_summary(cases)}


def _row_view(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("experiment", "case", "scale", "baseline_case", "status", "latency_ms", "samples", "iters_per_sample",
            "ratio_to_baseline", "ratio_ci_low", "ratio_ci_high", "stop_reason", "error")
    return {k: row.get(k) for k in keep}


def case_stats(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (suite, experiment, case, scale, schedule): mean ratio, CoV, in-run CI width and coverage."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        for row in run["rows"]:
            key = (run["suite"], row["experiment"], row["case"], row["scale"], run["schedule"])
            groups.setdefault(key, []).append(row)
    out = []
    for (suite, experiment, case, scale, schedule), rows in groups.items():
        ok = [r for r in rows if r["status"] == "ok" and _finite(r.get("ratio_to_baseline"))]
        ratios = [r["ratio_to_baseline"] for r in ok]
        mean = statistics.fmean(ratios) if ratios else math.nan
        halfwidths = [(r["ratio_ci_high"] - r["ratio_ci_low"]) / 2 / r["ratio_to_baseline"] for r in ok]
        covered = sum(1 for r in ok if r["ratio_ci_low"] <= mean <= r["ratio_ci_high"])
        out.append({
            "suite": suite, "experiment": experiment, "case": case, "scale": scale, "schedule": schedule,
            "is_baseline": case == rows[0]["baseline_case"], "runs": len(rows), "runs_ok": len(ok),
            "mean_ratio": mean, "cov_pct": 100 * cov(ratios),
            "min_ratio": min(ratios, default=math.nan), "max_ratio": max(ratios, default=math.nan),
            "median_ci_halfwidth_pct": 100 * statistics.median(halfwidths) if halfwidths else math.nan,
            "ci_covers_mean": covered, "mean_latency_ms": statistics.fmean(r["latency_ms"] for r in ok) if ok else math.nan,
            "ratios": ratios,
        })
    return out


def goal_summary(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Worst non-baseline case per schedule and whether every case met the CoV goal."""
    summary = {}
    for schedule in SCHEDULES:
        rows = [c for c in cases if c["schedule"] == schedule and not c["is_baseline"]]
        if not rows:
            continue
        worst = max(rows, key=lambda c: c["cov_pct"] if math.isfinite(c["cov_pct"]) else math.inf)
        met = all(math.isfinite(c["cov_pct"]) and c["cov_pct"] <= 100 * GOAL_COV for c in rows)
        summary[schedule] = {"worst_case": f"{worst['experiment']}/{worst['case']}/x{worst['scale']}",
                             "worst_cov_pct": worst["cov_pct"], "goal_met": met,
                             "cases_over_goal": sum(1 for c in rows if not (c["cov_pct"] <= 100 * GOAL_COV))}
    return summary



def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def markdown(result: dict[str, Any], budget_s: float) -> str:
    by_case: dict[tuple, dict[str, dict[str, Any]]] = {}
    for c in result["cases"]:
        by_case.setdefault((c["experiment"], c["case"], c["scale"]), {})[c["schedule"]] = c
    head = "| case | " + " | ".join(f"{s} ratio | {s} CoV | {s} CI +- | {s} CI covers" for s in SCHEDULES) + " |"
    lines = [f"Ratio to baseline over runs, {budget_s} s timed per case per run; CoV = run-to-run std/mean; "
             "CI +- = median half-width of the runs' own 95 % CIs; covers = runs whose CI holds the mean.", "",
             head, "|---|" + "---:|" * (4 * len(SCHEDULES))]
    for (experiment, case, scale), per in by_case.items():
        cells = []
        for s in SCHEDULES:
            c = per.get(s)
            if c is None:
                cells += ["-"] * 4
            elif c["is_baseline"]:
                cells += ["baseline", "", "", ""]
            else:
                cells += [f"{c['mean_ratio']:.4f}", pct(c["cov_pct"]), pct(c["median_ci_halfwidth_pct"]),
                          f"{c['ci_covers_mean']}/{c['runs_ok']}"]
        lines.append(f"| {experiment}/{case}/x{scale} | " + " | ".join(cells) + " |")
    lines.append("")
    walls = {s: [r["wall_s"] for r in result["runs"] if r["schedule"] == s] for s in SCHEDULES}
    for s, v in result["summary"].items():
        lines.append(f"- {s}: worst {v['worst_case']} CoV {pct(v['worst_cov_pct'])}; goal CoV <= "
                     f"{100 * GOAL_COV:.0f} % {'met' if v['goal_met'] else 'NOT met'} "
                     f"({v['cases_over_goal']} case(s) over); mean wall {statistics.fmean(walls[s]):.2f} s per suite run")
    return "\n".join(lines)




def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__, 5, "timed seconds per case per run", "runs per schedule per suite")
    p.add_argument("--suites", default="suites/g2.yaml,suites/g3.yaml", help="comma-separated suite files")
    p.add_argument("--scale", type=int, default=None, help="which scale to run (default: each suite's first, x1)")
    a = p.parse_args(argv)
    paths = [s.strip() for s in a.suites.split(",") if s.strip()]
    if a.reps < 1 or a.budget <= 0 or not paths:
        p.error("--reps >= 1, --budget > 0 and at least one suite are needed")
    for path in paths:  # bad suites or scales are usage errors, found before anything is measured
        try:
            suite_specs(path, a.scale)
        except (ValueError, LatbenchError) as exc:
            p.error(str(exc))
    started, load_before = time.time(), os.getloadavg()
    print(f"{len(paths)} suite(s) x {a.reps} reps x {len(SCHEDULES)} schedules, {a.budget} s per case ...",
          file=sys.stderr)
    result = stability(paths, a.reps, a.budget, a.scale, a.threads)
    print(markdown(result, a.budget))
    report = {"benchmark": "ratio_stability", "suites": paths, "reps": a.reps, "budget_s": a.budget,
              "scale": a.scale, "threads": a.threads, "platform_widths": PLATFORM, "goal_cov": GOAL_COV,
              "policy": dataclasses.asdict(budget_policy(a.budget)), **result}
    finish(report, a.out, started, load_before)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
