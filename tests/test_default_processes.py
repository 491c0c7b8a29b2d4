"""Issue 21, item 1: the pooled interval of the default (several processes per group): from 6 processes
on, the median of the process medians with their order-statistic interval, floored by the interval of
all rounds pooled; fewer processes keep the t interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latbench.records import Ratio
from latbench.stats import INTERVALS, ORDER_PROCESSES, median_ci, pool_processes, pooled_interval_name


def _procs(values, half=0.01):
    return [Ratio(v, v * (1 - half), v * (1 + half), 20) for v in values]


def test_six_processes_give_the_median_and_the_order_statistic_interval():
    vals = [0.977, 0.969, 0.966, 0.969, 0.982, 0.980]
    p = pool_processes(_procs(vals))
    assert ORDER_PROCESSES == 6 and p.interval == "processes-order" and p.interval in INTERVALS
    assert p.value == pytest.approx(float(np.median(vals)), rel=1e-4)
    assert (p.ci_low, p.ci_high) == pytest.approx((min(vals), max(vals)))  # [x(1), x(6)]: 96.9 %
    lo, hi = median_ci(np.log(vals + [0.95, 0.99, 1.0]))
    assert (pool_processes(_procs(vals + [0.95, 0.99, 1.0])).ci_low,) == pytest.approx((math.exp(lo),))  # 9: inner pair


def test_a_process_caught_in_a_burst_moves_neither_the_estimate_nor_the_interval_beyond_its_rank():
    """A run of issue 21's benchmark: one of 6 processes got 5 rounds under load and measured 0.782."""
    vals = [0.964, 0.934, 0.989, 0.782, 0.969, 0.960]
    order = pool_processes(_procs(vals))
    t = pool_processes(_procs(vals[:5]))  # 5 processes: still the t interval
    assert t.interval == "processes-t" and pooled_interval_name(5) == "processes-t"
    assert order.value == pytest.approx(float(np.median(vals)), rel=1e-4)  # 0.962, not the geometric mean 0.931
    assert abs(order.value - 0.962) < 0.005 and order.ci_high == pytest.approx(0.989)
    geo = math.exp(np.log(vals).mean())
    assert geo < 0.94 < order.value  # what the t interval's centre would have said


def test_the_interval_of_all_rounds_is_a_floor():
    vals = [1.000, 1.001, 1.000, 1.002, 0.999, 1.001]  # processes that agree closely
    assert pool_processes(_procs(vals)).ci_high == pytest.approx(1.002)
    p = pool_processes(_procs(vals), pooled=(0.98, 1.03))
    assert (p.ci_low, p.ci_high) == (0.98, 1.03)
    assert pool_processes(_procs(vals), pooled=(math.nan, math.nan)).ci_high == pytest.approx(1.002)


def test_names():
    assert [pooled_interval_name(k) for k in (1, 2, 5, 6, 12)] == ["order-ess", "processes-t", "processes-t",
                                                                     "processes-order", "processes-order"]
