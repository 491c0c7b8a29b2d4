"""Faults during a run: a per-case time limit, signals turned into one Interrupted exception, and
short names for why a case failed (out of memory, unsupported on the device, timed out).

Imports nothing from latbench and not torch, so timing/loop.py can use it.

The time limit is SIGALRM raising CaseTimeout in the main thread. Python runs signal handlers only
between bytecodes, so a case stuck inside one native call (a CUDA kernel that never returns, a
deadlocked collective) cannot be interrupted in-process: the limit fires when that call returns.
A model whose forward loops or sleeps in Python, or a network of many ops, is stopped at the limit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator

REFIRE_S = 0.1  # after a time limit, CaseTimeout is raised again this often until the block ends
MAX_LIMIT_S = 1e8  # setitimer overflows above ~1e9 s; a limit this long is no limit
DEFAULT_CASE_TIMEOUT_S = 600.0  # a case's build + warm-up, or one timed block, taking 10 min is stuck

_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory")
_UNSUPPORTED_TEXT = ("not implemented for", "could not run '", "no kernel image", "not supported on",
                     "unsupported")


class CaseTimeout(Exception):
    """A case ran past its time limit. An Exception: it fails that case only."""

    def __init__(self, seconds: float):
        super().__init__(f"timed out after {seconds:g} s (--case-timeout)")
        self.seconds = seconds


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived. A KeyboardInterrupt (not an Exception), so no case guard swallows it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as shells report it: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


def _can_use_signals() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise CaseTimeout inside the block if it runs longer than `seconds` (0 or less, inf, nan or
    beyond what setitimer takes: no limit).

    A no-op off the main thread or where SIGALRM does not exist (Windows). A signal that arrives
    after the block ended is ignored (the `armed` flag), so a timeout never escapes the block.
    """
    if not 0 < seconds < MAX_LIMIT_S or not hasattr(signal, "setitimer") or not _can_use_signals():
        yield
        return
    armed = True

    def on_alarm(signum, frame):  # noqa: ARG001 - signal handler signature
        if armed:
            raise CaseTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    # Re-fire every 0.1 s after the limit: code that swallows the first CaseTimeout (an `except
    # Exception` in user code, or cost.count falling back from meta to CPU) still stops.
    signal.setitimer(signal.ITIMER_REAL, seconds, REFIRE_S)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise Interrupted(signum); the old handlers come back after.

    A SIGINT that the parent set to be ignored (e.g. `nohup`) stays ignored.
    """
    if not _can_use_signals():
        yield
        return

    def on_signal(signum, frame):  # noqa: ARG001
        raise Interrupted(signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """Hold off SIGINT/SIGTERM while the last state is saved, so a second Ctrl-C cannot cut it short."""
    if not _can_use_signals():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def is_oom(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA), MemoryError, or a RuntimeError saying so (CPU allocator)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc).lower() for t in _OOM_TEXT)


def is_unsupported(exc: BaseException) -> bool:
    """An op or dtype the device has no kernel for (NotImplementedError, 'Could not run ...')."""
    if isinstance(exc, NotImplementedError):
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc).lower() for t in _UNSUPPORTED_TEXT)


def is_case_fault(exc: BaseException) -> bool:
    """Whether `exc`, raised while a case is counted, built or timed, fails that case only.

    Every Exception, and every other BaseException user code may raise (SystemExit from a
    `sys.exit()` in a forward, GeneratorExit, a bare BaseException): none of them may stop the run or
    choose its exit code. A KeyboardInterrupt (a real Ctrl-C, or Interrupted from SIGINT/SIGTERM) is
    not: it stops the run, which saves what is finished.
    """
    return not isinstance(exc, KeyboardInterrupt)


@contextlib.contextmanager
def case_boundary(seconds: float, on_fault) -> Iterator[None]:
    """Run the block within `seconds` (time_limit); a case fault (is_case_fault) inside it, the time
    limit included, is handed to on_fault(exc) and swallowed; an interrupt propagates."""
    try:
        with time_limit(seconds):
            yield
    except BaseException as exc:  # noqa: BLE001 - the case's fault boundary: see is_case_fault
        if not is_case_fault(exc):
            raise
        on_fault(exc)


def describe(exc: BaseException) -> str:
    """The 'error' column of a failed case: the kind of failure first, then torch's first line."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, CaseTimeout):
        return first
    if isinstance(exc, SystemExit):
        return f"SystemExit: user code called sys.exit({exc.code!r}); the case failed, the run went on"[:500]
    if is_oom(exc):
        text = f"out of memory: {first}"
    elif is_unsupported(exc):
        text = f"unsupported on this device: {type(exc).__name__}: {first}"
    else:
        text = f"{type(exc).__name__}: {first}"
    return text[:500]


class _PipeSafe:
    """A text stream that survives its reader going away (`latbench gate ... | head -1`): after a
    BrokenPipeError, output is discarded (fd 1 points at /dev/null) and the command keeps its own exit
    code, instead of click's exit 1 or Python's 120 at shutdown."""

    def __init__(self, stream):
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._discard()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._discard()

    def _discard(self) -> None:
        self.broken = True
        try:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, self._stream.fileno())
            os.close(fd)
        except (OSError, ValueError, AttributeError):
            pass
        except Exception:  # noqa: BLE001 - io.UnsupportedOperation (a stream without a descriptor)
            pass

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def guard_stdio() -> None:
    """Make stdout and stderr safe for any text and any reader: characters the encoding cannot
    show (PYTHONIOENCODING=ascii) become escapes instead of UnicodeEncodeError, and a closed stdout
    is ignored (_PipeSafe). Idempotent."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or isinstance(stream, _PipeSafe):
            continue
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass
        if name == "stdout":
            sys.stdout = _PipeSafe(stream)
