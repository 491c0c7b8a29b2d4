"""Machine state while a group is measured: CPU clock and load (psutil), GPU SM clock, temperature,
power and throttle reasons (NVML), summarized into per-row columns and flags.

Which GPU: NVML's handle is looked up by the UUID torch reports for the device in use
(torch.cuda.get_device_properties(i).uuid), not by torch's index: under CUDA_VISIBLE_DEVICES, Slurm or
Kubernetes torch's device 0 is some other NVML index. "Under load" on the GPU means more than one
compute process on it (latbench is one): NVML reports host PIDs, which inside a container never equal
os.getpid(), so comparing PIDs counted latbench itself as another process.

A MIG instance (torch reports its UUID bare, NVML knows it as 'MIG-...') is found by UUID too: its
clocks, temperature, power and throttling are the parent GPU's (NVML reads them there), its compute
processes its own. When a UUID is given and NVML knows no GPU by it, GPU telemetry is off for the run
with a note on its rows, never read from another GPU (NVML's index 0 used to stand in).

A group's cases are measured interleaved, so they share one telemetry window: every row of a group
gets the same values. The sampler reads counters at start and stop and, every `interval_s`, polls
clocks from a daemon thread (a sample holds the GIL for well under a millisecond, < 0.2 % of a
0.5 s interval, and lands on all interleaved cases alike). Throttling is not left to the samples
(a 0.5 s poll misses a 100 ms power cap): NVML's accumulated throttle time counters (per reason,
in ns: field values NVML_FI_DEV_CLOCKS_EVENT_REASON_*, else nvmlDeviceGetViolationStatus) are read
at start() and stop(), and any growth between them flags the group, besides the OR of every
sample's reason bits. Without NVML or without a GPU the GPU columns stay empty; nothing fails.
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
# The measuring process on a CPU for less than 85 % of the measurement's wall time (CPU seconds per wall
# second, all its threads): other processes took its core for the rest, and time they take inside a timed
# block is added to both sides of a comparison alike, so a slowdown reads smaller than it is (a +5 % change
# measured +1.4-2.0 % at 2-3x oversubscription, docs/compare-and-gate.md). Verdicts revoke a pass on such
# rows (compare.revoke_oversubscribed_pass). CPU measurements only: a host thread waiting on a GPU is idle
# by design. With several threads only the gross case (not even one core's worth) is caught.
OVERSUBSCRIBED_CPU_PER_WALL = 0.85

# NVML clock-event (throttle) reasons that mean the GPU was held below its clocks by power or heat.
# Idle, application-clock settings, sync boost and display clocks are not throttling.
GPU_THROTTLE_BITS = {0x4: "sw_power_cap", 0x8: "hw_slowdown", 0x20: "sw_thermal", 0x40: "hw_thermal",
                     0x80: "hw_power_brake"}
# Every NVML clocks-event (throttle) reason bit (nvmlClocksEventReason*), decoded into the
# gpu_throttle_reasons column: what held the clocks during the group, throttling or not.
GPU_REASON_BITS = {0x1: "gpu_idle", 0x2: "applications_clocks_setting", **GPU_THROTTLE_BITS, 0x10: "sync_boost",
                   0x100: "display_clock_setting"}
GPU_REASON_BITS = dict(sorted(GPU_REASON_BITS.items()))

# NVML's accumulated throttle-time counters (nanoseconds since the driver loaded), by the
# GPU_THROTTLE_BITS name they count: field values (nvmlDeviceGetFieldValues; NVML_FI_DEV_PERF_POLICY_POWER
# = NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP = 74, NVML_FI_DEV_PERF_POLICY_THERMAL = 75,
# NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN / HW_THERM_SLOWDOWN / HW_POWER_BRAKE_SLOWDOWN =
# 269 / 270 / 271 in nvidia-ml-py 12.5+), else nvmlDeviceGetViolationStatus per perf policy
# (NVML_PERF_POLICY_POWER = 0, NVML_PERF_POLICY_THERMAL = 1; violationTime in ns).
THROTTLE_FIELDS = {74: "sw_power_cap", 75: "thermal", 269: "sw_thermal", 270: "hw_thermal", 271: "hw_power_brake"}
THROTTLE_POLICIES = {0: "sw_power_cap", 1: "thermal"}

TELEMETRY_COLUMNS = ("cpu_freq_mhz", "cpu_load_pct", "gpu_sm_clock_mhz", "gpu_temp_c", "gpu_power_w",
                     "throttled", "under_load", "gpu_throttle_reasons", "cpu_per_wall", "oversubscribed")


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
    cpu_per_wall: float | None = None  # CPU seconds of the measuring process per wall second of the window
    oversubscribed: bool = False  # a CPU measurement with cpu_per_wall < OVERSUBSCRIBED_CPU_PER_WALL
    notes: tuple[str, ...] = ()  # why a flag is set, in 'short: detail' warning form
    samples: int = 0

    def columns(self) -> dict[str, Any]:
        return {name: _round(getattr(self, name)) for name in TELEMETRY_COLUMNS}


def oversubscribed_cpu(cpu_per_wall: float | None) -> bool:
    """Whether a CPU measurement's process got less of a CPU than it asked for (None: unknown, not flagged)."""
    return cpu_per_wall is not None and cpu_per_wall < OVERSUBSCRIBED_CPU_PER_WALL


def oversubscribed_text(cpu_per_wall: float) -> str:
    return (f"oversubscribed: the measuring process ran on a CPU for only {100 * cpu_per_wall:.0f}% of the "
            f"measurement (other processes took its core for the rest); a slowdown reads smaller than it is "
            f"under preemption, so no verdict passes on this row: give the benchmark a core of its own")


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
    throttle_ns0: dict[str, int] | None = None  # NVML's accumulated throttle counters at start()


class TelemetrySampler:
    """start() before a group is measured, stop() after it -> Telemetry.

    threads: benchmark threads (whose cores' clock is reported); gpu_uuid: the UUID of the GPU in use
    (NVML's handle is looked up by it), gpu_index: its NVML index (used when no UUID is given or NVML
    does not know it); both None on CPU runs. psutil_mod, nvml, clock and thermal_root are injectable.
    """

    def __init__(self, threads: int = 1, gpu_index: int | None = None, interval_s: float | None = SAMPLE_INTERVAL_S,
                 psutil_mod: Any = psutil, nvml: Any = None, clock: Callable[[], float] = time.monotonic,
                 thermal_root: Path = Path("/sys/devices/system/cpu"), gpu_uuid: str | None = None,
                 own_gpu_processes: int = 1, judge_cpu_share: bool = False):
        self.threads, self.gpu_index, self.interval_s = max(1, threads), gpu_index, interval_s
        # flag oversubscription: for the real CPU timing backend only (not CUDA, not the fake backend)
        self.judge_cpu_share = judge_cpu_share
        self.own_gpu_processes = max(1, own_gpu_processes)  # latbench's own compute processes on the GPU
        self.gpu_uuid = gpu_uuid
        self._ps, self._nvml_mod, self._clock, self._thermal_root = psutil_mod, nvml, clock, thermal_root
        self._nv: Any = None
        self._handle: Any = None  # the GPU's (a MIG instance's parent): clocks, power, throttling
        self._procs_handle: Any = None  # the device latbench computes on (the MIG instance): processes
        self._gpu_note: str | None = None  # why GPU telemetry is off (a UUID NVML does not know)
        self._w: _Window | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_device(cls, device: Any, own_gpu_processes: int = 1) -> "TelemetrySampler":
        """The sampler for a devices.Device's measurements (run/session and run/workers build it here)."""
        return cls(threads=device.threads or 1, gpu_index=device.telemetry_gpu_index(),
                   gpu_uuid=device.telemetry_gpu_uuid(), own_gpu_processes=own_gpu_processes,
                   judge_cpu_share=str(getattr(device.backend, "name", "")) == "cpu:perf_counter_ns")

    def start(self) -> None:
        self._gpu_note = None
        if self.gpu_index is not None or self.gpu_uuid:
            self._nv = load_nvml(self._nvml_mod)
            if self._nv is not None:
                found = find_gpu(self._nv, self.gpu_uuid, self.gpu_index)
                self._handle, self._procs_handle = found.handle, found.procs_handle
                self._gpu_note = found.note
        self._w = _Window(t0=self._clock(), sys_busy0=self._sys_busy(), own0=self._own_busy(),
                          thermal0=self._thermal_events(), throttle_ns0=self._throttle_ns())
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
                   "procs": _try(lambda: len({p.pid for p in nv.nvmlDeviceGetComputeRunningProcesses(
                       self._procs_handle if self._procs_handle is not None else h)}))}
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
        throttle_ns1 = self._throttle_ns()
        w, self._w = self._w, None
        if self._nv is not None:
            _try(self._nv.nvmlShutdown)
            self._nv = self._handle = self._procs_handle = None
        if w is None:
            return Telemetry()
        return self._summarize(w, throttle_ns1)

    def _throttle_ns(self) -> dict[str, int] | None:
        """NVML's accumulated throttle time per reason (ns), or None where NVML offers none."""
        if self._nv is None or self._handle is None:
            return None
        return throttle_counters(self._nv, self._handle)

    def _summarize(self, w: _Window, throttle_ns1: dict[str, int] | None = None) -> Telemetry:
        wall = self._clock() - w.t0
        cores = _try(lambda: self._ps.cpu_count(logical=True)) or 1
        sys1, own1, thermal1 = self._sys_busy(), self._own_busy(), self._thermal_events()
        load_pct = other = own_per_wall = None
        if wall > 0 and w.own0 is not None and own1 is not None:
            own_per_wall = (own1 - w.own0) / wall
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
        held = {name: throttle_ns1[name] - w.throttle_ns0[name] for name in (throttle_ns1 or {})
                if name in (w.throttle_ns0 or {}) and throttle_ns1[name] > w.throttle_ns0[name]}
        if held:
            what = ", ".join(f"{name} {ns / 1e6:.1f} ms" for name, ns in sorted(held.items()))
            notes.append(f"throttled: the GPU was held back for {max(held.values()) / 1e6:.1f} ms of the "
                         f"group's {wall:.1f} s ({what}, NVML's throttle counters); check cooling and power limits")
        elif gpu_bits:
            notes.append(f"throttled: the GPU was held back ({', '.join(gpu_bits)}); check cooling and power limits")
        throttled = bool(notes)
        reason_bits = w.reasons | sum(bit for bit, name in GPU_THROTTLE_BITS.items() if name in held)
        if other is not None and other > UNDER_LOAD_CORES:
            notes.append(f"under load: other processes kept {other:.1f} of {cores} cores busy; "
                         f"stop them for trustworthy absolute times")
        # latbench's own processes (this one; in a worker also the manager holding a CUDA context) are
        # among them, whatever PIDs NVML shows for them
        other_gpu = max(0, (w.gpu_procs or 0) - self.own_gpu_processes)
        if other_gpu:
            notes.append(f"under load: {other_gpu} other process(es) computed on the GPU "
                         f"({w.gpu_procs} compute processes on it at once); stop them for trustworthy times")
        oversubscribed = self.judge_cpu_share and oversubscribed_cpu(own_per_wall)
        if oversubscribed:
            notes.append(oversubscribed_text(own_per_wall))
        if self._gpu_note:
            notes.append(self._gpu_note)
        reasons = None
        if w.reasons_read or held:
            reasons = ";".join(name for bit, name in GPU_REASON_BITS.items() if reason_bits & bit) or "none"
        return Telemetry(
            cpu_freq_mhz=_mean(w.cpu_freqs), cpu_load_pct=load_pct, other_load_cores=other,
            gpu_sm_clock_mhz=_mean(w.sm_clocks), gpu_temp_c=max(w.temps) if w.temps else None,
            gpu_power_w=_mean(w.powers), throttled=throttled,
            under_load=(other is not None and other > UNDER_LOAD_CORES) or bool(other_gpu),
            gpu_throttle_reasons=reasons, gpu_compute_processes=w.gpu_procs, notes=tuple(notes), samples=w.samples,
            cpu_per_wall=own_per_wall, oversubscribed=oversubscribed)

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


@dataclass(frozen=True)
class FoundGpu:
    """What telemetry reads: `handle` (the GPU; a MIG instance's parent GPU), `procs_handle` (the device
    whose compute processes count: the MIG instance itself), or a `note` saying why there is none."""

    handle: Any = None
    procs_handle: Any = None
    note: str | None = None


def uuid_candidates(uuid: str) -> list[str]:
    """The forms NVML may know a torch UUID by: as given when prefixed ('GPU-'/'MIG-'), else 'GPU-'
    and 'MIG-' + it (torch prints a MIG instance's UUID bare too)."""
    text = uuid.strip()
    if text.upper().startswith(("GPU-", "MIG-")):
        return [text[:4].upper() + text[4:]]
    return [f"GPU-{text}", f"MIG-{text}"]


def _by_uuid(nv: Any, text: str) -> Any:
    for arg in (text, text.encode()):  # pynvml takes str (>= 11.5) or bytes (older)
        h = _try(lambda arg=arg: nv.nvmlDeviceGetHandleByUUID(arg))
        if h is not None:
            return h
    return None


def bare_uuid(uuid: str | None) -> str:
    """A GPU or MIG UUID without its 'GPU-'/'MIG-' prefix, lower case ('' for None)."""
    text = str(uuid or "").strip()
    if text.upper().startswith(("GPU-", "MIG-")):
        text = text[4:]
    return text.lower()


def _same_uuid(a: Any, b: str) -> bool:
    text = a.decode() if isinstance(a, bytes) else a
    return text is not None and bare_uuid(str(text)) == bare_uuid(b)


def find_gpu(nv: Any, uuid: str | None, index: int | None) -> FoundGpu:
    """The GPU in use: by UUID (GPU or MIG instance), else by NVML index when no UUID is given (or
    NVML cannot look UUIDs up, and the GPU at `index` has that UUID). A UUID NVML does not know is a
    note, not another GPU's readings."""
    if uuid:
        for text in uuid_candidates(uuid):
            h = _by_uuid(nv, text)
            if h is not None:
                return _mig_aware(nv, h)
        h = _try(lambda: nv.nvmlDeviceGetHandleByIndex(index)) if index is not None else None
        if h is not None and _same_uuid(_try(lambda: nv.nvmlDeviceGetUUID(h)), uuid):
            return _mig_aware(nv, h)
        return FoundGpu(note=f"gpu telemetry off: NVML knows no GPU or MIG instance with the UUID torch reports "
                             f"({uuid}); the GPU columns stay empty rather than show another GPU's readings")
    h = _try(lambda: nv.nvmlDeviceGetHandleByIndex(index)) if index is not None else None
    return _mig_aware(nv, h) if h is not None else FoundGpu()


def _mig_aware(nv: Any, h: Any) -> FoundGpu:
    """A MIG instance's handle reads processes; its parent GPU's reads clocks, power and throttling."""
    is_mig = _try(lambda: nv.nvmlDeviceIsMigDeviceHandle(h))
    if bool(getattr(is_mig, "value", is_mig)):
        parent = _try(lambda: nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(h))
        return FoundGpu(handle=parent if parent is not None else h, procs_handle=h)
    return FoundGpu(handle=h, procs_handle=h)


def gpu_handle(nv: Any, uuid: str | None, index: int | None) -> Any:
    """NVML's handle of the GPU in use (find_gpu: by UUID, 'GPU-' or 'MIG-'; a MIG instance's parent
    GPU), or None: a given UUID NVML does not know never falls back to another GPU's index."""
    return find_gpu(nv, uuid, index).handle


def throttle_counters(nv: Any, h: Any) -> dict[str, int] | None:
    """NVML's accumulated throttle time per reason in ns (THROTTLE_FIELDS, else THROTTLE_POLICIES), or
    None when this NVML or GPU offers neither."""
    out: dict[str, int] = {}
    values = _try(lambda: nv.nvmlDeviceGetFieldValues(h, list(THROTTLE_FIELDS)))
    for v in values or ():
        if getattr(v, "nvmlReturn", 1) == 0 and getattr(v, "fieldId", None) in THROTTLE_FIELDS:
            out[THROTTLE_FIELDS[v.fieldId]] = int(v.value.ullVal)
    if out:
        return out
    for policy, name in THROTTLE_POLICIES.items():
        t = _try(lambda policy=policy: nv.nvmlDeviceGetViolationStatus(h, policy))
        if t is not None and getattr(t, "violationTime", None) is not None:
            out[name] = int(t.violationTime)
    return out or None


def _gpu_reasons(nv: Any, h: Any) -> int | None:
    for name in ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"):
        if hasattr(nv, name):
            return _try(lambda: getattr(nv, name)(h))
    return None


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None
