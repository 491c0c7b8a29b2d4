"""Issue 21: how intervals are printed. An undefined or absurd interval is never printed as numbers, and a
run table says whether its CIs cover one process or several."""

from __future__ import annotations

import math

from latbench.report.markdown import speed_text
from latbench.report.terminal import interval_scope, ratio_ci_text, ratio_header, ratio_text, run_markdown


def test_undefined_and_absurd_intervals_print_as_undefined():
    assert ratio_ci_text(1.42, 1.40, 1.45) == "1.420x [1.400, 1.450]"
    assert ratio_ci_text(1.037, 0.0, 10026.276) == "1.037x [CI undefined]"  # the printout
    assert ratio_ci_text(1.037, 1e-5, 0.9) == "1.037x [CI undefined]"  # ends a factor > 100 apart
    assert ratio_ci_text(1.0, math.nan, math.nan) == "1.000x [CI undefined]"
    assert ratio_ci_text(math.inf, 1.0, 2.0) == "undefined" and ratio_ci_text(0.0, 1.0, 2.0) == "undefined"
    assert ratio_ci_text(math.nan, math.nan, math.nan) == "-"  # no ratio at all (missing, failed)
    assert ratio_ci_text(0.004, 0.003, 0.005) == "0.004x [0.003, 0.005]"  # never 0.000
    assert ratio_ci_text(0.0004, 0.0003, 0.0005) == "0.0004x [0.0003, 0.0005]"
    row = {"case": "a", "baseline_case": "b", "ratio_to_baseline": 1.2, "ratio_ci_low": 0.0, "ratio_ci_high": 99999.0}
    assert ratio_text(row) == "1.200x [CI undefined]"


def _rows(interval, repeats):
    base = {"case": "b", "baseline_case": "b", "status": "ok", "ratio_interval": interval, "repeats": repeats,
            "scale": 1, "mode": "eager", "latency_ms": 1.0}
    return [base, {**base, "case": "a", "ratio_to_baseline": 1.1, "ratio_ci_low": 1.05, "ratio_ci_high": 1.15}]


def test_the_run_table_says_what_its_intervals_cover():
    assert interval_scope(_rows("order-ess", 1)) == "within one process"
    assert ratio_header(_rows("order-ess", 1)) == "latency ratio [95% CI within one process]"
    assert ratio_header(_rows("processes-t", 6)) == "latency ratio [95% CI over 6 processes]"
    assert ratio_header(_rows("processes-t", 6) + _rows("order-ess", 1)[1:]) == "latency ratio [95% CI]"
    assert "within one process" in run_markdown(_rows("order-ess", 1), "t")
    assert "within one process" not in run_markdown(_rows("processes-t", 6), "t")


def test_the_report_marks_one_process_intervals_and_never_prints_absurd_ones():
    from types import SimpleNamespace

    c = SimpleNamespace(case="a", baseline="b", unstable=False, speed=0.8, ratio=1.25, ci_low=1.2, ci_high=1.3,
                        processes=1, spread_pct=math.nan)
    assert speed_text(c).endswith("within one process")
    assert "within" not in speed_text(SimpleNamespace(**{**vars(c), "processes": 6}))
    assert speed_text(SimpleNamespace(**{**vars(c), "ci_low": 1e-6, "ci_high": 1e6})) == "0.80 [CI undefined]"
