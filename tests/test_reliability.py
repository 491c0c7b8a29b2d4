"""Failure paths of `latbench run`: interruption and resume, faults inside cases, bad --resume input,
concurrent runs, atomic files. Subprocess tests interrupt real runs; the rest run in-process.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from fakes import FakeClock, FakeWork, HangingWork
from latbench import faults
from latbench.run import pipeline
from latbench.timing import prepare
from latbench.cli import app
from latbench.records import KEY_COLUMNS
from latbench.results.files import RunFiles, atomic_write_text
from latbench.results.read import read_results
from latbench.timing.cpu import CpuBackend
from latbench.timing.loop import StopPolicy, measure

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "data" / "tiny.yaml"  # 4 scales = 4 groups of 2 cases
GROUPS = ["T x1", "T x2", "T x3", "T x4"]
WAIT_S = 180  # generous: importing torch alone takes ~10 s on a loaded 2-core machine


# ---------------------------------------------------------------- subprocess: real runs, real signals

def _start(results_dir: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "latbench", "run", str(TINY), "--max-time", "0.3", "--results-dir",
           str(results_dir), "-q", *extra]
    # SIG_DFL for SIGINT even when pytest itself runs with SIGINT ignored (a background job).
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _metas(results_dir: Path) -> dict[Path, dict]:
    out = {}
    for p in results_dir.glob("*.json"):
        try:
            out[p.with_suffix(".csv")] = json.loads(p.read_text())
        except (json.JSONDecodeError, OSError):  # only the empty file that reserves the name
            continue
    return out


def _wait_first_group(results_dir: Path, proc: subprocess.Popen, seed: int) -> Path:
    """Poll until the run with `seed` has a finished group on disk; every read must parse (no torn file)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"run ended early: {proc.communicate()}"
        for csv, meta in _metas(results_dir).items():
            if meta.get("seed") == seed and meta.get("groups", {}).get("finished"):
                df = read_results(csv)  # atomic rename: never a half-written table
                assert len(df) >= 2
                return csv
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no group finished in {WAIT_S} s")


def _assert_interrupted(csv: Path, proc: subprocess.Popen, signame: str, code: int) -> tuple[str, dict]:
    _, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == code, err
    meta = json.loads(csv.with_suffix(".json").read_text())
    assert meta["status"] == "interrupted" and meta["interrupted_by"] == signame
    finished, pending = meta["groups"]["finished"], meta["groups"]["pending"]
    assert finished and pending and sorted(finished + pending) == GROUPS  # passes rotate: any group may finish first
    df = read_results(csv)
    assert sorted(f"T x{s}" for s in df["scale"].unique()) == finished and len(df) == 2 * len(finished)
    assert (df["status"] == "ok").all()
    assert f"interrupted by {signame}" in err and f"--resume {csv}" in err
    # this run's files only: a concurrent run started in the same second is named <stem>-1
    own = {csv.name, csv.stem + "-samples.csv", csv.stem + ".json", csv.stem + ".lock"}
    left = {p.name for p in csv.parent.iterdir()
            if p.name in own or any(p.name.startswith(f".{n}.") and p.name.endswith(".tmp") for n in own)}
    assert left == {csv.name, csv.stem + "-samples.csv", csv.stem + ".json"}, "no .lock or temp file left behind"
    return err, meta


@pytest.mark.slow
def test_sigint_keeps_finished_groups_and_the_printed_resume_command_completes_the_run(tmp_path):
    proc = _start(tmp_path, "--seed", "0")
    csv = _wait_first_group(tmp_path, proc, seed=0)
    proc.send_signal(signal.SIGINT)
    err, meta = _assert_interrupted(csv, proc, "SIGINT", 130)
    before = pd.read_csv(csv, dtype=str, keep_default_na=False)

    # Run exactly the command the message printed.
    line = next(ln for ln in err.splitlines() if ln.startswith("resume with: "))
    args = shlex.split(line.removeprefix("resume with: "))
    assert args[0] == "latbench"
    done = subprocess.run([sys.executable, "-m", "latbench", *args[1:]], cwd=ROOT, capture_output=True, text=True,
                          timeout=WAIT_S)
    assert done.returncode == 0, done.stderr
    after = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert len(after) == 8 and not after.duplicated(list(KEY_COLUMNS)).any()
    assert set(after["run_id"]) == {meta["run_id"]}
    pd.testing.assert_frame_equal(after.head(len(before)), before)  # finished groups kept byte for byte
    samples = pd.read_csv(csv.with_name(csv.stem + "-samples.csv"))
    assert sorted(samples["scale"].unique()) == [1, 2, 3, 4]
    assert not samples.duplicated(["case", "scale", "round"]).any()
    final = json.loads(csv.with_suffix(".json").read_text())
    assert final["status"] == "complete" and final["groups"] == {"finished": GROUPS, "pending": []}
    assert "interrupted_by" not in final
    assert len(final["resumed_at_utc"]) == 1 and final["started_at_utc"] == meta["started_at_utc"]


@pytest.mark.slow
def test_two_concurrent_runs_into_one_directory_and_sigterm_on_one(tmp_path):
    victim, other = _start(tmp_path, "--seed", "1"), _start(tmp_path, "--seed", "2")
    csv = _wait_first_group(tmp_path, victim, seed=1)
    victim.send_signal(signal.SIGTERM)
    _assert_interrupted(csv, victim, "SIGTERM", 143)
    _, err = other.communicate(timeout=WAIT_S)
    assert other.returncode == 0, err
    metas = _metas(tmp_path)
    assert len(metas) == 2 and csv in metas
    (other_csv,) = [p for p in metas if p != csv]
    df = read_results(other_csv)
    assert len(df) == 8 and set(df["run_id"]) == {metas[other_csv]["run_id"]} != {metas[csv]["run_id"]}
    assert metas[other_csv]["status"] == "complete"


# ---------------------------------------------------------------- in-process: faults inside a case

cli = CliRunner()


def _invoke(*args: str):
    return cli.invoke(app, ["run", *args], catch_exceptions=False)


def _quick(tmp_path: Path, *extra: str, suite: Path = TINY):
    return _invoke(str(suite), "--quick", "--results-dir", str(tmp_path), "-q", *extra)


def _rows(tmp_path: Path) -> pd.DataFrame:
    (csv,) = [p for p in tmp_path.glob("*.csv") if not p.name.endswith("-samples.csv")]
    return pd.read_csv(csv).set_index("case")


def _raise(exc):
    def f(*_):
        raise exc
    return f


def _after(n: int, action):
    """A forward pass that works n times, then does `action` (raise, sleep) from the next call on."""
    calls = [0]

    def forward(x):
        calls[0] += 1
        return action() if calls[0] > n else x * 2
    return forward


def _sleep(seconds):
    return lambda *_: time.sleep(seconds)


# (what g=2 does, expected start of its 'error' column); g=1 stays healthy and must finish.
FAULTS = {
    "oom at build (CUDA)": ("build", _raise(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")),
                            "out of memory: CUDA out of memory"),
    "oom mid-measurement (CPU allocator)": (
        "forward", _after(3, _raise(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to "
                                                 "allocate 1099511627776 bytes"))), "out of memory: DefaultCPUAllocator"),
    "unsupported op": ("forward", _raise(NotImplementedError("Could not run 'aten::slow_conv2d' with arguments from "
                                                             "the 'CPU' backend")), "unsupported on this device"),
    "unsupported dtype": ("forward", _raise(RuntimeError('"addmm_impl_cpu_" not implemented for \'Half\'')),
                          "unsupported on this device"),
    "hang at build": ("build", _sleep(30), "timed out after 0.5 s"),
    "hang mid-measurement": ("forward", _after(5, _sleep(30)), "timed out after 0.5 s"),
    "any other exception": ("forward", _raise(ValueError("shapes do not match")), "ValueError: shapes do not match"),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_faulty_case_is_a_failed_row_with_its_reason_and_the_run_goes_on(tmp_path, monkeypatch, name):
    where, action, expected = FAULTS[name]
    real = pipeline.build_network

    def build(builder, params, *args, **kw):
        model, x = real(builder, params, *args, **kw)
        if params["groups"] != 2:
            return model, x
        if where == "build":
            action()
        return action, x  # the "model" is the faulty forward

    monkeypatch.setattr(pipeline, "build_network", build)
    t0 = time.monotonic()
    result = _quick(tmp_path, "--case-timeout", "0.5", "--in-process")  # the patch lives in this process
    assert time.monotonic() - t0 < 25, "a hang must not hold the run for its 30 s"
    assert result.exit_code == 1, result.stderr
    rows = _rows(tmp_path)
    assert rows.loc["g=1", "status"] == "ok" and rows.loc["g=1", "latency_ms"] > 0
    assert rows.loc["g=2", "status"] == "failed" and rows.loc["g=2", "error"].startswith(expected)
    assert f"1 case(s) failed in {TINY} (the run went on): T/g=2/x1 eager: {expected}" in result.stderr
    assert "FAILED" in result.stdout
    meta = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert meta["status"] == "complete" and meta["failed_cases"] == 1


def test_a_real_out_of_memory_case_fails_alone(tmp_path):
    """No mock: a 1 PB weight tensor, which no allocator can give (beyond the address space)."""
    suite = tmp_path / "huge.yaml"
    suite.write_text("suite: huge\nexperiment: T\nbuilder: g2_group_conv\ninput: {height: 8, width: 8}\n"
                     "blocks: 1\ncases:\n"
                     "  - {name: g=1, widths: {gpu: {c: 8}, arm: {c: 8}}}\n"
                     "  - {name: huge, widths: {gpu: {c: 16777216}, arm: {c: 16777216}}}\n")
    out = tmp_path / "res"
    result = _quick(out, suite=suite)
    assert result.exit_code == 1, result.stderr
    rows = _rows(out)
    assert rows.loc["g=1", "status"] == "ok"
    assert rows.loc["huge", "error"].startswith("out of memory") and "can't allocate memory" in rows.loc["huge", "error"]
    assert "T/huge/x1 eager: out of memory" in result.stderr


def test_case_timeout_0_disables_the_limit(tmp_path, monkeypatch):
    real = pipeline.build_network

    def build(builder, params, *args, **kw):
        if params["groups"] == 2:
            time.sleep(0.3)
        return real(builder, params, *args, **kw)

    monkeypatch.setattr(pipeline, "build_network", build)
    result = _quick(tmp_path, "--case-timeout", "0")
    assert result.exit_code == 0, result.stderr
    assert json.loads(next(tmp_path.glob("*.json")).read_text())["case_timeout_s"] == 0


def test_an_interrupt_inside_a_group_keeps_earlier_groups(tmp_path, monkeypatch):
    """SIGTERM arriving in the second group (in-process): first group saved, exit 143, lock released."""
    real, calls = pipeline.run_group, [0]

    def run_group(*a, **kw):
        calls[0] += 1
        if calls[0] == 2:
            raise faults.Interrupted(signal.SIGTERM)
        return real(*a, **kw)

    monkeypatch.setattr(pipeline, "run_group", run_group)
    handler = signal.getsignal(signal.SIGTERM)
    result = _invoke(str(TINY), "--max-time", "0.05", "--results-dir", str(tmp_path), "-q", "--in-process")
    assert result.exit_code == 143
    meta = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert meta["groups"] == {"finished": ["T x1"], "pending": GROUPS[1:]} and meta["status"] == "interrupted"
    assert len(_rows(tmp_path)) == 2 and not list(tmp_path.glob("*.lock"))
    assert signal.getsignal(signal.SIGTERM) is handler, "handlers restored after the run"


# ---------------------------------------------------------------- --resume: what it accepts and refuses

@pytest.fixture
def quick_run(tmp_path, monkeypatch) -> Path:
    """A finished --quick run of the tiny suite (one group), from a copy of the suite we may edit.
    Timed by the fake backend (one call per block): these tests are about the files, not the times."""
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY.read_text())
    result = _quick(tmp_path / "res", suite=suite)
    assert result.exit_code == 0, result.stderr
    (csv,) = [p for p in (tmp_path / "res").glob("*.csv") if not p.name.endswith("-samples.csv")]
    return csv


def _resume(csv: Path, *extra: str, suite: Path | None = None):
    suite = suite or csv.parent.parent / "tiny.yaml"
    return _invoke(str(suite), "--quick", "--results-dir", str(csv.parent), "-q", "--resume", str(csv), *extra)


def test_resume_of_a_complete_run_measures_nothing_and_keeps_rows(quick_run):
    before = quick_run.read_text()
    result = _resume(quick_run)
    assert result.exit_code == 0, result.stderr
    assert quick_run.read_text() == before
    assert len(json.loads(quick_run.with_suffix(".json").read_text())["resumed_at_utc"]) == 1


def test_resume_remeasures_a_group_with_missing_rows_without_duplicates(quick_run):
    df = pd.read_csv(quick_run, dtype=str, keep_default_na=False)
    df[df["case"] != "g=2"].to_csv(quick_run, index=False)  # a group only half there (hand-edited file)
    result = _resume(quick_run)
    assert result.exit_code == 0, result.stderr
    after = pd.read_csv(quick_run)
    assert sorted(after["case"]) == ["g=1", "g=2"]
    samples = pd.read_csv(quick_run.with_name(quick_run.stem + "-samples.csv"))
    assert not samples.duplicated(["case", "scale", "round"]).any()


def _break_settings(csv):
    return _invoke(str(csv.parent.parent / "tiny.yaml"), "--quick", "--max-time", "0.2", "--seed", "7",
                   "--results-dir", str(csv.parent), "-q", "--resume", str(csv))


def _edit_suite(csv):
    suite = csv.parent.parent / "tiny.yaml"
    suite.write_text(suite.read_text() + "# edited\n")
    return _resume(csv)


def _other_suite(csv):
    return _resume(csv, suite=ROOT / "suites" / "g2.yaml")


def _no_meta(csv):
    csv.with_suffix(".json").unlink()
    return _resume(csv)


def _bad_meta(csv):
    csv.with_suffix(".json").write_text("{not json")
    return _resume(csv)


def _no_samples(csv):
    csv.with_name(csv.stem + "-samples.csv").unlink()
    return _resume(csv)


def _garbage_csv(csv):
    csv.write_bytes(b"\x00\xff\xfe garbage \"unterminated\n")
    return _resume(csv)


def _samples_given(csv):
    return _resume(csv.with_name(csv.stem + "-samples.csv"))


def _missing_file(csv):
    return _resume(csv.with_name("nope.csv"))


def _two_suites(csv):
    return _invoke(str(TINY), str(TINY), "--quick", "-q", "--resume", str(csv))


def _mixed_runs(csv):
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    df.loc[0, "run_id"] = "someoneelse"
    df.to_csv(csv, index=False)
    return _resume(csv)


def _still_running(csv):
    holder = RunFiles(csv, csv, csv.with_suffix(".json"))
    holder.lock()  # another process is writing this run (flock conflicts across open files)
    try:
        return _resume(csv)
    finally:
        holder.unlock()


def _profile_now(csv):
    return _resume(csv, "--profile")


REFUSALS = {  # bad --resume input -> (how it is answered) the message must contain this
    "other settings": (_break_settings, "policy.max_time_s: 0.3 then, 0.2 now"),
    "other columns (--profile)": (_profile_now, "profile: False then, True now (--profile)"),
    "suite edited since": (_edit_suite, "changed since the run"),
    "another suite": (_other_suite, "it is a run of suite 'tiny', not 'g2'"),
    "metadata missing": (_no_meta, "no metadata file"),
    "metadata not JSON": (_bad_meta, "unreadable metadata"),
    "samples file missing": (_no_samples, "raw samples file"),
    "garbage CSV": (_garbage_csv, "not a"),
    "samples CSV given": (_samples_given, "missing columns"),
    "file does not exist": (_missing_file, "no such results file"),
    "two suites": (_two_suites, "--resume continues one run"),
    "rows of two runs": (_mixed_runs, "rows of other runs"),
    "run still being written": (_still_running, "another latbench process (pid"),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_bad_resume_input_exits_2_with_one_line_and_a_fix(quick_run, name):
    action, expected = REFUSALS[name]
    result = action(quick_run)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr  # one line
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not list(quick_run.parent.glob("*.lock"))


def test_settings_refusal_names_the_command_to_use(quick_run):
    result = _break_settings(quick_run)
    assert "seed: 0 then, 7 now (--seed)" in result.stderr and "repeat the run's own options: latbench" in result.stderr


# ---------------------------------------------------------------- units: time limit, loop, files

def test_time_limit_interrupts_python_code_and_leaves_no_alarm_behind():
    before = signal.getsignal(signal.SIGALRM)
    t0 = time.monotonic()
    with pytest.raises(faults.CaseTimeout, match=r"timed out after 0.2 s"):
        with faults.time_limit(0.2):
            time.sleep(10)
    assert time.monotonic() - t0 < 5
    with faults.time_limit(0.2):
        pass
    time.sleep(0.3)  # had the alarm stayed armed, CaseTimeout would fire here
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0) and signal.getsignal(signal.SIGALRM) is before
    with faults.time_limit(0):
        time.sleep(0.01)


def test_a_hanging_item_times_out_in_the_loop_and_the_others_are_measured():
    clock = FakeClock()
    policy = StopPolicy(warmup_s=0.01, warmup_min_iters=3, block_s=0.01, min_rounds=10, max_rounds=40,
                        min_time_s=0.05, max_time_s=1.0, rel_ci=0.01)
    items = [("ok", FakeWork(clock, 1e-3)), ("hangs", HangingWork(clock, 1e-3, hang_after=20, hang_s=30))]
    done, failed = measure(items, CpuBackend(clock), policy, case_timeout_s=0.3)
    assert failed == {"hangs": "timed out after 0.3 s (--case-timeout)"}
    assert done["ok"].stop_reason in ("converged", "max_time", "max_rounds") and len(done["ok"].samples_s) >= 10


@pytest.mark.parametrize("exc, expected", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"), "out of memory: CUDA out of memory"),
    (MemoryError(), "out of memory: "),
    (RuntimeError("CUDA error: no kernel image is available for execution on the device"), "unsupported on this"),
    (NotImplementedError(), "unsupported on this device: NotImplementedError: "),
    (faults.CaseTimeout(2), "timed out after 2 s (--case-timeout)"),
    (RuntimeError("boom\nsecond line"), "RuntimeError: boom"),
])
def test_describe_names_the_kind_of_failure_first(exc, expected):
    text = faults.describe(exc)
    assert text.startswith(expected) and "\n" not in text


def test_interrupted_is_not_an_exception_so_case_guards_let_it_through():
    assert not issubclass(faults.Interrupted, Exception) and issubclass(faults.Interrupted, KeyboardInterrupt)
    assert faults.Interrupted(signal.SIGINT).exit_code == 130 and faults.Interrupted(signal.SIGTERM).exit_code == 143


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "r.csv"
    atomic_write_text(target, "old\n")

    def crash(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["r.csv"]


def test_runs_started_in_the_same_second_get_distinct_files(tmp_path):
    from datetime import datetime, timezone

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    names = {RunFiles.reserve(tmp_path, "s", "cpu", now).csv.name for _ in range(3)}
    assert names == {"s-cpu-20260101T000000Z.csv", "s-cpu-20260101T000000Z-1.csv", "s-cpu-20260101T000000Z-2.csv"}
