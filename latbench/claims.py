"""Claims a suite states (`claims:`) and whether a run supports them. Pure: rows in, verdicts out.

A claim compares two cases of the suite: "case is faster than `than`", "slower", or "its latency is
at most / at least `ratio` times `than`'s". It is judged in every group (scale x sweep point) that
measured both cases, from the paired per-round ratio of their samples and its 95 % CI:
holds (the whole CI agrees), fails (the whole CI disagrees) or unclear (the CI straddles the bound).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from latbench.stats import paired_ratio

GROUP_FIELDS = ("scale", "batch", "dtype", "memory_format", "threads", "mode")


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
    """holds / fails / unclear for a ratio CI [lo, hi] of latency(case)/latency(than)."""
    if math.isnan(lo) or math.isnan(hi):
        return "unclear"
    b = claim.bound
    if claim.expect in ("faster", "at_most"):
        holds, fails = (hi < b) if claim.expect == "faster" else (hi <= b), lo > b
    else:
        holds, fails = (lo > b) if claim.expect == "slower" else (lo >= b), hi < b
    return "holds" if holds else "fails" if fails else "unclear"


def check_claims(claims: Iterable[ClaimModel], rows: list[dict[str, Any]], samples: list[dict[str, Any]],
                 device: str) -> list[dict[str, Any]]:
    """One verdict row per claim and group where both cases were measured (skipped and failed
    cases give no verdict). Ratios are latency(case)/latency(than), paired by round."""
    def key(r: dict[str, Any]) -> tuple:
        return tuple(r.get(f) for f in GROUP_FIELDS)

    series: dict[tuple, tuple[list[float], list[int]]] = {}
    for s in samples:
        vals, rounds = series.setdefault((s["case"], key(s)), ([], []))
        vals.append(s["latency_ms"])
        rounds.append(s["round"])
    groups = list(dict.fromkeys(key(r) for r in rows if r.get("status") == "ok"))
    out = []
    for claim in claims:
        if claim.devices and device not in claim.devices:
            continue
        for g in groups:
            a, b = series.get((claim.case, g)), series.get((claim.than, g))
            if not a or not b:
                continue
            ratio = paired_ratio(a[0], a[1], b[0], b[1])
            out.append({"claim": claim.text, "case": claim.case, "than": claim.than, "expect": claim.expect,
                        "bound": claim.bound, **dict(zip(GROUP_FIELDS, g)), "ratio": ratio.value,
                        "ratio_ci_low": ratio.ci_low, "ratio_ci_high": ratio.ci_high,
                        "verdict": verdict(claim, ratio.ci_low, ratio.ci_high)})
    return out
