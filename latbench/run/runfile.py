"""A run file's life, in one place: reserved (or reopened to --resume, checked to be the same run),
its metadata written once with the run's settings, each finished group saved, and its final status
(complete, interrupted by a signal, or stopped by an error) written as it ends.

A group (one experiment x scale, its cases measured interleaved) is the unit that finishes: its rows
reach the disk together, so a group is either all there or absent. A run without a results
directory (latbench.measure() without results_dir) keeps the same rows and metadata in memory.
"""

from __future__ import annotations

import json
import shlex
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from latbench import faults
from latbench.errors import ResultsError
from latbench.records import SCHEMA_VERSION, CaseSpec
from latbench.results.files import RunFiles, ResultsWriteError
from latbench.results.read import open_run
from latbench.results.schema import COMPLETE, FAILED, INTERRUPTED, RUNNING

# The run settings in a run's metadata, declared once (run.session.run_settings writes exactly these keys).
# SETTINGS: what must be equal for the new rows to belong in the old table, and the option that sets it.
SETTINGS = {"device": "--device", "platform_widths": "--platform", "widths_mode": "--widths", "quick": "--quick",
            "schedule": "--schedule", "modes": "--modes", "seed": "--seed", "threads": "--threads",
            "batch": "--batch", "policy": "--max-time/--min-time/--target/--quick",
            "profile": "--profile", "roofline_columns": "--roofline/--no-roofline",
            "latency_semantics": "--latency", "l2": "--l2", "repeats": "--repeats", "shard": "--shard",
            "fleet": "--on/--devices"}
# OTHER_SETTINGS: the suite, machine and device (checked on their own below) and what may change on resume.
OTHER_SETTINGS = ("suite", "fingerprint", "device_settings", "case_timeout_s", "in_process")


# The columns (text on disk) that place a row in its group; threads only where the sweep set them.
_ROW_FIELDS = ("experiment", "scale", "case", "mode", "batch", "dtype", "memory_format")
_ROW_DEFAULTS = {"dtype": "float32", "memory_format": "contiguous"}  # older files lack them


def _row_key(r: dict[str, Any]) -> tuple[str, ...]:
    return tuple(_text(r.get(f, _ROW_DEFAULTS.get(f, ""))) for f in _ROW_FIELDS)


def _text(v: Any) -> str:
    """A value as the CSV holds it ('1', not '1.0'), whether read as text or written as numbers."""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


def _wanted(specs: Iterable[CaseSpec], modes: Iterable[str]) -> dict[str, set[tuple[tuple[str, ...], str | None]]]:
    """{group label: {(row key, threads or None), ...}}: the rows each group must have, in run order."""
    modes = tuple(modes)
    wanted: dict[str, set] = {}
    for s in specs:
        for m in ((s.mode,) if s.mode else modes):
            key = tuple(_text(v) for v in (s.experiment, s.scale, s.case, m, s.batch, s.dtype, s.memory_format))
            wanted.setdefault(s.group_label, set()).add((key, _text(s.threads) if s.threads else None))
    return wanted


def _present(rows: Iterable[dict[str, Any]]) -> tuple[set, set]:
    rows = list(rows)
    return {_row_key(r) for r in rows}, {(_row_key(r), _text(r.get("threads", ""))) for r in rows}


def group_status(specs: Iterable[CaseSpec], modes: Iterable[str], rows: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """{"finished": [...], "pending": [...]} group labels, in run order. Finished = every case x mode
    of the group (a sweep point: its own modes, batch, dtype, format, threads) has a row."""
    keys, with_threads = _present(rows)
    status: dict[str, list[str]] = {"finished": [], "pending": []}
    for label, want in _wanted(specs, modes).items():
        done = all((k in keys) if t is None else ((k, t) in with_threads) for k, t in want)
        status["finished" if done else "pending"].append(label)
    return status


def rows_of_groups(specs: Iterable[CaseSpec], modes: Iterable[str], labels: Iterable[str],
                   rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows (results or samples) that belong to the groups named in `labels`, in their order."""
    wanted, labels = _wanted(specs, modes), set(labels)
    keys = {k for label, want in wanted.items() if label in labels for k, _ in want}
    threads = {(k, t) for label, want in wanted.items() if label in labels for k, t in want if t is not None}
    swept = {k for k, _ in threads}
    return [r for r in rows if _row_key(r) in keys
            and (_row_key(r) not in swept or (_row_key(r), _text(r.get("threads", ""))) in threads)]


def check_same_run(old: dict[str, Any], new: dict[str, Any], csv: Path, command: str) -> None:
    """ResultsError unless `new` (this command's metadata) could have written `old`'s rows."""
    where = str(csv)
    fix = f"repeat the run's own options: {command}"
    o_suite, n_suite = old.get("suite", {}), new["suite"]
    if o_suite.get("name") != n_suite["name"]:
        raise ResultsError(f"cannot resume: it is a run of suite {o_suite.get('name')!r}, not {n_suite['name']!r}",
                           where=where, hint=f"give {o_suite.get('path')} as the suite")
    if o_suite.get("sha256") != n_suite["sha256"]:
        raise ResultsError(f"cannot resume: {n_suite['path']} changed since the run (sha256 "
                           f"{str(o_suite.get('sha256'))[:12]} then, {n_suite['sha256'][:12]} now)", where=where,
                           hint="restore the suite file as it was, or start a new run without --resume")
    o_fp, n_fp = old.get("fingerprint", {}), new["fingerprint"]
    for key, name in (("hostname", "host"), ("cpu_model", "CPU")):
        if key in o_fp and o_fp.get(key) != n_fp.get(key):
            raise ResultsError(f"cannot resume: the run was on {name} {o_fp.get(key)!r}, this is {n_fp.get(key)!r}",
                               where=where, hint="resume on the same machine, or start a new run without --resume")
    o_gpu = old.get("device_settings", {}).get("cuda_device_name")
    n_gpu = new.get("device_settings", {}).get("cuda_device_name")
    if o_gpu != n_gpu and new["device"] == old.get("device"):
        raise ResultsError(f"cannot resume: the run was on GPU {o_gpu!r}, this is {n_gpu!r}", where=where,
                           hint="resume with the same GPU (CUDA_VISIBLE_DEVICES), or start a new run")
    o_backend = old.get("device_settings", {}).get("backend")
    n_backend = new.get("device_settings", {}).get("backend")
    if o_backend and o_backend != n_backend:
        raise ResultsError(f"cannot resume: the run was timed by {o_backend}, this would be by {n_backend}",
                           where=where, hint="resume with the same timing backend (LATBENCH_FAKE_BACKEND as it was)")
    diffs = []
    for key, flag in SETTINGS.items():
        found = _differences(key, _norm(old[key]), _norm(new.get(key))) if key in old else []
        if found:
            diffs.append(", ".join(f"{name}: {a} then, {b} now" for name, a, b in found) + f" ({flag})")
    if diffs:
        raise ResultsError("cannot resume with other settings: " + "; ".join(diffs), where=where, hint=fix)


def _norm(v: Any) -> Any:
    """Compare as JSON sees it (tuples are lists, 0.3 stays 0.3)."""
    return json.loads(json.dumps(v, default=str))


def _differences(name: str, a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    """(dotted name, old, new) of each differing leaf: 'policy.max_time_s', not the whole policy."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(f"{name}.{k}", a.get(k), b.get(k))]
    return [] if a == b else [(name, a, b)]


def resume_command(argv: list[str], suite: str, csv: Path) -> str:
    """`argv` (the run's own command line) for `suite` alone, ending in `--resume CSV`.

    Other suites of a multi-suite command (arguments ending in .yaml/.yml) and any earlier --resume
    are dropped.
    """
    args, skip = [], False
    for a in argv[1:]:
        if skip:
            skip = False
        elif a == "--resume":
            skip = True
        elif not a.startswith("--resume=") and (a == str(suite) or not a.endswith((".yaml", ".yml"))):
            args.append(a)
    return shlex.join(["latbench", *args, "--resume", str(csv)])


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunFile:
    """One run's rows, samples and metadata: on disk (`files`, locked while this process writes
    them) or, with no results directory, in memory. Statuses come from results.schema."""

    def __init__(self, files: RunFiles | None, metadata: dict[str, Any]):
        self.files = files
        self.metadata = metadata
        self.rows: list[dict[str, Any]] = files.rows if files is not None else []
        self.samples: list[dict[str, Any]] = files.sample_rows if files is not None else []
        self._specs: Sequence[CaseSpec] = ()
        self._modes: tuple[str, ...] = ()

    # ------------------------------------------------------------ opening

    @classmethod
    def create(cls, results_dir: Path | None, name: str, settings: dict[str, Any], argv: Sequence[str],
               ceilings: Any) -> "RunFile":
        """A new run, status 'running': its files reserved and locked in `results_dir` (None: in memory)."""
        files = None
        if results_dir is not None:
            files = RunFiles.reserve(Path(results_dir).absolute(), name, settings["device"])
            files.lock()
        metadata = {"schema_version": SCHEMA_VERSION, "run_id": uuid.uuid4().hex[:12], "status": RUNNING,
                    "command": list(argv), **settings, "started_at_utc": now_utc(),
                    "roofline": ceilings.metadata() if ceilings else None}
        if files is not None:
            metadata["files"] = {"results": files.csv.name, "samples": files.samples.name}
            files.metadata = metadata
        return cls(files, metadata)

    @classmethod
    def resume(cls, csv: Path, settings: dict[str, Any], argv: Sequence[str], suite_path: str,
               case_timeout: float) -> "RunFile":
        """An interrupted run reopened (ResultsError unless this command could have written it), locked,
        its metadata marked running again."""
        stem = Path(csv).absolute()
        for name in (stem, stem.with_name(stem.stem + "-samples.csv"), stem.with_suffix(".json")):
            if name.is_symlink():  # the run lives elsewhere: resumed here, it would be written in two places
                raise ResultsError("is a symbolic link, and latbench never writes a run through one", where=str(name),
                                   hint="resume the run where its files are (give --resume their real path)")
        files = open_run(stem)
        check_same_run(files.metadata, settings, csv,
                       resume_command(files.metadata.get("command") or list(argv), suite_path, csv))
        files.lock()
        metadata = files.metadata
        for stale in ("interrupted_by", "finished_at_utc"):
            metadata.pop(stale, None)
        metadata.update(status=RUNNING, case_timeout_s=case_timeout,
                        resumed_at_utc=[*metadata.get("resumed_at_utc", []), now_utc()])
        return cls(files, metadata)

    @property
    def run_id(self) -> str:
        return str(self.metadata["run_id"])

    # ------------------------------------------------------------ groups

    def groups(self, rows: Iterable[dict[str, Any]] | None = None) -> dict[str, list[str]]:
        return group_status(self._specs, self._modes, self.rows if rows is None else rows)

    def start(self, specs: Sequence[CaseSpec], modes: Sequence[str]) -> tuple[list[CaseSpec], list[str]]:
        """(the cases still to measure, the groups already finished): rows of unfinished groups (a run
        cut short inside a group) are dropped, and the file says which groups are pending."""
        self._specs, self._modes = list(specs), tuple(modes)
        done = self.groups()
        self.rows[:] = rows_of_groups(specs, modes, done["finished"], self.rows)
        self.samples[:] = rows_of_groups(specs, modes, done["finished"], self.samples)
        self.metadata["groups"] = done
        self._flush()
        return [s for s in specs if s.group_label in done["pending"]], done["finished"]

    def save_group(self, rows: list[dict[str, Any]], samples: list[dict[str, Any]]) -> str:
        """Append a finished group's rows and samples and write them (atomically); its label."""
        for s in samples:
            s.setdefault("process", 0)
        self.metadata["groups"] = self.groups([*self.rows, *rows])
        self.rows.extend(rows)
        self.samples.extend(samples)
        self._flush()
        labels = group_status(self._specs, self._modes, rows)["finished"]
        return labels[0] if labels else ""

    # ------------------------------------------------------------ endings

    def complete(self) -> None:
        self.metadata.update(status=COMPLETE, failed_cases=sum(r["status"] == FAILED for r in self.rows),
                             groups=self.groups(), finished_at_utc=now_utc())
        self.write_meta()

    def interrupted(self, signal_name: str) -> dict[str, list[str]]:
        """Status 'interrupted' by a signal (a second Ctrl-C cannot cut this save short); the group state."""
        with faults.signals_ignored():
            state = self.groups()
            self.metadata.update(status=INTERRUPTED, interrupted_by=signal_name, groups=state,
                                 finished_at_utc=now_utc())
            self._flush()
        return state

    def stopped_by_error(self, exc: Exception, resume_cmd: str) -> None:
        """Status 'interrupted' (resumable) by `exc`, as far as the disk lets us; a write error gets the
        resume command as its hint."""
        with faults.signals_ignored():
            self.metadata.update(status=INTERRUPTED, interrupted_by=f"{type(exc).__name__}: {exc}"[:300],
                                 groups=self.groups(), finished_at_utc=now_utc())
            try:
                self.write_meta()
            except OSError:
                pass  # the disk is full: the metadata says 'running', which readers report as interrupted
        if isinstance(exc, ResultsWriteError):
            exc.hint = f"{exc.hint}; the finished groups are kept: resume with: {resume_cmd}"

    def write_meta(self) -> None:
        if self.files is not None:
            self.files.write_meta()

    def _flush(self) -> None:
        if self.files is not None:
            self.files.flush()

    def unlock(self) -> None:
        if self.files is not None:
            self.files.unlock()
