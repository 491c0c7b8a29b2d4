"""Claims a suite states (`claims:`) and whether results support them: the one claims engine, used by
`latbench run` (one run's rows) and `latbench report` (rounds pooled over runs). Pure: rows in, verdicts out.

A claim compares two cases of the suite: "case is faster than `than`", "slower", or "its latency is
at most / at least `ratio` times `than`'s". It is judged in every group (scale x sweep point) that
measured both cases, from the paired per-round ratio of their samples and its 95 % CI:
holds (the whole CI agrees), fails (the whole CI disagrees) or unclear (the CI straddles the bound or
is undefined): verdict.judge decides, and its words are the claims' words.
Samples pair by (run_id, round), so rounds of several runs of one suite on one device pool.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from latbench.stats import paired_ratio
from latbench.verdict import Relation, judge

GROUP_FIELDS = ("scale", "batch", "dtype", "memory_format", "threads", "mode")
# What each `expect` claims of latency(case)/latency(than) against the claim's bound.
RELATION: dict[str, Relation] = {"faster": "<", "at_most": "<=", "slower": ">", "at_least": ">="}


class ClaimModel(BaseModel):
    """One entry of a suite's `claims:` list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1, description="the claim in words, with its source")
    case: str = Field(min_length=1, description="the case the claim is about")
    than: str = Field(min_length=1, description="the case it is compared with")
    expect: Literal["faster", "slower", "at_most", "at_least"] = Field(
        description="faster/slower: latency(case)/latency(than) below/above 1; at_most/at_least: below/above ratio")
    ratio: float | None = Field(default=None, gt=0, description="the bound for at_most / at_least")
    devices: list[Literal["cpu", "cuda"]] | None = Field(default=None, description="devices the claim is made "
                                                         "for (default: all)")
    paper: str | None = Field(default=None, min_length=1, description="what the cited source measured, "
                              "shown beside the verdict in `latbench report`")

    @model_validator(mode="after")
    def _check(self) -> "ClaimModel":
        if self.expect in ("at_most", "at_least") and self.ratio is None:
            raise ValueError(f"expect: {self.expect} needs a ratio, e.g. ratio: 1.1")
        if self.expect in ("faster", "slower") and self.ratio is not None:
            raise ValueError(f"expect: {self.expect} compares with 1; drop ratio or use at_most / at_least")
        if self.case == self.than:
            raise ValueError("case and than name the same case")
        return self

    @property
    def bound(self) -> float:
        return self.ratio if self.ratio is not None else 1.0


def verdict(claim: ClaimModel, lo: float, hi: float) -> str:
    """holds / fails / unclear (verdict.judge) for a ratio CI [lo, hi] of latency(case)/latency(than)."""
    return judge(lo, hi, RELATION[claim.expect], claim.bound)


def check_claims(claims: Iterable[ClaimModel], rows: list[dict[str, Any]], samples: list[dict[str, Any]],
                 device: str) -> list[dict[str, Any]]:
    """One verdict row per claim and group where both cases were measured (skipped and failed
    cases give no verdict). Ratios are latency(case)/latency(than), paired by run and round.

    A group field the samples do not carry (older samples files) does not split groups."""
    fields = [f for f in GROUP_FIELDS if any(group_value(s.get(f)) for s in samples)]

    def key(r: dict[str, Any]) -> tuple:
        return tuple(group_value(r.get(f)) for f in fields)

    series: dict[tuple, tuple[list[float], list[tuple]]] = {}
    for s in samples:
        vals, rounds = series.setdefault((str(s["case"]), key(s)), ([], []))
        vals.append(float(s["latency_ms"]))
        rounds.append((group_value(s.get("run_id")), int(s["round"])))
    groups: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        if r.get("status") == "ok":
            groups.setdefault(key(r), r)
    out = []
    for claim in claims:
        if claim.devices and device not in claim.devices:
            continue
        for g, first in groups.items():
            a, b = series.get((claim.case, g)), series.get((claim.than, g))
            if not a or not b:
                continue
            ratio = paired_ratio(a[0], a[1], b[0], b[1])  # type: ignore[arg-type]  # rounds are (run, round)
            out.append({"claim": claim.text, "case": claim.case, "than": claim.than, "expect": claim.expect,
                        "bound": claim.bound, **{f: first.get(f) for f in GROUP_FIELDS}, "ratio": ratio.value,
                        "ratio_ci_low": ratio.ci_low, "ratio_ci_high": ratio.ci_high, "rounds": ratio.n,
                        "verdict": verdict(claim, ratio.ci_low, ratio.ci_high)})
    return out


def overall(verdicts: Iterable[str]) -> str:
    """One word for a claim over several groups: the groups' verdict when they agree, else mixed."""
    words = set(verdicts)
    return words.pop() if len(words) == 1 else "mixed" if words else "unclear"


def group_value(v: Any) -> str:
    """A group value as text, so 1, 1.0 and '1' (CSV round trips) match; missing is ''."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return str(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "" if math.isnan(f) else f"{f:g}"
