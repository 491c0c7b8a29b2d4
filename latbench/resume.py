"""Resuming an interrupted run: which groups are finished, whether the new command matches the old
run (same suite file, device, machine and settings), and the command line that resumes it.

A group (one experiment x scale, its cases measured interleaved) is the unit that finishes: its rows
reach the disk together, so a group is either all there or absent.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Iterable

from latbench.errors import ResultsError
from latbench.records import CaseSpec
from latbench.results import read as _results
from latbench.results.files import RunFiles

# The run settings in a run's metadata, declared once (session.run_settings writes exactly these keys).
# SETTINGS: what must be equal for the new rows to belong in the old table, and the option that sets it.
SETTINGS = {"device": "--device", "platform_widths": "--platform", "widths_mode": "--widths", "quick": "--quick",
            "schedule": "--schedule", "modes": "--modes", "seed": "--seed", "threads": "--threads",
            "batch": "--batch", "policy": "--max-time/--min-time/--target/--quick",
            "profile": "--profile", "roofline_columns": "--roofline/--no-roofline",
            "latency_semantics": "--latency", "l2": "--l2", "repeats": "--repeats"}
# OTHER_SETTINGS: the suite, machine and device (checked on their own below) and what may change on resume.
OTHER_SETTINGS = ("suite", "fingerprint", "device_settings", "case_timeout_s")


def group_label(experiment: Any, scale: Any, point: str = "") -> str:
    """'G2 x1', or 'G2 x1 b8 bfloat16' for a sweep point: one measurement group (runner.run_group)."""
    return f"{experiment} x{scale}" + (f" {point}" if point else "")


def spec_group(spec: CaseSpec) -> str:
    return group_label(spec.experiment, spec.scale, spec.point)


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
            wanted.setdefault(spec_group(s), set()).add((key, _text(s.threads) if s.threads else None))
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


def open_run(csv: Path) -> RunFiles:
    """The files of an earlier run, rows kept as the exact text on disk (see latbench.results.read.open_run)."""
    return _results.open_run(csv)


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
