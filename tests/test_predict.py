"""`latbench lut build`, `latbench predict` and latbench.predict(): tables, resume, planted entries,
foreign machines, bad input (fake timing backend: the real pipeline, numbers that are not latencies)."""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch
from typer.testing import CliRunner

import latbench
from latbench.cli import app
from latbench.predict.model import calibrate, conformal_halfwidth, fit_table
from latbench.predict.table import TABLE_FORMAT, TABLE_VERSION, read_table
from predict_factory import residual

runner = CliRunner()
NET = "predict_factory:residual"
WIDE = "predict_factory:wider"
FAST = ["--input", "3x16x16", "--max-time", "0.02", "-q"]


@pytest.fixture(autouse=True)
def _fake(monkeypatch):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")


def build(*args):
    return runner.invoke(app, ["lut", "build", *args])


def predict_json(table, *nets, extra=()):
    r = runner.invoke(app, ["predict", *nets, "--table", str(table), "--input", "3x16x16", "--format", "json", *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.fixture(scope="module", autouse=True)
def _fake_backend():
    """This module times with the fake backend, and gives the variable back: a leaked
    LATBENCH_FAKE_BACKEND made later modules' runs one-process (CI, 2026-12-05)."""
    import os

    old = os.environ.get("LATBENCH_FAKE_BACKEND")
    os.environ["LATBENCH_FAKE_BACKEND"] = "1"
    yield
    if old is None:
        del os.environ["LATBENCH_FAKE_BACKEND"]
    else:
        os.environ["LATBENCH_FAKE_BACKEND"] = old


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lut") / "t.json"
    r = runner.invoke(app, ["lut", "build", NET, WIDE, "-o", str(path), "--calibrate", *FAST])
    assert r.exit_code == 0, r.output
    return path


def _rewrite(src, dst, change):
    data = json.loads(src.read_text())
    change(data)
    dst.write_text(json.dumps(data))
    return dst


def test_a_build_writes_a_versioned_table_with_every_block_measured_and_calibrated(table_file):
    data = json.loads(table_file.read_text())
    assert data["format"] == TABLE_FORMAT and data["version"] == TABLE_VERSION
    assert data["device"] == "cpu" and data["threads"] == 1 and "cpu_model" in data["fingerprint"]
    # residual: 6 distinct blocks (the two 1x1 convs are one); wider: 6 more at its width, the add and pool too
    assert len(data["blocks"]) == 12
    for e in data["blocks"].values():
        assert e["latency_ms"] > 0 and e["ci_low_ms"] <= e["latency_ms"] <= e["ci_high_ms"] and e["desc"]["ops"]
    cal = data["calibration"]
    assert cal["n"] == 2 and cal["factor"] > 0 and set(cal["networks"]) == {NET, WIDE}
    assert read_table(table_file).blocks.keys() == data["blocks"].keys()


def test_resume_measures_only_the_blocks_the_table_lacks(table_file, tmp_path):
    lacking = _rewrite(table_file, tmp_path / "t.json",
                       lambda d: d["blocks"].pop(sorted(d["blocks"], key=lambda k: d["blocks"][k]["label"])[0]))
    before = json.loads(lacking.read_text())["blocks"]
    r = runner.invoke(app, ["lut", "build", NET, WIDE, "--resume", str(lacking), "--input", "3x16x16",
                            "--max-time", "0.02"])
    assert r.exit_code == 0, r.output
    assert "1 block(s) to measure (11 in the table already)" in r.output.replace("\n", " ")
    after = json.loads(lacking.read_text())["blocks"]
    # the others' measurements untouched; their latency is their ratio to the reference times its median over
    # all groups, the resumed one's too (predict/measure.py)
    scaled = ("latency_ms", "ci_low_ms", "ci_high_ms")
    assert len(after) == 12 and all({f: x for f, x in after[k].items() if f not in scaled}
                                    == {f: x for f, x in v.items() if f not in scaled} for k, v in before.items())
    ref = statistics.median(json.loads(lacking.read_text())["reference"]["group_ms"])
    assert all(e["latency_ms"] == pytest.approx(e["ratio"] * ref) for e in after.values())
    r = runner.invoke(app, ["lut", "build", NET, "--resume", str(lacking), "--input", "3x16x16"])
    assert r.exit_code == 0 and "0 block(s) to measure" in r.output


def test_a_large_table_is_no_run_file_and_can_be_resumed(table_file, tmp_path):
    """A table over the 64 KB the file policy reads of a file to tell a run's metadata must not look like one
    (no "run_id", "files" or "schema_version" keys), or resuming it would be refused."""
    def pad(d):
        first = next(iter(d["blocks"].values()))
        d["blocks"].update({f"pad{i:04d}": dict(first, desc={"ops": [], "inputs": []}) for i in range(200)})
    big = _rewrite(table_file, tmp_path / "big.json", pad)
    assert big.stat().st_size > 1 << 16
    r = runner.invoke(app, ["lut", "build", NET, "--resume", str(big), "--input", "3x16x16", "--max-time", "0.02"])
    assert r.exit_code == 0, r.output
    text = big.read_text()
    assert '"run_id"' not in text and '"files"' not in text and '"schema_version"' not in text


@pytest.mark.parametrize("calibrated", [True, False])
def test_a_planted_wrong_entry_moves_the_prediction_by_exactly_the_planted_amount(table_file, tmp_path, calibrated):
    base = _rewrite(table_file, tmp_path / "base.json", lambda d: d.update(calibration=None) if not calibrated else None)
    p0 = predict_json(base, NET)[0]
    shared = next(b for b in p0["blocks"] if b["uses"] == 2)  # the 1x1 conv, used twice
    planted = _rewrite(base, tmp_path / "planted.json",
                       lambda d: d["blocks"][shared["key"]].update(latency_ms=d["blocks"][shared["key"]]["latency_ms"] + 5.0))
    p1 = predict_json(planted, NET)[0]
    assert p1["blocks_sum_ms"] - p0["blocks_sum_ms"] == pytest.approx(2 * 5.0)
    assert p1["latency_ms"] - p0["latency_ms"] == pytest.approx(2 * 5.0 * p0["factor"])
    assert p0["factor"] == (json.loads(table_file.read_text())["calibration"]["factor"] if calibrated else 1.0)
    assert p1["low_ms"] <= p1["latency_ms"] <= p1["high_ms"]


def test_a_table_from_another_machine_is_refused_unless_allowed(table_file, tmp_path):
    foreign = _rewrite(table_file, tmp_path / "foreign.json",
                       lambda d: d["fingerprint"].update(cpu_model="Some Other CPU 9000"))
    r = runner.invoke(app, ["predict", NET, "--table", str(foreign), "--input", "3x16x16"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "another machine" in r.output and "cpu_model" in r.output and "Some Other CPU 9000" in r.output
    assert "--allow-different-machine" in r.output and str(foreign) in r.output.replace("\n", "")
    r = runner.invoke(app, ["predict", NET, "--table", str(foreign), "--input", "3x16x16", "--allow-different-machine"])
    assert r.exit_code == 0 and "warning: the table holds for another machine" in r.output
    r = build(NET, "--resume", str(foreign), *FAST)  # nor is it added to
    assert r.exit_code == 2 and "another machine" in r.output
    with pytest.raises(latbench.errors.ResultsError, match="another machine"):
        latbench.predict(NET, 3, 16, 16, table=foreign)


def test_the_python_api_predicts_a_module_a_factory_and_the_cli_agrees(table_file):
    from_cli = predict_json(table_file, NET)[0]
    p = latbench.predict(NET, 3, 16, 16, table=table_file)
    assert p.latency_ms == pytest.approx(from_cli["latency_ms"]) and p.calibrated
    m = residual()
    q = latbench.predict(m, 3, 16, 16, table=table_file)
    assert q.latency_ms == pytest.approx(p.latency_ms) and m.training  # the module's flag is put back
    assert q.flops == from_cli["flops"] and all(b.how == "measured" for b in q.blocks)
    assert sum(b.uses for b in q.blocks) == 7 and q.low_ms < q.latency_ms < q.high_ms


def test_a_block_the_table_lacks_is_fitted_from_the_others(table_file, tmp_path):
    data = json.loads(table_file.read_text())
    conv = next(k for k, e in data["blocks"].items() if e["label"].startswith("conv3x3") and "12" in e["label"])
    lacking = _rewrite(table_file, tmp_path / "lacking.json", lambda d: d["blocks"].pop(conv))
    p = predict_json(lacking, WIDE)[0]
    fitted = [b for b in p["blocks"] if b["how"] == "fitted"]
    assert [b["key"] for b in fitted] == [conv] and p["fitted_share"] > 0
    fit = fit_table(read_table(lacking))
    f = fit.get("conv") or fit["all"]
    assert fitted[0]["latency_ms"] == pytest.approx(f(fitted[0]["flops"], fitted[0]["mac_bytes"]))
    assert any("fitted" in n for n in p["notes"])


def test_calibration_is_the_geometric_mean_with_a_conformal_interval():
    logs = [-0.3, -0.1, 0.0, 0.05, 0.1, 0.12, 0.13, -0.05, 0.02, 0.03]  # mean 0
    pairs = {f"n{i}": (10.0, 10.0 * math.exp(r + 0.5)) for i, r in enumerate(logs)}
    cal = calibrate(pairs)
    assert cal["factor"] == pytest.approx(math.exp(0.5)) and cal["n"] == 10  # geometric, not arithmetic, mean
    # ceil(11 * 0.9) = 10th smallest |residual| (9th: 0.13), each from the mean without it: 0.3 x 10 / 9
    assert cal["log_halfwidth"] == pytest.approx(0.3 * 10 / 9)
    assert conformal_halfwidth([0.1, 0.2, 0.3], 0.9) == math.inf  # 3 networks cannot give 90 %
    with pytest.raises(latbench.errors.LatbenchError, match="at least 2"):
        calibrate({"a": (1.0, 2.0)})


@pytest.mark.parametrize("args, where", [
    (["predict", "no_such_net", "--table", "{t}"], "NETWORK no_such_net"),
    (["predict", NET, "--table", "{missing}", "--input", "3x16x16"], "no such file"),
    (["predict", NET, "--table", "{notjson}", "--input", "3x16x16"], "not a readable latency table"),
    (["predict", NET, "--table", "{v99}", "--input", "3x16x16"], "version 99"),
    (["predict", NET, "--table", "{badentry}", "--input", "3x16x16"], "blocks."),
    (["predict", NET, "--table", "{badcal}", "--input", "3x16x16"], "per_block_ms >= 0"),
    (["predict", NET, "--table", "{t}"], "--input"),
    (["lut", "build", NET, "-o", "{t}", "--input", "3x16x16"], "already exists"),
    (["lut", "build", NET, "--resume", "{t}", "-o", "{other}", "--input", "3x16x16"], "two tables"),
    (["lut", "build", NET, "--calibrate", "-o", "{other}", "--input", "3x16x16"], "at least 2 networks"),
    (["lut", "build", "--help-me"], "No such option"),
])
def test_bad_input_is_exit_2_with_a_located_error(table_file, tmp_path, args, where):
    (tmp_path / "notjson.json").write_text("{not json")
    _rewrite(table_file, tmp_path / "v99.json", lambda d: d.update(version=99))
    _rewrite(table_file, tmp_path / "badentry.json",
             lambda d: d["blocks"][next(iter(d["blocks"]))].update(latency_ms=-1))
    _rewrite(table_file, tmp_path / "badcal.json", lambda d: d["calibration"].update(per_weight_mb_ms=-0.1))
    names = {"t": table_file, "missing": tmp_path / "missing.json", "notjson": tmp_path / "notjson.json",
             "badcal": tmp_path / "badcal.json",
             "v99": tmp_path / "v99.json", "badentry": tmp_path / "badentry.json", "other": tmp_path / "other.json"}
    r = runner.invoke(app, [a.format(**names) for a in args])
    assert r.exit_code == 2, r.output
    assert where in r.output.replace("\n", " ") and "Traceback" not in r.output
    assert not (tmp_path / "other.json").exists()  # refused before anything was measured or written


def test_predict_prints_the_breakdown_with_shares_flops_and_mac(table_file):
    r = runner.invoke(app, ["predict", NET, "--table", str(table_file), "--input", "3x16x16", "--top", "3"])
    assert r.exit_code == 0, r.output
    for text in ("predicted ms", "interval ms", "blocks by predicted time", "share", "MFLOPs", "MAC MB",
                 "... 3 more"):
        assert text in r.output
    p = predict_json(table_file, NET)[0]
    assert sum(b["share"] for b in p["blocks"]) == pytest.approx(1.0)
    assert sum(b["uses"] * b["flops"] for b in p["blocks"]) == p["flops"]
    from latbench.cost import count_call

    with torch.no_grad():
        assert p["flops"] == count_call(residual(), torch.randn(1, 3, 16, 16)).flops


def test_a_missing_block_is_fitted_by_its_own_kind_when_the_table_has_enough_of_it():
    from latbench.predict.blocks import Block
    from latbench.predict.model import MIN_FIT, predict_blocks
    from latbench.predict.table import new_table

    table = new_table("cpu", 1, "eager", "throughput", {})
    for i in range(MIN_FIT + 2):  # convs: 1 ms per GFLOP; copies: another law, which a fit over all would mix in
        f = (i + 1) * 1e9
        table.blocks[f"c{i}"] = {"kind": "conv", "label": "c", "flops": f, "mac_bytes": 0, "latency_ms": f / 1e9}
        table.blocks[f"k{i}"] = {"kind": "copy", "label": "k", "flops": f, "mac_bytes": 0, "latency_ms": (i + 1) ** 2}
    import latbench.predict.model as model

    block = Block([], {"ops": [], "inputs": []}, "conv", "new conv")
    orig = model._block_cost
    model._block_cost = lambda b: (int(3.5e9), 0, 0)
    try:
        p = predict_blocks("n", [("new", block)], table, calibrated=False)
    finally:
        model._block_cost = orig
    assert p.blocks[0].how == "fitted" and p.blocks[0].latency_ms == pytest.approx(3.5, rel=1e-6)


@pytest.mark.parametrize("cmd", [["lut"], ["lut", "build"], ["predict"]])
def test_dash_h_and_no_python_types_in_help(cmd):
    r = CliRunner().invoke(app, [*cmd, "-h"], env={"COLUMNS": "80"})
    assert r.exit_code == 0 and "Usage:" in r.output
    for leak in ("<bool>", "<list[", "<int", "<float", "<str>", "<path>", "range", "[x>="):
        assert leak not in r.output, f"{cmd} -h shows {leak}"


def test_audit_shows_the_prediction_beside_the_measured_latency(table_file, tmp_path):
    r = runner.invoke(app, ["audit", NET, "--input", "3x16x16", "--rounds", "1", "-o", str(tmp_path / "a"),
                            "--table", str(table_file), "-q"])
    assert r.exit_code == 0, r.output
    p = latbench.predict(NET, 3, 16, 16, table=table_file)
    assert f"predicted from blocks ({table_file}): {p.latency_ms:.3f} ms" in r.output.replace("\n", "")
    assert "against the measured" in r.output
    foreign = _rewrite(table_file, tmp_path / "f.json", lambda d: d["fingerprint"].update(cpu_model="X"))
    r = runner.invoke(app, ["audit", NET, "--input", "3x16x16", "-o", str(tmp_path / "b"), "--table", str(foreign)])
    assert r.exit_code == 2 and "another machine" in r.output and not (tmp_path / "b").exists()


def test_predict_warns_for_a_network_outside_the_calibration(table_file):
    inside = runner.invoke(app, ["predict", NET, "--table", str(table_file), "--input", "3x16x16"])
    assert inside.exit_code == 0 and "outside the calibration" not in inside.stderr, inside.output
    r = runner.invoke(app, ["predict", NET, "--table", str(table_file), "--input", "3x64x64"])  # 16x the pixels
    assert r.exit_code == 0, r.output
    assert f"warning: {NET}: outside the calibration: sum of blocks" in " ".join(r.stderr.split())
    assert "(outside calibration)" in r.stdout
    js = runner.invoke(app, ["predict", NET, "--table", str(table_file), "--input", "3x64x64", "--format", "json"])
    assert json.loads(js.stdout)[0]["outside_calibration"] is True
