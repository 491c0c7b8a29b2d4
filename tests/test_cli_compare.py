"""CLI: compare, gate and calibrate on synthetic result files (exit codes, stdout vs stderr, formats)."""

from __future__ import annotations

import json

import pytest
import yaml
from resultfiles import FINGERPRINT, write_run, write_side
from typer.testing import CliRunner

from latbench.cli import app

runner = CliRunner()
CASES = {"g=1": 10.0, "g=2": 12.0}


def _invoke(args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


@pytest.fixture
def aa(tmp_path):
    """3 baseline and 3 candidate runs of the same code with 1 % run-to-run drift (quiet enough that a
    10 % threshold is judged; louder drift makes cases inconclusive, see test_gate_fails_closed)."""
    return (write_side(tmp_path / "base", CASES, 3, seed=1, drift_sd=0.01),
            write_side(tmp_path / "head", CASES, 3, seed=2, drift_sd=0.01))


@pytest.fixture
def ab(tmp_path):
    """As aa, but g=2 is 30 % slower in the candidate and g=1 is 20 % faster (with 3 % drift and 3 runs a
    side, the whole CI of each lies beyond a 10 % threshold: issue 21's rule)."""
    return (write_side(tmp_path / "base", CASES, 3, seed=1, drift_sd=0.03),
            write_side(tmp_path / "head", {"g=1": 8.0, "g=2": 15.6}, 3, seed=2, drift_sd=0.03))


def _gate_args(base, head):
    return ["gate", *sum((["--baseline", p] for p in base), []), *sum((["--candidate", p] for p in head), [])]


def test_gate_passes_on_aa(aa):
    r = _invoke(_gate_args(*aa))
    assert r.exit_code == 0, r.output
    assert "latency gate PASSED" in r.stdout and "syn/g=2" in r.stdout


def test_gate_fails_on_regression_and_reports_improvements(ab):
    r = _invoke(_gate_args(*ab) + ["--format", "json"])
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["gate"]["passed"] is False
    assert [c.split()[0] for c in doc["gate"]["regressions"]] == ["syn/g=2/x1"]
    assert [c.split()[0] for c in doc["gate"]["improvements"]] == ["syn/g=1/x1"]
    case = {c["case"]: c for c in doc["cases"]}["g=2"]
    assert case["method"] == "runs-welch" and case["base_runs"] == 3 and case["ci_low"] > 1.1


def test_gate_threshold_above_the_change_passes(ab):
    assert _invoke(_gate_args(*ab) + ["--threshold", "50%"]).exit_code == 0


def test_gate_takes_directories_and_quoted_globs(ab, tmp_path):
    r = _invoke(["gate", "--baseline", tmp_path / "base", "--candidate", f"{tmp_path}/head/*.csv", "--json"])
    assert r.exit_code == 1 and json.loads(r.stdout)["cases"][0]["cand_runs"] == 3


def test_gate_appends_markdown_to_github_step_summary(ab, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    for _ in range(2):
        _invoke(_gate_args(*ab), env={"GITHUB_STEP_SUMMARY": str(summary)})
    text = summary.read_text()
    assert text.startswith("earlier step\n") and text.count("### latbench gate") == 2
    assert ":x: **latency gate FAILED" in text and "| :red_circle: | syn/g=2 |" in text


def test_gate_refuses_different_machines_unless_allowed(tmp_path):
    base = write_side(tmp_path / "b", CASES, 2, seed=1)
    head = write_side(tmp_path / "h", CASES, 2, seed=2, fingerprint={**FINGERPRINT, "cpu_model": "Intel Xeon"})
    r = _invoke(_gate_args(base, head))
    flat = r.stderr.replace("\n", "")
    assert r.exit_code == 2 and "different machines" in flat and "cpu_model" in flat
    assert "--allow-different-machine" in flat and "Traceback" not in r.output
    r = _invoke(_gate_args(base, head) + ["--allow-different-machine"])
    assert r.exit_code == 0 and "fingerprints differ: cpu_model" in r.stderr.replace("\n", " ")


def test_compare_warns_on_different_machines_and_lists_missing_cases(tmp_path):
    b = write_run(tmp_path / "b", {"g=1": 10.0, "gone": 3.0}, seed=1)
    c = write_run(tmp_path / "c", {"g=1": 10.0, "added": 3.0}, seed=2, fingerprint={**FINGERPRINT, "torch": "2.14"})
    r = _invoke(["compare", b, c, "--format", "csv"])
    assert r.exit_code == 0
    flat = r.stderr.replace("\n", " ")
    assert "fingerprints differ: torch" in flat and "one run per side" in flat
    lines = r.stdout.splitlines()
    assert lines[0].startswith("suite,experiment,case,scale,device,mode,batch,dtype,memory_format,threads,status")
    status_at = lines[0].split(",").index("status")
    status = {ln.split(",")[2]: ln.split(",")[status_at] for ln in lines[1:]}
    assert status == {"g=1": "inconclusive", "gone": "missing", "added": "missing"}  # 1 run a side: 10 % floor


def test_compare_first_file_is_baseline_rest_are_candidate_runs(aa):
    base, head = aa
    r = _invoke(["compare", base[0], *head, "--json"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["baseline_files"] == [str(base[0])] and len(doc["candidate_files"]) == 3
    assert doc["cases"][0]["method"] == "runs-pooled"
    r = _invoke(["compare", "--baseline", base[0], "--baseline", base[1], *head, "--format", "markdown"])
    assert r.exit_code == 0 and r.stdout.startswith("### latbench compare") and "| syn/g=1 |" in r.stdout


def test_compare_needs_a_candidate(aa):
    r = _invoke(["compare", aa[0][0]])
    assert r.exit_code == 2 and "at least one candidate" in r.stderr.replace("\n", " ")


@pytest.mark.parametrize("damage", [
    lambda p: p.write_text("a,b\n1,2\n"),
    lambda p: p.write_text(p.read_text()[:-40]),
    lambda p: p.with_suffix(".json").unlink(),
    lambda p: p.with_name(p.stem + "-samples.csv").write_text("x\n"),
])
def test_bad_input_exits_2_with_one_line(aa, damage):
    base, head = aa
    damage(head[1])
    r = _invoke(_gate_args(base, head))
    assert r.exit_code == 2 and r.stdout == ""
    flat = r.stderr.replace("\n", "")  # the stderr console wraps long lines
    assert flat.startswith("error: ") and "Traceback" not in flat and head[1].stem in flat


def test_missing_file_and_bad_threshold_exit_2(aa, tmp_path):
    base, _ = aa
    assert _invoke(["gate", "--baseline", base[0], "--candidate", tmp_path / "nope.csv"]).exit_code == 2
    r = _invoke(_gate_args(*aa) + ["--threshold", "lots"])
    assert r.exit_code == 2 and "--threshold" in r.stderr.replace("\n", " ")


def test_calibrate_writes_thresholds_the_gate_reads(aa, tmp_path):
    base, head = aa
    out = tmp_path / "thr.yaml"
    r = _invoke(["calibrate", *base, *head, "--output", out, "--runs-per-side", "3"])
    assert r.exit_code == 0, r.output
    data = yaml.safe_load(out.read_text())
    assert len(data["cases"]) == 2 and all(0.02 <= c["threshold"] < 0.2 for c in data["cases"])
    r = _invoke(_gate_args(base, head) + ["--thresholds", out, "--json"])
    assert r.exit_code == 0
    used = {c["case"]: c["threshold"] for c in json.loads(r.stdout)["cases"]}
    assert used == {c["case"]: c["threshold"] for c in data["cases"]}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just a list\n")
    assert _invoke(_gate_args(base, head) + ["--thresholds", bad]).exit_code == 2
