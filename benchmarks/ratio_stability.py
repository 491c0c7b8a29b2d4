"""Issues 8 and 16: how well does a ratio to the baseline hold from one run to the next, and do the
intervals that rows carry cover what users read them as?

Default (issue 16, `--processes` mode): each repetition of each suite is a fresh process
(`python benchmarks/ratio_stability.py --worker SUITE ...`: a new interpreter, fresh allocations),
repetitions of the suites interleaved in time (rep 0 of every suite, then rep 1, ...). A worker runs
the suite's x1 groups through the library (latbench.run.pipeline, the code path of `latbench run`)
with the default CPU policy (or --quick's with `--quick`; `--budget` caps the timed seconds per case)
and prints its per-round samples. The parent computes, per case and run, the paired ratio with two
interval methods from the same samples:
  order      the order-statistic CI of the median ratio as if rounds were independent (before issue 16)
  order-ess  the same widened by the effective sample size of the autocorrelated rounds (rows now)
and pools the runs across processes (stats.pool_processes: random-effects t interval).
The new method, processes-t (`latbench run --repeats N`, N = --repeats, default 3): every set of N runs
(separate processes) pooled as `run --repeats N` pools its workers; coverage: sets whose interval holds
the mean of the runs outside the set (all combinations, at most 200: a resampling estimate).

Printed (stdout, markdown): one row per non-baseline case: mean ratio over runs, run-to-run CoV
(sample std / mean), per method the median CI half-width of the runs' own intervals and COVERAGE
(runs whose interval holds the mean of the OTHER runs, k/n), the pooled ratio with its half-width and
"UNSTABLE" where processes disagree by more than their own intervals, and the runs' stop reasons.
Then per method: coverage over all ratios, worst case, median half-width, against the issue-16 goals
(coverage >= 90 % for every ratio, median half-width <= 1 %, CoV <= 1 %), and mean wall seconds per
worker process (start, imports, building and measuring all of a suite's x1 cases). `--out` writes
everything (per-run ratios and intervals included) as JSON; stderr gets the load average.

`--schedules` (issue 8, the former default): interleaved versus sequential schedules in one process,
`reps` runs each, every case measured for exactly `--budget` timed seconds (QUICK policy otherwise);
reported: mean ratio, CoV, median in-run CI half-width and how many in-run CIs hold the mean.

Run from the repository root:
  python benchmarks/ratio_stability.py --reps 5 --out ratio_stability.json           (G1-G4, x1)
  python benchmarks/ratio_stability.py --reps 3 --quick --suites suites/g2.yaml         (a minute)
  python benchmarks/ratio_stability.py --schedules --suites suites/g2.yaml,suites/g3.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks._common import base_parser, cov, finish, json_safe, pct  # noqa: E402
from latbench.devices import CpuDevice  # noqa: E402
from latbench.run import options, pipeline  # noqa: E402
from latbench.errors import LatbenchError  # noqa: E402
from latbench.records import CaseSpec, Ratio  # noqa: E402
from latbench.stats import (median_ci, median_ci_dependent, per_round_ratios, pool_processes,  # noqa: E402
                            relative_halfwidth)
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
    return dataclasses.replace(options.QUICK_POLICY, min_time_s=budget_s, max_time_s=budget_s,
                               max_rounds=10**9)  # QUICK_POLICY's 40-round cap would end runs first


def run_once(specs: list[CaseSpec], schedule: str, policy: StopPolicy, backend: TimingBackend,
             threads: int, seed: int = 0) -> tuple[list[dict[str, Any]], float]:
    """One run of the specs (all their groups); returns (result rows, wall seconds)."""
    cfg = pipeline.RunConfig(device=CpuDevice(backend=backend, threads=threads), run_id=f"stability-{schedule}",
                             schedule=schedule, policy=policy, seed=seed)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    pipeline.run_in_process(pipeline.groups_of(specs), cfg, lambda r, s: rows.extend(x.to_dict() for x in r))
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
        pipeline.count_spec(specs[0])  # pay one-time set-up (FlopCounterMode: seconds) before any run's wall_s
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




# --- issue 16: separate processes, old vs new interval methods, pooling ---------------------------

GOAL_COVERAGE = 0.90  # issue 16: every ratio's interval holds the other runs' mean in >= 90 % of runs
GOAL_HALFWIDTH = 0.01  # median CI half-width <= 1 %
GOAL_COV_16 = 0.01  # run-to-run CoV <= 1 % (quiet machine)
METHODS = {"order": median_ci, "order-ess": median_ci_dependent}
DEFAULT_SUITES = "suites/g1.yaml,suites/g2.yaml,suites/g3.yaml,suites/g4.yaml"


def worker_policy(quick: bool, max_time_s: float | None) -> StopPolicy:
    """The policy a worker measures with: `latbench run`'s default (or --quick's), optionally capped."""
    base = options.QUICK_POLICY if quick else options.CPU_POLICY
    if max_time_s is None:
        return base
    return dataclasses.replace(base, max_time_s=max_time_s, min_time_s=min(base.min_time_s, max_time_s))


def worker(path: str, policy: StopPolicy, threads: int = 1, seed: int = 0, scale: int | None = None,
           backend: TimingBackend | None = None) -> dict[str, Any]:
    """One run of a suite's cases at one scale in this process: per case its rows' stop reason and
    per-round samples (seconds), for the parent to pair and judge. Wall time covers building too."""
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    specs = suite_specs(path, scale)
    cfg = pipeline.RunConfig(device=CpuDevice(backend=backend or CpuBackend(), threads=threads),
                             run_id=f"stability-{os.getpid()}", policy=policy, seed=seed)
    samples: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    pipeline.run_in_process(pipeline.groups_of(specs), cfg,
                            lambda r, s: (rows.extend(x.to_dict() for x in r), samples.extend(s)))
    cases: dict[str, Any] = {}
    for row in rows:
        key = f"{row['experiment']}/{row['case']}/x{row['scale']}"
        mine = [s for s in samples if (s["experiment"], s["case"], s["scale"]) ==
                (row["experiment"], row["case"], row["scale"])]
        cases[key] = {"experiment": row["experiment"], "case": row["case"], "scale": row["scale"],
                      "baseline": f"{row['experiment']}/{row['baseline_case']}/x{row['scale']}",
                      "status": row["status"], "stop_reason": row.get("stop_reason"), "error": row.get("error"),
                      "rounds": [s["round"] for s in mine], "samples_s": [s["latency_ms"] * 1e-3 for s in mine]}
    return {"suite": path, "pid": os.getpid(), "wall_s": time.perf_counter() - t0, "cases": cases}


def spawn_worker(path: str, quick: bool, max_time_s: float | None, threads: int, seed: int,
                 scale: int | None) -> dict[str, Any]:
    """worker() in a fresh interpreter; wall_s there is the whole process, start and imports included."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", path, "--threads", str(threads),
           "--seed", str(seed)]
    cmd += ["--quick"] if quick else []
    cmd += ["--max-time", str(max_time_s)] if max_time_s is not None else []
    cmd += ["--scale", str(scale)] if scale is not None else []
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"worker for {path} failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t0
    return result


def processes(suite_paths: list[str], reps: int, quick: bool = False, max_time_s: float | None = None,
              threads: int = 1, scale: int | None = None, spawn: bool = True, repeats: int = 3) -> dict[str, Any]:
    """`reps` runs of every suite, each in its own process (spawn=False: in this one, for tests),
    suites interleaved in time; returns the runs and per-case statistics for every interval method."""
    runs = []
    for rep in range(reps):
        for path in suite_paths:
            if spawn:
                run = spawn_worker(path, quick, max_time_s, threads, rep, scale)
            else:
                run = worker(path, worker_policy(quick, max_time_s), threads, rep, scale)
            runs.append({**run, "rep": rep})
    cases = method_stats(runs, repeats)
    return {"runs": runs, "cases": cases, "summary": method_summary(cases, runs)}


def run_ratios(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per non-baseline case of one run: the paired ratio and its interval under every method."""
    out = {}
    for key, c in run["cases"].items():
        base = run["cases"].get(c["baseline"])
        if key == c["baseline"] or base is None or c["status"] != "ok" or base["status"] != "ok":
            continue
        r = per_round_ratios(c["samples_s"], c["rounds"], base["samples_s"], base["rounds"])
        if not r:
            continue
        out[key] = {"ratio": statistics.median(r), "n": len(r), "stop_reason": c["stop_reason"],
                    **{m: fn(r) for m, fn in METHODS.items()}}
    return out


def method_stats(runs: list[dict[str, Any]], repeats: int = 3) -> list[dict[str, Any]]:
    """Per (suite, case): mean ratio over runs, CoV, and per method the median half-width and the
    coverage (runs whose interval holds the mean of the other runs); plus the pooled estimate."""
    per_case: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        for key, r in run_ratios(run).items():
            per_case.setdefault((run["suite"], key), []).append(r)
    out = []
    for (suite, key), rs in per_case.items():
        ratios = [r["ratio"] for r in rs]
        row: dict[str, Any] = {"suite": suite, "case": key, "runs": len(rs), "ratios": ratios,
                               "mean_ratio": statistics.fmean(ratios), "cov_pct": 100 * cov(ratios),
                               "stop_reasons": sorted({r["stop_reason"] for r in rs})}
        for m in METHODS:
            halves = [relative_halfwidth(*r[m], r["ratio"]) for r in rs]
            row[f"{m}_halfwidth_pct"] = 100 * statistics.median(halves)
            covered = [_holds(r[m], [o["ratio"] for j, o in enumerate(rs) if j != i]) for i, r in enumerate(rs)]
            judged = [c for c in covered if c is not None]
            row[f"{m}_covered"], row[f"{m}_judged"] = sum(judged), len(judged)
            row[f"{m}_intervals"] = [list(r[m]) for r in rs]
        pooled = pool_processes([Ratio(r["ratio"], *r["order-ess"], r["n"], interval="order-ess") for r in rs])
        row.update(pooled=dataclasses.asdict(pooled),
                   pooled_halfwidth_pct=100 * relative_halfwidth(pooled.ci_low, pooled.ci_high, pooled.value))
        row.update(repeats_stats(rs, repeats))
        out.append(row)
    return out


NEW = "processes-t"  # `latbench run --repeats N`: N processes pooled (stats.pool_processes)
MAX_COMBINATIONS = 200


def repeats_stats(rs: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    """The --repeats method on the runs of one case: every set of `repeats` runs (separate processes) pooled
    as one `latbench run --repeats N` would pool them; per set, does its interval hold the mean of the runs
    outside it, how wide is it, is it marked unstable. Sets: all combinations of the runs (at most
    MAX_COMBINATIONS, in order), so coverage is judged on overlapping sets, a resampling estimate."""
    import itertools

    key = NEW
    if repeats < 2 or len(rs) <= repeats:
        return {f"{key}_covered": 0, f"{key}_judged": 0, f"{key}_halfwidth_pct": math.nan, f"{key}_unstable": 0}
    covered = judged = unstable = 0
    halves = []
    for combo in itertools.islice(itertools.combinations(range(len(rs)), repeats), MAX_COMBINATIONS):
        pooled = pool_processes([Ratio(rs[i]["ratio"], *rs[i]["order-ess"], rs[i]["n"], interval="order-ess")
                                 for i in combo])
        others = [rs[j]["ratio"] for j in range(len(rs)) if j not in combo]
        judged += 1
        covered += bool(pooled.ci_low <= statistics.fmean(others) <= pooled.ci_high)
        unstable += bool(pooled.unstable)
        halves.append(relative_halfwidth(pooled.ci_low, pooled.ci_high, pooled.value))
    return {f"{key}_covered": covered, f"{key}_judged": judged, f"{key}_unstable": unstable,
            f"{key}_halfwidth_pct": 100 * statistics.median(halves)}


def _holds(interval: tuple[float, float], others: list[float]) -> bool | None:
    """Does the interval hold the mean of the other runs' ratios? None with no other run."""
    if not others:
        return None
    m = statistics.fmean(others)
    return interval[0] <= m <= interval[1]


def method_summary(cases: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method: total coverage, the worst case, median half-width, and the issue-16 goals."""
    out: dict[str, Any] = {}
    for m in (*METHODS, NEW):
        judged = [c for c in cases if c[f"{m}_judged"]]
        shares = [(c[f"{m}_covered"] / c[f"{m}_judged"], c["case"]) for c in judged]
        worst = min(shares, default=(math.nan, None))
        halves = [c[f"{m}_halfwidth_pct"] for c in cases]
        out[m] = {"coverage": sum(c[f"{m}_covered"] for c in judged) / max(1, sum(c[f"{m}_judged"] for c in judged)),
                  "worst_coverage": worst[0], "worst_case": worst[1],
                  "median_halfwidth_pct": statistics.median(halves) if halves else math.nan,
                  "coverage_goal_met": bool(shares) and all(s >= GOAL_COVERAGE for s, _ in shares),
                  "halfwidth_goal_met": bool(halves) and statistics.median(halves) <= 100 * GOAL_HALFWIDTH}
    covs = [c["cov_pct"] for c in cases if _finite(c["cov_pct"])]
    out["cov"] = {"worst_pct": max(covs, default=math.nan), "goal_met": bool(covs) and max(covs) <= 100 * GOAL_COV_16,
                  "unstable": [c["case"] for c in cases if c["pooled"]["unstable"]]}
    walls: dict[str, list[float]] = {}
    for run in runs:
        walls.setdefault(run["suite"], []).append(run["wall_s"])
    out["wall_s"] = {suite: statistics.fmean(w) for suite, w in walls.items()}
    return out


def processes_markdown(result: dict[str, Any], settings: str) -> str:
    m1, m2 = METHODS
    lines = [f"Ratios to the baseline over runs in separate processes ({settings}). CoV = run-to-run std/mean; "
             "CI +- = median half-width of the runs' own 95 % intervals; covers = runs whose interval holds the "
             "mean of the other runs; pooled = all runs pooled (random-effects t interval).", "",
             f"| case | runs | mean ratio | CoV | {m1} CI +- | {m1} covers | {m2} CI +- | {m2} covers | "
             f"{NEW} CI +- | {NEW} covers | {NEW} unstable | pooled | stopped |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in result["cases"]:
        p = c["pooled"]
        pooled = (f"{p['value']:.4f} +-{pct(c['pooled_halfwidth_pct'])}" if _finite(p["value"]) else "n/a")
        pooled += " UNSTABLE" if p["unstable"] else ""
        lines.append(f"| {c['case']} | {c['runs']} | {c['mean_ratio']:.4f} | {pct(c['cov_pct'])} | "
                     f"{pct(c[f'{m1}_halfwidth_pct'])} | {c[f'{m1}_covered']}/{c[f'{m1}_judged']} | "
                     f"{pct(c[f'{m2}_halfwidth_pct'])} | {c[f'{m2}_covered']}/{c[f'{m2}_judged']} | "
                     f"{pct(c[f'{NEW}_halfwidth_pct'])} | {c[f'{NEW}_covered']}/{c[f'{NEW}_judged']} | "
                     f"{c[f'{NEW}_unstable']}/{c[f'{NEW}_judged']} | {pooled} | "
                     f"{','.join(map(str, c['stop_reasons']))} |")
    lines.append("")
    s = result["summary"]
    for m in (*METHODS, NEW):
        v = s[m]
        lines.append(f"- {m}: coverage {pct(100 * v['coverage'])} of all runs x ratios; worst {v['worst_case']} "
                     f"{pct(100 * v['worst_coverage'])} (goal >= {100 * GOAL_COVERAGE:.0f} % for every ratio: "
                     f"{'met' if v['coverage_goal_met'] else 'NOT met'}); median CI +- "
                     f"{pct(v['median_halfwidth_pct'])} (goal <= {100 * GOAL_HALFWIDTH:.0f} %: "
                     f"{'met' if v['halfwidth_goal_met'] else 'NOT met'})")
    lines.append(f"- run-to-run CoV: worst {pct(s['cov']['worst_pct'])} (goal <= {100 * GOAL_COV_16:.0f} % on a "
                 f"quiet machine: {'met' if s['cov']['goal_met'] else 'NOT met'}); unstable across processes: "
                 f"{', '.join(s['cov']['unstable']) or 'none'}")
    lines.append("- wall per worker process (start, imports, build, measure): "
                 + ", ".join(f"{Path(k).stem} {v:.1f} s" for k, v in s["wall_s"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__, 5, "--schedules: timed seconds per case per run", "runs per suite (per schedule)")
    p.add_argument("--suites", default=None, help=f"comma-separated suite files ({DEFAULT_SUITES}; "
                   "--schedules: suites/g2.yaml,suites/g3.yaml)")
    p.add_argument("--scale", type=int, default=None, help="which scale to run (default: each suite's first, x1)")
    p.add_argument("--schedules", action="store_true", help="issue 8's comparison: interleaved vs sequential")
    p.add_argument("--quick", action="store_true", help="workers use --quick's policy")
    p.add_argument("--max-time", type=float, default=None, help="cap on timed seconds per case in a worker "
                   "(default: the policy's)")
    p.add_argument("--repeats", type=int, default=3, help=f"processes pooled per set for the {NEW} method "
                   "(latbench run --repeats); judged on every set of that many runs")
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # one run of one suite, JSON on stdout
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(json_safe(worker(a.worker, worker_policy(a.quick, a.max_time), a.threads, a.seed,
                                          a.scale))))
        return 0
    paths = [s.strip() for s in (a.suites or ("suites/g2.yaml,suites/g3.yaml" if a.schedules else DEFAULT_SUITES))
             .split(",") if s.strip()]
    if a.reps < 1 or a.budget <= 0 or not paths or (a.max_time is not None and a.max_time <= 0):
        p.error("--reps >= 1, --budget > 0, --max-time > 0 and at least one suite are needed")
    for path in paths:  # bad suites or scales are usage errors, found before anything is measured
        try:
            suite_specs(path, a.scale)
        except (ValueError, LatbenchError) as exc:
            p.error(str(exc))
    started, load_before = time.time(), os.getloadavg()
    if not a.schedules:
        settings = (f"{a.reps} runs per suite, {'--quick' if a.quick else 'default'} policy"
                    + (f", --max-time {a.max_time}" if a.max_time is not None else ""))
        print(f"{len(paths)} suite(s) x {a.reps} processes each ...", file=sys.stderr)
        result = processes(paths, a.reps, a.quick, a.max_time, a.threads, a.scale, repeats=a.repeats)
        print(processes_markdown(result, settings))
        report = {"benchmark": "ratio_stability", "mode": "processes", "suites": paths, "reps": a.reps,
                  "quick": a.quick, "max_time_s": a.max_time, "scale": a.scale, "threads": a.threads,
                  "platform_widths": PLATFORM, "methods": [*METHODS, NEW], "repeats": a.repeats,
                  "goals": {"coverage": GOAL_COVERAGE, "halfwidth": GOAL_HALFWIDTH, "cov": GOAL_COV_16},
                  "policy": dataclasses.asdict(worker_policy(a.quick, a.max_time)), **result}
        finish(report, a.out, started, load_before)
        return 0
    print(f"{len(paths)} suite(s) x {a.reps} reps x {len(SCHEDULES)} schedules, {a.budget} s per case ...",
          file=sys.stderr)
    result = stability(paths, a.reps, a.budget, a.scale, a.threads)
    print(markdown(result, a.budget))
    report = {"benchmark": "ratio_stability", "mode": "schedules", "suites": paths, "reps": a.reps,
              "budget_s": a.budget, "scale": a.scale, "threads": a.threads, "platform_widths": PLATFORM,
              "goal_cov": GOAL_COV, "policy": dataclasses.asdict(budget_policy(a.budget)), **result}
    finish(report, a.out, started, load_before)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
