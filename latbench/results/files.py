"""Writing results: tidy CSV (one row per case x mode), raw samples CSV, metadata JSON.

A run reserves its file names atomically (the metadata file is created with O_EXCL), so two runs
never share or overwrite files, and holds a lock on them (<stem>.lock, flock) while it writes, so a
`--resume` of a run that is still going is refused. Tables are rewritten atomically (temp file + rename) after each
group finishes, so a crash or Ctrl-C leaves the last complete state on disk, never a half file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from latbench.errors import ResultsError
from latbench.results.schema import RESULT_COLUMNS, SAMPLE_COLUMNS


class ResultsWriteError(ResultsError, OSError):
    """A results file could not be written (read-only directory, disk full, ...); the old file is intact.
    A LatbenchError (exit 2, one line) and still an OSError for callers that catch those."""


def _cannot_write(exc: OSError, where: Path, hint: str) -> ResultsWriteError:
    return ResultsWriteError(f"cannot write: {exc.strerror or exc}", where=str(where), hint=hint)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` via a temp file and a rename: the old file or the new one, never half.

    ResultsWriteError (a LatbenchError) when the disk refuses; no temp file is left behind.
    """
    try:
        _atomic_write_text(path, text)
    except OSError as exc:
        raise _cannot_write(exc, path, "free disk space or fix the directory's permissions") from None


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are data for other tools
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
        for n in range(1000):
            stem = f"{suite}-{device}-{stamp}" + (f"-{n}" if n else "")
            files = cls(results_dir / f"{stem}.csv", results_dir / f"{stem}-samples.csv", results_dir / f"{stem}.json")
            if files.csv.exists() or files.samples.exists():
                continue
            try:
                fd = os.open(files.meta, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                continue
            os.close(fd)
            return files
        raise ResultsError(f"could not find a free file name for {suite}-{device}-{stamp}", where=str(results_dir))

    def add(self, rows: list[dict[str, Any]], samples: list[dict[str, Any]]) -> None:
        """Append finished rows and write everything to disk (atomically)."""
        self.rows.extend(rows)
        self.sample_rows.extend(samples)
        self.flush()

    def flush(self) -> None:
        atomic_write_text(self.csv, pd.DataFrame(self.rows, columns=list(RESULT_COLUMNS)).to_csv(index=False))
        atomic_write_text(self.samples, pd.DataFrame(self.sample_rows, columns=list(SAMPLE_COLUMNS))
                          .to_csv(index=False))
        self.write_meta()

    def write_meta(self) -> None:
        atomic_write_text(self.meta, json.dumps(self.metadata, indent=2, sort_keys=True, default=str) + "\n")

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
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as exc:
                raise _cannot_write(exc, self.lock_path, "the run's directory must be writable (also to "
                                                         "--resume)") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise ResultsError(f"another latbench process (pid {holder}) is writing this run", where=str(self.csv),
                                   hint="wait for it to finish, or stop it and then --resume") from None
            try:  # the holder may have removed the file between our open and our lock: lock the one on disk
                if os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            self.lock_path.unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None
