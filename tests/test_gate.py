"""gate: decisions from deltas, thresholds parsing and files, calibration from A/A noise."""

from __future__ import annotations

import math

import pytest
from resultfiles import write_run, write_side

from latbench.compare import Delta, compare, load_runs
from latbench.errors import LatbenchError
from latbench.gate import (Relaxations, Thresholds, calibrate, decide, parse_fraction, run_medians, suggest_thresholds,
                           thresholds_data)

KEY = {"suite": "syn", "experiment": "SYN", "case": "g=1", "scale": 1, "device": "cpu", "mode": "eager", "batch": 1}


def _d(status: str, note: str = "", case: str = "g=1", side: str = "") -> Delta:
    return Delta({**KEY, "case": case}, status, 0.1, note=note, failed_side=side)


def test_decide_fails_only_on_slower_or_candidate_failures():
    assert decide([_d("same"), _d("faster", case="b")]).passed
    missing = [_d("same"), _d("missing", "not in the candidate", "c")]
    assert not decide(missing).passed  # fail closed: a case not judged fails ...
    assert decide(missing, Relaxations(allow_missing=True)).passed  # ... unless relaxed, and the summary says so
    assert "relaxed: --allow-missing" in decide(missing, Relaxations(allow_missing=True)).summary()
    out = decide([_d("slower"), _d("faster", case="b")])
    assert not out.passed and out.exit_code == 1 and len(out.regressions) == 1 and len(out.improvements) == 1
    assert not decide([_d("failed", "failed in 1 candidate run(s): OOM", side="candidate")]).passed
    base_only = decide([_d("failed", "failed in every baseline run: nothing to compare with", side="baseline")])
    assert not base_only.passed and len(base_only.missing) == 1
    assert decide([_d("same", case="b"), _d("failed", "failed in every baseline run", side="baseline")],
                  Relaxations(allow_missing=True)).passed
    # issue 22: a gate that judged nothing fails whatever is relaxed (no case in common, all skipped, ...)
    assert not decide([_d("failed", "failed in every baseline run", side="baseline")],
                      Relaxations(allow_missing=True, inconclusive_pass=True)).passed
    assert "1 faster" in out.summary() and "FAILED" in out.summary()


def test_decide_takes_the_failed_side_from_the_delta_not_from_the_error_text():
    """A baseline error that mentions "candidate" is still the baseline's; a candidate error that does
    not is still the candidate's; a failure whose side is unknown fails closed."""
    from latbench.ab import judge_rows

    base = {**KEY, "latency_ms": 1.0}
    rows = [{**base, "case": "g=1@base", "status": "failed", "error": "ValueError: bad candidate shape"},
            {**base, "case": "g=1@head", "status": "ok"}]
    (d,) = judge_rows(rows, lambda _k: 0.1)
    assert d.status == "failed" and d.failed_side == "baseline"
    assert decide([d, _d("same", case="b")], Relaxations(allow_missing=True)).passed
    assert not decide([d, _d("same", case="b")]).passed  # fail closed without the flag
    relax = Relaxations(allow_missing=True)
    assert not decide([_d("failed", "failed in 1 run(s): bad shape", side="candidate")], relax).passed
    assert not decide([_d("failed", "failed: bad shape")], relax).passed  # side unknown: fail closed


@pytest.mark.parametrize("text, value", [("10%", 0.10), ("0.1", 0.10), ("10", 0.10), ("2.5%", 0.025), ("0", 0.0)])
def test_parse_fraction(text, value):
    assert parse_fraction(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["ten", "-5%", "", "nan"])
def test_parse_fraction_rejects(text):
    with pytest.raises(LatbenchError):
        parse_fraction(text)


def test_thresholds_per_case_and_default():
    data = {"default": "10%", "noise_floor": 0.07, "cases": [{**KEY, "threshold": 0.04}]}
    t = Thresholds.from_data(data, None, "t.yaml")
    assert t.for_case(KEY) == 0.04 and t.for_case({**KEY, "case": "g=2"}) == 0.10 and t.noise_floor == 0.07
    assert Thresholds.from_data(data, 0.2, "t.yaml").for_case({**KEY, "case": "x"}) == 0.2
    big = Thresholds.from_data({"cases": [{**KEY, "threshold": 0.5}], "noise_floor": 2.3}, None, "t.yaml")
    assert big.for_case(KEY) == 0.5 and big.noise_floor == 2.3  # files hold fractions, never percent
    for bad in (1.5, 0, -0.1):  # issue 22: absurd thresholds are refused, in files as on the command line
        with pytest.raises(LatbenchError, match="out of range"):
            Thresholds.from_data({"cases": [{**KEY, "threshold": bad}]}, None, "t.yaml")
    with pytest.raises(LatbenchError, match="out of range"):
        Thresholds.from_data({"default": 9.99, "cases": []}, None, "t.yaml")
    with pytest.raises(LatbenchError, match="lacks threshold"):
        Thresholds.from_data({"cases": [KEY]}, None, "t.yaml")
    with pytest.raises(LatbenchError, match="not a thresholds file"):
        Thresholds.from_data(["x"], None, "t.yaml")


def test_suggested_thresholds_follow_the_noise_and_never_go_below_the_pooled_sd():
    quiet = {("a",): ({"case": "a"}, [10.0, 10.1, 9.9, 10.0]), ("b",): ({"case": "b"}, [20.0, 20.0, 20.0, 20.0])}
    loud = {("a",): ({"case": "a"}, [10.0, 11.0, 9.0, 10.5]), ("b",): ({"case": "b"}, [20.0, 20.0, 20.0, 20.0])}
    sq, pq, fq = suggest_thresholds(quiet, runs_per_side=3)
    sl, pl, fl = suggest_thresholds(loud, runs_per_side=3)
    assert pl > pq and fl >= fq
    assert sl[0].threshold > sq[0].threshold >= 0.02
    assert sl[1].case_noise_pct == 0 and sl[1].noise_pct == pytest.approx(pl)  # pooled sd protects case b
    # threshold = exp(3 * sigma * sqrt(2/3)) - 1, rounded up to 0.5 %
    sigma = sl[0].noise_pct / 100
    assert sl[0].threshold == pytest.approx(math.ceil(200 * (math.exp(3 * sigma * math.sqrt(2 / 3)) - 1)) / 200)
    more, _, _ = suggest_thresholds(loud, runs_per_side=10)
    assert more[0].threshold < sl[0].threshold
    with pytest.raises(LatbenchError, match="two runs"):
        suggest_thresholds({("a",): ({"case": "a"}, [10.0])})


def test_calibrated_thresholds_round_trip_into_the_gate(tmp_path):
    runs = write_side(tmp_path / "aa", {"g=1": 10.0, "g=2": 12.0}, 4, seed=3, drift_sd=0.03)
    loaded = load_runs(runs, "A/A")
    med = {}
    for r in loaded:
        for _, row in r.rows.iterrows():
            key = {c: row[c] for c in KEY}
            med.setdefault(tuple(key.values()), (key, []))[1].append(float(row["latency_ms"]))
    sugg, pooled, floor = suggest_thresholds(med, 3)
    data = thresholds_data(sugg, pooled, floor, 3, 0.10, [str(p) for p in runs])
    thr = Thresholds.from_data(data, None, "mem")
    cmp = compare(loaded[:2], loaded[2:], thr.for_case)
    assert {d.threshold for d in cmp.deltas} == {s.threshold for s in sugg}
    assert not decide(cmp.deltas).regressions and {d.status for d in cmp.deltas} <= {"same", "inconclusive"}
    relaxed = decide(cmp.deltas, Relaxations(inconclusive_pass=True))  # passes, unless it judged nothing
    assert relaxed.passed == any(d.status == "same" for d in cmp.deltas)


def test_calibrate_pools_the_ok_run_medians_of_each_case(tmp_path):
    runs = [write_run(tmp_path, {"g=1": 10.0, "g=2": 12.0, "cg": 1.0}, seed=s, failed=("g=2",) if s == 2 else (),
                      skipped={"cg": "needs CUDA"}) for s in (1, 2, 3)]
    loaded = load_runs(runs, "A/A")
    med = run_medians(loaded)
    by_case = {key["case"]: vals for key, vals in med.values()}
    assert set(by_case) == {"g=1", "g=2"} and len(by_case["g=1"]) == 3 and len(by_case["g=2"]) == 2
    key = next(k for k, v in med.values() if k["case"] == "g=1")
    assert key["scale"] == 1 and key["suite"] == "syn" and isinstance(key["case"], str)
    cal = calibrate(loaded, runs_per_side=3)
    sugg, pooled, floor = suggest_thresholds(med, 3)
    assert cal.suggestions == sugg and cal.pooled_pct == pooled and cal.noise_floor == floor
    assert cal.data == thresholds_data(sugg, pooled, floor, 3, 0.10, [str(p) for p in runs])


def test_a_gate_with_nothing_to_judge_never_passes():
    """Fail closed: no deltas at all (nothing compared) is not a pass, whatever is relaxed."""
    for relax in (Relaxations(), Relaxations(allow_missing=True, inconclusive_pass=True)):
        outcome = decide([], relax)
        assert not outcome.passed and outcome.exit_code == 1


@pytest.mark.parametrize("statuses", [["skipped", "skipped"], ["missing"], ["inconclusive"],
                                      ["skipped", "missing", "inconclusive"]])
def test_nothing_judged_fails_whatever_the_relaxations(statuses):
    """Issue 22: every row skipped on both sides, no case in common (--allow-missing), every case
    inconclusive (--inconclusive pass): no case was judged, so the gate fails and says why."""
    deltas = [_d(s, case=f"c{i}") for i, s in enumerate(statuses)]
    out = decide(deltas, Relaxations(allow_missing=True, inconclusive_pass=True))
    assert not out.passed and out.exit_code == 1 and "nothing judged" in out.summary()
    assert any("judged no case" in r for r in out.reasons)
    assert decide(deltas + [_d("same", case="ok")], Relaxations(allow_missing=True, inconclusive_pass=True)).passed


def test_inconclusive_pass_never_relaxes_a_ci_wholly_above_one():
    slow = Delta(KEY, "inconclusive", 0.1, ratio=1.12, ci_low=1.02, ci_high=1.25, significant=True)
    unsure = Delta({**KEY, "case": "b"}, "inconclusive", 0.1, ratio=1.05, ci_low=0.97, ci_high=1.14)
    assert decide([unsure, _d("same", case="c")], Relaxations(inconclusive_pass=True)).passed
    out = decide([slow, _d("same", case="c")], Relaxations(inconclusive_pass=True))
    assert not out.passed and out.reasons[0].startswith("syn/g=1/x1")


@pytest.mark.parametrize("text", ["999%", "100%", "1.0", "-5%", "0%", "0", "nan", "inf"])
def test_absurd_thresholds_are_refused(text):
    from latbench.gate import parse_threshold

    with pytest.raises(LatbenchError):
        parse_threshold(text, "--threshold")


def test_threshold_bounds():
    from latbench.gate import parse_threshold

    assert parse_threshold("99.5%") == pytest.approx(0.995) and parse_threshold("0.1%") == pytest.approx(0.001)
    assert parse_threshold("0%", "--noise-floor") == 0.0  # a noise floor may be zero
