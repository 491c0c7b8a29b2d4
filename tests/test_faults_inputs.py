"""Bad option values and oversized suites (issue 14): one line, exit 2, nothing built or written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from latbench import faults
from latbench.cli import app

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "data" / "tiny.yaml"


def _run(tmp_path: Path, *args: str, suite: Path = TINY):
    return CliRunner().invoke(app, ["run", str(suite), "--quick", "--no-roofline", "-q", "--results-dir",
                                    str(tmp_path / "res"), *args], catch_exceptions=False)


@pytest.mark.parametrize("args, expected", [
    (("--seed", "-1"), "--seed -1 is out of range"),
    (("--seed", str(10**23)), "out of range"),
    (("--max-time", "inf"), "--max-time inf is not a finite number"),
    (("--min-time", "inf"), "--min-time inf is not a finite number"),
])
def test_option_values_no_run_can_use_are_refused(tmp_path, monkeypatch, args, expected):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    r = _run(tmp_path, *args)
    assert r.exit_code == 2 and expected in r.stderr and "Traceback" not in r.output, r.output
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("value", ["inf", "1e300"])
def test_an_endless_case_timeout_means_no_limit(tmp_path, monkeypatch, value):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    r = _run(tmp_path, "--case-timeout", value)
    assert r.exit_code == 0, r.output
    with faults.time_limit(float(value)):  # no OverflowError from setitimer
        pass


def _huge(tmp_path: Path, n: int) -> Path:
    p = tmp_path / "huge.yaml"
    text = TINY.read_text().replace("scales: [1, 2, 3, 4]", "scales: [1, 2, 3, 4]\nsweep: {batch: [%s], threads: [%s]}"
                                    % (", ".join(map(str, range(1, n + 1))), ", ".join(map(str, range(1, n + 1)))))
    p.write_text(text)
    return p


def test_a_sweep_beyond_the_limit_is_refused_before_anything_is_built(tmp_path, monkeypatch):
    """Issue 14: a 40,000-point sweep was built without a word (5 GB, 45 s)."""
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    r = _run(tmp_path, suite=_huge(tmp_path, 200))  # 200 x 200 points x 2 cases (--quick: one scale)
    assert r.exit_code == 2, r.output
    line = r.stderr.strip()
    assert "80,000 cases" in line and "--max-cases 80000" in line and "huge.yaml:" in line
    assert not (tmp_path / "res").exists()


def test_max_cases_allows_a_bigger_suite(tmp_path, monkeypatch):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    suite = _huge(tmp_path, 2)  # 2 x 2 points x 2 cases = 8
    assert _run(tmp_path, "--max-cases", "7", suite=suite).exit_code == 2
    r = _run(tmp_path, "--max-cases", "8", suite=suite)
    assert r.exit_code == 0, r.output
