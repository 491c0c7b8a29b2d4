"""`latbench run` end to end on a tiny real suite (CPU, --quick): table, files, metadata, exit codes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import latbench.models.registry as registry
from latbench.cli import app
from latbench.records import RESULT_COLUMNS, SAMPLE_COLUMNS

ROOT = Path(__file__).resolve().parent.parent

TINY = """\
suite: tiny
experiment: G2
builder: g2_group_conv
input: {height: 8, width: 8}
blocks: 2
scales: [1, 2]
cases:
  - name: g=1
    params: {groups: 1}
    widths: {gpu: {c: 8}, arm: {c: 8}}
  - name: g=2
    params: {groups: 2}
    widths: {gpu: {c: 12}, arm: {c: 12}}
"""


def invoke(*args: str):
    return CliRunner().invoke(app, ["run", *args])


def run_files(results: Path) -> list[str]:
    return sorted(p.name for p in results.iterdir())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny suite run twice into one results dir: (suite path, results dir, first, second, files after 1).
    The first run is timed for real, the second by the fake backend (LATBENCH_FAKE_BACKEND)."""
    root = tmp_path_factory.mktemp("cli")
    suite = root / "tiny.yaml"
    suite.write_text(TINY)
    results = root / "results"
    first = invoke(str(suite), "--quick", "--results-dir", str(results))
    after_first = {name: (results / name).read_bytes() for name in run_files(results)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LATBENCH_FAKE_BACKEND", "1")
        second = invoke(str(suite), "--quick", "--results-dir", str(results))
    return suite, results, first, second, after_first


def first_run_files(results: Path, after_first: dict) -> tuple[Path, Path, Path]:
    csv_name = next(n for n in after_first if n.endswith(".csv") and not n.endswith("-samples.csv"))
    stem = csv_name.removesuffix(".csv")
    return results / csv_name, results / f"{stem}-samples.csv", results / f"{stem}.json"


def test_run_exits_0_and_prints_the_table(tiny):
    _, _, first, _, _ = tiny
    assert first.exit_code == 0, (first.stdout, first.stderr, first.exception)
    assert "g=1" in first.stdout and "g=2" in first.stdout and "baseline" in first.stdout
    assert "tiny (G2) on cpu" in first.stdout
    assert "error" not in first.stderr and "Traceback" not in first.stderr
    assert "wrote" in first.stderr and "wrote" not in first.stdout  # progress/notes on stderr only


def test_results_csv_has_one_ok_row_per_case(tiny):
    _, results, _, _, after_first = tiny
    csv_path, _, _ = first_run_files(results, after_first)
    df = pd.read_csv(csv_path)
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert list(df["case"]) == ["g=1", "g=2"]  # --quick: the first scale only
    assert set(df["status"]) == {"ok"} and set(df["scale"]) == {1} and set(df["device"]) == {"cpu"}
    assert (df["latency_ms"] > 0).all() and (df["samples"] >= 5).all()
    assert list(df["widths"]) == ["c=8;groups=1", "c=12;groups=2"]
    assert df.loc[0, "flops"] == 2 * 2 * 64 * 8 * 8  # 2 blocks, 8x8 map, c=8: 2 FLOPs per multiply-add
    assert df.loc[0, "ratio_to_baseline"] == 1.0 and not df.loc[0, "ratio_differs"]
    assert df["source"].str.match(r".*tiny\.yaml:\d+$").all()


def test_samples_csv_has_raw_latencies(tiny):
    _, results, _, _, after_first = tiny
    csv_path, samples, _ = first_run_files(results, after_first)
    df = pd.read_csv(samples)
    assert list(df.columns) == list(SAMPLE_COLUMNS)
    assert [c for c in df.columns if c.endswith("_ms")] == ["latency_ms"]
    assert (df["latency_ms"] > 0).all()
    main = pd.read_csv(csv_path)
    assert df.groupby("case").size().to_dict() == dict(zip(main["case"], main["samples"]))


def test_metadata_json_says_what_ran(tiny):
    suite, results, _, _, after_first = tiny
    csv_path, samples, meta_file = first_run_files(results, after_first)
    meta = json.loads(meta_file.read_text())
    assert meta["status"] == "complete" and meta["failed_cases"] == 0
    assert isinstance(meta["command"], list) and meta["command"]
    assert meta["suite"]["sha256"] == hashlib.sha256(suite.read_bytes()).hexdigest()
    assert meta["suite"]["path"] == str(suite)
    assert meta["threads"] == 1 and meta["quick"] is True and meta["device"] == "cpu"
    assert {"cpu_model", "torch"} <= set(meta["fingerprint"])
    assert meta["policy"]["max_time_s"] == pytest.approx(0.3)
    assert meta["files"] == {"results": csv_path.name, "samples": samples.name}


def test_a_second_run_never_overwrites_the_first(tiny):
    _, results, _, second, after_first = tiny
    assert second.exit_code == 0
    now = run_files(results)
    assert set(after_first) < set(now) and len(now) == 2 * len(after_first) == 6
    for name, content in after_first.items():
        assert (results / name).read_bytes() == content, name


def test_the_fake_backend_is_recorded_in_the_metadata(tiny):
    _, results, _, second, after_first = tiny
    metas = {p.name: json.loads(p.read_text()) for p in results.glob("*.json")}
    backends = {name in after_first: m["device_settings"]["backend"] for name, m in metas.items()}
    assert backends == {True: "cpu:perf_counter_ns", False: "cpu:fake(one call per block)"}


def test_the_fake_backend_refuses_cuda_in_one_line(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    result = invoke(str(tiny[0]), "--device", "cuda", "--results-dir", str(tmp_path / "r"))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "LATBENCH_FAKE_BACKEND times on the CPU only" in result.stderr and not (tmp_path / "r").exists()


def test_missing_suite_file_exits_2(tmp_path):
    result = invoke(str(tmp_path / "nope.yaml"), "--results-dir", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'nope.yaml'}: no such suite file")
    assert result.stdout == "" and not (tmp_path / "r").exists()


def test_invalid_suite_exits_2_before_measuring_anything(tmp_path, monkeypatch):
    from latbench.run import pipeline

    monkeypatch.setattr(pipeline, "run_group", lambda *a, **k: pytest.fail("measured an invalid suite"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.replace("{groups: 2}", "{groups: 5}"))
    result = invoke(str(bad), "--results-dir", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "is not divisible by groups=5" in result.stderr
    assert not (tmp_path / "r").exists()


def test_cuda_without_a_gpu_exits_2(tiny, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    suite = tiny[0]
    result = invoke(str(suite), "--device", "cuda", "--results-dir", str(tmp_path / "r"))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device cuda was asked for, but no CUDA device")
    assert "--device cpu" in lines[0]  # the fix
    assert not (tmp_path / "r").exists()


def test_a_failed_build_is_a_failed_row_and_exit_1(tmp_path, monkeypatch):
    real = registry.get_builder("g2_group_conv")

    def build(p, blocks):
        # out of memory on the real device only: costs are still counted on the meta device
        if p["groups"] == 2 and torch.empty(0).device.type != "meta":
            raise RuntimeError("out of memory [/tried to allocate 5 GB]")
        return real.build(p, blocks)

    monkeypatch.setitem(registry._REGISTRY, "g2_group_conv", dataclasses.replace(real, build=build))
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY)
    # --in-process: the monkeypatched builder lives in this process, not in a worker's
    result = invoke(str(suite), "--quick", "-q", "--in-process", "--results-dir", str(tmp_path / "r"))
    assert result.exit_code == 1, (result.stderr, result.exception)
    assert "1 case(s) failed" in result.stderr and "Traceback" not in result.stderr
    assert "FAILED" in result.stdout and "out of memory" in result.stdout
    [csv_path] = [p for p in (tmp_path / "r").glob("*.csv") if not p.name.endswith("-samples.csv")]
    df = pd.read_csv(csv_path).set_index("case")
    assert df.loc["g=1", "status"] == "ok" and df.loc["g=1", "latency_ms"] > 0
    assert df.loc["g=2", "status"] == "failed" and pd.isna(df.loc["g=2", "latency_ms"])
    assert df.loc["g=2", "error"] == "out of memory: out of memory [/tried to allocate 5 GB]"
    assert df.loc["g=2", "flops"] > 0  # counted even though it could not run
    meta = json.loads(csv_path.with_suffix(".json").read_text())
    assert meta["status"] == "complete" and meta["failed_cases"] == 1


def test_python_m_latbench_help():
    proc = subprocess.run([sys.executable, "-m", "latbench", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "run" in proc.stdout and "Usage" in proc.stdout
