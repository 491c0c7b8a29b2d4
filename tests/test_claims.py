"""Suite claims: validation with located errors, and verdicts from paired ratios."""

from __future__ import annotations

from pathlib import Path

import pytest

from latbench.claims import ClaimModel, check_claims, overall, verdict
from latbench.errors import SuiteError
from latbench.suite import load_suite


def claim(**kw):
    return ClaimModel(**{"text": "t", "case": "a", "than": "b", "expect": "faster", **kw})


@pytest.mark.parametrize("kw,lo,hi,want", [
    ({}, 0.8, 0.9, "holds"), ({}, 1.1, 1.2, "fails"), ({}, 0.9, 1.1, "unclear"),
    ({"expect": "slower"}, 1.05, 1.2, "holds"), ({"expect": "slower"}, 0.8, 0.95, "fails"),
    ({"expect": "at_most", "ratio": 1.1}, 1.0, 1.1, "holds"), ({"expect": "at_most", "ratio": 1.1}, 1.11, 1.3, "fails"),
    ({"expect": "at_most", "ratio": 1.1}, 1.05, 1.15, "unclear"),
    ({"expect": "at_least", "ratio": 2}, 2.0, 2.5, "holds"), ({"expect": "at_least", "ratio": 2}, 1.0, 1.9, "fails"),
    ({}, float("nan"), float("nan"), "unclear"),
])
def test_verdict_needs_the_whole_interval(kw, lo, hi, want):
    assert verdict(claim(**kw), lo, hi) == want


def _samples(case, values, **group):
    g = {"scale": 1, "batch": 1, "dtype": "float32", "memory_format": "contiguous", "threads": 1, "mode": "eager",
         **group}
    return [{"case": case, "round": r, "latency_ms": v, **g} for r, v in enumerate(values)]


def test_check_claims_pairs_rounds_per_group_and_respects_devices():
    rows = [{"case": c, "status": "ok", "scale": 1, "batch": b, "dtype": "float32", "memory_format": "contiguous",
             "threads": 1, "mode": "eager"} for b in (1, 8) for c in ("a", "b")]
    samples = (_samples("a", [1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]) + _samples("b", [2.0, 4.0] * 4)
               + _samples("a", [3.0] * 8, batch=8) + _samples("b", [1.0] * 8, batch=8))
    out = check_claims([claim(), claim(text="gpu only", devices=["cuda"])], rows, samples, "cpu")
    assert [(v["batch"], v["ratio"], v["verdict"]) for v in out] == [(1, 0.5, "holds"), (8, 3.0, "fails")]


def test_claims_name_existing_cases(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("""\
experiment: c
builder: conv
cases:
  - name: dense
    widths: {arm: {c: 4}}
  - name: dw
    params: {group_channels: 1}
    widths: {arm: {c: 4}}
claims:
  - text: x
    case: dwx
    than: dense
    expect: faster
""")
    with pytest.raises(SuiteError, match="claims\\[0\\].case: no case named 'dwx'.*did you mean 'dw'") as exc:
        load_suite(p)
    assert f"{p}:11:" in str(exc.value)


def test_at_most_needs_a_ratio():
    with pytest.raises(ValueError, match="needs a ratio"):
        claim(expect="at_most")


def test_check_claims_pools_runs_pairing_by_run_and_round():
    """Two runs with the same round numbers: rounds pair within a run only, and both runs' rounds count."""
    rows = [{"case": c, "status": "ok", "scale": 1, "mode": "eager"} for c in ("a", "b")]
    samples = []
    for run, (a, b) in {"r1": (1.0, 2.0), "r2": (3.0, 6.0)}.items():  # ratio 0.5 within each run
        samples += [{"run_id": run, "case": "a", "round": r, "latency_ms": a, "scale": 1, "mode": "eager"}
                    for r in range(8)]
        samples += [{"run_id": run, "case": "b", "round": r, "latency_ms": b, "scale": 1, "mode": "eager"}
                    for r in range(8)]
    [v] = check_claims([claim()], rows, samples, "cpu")
    assert (v["ratio"], v["ratio_ci_low"], v["ratio_ci_high"], v["rounds"]) == (0.5, 0.5, 0.5, 16)


def test_check_claims_matches_groups_across_csv_types_and_missing_sample_fields():
    """Rows read back from CSV carry 1.0 or '1' where the run had 1; older samples lack dtype/threads."""
    rows = [{"case": c, "status": "ok", "scale": 1.0, "batch": "1", "dtype": "float32", "threads": 2, "mode": "eager"}
            for c in ("a", "b")]
    samples = [{"case": c, "round": r, "latency_ms": v, "scale": 1, "batch": 1, "mode": "eager", "dtype": None}
               for c, v in (("a", 1.0), ("b", 2.0)) for r in range(8)]
    [v] = check_claims([claim()], rows, samples, "cpu")
    assert v["verdict"] == "holds" and v["scale"] == 1.0 and v["threads"] == 2


@pytest.mark.parametrize("words,want", [(["holds", "holds"], "holds"), (["holds", "unclear"], "mixed"),
                                        (["fails"], "fails"), ([], "unclear")])
def test_overall_verdict(words, want):
    assert overall(words) == want


def test_g1_to_g4_state_the_papers_claims():
    """The guidelines' claims live in their suites, with the paper's numbers beside them."""
    expected = {"g1": {("1:2", "1:1"), ("1:6", "1:1"), ("1:12", "1:1")}, "g2": {("g=8", "g=1")},
                "g3": {("4-fragment-series", "1-fragment"), ("4-fragment-parallel", "1-fragment")},
                "g4": {("neither", "relu+shortcut")}}
    for name, pairs in expected.items():
        claims = load_suite(Path(__file__).resolve().parents[1] / "suites" / f"{name}.yaml").model.claims
        assert {(c.case, c.than) for c in claims} == pairs
        assert all(c.paper and c.expect == ("faster" if name == "g4" else "slower") for c in claims)
