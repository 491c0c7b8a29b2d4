"""The device's ceilings (peak FLOP/s from a GEMM probe, bytes/s from a copy probe) and where each row
sits under them: achieved FLOP/s and bytes/s, arithmetic intensity, the roofline lower bound on time.

Roofline (Williams, Waterman, Patterson 2009): a forward pass needs at least
max(flops / peak_flops_per_s, mac_bytes / bandwidth_bytes_per_s) seconds. `roofline_pct` is that bound
as a percentage of the measured latency: 100 % = running at the ceiling, 10 % = 10x slower than it.
The ceilings are measured, not datasheet numbers: a GEMM (torch.mm) at the run's thread count and
dtype, and a tensor copy (bytes = read + write). The bandwidth ceiling is the best of a cache-sized
and a DRAM-sized buffer, so the bound stays a lower bound for the small, cache-resident feature maps
of the guideline suites. Probes take < 2 s on a CPU and are cached per machine fingerprint in
$LATBENCH_CACHE (default ~/.cache/latbench)/roofline.json; delete that file to re-measure.

Ceilings per dtype and math mode (issue 13 item 7): a row is held against the peak of the precision
it runs at. The GEMM probe runs in the row's dtype (bfloat16/float16 rows: a half-precision mm,
tensor cores) and, for float32 on a GPU, in the math mode Device.math_mode gives: "tf32" only when
both cuDNN convs and cuBLAS matmuls run TF32, "ieee" otherwise - with torch's defaults (convs TF32,
matmuls IEEE) a row's FLOPs may be matmuls that never reach the TF32 peak, and rows are not split by
op, so the ceiling is the one every float32 op reaches (a conv-heavy row may then read above 100 %:
warned, not clamped). The probe sets the matmul math mode to match (torch >= 2.9:
torch.backends.cuda.matmul.fp32_precision, what cuBLAS reads; older torch: matmul.allow_tf32) and
restores it. Each (dtype, math mode) is its own cache entry.

Timing: every probe times batches of back-to-back calls with the device's own clock
(Device.time_calls: CUDA events on a GPU, behind a short device-side wait so the host queues the
whole batch first and launches do not gap it; the host clock on the CPU), batches doubling until one
takes PROBE_BATCH_S. A host clock around one call and a synchronize costs 10-20 us on a GPU, which
swamps the ~1 us a 4 MiB (L2-resident) copy takes: that copy's bandwidth was never measured.
The bandwidth probe copies buffers in device memory (CudaDevice.copy_sizes: one L2-sized, one
HBM-sized); its best is the ceiling, so that L2-resident rows stay under it too. A row measured
above its ceiling anyway is not clamped: it gets a warning (the probe underestimated the device),
and `roofline_ceiling` names the ceiling used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from latbench.devices import Device
from latbench.results.files import atomic_write_text
from latbench.results.read import read_json_object

GEMM_BUDGET_S = 0.5
COPY_BUDGET_S = 0.25  # per buffer size
PROBE_BATCH_S = 1e-3  # a probe batch's calls take at least this long (device time), or it doubles
PROBE_MAX_BATCH = 1 << 16  # ... up to this many calls
PROBE_MAX_BATCHES = 10_000  # backstop: a clock that reports 0 s must not spin forever
# Copy buffers: each device's copy_sizes (devices.py); 4 MiB stays in a server's last-level cache,
# 64 MiB (CPU) / 256 MiB (GPU) does not.

ROOFLINE_COLUMNS = ("achieved_flops_per_s", "achieved_bytes_per_s", "arithmetic_intensity_flops_per_byte",
                    "roofline_bound_ms", "roofline_pct")
ROOFLINE_CEILING_COLUMN = "roofline_ceiling"  # which ceiling a row was held against, e.g. "float32/tf32"
MATH_MODES = ("ieee", "tf32", "")  # "" for dtypes that have one math mode (bfloat16, float16)


@dataclass(frozen=True)
class Ceilings:
    """Measured peak compute and bandwidth of one device configuration."""

    peak_flops_per_s: float
    bandwidth_bytes_per_s: float
    device: str
    device_name: str
    threads: int
    dtype: str
    key: str
    measured_at_utc: str
    probes: dict[str, Any]  # what each probe measured, e.g. per copy size
    math_mode: str = ""  # float32: "ieee" or "tf32" (MATH_MODES); "" for the half types

    @property
    def label(self) -> str:
        """The ceiling's name in rows and notes: 'float32/tf32', 'bfloat16'."""
        return f"{self.dtype}/{self.math_mode}" if self.math_mode else self.dtype

    @property
    def ridge_flops_per_byte(self) -> float:
        """Arithmetic intensity where the roof turns from bandwidth-bound to compute-bound."""
        return self.peak_flops_per_s / self.bandwidth_bytes_per_s


def _best_rate(fn: Callable[[], object], work: float, device: Device, budget_s: float) -> float:
    """Highest work/second over batches of back-to-back calls timed by the device's clock
    (Device.time_calls), within budget_s of timed calls; the first call is a warm-up. A batch doubles
    until it takes PROBE_BATCH_S, so per-batch clock costs stay small against the calls."""
    fn()
    device.synchronize()
    best, spent, batches, n = 0.0, 0.0, 0, 1
    while (spent < budget_s or batches < 3) and batches < PROBE_MAX_BATCHES:
        t0 = time.perf_counter()  # the budget is wall time; the rate is the device's clock
        dt = device.time_calls(fn, n)
        spent, batches = spent + time.perf_counter() - t0, batches + 1
        if dt > 0:
            best = max(best, work * n / dt)
        if dt < PROBE_BATCH_S and n < PROBE_MAX_BATCH:
            n *= 2
    return best


def probe_gemm(device: Device, dtype: torch.dtype = torch.float32, budget_s: float = GEMM_BUDGET_S,
               n: int | None = None) -> dict[str, Any]:
    """Peak FLOP/s of an n x n GEMM (2 n^3 FLOPs), at torch's current thread count."""
    dev = device
    n = n or dev.gemm_size()
    with torch.inference_mode():
        a = torch.randn(n, n, device=dev.name, dtype=dtype)
        b = torch.randn(n, n, device=dev.name, dtype=dtype)
        out = torch.empty(n, n, device=dev.name, dtype=dtype)
        rate = _best_rate(lambda: torch.mm(a, b, out=out), 2.0 * n ** 3, dev, budget_s)
    return {"peak_flops_per_s": rate, "gemm_n": n}


def probe_copy(device: Device, budget_s: float = COPY_BUDGET_S, sizes: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Copy bandwidth (bytes read + written per second); the best over buffer sizes is the ceiling."""
    dev = device
    per_size = {}
    with torch.inference_mode():
        for size in sizes or dev.copy_sizes:
            src = torch.ones(size // 4, device=dev.name, dtype=torch.float32)
            dst = torch.empty_like(src)
            per_size[str(size)] = _best_rate(lambda: dst.copy_(src), 2.0 * src.numel() * 4, dev, budget_s)
    return {"bandwidth_bytes_per_s": max(per_size.values()), "copy_bytes_per_s_by_buffer_size": per_size}


def cache_file() -> Path:
    """$LATBENCH_CACHE, else ~/.cache/latbench; with HOME unset, a per-user temp directory (never /.cache)."""
    if os.environ.get("LATBENCH_CACHE"):
        return Path(os.environ["LATBENCH_CACHE"]) / "roofline.json"
    if not os.environ.get("HOME"):
        import tempfile

        return Path(tempfile.gettempdir()) / f"latbench-cache-{os.getuid() if hasattr(os, 'getuid') else 0}" / "roofline.json"
    return Path.home() / ".cache" / "latbench" / "roofline.json"


def ceiling_key(device: str, device_name: str, threads: int, dtype: str, math_mode: str = "") -> str:
    """The fingerprint ceilings depend on: device model, threads, dtype and math mode, torch build."""
    text = json.dumps([device, device_name, threads, dtype, torch.__version__, *([math_mode] if math_mode else [])])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def math_mode_set(math_mode: str):
    """cuBLAS's float32 math mode set to `math_mode` ("tf32"/"ieee") while probing, then restored, so
    the GEMM probe runs at the precision the row is held to.

    torch >= 2.9: torch.backends.cuda.matmul.fp32_precision, what cuBLAS reads (float32Precision(CUDA,
    MATMUL) in aten's CUDABlas); the old allow_tf32 flag is neither read nor written, since reading it
    raises once a user has set the new API. Older torch: matmul.allow_tf32."""
    if math_mode not in ("tf32", "ieee"):
        yield
        return
    matmul = torch.backends.cuda.matmul
    try:
        before = matmul.fp32_precision
    except AttributeError:  # torch < 2.9
        before = None
    if isinstance(before, str):
        matmul.fp32_precision = math_mode
        try:
            yield
        finally:
            matmul.fp32_precision = before
        return
    before_flag = matmul.allow_tf32
    matmul.allow_tf32 = math_mode == "tf32"
    try:
        yield
    finally:
        matmul.allow_tf32 = before_flag


def measure_ceilings(device: Device, device_name: str, threads: int, dtype: torch.dtype | str = torch.float32,
                     gemm_probe: Callable[..., dict[str, Any]] | None = None,
                     copy_probe: Callable[..., dict[str, Any]] | None = None,
                     path: Path | None = None, refresh: bool = False,
                     math_mode: str | None = None) -> tuple[Ceilings, bool]:
    """The device's ceilings for `dtype` in `math_mode` (default: what the device runs that dtype's
    convs at, Device.math_mode), from the cache when this fingerprint was probed before.

    Returns (ceilings, came_from_cache). Probes are injectable for tests.
    """
    dtype_name = str(dtype).removeprefix("torch.")
    dev = device
    device = dev.name
    mode = dev.math_mode(dtype_name) if math_mode is None else math_mode
    key = ceiling_key(device, device_name, threads, dtype_name, mode)
    path = path or cache_file()
    cache = read_json_object(path)
    if key in cache and not refresh:
        try:
            cached = Ceilings(**cache[key])
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                   for v in (cached.peak_flops_per_s, cached.bandwidth_bytes_per_s)):
                return cached, True
        except TypeError:
            pass  # an entry from another latbench version (or a poisoned one): measure again
    with math_mode_set(mode):
        gemm = (gemm_probe or probe_gemm)(dev, getattr(torch, dtype_name))
    copy = (copy_probe or probe_copy)(dev)
    c = Ceilings(peak_flops_per_s=float(gemm["peak_flops_per_s"]),
                 bandwidth_bytes_per_s=float(copy["bandwidth_bytes_per_s"]), device=device,
                 device_name=device_name, threads=threads, dtype=dtype_name, key=key,
                 measured_at_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 probes={**gemm, **copy}, math_mode=mode)
    cache[key] = asdict(c)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cache, indent=2, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only home: measure again next time
    return c, False


class CeilingSet:
    """A run's ceilings, one per (dtype, math mode) its rows need: `for_dtype(row's dtype)`.

    `primary` (float32's, else the first) is what the metadata's "roofline" and the notes show first;
    every ceiling is in metadata()["by_ceiling"].
    """

    def __init__(self, ceilings: dict[str, Ceilings]):
        self.by_dtype = dict(ceilings)  # dtype name -> its ceilings

    @property
    def primary(self) -> Ceilings | None:
        return self.by_dtype.get("float32") or next(iter(self.by_dtype.values()), None)

    def for_dtype(self, dtype: str | None) -> Ceilings | None:
        return self.by_dtype.get(str(dtype or "float32"))

    def metadata(self) -> dict[str, Any] | None:
        """The metadata's "roofline": the primary ceiling's fields (as before) and every ceiling by label."""
        if self.primary is None:
            return None
        return {**asdict(self.primary), "by_ceiling": {c.label: asdict(c) for c in self.by_dtype.values()}}


def measure_ceiling_set(device: Device, device_name: str, threads: int, dtypes: list[str],
                        **kw: Any) -> tuple[CeilingSet, dict[str, bool], dict[str, str]]:
    """Ceilings for each dtype a run's rows use (dtypes the device cannot run are left out).

    Returns (set, {dtype: came from cache}, {dtype: why it has no ceiling}). kw: measure_ceilings'."""
    dev = device
    found: dict[str, Ceilings] = {}
    cached: dict[str, bool] = {}
    missing: dict[str, str] = {}
    for dtype in dict.fromkeys(dtypes or ["float32"]):
        skip = dev.dtype_skip(dtype)
        if skip:
            missing[dtype] = skip
            continue
        try:
            found[dtype], cached[dtype] = measure_ceilings(dev, device_name, threads, dtype, **kw)
        except Exception as exc:  # noqa: BLE001 - no mm kernel for the dtype here: those rows get no bound
            missing[dtype] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return CeilingSet(found), cached, missing


def row_columns(flops: float, mac_bytes: float, latency_ms: float | None, c: "Ceilings | CeilingSet | None",
                dtype: str | None = None) -> dict[str, Any]:
    """Roofline columns of one row; the bound needs ceilings (a CeilingSet: the row's dtype's), the
    achieved rates need a latency. roofline_ceiling names the ceiling used."""
    if isinstance(c, CeilingSet):
        c = c.for_dtype(dtype)
    out: dict[str, Any] = {name: None for name in ROOFLINE_COLUMNS}
    out[ROOFLINE_CEILING_COLUMN] = c.label if c is not None else None
    if mac_bytes and mac_bytes > 0:
        out["arithmetic_intensity_flops_per_byte"] = flops / mac_bytes
    lat_ok = latency_ms is not None and math.isfinite(latency_ms) and latency_ms > 0
    if lat_ok:
        out["achieved_flops_per_s"] = flops / (latency_ms * 1e-3)
        out["achieved_bytes_per_s"] = mac_bytes / (latency_ms * 1e-3)
    if c is not None and c.peak_flops_per_s > 0 and c.bandwidth_bytes_per_s > 0:
        bound_ms = 1e3 * max(flops / c.peak_flops_per_s, mac_bytes / c.bandwidth_bytes_per_s)
        out["roofline_bound_ms"] = bound_ms
        if lat_ok:
            out["roofline_pct"] = 100 * bound_ms / latency_ms
    return out


def row_warnings(cols: dict[str, Any]) -> list[str]:
    """A warning when a row ran faster than its ceiling allows (roofline_pct > 100): never clamped."""
    pct = cols.get("roofline_pct")
    if pct is None or not math.isfinite(pct) or pct <= 100:
        return []
    return [f"above roofline: {pct:.0f}% of the {cols.get(ROOFLINE_CEILING_COLUMN) or 'device'} ceiling; the "
            f"probe underestimates this device for the row (delete {cache_file()} to re-measure)"]
