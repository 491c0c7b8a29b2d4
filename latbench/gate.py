"""The CI latency gate: deltas -> GateOutcome (decide), per-case thresholds (Thresholds) and thresholds
suggested from A/A noise (calibrate). cli.py reads the results files and prints; here only
Thresholds.from_file reads a file, and aa_runs drives 'latbench run' processes for calibrate.

The gate fails closed: exit 0 only when at least one case was judged, every case was judged and none
regressed. The rule is verdict.gate_status's (compare.classify): a case passes only when its interval's
upper end is below 1 + threshold; it is slower when the whole interval lies above 1 + threshold, and
inconclusive in between (or when the interval is undefined). A case also fails the gate when it failed
to run in the candidate, has a latency that is not a finite positive number, is missing on a side (or
failed only in the baseline), or is inconclusive; the last two only unless the user relaxes them
(Relaxations, and never an inconclusive case whose interval lies wholly above 1), and the summary names
every relaxation in force. Thresholds are above 0 % and below 100 % (check_threshold).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from latbench import faults
from latbench.compare import STATUSES, Delta
from latbench.errors import LatbenchError, ResultsError
from latbench.results import Run, schema
from latbench.results.read import small_text
from latbench.results.schema import KEY_COLUMNS
from latbench.stats import pooled_log_sd, threshold_for_noise

DEFAULT_THRESHOLD = 0.10  # a case must be > 10 % slower to fail (asv compare's default factor 1.1)
# calibrate: a threshold of Z_THRESHOLD sds of the A/A ratio estimate keeps P(point estimate above it)
# under ~0.1 % per case (one-sided normal tail at 3 sd), so a suite of tens of cases rarely crosses it.
Z_THRESHOLD = 3.0
Z_NOISE_FLOOR = 2.0  # single-run noise floor: 2 sds of the run-to-run ratio of one run pair
MIN_THRESHOLD = 0.02  # below 2 % even a quiet machine's thermal/frequency states dominate
THRESHOLDS_VERSION = 1


def parse_fraction(text: str | float, what: str = "--threshold", bare_percent: bool = True) -> float:
    """'10%' -> 0.10, '0.1' -> 0.10; with bare_percent (command line) a bare number >= 1 is read as
    percent ('10' -> 0.10); files written by calibrate hold plain fractions (bare_percent=False)."""
    s = str(text).strip()
    try:
        v = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise LatbenchError(f"{what} {text!r} is not a number", hint="write it as 10% or 0.10") from None
    if bare_percent and not s.endswith("%") and v >= 1:
        v /= 100
    if not (0 <= v < 10) or math.isnan(v):
        raise LatbenchError(f"{what} {text!r} is out of range", hint="use a fraction such as 10% or 0.10")
    return v


SWEEP_KEYS = ("dtype", "memory_format", "threads")  # key columns a thresholds file may leave out


def case_key(d: Mapping[str, Any]) -> tuple:
    return tuple(str(d.get(c, "*") if c in SWEEP_KEYS else d[c]) for c in KEY_COLUMNS)


@dataclass(frozen=True)
class Thresholds:
    """Per-case thresholds (from 'latbench calibrate') over a default."""

    default: float = DEFAULT_THRESHOLD
    cases: dict[tuple, float] = field(default_factory=dict)
    noise_floor: float | None = None  # suggested single-run noise floor, if calibrated

    def for_case(self, key: Mapping[str, Any]) -> float:
        if not self.cases:
            return self.default
        k = dict(key)
        if "->" in str(k.get("device", "")):  # aligned across devices: look up by the candidate's device
            k["device"] = str(k["device"]).split("->")[-1]
        exact = self.cases.get(case_key(k))
        if exact is not None:
            return exact
        # thresholds written without the sweep axes (dtype, memory_format, threads) match any value
        return self.cases.get(case_key({**k, **{a: "*" for a in SWEEP_KEYS}}), self.default)

    @classmethod
    def from_file(cls, path: Path, default: float | None) -> "Thresholds":
        """Read a thresholds file (YAML written by 'latbench calibrate'); default overrides its default."""
        import yaml

        try:
            data = yaml.safe_load(small_text(Path(path)))  # a FIFO or /dev/zero: refused, never read
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise LatbenchError(f"cannot read thresholds ({str(exc).splitlines()[0]})", where=str(path),
                                hint="write one with 'latbench calibrate --output FILE'") from None
        return cls.from_data(data, default, str(path))

    @classmethod
    def from_data(cls, data: Any, default: float | None, where: str) -> "Thresholds":
        """From the mapping a thresholds file holds (written by to_data); default overrides its default."""
        if not isinstance(data, dict) or not isinstance(data.get("cases", []), list):
            raise LatbenchError("not a thresholds file (expected a mapping with 'cases: [...]')", where=where,
                                hint="write one with 'latbench calibrate --output FILE'")
        cases = {}
        for i, c in enumerate(data.get("cases", [])):
            required = [k for k in KEY_COLUMNS if k not in SWEEP_KEYS]
            missing = [k for k in (*required, "threshold") if not isinstance(c, dict) or k not in c]
            if missing:
                raise LatbenchError(f"cases[{i}] lacks {', '.join(missing)}", where=where,
                                    hint=f"each case needs {', '.join(required)}, threshold "
                                         f"(and optionally {', '.join(SWEEP_KEYS)})")
            c = {**{a: "*" for a in SWEEP_KEYS if a not in c or c[a] is None}, **{k: v for k, v in c.items()
                                                                                 if v is not None}}
            cases[case_key(c)] = check_threshold(parse_fraction(c["threshold"], f"cases[{i}].threshold", False),
                                                 f"cases[{i}].threshold", where=where)
        dflt = default if default is not None else check_threshold(
            parse_fraction(data.get("default", DEFAULT_THRESHOLD), "default", False), "default", where=where)
        nf = data.get("noise_floor")
        return cls(dflt, cases, parse_fraction(nf, "noise_floor", False) if nf is not None else None)


@dataclass(frozen=True)
class Relaxations:
    """Rules of the fail-closed gate that the user chose to relax (each names its flag)."""

    allow_missing: bool = False  # cases on one side only, or failed only in the baseline, do not fail
    inconclusive_pass: bool = False  # cases whose CI is undefined or wider than the threshold do not fail
    allow_different_machine: bool = False  # fingerprints may differ (checked before deciding)

    def flags(self) -> list[str]:
        return [f for f, on in (("--allow-missing", self.allow_missing), ("--inconclusive pass", self.inconclusive_pass),
                                ("--allow-different-machine", self.allow_different_machine)) if on]


@dataclass(frozen=True)
class GateOutcome:
    """The decision. passed: every case was judged (or its rule relaxed) and none regressed."""

    passed: bool
    regressions: list[Delta]  # slower beyond threshold, significantly
    failed: list[Delta]  # failed to run in the candidate
    improvements: list[Delta]
    missing: list[Delta]  # on one side only, or failed only in the baseline
    same: list[Delta]
    inconclusive: list[Delta] = field(default_factory=list)
    invalid: list[Delta] = field(default_factory=list)  # non-finite or non-positive latency
    skipped: list[Delta] = field(default_factory=list)  # skipped on both sides: the device cannot run them
    relaxed: list[str] = field(default_factory=list)  # flags in force that relaxed a rule
    reasons: list[str] = field(default_factory=list)  # one line per case that failed the gate

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        judged = len(self.regressions) + len(self.improvements) + len(self.same)
        nothing = "" if judged else " (nothing judged)"
        text = (f"latency gate {verdict}{nothing}: {len(self.regressions)} slower, {len(self.failed)} failed, "
                f"{len(self.inconclusive)} inconclusive, {len(self.invalid)} invalid, {len(self.missing)} missing, "
                f"{len(self.improvements)} faster, {len(self.same)} unchanged")
        if self.skipped:
            text += f", {len(self.skipped)} skipped on both sides"
        if self.relaxed:
            text += f"; relaxed: {', '.join(self.relaxed)}"
        return text


def require_same_machine(fingerprint_differences: Sequence[str]) -> None:
    """ResultsError naming the differences when baseline and candidate ran on different machines or software."""
    if fingerprint_differences:
        raise ResultsError("baseline and candidate ran on different machines or software ("
                           + "; ".join(fingerprint_differences) + ")",
                           hint="gate results from one machine, or pass --allow-different-machine")


def require_same_settings(settings_differences: Sequence[str]) -> None:
    """ResultsError naming the settings (--quick, latency semantics, l2, repeats, schedule) in which the
    baseline's runs differ from the candidate's: the gate would judge the settings, not the code."""
    if settings_differences:
        raise ResultsError("baseline and candidate were measured with different settings ("
                           + "; ".join(settings_differences) + ")",
                           hint="run both sides with the same 'latbench run' options, or pass "
                                "--allow-different-machine")


def _surely_slower_than_one(d: Delta) -> bool:
    """An inconclusive case whose interval lies wholly above 1: significantly slower, perhaps beyond its
    threshold. --inconclusive pass does not relax it (it relaxes cases that may be unchanged)."""
    return d.status == "inconclusive" and d.significant and (
        d.norm_ratio if d.method.startswith("normalized") else d.ratio) > 1


JUDGED = ("slower", "faster", "same")  # statuses that are a verdict on a measured change


def decide(deltas: Sequence[Delta], relax: Relaxations | None = None) -> GateOutcome:
    """Fail closed: pass only when no case is slower beyond its threshold, none failed, none has an
    invalid latency, every case was judged -- cases on one side only and inconclusive cases fail too
    unless `relax` allows them (an inconclusive case whose CI lies wholly above 1 is never relaxed) --
    and at least one case was judged: a gate that judged nothing (no case in common, every case skipped,
    missing or inconclusive) fails whatever the relaxations. Cases skipped on both sides (the device
    cannot run them) are counted but never fail on their own. A failed case counts as missing only when
    its failed_side says the baseline failed; any other failure is the candidate's."""
    relax = relax or Relaxations()
    by = {s: [d for d in deltas if d.status == s] for s in STATUSES}
    base_failed = [d for d in by["failed"] if d.failed_side == "baseline"]
    cand_failed = [d for d in by["failed"] if d.failed_side != "baseline"]
    missing = by["missing"] + base_failed
    failing = [*by["slower"], *cand_failed, *by["invalid"]]
    if not relax.allow_missing:
        failing += missing
    failing += [d for d in by["inconclusive"] if not relax.inconclusive_pass or _surely_slower_than_one(d)]
    reasons = [f"{d.label}: {d.status}" + (f" ({d.note})" if d.note else "") for d in failing]
    judged = [d for d in deltas if d.status in JUDGED and d.method != "reference"]
    if not judged:
        reasons.append(f"nothing was judged: {len(deltas)} case(s), none slower, faster or the same "
                       f"({_counts(deltas)}); a gate that judged no case fails, whatever the relaxations")
    return GateOutcome(passed=not failing and bool(judged), regressions=by["slower"], failed=cand_failed,
                       improvements=by["faster"], missing=missing, same=by["same"], inconclusive=by["inconclusive"],
                       invalid=by["invalid"], skipped=by["skipped"], relaxed=relax.flags(), reasons=reasons)


def _counts(deltas: Sequence[Delta]) -> str:
    counts = {s: sum(d.status == s for d in deltas) for s in STATUSES}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no case in common"


@dataclass(frozen=True)
class Suggestion:
    key: dict[str, Any]
    runs: int
    median_ms: float
    noise_pct: float  # sd of log run-medians used (max of this case's and the pooled), in percent
    case_noise_pct: float  # this case alone (nan with < 2 runs)
    threshold: float


def suggest_thresholds(medians: Mapping[tuple, tuple[dict[str, Any], Sequence[float]]], runs_per_side: int = 3,
                       minimum: float = MIN_THRESHOLD) -> tuple[list[Suggestion], float, float]:
    """Thresholds from A/A run medians of each case: {key: (key dict, [median ms of each run])}.

    The run-to-run sd sigma of a case's log median is estimated from its runs, but never below the sd
    pooled over all cases (a case's own estimate has only runs-1 degrees of freedom and can be tiny by
    luck). A gate with n runs per side estimates the log ratio with sd sigma*sqrt(2/n); the threshold is
    Z_THRESHOLD such sds, rounded up to 0.5 %, at least `minimum`. Returns (suggestions, pooled sd in %,
    suggested single-run noise floor as a fraction).
    """
    pooled, df = pooled_log_sd([vals for _, vals in medians.values()])
    if df == 0:
        raise LatbenchError("calibration needs at least two runs of the same cases",
                            hint="give two or more A/A result files of one suite (same code, same machine)")
    out = []
    for key, vals in medians.values():
        a = np.log(np.asarray(vals, float))
        own = float(a.std(ddof=1)) if a.size >= 2 else math.nan
        sigma = max(pooled, own) if a.size >= 2 else pooled
        thr = threshold_for_noise(sigma, Z_THRESHOLD, runs_per_side, minimum)
        out.append(Suggestion(key, int(a.size), float(np.exp(a.mean())), 100 * sigma, 100 * own, thr))
    floor = threshold_for_noise(pooled, Z_NOISE_FLOOR, 1, minimum)  # one run pair: sd sqrt(2) sigma
    return out, 100 * pooled, floor


def run_medians(runs: Sequence[Run]) -> dict[tuple, tuple[dict[str, Any], list[float]]]:
    """{case key: (key dict, [median ms of each run where it is ok])}: what suggest_thresholds pools."""
    medians: dict[tuple, tuple[dict[str, Any], list[float]]] = {}
    for r in runs:
        for _, row in r.rows[r.rows["status"] == schema.OK].iterrows():
            key = {c: (int(row[c]) if c in ("scale", "batch") else str(row[c])) for c in KEY_COLUMNS}
            medians.setdefault(tuple(key.values()), (key, []))[1].append(float(row["latency_ms"]))
    return medians


@dataclass(frozen=True)
class Calibration:
    suggestions: list[Suggestion]
    pooled_pct: float  # run-to-run sd of log medians pooled over all cases, in percent
    noise_floor: float  # suggested single-run noise floor (fraction)
    runs_per_side: int
    data: dict[str, Any]  # what the thresholds file holds (thresholds_data)


def calibrate(runs: Sequence[Run], runs_per_side: int = 3, minimum: float = MIN_THRESHOLD,
              default: float = DEFAULT_THRESHOLD) -> Calibration:
    """A/A calibration from finished runs of one suite: per-case thresholds and the thresholds file."""
    suggestions, pooled, floor = suggest_thresholds(run_medians(runs), runs_per_side, minimum)
    data = thresholds_data(suggestions, pooled, floor, runs_per_side, default, [str(r.path) for r in runs])
    return Calibration(suggestions, pooled, floor, runs_per_side, data)


def aa_runs(suite: Path, runs: int, run_args: Sequence[str], results_dir: Path,
            on_run: Callable[[int, int], None] = lambda i, n: None) -> list[Path]:
    """Run `latbench run SUITE` `runs` times, each in its own process (as CI would), into results_dir;
    the results CSVs they wrote. LatbenchError naming the last stderr line when a run fails."""
    results_dir.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for i in range(runs):
        before = set(results_dir.glob("*.csv"))
        on_run(i + 1, runs)
        proc = faults.run_child([sys.executable, "-m", "latbench", "run", str(suite), "-q", "--results-dir",
                                 str(results_dir), *run_args])  # a stop signal lets the run save, not SIGKILL
        if proc.returncode != 0:
            raise LatbenchError(f"'latbench run' exited {proc.returncode}: "
                                f"{(proc.stderr.strip().splitlines() or [''])[-1]}", where=str(suite))
        out += sorted(p for p in set(results_dir.glob("*.csv")) - before if not p.name.endswith("-samples.csv"))
    return out


def thresholds_data(suggestions: Sequence[Suggestion], pooled_pct: float, noise_floor: float, runs_per_side: int,
                    default: float, sources: Sequence[str]) -> dict[str, Any]:
    """The mapping a thresholds file holds (Thresholds.from_data reads it back)."""
    return {
        "version": THRESHOLDS_VERSION, "default": default, "noise_floor": noise_floor,
        "runs_per_side": runs_per_side, "pooled_run_noise_pct": round(pooled_pct, 3),
        "calibrated_from": list(sources),
        "cases": [{**s.key, "threshold": s.threshold, "run_noise_pct": round(s.noise_pct, 3), "runs": s.runs,
                   "median_ms": round(s.median_ms, 6)} for s in suggestions],
    }


# --- the command line's thresholds and comparisons (compare, gate, ab and calibrate parse them alike) ---


def check_threshold(v: float, what: str = "--threshold", zero_ok: bool = False, where: str | None = None) -> float:
    """v when it is a threshold a gate can use: above 0 % (0 % allowed for a noise floor) and below
    100 % (a 'slowdown' of 100 % or more is not a threshold anyone means); LatbenchError otherwise."""
    if not (math.isfinite(v) and (v >= 0 if zero_ok else v > 0) and v < 1):
        shown = f"{100 * v:g}%" if math.isfinite(v) else str(v)
        raise LatbenchError(f"{what} {shown} is out of range: it must be {'at least' if zero_ok else 'above'} 0% "
                            f"and below 100%", where=where or what, hint="use e.g. 5% (0.05) or 10% (0.10)")
    return v


def parse_threshold(text: str, what: str = "--threshold") -> float:
    """A threshold as the command line takes it: '10%' or a fraction '0.1', above 0 % and below 100 %
    (--noise-floor may be 0 %). A bare number >= 1 is refused: it read as percent (1 = 1%) while 0.5
    read as 50%, so the unit depended on the size."""
    s = str(text).strip()
    if not s.endswith("%"):
        try:
            v = float(s)
        except ValueError:
            v = None
        if v is not None and v >= 1:
            raise LatbenchError(f"{s!r} is ambiguous (1 percent or {v:g} times?)", where=what,
                                hint=f"write a percent with %, e.g. {v:g}%, or a fraction, e.g. {v / 100:g}")
    return check_threshold(parse_fraction(s, what, bare_percent=False), what, zero_ok=what == "--noise-floor")


def relaxations(allow_missing: bool, inconclusive: str, allow_different_machine: bool) -> Relaxations:
    """The gate's relaxations from --allow-missing, --inconclusive fail|pass and --allow-different-machine."""
    if inconclusive not in ("pass", "fail"):
        raise LatbenchError(f"--inconclusive {inconclusive!r} is neither pass nor fail",
                            hint="use --inconclusive fail (default) or --inconclusive pass")
    return Relaxations(allow_missing, inconclusive == "pass", allow_different_machine)


def load_comparison(base: Sequence[str | Path], cand: Sequence[str | Path], threshold: str | None = None,
                    thresholds: Path | None = None, alpha: float = 0.05, noise_floor: str | None = None,
                    seed: int = 0, normalized: bool = False):
    """Read both sides' results files and compare them (compare_runs)."""
    from latbench.compare import load_runs

    check_alpha(alpha)
    options = comparison_options(threshold, thresholds, noise_floor)  # bad options before reading any file
    return compare_runs(load_runs(base, "baseline"), load_runs(cand, "candidate"), *options, alpha, seed,
                        normalized)


def check_alpha(alpha: float) -> None:
    if not 0 < alpha < 0.5:
        raise LatbenchError(f"--alpha {alpha} is out of range", hint="use e.g. 0.05 (a 95% confidence interval)")


def comparison_options(threshold: str | None, thresholds: Path | None, noise_floor: str | None
                       ) -> tuple[Thresholds, float]:
    """(per-case thresholds, noise floor) from --threshold/--thresholds FILE and --noise-floor (the file's
    noise floor unless given; DEFAULT_NOISE_FLOOR without either)."""
    from latbench.compare import DEFAULT_NOISE_FLOOR

    given = parse_threshold(threshold, "--threshold") if threshold is not None else None
    thr = Thresholds.from_file(thresholds, given) if thresholds is not None else Thresholds(
        given if given is not None else DEFAULT_THRESHOLD)
    floor = (parse_threshold(noise_floor, "--noise-floor") if noise_floor is not None
             else thr.noise_floor if thr.noise_floor is not None else DEFAULT_NOISE_FLOOR)
    return thr, floor


def compare_runs(base_runs: Sequence[Run], cand_runs: Sequence[Run], thr: Thresholds, floor: float,
                 alpha: float = 0.05, seed: int = 0, normalized: bool = False):
    """compare.compare under the command line's thresholds and noise floor."""
    from latbench.compare import compare

    check_alpha(alpha)
    return compare(base_runs, cand_runs, thr.for_case, alpha, floor, seed, normalized)


def thresholds_file_text(cal: Calibration) -> str:
    """The thresholds file 'latbench calibrate -o FILE' writes (YAML, read back by Thresholds.from_file)."""
    import yaml

    return ("# latbench gate thresholds, from 'latbench calibrate' (A/A run-to-run noise)\n"
            + yaml.safe_dump(cal.data, sort_keys=False))
