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
from latbench.timing.prepare import Prepared, error_text, prepare_case
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
    ceilings: roofline.Ceilings | None = None  # for the roofline columns
    profile: bool = False  # torch.profiler op breakdown after each group's measurement

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
    for _, group in groupby(specs, key=lambda s: s.group):
        group = list(group)
        if on_group_start:
            on_group_start(group_label(group[0]))
        rows, samples = run_group(group, cfg, backend, on_progress)
        on_group_done(rows, samples)
        all_rows.extend(rows)
    return all_rows


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
        try:
            costs[s.case] = count_spec(s)
        except Exception as exc:  # noqa: BLE001 - a user module that cannot even be counted
            costs[s.case] = None
            errors.update({(s.case, m): error_text(exc) for m in modes})
    skips: dict[tuple[str, str], str] = {}
    compile_s: dict[tuple[str, str], float] = {}
    items: list[tuple[tuple[str, str], Callable[[], object]]] = []
    fns: dict[str, Callable[[], object]] = {}  # one callable per case, for --profile
    label = group_label(specs[0])
    with torch.inference_mode():
        for spec in specs:
            if costs[spec.case] is None:
                continue
            try:
                with faults.time_limit(cfg.case_timeout_s):
                    prepared = prepare_case(spec, modes, dev.name, backend, cfg.seed)
            except faults.CaseTimeout as exc:
                prepared = {mode: Prepared(error=dev.error_text(exc)) for mode in modes}
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
            if key in skips:
                row.update(status="skipped", error=skips[key], stop_reason="skipped")
            _add_hardware_columns(row, tele, cfg.ceilings, ops.get(spec.case))
            rows.append(row)
            if m is not None:
                sample_rows.extend(_sample_rows(spec, mode, m, cfg))
    return rows, sample_rows


def group_label(spec: CaseSpec) -> str:
    """'G2 x1', or 'G2 x1 b8 bfloat16' at a sweep point (resume.spec_group gives the same)."""
    return f"{spec.experiment} x{spec.scale}" + (f" {spec.point}" if spec.point else "")


def _profile(fn: Callable[[], object], device: Device) -> dict[str, Any]:
    from latbench.opbreakdown import profile_forward

    try:
        return profile_forward(fn, device)
    except Exception as exc:  # noqa: BLE001 - a profiler failure must not lose the measurement
        return {"profile_error": device.error_text(exc)}


def _add_hardware_columns(row: dict[str, Any], tele: Any, ceilings: roofline.Ceilings | None,
                          ops: dict[str, Any] | None) -> None:
    """Telemetry flags, roofline and op-breakdown columns; flags also become row warnings."""
    row.update(roofline.row_columns(row["flops"], row["mac_bytes"], row.get("latency_ms"), ceilings))
    if ops:
        row.update({k: v for k, v in ops.items() if k != "profile_error"})
    if tele is not None:
        row.update(tele.columns())
    notes = [*(tele.notes if tele is not None and row["status"] == "ok" else ()),
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
    if cost is not None:
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
