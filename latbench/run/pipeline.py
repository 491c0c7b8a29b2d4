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

from dataclasses import dataclass
from itertools import groupby
from typing import Any, Callable, Sequence

import torch

from latbench import faults
from latbench.cost import build_network, count_spec
from latbench.devices import Device
from latbench.records import CaseSpec, Cost
from latbench.run.guard import StateGuard, _user_threads, stdout_to_stderr
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
