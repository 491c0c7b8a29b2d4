"""Machine state while a group is measured: CPU clock and load (psutil), GPU SM clock, temperature,
power and throttle reasons (NVML), summarized into per-row columns and flags.

Which GPU: NVML's handle is looked up by the UUID torch reports for the device in use
(torch.cuda.get_device_properties(i).uuid), not by torch's index: under CUDA_VISIBLE_DEVICES, Slurm or
Kubernetes torch's device 0 is some other NVML index. "Under load" on the GPU means more than one
compute process on it (latbench is one): NVML reports host PIDs, which inside a container never equal
os.getpid(), so comparing PIDs counted latbench itself as another process.

A group's cases are measured interleaved, so they share one telemetry window: every row of a group
gets the same values. The sampler reads counters at start and stop and, every `interval_s`, polls
clocks from a daemon thread (a sample holds the GIL for well under a millisecond, < 0.2 % of a
0.5 s interval, and lands on all interleaved cases alike). Without NVML or without a GPU the GPU
columns stay empty; nothing fails.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import psutil

from latbench.env import load_nvml, try_call as _try

SAMPLE_INTERVAL_S = 0.5
# Other processes busy on more than half a core beside the benchmark: shared caches, memory bandwidth
# and turbo budget are contended, so absolute times are suspect (ratios from interleaved rounds hold better).
UNDER_LOAD_CORES = 0.5
# The benchmark cores' clock moving by more than 15 % (max vs min sample) within a group means the
# machine changed speed under the measurement (thermal or power limits, governor ramps).
CPU_CLOCK_SPREAD = 0.15

# NVML clock-event (throttle) reasons that mean the GPU was held below its clocks by power or heat.
# Idle, application-clock settings, sync boost and display clocks are not throttling.
GPU_THROTTLE_BITS = {0x4: "sw_power_cap", 0x8: "hw_slowdown", 0x20: "sw_thermal", 0x40: "hw_thermal",
                     0x80: "hw_power_brake"}
# Every NVML clocks-event (throttle) reason bit (nvmlClocksEventReason*), decoded into the
# gpu_throttle_reasons column: what held the clocks during the group, throttling or not.
GPU_REASON_BITS = {0x1: "gpu_idle", 0x2: "applications_clocks_setting", **GPU_THROTTLE_BITS, 0x10: "sync_boost",
                   0x100: "display_clock_setting"}
GPU_REASON_BITS = dict(sorted(GPU_REASON_BITS.items()))

TELEMETRY_COLUMNS = ("cpu_freq_mhz", "cpu_load_pct", "gpu_sm_clock_mhz", "gpu_temp_c", "gpu_power_w",
                     "throttled", "under_load", "gpu_throttle_reasons")


@dataclass(frozen=True)
class Telemetry:
    """Summary of one measured window. None where the machine could not tell."""

    cpu_freq_mhz: float | None = None  # mean clock of the `threads` fastest CPUs over the samples
    cpu_load_pct: float | None = None  # whole-machine busy share, all cores, 0-100
    other_load_cores: float | None = None  # busy cores used by other processes (and the hypervisor)
    gpu_sm_clock_mhz: float | None = None  # mean SM clock
    gpu_temp_c: float | None = None  # highest temperature
    gpu_power_w: float | None = None  # mean board power
    throttled: bool = False
    under_load: bool = False
    gpu_throttle_reasons: str | None = None  # ";"-joined GPU_REASON_BITS names seen ("none": no bit set)
    gpu_compute_processes: int | None = None  # most compute processes on the GPU at once (latbench included)
    notes: tuple[str, ...] = ()  # why a flag is set, in 'short: detail' warning form
    samples: int = 0

    def columns(self) -> dict[str, Any]:
        return {name: _round(getattr(self, name)) for name in TELEMETRY_COLUMNS}


def _round(v: Any) -> Any:
    return round(v, 2) if isinstance(v, float) else v


@dataclass
class _Window:
    t0: float
    sys_busy0: float | None
    own0: float | None
    thermal0: int | None
    cpu_freqs: list[float] = field(default_factory=list)
    sm_clocks: list[float] = field(default_factory=list)
    temps: list[float] = field(default_factory=list)
    powers: list[float] = field(default_factory=list)
    reasons: int = 0
    reasons_read: bool = False
    gpu_procs: int | None = None  # most compute processes NVML listed on the GPU in one sample
    samples: int = 0


class TelemetrySampler:
    """start() before a group is measured, stop() after it -> Telemetry.

    threads: benchmark threads (whose cores' clock is reported); gpu_uuid: the UUID of the GPU in use
    (NVML's handle is looked up by it), gpu_index: its NVML index (used when no UUID is given or NVML
    does not know it); both None on CPU runs. psutil_mod, nvml, clock and thermal_root are injectable.
    """

    def __init__(self, threads: int = 1, gpu_index: int | None = None, interval_s: float | None = SAMPLE_INTERVAL_S,
                 psutil_mod: Any = psutil, nvml: Any = None, clock: Callable[[], float] = time.monotonic,
                 thermal_root: Path = Path("/sys/devices/system/cpu"), gpu_uuid: str | None = None,
                 own_gpu_processes: int = 1):
        self.threads, self.gpu_index, self.interval_s = max(1, threads), gpu_index, interval_s
        self.own_gpu_processes = max(1, own_gpu_processes)  # latbench's own compute processes on the GPU
        self.gpu_uuid = gpu_uuid
        self._ps, self._nvml_mod, self._clock, self._thermal_root = psutil_mod, nvml, clock, thermal_root
        self._nv: Any = None
        self._handle: Any = None
        self._w: _Window | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.gpu_index is not None or self.gpu_uuid:
            self._nv = load_nvml(self._nvml_mod)
            self._handle = gpu_handle(self._nv, self.gpu_uuid, self.gpu_index) if self._nv else None
        self._w = _Window(t0=self._clock(), sys_busy0=self._sys_busy(), own0=self._own_busy(),
                          thermal0=self._thermal_events())
        self.sample()
        if self.interval_s:
            self._stop.clear()
            self._thread = threading.Thread(target=self._poll, name="latbench-telemetry", daemon=True)
            self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        """Read clocks, temperature, power and throttle reasons once."""
        w = self._w
        if w is None:
            return
        freqs = _try(lambda: self._ps.cpu_freq(percpu=True)) or []
        cur = sorted((f.current for f in freqs if f and f.current), reverse=True)[: self.threads]
        nv, h = self._nv, self._handle
        gpu: dict[str, Any] = {}
        if nv is not None and h is not None:
            gpu = {"sm": _try(lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)),
                   "temp": _try(lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)),
                   "power": _try(lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000),
                   "reasons": _gpu_reasons(nv, h),
                   "procs": _try(lambda: len({p.pid for p in nv.nvmlDeviceGetComputeRunningProcesses(h)}))}
        with self._lock:
            w.samples += 1
            if cur:
                w.cpu_freqs.append(sum(cur) / len(cur))
            for key, into in (("sm", w.sm_clocks), ("temp", w.temps), ("power", w.powers)):
                if gpu.get(key) is not None:
                    into.append(float(gpu[key]))
            if gpu.get("reasons") is not None:
                w.reasons |= int(gpu["reasons"])
                w.reasons_read = True
            if gpu.get("procs") is not None:
                w.gpu_procs = max(w.gpu_procs or 0, gpu["procs"])

    def stop(self) -> Telemetry:
        """End the window and summarize it."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.sample()
        w, self._w = self._w, None
        if self._nv is not None:
            _try(self._nv.nvmlShutdown)
            self._nv = self._handle = None
        if w is None:
            return Telemetry()
        return self._summarize(w)

    def _summarize(self, w: _Window) -> Telemetry:
        wall = self._clock() - w.t0
        cores = _try(lambda: self._ps.cpu_count(logical=True)) or 1
        sys1, own1, thermal1 = self._sys_busy(), self._own_busy(), self._thermal_events()
        load_pct = other = None
        if wall > 0 and w.sys_busy0 is not None and sys1 is not None:
            busy = (sys1 - w.sys_busy0) / wall  # cores busy, all processes
            load_pct = min(100.0, max(0.0, 100 * busy / cores))
            if w.own0 is not None and own1 is not None:
                other = max(0.0, busy - (own1 - w.own0) / wall)
        notes = []
        if w.thermal0 is not None and thermal1 is not None and thermal1 > w.thermal0:
            notes.append(f"throttled: {thermal1 - w.thermal0} CPU thermal throttle event(s) during the measurement")
        if w.cpu_freqs and max(w.cpu_freqs) > 0 and 1 - min(w.cpu_freqs) / max(w.cpu_freqs) > CPU_CLOCK_SPREAD:
            notes.append(f"throttled: the benchmark CPUs' clock moved between {min(w.cpu_freqs):.0f} and "
                         f"{max(w.cpu_freqs):.0f} MHz; check cooling and the governor ('latbench env')")
        gpu_bits = [name for bit, name in GPU_THROTTLE_BITS.items() if w.reasons & bit]
        if gpu_bits:
            notes.append(f"throttled: the GPU was held back ({', '.join(gpu_bits)}); check cooling and power limits")
        throttled = bool(notes)
        if other is not None and other > UNDER_LOAD_CORES:
            notes.append(f"under load: other processes kept {other:.1f} of {cores} cores busy; "
                         f"stop them for trustworthy absolute times")
        # latbench's own processes (this one; in a worker also the manager holding a CUDA context) are
        # among them, whatever PIDs NVML shows for them
        other_gpu = max(0, (w.gpu_procs or 0) - self.own_gpu_processes)
        if other_gpu:
            notes.append(f"under load: {other_gpu} other process(es) computed on the GPU "
                         f"({w.gpu_procs} compute processes on it at once); stop them for trustworthy times")
        reasons = None
        if w.reasons_read:
            reasons = ";".join(name for bit, name in GPU_REASON_BITS.items() if w.reasons & bit) or "none"
        return Telemetry(
            cpu_freq_mhz=_mean(w.cpu_freqs), cpu_load_pct=load_pct, other_load_cores=other,
            gpu_sm_clock_mhz=_mean(w.sm_clocks), gpu_temp_c=max(w.temps) if w.temps else None,
            gpu_power_w=_mean(w.powers), throttled=throttled,
            under_load=(other is not None and other > UNDER_LOAD_CORES) or bool(other_gpu),
            gpu_throttle_reasons=reasons, gpu_compute_processes=w.gpu_procs, notes=tuple(notes), samples=w.samples)

    def _sys_busy(self) -> float | None:
        """Seconds of CPU time all processes have used, summed over cores (steal counts as busy)."""
        t = _try(lambda: self._ps.cpu_times())
        if t is None:
            return None
        d = t._asdict()
        return sum(v for k, v in d.items() if k not in ("idle", "iowait", "guest", "guest_nice"))

    def _own_busy(self) -> float | None:
        t = _try(lambda: self._ps.Process().cpu_times())
        return None if t is None else t.user + t.system

    def _thermal_events(self) -> int | None:
        """Linux thermal throttle counters summed over CPUs (None where the kernel has none)."""
        files = list(self._thermal_root.glob("cpu[0-9]*/thermal_throttle/*_throttle_count"))
        if not files:
            return None
        return sum(int(_try(lambda f=f: f.read_text().strip()) or 0) for f in files)


def gpu_handle(nv: Any, uuid: str | None, index: int | None) -> Any:
    """NVML's handle of the GPU with this UUID ('GPU-...' or 'MIG-...'; the bare form torch prints is
    prefixed), else of NVML index `index`; None when neither is found."""
    if uuid:
        text = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
        for arg in (text, text.encode()):  # pynvml takes str (>= 11.5) or bytes (older)
            h = _try(lambda arg=arg: nv.nvmlDeviceGetHandleByUUID(arg))
            if h is not None:
                return h
    return _try(lambda: nv.nvmlDeviceGetHandleByIndex(index)) if index is not None else None


def _gpu_reasons(nv: Any, h: Any) -> int | None:
    for name in ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"):
        if hasattr(nv, name):
            return _try(lambda: getattr(nv, name)(h))
    return None


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None
