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
import subprocess
import sys
import threading
import time
from typing import Iterator

REFIRE_S = 0.1  # after a time limit, CaseTimeout is raised again this often until the block ends
MAX_LIMIT_S = 1e8  # setitimer overflows above ~1e9 s; a limit this long is no limit
DEFER_S = 1e-4  # a limit that fires while it is being set up fires again this much later, in the block
DEFAULT_CASE_TIMEOUT_S = 600.0  # a case's build + warm-up, or one timed block, taking 10 min is stuck

# The signals that stop a command and save what is finished: Ctrl-C, kill/schedulers, a terminal that closes.
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))

_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory")
_UNSUPPORTED_TEXT = ("not implemented for", "could not run '", "no kernel image", "not supported on",
                     "unsupported")


class CaseTimeout(Exception):
    """A case ran past its time limit. An Exception: it fails that case only."""

    def __init__(self, seconds: float):
        super().__init__(f"timed out after {seconds:g} s (--case-timeout)")
        self.seconds = seconds


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived. A KeyboardInterrupt (not an Exception), so no case guard swallows it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as shells report it: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP."""
        return 128 + self.signum


def _can_use_signals() -> bool:
    return threading.current_thread() is threading.main_thread()


class time_limit:  # noqa: N801 - used as a function: `with time_limit(seconds):`
    """Raise CaseTimeout inside the block if it runs longer than `seconds` (0 or less, inf, nan or
    beyond what setitimer takes: no limit).

    A no-op off the main thread or where SIGALRM does not exist (Windows). A signal that arrives
    after the block ended is ignored (`armed`), so a timeout never escapes the block; one that arrives
    while the limit is still being set up (a limit of 1e-9 s fires at once) or taken down is put off
    (DEFER_S) until the block runs or the limit is gone, so it never escapes the `with` statement either (a class, not a generator:
    an exception in a generator's set-up was "generator didn't yield", its timer left armed).
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.active = 0 < seconds < MAX_LIMIT_S and hasattr(signal, "setitimer") and _can_use_signals()
        self.armed = False
        self.previous = None

    def _on_alarm(self, signum, frame):  # noqa: ARG001 - signal handler signature
        if not self.armed:
            return
        if frame is not None and frame.f_code in _NOT_IN_BLOCK:  # not inside the block: again in a moment
            signal.setitimer(signal.ITIMER_REAL, DEFER_S, REFIRE_S)
            return
        raise CaseTimeout(self.seconds)

    def __enter__(self) -> None:
        if not self.active:
            return
        self.previous = signal.signal(signal.SIGALRM, self._on_alarm)
        self.armed = True
        # Re-fire every 0.1 s after the limit: code that swallows the first CaseTimeout (an `except
        # Exception` in user code, or cost.count falling back from meta to CPU) still stops.
        signal.setitimer(signal.ITIMER_REAL, self.seconds, REFIRE_S)  # rounded up to 1 us, never to 0

    def __exit__(self, *exc) -> None:
        if not self.active:
            return
        try:
            self.armed = False
        finally:  # even if the limit fired on the way out (then CaseTimeout leaves __exit__)
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)


_deferred: set[int] = set()


def _torch_importing() -> bool:
    """Whether torch or one of its modules is being imported now (importlib marks a module's spec while its
    code runs). An exception raised by a signal handler there can cross C++ code that torch's import calls
    back from (pybind11), which then aborts the process: 'terminate called after throwing ...'."""
    for name, module in list(sys.modules.items()):
        if (name == "torch" or name.startswith("torch.")) and getattr(getattr(module, "__spec__", None),
                                                                       "_initializing", False):
            return True
    return False


def _signal_again_after_import(signum: int) -> None:
    """Send `signum` to this process again once no torch module is being imported (once per signal)."""
    if signum in _deferred:
        return
    _deferred.add(signum)

    def later() -> None:
        while _torch_importing():
            time.sleep(0.01)
        _deferred.discard(signum)
        os.kill(os.getpid(), signum)

    threading.Thread(target=later, name="latbench-deferred-signal", daemon=True).start()


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """While inside, SIGINT, SIGTERM and SIGHUP raise Interrupted(signum); the old handlers come back after.

    A signal that the parent set to be ignored (e.g. SIGHUP under `nohup`) stays ignored.
    """
    if not _can_use_signals():
        yield
        return

    def on_signal(signum, frame):  # noqa: ARG001
        if _torch_importing():  # raised there, it crosses torch's C++ import code: abort, exit -6
            _signal_again_after_import(signum)
            return
        raise Interrupted(signum)

    previous = {}
    for sig in STOP_SIGNALS:
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
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
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


class case_boundary:  # noqa: N801 - used as a function: `with case_boundary(seconds, on_fault):`
    """Run the block within `seconds` (time_limit); a case fault (is_case_fault) inside it, the time
    limit included, is handed to on_fault(exc) and swallowed; an interrupt propagates."""

    def __init__(self, seconds: float, on_fault):
        self.limit = time_limit(seconds)
        self.on_fault = on_fault

    def __enter__(self) -> None:
        self.limit.__enter__()

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            self.limit.__exit__(exc_type, exc, tb)
        except BaseException as late:  # noqa: BLE001 - the limit fired as the block ended: still this case's
            if not is_case_fault(late):
                raise
            exc = exc if exc is not None else late
        if exc is None or not is_case_fault(exc):
            return False
        self.on_fault(exc)
        return True


# Where a limit may not fire (it would escape the `with`): setting it up, taking it down (the block has
# ended: no timeout), and this handler itself.
_NOT_IN_BLOCK = frozenset(f.__code__ for f in (time_limit.__enter__, time_limit.__exit__, time_limit._on_alarm,
                                               case_boundary.__enter__, case_boundary.__exit__))


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
    code, instead of click's exit 1 or Python's 120 at shutdown. Any other write error (stdout on a
    full disk, /dev/full, an I/O error) is one `error:` line on stderr and exit 2 (SystemExit, which
    no `except Exception` turns into another answer); the rest of the output is discarded."""

    def __init__(self, stream, loud: bool = True):
        self._stream = stream
        self.broken = False
        self.loud = loud  # False for stderr: where would the error go? Its output is dropped, the exit code kept

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._discard()
            except OSError as exc:
                self._fail(exc)
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._discard()
            except OSError as exc:
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self._discard()
        if not self.loud:
            return
        try:
            sys.stderr.write(f"error: <stdout>: cannot write: {exc.strerror or exc}; write the output to a "
                             f"file with -o FILE, or free the device stdout goes to\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        raise SystemExit(2)

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
        with contextlib.suppress(Exception):  # what the stream still buffers goes to /dev/null, not the device
            self._stream.flush()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _open_closed_std_fds() -> None:
    """Point descriptors 0-2 that were closed at start (`latbench run >&-`) at /dev/null: else the next
    file latbench opens (a results file, a run's lock) would get number 1, and what is printed, or a
    dup2 onto fd 1, would land in it."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                opened = os.open(os.devnull, os.O_RDWR)
                if opened != fd:
                    os.dup2(opened, fd)
                    os.close(opened)
                os.set_inheritable(fd, True)  # os.open's are not: workers would start with it closed again
            except OSError:
                pass


def guard_stdio() -> None:
    """Make stdout and stderr safe for any text and any reader: characters the encoding cannot
    show (PYTHONIOENCODING=ascii) become escapes instead of UnicodeEncodeError, and a closed stdout
    is ignored (_PipeSafe); stdout on a full device is exit 2; stderr that cannot be written (2>/dev/full)
    loses its text but never changes the exit code. Idempotent."""
    _open_closed_std_fds()
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:  # started with that descriptor closed (`>&-`): its output goes nowhere, quietly
            try:
                stream = open(1 if name == "stdout" else 2, "w", encoding="utf-8", errors="backslashreplace",
                              closefd=False)
            except OSError:
                continue
            setattr(sys, name, stream)
        if isinstance(stream, _PipeSafe):
            continue
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass
        setattr(sys, name, _PipeSafe(stream, loud=name == "stdout"))


def run_child(cmd: list[str], grace_s: float = 60.0, pass_on_after_s: float = 1.0) -> subprocess.CompletedProcess:
    """Run a child command to its end, its output captured. A stop signal here reaches the child too (if a
    terminal's Ctrl-C did not already: it still runs pass_on_after_s later), which then saves what it finished
    and exits; it is killed only when it has not within grace_s. (subprocess.run killed it at once: its run
    file kept status 'running' and its worker's output file was left in the temporary directory.)"""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate()
    except BaseException as exc:
        try:
            try:
                proc.wait(timeout=pass_on_after_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    proc.send_signal(getattr(exc, "signum", signal.SIGINT))
                proc.communicate(timeout=grace_s)
        except BaseException:  # it would not stop, or a second signal: no waiting any more
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def default_stop_signals() -> None:
    """For the command line's last lines, once the command has written everything: a stop signal while the
    interpreter shuts down (torch's teardown takes ~0.3 s) ends the process at once, killed by it (a shell
    sees 128 + N), instead of an exception inside a finalizer that prints a traceback. Ignored ones stay ignored."""
    if not _can_use_signals():
        return
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)


def exit_quietly_on_interrupt() -> None:
    """For the command line's very first lines, before its imports (typer, rich, pydantic take ~0.2 s):
    a Ctrl-C, SIGTERM or SIGHUP then ends the process with 130/143/129 and no traceback. Commands
    replace it (signals_as_interrupts, entered for every command by the app's callback)."""
    if not _can_use_signals():
        return

    def on_signal(signum, frame):  # noqa: ARG001
        raise SystemExit(128 + signum)

    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) in (signal.default_int_handler, signal.SIG_DFL):
            signal.signal(sig, on_signal)
