"""CLI conventions (issue 17): -h, readable help, one output vocabulary, labelled columns,
unambiguous thresholds, `latbench list`. Runs use the fake backend."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from latbench.cli import app, resolve_suite
from latbench.records import RESULT_COLUMNS
from resultfiles import write_side

TINY = """\
suite: tiny
experiment: G2
builder: g2_group_conv
input: {height: 8, width: 8}
blocks: 1
scales: [1]
cases:
  - name: g=1
    params: {groups: 1}
    widths: {gpu: {c: 8}, arm: {c: 8}}
  - name: g=2
    params: {groups: 2}
    widths: {gpu: {c: 12}, arm: {c: 12}}
"""
COMMANDS = ["run", "list", "env", "report", "compare", "gate", "calibrate"]


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "80", "LATBENCH_FAKE_BACKEND": "1", **(env or {})})


@pytest.fixture
def suite(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY)
    return p


def run_args(suite: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["run", str(suite), "--quick", "--max-time", "0.05", "--no-roofline", "--results-dir",
            str(tmp_path / "r"), *extra]


@pytest.mark.parametrize("cmd", ["", *COMMANDS])
def test_dash_h_everywhere_and_no_python_types_in_help(cmd):
    r = invoke(*([cmd] if cmd else []), "-h")
    assert r.exit_code == 0, r.output
    assert "Usage:" in r.output
    for leak in ("<bool>", "<list[", "<int", "<float", "<str>", "<path>", "range", "[x>="):
        assert leak not in r.output, f"{cmd} -h shows {leak}"


def test_run_help_is_grouped_and_fits_80_columns():
    r = invoke("run", "-h")
    lines = r.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    for panel in ("What to run", "Measurement", "Hardware analysis", "Output", "Other"):
        assert f"─ {panel} " in r.output
    assert "--output" in r.output and "-o" in r.output and "--format" in r.output and "--verbose" in r.output
    assert len(lines) < 125  # was 179 with 12 fewer options (0.1.0)


@pytest.mark.parametrize("fmt", ["csv", "json", "markdown"])
def test_run_prints_its_rows_in_the_format(suite, tmp_path, fmt):
    r = invoke(*run_args(suite, tmp_path, "--format", fmt, "-q"))
    assert r.exit_code == 0, r.output
    out = r.stdout
    if fmt == "csv":
        from io import StringIO

        df = pd.read_csv(StringIO(out))
        assert list(df.columns) == list(RESULT_COLUMNS) and df["case"].tolist() == ["g=1", "g=2"]
    elif fmt == "json":
        doc = json.loads(out)
        assert doc[0]["suite"] == "tiny" and [row["case"] for row in doc[0]["rows"]] == ["g=1", "g=2"]
        assert doc[0]["results_csv"].endswith(".csv")
    else:
        assert out.startswith("### tiny") and "| case |" in out and "| g=2 |" in out
    assert len(list((tmp_path / "r").glob("tiny-cpu-*.json"))) == 1  # the files are written as before


def test_run_output_file_and_verbose(suite, tmp_path):
    out = tmp_path / "o" / "rows.csv"
    r = invoke(*run_args(suite, tmp_path, "--format", "csv", "-o", str(out), "-v"))
    assert r.exit_code == 0, r.output
    assert pd.read_csv(out)["case"].tolist() == ["g=1", "g=2"]
    assert "g=1" not in r.stdout  # went to the file
    assert re.search(r"tiny G2 x1: 2/2 row\(s\) ok, stopped by", r.stderr)


def test_run_table_labels_multiply_adds_as_such(suite, tmp_path):
    suite.write_text(TINY.replace("{height: 8, width: 8}", "{height: 32, width: 32}").replace("c: 8", "c: 64")
                     .replace("c: 12", "c: 96"))
    r = invoke(*run_args(suite, tmp_path, "--format", "table", "-o", str(tmp_path / "t.txt")))
    assert r.exit_code == 0, r.output
    text = (tmp_path / "t.txt").read_text()
    assert "M mult-adds" in text and "MFLOPs" not in text
    rows = pd.read_csv(next(p for p in (tmp_path / "r").glob("tiny-cpu-*.csv") if "samples" not in p.name))
    line = next(line for line in text.splitlines() if "g=2" in line)
    cells = [c.strip() for c in line.split("│")]  # whole cells: a warning's '±19.4%' holds '9.4' too
    assert f"{rows.loc[1, 'mult_adds'] / 1e6:,.1f}" in cells  # the column holds multiply-adds, not FLOPs
    assert f"{rows.loc[1, 'flops'] / 1e6:,.1f}" not in cells


def test_run_a_suite_by_name():
    assert resolve_suite(Path("g1")).resolve() == (Path(__file__).parent.parent / "suites" / "g1.yaml").resolve()
    r = invoke("run", "no_such_suite")
    assert r.exit_code == 2 and "no suite file or suite named 'no_such_suite'" in r.stderr


def test_list_shows_suites_and_builder_defaults():
    r = invoke("list")
    assert r.exit_code == 0
    assert re.search(r"^\s+g2\s+\S*g2\.yaml", r.stdout, re.M)
    assert "g2_group_conv" in r.stdout and "_object" not in r.stdout
    assert re.search(r"parameters: .*=\S", r.stdout)  # defaults are shown
    only = invoke("list", "builders")
    assert "g2_group_conv" in only.stdout and "suites (" not in only.stdout
    assert invoke("list", "nonsense").exit_code == 2


@pytest.fixture(scope="module")
def aa(tmp_path_factory):
    d = tmp_path_factory.mktemp("aa")
    base = write_side(d / "base", {"g=1": 4.0, "g=2": 6.0}, 2, seed=1)
    head = write_side(d / "head", {"g=1": 4.0, "g=2": 6.0}, 2, seed=2)
    return base, head


@pytest.mark.parametrize("value, ok", [("10%", True), ("0.1", True), ("0.5", True), ("10", False), ("1", False)])
def test_threshold_is_a_percent_or_a_fraction_never_a_bare_number_ge_1(aa, value, ok):
    base, head = aa
    args = ["gate", *sum((["-b", str(p)] for p in base), []), *sum((["-c", str(p)] for p in head), []),
            "--threshold", value, "--format", "json"]
    r = invoke(*args)
    if ok:
        assert r.exit_code in (0, 1), r.output
    else:
        assert r.exit_code == 2
        line = r.stderr.strip()
        assert "\n" not in line and "--threshold" in line and "ambiguous" in line and f"{value}%" in line


def test_compare_output_file_and_calibrate_formats(aa, tmp_path):
    base, head = aa
    out = tmp_path / "cmp.json"
    r = invoke("compare", str(base[0]), str(head[0]), "--format", "json", "-o", str(out))
    assert r.exit_code == 0 and r.stdout == "" and json.loads(out.read_text())
    for fmt, probe in (("csv", "threshold"), ("markdown", "| ")):
        r = invoke("calibrate", *map(str, base + head), "--format", fmt)
        assert r.exit_code == 0, r.output
        assert probe in r.stdout
    r = invoke("calibrate", *map(str, base + head), "-o", str(tmp_path / "t.yaml"), "-q")
    assert r.exit_code == 0 and (tmp_path / "t.yaml").is_file()


def test_report_dash_o_and_the_deprecated_out_name(aa, tmp_path):
    base, _ = aa
    r = invoke("report", *map(str, base), "-o", str(tmp_path / "rep" / "r.md"))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "rep" / "r.md").is_file()
    r = invoke("report", *map(str, base), "--out", str(tmp_path / "old"), "--name", "x.md")
    assert r.exit_code == 0 and (tmp_path / "old" / "x.md").is_file() and "deprecated" in r.stderr


def test_run_json_is_strict_json_even_with_nan_in_claims():
    from latbench.report.terminal import jsonable

    doc = jsonable({"rows": [{"x": float("nan"), "y": 1.5}], "claims": [{"ci": (float("nan"), 2.0)}]})
    assert json.loads(json.dumps(doc, allow_nan=False)) == {"rows": [{"x": None, "y": 1.5}],
                                                             "claims": [{"ci": [None, 2.0]}]}
