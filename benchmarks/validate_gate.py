"""Validate 'latbench gate' on this machine: false-alarm rate on real A/A runs and detection rate on a
genuinely slower module (~15 % more work), measured with real 'latbench run' processes.

Each trial runs, in alternation (A, A', B, A, A', B, ...), `--runs-per-side` runs of
  A  : suite 'gatecheck': case 'ref' (1x1 conv stack, c=64) and case 'target' (the same, c=64)
  A' : the same suite file again (the A/A candidate: same code, later runs)
  B  : the same suite with 'target' widened to c=69 (FLOPs x 1.162; 'ref' unchanged)
then gates A vs A' (any 'slower' = false alarm) and A vs B ('target' slower = detection, 'ref' slower
= false alarm). The first run of each side is also gated alone (1 vs 1, the noise-floor path).

    python benchmarks/validate_gate.py --pairs 20                 # full: ~1 h on 2 cores
    python benchmarks/validate_gate.py --pairs 2 --quick          # smoke test, a few minutes
    python benchmarks/validate_gate.py --regate --workdir DIR     # gate DIR's runs again, measure nothing

Prints progress on stderr and a markdown summary on stdout; --output writes all figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SUITE = """\
# written by benchmarks/validate_gate.py
suite: gatecheck
experiment: GATE
description: gate validation; 'target' has c={c} ({note})
builder: g2_group_conv
input: {{height: 56, width: 56}}
blocks: 10
batch: 1
scales: [1]
widths: paper
cases:
  - name: ref
    params: {{groups: 1}}
    widths: {{gpu: {{c: 64}}, arm: {{c: 64}}}}
  - name: target
    params: {{groups: 1}}
    widths: {{gpu: {{c: {c}}}, arm: {{c: {c}}}}}
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_suite(suite: Path, out: Path, args: argparse.Namespace, seed: int) -> Path:
    """One 'latbench run' process; returns its results CSV."""
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.glob("*.csv"))
    budget = ["--quick"] if args.quick else ["--max-time", str(args.max_time)]
    cmd = [sys.executable, "-m", "latbench", "run", str(suite), "-q", "--results-dir", str(out), "--seed", str(seed),
           *budget]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"latbench run failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    new = [p for p in set(out.glob("*.csv")) - before if not p.name.endswith("-samples.csv")]
    assert len(new) == 1, new
    return new[0]


def gate(base: list[Path], cand: list[Path], args: argparse.Namespace, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "latbench", "gate", "--json", "-q", "--threshold", args.threshold,
           "--alpha", str(args.alpha), *extra]
    for p in base:
        cmd += ["--baseline", str(p)]
    for p in cand:
        cmd += ["--candidate", str(p)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"latbench gate could not answer ({proc.returncode}): {proc.stderr.strip()}")
    doc = json.loads(proc.stdout)
    cases = {c["case"]: c for c in doc["cases"]}
    return {"exit": proc.returncode, "slower": sorted(c for c, d in cases.items() if d["status"] == "slower"),
            "ratio": {c: d["ratio"] for c, d in cases.items()},
            "ci": {c: [d["ci_low"], d["ci_high"]] for c, d in cases.items()},
            "run_noise_pct": {c: d["run_noise_pct"] for c, d in cases.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20, help="trials (each gives one A/A and one A/B gate)")
    ap.add_argument("--runs-per-side", type=int, default=3, help="runs per side in each gate")
    ap.add_argument("--max-time", type=float, default=1.0, help="seconds of measurement per case and run")
    ap.add_argument("--quick", action="store_true", help="use 'run --quick' budgets instead of --max-time")
    ap.add_argument("--threshold", default="10%", help="gate threshold")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--wider", type=int, default=69, help="target's c in B (64 -> 69: FLOPs x 1.162)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep all runs here (default: a temp dir)")
    ap.add_argument("--output", type=Path, default=None, help="write the figures as JSON")
    ap.add_argument("--regate", action="store_true",
                    help="measure nothing: gate the runs already in --workdir again (e.g. after changing the gate)")
    args = ap.parse_args()
    if args.regate and not args.workdir:
        raise SystemExit("--regate needs --workdir (the directory of an earlier validation)")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="latbench-validate-"))
    work.mkdir(parents=True, exist_ok=True)
    suite_a, suite_b = work / "gatecheck-a.yaml", work / "gatecheck-b.yaml"
    suite_a.write_text(SUITE.format(c=64, note="same as ref"))
    suite_b.write_text(SUITE.format(c=args.wider, note=f"FLOPs x {args.wider ** 2 / 64 ** 2:.3f} vs ref"))
    log(f"work dir {work}; {args.pairs} trial(s) x {3 * args.runs_per_side} runs")

    trials = []
    t0 = time.time()
    for t in range(args.pairs):
        files: dict[str, list[Path]] = {"base": [], "aa": [], "ab": []}
        if args.regate:
            for side in files:
                files[side] = sorted(p for p in (work / f"trial{t:02d}" / side).glob("*.csv")
                                     if not p.name.endswith("-samples.csv"))
            if not all(files.values()):
                break
        else:
            for i in range(args.runs_per_side):
                for side, suite in (("base", suite_a), ("aa", suite_a), ("ab", suite_b)):
                    files[side].append(run_suite(suite, work / f"trial{t:02d}" / side, args, seed=t * 100 + i))
        trial = {"aa": gate(files["base"], files["aa"], args), "ab": gate(files["base"], files["ab"], args),
                 "aa_1v1": gate(files["base"][:1], files["aa"][:1], args),
                 "ab_1v1": gate(files["base"][:1], files["ab"][:1], args),
                 # relative to the suite's reference case 'ref', paired within each run
                 "aa_norm": gate(files["base"], files["aa"], args, "--normalized"),
                 "ab_norm": gate(files["base"], files["ab"], args, "--normalized")}
        trials.append(trial)
        log(f"trial {t + 1}/{args.pairs} ({time.time() - t0:.0f} s): A/A slower={trial['aa']['slower']} "
            f"A/B slower={trial['ab']['slower']} target ratio {trial['ab']['ratio']['target']:.3f}")

    def rate(kind: str) -> dict:
        fa = sum(1 for tr in trials if tr[kind.replace("ab", "aa")]["slower"])
        det = sum(1 for tr in trials if "target" in tr[kind]["slower"])
        ref_fa = sum(1 for tr in trials if "ref" in tr[kind]["slower"])
        return {"aa_false_alarms": fa, "ab_detections": det, "ab_ref_false_alarms": ref_fa, "trials": len(trials)}

    multi, single, norm = rate("ab"), rate("ab_1v1"), rate("ab_norm")
    ratios = [tr["ab"]["ratio"]["target"] for tr in trials]
    noise = [v for tr in trials for v in tr["aa"]["run_noise_pct"].values() if v is not None]
    summary = {"args": {k: str(v) for k, v in vars(args).items()}, "runs_per_side": multi, "one_run_per_side": single,
               "normalized": norm,
               "ab_target_ratio_median": sorted(ratios)[len(ratios) // 2] if ratios else math.nan,
               "aa_run_noise_pct_median": sorted(noise)[len(noise) // 2] if noise else math.nan,
               "seconds": round(time.time() - t0), "workdir": str(work), "trials": trials}
    if args.output:
        args.output.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    budget = "--quick" if args.quick else f"--max-time {args.max_time}"
    print(f"### latbench gate validation ({len(trials)} trials, {budget}, threshold {args.threshold}, "
          f"alpha {args.alpha})\n")
    print("| gate | runs per side | A/A false alarms | A/B detections (target +16% FLOPs) | A/B false alarms on ref |")
    print("|---|--:|--:|--:|--:|")
    for name, r, k in (("multi-run (Welch on run medians)", multi, args.runs_per_side),
                       ("single run (samples + noise floor)", single, 1),
                       ("multi-run --normalized (vs reference case 'ref')", norm, args.runs_per_side)):
        print(f"| {name} | {k} | {r['aa_false_alarms']}/{r['trials']} | {r['ab_detections']}/{r['trials']} | "
              f"{r['ab_ref_false_alarms']}/{r['trials']} |")
    print(f"\nMedian measured A/B latency ratio of 'target': {summary['ab_target_ratio_median']:.3f}; median "
          f"run-to-run noise (sd of log run-medians) in A/A: {summary['aa_run_noise_pct_median']:.1f}%; "
          f"wall time {summary['seconds']} s.")


if __name__ == "__main__":
    main()
