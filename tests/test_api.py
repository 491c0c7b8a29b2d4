"""latbench.measure: the Python API over the session/runner (fake backend: fast, real pipeline)."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch
from torch import nn

import latbench
from latbench.api import MeasureError
from latbench.records import RESULT_COLUMNS

FAST = dict(fake_backend=True, quick=True, max_time=0.05, min_time=0.01)


class TwoArgs(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(16, 16)

    def forward(self, x, y):
        return self.lin(x) + y


def test_import_latbench_does_not_import_torch():
    code = "import sys, latbench; assert 'torch' not in sys.modules and 'measure' in latbench.__all__"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_measure_dict_of_models_gives_the_results_columns_and_paired_ratios():
    small, big = nn.Linear(64, 64), nn.Sequential(nn.Linear(64, 256), nn.Linear(256, 64))
    small.train()
    threads = torch.get_num_threads()
    df = latbench.measure({"small": small, "big": big}, torch.randn(8, 64), **FAST)
    assert isinstance(df, pd.DataFrame) and list(df.columns) == list(RESULT_COLUMNS)
    assert list(df["case"]) == ["small", "big"] and set(df["status"]) == {"ok"}
    # counted as the CLI counts: one multiply-add = 2 FLOPs, for the whole batch
    assert list(df["flops"]) == [2 * 8 * 64 * 64, 2 * 8 * (64 * 256 + 256 * 64)]
    assert list(df["batch"]) == [8, 8] and list(df["dtype"]) == ["float32"] * 2
    assert df["baseline_case"].tolist() == ["small", "small"]
    assert df.loc[0, "ratio_to_baseline"] == pytest.approx(1.0)
    assert df.loc[1, "ratio_ci_low"] <= df.loc[1, "ratio_to_baseline"] <= df.loc[1, "ratio_ci_high"]
    assert df["samples"].min() >= 1 and df["schedule"].iloc[0] == "interleaved"
    assert df.attrs["run_id"] == df["run_id"].iloc[0] and "fingerprint" in df.attrs
    assert df.attrs["status"] == "complete" and "files" not in df.attrs
    samples = pd.DataFrame(df.attrs["samples"])
    assert set(samples["case"]) == {"small", "big"} and (samples["latency_ms"] > 0).all()
    # the caller's state comes back: training flags, torch's thread count
    assert small.training and torch.get_num_threads() == threads


def test_one_model_a_tuple_of_arguments_and_a_baseline():
    df = latbench.measure(TwoArgs(), (torch.randn(4, 16), torch.randn(4, 16)), **FAST)
    assert df["case"].tolist() == ["TwoArgs"] and df["status"].tolist() == ["ok"]
    assert df["params"].iloc[0] == 16 * 16 + 16  # the bound wrapper adds no parameters
    df2 = latbench.measure({"a": nn.Linear(8, 8), "b": nn.Linear(8, 8)},
                           {"a": torch.randn(2, 8), "b": torch.randn(3, 8)}, baseline="b", **FAST)
    assert df2["baseline_case"].tolist() == ["b", "b"] and df2["batch"].tolist() == [2, 3]


def test_a_model_that_fails_is_a_failed_row_not_an_exception():
    """Regression: a case that cannot be counted (cost None) crashed the runner (KeyError 'flops')."""
    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    df = latbench.measure({"ok": nn.Identity(), "broken": Broken()}, torch.randn(2), **FAST)
    row = df.set_index("case").loc["broken"]
    assert row["status"] == "failed" and "boom" in row["error"]
    assert df.set_index("case").loc["ok", "status"] == "ok"


@pytest.mark.parametrize("models, inputs, kwargs, match", [
    (lambda x: x, torch.randn(2), {}, "not a torch.nn.Module|models is a function"),
    ({}, torch.randn(2), {}, "empty dict"),
    ({"a": nn.Identity()}, 3.0, {}, "example input of 'a' is a float"),
    ({"a": nn.Identity()}, {"b": torch.randn(2)}, {}, "no input for"),
    ({"a": nn.Identity()}, torch.randn(2), {"baseline": "z"}, "baseline 'z'"),
    ({"a": nn.Identity()}, torch.randn(2), {"name": "a/b"}, "file name"),
    ({"a": nn.Identity()}, torch.randn(2), {"device": "tpu"}, "unknown device"),
])
def test_bad_arguments_are_latbench_errors(models, inputs, kwargs, match):
    with pytest.raises(latbench.api.LatbenchError, match=match) as info:
        latbench.measure(models, inputs, **{**FAST, **kwargs})
    assert "\n" not in str(info.value)


def test_results_dir_writes_files_that_compare_reads(tmp_path):
    from latbench.results import read_run

    models = {"a": nn.Linear(32, 32), "b": nn.Linear(32, 32)}
    df = latbench.measure(models, torch.randn(2, 32), results_dir=tmp_path, name="mine", **FAST)
    csvs = sorted(p for p in tmp_path.glob("mine-cpu-*.csv") if not p.name.endswith("-samples.csv"))
    assert len(csvs) == 1
    run = read_run(csvs[0])  # strict: complete, fingerprint, samples
    assert run.rows["case"].tolist() == ["a", "b"] and run.meta["run_id"] == df.attrs["run_id"]
    assert df.attrs["files"]["results"] == csvs[0].name


def test_measure_error_is_exported():
    assert issubclass(MeasureError, latbench.api.LatbenchError)


def test_the_private_object_builder_is_not_listed_for_suites():
    from latbench.models import list_builders

    assert "_object" not in list_builders() and "g2_group_conv" in list_builders()
