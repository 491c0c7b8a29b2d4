"""benchmarks/default_intervals.py (issue 21): the coverage and width arithmetic on planted numbers, and
re-pooling a multi-process run from its samples file. No timing: the machine is shared."""

from __future__ import annotations

import math

from benchmarks import default_intervals as di


def _run(repeats, ratios, wall=10.0):
    return {"repeats": repeats, "wall_s": wall, "load_before": 1.0, "load_after": 1.5,
            "ratios": {k: {"ratio": r, "lo": lo, "hi": hi, "interval": "x", "stop_reason": "max_time"}
                       for k, (r, lo, hi) in ratios.items()}}


def test_coverage_counts_intervals_holding_the_mean_of_the_other_runs():
    runs = [_run(1, {"a": (1.00, 0.99, 1.01), "b": (2.0, 1.9, 2.1)}),
            _run(1, {"a": (1.10, 1.09, 1.11), "b": (2.0, 1.9, 2.1)}, wall=12.0),
            _run(6, {"a": (1.05, 0.98, 1.12)}), _run(6, {"a": (1.04, 0.97, 1.11)})]
    s = di.summarize(runs)
    one, six = s["1"], s["6"]
    # a: run 1 holds 1.10? no; run 2 holds 1.00? no. b: both hold 2.0
    assert (one["coverage"], one["ratios_all_covered"], one["worst"]) == (0.5, 1, "a")
    assert one["wall_s_median"] == 11.0 and one["load"] == [1.0, 1.0, 1.5]
    assert six["coverage"] == 1.0 and math.isclose(six["median_halfwidth_pct"], 6.6987, rel_tol=1e-3)
    assert "| 1 | 2 | 2 | 50.0% | 1/2 (1.7) | 1 (1.5) | 2 |" in di.markdown(s)
    # one rate (0.5) over two ratios judged twice: each missed at least once with 1 - 0.5^2
    assert (one["ratios_missed"], one["ratios_missed_if_one_rate"], one["most_misses_of_a_ratio"]) == (1, 0.75 * 2, 2)


def test_the_ceiling_of_every_run_covering_for_an_exact_interval():
    """Two runs: |x1 - x2| <= 1.96 with x1 - x2 ~ N(0, 2): P(|Z| <= 1.96/sqrt 2) = 0.834. Four: about 0.72,
    though each run alone covers with 0.910 (the runs share their data)."""
    assert abs(di.all_cover_if_exact(2, draws=40_000) - 0.8343) < 0.01
    assert abs(di.all_cover_if_exact(4, draws=40_000) - 0.720) < 0.01
    assert di.all_cover_if_exact(4, level=0.999, draws=10_000) > 0.98
