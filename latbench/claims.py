"""Claims a suite states (`claims:`) and whether results support them: the one claims engine, used by
`latbench run` (one run's rows) and `latbench report` (rounds pooled over runs). Pure: rows in, verdicts out.

A claim compares two cases of the suite: "case is faster than `than`", "slower", "its latency is at most /
at least `ratio` times `than`'s", or "equivalent" (the ratio inside a stated `band`). It is judged in every
group (scale x sweep point) that measured both cases, from the paired per-round ratio of their samples and
its 95 % CI (one process: order statistics widened for autocorrelated rounds; several processes, i.e. runs
or `--repeats` workers: pooled across them, stats.pool_processes, as the report's case effects are).

Verdicts (verdict.py decides; its words are the claims' words; a row's `verdict` is the first word, its
`size` the rest):
  holds / fails / unclear        the whole CI on the claimed side of the bound / on the other / straddling
  holds, smaller|larger than the paper
                                 it holds, and the CI lies wholly on the weaker|stronger side of the source's
                                 own ratio (`paper_ratio` for the device's platform: cpu -> arm, cuda -> gpu,
                                 widened by `paper_tolerance`); size "smaller|larger than the paper"
  equivalent                     `expect: equivalent`: the whole CI inside `band`
Fixed FLOPs: a claim with `fixed_flops: true` (the default) is about cases at equal FLOPs, so it is judged on
the drift-normalised ratio, latency per FLOP relative to `than` (ratio / (flops(case) / flops(than)); FLOPs
are counted exactly, so its CI is the ratio's scaled), and the paper's ratio is normalised the same way. A
claim whose cases are not at equal FLOPs says `fixed_flops: false` with `why`, and is judged on the raw ratio.
Family-wise: every group's verdict gets a p-value (the inversion of the interval it was read from), and the
verdicts of one call (a run's claims; in the report, all of the report's) keep a decisive word only where
Benjamini-Hochberg at q = 0.05 rejects; the per-comparison word is kept as `verdict_unadjusted`.
Samples pair by (run_id, round), so rounds of several runs of one suite on one device pool.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from latbench.records import Ratio
from latbench.stats import median_ci_dependent, paired_ratio, per_round_ratios, pool_processes
from latbench.verdict import HOLDS, UNCLEAR, Relation, decisive, judge, judge_band, judge_magnitude

GROUP_FIELDS = ("scale", "batch", "dtype", "memory_format", "threads", "mode")
# What each `expect` claims of latency(case)/latency(than) against the claim's bound.
RELATION: dict[str, Relation] = {"faster": "<", "at_most": "<=", "slower": ">", "at_least": ">="}
PLATFORM = {"cpu": "arm", "cuda": "gpu"}  # the paper's platform a device's ratios are read against
FIXED_FLOPS_TOLERANCE = 0.03  # a fixed-FLOPs claim's cases further apart than this must say why
FDR_Q = 0.05  # false-discovery rate over a family of verdicts (Benjamini-Hochberg)


class ClaimModel(BaseModel):
    """One entry of a suite's `claims:` list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1, description="the claim in words")
    case: str = Field(min_length=1, description="the case the claim is about")
    than: str = Field(min_length=1, description="the case it is compared with")
    expect: Literal["faster", "slower", "at_most", "at_least", "equivalent"] = Field(
        description="faster/slower: latency(case)/latency(than) below/above 1; at_most/at_least: below/above "
                    "ratio; equivalent: inside band")
    ratio: float | None = Field(default=None, gt=0, description="the bound for at_most / at_least")
    band: tuple[float, float] | None = Field(default=None, description="equivalent: [low, high] the ratio must "
                                             "lie in, e.g. [0.95, 1.05]")
    devices: list[Literal["cpu", "cuda"]] | None = Field(default=None, description="devices the claim is made "
                                                         "for (default: all)")
    paper: str | None = Field(default=None, min_length=1, description="what the cited source measured, "
                              "shown beside the verdict in `latbench report`")
    paper_ratio: dict[Literal["arm", "gpu"], float | dict[int, float]] | None = Field(
        default=None, description="the source's own latency(case)/latency(than) per platform: one number, or "
                                  "one per scale ({1: 1.44, 2: 1.36, 4: 1.28})")
    paper_tolerance: float = Field(default=0.05, ge=0, le=1, description="relative band around paper_ratio "
                                   "that counts as the paper's size")
    fixed_flops: bool = Field(default=True, description="the cases are meant to be at equal FLOPs: judge the "
                              "ratio per FLOP; false: judge the raw ratio (give why)")
    why: str | None = Field(default=None, min_length=1, description="why the cases are not within 3 % FLOPs "
                            "of each other (required with fixed_flops: false)")
    source: str | None = Field(default=None, min_length=1, description="the paper or seed the claim comes from")

    @model_validator(mode="after")
    def _check(self) -> "ClaimModel":
        if self.expect in ("at_most", "at_least") and self.ratio is None:
            raise ValueError(f"expect: {self.expect} needs a ratio, e.g. ratio: 1.1")
        if self.expect in ("faster", "slower", "equivalent") and self.ratio is not None:
            raise ValueError(f"expect: {self.expect} takes no ratio; drop ratio or use at_most / at_least")
        if (self.expect == "equivalent") != (self.band is not None):
            raise ValueError("expect: equivalent needs a band, e.g. band: [0.95, 1.05], and only it takes one")
        if self.band is not None and not 0 < self.band[0] <= self.band[1] < math.inf:
            raise ValueError(f"band {list(self.band)} must be [low, high] with 0 < low <= high")
        for platform, v in (self.paper_ratio or {}).items():
            if any(not (math.isfinite(x) and x > 0) for x in (v.values() if isinstance(v, dict) else [v])):
                raise ValueError(f"paper_ratio.{platform}: ratios are positive numbers")
        if not self.fixed_flops and not self.why:
            raise ValueError("fixed_flops: false needs why: the reason the cases are compared at unequal FLOPs")
        if self.case == self.than:
            raise ValueError("case and than name the same case")
        return self

    @property
    def bound(self) -> float:
        return self.ratio if self.ratio is not None else 1.0

    def reference(self, device: str, scale: Any) -> float | None:
        """The source's latency ratio for the device's platform at this scale, or None."""
        v = (self.paper_ratio or {}).get(PLATFORM.get(device, device))  # type: ignore[call-overload]
        if isinstance(v, dict):
            try:
                return v.get(int(float(scale)))
            except (TypeError, ValueError):
                return None
        return v


def verdict(claim: ClaimModel, lo: float, hi: float) -> str:
    """holds / fails / unclear (verdict.judge) for a ratio CI [lo, hi] of latency(case)/latency(than);
    an equivalence claim: equivalent / fails / unclear (verdict.judge_band)."""
    if claim.band is not None:
        return judge_band(lo, hi, *claim.band)
    return judge(lo, hi, RELATION[claim.expect], claim.bound)


def magnitude_verdict(claim: ClaimModel, lo: float, hi: float, reference: float | None) -> str:
    """verdict() with the size: a claim that holds is read against the source's ratio (verdict.judge_magnitude)."""
    if claim.band is not None:
        return judge_band(lo, hi, *claim.band)
    return judge_magnitude(lo, hi, RELATION[claim.expect], claim.bound, reference, claim.paper_tolerance)


def claim_p_value(claim: ClaimModel, interval: Any, scale: float = 1.0, floor: float = 0.0) -> float:
    """The p-value of the claim's decision on the interval family interval(confidence) of the raw ratio,
    judged as ratio / scale (scale: the FLOPs ratio when judged per FLOP): for a bound, the two-sided test
    of ratio = bound; for a band, the larger of the tests at its ends (both must be excluded to be
    equivalent), or the end the interval lies beyond (fails). floor: the smallest p the interval's method
    can give (p_value_by_inversion)."""
    def p(bound: float) -> float:
        return p_value_by_inversion(interval, bound * scale, floor)

    if claim.band is None:
        return p(claim.bound)
    lo, hi = interval(0.95)
    p_lo, p_hi = p(claim.band[0]), p(claim.band[1])
    if math.isfinite(lo) and lo / scale > claim.band[1]:
        return p_hi
    if math.isfinite(hi) and hi / scale < claim.band[0]:
        return p_lo
    return max(p_lo, p_hi)


def _paired(a: tuple[list, list, list], b: tuple[list, list, list]) -> tuple[Ratio, Any, int]:
    """The paired ratio of series a to b, its interval family (confidence -> ends) and its process count.
    Several processes (run x `process`) that pair: pooled across them (stats.pool_processes); one: its
    rounds' order-statistic interval (stats.median_ci_dependent)."""
    units = sorted(set(a[1]) & set(b[1]), key=str)
    per = []
    for u in units:
        pick = [[(v, r) for v, uu, r in zip(*s) if uu == u] for s in (a, b)]
        r = paired_ratio([v for v, _ in pick[0]], [r for _, r in pick[0]], [v for v, _ in pick[1]],
                         [r for _, r in pick[1]])
        if r.n:
            per.append(r)
    if len(per) >= 2:
        pooled = pool_processes(per)

        def interval(conf: float) -> tuple[float, float]:
            q = pool_processes(per, conf)
            return q.ci_low, q.ci_high
        return pooled.as_ratio(sum(r.n for r in per)), interval, len(per)
    rounds_a, rounds_b = list(zip(a[1], a[2])), list(zip(b[1], b[2]))
    ratios = per_round_ratios(a[0], rounds_a, b[0], rounds_b)  # type: ignore[arg-type]

    def rounds_interval(conf: float) -> tuple[float, float]:
        return median_ci_dependent(ratios, conf) if len(ratios) >= 2 else (math.nan, math.nan)
    return paired_ratio(a[0], rounds_a, b[0], rounds_b), rounds_interval, len(per)  # type: ignore[arg-type]


def check_claims(claims: Iterable[ClaimModel], rows: list[dict[str, Any]], samples: list[dict[str, Any]],
                 device: str, q: float = FDR_Q) -> list[dict[str, Any]]:
    """One verdict row per claim and group where both cases were measured (skipped and failed
    cases give no verdict). Ratios are latency(case)/latency(than), paired by run and round; the rows'
    FLOPs give the per-FLOP ratio. The returned rows are one family for the false-discovery rate.

    A group field the samples do not carry (older samples files) does not split groups."""
    fields = [f for f in GROUP_FIELDS if any(group_value(s.get(f)) for s in samples)]

    def key(r: dict[str, Any]) -> tuple:
        return tuple(group_value(r.get(f)) for f in fields)

    series: dict[tuple, tuple[list[float], list[tuple], list[int]]] = {}
    for s in samples:
        vals, units, rounds = series.setdefault((str(s["case"]), key(s)), ([], [], []))
        vals.append(float(s["latency_ms"]))
        units.append((group_value(s.get("run_id")), group_value(s.get("process"))))
        rounds.append(int(s["round"]))
    groups: dict[tuple, dict[str, Any]] = {}
    flops: dict[tuple, float] = {}
    for r in rows:
        if r.get("status") == "ok":
            groups.setdefault(key(r), r)
            flops.setdefault((str(r.get("case")), key(r)), _float(r.get("flops")))
    out = []
    for claim in claims:
        if claim.devices and device not in claim.devices:
            continue
        for g, first in groups.items():
            a, b = series.get((claim.case, g)), series.get((claim.than, g))
            if not a or not b:
                continue
            out.append(_judge_group(claim, a, b, flops.get((claim.case, g), math.nan),
                                    flops.get((claim.than, g), math.nan), first, device))
    return control_fdr(out, q)


def _judge_group(claim: ClaimModel, a: Any, b: Any, flops_case: float, flops_than: float, first: dict[str, Any],
                 device: str) -> dict[str, Any]:
    ratio, interval, processes = _paired(a, b)
    # order statistics over n values (rounds, or process medians) cannot give p below 2 * 0.5**n
    over = ratio.n if ratio.interval in ("order", "order-ess") else processes if "order" in ratio.interval else 0
    floor = 2 * 0.5 ** over if over else 0.0
    fr = flops_case / flops_than if flops_than > 0 and flops_case > 0 else math.nan
    per_flop = claim.fixed_flops and math.isfinite(fr)
    scale = fr if per_flop else 1.0
    lo, hi = ratio.ci_low / scale, ratio.ci_high / scale
    paper = claim.reference(device, first.get("scale"))
    word, _, size = magnitude_verdict(claim, lo, hi, paper / scale if paper else None).partition(", ")
    notes = []
    if claim.fixed_flops and math.isfinite(fr) and abs(fr - 1) > FIXED_FLOPS_TOLERANCE and not claim.why:
        notes.append(f"FLOPs differ by {fr - 1:+.1%} (beyond ±{FIXED_FLOPS_TOLERANCE:.0%}): not at fixed FLOPs; "
                     "judged per FLOP")
    if claim.fixed_flops and not math.isfinite(fr):
        notes.append("FLOPs not recorded: judged on the raw ratio")
    return {"claim": claim.text, "case": claim.case, "than": claim.than, "expect": claim.expect,
            "bound": claim.bound, "band": list(claim.band) if claim.band else None,
            **{f: first.get(f) for f in GROUP_FIELDS}, "ratio": ratio.value, "ratio_ci_low": ratio.ci_low,
            "ratio_ci_high": ratio.ci_high, "rounds": ratio.n, "processes": max(1, processes),
            "interval": ratio.interval, "flops_ratio": fr, "ratio_per_flop": ratio.value / fr if fr else math.nan,
            "per_flop_ci_low": ratio.ci_low / fr if fr else math.nan,
            "per_flop_ci_high": ratio.ci_high / fr if fr else math.nan, "judged_on": "per FLOP" if per_flop else "raw",
            "platform": PLATFORM.get(device, device), "paper_ratio": paper,
            "paper_ratio_judged": paper / scale if paper else None, "p_value": claim_p_value(claim, interval, scale, floor),
            "verdict_unadjusted": word, "verdict": word, "size": size, "fdr_flipped": False, "source": claim.source,
            "note": "; ".join(notes)}


def control_fdr(verdicts: list[dict[str, Any]], q: float = FDR_Q) -> list[dict[str, Any]]:
    """Benjamini-Hochberg at q over the verdict rows as one family (every row one test, its p_value): a
    decisive per-comparison verdict (`verdict_unadjusted`) stays only where its test is rejected, else it
    becomes unclear (`fdr_flipped`). Sets `verdict`, `fdr_flipped`, `fdr_tests`, `fdr_q` on each row and
    returns the rows. Idempotent: a larger family recomputes from the unadjusted words."""
    keep = benjamini_hochberg([_float(v.get("p_value")) for v in verdicts], q)
    for v, rejected in zip(verdicts, keep):
        raw = v.get("verdict_unadjusted", v.get("verdict", UNCLEAR))
        v["verdict_unadjusted"] = raw
        v["verdict"] = raw if rejected or not decisive(raw) else UNCLEAR
        v["fdr_flipped"] = v["verdict"] != raw
        v["fdr_tests"], v["fdr_q"] = len(verdicts), q
    return verdicts


def benjamini_hochberg(p_values: Sequence[float], q: float = 0.05) -> list[bool]:
    """Benjamini-Hochberg at false-discovery rate q: reject the k smallest of m p-values, k the largest rank
    with p_(k) <= k q / m. A nan counts in m and is never rejected."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: (not math.isfinite(p_values[i]), p_values[i]))
    k = max([r for r, i in enumerate(order, 1) if math.isfinite(p_values[i]) and p_values[i] <= r * q / m],
            default=0)
    rejected = set(order[:k])
    return [i in rejected for i in range(m)]


def fdr_summary(verdicts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """How the false-discovery control changed a family of verdict rows: tests, decisive verdicts before
    and after, and the rows that flipped to unclear (they would have been reported decisive without it)."""
    vs = list(verdicts)
    flipped = [v for v in vs if v.get("fdr_flipped")]
    return {"tests": len(vs), "q": vs[0].get("fdr_q", FDR_Q) if vs else FDR_Q,
            "decisive_unadjusted": sum(decisive(str(v.get("verdict_unadjusted", v.get("verdict")))) for v in vs),
            "decisive": sum(decisive(str(v.get("verdict"))) for v in vs), "flipped": flipped}


def fdr_text(verdicts: Iterable[dict[str, Any]]) -> str:
    """One sentence: what the false-discovery control did to these verdicts."""
    s = fdr_summary(verdicts)
    if not s["tests"]:
        return ""
    n = len(s["flipped"])
    which = "; ".join(f"{v['case']} vs {v['than']} x{group_value(v.get('scale'))} ({v['verdict_unadjusted']}, "
                      f"p={_float(v.get('p_value')):.3g})" for v in s["flipped"][:8])
    return (f"False-discovery rate controlled over {s['tests']} comparisons (Benjamini-Hochberg, q = {s['q']:g}): "
            f"{s['decisive']} decisive verdicts; {n} would flip to decisive without it"
            + (f": {which}{' ...' if n > 8 else ''}." if n else "."))


def verdict_text(v: dict[str, Any]) -> str:
    """A group's verdict in words: 'holds', 'holds, larger than the paper', 'equivalent', 'unclear (holds
    before FDR control)'."""
    word = str(v["verdict"]) + (f", {v['size']}" if v.get("size") and v["verdict"] == HOLDS else "")
    if v.get("fdr_flipped"):
        word += f" ({v.get('verdict_unadjusted')}{', ' + v['size'] if v.get('size') else ''} before FDR control)"
    return word


def p_text(v: dict[str, Any]) -> str:
    """A group's p-value, two significant digits ('?' when the row has none)."""
    p = _float(v.get("p_value"))
    return f"{p:.2g}" if math.isfinite(p) else "?"


def join_words(words: Iterable[str]) -> str:
    """Per-group verdicts in one line: ', '-separated, '; ' when a verdict has a comma of its own."""
    words = list(words)
    return ("; " if any("," in w for w in words) else ", ").join(words)


def overall(verdicts: Iterable[str]) -> str:
    """One word for a claim over several groups: the groups' verdict when they agree, else mixed (sizes
    against the paper are per group, in `size`)."""
    words = set(verdicts)
    return words.pop() if len(words) == 1 else "mixed" if words else UNCLEAR


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


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


# --- p-values (their false-discovery control is benjamini_hochberg) ------------------------------------

P_FLOOR = 1e-12  # p-values are resolved down to this


def p_value_by_inversion(interval: Any, bound: float, floor: float = P_FLOOR, steps: int = 40) -> float:
    """Two-sided p-value of `value = bound` by inverting a nested interval family interval(confidence) -> (lo,
    hi): the least alpha at which interval(1 - alpha) leaves `bound` out (bisection on log alpha), at least
    `floor` (order statistics over n values: 2 * 0.5**n). p <= 0.05 exactly when the 95 % interval excludes
    the bound; on median_ci_dependent it is the sign test of the ratios against the bound, autocorrelation-
    aware. 1.0 when nothing excludes it."""
    def excludes(alpha: float) -> bool:
        try:
            lo, hi = interval(1.0 - alpha)
        except (OverflowError, ValueError, ZeroDivisionError):  # too wide to compute: excludes nothing
            return False
        return math.isfinite(lo) and math.isfinite(hi) and lo <= hi and (bound < lo or bound > hi)

    floor = min(max(floor, P_FLOOR), 0.999)
    if not (math.isfinite(bound) and bound > 0) or not excludes(0.999):
        return 1.0
    lo_a, hi_a = math.log(floor), math.log(0.999)  # excludes at exp(hi_a); at exp(lo_a) unless it returns
    if excludes(floor):
        return floor
    for _ in range(steps):
        mid = (lo_a + hi_a) / 2
        lo_a, hi_a = (lo_a, mid) if excludes(math.exp(mid)) else (mid, hi_a)
    return float(math.exp(hi_a))
