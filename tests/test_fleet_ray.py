"""Issue 26 on Ray: `latbench run --on ray [--devices POOLS]` on a real local cluster (a head and more nodes on
this machine, custom resources "device:a"/"device:b" standing in for two device kinds). Groups go to the
nodes of their pool, a node measures one group at a time, a node killed mid-run loses nothing, the
run's files are what `run` writes, and the report has a column per device. Without Ray installed the
cluster tests skip; `import latbench` and every command without --on never need it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from latbench.cli import app
from latbench.results.read import read_run
from latbench.run import Events, RunOptions, run

ROOT = Path(__file__).resolve().parent.parent
SUITE = """\
suite: six
experiment: S
description: two small group convs at six scales (six groups)
builder: g2_group_conv
input: {height: 8, width: 8}
blocks: 1
batch: 1
scales: [1, 2, 3, 4, 5, 6]
widths: paper
cases:
  - name: g=1
    params: {groups: 1}
    widths: {gpu: {c: 8}, arm: {c: 8}}
  - name: g=2
    params: {groups: 2}
    widths: {gpu: {c: 8}, arm: {c: 8}}
claims:
  - text: "two groups cost at most ten times one"
    case: g=2
    than: g=1
    expect: at_most
    ratio: 10
"""
FAST = dict(max_time=0.05, repeats=1, roofline=False, fake_backend=True)


# ---------------------------------------------------------------- without a cluster (and without Ray)

def test_latbench_and_commands_without_on_never_import_ray():
    code = ("import sys, latbench, latbench.cli, latbench.run.session, latbench.run.merge, latbench.report.markdown; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_on_ray_without_ray_installed_exits_2_saying_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the package
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    r = CliRunner().invoke(app, ["run", str(ROOT / "tests/data/tiny.yaml"), "--on", "ray", "--no-roofline", "-q",
                                 "--results-dir", str(tmp_path / "r")])
    assert r.exit_code == 2 and "needs Ray" in r.stderr and "pip install 'latbench[ray]'" in r.stderr, r.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, said", [
    (["--devices", "a"], "--devices: device pools are groups of nodes of a Ray cluster; add --on ray"),
    (["--on", "ray", "--devices", "cuda"], "--devices: cuda: the run measures on --device cpu"),
    (["--on", "dask"], "is not a cluster latbench can use"),
    (["--on", "ray", "--in-process"], "--in-process asks to measure in this process"),
])
def test_fleet_options_that_cannot_work_exit_2(tmp_path, monkeypatch, args, said):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    r = CliRunner().invoke(app, ["run", str(ROOT / "tests/data/tiny.yaml"), *args, "--no-roofline", "-q",
                                 "--results-dir", str(tmp_path / "r")])
    assert r.exit_code == 2 and said in r.stderr, r.stderr


# ---------------------------------------------------------------- a real local cluster

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head 'A' (device:a) and node 'B' (device:b), each with latbench_slot = 1; this process is the driver."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    small = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
    c = Cluster(initialize_head=True, head_node_args={
        **small, "resources": {"latbench_slot": 1, "device:a": 1}, "include_dashboard": False,
        # a killed node is declared dead within ~1.5 s (the default waits ~30 s)
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                           "health_check_initial_delay_ms": 0}})
    b = c.add_node(**small, resources={"latbench_slot": 1, "device:b": 1})
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, namespace="latbench")
    suite = tmp_path_factory.mktemp("fleet") / "six.yaml"
    suite.write_text(SUITE)
    ids = {n["Resources"].get("device:a") and "a" or "b": n["NodeID"] for n in ray.nodes() if n["Alive"]}
    try:
        yield {"cluster": c, "ray": ray, "suite": suite, "nodes": ids, "b": b, "small": small}
    finally:
        ray.shutdown()
        c.shutdown()


def _intervals(metas) -> dict[str, list[tuple[float, float]]]:
    per_node: dict[str, list[tuple[float, float]]] = {}
    for m in metas:
        for g in m["placement"]["groups"].values():
            if "node" in g:
                per_node.setdefault(g["node"], []).append((g["started"], g["ended"]))
    return per_node


@pytest.mark.slow
def test_pools_place_groups_by_resource_one_at_a_time_and_report_a_column_per_device(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    out = tmp_path / "res"
    r = CliRunner().invoke(app, ["run", str(cluster["suite"]), "--on", "ray", "--devices", "a,b", "--max-time", "0.05",
                                 "--repeats", "1", "--no-roofline", "-q", "--format", "csv", "--results-dir", str(out)])
    assert r.exit_code == 0, r.output
    runs = [read_run(p) for p in sorted(out.glob("six-*Z*.csv")) if not p.name.endswith("-samples.csv")]
    assert len(runs) == 2  # one run file per pool
    by_pool = {run.meta["fleet"]["target"]: run for run in runs}
    assert set(by_pool) == {"a", "b"}
    for pool, run in by_pool.items():
        placed = run.meta["placement"]["groups"]
        assert sorted(placed) == [f"S x{k}" for k in range(1, 7)]
        assert {g["node"] for g in placed.values()} == {cluster["nodes"][pool]}  # by resource
        assert (run.rows["status"] == "ok").all() and len(run.rows) == 12
        assert run.rows["host"].notna().all() and run.rows["device_name"].notna().all()
        assert run.meta["fleet"]["resources"] == {"latbench_slot": 1.0, f"device:{pool}": 1.0}
    for node, spans in _intervals([run.meta for run in runs]).items():  # never two groups at once on a node
        spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), (node, spans)
    rep = CliRunner().invoke(app, ["report", *[str(run.path) for run in runs], "-o", str(tmp_path / "rep" / "r.md")])
    assert rep.exit_code == 0, rep.output
    text = (tmp_path / "rep" / "r.md").read_text()
    assert "on each device" in text and "| a: cpu: " in text and "| b: cpu: " in text  # a column per device
    verdicts = [line for line in text.splitlines() if "two groups cost at most ten times one" in line]
    assert any("a: cpu:" in v for v in verdicts) and any("b: cpu:" in v for v in verdicts)  # claims per device


@pytest.mark.slow
def test_a_fleet_run_writes_what_a_local_run_writes(cluster, tmp_path):
    local = run(RunOptions(suites=(cluster["suite"],), results_dir=tmp_path / "local", **FAST)).suites[0]
    fleet = run(RunOptions(suites=(cluster["suite"],), results_dir=tmp_path / "fleet", on="ray", **FAST)).suites[0]
    a, b = read_run(local.files.csv), read_run(fleet.files.csv)
    assert list(pd.read_csv(fleet.files.csv, nrows=0).columns) == list(pd.read_csv(local.files.csv, nrows=0).columns)
    key = ["experiment", "scale", "case", "mode", "device", "batch", "dtype", "memory_format", "threads", "status"]
    assert sorted(map(tuple, b.rows[key].values.tolist())) == sorted(map(tuple, a.rows[key].values.tolist()))
    assert set(b.meta) == set(a.meta) | {"placement"} and b.meta["groups"] == a.meta["groups"]
    assert b.meta["status"] == "complete" and b.meta["fleet"] == {"target": "cpu", "resources": {"latbench_slot": 1.0}}
    assert list(b.samples.columns) == list(a.samples.columns) and len(b.samples) > 0
    assert len(b.meta["claims"]) == len(a.meta["claims"]) == 6  # claims judged on the fleet run too
    assert CliRunner().invoke(app, ["compare", "--baseline", str(local.files.csv), str(fleet.files.csv)]).exit_code in (0, 1)


class KillAfterFirstGroup(Events):
    def __init__(self, kill):
        self.kill, self.done = kill, 0

    def on_group_done(self, suite_name, group, rows):
        self.done += 1
        if self.done == 1:
            self.kill()


@pytest.mark.slow
def test_a_node_killed_mid_run_loses_nothing(cluster, tmp_path, monkeypatch):
    """Pool a gets a second node K, pool c a single node L; both are killed once the first group is saved.
    K's group is re-run on A; pool c has no node left: its groups are written failed with the reason."""
    c, small = cluster["cluster"], cluster["small"]
    k = c.add_node(**small, resources={"latbench_slot": 1, "device:a": 1})
    lone = c.add_node(**small, resources={"latbench_slot": 1, "device:c": 1})
    c.wait_for_nodes()
    monkeypatch.setenv("LATBENCH_FLEET_LOST_S", "2")
    killed: list[float] = []

    def kill():
        c.remove_node(k, allow_graceful=False)
        c.remove_node(lone, allow_graceful=False)
        killed.append(time.time())

    t0 = time.monotonic()
    out = run(RunOptions(suites=(cluster["suite"],), results_dir=tmp_path / "res", on="ray", devices=("a", "c"),
                         **FAST), KillAfterFirstGroup(kill))
    assert killed and time.monotonic() - t0 < 120
    pools = {s.metadata["fleet"]["target"]: s for s in out.suites}
    a, lost = read_run(pools["a"].files.csv), read_run(pools["c"].files.csv)
    assert a.meta["status"] == lost.meta["status"] == "complete"
    assert len(a.rows) == 12 and (a.rows["status"] == "ok").all()  # every group of pool a, once, measured
    assert not a.rows.duplicated(["scale", "case", "mode"]).any()
    placed = a.meta["placement"]["groups"].values()
    assert all(g["node"] == cluster["nodes"]["a"] or g["ended"] <= killed[0] for g in placed)  # then only A
    assert len(lost.rows) == 12 and lost.meta["groups"]["pending"] == []  # nothing lost ...
    for _, g in lost.rows.groupby("scale"):  # ... nothing half-written: a group is all ok or all failed
        assert g["status"].nunique() == 1
    failed = lost.rows[lost.rows["status"] == "failed"]
    assert len(failed) and failed["error"].str.contains("no node of pool c left|lost on the Ray cluster").all()
    meta = json.loads(pools["c"].files.meta.read_text())
    assert all("error" in g or "node" in g for g in meta["placement"]["groups"].values())
