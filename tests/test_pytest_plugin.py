"""The latbench pytest plugin, run inside pytester (fake backend, short budgets)."""

from __future__ import annotations

import math

import pytest
import torch  # noqa: F401 - imported here, not first inside pytester's in-process run (it restores sys.modules)

import latbench.api  # noqa: F401 - likewise
from latbench.pytest_plugin import INCONCLUSIVE, judge, slug

pytest_plugins = ["pytester"]

# Load the plugin by module whether or not the installed entry point already did.
PLUGIN = ("-p", "no:latbench", "-p", "latbench.pytest_plugin")

TESTS = '''
import torch
from torch import nn

SLOW = nn.Sequential(nn.Linear(64, 2048), nn.Linear(2048, 2048), nn.Linear(2048, 64))
FAST = nn.Identity()
X = torch.randn(8, 64)
KW = dict(fake_backend=True, quick=True, max_time=0.1, min_time=0.02)


def test_pass(latbench):
    v = latbench.assert_not_slower(FAST, SLOW, X, by=0.05, **KW)
    assert v.outcome == "pass" and v.ci_high <= 1.05


def test_fail(latbench):
    latbench.assert_not_slower(SLOW, FAST, X, by=0.05, **KW)


def test_faster(latbench):
    latbench.assert_faster(FAST, SLOW, X, by=0.2, **KW)


def test_inconclusive(latbench, monkeypatch):
    monkeypatch.setattr("latbench.pytest_plugin.judge", lambda *a: "inconclusive")
    latbench.assert_not_slower(FAST, SLOW, X, by=0.05, **KW)
'''


def test_pass_fail_and_inconclusive_skip(pytester):
    pytester.makepyfile(test_speed=TESTS)
    result = pytester.runpytest(*PLUGIN, "-rs")
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*LatencyAssertionError: new at most 5% slower than old: new/old latency *fail*",
                                 "*SKIPPED*inconclusive*straddles*"])


def test_a_failing_assertion_is_reported_in_a_few_lines_without_the_plugins_frames(pytester):
    """The failure shows the test's line and the verdict (claim, ratio, interval, bound), not the
    plugin's frames with their arguments (model and tensor reprs)."""
    pytester.makepyfile(test_speed=TESTS)
    result = pytester.runpytest(*PLUGIN, "-k", "test_fail")
    result.assert_outcomes(failed=1)
    lines = result.outlines
    section = lines[next(i for i, x in enumerate(lines) if "FAILURES" in x):
                    next(i for i, x in enumerate(lines) if "short test summary" in x)]
    text = "\n".join(section)
    assert len(section) < 15, text
    assert "new at most 5% slower than old: new/old latency" in text and "95% CI" in text and "against 1.050" in text
    assert "tensor(" not in text and "Sequential(" not in text and "pytest_plugin.py" not in text, text


def test_strict_fails_inconclusive_and_results_are_saved_for_compare(pytester, tmp_path):
    pytester.makepyfile(test_speed=TESTS)
    out = tmp_path / "lat"
    result = pytester.runpytest(*PLUGIN, "--latbench-strict", "--latbench-results", str(out), "-k",
                                "inconclusive or pass")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*straddles*--latbench-strict*"])
    csvs = sorted(p.name for p in out.glob("*.csv") if not p.name.endswith("-samples.csv"))
    assert [c.split("-cpu-")[0] for c in csvs] == ["test_speed-test_inconclusive", "test_speed-test_pass"]
    from latbench.results import read_run

    run = read_run(out / csvs[1])
    assert sorted(run.rows["case"]) == ["new", "old"]


def test_help_lists_the_options(pytester):
    result = pytester.runpytest(*PLUGIN, "--help")
    result.stdout.fnmatch_lines(["*--latbench-strict*", "*--latbench-results=DIR*", "*--latbench-max-time=S*"])


@pytest.mark.parametrize("low, high, bound, at_most, expected", [
    (0.9, 1.04, 1.05, True, "pass"), (1.06, 1.2, 1.05, True, "fail"), (1.0, 1.1, 1.05, True, INCONCLUSIVE),
    (0.9, 1.05, 1.05, True, "pass"), (0.7, 0.79, 0.8, False, "pass"), (0.8, 0.9, 0.8, False, "fail"),
    (0.75, 0.85, 0.8, False, INCONCLUSIVE), (math.nan, math.nan, 1.05, True, INCONCLUSIVE),
])
def test_judge_decides_on_the_interval(low, high, bound, at_most, expected):
    assert judge((low + high) / 2, low, high, bound, at_most) == expected


def test_slug_makes_file_name_stems():
    assert slug("tests/test_x.py::test_y[a-1]") == "test_x-test_y-a-1"
    assert slug("test_x.py::TestA::test_b[cpu/fp16]") == "test_x-TestA-test_b-cpu-fp16"
