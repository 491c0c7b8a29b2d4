"""CPU backend: a block of calls between two reads of a monotonic nanosecond clock."""

from __future__ import annotations

import time
from typing import Callable

from latbench.errors import DeviceError
from latbench.timing.cuda import L2_STATES, LATENCY_SEMANTICS, check_option


class CpuBackend:
    """Times blocks with `clock` (perf_counter_ns by default; tests inject a fake clock).

    CPU ops are synchronous, so reading the clock before and after the block is enough. Per-block,
    not per-call, clock reads keep timer overhead (~0.1 us a read) far below 0.1 % of a block.
    latency="single" reads the clock around every call instead (the CUDA backend's single-request
    semantics; on the CPU it differs from "throughput" only by the extra clock reads).
    """

    name = "cpu:perf_counter_ns"
    modes = ("eager",)

    def __init__(self, clock: Callable[[], int] = time.perf_counter_ns, latency: str = "throughput",
                 l2: str = "warm"):
        self._clock = clock
        self.latency = check_option("latency", latency, LATENCY_SEMANTICS)
        if check_option("l2", l2, L2_STATES) != "warm":
            raise DeviceError(f"l2 {l2!r} needs a CUDA device (the CPU backend cannot flush a GPU L2)", where="--l2",
                              hint="use --l2 warm (the default) on the CPU, or --device cuda")

    def columns(self) -> dict[str, str]:
        """What every row timed by this backend measured (the L2 is never flushed on the CPU)."""
        return {"latency_semantics": self.latency, "l2": "warm"}

    def prepare(self, fn: Callable[[], object], mode: str) -> Callable[[], object]:
        if mode != "eager":
            raise ValueError(f"mode {mode!r} needs a CUDA device; the CPU runs 'eager' only")
        return fn

    def release(self) -> int:
        """Nothing to release on the CPU (the CUDA backend drops its graphs here)."""
        return 0

    def time_block(self, fn: Callable[[], object], iters: int) -> float:
        clock = self._clock
        if self.latency == "single":
            total = 0
            for _ in range(iters):
                t0 = clock()
                fn()
                total += clock() - t0
            return total * 1e-9
        t0 = clock()
        for _ in range(iters):
            fn()
        return (clock() - t0) * 1e-9

    def timer_overhead_s(self, reads: int = 10_000) -> float:
        """Cost of one clock read (what a block's two reads add), for the metadata."""
        clock = self._clock
        t0 = clock()
        for _ in range(reads):
            clock()
        return (clock() - t0) * 1e-9 / (reads + 1)
