"""Issue 24: claims with magnitudes (the paper's ratio, equivalence bands), drift-normalised (per-FLOP) ratios,
p-values and false-discovery control over a family of verdicts; synthetic rows and samples only."""

from __future__ import annotations

import json
import math
import random

import pandas as pd
import pytest

from latbench.claims import (ClaimModel, benjamini_hochberg, check_claims, control_fdr, fdr_summary, fdr_text,
                             join_words, verdict_text)
from latbench.claims import p_value_by_inversion
from latbench.stats import median_ci_dependent
from latbench.verdict import EQUIVALENT, FAILS, HOLDS, LARGER, SMALLER, UNCLEAR, judge_band, judge_magnitude

NAN = math.nan


def claim(**kw):
    return ClaimModel(**{"text": "t", "case": "a", "than": "b", "expect": "slower", **kw})


# ---- verdict.judge_magnitude / judge_band ------------------------------------------------------------

@pytest.mark.parametrize("lo, hi, relation, reference, want", [
    # slower claims (ratio above 1 is the claim; larger ratios are stronger), paper 1.44 +- 5 %
    (2.5, 2.8, ">", 1.44, LARGER), (1.40, 1.48, ">", 1.44, HOLDS), (1.05, 1.2, ">", 1.44, SMALLER),
    (1.513, 1.6, ">", 1.44, LARGER), (1.511, 1.6, ">", 1.44, HOLDS),  # the band's edge: 1.44 * 1.05 = 1.512
    (1.2, 1.37, ">", 1.44, SMALLER), (1.2, 1.372, ">", 1.44, HOLDS),   # 1.44 / 1.05 = 1.3714
    (0.9, 1.1, ">", 1.44, UNCLEAR), (0.8, 0.9, ">", 1.44, FAILS), (2.5, 2.8, ">", None, HOLDS),
    (2.5, 2.8, ">", NAN, HOLDS), (NAN, NAN, ">", 1.44, UNCLEAR),
    # faster claims (smaller ratios are stronger), paper 0.85
    (0.6, 0.7, "<", 0.85, LARGER), (0.9, 0.95, "<", 0.85, SMALLER), (0.82, 0.88, "<", 0.85, HOLDS),
    (1.02, 1.1, "<", 0.85, FAILS),
    # a paper ratio on the other side of the bound: any holding effect is larger than the paper's
    (1.02, 1.04, ">", 0.9, LARGER),
    # non-strict relations read their side the same way (at_least: above is stronger; at_most: below)
    (1.4, 1.5, ">=", 1.2, LARGER), (1.02, 1.05, ">=", 1.2, SMALLER), (0.6, 0.7, "<=", 0.85, LARGER),
    (0.93, 0.97, "<=", 0.85, SMALLER),
])
def test_judge_magnitude(lo, hi, relation, reference, want):
    assert judge_magnitude(lo, hi, relation, 1.0, reference, 0.05) == want


def test_judge_magnitude_without_tolerance_and_at_a_bound():
    assert judge_magnitude(1.45, 1.5, ">", 1.0, 1.44, 0.0) == LARGER
    assert judge_magnitude(1.0, 1.05, "<=", 1.1, 1.2, 0.0) == LARGER  # at_most 1.1, paper 1.2: stronger than it
    assert judge_magnitude(1.12, 1.3, "<=", 1.1, 1.2, 0.0) == FAILS


@pytest.mark.parametrize("lo, hi, want", [
    (0.97, 1.02, EQUIVALENT), (0.95, 1.05, EQUIVALENT), (0.96, 1.06, UNCLEAR), (0.9, 0.99, UNCLEAR),
    (1.06, 1.1, FAILS), (0.8, 0.9, FAILS), (NAN, NAN, UNCLEAR), (1.1, 1.0, UNCLEAR),
])
def test_judge_band(lo, hi, want):
    assert judge_band(lo, hi, 0.95, 1.05) == want


def test_judge_band_needs_a_band():
    assert judge_band(1.0, 1.0, 1.05, 0.95) == UNCLEAR and judge_band(1.0, 1.0, NAN, 1.05) == UNCLEAR


# ---- the claim model ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, match", [
    ({"expect": "equivalent"}, "needs a band"), ({"band": [0.9, 1.1]}, "needs a band"),
    ({"expect": "equivalent", "band": [1.1, 0.9]}, "0 < low <= high"),
    ({"expect": "equivalent", "band": [0.9, 1.1], "ratio": 1.0}, "takes no ratio"),
    ({"fixed_flops": False}, "needs why"), ({"paper_ratio": {"arm": -1.0}}, "positive"),
    ({"paper_ratio": {"arm": {1: 0.0}}}, "positive"), ({"paper_ratio": {"tpu": 1.0}}, "arm"),
])
def test_claim_model_refuses(kw, match):
    with pytest.raises(ValueError, match=match):
        claim(**kw)


def test_reference_reads_the_devices_platform_and_scale():
    c = claim(paper_ratio={"arm": {1: 1.44, 2: 1.36}, "gpu": 3.9})
    assert c.reference("cpu", 1) == 1.44 and c.reference("cpu", 2.0) == 1.36 and c.reference("cpu", "2") == 1.36
    assert c.reference("cpu", 4) is None and c.reference("cuda", 4) == 3.9 and claim().reference("cpu", 1) is None


# ---- p-values and Benjamini-Hochberg -----------------------------------------------------------------

def test_benjamini_hochberg_on_the_papers_example():
    """Benjamini & Hochberg (1995), Section 4: 15 p-values, q = 0.05: the four smallest are rejected."""
    p = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262, 0.5719, 0.6528,
         0.7590, 1.000]
    assert benjamini_hochberg(p) == [True] * 4 + [False] * 11
    shuffled = [p[i] for i in (14, 3, 0, 9, 2, 1, 13, 4, 5, 6, 7, 8, 10, 11, 12)]
    assert [x for x, r in zip(shuffled, benjamini_hochberg(shuffled)) if r] == [0.0095, 0.0001, 0.0019, 0.0004]


def test_benjamini_hochberg_steps_up_and_counts_nan():
    assert benjamini_hochberg([0.04, 0.04]) == [True, True]  # the second rank's threshold carries the first
    assert benjamini_hochberg([0.04, NAN]) == [False, False]  # nan counts in m: 0.04 > 0.05 / 2
    assert benjamini_hochberg([0.01, NAN]) == [True, False] and benjamini_hochberg([]) == []
    assert benjamini_hochberg([0.03]) == [True] and benjamini_hochberg([0.06]) == [False]


@pytest.mark.parametrize("seed", range(12))
def test_p_value_agrees_with_the_95_interval(seed):
    """p <= 0.05 exactly when the verdict's 95 % interval leaves the bound out, on autocorrelated series."""
    rng = random.Random(seed)
    x, prev = [], 0.0
    for _ in range(rng.choice([12, 30, 60])):
        prev = 0.6 * prev + rng.gauss(0, 0.02)
        x.append(1.0 + rng.choice([-0.01, 0.0, 0.01]) + prev)
    for bound in (0.97, 0.99, 1.0, 1.01, 1.03):
        lo, hi = median_ci_dependent(x)
        p = p_value_by_inversion(lambda conf: median_ci_dependent(x, conf), bound)
        assert (p <= 0.05) == (bound < lo or bound > hi), (seed, bound, p, lo, hi)
        assert 0 < p <= 1


def test_p_value_is_the_sign_test_for_independent_rounds():
    """Uncorrelated rounds (tau = 1): the inversion gives the exact two-sided sign test's p-value, to within
    the order statistics' steps: 9 of 10 below the bound, p = 2 * P(B <= 1) = 0.0215."""
    x = [0.90, 0.96, 0.91, 0.97, 0.92, 0.98, 0.93, 0.99, 0.94, 1.1]  # below / above the median in turn
    p = p_value_by_inversion(lambda conf: median_ci_dependent(x, conf), 1.0)
    assert p == pytest.approx(0.0215, abs=0.001)
    assert p_value_by_inversion(lambda conf: median_ci_dependent(x, conf), 1.0, floor=0.5) == 0.5
    assert p_value_by_inversion(lambda conf: (NAN, NAN), 1.0) == 1.0


# ---- check_claims: per FLOP, magnitudes, processes, FDR ---------------------------------------------------

def _rows(flops: dict[str, float], **group):
    g = {"scale": 1, "mode": "eager", **group}
    return [{"case": c, "status": "ok", "flops": f, **g} for c, f in flops.items()]


def _samples(ratios: list[float], base: float = 10.0, case: str = "a", than: str = "b", run: str = "r", process=0,
             **group):
    g = {"scale": 1, "mode": "eager", **group}
    out = []
    for i, r in enumerate(ratios):
        out.append({"case": case, "round": i, "latency_ms": base * r, "run_id": run, "process": process, **g})
        out.append({"case": than, "round": i, "latency_ms": base, "run_id": run, "process": process, **g})
    return out


def _noisy(centre: float, n: int = 40, spread: float = 0.004, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [centre * math.exp(rng.gauss(0, spread)) for _ in range(n)]


def test_a_fixed_flops_claim_is_judged_per_flop():
    """G1's 1:2 case: 5.5 % fewer FLOPs and 3 % faster, so slower per FLOP: it holds per FLOP, fails raw."""
    rows, samples = _rows({"a": 94.5, "b": 100.0}), _samples(_noisy(0.97))
    [v] = check_claims([claim(why="paper widths")], rows, samples, "cpu")
    assert v["judged_on"] == "per FLOP" and v["verdict"] == HOLDS and v["note"] == ""
    assert v["ratio"] == pytest.approx(0.97, abs=0.003) and v["flops_ratio"] == pytest.approx(0.945)
    assert v["ratio_per_flop"] == pytest.approx(v["ratio"] / 0.945)
    assert (v["per_flop_ci_low"], v["per_flop_ci_high"]) == pytest.approx((v["ratio_ci_low"] / 0.945,
                                                                           v["ratio_ci_high"] / 0.945))
    [raw] = check_claims([claim(fixed_flops=False, why="not about FLOPs")], rows, samples, "cpu")
    assert raw["judged_on"] == "raw" and raw["verdict"] == FAILS and raw["ratio_per_flop"] == v["ratio_per_flop"]
    [loud] = check_claims([claim()], rows, samples, "cpu")  # drift beyond 3 % and no why: said in a note
    assert loud["verdict"] == HOLDS and "-5.5%" in loud["note"] and "not at fixed FLOPs" in loud["note"]
    [unknown] = check_claims([claim()], _rows({"a": NAN, "b": 100.0}), samples, "cpu")
    assert unknown["judged_on"] == "raw" and unknown["verdict"] == FAILS and "not recorded" in unknown["note"]


def test_magnitude_against_the_papers_ratio_per_platform_and_scale():
    """G2 g=8: 2.65x slower here where the paper's ARM shows 1.44x (x1): holds, larger than the paper; the
    same data read against the paper's GPU (3.87x) is smaller; the paper's ratio is normalised per FLOP."""
    c = claim(paper_ratio={"arm": {1: 1.44}, "gpu": {1: 3.87}})
    rows, samples = _rows({"a": 100.0, "b": 100.0}), _samples(_noisy(2.65))
    [cpu] = check_claims([c], rows, samples, "cpu")
    [gpu] = check_claims([c], rows, samples, "cuda")
    assert (cpu["verdict"], cpu["size"], cpu["platform"], cpu["paper_ratio"]) == (HOLDS, "larger than the paper",
                                                                                  "arm", 1.44)
    assert (gpu["verdict"], gpu["size"], gpu["platform"]) == (HOLDS, "smaller than the paper", "gpu")
    assert verdict_text(cpu) == "holds, larger than the paper"
    [near] = check_claims([c], rows, _samples(_noisy(1.46)), "cpu")
    assert (near["verdict"], near["size"]) == (HOLDS, "")
    # per FLOP: the case has 10 % more FLOPs, so 1.58 raw is 1.436 per FLOP, the paper's 1.44 becomes 1.309
    [per] = check_claims([c], _rows({"a": 110.0, "b": 100.0}), _samples(_noisy(1.58)), "cpu")
    assert per["paper_ratio_judged"] == pytest.approx(1.44 / 1.1) and per["size"] == "larger than the paper"
    [scale2] = check_claims([c], _rows({"a": 1.0, "b": 1.0}, scale=2), _samples(_noisy(2.65), scale=2), "cpu")
    assert scale2["paper_ratio"] is None and scale2["size"] == ""  # no paper number at x2


def test_p_values_agree_with_the_verdicts_they_belong_to():
    """p <= 0.05 exactly where the per-comparison verdict is decisive: per FLOP (the bound scales with the
    FLOPs ratio), for bands (both ends must be excluded) and for few rounds (order statistics' floor)."""
    from latbench.verdict import decisive

    cases = [  # (claim, flops of a, ratios)
        (claim(why="w"), 94.5, _noisy(0.945)),     # raw ratios all below 1, per FLOP right on 1: unclear
        (claim(why="w"), 94.5, _noisy(0.97)),      # per FLOP 1.026: holds
        (claim(expect="equivalent", band=[0.95, 1.05]), 100.0, _noisy(1.05, spread=0.01)),  # straddles 1.05
        (claim(expect="equivalent", band=[0.95, 1.05]), 100.0, _noisy(1.0)),
        (claim(expect="equivalent", band=[0.95, 1.05]), 100.0, _noisy(1.2)),
        (claim(expect="faster"), 100.0, _noisy(1.0, spread=0.05)),
    ]
    for c, fa, ratios in cases:
        [v] = check_claims([c], _rows({"a": fa, "b": 100.0}), _samples(ratios), "cpu")
        assert (v["p_value"] <= 0.05) == decisive(v["verdict_unadjusted"]), (c.expect, v["ratio"], v["p_value"])
    [few] = check_claims([claim()], _rows({"a": 1.0, "b": 1.0}), _samples([1.2] * 8), "cpu")
    assert few["verdict"] == HOLDS and few["p_value"] == pytest.approx(2 * 0.5 ** 8)  # the sign test's least p


def test_equivalence_claims():
    c = claim(expect="equivalent", band=[0.95, 1.05])
    rows = _rows({"a": 100.0, "b": 100.0})
    assert check_claims([c], rows, _samples(_noisy(1.0)), "cpu")[0]["verdict"] == EQUIVALENT
    assert check_claims([c], rows, _samples(_noisy(1.2)), "cpu")[0]["verdict"] == FAILS
    assert check_claims([c], rows, _samples(_noisy(1.05, spread=0.02)), "cpu")[0]["verdict"] == UNCLEAR
    [v] = check_claims([c], rows, _samples(_noisy(1.0)), "cpu")
    assert v["p_value"] < 1e-6 and v["band"] == [0.95, 1.05]


def test_processes_are_pooled_so_their_disagreement_widens_the_interval():
    """Two runs whose ratios disagree (0.8 and 0.9, each tight): the rounds pooled as one process would say
    'faster' at a tight interval; pooled across the processes the interval holds their spread."""
    samples = _samples(_noisy(0.8, seed=1), run="r1") + _samples(_noisy(0.9, seed=2), run="r2")
    [v] = check_claims([claim(expect="faster")], _rows({"a": 1.0, "b": 1.0}), samples, "cpu")
    assert v["processes"] == 2 and v["interval"].startswith("processes") and v["rounds"] == 80
    assert v["ratio_ci_high"] - v["ratio_ci_low"] > 0.1 and v["verdict"] == UNCLEAR
    workers = _samples(_noisy(0.8, seed=1), process=0) + _samples(_noisy(0.9, seed=2), process=1)
    [w] = check_claims([claim(expect="faster")], _rows({"a": 1.0, "b": 1.0}), workers, "cpu")
    assert w["processes"] == 2 and w["ratio_ci_low"] == v["ratio_ci_low"]  # --repeats workers count alike


def _weak() -> list[float]:
    """Per-round ratios a sign test finds just below 1 at 95 %: 28 of 40 below, in random order (seed 1:
    no autocorrelation in the indicator, so p = 2 P(B <= 12) = 0.0166)."""
    rng = random.Random(1)
    below = [1] * 28 + [0] * 12
    rng.shuffle(below)
    return [0.99 - 0.005 * rng.random() if b else 1.01 + 0.005 * rng.random() for b in below]


def test_fdr_demotes_weak_verdicts_among_many_null_claims():
    """One weak effect (p just below 0.05) holds alone, but among 19 claims without an effect the
    false-discovery control makes it unclear; a strong effect survives. fdr_summary/fdr_text say so."""
    weak = _samples(_weak(), case="w")
    [alone] = check_claims([claim(case="w", expect="faster")], _rows({"w": 1.0, "b": 1.0}), weak, "cpu")
    assert alone["verdict"] == HOLDS and alone["p_value"] == pytest.approx(0.0166, abs=0.001)
    assert not alone["fdr_flipped"]
    claims = [claim(case="w", expect="faster"), claim(case="s", expect="faster")]
    samples = weak + _samples(_noisy(0.5), case="s")
    flops = {"w": 1.0, "s": 1.0, "b": 1.0}
    for i in range(18):
        samples += _samples(_noisy(1.0, seed=10 + i, spread=0.05), case=f"n{i}")
        claims.append(claim(case=f"n{i}", expect="faster"))
        flops[f"n{i}"] = 1.0
    vs = check_claims(claims, _rows(flops), samples, "cpu")
    by = {v["case"]: v for v in vs}
    assert by["w"]["verdict_unadjusted"] == HOLDS and by["w"]["verdict"] == UNCLEAR and by["w"]["fdr_flipped"]
    assert by["s"]["verdict"] == HOLDS and not by["s"]["fdr_flipped"]
    assert all(v["fdr_tests"] == 20 for v in vs)
    s = fdr_summary(vs)
    assert s["tests"] == 20 and s["decisive"] == s["decisive_unadjusted"] - 1 and s["flipped"] == [by["w"]]
    text = fdr_text(vs)
    assert "over 20 comparisons" in text and "1 would flip" in text and "w vs b x1 (holds" in text
    assert verdict_text(by["w"]) == "unclear (holds before FDR control)"
    # idempotent, and a smaller family (the weak claim alone) restores it
    assert control_fdr([by["w"]])[0]["verdict"] == HOLDS and control_fdr(vs)[0]["verdict"] == UNCLEAR


@pytest.mark.parametrize("word", [FAILS, EQUIVALENT, HOLDS])
def test_fdr_demotes_every_decisive_word(word):
    """A fails or equivalent verdict is a discovery too: at p = 0.02 among 19 null tests it is demoted."""
    rows = [{"p_value": 0.02, "verdict_unadjusted": word}] + [{"p_value": 0.9, "verdict_unadjusted": UNCLEAR}
                                                              for _ in range(19)]
    out = control_fdr(rows)
    assert out[0]["verdict"] == UNCLEAR and out[0]["fdr_flipped"]
    s = fdr_summary(out)
    assert (s["decisive_unadjusted"], s["decisive"], len(s["flipped"])) == (1, 0, 1)
    assert control_fdr(rows[:1])[0]["verdict"] == word


def test_fdr_never_promotes_and_keeps_fails():
    rows = [{"p_value": 0.001, "verdict_unadjusted": FAILS}, {"p_value": 0.001, "verdict_unadjusted": UNCLEAR},
            {"p_value": 0.9, "verdict_unadjusted": UNCLEAR}]
    out = control_fdr(rows)
    assert [v["verdict"] for v in out] == [FAILS, UNCLEAR, UNCLEAR] and not any(v["fdr_flipped"] for v in out)
    assert fdr_text([]) == "" and join_words(["x1: holds", "x2: holds"]) == "x1: holds, x2: holds"
    assert join_words(["x1: holds, larger than the paper", "x2: holds"]) == "x1: holds, larger than the paper; x2: holds"


# ---- the report: magnitudes, per FLOP and the FDR sentence ---------------------------------------------

SUITE = """\
suite: mag
experiment: mag-exp
builder: conv
cases:
  - name: base
    widths: {arm: {c: 4}}
  - name: lean
    widths: {arm: {c: 4}}
claims:
  - text: "lean is slower per FLOP"
    source: "a test"
    case: lean
    than: base
    expect: slower
    why: "planted FLOPs drift"
    paper_ratio: {arm: 1.05}
"""


def test_report_shows_per_flop_ratios_sizes_and_the_fdr_sentence(tmp_path):
    from typer.testing import CliRunner

    from latbench.cli import app
    from resultfiles import write_run

    suite = tmp_path / "mag.yaml"
    suite.write_text(SUITE)
    csv = write_run(tmp_path / "results", {"base": 10.0, "lean": 9.7}, seed=3, suite="mag", noise=0.003,
                    meta={"suite": {"name": "mag", "path": str(suite)}})
    rows = pd.read_csv(csv)
    rows.loc[rows["case"] == "lean", "flops"] = rows.loc[rows["case"] == "base", "flops"].iloc[0] * 0.9
    rows.to_csv(csv, index=False)
    r = CliRunner().invoke(app, ["report", str(csv), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "out" / "report.md").read_text()
    # 0.97 raw with 10 % fewer FLOPs: 1.078 per FLOP, below the paper's 1.05 / 0.9 = 1.167 (+-5 %): smaller
    assert "per FLOP 1.0" in text and "(FLOPs -10.0%, judged); paper 1.05x (1.17x per FLOP)" in text
    assert "(source: a test)" in text and "**holds** (x1: holds, smaller than the paper)" in text
    assert "False-discovery rate controlled over 1 comparisons" in text and "0 would flip" in text
    assert "p-value" in text and "False-discovery rate" in " ".join(r.stdout.split())
    meta = json.loads(csv.with_suffix(".json").read_text())
    assert meta["suite"]["path"] == str(suite)


def test_a_suite_claim_without_its_why_is_refused_at_its_line(tmp_path):
    from latbench.errors import SuiteError
    from latbench.suite import load_suite

    p = tmp_path / "c.yaml"
    p.write_text("experiment: c\nbuilder: conv\ncases:\n  - name: a\n    widths: {arm: {c: 4}}\n  - name: b\n"
                 "    widths: {arm: {c: 8}}\nclaims:\n  - text: x\n    case: a\n    than: b\n    expect: faster\n"
                 "    fixed_flops: false\n")
    with pytest.raises(SuiteError, match="fixed_flops: false needs why") as exc:
        load_suite(p)
    assert f"{p}:9:" in str(exc.value)
