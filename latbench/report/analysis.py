"""What `latbench report` judges: each suite's claims (from its YAML `claims:`, judged by the one claims
engine, latbench/claims.py), every case's effect against its baseline, how our relative speeds compare
with the ShuffleNet V2 paper's Tables 1-4 (G1-G4 only). Which cost predicts latency: report/predictors.py.

Effect sizes are paired latency ratios (case / baseline) from interleaved rounds: the samples file
pairs every case's samples by round, so machine drift cancels in each per-round ratio. Rounds from
several runs of the same suite on the same device are pooled, paired by (run, round). The ratio and its
distribution-free 95 % CI come from stats.paired_ratio; `share_slower` is the share of rounds in which the case was
slower than its baseline (a common-language effect size). No rendering here (see markdown, plots).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import yaml
from pydantic import ValidationError

from latbench.claims import ClaimModel, check_claims, control_fdr, group_value, overall
from latbench.errors import ResultsError
from latbench.stats import Pooled, paired_ratio, pool_processes, pooled_interval_name, share_slower
from latbench.results.read import read_runs


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


def load(paths: Iterable[str | Path]) -> ResultSet:
    """Every run among paths (results CSVs, their samples/metadata files, directories, globs), read
    leniently by the results layer: an interrupted run is read as far as it got."""
    runs = read_runs(list(paths), strict=False)
    frames, sample_frames, meta = [], [], {}
    for run in runs:
        df = run.rows.copy()
        for run_id in df["run_id"].dropna().unique():
            meta[str(run_id)] = run.meta
        df["device_label"] = device_labels(run.meta, df)
        df["platform_widths"] = run.meta.get("platform_widths") or "arm"  # every run since schema 1 records it
        df["file"] = run.path.name
        df["run_status"] = run.status
        frames.append(df)
        sample_frames.append(run.samples)
    rows = pd.concat(frames, ignore_index=True)
    samples = pd.concat(sample_frames, ignore_index=True)
    return ResultSet(rows=rows, samples=samples, meta=meta, files=[r.path for r in runs])


def device_label(meta: dict[str, Any], df: pd.DataFrame) -> str:
    """'cpu: AMD EPYC, 1 thread(s)' or 'cuda: NVIDIA A10G': rows with one label are comparable."""
    device = meta.get("device") or (str(df["device"].iloc[0]) if len(df) else "?")
    gpu = (meta.get("device_settings") or {}).get("cuda_device_name")  # recorded by GPU devices only
    if gpu:
        return f"{device}: {gpu}"
    cpu = (meta.get("fingerprint") or {}).get("cpu_model", "CPU")
    threads = meta.get("threads") or (df["threads"].iloc[0] if "threads" in df and len(df) else "?")
    return f"cpu: {cpu}, {threads} thread(s)"


def device_labels(meta: dict[str, Any], df: pd.DataFrame) -> pd.Series:
    """Each row's device_label: the run's (device_label), with the device model the row names (schema 5:
    a run merged from shards or measured on a Ray fleet holds rows of several machines), prefixed by the
    Ray device pool that measured it (`run --on ray --devices`): one report column per device."""
    from latbench.results.schema import identity_of_meta

    base, known = device_label(meta, df), identity_of_meta(meta)["device_name"]
    fleet = meta.get("fleet") if isinstance(meta.get("fleet"), dict) else {}
    pool = str(fleet.get("target") or "")
    prefix = f"{pool}: " if pool and pool != str(meta.get("device") or "") else ""
    names = df["device_name"] if "device_name" in df.columns else pd.Series("", index=df.index, dtype=object)

    def label(name: Any) -> str:
        name = "" if name is None or (isinstance(name, float) and math.isnan(name)) else str(name).strip()
        if not name or name == known:
            return prefix + base
        return prefix + (base.replace(known, name, 1) if known and known in base else f"{base} [{name}]")

    return names.map(label)


def slug(label: str) -> str:
    """'cpu: AMD EPYC, 1 thread(s)' -> 'cpu-amd-epyc-1-thread' (no stray '-s-' from a plural '(s)')."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower().replace("(s)", "")).strip("-")


# --- paired ratios -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseEffect:
    """One case's effect against its baseline at one scale, on one device and mode."""

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
    point: dict[str, Any] = field(default_factory=dict)  # the sweep point: batch, dtype, memory_format, threads
    row: dict[str, Any] = field(default_factory=dict, compare=False)  # the case's result row (the last run's)
    # measured in several processes (--repeats workers, or several runs): pooled hierarchically
    processes: int = 1  # processes (run x worker) the ratio pools; 1: rounds of one process
    spread_pct: float = math.nan  # max/min - 1 of the processes' ratios, in %
    unstable: bool = False  # the ratio moved between processes more than one process's interval

    @property
    def interval(self) -> str:
        """How ci_low/ci_high were made (stats.INTERVALS)."""
        return pooled_interval_name(self.processes)

    @property
    def speed(self) -> float:
        """Relative speed as the paper's tables give it: baseline = 1, higher is faster."""
        return 1 / self.ratio if self.ratio > 0 else math.nan


POINT_FIELDS = ("batch", "dtype", "memory_format", "threads")  # a sweep point (with scale and mode)


def case_effects(rs: ResultSet) -> list[CaseEffect]:
    """Every ok row against its baseline (the baseline itself included, ratio 1), per scale and sweep point."""
    paper = paper_table()
    out = []
    ok = rs.rows[rs.rows["status"] == "ok"]
    point = [f for f in POINT_FIELDS if f in ok]
    for keys, g in ok.groupby(["device_label", "mode", "experiment", "scale", *point], sort=True, dropna=False):
        label, mode, exp, scale = keys[:4]
        base = str(g["baseline_case"].iloc[0])
        for case in dict.fromkeys(g["case"]):
            r, lo, hi, n, share, pooled = _pooled_ratio(rs, g, case, base)
            ps = {p: paper_speed(paper, exp, case, base, int(scale), p) for p in ("arm", "gpu")}
            rows = g[g["case"] == case]
            flagged = bool(rows["ratio_unstable"].eq(True).any()) if "ratio_unstable" in rows else False
            out.append(CaseEffect(label, mode, exp, case, base, int(scale), r, lo, hi, n, share,
                                  {p: v for p, v in ps.items() if v is not None}, dict(zip(point, keys[4:])),
                                  rows.iloc[-1].to_dict(),
                                  processes=pooled.n_processes if pooled else 1,
                                  spread_pct=100 * pooled.spread_rel if pooled else _f(rows.iloc[-1].get(
                                      "ratio_process_spread_pct")),
                                  unstable=(pooled.unstable if pooled else flagged) and case != base))
    return out


def _pooled_ratio(rs: ResultSet, g: pd.DataFrame, case: str, base: str
                  ) -> tuple[float, float, float, int, float, Pooled | None]:
    """Per-round ratios paired by run and round; falls back to the row's own ratio columns without
    samples. Samples from several processes (--repeats workers, or several runs): the ratio and CI are
    pooled hierarchically over the processes (stats.pool_processes, returned last; None otherwise)."""
    if case == base:
        return 1.0, 1.0, 1.0, int(g["samples"].max() if "samples" in g else 0), math.nan, None
    s = rs.samples
    runs = set(g["run_id"])
    key = (s["run_id"].isin(runs) & (s["experiment"] == g["experiment"].iloc[0])
           & (s["scale"] == g["scale"].iloc[0]) & (s["mode"] == g["mode"].iloc[0]))
    for f in POINT_FIELDS:  # the group's sweep point, where the samples file records it
        if f in s and f in g and s[f].notna().any():
            key &= s[f].map(group_value) == group_value(g[f].iloc[0])
    sub = s[key]
    a, b = sub[sub["case"] == case], sub[sub["case"] == base]
    rounds_a = list(zip(a["run_id"], a["round"]))
    rounds_b = list(zip(b["run_id"], b["round"]))
    ratio = paired_ratio(a["latency_ms"].tolist(), rounds_a, b["latency_ms"].tolist(), rounds_b)  # type: ignore[arg-type]
    if ratio.n:
        share = share_slower(a["latency_ms"].tolist(), rounds_a, b["latency_ms"].tolist(), rounds_b)
        pooled = _pool_over_processes(a, b, (ratio.ci_low, ratio.ci_high))
        if pooled is not None:
            return pooled.value, pooled.ci_low, pooled.ci_high, ratio.n, share, pooled
        return ratio.value, ratio.ci_low, ratio.ci_high, ratio.n, share, None
    row = g[g["case"] == case].iloc[-1]
    return (_f(row.get("ratio_to_baseline")), _f(row.get("ratio_ci_low")), _f(row.get("ratio_ci_high")),
            int(_f(row.get("samples")) if math.isfinite(_f(row.get("samples"))) else 0), math.nan, None)


def _pool_over_processes(a: pd.DataFrame, b: pd.DataFrame, all_rounds: tuple[float, float] | None = None
                         ) -> Pooled | None:
    """The paired ratio of case samples `a` to baseline samples `b` per process (run x `process`
    column), pooled across processes (the interval of all rounds pooled, `all_rounds`, as its floor);
    None with fewer than two processes that pair."""
    unit = ["run_id", "process"] if "process" in a and "process" in b else ["run_id"]
    per = []
    for key, au in a.groupby(unit, sort=True, dropna=False):
        bu = b
        for col, v in zip(unit, key if isinstance(key, tuple) else (key,)):
            bu = bu[bu[col] == v]
        r = paired_ratio(au["latency_ms"].tolist(), au["round"].tolist(), bu["latency_ms"].tolist(),
                         bu["round"].tolist())
        if r.n:
            per.append(r)
    return pool_processes(per, pooled=all_rounds) if len(per) >= 2 else None


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


# --- suites and their claims ---------------------------------------------------------------------


PAPER_EXPERIMENTS = ("G1", "G2", "G3", "G4")  # the experiments of the paper's Tables 1-4
SUITES_DIR = Path(__file__).resolve().parents[2] / "suites"  # the suites shipped in the source tree


@dataclass(frozen=True)
class SuiteInfo:
    """A suite found in the results, with the claims its YAML states."""

    name: str
    experiment: str
    description: str
    claims: tuple[ClaimModel, ...]
    source: str | None  # the suite file the claims were read from; None when none was found


def suites(rs: ResultSet) -> list[SuiteInfo]:
    """The suites the results hold, in order of appearance. Claims come from the suite file the run
    recorded (metadata suite.path), else suites/NAME.yaml here or in latbench's source tree."""
    out = []
    for name, g in rs.rows.groupby("suite", sort=False):
        meta = next((rs.meta[r] for r in g["run_id"] if r in rs.meta), {})
        recorded = meta.get("suite") if isinstance(meta.get("suite"), dict) else {}
        experiment = str(g["experiment"].iloc[0])
        description = str(recorded.get("description") or "")
        candidates = [recorded.get("path"), f"suites/{name}.yaml", SUITES_DIR / f"{name}.yaml"]
        claims: tuple[ClaimModel, ...] = ()
        source = None
        for c in candidates:
            if c and Path(c).is_file():
                data = _suite_yaml(Path(c))
                if data.get("suite", Path(c).stem) != name:
                    continue
                claims, source = _claims(data, Path(c)), str(c)
                description = description or str(data.get("description") or "")
                break
        out.append(SuiteInfo(str(name), experiment, " ".join(description.split()), claims, source))
    return out


def _suite_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ResultsError(f"cannot read the suite's claims: {exc}", where=str(path),
                           hint="fix the suite file (latbench run checks it) or move it out of the way") from None
    return data if isinstance(data, dict) else {}


def _claims(data: dict[str, Any], path: Path) -> tuple[ClaimModel, ...]:
    out = []
    for j, c in enumerate(data.get("claims") or []):
        try:
            out.append(ClaimModel.model_validate(c))
        except ValidationError as exc:
            msg = exc.errors()[0]["msg"] if exc.errors() else str(exc)
            raise ResultsError(f"claims[{j}] is not a valid claim: {msg}", where=str(path),
                               hint="see docs/suites.md, 'claims'") from None
    return tuple(out)


@dataclass(frozen=True)
class ClaimResult:
    """One claim of a suite judged on one device and mode: overall and per group (scale x sweep point)."""

    suite: str
    device_label: str
    mode: str
    claim: ClaimModel
    verdict: str  # holds[, smaller|larger than the paper] | equivalent | fails | unclear | mixed (groups disagree)
    groups: list[dict[str, Any]]  # claims.check_claims rows: ratio, CI, rounds and verdict per group


def judge_claims(rs: ResultSet, infos: list[SuiteInfo]) -> list[ClaimResult]:
    """Every suite's claims, judged by the claims engine on the rounds of all runs of that suite on
    one device (paired by run and round); the false-discovery rate is controlled over all of them."""
    claims = {i.name: i.claims for i in infos}
    ok = rs.rows[rs.rows["status"] == "ok"]
    found = []
    for (suite, label), g in ok.groupby(["suite", "device_label"], sort=False):
        if not claims.get(str(suite)):
            continue
        s = rs.samples[rs.samples["run_id"].isin(set(g["run_id"])) & (rs.samples["suite"] == suite)]
        rows, samples = g.to_dict("records"), s.to_dict("records")
        for claim in claims[str(suite)]:
            judged = check_claims([claim], rows, samples, str(g["device"].iloc[0]))
            for mode in dict.fromkeys(str(v["mode"]) for v in judged):
                found.append((str(suite), str(label), mode, claim, [v for v in judged if str(v["mode"]) == mode]))
    control_fdr([v for *_, vs in found for v in vs])  # the report's verdicts are one family (issue 24)
    return [ClaimResult(suite, label, mode, claim, overall(v["verdict"] for v in vs), vs)
            for suite, label, mode, claim, vs in found]


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
