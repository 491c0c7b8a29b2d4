"""Issue 12, item 3: `latbench ab`, two versions of the user's code measured in the same interleaved
rounds (directories or git refs), judged on the paired per-round ratio, with the gate's exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from latbench.cli import app

runner = CliRunner()
SUITE = """\
suite: mine
experiment: ab-demo
builder: user
blocks: 1
cases:
  - name: net
    params:
      factory: "abpkg.net:make"
      kwargs: {c: 16}
      input_shape: [16, 24, 24]
"""
NET = """\
import torch
from torch import nn

REPEAT = {repeat}


class Net(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x):
        for _ in range(REPEAT):
            x = self.conv(x)
        return x


def make(c=16):
    return Net(c)
"""
FAST = ["--max-time", "2", "--min-time", "0.5", "--json", "-q"]  # real CPU timing: ~100 paired rounds


def write_code(root, repeat):
    (root / "abpkg").mkdir(parents=True, exist_ok=True)
    (root / "abpkg" / "__init__.py").write_text("")
    (root / "abpkg" / "net.py").write_text(NET.format(repeat=repeat))


@pytest.fixture
def suite(tmp_path):
    p = tmp_path / "ab.yaml"
    p.write_text(SUITE)
    return p


def _ab(suite, base, head, *extra, env=None):
    r = runner.invoke(app, ["ab", str(suite), "--base", str(base), "--head", str(head), *map(str, extra)],
                      env={"LATBENCH_FAKE_BACKEND": "0", **(env or {})})
    return r, (json.loads(r.stdout) if r.exit_code in (0, 1) else None)


def test_a_slower_head_directory_fails_on_the_paired_ratio(tmp_path, suite):
    write_code(tmp_path / "base", 1)
    write_code(tmp_path / "head", 4)  # a real code change: four convolutions instead of one
    r, doc = _ab(suite, tmp_path / "base", tmp_path / "head", "--allow-import", *FAST)
    assert r.exit_code == 1, r.output
    case = doc["cases"][0]
    assert case["case"] == "net" and case["status"] == "slower" and case["method"] == "ab-paired-rounds"
    assert case["ci_low"] > 1.5 and doc["gate"]["regressions"] == [
        "mine/net/x1 cpu/eager/b1"] and "abpkg" not in " ".join(m for m in sys.modules if m.startswith("_latbench"))


def test_same_code_on_both_sides_passes(tmp_path, suite):
    write_code(tmp_path / "a", 2)
    write_code(tmp_path / "b", 2)
    r, doc = _ab(suite, tmp_path / "a", tmp_path / "b", "--allow-import", "--threshold", "25%", *FAST)
    assert 0.75 < doc["cases"][0]["ratio"] < 1.33, r.output
    if "oversubscribed" in doc["cases"][0]["note"]:  # a loaded test machine: no pass, and it says why
        assert r.exit_code == 1 and doc["cases"][0]["status"] == "inconclusive", r.output
        return
    assert r.exit_code == 0, r.output
    assert doc["cases"][0]["status"] in ("same", "faster")


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"})


def test_two_git_refs_are_checked_out_as_worktrees_and_removed(tmp_path, suite):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    write_code(repo, 1)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    write_code(repo, 4)
    _git(repo, "commit", "-qam", "slower")
    r, doc = _ab(suite, "HEAD~1", "HEAD", "--repo", repo, "--allow-import", *FAST)
    assert r.exit_code == 1 and doc["cases"][0]["status"] == "slower", r.output
    assert doc["baseline_files"][0].startswith("base: HEAD~1 (")
    listing = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True).stdout
    assert len(listing.strip().splitlines()) == 1  # the temporary worktrees are gone


def test_bad_input_exits_2_with_one_line(tmp_path, suite):
    write_code(tmp_path / "base", 1)
    r, _ = _ab(suite, tmp_path / "base", tmp_path / "base", *FAST)  # no --allow-import
    assert r.exit_code == 2 and "--allow-import" in r.stderr.replace("\n", " ")
    r, _ = _ab(suite, tmp_path / "base", "no-such-ref", "--repo", tmp_path, "--allow-import", *FAST)
    assert r.exit_code == 2 and "neither a directory nor a commit" in r.stderr.replace("\n", " ")
    (tmp_path / "empty").mkdir()
    r, _ = _ab(suite, tmp_path / "base", tmp_path / "empty", "--allow-import", *FAST)
    assert r.exit_code == 2 and "cannot import 'abpkg.net' from the head" in r.stderr.replace("\n", " ")
    other = tmp_path / "g.yaml"
    other.write_text("suite: g\nexperiment: x\nbuilder: g1_pointwise\ncases:\n  - name: a\n")
    r, _ = _ab(other, tmp_path / "base", tmp_path / "base", "--allow-import", *FAST)
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_each_case_is_measured_in_both_build_orders(tmp_path):
    """Issue 21: base is the baseline of both groups, but the head is built, allocated and warmed up first
    in the second one (ORDERS), so the side measured first is not always the base."""
    from latbench.ab import ORDERS, ABSource, Side
    from latbench.records import CaseSpec

    case = CaseSpec(suite="mine", experiment="E", case="net", scale=1, builder="user",
                    params=(("factory", "abpkg.net:make"),), blocks=1, batch=1, height=8, width=8, baseline_case="net")
    sides = (Side("base", "a", tmp_path), Side("head", "b", tmp_path))
    specs = ABSource([case], sides).specs("arm")
    assert [(s.experiment, s.case) for s in specs] == [("E/net", "net@base"), ("E/net", "net@head"),
                                                       ("E/net#head-first", "net@head"),
                                                       ("E/net#head-first", "net@base")]
    assert {s.baseline_case for s in specs} == {"net@base"} and len(ORDERS) == 2


def test_the_two_orders_are_pooled_round_by_round():
    """An order bias of -2 % in one group and +2 % in the other cancels in the pooled ratio; a failure in
    either order is what gets judged."""
    from latbench.ab import both_orders, judge_rows

    def rows_and_samples(exp, head_factor, n=40):
        rows = [{"experiment": exp, "case": f"net@{s}", "mode": "eager", "status": "ok", "latency_ms": 10.0 * f,
                 "samples": n, "suite": "mine", "scale": 1, "device": "cpu", "batch": 1, "baseline_case": "net@base",
                 "ratio_to_baseline": f, "ratio_ci_low": f * 0.99, "ratio_ci_high": f * 1.01}
                for s, f in (("base", 1.0), ("head", head_factor))]
        samples = [{"experiment": exp, "case": f"net@{s}", "mode": "eager", "round": r,
                    "latency_ms": 10.0 * (f if s == "head" else 1.0) * (1 + 0.001 * ((r * 7) % 5 - 2))}
                   for r in range(n) for s, f in (("base", 1.0), ("head", head_factor))]
        return rows, samples

    r1, s1 = rows_and_samples("E/net", 0.98)
    r2, s2 = rows_and_samples("E/net#head-first", 1.02)
    rows = both_orders(r1 + r2, s1 + s2)
    head = next(r for r in rows if r["case"] == "net@head")
    assert head["experiment"] == "E/net" and head["samples"] == 80 and "both build orders" in head["ratio_interval"]
    assert 0.98 <= head["ratio_to_baseline"] <= 1.02 and head["ratio_ci_low"] <= 1.0 <= head["ratio_ci_high"]
    (d,) = judge_rows([{**r, "experiment": "E"} for r in rows], lambda _k: 0.05)
    assert d.status == "same" and "both build orders" in d.note
    failed = [dict(r, status="failed", error="boom") if r["case"] == "net@head" else r for r in r2]
    (d,) = judge_rows([{**r, "experiment": "E"} for r in both_orders(r1 + failed, s1 + s2)], lambda _k: 0.05)
    assert d.status == "failed" and d.failed_side == "candidate"


def test_an_interrupted_ab_is_never_judged(tmp_path, monkeypatch):
    """Issue 22, second attack: a signal during `ab` left a partial run that was judged (or raised
    IndexError); it stops the command with 128 + N, nothing judged."""
    import signal

    from latbench import ab, faults
    from latbench.ab import Side
    from latbench.records import CaseSpec
    from latbench.run import session

    stopped = session.RunOutcome(interrupted=session.Interruption("SIGTERM", int(signal.SIGTERM), None, "", [], [], ""))
    monkeypatch.setattr(session, "run_sources", lambda *a, **k: stopped)
    monkeypatch.setattr(ab, "factory_modules", lambda specs: None)
    case = CaseSpec(suite="mine", experiment="E", case="net", scale=1, builder="user",
                    params=(("factory", "abpkg.net:make"),), blocks=1, batch=1, height=8, width=8, baseline_case="net")
    sides = (Side("base", "a", tmp_path), Side("head", "b", tmp_path))
    with pytest.raises(faults.Interrupted) as info:
        ab.run_ab([case], sides, fake_backend=True)
    assert info.value.exit_code == 143
