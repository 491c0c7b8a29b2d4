"""Issue 21: break the logic that decides (the gate's one rule, the run-noise floor, the settings that
must agree, the fail-closed gate, the A/B build orders, the default processes) on purpose, one edit at a
time, and count the edits the tests catch.

Each mutant is applied to a COPY of the working tree (never to the files other people are running), and
the tests named with it are run there with this interpreter (`python -m pytest -x -q`, the copy first
on PYTHONPATH). A mutant is caught when the tests fail; an edit whose text is not found is an error of
this script (the code moved: update the mutant).

    python benchmarks/mutate_gate_rule.py                 # every mutant; a table on stdout
    python benchmarks/mutate_gate_rule.py --only 3,4      # some of them
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULE_TESTS = ["tests/test_verdict.py", "tests/test_compare.py", "tests/test_stats_gate.py", "tests/test_gate.py"]
SET_TESTS = ["tests/test_compare_sets.py", "tests/test_gate_fail_closed.py"]

# (name, file, old text, new text, tests)
MUTANTS = [
    ("slower when the CI is above 1, not above 1 + threshold", "latbench/verdict.py",
     'if judge(lo, hi, ">", limit) == HOLDS:', 'if judge(lo, hi, ">", 1.0) == HOLDS:', RULE_TESTS),
    ("pass with the upper end ON 1 + threshold", "latbench/verdict.py",
     'if judge(lo, hi, "<", limit) == HOLDS:', 'if judge(lo, hi, "<=", limit) == HOLDS:', RULE_TESTS),
    ("pass on the lower end only (the point-estimate rule's cousin)", "latbench/verdict.py",
     'if judge(lo, hi, "<", limit) == HOLDS:', 'if judge(lo, lo, "<", limit) == HOLDS:', RULE_TESTS),
    ("faster below 1 instead of 1 / (1 + threshold)", "latbench/verdict.py",
     'judge(lo, hi, "<", 1.0 / limit)', 'judge(lo, hi, "<", 1.0)', RULE_TESTS),
    ("absurd intervals count as defined", "latbench/verdict.py",
     "lo <= hi <= lo * MAX_SPAN", "lo <= hi", RULE_TESTS),
    ("classify decides on the point estimate", "latbench/compare.py",
     "return gate_status(ci_low, ci_high, threshold), _significant(ci_low, ci_high)",
     "return gate_status(ratio, ratio, threshold), _significant(ci_low, ci_high)", RULE_TESTS),
    ("no run-noise floor (the case's own runs alone)", "latbench/stats.py",
     "return min(ci_low, lo), max(ci_high, hi), bool(lo < ci_low or hi > ci_high)",
     "return ci_low, ci_high, False", SET_TESTS + RULE_TESTS),
    ("floor without its own uncertainty (no t quantile: 1 sd)", "latbench/stats.py",
     "t = float(_st.t.ppf(1 - alpha / 2, pooled_df))", "t = 1.0", SET_TESTS + RULE_TESTS),
    ("compare pools nothing (no floor passed on)", "latbench/compare.py",
     "seed, pools)", "seed, None)", SET_TESTS + RULE_TESTS),
    ("the reference case's ratio of 1 is pooled into the normalized noise", "latbench/compare.py",
     'if col == "ratio_to_baseline" and str(row.get("case"))', 'if False and str(row.get("case"))',
     ["tests/test_compare.py", "tests/test_compare_sets.py"]),
    ("a gate that judged nothing passes", "latbench/gate.py",
     "passed=not failing and bool(judged)", "passed=not failing and bool(deltas)", ["tests/test_gate.py"] + SET_TESTS),
    ("--inconclusive pass relaxes a CI wholly above 1", "latbench/gate.py",
     "if not relax.inconclusive_pass or _surely_slower_than_one(d)]", "if not relax.inconclusive_pass]",
     ["tests/test_gate.py", "tests/test_stats_gate.py"]),
    ("a threshold of 100 % or more accepted", "latbench/gate.py",
     "(v >= 0 if zero_ok else v > 0) and v < 1)", "(v >= 0 if zero_ok else v > 0) and v < 10)", ["tests/test_gate.py"]),
    ("runs of different settings pooled on a side", "latbench/runsets.py",
     "    diffs = _differing(runs, RUN_SETTINGS)\n    if diffs:", "    diffs = _differing(runs, RUN_SETTINGS)\n    if False:",
     SET_TESTS),
    ("the gate ignores settings that differ between the sides", "latbench/runsets.py",
     "if bv[k] != cv[k]]", "if False]", SET_TESTS),
    ("a results directory is pooled across suites and settings", "latbench/runsets.py",
     "key = (tuple(sorted(suites_of([r]))), tuple(run_settings(r).values()))", "key = ()", SET_TESTS),
    ("ab: the second group builds base first too", "latbench/ab.py",
     'ORDERS = (("", SIDES), ("#head-first", SIDES[::-1]))', 'ORDERS = (("", SIDES), ("#head-first", SIDES))',
     ["tests/test_ab.py"]),
    ("ab: only the base-first order is judged", "latbench/ab.py",
     "for sfx in (first, second) for q in per_round_ratios", "for sfx in (first,) for q in per_round_ratios",
     ["tests/test_ab.py"]),
    ("one process by default again", "latbench/run/options.py",
     "return QUICK_REPEATS if opts.quick else DEFAULT_REPEATS", "return 1", ["tests/test_repeats.py"]),
    ("the minimum time is not shared by the processes", "latbench/run/options.py",
     "min_time_s=policy.min_time_s / processes)", "min_time_s=policy.min_time_s)", ["tests/test_repeats.py"]),
    ("undefined intervals printed as numbers", "latbench/report/terminal.py",
     "    if not defined(lo, hi):\n        return f\"{ratio_number(r)}x [CI undefined]\"",
     "    if False:\n        return ''", ["tests/test_results_golden.py", "tests/test_terminal_views.py"]),
]


def copy_tree(dest: Path) -> None:
    """The working tree as git sees it (tracked and untracked, not ignored) copied to dest."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def run_tests(tree: Path, tests: list[str]) -> tuple[bool, float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "LATBENCH_FAKE_BACKEND": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                          cwd=tree, env=env, capture_output=True, text=True)
    return proc.returncode != 0, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated mutant numbers (1-based)")
    opts = ap.parse_args(argv)
    chosen = [int(i) for i in opts.only.split(",")] if opts.only else list(range(1, len(MUTANTS) + 1))
    tree = Path(tempfile.mkdtemp(prefix="latbench-mutants-"))
    try:
        copy_tree(tree)
        clean, _ = run_tests(tree, sorted({t for i in chosen for t in MUTANTS[i - 1][4]}))
        if clean:
            print("the tests fail without any mutant: fix them first", file=sys.stderr)
            return 2
        rows, caught = [], 0
        for i in chosen:
            name, rel, old, new, tests = MUTANTS[i - 1]
            path = tree / rel
            text = path.read_text(encoding="utf-8")
            if text.count(old) != 1:
                rows.append(f"| {i} | {name} | `{rel}` | ERROR: the edit's text occurs {text.count(old)} times | |")
                continue
            path.write_text(text.replace(old, new), encoding="utf-8")
            try:
                failed, secs = run_tests(tree, tests)
            finally:
                path.write_text(text, encoding="utf-8")
            caught += failed
            rows.append(f"| {i} | {name} | `{rel}` | {'caught' if failed else '**missed**'} | {secs:.0f} s |")
            print(f"mutant {i}: {'caught' if failed else 'MISSED'} ({name})", file=sys.stderr)
        print(f"{caught} of {len(chosen)} mutants caught\n")
        print("| # | mutant | file | tests | time |\n|--:|---|---|---|--:|")
        print("\n".join(rows))
        return 0 if caught == len(chosen) else 1
    finally:
        shutil.rmtree(tree, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
