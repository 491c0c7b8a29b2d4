"""Issue 12, item 5: examples/latency-gate.sh end to end against a sample user repository (two commits,
the second slower by a real code change), as the reusable workflow runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "latency-gate.sh"
SUITE = """\
suite: userbench
experiment: pr-gate
builder: user
blocks: 1
cases:
  - name: block
    params:
      factory: "mylib.block:make"
      kwargs: {c: 16}
      input_shape: [16, 24, 24]
"""
CODE = """\
from torch import nn


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x):
        for _ in range({repeat}):
            x = self.conv(x)
        return x


def make(c=16):
    return Block(c)
"""
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env={**os.environ, **GIT_ENV})


def _user_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "userrepo"
    (repo / "mylib").mkdir(parents=True)
    (repo / "mylib" / "__init__.py").write_text("")
    (repo / "mylib" / "block.py").write_text(CODE.format(repeat=1))
    (repo / "bench.yaml").write_text(SUITE)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    (repo / "mylib" / "block.py").write_text(CODE.format(repeat=4))  # the PR: 4x the work
    _git(repo, "commit", "-qam", "slower block")
    return repo


def _run(tmp_path, repo, **extra):
    summary = tmp_path / "step-summary.md"
    env = {**os.environ, "SUITE": "bench.yaml", "REPO": str(repo), "BASE_REF": "HEAD~1", "HEAD_REF": "HEAD",
           "THRESHOLD": "10%", "AB_FLAGS": "--max-time 2 --min-time 0.5", "OUT_DIR": str(tmp_path / "out"),
           "LATBENCH_SPEC": "skip", "PYTHON": sys.executable, "GITHUB_STEP_SUMMARY": str(summary),
           "PYTHONPATH": str(ROOT), "LATBENCH_FAKE_BACKEND": "0", **extra}
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=240)
    return proc, summary


@pytest.mark.slow
def test_the_gate_script_catches_a_slower_commit_in_a_user_repository(tmp_path):
    repo = _user_repo(tmp_path)
    proc, summary = _run(tmp_path, repo)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "out" / "gate.json").read_text())
    assert doc["cases"][0]["status"] == "slower" and doc["gate"]["passed"] is False
    assert "latency gate FAILED" in summary.read_text() and (tmp_path / "out" / "gate.md").is_file()
    assert "mylib" not in subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True,
                                         text=True).stdout.split("\n", 1)[-1]  # temporary worktrees removed
    proc, _ = _run(tmp_path, repo, BASE_REF="nope")
    assert proc.returncode == 2 and "not a commit" in proc.stderr


def test_the_reusable_workflow_runs_the_script_with_latbench_installed_not_the_user_repo():
    wf = yaml.safe_load((ROOT / "examples" / "latency-gate-reusable.yml").read_text())
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert "workflow_call" in on and "suite" in on["workflow_call"]["inputs"]
    steps = wf["jobs"]["gate"]["steps"]
    run = next(s for s in steps if "latency-gate.sh" in str(s.get("run", "")))
    assert run["env"]["LATBENCH_SPEC"] == "${{ inputs.latbench-spec }}" and run["env"]["REPO"] == "repo"
    # without a spec the script installs latbench from this workflow's own repository and ref (README's install)
    assert on["workflow_call"]["inputs"]["latbench-spec"]["default"] == ""
    assert run["env"]["LATBENCH_REPOSITORY"] == "${{ inputs.latbench-repository }}"
    assert any(s.get("uses", "").startswith("actions/upload-artifact") and s.get("if") == "always()" for s in steps)
    assert not any("pip install -e" in str(s.get("run", "")) for s in steps)


@pytest.mark.slow
def test_a_rerun_into_the_same_folder_prints_its_own_verdict(tmp_path):
    """Issue 21: gate.md was appended and the first match printed, so a re-run showed the old verdict."""
    repo = _user_repo(tmp_path)
    fast = {"LATBENCH_FAKE_BACKEND": "1", "AB_FLAGS": "--max-time 0.3 --min-time 0.1"}
    proc, _ = _run(tmp_path, repo, **fast)
    assert proc.returncode == 1 and proc.stdout.strip().splitlines()[-1].startswith("latency gate FAILED")
    proc, _ = _run(tmp_path, repo, BASE_REF="HEAD", THRESHOLD="90%", **fast)  # the same commit on both sides
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("latency gate PASSED")
    md = (tmp_path / "out" / "gate.md").read_text()
    assert md.count("latency gate") == 1 and "PASSED" in md  # this run's report only


def test_without_latbench_or_a_spec_the_script_says_how_to_install_it(tmp_path):
    """Issue 21: the default LATBENCH_SPEC=latbench named nothing installable; now the script installs from
    the latbench checkout it lives in, or README's git URL, or stops with the install line (exit 2)."""
    script = tmp_path / "elsewhere" / "latency-gate.sh"
    script.parent.mkdir()
    script.write_text(SCRIPT.read_text())
    nopython = tmp_path / "python-without-latbench"
    nopython.write_text("#!/bin/sh\nexit 1\n")
    nopython.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "SUITE": "bench.yaml", "REPO": str(tmp_path), "PYTHON": str(nopython)}
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "latbench @ git+https://github.com/" in proc.stderr
    text = SCRIPT.read_text()
    assert "LATBENCH_SPEC:-latbench}" not in text and 'LATBENCH_SPEC="latbench @ git+https://github.com/' in text
