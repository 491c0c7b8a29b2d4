"""Issue 16: intervals that respect autocorrelation between rounds, and pooling across processes.

Coverage is checked on seeded synthetic series with a known true median: AR(1) noise in the log of
a ratio whose true median is 1.5 (the log is symmetric, so its median is exp(0) * 1.5).
"""

import math

import numpy as np
import pytest
from scipy import signal
from scipy import stats as st

from latbench.records import Ratio
from latbench.stats import (INTERVAL, INTERVALS, integrated_autocorr_time, median_ci, median_ci_dependent,
                            paired_ratio, per_round_ratios, pool_processes)

TRUE = 1.5


def effective_sample_size(values):
    """How many independent samples the series is worth for its median: n / tau of the indicator
    series x_t <= median (the count that the order-statistic interval rests on)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return 0.0
    return x.size / integrated_autocorr_time((x <= np.median(x)).astype(float))


def block_bootstrap_median_ci(values, confidence=0.95, block=None, resamples=2000, seed=0):
    """Percentile CI of the median from a circular block bootstrap over the time-ordered series.

    block: rounds per block (default: max(n^(1/3), 3 * tau of the series), at most n / 2); block=1 is
    the ordinary bootstrap (scipy.stats.bootstrap's percentile interval). Seeded, so repeatable.
    The alternative the coverage tests measure median_ci_dependent against: on short AR(1) series it
    under-covers (percentile bootstrap of a median is too narrow at small n).
    """
    x = np.asarray(values, dtype=float)
    n = x.size
    if n == 0:
        return (math.nan, math.nan)
    if n < 2:
        return (float(x[0]), float(x[0]))
    if block is None:
        block = math.ceil(max(n ** (1 / 3), 3 * integrated_autocorr_time(x)))
    block = max(1, min(int(block), max(1, n // 2)))
    rng = np.random.default_rng(seed)
    k = math.ceil(n / block)
    starts = rng.integers(0, n, size=(resamples, k))
    idx = ((starts[:, :, None] + np.arange(block)) % n).reshape(resamples, -1)[:, :n]
    medians = np.median(x[idx], axis=1)
    a = (1 - confidence) / 2
    lo, hi = np.quantile(medians, [a, 1 - a])
    return (float(lo), float(hi))


def ar1(rng, n, phi, sd=0.01):
    """A stationary AR(1) series in log space around log(TRUE): marginal std `sd`, lag-1 correlation phi."""
    e = rng.normal(0.0, sd * math.sqrt(1 - phi * phi), n + 100)
    x = signal.lfilter([1.0], [1.0, -phi], e)[100:]
    return TRUE * np.exp(x)


def coverage(ci_fn, phi, n, reps, seed):
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        lo, hi = ci_fn(ar1(rng, n, phi))
        hits += lo <= TRUE <= hi
    return hits / reps


def test_autocorrelated_rounds_break_the_old_interval_and_the_new_one_holds():
    # phi = 0.5: each round remembers half of the last one's deviation (a machine slow for a while)
    old = coverage(median_ci, 0.5, 100, 600, seed=1)
    new = coverage(median_ci_dependent, 0.5, 100, 600, seed=1)
    assert old < 0.88, old  # the order-statistic interval treats 100 rounds as 100 independent ones
    assert new >= 0.935, new  # ~95 %
    # strong correlation, longer series: still near the nominal level
    assert coverage(median_ci_dependent, 0.8, 200, 300, seed=2) >= 0.92


def test_uncorrelated_rounds_keep_the_order_statistic_interval():
    rng = np.random.default_rng(3)
    x = TRUE * np.exp(rng.normal(0, 0.01, 80))
    lo, hi = median_ci_dependent(x)
    blo, bhi = median_ci(x)
    assert lo <= blo and hi >= bhi  # never narrower
    # a strictly alternating series has negative autocorrelation: tau = 1, the same interval exactly
    alt = np.tile([1.0, 2.0], 30) + np.arange(60) * 1e-6
    assert integrated_autocorr_time((alt <= np.median(alt)).astype(float)) == 1.0
    assert median_ci_dependent(alt) == median_ci(alt)
    assert coverage(median_ci_dependent, 0.0, 60, 300, seed=4) >= 0.94


def test_autocorrelation_time_matches_ar1_theory_and_edge_cases():
    rng = np.random.default_rng(5)
    long = np.log(ar1(rng, 20_000, 0.5))
    assert integrated_autocorr_time(long) == pytest.approx((1 + 0.5) / (1 - 0.5), rel=0.12)  # tau = 3
    assert integrated_autocorr_time(rng.normal(size=20_000)) == pytest.approx(1.0, abs=0.1)
    assert integrated_autocorr_time([1.0, 2.0, 3.0]) == 1.0  # too short to say
    assert integrated_autocorr_time([2.0] * 50) == 1.0  # constant
    assert effective_sample_size([]) == 0.0
    x = ar1(rng, 2000, 0.5)
    assert 0.2 * 2000 < effective_sample_size(x) < 0.8 * 2000


def test_edge_cases_follow_median_ci():
    assert median_ci_dependent([3.0, 1.0, 2.0]) == (1.0, 3.0)
    assert median_ci_dependent([2.0] * 9) == (2.0, 2.0)
    assert all(math.isnan(v) for v in median_ci_dependent([]))


def test_paired_ratio_carries_the_dependent_interval_and_says_so():
    rng = np.random.default_rng(6)
    base = np.exp(rng.normal(0, 0.01, 120)) * 1e-3
    ratio = ar1(rng, 120, 0.6)
    rounds = list(range(120))
    r = paired_ratio(list(base * ratio), rounds, list(base), rounds)
    assert r.interval == INTERVAL == "order-ess" and r.interval in INTERVALS
    assert (r.ci_low, r.ci_high) == median_ci_dependent(ratio)
    assert Ratio(1.0, 1.0, 1.0, 1).interval == "order"  # records made elsewhere keep saying "order"
    # samples handed over out of round order are paired and ordered by round
    order = rng.permutation(120)
    shuffled = per_round_ratios(list(base * ratio)[::-1], rounds[::-1], [base[i] for i in order], order.tolist())
    assert shuffled == pytest.approx(list(ratio))
    assert paired_ratio([], [], [], []).interval == INTERVAL


def test_block_bootstrap_with_blocks_of_one_is_scipys_percentile_bootstrap():
    rng = np.random.default_rng(7)
    x = rng.lognormal(0.0, 0.2, 200)
    ours = block_bootstrap_median_ci(x, block=1, resamples=4000, seed=1)
    ref = st.bootstrap((x,), np.median, method="percentile", n_resamples=4000, random_state=2).confidence_interval
    width = ref.high - ref.low
    assert ours[0] == pytest.approx(ref.low, abs=0.15 * width)
    assert ours[1] == pytest.approx(ref.high, abs=0.15 * width)
    assert block_bootstrap_median_ci(x, seed=3) == block_bootstrap_median_ci(x, seed=3)  # seeded
    corr = ar1(rng, 200, 0.8)
    assert np.diff(block_bootstrap_median_ci(corr))[0] > np.diff(block_bootstrap_median_ci(corr, block=1))[0]
    assert all(math.isnan(v) for v in block_bootstrap_median_ci([]))


def proc(value, halfwidth=0.003, n=100):
    return Ratio(value, value * (1 - halfwidth), value * (1 + halfwidth), n, interval="order-ess")


def test_pooling_is_a_t_interval_over_process_medians_in_log_space():
    values = [1.448, 1.501, 1.623, 1.476, 1.455]
    p = pool_processes([proc(v) for v in values])
    logs = np.log(values)
    ref = st.ttest_1samp(logs, 0.0).confidence_interval(0.95)
    assert p.value == pytest.approx(math.exp(logs.mean()))
    assert (p.ci_low, p.ci_high) == pytest.approx((math.exp(ref.low), math.exp(ref.high)))
    assert p.n_processes == 5 and p.interval == "processes-t" and p.interval in INTERVALS
    assert p.spread_rel == pytest.approx(1.623 / 1.448 - 1)
    # processes 4 % apart while each claims +-0.3 %: the number will not hold from run to run
    assert p.unstable and p.between_rel > p.within_rel == pytest.approx(0.003)
    r = p.as_ratio()
    assert (r.value, r.ci_low, r.ci_high, r.interval) == (p.value, p.ci_low, p.ci_high, "processes-t")


def test_pooling_agreeing_processes_is_stable_and_never_narrower_than_their_own_intervals():
    p = pool_processes([proc(v, halfwidth=0.01) for v in (1.500, 1.5001, 1.4999)])
    assert not p.unstable
    # the t interval over three near-identical medians is tiny; the within-process error sets the floor
    assert (p.ci_high - p.ci_low) / 2 / p.value >= 0.01 / math.sqrt(3) * 0.99


def test_pooling_edge_cases():
    one = proc(1.2)
    p = pool_processes([one])
    assert (p.value, p.ci_low, p.ci_high, p.n_processes, p.unstable) == (1.2, one.ci_low, one.ci_high, 1, False)
    assert p.interval == "order-ess"  # a single process keeps its own interval's name
    none = pool_processes([Ratio(math.nan, math.nan, math.nan, 0)])
    assert none.n_processes == 0 and math.isnan(none.value) and not none.unstable
    assert pool_processes([proc(1.2), Ratio(math.nan, math.nan, math.nan, 0), proc(1.2)]).n_processes == 2


def test_pooled_interval_covers_a_drifting_process_mean_where_one_process_does_not():
    """Random effects: each process has its own true ratio (memory placement, other tenants) around
    the grand one; a process's own interval describes only itself."""
    rng = np.random.default_rng(8)
    single_hits, pooled_hits, reps = 0, 0, 300
    for _ in range(reps):
        procs = []
        for _ in range(5):
            centre = math.exp(rng.normal(0.0, 0.01))  # 1 % between processes
            x = ar1(rng, 60, 0.3, sd=0.01) * centre
            lo, hi = median_ci_dependent(x)
            procs.append(Ratio(float(np.median(x)), lo, hi, 60))
        single_hits += procs[0].ci_low <= TRUE <= procs[0].ci_high
        p = pool_processes(procs)
        pooled_hits += p.ci_low <= TRUE <= p.ci_high
    assert single_hits / reps < 0.75
    assert pooled_hits / reps >= 0.93


def test_the_conservative_interval_for_stopping_is_never_narrower():
    rng = np.random.default_rng(9)
    wider = 0
    for _ in range(50):
        x = ar1(rng, 60, 0.5)
        lo, hi = median_ci_dependent(x)
        clo, chi = median_ci_dependent(x, conservative=True)
        assert clo <= lo and chi >= hi
        wider += (chi - clo) > (hi - lo)
    assert wider >= 10  # the ranks' autocorrelation time is the larger one on many short series
