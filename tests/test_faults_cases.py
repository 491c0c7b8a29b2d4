"""A case's fault boundary (issue 14): counting, building and timing a case are all inside it and
inside its --case-timeout; whatever user code does there (raise, sys.exit, BaseException, loop
forever) fails that case alone: a `failed` row, its neighbours measured, the metadata `complete`,
exit 1 (never the user's exit code). Timed by the fake backend."""

from __future__ import annotations

import json
import signal
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from latbench import faults
from latbench.run import RunOptions, pipeline, run
from latbench.cli import app

SUITE = """\
suite: u
experiment: U
builder: user
blocks: 1
cases:
  - name: ok
    params: {factory: "faults_factory:forward", kwargs: {c: 4}, input_shape: [4, 6, 6]}
  - name: bad
    params: {factory: "faults_factory:FACTORY", kwargs: KWARGS, input_shape: [4, 6, 6]}
  - name: ok2
    params: {factory: "faults_factory:forward", kwargs: {c: 4}, input_shape: [4, 6, 6]}
"""

# name: (factory, kwargs, start of the bad case's 'error')
BAD = {
    "forward raises": ("forward", "{c: 4, action: raise}", "ValueError: user forward is broken"),
    "forward sys.exit(0)": ("forward", "{c: 4, action: exit0}", "SystemExit: user code called sys.exit(0)"),
    "forward sys.exit(3)": ("forward", "{c: 4, action: exit3}", "SystemExit: user code called sys.exit(3)"),
    "forward BaseException": ("forward", "{c: 4, action: base}", "BaseException: user BaseException"),
    "forward loops forever": ("forward", "{c: 4, action: loop}", "timed out after 5 s"),
    "factory raises": ("factory_raises", "{c: 4}", "RuntimeError: factory is broken"),
    "factory sys.exit": ("factory_exits", "{c: 4}", "SystemExit"),
    "factory returns a non-Module": ("not_a_module", "{c: 4}", ""),
}


def _run(tmp_path: Path, text: str, *extra: str):
    suite = tmp_path / "u.yaml"
    suite.write_text(text)
    res = tmp_path / "res"
    r = CliRunner().invoke(app, ["run", str(suite), "--quick", "--allow-import", "--no-roofline", "-q",
                                 "--results-dir", str(res), *extra], catch_exceptions=False)
    return r, res


def _files(res: Path) -> tuple[pd.DataFrame, dict]:
    (csv,) = [p for p in res.glob("*.csv") if not p.name.endswith("-samples.csv")]
    return pd.read_csv(csv, keep_default_na=False).set_index("case"), json.loads(csv.with_suffix(".json").read_text())


@pytest.mark.parametrize("name", list(BAD))
def test_a_case_failing_in_counting_or_building_is_a_failed_row_and_its_neighbours_are_kept(
        tmp_path, monkeypatch, name):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    factory, kwargs, expected = BAD[name]
    timeout = "5" if "loop" in kwargs else "600"  # a loaded 2-core machine can take > 1 s for a healthy case
    r, res = _run(tmp_path, SUITE.replace("FACTORY", factory).replace("KWARGS", kwargs), "--case-timeout", timeout)
    assert r.exit_code == 1, r.output  # a case failed: never the user's exit code, never a traceback
    assert "Traceback" not in r.output
    rows, meta = _files(res)
    assert rows.loc["bad", "status"] == "failed" and rows.loc["bad", "error"].startswith(expected)
    assert (rows.loc[["ok", "ok2"], "status"] == "ok").all(), rows["error"].tolist()
    assert meta["status"] == "complete" and meta["failed_cases"] == 1


def test_absurd_widths_fail_their_case_only(tmp_path, monkeypatch):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    text = textwrap.dedent("""\
        suite: w
        experiment: W
        builder: g2_group_conv
        input: {height: 8, width: 8}
        blocks: 1
        widths: paper
        cases:
          - name: ok
            params: {groups: 1}
            widths: {gpu: {c: 8}, arm: {c: 8}}
          - name: bad
            params: {groups: 1}
            widths: {gpu: {c: 100000000000000000000}, arm: {c: 100000000000000000000}}
        """)
    r, res = _run(tmp_path, text)
    assert r.exit_code in (1, 2), r.output
    assert "Traceback" not in r.output
    if r.exit_code == 1:
        rows, meta = _files(res)
        assert rows.loc["ok", "status"] == "ok" and rows.loc["bad", "status"] == "failed"
        assert meta["status"] == "complete"


def test_a_real_interrupt_is_not_a_case_fault():
    assert faults.is_case_fault(SystemExit(0)) and faults.is_case_fault(BaseException("x"))
    assert not faults.is_case_fault(KeyboardInterrupt()) and not faults.is_case_fault(faults.Interrupted(2))
    seen = []
    with faults.case_boundary(0, seen.append):
        raise SystemExit(3)
    assert isinstance(seen[0], SystemExit)
    with pytest.raises(faults.Interrupted):
        with faults.case_boundary(0, seen.append):
            raise faults.Interrupted(signal.SIGTERM)


def test_a_time_limit_swallowed_once_fires_again():
    """cost.count falls back from meta to CPU on any Exception: a CaseTimeout it swallows must recur."""
    import time

    start = time.monotonic()
    with pytest.raises(faults.CaseTimeout):
        with faults.time_limit(0.2):
            try:
                time.sleep(5)
            except Exception:  # noqa: BLE001 - the swallowing code under test
                pass
            time.sleep(5)
    assert time.monotonic() - start < 3


SWEEP = """\
suite: sw
experiment: S
builder: g2_group_conv
input: {height: 8, width: 8}
blocks: 1
scales: [1, 2]
widths: paper
sweep: {batch: [1, 2], dtype: [float32, bfloat16], memory_format: [contiguous, channels_last], threads: [1, 2]}
cases:
  - name: g=1
    params: {groups: 1}
    widths: {gpu: {c: 8}, arm: {c: 8}}
  - name: g=2
    params: {groups: 2}
    widths: {gpu: {c: 8}, arm: {c: 8}}
"""


@pytest.mark.slow
def test_resume_of_an_interrupted_sweep_measures_every_point(tmp_path, monkeypatch):
    """Issue 14: resuming a `sweep:` run marked it complete after 2 of 8 rows (groups keyed on
    experiment x scale). Interrupt after the first point; the resume must measure all the others."""
    suite = tmp_path / "sw.yaml"
    suite.write_text(SWEEP)
    real, calls = pipeline.run_group, [0]

    def run_group(*a, **kw):
        calls[0] += 1
        if calls[0] == 2:
            raise faults.Interrupted(signal.SIGTERM)
        return real(*a, **kw)

    monkeypatch.setattr(pipeline, "run_group", run_group)
    opts = dict(suites=(suite,), results_dir=tmp_path / "res", roofline=False, fake_backend=True, max_time=0.05,
                in_process=True)  # the patched run_group lives in this process
    first = run(RunOptions(**opts))
    assert first.interrupted is not None and len(first.interrupted.finished) == 1
    assert len(first.interrupted.pending) == 2 * 16 - 1
    monkeypatch.setattr(pipeline, "run_group", real)
    out = run(RunOptions(**opts, resume=first.interrupted.csv))
    rows = pd.read_csv(first.interrupted.csv)
    assert len(rows) == 2 * 16 * 2  # scales x points x cases
    assert not rows.duplicated(["case", "scale", "batch", "dtype", "memory_format", "threads"]).any()
    meta = json.loads(first.interrupted.csv.with_suffix(".json").read_text())
    assert meta["status"] == "complete" and not meta["groups"]["pending"] and out.interrupted is None


def test_a_bug_in_latbench_during_a_run_is_one_line_and_a_final_status(tmp_path, monkeypatch):
    """Not a case fault (those are rows): an exception from latbench itself between groups."""
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    real, calls = pipeline.run_group, [0]

    def run_group(*a, **kw):
        calls[0] += 1
        if calls[0] == 2:
            raise ZeroDivisionError("a bug")
        return real(*a, **kw)

    monkeypatch.setattr(pipeline, "run_group", run_group)
    tiny = Path(__file__).resolve().parent / "data" / "tiny.yaml"
    r = CliRunner().invoke(app, ["run", str(tiny), "--max-time", "0.05", "--no-roofline", "-q", "--in-process",
                                 "--results-dir", str(tmp_path)], catch_exceptions=False)
    assert r.exit_code == 2 and "internal error: ZeroDivisionError: a bug" in r.stderr, r.output
    meta = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert meta["status"] == "interrupted" and meta["groups"]["finished"] == ["T x1"]
    assert "ZeroDivisionError" in meta["interrupted_by"] and not list(tmp_path.glob("*.lock"))
