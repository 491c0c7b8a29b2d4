"""The CUDA path's integration with the pipeline, session and CLI (issue 13, part 2), on the CPU with the
fake backend: graphs released per group, latency semantics and L2 state recorded on every row and in
the metadata, checked on --resume, and older results files migrated."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import runhelp
from latbench.cli import app
from latbench.devices import CpuDevice
from latbench.errors import DeviceError
from latbench.results import schema
from latbench.run import RunOptions, pipeline
from latbench.run import run as run_session
from latbench.timing.fake import FakeBackend
from latbench.suite import expand, load_suite
from latbench.timing.cpu import CpuBackend
from latbench.timing.loop import StopPolicy

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "data" / "tiny.yaml"  # 4 scales = 4 groups of 2 cases
FAST = StopPolicy(warmup_s=0.0, warmup_min_iters=1, block_s=0.0005, min_rounds=3, max_rounds=3,
                  min_time_s=0.0, max_time_s=1.0)


def _specs(groups: int = 2):
    specs = expand(load_suite(TINY), "arm", quick=False)
    keep = list(dict.fromkeys(s.group for s in specs))[:groups]
    return [s for s in specs if s.group in keep]


def test_each_group_releases_its_graphs_before_the_memory_reset():
    """Integration item: pipeline._run_group calls timing.prepare.release(backend) after measuring, so CUDA
    graphs (and their private pools) and compiled code do not outlive their group."""
    log = []

    class Counting(CpuBackend):
        def release(self):
            log.append("release")
            return 0

    class Dev(CpuDevice):
        def reset_memory(self):
            log.append("reset_memory")

    cfg = pipeline.RunConfig(device=Dev(backend=Counting(), threads=1), run_id="t", policy=FAST)
    pipeline.run_in_process(pipeline.groups_of(_specs(2)), cfg, lambda rows, samples: log.append("saved"))
    assert log == ["release", "reset_memory", "saved"] * 2


def test_backend_columns_reach_every_row():
    cfg = pipeline.RunConfig(device=runhelp.cpu(CpuBackend(latency="single")), run_id="t", policy=FAST)
    rows, _ = runhelp.run_specs(_specs(1), cfg)
    assert rows and all((r["latency_semantics"], r["l2"]) == ("single", "warm") for r in rows)


def _opts(tmp_path, **kw):
    base = dict(suites=(TINY,), quick=True, results_dir=tmp_path, roofline=False, fake_backend=True,
                argv=("latbench", "run", str(TINY), "--quick"))
    return RunOptions(**{**base, **kw})


def test_latency_semantics_are_recorded_in_rows_files_and_metadata(tmp_path):
    out = run_session(_opts(tmp_path, latency="single"))
    [suite] = out.suites
    df = pd.read_csv(suite.files.csv)
    assert set(df["latency_semantics"]) == {"single"} and set(df["l2"]) == {"warm"}
    meta = json.loads(suite.files.meta.read_text())
    assert meta["latency_semantics"] == "single" and meta["l2"] == "warm"
    assert meta["schema_version"] == schema.SCHEMA_VERSION >= 3  # columns added in schema 3


def test_resume_with_other_latency_semantics_is_refused(tmp_path):
    from latbench.errors import ResultsError

    out = run_session(_opts(tmp_path))
    csv = out.suites[0].files.csv
    meta = json.loads(csv.with_suffix(".json").read_text())
    meta["status"] = "interrupted"
    csv.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ResultsError, match="latency_semantics") as info:
        run_session(_opts(tmp_path, latency="single", resume=csv))
    assert "--latency" in str(info.value) + (info.value.hint or "")


def test_flushed_l2_on_the_cpu_is_a_clear_error(tmp_path):
    with pytest.raises(DeviceError, match="needs a CUDA device"):
        run_session(_opts(tmp_path, l2="flushed"))
    with pytest.raises(DeviceError, match="needs a CUDA device"):
        FakeBackend(l2="flushed")


def test_cli_latency_and_l2_options(tmp_path, monkeypatch):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    r = CliRunner().invoke(app, ["run", str(TINY), "--quick", "--no-roofline", "-q", "--results-dir", str(tmp_path),
                                 "--latency", "single"])
    assert r.exit_code == 0, r.output
    [csv] = [p for p in tmp_path.glob("*.csv") if not p.name.endswith("-samples.csv")]
    assert set(pd.read_csv(csv)["latency_semantics"]) == {"single"}
    r = CliRunner().invoke(app, ["run", str(TINY), "--quick", "--no-roofline", "-q", "--results-dir", str(tmp_path),
                                 "--l2", "flushed"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "needs a CUDA device" in r.output and "warm" in r.output
    r = CliRunner().invoke(app, ["run", str(TINY), "--latency", "fast"])
    assert r.exit_code == 2


def test_schema_2_files_read_as_throughput_with_a_warm_l2(tmp_path):
    from latbench.results.read import read_results

    new = ("latency_semantics", "l2", "gpu_throttle_reasons", "roofline_ceiling")
    old = [c for c in schema.RESULT_COLUMNS if c not in new]
    p = tmp_path / "old.csv"
    pd.DataFrame([{c: None for c in old} | {"schema_version": 2, "latency_ms": 1.0}]).to_csv(p, index=False)
    df = read_results(p)
    assert list(df["latency_semantics"]) == ["throughput"] and list(df["l2"]) == ["warm"]
    assert set(new) <= set(schema.STRING_COLUMNS)
