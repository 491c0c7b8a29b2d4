"""`report` and output streams under hostile input (issue 14): bad --name/--out, partial runs, an
ASCII-only stdout, a stdout closed by its reader. One line and exit 2, or the command's own answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from latbench.cli import app

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "data" / "tiny.yaml"


@pytest.fixture(scope="module")
def run_csv(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("run")
    suite = d / "uni.yaml"
    suite.write_text(TINY.read_text().replace("name: g=1", 'name: "g=1 \u2713 \u00fc"'))
    env = {**os.environ, "LATBENCH_FAKE_BACKEND": "1", "PYTHONIOENCODING": "ascii", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "latbench", "run", str(suite), "--quick", "--no-roofline",
                        "--results-dir", str(d / "res")], cwd=ROOT, env=env, capture_output=True, text=True,
                       errors="replace", timeout=300)
    # Issue 14: a case name stdout cannot encode was a UnicodeEncodeError traceback.
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "\\u2713" in r.stdout
    (csv,) = [p for p in (d / "res").glob("*.csv") if not p.name.endswith("-samples.csv")]
    return csv


def _report(*args: str):
    return CliRunner().invoke(app, ["report", *args], catch_exceptions=False)


@pytest.mark.parametrize("name", ["sub/x.md", "", "../x.yaml", "..", " "])
def test_report_name_must_be_a_plain_file_name_inside_out(run_csv, tmp_path, name):
    r = _report(str(run_csv), "--out", str(tmp_path / "rep"), "--name", name)
    assert r.exit_code == 2 and "is not a plain file name" in r.stderr, r.output
    assert not (tmp_path / "x.yaml").exists() and not (tmp_path / "rep").exists()


@pytest.mark.parametrize("out", ["file", "/dev/null"])
def test_report_out_that_is_not_a_directory_is_one_line(run_csv, tmp_path, out):
    target = run_csv if out == "file" else Path(out)
    before = run_csv.read_bytes()
    r = _report(str(run_csv), "--out", str(target))
    assert r.exit_code == 2 and "cannot write" in r.stderr and "Traceback" not in r.output, r.output
    assert run_csv.read_bytes() == before


def test_report_given_the_same_file_twice(run_csv, tmp_path):
    r = _report(str(run_csv), str(run_csv), "--out", str(tmp_path / "rep"))
    assert r.exit_code == 0, r.output


def test_report_on_a_killed_run_says_it_is_partial(run_csv, tmp_path):
    d = tmp_path / "killed"
    d.mkdir()
    for p in run_csv.parent.iterdir():
        (d / p.name).write_bytes(p.read_bytes())
    meta = d / run_csv.with_suffix(".json").name
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "status": "running"}))  # SIGKILLed: no lock
    r = _report(str(d / run_csv.name), "--out", str(tmp_path / "rep"))
    assert r.exit_code == 0, r.output
    assert "is a partial run (status 'interrupted')" in r.stderr and "--resume" in r.stderr


def test_results_file_without_status_is_one_line(run_csv, tmp_path):
    bad = tmp_path / "nostatus.csv"
    lines = run_csv.read_text().splitlines()
    header = lines[0].split(",")
    i = header.index("status")
    bad.write_text("\n".join(",".join(c for j, c in enumerate(ln.split(",")) if j != i) for ln in lines[:1]) + "\n")
    r = _report(str(bad), "--out", str(tmp_path / "rep"))
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output


def test_gate_into_a_closed_pipe_keeps_its_decision(run_csv, tmp_path):
    """Issue 14: `latbench gate ... | head -1` exited 1 (click's EPIPE handling) whatever the gate decided."""
    cand = tmp_path / "cand"
    cand.mkdir()
    for f in run_csv.parent.glob(run_csv.stem + "*"):  # the same run under another run_id (the gate refuses one run on both sides)
        if f.suffix in (".csv", ".json"):
            run_id = __import__("json").loads(run_csv.with_suffix(".json").read_text())["run_id"]
            (cand / f.name).write_text(f.read_text().replace(run_id, "0123456789ab"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    gate = f"{sys.executable} -m latbench gate -b {run_csv} -c {cand / run_csv.name} -q --allow-different-machine --noise-floor 0% --threshold 50%"
    alone = subprocess.run(["bash", "-c", gate], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    # identical data without a run-to-run floor: judged the same, the gate passes (issue 22: a gate that
    # judged nothing, as --inconclusive pass on one run a side did here, fails). The threshold is wide: the
    # fixture's run is short, and on a loaded CI box (2026-12-06) its ratio CIs reached the default 10 %,
    # which is rightly inconclusive; this test is about the pipe, not the noise. Unless the fixture's run
    # was measured oversubscribed (a loaded CI box: its process got under 0.85 CPU s per s), which is
    # rightly no pass. Either way the pipe below must keep the decision.
    import pandas as pd

    over = pd.read_csv(run_csv)["oversubscribed"].astype(str).str.lower().eq("true").any()
    assert alone.returncode == (1 if over else 0) and alone.stdout, alone
    r = subprocess.run(["bash", "-c", f"{gate} | true; echo \"rc=${{PIPESTATUS[0]}}\""], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert f"rc={alone.returncode}" in r.stdout and "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r
