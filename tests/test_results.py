"""The results layer: paths grouped into runs, typed reads (ids are strings), statuses, schema migration."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd
import pytest
from resultfiles import write_run, write_side
from typer.testing import CliRunner

from latbench.results.read import open_run
from latbench.cli import app
from latbench.errors import ResultsError
from latbench.results import RunPaths, expand_paths, read_run, read_runs, schema
from latbench.results.files import RunFiles
from latbench.results.read import read_results, read_samples

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
SKIP = {"cudagraph": "cudagraph needs a CUDA device"}


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# --------------------------------------------------------------------------- finding

def test_the_three_files_of_a_run_group_into_one_run(tmp_path):
    csv = write_run(tmp_path, {"g=1": 10.0}, seed=1)
    run = RunPaths(csv)
    assert expand_paths([run.samples, run.meta, csv]) == [run]
    assert expand_paths([run.samples]) == [run] and expand_paths([run.meta]) == [run]
    assert expand_paths([f"{run.samples},{csv}"]) == [run]


def test_a_shell_expanded_directory_listing_is_its_runs_in_order(tmp_path):
    files = write_side(tmp_path, {"g=1": 10.0}, 2, seed=1)
    listing = sorted(tmp_path.iterdir())  # what the shell makes of results/*
    assert len(listing) == 6
    assert [r.csv for r in expand_paths(listing)] == sorted(files)
    assert [r.csv for r in expand_paths([f"{tmp_path}/*"])] == sorted(files)  # quoted glob
    assert [r.csv for r in expand_paths([tmp_path])] == sorted(files)  # directory


def test_paths_that_name_no_run_are_located_errors(tmp_path):
    csv = write_run(tmp_path, {"g=1": 10.0}, seed=1)
    csv.unlink()
    with pytest.raises(ResultsError, match="no results CSV .* beside it") as info:
        expand_paths([RunPaths(csv).samples])
    assert info.value.where == str(RunPaths(csv).samples)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ResultsError, match="not a results file"):
        expand_paths([tmp_path / "notes.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="holds no results CSV"):
        expand_paths([tmp_path / "empty"])
    with pytest.raises(ResultsError, match="no such results file"):
        expand_paths([tmp_path / "nope.csv"])
    with pytest.raises(ResultsError, match="no baseline results"):
        read_runs([], "baseline")


# --------------------------------------------------------------------------- reading

def test_an_all_digit_run_id_reads_as_a_string(tmp_path):
    """Regression: a run_id of 12 hex digits that are all decimal was read as an integer (leading 0 lost)."""
    csv = write_run(tmp_path, {"g=1": 10.0, "g=2": 12.0}, seed=1, run_id="012345678901")
    run = read_run(csv)
    assert list(run.rows["run_id"]) == ["012345678901"] * 2 and run.run_id == "012345678901"
    assert set(run.samples["run_id"]) == {"012345678901"}
    assert read_results(csv)["run_id"].iloc[0] == "012345678901"
    # numeric columns stay numeric
    assert pd.api.types.is_integer_dtype(run.rows["scale"]) and pd.api.types.is_float_dtype(run.rows["latency_ms"])


def test_a_case_named_by_digits_stays_a_string(tmp_path):
    csv = write_run(tmp_path, {"1": 10.0, "2": 12.0}, seed=1)
    assert list(read_run(csv).rows["case"]) == ["1", "2"]


def test_skipped_rows_read_and_have_no_latency(tmp_path):
    csv = write_run(tmp_path, {"g=1": 10.0, "cudagraph": 5.0}, seed=1, skipped=SKIP)
    rows = read_run(csv).rows.set_index("case")
    assert rows.loc["cudagraph", "status"] == schema.SKIPPED and pd.isna(rows.loc["cudagraph", "latency_ms"])
    assert rows.loc["cudagraph", "error"] == SKIP["cudagraph"]


def _as_schema_1(csv):
    """Rewrite a run's files as latbench 0.1.0 wrote them (no memory_format, p99 or compile_s)."""
    df = pd.read_csv(csv, dtype=str)
    df = df.drop(columns=["memory_format", "latency_p99_ms", "compile_s"]).assign(schema_version="1")
    df.to_csv(csv, index=False)
    sp = RunPaths(csv).samples
    pd.read_csv(sp, dtype=str).drop(columns=["memory_format"]).to_csv(sp, index=False)


def test_schema_1_files_are_migrated_on_read(tmp_path):
    csv = write_run(tmp_path, {"g=1": 10.0, "g=2": 12.0}, seed=1)
    _as_schema_1(csv)
    run = read_run(csv)
    assert run.schema_version == 1
    assert list(run.rows["memory_format"]) == ["contiguous"] * 2 and run.rows["latency_p99_ms"].isna().all()
    assert set(run.samples["memory_format"]) == {"contiguous"}


def test_a_newer_schema_is_refused_where_it_is(tmp_path):
    csv = write_run(tmp_path, {"g=1": 10.0}, seed=1)
    df = pd.read_csv(csv, dtype=str).assign(schema_version=str(schema.SCHEMA_VERSION + 1))
    df.to_csv(csv, index=False)
    with pytest.raises(ResultsError, match=f"schema {schema.SCHEMA_VERSION + 1}") as info:
        read_run(csv)
    assert info.value.where == str(csv) and "upgrade" in info.value.hint


def test_a_killed_run_reads_as_interrupted_and_a_live_one_as_running(tmp_path):
    csv = write_run(tmp_path, {"g=1": 10.0}, seed=1, status=schema.RUNNING)
    assert read_run(csv, strict=False).status == schema.INTERRUPTED  # nobody holds its lock
    with pytest.raises(ResultsError, match="interrupted \\(its process died\\)"):
        read_run(csv)
    files = RunFiles(csv, RunPaths(csv).samples, RunPaths(csv).meta)
    files.lock()
    try:
        assert read_run(csv, strict=False).status == schema.RUNNING
        with pytest.raises(ResultsError, match="the run is running"):
            read_run(csv)
    finally:
        files.unlock()


def test_not_strict_reads_a_run_without_samples_or_metadata(tmp_path):
    csv = write_run(tmp_path, {"g=1": 10.0}, seed=1)
    RunPaths(csv).samples.unlink()
    RunPaths(csv).meta.unlink()
    run = read_run(csv, strict=False)
    assert run.meta == {} and run.samples.empty and list(run.samples.columns) == list(schema.SAMPLE_COLUMNS)
    with pytest.raises(ResultsError, match="metadata file is missing"):
        read_run(csv)


def test_samples_read_with_declared_dtypes(tmp_path):
    csv = write_run(tmp_path, {"g=1": 10.0}, seed=1, run_id="000000000007")
    s = read_samples(RunPaths(csv).samples)
    assert s["run_id"].iloc[0] == "000000000007" and pd.api.types.is_float_dtype(s["latency_ms"])


def test_resume_open_run_reads_through_the_results_layer(tmp_path):
    csv = write_run(tmp_path, {"g=1": 10.0}, seed=1, run_id="012345678901")
    meta = json.loads(RunPaths(csv).meta.read_text())
    RunPaths(csv).meta.write_text(json.dumps({**meta, "suite": {"name": "syn"}}))
    files = open_run(csv)
    assert files.rows[0]["run_id"] == "012345678901" and files.rows[0]["latency_ms"] != ""
    assert files.csv == csv and files.samples == RunPaths(csv).samples


# --------------------------------------------------------------------------- the bugs, end to end

def test_compare_gate_and_calibrate_accept_a_file_with_a_skipped_row(tmp_path):
    """Regression: a skipped row (a mode the device cannot run) read as 'line 4 is incomplete', exit 2."""
    cases = {"g=1": 10.0, "g=2": 12.0, "cudagraph": 5.0}
    base = write_side(tmp_path / "b", cases, 2, seed=1, skipped=SKIP)
    head = write_side(tmp_path / "h", cases, 2, seed=2, skipped=SKIP)
    r = _cli("compare", "--baseline", tmp_path / "b", *head, "--json")
    assert r.exit_code == 0, r.output
    by = {c["case"]: c for c in json.loads(r.stdout)["cases"]}
    assert by["g=1"]["status"] == "same" and by["cudagraph"]["status"] == "skipped"  # on both sides: not lost
    assert by["cudagraph"]["note"] == "skipped in the baseline and candidate: " + SKIP["cudagraph"]
    r = _cli("gate", "-b", tmp_path / "b", "-c", tmp_path / "h")
    assert r.exit_code == 0, r.output
    r = _cli("calibrate", *base, *head, "--format", "json")
    assert r.exit_code == 0, r.output
    assert {c["case"] for c in json.loads(r.stdout)["cases"]} == {"g=1", "g=2"}


def test_a_case_skipped_in_the_candidate_only_is_missing_not_failed(tmp_path):
    cases = {"g=1": 10.0, "cudagraph": 5.0}
    base = write_side(tmp_path / "b", cases, 2, seed=1)
    head = write_side(tmp_path / "h", cases, 2, seed=2, skipped=SKIP)
    r = _cli("gate", "-b", tmp_path / "b", "-c", tmp_path / "h", "--json")
    assert r.exit_code == 1, r.output  # fail closed: a case the candidate did not measure was not judged
    r = _cli("gate", "-b", tmp_path / "b", "-c", tmp_path / "h", "--json", "--allow-missing")
    assert r.exit_code == 0, r.output
    assert "relaxed: --allow-missing" in json.loads(r.stdout)["gate"]["summary"]
    case = {c["case"]: c for c in json.loads(r.stdout)["cases"]}["cudagraph"]
    assert case["status"] == "missing" and case["note"].startswith("skipped in the candidate")
    assert base and head


def test_compare_on_a_shell_expanded_results_directory(tmp_path):
    """Regression: `latbench compare results/*.csv` stopped on the -samples.csv file the glob also matches."""
    base = write_run(tmp_path / "r", {"g=1": 10.0}, seed=1, now=NOW)
    head = write_side(tmp_path / "r", {"g=1": 10.0}, 2, seed=2)
    listing = sorted((tmp_path / "r").glob("*.csv"))  # the shell's results/*.csv
    assert listing[0].name.endswith("-samples.csv") and RunPaths.of(listing[0]).csv == base and len(listing) == 6
    r = _cli("compare", *listing, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["baseline_files"] == [str(base)] and sorted(doc["candidate_files"]) == sorted(map(str, head))


def test_a_run_without_results_yet_is_passed_over_in_a_listing(tmp_path):
    """A run that has not finished its first group has only its .json (and .lock): results/* names it."""
    done = write_run(tmp_path, {"g=1": 10.0}, seed=1, now=NOW)
    started = RunFiles.reserve(tmp_path, "syn", "cpu")  # reserves <stem>.json, writes no CSV yet
    assert [r.csv for r in expand_paths(sorted(tmp_path.iterdir()))] == [done]
    with pytest.raises(ResultsError, match="no results yet") as info:
        expand_paths([started.meta])
    assert info.value.where == str(started.meta)
    done.unlink()  # samples without their CSV are damage, not a run in progress
    with pytest.raises(ResultsError, match="no results CSV"):
        expand_paths(sorted(tmp_path.iterdir()))


def test_declared_columns_get_their_dtypes_and_unknown_ones_are_left_alone(tmp_path):
    csv = write_run(tmp_path, {"g=1": 10.0}, seed=1)
    df = pd.read_csv(csv, dtype=str)
    df["flops"] = "garbage"  # a numeric column with a damaged cell
    df["future_text"] = "cuda-events"  # a column a later latbench may add
    df.to_csv(csv, index=False)
    rows = read_results(csv)
    assert pd.isna(rows.loc[0, "flops"]) and rows.loc[0, "future_text"] == "cuda-events"
    assert set(schema.NUMERIC_COLUMNS).isdisjoint(schema.STRING_COLUMNS)
    assert {"latency_ms", "scale", "batch", "threads", "round", "iters"} <= set(schema.NUMERIC_COLUMNS)


def test_the_docs_example_with_a_quoted_baseline_glob_and_a_shell_expanded_candidate(tmp_path):
    """docs/compare-and-gate.md: latbench compare --baseline 'base/*.csv' head/*.csv"""
    base = write_side(tmp_path / "base", {"g=1": 10.0}, 2, seed=1)
    head = write_side(tmp_path / "head", {"g=1": 10.0}, 2, seed=2)
    r = _cli("compare", "--baseline", f"{tmp_path}/base/*.csv", *sorted((tmp_path / "head").glob("*.csv")), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert sorted(doc["baseline_files"]) == sorted(map(str, base)) and sorted(doc["candidate_files"]) == sorted(
        map(str, head))
