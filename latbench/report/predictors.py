"""Which cost predicts latency: the one ranking of predictors in `latbench report` (issue 24, item 4).

Every predictor the rows carry (FLOPs, MAC, activations, parameters, roofline time) is ranked against
measured latency by Spearman's rho and Kendall's tau with seeded bootstrap 95 % intervals
(stats.rank_correlation), per device and mode, in up to two scopes:

- **within fixed-FLOPs groups**: one group per suite x experiment x scale x sweep point (the networks
  suite: per Table 8 complexity group, ~40/140/300/500 M). A case's latency and costs are their medians
  over the runs, so a group counts once however many runs measured it. The coefficient is the mean of
  the within-group coefficients over the groups of >= 3 cases; its interval resamples whole groups (it
  says how much the mean depends on which groups were measured; each group's coefficient is taken as
  measured).
- **across networks** (the networks suite's cases, experiment `table8`): one pair per network; the
  interval resamples networks.

Beside each: the paired difference of its Spearman's rho from FLOPs' over the same resamples. And a
held-out check per scope: the groups (networks) are split deterministically into two halves, the
predictor with the highest rho on the first half is chosen, and its rho is reported on the second half
only. No rendering beyond the cells and sentences both renderers print (markdown, terminal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from latbench.records import RankCorrelation
from latbench.report.table8 import EXPERIMENT as NETWORKS, GROUPS as NETWORK_GROUPS, paper_table8
from latbench.stats import rank_correlation

PREDICTORS = {"FLOPs": "flops", "MAC": "mac_bytes", "activations": "activations", "parameters": "params",
              "roofline time": "roofline_bound_ms"}
REFERENCE = "FLOPs"  # each predictor's rho is compared with this one's
WITHIN, ACROSS = "within fixed-FLOPs groups", "across networks"
POINT = ("batch", "dtype", "memory_format", "threads")  # a sweep point (analysis.POINT_FIELDS)
RESAMPLES = 2000


@dataclass(frozen=True)
class PredictorRank:
    device_label: str
    mode: str
    scope: str  # WITHIN or ACROSS
    predictor: str
    corr: RankCorrelation  # against measured latency; diff = rho - rho(FLOPs) on the same resamples


@dataclass(frozen=True)
class HeldOut:
    device_label: str
    mode: str
    scope: str
    chosen: str  # the predictor with the highest rho on `train`
    train_rho: float
    train: tuple[str, ...]  # groups (networks) it was chosen on
    test: tuple[str, ...]  # the disjoint rest, where `corr` was measured
    corr: RankCorrelation  # the chosen predictor on `test`, with its difference from FLOPs there


@dataclass(frozen=True)
class PredictorTable:
    ranks: list[PredictorRank]
    held_out: list[HeldOut]


def cases(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per device, mode, group and case: latency and every predictor as medians over the runs,
    with `group` (its fixed-FLOPs group; None for a network outside Table 8's complexity groups)."""
    ok = rows[rows["status"] == "ok"].copy()
    point = [f for f in POINT if f in ok]
    paper = paper_table8()
    paper = paper[paper["latbench_case"].notna() & paper["complexity_group"].astype(str).isin(NETWORK_GROUPS)]
    complexity = dict(zip(paper["latbench_case"], paper["complexity_group"].astype(str)))
    keys = ["suite", "experiment", "scale", *point]
    ok["point"] = [" ".join(f"{f}={r[f]}" for f in point) for _, r in ok[point].iterrows()] if point else ""
    ok["group"] = [" ".join(str(r[k]) for k in keys) if r["experiment"] != NETWORKS
                   else (f"{r['suite']} ~{complexity[r['case']]} M" if r["case"] in complexity else None)
                   for _, r in ok[keys + ["case"]].iterrows()]
    cols = [c for c in ["latency_ms", *PREDICTORS.values()] if c in ok]
    for c in cols:
        ok[c] = pd.to_numeric(ok[c], errors="coerce")
    return (ok.groupby(["device_label", "mode", "experiment", "point", "group", "case"], sort=True, dropna=False)[cols]
            .median().reset_index())


def rank_predictors(rows: pd.DataFrame, resamples: int = RESAMPLES) -> PredictorTable:
    """The predictor table of a report's rows (see the module's docstring)."""
    ranks, held = [], []
    for (label, mode), d in cases(rows).groupby(["device_label", "mode"], sort=True):
        nets = d[d["experiment"] == NETWORKS]
        points = list(dict.fromkeys(nets["point"]))  # the networks at each sweep point (e.g. batch 1 and 8)
        scopes = {WITHIN: d[d["group"].notna()],
                  **{ACROSS + (f" ({p})" if len(points) > 1 else ""): nets[nets["point"] == p] for p in points}}
        for scope, s in scopes.items():
            unit = "group" if scope == WITHIN else "case"  # scopes other than WITHIN are across networks
            names = [p for p, c in PREDICTORS.items() if c in s and s[c].notna().any()]
            if REFERENCE not in names or s[unit].nunique() < (2 if scope == WITHIN else 3):
                continue
            found = {p: _corr(s, p, scope, resamples) for p in names}
            found = {p: r for p, r in found.items() if math.isfinite(r.spearman)}
            ranks += [PredictorRank(str(label), str(mode), scope, p, r) for p, r in found.items()]
            h = _held_out(s, names, scope, resamples)
            if h is not None:
                held.append(HeldOut(str(label), str(mode), scope, *h))
    return PredictorTable(ranks, held)


def _corr(s: pd.DataFrame, predictor: str, scope: str, resamples: int) -> RankCorrelation:
    return rank_correlation(s[PREDICTORS[predictor]], s["latency_ms"], resamples=resamples,
                            groups=list(s["group"]) if scope == WITHIN else None,
                            against=s[PREDICTORS[REFERENCE]])


def split(units: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The held-out split: units in the given order, alternately to the first and the second half."""
    return tuple(units[0::2]), tuple(units[1::2])


def _held_out(s: pd.DataFrame, names: list[str], scope: str, resamples: int
              ) -> tuple[str, float, tuple[str, ...], tuple[str, ...], RankCorrelation] | None:
    """Choose on one half, report on the other: groups sorted by name; networks sorted by FLOPs (so
    both halves span the sizes)."""
    if scope == WITHIN:
        units = sorted(str(g) for g in s["group"].dropna().unique())
        column = "group"
    else:
        units = [str(c) for c in s.sort_values([PREDICTORS[REFERENCE], "case"])["case"]]
        column = "case"
    train, test = split(units)
    least = 2 if scope == WITHIN else 3  # groups to average over, or networks to rank
    if len(train) < least or len(test) < least:
        return None
    a, b = s[s[column].astype(str).isin(train)], s[s[column].astype(str).isin(test)]
    scored = [(_corr(a, p, scope, 1).spearman, -i, p) for i, p in enumerate(names)]  # the choice needs no interval
    scored = [t for t in scored if math.isfinite(t[0])]
    if not scored:
        return None
    rho, _, chosen = max(scored)  # ties: the first predictor in PREDICTORS' order
    return chosen, rho, train, test, _corr(b, chosen, scope, resamples)


# --- the cells and sentences both renderers print ------------------------------------------------


def _n(v: Any, fmt: str = ".2f") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(f) else format(f, fmt)


def interval_text(v: float, lo: float, hi: float, sign: str = "") -> str:
    return f"{_n(v, sign + '.2f')} [{_n(lo, sign + '.2f')}, {_n(hi, sign + '.2f')}]"


def rho_text(c: RankCorrelation) -> str:
    return interval_text(c.spearman, c.spearman_low, c.spearman_high)


HEADER = ["device (mode)", "scope", "predictor", "Spearman rho [95% CI]", "Kendall tau [95% CI]",
          "rho - rho(FLOPs) [95% CI]", "n"]


def table_rows(t: PredictorTable) -> list[list[str]]:
    """One row per device, mode, scope and predictor, best rho first within each scope."""
    out = []
    order = sorted(t.ranks, key=lambda r: (r.device_label, r.mode, r.scope != WITHIN, -r.corr.spearman))
    for r in order:
        c = r.corr
        n = f"{c.groups} groups, {c.n} cases" if r.scope == WITHIN else f"{c.n} networks"
        out.append([f"{r.device_label} ({r.mode})", r.scope, r.predictor,
                    rho_text(c),
                    interval_text(c.kendall, c.kendall_low, c.kendall_high),
                    "reference" if r.predictor == REFERENCE else interval_text(c.diff, c.diff_low, c.diff_high, "+"),
                    n])
    return out


def sentences(t: PredictorTable) -> list[str]:
    """What the table says, in words generated from its numbers: the best predictor per scope, whether
    its lead over FLOPs is resolved, and the held-out check."""
    out = []
    for (label, mode, scope), rs in _by_scope(t.ranks).items():
        best = max(rs, key=lambda r: r.corr.spearman)
        c = best.corr
        where = f"{label} ({mode}), {scope}"
        if best.predictor == REFERENCE:
            lead = f"**FLOPs** itself ranks latency best (rho {rho_text(c)})"
        else:
            verdict = ("its lead over FLOPs is resolved" if c.diff_low > 0 else
                       "its lead over FLOPs is not resolved (the interval of the difference includes 0)")
            lead = (f"**{best.predictor}** ranks latency best (rho {rho_text(c)}); "
                    f"its rho exceeds FLOPs' by {interval_text(c.diff, c.diff_low, c.diff_high, '+')}: {verdict}")
        flops = next((r.corr for r in rs if r.predictor == REFERENCE), None)
        ref = (f"; FLOPs: rho {rho_text(flops)}"
               if flops is not None and best.predictor != REFERENCE else "")
        out.append(f"- {where}: {lead}{ref}.")
    for h in t.held_out:
        unit = "groups" if h.scope == WITHIN else "networks"
        c = h.corr
        out.append(f"- Held out, {h.device_label} ({h.mode}), {h.scope}: chosen on {len(h.train)} {unit} "
                   f"(rho {_n(h.train_rho)}): **{h.chosen}**; on the other {len(h.test)} {unit} its rho is "
                   f"{rho_text(c)}"
                   + ("" if h.chosen == REFERENCE else
                      f", {interval_text(c.diff, c.diff_low, c.diff_high, '+')} against FLOPs there") + ".")
    return out


def _by_scope(ranks: list[PredictorRank]) -> dict[tuple[str, str, str], list[PredictorRank]]:
    out: dict[tuple[str, str, str], list[PredictorRank]] = {}
    for r in ranks:
        out.setdefault((r.device_label, r.mode, r.scope), []).append(r)
    return out


NOTE = ("Within a fixed-FLOPs group (suite x experiment x scale x sweep point; Table 8's complexity groups for "
        "the networks) FLOPs are (nearly) equal, so this scope is the guidelines' question; across networks FLOPs "
        "mostly track size. Each case's latency and costs are medians over the runs. Within groups: the mean of "
        "the groups' coefficients (groups of >= 3 cases), its 95 % interval from resampling whole groups (which "
        "groups were measured; a group's coefficient is taken as measured), coarse with few groups (4 groups "
        "allow 35 distinct resamples); across networks: networks resampled. The difference from FLOPs is paired "
        "(the same resamples). A predictor constant within a group scores 0 there. Held out: the groups "
        "(networks, sorted by FLOPs) are dealt alternately into two halves; the predictor with the highest rho "
        "on the first is scored on the second only. Per-layer time sums (`latbench audit`) are not results "
        "columns, so they are not ranked here.")
