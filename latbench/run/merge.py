"""Shards without a cluster: `run --shard i/n` measures a deterministic share of every suite's groups
(for a CI matrix of runners), and `latbench merge` joins the shard files into one run, written as
`latbench run` writes one (same columns, same metadata keys), so compare, gate and report read it.

The share of shard i of n is the groups at index i-1, i-1+n, i-1+2n, ... of the suite's groups in run
order: it depends only on the suite and the options, so every machine of a matrix computes the same
split (the groups of a suite alternate between shards, which spreads slow scales evenly). Merging
refuses shards of different suites, suite files (sha256), settings (runfile.SETTINGS, --shard aside),
timing backends or splits, a shard given twice, a group present in two files, and a missing shard,
each error naming the file. Each row keeps the host and device that measured it (schema 5).
"""

from __future__ import annotations

import math
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from latbench.errors import LatbenchError, ResultsError
from latbench.records import SCHEMA_VERSION, CaseSpec
from latbench.results import schema
from latbench.results.files import OutputRefused, check_output, create_new_file, resolve_output, run_texts
from latbench.results.read import SAMPLES_SUFFIX, Run, RunPaths, read_run, read_runs, text_rows
from latbench.run.options import option_name
from latbench.run.runfile import SETTINGS, _differences, _norm, now_utc

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str, api: bool = False) -> tuple[int, int]:
    """--shard "i/n" as (i, n), 1 <= i <= n; LatbenchError (exit 2) naming the option otherwise."""
    flag = option_name("shard", api)
    m = _SHARD.match(str(text))
    i, n = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    if not m or n < 1 or not 1 <= i <= n:
        raise LatbenchError(f"{text!r} is not a share i/n with 1 <= i <= n", where=flag,
                            hint=f"e.g. {flag} 1/4 on the first of four machines, ... {flag} 4/4 on the last")
    return i, n


def shard_groups(groups: Sequence[Any], i: int, n: int) -> list[Any]:
    """Shard i of n (1-based): the groups at index i-1, i-1+n, ... in run order."""
    return [g for k, g in enumerate(groups) if k % n == i - 1]


def shard_specs(specs: list[CaseSpec], shard: str, suite: str, api: bool = False) -> list[CaseSpec]:
    """The cases of `specs` whose group is in the share; LatbenchError when the share is empty."""
    from latbench.run.pipeline import groups_of

    i, n = parse_shard(shard, api)
    groups = groups_of(specs)
    if i > len(groups):
        raise LatbenchError(f"share {i}/{n} is empty: {suite} has {len(groups)} group(s)", where=option_name("shard", api),
                            hint=f"split {suite} into at most {len(groups)} shards")
    return [s for g in shard_groups(groups, i, n) for s in g]


# ---------------------------------------------------------------- merging shard files

@dataclass
class MergeResult:
    csv: Path
    samples: Path
    meta: Path
    suite: str
    shards: int
    groups: list[str]
    rows: int
    hosts: list[str] = field(default_factory=list)


def merge(paths: Sequence[str | Path], output: str | Path, argv: Sequence[str] = ()) -> MergeResult:
    """Join the shard files in `paths` into the run `output` (.csv; its -samples.csv and .json beside
    it, all new). LatbenchError (exit 2) naming the offending file for anything that does not belong."""
    out = _output(output)
    runs = read_runs(list(paths), "shard")
    shards = [(_shard_of(r), r) for r in runs]
    first_share, first = shards[0]
    n = first_share[1]
    seen_share: dict[int, Run] = {}
    seen_group: dict[str, Run] = {}
    for (i, count), run in shards:
        _check_same(first, run, first_share, (i, count))
        if i in seen_share:
            raise ResultsError(f"is shard {i}/{n}, and so is {seen_share[i].path}", where=str(run.path),
                               hint="give each shard's results file once")
        seen_share[i] = run
        for label in run.meta.get("groups", {}).get("finished", []):
            if label in seen_group:
                raise ResultsError(f"group {label!r} is in this file and in {seen_group[label].path}",
                                   where=str(run.path), hint="give the files of one --shard split, each once")
            seen_group[label] = run
    missing = [f"{i}/{n}" for i in range(1, n + 1) if i not in seen_share]
    if missing:
        raise ResultsError(f"shard(s) {', '.join(missing)} missing: the merged run would lack their groups",
                           where=str(out), hint=f"give the results file of every shard 1/{n} .. {n}/{n}")
    _check_keys(shards)
    run_id = uuid.uuid4().hex[:12]
    ordered = sorted(shards, key=lambda s: s[0][0])
    order: dict[tuple[int, str], int] = {}
    for (i, _), run in ordered:
        for j, label in enumerate(run.meta["groups"]["finished"]):
            order[(i, label)] = (i - 1) + j * n
    rows, samples = [], []
    for (i, _), run in ordered:
        labels = list(run.meta["groups"]["finished"])
        known = schema.identity_of_meta(run.meta)
        for pos, r in enumerate(text_rows(run.path)):
            r = {**{c: _text(v) for c, v in _added(r).items()}, **r}
            for col in schema.IDENTITY_COLUMNS:
                r[col] = r.get(col) or known[col]
            r.update(schema_version=str(SCHEMA_VERSION), run_id=run_id)
            rows.append((order.get((i, _label_of(r, labels)), math.inf), i, pos, r))
        for pos, s in enumerate(text_rows(run.paths.samples)):
            s.update(run_id=run_id)
            samples.append((order.get((i, _label_of(s, labels)), math.inf), i, pos, s))
    rows.sort(key=lambda t: t[:3])
    samples.sort(key=lambda t: t[:3])
    labels = [label for _, label in sorted((k, label) for (_, label), k in order.items())]
    meta = _metadata(ordered, run_id, labels, [r for *_, r in rows], out, argv)
    _write(out, [r for *_, r in rows], [s for *_, s in samples], meta)
    read_run(out)  # what compare and gate will read: readable, or an error now
    hosts = list(dict.fromkeys(str(r.get("host") or "") for *_, r in rows))
    return MergeResult(out, RunPaths(out).samples, RunPaths(out).meta, str(first.meta["suite"].get("name")), n,
                       labels, len(rows), hosts)


def _output(output: str | Path) -> Path:
    out = Path(output)
    if out.suffix != ".csv" or out.name.endswith(SAMPLES_SUFFIX):
        raise LatbenchError("is not a results file name (NAME.csv)", where=str(output),
                            hint="give -o the results CSV to write, e.g. -o results/g1-merged.csv")
    paths = RunPaths(out)
    for p in (paths.csv, paths.samples, paths.meta, paths.lock):  # the one file policy: no link, no run's file
        try:
            check_output(p, force=False, option="-o")
        except OutputRefused as exc:
            if os.path.lexists(p) and "already exists" in str(exc):
                raise LatbenchError("already exists, and merge never replaces a run's files", where=str(p),
                                    hint="give -o a new file name") from None
            raise
    return resolve_output(out)


def _shard_of(run: Run) -> tuple[int, int]:
    shard = run.meta.get("shard")
    if not shard:
        raise ResultsError("is not a shard: its run had no --shard", where=str(run.path),
                           hint="give the files that 'latbench run --shard i/n' wrote (one per share)")
    try:
        return parse_shard(str(shard))
    except LatbenchError:
        raise ResultsError(f"metadata says shard {shard!r}, which is not i/n", where=str(run.paths.meta),
                           hint="restore the .json that 'latbench run --shard' wrote") from None


def _check_same(first: Run, run: Run, first_share: tuple[int, int], share: tuple[int, int]) -> None:
    """ResultsError unless `run` is a shard of the same run as `first` (suite, file, split, settings)."""
    where, other = str(run.path), first.path.name
    a, b = first.meta.get("suite") or {}, run.meta.get("suite") or {}
    if a.get("name") != b.get("name"):
        raise ResultsError(f"is a run of suite {b.get('name')!r}, but {other} is of {a.get('name')!r}", where=where,
                           hint="merge the shards of one suite at a time")
    if a.get("sha256") != b.get("sha256"):
        raise ResultsError(f"its suite file differs from {other}'s (sha256 {str(b.get('sha256'))[:12]} here, "
                           f"{str(a.get('sha256'))[:12]} there)", where=where,
                           hint="run every shard from the same suite file (the same commit)")
    if share[1] != first_share[1]:
        raise ResultsError(f"is shard {share[0]}/{share[1]}, but {other} is shard {first_share[0]}/{first_share[1]}",
                           where=where, hint="give the shards of one --shard split")
    diffs = []
    for key, flag in SETTINGS.items():
        if key != "shard" and (key in first.meta or key in run.meta):
            found = _differences(key, _norm(run.meta.get(key)), _norm(first.meta.get(key)))
            if found:
                diffs.append(", ".join(f"{name}: {x} here, {y} there" for name, x, y in found) + f" ({flag})")
    backends = [(m.get("device_settings") or {}).get("backend") for m in (run.meta, first.meta)]
    if backends[0] != backends[1]:
        diffs.append(f"timing backend: {backends[0]} here, {backends[1]} there")
    if diffs:
        raise ResultsError(f"was run with other settings than {other}: " + "; ".join(diffs), where=where,
                           hint="run every shard with the same options; only --shard differs")


def _check_keys(shards: list[tuple[tuple[int, int], Run]]) -> None:
    """A case (records.KEY_COLUMNS) measured in two files: refused, naming the second."""
    seen: dict[tuple[str, ...], Path] = {}
    for _, run in shards:
        for r in run.rows[list(schema.KEY_COLUMNS)].astype(str).itertuples(index=False):
            key = tuple(r)
            if key in seen and seen[key] != run.path:
                raise ResultsError(f"case {'/'.join(key)} is in this file and in {seen[key]}", where=str(run.path),
                                   hint="give the files of one --shard split, each once")
            seen[key] = run.path


def _added(row: dict[str, Any]) -> dict[str, Any]:
    """Columns of later schemas a row lacks, with the value they imply (results.schema.SCHEMA_ADDED)."""
    return {c: v for added in schema.SCHEMA_ADDED.values() for c, v in added.items() if c not in row}


def _text(v: Any) -> str:
    return "" if isinstance(v, float) and math.isnan(v) else str(v)


def _label_of(r: dict[str, Any], labels: Sequence[str]) -> str:
    """The group label (CaseSpec.group_label) among `labels` that a row or sample belongs to; "" if none.
    Threads and mode are part of a label only for a sweep point that sets them: both readings are tried."""
    def num(v: Any) -> str:
        try:
            f = float(v)
            return str(int(f)) if f.is_integer() else str(v)
        except (TypeError, ValueError):
            return str(v or "")

    batch, dtype, fmt = num(r.get("batch")), str(r.get("dtype") or "float32"), str(r.get("memory_format") or "")
    point = [f"b{batch}" if batch not in ("1", "") else "", dtype if dtype != "float32" else "",
             fmt if fmt not in ("contiguous", "") else ""]
    threads = f"t{num(r.get('threads'))}" if num(r.get("threads")) else ""
    base = f"{r.get('experiment')} x{num(r.get('scale'))}"
    for t in ("", threads):
        for m in ("", str(r.get("mode") or "")):
            label = " ".join(p for p in [base, *point, t, m] if p)
            if label in labels:
                return label
    return ""


def _metadata(shards: list[tuple[tuple[int, int], Run]], run_id: str, labels: list[str], rows: list[dict[str, Any]],
              out: Path, argv: Sequence[str]) -> dict[str, Any]:
    """The merged run's metadata: the keys `latbench run` writes (the first shard's settings, --shard
    cleared), the groups in run order, and where each shard came from (merged_from)."""
    first = shards[0][1].meta
    meta = {k: v for k, v in first.items() if k not in ("resumed_at_utc", "interrupted_by", "claims")}
    paths = RunPaths(out)
    meta.update(schema_version=SCHEMA_VERSION, run_id=run_id, status=schema.COMPLETE, shard=None,
                command=_without_shard(first.get("command") or []),
                started_at_utc=min(str(r.meta.get("started_at_utc") or "") for _, r in shards),
                finished_at_utc=max(str(r.meta.get("finished_at_utc") or "") for _, r in shards),
                groups={"finished": labels, "pending": []},
                failed_cases=sum(r.get("status") == schema.FAILED for r in rows),
                files={"results": paths.csv.name, "samples": paths.samples.name},
                merged_at_utc=now_utc(), merge_command=list(argv),
                merged_from=[{"file": str(r.path), "run_id": r.meta.get("run_id"), "shard": r.meta.get("shard"),
                              **schema.identity_of_meta(r.meta), "started_at_utc": r.meta.get("started_at_utc"),
                              "finished_at_utc": r.meta.get("finished_at_utc"), "roofline": r.meta.get("roofline")}
                             for _, r in shards])
    claims = [c for _, r in shards for c in (r.meta.get("claims") or [])]
    if any("claims" in r.meta for _, r in shards):
        meta["claims"] = claims  # each shard judged its own groups: together, the unsharded run's verdicts
    return meta


def _without_shard(command: Sequence[str]) -> list[str]:
    out, skip = [], False
    for a in command:
        if skip:
            skip = False
        elif a == "--shard":
            skip = True
        elif not a.startswith("--shard="):
            out.append(a)
    return out


def _write(out: Path, rows: list[dict[str, Any]], samples: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """The three files, each created new and whole (metadata last); none left behind on failure."""
    paths = RunPaths(out)
    made: list[Path] = []
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for path, text in zip((paths.csv, paths.samples, paths.meta), run_texts(rows, samples, meta)):
            create_new_file(path, text)
            made.append(path)
    except FileExistsError as exc:
        for p in made:
            p.unlink(missing_ok=True)
        raise LatbenchError("appeared while merge wrote, and merge never replaces a run's files",
                            where=str(exc.filename or out), hint="give -o a new file name") from None
    except OSError as exc:
        for p in made:
            p.unlink(missing_ok=True)
        raise ResultsError(f"cannot write the merged run: {exc.strerror or exc}", where=str(out),
                           hint="give -o a writable path") from None
