"""The file policy (issue 22), in one place (latbench.results.files) and through every command that
writes an output: an existing file is replaced only with --force; never a symbolic link, a directory or
a special file; never a run's files or their siblings, even with --force; atomic; the run's lock and
reserved names never followed if a link is planted there. Synthetic runs (tests/resultfiles.py), the
fake backend where a run is needed."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from latbench.cli import app
from latbench.errors import LatbenchError, ResultsError
from latbench.results import files as F
from latbench.results.files import OutputRefused, RunFiles, check_output, create_new_file, run_of, write_output
from resultfiles import write_run

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "data" / "tiny.yaml"


@pytest.fixture
def run_csv(tmp_path) -> Path:
    return write_run(tmp_path / "res", {"g=1": 1.0, "g=2": 1.2}, seed=1)


@pytest.fixture
def two_runs(tmp_path) -> tuple[Path, Path]:
    a = write_run(tmp_path / "a", {"g=1": 1.0, "g=2": 1.2}, seed=1)
    b = write_run(tmp_path / "b", {"g=1": 1.0, "g=2": 1.2}, seed=2)
    return a, b


def siblings(csv: Path) -> list[Path]:
    return [csv, csv.with_name(csv.stem + "-samples.csv"), csv.with_suffix(".json"), csv.with_suffix(".lock")]


def digest(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and not p.is_symlink()}


def one_line_exit_2(r) -> str:
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit), r.exception
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


# ---------------------------------------------------------------- the policy itself

def test_a_new_file_is_written_whole_and_an_existing_one_only_with_force(tmp_path):
    out = tmp_path / "new" / "dir" / "out.txt"
    assert write_output(out, "one\n") == out.resolve()
    assert out.read_text() == "one\n"
    with pytest.raises(OutputRefused, match="already exists.*--force"):
        write_output(out, "two\n")
    assert out.read_text() == "one\n"
    write_output(out, "three\n", force=True)
    assert out.read_text() == "three\n"
    assert [p.name for p in out.parent.iterdir()] == ["out.txt"]  # no temp file left


def test_the_old_file_survives_a_failed_write(tmp_path, monkeypatch):
    out = tmp_path / "out.txt"
    out.write_text("old\n")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(F.os, "replace", full)
    with pytest.raises(LatbenchError, match="No space left"):
        write_output(out, "new\n", force=True)
    assert out.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_symbolic_link_is_never_written_through_even_with_force(tmp_path):
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("precious\n")
    link = tmp_path / "link.txt"
    link.symlink_to(elsewhere)
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "nowhere.txt")
    for target in (link, dangling):
        for force in (False, True):
            with pytest.raises(OutputRefused, match="symbolic link"):
                write_output(target, "x", force=force)
    assert elsewhere.read_text() == "precious\n" and not (tmp_path / "nowhere.txt").exists()
    assert link.is_symlink() and dangling.is_symlink()


@pytest.mark.parametrize("kind", ["directory", "fifo", "/dev/full", "/dev/null"])
def test_a_directory_or_special_file_is_never_a_target(tmp_path, kind):
    if kind == "directory":
        target = tmp_path / "d"
        target.mkdir()
    elif kind == "fifo":
        target = tmp_path / "fifo"
        os.mkfifo(target)
    else:
        target = Path(kind)
        if not target.exists():
            pytest.skip(f"no {kind}")
    for force in (False, True):
        with pytest.raises(OutputRefused, match="directory|regular file"):
            write_output(target, "x", force=force)
    if kind == "fifo":
        assert stat.S_ISFIFO(os.lstat(target).st_mode)


@pytest.mark.parametrize("name", ["", ".", "..", "sub/", "a\0b"])
def test_a_path_that_names_no_file_is_refused(tmp_path, name):
    with pytest.raises(OutputRefused, match="not a file name"):
        check_output(name)


@pytest.mark.parametrize("make", ["under a file", "300-character name"])
def test_unwritable_places_are_one_results_error(tmp_path, make):
    if make == "under a file":
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "sub"
    else:
        target = tmp_path / ("x" * 300)
    with pytest.raises(ResultsError, match="cannot write"):
        write_output(target, "x")


def test_a_run_and_its_siblings_are_never_a_target_even_with_force(run_csv):
    before = digest(run_csv.parent)
    for target in siblings(run_csv):  # the .lock does not exist: its name still belongs to the run
        for force in (False, True):
            with pytest.raises(OutputRefused, match="files of the run"):
                write_output(target, "x", force=force)
    assert digest(run_csv.parent) == before
    assert run_of(run_csv.with_suffix(".lock")) == run_csv


def test_a_results_file_under_another_name_is_still_a_run(tmp_path, run_csv):
    copy = tmp_path / "baseline.txt"
    copy.write_bytes(run_csv.read_bytes())
    with pytest.raises(OutputRefused, match="files of the run"):
        write_output(copy, "x", force=True)
    assert copy.read_bytes() == run_csv.read_bytes()


def test_unrelated_csv_and_json_pairs_are_not_runs(tmp_path):
    (tmp_path / "cmp.csv").write_text("case,ratio\na,1.0\n")
    (tmp_path / "cmp.json").write_text('{"comparisons": []}\n')
    assert run_of(tmp_path / "cmp.csv") is None and run_of(tmp_path / "cmp.json") is None
    write_output(tmp_path / "cmp.md", "x")
    write_output(tmp_path / "cmp.json", "{}", force=True)


def test_create_new_file_never_replaces_and_is_never_empty(tmp_path):
    p = tmp_path / "x.json"
    create_new_file(p, '{"a": 1}\n')
    with pytest.raises(FileExistsError):
        create_new_file(p, "other")
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "target.json")
    with pytest.raises(FileExistsError):
        create_new_file(link, "other")
    assert p.read_text() == '{"a": 1}\n' and not (tmp_path / "target.json").exists()


# ---------------------------------------------------------------- a run's own files

NOW = __import__("datetime").datetime(2026, 1, 2, 3, 4, 5)
STEM = "g2-cpu-20260102T030405Z"


@pytest.mark.parametrize("name", [f"{STEM}.csv", f"{STEM}-samples.csv", f"{STEM}.json", f"{STEM}.lock"])
def test_reserve_never_follows_a_link_planted_at_a_predictable_name(tmp_path, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / name).symlink_to(victim)
    files = RunFiles.reserve(tmp_path / "res", "g2", "cpu", now=NOW)
    assert files.csv.name == f"{STEM}-1.csv"
    files.lock()
    files.add([], [])
    files.unlock()
    assert victim.read_text() == "precious\n" and (tmp_path / "res" / name).is_symlink()


def test_reserve_writes_json_at_once_so_a_full_disk_never_leaves_a_0_byte_metadata(tmp_path, monkeypatch):
    files = RunFiles.reserve(tmp_path, "g2", "cpu", now=NOW)
    placeholder = json.loads(files.meta.read_text())
    assert placeholder["status"] == "running" and placeholder["files"]["results"] == files.csv.name

    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(F, "_atomic_write_text", full)
    with pytest.raises(ResultsError, match="No space"):
        files.flush()
    assert json.loads(files.meta.read_text()) == placeholder and sorted(p.name for p in tmp_path.iterdir()) == [
        files.meta.name]


@pytest.mark.parametrize("plant", ["symlink", "dangling symlink", "hard link", "fifo"])
def test_the_lock_never_follows_a_link_nor_truncates_another_file(tmp_path, plant, run_csv):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    files = RunFiles(run_csv, run_csv.with_name(run_csv.stem + "-samples.csv"), run_csv.with_suffix(".json"))
    lock = files.lock_path
    if plant == "symlink":
        lock.symlink_to(victim)
    elif plant == "dangling symlink":
        lock.symlink_to(tmp_path / "created-through-the-link.txt")
    elif plant == "hard link":
        os.link(victim, lock)
    else:
        os.mkfifo(lock)
    with pytest.raises(ResultsError, match="lock file"):
        files.lock()  # a FIFO: refused at once, never a hang
    assert victim.read_text() == "precious\n" and not (tmp_path / "created-through-the-link.txt").exists()


def test_a_stale_lock_of_a_killed_run_is_taken_over(run_csv):
    files = RunFiles(run_csv, run_csv.with_name(run_csv.stem + "-samples.csv"), run_csv.with_suffix(".json"))
    files.lock_path.write_text("12345\n")
    files.lock()
    assert files.lock_path.read_text() == f"{os.getpid()}\n"
    files.unlock()
    assert not files.lock_path.exists()


def test_resume_through_a_planted_lock_link_is_refused_and_the_target_kept(tmp_path):
    res = tmp_path / "res"
    r = CliRunner().invoke(app, ["run", str(TINY), "--quick", "--no-roofline", "-q", "--in-process",
                                 "--results-dir", str(res)], env={"LATBENCH_FAKE_BACKEND": "1"})
    assert r.exit_code == 0, r.output
    (csv,) = [p for p in res.glob("*.csv") if not p.name.endswith("-samples.csv")]
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    csv.with_suffix(".lock").symlink_to(victim)
    r = CliRunner().invoke(app, ["run", str(TINY), "--quick", "--no-roofline", "-q", "--in-process",
                                 "--results-dir", str(res), "--resume", str(csv)], env={"LATBENCH_FAKE_BACKEND": "1"})
    assert "symbolic link" in one_line_exit_2(r)
    assert victim.read_text() == "precious\n"


# ---------------------------------------------------------------- every command's -o

def _compare(a: Path, b: Path, *extra: str):
    return CliRunner().invoke(app, ["compare", str(a), str(b), "-q", *extra])


def _gate(a: Path, b: Path, *extra: str):
    return CliRunner().invoke(app, ["gate", "-b", str(a), "-c", str(b), "-q", "--allow-different-machine", *extra])


def _env(*extra: str):
    return CliRunner().invoke(app, ["env", *extra])


@pytest.mark.parametrize("command", ["compare", "gate", "env"])
def test_o_refuses_an_existing_file_and_force_replaces_it(tmp_path, two_runs, command):
    a, b = two_runs
    out = tmp_path / "out.txt"
    out.write_text("mine\n")
    invoke = {"compare": lambda *x: _compare(a, b, *x), "gate": lambda *x: _gate(a, b, *x), "env": _env}[command]
    assert "already exists" in one_line_exit_2(invoke("-o", str(out)))
    assert out.read_text() == "mine\n"
    r = invoke("--force", "-o", str(out))  # --force before or after -o
    assert r.exit_code in (0, 1) and out.read_text() != "mine\n", r.output
    out.write_text("mine\n")
    r = invoke("-o", str(out), "--force")
    assert r.exit_code in (0, 1) and out.read_text() != "mine\n", r.output


@pytest.mark.parametrize("command", ["compare", "gate", "env"])
def test_o_never_touches_a_run_or_writes_through_a_link(tmp_path, two_runs, command):
    a, b = two_runs
    invoke = {"compare": lambda *x: _compare(a, b, *x), "gate": lambda *x: _gate(a, b, *x), "env": _env}[command]
    before = digest(a.parent)
    for target in siblings(a):
        assert "files of the run" in one_line_exit_2(invoke("--force", "-o", str(target)))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "link.txt").symlink_to(victim)
    assert "symbolic link" in one_line_exit_2(invoke("--force", "-o", str(tmp_path / "link.txt")))
    assert digest(a.parent) == before and victim.read_text() == "precious\n"


@pytest.mark.parametrize("target", ["''", "a directory", "file/sub", "300 characters", "/dev/full", "/proc/version"])
@pytest.mark.parametrize("command", ["compare", "gate", "env"])
def test_o_onto_odd_places_is_one_line_exit_2(tmp_path, two_runs, command, target):
    a, b = two_runs
    invoke = {"compare": lambda *x: _compare(a, b, *x), "gate": lambda *x: _gate(a, b, *x), "env": _env}[command]
    (tmp_path / "file").write_text("x")
    path = {"''": "", "a directory": str(tmp_path), "file/sub": str(tmp_path / "file" / "sub"),
            "300 characters": str(tmp_path / ("x" * 300)), "/dev/full": "/dev/full",
            "/proc/version": "/proc/version"}[target]
    if target.startswith("/") and not Path(path).exists():
        pytest.skip(f"no {path}")
    for extra in ([], ["--force"]):
        one_line_exit_2(invoke(*extra, "-o", path))


def test_run_o_refuses_an_existing_file_before_measuring_anything(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("mine\n")
    res = tmp_path / "res"
    r = CliRunner().invoke(app, ["run", str(TINY), "--quick", "--no-roofline", "-q", "--format", "csv", "-o", str(out),
                                 "--results-dir", str(res)], env={"LATBENCH_FAKE_BACKEND": "1"})
    assert "already exists" in one_line_exit_2(r)
    assert out.read_text() == "mine\n" and not res.exists()


def test_run_o_path_is_resolved_before_user_code_can_change_directory(tmp_path, monkeypatch):
    """The path is made absolute when the option is parsed: a chdir later cannot move the output."""
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["run", str(TINY), "--quick", "--no-roofline", "-q", "--format", "csv", "-o", "out.csv",
                                 "--in-process", "--results-dir", "res"], env={"LATBENCH_FAKE_BACKEND": "1"})
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out.csv").read_text().startswith("schema_version") or (tmp_path / "out.csv").stat().st_size


# ---------------------------------------------------------------- report and audit

def _report(*args: str):
    return CliRunner().invoke(app, ["report", *args, "-q"])


def test_report_replaces_its_own_output_only_with_force(tmp_path, run_csv):
    out = tmp_path / "rep" / "report.md"
    assert _report(str(run_csv), "-o", str(out)).exit_code == 0
    first = digest(out.parent)
    assert "already exists" in one_line_exit_2(_report(str(run_csv), "-o", str(out)))
    assert digest(out.parent) == first
    r = _report(str(run_csv), "-o", str(out), "--force")
    assert r.exit_code == 0, r.output
    assert set(digest(out.parent)) == set(first)


def test_report_onto_a_results_file_is_refused_even_with_force(tmp_path, run_csv):
    other = write_run(tmp_path / "other", {"g=1": 1.0, "g=2": 1.3}, seed=3)
    before = digest(other.parent)
    for target in siblings(other):
        assert "files of the run" in one_line_exit_2(_report(str(run_csv), "-o", str(target), "--force"))
    assert digest(other.parent) == before


def test_report_figures_never_go_through_a_linked_figures_directory(tmp_path, run_csv):
    out_dir = tmp_path / "rep"
    out_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out_dir / "figures").symlink_to(elsewhere)
    assert "symbolic link" in one_line_exit_2(_report(str(run_csv), "-o", str(out_dir / "report.md"), "--force"))
    assert list(elsewhere.iterdir()) == [] and not (out_dir / "report.md").exists()


def test_report_never_writes_a_figure_through_a_link(tmp_path, run_csv):
    out = tmp_path / "rep" / "report.md"
    assert _report(str(run_csv), "-o", str(out)).exit_code == 0
    fig = sorted((out.parent / "figures").glob("*.png"))[0]
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    fig.unlink()
    fig.symlink_to(victim)
    assert "symbolic link" in one_line_exit_2(_report(str(run_csv), "-o", str(out), "--force"))
    assert victim.read_bytes() == b"precious"


def test_audit_outputs_follow_the_policy(tmp_path):
    from latbench.report.audit import write_audit

    class FakeAudit:
        target = "net"

    with pytest.raises(LatbenchError, match="plain file stem"):
        write_audit(FakeAudit(), tmp_path, "../escape")
    (tmp_path / "audit-net.md").write_text("mine\n")
    with pytest.raises(OutputRefused, match="already exists"):
        write_audit(FakeAudit(), tmp_path)
    assert (tmp_path / "audit-net.md").read_text() == "mine\n" and not (tmp_path / "figures").exists()


def test_atomic_write_text_replaces_a_link_never_its_target_and_never_a_runs_file(tmp_path, run_csv):
    from latbench.results.files import atomic_write_text

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "thresholds.yaml"
    link.symlink_to(victim)
    atomic_write_text(link, "new\n")
    assert victim.read_text() == "precious\n" and not link.is_symlink() and link.read_text() == "new\n"
    for target in siblings(run_csv):
        with pytest.raises(OutputRefused, match="files of the run"):
            atomic_write_text(target, "x")
    assert not run_csv.with_suffix(".lock").exists()


def test_the_o_callback_resolves_the_path_once_to_an_absolute_one(tmp_path, monkeypatch):
    from latbench.cli.common import check_output_option

    class Ctx:
        resilient_parsing = False
        params = {"force": True}

    monkeypatch.chdir(tmp_path)
    got = check_output_option(Ctx(), None, Path("sub") / "out.txt")
    assert got.is_absolute() and got == tmp_path.resolve() / "sub" / "out.txt" and got.force is True
    monkeypatch.chdir("/")  # what user code might do later: the path stays where it was given
    write_output(got, "x", force=got.force)
    assert (tmp_path / "sub" / "out.txt").read_text() == "x"


def test_the_cli_writer_applies_the_policy_at_write_time_too(tmp_path, run_csv):
    """What appeared after the options were checked (or a caller without the -o callback) is refused
    when the output is written: exit 2, the file untouched."""
    from latbench.cli.common import write_output as cli_write

    out = tmp_path / "late.txt"
    out.write_text("mine\n")
    for target in (out, run_csv.with_suffix(".lock")):
        with pytest.raises(SystemExit) as exc:
            cli_write("x", target)
        assert exc.value.code == 2
    assert out.read_text() == "mine\n" and not run_csv.with_suffix(".lock").exists()


def test_a_directory_part_that_is_a_dangling_link_is_refused(tmp_path):
    """Issue 22's corpus: `report --out DANGLING` (and -o DANGLING/x) created the link's target directory
    and wrote the report there."""
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for target in (tmp_path / "dangling" / "x.txt", tmp_path / "dangling" / "sub" / "x.txt"):
        with pytest.raises(OutputRefused, match="symbolic link to nothing"):
            write_output(target, "text")
    csv = write_run(tmp_path / "res", {"g=1": 1.0, "g=2": 1.2}, seed=1)
    r = CliRunner().invoke(app, ["report", str(csv), "--out", str(tmp_path / "dangling"), "-q"])
    assert r.exit_code == 2 and "symbolic link to nothing" in r.stderr, r.output
    assert not (tmp_path / "nowhere").exists()
