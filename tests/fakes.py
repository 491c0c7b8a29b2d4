"""Fake clock, fake work and a fake torch.cuda, so timing logic runs exactly in tests without a GPU.

Time is simulated: FakeWork advances a FakeClock by its cost (times a drift factor that may depend on
the simulated time, plus seeded noise); the CPU backend reads the fake clock. FakeCuda is a GPU on
that clock that refuses what hardware refuses (see its docstring): work is queued on streams and the
host runs ahead, events time the device, graphs hold no references and own counted memory pools.
"""

from __future__ import annotations

import contextlib
import random
import weakref
from typing import Callable


class FakeClock:
    """A nanosecond clock that moves only when work is done (and by `read_ns` per read)."""

    def __init__(self, read_ns: int = 0):
        self.t_ns = 0
        self.read_ns = read_ns
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        self.t_ns += self.read_ns
        return self.t_ns

    def advance(self, seconds: float) -> None:
        self.t_ns += int(round(seconds * 1e9))

    @property
    def now_s(self) -> float:
        return self.t_ns * 1e-9


class FakeWork:
    """A 'forward pass' costing cost_s x speed(now) x (1 + noise), plus launch_s per eager call."""

    def __init__(self, clock: FakeClock, cost_s: float, speed: Callable[[float], float] = lambda t: 1.0,
                 noise: float = 0.0, seed: int = 0, launch_s: float = 0.0, fail_after: int | None = None):
        self.clock, self.cost_s, self.speed, self.noise = clock, cost_s, speed, noise
        self.rng = random.Random(seed)
        self.launch_s = launch_s
        self.calls = 0
        self.fail_after = fail_after

    def run_kernels(self) -> None:
        factor = self.speed(self.clock.now_s)
        jitter = max(-0.5, self.rng.gauss(0.0, self.noise)) if self.noise else 0.0
        self.clock.advance(self.cost_s * factor * (1.0 + jitter))

    def __call__(self) -> None:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("CUDA out of memory (fake)")
        self.clock.advance(self.launch_s)
        self.run_kernels()


class FakeCudaWork:
    """A forward pass on the fake GPU: the host spends launch_s launching it (host clock), then its
    kernels take cost_s x speed(now) x (1 + noise) on the device, queued behind earlier work on the
    current stream, so the host runs ahead of the device as on hardware. cold_s more when, at the
    device time its kernels start, the L2 holds something else: another work or a flush completed on
    the device after this work last ran (FakeCuda.l2_owner). autotune_calls: the first calls autotune
    (cuDNN benchmark), which capture refuses. fail_after: calls after that raise an out-of-memory (one
    while capturing invalidates the capture, as the allocator's free-and-retry synchronizes).
    """

    def __init__(self, cuda: "FakeCuda", cost_s: float, speed: Callable[[float], float] = lambda t: 1.0,
                 noise: float = 0.0, seed: int = 0, launch_s: float = 0.0, fail_after: int | None = None,
                 cold_s: float = 0.0, autotune_calls: int = 0, capturable: bool = True):
        self.cuda, self.clock, self.cost_s, self.speed, self.noise = cuda, cuda.clock, cost_s, speed, noise
        self.rng = random.Random(seed)
        self.launch_s, self.fail_after, self.cold_s = launch_s, fail_after, cold_s
        self.autotune_left, self.capturable = autotune_calls, capturable
        self.calls = 0
        self.cold_runs = 0  # kernels that started with a cold L2
        self.last_access: tuple | None = None  # (stream, op index, sync epoch) of the last kernel on it

    def kernel_s(self, cold: bool) -> float:
        factor = self.speed(self.clock.now_s)
        jitter = max(-0.5, self.rng.gauss(0.0, self.noise)) if self.noise else 0.0
        self.cold_runs += cold
        return self.cost_s * factor * (1.0 + jitter) + (self.cold_s if cold else 0.0)

    def __call__(self) -> None:
        self.calls += 1
        cuda = self.cuda
        if self.fail_after is not None and self.calls > self.fail_after:
            if cuda.capturing is not None:
                cuda.capturing.invalid = True
            raise RuntimeError("CUDA out of memory (fake). Tried to allocate 2.00 GiB")
        if cuda.capturing is not None:
            cuda.capture_call(self)
            return
        self.autotune_left = max(0, self.autotune_left - 1)
        self.clock.advance(self.launch_s)
        cuda.run(self, cuda.current_stream())


class FakeCuda:
    """The part of torch.cuda that CudaBackend uses, refusing what a GPU refuses.

    Host and device are separate: FakeClock is the host's time; each stream has a tail (the device
    time its queued work ends). Every enqueue - a work's kernels, an event, a flush, a replay - goes
    on the current stream (or the one given) behind that stream's earlier work, so the host runs
    ahead. synchronize() and Event.synchronize() wait for queued work: they move the host clock to
    the device's completion time, plus sync_wake_s (a real host wakes some microseconds after the
    GPU finishes, so anything recorded before a sync is seen to wait that long). The L2 is modelled on
    device time: a work is cold unless it was the last op to complete before its kernels start; a
    flush evicts only when its buffer is at least l2_bytes and only once it has completed (a flush on
    another, unordered stream may still be running when the work starts).
    Refused as on hardware: elapsed_time on events made without enable_timing, never recorded, or
    not yet completed; capture on the default stream; work on another stream while capturing;
    autotuning while capturing; replaying a graph whose model or input was freed (graphs hold no
    references, only weakrefs here); a kernel on one stream touching a buffer another stream used
    without ordering (wait_stream or a sync). torch.cuda.graph's exit is mirrored: capture_end raises
    "operation failed due to a previous error during capture" after an error while capturing, and
    then the current stream is NOT restored (torch skips it). Counted: syncs, events created and
    recorded, graph private pools created and alive, flushes.
    """

    def __init__(self, clock: FakeClock, graph_launch_s: float = 0.0, flush_s: float = 0.0,
                 sync_wake_s: float = 0.0, l2_bytes: int = 96 << 20, write_bytes_per_s: float = 4e12,
                 uuid: str = "0000-fake", sleep_hz: float = 1.98e9):
        self.clock, self.sleep_hz = clock, sleep_hz
        self.graph_launch_s, self.flush_s = graph_launch_s, flush_s
        self.sync_wake_ns = int(round(sync_wake_s * 1e9))
        self.l2_bytes, self.write_bytes_per_s, self.uuid = l2_bytes, write_bytes_per_s, uuid
        self.syncs = 0
        self.events_created = 0
        self.events_recorded = 0
        self.pools_created = 0
        self.pools_alive = 0
        self.flushes = 0
        self.epoch = 0  # bumped by every device-wide synchronize
        self.l2_log: list[tuple[int, object]] = []  # (device end ns, weakref of the work | None: evicted)
        self.streams: list[weakref.ref] = []  # every stream made, for synchronize()
        self.default = FakeStream(self, default=True)
        self._current = self.default
        self._capture_stream: FakeStream | None = None  # torch.cuda.graph's own default capture stream
        self.capturing: FakeGraph | None = None
        self.works: weakref.WeakSet = weakref.WeakSet()  # no references: freeing a work is possible
        self.buffers: list[FakeBuffer] = []  # buffers alloc() made (the flusher's)

    def work(self, cost_s: float, **kw) -> FakeCudaWork:
        """A model and its input, just built: their upload is queued on the current stream."""
        w = FakeCudaWork(self, cost_s, **kw)
        self.works.add(w)
        self._enqueue(self.current_stream(), 0.0, w)
        return w

    # --- the device ---
    def _enqueue(self, s: "FakeStream", seconds: float, owner: "FakeCudaWork | None", evicts: bool = False) -> int:
        """Queue `seconds` of device work on stream s behind its tail; returns its device start (ns)."""
        start = max(self.clock.t_ns, s.tail_ns)
        s.tail_ns = start + int(round(seconds * 1e9))
        s.ops += 1
        if owner is not None:
            owner.last_access = (s, s.ops, self.epoch)
        if owner is not None or evicts:
            self.l2_log.append((s.tail_ns, weakref.ref(owner) if owner is not None else None))
            del self.l2_log[:-256]
        return start

    def run(self, w: FakeCudaWork, s: "FakeStream") -> None:
        """A work's kernels on stream s: cold unless w was the last op to complete before they start."""
        self.check_order(w, s)
        start = max(self.clock.t_ns, s.tail_ns)
        seconds = w.kernel_s(cold=self.l2_owner(start) is not w)
        self._enqueue(s, seconds, w)

    def l2_owner(self, t_ns: int) -> "FakeCudaWork | None":
        """The work whose data the L2 holds at device time t_ns: the last op completed by then."""
        best_end, best = -1, None
        for end, ref in self.l2_log:
            if end <= t_ns and end >= best_end:
                best_end, best = end, ref
        return best() if best is not None else None

    def write(self, nbytes: int, seconds: float | None = None) -> None:
        """A kernel writing nbytes on the current stream (a flush): evicts the L2 if nbytes >= l2_bytes."""
        self.flushes += 1
        if seconds is None:
            seconds = self.flush_s or nbytes / self.write_bytes_per_s
        self._enqueue(self.current_stream(), seconds, None, evicts=nbytes >= self.l2_bytes)

    def check_order(self, w: FakeCudaWork, s: "FakeStream") -> None:
        if w.last_access is None:
            return
        other, op, epoch = w.last_access
        if other is s or epoch < self.epoch or s.seen.get(other, 0) >= op:
            return
        raise FakeRaceError(f"race: a kernel on {s} uses buffers that {other} used without ordering "
                            "(wait_stream or synchronize missing)")

    def capture_call(self, w: FakeCudaWork) -> None:
        g, s = self.capturing, self.current_stream()
        why = None
        if s is not g.stream:
            why = "work launched on another stream during capture"
        elif w.autotune_left > 0:
            why = "cuDNN benchmark autotuning during capture; warm up first"
        elif not w.capturable:
            why = "a synchronizing op in the model"
        if why:
            g.invalid = True
            raise RuntimeError(f"CUDA error: operation not permitted when stream is capturing (fake: {why})")
        g.kernels.append(weakref.ref(w))

    # --- torch.cuda surface ---
    def synchronize(self) -> None:
        self.syncs += 1
        done = max([self.clock.t_ns] + [s.tail_ns for r in self.streams if (s := r()) is not None])
        self.clock.t_ns = done + self.sync_wake_ns
        self.epoch += 1

    def empty_cache(self) -> None:
        pass

    def current_device(self) -> int:
        return 0

    def _sleep(self, cycles: int) -> None:
        """torch.cuda._sleep: a kernel that spins `cycles` clock cycles (at sleep_hz) on the current stream."""
        self._enqueue(self.current_stream(), cycles / self.sleep_hz, None)

    def get_device_properties(self, index: int):
        from types import SimpleNamespace

        return SimpleNamespace(name="NVIDIA Fake GPU", L2_cache_size=self.l2_bytes, uuid=self.uuid)

    def alloc(self, nbytes: int) -> "FakeBuffer":
        """torch.empty(nbytes, dtype=int8, device='cuda') as CudaBackend's `alloc` (the real flusher's buffer)."""
        buf = FakeBuffer(self, nbytes)
        self.buffers.append(buf)
        return buf

    def Event(self, enable_timing: bool = False) -> "FakeEvent":  # noqa: N802 - mirrors torch.cuda.Event
        self.events_created += 1
        return FakeEvent(self, enable_timing)

    def Stream(self) -> "FakeStream":  # noqa: N802
        return FakeStream(self)

    def current_stream(self) -> "FakeStream":
        return self._current

    def set_stream(self, s: "FakeStream") -> None:
        self._current = s

    def stream(self, s: "FakeStream") -> "FakeStreamContext":
        return FakeStreamContext(self, s)

    def CUDAGraph(self) -> "FakeGraph":  # noqa: N802
        return FakeGraph(self)

    def graph(self, g: "FakeGraph", pool=None, stream: "FakeStream | None" = None) -> "FakeGraphContext":
        if stream is None:
            if self._capture_stream is None:
                self._capture_stream = FakeStream(self)
            stream = self._capture_stream
        return FakeGraphContext(self, g, stream)

    def flush_l2(self) -> None:
        """An L2 flush of flush_s for tests that give the backend its flush: evicts everything."""
        self.write(max(self.l2_bytes, 1), self.flush_s)


class FakeBuffer:
    """An int8 device buffer: zero_() is a write of its size on the current stream (the L2 flush)."""

    def __init__(self, cuda: FakeCuda, nbytes: int):
        self.cuda, self.nbytes = cuda, nbytes

    def zero_(self) -> "FakeBuffer":
        self.cuda.write(self.nbytes)
        return self


class FakeStreamContext:
    """torch.cuda.StreamContext: the stream is current inside, the previous one again on exit."""

    def __init__(self, cuda: FakeCuda, s: "FakeStream"):
        self.cuda, self.s = cuda, s

    def __enter__(self) -> "FakeStream":
        self.before = self.cuda.current_stream()
        self.cuda.set_stream(self.s)
        return self.s

    def __exit__(self, *exc) -> None:
        self.cuda.set_stream(self.before)


class FakeGraphContext:
    """torch.cuda.graph as torch 2.x writes it: __enter__ synchronizes, empties the cache, enters a
    stream context and begins capture; __exit__ ends capture and only then leaves the stream context,
    so a capture_end that raises leaves the capture stream current (torch/cuda/graphs.py)."""

    def __init__(self, cuda: FakeCuda, g: "FakeGraph", stream: "FakeStream"):
        self.cuda, self.g, self.capture_stream = cuda, g, stream
        self.stream_ctx = cuda.stream(stream)

    def __enter__(self) -> None:
        self.cuda.synchronize()
        self.cuda.empty_cache()
        self.stream_ctx.__enter__()
        self.g.capture_begin(self.capture_stream)
        self.cuda.capturing = self.g

    def __exit__(self, *exc) -> None:
        self.cuda.capturing = None
        self.g.capture_end()
        self.stream_ctx.__exit__(*exc)


class FakeRaceError(RuntimeError):
    """Two streams used one buffer without ordering: on hardware, wrong numbers or a wrong time."""


class FakeEvent:
    def __init__(self, cuda: FakeCuda, enable_timing: bool = False):
        self.cuda, self.enable_timing = cuda, enable_timing
        self.t_ns: int | None = None

    def record(self, stream: "FakeStream | None" = None) -> None:
        s = stream or self.cuda.current_stream()
        self.cuda.events_recorded += 1
        self.t_ns = max(self.cuda.clock.t_ns, s.tail_ns)
        s.tail_ns = self.t_ns
        s.ops += 1

    def query(self) -> bool:
        return self.t_ns is None or self.cuda.clock.t_ns >= self.t_ns

    def synchronize(self) -> None:
        self.cuda.syncs += 1
        if self.t_ns is not None:
            self.cuda.clock.t_ns = max(self.cuda.clock.t_ns, self.t_ns + self.cuda.sync_wake_ns)

    def elapsed_time(self, end: "FakeEvent") -> float:
        if not (self.enable_timing and end.enable_timing):
            raise RuntimeError("Both events must be created with argument 'enable_timing=True'.")
        if self.t_ns is None or end.t_ns is None:
            raise RuntimeError("Both events must be recorded before calculating elapsed time.")
        if not (self.query() and end.query()):
            raise RuntimeError("CUDA error: device not ready (fake: elapsed_time before the events completed)")
        return (end.t_ns - self.t_ns) / 1e6


class FakeStream:
    def __init__(self, cuda: FakeCuda, default: bool = False):
        self.cuda, self.default = cuda, default
        self.tail_ns = 0
        self.ops = 0
        self.seen: dict[FakeStream, int] = {}  # op counts of other streams this one is ordered after
        cuda.streams.append(weakref.ref(self))

    def wait_stream(self, other: "FakeStream") -> None:
        if other is self:
            return
        self.tail_ns = max(self.tail_ns, other.tail_ns)
        self.seen[other] = other.ops
        for s, op in other.seen.items():
            self.seen[s] = max(self.seen.get(s, 0), op)

    def __repr__(self) -> str:
        return "the default stream" if self.default else f"side stream {id(self) % 1000}"


class FakeGraph:
    """A captured graph: weak references to the kernels' works (no references, as on hardware), a
    private memory pool counted by FakeCuda from capture until reset() or garbage collection."""

    def __init__(self, cuda: FakeCuda) -> None:
        self.cuda = cuda
        self.kernels: list[weakref.ref] = []
        self.stream: FakeStream | None = None
        self.has_pool = False
        self.invalid = False  # an error while capturing invalidated the capture
        self.ended = False
        self.replays = 0

    def capture_begin(self, stream: FakeStream) -> None:
        if stream.default:
            raise RuntimeError("CUDA graphs must be captured on a non-default stream. (However, after "
                               "capture, it's ok to replay them on the default stream.)")
        self.stream = stream
        self.has_pool = True
        self.cuda.pools_created += 1
        self.cuda.pools_alive += 1

    def capture_end(self) -> None:
        if self.cuda.current_stream() is not self.stream:
            raise RuntimeError("Capture must end on the same stream it began on.")
        if self.invalid:
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture")
        self.ended = True

    def replay(self) -> None:
        if not (self.has_pool and self.ended):
            raise RuntimeError("replay of a CUDA graph that was never captured or was reset")
        works = [r() for r in self.kernels]
        if any(w is None for w in works):
            raise RuntimeError("CUDA error: an illegal memory access was encountered (fake: the graph "
                               "replayed a model or input that was freed)")
        self.replays += 1
        cuda = self.cuda
        cuda.clock.advance(cuda.graph_launch_s)
        s = cuda.current_stream()
        for w in works:
            cuda.run(w, s)

    def reset(self) -> None:
        if self.has_pool:
            self.has_pool = False
            self.cuda.pools_alive -= 1
        self.kernels = []

    def __del__(self) -> None:
        self.reset()


class FakeNVMLError(Exception):
    """What pynvml raises (its NVMLError)."""


class FakeNVML:
    """A pynvml stand-in: GPUs whose readings tests set (clock MHz, temp C, power mW, reasons bits).

    By default one GPU built from the keyword readings; `gpus` lists several, each a dict overriding
    those readings and its "uuid" (NVML index = position). NVML numbers GPUs its own way: under
    CUDA_VISIBLE_DEVICES torch's device 0 may be NVML's 1, so handles come by index or by UUID.
    Compute processes are listed with host PIDs, as NVML does: latbench's own process appears on GPU
    `self_on` as `self_pid` (default os.getpid(), as outside a container; a container sees another
    PID), beside `other_pids`. `fail_init=True` behaves like a machine without a driver;
    `unsupported` names calls that raise, as NVML does for queries a GPU does not support.

    MIG: a GPU's "migs" lists instances ({"uuid": "MIG-...", "other_pids": (...)}); their handles are
    found by UUID only (not by index, as NVML), clock/temperature/power/reason queries on them raise
    Not Supported (read them on the parent), and the parent lists every instance's processes.
    `self_on` may be ("mig", gpu, instance). Throttle counters: a GPU's "fields" ({field id: ns},
    nvmlDeviceGetFieldValues) and "violations" ({perf policy: ns}, nvmlDeviceGetViolationStatus),
    accumulated as NVML does; a test raises them between start() and stop().
    """

    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, fail_init: bool = False, unsupported: tuple[str, ...] = (), sm_mhz: int = 1800,
                 temp_c: int = 60, power_mw: int = 150_000, reasons: int = 0, other_pids: tuple[int, ...] = (),
                 gpus: list[dict] | None = None, self_pid: int | None = None, self_on: int | None = 0):
        import os

        self.fail_init, self.unsupported = fail_init, set(unsupported)
        base = {"name": "NVIDIA Fake A10", "uuid": "GPU-0000-fake", "sm_mhz": sm_mhz, "temp_c": temp_c,
                "power_mw": power_mw, "reasons": reasons, "other_pids": tuple(other_pids)}
        self.gpus = [{**base, **g} for g in gpus] if gpus else [base]
        self.self_pid = os.getpid() if self_pid is None else self_pid
        self.self_on = self_on
        self.inits = self.shutdowns = 0

    def _check(self, name: str) -> None:
        if name in self.unsupported:
            raise FakeNVMLError(f"{name}: Not Supported")

    def _gpu(self, h) -> dict:
        if h[0] == "mig":
            raise FakeNVMLError("Not Supported (a MIG device handle: query its parent GPU)")
        return self.gpus[h[1]]

    def _mig(self, h) -> dict:
        return self.gpus[h[1]]["migs"][h[2]]

    def nvmlInit(self):
        if self.fail_init:
            raise FakeNVMLError("NVML Shared Library Not Found")
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self):
        return b"550.54.15"

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        if not 0 <= i < len(self.gpus):
            raise FakeNVMLError("Invalid Argument")
        return ("gpu", i)

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self._check("nvmlDeviceGetHandleByUUID")
        text = uuid.decode() if isinstance(uuid, bytes) else uuid
        for i, g in enumerate(self.gpus):
            if g["uuid"] == text:
                return ("gpu", i)
            for j, m in enumerate(g.get("migs", ())):
                if m["uuid"] == text:
                    return ("mig", i, j)
        raise FakeNVMLError("Not Found")

    def nvmlDeviceIsMigDeviceHandle(self, h):
        self._check("nvmlDeviceIsMigDeviceHandle")
        return int(h[0] == "mig")  # pynvml returns a c_uint

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, h):
        if h[0] != "mig":
            raise FakeNVMLError("Invalid Argument")
        return ("gpu", h[1])

    def nvmlDeviceGetName(self, h):
        return self._gpu(h)["name"] if h[0] == "gpu" else "MIG 1g.18gb"

    def nvmlDeviceGetUUID(self, h):
        return self._gpu(h)["uuid"] if h[0] == "gpu" else self._mig(h)["uuid"]

    def nvmlDeviceGetFieldValues(self, h, field_ids):
        from types import SimpleNamespace

        self._check("nvmlDeviceGetFieldValues")
        fields = self._gpu(h).get("fields")
        if fields is None:
            raise FakeNVMLError("Not Supported")
        return [SimpleNamespace(fieldId=f, nvmlReturn=0 if f in fields else 3,  # 3: NVML_ERROR_NOT_SUPPORTED
                                value=SimpleNamespace(ullVal=int(fields.get(f, 0)))) for f in field_ids]

    def nvmlDeviceGetViolationStatus(self, h, policy):
        from types import SimpleNamespace

        self._check("nvmlDeviceGetViolationStatus")
        violations = self._gpu(h).get("violations") or {}
        if policy not in violations:
            raise FakeNVMLError("Not Supported")
        return SimpleNamespace(referenceTime=0, violationTime=int(violations[policy]))

    def nvmlDeviceGetClockInfo(self, h, kind):
        self._check("nvmlDeviceGetClockInfo")
        return self._gpu(h)["sm_mhz"]

    def nvmlDeviceGetMaxClockInfo(self, h, kind):
        return 1950 if kind == self.NVML_CLOCK_SM else 6251

    def nvmlDeviceGetPowerManagementLimit(self, h):
        return 300_000

    def nvmlDeviceGetPowerUsage(self, h):
        self._check("nvmlDeviceGetPowerUsage")
        return self._gpu(h)["power_mw"]

    def nvmlDeviceGetTemperature(self, h, kind):
        return self._gpu(h)["temp_c"]

    def nvmlDeviceGetPersistenceMode(self, h):
        return 1

    def nvmlDeviceGetMigMode(self, h):
        self._check("nvmlDeviceGetMigMode")
        return (0, 0)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        return self._gpu(h)["reasons"]

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        if h[0] == "mig":
            pids = ((self.self_pid,) if self.self_on == h else ()) + tuple(self._mig(h).get("other_pids", ()))
        else:
            mine = self.self_on == h[1] or (isinstance(self.self_on, tuple) and self.self_on[1] == h[1])
            pids = ((self.self_pid,) if mine else ()) + self._gpu(h)["other_pids"]
            pids += tuple(p for m in self._gpu(h).get("migs", ()) for p in m.get("other_pids", ()))
        return [type("Proc", (), {"pid": p, "usedGpuMemory": 1 << 30})() for p in pids]


class FakePsutil:
    """psutil's counters as a test scripts them: tick() advances CPU times by busy cores over dt."""

    def __init__(self, cores: int = 4, freqs_mhz: tuple[float, ...] = (3000.0,) * 4):
        import collections

        self._freq = collections.namedtuple("scpufreq", "current min max")
        self._times = collections.namedtuple("scputimes", "user system idle iowait steal")
        self._ptimes = collections.namedtuple("pcputimes", "user system")
        self.cores, self.freqs_mhz = cores, list(freqs_mhz)
        self.sys_busy = self.own_busy = self.idle = 0.0

    def tick(self, dt: float, own_cores: float, other_cores: float) -> None:
        self.sys_busy += (own_cores + other_cores) * dt
        self.own_busy += own_cores * dt
        self.idle += (self.cores - own_cores - other_cores) * dt

    def cpu_count(self, logical=True):
        return self.cores

    def cpu_freq(self, percpu=False):
        return [self._freq(f, 0.0, 3500.0) for f in self.freqs_mhz]

    def cpu_times(self):
        return self._times(self.sys_busy, 0.0, self.idle, 0.0, 0.0)

    def Process(self):
        own = self.own_busy
        return type("P", (), {"cpu_times": lambda s: self._ptimes(own, 0.0)})()


class HangingWork(FakeWork):
    """FakeWork that, from call `hang_after + 1` on, really sleeps `hang_s` seconds of wall time (a case
    that hangs in Python code), so a SIGALRM time limit can be tested on a fake clock."""

    def __init__(self, clock: FakeClock, cost_s: float, hang_after: int = 0, hang_s: float = 60.0, **kw):
        super().__init__(clock, cost_s, **kw)
        self.hang_after, self.hang_s = hang_after, hang_s

    def __call__(self) -> None:
        if self.calls >= self.hang_after:
            import time

            time.sleep(self.hang_s)
        super().__call__()


FP32_PAIRS = [(b, op) for b in ("generic", "cuda", "mkldnn") for op in ("all", "conv", "rnn", "matmul")
              if not (b == "generic" and op != "all")]


@contextlib.contextmanager
def fp32_settings_kept():
    """torch's float32 math settings put back after a test changed them: the legacy flags
    (matmul precision, cuDNN allow_tf32) and, on torch >= 2.9, every fp32_precision setting. Entered
    in torch's default state, where every setting reads back as it was set (no inheritance in play)."""
    import torch

    legacy = (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)
    getter = getattr(torch._C, "_get_fp32_precision_getter", None)
    setter = getattr(torch._C, "_set_fp32_precision_setter", None)
    new = {pair: getter(*pair) for pair in FP32_PAIRS} if getter and setter else {}
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(legacy[0])
        torch.backends.cudnn.allow_tf32 = legacy[1]
        for pair, value in new.items():
            setter(*pair, value)
