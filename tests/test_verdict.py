"""verdict.judge: the one judge of an interval against a bound, and the three renderings of its answer
(compare.classify, claims.verdict, the pytest plugin's judge) that must agree with it."""

from __future__ import annotations

import itertools
import math

import pytest

from latbench.claims import RELATION, ClaimModel, verdict
from latbench.compare import classify
from latbench.pytest_plugin import INCONCLUSIVE, judge as plugin_judge
from latbench.verdict import FAILS, HOLDS, RELATIONS, UNCLEAR, defined, gate_status, judge

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("lo, hi, relation, bound, want", [
    # wholly on one side
    (0.8, 0.9, "<", 1.0, HOLDS), (0.8, 0.9, "<=", 1.0, HOLDS), (0.8, 0.9, ">", 1.0, FAILS),
    (0.8, 0.9, ">=", 1.0, FAILS), (1.1, 1.2, "<", 1.0, FAILS), (1.1, 1.2, "<=", 1.0, FAILS),
    (1.1, 1.2, ">", 1.0, HOLDS), (1.1, 1.2, ">=", 1.0, HOLDS),
    # straddling
    (0.9, 1.1, "<", 1.0, UNCLEAR), (0.9, 1.1, "<=", 1.0, UNCLEAR), (0.9, 1.1, ">", 1.0, UNCLEAR),
    (0.9, 1.1, ">=", 1.0, UNCLEAR),
    # an end on the bound: strict relations exclude it, non-strict ones include it
    (0.9, 1.0, "<", 1.0, UNCLEAR), (0.9, 1.0, "<=", 1.0, HOLDS), (1.0, 1.1, "<", 1.0, FAILS),
    (1.0, 1.1, "<=", 1.0, UNCLEAR), (1.0, 1.1, ">", 1.0, UNCLEAR), (1.0, 1.1, ">=", 1.0, HOLDS),
    (0.9, 1.0, ">", 1.0, FAILS), (0.9, 1.0, ">=", 1.0, UNCLEAR),
    # a point interval on the bound
    (1.0, 1.0, "<", 1.0, FAILS), (1.0, 1.0, "<=", 1.0, HOLDS), (1.0, 1.0, ">", 1.0, FAILS),
    (1.0, 1.0, ">=", 1.0, HOLDS),
    # undefined: never HOLDS, whichever side the defined end is on
    (NAN, NAN, "<", 1.0, UNCLEAR), (0.5, NAN, "<", 1.0, UNCLEAR), (NAN, 0.5, "<=", 1.0, UNCLEAR),
    (0.5, INF, "<", 1.0, UNCLEAR), (2.0, INF, ">", 1.0, UNCLEAR), (-INF, 0.5, "<", 1.0, UNCLEAR),
    (0.0, 0.5, "<", 1.0, UNCLEAR), (-0.5, 0.5, "<", 1.0, UNCLEAR), (0.9, 0.8, "<", 1.0, UNCLEAR),
    (1.2, 1.1, ">", 1.0, UNCLEAR), (0.8, 0.9, "<", NAN, UNCLEAR), (0.8, 0.9, "<", INF, UNCLEAR),
    (0.8, 0.9, "<", 0.0, UNCLEAR),
])
def test_judge(lo, hi, relation, bound, want):
    assert judge(lo, hi, relation, bound) == want


def test_judge_rejects_an_unknown_relation():
    with pytest.raises(ValueError, match="relation"):
        judge(0.8, 0.9, "==", 1.0)  # type: ignore[arg-type]


def test_defined():
    assert defined(0.5, 0.5) and defined(0.1, 10.0) and defined(1e-9, 1e-7)
    assert not any(defined(lo, hi) for lo, hi in ((NAN, 1.0), (1.0, INF), (0.0, 1.0), (2.0, 1.0), (-1.0, 1.0)))
    # absurd (issue 21): ends more than MAX_SPAN apart say nothing about a ratio
    assert not defined(1e-9, 1e9) and not defined(1e-4, 10026.276) and not defined(0.1, 10.0 * 1.0001)
    assert judge(1e-4, 10026.276, "<", 1e6) == UNCLEAR


# ends and bounds around 1, on it, and undefined: the grid the renderings are checked on
ENDS = (NAN, -1.0, 0.0, 0.8, 0.95, 1.0, 1.05, 1.2, INF)
GRID = [(lo, hi) for lo, hi in itertools.product(ENDS, ENDS)]


@pytest.mark.parametrize("expect, ratio", [("faster", None), ("slower", None), ("at_most", 1.05), ("at_least", 0.95)])
def test_claims_verdict_is_the_judge_in_the_claims_words(expect, ratio):
    claim = ClaimModel(text="t", case="a", than="b", expect=expect, ratio=ratio)
    for lo, hi in GRID:
        assert verdict(claim, lo, hi) == judge(lo, hi, RELATION[expect], claim.bound), (lo, hi)


@pytest.mark.parametrize("at_most, bound", [(True, 1.05), (False, 0.95), (True, 1.0), (False, 1.0)])
def test_plugin_judge_is_the_judge_in_pass_fail_inconclusive(at_most, bound):
    words = {HOLDS: "pass", FAILS: "fail", UNCLEAR: INCONCLUSIVE}
    for lo, hi in GRID:
        want = words[judge(lo, hi, "<=" if at_most else "<", bound)]
        assert plugin_judge(1.0, lo, hi, bound, at_most) == want, (lo, hi)


@pytest.mark.parametrize("threshold", [0.0, 0.05, 0.10])
def test_classify_renders_the_judge(threshold):
    """Issue 21's one rule: slower when the judge says the whole CI is above 1 + threshold, same or faster
    (a pass) only when it says the whole CI is below it, faster when below 1 / (1 + threshold); all else,
    and every interval the judge calls undefined, inconclusive. significant: wholly above or below 1."""
    limit = 1 + threshold
    for (lo, hi), ratio in itertools.product(GRID, (NAN, 0.5, 0.9, 1.0, 1.1, 1.5)):
        status, significant = classify(ratio, lo, hi, threshold)
        assert gate_status(lo, hi, threshold) in ("slower", "faster", "same", "inconclusive")
        if not (defined(lo, hi) and defined(ratio, ratio)):
            assert (status, significant) == ("inconclusive", False), (ratio, lo, hi)
            continue
        if not lo * (1 - 1e-9) <= ratio <= hi * (1 + 1e-9):  # misses its own estimate: absurd, never a pass
            assert status == ("slower" if judge(lo, hi, ">", limit) == HOLDS else "inconclusive"), (ratio, lo, hi)
            continue
        above, below = judge(lo, hi, ">", 1.0) == HOLDS, judge(lo, hi, "<", 1.0) == HOLDS
        assert significant == (above or below), (ratio, lo, hi)
        assert (status == "slower") == (judge(lo, hi, ">", limit) == HOLDS), (ratio, lo, hi)
        assert (status in ("same", "faster")) == (judge(lo, hi, "<", limit) == HOLDS), (ratio, lo, hi)
        assert (status == "faster") == (judge(lo, hi, "<", 1 / limit) == HOLDS), (ratio, lo, hi)
        assert status == gate_status(lo, hi, threshold)


def test_gate_status_edges():
    assert gate_status(1.10, 1.20, 0.10) == "inconclusive"  # the lower end ON 1 + threshold: not above it
    assert gate_status(1.1001, 1.20, 0.10) == "slower"
    assert gate_status(0.95, 1.0999, 0.10) == "same" and gate_status(0.95, 1.10, 0.10) == "inconclusive"
    assert gate_status(0.80, 0.90, 0.10) == "faster" and gate_status(0.80, 1 / 1.1, 0.10) == "same"
    for bad in (NAN, INF, -0.5, -2.0):
        assert gate_status(0.9, 0.95, bad) == "inconclusive"


def test_every_relation_is_judged_on_both_ends():
    for rel, ok in RELATIONS.items():
        for lo, hi in ((0.5, 0.7), (0.7, 1.3), (1.3, 1.5), (1.0, 1.0)):
            inside = [ok(x, 1.0) for x in (lo, (lo + hi) / 2, hi)]
            want = HOLDS if all(inside) else FAILS if not any(inside) else UNCLEAR
            assert judge(lo, hi, rel, 1.0) == want, (rel, lo, hi)
