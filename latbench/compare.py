"""Join the result files of a baseline and a candidate on the case identity and say, per case, how much
slower or faster the candidate is, with a confidence interval that sees run-to-run noise.

Why runs, not samples: on a shared machine the median of one case moves by 4-17 % from one run to
the next, while the samples inside a run agree closely. A test on within-run samples would call that
drift a regression. So with >= 2 result files on a side, each run contributes ONE number per case (its
median) and the test is on those (Welch's t on log run-medians: the ratio's CI has the between-run
spread in it). With one file per side there is no between-run spread to measure; the within-run
bootstrap CI is then widened by a run-to-run noise floor (default 10 %, see DEFAULT_NOISE_FLOOR).
docs/compare-and-gate.md explains the design and how to calibrate it.
"""

from __future__ import annotations

import dataclasses

import glob
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

from latbench.errors import ResultsError
from latbench.records import KEY_COLUMNS, SAMPLE_COLUMNS
from latbench.results.files import meta_path, read_results, samples_path

DEFAULT_ALPHA = 0.05  # two-sided: a 95 % confidence interval for the ratio
# One run per side cannot show between-run drift; we assume it is at most this (as a factor on the
# ratio, applied to both CI ends). 10 % covers the 4-17 % run-to-run moves of a median measured on
# 2 shared cores in most runs; 'latbench calibrate' measures it for your machine.
DEFAULT_NOISE_FLOOR = 0.10
BOOTSTRAP_RESAMPLES = 2000
# compare warns when a threshold is fewer than this many sds of the ratio's run-to-run noise: at 3 sd
# a one-sided normal tail is 0.13 %, the false-alarm rate per case we aim for (see docs/compare-and-gate.md).
NOISE_SDS = 3.0
# Fingerprint fields that must agree for latencies to be comparable (pyperf's _CHECKED_METADATA).
FINGERPRINT_FIELDS = ("device", "cpu_model", "gpus", "gpu_driver", "torch", "threads")
STATUSES = ("slower", "faster", "same", "missing", "failed")


@dataclass(frozen=True)
class Run:
    """One result file with its raw samples and metadata (the three files 'latbench run' writes)."""

    path: Path
    rows: pd.DataFrame
    samples: pd.DataFrame
    meta: dict[str, Any]

    def fingerprint(self) -> dict[str, str]:
        """The FINGERPRINT_FIELDS of this run, as comparable strings."""
        fp = self.meta.get("fingerprint") or {}
        gpus = fp.get("gpus") or []
        return {"device": str(self.meta.get("device", "")), "cpu_model": str(fp.get("cpu_model", "")),
                "gpus": ", ".join(str(g.get("name", "")) for g in gpus) or "none",
                "gpu_driver": ", ".join(sorted({str(g.get("driver", "")) for g in gpus})) or "none",
                "torch": str(fp.get("torch", "")), "threads": str(self.meta.get("threads", ""))}


@dataclass(frozen=True)
class Delta:
    """One case compared: latencies in ms (geometric mean of the run medians), ratio candidate/baseline."""

    key: dict[str, Any]  # KEY_COLUMNS -> value
    status: str  # slower | faster | same | missing | failed
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

    @property
    def label(self) -> str:
        k = self.key
        return f"{k['suite']}/{k['case']}/x{k['scale']} {k['device']}/{k['mode']}/b{k['batch']}"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        key = d.pop("key")
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

    def by_status(self, status: str) -> list[Delta]:
        return [d for d in self.deltas if d.status == status]


# ---------------------------------------------------------------- reading

def expand_paths(specs: Sequence[str | Path]) -> list[Path]:
    """Files named directly, by glob pattern (quoted, so the shell did not expand it), by directory
    (every results CSV in it) or comma-separated. Raises ResultsError when a pattern matches nothing."""
    out: list[Path] = []
    for spec in specs:
        for part in [p for p in str(spec).split(",") if p.strip()]:
            p = Path(part.strip())
            if p.is_dir():
                found = sorted(q for q in p.glob("*.csv") if not q.name.endswith("-samples.csv"))
            elif p.exists():
                found = [p]
            else:
                found = sorted(Path(q) for q in glob.glob(part.strip()) if not q.endswith("-samples.csv"))
                if not found and not glob.has_magic(part):
                    raise ResultsError("no such results file", where=part,
                                       hint="give a results/*.csv written by 'latbench run'")
            if not found:
                raise ResultsError("matches no results CSV", where=part,
                                   hint="check the directory or pattern; results files end in .csv")
            out.extend(q for q in found if q not in out)
    return out


def load_run(path: str | Path) -> Run:
    """Read a results CSV plus its -samples.csv and .json. Every defect is a ResultsError (exit 2)."""
    p = Path(path)
    rows = read_results(p)
    if rows.empty:
        raise ResultsError("has no result rows", where=str(p), hint="re-run 'latbench run'; the run may have "
                                                                    "been interrupted before its first group")
    for col in ("status", "run_id"):
        if col not in rows.columns:
            raise ResultsError(f"not a latbench results file: missing column {col}", where=str(p),
                               hint="give the main results CSV written by 'latbench run'")
    rows = rows.copy()
    status = rows["status"].astype(str)
    odd = rows[~status.isin(["ok", "failed"])]
    if len(odd) or not p.read_bytes().endswith(b"\n"):
        line = int(odd.index[0]) + 2 if len(odd) else len(rows) + 1
        raise ResultsError(f"line {line} is incomplete: the file looks truncated", where=str(p),
                           hint="re-run 'latbench run' (or copy the file again)")
    rows["latency_ms"] = pd.to_numeric(rows["latency_ms"], errors="coerce")
    ok = rows["status"].astype(str) == "ok"
    bad = rows[ok & ~(rows["latency_ms"] > 0)]
    if len(bad):
        raise ResultsError(f"row {int(bad.index[0]) + 2} has status ok but no valid latency_ms "
                           f"({bad['latency_ms'].iloc[0]!r})", where=str(p),
                           hint="the file is damaged or truncated; re-run 'latbench run'")
    dup = rows.duplicated(list(KEY_COLUMNS), keep=False)
    if dup.any():
        raise ResultsError(f"case {_key_text(rows[dup].iloc[0])} appears twice", where=str(p),
                           hint="give each run's own file; do not concatenate result files")
    mp = meta_path(p)
    try:
        meta = json.loads(mp.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError("metadata file is missing", where=str(mp),
                           hint="keep the .json that 'latbench run' wrote beside the CSV") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"metadata is not readable JSON ({exc})", where=str(mp),
                           hint="re-run 'latbench run' to regenerate it") from None
    if not isinstance(meta, dict) or "fingerprint" not in meta:
        raise ResultsError("metadata has no fingerprint", where=str(mp),
                           hint="give the .json written by 'latbench run'")
    if meta.get("status") in ("running", "interrupted"):
        raise ResultsError(f"the run is {meta['status']}, its results are incomplete", where=str(p),
                           hint="wait for it to finish, or re-run 'latbench run'")
    sp = samples_path(p)
    try:
        samples = pd.read_csv(sp)
    except FileNotFoundError:
        raise ResultsError("raw samples file is missing", where=str(sp),
                           hint="keep the -samples.csv that 'latbench run' wrote beside the CSV") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise ResultsError(f"samples are not a readable CSV ({str(exc).splitlines()[0]})", where=str(sp),
                           hint="re-run 'latbench run' to regenerate it") from None
    missing = [c for c in SAMPLE_COLUMNS if c not in samples.columns]
    if missing:
        raise ResultsError(f"not a latbench samples file: missing columns {', '.join(missing)}", where=str(sp),
                           hint="re-run 'latbench run' to regenerate it")
    samples["latency_ms"] = pd.to_numeric(samples["latency_ms"], errors="coerce")
    return Run(p, rows, samples, meta)


def load_runs(specs: Sequence[str | Path], side: str) -> list[Run]:
    paths = expand_paths(specs)
    if not paths:
        raise ResultsError(f"no {side} results given", hint=f"name one or more results CSVs for the {side}")
    return [load_run(p) for p in paths]


def _key_text(row: Any) -> str:
    return "/".join(str(row[c]) for c in KEY_COLUMNS)


# ---------------------------------------------------------------- statistics (pure)

def ratio_from_runs(base_ms: Sequence[float], cand_ms: Sequence[float], alpha: float = DEFAULT_ALPHA
                    ) -> tuple[float, float, float, float, str]:
    """Ratio of geometric means of run medians, CI and p-value from a t-test on their logs.

    Both sides >= 2 runs: Welch (unequal variances). One side with a single run: pooled variance from
    the other side (Student). Returns (ratio, ci_low, ci_high, p_value, method).
    """
    x, y = np.log(np.asarray(base_ms, float)), np.log(np.asarray(cand_ms, float))
    d = float(y.mean() - x.mean())
    welch = len(x) >= 2 and len(y) >= 2
    method = "runs-welch" if welch else "runs-pooled"
    if np.ptp(x) == 0 and np.ptp(y) == 0:  # no spread at all (synthetic data): the ratio is exact
        return math.exp(d), math.exp(d), math.exp(d), (1.0 if d == 0 else 0.0), method
    res = _st.ttest_ind(y, x, equal_var=welch)
    ci = res.confidence_interval(1 - alpha)
    return math.exp(d), math.exp(float(ci.low)), math.exp(float(ci.high)), float(res.pvalue), method


def ratio_from_samples(base: Sequence[float], cand: Sequence[float], alpha: float = DEFAULT_ALPHA,
                       noise_floor: float = DEFAULT_NOISE_FLOOR, seed: int = 0) -> tuple[float, float, float]:
    """Ratio of medians of one run each, with a seeded percentile-bootstrap CI widened by noise_floor
    (ci_low / (1 + floor), ci_high * (1 + floor)): the drift between two runs that samples cannot show."""
    b, c = np.asarray(base, float), np.asarray(cand, float)
    ratio = float(np.median(c) / np.median(b))
    rng = np.random.default_rng(seed)
    mb = np.median(rng.choice(b, size=(BOOTSTRAP_RESAMPLES, b.size)), axis=1)
    mc = np.median(rng.choice(c, size=(BOOTSTRAP_RESAMPLES, c.size)), axis=1)
    lo, hi = np.quantile(mc / mb, [alpha / 2, 1 - alpha / 2])
    return ratio, float(lo) / (1 + noise_floor), float(hi) * (1 + noise_floor)


def classify(ratio: float, ci_low: float, ci_high: float, threshold: float) -> tuple[str, bool]:
    """(status, significant): slower only when the CI lies above 1 AND the ratio exceeds 1 + threshold;
    faster symmetrically (CI below 1 and ratio below 1 / (1 + threshold)); otherwise same."""
    if not all(math.isfinite(v) for v in (ratio, ci_low, ci_high)):
        return "same", False
    significant = ci_low > 1 or ci_high < 1
    if ci_low > 1 and ratio > 1 + threshold:
        return "slower", True
    if ci_high < 1 and ratio < 1 / (1 + threshold):
        return "faster", True
    return "same", significant


def _log_sd_pct(*groups: Sequence[float]) -> float:
    """Pooled sd of log values over groups of >= 2, in percent (nan without any such group)."""
    ss, df = 0.0, 0
    for g in groups:
        a = np.log(np.asarray(g, float))
        if a.size >= 2:
            ss += float(((a - a.mean()) ** 2).sum())
            df += a.size - 1
    return 100 * math.sqrt(ss / df) if df else math.nan


# ---------------------------------------------------------------- joining

def fingerprint_differences(base: Sequence[Run], cand: Sequence[Run]) -> list[str]:
    """Human lines naming each FINGERPRINT_FIELD whose values differ between (or within) the sides."""
    out = []
    for f in FINGERPRINT_FIELDS:
        bv = sorted({r.fingerprint()[f] for r in base})
        cv = sorted({r.fingerprint()[f] for r in cand})
        if bv != cv or len(bv) > 1:
            out.append(f"{f}: baseline {' / '.join(map(repr, bv))}, candidate {' / '.join(map(repr, cv))}")
    return out


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
    warnings: list[str] = []
    key_cols = list(KEY_COLUMNS)
    bdev = {str(d) for r in base for d in r.rows["device"]}
    cdev = {str(d) for r in cand for d in r.rows["device"]}
    if len(bdev) == 1 and len(cdev) == 1 and bdev != cdev:
        key_cols.remove("device")
        warnings.append(f"aligned cases across devices: baseline {bdev.pop()} vs candidate {cdev.pop()}")
    diffs = fingerprint_differences(base, cand)
    warnings.extend(f"fingerprints differ: {d}" for d in diffs)
    bidx, cidx = _index(base, key_cols), _index(cand, key_cols)
    deltas = []
    for k in list(bidx) + [k for k in cidx if k not in bidx]:
        d = _delta(k, key_cols, bidx.get(k, []), cidx.get(k, []), len(base), len(cand), thr, alpha, noise_floor,
                   seed)
        deltas.append(_normalized(d) if normalized else d)
    warnings.extend(noise_warnings(deltas))
    if any(d.method.startswith("samples") for d in deltas):
        warnings.append(f"one run per side: run-to-run drift cannot be measured, so the verdict assumes it is "
                        f"below the {noise_floor:.0%} noise floor; give >= 2 runs per side (e.g. 3, alternated "
                        f"base/head) for a test that sees it")
    return Comparison(deltas, [str(r.path) for r in base], [str(r.path) for r in cand], warnings, diffs, alpha,
                      noise_floor)


def noise_warnings(deltas: Sequence[Delta]) -> list[str]:
    """Advice when the measured run-to-run noise is too large for a threshold to be safe.

    With m and n runs, the log ratio's sd is sigma*sqrt(1/m + 1/n); below NOISE_SDS such sds, a
    threshold is crossed by noise alone often enough to matter over a suite of cases and many builds.
    """
    loud = []
    for d in deltas:
        if d.method.startswith("runs") and math.isfinite(d.run_noise_pct) and d.base_runs and d.cand_runs:
            sd = d.run_noise_pct / 100 * math.sqrt(1 / d.base_runs + 1 / d.cand_runs)
            if sd > 0 and math.log1p(d.threshold) / sd < NOISE_SDS:
                loud.append((math.log1p(d.threshold) / sd, d))
    if not loud:
        return []
    z, d = min(loud, key=lambda t: t[0])
    return [f"run-to-run noise is high for the threshold: {len(loud)} case(s), e.g. {d.label}, whose median moves "
            f"{d.run_noise_pct:.1f}% (sd) between runs; with {d.base_runs}/{d.cand_runs} runs a "
            f"{d.threshold:.0%} threshold is only {z:.1f} sd of the ratio's noise, so noise alone may cross it. "
            f"Use more runs per side, a quieter machine, or thresholds from 'latbench calibrate'"]


def _delta(k: tuple, key_cols: list[str], b: list, c: list, nb: int, nc: int, thr: Callable, alpha: float,
           noise_floor: float, seed: int) -> Delta:
    row0 = (b or c)[0][1]
    key = {col: _norm(row0[col]) for col in KEY_COLUMNS}
    if "device" not in key_cols and b and c:
        key["device"] = f"{_norm(b[0][1]['device'])}->{_norm(c[0][1]['device'])}"
    t = float(thr(key))
    base_case = str(row0.get("baseline_case", "")) if isinstance(row0.get("baseline_case"), str) else ""
    if not b or not c:
        side = "baseline" if not b else "candidate"
        return Delta(key, "missing", t, base_runs=len(b), cand_runs=len(c), baseline_case=base_case,
                     note=f"not in the {side}")
    bok = [(r, row) for r, row in b if str(row["status"]) == "ok"]
    cok = [(r, row) for r, row in c if str(row["status"]) == "ok"]
    notes = []
    if len(cok) < len(c):
        err = next(str(row.get("error", "")) for _, row in c if str(row["status"]) != "ok")
        return Delta(key, "failed", t, base_runs=len(bok), cand_runs=len(cok), baseline_case=base_case,
                     note=f"failed in {len(c) - len(cok)} candidate run(s): {err}"[:300])
    if not bok:
        return Delta(key, "failed", t, cand_runs=len(cok), baseline_case=base_case,
                     note="failed in every baseline run: nothing to compare with")
    if len(bok) < len(b):
        notes.append(f"failed in {len(b) - len(bok)} baseline run(s)")
    if len(bok) < nb or len(cok) < nc:
        notes.append(f"in {len(bok)}/{nb} baseline and {len(cok)}/{nc} candidate runs")
    bm = [float(row["latency_ms"]) for _, row in bok]
    cm = [float(row["latency_ms"]) for _, row in cok]
    if len(bm) + len(cm) >= 3:
        ratio, lo, hi, p, method = ratio_from_runs(bm, cm, alpha)
    else:
        bs, cs = _samples_of(*bok[0]), _samples_of(*cok[0])
        if bs.size == 0 or cs.size == 0:
            raise ResultsError(f"no raw samples for {'/'.join(map(str, k))}",
                               where=str((bok[0] if bs.size == 0 else cok[0])[0].path.name),
                               hint="the -samples.csv does not belong to this results file; re-run 'latbench run'")
        ratio, lo, hi = ratio_from_samples(bs, cs, alpha, noise_floor, seed)
        p, method = math.nan, "samples-bootstrap+floor"
    status, significant = classify(ratio, lo, hi, t)
    norm = _norm_ratio(bok, cok, alpha)
    return Delta(key, status, t, base_ms=float(np.exp(np.log(bm).mean())), cand_ms=float(np.exp(np.log(cm).mean())),
                 ratio=ratio, ci_low=lo, ci_high=hi, p_value=p, significant=significant, method=method,
                 base_runs=len(bm), cand_runs=len(cm), run_noise_pct=_log_sd_pct(bm, cm), baseline_case=base_case,
                 norm_ratio=norm[0], norm_ci_low=norm[1], norm_ci_high=norm[2], note="; ".join(notes))


def _normalized(d: Delta) -> Delta:
    """The Delta judged on its ratio to the reference case instead of its absolute latency."""
    if d.status in ("missing", "failed"):
        return d
    note = "; ".join(n for n in (d.note,) if n)
    if str(d.key.get("case")) == d.baseline_case:
        return dataclasses.replace(d, status="same", significant=False, method="reference",
                                   note=(note + "; " if note else "") + "reference case: not judged with --normalized")
    if not (math.isfinite(d.norm_ci_low) and math.isfinite(d.norm_ci_high)):
        return dataclasses.replace(d, note=(note + "; " if note else "") +
                                   "no normalized CI (needs >= 3 runs in all): judged on absolute latency")
    status, significant = classify(d.norm_ratio, d.norm_ci_low, d.norm_ci_high, d.threshold)
    return dataclasses.replace(d, status=status, significant=significant, method="normalized-runs-welch")


def _norm_ratio(b: list, c: list, alpha: float) -> tuple[float, float, float]:
    """Change of ratio_to_baseline (the case over its suite's baseline case, paired within each run)."""
    if str(b[0][1].get("case")) == str(b[0][1].get("baseline_case")) or "ratio_to_baseline" not in b[0][1]:
        return (math.nan, math.nan, math.nan)
    br = [float(x) for x in (pd.to_numeric(row.get("ratio_to_baseline"), errors="coerce") for _, row in b) if x > 0]
    cr = [float(x) for x in (pd.to_numeric(row.get("ratio_to_baseline"), errors="coerce") for _, row in c) if x > 0]
    if not br or not cr:
        return (math.nan, math.nan, math.nan)
    if len(br) + len(cr) < 3:
        return (cr[0] / br[0], math.nan, math.nan)
    r, lo, hi, _, _ = ratio_from_runs(br, cr, alpha)
    return (r, lo, hi)
