"""Statistics on seeded samples: CI coverage, small-sample fallbacks, outliers, paired ratios."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latbench.records import Ratio
from latbench.stats import median_ci, paired_ratio, relative_halfwidth, summarize


def test_median_ci_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(12345)
    trials, covered = 400, 0
    for _ in range(trials):
        x = rng.normal(loc=5.0, scale=1.0, size=30)
        lo, hi = median_ci(x)
        assert lo <= np.median(x) <= hi
        covered += lo <= 5.0 <= hi
    assert 0.90 <= covered / trials <= 0.99


def test_median_ci_narrows_with_more_samples():
    rng = np.random.default_rng(1)
    widths = []
    for n in (20, 200, 2000):
        lo, hi = median_ci(rng.normal(size=n))
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_small_samples_fall_back_to_min_and_max(n):
    x = [3.0, 1.0, 4.0, 1.5, 9.0][:n]
    assert median_ci(x) == (min(x), max(x))


def test_six_samples_give_a_real_interval():
    # with 6 values, (min, max) covers the median with 1 - 2/64 = 96.9 % >= 95 %
    assert median_ci([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == (1.0, 6.0)
    lo, hi = median_ci(list(map(float, range(1, 31))))
    assert 1.0 < lo < 15.5 < hi < 30.0


@pytest.mark.parametrize("x", [[7.0], [7.0] * 2, [7.0] * 50])
def test_all_equal_values(x):
    assert median_ci(x) == (7.0, 7.0)
    s = summarize(x)
    assert s.median_ms == s.mean_ms == s.p10_ms == s.p90_ms == s.ci_low_ms == s.ci_high_ms == 7000.0
    assert s.iqr_ms == 0.0 and s.outliers == 0 and s.n == len(x)


def test_empty():
    lo, hi = median_ci([])
    assert math.isnan(lo) and math.isnan(hi)
    s = summarize([])
    assert s.n == 0 and s.outliers == 0 and math.isnan(s.median_ms)


@pytest.mark.parametrize("n", [1, 2, 5, 7, 40])
def test_results_are_finite_for_any_nonempty_sample(n):
    rng = np.random.default_rng(n)
    s = summarize(rng.lognormal(-7, 0.2, size=n))
    assert s.n == n
    values = [s.median_ms, s.mean_ms, s.p10_ms, s.p90_ms, s.iqr_ms, s.ci_low_ms, s.ci_high_ms]
    assert all(math.isfinite(v) for v in values)
    assert s.ci_low_ms <= s.median_ms <= s.ci_high_ms and s.p10_ms <= s.median_ms <= s.p90_ms


def test_summarize_is_in_milliseconds():
    s = summarize([0.001, 0.002, 0.003])
    assert s.median_ms == pytest.approx(2.0) and s.mean_ms == pytest.approx(2.0)


def test_planted_outliers_are_counted_but_do_not_move_the_median():
    rng = np.random.default_rng(7)
    clean = list(1e-3 * (1 + 0.01 * rng.standard_normal(100)))
    planted = clean[:95] + [5e-3] * 5  # five samples hit by something else on the machine
    assert summarize(clean).outliers == 0
    s = summarize(planted)
    assert s.outliers == 5
    assert s.median_ms == pytest.approx(summarize(clean[:95]).median_ms, rel=0.01)


def test_mild_tails_are_not_outliers():
    # beyond 1.5 IQR but within Tukey's far-out fence (3 IQR)
    x = [1.0] * 10 + [2.0] * 10 + [3.0] * 10 + [4.0] * 10 + [7.5]
    assert summarize(x).outliers == 0
    assert summarize(x + [20.0]).outliers == 1


def test_paired_ratio_pairs_by_round():
    # drift: both get slower each round, but the pair's ratio stays 2
    rounds = list(range(10))
    base = [1.0 + 0.1 * r for r in rounds]
    item = [2.0 * b for b in base]
    r = paired_ratio(item, rounds, base, rounds)
    assert r.value == pytest.approx(2.0) and r.n == 10
    assert r.ci_low == pytest.approx(2.0) and r.ci_high == pytest.approx(2.0)
    # the same values in another order would not pair: the ratio must come from rounds, not positions
    shuffled = paired_ratio(item[::-1], rounds[::-1], base, rounds)
    assert shuffled.value == pytest.approx(2.0)


def test_paired_ratio_ignores_unmatched_rounds():
    r = paired_ratio([2.0, 4.0, 99.0], [0, 1, 7], [1.0, 2.0, 3.0], [0, 1, 2])
    assert r.n == 2 and r.value == pytest.approx(2.0)


def test_paired_ratio_without_any_pair_is_nan():
    r = paired_ratio([1.0], [3], [1.0], [4])
    assert r.n == 0 and math.isnan(r.value)
    r = paired_ratio([1.0], [0], [0.0], [0])  # a zero baseline cannot be divided by
    assert r.n == 0


def test_ratio_differs_only_when_the_interval_excludes_one():
    assert Ratio(1.2, 1.1, 1.3, 10).differs
    assert Ratio(0.8, 0.7, 0.9, 10).differs
    assert not Ratio(1.02, 0.99, 1.05, 10).differs
    assert not Ratio(1.0, 1.0, 1.0, 10).differs
    assert not Ratio(1.1, 1.0, 1.2, 10).differs  # touching 1 is not a difference
    assert not Ratio(math.nan, math.nan, math.nan, 0).differs


def test_planted_10_percent_slowdown_is_flagged_and_none_is_not():
    rng = np.random.default_rng(3)
    rounds = list(range(40))
    base = list(1e-3 * (1 + 0.02 * rng.standard_normal(40)))
    noise = 1 + 0.02 * rng.standard_normal(40)
    slower = paired_ratio(list(np.array(base) * 1.10 * noise), rounds, base, rounds)
    same = paired_ratio(list(np.array(base) * noise), rounds, base, rounds)
    assert slower.differs and slower.value == pytest.approx(1.10, abs=0.02)
    assert not same.differs


def test_relative_halfwidth():
    assert relative_halfwidth(0.9, 1.1, 1.0) == pytest.approx(0.1)
    assert relative_halfwidth(math.nan, 1.0, 1.0) == math.inf
    assert relative_halfwidth(1.0, 2.0, 0.0) == math.inf
