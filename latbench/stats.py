"""Pure statistics on samples (seconds or ratios): median, spread, outliers, and distribution-free
confidence intervals for a median (order statistics, scipy.stats.quantile_test).

Per-round samples are autocorrelated (a machine that is slow now is slow a moment later), so the
intervals a row carries (`summarize`, `paired_ratio`) are `median_ci_dependent`: the order-statistic
interval with its binomial count widened by the series' effective sample size (interval name
"order-ess", see INTERVAL). Across processes, `pool_processes` adds the between-process spread.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats as _st

from latbench.records import RankCorrelation, Ratio, Summary  # RankCorrelation: rank_correlation's record

CONFIDENCE = 0.95
# Samples beyond Q1 - k*IQR or Q3 + k*IQR count as outliers (Tukey's far-out fences, as hyperfine
# and pyperf flag them). They stay in the data: the median is robust to them.
OUTLIER_IQR_FACTOR = 3.0


@functools.lru_cache(maxsize=4096)
def _median_ci_rank(n: int, confidence: float) -> int:
    """The 1-based rank j such that [x_(j), x_(n-j+1)] covers the median with >= `confidence`:
    the largest j with P(B <= j-1) <= (1-confidence)/2 for B ~ Binomial(n, 1/2); 0 if none exists."""
    half_alpha = (1 - confidence) / 2
    k = int(_st.binom.ppf(half_alpha, n, 0.5))
    while k >= 0 and _st.binom.cdf(k, n, 0.5) > half_alpha:
        k -= 1
    return k + 1


def median_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Distribution-free CI for the median: a pair of order statistics (binomial coverage, the
    interval scipy.stats.quantile_test gives, with the rank cached per n for speed).

    With fewer than 6 values no pair covers 95 %; the full range is returned instead.
    """
    x = np.sort(np.asarray(values, dtype=float))
    if x.size == 0:
        return (math.nan, math.nan)
    j = _median_ci_rank(int(x.size), confidence)
    if j < 1:
        return (float(x[0]), float(x[-1]))
    return (float(x[j - 1]), float(x[x.size - j]))


def summarize(samples_s: Sequence[float]) -> Summary:
    """Median, mean, p10/p90/p99, IQR, CI of the median and outlier count, all in milliseconds."""
    x = np.asarray(samples_s, dtype=float) * 1e3
    if x.size == 0:
        nan = math.nan
        return Summary(nan, nan, nan, nan, nan, nan, nan, 0, 0)
    q1, q3 = np.percentile(x, [25, 75])
    iqr = q3 - q1
    outliers = int(np.sum((x < q1 - OUTLIER_IQR_FACTOR * iqr) | (x > q3 + OUTLIER_IQR_FACTOR * iqr)))
    lo, hi = median_ci_dependent(x)
    p10, p90, p99 = np.percentile(x, [10, 90, 99])
    return Summary(median_ms=float(np.median(x)), mean_ms=float(x.mean()), p10_ms=float(p10), p90_ms=float(p90),
                   iqr_ms=float(iqr), ci_low_ms=lo, ci_high_ms=hi, n=int(x.size), outliers=outliers,
                   p99_ms=float(p99))


def paired_ratio(samples: Sequence[float], rounds: Sequence[int],
                 base_samples: Sequence[float], base_rounds: Sequence[int]) -> Ratio:
    """Median of per-round ratios sample/baseline, with its CI (`median_ci_dependent`: distribution-free,
    widened for autocorrelation between rounds).

    Rounds pair the samples: in an interleaved run both were measured moments apart, so machine-wide
    drift cancels in each ratio. Rounds present on one side only are ignored.
    """
    r = per_round_ratios(samples, rounds, base_samples, base_rounds)
    if not r:
        return Ratio(math.nan, math.nan, math.nan, 0, interval=INTERVAL)
    lo, hi = median_ci_dependent(r)
    return Ratio(value=float(np.median(r)), ci_low=lo, ci_high=hi, n=len(r), interval=INTERVAL)


def relative_halfwidth(lo: float, hi: float, centre: float) -> float:
    """Half the CI's width as a fraction of its centre (inf when undefined)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or centre <= 0:
        return math.inf
    return (hi - lo) / 2 / centre


# --- comparing runs (compare, gate, calibrate)
# Between runs each run contributes one number per case (its median); the tests below are on the logs
# of those numbers, so ratios are symmetric and the between-run spread is in their CIs.

BOOTSTRAP_RESAMPLES = 2000


def pooled_log_sd(groups: Sequence[Sequence[float]]) -> tuple[float, int]:
    """(sd, degrees of freedom) of log values pooled over the groups of >= 2 values: sqrt(sum of squared
    deviations from each group's own mean / sum(n - 1)). (nan, 0) without any such group."""
    ss, df = 0.0, 0
    for g in groups:
        a = np.log(np.asarray(g, float))
        if a.size >= 2:
            ss += float(((a - a.mean()) ** 2).sum())
            df += a.size - 1
    return (math.sqrt(ss / df), df) if df else (math.nan, 0)


def log_sd_pct(*groups: Sequence[float]) -> float:
    """pooled_log_sd of the groups, in percent (nan without a group of >= 2)."""
    return 100 * pooled_log_sd(groups)[0]


def geometric_mean(values: Sequence[float]) -> float:
    return float(np.exp(np.log(np.asarray(values, float)).mean()))


def ratio_from_runs(base_ms: Sequence[float], cand_ms: Sequence[float], alpha: float = 0.05
                    ) -> tuple[float, float, float, float, str]:
    """Ratio of geometric means of run medians (candidate / baseline), its 1-alpha CI and the p-value of
    a two-sample t-test on their logs.

    Both sides >= 2 runs: Welch's test (unequal variances, "runs-welch"). One side with a single run:
    Student's test, whose pooled variance comes from the other side ("runs-pooled"): the single run
    borrows the other side's run-to-run variance. No spread at all (synthetic data): the ratio is exact.
    One run on each side, or a non-finite/non-positive latency: nan CI and method "undefined" (never
    a verdict). Returns (ratio, ci_low, ci_high, p_value, method).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = np.log(np.asarray(base_ms, float)), np.log(np.asarray(cand_ms, float))
    if x.size == 0 or y.size == 0 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return math.nan, math.nan, math.nan, math.nan, "undefined"
    d = float(y.mean() - x.mean())
    if x.size + y.size < 3:  # one run a side: no run-to-run variance to borrow (compare then uses the noise floor)
        return math.exp(d), math.nan, math.nan, math.nan, "undefined"
    welch = len(x) >= 2 and len(y) >= 2
    method = "runs-welch" if welch else "runs-pooled"
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return math.exp(d), math.exp(d), math.exp(d), (1.0 if d == 0 else 0.0), method
    with warnings.catch_warnings():  # scipy's "precision loss" on nearly identical medians: the CI is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        res = _st.ttest_ind(y, x, equal_var=not welch)
        ci = res.confidence_interval(1 - alpha)
    return math.exp(d), math.exp(float(ci.low)), math.exp(float(ci.high)), float(res.pvalue), method


def floor_run_interval(ratio: float, ci_low: float, ci_high: float, base_runs: int, cand_runs: int,
                       pooled_sd: float, pooled_df: int, alpha: float = 0.05) -> tuple[float, float, bool]:
    """A multi-run interval widened, where needed, to what the run-to-run noise pooled across cases
    allows: never narrower than ratio x/ exp(t(pooled_df) * pooled_sd * sqrt(1/m + 1/n)).

    A case's own run-to-run sd from 2-3 runs has 1-4 degrees of freedom and can be tiny by luck (two runs
    that happen to agree); the sd pooled over every case of the comparison (calibrate's sigma) has many.
    The case's own interval keeps its own t quantile (its own uncertainty); the pooled one has its own.
    Returns (low, high, floored: the pooled noise decided an end)."""
    if not (math.isfinite(pooled_sd) and pooled_sd > 0 and pooled_df > 0 and base_runs and cand_runs
            and math.isfinite(ratio) and ratio > 0):
        return ci_low, ci_high, False
    t = float(_st.t.ppf(1 - alpha / 2, pooled_df))
    half = t * pooled_sd * math.sqrt(1 / base_runs + 1 / cand_runs)
    lo, hi = ratio * math.exp(-half), ratio * math.exp(half)
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return lo, hi, True
    return min(ci_low, lo), max(ci_high, hi), bool(lo < ci_low or hi > ci_high)


def data_to_decide(ci_low: float, ci_high: float, bound: float) -> float:
    """How many times the data (rounds, runs) an interval needs before it lies wholly on one side of
    `bound`, if its centre stays where it is: (half-width / distance of the centre from the bound)^2 on
    the log scale, since an interval narrows as 1/sqrt(data). inf when the centre is on the bound, nan
    when the interval or the bound is not a positive finite interval."""
    if not all(math.isfinite(v) and v > 0 for v in (ci_low, ci_high, bound)) or ci_low > ci_high:
        return math.nan
    half = (math.log(ci_high) - math.log(ci_low)) / 2
    gap = abs((math.log(ci_high) + math.log(ci_low)) / 2 - math.log(bound))
    if half == 0:
        return 1.0
    return (half / gap) ** 2 if gap > 0 else math.inf


def ratio_from_samples(base: Sequence[float], cand: Sequence[float], alpha: float = 0.05, noise_floor: float = 0.0,
                       seed: int = 0) -> tuple[float, float, float]:
    """Ratio of medians of one run each (candidate / baseline) with a seeded percentile-bootstrap CI
    (each side resampled on its own), widened by noise_floor: (ci_low / (1 + floor), ci_high * (1 + floor)),
    the drift between two runs that within-run samples cannot show."""
    b, c = np.asarray(base, float), np.asarray(cand, float)
    ratio = float(np.median(c) / np.median(b))
    rng = np.random.default_rng(seed)
    mb = np.median(rng.choice(b, size=(BOOTSTRAP_RESAMPLES, b.size)), axis=1)
    mc = np.median(rng.choice(c, size=(BOOTSTRAP_RESAMPLES, c.size)), axis=1)
    lo, hi = np.quantile(mc / mb, [alpha / 2, 1 - alpha / 2])
    return ratio, float(lo) / (1 + noise_floor), float(hi) * (1 + noise_floor)


def ratio_noise_sds(threshold: float, run_noise_pct: float, base_runs: int, cand_runs: int) -> float:
    """How many sds of the log ratio's run-to-run noise a threshold is: log(1 + threshold) /
    (sigma * sqrt(1/m + 1/n)) with sigma the sd of log run medians (nan when undefined)."""
    if not (math.isfinite(run_noise_pct) and base_runs and cand_runs):
        return math.nan
    sd = run_noise_pct / 100 * math.sqrt(1 / base_runs + 1 / cand_runs)
    return math.log1p(threshold) / sd if sd > 0 else math.nan


def threshold_for_noise(sigma: float, z: float, runs_per_side: int, minimum: float) -> float:
    """The change a gate with runs_per_side runs per side sees from noise alone at most rarely: z sds of
    the log ratio, sigma * sqrt(2 / n), as a fraction exp(z * sd) - 1, rounded up to 0.5 %, >= minimum."""
    return max(minimum, math.ceil(200 * (math.exp(z * sigma * math.sqrt(2 / runs_per_side)) - 1)) / 200)


# --- Intervals that respect autocorrelation, and pooling across processes -------------------------

# What a Ratio's `interval` field says about its ci_low/ci_high.
INTERVALS: dict[str, str] = {
    "order": "order statistics of the samples as if independent (scipy.stats.quantile_test); "
             "under-covers when rounds are autocorrelated",
    "order-ess": "order statistics with the binomial count widened by the series' effective sample size "
                 "(autocorrelation of the indicator x <= median); equals 'order' for an uncorrelated series",
    "processes-t": "t interval over the medians of separate processes (random effects: includes the "
                   "between-process variance); fewer than ORDER_PROCESSES processes",
    "processes-order": "the median of ORDER_PROCESSES or more process medians with their order-statistic "
                       "interval (median_ci over the processes: distribution-free, includes the between-process "
                       "spread, robust to a process that ran into a burst of load), never narrower than the "
                       "interval of all processes' rounds pooled",
}
# From this many processes on, pool_processes gives "processes-order": 6 is the fewest whose extreme order
# statistics cover the median with >= 95 % (1 - 2 / 2^6 = 96.9 %); with fewer, a t interval.
ORDER_PROCESSES = 6
INTERVAL = "order-ess"  # the interval summarize() and paired_ratio() give


def per_round_ratios(samples: Sequence[float], rounds: Sequence[int],
                     base_samples: Sequence[float], base_rounds: Sequence[int]) -> list[float]:
    """sample/baseline for every round both sides have (baseline > 0), in round order."""
    base = dict(zip(base_rounds, base_samples))
    return [s / base[k] for k, s in sorted(zip(rounds, samples)) if k in base and base[k] > 0]


def integrated_autocorr_time(series: Sequence[float]) -> float:
    """tau = 1 + 2 * sum of the autocorrelations of a series, >= 1 (1: uncorrelated).

    Geyer's initial positive sequence: sums of adjacent-lag pairs are added while they stay positive
    (up to lag n/3), the estimator MCMC effective-sample-size tools use, with each autocorrelation
    raised by tau/n (their bias for a series whose mean is estimated; two passes). n / tau is the
    effective sample size. Series shorter than 4 or constant give 1.
    """
    y = np.asarray(series, dtype=float)
    n = y.size
    if n < 4:
        return 1.0
    d = y - y.mean()
    var = float(np.dot(d, d))
    if var <= 0 or not math.isfinite(var):
        return 1.0
    max_lag = max(1, n // 3)
    # autocorrelations for lags 0..max_lag through one FFT (O(n log n) at any n)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(d, size)
    acf = np.fft.irfft(f * np.conjugate(f), size)[: max_lag + 1] / var
    tau = 1.0
    for _ in range(2):  # sample autocorrelations are biased low by about tau / n: add it back, twice
        corrected = acf + np.r_[0.0, np.full(max_lag, tau / n)]
        est, k = -1.0, 0
        while 2 * k + 1 <= max_lag:
            pair = corrected[2 * k] + corrected[2 * k + 1]
            if pair <= 0:
                break
            est += 2 * pair
            k += 1
        tau = max(1.0, float(est))
    return tau


@functools.lru_cache(maxsize=1024)
def _t_quantile(confidence: float, df: float) -> float:
    return float(_st.t.ppf(1 - (1 - confidence) / 2, round(df, 1)))


def median_ci_dependent(values: Sequence[float], confidence: float = CONFIDENCE,
                        conservative: bool = False) -> tuple[float, float]:
    """CI of the median of a time-ordered series whose neighbours may be correlated ("order-ess").

    The order-statistic interval rests on B = #(x_t <= median) being Binomial(n, 1/2). Autocorrelation
    inflates Var(B) by tau, the integrated autocorrelation time of that indicator series: the ranks
    are taken for n_eff = n / tau samples (normal approximation) and mapped back onto the n order
    statistics (with a t quantile on n_eff - 1 degrees of freedom). Never narrower than median_ci, and
    equal to it when tau = 1 (uncorrelated rounds).

    conservative: tau is at least that of the series' ranks too (larger, and steadier on short
    series). The stop rule decides with it, so that stopping does not pick the series whose
    indicator autocorrelation happened to be underestimated.
    On seeded AR(1) series (phi = 0.5, 100 rounds; tests/test_intervals.py) it held the true median
    in 95.8 % of 600 series, median_ci in 81.3 %.
    """
    x = np.asarray(values, dtype=float)
    base = median_ci(x, confidence)
    if x.size < 4 or not all(math.isfinite(v) for v in base):
        return base
    tau = integrated_autocorr_time((x <= np.median(x)).astype(float))
    if conservative:
        tau = max(tau, integrated_autocorr_time(_st.rankdata(x)))
    if tau <= 1.0:
        return base
    n = x.size
    t = _t_quantile(confidence, max(1.0, n / tau - 1))  # t, not z: tau itself is estimated
    half = t * math.sqrt(tau / n) / 2  # half-width in probability: t * sqrt(n_eff / 4) / n_eff
    lo_i = max(0, math.floor(n * (0.5 - half) - 0.5))
    hi_i = min(n - 1, math.ceil(n * (0.5 + half) - 0.5))
    xs = np.sort(x)
    return (min(base[0], float(xs[lo_i])), max(base[1], float(xs[hi_i])))


@dataclass(frozen=True)
class Pooled:
    """A ratio (or latency) measured in several processes, pooled: value with a random-effects interval.

    between_rel: sample std of the per-process log values (~ relative std between processes);
    within_rel: median relative half-width of the processes' own intervals; spread_rel: max/min - 1.
    unstable: the processes disagree by more than their own intervals say (between_rel > within_rel):
    the number will not hold from one process to the next to within a single run's interval.
    """

    value: float
    ci_low: float
    ci_high: float
    n_processes: int
    between_rel: float
    within_rel: float
    spread_rel: float
    unstable: bool
    interval: str = "processes-t"

    def as_ratio(self, n: int = 0) -> Ratio:
        """The pooled value as a Ratio record (n: total paired rounds, if the caller knows it)."""
        return Ratio(self.value, self.ci_low, self.ci_high, n or self.n_processes, interval=self.interval)


def pooled_interval_name(processes: int) -> str:
    """The `interval` pool_processes gives for this many processes (one: its own)."""
    return INTERVAL if processes <= 1 else "processes-order" if processes >= ORDER_PROCESSES else "processes-t"


def pool_processes(per_process: Sequence[Ratio], confidence: float = CONFIDENCE,
                   pooled: tuple[float, float] | None = None) -> Pooled:
    """Pool one quantity measured in k separate processes (each a Ratio: median and its in-process CI).

    k >= ORDER_PROCESSES ("processes-order"): the median of the process medians, with the
    distribution-free order-statistic interval of the median over the processes (median_ci of their
    values: [min, max] of 6, inner pairs from 9 on), so it holds the between-process spread, and a
    process that ran into a burst of load moves neither the estimate nor, beyond its rank, the interval.
    `pooled` (the interval of all processes' rounds pooled, where the caller has it) is a floor: the
    interval is never narrower. Issue 21 measured it against the t interval on the same runs
    (docs/intervals.md): about the coverage at half the width.

    k < ORDER_PROCESSES ("processes-t"): the geometric mean of the process medians; a t interval over
    their logs with k-1 degrees of freedom (as pyperf summarises its worker processes), so it holds
    the between-process variance (the sample variance of process medians already includes each
    process's own error: random effects with equal weights), never narrower than the within-process
    interval of the mean. One process: its own interval, interval name unchanged.
    Processes with no finite positive value are left out.
    """
    ok = [r for r in per_process if math.isfinite(r.value) and r.value > 0]
    nan = math.nan
    if not ok:
        return Pooled(nan, nan, nan, 0, nan, nan, nan, False)
    y = np.log([r.value for r in ok])
    within = [relative_halfwidth(r.ci_low, r.ci_high, r.value) for r in ok]
    finite_within = [w for w in within if math.isfinite(w)]
    within_rel = float(np.median(finite_within)) if finite_within else math.inf
    k = len(ok)
    if k == 1:
        r = ok[0]
        return Pooled(r.value, r.ci_low, r.ci_high, 1, 0.0, within_rel, 0.0, False, r.interval)
    between = float(y.std(ddof=1))
    spread = float(math.exp(y.max() - y.min()) - 1)
    unstable = bool(between > within_rel)
    if k >= ORDER_PROCESSES:
        lo, hi = median_ci(y, confidence)
        lo, hi = math.exp(lo), math.exp(hi)
        if pooled is not None and all(math.isfinite(v) and v > 0 for v in pooled):
            lo, hi = min(lo, pooled[0]), max(hi, pooled[1])
        return Pooled(value=math.exp(float(np.median(y))), ci_low=lo, ci_high=hi, n_processes=k,
                      between_rel=between, within_rel=within_rel, spread_rel=spread, unstable=unstable,
                      interval="processes-order")
    centre = float(y.mean())
    t = float(_st.t.ppf(1 - (1 - confidence) / 2, k - 1))
    half = t * between / math.sqrt(k)
    # never claim more than the processes' own intervals allow for their mean
    z = float(_st.norm.ppf(1 - (1 - confidence) / 2))
    within_se = [math.log1p(w) / z for w in finite_within]
    if within_se:
        half = max(half, z * math.sqrt(sum(s * s for s in within_se)) / k)
    if not finite_within:
        half = math.inf
    return Pooled(value=math.exp(centre), ci_low=math.exp(centre - half), ci_high=math.exp(centre + half),
                  n_processes=k, between_rel=between, within_rel=within_rel, spread_rel=spread,
                  unstable=unstable)


def share_slower(samples: list[float], rounds: list[Any], base_samples: list[float], base_rounds: list[Any]) -> float:
    """Share of paired rounds in which sample > baseline (a common-language effect size); nan if none pair."""
    base = dict(zip(base_rounds, base_samples))
    r = [s > base[k] for s, k in zip(samples, rounds) if k in base and base[k] > 0]
    return float(np.mean(r)) if r else math.nan


# --- rank correlation with an interval (predictors of latency: report's predictor table, predict's validation) --

def rank_correlation(x: Sequence[float], y: Sequence[float], confidence: float = CONFIDENCE,
                     resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0, groups: Sequence[Any] | None = None,
                     against: Sequence[float] | None = None) -> RankCorrelation:
    """Rank correlation of a predictor `x` with measured latency `y` and its bootstrap interval.

    A predictor constant over the pairs ranks nothing: rho = tau = 0 (not nan), so a cost that cannot
    tell cases apart scores as useless rather than disappearing from a table. Resamples in which either
    side is constant count as 0 for the same reason. `groups` (a label per pair, e.g. fixed-FLOPs groups):
    rho and tau are the means of the within-group coefficients over the groups of >= 3 pairs, and the
    bootstrap resamples whole groups, each with its coefficients as measured (the interval is over which
    groups were measured). `against` (a second predictor of the same pairs): diff = rho(x) - rho(against)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    c = np.asarray(against, dtype=float) if against is not None else np.zeros_like(a)
    keep = np.isfinite(a) & np.isfinite(b) & np.isfinite(c)
    label = np.asarray(list(groups), dtype=object) if groups is not None else np.zeros(a.size)
    units = [u for u in (np.flatnonzero(keep & (label == k)) for k in dict.fromkeys(label[keep])) if u.size >= 3]
    n = sum(u.size for u in units) if groups is not None else int(keep.sum())
    if not units:
        return RankCorrelation(n, *[math.nan] * 6)

    def coefficients(i: np.ndarray) -> tuple[float, float, float]:  # rho and tau of x, rho of `against`
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v, ranks = b[i], np.ptp(b[i]) > 0
            rho = [float(_st.spearmanr(u, v).statistic) if ranks and np.ptp(u) > 0 else 0.0 for u in (a[i], c[i])]
            return rho[0], float(_st.kendalltau(a[i], v).statistic) if ranks and np.ptp(a[i]) > 0 else 0.0, rho[1]

    rng = np.random.default_rng(seed)
    if groups is None:  # pairs resampled
        point = np.array(coefficients(units[0]))
        boot = np.array([coefficients(units[0][i]) for i in rng.integers(0, n, size=(resamples, n))])
    else:  # whole groups resampled
        per = np.array([coefficients(u) for u in units])
        point, boot = per.mean(axis=0), per[rng.integers(0, len(units), size=(resamples, len(units)))].mean(axis=1)
    q = [(1 - confidence) * 50, (1 + confidence) * 50]
    lo, hi = np.percentile(np.column_stack([boot, boot[:, 0] - boot[:, 2]]), q, axis=0)
    d = [point[0] - point[2], lo[3], hi[3]] if against is not None else [math.nan] * 3
    return RankCorrelation(n, *map(float, (point[0], lo[0], hi[0], point[1], lo[1], hi[1], *d)),
                           groups=len(units) if groups is not None else 0)
