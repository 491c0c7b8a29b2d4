"""The results row: a frozen `Row` whose fields are the results columns, built here and only here.

`build_row` turns one case x mode of a measured group (its cost, measurement, ratio, error or skip,
machine telemetry, roofline, op breakdown) into a Row; `pool` turns the rows of N worker processes
into one. Warnings are data (`Note`: a code and a text) until a view or the CSV renders them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import socket
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from latbench import roofline
from latbench.records import RESULT_COLUMNS, SAMPLE_COLUMNS, SCHEMA_VERSION, CaseSpec, Cost, Measurement, Ratio
from latbench.results.schema import FAILED, OK, SKIPPED
from latbench.telemetry import oversubscribed_cpu, oversubscribed_text
from latbench.run.options import option_name
from latbench.stats import paired_ratio, pool_processes, relative_halfwidth, summarize

NOISY_REL_CI = 0.05  # a median or ratio whose 95 % CI half-width exceeds 5 % gets a warning
OUTLIER_SHARE = 0.10  # more than 10 % far-out samples gets a warning
COST_COLUMNS = ("flops", "mult_adds", "mac_bytes", "params", "activations", "flops_drift_pct")


@dataclass(frozen=True)
class Note:
    """A warning on a row: a stable code (noisy, ratio_noisy, outliers, target_missed, throttled,
    under_load, above_roofline, profile_failed, unstable, processes_failed) and its text."""

    code: str
    text: str


class _RowMethods:
    notes: tuple[Note, ...]

    @property
    def warnings(self) -> str:
        """The `warnings` column: the notes' texts joined by ' | '."""
        return " | ".join(n.text for n in self.notes)

    def to_dict(self) -> dict[str, Any]:
        """The row as the results CSV holds it: every column of RESULT_COLUMNS, in order."""
        return {c: (self.warnings if c == "warnings" else getattr(self, c)) for c in RESULT_COLUMNS}

    def replace(self, **changes: Any) -> "Row":
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @property
    def identity(self) -> tuple[Any, ...]:
        """What a row is, as compare joins rows (records.KEY_COLUMNS) and pooling matches them."""
        from latbench.records import KEY_COLUMNS

        return tuple(getattr(self, c) for c in KEY_COLUMNS)


# One field per results column (in RESULT_COLUMNS' order, `warnings` rendered from `notes`), all
# defaulting to empty: a failed row has no latency columns, an uncounted one no cost columns.
Row = dataclasses.make_dataclass(
    "Row", [(c, Any, dataclasses.field(default=None)) for c in RESULT_COLUMNS if c != "warnings"]
    + [("notes", tuple, dataclasses.field(default=()))],
    bases=(_RowMethods,), frozen=True)
Row.__module__ = __name__  # pickled by name (rows travel from worker processes)
Row.__doc__ = "One results row (RESULT_COLUMNS as fields; `warnings` rendered from `notes`)."


@dataclass(frozen=True)
class RowContext:
    """What every row of a group shares: the run, the device and how the group was measured."""

    run_id: str
    device: str
    threads: int | None
    schedule: str
    rel_ci: float  # the stop rule's target (a row that stopped short of it gets a warning)
    ceilings: Any = None  # roofline.CeilingSet | roofline.Ceilings | None
    backend_columns: tuple[tuple[str, str], ...] = ()  # latency_semantics, l2
    api: bool = False  # remedies name keyword arguments, not flags
    # the machine that measured the rows (schema 5); None: this process's (local_identity), the usual case,
    # since rows are built where they are measured (a worker on a Ray node builds its node's)
    host: str | None = None
    device_name: str | None = None


@functools.lru_cache(maxsize=None)
def local_identity(device: str) -> tuple[str, str]:
    """(hostname, device model) of this process's machine: the CPU model, or the GPU's name on cuda."""
    from latbench import devices, env

    try:
        name = devices.DEVICES[device]().model_name({"cpu_model": env.cpu_model()})
    except Exception:  # noqa: BLE001 - an identity column must never fail a row
        name = ""
    return socket.gethostname(), str(name or "")


def _identity(spec: CaseSpec, mode: str, ctx: RowContext) -> dict[str, Any]:
    return {"suite": spec.suite, "experiment": spec.experiment, "case": spec.case, "scale": spec.scale,
            "device": ctx.device, "mode": mode, "batch": spec.batch, "dtype": spec.dtype,
            "memory_format": spec.memory_format, "threads": spec.threads or ctx.threads}


def build_row(spec: CaseSpec, mode: str, ctx: RowContext, *, cost: Cost | None = None,
              measurement: Measurement | None = None, ratio: Ratio | None = None, error: str | None = None,
              skip: str | None = None, base_flops: int | None = None, compile_s: float | None = None,
              telemetry: Any = None, ops: dict[str, Any] | None = None) -> Any:
    """The row of one case x mode: status ok (measured), failed (error or not measured), skipped."""
    m = measurement
    status = SKIPPED if skip else FAILED if error or m is None else OK
    cols: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "run_id": ctx.run_id, **_identity(spec, mode, ctx),
        "widths": spec.widths_text(), "widths_mode": spec.widths_mode, "flops_target": spec.flops_target,
        "baseline_case": spec.baseline_case, "schedule": ctx.schedule, "source": spec.source,
        "status": status, "error": skip or error or "", "compile_s": compile_s, **dict(ctx.backend_columns),
        "stop_reason": "skipped" if skip else "failed" if m is None else m.stop_reason,
    }
    host, device_name = local_identity(ctx.device) if ctx.host is None or ctx.device_name is None else ("", "")
    cols.update(host=host if ctx.host is None else ctx.host,
                device_name=device_name if ctx.device_name is None else ctx.device_name)
    if cost is not None:
        reference = spec.flops_target or base_flops
        cols.update(flops=cost.flops, mult_adds=cost.mult_adds, mac_bytes=cost.mac_bytes, params=cost.params,
                    activations=cost.activations,
                    flops_drift_pct=round(100 * (cost.flops / reference - 1), 3) if reference else None)
    notes: list[Note] = []
    if m is not None:
        s = summarize(m.samples_s)
        cols.update(latency_ms=s.median_ms, latency_mean_ms=s.mean_ms, latency_p10_ms=s.p10_ms,
                    latency_p90_ms=s.p90_ms, latency_p99_ms=s.p99_ms, latency_iqr_ms=s.iqr_ms,
                    latency_ci_low_ms=s.ci_low_ms, latency_ci_high_ms=s.ci_high_ms, samples=s.n,
                    iters_per_sample=m.iters_per_sample, warmup_iters=m.warmup_iters, outliers=s.outliers,
                    images_per_s=1e3 * spec.batch / s.median_ms, batches_per_s=1e3 / s.median_ms)
        if ratio is not None:
            cols.update(ratio_to_baseline=ratio.value, ratio_ci_low=ratio.ci_low, ratio_ci_high=ratio.ci_high,
                        ratio_differs=ratio.differs if spec.case != spec.baseline_case else False,
                        ratio_interval=ratio.interval, repeats=1, ratio_unstable=False)
        notes += _noise_notes(spec, s, ratio, m, ctx)
    if telemetry is not None:
        cols.update(telemetry.columns())
        if status == OK:
            notes += [Note(_code(t), t) for t in telemetry.notes]
    if ops:
        cols.update({k: v for k, v in ops.items() if k != "profile_error"})
        if "profile_error" in ops:
            notes.append(Note("profile_failed", f"profile failed: {ops['profile_error']}"))
    return with_roofline(Row(**cols, notes=tuple(notes)), ctx.ceilings)


def _code(telemetry_note: str) -> str:
    return telemetry_note.partition(":")[0].strip().replace(" ", "_")


def with_roofline(row: Any, ceilings: Any) -> Any:
    """The row with its roofline columns (against its own dtype's ceiling) and the above-roofline note."""
    if row.flops is None:  # a case that could not be counted has no cost columns
        return row
    cols = roofline.row_columns(row.flops, row.mac_bytes, row.latency_ms, ceilings, row.dtype)
    notes = tuple(n for n in row.notes if n.code != "above_roofline")
    notes += tuple(Note("above_roofline", w) for w in roofline.row_warnings(cols))
    return row.replace(**cols, notes=notes)


def _noise_notes(spec: CaseSpec, s: Any, ratio: Ratio | None, m: Measurement, ctx: RowContext) -> list[Note]:
    """Noise warnings with a remedy (as pyperf and torch.utils.benchmark give them)."""
    out = []
    max_time, threads = option_name("max_time", ctx.api), option_name("threads", ctx.api)
    rel = relative_halfwidth(s.ci_low_ms, s.ci_high_ms, s.median_ms)
    if rel > NOISY_REL_CI:
        out.append(Note("noisy", f"noisy +-{_pct(rel)}: the median is known to +-{_pct(rel)} (95% CI) from {s.n} "
                                 f"samples; raise {max_time}, stop other jobs, or pin {threads}"))
    if ratio is not None and spec.case != spec.baseline_case:
        rel_r = relative_halfwidth(ratio.ci_low, ratio.ci_high, ratio.value)
        if rel_r > NOISY_REL_CI:
            out.append(Note("ratio_noisy", f"ratio +-{_pct(rel_r)}: the ratio to {spec.baseline_case} is known to "
                                           f"+-{_pct(rel_r)} (95% CI); more rounds ({max_time}) or a quieter "
                                           f"machine narrow it"))
    if s.n and s.outliers / s.n > OUTLIER_SHARE:
        out.append(Note("outliers", f"{s.outliers} outliers: {s.outliers} of {s.n} samples are far outliers; "
                                    f"something else ran on the machine"))
    if m.stop_reason in ("max_time", "max_rounds") and rel > ctx.rel_ci:
        out.append(Note("target_missed", f"{m.stop_reason}: stopped at {m.stop_reason} before the "
                                         f"+-{_pct(ctx.rel_ci)} target"))
    return out


def _pct(x: float) -> str:
    return "inf" if math.isinf(x) else f"{100 * x:.1f}%"


def failed_rows(specs: Sequence[CaseSpec], modes: Sequence[str], ctx: RowContext, error: str) -> list[Any]:
    """Every case x mode of `specs` failed with `error` (a worker that died, a group no process measured)."""
    return [build_row(s, m, ctx, error=error) for s in specs for m in ((s.mode,) if s.mode else modes)]


def sample_rows(spec: CaseSpec, mode: str, m: Measurement, ctx: RowContext, process: int = 0) -> list[dict[str, Any]]:
    """The samples file's rows of one measurement (one per timed block)."""
    common = {"run_id": ctx.run_id, **_identity(spec, mode, ctx), "iters": m.iters_per_sample, "process": process}
    return [{**common, "round": r, "position": p, "latency_ms": v * 1e3}
            for v, r, p in zip(m.samples_s, m.rounds, m.positions)]


# ---------------------------------------------------------------- pooling across processes

def pool(per_process: Sequence[tuple[Sequence[Any], Sequence[dict[str, Any]]]], ceilings: Any = None,
         api: bool = False) -> tuple[list[Any], list[dict[str, Any]]]:
    """One group's rows and samples from its processes (each process's (rows, samples)): rows pooled
    per case x mode, samples tagged with `process` and their rounds numbered on (process 1's first
    round follows process 0's last), so readers pairing samples by (run, round) pair one process's."""
    samples: list[dict[str, Any]] = []
    offset = 0
    for p, (_, smp) in enumerate(per_process):
        last = -1
        for s in smp:
            samples.append({**s, "process": p, "round": s["round"] + offset})
            last = max(last, s["round"])
        offset += last + 1
    k = len(per_process)
    out = []
    for i, first in enumerate(per_process[0][0]):
        rows = [rs[i] for rs, _ in per_process if i < len(rs)]
        mine = [s for s in samples if tuple(s.get(c) for c in _SAMPLE_KEY) == _sample_key(first)]
        base_key = _sample_key(first.replace(case=first.baseline_case))
        base = [s for s in samples if tuple(s.get(c) for c in _SAMPLE_KEY) == base_key]
        out.append(_pool_rows(rows, mine, k, ceilings, api, base))
    return out, samples


_SAMPLE_KEY = tuple(c for c in ("case", "mode", "experiment", "scale", "batch", "dtype", "memory_format")
                    if c in SAMPLE_COLUMNS)


def _sample_key(row: Any) -> tuple[Any, ...]:
    return tuple(getattr(row, c) for c in _SAMPLE_KEY)


def _pool_rows(rows: Sequence[Any], samples: Sequence[dict[str, Any]], k: int, ceilings: Any, api: bool,
               base_samples: Sequence[dict[str, Any]] = ()) -> Any:
    """One case x mode pooled over its processes (stats.pool_processes); the interval of all processes'
    rounds pooled (samples, paired with base_samples for the ratio) is the pooled interval's floor."""
    ok = [r for r in rows if r.status == OK]
    if not ok:  # failed or skipped in every process: the first one's reason
        return rows[0].replace(repeats=k)
    first = ok[0]
    cols: dict[str, Any] = {}
    all_rounds: tuple[float, float] | None = None
    if samples:
        s = summarize([x["latency_ms"] / 1e3 for x in samples])
        all_rounds = (s.ci_low_ms, s.ci_high_ms)
        cols.update(latency_mean_ms=s.mean_ms, latency_p10_ms=s.p10_ms, latency_p90_ms=s.p90_ms,
                    latency_p99_ms=s.p99_ms, latency_iqr_ms=s.iqr_ms, samples=s.n, outliers=s.outliers)
    lat = pool_processes([Ratio(r.latency_ms, r.latency_ci_low_ms, r.latency_ci_high_ms, r.samples) for r in ok],
                         pooled=all_rounds)
    cols.update(latency_ms=lat.value, latency_ci_low_ms=lat.ci_low, latency_ci_high_ms=lat.ci_high,
                images_per_s=1e3 * first.batch / lat.value, batches_per_s=1e3 / lat.value,
                stop_reason=Counter(r.stop_reason for r in ok).most_common(1)[0][0], repeats=len(ok),
                warmup_iters=sum(int(r.warmup_iters or 0) for r in ok))
    # one process's noise and CPU share: re-judged below over all processes
    notes = [n for n in first.notes if n.code not in ("noisy", "ratio_noisy", "oversubscribed")]
    shares = [float(r.cpu_per_wall) for r in ok if r.cpu_per_wall is not None and math.isfinite(r.cpu_per_wall)]
    if shares:
        share = statistics.median(shares)
        over = any(r.oversubscribed for r in ok) and oversubscribed_cpu(share)
        cols.update(cpu_per_wall=round(share, 2), oversubscribed=over)
        if over:
            notes.append(Note("oversubscribed", oversubscribed_text(share)))
    if len(ok) < k:
        why = next((r.error for r in rows if r.error), "")
        notes.append(Note("processes_failed", f"{k - len(ok)} of {k} processes failed: {why}"))
    ratios = [Ratio(r.ratio_to_baseline, r.ratio_ci_low, r.ratio_ci_high, int(r.samples or 0),
                    interval=str(r.ratio_interval or "")) for r in ok if r.ratio_to_baseline is not None]
    if ratios:
        floor = None
        if samples and base_samples:  # every process's rounds paired (rounds are numbered on across processes)
            r_all = paired_ratio([x["latency_ms"] for x in samples], [x["round"] for x in samples],
                                 [x["latency_ms"] for x in base_samples], [x["round"] for x in base_samples])
            floor = (r_all.ci_low, r_all.ci_high) if r_all.n else None
        pooled = pool_processes(ratios, pooled=floor)
        is_base = first.case == first.baseline_case
        ratio = pooled.as_ratio(sum(r.n for r in ratios))
        cols.update(ratio_to_baseline=ratio.value, ratio_ci_low=ratio.ci_low, ratio_ci_high=ratio.ci_high,
                    ratio_differs=False if is_base else ratio.differs, ratio_interval=pooled.interval,
                    ratio_process_spread_pct=100 * pooled.spread_rel, ratio_between_pct=100 * pooled.between_rel,
                    ratio_unstable=bool(pooled.unstable and not is_base))
        if cols["ratio_unstable"]:
            notes.append(Note("unstable", unstable_text(cols["ratio_process_spread_pct"], len(ok),
                                                        cols["ratio_between_pct"])))
        rel = relative_halfwidth(ratio.ci_low, ratio.ci_high, ratio.value)
        if not is_base and rel > NOISY_REL_CI:
            notes.append(Note("ratio_noisy", f"ratio +-{_pct(rel)}: the ratio to {first.baseline_case} is known "
                                             f"to +-{_pct(rel)} (95% CI over {len(ok)} processes); more "
                                             f"{option_name('repeats', api)} or a quieter machine narrow it"))
    return with_roofline(first.replace(**cols, notes=tuple(notes)), ceilings)


def unstable_text(spread_pct: float, processes: int, between_pct: float) -> str:
    return (f"unstable ratio: moved {spread_pct:.1f}% between {processes} processes (sd {between_pct:.1f}%), "
            f"more than one process's own interval; the pooled CI includes that spread, the number will not "
            f"hold to a single run's precision")


def as_dicts(rows: Iterable[Any]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in rows]
