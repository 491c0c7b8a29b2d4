"""Issue 21: a measurement whose process did not get its CPU (other processes took its core) is never a
pass. Preemption inside timed blocks adds time to both sides of a comparison alike and shrinks a
slowdown towards 1 (a real +5 % measured +1.4-2.0 % at 2-3x oversubscription), so `same` and `faster`
read off such rows become `inconclusive`; `slower` stands (the slowdown is at least what was measured)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from resultfiles import write_side
from typer.testing import CliRunner

from latbench.ab import both_orders, judge_rows
from latbench.cli import app
from latbench.compare import Delta, compare, load_runs, to_decide
from latbench.records import RESULT_COLUMNS, SCHEMA_VERSION
from latbench.results.read import read_run
from latbench.run.rows import Row, pool
from latbench.verdict import revoke_oversubscribed_pass

KEY = {"suite": "s", "experiment": "E", "scale": 1, "device": "cpu", "mode": "eager", "batch": 1,
       "dtype": "float32", "memory_format": "contiguous_format", "threads": 1}


def _delta(status: str) -> Delta:
    return Delta({**KEY, "case": "c"}, status, 0.03, ratio=1.0, ci_low=0.99, ci_high=1.01)


@pytest.mark.parametrize("status", ["same", "faster"])
def test_a_pass_on_an_oversubscribed_row_is_inconclusive(status):
    d = revoke_oversubscribed_pass(_delta(status), {"baseline": [{"oversubscribed": False}],
                                                    "candidate": [{"oversubscribed": True, "cpu_per_wall": 0.4}]})
    assert d.status == "inconclusive" and d.oversubscribed == "candidate"
    assert "oversubscribed" in d.note and "core of its own" in to_decide(d)


@pytest.mark.parametrize("status", ["slower", "failed", "inconclusive"])
def test_what_is_not_a_pass_stands(status):
    d = revoke_oversubscribed_pass(_delta(status), {"base": [{"oversubscribed": True}], "head": [{}]})
    assert d.status == status and d.oversubscribed == "base"


@pytest.mark.parametrize("flag", [False, None, math.nan, "False", ""])
def test_rows_not_flagged_keep_their_verdict(flag):
    d = revoke_oversubscribed_pass(_delta("same"), {"base": [{"oversubscribed": flag}], "head": [{}]})
    assert d.status == "same" and d.oversubscribed == ""


def _flag_rows(csv, share=0.4):
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    df["oversubscribed"], df["cpu_per_wall"] = "True", str(share)
    df.to_csv(csv, index=False)


def test_the_multi_run_gate_does_not_pass_an_oversubscribed_candidate(tmp_path):
    medians = {"g=1": 10.0, "g=2": 12.0}
    base = write_side(tmp_path / "b", medians, 3, seed=1)
    cand = write_side(tmp_path / "c", medians, 3, seed=2)
    args = ["gate", *sum((["-b", str(p)] for p in base), []), *sum((["-c", str(p)] for p in cand), []),
            "--threshold", "10%"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output  # the same code, every run with its CPU: passes
    _flag_rows(cand[1])
    assert read_run(cand[1]).rows["oversubscribed"].all()
    deltas = compare(load_runs(base, "baseline"), load_runs(cand, "candidate"), 0.10).deltas
    statuses = {d.key["case"]: d.status for d in deltas}
    assert statuses == {"g=1": "inconclusive", "g=2": "inconclusive"}
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1 and "oversubscribed" in r.output, r.output
    # --normalized re-judges each case on its ratio to the reference case: still no pass
    r = CliRunner().invoke(app, [*args, "--normalized"])
    assert r.exit_code == 1, r.output


def test_an_older_file_reads_as_not_oversubscribed(tmp_path):
    """Schema 5 files never looked: cpu_per_wall unknown, not flagged, verdicts unchanged."""
    assert SCHEMA_VERSION >= 6 and {"cpu_per_wall", "oversubscribed"} <= set(RESULT_COLUMNS)
    (csv,) = write_side(tmp_path, {"g=1": 10.0, "g=2": 12.0}, 1, seed=3)
    df = pd.read_csv(csv, dtype=str, keep_default_na=False).drop(columns=["cpu_per_wall", "oversubscribed"])
    df["schema_version"] = "5"
    df.to_csv(csv, index=False)
    rows = read_run(csv).rows
    assert not rows["oversubscribed"].any() and rows["cpu_per_wall"].isna().all()


def _ab_rows(over: dict[tuple[str, str], bool], n=40):
    rows, samples = [], []
    for exp in ("E/net", "E/net#head-first"):
        for side in ("base", "head"):
            rows.append({**KEY, "experiment": exp, "case": f"net@{side}", "status": "ok", "latency_ms": 10.0,
                         "samples": n, "baseline_case": "net@base", "ratio_to_baseline": 1.0,
                         "ratio_ci_low": 0.99, "ratio_ci_high": 1.01, "oversubscribed": over.get((exp, side), False)})
            samples += [{"experiment": exp, "case": f"net@{side}", "mode": "eager", "round": r,
                         "latency_ms": 10.0 * (1 + 0.001 * ((r * 7) % 5 - 2))} for r in range(n)]
    return rows, samples


@pytest.mark.parametrize("where", [("E/net", "base"), ("E/net#head-first", "head"), None])
def test_ab_is_inconclusive_when_any_of_its_four_measurements_was_oversubscribed(where):
    rows, samples = _ab_rows({where: True} if where else {})
    (d,) = judge_rows([{**r, "experiment": "E"} for r in both_orders(rows, samples)], lambda _k: 0.03)
    assert d.status == ("inconclusive" if where else "same"), d.note
    assert ("core of its own" in d.note) == bool(where)


def _row(case, share, over, ratio=1.0):
    return Row(**{**KEY, "case": case, "baseline_case": "a", "status": "ok", "latency_ms": 1.0,
                  "latency_ci_low_ms": 0.99, "latency_ci_high_ms": 1.01, "samples": 10, "batch": 1,
                  "ratio_to_baseline": ratio, "ratio_ci_low": 0.99 * ratio, "ratio_ci_high": 1.01 * ratio,
                  "cpu_per_wall": share, "oversubscribed": over})


def test_pooled_processes_are_oversubscribed_by_their_median_share():
    """One process of six caught in a burst does not flag the pooled row; most of them does."""
    def pooled(shares):
        per = [([_row("a", s, s < 0.85), _row("b", s, s < 0.85, 1.1)], []) for s in shares]
        rows, _ = pool(per)
        return rows[1]
    one = pooled([0.99, 0.98, 0.5, 0.99, 0.97, 0.99])
    assert not one.oversubscribed and one.cpu_per_wall == pytest.approx(0.985, abs=0.01)
    assert not any(n.code == "oversubscribed" for n in one.notes)
    most = pooled([0.5, 0.6, 0.4, 0.99, 0.7, 0.6])
    assert most.oversubscribed and any(n.code == "oversubscribed" for n in most.notes)
