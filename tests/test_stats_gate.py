"""Issue 12, item 2: the gate's statistics against scipy, and the property that a significant
slowdown beyond the threshold never passes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from latbench.compare import KEY_COLUMNS, Delta, classify
from latbench.gate import Relaxations, decide
from latbench.stats import median_ci, median_ci_dependent, ratio_from_runs

KEY = {c: v for c, v in zip(KEY_COLUMNS, ("s", "E", "c", 1, "cpu", "eager", 1, "float32", "", 1))}


@pytest.mark.parametrize("equal_var, base, cand", [
    (False, [10.0, 10.4, 9.8, 10.1], [11.0, 11.5, 10.7]),  # both sides >= 2 runs: Welch
    (True, [10.0, 10.4, 9.8], [11.2]),  # one candidate run borrows the baseline's variance: Student
    (True, [10.3], [11.0, 11.5, 10.7]),
])
def test_ratio_from_runs_is_scipys_t_test_on_log_medians(equal_var, base, cand):
    r, lo, hi, p, method = ratio_from_runs(base, cand, 0.05)
    ref = sps.ttest_ind(np.log(cand), np.log(base), equal_var=equal_var)
    ci = ref.confidence_interval(0.95)
    assert method == ("runs-pooled" if equal_var else "runs-welch")
    assert r == pytest.approx(math.exp(np.log(cand).mean() - np.log(base).mean()))
    assert (lo, hi, p) == pytest.approx((math.exp(ci.low), math.exp(ci.high), ref.pvalue))


def test_one_run_a_side_or_a_bad_latency_is_undefined_never_same():
    for base, cand in (([10.0], [15.0]), ([10.0, math.inf], [10.0, 10.0]), ([10.0, 0.0], [10.0, 10.0]), ([], [1.0])):
        r, lo, hi, p, method = ratio_from_runs(base, cand)
        assert method == "undefined" and math.isnan(lo) and math.isnan(hi)
        assert classify(r, lo, hi, 0.10)[0] == "inconclusive"


def test_asv_style_decision_is_scipys_mann_whitney_and_the_factor():
    from benchmarks.validate_gate import asv_style_slower  # the baseline benchmarks/validate_gate.py measures

    rng = np.random.default_rng(0)
    b, c = rng.lognormal(0, 0.02, 40), rng.lognormal(math.log(1.15), 0.02, 40)
    slower, ratio, p = asv_style_slower(b, c)
    assert p == pytest.approx(sps.mannwhitneyu(c, b, alternative="two-sided").pvalue)
    assert slower and ratio == pytest.approx(np.median(c) / np.median(b))
    assert not asv_style_slower(b, rng.lognormal(math.log(1.05), 0.02, 40))[0]  # significant, below factor 1.1


def paired_ratio_interval(ratios, confidence=0.95):
    """(median, ci_low, ci_high) of per-round ratios: the median with median_ci_dependent. Non-finite or
    non-positive ratios are dropped; fewer than 6 ratios give a nan CI (no 95 % pair of order statistics)."""
    r = np.asarray([x for x in ratios if math.isfinite(x) and x > 0], float)
    if r.size < 6:
        return (float(np.median(r)) if r.size else math.nan, math.nan, math.nan)
    lo, hi = median_ci_dependent(r, confidence)
    return float(np.median(r)), lo, hi


def test_paired_ratio_interval_is_the_order_statistic_interval_for_independent_rounds():
    rng = np.random.default_rng(3)
    r = list(rng.lognormal(math.log(1.05), 0.01, 60))
    med, lo, hi = paired_ratio_interval(r + [math.nan, -1.0])
    assert med == pytest.approx(np.median(r)) and (lo, hi) == median_ci_dependent(r)
    assert lo <= median_ci(r)[0] and hi >= median_ci(r)[1]
    # scipy's quantile_test interval for the median is the same pair of order statistics
    q = sps.quantile_test(r, q=np.median(r), p=0.5).confidence_interval(0.95)
    assert median_ci(r) == pytest.approx((q.low, q.high))
    assert all(math.isnan(v) for v in paired_ratio_interval([1.0, 1.1])[1:])


positive = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(ratio=st.floats(0.01, 100), lo=st.floats(0.01, 100), hi=st.floats(0.01, 100), thr=st.floats(0.0, 1.0),
       allow_missing=st.booleans(), inconclusive_pass=st.booleans())
def test_a_significant_slowdown_beyond_the_threshold_never_passes(ratio, lo, hi, thr, allow_missing,
                                                                   inconclusive_pass):
    status, significant = classify(ratio, lo, hi, thr)
    outcome = decide([Delta(KEY, status, thr, ratio=ratio, ci_low=lo, ci_high=hi, significant=significant)],
                     Relaxations(allow_missing, inconclusive_pass))
    if ratio > 1 + thr and 1 < lo <= hi:  # no relaxation lets a significant slowdown of this size pass
        assert status in ("slower", "inconclusive") and not outcome.passed
    if 1 + thr < lo <= hi <= 100 * lo:
        assert status == "slower"
    if outcome.passed:  # issue 21: a pass needs the upper end below 1 + threshold, unless relaxed
        assert (status in ("same", "faster") and hi < 1 + thr) or (inconclusive_pass and status == "inconclusive"
                                                                    and not 1 < lo)


@settings(max_examples=200, deadline=None)
@given(base=st.lists(positive, min_size=1, max_size=6), cand=st.lists(positive, min_size=1, max_size=6),
       thr=st.floats(0.0, 0.5))
def test_run_medians_never_pass_a_slowdown_whose_ci_excludes_one(base, cand, thr):
    r, lo, hi, _, _ = ratio_from_runs(base, cand)
    status, significant = classify(r, lo, hi, thr)
    passed = decide([Delta(KEY, status, thr, ratio=r, ci_low=lo, ci_high=hi, significant=significant)]).passed
    if math.isfinite(lo) and r > 1 + thr and lo > 1:
        assert not passed
    if passed:
        assert math.isfinite(lo) and math.isfinite(hi) and status in ("same", "faster") and hi < 1 + thr
