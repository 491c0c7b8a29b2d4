"""Statistics on seeded samples: CI coverage, small-sample fallbacks, outliers, paired ratios."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latbench.records import Ratio
from scipy import stats as st

from latbench.stats import (geometric_mean, log_sd_pct, median_ci, paired_ratio, pooled_log_sd, ratio_from_runs,
                            ratio_from_samples, ratio_noise_sds, relative_halfwidth, summarize, threshold_for_noise)


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


# --- comparing runs (compare, gate, calibrate): checked against scipy where it has the same thing

BASE = [10.0, 10.5, 9.8]
CAND = [11.0, 13.0, 10.1, 12.0]  # more spread than BASE: Welch and Student differ


def test_ratio_from_runs_is_welch_on_log_medians_as_scipy_computes_it():
    """Regression: with >= 2 runs per side the test was Student's (equal_var inverted), not Welch's."""
    r, lo, hi, p, method = ratio_from_runs(BASE, CAND, alpha=0.05)
    ref = st.ttest_ind(np.log(CAND), np.log(BASE), equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert method == "runs-welch"
    assert (lo, hi) == pytest.approx((math.exp(ci.low), math.exp(ci.high)), rel=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-12)
    assert r == pytest.approx(st.gmean(CAND) / st.gmean(BASE), rel=1e-12)


def test_ratio_from_runs_with_one_run_on_a_side_is_student_with_the_other_sides_variance():
    r, lo, hi, p, method = ratio_from_runs([10.0], CAND, alpha=0.10)
    ref = st.ttest_ind(np.log(CAND), np.log([10.0]), equal_var=True)
    ci = ref.confidence_interval(0.90)
    assert method == "runs-pooled" and p == pytest.approx(ref.pvalue, rel=1e-12)
    assert (lo, hi) == pytest.approx((math.exp(ci.low), math.exp(ci.high)), rel=1e-12)


def test_ratio_from_runs_without_spread_is_exact():
    assert ratio_from_runs([10.0, 10.0], [12.0, 12.0]) == (pytest.approx(1.2), pytest.approx(1.2), pytest.approx(1.2),
                                                           0.0, "runs-welch")


def test_pooled_log_sd_is_the_pooled_sd_of_students_t():
    sd, df = pooled_log_sd([BASE, CAND])
    ref = st.ttest_ind(np.log(CAND), np.log(BASE), equal_var=True)
    diff = np.log(CAND).mean() - np.log(BASE).mean()
    assert df == len(BASE) + len(CAND) - 2
    assert sd == pytest.approx(diff / (ref.statistic * math.sqrt(1 / len(BASE) + 1 / len(CAND))), rel=1e-12)
    assert log_sd_pct(BASE, CAND) == pytest.approx(100 * sd)
    assert pooled_log_sd([[5.0], [3.0]]) == (pytest.approx(math.nan, nan_ok=True), 0)  # no group of >= 2
    assert pooled_log_sd([[5.0], BASE])[0] == pytest.approx(float(np.log(BASE).std(ddof=1)))  # singletons add nothing


def test_geometric_mean_matches_scipy():
    assert geometric_mean(CAND) == pytest.approx(st.gmean(CAND), rel=1e-12)


def test_bootstrap_ratio_agrees_with_scipys_percentile_bootstrap():
    rng = np.random.default_rng(4)
    b, c = 10 * np.exp(rng.normal(0, 0.03, 60)), 11 * np.exp(rng.normal(0, 0.03, 60))
    r, lo, hi = ratio_from_samples(b, c, alpha=0.05, noise_floor=0.0, seed=1)
    ref = st.bootstrap((c, b), lambda x, y, axis=-1: np.median(x, axis=axis) / np.median(y, axis=axis),
                       method="percentile", n_resamples=4000, random_state=2, vectorized=True)
    assert r == pytest.approx(np.median(c) / np.median(b))
    assert lo == pytest.approx(ref.confidence_interval.low, rel=0.01)
    assert hi == pytest.approx(ref.confidence_interval.high, rel=0.01)
    r2, lo2, hi2 = ratio_from_samples(b, c, noise_floor=0.1, seed=1)
    assert (lo2, hi2) == pytest.approx((lo / 1.1, hi * 1.1))


def test_noise_sds_and_threshold_from_noise():
    # sigma 5 %, 3 runs per side: the log ratio's sd is 0.05 * sqrt(2/3)
    assert ratio_noise_sds(0.10, 5.0, 3, 3) == pytest.approx(math.log(1.1) / (0.05 * math.sqrt(2 / 3)))
    assert math.isnan(ratio_noise_sds(0.10, math.nan, 3, 3)) and math.isnan(ratio_noise_sds(0.10, 0.0, 3, 3))
    t = threshold_for_noise(0.02, 3.0, 3, 0.02)
    assert t == math.ceil(200 * (math.exp(3 * 0.02 * math.sqrt(2 / 3)) - 1)) / 200 and t * 200 == round(t * 200)
    assert threshold_for_noise(0.0001, 3.0, 3, 0.02) == 0.02  # never below the minimum
    assert threshold_for_noise(0.02, 3.0, 10, 0.0) < threshold_for_noise(0.02, 3.0, 3, 0.0)  # more runs, less noise


def test_rank_correlation_ranks_a_monotone_predictor_first_and_a_constant_one_at_zero():
    from latbench.stats import rank_correlation
    y = [1.0, 2.0, 3.5, 3.9, 6.0, 8.0, 9.5, 12.0]
    good = rank_correlation([10, 20, 30, 40, 50, 60, 70, 80], y, resamples=300)
    assert good.spearman == pytest.approx(1.0) and good.kendall == pytest.approx(1.0)
    assert good.spearman_low <= good.spearman <= good.spearman_high
    flat = rank_correlation([5] * 8, y, resamples=300)
    assert flat.spearman == 0.0 and flat.kendall == 0.0
    noisy = rank_correlation([3, 1, 4, 1, 5, 9, 2, 6], y, resamples=300)
    assert noisy.spearman_low < noisy.spearman < noisy.spearman_high  # a real interval, not a point
    assert noisy.spearman_high - noisy.spearman_low > 0.2
    assert math.isnan(rank_correlation([1, 2], [1, 2]).spearman)  # too few pairs to rank


@pytest.mark.slow
def test_rank_correlation_interval_covers_the_population_value_at_about_its_rate():
    from latbench.stats import rank_correlation
    rng = np.random.default_rng(7)
    covered = 0
    for i in range(60):
        x = rng.normal(size=30)
        y = x + rng.normal(scale=1.0, size=30)  # population Spearman = 6/pi * asin(r/2), r = 1/sqrt(2)
        r = rank_correlation(x, y, resamples=400, seed=i)
        covered += r.spearman_low <= 6 / math.pi * math.asin(1 / math.sqrt(2) / 2) <= r.spearman_high
    assert covered >= 51  # >= 85 % of 60 at a nominal 95 % (percentile bootstrap runs a little narrow)
