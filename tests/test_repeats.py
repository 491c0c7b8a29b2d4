"""run --repeats (latbench/run/workers.py, rows.pool): pooling rows of worker processes, unstable ratios, the session path
with real worker processes on the fake backend, the schema-3 columns and the migration of older files."""

from __future__ import annotations

import math
import multiprocessing
import signal
from pathlib import Path

import pandas as pd
import pytest

from latbench.run import options, rows as run_rows, session, workers
from latbench.errors import LatbenchError
from latbench.results.read import read_run
from latbench.timing.loop import StopPolicy

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "data" / "tiny.yaml"


def _row(case: str, lat: float, ratio: float, rel: float, **kw) -> dict:
    row = {"case": case, "baseline_case": "a", "mode": "eager", "experiment": "G", "scale": 1, "batch": 1,
           "dtype": "float32", "memory_format": "contiguous", "status": "ok", "error": "", "flops": 100,
           "mac_bytes": 100, "latency_ms": lat, "latency_ci_low_ms": lat * 0.99, "latency_ci_high_ms": lat * 1.01,
           "samples": 20, "warmup_iters": 3, "stop_reason": "converged", "ratio_to_baseline": ratio,
           "ratio_ci_low": ratio * (1 - rel), "ratio_ci_high": ratio * (1 + rel), "ratio_interval": "order-ess",
           "warnings": ""}
    row.update(kw)
    row.pop("warnings")
    return run_rows.Row(**row)


def pool_group(per_process):
    rows, samples = run_rows.pool(per_process)
    return [r.to_dict() for r in rows], samples


def _process(ratio: float, rounds: int = 5, rel: float = 0.003) -> tuple[list[dict], list[dict]]:
    rows = [_row("a", 1.0, 1.0, 0.0), _row("b", ratio, ratio, rel)]
    samples = [{"case": c, "mode": "eager", "experiment": "G", "scale": 1, "batch": 1, "dtype": "float32",
                "memory_format": "contiguous", "round": r, "latency_ms": v}
               for r in range(rounds) for c, v in (("a", 1.0), ("b", ratio))]
    return rows, samples


def test_processes_that_agree_pool_to_a_processes_interval():
    rows, samples = pool_group([_process(1.500), _process(1.501), _process(1.499)])
    b = rows[1]
    assert b["ratio_interval"] == "processes-t" and b["repeats"] == 3
    assert b["ratio_ci_low"] < 1.5 < b["ratio_ci_high"]
    assert not b["ratio_unstable"] and "unstable" not in b["warnings"]
    assert b["ratio_process_spread_pct"] == pytest.approx(100 * (1.501 / 1.499 - 1))
    assert b["samples"] == 15 and rows[0]["ratio_to_baseline"] == 1.0 and not rows[0]["ratio_unstable"]


def test_samples_keep_their_process_and_rounds_number_on():
    _, samples = pool_group([_process(1.5, rounds=4), _process(1.5, rounds=3)])
    b = [s for s in samples if s["case"] == "b"]
    assert [s["process"] for s in b] == [0] * 4 + [1] * 3
    assert [s["round"] for s in b] == list(range(7))  # unique: readers that pair by round still pair right


def test_a_ratio_that_moves_between_processes_more_than_its_interval_is_unstable():
    # issue 16's g=8/g=1: 1.448, 1.623, 1.476 with in-process CIs of +-0.3 %
    rows, _ = pool_group([_process(1.448), _process(1.623), _process(1.476)])
    b = rows[1]
    assert b["ratio_unstable"] is True
    assert b["ratio_process_spread_pct"] == pytest.approx(100 * (1.623 / 1.448 - 1))
    assert "unstable ratio: moved 12.1% between 3 processes" in b["warnings"]
    # the pooled interval holds every process's ratio, unlike any one process's own interval
    assert b["ratio_ci_low"] < 1.448 and b["ratio_ci_high"] > 1.55


def test_a_process_that_failed_is_left_out_and_said():
    failed = ([_row("a", 1.0, 1.0, 0.0), _row("b", math.nan, math.nan, 0.0, status="failed", error="boom")], [])
    rows, _ = pool_group([_process(1.5), failed, _process(1.5)])
    assert rows[1]["repeats"] == 2 and "1 of 3 processes failed: boom" in rows[1]["warnings"]


def test_process_policy_shares_the_budget_and_target():
    q = options.stop_policy("cpu", max_time=9.0, min_time=0.5, target=0.01, processes=4)
    assert q.max_time_s == pytest.approx(options.SHARED_BUDGET * 9.0 / 4) and q.rel_ci == pytest.approx(0.02)
    assert q.min_time_s == pytest.approx(0.5 / 4)  # issue 21: the minimum is shared too
    assert q.warmup_s == pytest.approx(0.05)  # CPU warm-up 0.2 s / 4 processes
    assert options.stop_policy("cpu", processes=20).warmup_s == options.CPU_WORKER_WARMUP_S  # never below the floor
    assert options.stop_policy("cpu", processes=6).warmup_min_iters == options.CPU_WORKER_WARMUP_CALLS
    assert options.stop_policy("cpu", max_time=9.0, min_time=0.5, target=0.01, processes=1) == \
        options.stop_policy("cpu", max_time=9.0, min_time=0.5, target=0.01)
    assert options.stop_policy("cpu", max_time=1.0, min_time=0.9, processes=4).max_time_s == pytest.approx(0.9 / 4)


def test_the_default_is_several_processes_but_one_where_there_can_be_no_workers():
    n, real = options.DEFAULT_REPEATS, {"fake_backend": False}
    assert n >= 5 and options.repeat_count(options.RunOptions(**real)) == n
    assert options.repeat_count(options.RunOptions(in_process=True, **real)) == 1  # --in-process alone: not refused
    assert options.repeat_count(options.RunOptions(api=True, **real)) == 1  # measure(): models in this process
    assert options.repeat_count(options.RunOptions(quick=True, **real)) == options.QUICK_REPEATS
    assert options.repeat_count(options.RunOptions(repeats=3, quick=True, **real)) == 3
    assert options.repeat_count(options.RunOptions(fake_backend=True)) == 1  # fake numbers: nothing to pool


def test_passes_interleave_groups_and_rotate_the_start():
    assert workers.passes([["g1"], ["g2"], ["g3"]], 2) == [[["g1"], ["g2"], ["g3"]], [["g2"], ["g3"], ["g1"]]]


def test_repeats_out_of_range_is_a_clear_error(tmp_path):
    with pytest.raises(LatbenchError, match="--repeats 0: must be 1 to"):
        options.repeat_count(options.RunOptions(suites=(), repeats=0))
    assert options.repeat_count(options.RunOptions(suites=(), fake_backend=False)) == options.DEFAULT_REPEATS


def test_a_run_with_repeats_measures_in_worker_processes(tmp_path):
    notes, starts = [], []

    class Ev(session.Events):
        def on_note(self, kind, text):
            notes.append(kind)

        def on_group_start(self, suite_name, group):
            starts.append(group)

    opts = options.RunOptions(suites=(TINY,), quick=True, results_dir=tmp_path, roofline=False, fake_backend=True,
                              repeats=2, max_time=0.05, argv=("latbench", "run", str(TINY), "--quick"))
    outcome = session.run(opts, Ev())
    assert starts == ["T x1 [process 1/2]", "T x1 [process 2/2]"]
    run = read_run(outcome.suites[0].files.csv)
    assert run.meta["repeats"] == 2
    assert list(run.rows["repeats"]) == [2, 2] and set(run.rows["ratio_interval"]) == {"processes-t"}
    assert set(run.samples["process"]) == {0, 1}
    assert run.samples.groupby(["case", "round"]).size().max() == 1


def test_older_files_read_as_one_process(tmp_path):
    from latbench.results.schema import RESULT_COLUMNS, SAMPLE_COLUMNS

    opts = options.RunOptions(suites=(TINY,), quick=True, results_dir=tmp_path, roofline=False, fake_backend=True,
                              max_time=0.05, argv=("latbench", "run", str(TINY), "--quick"))
    files = session.run(opts).suites[0].files
    run = read_run(files.csv)
    assert set(run.rows["ratio_interval"]) == {"order-ess"} and list(run.rows["repeats"]) == [1, 1]
    assert set(run.samples["process"]) == {0}
    # the same run as schema 2 wrote it: no schema-3 columns
    df = pd.read_csv(files.csv)
    df = df.drop(columns=[c for c in RESULT_COLUMNS[RESULT_COLUMNS.index("ratio_interval"):]])
    df["schema_version"] = 2
    df.to_csv(files.csv, index=False)
    s = pd.read_csv(files.samples).drop(columns=["process"])
    s.to_csv(files.samples, index=False)
    old = read_run(files.csv)
    assert set(old.rows["ratio_interval"]) == {"unrecorded"} and list(old.rows["repeats"]) == [1, 1]
    assert not old.rows["ratio_unstable"].any() and set(old.samples["process"]) == {0}
    assert SAMPLE_COLUMNS[-1] == "process"


def _two_runs(tmp_path: Path, factor: float) -> list[Path]:
    """A fake run, and a copy of it as a second run whose g=2 samples are `factor` times slower."""
    import json

    opts = options.RunOptions(suites=(TINY,), quick=True, results_dir=tmp_path, roofline=False, fake_backend=True,
                              min_time=0.2, max_time=0.2, argv=("latbench", "run", str(TINY), "--quick"))
    files = session.run(opts).suites[0].files
    samples = pd.read_csv(files.samples)  # steady synthetic times: in-process ratio CIs of about +-0.2 %
    noise = 1 + 0.002 * (samples["round"] % 3)
    samples["latency_ms"] = noise * samples["case"].map({"g=1": 1.0, "g=2": 2.0})
    samples.to_csv(files.samples, index=False)
    rows, meta = pd.read_csv(files.csv), json.loads(files.meta.read_text())
    rows["run_id"], samples["run_id"], meta["run_id"] = "second", "second", "second"
    samples.loc[samples["case"] == "g=2", "latency_ms"] *= factor
    other = tmp_path / "copy.csv"
    rows.to_csv(other, index=False)
    samples.to_csv(tmp_path / "copy-samples.csv", index=False)
    meta["files"] = {"results": other.name, "samples": "copy-samples.csv"}
    (tmp_path / "copy.json").write_text(json.dumps(meta))
    return [files.csv, other]


@pytest.mark.parametrize("factor, unstable", [(1.0, False), (1.3, True)])
def test_report_marks_a_ratio_that_moves_between_processes_unstable(tmp_path, factor, unstable):
    from latbench.report import analysis
    from latbench.report.markdown import speed_text

    effects = analysis.case_effects(analysis.load(_two_runs(tmp_path, factor)))
    g2 = next(e for e in effects if e.case == "g=2")
    assert g2.processes == 2 and g2.interval == "processes-t"
    assert g2.unstable is unstable
    text = speed_text(g2)
    if unstable:
        assert "**unstable** (moved 30.0% between 2 processes)" in text and "[" not in text
    else:
        assert "[" in text and "unstable" not in text
    assert not next(e for e in effects if e.case == "g=1").unstable  # the baseline never is


def test_ctrl_c_during_a_worker_stops_it_and_saves_what_finished(tmp_path):
    from latbench import faults

    class Ev(session.Events):
        def on_progress(self, suite_name, group, rounds):
            raise faults.Interrupted(signal.SIGINT)

    opts = options.RunOptions(suites=(TINY,), quick=True, results_dir=tmp_path, roofline=False, fake_backend=True,
                              repeats=2, max_time=0.05, argv=("latbench", "run", str(TINY), "--quick"))
    outcome = session.run(opts, Ev())
    assert outcome.interrupted is not None and outcome.interrupted.pending == ["T x1"]
    assert multiprocessing.active_children() == []  # the worker was terminated


def test_cli_rejects_repeats_0_with_exit_2():
    from typer.testing import CliRunner

    from latbench.cli import app

    result = CliRunner().invoke(app, ["run", str(TINY), "--quick", "--repeats", "0"])
    assert result.exit_code == 2 and "--repeats" in result.output


def test_repeats_in_process_are_refused_before_anything_runs():
    from latbench.errors import LatbenchError
    from latbench.run.options import RunOptions, repeat_count

    with pytest.raises(LatbenchError, match="--in-process"):
        repeat_count(RunOptions(suites=(), repeats=2, in_process=True))
    assert repeat_count(RunOptions(suites=(), repeats=2, isolate=True)) == 2  # --isolate: what workers already do
