"""The one question a timing backend answers: how long did `iters` calls of `fn` take?"""

from __future__ import annotations

from typing import Callable, Protocol


class TimingBackend(Protocol):
    name: str  # recorded in metadata, e.g. "cpu:perf_counter_ns" or "cuda:events"
    modes: tuple[str, ...]  # execution modes it can time, e.g. ("eager", "cudagraph")

    def prepare(self, fn: Callable[[], object], mode: str) -> Callable[[], object]:
        """A callable that runs one forward pass in `mode` (e.g. a captured CUDA graph's replay)."""
        ...

    def time_block(self, fn: Callable[[], object], iters: int) -> float:
        """Seconds taken by `iters` calls of fn (back to back, or one at a time for latency="single")."""
        ...

    def release(self) -> int:
        """Drop what prepare() made for the cases measured so far (CUDA graphs and their pools)."""
        ...

    def columns(self) -> dict[str, str]:
        """Per-row columns saying what was measured: latency_semantics, l2."""
        ...
