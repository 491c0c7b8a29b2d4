"""The one judge of an interval against a bound: does every value of [lo, hi] satisfy `x relation bound`?

compare.classify (slower/faster/same/inconclusive, for compare, gate and ab), claims.verdict
(holds/fails/unclear) and the pytest plugin's judge (pass/fail/inconclusive) all decide through
`judge` and only render its answer in their own words. Pure: no I/O, no numpy.

  HOLDS    every value of the interval satisfies the relation
  FAILS    every value of the interval violates it
  UNCLEAR  the interval straddles the bound, or is undefined (an end or the bound nan, inf or <= 0,
           or lo > hi): never a pass

The intervals judged are of latency ratios, so a defined interval lies in (0, inf).
"""

from __future__ import annotations

import math
from typing import Callable, Literal

HOLDS = "holds"
FAILS = "fails"
UNCLEAR = "unclear"
Verdict = Literal["holds", "fails", "unclear"]
Relation = Literal["<", "<=", ">", ">="]

RELATIONS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda x, b: x < b, "<=": lambda x, b: x <= b, ">": lambda x, b: x > b, ">=": lambda x, b: x >= b}


def defined(lo: float, hi: float) -> bool:
    """[lo, hi] is an interval a ratio can have: both ends finite and > 0, lo <= hi."""
    return all(math.isfinite(v) and v > 0 for v in (lo, hi)) and lo <= hi


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
