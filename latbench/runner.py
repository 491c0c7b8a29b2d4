"""A suite run: per group (experiment x scale) build the cases, count their cost, measure them
interleaved, and turn measurements into result rows. The device backend is passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Callable

import torch

from latbench import devices, faults, roofline
from latbench.cost import count_spec
from latbench.devices import CPU_POLICY, CUDA_POLICY, Device  # noqa: F401 - the policies re-exported here
from latbench.timing.prepare import Prepared, error_text, prepare_case, release
from latbench.records import SCHEMA_VERSION, CaseSpec, Cost, Measurement, Ratio, Summary
from latbench.stats import paired_ratio, relative_halfwidth, summarize
from latbench.timing.backend import TimingBackend
from latbench.timing.loop import StopPolicy, measure

# --quick: a smoke-test budget (all four guidelines in well under a minute on 2 CPU cores).
QUICK_POLICY = StopPolicy(warmup_s=0.05, warmup_min_iters=2, block_s=0.01, min_rounds=5,
                          min_time_s=0.05, max_time_s=0.3, rel_ci=0.02)

NOISY_REL_CI = 0.05  # a median or ratio whose 95 % CI half-width exceeds 5 % gets a warning
OUTLIER_SHARE = 0.10  # more than 10 % far-out samples gets a warning


@dataclass
class RunConfig:
    device: str | Device  # the device object (devices.get), or its name ("cpu", "cuda")
    run_id: str
    modes: tuple[str, ...] = ("eager",)
    schedule: str = "interleaved"
    policy: StopPolicy = CPU_POLICY
    threads: int | None = None
    seed: int = 0
    case_timeout_s: float = 0.0  # per case: build, warm-up, and each timed block; 0 = no limit
    telemetry: Any = None  # telemetry.TelemetrySampler (start()/stop() around each group), or None
    ceilings: roofline.CeilingSet | roofline.Ceilings | None = None  # for the roofline columns (per dtype)
    profile: bool = False  # torch.profiler op breakdown after each group's measurement
    isolate: bool = False  # each group in a worker process: a hard timeout, and a crash is failed rows

    @property
    def dev(self) -> Device:
        return devices.of(self.device)

    @property
    def device_name(self) -> str:
        return self.dev.name


def run_specs(specs: list[CaseSpec], cfg: RunConfig, backend: TimingBackend,
              on_group_done: Callable[[list[dict], list[dict]], None],
              on_progress: Callable[[str, int, float], None] | None = None,
              on_group_start: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Measure every group of specs; after each group, hand its rows and samples to on_group_done."""
    all_rows: list[dict[str, Any]] = []
    if specs:
        _import_lazy_modules()
    for _, group in groupby(specs, key=lambda s: s.group):
        group = list(group)
        if on_group_start:
            on_group_start(group_label(group[0]))
        rows, samples = (run_group_isolated(group, cfg, backend) if cfg.isolate
                         else run_group(group, cfg, backend, on_progress))
        on_group_done(rows, samples)
        all_rows.extend(rows)
    return all_rows


def _import_lazy_modules() -> None:
    """Count a tiny conv once, outside any time limit: the modules torch imports on first use (the
    FLOP counter, sympy) are then loaded, so a --case-timeout or a user's sys.exit() can never cut an
    import short and leave a half-initialised module that fails every later case."""
    from latbench.cost import _MemoryAccessCounter
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False), _MemoryAccessCounter():
        torch.nn.Conv2d(2, 2, 3, groups=2)(torch.zeros(1, 2, 4, 4, device="meta"))


def run_group(specs: list[CaseSpec], cfg: RunConfig, backend: TimingBackend,
              on_progress: Callable[[str, int, float], None] | None = None,
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Measure one group (same scale and sweep point) interleaved; rows for every case x mode.

    A sweep point's thread count holds for the group only; cases the device cannot run are rows
    with status "skipped" and the reason in `error`.
    """
    first = specs[0]
    modes = (first.mode,) if first.mode else cfg.modes
    threads_before = torch.get_num_threads()
    if first.threads:
        torch.set_num_threads(first.threads)
    try:
        return _run_group(specs, modes, cfg, backend, on_progress)
    finally:
        torch.set_num_threads(threads_before)


def _run_group(specs: list[CaseSpec], modes: tuple[str, ...], cfg: RunConfig, backend: TimingBackend,
               on_progress: Callable[[str, int, float], None] | None,
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    dev = cfg.dev
    costs: dict[str, Cost | None] = {}
    errors: dict[tuple[str, str], str] = {}
    for s in specs:
        costs[s.case] = None  # a user module that cannot even be counted (raises, exits, hangs) fails alone
        with faults.case_boundary(cfg.case_timeout_s,
                                  lambda exc, s=s: errors.update({(s.case, m): dev.error_text(exc) for m in modes})):
            costs[s.case] = count_spec(s)
    skips: dict[tuple[str, str], str] = {}
    compile_s: dict[tuple[str, str], float] = {}
    items: list[tuple[tuple[str, str], Callable[[], object]]] = []
    fns: dict[str, Callable[[], object]] = {}  # one callable per case, for --profile
    label = group_label(specs[0])
    with torch.inference_mode():
        for spec in specs:
            if costs[spec.case] is None:
                continue
            prepared: dict[str, Prepared] = {}
            with faults.case_boundary(cfg.case_timeout_s, lambda exc: prepared.update(
                    {mode: Prepared(error=dev.error_text(exc)) for mode in modes})):
                prepared = prepare_case(spec, modes, dev, backend, cfg.seed)
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
        progress = (lambda r, t: on_progress(label, r, t)) if on_progress else None
        if cfg.telemetry is not None:
            cfg.telemetry.start()
        try:
            done, failed = measure(items, backend, cfg.policy, cfg.schedule, cfg.seed, baselines, progress,
                                   cfg.case_timeout_s)
        finally:
            tele = cfg.telemetry.stop() if cfg.telemetry is not None else None
        ops = {case: _profile(fn, dev) for case, fn in fns.items()} if cfg.profile else {}
    errors.update(failed)
    release(backend)  # CUDA graphs and their private pools, compiled code (dynamo reset)
    dev.reset_memory()

    rows, sample_rows = [], []
    base_cost = costs.get(base_case)
    base_flops = base_cost.flops if base_cost is not None else None
    for spec in specs:
        for mode in modes:
            key = (spec.case, mode)
            m = done.get(key)
            base = done.get((base_case, mode))
            ratio = (paired_ratio(m.samples_s, m.rounds, base.samples_s, base.rounds)
                     if m is not None and base is not None else None)
            row = make_row(spec, costs[spec.case], mode, m, ratio, errors.get(key), cfg, base_flops)
            row["compile_s"] = compile_s.get(key)
            row.update(_backend_columns(backend))
            if key in skips:
                row.update(status="skipped", error=skips[key], stop_reason="skipped")
            _add_hardware_columns(row, tele, cfg.ceilings, ops.get(spec.case))
            rows.append(row)
            if m is not None:
                sample_rows.extend(_sample_rows(spec, mode, m, cfg))
    return rows, sample_rows


def _backend_columns(backend: TimingBackend) -> dict[str, Any]:
    """latency_semantics and l2 of every row the backend timed (a backend without columns(): none)."""
    columns = getattr(backend, "columns", None)
    return dict(columns()) if columns is not None else {}


# --isolate: a group's worker gets this long beyond its own limits before it is killed (a stuck
# native call that SIGALRM cannot interrupt); the worker's own --case-timeout fires first otherwise.
ISOLATE_GRACE_S = 2.0


def isolate_limit_s(specs: list[CaseSpec], cfg: RunConfig) -> float:
    """The hard limit of a group's worker: every case's build/count within --case-timeout, every
    timed block within it, and the stop rule's max time per case (0: no limit)."""
    if not 0 < cfg.case_timeout_s < faults.MAX_LIMIT_S:
        return 0.0
    n = len(specs) * max(1, len(cfg.modes))
    return 2 * n * cfg.case_timeout_s + 2 * n * cfg.policy.max_time_s + cfg.policy.warmup_s * n + ISOLATE_GRACE_S


def run_group_isolated(specs: list[CaseSpec], cfg: RunConfig, backend: TimingBackend,
                       ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """run_group in a worker process (as asv and pytest-timeout isolate): a crash (segfault,
    os._exit, the OOM killer) or a call stuck past isolate_limit_s fails the group's cases, not the run.

    After a group's worker dies, each case is retried alone in its own worker, so only the culprit
    fails (the others are measured alone: no ratio to a baseline in another worker).
    """
    rows, samples, error = _in_worker(specs, cfg, backend)
    if error is None:
        return rows, samples
    if len(specs) == 1:
        return _failed_rows(specs, cfg, error), []
    rows, samples = [], []
    for spec in specs:
        r, s, err = _in_worker([spec], cfg, backend)
        if err is not None:
            r, s = _failed_rows([spec], cfg, err), []
        rows.extend(r)
        samples.extend(s)
    return rows, samples


def _failed_rows(specs: list[CaseSpec], cfg: RunConfig, error: str) -> list[dict[str, Any]]:
    modes = (specs[0].mode,) if specs[0].mode else cfg.modes
    rows = []
    for spec in specs:
        for mode in modes:
            row = make_row(spec, None, mode, None, None, error, cfg, None)
            _add_hardware_columns(row, None, None, None)
            rows.append(row)
    return rows


def _in_worker(specs: list[CaseSpec], cfg: RunConfig, backend: TimingBackend,
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """(rows, samples, None), or ([], [], why the worker failed). Forked where torch allows it (no
    CUDA context yet), else spawned; the worker sends its rows back through a pipe."""
    import multiprocessing as mp
    import pickle
    import signal as _signal
    import time

    method = "fork" if "fork" in mp.get_all_start_methods() and not torch.cuda.is_initialized() else "spawn"
    ctx = mp.get_context(method)
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_worker, args=(send, specs, cfg, backend), daemon=True)
    proc.start()
    send.close()
    limit = isolate_limit_s(specs, cfg)
    deadline = time.monotonic() + limit if limit else None
    try:
        while True:
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            if receive.poll(wait):
                try:
                    kind, payload = receive.recv()
                except (EOFError, OSError, pickle.UnpicklingError):
                    kind, payload = "died", None
                break
            if not proc.is_alive():
                kind, payload = "died", None
                break
            if deadline is not None and time.monotonic() >= deadline:
                kind, payload = "timeout", None
                break
    except BaseException:  # Ctrl-C/SIGTERM while waiting: stop the worker, then stop the run
        proc.kill()
        proc.join()
        raise
    finally:
        receive.close()
    if kind == "timeout":
        proc.kill()
        proc.join()
        return [], [], f"timed out after {limit:g} s (hard limit of an --isolate worker; --case-timeout)"
    proc.join(timeout=30)
    if kind == "ok":
        return payload[0], payload[1], None
    if kind == "error":
        return [], [], payload
    code = proc.exitcode
    if code is None:
        proc.kill()
        proc.join()
        return [], [], "worker process stopped answering (--isolate)"
    if code < 0:
        name = _signal.Signals(-code).name if -code in _signal.Signals._value2member_map_ else str(-code)
        why = " (the OOM killer?)" if -code == _signal.SIGKILL else ""
        return [], [], f"worker process crashed: killed by {name}{why} (--isolate)"
    return [], [], f"worker process exited with code {code} before finishing (--isolate)"


def _worker(conn: Any, specs: list[CaseSpec], cfg: RunConfig, backend: TimingBackend) -> None:
    """The body of an --isolate worker: one group, its rows sent back; a signal from the terminal
    goes to the parent, which stops this worker."""
    import signal as _signal

    for sig in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(sig, _signal.SIG_DFL)
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    try:
        rows, samples = run_group(specs, cfg, backend, None)
        conn.send(("ok", (rows, samples)))
    except BaseException as exc:  # noqa: BLE001 - whatever happens, the parent gets a line, not silence
        try:
            conn.send(("error", f"worker process failed: {faults.describe(exc)} (--isolate)"))
        except BaseException:  # noqa: BLE001
            pass
    finally:
        conn.close()


def group_label(spec: CaseSpec) -> str:
    """'G2 x1', or 'G2 x1 b8 bfloat16' at a sweep point (resume.spec_group gives the same)."""
    return f"{spec.experiment} x{spec.scale}" + (f" {spec.point}" if spec.point else "")


def _profile(fn: Callable[[], object], device: Device) -> dict[str, Any]:
    from latbench.opbreakdown import profile_forward

    result: dict[str, Any] = {}
    with faults.case_boundary(0, lambda exc: result.update(profile_error=device.error_text(exc))):
        result = profile_forward(fn, device)  # a profiler failure must not lose the measurement
    return result


def _add_hardware_columns(row: dict[str, Any], tele: Any, ceilings: roofline.CeilingSet | roofline.Ceilings | None,
                          ops: dict[str, Any] | None) -> None:
    """Telemetry flags, roofline and op-breakdown columns; flags also become row warnings."""
    if row.get("flops") is not None:  # a case that could not be counted has no cost columns
        row.update(roofline.row_columns(row["flops"], row["mac_bytes"], row.get("latency_ms"), ceilings,
                                        row.get("dtype")))
    if ops:
        row.update({k: v for k, v in ops.items() if k != "profile_error"})
    if tele is not None:
        row.update(tele.columns())
    notes = [*(tele.notes if tele is not None and row["status"] == "ok" else ()), *roofline.row_warnings(row),
             *((f"profile failed: {ops['profile_error']}",) if ops and "profile_error" in ops else ())]
    if notes:
        row["warnings"] = " | ".join(w for w in (row.get("warnings"), *notes) if w)


def make_row(spec: CaseSpec, cost: Cost | None, mode: str, m: Measurement | None, ratio: Ratio | None,
             error: str | None, cfg: RunConfig, base_flops: int | None) -> dict[str, Any]:
    reference = spec.flops_target or base_flops
    row: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "run_id": cfg.run_id, "suite": spec.suite,
        "experiment": spec.experiment, "case": spec.case, "scale": spec.scale, "device": cfg.device_name,
        "mode": mode, "batch": spec.batch, "dtype": spec.dtype, "memory_format": spec.memory_format,
        "threads": spec.threads or cfg.threads, "widths": spec.widths_text(), "widths_mode": spec.widths_mode,
        "flops_target": spec.flops_target,
        "baseline_case": spec.baseline_case, "schedule": cfg.schedule, "source": spec.source,
        "status": "failed" if error or m is None else "ok", "error": error or "",
    }
    if cost is None:  # not counted (the case failed): the cost columns are empty, never absent
        row.update(dict.fromkeys(("flops", "mult_adds", "mac_bytes", "params", "activations", "flops_drift_pct")))
    else:
        row.update({"flops": cost.flops, "mult_adds": cost.mult_adds, "mac_bytes": cost.mac_bytes,
                    "params": cost.params, "activations": cost.activations,
                    "flops_drift_pct": round(100 * (cost.flops / reference - 1), 3) if reference else None})
    if m is None:
        row["stop_reason"] = "failed"
        row["warnings"] = ""
        return row
    s = summarize(m.samples_s)
    row.update({
        "latency_ms": s.median_ms, "latency_mean_ms": s.mean_ms, "latency_p10_ms": s.p10_ms,
        "latency_p90_ms": s.p90_ms, "latency_p99_ms": s.p99_ms, "latency_iqr_ms": s.iqr_ms, "latency_ci_low_ms": s.ci_low_ms,
        "latency_ci_high_ms": s.ci_high_ms, "samples": s.n, "iters_per_sample": m.iters_per_sample,
        "warmup_iters": m.warmup_iters, "outliers": s.outliers,
        "images_per_s": 1e3 * spec.batch / s.median_ms, "batches_per_s": 1e3 / s.median_ms,
        "stop_reason": m.stop_reason,
    })
    if ratio is not None:
        row.update({"ratio_to_baseline": ratio.value, "ratio_ci_low": ratio.ci_low, "ratio_ci_high": ratio.ci_high,
                    "ratio_differs": ratio.differs if spec.case != spec.baseline_case else False,
                    "ratio_interval": ratio.interval, "repeats": 1, "ratio_unstable": False})
    row["warnings"] = " | ".join(row_warnings(spec, s, ratio, m, cfg.policy.rel_ci))
    return row


def row_warnings(spec: CaseSpec, s: Summary, ratio: Ratio | None, m: Measurement, target: float) -> list[str]:
    """Noise warnings with a remedy (as pyperf and torch.utils.benchmark give them)."""
    out = []
    rel = relative_halfwidth(s.ci_low_ms, s.ci_high_ms, s.median_ms)
    if rel > NOISY_REL_CI:
        out.append(f"noisy +-{_pct(rel)}: the median is known to +-{_pct(rel)} (95% CI) from {s.n} samples; "
                   f"raise --max-time, stop other jobs, or pin --threads")
    if ratio is not None and spec.case != spec.baseline_case:
        rel_r = relative_halfwidth(ratio.ci_low, ratio.ci_high, ratio.value)
        if rel_r > NOISY_REL_CI:
            out.append(f"ratio +-{_pct(rel_r)}: the ratio to {spec.baseline_case} is known to +-{_pct(rel_r)} "
                       f"(95% CI); more rounds (--max-time) or a quieter machine narrow it")
    if s.n and s.outliers / s.n > OUTLIER_SHARE:
        out.append(f"{s.outliers} outliers: {s.outliers} of {s.n} samples are far outliers; something else ran "
                   f"on the machine")
    if m.stop_reason in ("max_time", "max_rounds") and rel > target:
        out.append(f"{m.stop_reason}: stopped at {m.stop_reason} before the +-{_pct(target)} target")
    return out


def _pct(x: float) -> str:
    return "inf" if math.isinf(x) else f"{100 * x:.1f}%"


def _sample_rows(spec: CaseSpec, mode: str, m: Measurement, cfg: RunConfig) -> list[dict[str, Any]]:
    common = {"run_id": cfg.run_id, "suite": spec.suite, "experiment": spec.experiment, "case": spec.case,
              "scale": spec.scale, "device": cfg.device_name, "mode": mode, "batch": spec.batch,
              "iters": m.iters_per_sample, "dtype": spec.dtype, "memory_format": spec.memory_format,
              "threads": spec.threads or cfg.threads}
    return [{**common, "round": r, "position": p, "latency_ms": v * 1e3}
            for v, r, p in zip(m.samples_s, m.rounds, m.positions)]
