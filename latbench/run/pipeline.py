"""One group -> rows: build and count each case, prepare its modes, measure the group in interleaved
rounds, turn measurements into Rows. Every way latbench times cases (`run`, `measure()`, `ab`, the
pytest plugin, `audit`'s whole-network timing, worker processes) comes through here.

User code runs inside a case boundary (faults.case_boundary: a time limit, an exception fails that
case only) and inside a `StateGuard`: what a model or factory changes in the process (GUARDED: torch's
threads, dtype, device and flags, clocks, signal handlers, environment, cwd, stdout, threads it leaves
running) is put back after each case's build and every timed block (or, where it cannot be, the worker
retires), so one case cannot change how the others are measured; the culprit's row says what it did.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Callable, Iterator, Sequence

import torch

from latbench import faults
from latbench.cost import build_network, count_spec
from latbench.devices import Device
from latbench.records import CaseSpec, Cost
from latbench.run.rows import RowContext, build_row, sample_rows
from latbench.stats import paired_ratio
from latbench.timing.loop import StopPolicy, measure
from latbench.timing.prepare import Prepared, prepare_case, release

Progress = Callable[[str, int], None]  # (group label, rounds timed so far)


@dataclass
class RunConfig:
    """How one process measures groups: the device object and the run's measurement settings."""

    device: Device
    run_id: str
    modes: tuple[str, ...] = ("eager",)
    schedule: str = "interleaved"
    policy: StopPolicy = StopPolicy()
    seed: int = 0
    case_timeout_s: float = 0.0  # per case: build, warm-up, and each timed block; 0 = no limit
    telemetry: Any = None  # telemetry.TelemetrySampler (start()/stop() around each group), or None
    ceilings: Any = None  # roofline.CeilingSet | roofline.Ceilings | None
    profile: bool = False  # torch.profiler op breakdown after each group's measurement
    api: bool = False  # remedies in warnings name keyword arguments (measure()), not flags
    worker: bool = False  # a worker process: retired (ProcessSpoiled) when user code changed what cannot be put back

    def rows(self) -> RowContext:
        columns = getattr(self.device.backend, "columns", None)
        return RowContext(run_id=self.run_id, device=self.device.name, threads=self.device.threads,
                          schedule=self.schedule, rel_ci=self.policy.rel_ci, ceilings=self.ceilings,
                          backend_columns=tuple((columns() if columns else {}).items()), api=self.api)


def groups_of(specs: Sequence[CaseSpec]) -> list[list[CaseSpec]]:
    """Consecutive cases of one group (same scale and sweep point), in suite order."""
    return [list(g) for _, g in groupby(specs, key=lambda s: s.group)]


def modes_of(spec: CaseSpec, modes: Sequence[str]) -> tuple[str, ...]:
    return (spec.mode,) if spec.mode else tuple(modes)


# ---------------------------------------------------------------- what user code may not change

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


def _default_device() -> Any:
    """The default-device context torch.set_default_device installed (None: none, the plain CPU default)."""
    ctx = getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None)
    return None if ctx is None else str(torch.get_default_device())


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
    ("default device", _default_device, torch.set_default_device),
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


class _GuardedBackend:
    """The device's backend with a StateGuard restored after every block, outside the timed region;
    what each timed callable changed is kept for its row."""

    def __init__(self, backend: Any, guard: StateGuard):
        self._backend, self._guard = backend, guard
        self.changed: dict[int, list[str]] = {}  # id(fn) -> what it changed
        self.name, self.modes = backend.name, backend.modes

    def time_block(self, fn: Callable[[], object], iters: int) -> float:
        try:
            return self._backend.time_block(fn, iters)
        finally:
            found = self._guard.restore()
            if found:
                self.changed.setdefault(id(fn), []).extend(f for f in found if f not in self.changed.get(id(fn), ()))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


# ---------------------------------------------------------------- a group

def run_group(specs: list[CaseSpec], cfg: RunConfig, on_progress: Progress | None = None
              ) -> tuple[list[Any], list[dict[str, Any]]]:
    """Measure one group (same scale and sweep point) interleaved: its Rows (every case x mode) and samples.

    A sweep point's thread count holds for the group only; cases the device cannot run are rows
    with status "skipped" and the reason in `error`.
    """
    first = specs[0]
    threads_before = torch.get_num_threads()
    with stdout_to_stderr():
        if first.threads:
            torch.set_num_threads(first.threads)
        guard = StateGuard(disposable=cfg.worker)
        try:
            return _run_group(specs, modes_of(first, cfg.modes), cfg, guard, on_progress)
        finally:
            guard.restore()
            torch.set_num_threads(threads_before)


def _count(specs: list[CaseSpec], modes: tuple[str, ...], cfg: RunConfig, guard: StateGuard,
           errors: dict[tuple[str, str], str], changed: dict[str, list[str]]) -> dict[str, Cost | None]:
    costs: dict[str, Cost | None] = {}
    for s in specs:
        costs[s.case] = None  # a user module that cannot even be counted (raises, exits, hangs) fails alone
        with faults.case_boundary(cfg.case_timeout_s, lambda exc, s=s: errors.update(
                {(s.case, m): cfg.device.error_text(exc) for m in modes})):
            costs[s.case] = count_spec(s)
        changed.setdefault(s.case, []).extend(guard.restore())
    return costs


def _build(spec: CaseSpec, device: str) -> tuple[torch.nn.Module, torch.Tensor]:
    return build_network(spec.builder, spec.param_dict, spec.blocks, spec.batch, spec.height, spec.width, device,
                         getattr(torch, spec.dtype))


def _run_group(specs: list[CaseSpec], modes: tuple[str, ...], cfg: RunConfig, guard: StateGuard,
               on_progress: Progress | None) -> tuple[list[Any], list[dict[str, Any]]]:
    dev = cfg.device
    errors: dict[tuple[str, str], str] = {}
    changed: dict[str, list[str]] = {}
    costs = _count(specs, modes, cfg, guard, errors, changed)
    skips: dict[tuple[str, str], str] = {}
    compile_s: dict[tuple[str, str], float] = {}
    items: list[tuple[tuple[str, str], Callable[[], object]]] = []
    fns: dict[str, Callable[[], object]] = {}  # one callable per case, for --profile
    label = specs[0].group_label
    backend = _GuardedBackend(dev.backend, guard)
    with torch.inference_mode():
        guard.keep("grad mode", torch.is_grad_enabled)
        for spec in specs:
            if costs[spec.case] is None:
                continue
            prepared: dict[str, Prepared] = {}
            with faults.case_boundary(cfg.case_timeout_s, lambda exc: prepared.update(
                    {mode: Prepared(error=dev.error_text(exc)) for mode in modes})):
                prepared = prepare_case(spec, modes, dev, backend, cfg.seed, _build)
            changed.setdefault(spec.case, []).extend(guard.restore())
            for mode, prep in prepared.items():
                key = (spec.case, mode)
                if prep.fn is not None:
                    items.append((key, prep.fn))
                    fns.setdefault(spec.case, prep.fn)
                elif prep.skip:
                    skips[key] = prep.skip
                else:
                    errors[key] = prep.error or "failed"
                if prep.compile_s is not None:
                    compile_s[key] = prep.compile_s
        base_case = specs[0].baseline_case
        baselines = {key: (base_case, key[1]) for key, _ in items}
        progress = (lambda r, _t: on_progress(label, r)) if on_progress else None
        if cfg.telemetry is not None:
            cfg.telemetry.start()
            guard.keep("threads left running", _user_threads)  # the sampler's thread is latbench's own
        try:
            done, failed = measure(items, backend, cfg.policy, cfg.schedule, cfg.seed, baselines, progress,
                                   cfg.case_timeout_s)
        finally:
            tele = cfg.telemetry.stop() if cfg.telemetry is not None else None
        ops = {case: _profile(fn, dev) for case, fn in fns.items()} if cfg.profile else {}
    errors.update(failed)
    for key, fn in items:
        changed.setdefault(key[0], []).extend(backend.changed.get(id(fn), ()))
    # the group's callables hold its models and inputs: drop every reference before memory is handed back
    items.clear()
    fns.clear()
    prepared = prep = fn = None  # noqa: F841 - the loops' last values held callables too
    release(dev.backend)  # CUDA graphs and their private pools, compiled code (dynamo reset)
    dev.reset_memory()
    return _rows(specs, modes, cfg, costs, done, errors, skips, compile_s, tele, ops, changed)


def _rows(specs: list[CaseSpec], modes: tuple[str, ...], cfg: RunConfig, costs: dict[str, Cost | None],
          done: dict, errors: dict, skips: dict, compile_s: dict, tele: Any, ops: dict,
          changed: dict[str, list[str]]) -> tuple[list[Any], list[dict[str, Any]]]:
    ctx = cfg.rows()
    base_case = specs[0].baseline_case
    base_cost = costs.get(base_case)
    rows, samples = [], []
    for spec in specs:
        leaked = list(dict.fromkeys(changed.get(spec.case, ())))
        for mode in modes:
            key = (spec.case, mode)
            m, base = done.get(key), done.get((base_case, mode))
            ratio = (paired_ratio(m.samples_s, m.rounds, base.samples_s, base.rounds)
                     if m is not None and base is not None else None)
            row = build_row(spec, mode, ctx, cost=costs[spec.case], measurement=m, ratio=ratio,
                            error=errors.get(key), skip=skips.get(key),
                            base_flops=base_cost.flops if base_cost is not None else None,
                            compile_s=compile_s.get(key), telemetry=tele, ops=ops.get(spec.case))
            if leaked:  # its own numbers ran in a state it made: not a measurement of the case as configured
                row = build_row(spec, mode, ctx, cost=costs[spec.case], telemetry=tele,
                                base_flops=base_cost.flops if base_cost is not None else None, error="changed process state: " + "; ".join(leaked) + " (put back before every "
                                      "other case's block; set it outside the model, or in the suite)")
            rows.append(row)
            if m is not None and not leaked:
                samples.extend(sample_rows(spec, mode, m, ctx))
    return rows, samples


def _profile(fn: Callable[[], object], device: Device) -> dict[str, Any]:
    from latbench.opbreakdown import profile_forward

    result: dict[str, Any] = {}
    with faults.case_boundary(0, lambda exc: result.update(profile_error=device.error_text(exc))):
        result = profile_forward(fn, device)  # a profiler failure must not lose the measurement
    return result


# ---------------------------------------------------------------- groups in this process

def import_lazy_modules() -> None:
    """Count a tiny conv once, outside any time limit: the modules torch imports on first use (the
    FLOP counter, sympy) are then loaded, so a --case-timeout or a user's sys.exit() can never cut an
    import short and leave a half-initialised module that fails every later case."""
    from torch.utils.flop_counter import FlopCounterMode

    from latbench.cost import _MemoryAccessCounter

    with torch.inference_mode(), FlopCounterMode(display=False), _MemoryAccessCounter():
        torch.nn.Conv2d(2, 2, 3, groups=2)(torch.zeros(1, 2, 4, 4, device="meta"))


def run_in_process(groups: Sequence[list[CaseSpec]], cfg: RunConfig,
                   on_group_done: Callable[[list[Any], list[dict[str, Any]]], None],
                   on_progress: Progress | None = None, on_group_start: Callable[[str], None] | None = None) -> None:
    """Measure `groups` one after the other in this process, handing each group's rows on."""
    if groups:
        import_lazy_modules()
    for group in groups:
        if on_group_start:
            on_group_start(group[0].group_label)
        on_group_done(*run_group(group, cfg, on_progress))
