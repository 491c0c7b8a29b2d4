"""Finding and reading results files: paths grouped into runs, and a typed Run read back from them.

Every reader of results (compare, gate, calibrate, report, --resume) comes through here, so every one
sees the same dtypes (ids are strings), the same status vocabulary and the same schema migrations.
"""

from __future__ import annotations

import glob
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from latbench.errors import ResultsError
from latbench.results import schema
from latbench.results.schema import KEY_COLUMNS, SAMPLE_COLUMNS, SCHEMA_VERSION, STRING_COLUMNS
from latbench.results.files import RunFiles

SAMPLES_SUFFIX = "-samples.csv"
# Fingerprint fields that must agree for latencies to be comparable (pyperf's _CHECKED_METADATA).
FINGERPRINT_FIELDS = ("device", "cpu_model", "gpus", "gpu_driver", "torch", "threads")


# --------------------------------------------------------------------------- finding

def samples_path(results_csv: str | Path) -> Path:
    p = Path(results_csv)
    return p.with_name(p.stem + SAMPLES_SUFFIX)


def meta_path(results_csv: str | Path) -> Path:
    return Path(results_csv).with_suffix(".json")


@dataclass(frozen=True)
class RunPaths:
    """The three files of one run: <stem>.csv (results), <stem>-samples.csv, <stem>.json (metadata)."""

    csv: Path

    @property
    def samples(self) -> Path:
        return samples_path(self.csv)

    @property
    def meta(self) -> Path:
        return meta_path(self.csv)

    @property
    def lock(self) -> Path:
        return self.csv.with_suffix(".lock")

    @classmethod
    def of(cls, path: str | Path) -> "RunPaths":
        """The run a file belongs to, from its name: X.csv, X-samples.csv, X.json or X.lock -> X.csv."""
        p = Path(path)
        if p.name.endswith(SAMPLES_SUFFIX):
            return cls(p.with_name(p.name[: -len(SAMPLES_SUFFIX)] + ".csv"))
        if p.suffix in (".json", ".lock"):
            return cls(p.with_suffix(".csv"))
        if p.suffix == ".csv":
            return cls(p)
        raise ResultsError("is not a results file (expected .csv, -samples.csv or .json)", where=str(path),
                           hint="give the files 'latbench run' wrote, e.g. results/*.csv or a results directory")


def expand_paths(specs: Iterable[str | Path | RunPaths]) -> list[RunPaths]:
    """The runs named by specs, in the order first named, each once.

    A spec is a results, samples or metadata file (all three map to their run, so a shell-expanded
    results/* or results/*.csv works), a directory (every run in it), a quoted glob, or a comma-separated
    list of these. ResultsError when a file does not exist, a pattern or directory holds no run, or a
    samples file has no results CSV beside it. The metadata (or lock) of a run that has not written its
    CSV yet (it has not finished a group) is passed over, unless nothing else is named.
    """
    out: list[RunPaths] = []
    orphans: list[str] = []  # metadata/lock files of runs that have no CSV yet
    for spec in specs:
        if isinstance(spec, RunPaths):
            out.extend([spec] if spec not in out else [])
            continue
        for part in (p.strip() for p in str(spec).split(",")):
            if not part:
                continue
            p = Path(part)
            if p.is_dir():
                files = [q for q in sorted(p.glob("*.csv")) if not q.name.endswith(SAMPLES_SUFFIX)]
                if not files:
                    raise ResultsError("holds no results CSV", where=part,
                                       hint="give the directory 'latbench run --results-dir' wrote to")
            elif p.exists():
                files = [p]
            elif glob.has_magic(part):
                files = [Path(q) for q in sorted(glob.glob(part)) if not q.endswith(".lock")]
                if not files:
                    raise ResultsError("matches no results CSV", where=part,
                                       hint="check the directory or pattern; results files end in .csv")
            else:
                raise ResultsError("no such results file", where=part,
                                   hint="give a results/*.csv written by 'latbench run'")
            for f in files:
                run = RunPaths.of(f)
                if run.csv.is_file():
                    if run not in out:
                        out.append(run)
                elif f.name.endswith(SAMPLES_SUFFIX) or not (run.meta.is_file() or run.lock.is_file()):
                    raise ResultsError(f"has no results CSV {run.csv.name} beside it", where=str(f),
                                       hint="keep the .csv that 'latbench run' wrote beside its other files")
                else:
                    orphans.append(str(f))
    if not out and orphans:
        raise ResultsError("names a run that has no results yet (no CSV beside its metadata)", where=orphans[0],
                           hint="a run writes its CSV when its first group finishes; wait, or give finished runs")
    return out


def split_first(specs: Sequence[str | Path]) -> tuple[list[RunPaths], list[RunPaths]]:
    """(runs of the first spec that names a run, every other run named): a shell-expanded list whose
    first file is X-samples.csv gives run X first, and X.csv after it is not counted again."""
    runs = expand_paths(specs)
    for spec in specs:
        try:
            first = expand_paths([spec])
        except ResultsError:  # only a run without results yet: passed over, as in expand_paths
            continue
        return first, [r for r in runs if r not in first]
    return [], []


# --------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class Run:
    """One run read back: its result rows, raw samples and metadata, with declared dtypes.

    status is the run's status as it reads now: a run whose metadata says 'running' but whose lock
    nobody holds (its process died) reads as 'interrupted'.
    """

    paths: RunPaths
    rows: pd.DataFrame
    samples: pd.DataFrame
    meta: dict[str, Any]
    schema_version: int = SCHEMA_VERSION  # as on disk (rows are migrated to the current schema)
    status: str = schema.COMPLETE

    @property
    def path(self) -> Path:
        return self.paths.csv

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or (self.rows["run_id"].iloc[0] if len(self.rows) else ""))

    def fingerprint(self) -> dict[str, str]:
        """The FINGERPRINT_FIELDS of this run, as comparable strings."""
        fp = self.meta.get("fingerprint") or {}
        gpus = fp.get("gpus") or []
        return {"device": str(self.meta.get("device", "")), "cpu_model": str(fp.get("cpu_model", "")),
                "gpus": ", ".join(str(g.get("name", "")) for g in gpus) or "none",
                "gpu_driver": ", ".join(sorted({str(g.get("driver", "")) for g in gpus})) or "none",
                "torch": str(fp.get("torch", "")), "threads": str(self.meta.get("threads", ""))}


def _read_csv(p: Path, label: str = "") -> pd.DataFrame:
    """pd.read_csv with the id columns as strings; ResultsError when it is no CSV."""
    try:
        header = pd.read_csv(p, nrows=0).columns
        twice = sorted({c.rsplit(".", 1)[0] for c in header if re.fullmatch(r".+\.\d+", c) and c.rsplit(".", 1)[0] in header})
        if twice:  # pandas would read the first one and rename the others: a reader must not pick one
            raise ValueError(f"column {', '.join(twice)} appears twice")
        return pd.read_csv(p, dtype={c: str for c in STRING_COLUMNS if c in header})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise ResultsError(f"{label}not a readable CSV ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                           where=str(p), hint="re-run 'latbench run' to regenerate it") from None


def read_results(path: str | Path) -> pd.DataFrame:
    """A results CSV with declared dtypes, checked and migrated to the current schema (ResultsError: why, the fix)."""
    p = Path(path)
    if not p.is_file():
        raise ResultsError("no such results file", where=str(path), hint="give a results/*.csv written by 'latbench run'")
    df = _read_csv(p)
    if "schema_version" in df.columns:
        number = pd.to_numeric(df["schema_version"], errors="coerce")
        if number.max() > SCHEMA_VERSION:
            raise ResultsError(f"uses schema {number.max():g}; this latbench reads schema {SCHEMA_VERSION}",
                               where=str(path), hint="upgrade latbench")
        odd = df[~((number >= schema.OLDEST_SCHEMA) & (number == number.round()))]
        if len(odd):
            raise ResultsError(f"line {int(odd.index[0]) + 2}: schema_version '{odd['schema_version'].iloc[0]}' is "
                               "not a schema number", where=str(path), hint="the file is damaged; re-run 'latbench run'")
        versions = set(number.astype(int))
        schema.migrate(df, min(versions) if versions else schema.OLDEST_SCHEMA)
    missing = [c for c in ("schema_version", *KEY_COLUMNS, "latency_ms") if c not in df.columns]
    if missing:
        raise ResultsError(f"not a latbench results file: missing columns {', '.join(missing)}", where=str(path),
                           hint="give the main results CSV (not *-samples.csv) written by 'latbench run'")
    return schema.apply_dtypes(df)


def read_samples(path: str | Path) -> pd.DataFrame:
    """A raw samples CSV with declared dtypes (missing sweep columns of older schemas filled in)."""
    p = Path(path)
    df = _read_csv(p, "samples are ")
    for col, value in schema.KEY_DEFAULTS.items():  # schema 1 had one implied value
        if col not in df.columns and len(df.columns):
            df[col] = value
    for added in schema.SAMPLE_ADDED.values():  # columns later schemas appended
        for col, value in added.items():
            if col not in df.columns and len(df.columns):
                df[col] = value
    missing = [c for c in SAMPLE_COLUMNS if c not in df.columns]
    if missing:
        raise ResultsError(f"not a latbench samples file: missing columns {', '.join(missing)}", where=str(p),
                           hint="re-run 'latbench run' to regenerate it")
    return schema.apply_dtypes(df)


MAX_META_BYTES = 64 << 20  # a run's metadata is kilobytes; more is not one (and is never read whole)


class _Unreadable(OSError):
    def __str__(self) -> str:
        return str(self.args[0])


def small_text(p: Path) -> str:
    """A small file's text (a run's metadata, a thresholds file): a regular file only (a FIFO or /dev/zero
    there would block or never end: OSError, reported like any unreadable file), at most MAX_META_BYTES."""
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise _Unreadable("not a regular file (a FIFO or a device)")
        data = f.read(MAX_META_BYTES + 1)
    if len(data) > MAX_META_BYTES:
        raise _Unreadable(f"larger than {MAX_META_BYTES >> 20} MB")
    return data.decode("utf-8")



def _json(text: str) -> Any:
    """json.loads, with a document nested too deeply for the parser (100,000 '[') as a ValueError, like
    any other JSON it cannot read (json raises RecursionError there)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text[:1], 0) from None


def _read_meta(p: Path) -> dict[str, Any]:
    try:
        meta = _json(small_text(p))
    except FileNotFoundError:
        raise ResultsError("metadata file is missing", where=str(p),
                           hint="keep the .json that 'latbench run' wrote beside the CSV") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"metadata is not readable JSON ({exc})", where=str(p),
                           hint="re-run 'latbench run' to regenerate it") from None
    if not isinstance(meta, dict):
        raise ResultsError("metadata is not a JSON object", where=str(p), hint="give the .json written by 'latbench run'")
    for key, kinds in _META_TYPES.items():  # a hand-edited or foreign file: one line, not a traceback later
        if meta.get(key) is not None and not isinstance(meta[key], kinds):
            raise ResultsError(f"metadata field {key!r} is a {type(meta[key]).__name__}, not a "
                               f"{' or '.join(k.__name__ for k in kinds)}", where=str(p),
                               hint="restore the .json that 'latbench run' wrote")
    return meta


# The metadata fields readers use, and the JSON types 'latbench run' writes them as (None: absent is fine).
_META_TYPES: dict[str, tuple[type, ...]] = {
    "status": (str,), "run_id": (str,), "device": (str,), "fingerprint": (dict,), "device_settings": (dict,),
    "suite": (dict,), "policy": (dict,), "groups": (dict,), "roofline": (dict,), "files": (dict,),
    "threads": (int, str), "seed": (int,), "modes": (list,), "command": (list,), "platform_widths": (str,),
    "batch": (int,), "claims": (list,),
}


def lock_held(paths: RunPaths) -> bool:
    """Whether a live process holds the run's lock (it is being written now). False without fcntl."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fd = os.open(paths.lock, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we took
    return False


def run_status(meta: dict[str, Any], paths: RunPaths) -> str:
    """The run's status as it reads now (see Run.status); complete when the metadata has none."""
    status = str(meta.get("status") or schema.COMPLETE)
    if status == schema.RUNNING and not lock_held(paths):
        return schema.INTERRUPTED
    return status


def read_run(path: str | Path | RunPaths, strict: bool = True) -> Run:
    """Read one run. Every defect is a ResultsError (exit 2).

    strict (compare, gate, calibrate): the run must be finished, have rows, samples and a metadata
    fingerprint, every row a known status (a line cut short reads as truncation) and every ok row a
    latency. Not strict (report): a missing samples or metadata file reads as empty, an unfinished run
    is read as far as it got.
    """
    paths = path if isinstance(path, RunPaths) else RunPaths(Path(path))
    p = paths.csv
    rows = read_results(p)
    if "status" not in rows.columns or "run_id" not in rows.columns:
        col = "status" if "status" not in rows.columns else "run_id"
        raise ResultsError(f"not a latbench results file: missing column {col}", where=str(p),
                           hint="give the main results CSV written by 'latbench run'")
    versions = pd.to_numeric(rows["schema_version"], errors="coerce").dropna()
    version = int(versions.min()) if len(versions) else SCHEMA_VERSION
    if strict:
        _check_rows(rows, p)
    if strict or paths.meta.is_file():
        meta = _read_meta(paths.meta)
    else:
        meta = {}
    status = run_status(meta, paths) if meta else schema.COMPLETE
    if strict:
        if "fingerprint" not in meta:
            raise ResultsError("metadata has no fingerprint", where=str(paths.meta),
                               hint="give the .json written by 'latbench run'")
        if status != schema.COMPLETE:
            died = " (its process died)" if meta.get("status") == schema.RUNNING else ""
            raise ResultsError(f"the run is {status}{died}, its results are incomplete", where=str(p),
                               hint="wait for it to finish, or re-run 'latbench run'")
    if strict or paths.samples.is_file():
        if not paths.samples.is_file():
            raise ResultsError("raw samples file is missing", where=str(paths.samples),
                               hint="keep the -samples.csv that 'latbench run' wrote beside the CSV")
        samples = read_samples(paths.samples)
        if strict:
            _check_samples(samples, paths.samples)
            if (why := schema.disagreement(rows, samples, meta)) is not None:
                raise ResultsError(f"{why}: its files are not of one run", where=str(p), hint="keep a run's three files together, as 'latbench run' wrote them")
    else:
        samples = pd.DataFrame({c: pd.Series(dtype=str if c in STRING_COLUMNS else float) for c in SAMPLE_COLUMNS})
    if meta:  # rows from before schema 5 name their machine from the run's metadata
        schema.fill_identity(rows, meta)
    return Run(paths, rows, samples, meta, version, status)


def _check_samples(samples: pd.DataFrame, p: Path) -> None:
    """Every sample a finite positive latency (text, -1, inf or a line cut short is a damaged file)."""
    lat = pd.to_numeric(samples["latency_ms"], errors="coerce")
    bad = samples[~((lat > 0) & (lat < float("inf")))]
    if len(bad) or (len(samples) and not p.read_bytes().endswith(b"\n")):
        line = int(bad.index[0]) + 2 if len(bad) else len(samples) + 1
        raise ResultsError(f"line {line} has no valid latency_ms: the samples file is damaged or truncated",
                           where=str(p), hint="re-run 'latbench run' (or copy the file again)")


def _check_rows(rows: pd.DataFrame, p: Path) -> None:
    if rows.empty:
        raise ResultsError("has no result rows", where=str(p), hint="re-run 'latbench run'; the run may have "
                                                                    "been interrupted before its first group")
    odd = rows[~rows["status"].isin(schema.ROW_STATUSES)]
    if len(odd) or not p.read_bytes().endswith(b"\n"):
        line = int(odd.index[0]) + 2 if len(odd) else len(rows) + 1
        raise ResultsError(f"line {line} is incomplete: the file looks truncated", where=str(p),
                           hint="re-run 'latbench run' (or copy the file again)")
    lat = pd.to_numeric(rows["latency_ms"], errors="coerce")
    bad = rows[(rows["status"] == schema.OK) & ~((lat > 0) & (lat < float("inf")))]  # inf is not a latency
    if len(bad):
        raise ResultsError(f"row {int(bad.index[0]) + 2} has status ok but no valid latency_ms "
                           f"({bad['latency_ms'].iloc[0]!r})", where=str(p),
                           hint="the file is damaged or truncated; re-run 'latbench run'")
    dup = rows.duplicated(list(KEY_COLUMNS), keep=False)
    if dup.any():
        first = rows[dup].iloc[0]
        raise ResultsError(f"case {'/'.join(str(first[c]) for c in KEY_COLUMNS)} appears twice", where=str(p),
                           hint="give each run's own file; do not concatenate result files")


def read_runs(specs: Sequence[str | Path | RunPaths], side: str = "", strict: bool = True) -> list[Run]:
    """expand_paths(specs), each run read with read_run. ResultsError when specs name no run."""
    paths = expand_paths(specs)
    if not paths:
        what = f"{side} " if side else ""
        raise ResultsError(f"no {what}results given", hint=f"name one or more results CSVs{' for the ' + side if side else ''}")
    return [read_run(p, strict) for p in paths]


def partial_runs(specs: Sequence[str | Path | RunPaths]) -> list[Run]:
    """The runs among `specs` that did not finish (killed, interrupted): a report covers their finished groups."""
    return [r for r in read_runs(specs, strict=False) if r.status != schema.COMPLETE]


# --------------------------------------------------------------------------- --resume

def open_run(csv: Path) -> RunFiles:
    """The files of an earlier run, to append to: rows kept as the exact text on disk (no float/int round trip)."""
    read_results(csv)  # schema and readability checks, with their messages
    paths = RunPaths(Path(csv))
    if not paths.meta.is_file():
        raise ResultsError(f"no metadata file {paths.meta.name} beside it", where=str(csv),
                           hint="--resume needs the .csv and .json that 'latbench run' wrote; start a new run instead")
    try:
        metadata = _json(small_text(paths.meta))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"unreadable metadata ({exc})", where=str(paths.meta), hint="start a new run instead") from None
    if not isinstance(metadata, dict) or not metadata.get("run_id") or not isinstance(metadata.get("suite"), dict):
        raise ResultsError("not the metadata of a 'latbench run' (no run_id or suite)", where=str(paths.meta),
                           hint="give the .csv of a run that 'latbench run' wrote")
    if not paths.samples.is_file():
        raise ResultsError(f"the raw samples file {paths.samples.name} is missing", where=str(csv),
                           hint="restore it beside the .csv, or start a new run instead")
    files = RunFiles(paths.csv, paths.samples, paths.meta, metadata=metadata)
    files.rows = text_rows(paths.csv)
    files.sample_rows = text_rows(paths.samples)
    other = sorted({str(r.get("run_id")) for r in files.rows} - {str(metadata["run_id"])})
    if other:
        raise ResultsError(f"rows of other runs ({', '.join(other)}) are mixed in", where=str(csv),
                           hint="resume only a file written by one 'latbench run'")
    return files


def text_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV as the exact text on disk ('' for empty cells)."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise ResultsError(f"not a readable CSV ({type(exc).__name__})", where=str(path),
                           hint="start a new run instead") from None


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from path; {} when it is missing, unreadable or not an object (caches, metadata)."""
    try:
        data = _json(small_text(Path(path)))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
