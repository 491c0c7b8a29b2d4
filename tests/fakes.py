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
    current stream, so the host runs ahead of the device as on hardware. cold_s more when another
    work (or an L2 flush) ran on the device since this one: its weights are no longer in L2.
    autotune_calls: the first calls autotune (cuDNN benchmark), which capture refuses.
    """

    def __init__(self, cuda: "FakeCuda", cost_s: float, speed: Callable[[float], float] = lambda t: 1.0,
                 noise: float = 0.0, seed: int = 0, launch_s: float = 0.0, fail_after: int | None = None,
                 cold_s: float = 0.0, autotune_calls: int = 0, capturable: bool = True):
        self.cuda, self.clock, self.cost_s, self.speed, self.noise = cuda, cuda.clock, cost_s, speed, noise
        self.rng = random.Random(seed)
        self.launch_s, self.fail_after, self.cold_s = launch_s, fail_after, cold_s
        self.autotune_left, self.capturable = autotune_calls, capturable
        self.calls = 0
        self.last_access: tuple | None = None  # (stream, op index, sync epoch) of the last kernel on it

    def kernel_s(self) -> float:
        factor = self.speed(self.clock.now_s)
        jitter = max(-0.5, self.rng.gauss(0.0, self.noise)) if self.noise else 0.0
        cold = self.cold_s if self.cuda.l2_holder() is not self else 0.0
        self.cuda.l2_holder = weakref.ref(self)  # weak: the fake must not keep a freed model alive
        return self.cost_s * factor * (1.0 + jitter) + cold

    def __call__(self) -> None:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("CUDA out of memory (fake)")
        cuda = self.cuda
        if cuda.capturing is not None:
            cuda.capture_call(self)
            return
        self.autotune_left = max(0, self.autotune_left - 1)
        self.clock.advance(self.launch_s)
        cuda.launch(self, cuda.current_stream(), self.kernel_s())


class FakeCuda:
    """The part of torch.cuda that CudaBackend uses, refusing what a GPU refuses.

    Host and device are separate: FakeClock is the host's time; each stream has a tail (the device
    time its queued work ends). Work is queued, not run, so the host runs ahead; synchronize() and
    Event.synchronize() move the host clock to the device's. Refused as on hardware: elapsed_time
    on events made without enable_timing, never recorded, or not yet completed; capture on the
    default stream; work on another stream while capturing; autotuning while capturing; replaying a
    graph whose model or input was freed (graphs hold no references, only weakrefs here); a kernel
    on one stream touching a buffer another stream used without ordering (wait_stream or a sync).
    Counted: syncs, events recorded, graph private pools created and alive.
    """

    def __init__(self, clock: FakeClock, graph_launch_s: float = 0.0, flush_s: float = 0.0):
        self.clock = clock
        self.graph_launch_s, self.flush_s = graph_launch_s, flush_s
        self.syncs = 0
        self.events_recorded = 0
        self.pools_created = 0
        self.pools_alive = 0
        self.flushes = 0
        self.epoch = 0  # bumped by every device-wide synchronize
        self.l2_holder: weakref.ref = lambda: None  # the work whose data is in L2
        self.streams: list[weakref.ref] = []  # every stream made, for synchronize()
        self.default = FakeStream(self, default=True)
        self._current = self.default
        self._capture_stream: FakeStream | None = None  # torch.cuda.graph's own default capture stream
        self.capturing: FakeGraph | None = None
        self.works: weakref.WeakSet = weakref.WeakSet()  # no references: freeing a work is possible

    def work(self, cost_s: float, **kw) -> FakeCudaWork:
        """A model and its input, just built: their upload is queued on the current stream."""
        w = FakeCudaWork(self, cost_s, **kw)
        self.works.add(w)
        self.launch(w, self.current_stream(), 0.0)
        return w

    # --- the device ---
    def launch(self, w: FakeCudaWork | None, s: "FakeStream", seconds: float) -> None:
        if w is not None:
            self.check_order(w, s)
        start = max(self.clock.t_ns, s.tail_ns)
        s.tail_ns = start + int(round(seconds * 1e9))
        s.ops += 1
        if w is not None:
            w.last_access = (s, s.ops, self.epoch)

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
        if s is not g.stream:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing "
                               "(fake: work launched on another stream during capture)")
        if w.autotune_left > 0:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing "
                               "(fake: cuDNN benchmark autotuning during capture; warm up first)")
        if not w.capturable:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing "
                               "(fake: a synchronizing op in the model)")
        g.kernels.append(weakref.ref(w))

    # --- torch.cuda surface ---
    def synchronize(self) -> None:
        self.syncs += 1
        self.clock.t_ns = max([self.clock.t_ns] + [s.tail_ns for r in self.streams if (s := r()) is not None])
        self.epoch += 1

    def empty_cache(self) -> None:
        pass

    def Event(self, enable_timing: bool = False) -> "FakeEvent":  # noqa: N802 - mirrors torch.cuda.Event
        return FakeEvent(self, enable_timing)

    def Stream(self) -> "FakeStream":  # noqa: N802
        return FakeStream(self)

    def current_stream(self) -> "FakeStream":
        return self._current

    @contextlib.contextmanager
    def stream(self, s: "FakeStream"):
        before, self._current = self._current, s
        try:
            yield s
        finally:
            self._current = before

    def CUDAGraph(self) -> "FakeGraph":  # noqa: N802
        return FakeGraph(self)

    @contextlib.contextmanager
    def graph(self, g: "FakeGraph", pool=None, stream: "FakeStream | None" = None):
        self.synchronize()  # as torch.cuda.graph.__enter__ does, then empty_cache()
        self.empty_cache()
        if stream is None:
            if self._capture_stream is None:
                self._capture_stream = FakeStream(self)
            stream = self._capture_stream
        if stream.default:
            raise RuntimeError("CUDA graphs must be captured on a non-default stream. (However, after "
                               "capture, it's ok to replay them on the default stream.)")
        with self.stream(stream):
            g.capture_begin(stream)
            self.capturing = g
            try:
                yield g
            finally:
                self.capturing = None

    def flush_l2(self) -> None:
        """The L2 flush the backend is given in tests: a kernel of flush_s that evicts everything."""
        self.flushes += 1
        self.launch(None, self.current_stream(), self.flush_s)
        self.l2_holder = lambda: None


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
            self.cuda.clock.t_ns = max(self.cuda.clock.t_ns, self.t_ns)

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
        self.replays = 0

    def capture_begin(self, stream: FakeStream) -> None:
        self.stream = stream
        self.has_pool = True
        self.cuda.pools_created += 1
        self.cuda.pools_alive += 1

    def replay(self) -> None:
        if not self.has_pool:
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
            cuda.launch(w, s, w.kernel_s())

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
        return self.gpus[h[1]]

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
        raise FakeNVMLError("Not Found")

    def nvmlDeviceGetName(self, h):
        return self._gpu(h)["name"]

    def nvmlDeviceGetUUID(self, h):
        return self._gpu(h)["uuid"]

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
        pids = ((self.self_pid,) if h[1] == self.self_on else ()) + self._gpu(h)["other_pids"]
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
