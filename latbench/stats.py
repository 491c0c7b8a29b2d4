"""Pure statistics on samples (seconds or ratios): median, spread, outliers, and distribution-free
confidence intervals for a median (order statistics, scipy.stats.quantile_test)."""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np
from scipy import stats as _st

from latbench.records import Ratio, Summary

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
    lo, hi = median_ci(x)
    p10, p90, p99 = np.percentile(x, [10, 90, 99])
    return Summary(median_ms=float(np.median(x)), mean_ms=float(x.mean()), p10_ms=float(p10), p90_ms=float(p90),
                   iqr_ms=float(iqr), ci_low_ms=lo, ci_high_ms=hi, n=int(x.size), outliers=outliers,
                   p99_ms=float(p99))


def paired_ratio(samples: Sequence[float], rounds: Sequence[int],
                 base_samples: Sequence[float], base_rounds: Sequence[int]) -> Ratio:
    """Median of per-round ratios sample/baseline, with its distribution-free CI.

    Rounds pair the samples: in an interleaved run both were measured moments apart, so machine-wide
    drift cancels in each ratio. Rounds present on one side only are ignored.
    """
    base = dict(zip(base_rounds, base_samples))
    r = [s / base[k] for s, k in zip(samples, rounds) if k in base and base[k] > 0]
    if not r:
        return Ratio(math.nan, math.nan, math.nan, 0)
    lo, hi = median_ci(r)
    return Ratio(value=float(np.median(r)), ci_low=lo, ci_high=hi, n=len(r))


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
    Student's test, whose pooled variance comes from the other side ("runs-pooled"). No spread at all
    (synthetic data): the ratio is exact. Returns (ratio, ci_low, ci_high, p_value, method).
    """
    x, y = np.log(np.asarray(base_ms, float)), np.log(np.asarray(cand_ms, float))
    d = float(y.mean() - x.mean())
    welch = len(x) >= 2 and len(y) >= 2
    method = "runs-welch" if welch else "runs-pooled"
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return math.exp(d), math.exp(d), math.exp(d), (1.0 if d == 0 else 0.0), method
    res = _st.ttest_ind(y, x, equal_var=not welch)
    ci = res.confidence_interval(1 - alpha)
    return math.exp(d), math.exp(float(ci.low)), math.exp(float(ci.high)), float(res.pvalue), method


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
