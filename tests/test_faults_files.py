"""Where results go, and what happens when the disk says no (issue 14): a bad --results-dir is one
line and exit 2 before anything is measured; a disk that fills up mid-run keeps the finished groups,
leaves the run resumable ('interrupted') and prints the resume command. Timed by the fake backend."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from latbench.cli import app
from latbench.results import files as results_files

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "data" / "tiny.yaml"  # 4 groups


def _run(results_dir: Path, *extra: str):
    return CliRunner().invoke(app, ["run", str(TINY), "--max-time", "0.05", "--no-roofline", "-q",
                                    "--results-dir", str(results_dir), *extra], catch_exceptions=False)


def _one_line_exit_2(r) -> str:
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def _read_only_dir(tmp_path: Path) -> Path:
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    if os.access(d, os.W_OK):
        pytest.skip("running as root: a read-only directory is writable")
    return d


def _regular_file(tmp_path: Path) -> Path:
    f = tmp_path / "file"
    f.write_text("not a directory\n")
    return f


def _dangling_symlink(tmp_path: Path) -> Path:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    return link


BAD_DIRS = {"read-only": _read_only_dir, "regular file": _regular_file, "dangling symlink": _dangling_symlink,
            "/dev/null": lambda _: Path("/dev/null"), "under a file": lambda t: _regular_file(t) / "sub"}


@pytest.mark.parametrize("name", list(BAD_DIRS))
def test_a_results_dir_that_cannot_take_files_is_one_line_and_exit_2(tmp_path, monkeypatch, name):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    d = BAD_DIRS[name](tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    line = _one_line_exit_2(_run(d, "--quick"))
    assert "cannot write" in line and "--results-dir" in line
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written anywhere


def test_disk_full_mid_run_keeps_finished_groups_and_says_how_to_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    real, calls = results_files._atomic_write_text, {"csv": 0}

    def full_disk(path: Path, text: str) -> None:
        if path.suffix == ".csv" and not path.name.endswith("-samples.csv"):
            calls["csv"] += 1
            if calls["csv"] == 3:  # 1: the empty table at the start, 2: group 1, 3: group 2
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, text)

    monkeypatch.setattr(results_files, "_atomic_write_text", full_disk)
    res = tmp_path / "res"
    line = _one_line_exit_2(_run(res))
    assert "No space left on device" in line and "resume with: latbench" in line and "--resume" in line
    (csv,) = [p for p in res.glob("*.csv") if not p.name.endswith("-samples.csv")]
    meta = json.loads(csv.with_suffix(".json").read_text())
    assert meta["status"] == "interrupted" and "No space left" in meta["interrupted_by"]
    assert len(pd.read_csv(csv)) == 2  # group 1 kept
    assert not [p for p in res.iterdir() if p.name.endswith((".tmp", ".lock"))]

    monkeypatch.setattr(results_files, "_atomic_write_text", real)  # space freed: the resume completes
    r = _run(res, "--resume", str(csv))
    assert r.exit_code == 0, r.output
    assert len(pd.read_csv(csv)) == 8 and json.loads(csv.with_suffix(".json").read_text())["status"] == "complete"
