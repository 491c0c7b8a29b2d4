"""benchmarks/overhead.py and benchmarks/ratio_stability.py: structure and arithmetic, tiny budgets.

No timing assertions: the machine is shared. The arithmetic is checked on planted numbers.
"""

import math
import os
import statistics
import textwrap

import pytest
import torch

from benchmarks import overhead, ratio_stability
from latbench.run import pipeline
from latbench.records import Cost


def finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_overhead_compare_runs_every_method_in_rotated_order_on_a_tiny_module():
    torch.manual_seed(0)
    model, x = torch.nn.Linear(4, 4).eval(), torch.randn(1, 4)
    res = overhead.compare(model, x, budget_s=0.01, reps=2, warmup_s=0.005, methods=overhead.METHODS)
    reps = res["repetitions"]
    assert [r["order"] for r in reps] == [list(overhead.METHODS), list(overhead.METHODS[1:] + overhead.METHODS[:1])]
    for rep in reps:
        for name in overhead.METHODS:
            r = rep["results"][name]
            assert r["median_s"] > 0 and r["samples"] >= 1 and r["calls_per_sample"] >= 1 and r["wall_s"] > 0
    s = res["summary"]
    assert set(s["methods"]) == set(overhead.METHODS)
    assert all(finite(m["mean_median_ms"]) and finite(m["cov_pct"]) for m in s["methods"].values())
    assert set(s["ratios"]) == {"latbench/hand_loop", "latbench/hand_block", "latbench/torch_benchmark"}
    assert all(len(r["per_rep"]) == 2 and finite(r["median"]) for r in s["ratios"].values())
    assert set(s["verdict"]) == {"overhead_ok", "overhead_vs_torch_ok", "spread_ok"}
    assert "| latbench/hand_loop |" in overhead.markdown("tiny", s)


def test_overhead_summary_arithmetic_on_planted_medians():
    meds = {"hand_loop": [1.0, 2.0, 3.0], "torch_benchmark": [2.0, 2.0, 2.0], "latbench": [1.01, 2.04, 2.97]}
    reps = [{"results": {k: {"median_s": v[i], "samples": 10, "calls_per_sample": 1, "wall_s": 1.0}
                         for k, v in meds.items()}} for i in range(3)]
    s = overhead.summarize_reps(reps, ("hand_loop", "torch_benchmark", "latbench"))
    assert s["methods"]["hand_loop"]["mean_median_ms"] == pytest.approx(2000.0)
    assert s["methods"]["hand_loop"]["cov_pct"] == pytest.approx(50.0)  # stdev 1 / mean 2
    assert s["methods"]["torch_benchmark"]["cov_pct"] == 0.0
    assert s["ratios"]["latbench/hand_loop"]["per_rep"] == pytest.approx([1.01, 1.02, 0.99])
    assert s["ratios"]["latbench/hand_loop"]["median"] == pytest.approx(1.01)
    assert s["verdict"] == {"overhead_ok": True, "overhead_vs_torch_ok": True, "spread_ok": False}


def test_overhead_rejects_a_method_list_without_latbench():
    with pytest.raises(ValueError, match="latbench"):
        overhead.compare(torch.nn.Identity(), torch.zeros(1), 0.01, 1, methods=("hand_loop",))


TINY_SUITE = textwrap.dedent("""\
    suite: tiny
    experiment: T
    builder: g2_group_conv
    input: {height: 4, width: 4}
    blocks: 1
    scales: [1, 2]
    cases:
      - name: g=1
        params: {groups: 1}
        widths: {arm: {c: 8}}
      - name: g=2
        params: {groups: 2}
        widths: {arm: {c: 8}}
""")


def test_ratio_stability_reports_every_case_and_schedule(tmp_path, monkeypatch):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_SUITE)
    monkeypatch.setattr(pipeline, "count_spec", lambda spec, dtype=None: Cost(1000, 1000, 10, 10))  # no FLOP counting
    assert [s.scale for s in ratio_stability.suite_specs(suite, 2)] == [2, 2]
    res = ratio_stability.stability([str(suite)], reps=2, budget_s=0.01)
    assert [(r["rep"], r["schedule"]) for r in res["runs"]] == [
        (0, "interleaved"), (0, "sequential"), (1, "sequential"), (1, "interleaved")]
    assert all(row["scale"] == 1 for run in res["runs"] for row in run["rows"])  # the first scale by default
    cases = {(c["case"], c["schedule"]): c for c in res["cases"]}
    assert set(cases) == {(c, s) for c in ("g=1", "g=2") for s in ratio_stability.SCHEDULES}
    for (case, _), c in cases.items():
        assert c["runs_ok"] == 2 and c["is_baseline"] == (case == "g=1")
        assert finite(c["mean_ratio"]) and finite(c["cov_pct"]) and finite(c["median_ci_halfwidth_pct"])
        assert 0 <= c["ci_covers_mean"] <= 2
    assert cases[("g=1", "interleaved")]["mean_ratio"] == 1.0  # the baseline against itself
    assert set(res["summary"]) == set(ratio_stability.SCHEDULES)
    assert res["summary"]["interleaved"]["worst_case"] == "T/g=2/x1"
    assert "| T/g=2/x1 |" in ratio_stability.markdown(res, 0.01)


def test_ratio_stability_case_arithmetic_on_planted_ratios():
    def run(schedule, ratio, lo, hi):
        rows = [{"experiment": "E", "case": "a", "scale": 1, "baseline_case": "a", "status": "ok", "latency_ms": 1.0,
                 "ratio_to_baseline": 1.0, "ratio_ci_low": 1.0, "ratio_ci_high": 1.0},
                {"experiment": "E", "case": "b", "scale": 1, "baseline_case": "a", "status": "ok", "latency_ms": 2.0,
                 "ratio_to_baseline": ratio, "ratio_ci_low": lo, "ratio_ci_high": hi}]
        return {"suite": "s", "schedule": schedule, "rows": rows}
    runs = [run("interleaved", 1.98, 1.96, 2.0), run("interleaved", 2.02, 2.01, 2.03),
            run("sequential", 1.5, 1.0, 3.0), run("sequential", 2.5, 2.0, 3.0)]
    cases = {(c["case"], c["schedule"]): c for c in ratio_stability.case_stats(runs)}
    inter, seq = cases[("b", "interleaved")], cases[("b", "sequential")]
    assert inter["mean_ratio"] == pytest.approx(2.0)
    assert inter["cov_pct"] == pytest.approx(100 * statistics.stdev([1.98, 2.02]) / 2.0)  # 1.41 %
    assert inter["ci_covers_mean"] == 1  # [1.96, 2.0] holds 2.0, [2.01, 2.03] does not
    assert inter["median_ci_halfwidth_pct"] == pytest.approx(100 * statistics.median([0.02 / 1.98, 0.01 / 2.02]))
    assert seq["cov_pct"] == pytest.approx(100 * statistics.stdev([1.5, 2.5]) / 2.0)
    summary = ratio_stability.goal_summary(list(cases.values()))
    assert summary["interleaved"]["goal_met"] is True and summary["sequential"]["goal_met"] is False


def test_ratio_stability_processes_mode_in_process_reports_both_methods(tmp_path, monkeypatch):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_SUITE)
    monkeypatch.setattr(pipeline, "count_spec", lambda spec, dtype=None: Cost(1000, 1000, 10, 10))
    res = ratio_stability.processes([str(suite)], reps=3, quick=True, max_time_s=0.02, spawn=False)
    assert [r["rep"] for r in res["runs"]] == [0, 1, 2]
    (case,) = res["cases"]  # the baseline's ratio to itself is not judged
    assert case["case"] == "T/g=2/x1" and case["runs"] == 3
    for m in ratio_stability.METHODS:
        assert 0 <= case[f"{m}_covered"] <= case[f"{m}_judged"] == 3 and finite(case[f"{m}_halfwidth_pct"])
    assert case["pooled"]["n_processes"] == 3 and case["pooled"]["interval"] == "processes-t"
    s = res["summary"]
    assert set(s) == {*ratio_stability.METHODS, ratio_stability.NEW, "cov", "wall_s"} and s["wall_s"][str(suite)] > 0
    text = ratio_stability.processes_markdown(res, "tiny")
    assert "| T/g=2/x1 | 3 |" in text and "order-ess" in text


def test_ratio_stability_coverage_arithmetic_on_planted_runs():
    def run(ratio_b, rounds=20):
        base = [1e-3] * rounds
        # a spread of per-round ratios around ratio_b: its order interval is about +-1 %
        b = [1e-3 * ratio_b * (1 + 0.01 * ((i % 5) - 2) / 2) for i in range(rounds)]
        case = {"status": "ok", "stop_reason": "converged", "rounds": list(range(rounds))}
        return {"suite": "s", "wall_s": 1.0, "cases": {
            "E/a/x1": {**case, "baseline": "E/a/x1", "samples_s": base},
            "E/b/x1": {**case, "baseline": "E/a/x1", "samples_s": b}}}
    runs = [run(2.0), run(2.002), run(2.2)]  # the third process is 10 % off
    (c,) = ratio_stability.method_stats(runs)
    assert c["mean_ratio"] == pytest.approx(statistics.fmean([2.0, 2.002, 2.2]))
    # run 0's interval holds mean(2.002, 2.2)? no; run 2's holds mean(2.0, 2.002)? no
    assert c["order_covered"] == 0 and c["order_judged"] == 3
    assert c["pooled"]["unstable"] is True
    s = ratio_stability.method_summary([c], runs)
    assert s["order"]["coverage"] == 0 and s["order"]["coverage_goal_met"] is False
    assert s["cov"]["unstable"] == ["E/b/x1"] and s["wall_s"] == {"s": 1.0}


@pytest.mark.slow
def test_ratio_stability_worker_runs_in_a_separate_process(tmp_path):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_SUITE)
    run = ratio_stability.spawn_worker(str(suite), quick=True, max_time_s=0.02, threads=1, seed=0, scale=None)
    assert run["pid"] != os.getpid() and run["wall_s"] > 0
    assert set(run["cases"]) == {"T/g=1/x1", "T/g=2/x1"}
    c = run["cases"]["T/g=2/x1"]
    assert c["status"] == "ok" and len(c["rounds"]) == len(c["samples_s"]) > 0 and c["baseline"] == "T/g=1/x1"


def test_ratio_stability_repeats_method_pools_sets_of_processes():
    def run(ratio_b, rounds=20):
        base = [1e-3] * rounds
        b = [1e-3 * ratio_b * (1 + 0.01 * ((i % 5) - 2) / 2) for i in range(rounds)]
        case = {"status": "ok", "stop_reason": "converged", "rounds": list(range(rounds))}
        return {"suite": "s", "wall_s": 1.0, "cases": {
            "E/a/x1": {**case, "baseline": "E/a/x1", "samples_s": base},
            "E/b/x1": {**case, "baseline": "E/a/x1", "samples_s": b}}}
    new = ratio_stability.NEW
    (steady,) = ratio_stability.method_stats([run(2.0), run(2.0), run(2.0), run(2.0)], repeats=2)
    assert steady[f"{new}_judged"] == 6 and steady[f"{new}_covered"] == 6 and steady[f"{new}_unstable"] == 0
    (moving,) = ratio_stability.method_stats([run(2.0), run(2.002), run(2.2), run(2.001)], repeats=2)
    # the 3 sets holding the 10 % outlier are unstable; the others' intervals miss the mean outside them
    assert moving[f"{new}_unstable"] == 3 and moving[f"{new}_judged"] == 6
    assert moving[f"{new}_covered"] < 6
    (short,) = ratio_stability.method_stats([run(2.0), run(2.0)], repeats=3)
    assert short[f"{new}_judged"] == 0  # fewer runs than a set: not judged
    s = ratio_stability.method_summary([moving], [])
    assert new in s and s[new]["coverage"] == moving[f"{new}_covered"] / 6
