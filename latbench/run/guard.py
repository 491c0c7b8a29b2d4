"""What user code may not change for the cases after it (GUARDED: torch's threads, dtype, device and flags,
clocks, signal handlers, environment, cwd, stdout, threads it leaves running): `StateGuard` reads it when a
group starts and puts it back after each case's count, build and every timed block, saying what changed (or,
where it cannot be put back, retires a worker process: `ProcessSpoiled`). `stdout_to_stderr` keeps what user
code prints off latbench's stdout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import warnings
from typing import Any, Callable, Iterator

import torch

def _flag(obj: Any, name: str) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    return (lambda: getattr(obj, name)), (lambda v: setattr(obj, name, v))


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # the directory was removed under us
        return "(removed)"


class _CannotRestore(Exception):
    """What user code changed cannot be put back in this process (see StateGuard: a worker retires)."""


def _no_set(_: Any) -> None:
    """Interop threads cannot be set again once torch ran parallel work."""
    raise _CannotRestore("cannot be set again in this process")


def _flush_denormal() -> bool:
    """torch has no getter: a float32 denormal times 1 reads 0 when denormals are flushed."""
    return bool((torch.tensor([1e-40], dtype=torch.float32, device="cpu") * 1.0).item() == 0.0)


class _Devices:
    """Where new tensors go: torch's global default-device context and the device modes on the torch-function
    mode stack, compared by identity. Both, since torch.set_default_device inside `with torch.device(...)` (a
    factory called by latbench's build) leaves them disagreeing: the context said cpu while a meta mode
    stayed on the stack, and set_default_device(None) could not take it off (2026-12-05 corpus)."""

    def __init__(self) -> None:
        from torch.overrides import _get_current_function_mode_stack
        from torch.utils._device import DeviceContext

        self.context = getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None)
        self.modes = tuple(m for m in _get_current_function_mode_stack() if isinstance(m, DeviceContext))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, _Devices) and self.context is other.context and len(self.modes) == len(other.modes)
                and all(a is b for a, b in zip(self.modes, other.modes)))

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        shown = ",".join(str(m.device) for m in self.modes)
        return shown or ("None" if self.context is None else f"None (a stale context for {self.context.device})")

    def put_back(self) -> None:
        """Take every device mode off the stack (other modes stay, in order), then push these back."""
        from torch.utils._device import DeviceContext

        popped = [torch._C._pop_torch_function_stack() for _ in range(torch._C._len_torch_function_stack())]
        for mode in reversed(popped):
            if not isinstance(mode, DeviceContext):
                torch._C._push_on_torch_function_stack(mode)
        for mode in self.modes:
            torch._C._push_on_torch_function_stack(mode)
        torch._GLOBAL_DEVICE_CONTEXT.device_context = self.context


def _set_warnings_filters(filters: tuple) -> None:
    warnings.filters[:] = list(filters)
    getattr(warnings, "_filters_mutated", lambda: None)()


def _set_environ(env: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(env)


_LIBRARY_THREADS = ("torch", "latbench", "threading", "concurrent", "multiprocessing", "queue", "asyncio")


def _user_threads() -> tuple[str, ...]:
    """Threads alive that user code started (not torch's, latbench's or the standard library's own)."""
    out = set()
    for t in threading.enumerate():
        if t is threading.main_thread() or not t.is_alive():
            continue
        target = getattr(t, "_target", None) or getattr(type(t), "run", None)
        module = getattr(target, "__module__", "") or ""
        if not module.split(".")[0] in _LIBRARY_THREADS:
            out.add(f"{t.name} ({t.ident})")
    return tuple(sorted(out))


def _cannot_stop(_: Any) -> None:
    raise _CannotRestore("a thread cannot be stopped from outside")


def _set_priority(v: int) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, v)
    except OSError as exc:  # raising one's priority again needs privileges
        raise _CannotRestore(str(exc)) from None


def _handler(sig: int) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    return (lambda: signal.getsignal(sig)), (lambda v: signal.signal(sig, v))


_CLOCKS = ("perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "time", "time_ns", "process_time")
_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))

# What user code may not change for the cases after it: (what, read it, put it back). A value that cannot
# be put back (_CannotRestore) spoils the process: a worker stops measuring (ProcessSpoiled).
GUARDED: tuple[tuple[str, Callable[[], Any], Callable[[Any], None]], ...] = (
    ("torch thread count", torch.get_num_threads, torch.set_num_threads),
    ("torch interop thread count", torch.get_num_interop_threads, _no_set),
    ("default dtype", torch.get_default_dtype, torch.set_default_dtype),
    ("default device", _Devices, _Devices.put_back),
    ("grad mode", torch.is_grad_enabled, torch.set_grad_enabled),
    ("deterministic algorithms", torch.are_deterministic_algorithms_enabled, torch.use_deterministic_algorithms),
    ("flush denormal", _flush_denormal, torch.set_flush_denormal),
    ("float32 matmul precision", torch.get_float32_matmul_precision, torch.set_float32_matmul_precision),
    ("anomaly detection", torch.is_anomaly_enabled, torch.set_anomaly_enabled),
    ("cpu autocast", lambda: torch.is_autocast_enabled("cpu"), lambda v: torch.set_autocast_enabled("cpu", v)),
    ("cpu autocast dtype", lambda: torch.get_autocast_dtype("cpu"), lambda v: torch.set_autocast_dtype("cpu", v)),
    ("cudnn.benchmark", *_flag(torch.backends.cudnn, "benchmark")),
    ("cudnn.deterministic", *_flag(torch.backends.cudnn, "deterministic")),
    ("cudnn.enabled", *_flag(torch.backends.cudnn, "enabled")),
    ("mkldnn.enabled", *_flag(torch.backends.mkldnn, "enabled")),
    ("torch.cuda.synchronize", *_flag(torch.cuda, "synchronize")),
    ("torch.cuda.Event", *_flag(torch.cuda, "Event")),
    *((f"time.{name}", *_flag(time, name)) for name in _CLOCKS),
    *((f"{signal.Signals(s).name} handler", *_handler(s)) for s in _SIGNALS),
    ("working directory", _cwd, os.chdir),
    ("environment variables", lambda: dict(os.environ), _set_environ),
    ("recursion limit", sys.getrecursionlimit, sys.setrecursionlimit),
    ("warnings filters", lambda: tuple(warnings.filters), _set_warnings_filters),
    ("trace function", sys.gettrace, sys.settrace),
    ("profile function", sys.getprofile, sys.setprofile),
    ("process priority", lambda: os.getpriority(os.PRIO_PROCESS, 0), _set_priority),
    ("threads left running", _user_threads, _cannot_stop),
    ("sys.stdout", lambda: sys.stdout, lambda v: setattr(sys, "stdout", v)),
    ("sys.stderr", lambda: sys.stderr, lambda v: setattr(sys, "stderr", v)),
)
# How to tell a change where not by equality: only filters that turn warnings into exceptions change what code
# does (torch's lazy imports add 'ignore' filters of their own); other filters are put back silently.
_SAME = {"warnings filters": lambda a, b: [f for f in a if f[0] == "error"] == [f for f in b if f[0] == "error"],
         "threads left running": lambda now, before: set(now) <= set(before)}
_SHOWN = {"sys.", "time.", "torch.cuda.", "environment", "warnings", "trace", "profile"}  # values too long to show


class ProcessSpoiled(KeyboardInterrupt):
    """User code changed a worker process in a way that cannot be put back (a thread it left running,
    interop threads, a lowered priority): the worker stops measuring, and its manager measures the
    group's cases each alone in a fresh worker (workers._one_pass), so no other case is measured in it.
    A KeyboardInterrupt so that no case boundary swallows it; never raised in this process (--in-process,
    measure()), which cannot be thrown away: there the culprit's row says what it changed."""


class StateGuard:
    """The process state in GUARDED as it was at `__init__` (or `keep`): `restore()` puts it back and
    says what had changed. `disposable`: this is a worker process, which stops (ProcessSpoiled) when
    something cannot be put back. A forked copy of the process (user code called os.fork and returned)
    ends at once: it must never go on writing the run's rows."""

    def __init__(self, disposable: bool = False) -> None:
        self.saved: dict[str, Any] = {}
        self.pid = os.getpid()
        self.disposable = disposable
        for what, get, _ in GUARDED:
            self.keep(what, get)

    def keep(self, what: str, value_or_get: Any) -> None:
        """Remember `what` as it is now (a getter), or as `value`."""
        try:
            self.saved[what] = value_or_get() if callable(value_or_get) else value_or_get
        except Exception:  # noqa: BLE001 - a flag this torch cannot read (fp32_precision set): not guarded
            self.saved.pop(what, None)

    def restore(self) -> list[str]:
        """Put everything back; what had changed, as phrases ('torch thread count 1 -> 2')."""
        if os.getpid() != self.pid:  # a fork's child came back from user code into latbench's loop
            os._exit(0)
        found, spoiled = [], []
        for what, get, put in GUARDED:
            if what not in self.saved:
                continue
            try:
                now, before = get(), self.saved[what]
                same = _SAME[what](now, before) if what in _SAME else (now is before or now == before)
                if not same:
                    short = any(what.startswith(k) for k in _SHOWN)
                    found.append(f"{what} -> (replaced)" if short else f"{what} {before} -> {now}")
                    put(before)
                elif now != before:  # a change that does not count (_SAME): put back, or a thread that ended
                    put(before) if what == "warnings filters" else self.keep(what, get)
            except _CannotRestore as exc:
                found[-1] += f" (cannot be put back: {exc})"
                spoiled.append(what)
            except Exception:  # noqa: BLE001 - cannot read or put back: say so
                found.append(f"{what} (could not be checked or restored)")
                spoiled.append(what)
            if spoiled and spoiled[-1] == what:  # said once, on the culprit's row: the new state from now on
                self.keep(what, get)
        if spoiled and self.disposable:
            raise ProcessSpoiled("changed process state: " + "; ".join(found) + " (this worker process was "
                                 "retired: each case of the group was measured alone in a fresh one)")
        return found


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """What user code prints (Python or C, fd 1) goes to stderr while cases run: stdout carries only
    latbench's own output (`run --format csv`). A model that closes fd 1 closes the stand-in."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no fd 1 (embedded interpreters): nothing to protect
        yield
        return
    py_stdout = sys.stdout
    try:
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        yield
    finally:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        sys.stdout = py_stdout
        os.dup2(saved, 1)
        os.close(saved)
