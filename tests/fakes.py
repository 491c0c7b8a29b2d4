"""Fake clock, fake work and a fake torch.cuda, so timing logic runs exactly in tests without a GPU.

Time is simulated: FakeWork advances a FakeClock by its cost (times a drift factor that may depend on
the simulated time, plus seeded noise); the CPU backend reads the fake clock; FakeCuda's events read it
too, and its CUDA graphs replay captured work without the per-call launch overhead.
"""

from __future__ import annotations

import contextlib
import random
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
        self.capture: list | None = None  # set by FakeCuda while a graph is being captured

    def run_kernels(self) -> None:
        factor = self.speed(self.clock.now_s)
        jitter = max(-0.5, self.rng.gauss(0.0, self.noise)) if self.noise else 0.0
        self.clock.advance(self.cost_s * factor * (1.0 + jitter))

    def __call__(self) -> None:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("CUDA out of memory (fake)")
        if self.capture is not None:
            self.capture.append(self)
            return
        self.clock.advance(self.launch_s)
        self.run_kernels()


class FakeCuda:
    """The part of torch.cuda that CudaBackend uses, on a FakeClock."""

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.syncs = 0
        self.events_recorded = 0
        self.works: list[FakeWork] = []

    def work(self, cost_s: float, **kw) -> FakeWork:
        w = FakeWork(self.clock, cost_s, **kw)
        self.works.append(w)
        return w

    # --- torch.cuda surface ---
    def synchronize(self) -> None:
        self.syncs += 1

    def Event(self, enable_timing: bool = False) -> "FakeEvent":  # noqa: N802 - mirrors torch.cuda.Event
        return FakeEvent(self)

    def Stream(self) -> "FakeStream":  # noqa: N802
        return FakeStream()

    def current_stream(self) -> "FakeStream":
        return FakeStream()

    @contextlib.contextmanager
    def stream(self, s: "FakeStream"):
        yield s

    def CUDAGraph(self) -> "FakeGraph":  # noqa: N802
        return FakeGraph()

    @contextlib.contextmanager
    def graph(self, g: "FakeGraph"):
        for w in self.works:
            w.capture = g.kernels
        try:
            yield g
        finally:
            for w in self.works:
                w.capture = None


class FakeEvent:
    def __init__(self, cuda: FakeCuda):
        self.cuda = cuda
        self.t_ns: int | None = None

    def record(self) -> None:
        self.cuda.events_recorded += 1
        self.t_ns = self.cuda.clock.t_ns

    def synchronize(self) -> None:
        self.cuda.syncs += 1

    def elapsed_time(self, end: "FakeEvent") -> float:
        assert self.t_ns is not None and end.t_ns is not None, "elapsed_time on an event never recorded"
        return (end.t_ns - self.t_ns) / 1e6


class FakeStream:
    def wait_stream(self, other: "FakeStream") -> None:
        pass


class FakeGraph:
    def __init__(self) -> None:
        self.kernels: list[FakeWork] = []
        self.replays = 0

    def replay(self) -> None:
        self.replays += 1
        for w in self.kernels:
            w.run_kernels()


class FakeNVMLError(Exception):
    """What pynvml raises (its NVMLError)."""


class FakeNVML:
    """A pynvml stand-in: one GPU whose readings tests set (clock MHz, temp C, power mW, reasons bits).

    `fail_init=True` behaves like a machine without a driver; `unsupported` names calls that raise,
    as NVML does for queries a GPU does not support.
    """

    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, fail_init: bool = False, unsupported: tuple[str, ...] = (), sm_mhz: int = 1800,
                 temp_c: int = 60, power_mw: int = 150_000, reasons: int = 0, other_pids: tuple[int, ...] = ()):
        self.fail_init, self.unsupported = fail_init, set(unsupported)
        self.sm_mhz, self.temp_c, self.power_mw, self.reasons, self.other_pids = sm_mhz, temp_c, power_mw, reasons, other_pids
        self.inits = self.shutdowns = 0

    def _check(self, name: str) -> None:
        if name in self.unsupported:
            raise FakeNVMLError(f"{name}: Not Supported")

    def nvmlInit(self):
        if self.fail_init:
            raise FakeNVMLError("NVML Shared Library Not Found")
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self):
        return b"550.54.15"

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return ("gpu", i)

    def nvmlDeviceGetName(self, h):
        return "NVIDIA Fake A10"

    def nvmlDeviceGetUUID(self, h):
        return "GPU-0000-fake"

    def nvmlDeviceGetClockInfo(self, h, kind):
        self._check("nvmlDeviceGetClockInfo")
        return self.sm_mhz

    def nvmlDeviceGetMaxClockInfo(self, h, kind):
        return 1950 if kind == self.NVML_CLOCK_SM else 6251

    def nvmlDeviceGetPowerManagementLimit(self, h):
        return 300_000

    def nvmlDeviceGetPowerUsage(self, h):
        self._check("nvmlDeviceGetPowerUsage")
        return self.power_mw

    def nvmlDeviceGetTemperature(self, h, kind):
        return self.temp_c

    def nvmlDeviceGetPersistenceMode(self, h):
        return 1

    def nvmlDeviceGetMigMode(self, h):
        self._check("nvmlDeviceGetMigMode")
        return (0, 0)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        return self.reasons

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [type("Proc", (), {"pid": p})() for p in self.other_pids]


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
