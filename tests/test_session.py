"""The run session below the CLI: options -> settings and policy, events, metadata written once,
resume bookkeeping, interruption. Timed with the fake backend (latbench.timing.fake)."""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path

import pytest

from latbench import devices, faults
from latbench.errors import DeviceError, ResultsError
from latbench.run import RunOptions, options as run_options, pipeline
from latbench.run import session
from latbench.run.runfile import OTHER_SETTINGS, SETTINGS
from latbench.timing.fake import FakeBackend

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "data" / "tiny.yaml"  # 4 scales = 4 groups of 2 cases


class Recorder(session.Events):
    def __init__(self):
        self.events = []

    def on_note(self, kind, text):
        self.events.append(("note", kind))

    def on_suite_start(self, suite_name):
        self.events.append(("start", suite_name))

    def on_group_start(self, suite_name, group):
        self.events.append(("group start", group))

    def on_progress(self, suite_name, group, rounds):
        if ("progress", group) not in self.events:
            self.events.append(("progress", group))

    def on_group_done(self, suite_name, group, rows):
        self.events.append(("group", group, len(rows)))

    def on_interrupted(self, info):
        self.events.append(("interrupted", info.signal_name))

    def on_suite_done(self, result):
        self.events.append(("done", result.suite_name))


def options(tmp_path: Path, **kw) -> RunOptions:
    base = dict(suites=(TINY,), quick=True, results_dir=tmp_path, roofline=False, fake_backend=True,
                argv=("latbench", "run", str(TINY), "--quick"))
    return RunOptions(**{**base, **kw})


@pytest.fixture
def keep_threads():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_options_are_frozen():
    opts = RunOptions(suites=(TINY,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.quick = True  # type: ignore[misc]


def test_a_session_reports_through_events_and_writes_the_run(tmp_path, keep_threads):
    rec = Recorder()
    outcome = session.run(options(tmp_path, quick=False, max_time=0.05), rec)
    assert not outcome.failed and outcome.interrupted is None
    groups = ["T x1", "T x2", "T x3", "T x4"]
    assert [e for e in rec.events if e[0] == "group"] == [("group", g, 2) for g in groups]
    steps = [e for e in rec.events if e[0] != "note"]  # notes: advice about this machine, if any
    assert steps[0] == ("start", "tiny") and steps[-1] == ("done", "tiny")
    assert [e[1] for e in rec.events if e[0] == "progress"] == groups
    assert [e[1] for e in rec.events if e[0] == "group start"] == groups
    assert rec.events.index(("group start", "T x2")) < rec.events.index(("progress", "T x2"))
    (result,) = outcome.suites
    assert result.title.startswith("tiny (T) on cpu [") and ", 1 thread(s), interleaved, batch 1" in result.title
    meta = json.loads(result.files.meta.read_text())
    assert meta["status"] == "complete" and meta["groups"]["finished"] == groups
    assert meta["device_settings"]["backend"].startswith("cpu:fake")
    assert meta["command"] == ["latbench", "run", str(TINY), "--quick"]


def test_metadata_settings_are_the_declared_ones(tmp_path, keep_threads):
    """Regression: the schema was written in cli._run and again in resume.SETTINGS, and drifted:
    --profile and --roofline changed the columns but were neither recorded nor compared on --resume."""
    outcome = session.run(options(tmp_path), session.Events())
    meta = json.loads(outcome.suites[0].files.meta.read_text())
    assert set(SETTINGS) | set(OTHER_SETTINGS) <= set(meta)
    assert meta["profile"] is False and meta["roofline_columns"] is False


@pytest.mark.parametrize("change, expected", [
    (dict(profile=True), "profile: False then, True now (--profile)"),
    (dict(roofline=True), "roofline_columns: False then, True now (--roofline/--no-roofline)"),
    (dict(seed=3), "seed: 0 then, 3 now (--seed)"),
])
def test_resume_refuses_settings_that_change_the_columns(tmp_path, keep_threads, monkeypatch, change, expected):
    monkeypatch.setenv("LATBENCH_CACHE", str(tmp_path / "cache"))
    from latbench import roofline

    monkeypatch.setattr(roofline, "probe_gemm", lambda device, dtype: {"peak_flops_per_s": 1e10})
    monkeypatch.setattr(roofline, "probe_copy", lambda device: {"bandwidth_bytes_per_s": 1e10})
    first = session.run(options(tmp_path), session.Events())
    csv = first.suites[0].files.csv
    with pytest.raises(ResultsError, match="cannot resume with other settings") as info:
        session.run(options(tmp_path, resume=csv, **change), session.Events())
    assert expected in str(info.value)
    assert not list(tmp_path.glob("*.lock"))


def test_resume_of_a_finished_run_measures_nothing(tmp_path, keep_threads, monkeypatch):
    first = session.run(options(tmp_path), session.Events())
    csv = first.suites[0].files.csv
    monkeypatch.setattr(pipeline, "run_group", lambda *a, **k: pytest.fail("measured a finished group"))
    rec = Recorder()
    again = session.run(options(tmp_path, resume=csv), rec)
    assert not again.failed and again.interrupted is None and ("note", "resuming") in rec.events
    assert len(json.loads(csv.with_suffix(".json").read_text())["resumed_at_utc"]) == 1


def interrupt_group(monkeypatch, n: int, signum: int):
    """Make the n-th group raise faults.Interrupted(signum), as a signal arriving in it would."""
    real, calls = pipeline.run_group, [0]

    def run_group(*a, **kw):
        calls[0] += 1
        if calls[0] == n:
            raise faults.Interrupted(signum)
        return real(*a, **kw)

    monkeypatch.setattr(pipeline, "run_group", run_group)
    return real


def test_an_interruption_is_saved_and_returned_with_the_resume_command(tmp_path, keep_threads, monkeypatch):
    interrupt_group(monkeypatch, 2, signal.SIGTERM)
    rec = Recorder()
    outcome = session.run(options(tmp_path, quick=False, max_time=0.05, suites=(TINY, TINY), in_process=True), rec)
    info = outcome.interrupted
    assert info.signum == signal.SIGTERM and info.signal_name == "SIGTERM" and ("interrupted", "SIGTERM") in rec.events
    assert info.finished == ["T x1"] and info.pending == ["T x2", "T x3", "T x4"]
    assert info.resume_command.endswith(f"--resume {info.csv}") and info.resume_command.count(".yaml") == 1
    assert not outcome.suites and not [e for e in rec.events if e[0] == "done"]  # the second suite never ran
    meta = json.loads(info.csv.with_suffix(".json").read_text())
    assert meta["status"] == "interrupted" and meta["interrupted_by"] == "SIGTERM"


def test_policy_resolution():
    assert run_options.policy_of(RunOptions(device="cuda", repeats=1)) == run_options.CUDA_POLICY
    assert run_options.policy_of(RunOptions(device="cuda", quick=True)) == run_options.QUICK_POLICY  # 1 process
    p = run_options.policy_of(RunOptions(max_time=0.2, target=0.05, repeats=1))
    assert (p.max_time_s, p.min_time_s, p.rel_ci) == (0.2, 0.2, 0.05)  # min clipped to max
    # issue 21: by default N = DEFAULT_REPEATS processes share one process's budget
    n = run_options.DEFAULT_REPEATS
    assert run_options.run_policy(RunOptions(device="cuda")) == run_options.CUDA_POLICY  # what the metadata records
    q = run_options.policy_of(RunOptions(device="cuda"))
    assert q.max_time_s == pytest.approx(run_options.SHARED_BUDGET * run_options.CUDA_POLICY.max_time_s / n)
    assert q.warmup_s == run_options.CUDA_POLICY.warmup_s  # cuDNN autotuning is per process: not shared


def test_modes_are_checked_against_the_backend():
    dev = devices.CpuDevice(backend=FakeBackend())
    parse = run_options.parse_modes
    assert parse(None, dev) == ("eager",) and parse(" eager, ", dev) == ("eager",)
    with pytest.raises(DeviceError, match="cudagraph not available on cpu"):
        parse("eager,cudagraph", dev)


SWEEP = """\
suite: swept
experiment: S
builder: g2_group_conv
input: {height: 8, width: 8}
blocks: 1
sweep: {batch: [1, 2]}
cases:
  - {name: g=1, params: {groups: 1}, widths: {gpu: {c: 8}, arm: {c: 8}}}
  - {name: g=2, params: {groups: 2}, widths: {gpu: {c: 8}, arm: {c: 8}}}
"""


def test_resume_of_a_sweep_measures_the_points_not_yet_done(tmp_path, keep_threads, monkeypatch):
    """Regression: resume grouped rows by experiment x scale only, so after the first sweep point
    (batch 1) was saved the whole scale counted as finished: resuming measured nothing and marked
    the run complete without its batch-2 rows."""
    suite = tmp_path / "swept.yaml"
    suite.write_text(SWEEP)
    real = interrupt_group(monkeypatch, 2, signal.SIGINT)
    first = session.run(options(tmp_path, suites=(suite,), in_process=True), session.Events())
    info = first.interrupted
    assert info is not None and info.finished == ["S x1"] and info.pending == ["S x1 b2"]
    monkeypatch.setattr(pipeline, "run_group", real)
    rec = Recorder()
    done = session.run(options(tmp_path, suites=(suite,), resume=info.csv), rec)
    assert not done.failed and done.interrupted is None
    assert [e for e in rec.events if e[0] == "group"] == [("group", "S x1 b2", 2)]
    rows = done.suites[0].rows
    assert sorted((str(r["batch"]), r["case"]) for r in rows) == [("1", "g=1"), ("1", "g=2"),
                                                                   ("2", "g=1"), ("2", "g=2")]
    meta = json.loads(info.csv.with_suffix(".json").read_text())
    assert meta["status"] == "complete" and meta["groups"] == {"finished": ["S x1", "S x1 b2"], "pending": []}


def test_a_mode_sweep_is_finished_when_its_own_modes_are_there(tmp_path, keep_threads):
    """Regression: groups were checked against --modes, not a sweep's modes, so a suite sweeping
    mode: [compile] stayed 'pending' in a complete run."""
    from latbench.timing import prepare

    suite = tmp_path / "swept.yaml"
    suite.write_text(SWEEP.replace("{batch: [1, 2]}", "{mode: [compile]}"))
    prepare_backend = prepare.COMPILE_BACKEND
    prepare.COMPILE_BACKEND = "eager"
    try:
        outcome = session.run(options(tmp_path, suites=(suite,)), session.Events())
    finally:
        prepare.COMPILE_BACKEND = prepare_backend
    meta = json.loads(outcome.suites[0].files.meta.read_text())
    assert meta["groups"] == {"finished": ["S x1 compile"], "pending": []}


def test_resume_refuses_another_timing_backend(tmp_path, keep_threads):
    """Fake-timed groups must not join a run timed for real (or the other way round)."""
    first = session.run(options(tmp_path), session.Events())
    csv = first.suites[0].files.csv
    expected = r"timed by cpu:fake\(one call per block\), this would be by cpu:perf_counter_ns"
    with pytest.raises(ResultsError, match=expected):
        session.run(options(tmp_path, resume=csv, fake_backend=False), session.Events())
