"""Bad option values and oversized suites (issue 14): one line, exit 2, nothing built or written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from latbench import faults
from latbench.devices import CpuDevice
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


# ---------------------------------------------------------------- files given to commands

@pytest.fixture(scope="module")
def run_csv(tmp_path_factory) -> Path:
    import os

    d = tmp_path_factory.mktemp("run")
    os.environ["LATBENCH_FAKE_BACKEND"] = "1"
    try:
        r = CliRunner().invoke(app, ["run", str(TINY), "--quick", "--no-roofline", "-q", "--results-dir", str(d)])
    finally:
        del os.environ["LATBENCH_FAKE_BACKEND"]
    assert r.exit_code == 0, r.output
    (csv,) = [p for p in d.glob("*.csv") if not p.name.endswith("-samples.csv")]
    return csv


def _copy_run(csv: Path, dest: Path) -> Path:
    dest.mkdir()
    for p in csv.parent.glob(csv.stem + "*"):
        (dest / p.name).write_bytes(p.read_bytes())
    return dest / csv.name


@pytest.mark.parametrize("field, value", [("fingerprint", "x"), ("policy", 3), ("device_settings", [1]),
                                          ("seed", "a"), ("status", 5), ("suite", None)])
def test_metadata_with_wrong_typed_fields_is_one_line(run_csv, tmp_path, field, value):
    import json

    csv = _copy_run(run_csv, tmp_path / "run")
    meta = csv.with_suffix(".json")
    meta.write_text(json.dumps({**json.loads(meta.read_text()), field: value}))
    for args in (["report", str(csv), "--out", str(tmp_path / "rep")], ["compare", str(run_csv), str(csv)],
                 ["gate", "-b", str(run_csv), "-c", str(csv)]):
        r = CliRunner().invoke(app, args, catch_exceptions=False)
        assert "Traceback" not in r.output
        if value is not None:  # null is "absent": fine
            assert r.exit_code == 2 and f"metadata field {field!r}" in r.stderr, (args, r.output)


def test_calibrate_output_never_overwrites_and_run_args_are_checked(run_csv, tmp_path):
    existing = tmp_path / "t.yaml"
    existing.write_text("mine\n")
    for out in (existing, tmp_path):
        r = CliRunner().invoke(app, ["calibrate", str(run_csv), str(run_csv), "--output", str(out)])
        said = "is a directory" if out.is_dir() else "already exists"
        assert r.exit_code == 2 and said in r.stderr and str(out) in r.stderr, r.output
    assert existing.read_text() == "mine\n"
    from resultfiles import write_run

    runs = [write_run(tmp_path / "aa", {"a": 1.0, "b": 2.0}, seed=s) for s in (1, 2)]
    r = CliRunner().invoke(app, ["calibrate", *map(str, runs), "--output", str(existing), "--force", "-q"])
    assert r.exit_code == 0 and existing.read_text().startswith("# latbench gate thresholds"), r.output
    r = CliRunner().invoke(app, ["calibrate", "--suite", str(TINY), "--run-args", '"unbalanced'])
    assert r.exit_code == 2 and "No closing quotation" in r.stderr, r.output


@pytest.mark.parametrize("suite", ["/proc/self/mem", "long"])
def test_unreadable_or_oversized_suite_names_are_one_line(tmp_path, suite):
    if suite == "long":
        p = tmp_path / "long.yaml"
        p.write_text(TINY.read_text().replace("suite: tiny", "suite: " + "a" * 300))
        suite = str(p)
    r = CliRunner().invoke(app, ["run", suite, "--quick", "--results-dir", str(tmp_path / "res")])
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.output, r.output
    assert not (tmp_path / "res").exists()


def test_no_home_means_no_cache_in_the_root(monkeypatch):
    from latbench.roofline import cache_file

    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("LATBENCH_CACHE", raising=False)
    assert not str(cache_file()).startswith("/.cache")


def test_a_poisoned_roofline_cache_is_measured_again(tmp_path):
    import json

    from latbench import roofline

    probes = dict(gemm_probe=lambda *_: {"peak_flops_per_s": 1e9}, copy_probe=lambda *_: {"bandwidth_bytes_per_s": 1e9})
    path = tmp_path / "roofline.json"
    key = roofline.ceiling_key("cpu", "X", 1, "float32")
    for poison in ({"peak_flops_per_s": "abc", "bandwidth_bytes_per_s": None}, [1, 2], "x",
                   {"peak_flops_per_s": float("nan"), "bandwidth_bytes_per_s": -1}):
        path.write_text(json.dumps({key: poison}))
        c, cached = roofline.measure_ceilings(CpuDevice(), "X", 1, path=path, **probes)
        assert not cached and c.peak_flops_per_s == 1e9


@pytest.mark.parametrize("file, value", [("csv", "inf"), ("samples", "-1"), ("samples", "abc"), ("samples", "inf")])
def test_gate_refuses_impossible_latencies_instead_of_passing(run_csv, tmp_path, file, value):
    """The attack run found `gate` passing on these (they read as numbers, or were never checked)."""
    import pandas as pd

    csv = _copy_run(run_csv, tmp_path / "run")
    path = csv if file == "csv" else csv.with_name(csv.stem + "-samples.csv")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[0, "latency_ms"] = value
    df.to_csv(path, index=False)
    for args in (["gate", "-b", str(run_csv), "-c", str(csv)], ["gate", "-b", str(csv), "-c", str(run_csv)]):
        r = CliRunner().invoke(app, args, catch_exceptions=False)
        assert r.exit_code == 2 and "latency_ms" in r.stderr, r.output
