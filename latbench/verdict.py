"""The one judge of an interval against a bound: does every value of [lo, hi] satisfy `x relation bound`?

compare.classify (slower/faster/same/inconclusive, for compare, gate and ab), claims.verdict
(holds/fails/unclear) and the pytest plugin's judge (pass/fail/inconclusive) all decide through
`judge` and only render its answer in their own words. Pure: no I/O, no numpy.

  HOLDS    every value of the interval satisfies the relation
  FAILS    every value of the interval violates it
  UNCLEAR  the interval straddles the bound, or is undefined (an end or the bound nan, inf or <= 0,
           lo > hi, or absurd: its ends more than MAX_SPAN apart as a factor): never a pass

The intervals judged are of latency ratios, so a defined interval lies in (0, inf).

`gate_status` is the gate's one decision rule (compare, gate, ab, --normalized), read off `judge`:
  slower        the whole interval is above 1 + threshold                         (fails the gate)
  faster        the whole interval is below 1 / (1 + threshold)                   (passes)
  same          the upper end is below 1 + threshold, and it is not faster        (passes)
  inconclusive  anything else: the interval reaches 1 + threshold without lying wholly beyond it,
                or is undefined                                                    (fails, unless relaxed)
So the gate passes only what the interval excludes: a slowdown of the threshold or more.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Literal, Sequence

HOLDS = "holds"
FAILS = "fails"
UNCLEAR = "unclear"
Verdict = Literal["holds", "fails", "unclear"]
Relation = Literal["<", "<=", ">", ">="]

# An interval whose upper end is more than this factor above its lower end says nothing about a latency
# ratio (e.g. [0.0001, 10026]: a t interval on two agreeing runs of a noisy case): it is undefined, is
# never judged, and prints as "undefined", never as numbers.
MAX_SPAN = 100.0

SLOWER, FASTER, SAME, INCONCLUSIVE = "slower", "faster", "same", "inconclusive"

RELATIONS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda x, b: x < b, "<=": lambda x, b: x <= b, ">": lambda x, b: x > b, ">=": lambda x, b: x >= b}


def defined(lo: float, hi: float) -> bool:
    """[lo, hi] is an interval a ratio can have: both ends finite and > 0, lo <= hi, and not absurd
    (hi / lo <= MAX_SPAN)."""
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        return False
    return all(math.isfinite(v) and v > 0 for v in (lo, hi)) and lo <= hi <= lo * MAX_SPAN


def judge(lo: float, hi: float, relation: Relation, bound: float) -> Verdict:
    """HOLDS when every x in [lo, hi] satisfies `x relation bound`, FAILS when none does, else UNCLEAR
    (straddling, or an undefined interval or bound). Each relation is monotone in x, so the interval's
    two ends decide."""
    try:
        ok = RELATIONS[relation]
    except KeyError:
        raise ValueError(f"relation {relation!r} is not one of {', '.join(RELATIONS)}") from None
    if not (defined(lo, hi) and defined(bound, bound)):
        return UNCLEAR
    at_lo, at_hi = ok(lo, bound), ok(hi, bound)
    return HOLDS if at_lo and at_hi else FAILS if not (at_lo or at_hi) else UNCLEAR


def gate_status(lo: float, hi: float, threshold: float) -> str:
    """The gate's rule (module docstring): slower / faster / same / inconclusive for a ratio interval
    [lo, hi] (candidate / baseline) against a threshold (a fraction, e.g. 0.05). Fail closed: an
    undefined interval or threshold is inconclusive."""
    try:
        limit = 1.0 + float(threshold)
    except (TypeError, ValueError):
        return INCONCLUSIVE
    if not (math.isfinite(limit) and limit >= 1.0):
        return INCONCLUSIVE
    if judge(lo, hi, ">", limit) == HOLDS:
        return SLOWER
    if judge(lo, hi, "<", limit) == HOLDS:
        return FASTER if judge(lo, hi, "<", 1.0 / limit) == HOLDS else SAME
    return INCONCLUSIVE


def significant(lo: float, hi: float) -> bool:
    """The interval lies wholly above or wholly below 1 (a change the data can show, of any size)."""
    return HOLDS in (judge(lo, hi, ">", 1.0), judge(lo, hi, "<", 1.0))


# --- claims with magnitudes (issue 24): direction and size, read off `judge` -------------------------

EQUIVALENT = "equivalent"
SMALLER = "holds, smaller than the paper"
LARGER = "holds, larger than the paper"
CLAIM_WORDS = (HOLDS, SMALLER, LARGER, EQUIVALENT, FAILS, UNCLEAR)  # every word a claim's verdict can be


def judge_magnitude(lo: float, hi: float, relation: Relation, bound: float, reference: float | None,
                    tolerance: float = 0.0) -> str:
    """A claim's verdict with its size: `judge` decides the direction (HOLDS / FAILS / UNCLEAR); a claim that
    holds is then read against the source's own ratio `reference` widened by `tolerance` (a fraction:
    [reference / (1 + tolerance), reference * (1 + tolerance)]):
      LARGER   the whole interval lies beyond the band on the claimed side (a stronger effect than the source's)
      SMALLER  the whole interval lies beyond the band on the other side (weaker: nearer the bound)
      HOLDS    it overlaps the band (as large as the source's), or no reference is given / defined.
    For "<" and "<=" the claimed side is below the bound (smaller ratios are stronger), for ">" and ">=" above."""
    direction = judge(lo, hi, relation, bound)
    if direction != HOLDS or reference is None or not defined(reference, reference):
        return direction
    try:
        widen = 1.0 + max(0.0, float(tolerance))
    except (TypeError, ValueError):
        return direction
    if not math.isfinite(widen):
        return direction
    above = judge(lo, hi, ">", reference * widen) == HOLDS
    below = judge(lo, hi, "<", reference / widen) == HOLDS
    stronger_when_above = relation in (">", ">=")
    if above:
        return LARGER if stronger_when_above else SMALLER
    if below:
        return SMALLER if stronger_when_above else LARGER
    return HOLDS


def judge_band(lo: float, hi: float, band_lo: float, band_hi: float) -> str:
    """An equivalence claim: EQUIVALENT when the whole interval lies inside [band_lo, band_hi] (both ends
    judged by `judge`), FAILS when it lies wholly outside the band (below band_lo or above band_hi), else
    UNCLEAR (straddling an end, or an undefined interval or band)."""
    if not (defined(band_lo, band_hi) and band_lo <= band_hi):
        return UNCLEAR
    at_lo, at_hi = judge(lo, hi, ">=", band_lo), judge(lo, hi, "<=", band_hi)
    if at_lo == HOLDS and at_hi == HOLDS:
        return EQUIVALENT
    if FAILS in (at_lo, at_hi):
        return FAILS
    return UNCLEAR


def decisive(word: str) -> bool:
    """A claim's verdict that the interval decides (holds in any size, equivalent, fails), not unclear."""
    return word in CLAIM_WORDS and word != UNCLEAR


def revoke_oversubscribed_pass(d: Any, sides: dict[str, Sequence[Any]] | None = None) -> Any:
    """A compare.Delta's pass (same, faster) read off rows measured oversubscribed is no pass: time other
    processes take inside a timed block lands on both sides alike and shrinks a slowdown's ratio towards 1
    (telemetry.OVERSUBSCRIBED_CPU_PER_WALL), so such a case is inconclusive. `slower` stands (the slowdown
    is at least what was measured). sides: {side name: its rows (pandas rows or dicts)}; None: the sides the
    Delta already records (a re-judged Delta, e.g. --normalized)."""
    if sides is not None:
        over = [side for side, rows in sides.items() if any(_flag(row.get("oversubscribed")) for row in rows)]
        d = dataclasses.replace(d, oversubscribed=" and ".join(over))
    if not d.oversubscribed or d.status not in ("same", "faster"):
        return d
    were = "were" if " and " in d.oversubscribed else "was"
    note = f"oversubscribed: the {d.oversubscribed} {were} measured on an oversubscribed CPU; not a pass"
    return dataclasses.replace(d, status="inconclusive", note="; ".join(n for n in (d.note, note) if n))


def _flag(v: Any) -> bool:
    return v is True or (type(v).__name__ in ("bool", "bool_") and bool(v)) or str(v).strip().lower() == "true"
