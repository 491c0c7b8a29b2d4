"""Small CLI fixes (issue 20): --kwargs as its help says, a missing factory before a missing --input,
an unquoted glob after gate -b/-c, and "did you mean" for a suite name."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from latbench.cli import app
from latbench.errors import SuiteError
from latbench.suite.adhoc import ModelRequest, build_suite, from_options
from resultfiles import write_side

MODULE = """\
from torch import nn

def make(width=4):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, 10))
"""


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "LATBENCH_FAKE_BACKEND": "1", **(env or {})})


@pytest.fixture
def here(tmp_path, monkeypatch):
    (tmp_path / "mymod.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- --kwargs: "one for all, or one per --model (repeat --kwargs, or give a JSON list of objects)" ----------


def test_kwargs_help_says_what_is_accepted():
    r = invoke("run", "-h")
    text = " ".join(r.output.split())
    assert "one per --model" in text and "JSON list" in text


def _case_params(req: ModelRequest) -> list[dict]:
    return [build_suite(req).params_of(i) for i in range(len(req.models))]


def test_a_json_list_gives_one_kwargs_per_model(here):
    listed = ModelRequest(models=("mymod:make", "mymod:make"), input="3x8x8", kwargs=('[{}, {"width": 8}]',))
    repeated = ModelRequest(models=("mymod:make", "mymod:make"), input="3x8x8", kwargs=("{}", '{"width": 8}'))
    assert [p["kwargs"] for p in _case_params(listed)] == [{}, {"width": 8}]
    assert _case_params(listed) == _case_params(repeated)
    single = ModelRequest(models=("mymod:make",), input="3x8x8", kwargs=('[{"width": 8}]',))
    assert [p["kwargs"] for p in _case_params(single)] == [{"width": 8}]


@pytest.mark.parametrize("kwargs, message", [
    (('[{"width": 8}]',), "a JSON list of 1 object(s) for 2 --model"),
    (('[{}, 3]',), "item 1 of the list is 3, not a JSON object"),
    (('[{}, {}]', "{}"), "a JSON list of --kwargs and another --kwargs"),
    (('"width"',), "is a str, not a JSON object"),
])
def test_bad_kwargs_lists_are_one_located_error(here, kwargs, message):
    with pytest.raises(SuiteError) as exc:
        build_suite(ModelRequest(models=("mymod:make", "mymod:make"), input="3x8x8", kwargs=kwargs))
    assert message in str(exc.value) and exc.value.where == "--kwargs"


def test_a_json_list_of_kwargs_runs_end_to_end(here):
    r = invoke("run", "--model", "mymod:make", "--model", "mymod:make", "--kwargs", '[{}, {"width": 8}]',
               "--input", "3x16x16", "--quick", "-q", "--no-roofline", "--results-dir", "res")
    assert r.exit_code == 0, r.output
    csv = next(p for p in (here / "res").glob("*.csv") if not p.name.endswith("-samples.csv"))
    assert sorted(pd.read_csv(csv)["case"].unique()) == ["mymod:make", 'mymod:make {"width":8}']


def test_model_options_without_model_are_refused():
    with pytest.raises(SuiteError, match="--kwargs is an option of --model"):
        from_options(None, kwargs=["{}"])
    assert from_options(None, batch="8") == (None, 8)


# --- a missing factory is the first thing reported ------------------------------------------------------


@pytest.mark.parametrize("spec, message", [("mymod:nofactory", "has no callable 'nofactory'"),
                                           ("no_such_module_xyz:make", "cannot import 'no_such_module_xyz'")])
def test_a_missing_factory_is_reported_before_a_missing_input(here, spec, message):
    r = invoke("run", "--model", spec, "--results-dir", "res")
    assert r.exit_code == 2
    assert message in r.stderr and "--input" not in r.stderr.split(";")[0], r.stderr
    assert r.stderr.count("\n") == 1 and not (here / "res").exists()


def test_an_existing_factory_without_input_still_asks_for_it(here):
    r = invoke("run", "--model", "mymod:make", "--results-dir", "res")
    assert r.exit_code == 2 and "input shape is needed" in r.stderr and "--input" in r.stderr


# --- gate -b results/*.csv unquoted ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sides(tmp_path_factory):
    d = tmp_path_factory.mktemp("glob")
    return (write_side(d / "base", {"a": 4.0, "b": 6.0}, 3, seed=1),
            write_side(d / "head", {"a": 4.0, "b": 6.0}, 3, seed=2))


def test_an_unquoted_glob_after_gate_b_says_to_quote_it(sides):
    base, head = sides
    r = invoke("gate", "-b", *map(str, base), "-c", str(head[0].parent))  # what the shell makes of -b base/*.csv
    assert r.exit_code == 2
    line = r.stderr.strip()
    assert "\n" not in line and f"quote the glob: -b '{base[0].parent.as_posix()}/*.csv'" in line
    assert "unexpected extra" not in line


def test_an_unquoted_glob_after_gate_c_names_c(sides):
    base, head = sides
    r = invoke("gate", "-b", str(base[0].parent), "-c", *map(str, head))
    assert r.exit_code == 2 and f"quote the glob: -c '{head[0].parent.as_posix()}/*.csv'" in r.stderr


def test_gate_with_a_stray_word_is_still_a_usage_error(sides):
    base, head = sides
    r = invoke("gate", "-b", str(base[0].parent), "-c", str(head[0].parent), "stray")
    assert r.exit_code == 2 and "unexpected argument(s): stray" in r.stderr and "glob" not in r.stderr
    ok = invoke("gate", "-b", f"{base[0].parent}/*.csv", "-c", f"{head[0].parent}/*.csv", "--format", "json")
    assert ok.exit_code in (0, 1), ok.output  # quoted: judged


# --- suite names ----------------------------------------------------------------------------------------


def test_a_suite_name_typo_gets_did_you_mean():
    r = invoke("run", "g22")
    assert r.exit_code == 2
    assert "no suite file or suite named 'g22'" in r.stderr and "did you mean 'g2'?" in r.stderr
    far = invoke("run", "zzzzzz")
    assert far.exit_code == 2 and "did you mean" not in far.stderr
