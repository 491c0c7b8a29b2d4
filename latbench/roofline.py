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
"""

from __future__ import annotations

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

from latbench import devices
from latbench.devices import Device
from latbench.results.files import atomic_write_text
from latbench.results.read import read_json_object

GEMM_BUDGET_S = 0.5
COPY_BUDGET_S = 0.25  # per buffer size
# Copy buffers: each device's copy_sizes (devices.py); 4 MiB stays in a server's last-level cache,
# 64 MiB (CPU) / 256 MiB (GPU) does not.

ROOFLINE_COLUMNS = ("achieved_flops_per_s", "achieved_bytes_per_s", "arithmetic_intensity_flops_per_byte",
                    "roofline_bound_ms", "roofline_pct")


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

    @property
    def ridge_flops_per_byte(self) -> float:
        """Arithmetic intensity where the roof turns from bandwidth-bound to compute-bound."""
        return self.peak_flops_per_s / self.bandwidth_bytes_per_s


def _best_rate(fn: Callable[[], object], work: float, device: str | Device, budget_s: float) -> float:
    """Highest work/second over repeated single calls within budget_s (first call is warm-up)."""
    sync = devices.of(device).synchronize
    fn()
    sync()
    best, spent, calls = 0.0, 0.0, 0
    while spent < budget_s or calls < 3:
        t0 = time.perf_counter()
        fn()
        sync()
        dt = time.perf_counter() - t0
        spent, calls = spent + dt, calls + 1
        if dt > 0:
            best = max(best, work / dt)
    return best


def probe_gemm(device: str | Device, dtype: torch.dtype = torch.float32, budget_s: float = GEMM_BUDGET_S,
               n: int | None = None) -> dict[str, Any]:
    """Peak FLOP/s of an n x n GEMM (2 n^3 FLOPs), at torch's current thread count."""
    dev = devices.of(device)
    n = n or dev.gemm_size()
    with torch.inference_mode():
        a = torch.randn(n, n, device=dev.name, dtype=dtype)
        b = torch.randn(n, n, device=dev.name, dtype=dtype)
        out = torch.empty(n, n, device=dev.name, dtype=dtype)
        rate = _best_rate(lambda: torch.mm(a, b, out=out), 2.0 * n ** 3, dev, budget_s)
    return {"peak_flops_per_s": rate, "gemm_n": n}


def probe_copy(device: str | Device, budget_s: float = COPY_BUDGET_S, sizes: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Copy bandwidth (bytes read + written per second); the best over buffer sizes is the ceiling."""
    dev = devices.of(device)
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


def ceiling_key(device: str, device_name: str, threads: int, dtype: str) -> str:
    """The fingerprint ceilings depend on: device model, threads, dtype, torch build."""
    text = json.dumps([device, device_name, threads, dtype, torch.__version__])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def measure_ceilings(device: str | Device, device_name: str, threads: int, dtype: torch.dtype = torch.float32,
                     gemm_probe: Callable[..., dict[str, Any]] | None = None,
                     copy_probe: Callable[..., dict[str, Any]] | None = None,
                     path: Path | None = None, refresh: bool = False) -> tuple[Ceilings, bool]:
    """The device's ceilings, from the cache when this fingerprint was probed before.

    Returns (ceilings, came_from_cache). Probes are injectable for tests.
    """
    dtype_name = str(dtype).removeprefix("torch.")
    device = devices.of(device).name
    key = ceiling_key(device, device_name, threads, dtype_name)
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
    gemm, copy = (gemm_probe or probe_gemm)(device, dtype), (copy_probe or probe_copy)(device)
    c = Ceilings(peak_flops_per_s=float(gemm["peak_flops_per_s"]),
                 bandwidth_bytes_per_s=float(copy["bandwidth_bytes_per_s"]), device=device,
                 device_name=device_name, threads=threads, dtype=dtype_name, key=key,
                 measured_at_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 probes={**gemm, **copy})
    cache[key] = asdict(c)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cache, indent=2, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only home: measure again next time
    return c, False


def row_columns(flops: float, mac_bytes: float, latency_ms: float | None, c: Ceilings | None) -> dict[str, Any]:
    """Roofline columns of one row; the bound needs ceilings, the achieved rates need a latency."""
    out: dict[str, Any] = {name: None for name in ROOFLINE_COLUMNS}
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
