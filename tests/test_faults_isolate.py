"""--isolate (issue 14): each group in a worker process, so a crash (segfault, os._exit, the OOM
killer) or a native call stuck past the hard limit fails its case alone, and the run goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from latbench.run import workers
from latbench.cli import app

ROOT = Path(__file__).resolve().parent.parent
SUITE = """\
suite: u
experiment: U
builder: user
blocks: 1
cases:
  - name: ok
    params: {factory: "faults_factory:forward", kwargs: {c: 4}, input_shape: [4, 6, 6]}
  - name: bad
    params: {factory: "faults_factory:forward", kwargs: {c: 4, action: ACTION}, input_shape: [4, 6, 6]}
  - name: ok2
    params: {factory: "faults_factory:forward", kwargs: {c: 4}, input_shape: [4, 6, 6]}
"""

CRASHES = {
    "segfault": "worker process crashed: killed by SIGSEGV",
    "os_exit": "worker process exited with code 7",
    "stuck": "timed out after",  # SIGALRM blocked: only the parent's hard limit stops it
}


@pytest.mark.slow
@pytest.mark.parametrize("action", list(CRASHES))
def test_a_crashing_or_stuck_case_fails_alone_under_isolate(tmp_path, monkeypatch, action):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    suite = tmp_path / "u.yaml"
    suite.write_text(SUITE.replace("ACTION", action))
    res = tmp_path / "res"
    r = CliRunner().invoke(app, ["run", str(suite), "--quick", "--allow-import", "--no-roofline", "-q", "--isolate",
                                 "--case-timeout", "1", "--results-dir", str(res)], catch_exceptions=False)
    assert r.exit_code == 1, r.output
    (csv,) = [p for p in res.glob("*.csv") if not p.name.endswith("-samples.csv")]
    rows = pd.read_csv(csv, keep_default_na=False).set_index("case")
    assert rows.loc["bad", "status"] == "failed" and rows.loc["bad", "error"].startswith(CRASHES[action])
    assert (rows.loc[["ok", "ok2"], "status"] == "ok").all(), rows["error"].tolist()
    assert json.loads(csv.with_suffix(".json").read_text())["status"] == "complete"


def test_isolated_groups_give_the_same_rows_as_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    tiny = ROOT / "tests" / "data" / "tiny.yaml"
    r = CliRunner().invoke(app, ["run", str(tiny), "--quick", "--no-roofline", "-q", "--isolate",
                                 "--results-dir", str(tmp_path)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    (csv,) = [p for p in tmp_path.glob("*.csv") if not p.name.endswith("-samples.csv")]
    rows = pd.read_csv(csv)
    assert list(rows["status"]) == ["ok", "ok"] and rows["ratio_to_baseline"].notna().all()
    assert len(pd.read_csv(csv.with_name(csv.stem + "-samples.csv"))) > 0


def test_the_hard_limit_grows_with_the_group_and_none_without_a_case_timeout():
    from latbench.timing.loop import StopPolicy

    import dataclasses

    spec = object()
    job = workers.Job(groups=(), recipe=workers.DeviceRecipe("cpu", 1), run_id="x", modes=("eager",),
                      schedule="interleaved", policy=StopPolicy(max_time_s=1.0), seed=0, case_timeout_s=2.0)
    assert workers.group_limit_s([spec, spec], job) > workers.group_limit_s([spec], job) > 2.0
    assert workers.group_limit_s([spec], dataclasses.replace(job, case_timeout_s=0)) == 0
