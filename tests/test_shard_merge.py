"""Issue 26 without a cluster: `run --shard i/n` measures a deterministic share of the groups, `latbench merge`
joins the shares into the run that an unsharded `run` writes (same schema, metadata keys, groups; read by
compare, gate and report), and refuses what does not belong, naming the file. Rows keep their machine
(schema 5: host, device_name), read from the metadata for older files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from latbench.cli import app
from latbench.errors import LatbenchError
from latbench.records import RESULT_COLUMNS, SCHEMA_VERSION
from latbench.results import schema
from latbench.results.read import read_run
from latbench.run import RunOptions, run
from latbench.run.merge import merge, parse_shard, shard_groups

SUITE = """\
suite: four
experiment: F
description: two small group convs at four scales (four groups)
builder: g2_group_conv
input: {height: 8, width: 8}
blocks: 1
batch: 1
scales: [1, 2, 3, 4]
widths: paper
cases:
  - name: g=1
    params: {groups: 1}
    widths: {gpu: {c: 8}, arm: {c: 8}}
  - name: g=2
    params: {groups: 2}
    widths: {gpu: {c: 8}, arm: {c: 8}}
claims:
  - text: "two groups cost at most ten times one"
    case: g=2
    than: g=1
    expect: at_most
    ratio: 10
"""


def _run(suite: Path, out: Path, **kw):
    opts = RunOptions(suites=(suite,), max_time=0.05, repeats=1, roofline=False, fake_backend=True, results_dir=out,
                      argv=("latbench", "run", str(suite), *([f"--shard={kw['shard']}"] if "shard" in kw else [])), **kw)
    return run(opts).suites[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The suite run whole, and as shards 1/2 and 2/2 (each in its own directory, as CI runners would)."""
    root = tmp_path_factory.mktemp("shards")
    suite = root / "four.yaml"
    suite.write_text(SUITE)
    full = _run(suite, root / "full")
    s1 = _run(suite, root / "s1", shard="1/2")
    s2 = _run(suite, root / "s2", shard="2/2")
    return {"root": root, "suite": suite, "full": full, "s1": s1, "s2": s2}


def _copy(result, dest: Path, name: str, edit_meta=None, edit_rows=None) -> Path:
    """A copy of a run's three files under another name, its metadata/rows edited."""
    dest.mkdir(parents=True, exist_ok=True)
    files = result.files
    csv = dest / f"{name}.csv"
    shutil.copy(files.samples, dest / f"{name}-samples.csv")
    rows = pd.read_csv(files.csv, dtype=str, keep_default_na=False)
    (edit_rows or (lambda r: r))(rows).to_csv(csv, index=False)
    meta = json.loads(files.meta.read_text())
    (edit_meta or (lambda m: None))(meta)
    (dest / f"{name}.json").write_text(json.dumps(meta))
    return csv


# ---------------------------------------------------------------- shares

def test_shares_are_deterministic_disjoint_and_cover_every_group():
    groups = list(range(11))
    for n in (1, 2, 3, 4, 11):
        shares = [shard_groups(groups, i, n) for i in range(1, n + 1)]
        assert sorted(g for s in shares for g in s) == groups  # every group once
        assert shares == [shard_groups(groups, i, n) for i in range(1, n + 1)]  # the same split every time
        assert max(map(len, shares)) - min(map(len, shares)) <= 1  # balanced
    assert shard_groups(groups, 2, 3) == [1, 4, 7, 10]
    assert parse_shard(" 2 / 3 ") == (2, 3)
    for bad in ("0/2", "3/2", "1/0", "a/b", "1", ""):
        with pytest.raises(LatbenchError, match="--shard"):
            parse_shard(bad)


def test_a_shard_run_measures_its_share_and_records_it(runs):
    s1, s2, full = runs["s1"], runs["s2"], runs["full"]
    assert s1.metadata["shard"] == "1/2" and s2.metadata["shard"] == "2/2" and full.metadata["shard"] is None
    assert s1.metadata["groups"] == {"finished": ["F x1", "F x3"], "pending": []}
    assert s2.metadata["groups"] == {"finished": ["F x2", "F x4"], "pending": []}
    assert {r["scale"] for r in s1.rows} == {1, 3} and {r["scale"] for r in s2.rows} == {2, 4}
    machines = {(r["host"], r["device_name"]) for r in full.rows}
    assert len(machines) == 1 and all(next(iter(machines)))  # schema 5: the machine that measured each row


def test_merged_shards_are_the_unsharded_run(runs, tmp_path):
    out = tmp_path / "merged" / "four.csv"
    res = merge([runs["s2"].files.csv, runs["s1"].files.csv], out, argv=["latbench", "merge"])  # any order
    assert (res.shards, res.groups, res.rows) == (2, ["F x1", "F x2", "F x3", "F x4"], 8)
    full, merged = read_run(runs["full"].files.csv), read_run(out)  # strict: what compare and gate read
    assert list(pd.read_csv(out, nrows=0).columns) == list(RESULT_COLUMNS)
    keys = ["experiment", "scale", "case", "mode", "device", "batch", "dtype", "memory_format", "threads"]
    assert merged.rows[keys].values.tolist() == full.rows[keys].values.tolist()  # same rows, same order
    assert set(merged.rows["run_id"]) == {merged.meta["run_id"]} == set(merged.samples["run_id"])
    assert len(merged.samples) == len(runs["s1"].samples) + len(runs["s2"].samples)
    assert set(full.meta) <= set(merged.meta)  # the metadata shape `run` writes, plus where it came from
    assert merged.meta["groups"] == full.meta["groups"] and merged.meta["shard"] is None
    assert merged.meta["status"] == "complete" and [m["shard"] for m in merged.meta["merged_from"]] == ["1/2", "2/2"]
    assert "--shard" not in " ".join(merged.meta["command"])
    assert len(merged.meta["claims"]) == len(runs["full"].metadata["claims"]) == 4  # one verdict per group
    assert (merged.rows["schema_version"] == SCHEMA_VERSION).all() and merged.rows["host"].notna().all()
    cli = CliRunner()
    for args in (["compare", "--baseline", str(runs["full"].files.csv), str(out)],
                 ["gate", "--baseline", str(runs["full"].files.csv), "--candidate", str(out)]):
        assert cli.invoke(app, args).exit_code in (0, 1), args  # read and judged (2 = could not read)
    r = cli.invoke(app, ["report", str(out), "-o", str(tmp_path / "rep" / "r.md"), "-q"])
    assert r.exit_code == 0, r.output


def test_merge_keeps_each_rows_machine_and_report_shows_a_column_per_device(runs, tmp_path):
    """Shards measured on two machines: each row keeps its host and device; the report has a column each."""
    def elsewhere(rows):
        return rows.assign(host="arm-board-7", device_name="Cortex-A57")

    other = _copy(runs["s2"], tmp_path / "board", "s2", edit_rows=elsewhere)
    out = tmp_path / "m.csv"
    r = CliRunner().invoke(app, ["merge", str(runs["s1"].files.csv), str(other), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "arm-board-7" in r.stderr
    rows = read_run(out).rows
    assert set(rows.loc[rows["scale"].isin([2, 4]), "host"]) == {"arm-board-7"}
    assert "arm-board-7" not in set(rows.loc[rows["scale"].isin([1, 3]), "host"])
    rep = CliRunner().invoke(app, ["report", str(out), "-o", str(tmp_path / "rep" / "r.md"), "-q"])
    assert rep.exit_code == 0, rep.output
    text = (tmp_path / "rep" / "r.md").read_text()
    assert "on each device" in text and "Cortex-A57, 1 thread(s)" in text  # one column per device


def _suite_name(m):
    m["suite"]["name"] = "other"


def _sha(m):
    m["suite"]["sha256"] = "0" * 64


def _settings(m):
    m["policy"]["max_time_s"] = 9.0


def _backend(m):
    m["device_settings"]["backend"] = "cpu:perf_counter"


def _split(m):
    m["shard"] = "2/3"


@pytest.mark.parametrize("edit, said", [
    (_suite_name, "is a run of suite 'other'"),
    (_sha, "its suite file differs"),
    (_settings, "policy.max_time_s: 9.0 here, 0.05 there"),
    (_backend, "timing backend"),
    (_split, "is shard 2/3"),
], ids=["suite", "sha256", "settings", "backend", "split"])
def test_merge_refuses_shards_of_another_run_naming_the_file(runs, tmp_path, edit, said):
    odd = _copy(runs["s2"], tmp_path / "odd", "s2", edit_meta=edit)
    r = CliRunner().invoke(app, ["merge", str(runs["s1"].files.csv), str(odd), "-o", str(tmp_path / "m.csv")])
    assert r.exit_code == 2 and said in r.stderr and str(odd) in r.stderr, r.stderr
    assert not (tmp_path / "m.csv").exists()


def test_merge_refuses_duplicates_missing_shards_and_non_shards(runs, tmp_path):
    cli, s1, s2 = CliRunner(), str(runs["s1"].files.csv), str(runs["s2"].files.csv)
    again = _copy(runs["s1"], tmp_path / "again", "s1")
    same_groups = _copy(runs["s1"], tmp_path / "dup", "s1", edit_meta=lambda m: m.update(shard="2/2"))
    cases = [([s1, s2, str(again)], "is shard 1/2, and so is"),
             ([s1, str(same_groups)], "group 'F x1' is in this file and in"),
             ([s1], "shard(s) 2/2 missing"),
             ([s1, s2, str(runs["full"].files.csv)], "is not a shard")]
    for files, said in cases:
        r = cli.invoke(app, ["merge", *files, "-o", str(tmp_path / "m.csv")])
        assert r.exit_code == 2 and said in r.stderr, (files, r.stderr)
    existing = tmp_path / "exists.csv"
    existing.write_text("x\n")
    r = cli.invoke(app, ["merge", s1, s2, "-o", str(existing)])
    assert r.exit_code == 2 and "never replaces" in r.stderr and existing.read_text() == "x\n"


def test_a_share_beyond_the_groups_or_malformed_exits_2(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("LATBENCH_FAKE_BACKEND", "1")
    for shard, said in (("5/5", "share 5/5 is empty: four has 4 group(s)"), ("3/2", "is not a share")):
        r = CliRunner().invoke(app, ["run", str(runs["suite"]), "--shard", shard, "--no-roofline", "-q",
                                     "--results-dir", str(tmp_path / "r")])
        assert r.exit_code == 2 and said in r.stderr, r.stderr
    assert not (tmp_path / "r").exists()  # refused before anything was reserved


def test_rows_older_than_schema_5_read_their_machine_from_the_metadata():
    df = pd.DataFrame({"schema_version": [4, 4], "case": ["a", "b"]})
    meta = {"fingerprint": {"hostname": "box", "cpu_model": "Xeon"}, "device_settings": {}}
    schema.migrate(df, 4, meta)
    assert df[["host", "device_name"]].values.tolist() == [["box", "Xeon"]] * 2
    gpu = {"fingerprint": {"hostname": "g"}, "device_settings": {"cuda_device_name": "NVIDIA H100"}}
    assert schema.identity_of_meta(gpu) == {"host": "g", "device_name": "NVIDIA H100"}
    assert schema.identity_of_meta({}) == {"host": "", "device_name": ""}
    mixed = pd.DataFrame({"host": ["n1", None, ""], "device_name": ["A", "", None]})
    schema.fill_identity(mixed, meta)
    assert mixed.values.tolist() == [["n1", "A"], ["box", "Xeon"], ["box", "Xeon"]]  # rows that name theirs keep it
    plain = pd.DataFrame({"schema_version": [4]})
    assert schema.migrate(plain, 4)[["host", "device_name"]].values.tolist() == [["", ""]]  # no metadata: empty


def test_merge_o_goes_through_the_file_policy(runs, tmp_path):
    """Issue 22, second attack: merge -o onto a 300-character name, under a file, a dangling link or beside
    another run's samples was a traceback or a write through the link; through a linked parent directory
    it is written in the real one."""
    cli, s1, s2 = CliRunner(), str(runs["s1"].files.csv), str(runs["s2"].files.csv)
    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling.csv").symlink_to(tmp_path / "nowhere" / "x.csv")
    other = runs["full"].files
    shutil.copy(other.samples, tmp_path / "y-samples.csv")
    for target, said in ((tmp_path / ("m" * 296 + ".csv"), "File name too long"),
                         (tmp_path / "file" / "x.csv", "Not a directory"),
                         (tmp_path / "dangling.csv", "symbolic link"),
                         (tmp_path / "y.csv", "is one of the files of the run")):
        r = cli.invoke(app, ["merge", s1, s2, "-o", str(target)])
        assert r.exit_code == 2 and said in r.stderr and "Traceback" not in r.output, r.output
    assert not (tmp_path / "nowhere").exists()
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "via").symlink_to(real)
    r = cli.invoke(app, ["merge", s1, s2, "-o", str(tmp_path / "via" / "m.csv"), "-q"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in real.iterdir()) == ["m-samples.csv", "m.csv", "m.json"]
