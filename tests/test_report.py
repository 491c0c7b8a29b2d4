"""`latbench report` on fixture results with planted effects: verdicts, paper mapping, predictors,
figures written and non-empty; plus one tiny end-to-end run -> report through the CLI."""

import json
import random
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from latbench.claims import ClaimModel
from latbench.report import analysis
from latbench.cli import app
from latbench.records import RESULT_COLUMNS, SAMPLE_COLUMNS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CEILINGS = {"peak_flops_per_s": 50e9, "bandwidth_bytes_per_s": 20e9}


def write_run(d: Path, suite: str, exp: str, cases: dict, scales=(1,), rounds=40, noise=0.01, seed=0,
              run_id=None, batches=(1,)) -> Path:
    """cases: name -> (latency ms at x1, mult_adds at x1, mac_bytes at x1); x2/x4 scale FLOPs by 4/16.
    A latency may be a dict batch -> ms when batches sweeps."""
    rng = random.Random(seed)
    run_id = run_id or f"{suite}{seed}"
    base = next(iter(cases))
    rows, samples = [], []
    for scale, batch in [(s, b) for s in scales for b in batches]:
        for name, (ms, mult_adds, mac) in cases.items():
            lat = (ms[batch] if isinstance(ms, dict) else ms) * scale ** 2
            s = [lat * (1 + rng.gauss(0, noise)) for _ in range(rounds)]
            samples += [dict(run_id=run_id, suite=suite, experiment=exp, case=name, scale=scale, device="cpu",
                             mode="eager", batch=batch, round=r, position=0, iters=1, latency_ms=v, threads=1)
                        for r, v in enumerate(s)]
            bound = max(2 * mult_adds * scale ** 2 / CEILINGS["peak_flops_per_s"],
                        mac * scale ** 2 / CEILINGS["bandwidth_bytes_per_s"]) * 1e3
            rows.append(dict(schema_version=1, run_id=run_id, suite=suite, experiment=exp, case=name, scale=scale,
                             device="cpu", mode="eager", batch=batch, threads=1, flops=2 * mult_adds * scale ** 2,
                             mult_adds=mult_adds * scale ** 2, mac_bytes=mac * scale ** 2, latency_ms=lat,
                             latency_ci_low_ms=lat * 0.99, latency_ci_high_ms=lat * 1.01, samples=rounds,
                             baseline_case=base, status="ok", roofline_bound_ms=bound, roofline_pct=100 * bound / lat,
                             arithmetic_intensity_flops_per_byte=2 * mult_adds / mac,
                             achieved_flops_per_s=2 * mult_adds * scale ** 2 / (lat / 1e3),
                             throttled=False, under_load=name == base))
    stem = d / f"{suite}-cpu-2026010{seed}T000000Z"
    pd.DataFrame(rows, columns=list(RESULT_COLUMNS)).to_csv(f"{stem}.csv", index=False)
    pd.DataFrame(samples, columns=list(SAMPLE_COLUMNS)).to_csv(f"{stem}-samples.csv", index=False)
    meta = {"run_id": run_id, "device": "cpu", "threads": 1, "platform_widths": "arm",
            "fingerprint": {"cpu_model": "Fake CPU", "torch": "2.x", "os": "Linux"},
            "roofline": {**CEILINGS, "device": "cpu"}}
    Path(f"{stem}.json").write_text(json.dumps(meta))
    return Path(f"{stem}.csv")


@pytest.fixture
def results(tmp_path):
    d = tmp_path / "results"
    d.mkdir()
    # G1 holds: 1:1 fastest, 1:12 40 % slower; MAC rises with the ratio, FLOPs drift a little.
    write_run(d, "g1", "G1", {"1:1": (10, 100e6, 10e6), "1:2": (11, 99e6, 11e6), "1:6": (13, 99.5e6, 14e6),
                              "1:12": (14, 95e6, 19e6)}, scales=(1, 2))
    # G2 no effect: g=8 as fast as g=1 (unclear).
    write_run(d, "g2", "G2", {"g=1": (10, 100e6, 10e6), "g=8": (10, 103e6, 20e6)}, noise=0.05)
    # G3 contradicted: 4 fragments faster than 1.
    write_run(d, "g3", "G3", {"1-fragment": (10, 100e6, 10e6), "4-fragment-series": (8, 100e6, 12e6),
                              "4-fragment-parallel": (8.5, 100e6, 13e6)})
    # G4 holds: removing ReLU + shortcut saves 20 % of the time.
    write_run(d, "g4", "G4", {"relu+shortcut": (10, 100e6, 30e6), "neither": (8, 100e6, 10e6)})
    return d


def by_case(results):
    return {(r.suite, r.claim.case): r for r in results}


def test_verdicts_follow_the_planted_effects(results):
    rs = analysis.load(sorted(results.glob("*.csv")))  # a glob with *-samples.csv in it is fine
    v = by_case(analysis.judge_claims(rs, analysis.suites(rs)))  # the claims of suites/g1.yaml ... g4.yaml
    assert set(v) == {("g1", "1:2"), ("g1", "1:6"), ("g1", "1:12"), ("g2", "g=8"), ("g3", "4-fragment-series"),
                      ("g3", "4-fragment-parallel"), ("g4", "neither")}
    for case in ("1:2", "1:6", "1:12"):
        assert v[("g1", case)].verdict == "holds"
        assert [(g["scale"], g["verdict"]) for g in v[("g1", case)].groups] == [(1, "holds"), (2, "holds")]
    assert v[("g2", "g=8")].verdict == "unclear"
    assert v[("g3", "4-fragment-series")].verdict == v[("g3", "4-fragment-parallel")].verdict == "fails"
    assert v[("g4", "neither")].verdict == "holds" and v[("g4", "neither")].claim.paper.startswith("about +20 %")
    [g4] = v[("g4", "neither")].groups
    assert g4["ratio"] == pytest.approx(0.8, abs=0.01) and g4["ratio_ci_low"] < 0.8 < g4["ratio_ci_high"]
    assert g4["rounds"] == 40
    effects = {(c.case, c.scale): c for c in analysis.case_effects(rs)}
    assert effects[("neither", 1)].ratio == g4["ratio"] and effects[("neither", 1)].share_slower == 0
    assert effects[("1:12", 1)].ratio == pytest.approx(1.4, abs=0.02) and effects[("1:12", 1)].share_slower == 1.0


def test_paper_speeds_are_mapped_by_case_and_scale(results):
    rs = analysis.load(results.glob("*.csv"))
    comps = {(c.experiment, c.case, c.scale): c for c in analysis.case_effects(rs)}
    # Table 1: 1:12 vs 1:1 at x2, ARM 15.1 / 21.7 images/s; GPU 392 / 723
    assert comps[("G1", "1:12", 2)].paper_speed["arm"] == pytest.approx(15.1 / 21.7)
    assert comps[("G1", "1:12", 2)].paper_speed["gpu"] == pytest.approx(392 / 723)
    # Table 4 names differ from ours: neither = relu=no;shortcut=no, c=32 is x1
    assert comps[("G4", "neither", 1)].paper_speed["arm"] == pytest.approx(66.3 / 56.7)


def test_pooled_rounds_of_two_runs(tmp_path):
    for seed in (1, 2):
        write_run(tmp_path, "g4", "G4", {"relu+shortcut": (10, 1e8, 3e7), "neither": (8, 1e8, 1e7)}, seed=seed)
    rs = analysis.load(tmp_path.glob("*.csv"))
    [c] = [c for c in analysis.case_effects(rs) if c.case == "neither"]
    assert c.n == 80


def test_mac_ranks_latency_within_fixed_flops_groups(results):
    from latbench.report import predictors

    rs = analysis.load(results.glob("*.csv"))
    t = predictors.rank_predictors(rs.rows, resamples=200)
    within = {r.predictor: r.corr for r in t.ranks if r.scope == predictors.WITHIN}
    assert set(within) == {"FLOPs", "MAC", "roofline time"}  # the fixture has no activations or parameters
    # G1 x1 and x2: MAC rises with latency (rho 1), FLOPs drift down (rho -0.8); G3: MAC -0.5, FLOPs constant (0)
    assert within["MAC"].spearman == pytest.approx(0.5) and within["FLOPs"].spearman == pytest.approx(-1.6 / 3)
    assert within["MAC"].groups == 3  # G2 and G4 have two cases each: too few to rank
    assert within["MAC"].diff == pytest.approx(0.5 + 1.6 / 3)
    assert all(r.scope == predictors.WITHIN for r in t.ranks)  # no networks suite, no across-networks scope


def test_report_cli_writes_markdown_and_nonempty_pngs(results, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["report", *map(str, results.glob("*.csv")), "--out", str(out),
                                 "--name", "reproduction.md"])
    assert r.exit_code == 0, r.output
    assert "g1" in r.stdout and "holds" in r.stdout and "wrote" in r.stderr
    text = (out / "reproduction.md").read_text()
    assert text.startswith("# ShuffleNet V2 guidelines G1-G4 on this hardware")
    for needle in ("## Verdicts", "**holds**", "**fails**", "**unclear**", "Spearman",
                   "paper ARM", "## G1: equal channel widths", "Fake CPU", "0.70", "Ma et al."):
        assert needle in text, needle
    figures = sorted((out / "figures").glob("*.png"))
    assert len(figures) == 3
    for f in figures:
        data = f.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
        assert f"](figures/{f.name})" in text


def test_report_cli_missing_file_exits_2(tmp_path):
    r = CliRunner().invoke(app, ["report", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no such results file" in " ".join(r.stderr.split())
    assert not (tmp_path / "o").exists()


SUITE = """\
suite: tiny
experiment: G4
description: a tiny G4 for tests
builder: g4_bottleneck
input: {height: 8, width: 8}
blocks: 1
batch: 1
scales: [1]
widths: paper
cases:
  - name: relu+shortcut
    params: {relu: true, shortcut: true}
    widths: {gpu: {c: 16}, arm: {c: 16}}
  - name: neither
    params: {relu: false, shortcut: false}
    widths: {gpu: {c: 16}, arm: {c: 16}}
"""


def test_run_with_profile_and_roofline_then_report(tmp_path, monkeypatch):
    """End to end: telemetry, roofline (fake probes) and profile columns land in the CSV; report reads it."""
    monkeypatch.setenv("LATBENCH_CACHE", str(tmp_path / "cache"))
    from latbench import roofline

    monkeypatch.setattr(roofline, "probe_gemm", lambda device, dtype: {"peak_flops_per_s": 1e10})
    monkeypatch.setattr(roofline, "probe_copy", lambda device: {"bandwidth_bytes_per_s": 1e10})
    suite = tmp_path / "tiny.yaml"
    suite.write_text(SUITE)
    res = tmp_path / "res"
    r = CliRunner().invoke(app, ["run", str(suite), "--quick", "--max-time", "0.05", "--profile",
                                 "--results-dir", str(res)])
    assert r.exit_code == 0, r.output
    [csv] = [p for p in res.glob("*.csv") if not p.name.endswith("-samples.csv")]
    df = pd.read_csv(csv)
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert (df["roofline_bound_ms"] > 0).all() and (df["roofline_pct"] > 0).all()
    assert df["op_count_per_forward"].tolist() == [7, 3]
    assert df["cpu_load_pct"].notna().all() and df["throttled"].notna().all()
    meta = json.loads(csv.with_suffix(".json").read_text())
    assert meta["roofline"]["peak_flops_per_s"] == 1e10 and "fingerprint" in meta
    r = CliRunner().invoke(app, ["report", *map(str, res.glob("*.csv")), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "rep" / "report.md").read_text().count("relu+shortcut") >= 1


MINE = """\
suite: mine
experiment: mine-exp
description: A suite of my own, not the paper's.
builder: conv
cases:
  - name: a
    widths: {arm: {c: 4}}
  - name: b
    widths: {arm: {c: 4}}
  - name: c
    widths: {arm: {c: 4}}
claims:
  - text: "b beats a"
    case: b
    than: a
    expect: faster
  - text: "c takes at least twice a's time"
    case: c
    than: a
    expect: at_least
    ratio: 2
  - text: "only on GPUs"
    case: c
    than: a
    expect: slower
    devices: [cuda]
"""


def test_report_of_suites_other_than_g1_g4(tmp_path, monkeypatch):
    """Regression: report on a non-G suite printed the G1-G4 title, an empty verdict table and empty panels."""
    from latbench.report import plots

    d = tmp_path / "results"
    d.mkdir()
    suite = tmp_path / "mine.yaml"
    suite.write_text(MINE)
    csv = write_run(d, "mine", "mine-exp", {"a": (10, 100e6, 10e6), "b": (8, 100e6, 10e6), "c": (13, 100e6, 10e6)},
                    scales=(1, 2), seed=1)
    meta = json.loads(csv.with_suffix(".json").read_text())
    csv.with_suffix(".json").write_text(json.dumps({**meta, "suite": {"name": "mine", "path": str(suite)}}))
    write_run(d, "nofile", "other-exp", {"x": (5, 50e6, 5e6), "y": (6, 50e6, 6e6)}, seed=2)
    saved = []
    real_save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: saved.append(fig) or real_save(fig, path))
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["report", *map(str, d.glob("*.csv")), "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = (out / "report.md").read_text()
    assert text.startswith("# Suites mine (mine-exp), nofile (other-exp) on this hardware")
    assert "ShuffleNet" not in text and "Ma et al." not in text and "paper ARM" not in text
    assert "b vs a: b beats a | > 1" not in text and "| b vs a: b beats a | < 1 | **holds** (x1: holds, x2: holds)" in text
    assert "| c vs a: c takes at least twice a's time | >= 2 | **fails** (x1: fails, x2: fails)" in text
    assert "only on GPUs" not in text  # a cuda-only claim is not judged on cpu
    assert "`nofile`: no claims in this suite" in text
    assert "A suite of my own, not the paper's." in text
    assert "no claims in this suite" in r.stdout and "b beats a" in r.stdout
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figures == ["report-cpu-fake-cpu-1-thread-eager-flops-latency.png",
                       "report-cpu-fake-cpu-1-thread-eager-roofline.png"]  # no paper figure, no '-s-' slug
    assert len(saved) == 2
    for fig in saved:  # every panel drawn holds data: no 'not in these results' placeholders
        assert fig.axes and all(ax.has_data() for ax in fig.axes)
    assert len(saved[0].axes) == 2  # one panel per experiment the results hold


def test_report_on_files_written_by_the_runner_judges_the_suites_claims(tmp_path):
    """Results files of the real schema (tests/resultfiles.py) of suites/ghost.yaml: its cpu claim is judged."""
    from resultfiles import write_run as write_real_run

    for seed in (1, 2):
        write_real_run(tmp_path, {"plain-1x1": 10.0, "ghost": 10.0}, seed=seed, suite="ghost", noise=0.01)
    rs = analysis.load(tmp_path.glob("*.csv"))
    [info] = analysis.suites(rs)
    assert info.name == "ghost" and info.source.endswith("ghost.yaml") and len(info.claims) == 2
    [res] = analysis.judge_claims(rs, [info])
    assert res.claim.expect == "at_most" and res.verdict == "holds"
    assert res.groups[0]["rounds"] == 60  # both runs' rounds pooled, paired by run and round


def test_sweep_points_are_judged_apart(tmp_path):
    """Regression: rows of a batch sweep were pooled into one effect per case and scale, pairing
    rounds of batch 1 with rounds of batch 8."""
    write_run(tmp_path, "mine", "mine-exp", {"a": ({1: 10, 8: 10}, 1e8, 1e7), "b": ({1: 8, 8: 12.5}, 1e8, 1e7)},
              batches=(1, 8))
    rs = analysis.load(tmp_path.glob("*.csv"))
    effects = {c.point["batch"]: c for c in analysis.case_effects(rs) if c.case == "b"}
    assert effects[1].ratio == pytest.approx(0.8, abs=0.01) and effects[8].ratio == pytest.approx(1.25, abs=0.02)
    assert effects[1].n == effects[8].n == 40 and effects[8].row["batch"] == 8
    info = analysis.SuiteInfo("mine", "mine-exp", "", (ClaimModel(text="b beats a", case="b", than="a",
                                                                   expect="faster"),), None)
    [res] = analysis.judge_claims(rs, [info])
    assert res.verdict == "mixed" and [(g["batch"], g["verdict"]) for g in res.groups] == [(1, "holds"), (8, "fails")]
    from latbench.report.markdown import group_text
    assert group_text(res.groups) == ["x1 b1", "x1 b8"]


def test_report_with_an_invalid_claim_in_the_suite_file_exits_2(tmp_path):
    d = tmp_path / "results"
    d.mkdir()
    suite = tmp_path / "mine.yaml"
    suite.write_text(MINE.replace("    ratio: 2\n", ""))  # at_least without its ratio
    csv = write_run(d, "mine", "mine-exp", {"a": (10, 1e8, 1e7), "b": (8, 1e8, 1e7), "c": (13, 1e8, 1e7)})
    meta = json.loads(csv.with_suffix(".json").read_text())
    csv.with_suffix(".json").write_text(json.dumps({**meta, "suite": {"name": "mine", "path": str(suite)}}))
    r = CliRunner().invoke(app, ["report", str(csv), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "claims[1] is not a valid claim" in " ".join(r.stderr.split()) and str(suite) in r.stderr.replace("\n", "")
