"""benchmarks/reproduce.sh (issue 24, item 6): one command regenerates the reproduction docs, their figures
and the evidence from a fresh run, replacing only what the script owns; the report names each run's machine,
software, date and command. The script runs here against a stand-in for latbench (a real run takes minutes)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "reproduce.sh"

# A stand-in for `python -m latbench`: env prints JSON, run writes a results file into --results-dir (or
# fails when its suite is named in $FAIL_SUITE), report writes its -o file listing what it read, and a figure.
FAKE = r'''#!/usr/bin/env bash
shift 2  # -m latbench
cmd="$1"; shift
case "$cmd" in
  env) echo '{"cpu_model": "Fake"}' ;;
  run) dir=""; suites=()
       while [[ $# -gt 0 ]]; do
         case "$1" in --results-dir) dir="$2"; shift 2 ;; suites/*) suites+=("$(basename "$1" .yaml)"); shift ;; *) shift ;; esac
       done
       for s in "${suites[@]}"; do [[ "$s" == "${FAIL_SUITE:-}" ]] && exit 2; done
       mkdir -p "$dir"; for s in "${suites[@]}"; do echo "$s" > "$dir/$s-cpu-new.csv"; done ;;
  report) files=(); out=""
       while [[ $# -gt 0 ]]; do
         case "$1" in -o) out="$2"; shift 2 ;; --force|-q) shift ;; *) files+=("$1"); shift ;; esac
       done
       stem="$(basename "$out" .md)"; mkdir -p "$(dirname "$out")/figures"
       printf '%s\n' "${files[@]}" > "$out"; echo png > "$(dirname "$out")/figures/$stem-cpu-fake-eager-roofline.png" ;;
esac
'''


@pytest.fixture
def tree(tmp_path):
    """A copy of the script's surroundings: old evidence it owns, old evidence it does not, other docs."""
    fake = tmp_path / "fakepython"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    docs, ev = tmp_path / "docs", tmp_path / "docs" / "evidence" / "results"
    for p in ("reproduction/g1-cpu-old.csv", "networks/networks-cpu-old.csv", "g1-flops/g1-cpu-keep.csv",
              "g1-cpu-20261123T183537Z.csv"):
        (ev / p).parent.mkdir(parents=True, exist_ok=True)
        (ev / p).write_text("old")
    (docs / "figures").mkdir()
    for p in ("reproduction.md", "reproduction-networks.md", "claims.md", "figures/reproduction-old-paper.png",
              "figures/reproduction-networks-old-roofline.png", "figures/audit-shufflenet_v2.png"):
        (docs / p).write_text("old")
    env = {**os.environ, "PYTHON": str(fake), "EVIDENCE": str(ev), "DOCS": str(docs)}
    return tmp_path, env


def files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != "fakepython"}


def test_the_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_one_command_replaces_what_it_owns_and_nothing_else(tree):
    root, env = tree
    r = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    after = files(root)
    ev = "docs/evidence/results"
    assert sorted(k for k in after if k.startswith(f"{ev}/reproduction/")) == [f"{ev}/reproduction/env.json"] + [
        f"{ev}/reproduction/{s}-cpu-new.csv" for s in ("g1", "g2", "g3", "g4")]
    assert sorted(k for k in after if k.startswith(f"{ev}/networks/")) == [f"{ev}/networks/networks-cpu-new.csv"]
    assert json.loads(after[f"{ev}/reproduction/env.json"]) == {"cpu_model": "Fake"}
    # the reports read the fresh runs only
    names = [Path(p).name for p in after["docs/reproduction.md"].split()]
    assert names == [f"{s}-cpu-new.csv" for s in ("g1", "g2", "g3", "g4")]
    assert [Path(p).name for p in after["docs/reproduction-networks.md"].split()] == ["networks-cpu-new.csv"]
    # old figures of both reports gone, new ones written; everything the script does not own untouched
    figs = sorted(k for k in after if k.startswith("docs/figures/"))
    assert figs == ["docs/figures/audit-shufflenet_v2.png", "docs/figures/reproduction-cpu-fake-eager-roofline.png",
                    "docs/figures/reproduction-networks-cpu-fake-eager-roofline.png"]
    for kept in (f"{ev}/g1-flops/g1-cpu-keep.csv", f"{ev}/g1-cpu-20261123T183537Z.csv", "docs/claims.md",
                 "docs/figures/audit-shufflenet_v2.png"):
        assert after[kept] == "old"
    assert not [p for p in (root / ev).iterdir() if p.name.startswith(".reproduce")]  # scratch removed


@pytest.mark.parametrize("fail", ["g3", "networks"])
def test_a_failed_run_leaves_the_committed_evidence_as_it_was(tree, fail):
    root, env = tree
    before = files(root)
    r = subprocess.run(["bash", str(SCRIPT)], env={**env, "FAIL_SUITE": fail}, capture_output=True, text=True)
    assert r.returncode != 0
    assert files(root) == before  # nothing replaced, and no scratch directory left behind
    assert not [p for p in (root / "docs/evidence/results").iterdir() if p.name.startswith(".reproduce")]


def test_the_report_names_each_runs_machine_software_date_and_command(tmp_path):
    from latbench.report.markdown import write_report
    from test_report import write_run

    csv = write_run(tmp_path, "g4", "G4", {"relu+shortcut": (10, 1e8, 3e7), "neither": (8, 1e8, 1e7)})
    meta_path = csv.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta.update(started_at_utc="2026-12-05T08:30:00+00:00", finished_at_utc="2026-12-05T08:41:00+00:00",
                status="complete", files={"results": csv.name},
                command=["/x/latbench/__main__.py", "run", "suites/g4.yaml", "--repeats", "3"])
    meta["fingerprint"].update(cpu_logical_cores=2, cpu_physical_cores=1, hostname="vm", latbench="0.9",
                               latbench_commit="abc123", python="3.11.7")
    meta_path.write_text(json.dumps(meta))
    md = write_report([csv], tmp_path / "out").markdown.read_text()
    runs = md.split("## Runs", 1)[1].split("##", 1)[0]
    row = next(line for line in runs.splitlines() if csv.name in line)
    for needle in ("2026-12-05 08:30 - 08:41", "Fake CPU, 2 logical / 1 physical cores, host vm",
                   "torch 2.x, latbench 0.9 (commit abc123)", "`latbench run suites/g4.yaml --repeats 3`", "complete"):
        assert needle in row, needle
