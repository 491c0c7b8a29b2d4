"""User modules: `builder: user` imports code only with --allow-import, says so without it, and then
builds, counts and times the module like any other case."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from latbench.cli import app
from latbench.cost import count
from latbench.errors import SuiteError
from latbench.suite import expand, load_suite

SUITE = """\
suite: mine
experiment: user-demo
builder: user
blocks: 1
cases:
  - name: tiny
    params:
      factory: "user_factory:tiny"
      kwargs: {c: 4, hidden: 8}
      input_shape: [4, 6, 6]
  - name: wider
    params:
      factory: "user_factory:tiny"
      kwargs: {c: 4, hidden: 16}
      input_shape: [4, 6, 6]
"""


@pytest.fixture
def suite_file(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text(SUITE)
    return p


def test_user_code_is_refused_without_opt_in(suite_file):
    with pytest.raises(SuiteError) as exc:
        load_suite(suite_file)
    text = str(exc.value)
    assert f"{suite_file}:8:" in text  # the factory line of the first case
    assert "--allow-import" in text and "user_factory:tiny" in text


def test_cli_without_opt_in_exits_2_and_names_the_flag(suite_file, tmp_path):
    r = CliRunner().invoke(app, ["run", str(suite_file), "--quick", "--results-dir", str(tmp_path / "res")])
    assert r.exit_code == 2
    assert "--allow-import" in r.output
    assert not (tmp_path / "res").exists()  # nothing ran


def test_with_opt_in_the_module_is_counted_and_timed(suite_file, tmp_path):
    r = CliRunner().invoke(app, ["run", str(suite_file), "--quick", "--allow-import", "--max-time", "0.05",
                                 "-q", "--results-dir", str(tmp_path / "res")])
    assert r.exit_code == 0, r.output
    import pandas as pd

    df = pd.read_csv(next((tmp_path / "res").glob("mine-cpu-*[0-9]Z.csv")))
    assert list(df["case"]) == ["tiny", "wider"]
    assert list(df["status"]) == ["ok", "ok"]
    assert list(df["mult_adds"]) == [36 * (9 * 4 * 8 + 8 * 4), 36 * (9 * 4 * 16 + 16 * 4)]


def test_user_module_flops_and_mac_by_hand():
    params = {"factory": "user_factory:tiny", "kwargs": {"c": 4, "hidden": 8}, "input_shape": [4, 6, 6]}
    cost = count("user", params, 1, 2, 1, 1)  # height/width come from input_shape, not the suite
    n = 2 * 36
    assert cost.mult_adds == n * (9 * 4 * 8 + 8 * 4)
    mac = (n * 4 + 8 * 4 * 9 + n * 8) + 2 * n * 8 + (n * 8 + 4 * 8 + n * 4)  # conv, ReLU, conv
    assert cost.mac_bytes == 4 * mac
    assert cost.params == 8 * 4 * 9 + 4 * 8


def test_module_that_cannot_run_on_meta_is_counted_on_cpu():
    params = {"factory": "user_factory:data_dependent", "kwargs": {"c": 4}, "input_shape": [3, 4]}
    cost = count("user", params, 1, 1, 1, 1)
    assert cost.mult_adds == 3 * 4 * 4


@pytest.mark.parametrize("factory,msg", [
    ("no_such_module_xyz:f", "cannot import 'no_such_module_xyz'"),
    ("user_factory:missing", "has no callable 'missing'"),
])
def test_bad_factory_is_a_located_error_after_opt_in(tmp_path, factory, msg):
    p = tmp_path / "bad.yaml"
    p.write_text(SUITE.replace("user_factory:tiny", factory, 1))
    with pytest.raises(SuiteError, match=msg) as exc:
        load_suite(p, allow_import=True)
    assert str(exc.value).startswith(f"{p}:8:")


def test_factory_path_must_look_like_module_colon_function(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(SUITE.replace("user_factory:tiny", "user_factory.tiny", 1))
    with pytest.raises(SuiteError, match="factory"):
        load_suite(p, allow_import=True)


def test_factory_returning_no_module_fails_clearly():
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        count("user", {"factory": "user_factory:not_a_module", "input_shape": [1]}, 1, 1, 1, 1)


def test_user_cases_need_paper_widths(tmp_path):
    p = tmp_path / "f.yaml"
    p.write_text(SUITE + "widths: flops\nflops_target: {arm: 1000}\n")
    suite = load_suite(p, allow_import=True)
    with pytest.raises(SuiteError, match="no widths to solve"):
        expand(suite, "arm", quick=True)


def test_suite_level_params_are_shared_by_cases(tmp_path):
    p = tmp_path / "shared.yaml"
    p.write_text(textwrap.dedent("""\
        experiment: shared
        builder: user
        blocks: 1
        params: {factory: "user_factory:tiny", input_shape: [4, 5, 5]}
        cases:
          - name: a
            params: {kwargs: {hidden: 4}}
          - name: b
            params: {kwargs: {hidden: 8}}
        """))
    specs = expand(load_suite(p, allow_import=True), "arm")
    assert [s.param_dict["kwargs"]["hidden"] for s in specs] == [4, 8]
    assert all(s.param_dict["factory"] == "user_factory:tiny" for s in specs)
