"""CUDA backend: blocks timed with CUDA events on the current stream; eager or CUDA-graph replay.

Two things decide what a CUDA latency means, and both are options recorded per row:

latency="throughput" (default): synchronize (the GPU is idle), record a start event, enqueue `iters`
    calls back to back, record an end event, wait for it. The host runs ahead of the GPU, so a call
    costs about max(host launch time, GPU time): when the GPU is the bottleneck eager ~ cudagraph.
    This is the paper's measure (batches per second, back to back) and the one with the least noise.
latency="single": every call alone: synchronize, start event, one call, end event, wait. The GPU
    waits for the launch, so a call costs launch + GPU time, what one request at a time pays.
l2="warm" (default): nothing between calls, so weights and activations that fit stay in L2.
l2="flushed": before every call an L2-sized buffer is written (as triton's do_bench does) and the
    call is timed by its own pair of events, so it starts with a cold L2; the flush is not timed.

Graph capture: a side-stream warm-up (cuDNN autotuning and lazy init must not happen while
capturing), capture on that side stream (capture on the default stream is refused), `wait_stream`
both ways, one checked replay. The returned GraphReplay holds the callable (so the model and input
the graph reads stay alive) and the graph until `release()` drops them, freeing the private pools.

`cuda` is the torch.cuda module, injectable so the logic runs in tests without a GPU
(tests/fakes.py provides a fake that refuses what hardware refuses).
"""

from __future__ import annotations

from typing import Any, Callable

from latbench.errors import DeviceError

GRAPH_WARMUP_ITERS = 3  # side-stream calls before capture, as torch.cuda.graphs' docs require
LATENCY_SEMANTICS = ("throughput", "single")
L2_STATES = ("warm", "flushed")
L2_FLUSH_MIN_BYTES = 64 << 20  # the flush buffer: 2x the L2 size, at least this


class CaptureError(RuntimeError):
    """The callable cannot be captured as a CUDA graph (the case is skipped, with this reason)."""


def check_option(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise DeviceError(f"unknown {name} {value!r}", where=name, hint=f"use one of {', '.join(allowed)}")
    return value


def _released() -> None:
    raise RuntimeError("this CUDA graph was released (backend.release()); prepare the case again")


class GraphReplay:
    """A captured graph's replay that keeps what the graph reads alive: `fn` holds the model and input.

    A CUDA graph stores raw device addresses and holds no Python references; without `fn` here the
    model and input could be freed and their blocks reused while the graph still replays them.
    """

    __slots__ = ("graph", "fn", "_replay")

    def __init__(self, graph: Any, fn: Callable[[], object]):
        self.graph, self.fn = graph, fn
        self._replay = graph.replay

    def __call__(self) -> object:
        return self._replay()

    def release(self) -> None:
        """Drop the graph (its private memory pool) and the references it needed."""
        if self.graph is not None:
            reset = getattr(self.graph, "reset", None)
            if reset is not None:
                reset()
        self.graph = self.fn = None
        self._replay = _released


class CudaBackend:
    modes = ("eager", "cudagraph")

    def __init__(self, cuda: Any = None, latency: str = "throughput", l2: str = "warm",
                 flush: Callable[[], object] | None = None):
        """latency: "throughput" or "single"; l2: "warm" or "flushed" (see the module docstring).
        flush: what writes the L2-sized buffer (default: zero_ on a fresh buffer of 2x the L2 size)."""
        if cuda is None:
            import torch

            cuda = torch.cuda
        self._cuda = cuda
        self.latency = check_option("latency", latency, LATENCY_SEMANTICS)
        self.l2 = check_option("l2", l2, L2_STATES)
        self._flush = (flush or _l2_flusher()) if l2 == "flushed" else None
        self._start = cuda.Event(enable_timing=True)
        self._end = cuda.Event(enable_timing=True)
        self._pairs: list[tuple[Any, Any]] = []  # one (start, end) per call for l2="flushed"
        self.name = "cuda:events"
        self.graphs: list[GraphReplay] = []  # live graphs, until release()
        self.released = 0  # graphs released so far

    def columns(self) -> dict[str, str]:
        """What every row timed by this backend measured."""
        return {"latency_semantics": self.latency, "l2": self.l2}

    def prepare(self, fn: Callable[[], object], mode: str) -> Callable[[], object]:
        if mode == "eager":
            return fn
        if mode != "cudagraph":
            raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(self.modes)}")
        cuda = self._cuda
        current = cuda.current_stream()
        side = cuda.Stream()
        side.wait_stream(current)  # the warm-up reads what the current stream wrote (input, weights)
        with cuda.stream(side):
            for _ in range(GRAPH_WARMUP_ITERS):
                fn()
        current.wait_stream(side)  # and the current stream runs after the warm-up
        graph = cuda.CUDAGraph()
        try:
            with cuda.graph(graph, stream=side):
                fn()
        except Exception as exc:
            from latbench.faults import is_oom

            if is_oom(exc):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CaptureError(f"cannot be captured as a CUDA graph: {first}"[:500]) from exc
        replay = GraphReplay(graph, fn)
        self.graphs.append(replay)
        replay()  # one replay, so a graph that cannot replay fails here and not in the timed loop
        cuda.synchronize()
        return replay

    def release(self) -> int:
        """Drop every graph captured so far (call after a group is measured); returns how many."""
        n = len(self.graphs)
        for g in self.graphs:
            g.release()
        self.graphs.clear()
        self.released += n
        return n

    def time_block(self, fn: Callable[[], object], iters: int) -> float:
        if self.latency == "single":
            return self._single(fn, iters)
        if self._flush is not None:
            return self._flushed(fn, iters)
        start, end = self._start, self._end
        self._cuda.synchronize()
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e-3  # elapsed_time is in milliseconds

    def _single(self, fn: Callable[[], object], iters: int) -> float:
        cuda, start, end, flush = self._cuda, self._start, self._end, self._flush
        total_ms = 0.0
        for _ in range(iters):
            if flush is not None:
                flush()
            cuda.synchronize()  # idle GPU: the call pays its launch
            start.record()
            fn()
            end.record()
            end.synchronize()
            total_ms += start.elapsed_time(end)
        return total_ms * 1e-3

    def _flushed(self, fn: Callable[[], object], iters: int) -> float:
        cuda, flush = self._cuda, self._flush
        while len(self._pairs) < iters:
            self._pairs.append((cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)))
        pairs = self._pairs[:iters]
        cuda.synchronize()
        for start, end in pairs:
            flush()  # not timed: it runs before the start event
            start.record()
            fn()
            end.record()
        pairs[-1][1].synchronize()
        return sum(start.elapsed_time(end) for start, end in pairs) * 1e-3


def _l2_flusher() -> Callable[[], object]:
    """zero_ of an int8 buffer twice the size of the current GPU's L2 (at least 64 MiB)."""
    import torch

    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    size = max(2 * int(getattr(props, "L2_cache_size", 0) or 0), L2_FLUSH_MIN_BYTES)
    return torch.empty(size, dtype=torch.int8, device="cuda").zero_
