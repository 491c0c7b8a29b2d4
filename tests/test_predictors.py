"""Predictors of latency ranked with statistics (issue 24, item 4): stats.rank_correlation's grouped
bootstrap and paired difference, and the report's one predictor table (report.predictors)."""

import math

import numpy as np
import pytest

from latbench.stats import rank_correlation


def test_grouped_rank_correlation_averages_within_groups_and_resamples_whole_groups():
    y = [1, 2, 3, 4, 10, 20, 30, 40, 5, 6, 7, 8]
    g = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    same = rank_correlation(y, y, groups=g, resamples=300)
    assert same.spearman == 1.0 and (same.spearman_low, same.spearman_high) == (1.0, 1.0)  # a CI at 1
    assert same.kendall == 1.0 and same.groups == 3 and same.n == 12
    # x ranks group a right, b backwards, c right: the mean is 1/3, and resampling groups gives a wide CI
    x = [1, 2, 3, 4, 4, 3, 2, 1, 1, 2, 3, 4]
    mixed = rank_correlation(x, y, groups=g, resamples=500)
    assert mixed.spearman == pytest.approx(1 / 3)
    assert mixed.spearman_low == pytest.approx(-1.0) and mixed.spearman_high == pytest.approx(1.0)
    # pooled over all pairs instead, x would rank latency quite differently: the groups are what count
    assert rank_correlation(x, y, resamples=50).spearman != pytest.approx(1 / 3)
    flat = rank_correlation([7] * 12, y, groups=g, resamples=300)
    assert (flat.spearman, flat.spearman_low, flat.spearman_high, flat.kendall) == (0.0, 0.0, 0.0, 0.0)
    tiny = rank_correlation([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], groups=["a", "a", "b", "b", "b"], resamples=50)
    assert tiny.groups == 1 and tiny.n == 3  # a group of 2 pairs cannot rank and is left out


def test_paired_difference_uses_the_same_resamples():
    rng = np.random.default_rng(3)
    y = rng.normal(size=40)
    good, poor = y + rng.normal(scale=0.2, size=40), rng.normal(size=40)
    r = rank_correlation(good, y, against=poor, resamples=500)
    alone_good, alone_poor = rank_correlation(good, y, resamples=500), rank_correlation(poor, y, resamples=500)
    assert r.spearman == alone_good.spearman and r.spearman_low == alone_good.spearman_low  # same seed, same resamples
    assert r.diff == pytest.approx(alone_good.spearman - alone_poor.spearman)
    assert r.diff_low <= r.diff <= r.diff_high and r.diff_low > 0
    # paired: the difference's interval is narrower than the two intervals' widths added
    assert r.diff_high - r.diff_low < (alone_good.spearman_high - alone_good.spearman_low
                                       + alone_poor.spearman_high - alone_poor.spearman_low)
    self_diff = rank_correlation(good, y, against=good, resamples=200)
    assert (self_diff.diff, self_diff.diff_low, self_diff.diff_high) == (0.0, 0.0, 0.0)
    assert math.isnan(rank_correlation(good, y, resamples=50).diff)  # no `against`, no difference


# --- the report's predictor table -------------------------------------------------------------------

import pandas as pd  # noqa: E402

from latbench.report import predictors  # noqa: E402

LABEL = "cpu: Fake CPU, 1 thread(s)"


def rows(groups: int = 6, cases: int = 5, seed: int = 0, experiment: str = "G1") -> pd.DataFrame:
    """Fixed-FLOPs groups: latency random within each group; MAC = latency (a perfect predictor),
    FLOPs constant, activations = -latency, params noise."""
    rng = np.random.default_rng(seed)
    out = []
    for g in range(groups):
        for c in range(cases):
            lat = float(rng.uniform(1, 10)) * (g + 1)
            out.append(dict(status="ok", device_label=LABEL, mode="eager", suite="s", experiment=experiment, scale=g + 1,
                            case=f"c{c}", batch=1, run_id="r", latency_ms=lat, flops=1e9 * (g + 1), mac_bytes=lat,
                            activations=-lat, params=float(rng.normal()), roofline_bound_ms=np.nan))
    return pd.DataFrame(out)


def by_name(t, scope=predictors.WITHIN):
    return {r.predictor: r.corr for r in t.ranks if r.scope == scope}


def test_a_predictor_equal_to_latency_ranks_1_and_a_constant_one_0():
    t = predictors.rank_predictors(rows(), resamples=300)
    w = by_name(t)
    assert set(w) == {"FLOPs", "MAC", "activations", "parameters"}  # roofline time: no values in the rows
    one = pytest.approx(1.0, abs=1e-12)
    assert (w["MAC"].spearman, w["MAC"].spearman_low, w["MAC"].spearman_high) == (one, one, one)
    assert (w["MAC"].kendall, w["MAC"].kendall_low, w["MAC"].kendall_high) == (one, one, one)
    assert (w["FLOPs"].spearman, w["FLOPs"].spearman_low, w["FLOPs"].spearman_high) == (0.0, 0.0, 0.0)
    assert w["activations"].spearman == pytest.approx(-1.0)
    assert w["MAC"].diff == pytest.approx(1.0) and w["MAC"].groups == 6 and w["MAC"].n == 30
    for r in t.ranks:  # every interval holds its estimate
        c = r.corr
        tol = 1e-12  # a CI at 1 may round a hair below its estimate
        assert c.spearman_low - tol <= c.spearman <= c.spearman_high + tol
        assert c.kendall_low - tol <= c.kendall <= c.kendall_high + tol and c.diff_low - tol <= c.diff <= c.diff_high + tol
    cells = predictors.table_rows(t)
    assert cells[0][2] == "MAC" and cells[0][3] == "1.00 [1.00, 1.00]"  # best first
    text = "\n".join(predictors.sentences(t))
    assert "**MAC** ranks latency best" in text and "is resolved" in text


def test_the_held_out_check_uses_disjoint_halves_and_scores_only_the_second():
    d = rows(groups=7)
    t = predictors.rank_predictors(d, resamples=200)
    [h] = t.held_out
    assert not set(h.train) & set(h.test) and len(h.train) + len(h.test) == 7  # disjoint, all groups
    assert len(h.train) == 4 and len(h.test) == 3 and h.chosen == "MAC"
    assert h.corr.groups == 3 and h.corr.spearman == pytest.approx(1.0)
    # choose on the first half only: make params perfect there, useless on the second
    train = set(h.train)
    labels = d["suite"] + " " + d["experiment"] + " " + d["scale"].astype(str) + " 1"
    d["params"] = np.where(labels.isin(train), d["latency_ms"] * 2, 5.0)
    d["mac_bytes"] = np.where(labels.isin(train), 1.0, d["mac_bytes"])
    [h2] = predictors.rank_predictors(d, resamples=200).held_out
    assert (h2.train, h2.test) == (h.train, h.test)  # the split is deterministic
    assert h2.chosen == "parameters" and h2.train_rho == pytest.approx(1.0) and h2.corr.spearman == 0.0  # scored where it fails
    assert predictors.split(list("abcde")) == (("a", "c", "e"), ("b", "d"))


def test_networks_are_ranked_across_and_within_table8_complexity_groups():
    paper = predictors.paper_table8()
    paper = paper[paper["latbench_case"].notna() & paper["complexity_group"].astype(str).isin(predictors.NETWORK_GROUPS)]
    nets = list(dict.fromkeys(paper["latbench_case"])) + ["shufflenet_v2-2x-se"]  # the last: in no fixed-FLOPs group
    rng = np.random.default_rng(1)
    lat = {c: float(x) for c, x in zip(nets, rng.uniform(1, 30, size=len(nets)))}
    flops = {c: float(x) for c, x in zip(nets, rng.uniform(1, 30, size=len(nets)))}
    d = pd.DataFrame([dict(status="ok", device_label=LABEL, mode="eager", suite="networks", experiment="table8", scale=1,
                           case=c, batch=1, run_id=r, latency_ms=lat[c] * (1 + 0.01 * i), flops=flops[c],
                           mac_bytes=lat[c], activations=5.0, params=flops[c]) for c in nets
                      for i, r in enumerate(("r1", "r2"))])  # two runs: one pair per network (medians)
    t = predictors.rank_predictors(d, resamples=200)
    across, within = by_name(t, predictors.ACROSS), by_name(t)
    assert across["MAC"].n == len(nets) and across["MAC"].spearman == pytest.approx(1.0) and across["MAC"].spearman_low == pytest.approx(1.0)
    assert within["MAC"].groups == 4 and within["MAC"].n == len(nets) - 1  # ~40/140/300/500 M; the SE network left out
    assert across["parameters"].diff == 0.0 and across["activations"].spearman == 0.0
    scopes = {h.scope: h for h in t.held_out}
    assert set(scopes) == {predictors.WITHIN, predictors.ACROSS}
    a = scopes[predictors.ACROSS]
    assert not set(a.train) & set(a.test) and set(a.train) | set(a.test) == set(nets)
    order = sorted(nets, key=lambda c: (flops[c], c))  # networks dealt by FLOPs
    assert a.train == tuple(order[0::2])


def test_report_markdown_and_terminal_show_the_table(tmp_path):
    from rich.console import Console

    from latbench.report.terminal import predictor_table

    t = predictors.rank_predictors(rows(), resamples=100)
    console = Console(width=200, record=True)
    console.print(predictor_table(predictors.HEADER, predictors.table_rows(t), predictors.sentences(t), "title"))
    text = console.export_text()
    assert "Spearman rho [95% CI]" in text and "1.00 [1.00, 1.00]" in text and "Held out" in text
    assert "**" not in text  # markdown emphasis is not printed in the terminal
    from latbench.report.markdown import _predictors

    md = _predictors(t)
    assert md.startswith("| device (mode) | scope | predictor | Spearman rho [95% CI]")
    assert "reference" in md and "Held out" in md and "resampling whole groups" in md  # the note says how
    assert _predictors(predictors.PredictorTable([], [])).startswith("No predictor could be ranked")


def test_latbench_report_prints_the_predictor_table_and_writes_it(tmp_path):
    from typer.testing import CliRunner

    from latbench.cli import app
    from test_report import write_run

    d = tmp_path / "results"
    d.mkdir()
    write_run(d, "g1", "G1", {"1:1": (10, 100e6, 10e6), "1:2": (11, 99e6, 11e6), "1:6": (13, 99.5e6, 14e6),
                              "1:12": (14, 95e6, 19e6)}, scales=(1, 2, 4))
    r = CliRunner().invoke(app, ["report", *map(str, d.glob("*.csv")), "-o", str(tmp_path / "out" / "r.md")],
                           terminal_width=250)
    assert r.exit_code == 0, r.output
    assert "which cost ranks latency" in r.stdout and "within fixed-FLOPs groups" in r.stdout
    assert "1.00 [1.00, 1.00]" in r.stdout  # MAC rises with latency in every G1 group
    md = (tmp_path / "out" / "r.md").read_text()
    assert "## Which cost predicts latency?" in md and "| MAC | 1.00 [1.00, 1.00] |" in md
