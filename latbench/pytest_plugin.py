"""The `latbench` pytest fixture: gate latency inside an existing test suite.

    def test_new_block_is_not_slower(latbench):
        latbench.assert_not_slower(new_block, old_block, torch.randn(1, 64, 56, 56), by=0.05)

Both models are measured interleaved in one group (latbench.measure), and the decision is taken on
the 95 % interval of the new/old latency ratio, not on a point estimate:

  pass          the whole interval is within the bound (new/old <= 1 + by)
  fail          the whole interval is beyond it: slower than allowed, and the noise cannot explain it
  inconclusive  the interval straddles the bound, or is undefined: this run cannot tell. The test is
                skipped with the numbers, or fails with --latbench-strict.

verdict.judge decides (holds/fails/unclear, rendered here as pass/fail/inconclusive). A failure is
reported as one line (the claim, ratio, interval and bound): the plugin's frames are hidden from the
traceback.

Options: --latbench-strict, --latbench-results DIR (every measurement also writes its results files
there, named after the test, for `latbench compare`), --latbench-max-time S (seconds per model at
most; default as `latbench run`). Registered as a pytest11 entry point; importing it imports no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from latbench.verdict import FAILS, HOLDS, judge as judge_interval

INCONCLUSIVE = "inconclusive"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("latbench", "latency assertions (the latbench fixture)")
    group.addoption("--latbench-strict", action="store_true", default=False,
                    help="fail latency assertions whose interval straddles the bound (default: skip the test "
                         "as inconclusive)")
    group.addoption("--latbench-results", metavar="DIR", default=None,
                    help="write each measurement's results files into DIR, for 'latbench compare'")
    group.addoption("--latbench-max-time", metavar="S", type=float, default=None,
                    help="seconds of measurement per model at most (default: as 'latbench run' on the device)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "latbench: a test that measures latency with the latbench fixture")


class LatencyAssertionError(AssertionError):
    """A latency relation that the measurement contradicts (its interval excludes the bound)."""


@dataclass(frozen=True)
class Verdict:
    """The ratio new/old with its 95 % interval, the bound it was judged against, and the outcome."""

    outcome: str  # "pass", "fail" or INCONCLUSIVE
    ratio: float
    ci_low: float
    ci_high: float
    bound: float
    claim: str
    results: Any  # the DataFrame latbench.measure returned

    def __str__(self) -> str:
        return (f"{self.claim}: new/old latency {self.ratio:.3f} [95% CI {self.ci_low:.3f}, {self.ci_high:.3f}] "
                f"against {self.bound:.3f}: {self.outcome}")


def judge(ratio: float, ci_low: float, ci_high: float, bound: float, at_most: bool) -> str:
    """at_most: the claim is ratio <= bound (else ratio < bound, 'faster'). Decided on the interval
    by verdict.judge: pass (holds), fail (fails) or inconclusive (unclear)."""
    word = judge_interval(ci_low, ci_high, "<=" if at_most else "<", bound)
    return {HOLDS: "pass", FAILS: "fail"}.get(word, INCONCLUSIVE)


def slug(text: str) -> str:
    """A test's node id as a file name stem: 'tests/test_x.py::test_y[a-1]' -> 'test_x-test_y-a-1'."""
    path, sep, rest = text.partition("::")
    text = path.rsplit("/", 1)[-1].removesuffix(".py") + sep + rest
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "-", text).strip("-.") or "test"


class LatbenchFixture:
    """What the `latbench` fixture gives a test: measure(), assert_not_slower(), assert_faster()."""

    def __init__(self, request: pytest.FixtureRequest):
        self._request = request
        cfg = request.config
        self.strict: bool = cfg.getoption("latbench_strict")
        results = cfg.getoption("latbench_results")
        self.results_dir: Path | None = Path(results) if results else None
        self.max_time: float | None = cfg.getoption("latbench_max_time")
        self.name = slug(request.node.nodeid)

    def measure(self, models: Any, example_inputs: Any, **kwargs: Any):
        """latbench.measure(...) with this session's options (results dir, max time) and the test's name."""
        from latbench.api import measure

        kwargs.setdefault("name", self.name)
        if self.max_time is not None:
            kwargs.setdefault("max_time", self.max_time)
        if self.results_dir is not None:
            kwargs.setdefault("results_dir", self.results_dir)
        return measure(models, example_inputs, **kwargs)

    def assert_not_slower(self, new: Any, old: Any, example_inputs: Any, by: float = 0.05, **kwargs: Any) -> Verdict:
        """Fail when new is more than `by` (a fraction: 0.05 = 5 %) slower than old beyond the noise."""
        __tracebackhide__ = True  # a failure shows the test's line and the verdict, not the plugin
        return self._check(new, old, example_inputs, 1.0 + self._fraction(by), True,
                           f"new at most {100 * by:g}% slower than old", **kwargs)

    def assert_faster(self, new: Any, old: Any, example_inputs: Any, by: float = 0.0, **kwargs: Any) -> Verdict:
        """Fail unless new is faster than old by more than `by` (a fraction) beyond the noise."""
        __tracebackhide__ = True
        return self._check(new, old, example_inputs, 1.0 - self._fraction(by), False,
                           f"new faster than old by more than {100 * by:g}%", **kwargs)

    @staticmethod
    def _fraction(by: float) -> float:
        from latbench.errors import LatbenchError

        if not isinstance(by, (int, float)) or not 0 <= by < 1:
            raise LatbenchError(f"by={by!r} is not a fraction in [0, 1)", where="latbench fixture",
                                hint="give the allowed change as a fraction: by=0.05 means 5%")
        return float(by)

    def _check(self, new: Any, old: Any, example_inputs: Any, bound: float, at_most: bool, claim: str,
               **kwargs: Any) -> Verdict:
        __tracebackhide__ = True
        if isinstance(example_inputs, dict) and set(example_inputs) == {"new", "old"}:
            inputs = {"old": example_inputs["old"], "new": example_inputs["new"]}
        else:
            inputs = example_inputs
        df = self.measure({"old": old, "new": new}, inputs, baseline="old", **kwargs)
        row = df.set_index("case").loc["new"]
        if row["status"] != "ok" or df.set_index("case").loc["old", "status"] != "ok":
            bad = df[df["status"] != "ok"]
            raise LatencyAssertionError("could not measure: " + "; ".join(
                f"{r.case}: {r.status} ({r.error})" for r in bad.itertuples()))
        ratio, low, high = (float(row[c]) for c in ("ratio_to_baseline", "ratio_ci_low", "ratio_ci_high"))
        verdict = Verdict(judge(ratio, low, high, bound, at_most), ratio, low, high, bound, claim, df)
        if verdict.outcome == "fail":
            raise LatencyAssertionError(str(verdict))
        if verdict.outcome == INCONCLUSIVE:
            text = f"{verdict} (the interval straddles the bound; more --latbench-max-time or a quieter machine)"
            if self.strict:
                raise LatencyAssertionError(text + " [--latbench-strict]")
            pytest.skip(text)
        return verdict


@pytest.fixture
def latbench(request: pytest.FixtureRequest) -> LatbenchFixture:
    """Measure models interleaved and assert latency relations judged on the ratio's 95 % interval."""
    return LatbenchFixture(request)
