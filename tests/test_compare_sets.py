"""Issue 21, items 4 and 5: runs of different settings are never pooled, a results directory of several
suites and runs is compared per suite and setting in time order, and a case's run noise is floored by the
noise pooled over the cases (two runs that happen to agree cannot make a false alarm)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from resultfiles import write_run, write_side
from typer.testing import CliRunner

from latbench.cli import app
from latbench.compare import compare, load_runs
from latbench.errors import ResultsError
from latbench.gate import decide

runner = CliRunner()
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
CASES = {"g=1": 10.0, "g=2": 12.0}


def _invoke(args):
    return runner.invoke(app, [str(a) for a in args])


def test_runs_of_different_settings_are_never_pooled_on_a_side(tmp_path):
    full = write_run(tmp_path, CASES, seed=1, meta={"quick": False})
    quick = write_run(tmp_path, CASES, seed=2, meta={"quick": True})
    other = write_run(tmp_path, CASES, seed=3, meta={"quick": False})
    with pytest.raises(ResultsError, match="different settings.*quick: False.*True"):
        compare(load_runs([other], "b"), load_runs([full, quick], "c"))
    for key, a, b in (("repeats", 1, 8), ("latency_semantics", "throughput", "single"), ("l2", "warm", "flushed")):
        x = write_run(tmp_path / key, CASES, seed=4, meta={key: a})
        y = write_run(tmp_path / key, CASES, seed=5, meta={key: b})
        with pytest.raises(ResultsError, match=key):
            compare(load_runs([other], "b"), load_runs([x, y], "c"))
    r = _invoke(["gate", "-b", other, "-c", full, "-c", quick])
    assert r.exit_code == 2 and "never pooled" in r.stderr


def test_the_gate_refuses_sides_measured_with_different_settings(tmp_path):
    base = write_side(tmp_path / "b", CASES, 2, seed=1, drift_sd=0.01, meta={"quick": True})
    head = write_side(tmp_path / "c", CASES, 2, seed=2, drift_sd=0.01, meta={"quick": False})
    cmp = compare(load_runs(base, "b"), load_runs(head, "c"))
    assert cmp.settings_differences == ["quick: baseline True, candidate False"]
    args = ["gate", *sum((["-b", p] for p in base), []), *sum((["-c", p] for p in head), [])]
    r = _invoke(args)
    assert r.exit_code == 2 and "different settings" in r.stderr
    assert _invoke(args + ["--allow-different-machine"]).exit_code in (0, 1)


def test_compare_results_glob_of_several_suites_and_runs(tmp_path):
    """README's quick start writes four suites; a clone's results/ may hold more runs: `compare results/*.csv`
    compares each suite and setting on its own, in time order, and lists what it cannot compare."""
    d = tmp_path / "results"
    for i in range(3):
        write_run(d, CASES, seed=10 + i, suite="g1", now=T0 + timedelta(minutes=10 * i), meta={"quick": True})
    write_run(d, CASES, seed=20, suite="g1", now=T0 + timedelta(minutes=5), meta={"quick": False})
    for i in range(2):
        write_run(d, {"a": 1.0, "b": 2.0}, seed=30 + i, suite="g2", now=T0 - timedelta(hours=1, minutes=i),
                  meta={"quick": True})
    files = sorted(d.glob("*"))  # what the shell makes of results/* (csv, samples, json)
    r = _invoke(["compare", *files, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    titles = [c["title"] for c in doc["comparisons"]]
    assert len(titles) == 2 and titles[0].startswith("g2 (") and titles[1].startswith("g1 (")
    g1 = doc["comparisons"][1]
    assert "quick" in g1["title"] and len(g1["baseline_files"]) == 1 and len(g1["candidate_files"]) == 2
    assert g1["baseline_files"][0].endswith("030405Z.csv")  # the first in time is the baseline
    assert len(doc["not_compared"]) == 1 and "one run" in doc["not_compared"][0] and "full" in doc["not_compared"][0]
    table = _invoke(["compare", *files])
    assert table.exit_code == 0 and "[1/2]" in table.stdout and "[2/2]" in table.stdout
    assert "nothing to compare it with" in table.stdout
    md = _invoke(["compare", *files, "--format", "markdown"])
    assert md.stdout.count("### latbench compare: ") == 2
    csv = _invoke(["compare", *files, "--format", "csv"])
    assert csv.exit_code == 0 and "comparison" in csv.stdout.splitlines()[0]


def test_compare_of_unrelated_single_runs_says_there_is_nothing_to_compare(tmp_path):
    a = write_run(tmp_path, CASES, seed=1, suite="g1")
    b = write_run(tmp_path, CASES, seed=2, suite="g2")
    r = _invoke(["compare", a, b])
    assert r.exit_code == 2 and "no two runs of one suite" in r.stderr


def test_two_agreeing_runs_do_not_make_a_false_alarm(tmp_path):
    """Issue 21's false alarm: 1 run vs 2 runs of unchanged code; the 2 runs agreed by luck on one case
    (its own run noise 0.3 %) while the runs differ by ~10 % in general. The case's noise is floored by
    the noise pooled over all cases, so the 17 % difference of the single run is not called 'slower'."""
    cases = {f"c{i}": 10.0 + i for i in range(8)}
    base = [write_run(tmp_path / "b", cases, seed=1, drift=1.17)]  # the one run that ran under load
    cand = [write_run(tmp_path / "c", {k: v * (1.10 if k != "c0" else 1.0) for k, v in cases.items()}, seed=2),
            write_run(tmp_path / "c", {k: v * (0.91 if k != "c0" else 1.003) for k, v in cases.items()}, seed=3)]
    cmp = compare(load_runs(base, "b"), load_runs(cand, "c"), 0.10)
    d = {x.key["case"]: x for x in cmp.deltas}["c0"]
    assert d.status != "faster" and d.status != "slower" and not decide(cmp.deltas).regressions
    assert "floored by the run noise pooled" in d.note and d.run_noise_pct > 5
    # without the floor (the case's own two runs alone) the same data was a confident verdict
    from latbench.stats import ratio_from_runs

    own = ratio_from_runs([x for x in [load_runs(base, "b")[0].rows.set_index("case").latency_ms["c0"]]],
                          [r.rows.set_index("case").latency_ms["c0"] for r in load_runs(cand, "c")])
    assert own[2] < 1 / 1.10 or own[1] > 1.10  # the case's own CI excluded a 10 % change


def test_the_gate_fails_on_nothing_judged_whatever_is_relaxed(tmp_path):
    """Issue 22: no case in common with --allow-missing, or every row skipped on both sides (the candidate
    2x slower), used to pass with exit 0."""
    base = write_side(tmp_path / "b", {"a": 10.0}, 2, seed=1, drift_sd=0.01)
    cand = write_side(tmp_path / "c", {"b": 10.0}, 2, seed=2, drift_sd=0.01)
    args = ["gate", *sum((["-b", p] for p in base), []), *sum((["-c", p] for p in cand), []), "--json"]
    r = _invoke(args + ["--allow-missing", "--inconclusive", "pass"])
    assert r.exit_code == 1 and "nothing judged" in json.loads(r.stdout)["gate"]["summary"]
    skip = {"a": "needs CUDA", "b": "needs CUDA"}
    base = write_side(tmp_path / "sb", {"a": 10.0, "b": 5.0}, 2, seed=3, skipped=skip)
    cand = write_side(tmp_path / "sc", {"a": 20.0, "b": 10.0}, 2, seed=4, skipped=skip)
    r = _invoke(["gate", *sum((["-b", p] for p in base), []), *sum((["-c", p] for p in cand), []), "--json",
                 "--allow-missing"])
    assert r.exit_code == 1 and json.loads(r.stdout)["gate"]["passed"] is False


@pytest.mark.parametrize("threshold", ["999%", "100%", "-5%", "0%"])
def test_absurd_thresholds_exit_2(tmp_path, threshold):
    base = write_side(tmp_path / "b", CASES, 2, seed=1)
    cand = write_side(tmp_path / "c", CASES, 2, seed=2)
    r = _invoke(["gate", *sum((["-b", p] for p in base), []), *sum((["-c", p] for p in cand), []),
                 "--threshold", threshold])
    assert r.exit_code == 2 and "out of range" in r.stderr and "Traceback" not in r.output


def test_the_floor_is_a_t_interval_on_the_pooled_degrees_of_freedom():
    import math

    from scipy import stats

    from latbench.stats import floor_run_interval

    lo, hi, floored = floor_run_interval(1.0, 0.999, 1.001, 2, 2, 0.05, 4)
    half = stats.t.ppf(0.975, 4) * 0.05 * math.sqrt(1 / 2 + 1 / 2)  # its own uncertainty: t on 4 df, not z
    assert floored and (lo, hi) == pytest.approx((math.exp(-half), math.exp(half)))
    assert floor_run_interval(1.0, 0.5, 2.0, 2, 2, 0.05, 4) == (0.5, 2.0, False)  # a wider own CI stays
    assert floor_run_interval(1.0, 0.99, 1.01, 2, 2, math.nan, 0) == (0.99, 1.01, False)  # nothing pooled
    lo, hi, _ = floor_run_interval(1.2, math.nan, math.nan, 1, 2, 0.05, 4)  # an undefined own CI gets the floor
    assert lo < 1.2 < hi and math.isfinite(lo)
