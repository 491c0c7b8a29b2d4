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
