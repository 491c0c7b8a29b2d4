"""Statistics behind `latbench report`: does each ShuffleNet V2 guideline hold on this hardware, how do
our relative speeds compare with the paper's Tables 1-4, and which cost predicts latency best.

Effect sizes are paired latency ratios (case / baseline) from interleaved rounds: the samples file
pairs every case's samples by round, so machine drift cancels in each per-round ratio. Rounds from
several runs of the same suite on the same device are pooled. The CI is the distribution-free 95 %
CI of the median ratio (stats.median_ci); `share_slower` is the share of rounds in which the case was
slower than its baseline (a common-language effect size). No rendering here (see report_md, plots).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
from scipy import stats as _st

from latbench.errors import ResultsError
from latbench.stats import median_ci
from latbench.results.files import meta_path, read_json_object, read_results, samples_path


@dataclass(frozen=True)
class Claim:
    """A guideline's claim as a test: each key case against the baseline, in one direction."""

    guideline: str
    text: str
    baseline: str
    keys: tuple[str, ...]
    slower: bool  # True: key cases should be slower than the baseline (ratio > 1); False: faster
    paper: str  # what the paper measured, for the report


CLAIMS = {
    "G1": Claim("G1", "equal channel widths (1:1) are fastest at fixed FLOPs", "1:1", ("1:2", "1:6", "1:12"), True,
                "1:1 fastest in every column; 1:12 ran at 0.51-0.70x (GPU) and 0.70-0.83x (ARM) the speed of 1:1"),
    "G2": Claim("G2", "more groups are slower at fixed FLOPs (g=8 vs g=1)", "g=1", ("g=8",), True,
                "g=8 at 0.26-0.53x the speed of g=1 on GPU, 0.70-0.78x on ARM"),
    "G3": Claim("G3", "fragmented blocks (4 small convs) are slower than one conv at fixed FLOPs", "1-fragment",
                ("4-fragment-series", "4-fragment-parallel"), True,
                "4 fragments at 0.28-0.80x the speed of 1 on GPU, 0.83-1.00x on ARM"),
    "G4": Claim("G4", "removing ReLU and shortcut (zero-FLOP element-wise ops) makes a unit faster", "relu+shortcut",
                ("neither",), False, "about +20 % speed without both (GPU +15 to +24 %, ARM +8 to +20 %)"),
}

# Our G4 case names -> the paper's Table 4 settings (other guidelines use the paper's names).
PAPER_SETTING = {"relu+shortcut": "relu=yes;shortcut=yes", "shortcut-only": "relu=no;shortcut=yes",
                 "relu-only": "relu=yes;shortcut=no", "neither": "relu=no;shortcut=no"}


@dataclass
class ResultSet:
    """Rows of several results files, each labelled with its device, plus their raw samples."""

    rows: pd.DataFrame
    samples: pd.DataFrame
    meta: dict[str, dict[str, Any]]  # run_id -> metadata JSON
    files: list[Path] = field(default_factory=list)


def results_paths(paths: Iterable[str | Path]) -> list[Path]:
    """The main results CSVs among paths (a shell glob results/*.csv also matches *-samples.csv)."""
    out = [Path(p) for p in paths if not str(p).endswith("-samples.csv")]
    if not out:
        raise ResultsError("no results files given", hint="pass results/*.csv written by 'latbench run'")
    return out


def load(paths: Iterable[str | Path]) -> ResultSet:
    frames, sample_frames, meta, files = [], [], {}, results_paths(paths)
    for p in files:
        df = read_results(p)
        m = read_json_object(meta_path(p))
        for run_id in df["run_id"].dropna().unique():
            meta[str(run_id)] = m
        df["device_label"] = device_label(m, df)
        df["platform_widths"] = m.get("platform_widths") or ("gpu" if (df["device"] == "cuda").any() else "arm")
        df["file"] = p.name
        frames.append(df)
        sp = samples_path(p)
        if sp.is_file():
            sample_frames.append(pd.read_csv(sp))
    rows = pd.concat(frames, ignore_index=True)
    samples = pd.concat(sample_frames, ignore_index=True) if sample_frames else pd.DataFrame(
        columns=["run_id", "suite", "experiment", "case", "scale", "device", "mode", "batch", "round", "latency_ms"])
    for col in ("run_id", "case", "experiment", "suite", "mode", "device"):
        rows[col] = rows[col].astype(str)
        samples[col] = samples[col].astype(str)
    return ResultSet(rows=rows, samples=samples, meta=meta, files=files)


def device_label(meta: dict[str, Any], df: pd.DataFrame) -> str:
    """'cpu: AMD EPYC, 1 thread(s)' or 'cuda: NVIDIA A10G': rows with one label are comparable."""
    device = meta.get("device") or (str(df["device"].iloc[0]) if len(df) else "?")
    if device == "cuda":
        return f"cuda: {(meta.get('device_settings') or {}).get('cuda_device_name', 'GPU')}"
    cpu = (meta.get("fingerprint") or {}).get("cpu_model", "CPU")
    threads = meta.get("threads") or (df["threads"].iloc[0] if "threads" in df and len(df) else "?")
    return f"cpu: {cpu}, {threads} thread(s)"


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


# --- paired ratios -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One case against its baseline at one scale, on one device and mode."""

    device_label: str
    mode: str
    experiment: str
    case: str
    baseline: str
    scale: int
    ratio: float  # latency ratio case / baseline (median of per-round ratios)
    ci_low: float
    ci_high: float
    n: int  # paired rounds
    share_slower: float  # share of rounds the case was slower than the baseline (nan without samples)
    paper_speed: dict[str, float]  # platform -> the paper's relative speed (baseline = 1)

    @property
    def speed(self) -> float:
        """Relative speed as the paper's tables give it: baseline = 1, higher is faster."""
        return 1 / self.ratio if self.ratio > 0 else math.nan

    @property
    def significant(self) -> int:
        """+1 significantly slower than the baseline, -1 significantly faster, 0 CI includes 1."""
        return 1 if self.ci_low > 1 else (-1 if self.ci_high < 1 else 0)


def comparisons(rs: ResultSet) -> list[Comparison]:
    """Every ok row against its baseline (the baseline itself included, ratio 1)."""
    paper = paper_table()
    out = []
    ok = rs.rows[rs.rows["status"] == "ok"]
    for (label, mode, exp, scale), g in ok.groupby(["device_label", "mode", "experiment", "scale"], sort=True):
        base = str(g["baseline_case"].iloc[0])
        for case in dict.fromkeys(g["case"]):
            r, lo, hi, n, share = _pooled_ratio(rs, g, case, base)
            ps = {p: paper_speed(paper, exp, case, base, int(scale), p) for p in ("arm", "gpu")}
            out.append(Comparison(label, mode, exp, case, base, int(scale), r, lo, hi, n, share,
                                  {p: v for p, v in ps.items() if v is not None}))
    return out


def _pooled_ratio(rs: ResultSet, g: pd.DataFrame, case: str, base: str) -> tuple[float, float, float, int, float]:
    """Per-round ratios pooled over runs; falls back to the row's own ratio columns without samples."""
    if case == base:
        return 1.0, 1.0, 1.0, int(g["samples"].max() if "samples" in g else 0), math.nan
    s = rs.samples
    runs = set(g["run_id"])
    key = (s["run_id"].isin(runs) & (s["experiment"] == g["experiment"].iloc[0])
           & (s["scale"] == g["scale"].iloc[0]) & (s["mode"] == g["mode"].iloc[0]))
    sub = s[key]
    a = sub[sub["case"] == case].set_index(["run_id", "round"])["latency_ms"]
    b = sub[sub["case"] == base].set_index(["run_id", "round"])["latency_ms"]
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    joined = joined[joined["b"] > 0]
    if len(joined):
        ratios = (joined["a"] / joined["b"]).to_numpy()
        lo, hi = median_ci(ratios)
        return float(np.median(ratios)), lo, hi, len(ratios), float(np.mean(ratios > 1))
    row = g[g["case"] == case].iloc[-1]
    return (_f(row.get("ratio_to_baseline")), _f(row.get("ratio_ci_low")), _f(row.get("ratio_ci_high")),
            int(_f(row.get("samples")) if math.isfinite(_f(row.get("samples"))) else 0), math.nan)


def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


# --- the paper's tables --------------------------------------------------------------------------


def paper_table() -> pd.DataFrame:
    """Tables 1-4 (packaged), with `scale` 1/2/4: x1/x2/x4 (Tables 1-2) or c, 2c, 4c (Tables 3-4)."""
    with resources.files("latbench").joinpath("data/shufflenetv2_tables.csv").open() as f:
        df = pd.read_csv(f)
    scale = df["flops_scale"].str.removeprefix("x").astype(float)
    smallest = df.groupby(["experiment", "setting", "platform"])["channels"].transform("min")
    df["scale"] = scale.fillna(df["channels"] / smallest).round().astype(int)
    return df


def paper_speed(paper: pd.DataFrame, experiment: str, case: str, baseline: str, scale: int,
                platform: str) -> float | None:
    """The paper's speed of `case` relative to `baseline` (throughput ratio), or None if not in it."""
    def value(name: str) -> float | None:
        hit = paper[(paper["experiment"] == experiment) & (paper["setting"] == PAPER_SETTING.get(name, name))
                    & (paper["scale"] == scale) & (paper["platform"] == platform)]
        return float(hit["value"].iloc[0]) if len(hit) else None

    v, b = value(case), value(baseline)
    return v / b if v is not None and b else None


# --- verdicts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Does a guideline hold on one device: per scale and overall, with the key comparisons."""

    guideline: str
    device_label: str
    mode: str
    claim: Claim
    verdict: str  # holds | mixed | does not hold | inconclusive
    per_scale: dict[int, str]
    key: list[Comparison]  # the claim's key comparisons, every scale
    all: list[Comparison]  # every case of the guideline, every scale


def verdicts(comps: list[Comparison]) -> list[Verdict]:
    out = []
    groups: dict[tuple[str, str, str], list[Comparison]] = {}
    for c in comps:
        groups.setdefault((c.experiment, c.device_label, c.mode), []).append(c)
    for (exp, label, mode), cs in sorted(groups.items()):
        claim = CLAIMS.get(exp)
        if claim is None:
            continue
        key = [c for c in cs if c.case in claim.keys and c.baseline == claim.baseline]
        if not key:
            continue
        want = 1 if claim.slower else -1
        per_scale = {}
        for scale in sorted({c.scale for c in key}):
            signs = [c.significant for c in key if c.scale == scale]
            per_scale[scale] = ("holds" if all(s == want for s in signs) else
                                "does not hold" if any(s == -want for s in signs) else "inconclusive")
        states = set(per_scale.values())
        overall = (states.pop() if len(states) == 1 else
                   "mixed" if "holds" in states or "does not hold" in states else "inconclusive")
        out.append(Verdict(exp, label, mode, claim, overall, per_scale, key, cs))
    return out


# --- predictors ----------------------------------------------------------------------------------

PREDICTORS = {"FLOPs": "flops", "MAC": "mac_bytes", "roofline time": "roofline_bound_ms"}


@dataclass(frozen=True)
class PredictorScore:
    device_label: str
    mode: str
    predictor: str
    rho_all: float  # Spearman rho over every row of the device
    n_all: int
    rho_within: float  # mean rho within fixed-FLOPs groups (experiment x scale x run)
    groups: int


def predictor_scores(rs: ResultSet) -> list[PredictorScore]:
    """Spearman rho of each predictor against measured latency, per device and mode.

    Across all rows FLOPs mostly measures network size (x1/x2/x4 differ 16x); the within-group rho is
    the guidelines' question: at (about) fixed FLOPs, which cost ranks the cases? A predictor that is
    constant within a group cannot rank it and scores 0 there.
    """
    out = []
    ok = rs.rows[(rs.rows["status"] == "ok")]
    for (label, mode), g in ok.groupby(["device_label", "mode"], sort=True):
        for name, col in PREDICTORS.items():
            if col not in g or g[col].isna().all():
                continue
            rho_all = _spearman(g[col], g["latency_ms"])
            within = [_spearman(h[col], h["latency_ms"]) for _, h in g.groupby(["run_id", "experiment", "scale"])
                      if len(h) >= 3]
            within = [r for r in within if math.isfinite(r)]
            out.append(PredictorScore(str(label), str(mode), name, rho_all, len(g),
                                      float(np.mean(within)) if within else math.nan, len(within)))
    return out


def _spearman(x: pd.Series, y: pd.Series) -> float:
    x, y = pd.to_numeric(x, errors="coerce"), pd.to_numeric(y, errors="coerce")
    keep = x.notna() & y.notna()
    x, y = x[keep], y[keep]
    if len(x) < 3:
        return math.nan
    if x.nunique() == 1:
        return 0.0 if y.nunique() > 1 else math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(_st.spearmanr(x, y).statistic)


# --- telemetry -----------------------------------------------------------------------------------


def flag_counts(rs: ResultSet) -> pd.DataFrame:
    """Rows per device, and how many were measured throttled or under load."""
    df = rs.rows.copy()
    for col in ("throttled", "under_load"):
        df[col] = df[col].astype(str).str.lower().eq("true") if col in df else False
    return (df.groupby("device_label").agg(rows=("case", "size"), throttled=("throttled", "sum"),
                                           under_load=("under_load", "sum")).reset_index())


def ceilings(rs: ResultSet) -> dict[str, dict[str, Any]]:
    """device label -> the roofline ceilings recorded in the runs' metadata."""
    out = {}
    for run_id, m in rs.meta.items():
        if m.get("roofline"):
            labels = rs.rows.loc[rs.rows["run_id"] == run_id, "device_label"]
            if len(labels):
                out[str(labels.iloc[0])] = m["roofline"]
    return out
