"""Results files: names never reused, atomic writes, the header snapshot, and clear read errors."""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime, timezone

import pytest

from latbench.errors import ResultsError
from latbench.records import RESULT_COLUMNS, SAMPLE_COLUMNS, SCHEMA_VERSION
from latbench.results.files import RunFiles, atomic_write_text
from latbench.results.read import meta_path, read_results, samples_path

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

# A snapshot of the results header. If this test fails you changed the schema: append new columns
# at the end (never rename or reorder), bump SCHEMA_VERSION if old readers would misread, update here.
EXPECTED_RESULT_COLUMNS = [
    "schema_version", "run_id", "suite", "experiment", "case", "scale", "device", "mode", "batch",
    "dtype", "threads", "widths", "widths_mode", "flops", "mult_adds", "flops_target", "flops_drift_pct",
    "mac_bytes", "params", "activations",
    "latency_ms", "latency_mean_ms", "latency_p10_ms", "latency_p90_ms", "latency_iqr_ms",
    "latency_ci_low_ms", "latency_ci_high_ms", "samples", "iters_per_sample", "warmup_iters",
    "outliers", "images_per_s", "batches_per_s",
    "baseline_case", "ratio_to_baseline", "ratio_ci_low", "ratio_ci_high", "ratio_differs",
    "schedule", "stop_reason", "status", "error", "warnings", "source",
    # hardware-aware columns (telemetry, roofline, --profile)
    "cpu_freq_mhz", "cpu_load_pct", "gpu_sm_clock_mhz", "gpu_temp_c", "gpu_power_w", "throttled", "under_load",
    "achieved_flops_per_s", "achieved_bytes_per_s", "arithmetic_intensity_flops_per_byte", "roofline_bound_ms",
    "roofline_pct", "op_count_per_forward", "zero_flop_time_pct",
    # schema 2: sweep axes
    "memory_format", "latency_p99_ms", "compile_s",
    # schema 3: latency semantics, L2 state, GPU throttle reasons, roofline ceiling used
    "latency_semantics", "l2", "gpu_throttle_reasons", "roofline_ceiling",
    # schema 4: process repeats (issue 16)
    "ratio_interval", "repeats", "ratio_process_spread_pct", "ratio_between_pct", "ratio_unstable",
    # schema 5: the machine that measured the row (issue 26)
    "host", "device_name",
    # schema 6: CPU seconds per wall second of the measuring process, and the fail-closed flag (issue 21)
    "cpu_per_wall", "oversubscribed",
]
EXPECTED_SAMPLE_COLUMNS = ["run_id", "suite", "experiment", "case", "scale", "device", "mode", "batch",
                           "round", "position", "iters", "latency_ms", "dtype", "memory_format", "threads",
                           "process"]


def header(path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


def row(**kw):
    base = {c: None for c in RESULT_COLUMNS}
    base.update(schema_version=SCHEMA_VERSION, run_id="r1", suite="g2", experiment="G2", case="g=1", scale=1,
                device="cpu", mode="eager", batch=1, latency_ms=1.5, status="ok")
    base.update(kw)
    return base


# ---- reserve -----------------------------------------------------------------------------------

def test_reserve_names_and_creates_the_metadata_file(tmp_path):
    files = RunFiles.reserve(tmp_path / "new" / "dir", "g2", "cpu", now=NOW)
    assert files.csv.name == "g2-cpu-20260102T030405Z.csv"
    assert files.samples.name == "g2-cpu-20260102T030405Z-samples.csv"
    assert files.meta.name == "g2-cpu-20260102T030405Z.json"
    assert files.meta.exists() and not files.csv.exists()  # the claim on the name
    assert samples_path(files.csv) == files.samples and meta_path(files.csv) == files.meta


def test_two_reserves_in_the_same_second_get_different_names(tmp_path):
    names = {RunFiles.reserve(tmp_path, "g2", "cpu", now=NOW).csv.name for _ in range(5)}
    assert len(names) == 5
    assert "g2-cpu-20260102T030405Z-1.csv" in names and "g2-cpu-20260102T030405Z-4.csv" in names


@pytest.mark.parametrize("existing", ["g2-cpu-20260102T030405Z.csv", "g2-cpu-20260102T030405Z-samples.csv",
                                      "g2-cpu-20260102T030405Z.json"])
def test_reserve_never_reuses_a_name_of_an_existing_file(tmp_path, existing):
    (tmp_path / existing).write_text("precious")
    files = RunFiles.reserve(tmp_path, "g2", "cpu", now=NOW)
    assert files.csv.name == "g2-cpu-20260102T030405Z-1.csv"
    files.add([row()], [])
    assert (tmp_path / existing).read_text() == "precious"


def test_reserve_gives_up_with_a_results_error(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "open", lambda *a, **k: (_ for _ in ()).throw(FileExistsError()))
    with pytest.raises(ResultsError, match="free file name"):
        RunFiles.reserve(tmp_path, "g2", "cpu", now=NOW)


# ---- writing -----------------------------------------------------------------------------------

def test_header_is_the_schema_snapshot(tmp_path):
    assert list(RESULT_COLUMNS) == EXPECTED_RESULT_COLUMNS
    assert list(SAMPLE_COLUMNS) == EXPECTED_SAMPLE_COLUMNS
    files = RunFiles.reserve(tmp_path, "g2", "cpu", now=NOW)
    files.flush()  # even with no rows yet, the files are complete tables
    assert header(files.csv) == EXPECTED_RESULT_COLUMNS
    assert header(files.samples) == EXPECTED_SAMPLE_COLUMNS
    files.add([row(extra_column="dropped")], [{"run_id": "r1", "round": 0, "latency_ms": 1.0}])
    assert header(files.csv) == EXPECTED_RESULT_COLUMNS
    df = read_results(files.csv)
    assert list(df.columns) == EXPECTED_RESULT_COLUMNS and len(df) == 1


def test_add_appends_and_rewrites_everything(tmp_path):
    files = RunFiles.reserve(tmp_path, "g2", "cpu", now=NOW)
    files.metadata = {"status": "running", "when": NOW}
    files.add([row(case="g=1")], [])
    files.add([row(case="g=2"), row(case="g=4")], [])
    assert list(read_results(files.csv)["case"]) == ["g=1", "g=2", "g=4"]
    meta = json.loads(files.meta.read_text())
    assert meta["status"] == "running" and meta["when"].startswith("2026-01-02")  # non-JSON types as text
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([files.csv.name, files.samples.name,
                                                                files.meta.name])  # no temp files left


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "t.csv"
    atomic_write_text(target, "old\n")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


# ---- reading -----------------------------------------------------------------------------------

def test_read_results_missing_file(tmp_path):
    with pytest.raises(ResultsError, match="no such results file") as info:
        read_results(tmp_path / "nope.csv")
    assert info.value.where == str(tmp_path / "nope.csv") and info.value.hint


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\xfd", b'{"a": 1}\n', b"a,b\n1,2\n",
                                     b'schema_version,suite\n1,"unclosed\n'])
def test_read_results_not_a_results_csv(tmp_path, content):
    p = tmp_path / "bad.csv"
    p.write_bytes(content)
    with pytest.raises(ResultsError) as info:
        read_results(p)
    assert info.value.where == str(p) and info.value.hint and "\n" not in str(info.value)


def test_read_results_missing_columns_names_them(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("schema_version,suite,experiment,case,scale,device,mode,latency_ms\n1,g2,G2,g=1,1,cpu,eager,1\n")
    with pytest.raises(ResultsError, match="missing columns batch"):
        read_results(p)


def test_read_results_samples_file_is_refused_with_a_pointer(tmp_path):
    files = RunFiles.reserve(tmp_path, "g2", "cpu", now=NOW)
    files.add([row()], [{"run_id": "r1", "round": 0, "latency_ms": 1.0}])
    with pytest.raises(ResultsError, match="samples"):
        read_results(files.samples)


def test_read_results_newer_schema(tmp_path):
    files = RunFiles.reserve(tmp_path, "g2", "cpu", now=NOW)
    files.add([row(schema_version=SCHEMA_VERSION + 1)], [])
    with pytest.raises(ResultsError, match=f"schema {SCHEMA_VERSION + 1}") as info:
        read_results(files.csv)
    assert "upgrade" in info.value.hint


def test_read_results_current_schema_round_trips(tmp_path):
    files = RunFiles.reserve(tmp_path, "g2", "cpu", now=NOW)
    files.add([row(latency_ms=0.123456789, flops=2_055_208_960)], [])
    df = read_results(files.csv)
    assert df.loc[0, "latency_ms"] == pytest.approx(0.123456789) and df.loc[0, "flops"] == 2_055_208_960


def test_written_files_are_readable_by_others_as_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "x.csv"
        atomic_write_text(path, "a\n")
        assert (path.stat().st_mode & 0o777) == 0o644  # not mkstemp's 0600
    finally:
        os.umask(old)
