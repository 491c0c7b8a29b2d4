"""stats.median_ci picks exactly the order statistics scipy.stats.quantile_test picks, only faster."""

import math

import numpy as np
import pytest
from scipy import stats as st

from latbench.stats import median_ci


def reference(x, confidence=0.95):
    """The previous implementation: scipy's quantile_test CI, full range when it is undefined."""
    x = np.asarray(x, dtype=float)
    if x.size == 1 or np.all(x == x[0]):
        return (float(x[0]), float(x[0]))
    ci = st.quantile_test(x, q=float(np.median(x)), p=0.5).confidence_interval(confidence)
    lo, hi = float(ci.low), float(ci.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return (float(x.min()), float(x.max()))
    return (lo, hi)


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_same_interval_as_scipy_quantile_test_for_every_size(confidence):
    rng = np.random.default_rng(7)
    for n in [*range(1, 70), 101, 256, 500]:
        x = rng.lognormal(0.0, 0.2, n)
        assert median_ci(x, confidence) == reference(x, confidence), n
        ties = np.round(x, 1)
        assert median_ci(ties, confidence) == reference(ties, confidence), n


def test_small_samples_give_the_full_range_and_edge_cases_are_defined():
    assert median_ci([3.0, 1.0, 2.0]) == (1.0, 3.0)  # < 6 values: no pair covers 95 %
    assert median_ci([2.0] * 9) == (2.0, 2.0)
    assert all(math.isnan(v) for v in median_ci([]))
    assert median_ci([1.0, 2, 3, 4, 5, 6, float("inf")]) == (1.0, float("inf"))
