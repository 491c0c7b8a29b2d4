"""A latency table's blocks measured against one reference block in every group (predict/measure.py):
drift of the machine during a build moves a group's blocks and its reference alike and cancels."""

from __future__ import annotations

import json
import statistics

import pytest
from typer.testing import CliRunner

from latbench.cli import app
from latbench.predict.blocks import Block
from latbench.predict.measure import REFERENCE_CASE, BlockSource, TableEvents, normalise, reference_block, \
    reference_ms
from latbench.predict.table import new_table, read_table

runner = CliRunner()
NET = "predict_factory:residual"
FAST = ["--input", "3x16x16", "--max-time", "0.02", "-q"]


@pytest.fixture(autouse=True)
def _fake(monkeypatch):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")


def _block(i: int) -> Block:
    return Block([i], {"ops": [[f"aten.op{i}.default", []]], "inputs": [{"shape": [1], "stride": [1], "dtype": "float32"}]},
                 "conv", f"block{i}")


def _row(case: str, ms: float, ratio: float | None = None, status: str = "ok") -> dict:
    r = {"case": case, "status": status, "latency_ms": ms, "latency_ci_low_ms": ms * 0.98, "latency_ci_high_ms": ms * 1.02,
         "flops": 10, "mac_bytes": 20, "activations": 3, "samples": 9, "stop_reason": "ci", "run_id": "r1"}
    if ratio is not None:
        r.update(ratio_to_baseline=ratio, ratio_ci_low=ratio * 0.99, ratio_ci_high=ratio * 1.01)
    return r


def test_every_group_opens_with_the_reference_as_its_baseline():
    todo = {f"k{i}": _block(i) for i in range(19)}
    ref = reference_block()
    specs = BlockSource(todo, 8, reference=ref).specs("cpu")
    assert len(specs) == 19 + 3  # three groups of <= 8 blocks, each with its reference first
    groups: dict[str, list] = {}
    for s in specs:
        groups.setdefault(s.experiment, []).append(s)
    assert [len(g) for g in groups.values()] == [9, 9, 4]
    for g in groups.values():
        assert g[0].case.startswith(REFERENCE_CASE + "#") and all(s.baseline_case == g[0].case for s in g)
        assert json.loads(dict(g[0].params)["kwargs"]["block"]) == ref.desc
    assert len({g[0].case for g in groups.values()}) == 3
    plain = BlockSource(todo, 8).specs("cpu")  # no reference: the group's first block is its baseline
    assert len(plain) == 19 and plain[8].baseline_case == "k8" and plain[9].baseline_case == "k8"


def test_the_reference_is_a_fixed_conv_block():
    a, b = reference_block(), reference_block()
    assert a.desc == b.desc and a.kind == "conv" and "conv3x3" in a.label and "32>32" in a.label


def test_a_slow_spell_during_the_build_cancels():
    """Group 2 measured while the machine ran 1.5x slower: its blocks' own medians are 1.5x, their ratios to
    the reference are not; both blocks (the same ratio) get the same latency, ratio x median reference."""
    table = new_table("cpu", 1, "eager", "throughput", {})
    todo = {"a": _block(1), "b": _block(2)}
    saves = []
    ev = TableEvents(table, todo, lambda: saves.append(1))
    ev.on_group_done("lut", "blocks0000", [_row(f"{REFERENCE_CASE}#0000", 1.0, 1.0), _row("a", 2.0, 2.0)])
    ev.on_group_done("lut", "blocks0001", [_row(f"{REFERENCE_CASE}#0001", 1.5, 1.0), _row("b", 3.0, 2.0)])
    assert table.meta["reference"]["group_ms"] == [1.0, 1.5] and reference_ms(table) == 1.25
    a, b = table.blocks["a"], table.blocks["b"]
    assert a["latency_ms"] == pytest.approx(2.5) and b["latency_ms"] == pytest.approx(2.5)
    assert (a["measured_ms"], b["measured_ms"]) == (2.0, 3.0)  # what each group measured, kept
    assert b["ci_low_ms"] == pytest.approx(2.0 * 0.99 * 1.25) and b["ci_high_ms"] == pytest.approx(2.0 * 1.01 * 1.25)
    assert len(saves) == 2 and ev.failed == []


def test_a_group_whose_reference_failed_keeps_its_blocks_own_medians():
    table = new_table("cpu", 1, "eager", "throughput", {})
    todo = {"a": _block(1), "b": _block(2)}
    inner_rows = []

    class Inner(TableEvents.__mro__[1]):  # run.Events
        def on_group_done(self, suite_name, group, rows):
            inner_rows.extend(rows)

    ev = TableEvents(table, todo, lambda: None, Inner())
    ev.on_group_done("lut", "blocks0000", [_row(f"{REFERENCE_CASE}#0000", 1.0, 1.0), _row("a", 2.0, 2.0)])
    ev.on_group_done("lut", "blocks0001", [_row(f"{REFERENCE_CASE}#0001", float("nan"), status="failed"),
                                           _row("b", 3.0, float("nan"))])
    assert table.meta["reference"]["group_ms"] == [1.0]
    assert table.blocks["b"]["latency_ms"] == 3.0 and "ratio" not in table.blocks["b"]
    assert table.blocks["a"]["latency_ms"] == pytest.approx(2.0)
    assert [r["case"] for r in inner_rows] == ["a", "b"]  # the progress counts blocks, not references


def test_entries_of_an_older_table_are_left_as_measured_and_the_reference_is_a_median():
    table = new_table("cpu", 1, "eager", "throughput", {})
    table.blocks["old"] = {"latency_ms": 7.0, "ci_low_ms": 6.0, "ci_high_ms": 8.0}
    table.meta["reference"] = {"label": "r", "desc": {}, "group_ms": [2.0, 2.2, 5.0, "x", -1, float("nan")]}
    normalise(table)
    assert reference_ms(table) == 2.2 and table.blocks["old"]["latency_ms"] == 7.0


def test_a_build_stores_ratios_and_resume_keeps_the_reference(tmp_path):
    path = tmp_path / "t.json"
    r = runner.invoke(app, ["lut", "build", NET, "-o", str(path), *FAST])
    assert r.exit_code == 0, r.output
    data = json.loads(path.read_text())
    ref = data["reference"]
    groups = -(-len(data["blocks"]) // 8)
    assert len(ref["group_ms"]) == groups and ref["desc"] == reference_block().desc
    med = statistics.median(ref["group_ms"])
    for e in data["blocks"].values():
        assert e["latency_ms"] == pytest.approx(e["ratio"] * med) and e["measured_ms"] > 0
        assert e["ci_low_ms"] <= e["latency_ms"] <= e["ci_high_ms"]
    read_table(path)  # a valid table
    data["blocks"].pop(next(iter(data["blocks"])))
    path.write_text(json.dumps(data))
    r = runner.invoke(app, ["lut", "build", NET, "--resume", str(path), *FAST])
    assert r.exit_code == 0, r.output
    again = json.loads(path.read_text())["reference"]
    assert again["desc"] == ref["desc"] and again["group_ms"][:groups] == ref["group_ms"] and len(again["group_ms"]) == groups + 1


def test_a_table_with_a_garbled_reference_resumes_with_a_new_one(tmp_path):
    path = tmp_path / "t.json"
    assert runner.invoke(app, ["lut", "build", NET, "-o", str(path), *FAST]).exit_code == 0
    data = json.loads(path.read_text())
    data["blocks"].pop(next(iter(data["blocks"])))
    data["reference"] = "garbled"
    path.write_text(json.dumps(data))
    r = runner.invoke(app, ["lut", "build", NET, "--resume", str(path), *FAST])
    assert r.exit_code == 0, r.output
    assert len(json.loads(path.read_text())["reference"]["group_ms"]) == 1
