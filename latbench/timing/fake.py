"""The fake timing backend: the whole pipeline at a fraction of the wall time, for tests and dry runs
(`LATBENCH_FAKE_BACKEND=1`, or devices.get(..., fake=True)). Its numbers are not latencies."""

from __future__ import annotations

import time
from typing import Callable

from latbench.timing.cpu import CpuBackend


class FakeBackend:
    """CPU timing for tests: each block runs fn once and reports that call's time x iters.

    The whole pipeline (build, warm-up, block sizing, stopping rule, rows, files) runs, with the
    model really called, at a fraction of the wall time. The numbers are not latencies to report.
    """

    name = "cpu:fake(one call per block)"
    modes = ("eager",)

    def __init__(self, clock: Callable[[], int] = time.perf_counter_ns, latency: str = "throughput",
                 l2: str = "warm"):
        self._clock = clock
        self._cpu = CpuBackend(clock, latency=latency, l2=l2)  # checks the options as the CPU backend does
        self.latency = latency

    def columns(self) -> dict[str, str]:
        return self._cpu.columns()

    def release(self) -> int:
        return 0

    def prepare(self, fn: Callable[[], object], mode: str) -> Callable[[], object]:
        return CpuBackend.prepare(self, fn, mode)  # type: ignore[arg-type]

    def time_block(self, fn: Callable[[], object], iters: int) -> float:
        t0 = self._clock()
        fn()
        return max(self._clock() - t0, 1) * 1e-9 * iters
