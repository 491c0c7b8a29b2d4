"""Frozen records shared by every module, and the results schema. Imports nothing else from latbench."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Results schema history:
#   1 - first release (latbench 0.1.0)
#   2 - sweep axes: memory_format joins the row identity with dtype and threads (KEY_COLUMNS);
#       appended memory_format, latency_p99_ms, compile_s; status may be "skipped" (reason in error).
#       Schema-1 files read as memory_format=contiguous.
#   3 - what a latency means and which ceiling a roofline row used : appended latency_semantics
#       ("throughput"/"single"), l2 ("warm"/"flushed"), gpu_throttle_reasons (NVML reasons seen in the
#       group, ";"-joined), roofline_ceiling (dtype/math mode of the peak, e.g. "float32/tf32").
#       Older files read as latency_semantics=throughput, l2=warm (what every earlier run measured).
#   4 - process repeats: appended ratio_interval (how ratio_ci_low/high were made: stats.INTERVALS),
#       repeats (worker processes pooled into the row), ratio_process_spread_pct, ratio_between_pct,
#       ratio_unstable; the samples file appended `process` (which worker took the sample). Older files
#       read as one process: ratio_interval "unrecorded", repeats 1, process 0.
#   5 - many machines (issue 26): appended host (the hostname of the machine that measured the row) and
#       device_name (its CPU model or GPU name), so a run merged from shards or measured on a Ray fleet
#       keeps each row's machine. Older files read host = the metadata fingerprint's hostname and
#       device_name = its GPU (device_settings) or CPU model where the metadata is at hand, else "".
#   6 - oversubscription (issue 21): appended cpu_per_wall (CPU seconds the measuring process got per wall
#       second of its group's measurement) and oversubscribed (a CPU row below 0.85: no verdict passes on
#       it). Older files read cpu_per_wall NaN, oversubscribed False.
SCHEMA_VERSION = 6


@dataclass(frozen=True)
class CaseSpec:
    """One network to build and time: a suite case at one scale, with its widths resolved."""

    suite: str
    experiment: str
    case: str
    scale: int
    builder: str
    params: tuple[tuple[str, Any], ...]  # sorted (name, value) pairs, widths included
    blocks: int
    batch: int
    height: int
    width: int
    baseline_case: str  # the case this one's ratio is taken against (first case of the suite)
    widths_mode: str = "paper"  # "paper" (the suite's channel lists) or "flops" (solved to a target)
    flops_target: int | None = None  # in FLOPs (2 per multiply-add), per batch; None in paper mode
    flops_tolerance: float = 0.01
    source: str = ""  # "suites/g2.yaml:14"
    # sweep axes (suite/sweep.py); the defaults are an unswept case
    dtype: str = "float32"
    memory_format: str = "contiguous"  # or "channels_last"
    threads: int | None = None  # None: the run's --threads
    mode: str | None = None  # None: every mode of the run (--modes)

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def group(self) -> tuple:
        """Cases in one group are measured together (interleaved) and compared with one baseline:
        same scale and same sweep point."""
        return (self.suite, self.experiment, self.scale, self.batch, self.dtype, self.memory_format, self.threads,
                self.mode)

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.case}/x{self.scale}"

    @property
    def group_label(self) -> str:
        """Its group as people read it: 'G2 x1', or 'G2 x1 b8 bfloat16' at a sweep point."""
        return f"{self.experiment} x{self.scale}" + (f" {self.point}" if self.point else "")

    @property
    def point(self) -> str:
        """The sweep point in short, e.g. 'b8 bfloat16 channels_last t2 compile' (empty when unswept)."""
        parts = [f"b{self.batch}" if self.batch != 1 else "",
                 self.dtype if self.dtype != "float32" else "",
                 self.memory_format if self.memory_format != "contiguous" else "",
                 f"t{self.threads}" if self.threads else "", self.mode or ""]
        return " ".join(p for p in parts if p)

    def widths_text(self) -> str:
        """Compact 'c1=32;c2=32' of the integer width parameters (stable, for CSV)."""
        return ";".join(f"{k}={v}" for k, v in self.params if isinstance(v, int) and not isinstance(v, bool))


@dataclass(frozen=True)
class Cost:
    """Static cost of one forward pass of a whole batch, counted on the meta device."""

    flops: int  # torch.utils.flop_counter: one multiply-add = 2 FLOPs
    mac_bytes: int  # memory access cost: bytes read + written by every op (inputs, weights, outputs)
    params: int
    activations: int  # elements written by all compute ops

    @property
    def mult_adds(self) -> int:
        """The paper's "FLOPs": multiply-adds."""
        return self.flops // 2


@dataclass(frozen=True)
class Measurement:
    """Raw timing of one item (case x mode): per-iteration seconds, one value per timed block."""

    samples_s: tuple[float, ...]
    iters_per_sample: int
    rounds: tuple[int, ...]  # round index of each sample (pairs samples across items)
    positions: tuple[int, ...]  # position of the item inside its round's order
    warmup_iters: int
    warmup_s: float
    stop_reason: str


@dataclass(frozen=True)
class Summary:
    """Statistics of one Measurement, in milliseconds."""

    median_ms: float
    mean_ms: float
    p10_ms: float
    p90_ms: float
    iqr_ms: float
    ci_low_ms: float
    ci_high_ms: float
    n: int
    outliers: int
    p99_ms: float = float("nan")  # 99th percentile of the samples (block means, see docs/suites.md)


@dataclass(frozen=True)
class Ratio:
    """Latency of an item over its baseline, from paired rounds, with a confidence interval."""

    value: float
    ci_low: float
    ci_high: float
    n: int
    interval: str = "order"  # how ci_low/ci_high were made: stats.INTERVALS names them

    @property
    def differs(self) -> bool:
        """False when the interval includes 1 or is undefined (NaN): no difference can be claimed."""
        return self.ci_high < 1.0 or self.ci_low > 1.0


@dataclass(frozen=True)
class RankCorrelation:
    """stats.rank_correlation's result: Spearman's rho and Kendall's tau of x against y, each with a seeded
    percentile-bootstrap interval (pairs resampled, or whole groups); nan where fewer than 3 finite pairs.
    diff: rho(x) - rho(against) with its interval from the same resamples (nan without `against`)."""
    n: int  # pairs used
    spearman: float
    spearman_low: float
    spearman_high: float
    kendall: float
    kendall_low: float
    kendall_high: float
    diff: float = math.nan
    diff_low: float = math.nan
    diff_high: float = math.nan
    groups: int = 0  # groups of >= 3 pairs averaged over (0: pairs not grouped)


# Columns of results/<suite>-<device>-<timestamp>.csv, in order. Units live in the names.
RESULT_COLUMNS: tuple[str, ...] = (
    "schema_version", "run_id", "suite", "experiment", "case", "scale", "device", "mode", "batch",
    "dtype", "threads", "widths", "widths_mode", "flops", "mult_adds", "flops_target", "flops_drift_pct",
    "mac_bytes", "params", "activations",
    "latency_ms", "latency_mean_ms", "latency_p10_ms", "latency_p90_ms", "latency_iqr_ms",
    "latency_ci_low_ms", "latency_ci_high_ms", "samples", "iters_per_sample", "warmup_iters",
    "outliers", "images_per_s", "batches_per_s",
    "baseline_case", "ratio_to_baseline", "ratio_ci_low", "ratio_ci_high", "ratio_differs",
    "schedule", "stop_reason", "status", "error", "warnings", "source",
    # machine state while the row's group was measured (latbench/telemetry.py)
    "cpu_freq_mhz", "cpu_load_pct", "gpu_sm_clock_mhz", "gpu_temp_c", "gpu_power_w", "throttled", "under_load",
    # where the row sits under the device's measured ceilings (latbench/roofline.py)
    "achieved_flops_per_s", "achieved_bytes_per_s", "arithmetic_intensity_flops_per_byte", "roofline_bound_ms",
    "roofline_pct",
    # torch.profiler breakdown, with `run --profile` (latbench/opbreakdown.py)
    "op_count_per_forward", "zero_flop_time_pct",
    # sweep axes (latbench/suite/sweep.py)
    "memory_format", "latency_p99_ms", "compile_s",
    # schema 3: what was measured (latbench/timing/cuda.py) and against which ceiling
    "latency_semantics", "l2", "gpu_throttle_reasons", "roofline_ceiling",
    # schema 4: process repeats (run --repeats, latbench/run/workers.py)
    "ratio_interval", "repeats", "ratio_process_spread_pct", "ratio_between_pct", "ratio_unstable",
    # schema 5: which machine measured the row (run --on ray, latbench merge; issue 26)
    "host", "device_name",
    # schema 6: did the measuring process get its CPU (latbench/telemetry.py; CPU seconds per wall second)
    "cpu_per_wall", "oversubscribed",
)

# Columns of the raw samples file beside it (one row per timed block).
SAMPLE_COLUMNS: tuple[str, ...] = (
    "run_id", "suite", "experiment", "case", "scale", "device", "mode", "batch",
    "round", "position", "iters", "latency_ms",
    "dtype", "memory_format", "threads",
    "process",  # schema 4: the worker process (0 .. repeats-1) that took the sample
)

# The identity of a row: what compare joins on.
KEY_COLUMNS: tuple[str, ...] = ("suite", "experiment", "case", "scale", "device", "mode", "batch",
                                 "dtype", "memory_format", "threads")
# Defaults for key columns that older schemas lack (latbench.results.schema.migrate fills them in).
KEY_DEFAULTS: dict[str, Any] = {"memory_format": "contiguous"}
