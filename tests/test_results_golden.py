"""Golden files: the exact output of compare, gate and calibrate in every format on seeded results files.

A change to what these commands print shows up here as a diff against tests/golden/. When the change is
intended, regenerate the files and review the diff in git:

    LATBENCH_UPDATE_GOLDEN=1 python -m pytest -q tests/test_results_golden.py
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from resultfiles import write_run
from typer.testing import CliRunner

from latbench.cli import app

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("LATBENCH_UPDATE_GOLDEN") == "1"
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
FORMATS = ("table", "markdown", "json", "csv")
SKIP = {"cudagraph": "cudagraph needs a CUDA device"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """3 baseline and 3 candidate runs, 2 % run-to-run drift: g=1 unchanged, g=2 25 % slower, g=4 20 %
    faster, 'old' only in the baseline, 'boom' failing in the candidate, 'cudagraph' skipped on both."""
    root = tmp_path_factory.mktemp("golden")
    base = {"g=1": 10.0, "g=2": 12.0, "g=4": 15.0, "old": 5.0, "boom": 7.0, "cudagraph": 1.0}
    head = {"g=1": 10.0, "g=2": 15.0, "g=4": 12.0, "boom": 7.0, "cudagraph": 1.0}
    drift = (1.0, 1.02, 0.985)
    for i in range(3):
        write_run(root / "base", base, seed=10 + i, drift=drift[i], skipped=SKIP, now=T0 + timedelta(minutes=i))
        write_run(root / "head", head, seed=20 + i, drift=drift[i], skipped=SKIP, failed=("boom",),
                  now=T0 + timedelta(hours=1, minutes=i))
    return root


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} is missing; regenerate with LATBENCH_UPDATE_GOLDEN=1"
    assert _tame(text) == _tame(path.read_text(encoding="utf-8")), \
        f"{name} differs from its golden file (see module docstring)"


_LONG_FLOAT = re.compile(r"-?\d+\.\d{10,}(?:e[-+]?\d+)?")


def _tame(text: str) -> str:
    """Full-precision floats (json, csv) to 9 significant digits: the last bits of exp/log/t quantiles
    differ between CPUs (libm and SIMD paths; an Intel and an AMD machine differed in the 12th digit),
    and those bits are not what these files pin down."""
    return _LONG_FLOAT.sub(lambda m: f"{float(m.group()):.9g}", text)


def _run(results, monkeypatch, *args) -> tuple[int, str]:
    monkeypatch.chdir(results)  # relative paths: the outputs name files the same way on every machine
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    r = CliRunner().invoke(app, [str(a) for a in args])
    return r.exit_code, r.stdout


@pytest.mark.parametrize("fmt", FORMATS)
def test_compare_output(results, monkeypatch, fmt):
    code, out = _run(results, monkeypatch, "compare", "--baseline", "base", "head", "--format", fmt)
    assert code == 0
    _check(f"compare.{fmt}", out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_gate_output(results, monkeypatch, fmt):
    code, out = _run(results, monkeypatch, "gate", "-b", "base", "-c", "head/*.csv", "--format", fmt)
    assert code == 1  # g=2 slower and boom failed in the candidate
    _check(f"gate.{fmt}", out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_compare_one_run_per_side_output(results, monkeypatch, fmt):
    code, out = _run(results, monkeypatch, "compare", "base/syn-cpu-20260102T030405Z.csv",
                     "head/syn-cpu-20260102T040405Z.csv", "--format", fmt)
    assert code == 0
    _check(f"compare-1v1.{fmt}", out)


@pytest.mark.parametrize("fmt", ("table", "json"))
def test_calibrate_output(results, monkeypatch, fmt):
    code, out = _run(results, monkeypatch, "calibrate", "base", "--format", fmt)
    assert code == 0
    _check(f"calibrate.{fmt}", out)
