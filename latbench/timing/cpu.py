"""CPU backend: a block of calls between two reads of a monotonic nanosecond clock."""

from __future__ import annotations

import time
from typing import Callable


class CpuBackend:
    """Times blocks with `clock` (perf_counter_ns by default; tests inject a fake clock).

    CPU ops are synchronous, so reading the clock before and after the block is enough. Per-block,
    not per-call, clock reads keep timer overhead (~0.1 us a read) far below 0.1 % of a block.
    """

    name = "cpu:perf_counter_ns"
    modes = ("eager",)

    def __init__(self, clock: Callable[[], int] = time.perf_counter_ns):
        self._clock = clock

    def prepare(self, fn: Callable[[], object], mode: str) -> Callable[[], object]:
        if mode != "eager":
            raise ValueError(f"mode {mode!r} needs a CUDA device; the CPU runs 'eager' only")
        return fn

    def time_block(self, fn: Callable[[], object], iters: int) -> float:
        clock = self._clock
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
