"""Predictors of latency ranked with statistics (issue 24, item 4): stats.rank_correlation's grouped
bootstrap and paired difference, and the report's one predictor table (report.predictors)."""

import math

import numpy as np
import pytest

from latbench.stats import rank_correlation


def test_grouped_rank_correlation_averages_within_groups_and_resamples_whole_groups():
    y = [1, 2, 3, 4, 10, 20, 30, 40, 5, 6, 7, 8]
    g = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    same = rank_correlation(y, y, groups=g, resamples=300)
    assert same.spearman == 1.0 and (same.spearman_low, same.spearman_high) == (1.0, 1.0)  # a CI at 1
    assert same.kendall == 1.0 and same.groups == 3 and same.n == 12
    # x ranks group a right, b backwards, c right: the mean is 1/3, and resampling groups gives a wide CI
    x = [1, 2, 3, 4, 4, 3, 2, 1, 1, 2, 3, 4]
    mixed = rank_correlation(x, y, groups=g, resamples=500)
    assert mixed.spearman == pytest.approx(1 / 3)
    assert mixed.spearman_low == pytest.approx(-1.0) and mixed.spearman_high == pytest.approx(1.0)
    # pooled over all pairs instead, x would rank latency quite differently: the groups are what count
    assert rank_correlation(x, y, resamples=50).spearman != pytest.approx(1 / 3)
    flat = rank_correlation([7] * 12, y, groups=g, resamples=300)
    assert (flat.spearman, flat.spearman_low, flat.spearman_high, flat.kendall) == (0.0, 0.0, 0.0, 0.0)
    tiny = rank_correlation([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], groups=["a", "a", "b", "b", "b"], resamples=50)
    assert tiny.groups == 1 and tiny.n == 3  # a group of 2 pairs cannot rank and is left out


def test_paired_difference_uses_the_same_resamples():
    rng = np.random.default_rng(3)
    y = rng.normal(size=40)
    good, poor = y + rng.normal(scale=0.2, size=40), rng.normal(size=40)
    r = rank_correlation(good, y, against=poor, resamples=500)
    alone_good, alone_poor = rank_correlation(good, y, resamples=500), rank_correlation(poor, y, resamples=500)
    assert r.spearman == alone_good.spearman and r.spearman_low == alone_good.spearman_low  # same seed, same resamples
    assert r.diff == pytest.approx(alone_good.spearman - alone_poor.spearman)
    assert r.diff_low <= r.diff <= r.diff_high and r.diff_low > 0
    # paired: the difference's interval is narrower than the two intervals' widths added
    assert r.diff_high - r.diff_low < (alone_good.spearman_high - alone_good.spearman_low
                                       + alone_poor.spearman_high - alone_poor.spearman_low)
    self_diff = rank_correlation(good, y, against=good, resamples=200)
    assert (self_diff.diff, self_diff.diff_low, self_diff.diff_high) == (0.0, 0.0, 0.0)
    assert math.isnan(rank_correlation(good, y, resamples=50).diff)  # no `against`, no difference
