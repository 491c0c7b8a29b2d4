"""Join the result files of a baseline and a candidate on the case identity and say, per case, how much
slower or faster the candidate is, with a confidence interval that sees run-to-run noise.

Why runs, not samples: on a shared machine the median of one case moves by 4-17 % from one run to
the next, while the samples inside a run agree closely. A test on within-run samples would call that
drift a regression. So with >= 2 result files on a side, each run contributes ONE number per case (its
median) and the test is on those (Welch's t on log run-medians: the ratio's CI has the between-run
spread in it), floored by the run-to-run noise pooled over every case of the comparison (two runs
that happen to agree do not make a case's noise small). With one file per side there is no
between-run spread to measure; the within-run bootstrap CI is then widened by a run-to-run noise
floor (default 10 %, see DEFAULT_NOISE_FLOOR). The verdict is verdict.gate_status's: a case passes only
when its interval excludes a slowdown of the threshold. Runs measured with different settings
(--quick, threads, latency semantics, l2, repeats, schedule, device) are never pooled on one side.
docs/compare-and-gate.md explains the design and how to calibrate it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from latbench.errors import ResultsError
from latbench.results import schema
from latbench.results.read import Run, expand_paths, read_runs
from latbench.results.schema import KEY_COLUMNS
from latbench.runsets import check_sides, fingerprint_coverage, fingerprint_differences, settings_differences
from latbench.stats import (data_to_decide, floor_run_interval, geometric_mean, log_sd_pct, pooled_log_sd,
                            ratio_from_runs, ratio_noise_sds)
from latbench.stats import ratio_from_samples as _bootstrap_ratio
from latbench.verdict import defined, gate_status, revoke_oversubscribed_pass, significant as _significant

__all__ = ["STATUSES", "Comparison", "Delta", "Run", "classify", "compare", "expand_paths", "fingerprint_coverage",
           "fingerprint_differences", "load_runs", "noise_warnings", "ratio_from_runs", "ratio_from_samples",
           "settings_differences", "to_decide"]

DEFAULT_ALPHA = 0.05  # two-sided: a 95 % confidence interval for the ratio
# One run per side cannot show between-run drift; we assume it is at most this (as a factor on the
# ratio, applied to both CI ends). 10 % covers the 4-17 % run-to-run moves of a median measured on
# 2 shared cores in most runs; 'latbench calibrate' measures it for your machine.
DEFAULT_NOISE_FLOOR = 0.10
# compare warns when a threshold is fewer than this many sds of the ratio's run-to-run noise: at 3 sd
# a one-sided normal tail is 0.13 %, the false-alarm rate per case we aim for (see docs/compare-and-gate.md).
NOISE_SDS = 3.0


# Every status a Delta can have, and what it says (gate.decide sorts Deltas by these keys). Only "same"
# and "faster" are judged and fine; the gate fails closed on every other status unless a flag relaxes it.
STATUSES: dict[str, str] = {
    "slower": "the whole CI lies above 1 + threshold: slower by more than the threshold",
    "faster": "the whole CI lies below 1 / (1 + threshold): faster by more than the threshold",
    "same": "the CI's upper end is below 1 + threshold: a slowdown of the threshold is excluded",
    "inconclusive": "the CI reaches 1 + threshold without lying wholly above it, or is undefined: the data "
                    "cannot rule a regression of the threshold in or out",
    "invalid": "a latency that is not a finite positive number (inf, nan, 0)",
    "missing": "measured on one side only (absent, or skipped by the device on one side)",
    "skipped": "skipped on both sides (the device cannot run the case): nothing to judge, nothing lost",
    "failed": "failed to run on one side or both (Delta.failed_side says which side decides)",
}


@dataclass(frozen=True)
class Delta:
    """One case compared: latencies in ms (geometric mean of the run medians), ratio candidate/baseline."""

    key: dict[str, Any]  # KEY_COLUMNS -> value
    status: str  # one of STATUSES
    threshold: float  # fraction; slower needs ratio > 1 + threshold (and significance)
    base_ms: float = math.nan
    cand_ms: float = math.nan
    ratio: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan
    significant: bool = False
    method: str = ""  # runs-welch | runs-pooled | samples-bootstrap+floor | -
    base_runs: int = 0
    cand_runs: int = 0
    run_noise_pct: float = math.nan  # between-run spread of the case's median (sd of log medians, in %)
    baseline_case: str = ""
    norm_ratio: float = math.nan  # the same ratio on ratio_to_baseline: machine-wide drift cancelled
    norm_ci_low: float = math.nan
    norm_ci_high: float = math.nan
    note: str = ""
    changed: str = ""  # the network differs between the sides (FLOPs, widths, parameters): what changed
    # status "failed": "candidate" when the candidate failed (a failure of the change), "baseline" when
    # only the baseline did (nothing to compare with). The gate decides on this, never on the note's words.
    failed_side: str = ""
    # the sides ("baseline", "candidate", "base", "head") with a row measured oversubscribed: no pass on them
    oversubscribed: str = ""

    @property
    def label(self) -> str:
        k = self.key
        return f"{k['suite']}/{k['case']}/x{k['scale']} {k['device']}/{k['mode']}/b{k['batch']}"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        key = d.pop("key")
        d.pop("failed_side")  # the note says it in words; the output columns stay as they were
        d.pop("oversubscribed")
        for lo, hi in (("ci_low", "ci_high"), ("norm_ci_low", "norm_ci_high")):
            if not defined(d[lo], d[hi]):  # undefined or absurd: no numbers (verdict.defined)
                d[lo] = d[hi] = math.nan
        for r in ("ratio", "norm_ratio"):
            if not defined(d[r], d[r]):
                d[r] = math.nan
        return {**key, **{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}}


@dataclass(frozen=True)
class Comparison:
    deltas: list[Delta]
    base_files: list[str]
    cand_files: list[str]
    warnings: list[str] = field(default_factory=list)  # fingerprint differences, alignment notes
    fingerprint_differences: list[str] = field(default_factory=list)
    alpha: float = DEFAULT_ALPHA
    noise_floor: float = DEFAULT_NOISE_FLOOR
    settings_differences: list[str] = field(default_factory=list)  # between the sides (never within one)
    title: str = ""  # what this comparison is, when compare splits a list of runs into several


# ---------------------------------------------------------------- reading (latbench.results)

def load_runs(specs: Sequence[str | Path], side: str) -> list[Run]:
    """The runs specs name (files of any of the three kinds, directories, quoted globs, comma lists)."""
    return read_runs(specs, side, strict=True)


# ---------------------------------------------------------------- statistics (latbench.stats)

def ratio_from_samples(base: Sequence[float], cand: Sequence[float], alpha: float = DEFAULT_ALPHA,
                       noise_floor: float = DEFAULT_NOISE_FLOOR, seed: int = 0) -> tuple[float, float, float]:
    """stats.ratio_from_samples with compare's default noise floor."""
    return _bootstrap_ratio(base, cand, alpha, noise_floor, seed)


def classify(ratio: float, ci_low: float, ci_high: float, threshold: float) -> tuple[str, bool]:
    """(status, significant): verdict.gate_status on the CI, the one rule of compare, gate and ab:
    slower when the whole CI lies above 1 + threshold, faster when it lies below 1 / (1 + threshold),
    same when its upper end is below 1 + threshold, else inconclusive (also when the CI or the ratio is
    undefined, or does not hold its own estimate). The point estimate decides nothing else. significant: the CI lies wholly above or below 1."""
    if not (defined(ratio, ratio) and defined(ci_low, ci_high)):
        return "inconclusive", False
    status, significant = gate_status(ci_low, ci_high, threshold), _significant(ci_low, ci_high)
    if status != "slower" and not ci_low * (1 - 1e-9) <= ratio <= ci_high * (1 + 1e-9):
        return "inconclusive", significant  # an interval that misses its own estimate is absurd: never a pass
    return status, significant


def to_decide(d: "Delta") -> str:
    """For an inconclusive case: what it would take to decide (more runs, more time), in words."""
    if d.status != "inconclusive":
        return ""
    if d.oversubscribed:
        return ("to decide: rerun where the benchmark has a core of its own (other processes took its CPU "
                "during the measurement; see the row's cpu_per_wall)")
    lo, hi = (d.norm_ci_low, d.norm_ci_high) if d.method.startswith("normalized") else (d.ci_low, d.ci_high)
    if d.method == "samples-bootstrap+floor":
        return ("to decide: >= 2 runs per side (one run a side carries the run-to-run noise floor, which "
                "more time cannot narrow), or a calibrated --noise-floor")
    if not defined(lo, hi):
        return "to decide: more runs per side (the CI is undefined)" if d.method.startswith(("runs", "normalized")) \
            else "to decide: a defined CI (more rounds: --max-time)"
    f = data_to_decide(lo, hi, 1 + d.threshold)
    if not math.isfinite(f) or f > 100:
        return (f"to decide: the change is about the {100 * d.threshold:g}% threshold itself; no reasonable amount "
                f"of data will put the CI on one side of it (a threshold further from it will)")
    if d.method.startswith(("runs", "normalized")):
        return (f"to decide: about {f:.1f}x the runs (~{math.ceil(f * max(d.base_runs, 1))} per side), or a quieter "
                f"machine")
    return f"to decide: about {f:.1f}x the measurement (--max-time), or a quieter machine"


# ---------------------------------------------------------------- joining

def _index(runs: Sequence[Run], key_cols: Sequence[str]) -> dict[tuple, list[tuple[Run, pd.Series]]]:
    out: dict[tuple, list[tuple[Run, pd.Series]]] = {}
    for run in runs:
        for _, row in run.rows.iterrows():
            out.setdefault(tuple(_norm(row[c]) for c in key_cols), []).append((run, row))
    return out


def _norm(v: Any) -> Any:
    """Key values as read back from CSV: ints stay ints, everything else a string."""
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return str(v)


def _samples_of(run: Run, row: pd.Series) -> np.ndarray:
    s = run.samples
    mask = s["run_id"].astype(str) == str(row["run_id"])
    for c in KEY_COLUMNS:
        mask &= s[c].map(_norm) == _norm(row[c])
    v = s.loc[mask, "latency_ms"].to_numpy(float)
    return v[np.isfinite(v) & (v > 0)]


def compare(base: Sequence[Run], cand: Sequence[Run], threshold_for: Callable[[dict[str, Any]], float] | float = 0.10,
            alpha: float = DEFAULT_ALPHA, noise_floor: float = DEFAULT_NOISE_FLOOR, seed: int = 0,
            normalized: bool = False) -> Comparison:
    """Align cases on KEY_COLUMNS and compute one Delta per case (see the module docstring for the test).

    When each side ran on one device and the devices differ (CPU vs CUDA), cases are aligned without
    the device column, and a warning says so.

    normalized: judge every case by its change relative to its suite's baseline (reference) case, i.e. on
    ratio_to_baseline, which interleaved rounds pair within each run so that machine-wide drift cancels.
    The reference case itself is then not judged. Needs >= 3 runs in all (e.g. 2 + 1); a uniform
    slowdown of every case, reference included, is invisible in this mode.
    """
    thr = threshold_for if callable(threshold_for) else (lambda _k, t=float(threshold_for): t)
    check_sides(base, cand)
    warnings: list[str] = []
    key_cols = list(KEY_COLUMNS)
    bdev = {str(d) for r in base for d in r.rows["device"]}
    cdev = {str(d) for r in cand for d in r.rows["device"]}
    if len(bdev) == 1 and len(cdev) == 1 and bdev != cdev:
        key_cols.remove("device")
        warnings.append(f"aligned cases across devices: baseline {bdev.pop()} vs candidate {cdev.pop()}")
    diffs = fingerprint_differences(base, cand)
    warnings.extend(f"fingerprints differ: {d}" for d in diffs)
    coverage = fingerprint_coverage(base, cand)
    if coverage:
        warnings.append(coverage)
    bidx, cidx = _index(base, key_cols), _index(cand, key_cols)
    keys = list(bidx) + [k for k in cidx if k not in bidx]
    pools = {col: pooled_log_sd([v for k in keys for v in (_judged(bidx.get(k, []), col), _judged(cidx.get(k, []), col))])
             for col in ("latency_ms", "ratio_to_baseline")}
    deltas = []
    for k in keys:
        d = _delta(k, key_cols, bidx.get(k, []), cidx.get(k, []), len(base), len(cand), thr, alpha, noise_floor,
                   seed, pools)
        d = _normalized(d) if normalized else d
        deltas.append(dataclasses.replace(d, note="; ".join(n for n in (d.note, to_decide(d)) if n)))
    warnings.extend(noise_warnings(deltas))
    if any(d.method.startswith("samples") for d in deltas):
        warnings.append(f"one run per side: run-to-run drift cannot be measured, so the verdict assumes it is "
                        f"below the {noise_floor:.0%} noise floor; give >= 2 runs per side (e.g. 3, alternated "
                        f"base/head) for a test that sees it")
    settings = settings_differences(base, cand)
    warnings.extend(f"settings differ: {d}" for d in settings)
    return Comparison(deltas, [str(r.path) for r in base], [str(r.path) for r in cand], warnings, diffs, alpha,
                      noise_floor, settings)


def _judged(rows: list[tuple[Run, pd.Series]], col: str) -> list[float]:
    """The values of `col` in the rows a comparison judges (status ok, finite and > 0)."""
    out = []
    for _, row in rows:
        if row["status"] != schema.OK or col not in row:
            continue
        if col == "ratio_to_baseline" and str(row.get("case")) == str(row.get("baseline_case")):
            continue  # the reference case's ratio is 1 by construction: no noise to pool
        v = pd.to_numeric(row.get(col), errors="coerce")
        if v is not None and math.isfinite(float(v)) and float(v) > 0:
            out.append(float(v))
    return out


def noise_warnings(deltas: Sequence[Delta]) -> list[str]:
    """Advice when the measured run-to-run noise is too large for a threshold to be safe.

    With m and n runs, the log ratio's sd is sigma*sqrt(1/m + 1/n); below NOISE_SDS such sds, a
    threshold is crossed by noise alone often enough to matter over a suite of cases and many builds.
    """
    loud = []
    for d in deltas:
        if d.method.startswith("runs"):
            z = ratio_noise_sds(d.threshold, d.run_noise_pct, d.base_runs, d.cand_runs)
            if z < NOISE_SDS:  # False for nan
                loud.append((z, d))
    if not loud:
        return []
    z, d = min(loud, key=lambda t: t[0])
    return [f"run-to-run noise is high for the threshold: {len(loud)} case(s), e.g. {d.label}, whose median moves "
            f"{d.run_noise_pct:.1f}% (sd) between runs; with {d.base_runs}/{d.cand_runs} runs a "
            f"{d.threshold:.0%} threshold is only {z:.1f} sd of the ratio's noise, so noise alone may cross it. "
            f"Use more runs per side, a quieter machine, or thresholds from 'latbench calibrate'"]


def _delta(k: tuple, key_cols: list[str], b: list, c: list, nb: int, nc: int, thr: Callable, alpha: float,
           noise_floor: float, seed: int, pools: dict[str, tuple[float, int]] | None = None) -> Delta:
    """One case compared. pools: {column: (sd, df)} of the log run values pooled over every case of the
    comparison (pooled_log_sd), the floor of each case's run-to-run noise."""
    pools = pools or {}
    row0 = (b or c)[0][1]
    key = {col: _norm(row0[col]) for col in KEY_COLUMNS}
    if "device" not in key_cols and b and c:
        key["device"] = f"{_norm(b[0][1]['device'])}->{_norm(c[0][1]['device'])}"
    t = float(thr(key))
    base_case = str(row0.get("baseline_case", "")) if isinstance(row0.get("baseline_case"), str) else ""
    if not b or not c:
        side = "baseline" if not b else "candidate"
        present = b or c
        bad = [row for _, row in present if row["status"] == schema.FAILED]
        if bad and side == "baseline":  # new in the candidate, and it failed there: a failure, not a mere addition
            return Delta(key, "failed", t, base_runs=0, cand_runs=len(c) - len(bad), baseline_case=base_case,
                         failed_side="candidate",
                         note=f"failed in {len(bad)} candidate run(s) (not in the baseline): "
                              f"{str(bad[0].get('error', ''))}"[:300])
        return Delta(key, "missing", t, base_runs=len(b), cand_runs=len(c), baseline_case=base_case,
                     note=f"not in the {side}")
    # skipped rows (the device cannot run the case) are no measurement: the case is missing on that side
    skipped = {side: next((str(row.get("error", "")) for _, row in rows if row["status"] == schema.SKIPPED), None)
               for side, rows in (("baseline", b), ("candidate", c))}
    b = [(r, row) for r, row in b if row["status"] != schema.SKIPPED]
    c = [(r, row) for r, row in c if row["status"] != schema.SKIPPED]
    if not b or not c:
        sides = [side for side, rows in (("baseline", b), ("candidate", c)) if not rows]
        reason = skipped[sides[-1]]
        return Delta(key, "skipped" if len(sides) == 2 else "missing", t, base_runs=len(b), cand_runs=len(c), baseline_case=base_case,
                     note=f"skipped in the {' and '.join(sides)}" + (f": {reason}" if reason else ""))
    bok = [(r, row) for r, row in b if row["status"] == schema.OK]
    cok = [(r, row) for r, row in c if row["status"] == schema.OK]
    notes = []
    if len(cok) < len(c):
        err = next(str(row.get("error", "")) for _, row in c if row["status"] != schema.OK)
        return Delta(key, "failed", t, base_runs=len(bok), cand_runs=len(cok), baseline_case=base_case,
                     failed_side="candidate", note=f"failed in {len(c) - len(cok)} candidate run(s): {err}"[:300])
    if not bok:
        return Delta(key, "failed", t, cand_runs=len(cok), baseline_case=base_case, failed_side="baseline",
                     note="failed in every baseline run: nothing to compare with")
    if len(bok) < len(b):
        notes.append(f"failed in {len(b) - len(bok)} baseline run(s)")
    if len(bok) < nb or len(cok) < nc:
        notes.append(f"in {len(bok)}/{nb} baseline and {len(cok)}/{nc} candidate runs")
    bm = [float(row["latency_ms"]) for _, row in bok]
    cm = [float(row["latency_ms"]) for _, row in cok]
    changed = network_change(bok[0][1], cok[0][1])
    if changed:
        notes.insert(0, f"changed network: {changed}")
    bad = [(side, run, v) for side, rows, vals in (("baseline", bok, bm), ("candidate", cok, cm))
           for (run, _), v in zip(rows, vals) if not (math.isfinite(v) and v > 0)]
    if bad:
        side, run, v = bad[0]
        return Delta(key, "invalid", t, base_runs=len(bm), cand_runs=len(cm), baseline_case=base_case,
                     note=f"latency_ms = {v} in the {side} ({run.path.name}): not a finite positive time",
                     changed=changed)
    noise = log_sd_pct(bm, cm)
    if len(bm) + len(cm) >= 3:
        ratio, lo, hi, p, method = ratio_from_runs(bm, cm, alpha)
        pooled_sd, pooled_df = pools.get("latency_ms", (math.nan, 0))
        lo, hi, floored = floor_run_interval(ratio, lo, hi, len(bm), len(cm), pooled_sd, pooled_df, alpha)
        if floored:
            noise = max(noise, 100 * pooled_sd) if math.isfinite(noise) else 100 * pooled_sd
            notes.append(f"CI floored by the run noise pooled over all cases ({100 * pooled_sd:.1f}%, "
                         f"{pooled_df} df; this case's runs alone: "
                         f"{'-' if not math.isfinite(log_sd_pct(bm, cm)) else f'{log_sd_pct(bm, cm):.1f}%'})")
    else:
        bs, cs = _samples_of(*bok[0]), _samples_of(*cok[0])
        if bs.size == 0 or cs.size == 0:
            raise ResultsError(f"no raw samples for {'/'.join(map(str, k))}",
                               where=str((bok[0] if bs.size == 0 else cok[0])[0].path.name),
                               hint="the -samples.csv does not belong to this results file; re-run 'latbench run'")
        ratio, lo, hi = ratio_from_samples(bs, cs, alpha, noise_floor, seed)
        p, method = math.nan, "samples-bootstrap+floor"
    status, significant = classify(ratio, lo, hi, t)
    norm = _norm_ratio(bok, cok, alpha, pools.get("ratio_to_baseline", (math.nan, 0)))
    d = Delta(key, status, t, base_ms=geometric_mean(bm), cand_ms=geometric_mean(cm),
              ratio=ratio, ci_low=lo, ci_high=hi, p_value=p, significant=significant, method=method,
              base_runs=len(bm), cand_runs=len(cm), run_noise_pct=noise, baseline_case=base_case,
              norm_ratio=norm[0], norm_ci_low=norm[1], norm_ci_high=norm[2], note="; ".join(notes),
              changed=changed)
    return revoke_oversubscribed_pass(d, {"baseline": [row for _, row in bok], "candidate": [row for _, row in cok]})


# Columns that say which network a row measured: if they differ, the sides ran different networks.
NETWORK_COLUMNS = ("flops", "widths", "params")


def network_change(base_row: pd.Series, cand_row: pd.Series) -> str:
    """'' when the case measured the same network on both sides, else what differs, FLOPs change first
    (e.g. 'FLOPs 2.00M -> 3.05M (+52.6%)', 'widths 24,48 -> 32,64')."""
    out = []
    for col in NETWORK_COLUMNS:
        b, c = base_row.get(col), cand_row.get(col)
        if _blank(b) or _blank(c):
            continue
        if col in ("flops", "params"):
            bv, cv = float(b), float(c)
            if bv != cv:
                pct = f" ({100 * (cv / bv - 1):+.1f}%)" if bv > 0 else ""
                out.append(f"{'FLOPs' if col == 'flops' else 'params'} {_si(bv)} -> {_si(cv)}{pct}")
        elif str(b) != str(c):
            out.append(f"{col} {b} -> {c}")
    return ", ".join(out)


def _blank(v: Any) -> bool:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return True
    return isinstance(v, str) and not v.strip()


def _si(v: float) -> str:
    for unit, f in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= f:
            return f"{v / f:.2f}{unit}"
    return f"{v:g}"


def _normalized(d: Delta) -> Delta:
    """The Delta judged on its ratio to the reference case instead of its absolute latency."""
    if d.status in ("missing", "failed", "skipped", "invalid"):
        return d
    note = "; ".join(n for n in (d.note,) if n)
    if str(d.key.get("case")) == d.baseline_case:
        return dataclasses.replace(d, status="same", significant=False, method="reference",
                                   note=(note + "; " if note else "") + "reference case: not judged with --normalized")
    if not (math.isfinite(d.norm_ci_low) and math.isfinite(d.norm_ci_high)):
        return dataclasses.replace(d, note=(note + "; " if note else "") +
                                   "no normalized CI (needs >= 3 runs in all): judged on absolute latency")
    status, significant = classify(d.norm_ratio, d.norm_ci_low, d.norm_ci_high, d.threshold)
    return revoke_oversubscribed_pass(dataclasses.replace(d, status=status, significant=significant,
                                                          method="normalized-runs-welch"))


def _norm_ratio(b: list, c: list, alpha: float, pool: tuple[float, int] = (math.nan, 0)) -> tuple[float, float, float]:
    """Change of ratio_to_baseline (the case over its suite's baseline case, paired within each run), its
    CI floored by the run noise of ratio_to_baseline pooled over the cases (pool: sd, df)."""
    if str(b[0][1].get("case")) == str(b[0][1].get("baseline_case")) or "ratio_to_baseline" not in b[0][1]:
        return (math.nan, math.nan, math.nan)
    br = [float(x) for x in (pd.to_numeric(row.get("ratio_to_baseline"), errors="coerce") for _, row in b) if x > 0]
    cr = [float(x) for x in (pd.to_numeric(row.get("ratio_to_baseline"), errors="coerce") for _, row in c) if x > 0]
    if not br or not cr:
        return (math.nan, math.nan, math.nan)
    if len(br) + len(cr) < 3:
        return (cr[0] / br[0], math.nan, math.nan)
    r, lo, hi, _, _ = ratio_from_runs(br, cr, alpha)
    lo, hi, _ = floor_run_interval(r, lo, hi, len(br), len(cr), pool[0], pool[1], alpha)
    return (r, lo, hi)
