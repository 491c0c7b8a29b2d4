"""Writing files, in one place: a run's results (tidy CSV, raw samples CSV, metadata JSON, its lock) and
every other output a command writes (-o FILE, a report, calibrated thresholds).

A run reserves its file names atomically (the metadata file is created exclusively, already holding
JSON, so a name is never shared and never a 0-byte file), and holds a lock on them (<stem>.lock, flock)
while it writes, so a `--resume` of a run that is still going is refused. Tables are rewritten
atomically (temp file + rename) after each group finishes, so a crash or Ctrl-C leaves the last
complete state on disk, never a half file. No name of a run is ever followed if it is a symbolic link.

The output policy (`check_output`, `write_output`), for every command: the path is resolved once; an
existing file is never replaced unless the caller says so (`force`: the user gave --force); a
symbolic link, a directory or a special file (/dev/full, a FIFO) is never a target; a run's files and
their siblings (<stem>.csv, -samples.csv, .json, .lock of any run) are never a target, even with
force; the text is written to a temporary file beside the target and renamed onto it (or, without
force, hard-linked to its name, which fails if the name was taken meanwhile), so the target is the
old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from latbench.errors import ResultsError
from latbench.results.schema import RESULT_COLUMNS, SAMPLE_COLUMNS

SAMPLES_SUFFIX = "-samples.csv"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_PEEK_BYTES = 1 << 16  # how much of a file is read to tell whether it belongs to a run
_FULL = "free disk space or fix the directory's permissions"
_NO_HARD_LINKS = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOSYS, getattr(errno, "ENOTSUP", -1),
                  getattr(errno, "EOPNOTSUPP", -1)}


class ResultsWriteError(ResultsError, OSError):
    """A results file could not be written (read-only directory, disk full, ...); the old file is intact.
    A LatbenchError (exit 2, one line) and still an OSError for callers that catch those."""


class OutputRefused(ResultsError, OSError):
    """An output target the file policy refuses (an existing file without --force, a link, a run's file).
    A LatbenchError (exit 2, one line) and an OSError, like ResultsWriteError, for callers that catch those."""


def _cannot_write(exc: OSError, where: Path, hint: str) -> ResultsWriteError:
    return ResultsWriteError(f"cannot write: {exc.strerror or exc}", where=str(where), hint=hint)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` via a temp file and a rename: the old file or the new one, never half.

    For outputs that replace their file by design (a cache, calibrated thresholds after their own
    check): a symbolic link at `path` is replaced by the file, never written through; a directory, a
    special file and any run's file (run_of) are refused (OutputRefused). ResultsWriteError (a
    LatbenchError) when the disk refuses; no temp file is left behind. Both are OSErrors too.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _cannot_write(exc, path, "give a writable file path") from None
    if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise OutputRefused("is not a regular file", where=str(path), hint="give the path of a file")
    run = run_of(Path(path))
    if run is not None:
        raise OutputRefused(f"is one of the files of the run {run.name}, and a run's files are never overwritten",
                            where=str(path), hint="give another file name")
    _write_run_file(path, text, "free disk space or fix the directory's permissions")


def run_texts(rows: list[dict[str, Any]], samples: list[dict[str, Any]], metadata: dict[str, Any]
              ) -> tuple[str, str, str]:
    """A run's three files as text: results CSV, samples CSV (the schema's columns, in order) and metadata JSON."""
    return (pd.DataFrame(rows, columns=list(RESULT_COLUMNS)).to_csv(index=False),
            pd.DataFrame(samples, columns=list(SAMPLE_COLUMNS)).to_csv(index=False),
            json.dumps(metadata, indent=2, sort_keys=True, default=str) + "\n")


def _write_run_file(path: Path, text: str, hint: str) -> None:
    """A run's own file (or a checked output) rewritten atomically; ResultsWriteError when the disk refuses."""
    try:
        _atomic_write_text(path, text)
    except OSError as exc:
        raise _cannot_write(exc, path, hint) from None


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = _temp_file(path.parent, path.name, text)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _temp_file(directory: Path, name: str, text: str | bytes) -> Path:
    """A new file beside `name` in `directory` holding `text` (flushed to disk), created exclusively
    (never through a link), readable as the umask allows. Removed again if writing it fails."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    for _ in range(100):
        tmp = directory / f".{name[:40]}.{secrets.token_hex(4)}.tmp"  # short: a long target name still fits
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW | _CLOEXEC, 0o666)
        except FileExistsError:
            continue
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(directory))


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def create_new_file(path: Path, text: str | bytes) -> None:
    """Create `path` holding `text`, only if no file (nor link) has that name: FileExistsError otherwise.
    Atomic: the name appears with its whole content (a temp file hard-linked to it), never empty."""
    tmp = _temp_file(path.parent, path.name, text)
    try:
        try:
            os.link(tmp, path, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS or isinstance(exc, FileExistsError):
                raise
            _create_by_open(path, text)  # a file system without hard links
    finally:
        _unlink_quietly(tmp)


def _create_by_open(path: Path, text: str | bytes) -> None:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW | _CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _unlink_quietly(path)
        raise


# ---------------------------------------------------------------- the output policy

def resolve_output(path: str | os.PathLike[str]) -> Path:
    """The absolute path an output goes to, resolved once: its directory with symbolic links resolved,
    its own name kept as given (a link there is refused, never followed). OutputRefused for a path
    that names no file ('', '.', '..', a trailing '/')."""
    text = os.fspath(path)
    name = os.path.basename(text)
    if not text.strip() or name in ("", ".", "..") or "\0" in text:
        raise OutputRefused("is not a file name", where=repr(text) if text.strip() == "" else text,
                            hint="give the path of a file, e.g. -o out.txt")
    parent = existing = os.path.dirname(os.path.abspath(text))
    while not os.path.lexists(existing) and existing != os.path.dirname(existing):
        existing = os.path.dirname(existing)  # the nearest part of the path that is there
    if os.path.islink(existing) and not os.path.exists(existing):  # creating it would create the link's target
        raise OutputRefused("is a symbolic link to nothing, which latbench never writes through", where=existing,
                            hint="remove the link, or give a path inside a real directory")
    return Path(os.path.realpath(parent)) / name


def _peek(path: Path) -> bytes:
    """The first bytes of a regular file (never through a link, never blocking); b"" otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    except OSError:
        return b""
    try:
        return os.read(fd, _PEEK_BYTES) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        return b""
    finally:
        os.close(fd)


def _header(data: bytes) -> set[str]:
    return {c.strip().strip('"') for c in data.split(b"\n", 1)[0].decode("utf-8", "replace").split(",")}


def _is_results_csv(path: Path) -> bool:
    return {"schema_version", "run_id", "status"} <= _header(_peek(path))


def _is_samples_csv(path: Path) -> bool:
    return {"run_id", "round", "latency_ms"} <= _header(_peek(path))


def _is_run_meta(path: Path, lock: Path) -> bool:
    """A run's metadata: a JSON object naming a run_id or its files, or (older versions' reservation)
    an empty file with a lock beside it."""
    data = _peek(path)
    if not data.strip():
        return os.path.lexists(path) and os.path.lexists(lock)
    if len(data) >= _PEEK_BYTES:  # too long to parse here: a run's metadata names its keys near the top
        return b'"run_id"' in data or b'"files"' in data or b'"schema_version"' in data
    try:
        meta = json.loads(data.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return False
    return isinstance(meta, dict) and ("run_id" in meta or isinstance(meta.get("files"), dict))


def run_of(path: Path) -> Path | None:
    """The results CSV of the run that `path` is (or would be) one of the files of: <stem>.csv,
    <stem>-samples.csv, <stem>.json or <stem>.lock beside a run's files, or a file that is itself a
    run's results, samples or metadata (a copy under another name). None when it is no run's."""
    name, parent = path.name, path.parent
    stems = []
    if name.endswith(SAMPLES_SUFFIX):
        stems.append(name[: -len(SAMPLES_SUFFIX)])
    for suffix in (".csv", ".json", ".lock"):
        if name.endswith(suffix):
            stems.append(name[: -len(suffix)])
    for stem in stems:
        csv, lock = parent / f"{stem}.csv", parent / f"{stem}.lock"
        if _is_results_csv(csv) or _is_samples_csv(parent / f"{stem}{SAMPLES_SUFFIX}") \
                or _is_run_meta(parent / f"{stem}.json", lock):
            return csv
    if _is_results_csv(path) or _is_samples_csv(path) or _is_run_meta(path, path.with_suffix(".lock")):
        return path
    return None


def check_output(path: str | os.PathLike[str], force: bool = False, option: str = "-o") -> Path:
    """The resolved target of an output (resolve_output), or OutputRefused naming it: a symbolic link,
    a directory or a special file, always; a run's file or a sibling of one (run_of), even with force;
    an existing file, unless force."""
    target = resolve_output(path)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:  # a name too long, a file where a directory should be
        raise _cannot_write(exc, target, f"give {option} a writable file path") from None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise OutputRefused("is a symbolic link, and latbench never writes through one", where=str(path),
                            hint=f"give {option} the path of the real file, or remove the link")
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputRefused("is a directory", where=str(path), hint=f"give {option} a file path inside it")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OutputRefused("is not a regular file (a device, FIFO or socket)", where=str(path),
                            hint=f"give {option} the path of a new file")
    run = run_of(target)
    if run is not None:
        raise OutputRefused(f"is one of the files of the run {run.name}, and a run's files are never "
                            "overwritten (not even with --force)", where=str(path),
                            hint=f"give {option} another file name")
    if st is not None and not force:
        raise OutputRefused("already exists, and latbench does not replace files unless told to", where=str(path),
                            hint="give --force to replace it, or another file name")
    return target


def write_output(path: str | os.PathLike[str], text: str | bytes, force: bool = False, option: str = "-o") -> Path:
    """Write an output (text as UTF-8, or bytes) under the file policy (check_output), atomically, creating its directory; the
    path written. OutputRefused or ResultsWriteError (both LatbenchErrors: exit 2, one line)."""
    target = check_output(path, force, option)
    hint = f"give {option} a writable file path"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_write(exc, Path(path), hint) from None
    try:
        if force:
            tmp = _temp_file(target.parent, target.name, text)
            try:
                check_output(target, force, option)  # once more, just before the rename
                os.replace(tmp, target)
            except BaseException:
                _unlink_quietly(tmp)
                raise
        else:
            create_new_file(target, text)
    except FileExistsError:
        raise OutputRefused("already exists (it appeared while latbench wrote)", where=str(path),
                            hint="give --force to replace it, or another file name") from None
    except OSError as exc:
        raise _cannot_write(exc, Path(path), hint) from None
    return target


def safe_directory(path: Path, option: str = "-o") -> Path:
    """Create directory `path` (and its parents) if missing; OutputRefused if it is a symbolic link or
    not a directory (a report's figures/ never goes through a link into another directory)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        try:
            path.mkdir(parents=True, exist_ok=True)
            st = os.lstat(path)
        except OSError as exc:
            raise _cannot_write(exc, path, f"give {option} a writable directory") from None
    except OSError as exc:
        raise _cannot_write(exc, path, f"give {option} a writable directory") from None
    if stat.S_ISLNK(st.st_mode):
        raise OutputRefused("is a symbolic link, and latbench never writes through one", where=str(path),
                            hint="remove the link, or write the output somewhere else")
    if not stat.S_ISDIR(st.st_mode):
        raise OutputRefused("is not a directory", where=str(path), hint=f"give {option} another place")
    return path


@dataclass
class RunFiles:
    """The three files of one run, named <suite>-<device>-<UTC timestamp>[-N]."""

    csv: Path
    samples: Path
    meta: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    sample_rows: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    _lock_fd: int | None = field(default=None, repr=False)

    @classmethod
    def reserve(cls, results_dir: Path, suite: str, device: str, now: datetime | None = None) -> "RunFiles":
        try:
            return cls._reserve(results_dir, suite, device, now)
        except OSError as exc:  # read-only, a regular file, a dangling symlink, /dev/null, a name too long
            raise _cannot_write(exc, results_dir, "give --results-dir a writable directory (it is created if "
                                                  "missing)") from None

    @classmethod
    def _reserve(cls, results_dir: Path, suite: str, device: str, now: datetime | None) -> "RunFiles":
        if results_dir.is_symlink() and not results_dir.exists():
            raise NotADirectoryError(0, "a dangling symbolic link")
        results_dir.mkdir(parents=True, exist_ok=True)
        if not results_dir.is_dir():
            raise NotADirectoryError(0, "not a directory")
        when = now or datetime.now(timezone.utc)
        stamp = when.strftime("%Y%m%dT%H%M%SZ")
        for n in range(1000):
            stem = f"{suite}-{device}-{stamp}" + (f"-{n}" if n else "")
            files = cls(results_dir / f"{stem}.csv", results_dir / f"{stem}{SAMPLES_SUFFIX}",
                        results_dir / f"{stem}.json")
            if any(os.path.lexists(p) for p in (files.csv, files.samples, files.lock_path)):
                continue  # a file, or a link planted at a predictable name: never ours
            placeholder = {"status": "running", "reserved_at_utc": when.isoformat(timespec="seconds"),
                           "files": {"results": files.csv.name, "samples": files.samples.name}}
            try:  # the claim on the name: created exclusively, already JSON (never a 0-byte metadata)
                create_new_file(files.meta, json.dumps(placeholder, indent=2, sort_keys=True) + "\n")
            except FileExistsError:
                continue
            return files
        raise ResultsError(f"could not find a free file name for {suite}-{device}-{stamp}", where=str(results_dir))

    def add(self, rows: list[dict[str, Any]], samples: list[dict[str, Any]]) -> None:
        """Append finished rows and write everything to disk (atomically)."""
        self.rows.extend(rows)
        self.sample_rows.extend(samples)
        self.flush()

    def flush(self) -> None:
        rows, samples, _ = run_texts(self.rows, self.sample_rows, {})
        _write_run_file(self.csv, rows, _FULL)
        _write_run_file(self.samples, samples, _FULL)
        self.write_meta()

    def write_meta(self) -> None:
        _write_run_file(self.meta, run_texts([], [], self.metadata)[2], _FULL)

    @property
    def lock_path(self) -> Path:
        return self.csv.with_suffix(".lock")

    def lock(self) -> None:
        """Hold this run's lock until unlock() or the process ends (the kernel drops it even on a crash).

        ResultsError when another process holds it. Without fcntl (Windows) there is no lock; names
        are still reserved with O_EXCL, so only two resumes of one run at once could collide there.
        """
        try:
            import fcntl
        except ImportError:
            return
        while True:
            fd = self._open_lock()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise ResultsError(f"another latbench process (pid {holder}) is writing this run", where=str(self.csv),
                                   hint="wait for it to finish, or stop it and then --resume") from None
            try:  # the holder may have removed the file between our open and our lock: lock the one on disk
                if os.lstat(self.lock_path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _open_lock(self) -> int:
        """The lock file, opened (created if missing) without following a symbolic link and without
        blocking; ResultsError if the name holds anything but a plain file of its own (a link planted
        there, a FIFO, a hard link to another file), which is never truncated."""
        try:
            fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR | _NOFOLLOW | _NONBLOCK | _CLOEXEC, 0o644)
        except OSError as exc:
            if os.path.islink(self.lock_path) or exc.errno == errno.ELOOP:
                raise ResultsError("the run's lock file is a symbolic link, which latbench never follows",
                                   where=str(self.lock_path), hint="remove the link, then run again") from None
            raise _cannot_write(exc, self.lock_path, "the run's directory must be writable (also to "
                                                     "--resume)") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            raise ResultsError("the run's lock file is not a plain file of its own (a FIFO, a device or a hard "
                               "link to another file)", where=str(self.lock_path),
                               hint="remove it, then run again")
        return fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            self.lock_path.unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None
