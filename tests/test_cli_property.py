"""A CLI-level property test (issue 14): hypothesis drives every command with generated arguments,
files (suites, results CSVs, samples, metadata JSON, thresholds) and environment quirks (a full disk
via a patched writer, a read-only --out via a patched mkdir). The property, for every example:

- the exit code is one of 0, 1, 2, 130, 143;
- no traceback (the command ends in SystemExit, never another exception);
- nothing outside the command's declared outputs changed;
- no earlier result (the finished run every example starts with) is altered.

CI: a fixed, fast sample (<= 60 s). Nightly: LATBENCH_PROPERTY_EXAMPLES=2000 explores randomly.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from latbench.cli import app
from latbench.results import files as results_files

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "data" / "tiny.yaml"
N = int(os.environ.get("LATBENCH_PROPERTY_EXAMPLES", "0"))
PROFILE = settings(max_examples=N or 20, deadline=None, derandomize=not N, database=None,
                   suppress_health_check=list(HealthCheck))
EXIT_CODES = {0, 1, 2, 130, 143}

weird_text = st.one_of(st.sampled_from(["", " ", "nan", "inf", "-inf", "1.7e308", "-1", "0", "1e23", "\u2713",
                                        "../x", "/dev/null", "a" * 300, "ok", "failed", "running", "\x00"]),
                       st.text(max_size=8))
weird_json = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)),
                          lambda k: st.one_of(st.lists(k, max_size=3), st.dictionaries(st.text(max_size=6), k,
                                                                                      max_size=3)), max_leaves=8)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """One finished run of the tiny suite (fake backend): the 'earlier result' every example keeps."""
    d = tmp_path_factory.mktemp("corpus")
    os.environ["LATBENCH_FAKE_BACKEND"] = "1"
    try:
        r = CliRunner().invoke(app, ["run", str(TINY), "--quick", "--no-roofline", "-q", "--results-dir", str(d)])
    finally:
        del os.environ["LATBENCH_FAKE_BACKEND"]
    assert r.exit_code == 0, r.output
    return d


def _snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(d.rglob("*"))}


@st.composite
def mutated_run(draw, corpus: Path, dest: Path) -> Path:
    """A copy of the corpus run with one of its files damaged; returns its results CSV."""
    dest.mkdir()
    for p in corpus.iterdir():
        shutil.copy(p, dest / p.name)
    csv = next(p for p in dest.glob("*.csv") if not p.name.endswith("-samples.csv"))
    target = draw(st.sampled_from(["csv", "samples", "meta", "none"]))
    if target == "meta":
        meta = csv.with_suffix(".json")
        kind = draw(st.sampled_from(["field", "text", "drop"]))
        if kind == "field":
            data = json.loads(meta.read_text())
            data[draw(st.sampled_from(sorted(data)))] = draw(weird_json)
            meta.write_text(json.dumps(data))
        elif kind == "text":
            meta.write_text(draw(weird_text))
        else:
            meta.unlink()
    elif target in ("csv", "samples"):
        path = csv if target == "csv" else csv.with_name(csv.stem + "-samples.csv")
        lines = path.read_text().splitlines()
        kind = draw(st.sampled_from(["cell", "truncate", "drop_column", "empty"]))
        if kind == "cell" and len(lines) > 1:
            row = draw(st.integers(1, len(lines) - 1))
            cells = lines[row].split(",")
            cells[draw(st.integers(0, len(cells) - 1))] = draw(weird_text).replace(",", ";").replace("\n", " ")
            lines[row] = ",".join(cells)
        elif kind == "truncate":
            text = "\n".join(lines)
            lines = [text[: draw(st.integers(0, len(text)))]]
        elif kind == "drop_column":
            header = lines[0].split(",")
            i = draw(st.integers(0, len(header) - 1))
            lines = [",".join(c for j, c in enumerate(ln.split(",")) if j != i) for ln in lines]
        else:
            lines = []
        path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return csv


def _suite_text(draw) -> str:
    text = TINY.read_text()
    kind = draw(st.sampled_from(["same", "replace", "sweep", "garbage"]))
    if kind == "replace":
        old = draw(st.sampled_from(["groups: 2", "c: 8", "height: 8", "blocks: 2", "batch: 1", "scales: [1, 2, 3, 4]",
                                    "suite: tiny", "builder: g2_group_conv", "widths: paper"]))
        key = old.split(":")[0]
        text = text.replace(old, f"{key}: {json.dumps(draw(weird_json))}", 1)
    elif kind == "sweep":
        axis = draw(st.sampled_from(["batch", "threads", "dtype", "memory_format", "mode"]))
        text += f"sweep: {{{axis}: {json.dumps(draw(weird_json))}}}\n"
    elif kind == "garbage":
        text = draw(st.text(max_size=200))
    return text


@given(data=st.data())
@PROFILE
def test_every_command_answers_cleanly_and_keeps_earlier_results(corpus, monkeypatch, data):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    with tempfile.TemporaryDirectory(prefix="latbench-prop-") as tmp:
        box = Path(tmp)
        good = box / "good"
        good.mkdir()
        for p in corpus.iterdir():
            shutil.copy(p, good / p.name)
        good_csv = next(p for p in good.glob("*.csv") if not p.name.endswith("-samples.csv"))
        bad_csv = data.draw(mutated_run(corpus, box / "bad"))
        command = data.draw(st.sampled_from(["run", "report", "compare", "gate", "calibrate", "list", "env"]))
        files = data.draw(st.lists(st.sampled_from([str(good_csv), str(bad_csv), str(box / "missing.csv"),
                                                    str(box / "bad"), str(box / "good" / "*.csv")]),
                                   min_size=1, max_size=3))
        outputs: list[Path] = []
        if command == "run":
            suite = box / "suite.yaml"
            suite.write_text(_suite_text(data.draw))
            out = box / "runs"
            outputs.append(out)
            args = ["run", str(suite), "--quick", "--no-roofline", "-q", "--results-dir", str(out),
                    *data.draw(st.sampled_from([[], ["--isolate"], ["--seed", "-1"], ["--case-timeout", "inf"],
                                                ["--max-time", "0.05"], ["--max-cases", "1"], ["--batch", "3"],
                                                ["--resume", str(bad_csv)]]))]
            if "--resume" in args:
                outputs.append(box / "bad")  # a resume writes into the run it continues
        elif command == "report":
            out = box / "rep"
            outputs.append(out)
            args = ["report", *files, "--out", str(out), "-q",
                    "--name", data.draw(st.sampled_from(["report.md", "r.md", "", "../x.md", "sub/x.md", "\u2713.md"]))]
        elif command == "compare":
            args = ["compare", *files, "-q", "--format", data.draw(st.sampled_from(["table", "json", "csv", "markdown"]))]
        elif command == "gate":
            args = ["gate", "-b", files[0], "-c", files[-1], "-q",
                    "--threshold", data.draw(st.sampled_from(["10%", "0", "-5", "abc", "1e308", "nan", "200%"]))]
            if data.draw(st.booleans()):
                thr = box / "thr.yaml"
                thr.write_text(data.draw(st.one_of(weird_text, st.just("cases: {a: 5%}\n"))))
                args += ["--thresholds", str(thr)]
        elif command == "calibrate":
            out = box / "cal" / "t.yaml"
            outputs.append(out.parent)
            args = ["calibrate", *files, "--output", str(out), "-q"]
        else:
            args = [command]
        quirk = data.draw(st.sampled_from(["none", "none", "disk full", "read-only out"]))
        if quirk == "disk full":
            def full(path, text):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            monkeypatch.setattr(results_files, "_atomic_write_text", full)
        elif quirk == "read-only out":
            real_mkdir = Path.mkdir

            def read_only_mkdir(self, *a, **kw):
                if any(str(self).startswith(str(o)) for o in outputs):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
                return real_mkdir(self, *a, **kw)
            monkeypatch.setattr(Path, "mkdir", read_only_mkdir)
        before = _snapshot(box)
        try:
            r = CliRunner().invoke(app, args)
        finally:
            monkeypatch.undo()
            monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
        note = f"{args} ({quirk}):\n{r.output}"
        assert r.exit_code in EXIT_CODES, note
        assert r.exception is None or isinstance(r.exception, SystemExit), f"{note}\n{r.exception!r}"
        assert "Traceback" not in r.output, note
        after = _snapshot(box)
        declared = [str(o.relative_to(box)) for o in outputs]
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        if "--resume" in args and r.exit_code == 0:
            declared = [d for d in declared if d != "bad"] + ["bad"]
        stray = {k for k in changed if not any(k == d or k.startswith(d + os.sep) for d in declared)}
        assert not stray, f"{note}\nchanged outside declared outputs: {sorted(stray)}"
        assert {k: v for k, v in after.items() if k.startswith("good")} == \
               {k: v for k, v in before.items() if k.startswith("good")}, note
