"""`latbench run --model ...`: models named on the command line run as an in-memory suite through the
session (same checks, interleaved groups, results files); bad specs are one line with exit 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from latbench.cli import app
from latbench.errors import SuiteError
from latbench.records import RESULT_COLUMNS
from latbench.suite import expand
from latbench.suite.adhoc import ModelRequest, build_suite

MODULE = """\
from torch import nn

def make(width=4):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, 10))
"""


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A directory holding mymod.py (the factory's module), the current directory, fake timing."""
    (tmp_path / "mymod.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(app, ["run", *args, "--quick", "-q", "--no-roofline", "--results-dir", "res"])


def results(root):
    csv = [p for p in (root / "res").glob("*.csv") if not p.name.endswith("-samples.csv")]
    assert len(csv) == 1
    return csv[0], pd.read_csv(csv[0]), pd.read_csv(csv[0].with_name(csv[0].stem + "-samples.csv"))


def test_two_user_models_at_two_batches_are_one_interleaved_suite_run(here):
    r = invoke("--model", "mymod:make", "--model", "mymod:make", "--kwargs", "{}", "--kwargs", '{"width": 8}',
               "--input", "3x16x16", "--batch", "1,2")
    assert r.exit_code == 0, r.output
    csv, rows, samples = results(here)
    assert csv.name.startswith("models-cpu-") and list(rows.columns) == list(RESULT_COLUMNS)
    assert sorted(zip(rows["case"], rows["batch"])) == [("mymod:make", 1), ("mymod:make", 2),
                                                        ('mymod:make {"width":8}', 1), ('mymod:make {"width":8}', 2)]
    assert (rows["status"] == "ok").all() and (rows["baseline_case"] == "mymod:make").all()
    # interleaved: in one round of one batch, both models were timed
    first = samples[(samples["batch"] == 1) & (samples["round"] == samples["round"].min())]
    assert set(first["case"]) == {"mymod:make", 'mymod:make {"width":8}'}
    meta = json.loads(csv.with_suffix(".json").read_text())
    assert meta["status"] == "complete" and meta["suite"]["path"].startswith("--model mymod:make")


def test_a_builtin_classifier_with_default_settings_runs(here):
    """The old crash: a whole network under the default `blocks: 10`. --model builds blocks: 1."""
    r = invoke("--model", "squeezenet", "--input", "3x32x32")
    assert r.exit_code == 0, r.output
    _, rows, _ = results(here)
    assert rows["status"].tolist() == ["ok"] and rows["flops"][0] > 0


def test_dtype_channels_last_and_compile_become_the_sweep():
    req = ModelRequest(models=("shufflenet_v2",), input="3x64x64", kwargs=('{"width": 0.5}',), batches=(1, 8),
                       dtypes=("float32", "bfloat16"), channels_last=True, compile=True)
    specs = expand(build_suite(req), "arm")
    assert [(s.batch, s.dtype) for s in specs] == [(1, "float32"), (1, "bfloat16"), (8, "float32"), (8, "bfloat16")]
    assert {s.memory_format for s in specs} == {"channels_last"} and {s.mode for s in specs} == {"compile"}
    assert {s.blocks for s in specs} == {1} and specs[0].param_dict["resolution"] == 64


@pytest.mark.parametrize("args, says", [
    (["--model", "shufflenet_v3"], "did you mean 'shufflenet_v2'"),
    (["--model", "mymod:make"], "add --input CxHxW"),
    (["--model", "mymod:nothere", "--input", "3x8x8"], "no callable 'nothere'"),
    (["--model", "mymod:make", "--input", "3xq"], "not a shape"),
    (["--model", "mymod:make", "--input", "3x8x8", "--kwargs", '{"depth": 2}'], "does not accept --kwargs"),
    (["--model", "shufflenet_v2", "--kwargs", "[1]"], "not a JSON object"),
    (["--model", "shufflenet_v2", "--kwargs", "{bad"], "is not JSON"),
    (["--model", "shufflenet_v2", "--kwargs", '{"widht": 1}'], "did you mean 'width'"),
    (["--model", "shufflenet_v2", "--kwargs", '{"width": -1}'], "width"),
    (["--model", "shufflenet_v2", "--input", "3x64x32"], "3xRxR"),
    (["--model", "shufflenet_v2", "--dtype", "float33"], "did you mean 'float32'"),
    (["--model", "shufflenet_v2", "--batch", "1,x"], "not a batch size"),
    (["--model", "shufflenet_v2", "--model", "squeezenet", "--kwargs", "{}", "--kwargs", "{}", "--kwargs", "{}"],
     "3 --kwargs for 2 --model"),
    (["--input", "3x8x8"], "--input is an option of --model"),
    ([], "nothing to run"),
    (["--model", "nomod:x", "--input", "3x8x8"], "--model nomod:x: cannot import"),  # ':x:' is not turned into an emoji
])
def test_bad_model_specs_are_one_line_and_exit_2(here, args, says):
    r = invoke(*args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], r.output
    assert not (here / "res").exists()


def test_several_batches_for_a_suite_file_are_refused(here):
    r = invoke("missing.yaml", "--batch", "1,8")
    assert r.exit_code == 2 and "several batches need --model" in r.output


def test_naming_the_same_model_twice_is_refused():
    with pytest.raises(SuiteError, match="twice"):
        build_suite(ModelRequest(models=("squeezenet", "squeezenet")))


def test_report_reads_a_model_run(here):
    """`latbench report` over --model results (no suite file to read claims from): no claims, no error."""
    from latbench.report.markdown import write_report

    assert invoke("--model", "mymod:make", "--input", "3x8x8").exit_code == 0
    csv, _, _ = results(here)
    rep = write_report([csv], here / "rep")
    assert [s.name for s in rep.suites] == ["models"] and not rep.claims
    assert "mymod:make" in rep.markdown.read_text()
