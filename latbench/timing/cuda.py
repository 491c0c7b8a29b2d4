"""CUDA backend: blocks timed with CUDA events on the current stream; eager or CUDA-graph replay.

Two things decide what a CUDA latency means, and both are options recorded per row:

latency="throughput" (default): synchronize (the GPU is idle), record a start event, enqueue `iters`
    calls back to back, record an end event, wait for it. The host runs ahead of the GPU, so a call
    costs about max(host launch time, GPU time): when the GPU is the bottleneck eager ~ cudagraph.
    This is the paper's measure (batches per second, back to back) and the one with the least noise.
latency="single": every call alone: synchronize, start event, one call, end event, wait. The GPU
    waits for the launch, so a call costs launch + GPU time, what one request at a time pays.
l2="warm" (default): nothing between calls, so weights and activations that fit stay in L2.
l2="flushed": before every call a buffer of twice the L2 size is written (as triton's do_bench does)
    on the current stream, and the call is timed by its own pair of events, so it starts with a cold
    L2; the flush is not timed. Event pairs come from a pool of FLUSH_PAIRS, reused chunk by chunk
    (each chunk waited for, then read: only that chunk's pairs). A block of n calls times m <= n of
    them, m chosen so that their flushes and calls take about as long as n calls would without the
    flush (the flush's device time is measured once): the block's sample is their mean, and the wall
    time of a flushed run stays within --max-time instead of growing by (flush + call) / call.

Graph capture: a side-stream warm-up (cuDNN autotuning and lazy init must not happen while
capturing), capture on that side stream (capture on the default stream is refused), `wait_stream`
both ways, one checked replay. The returned GraphReplay holds the callable (so the model and input
the graph reads stay alive) and the graph until `release()` drops them, freeing the private pools.
A failed capture: torch.cuda.graph's __exit__ skips restoring the current stream when capture_end
raises (torch/cuda/graphs.py), so the stream in use before the capture is set again here, always;
the reason is the first error raised while capturing (capture_end's own "operation failed due to a
previous error during capture" says nothing), and an out-of-memory is raised as itself (the case
fails: a bigger GPU could capture it), not turned into a CaptureError (a skip).

`cuda` is the torch.cuda module, injectable so the logic runs in tests without a GPU
(tests/fakes.py provides a fake that refuses what hardware refuses).
"""

from __future__ import annotations

import math
from typing import Any, Callable

from latbench.errors import DeviceError

GRAPH_WARMUP_ITERS = 3  # side-stream calls before capture, as torch.cuda.graphs' docs require
LATENCY_SEMANTICS = ("throughput", "single")
L2_STATES = ("warm", "flushed")
L2_FLUSH_MIN_BYTES = 64 << 20  # the flush buffer: 2x the L2 size, at least this
FLUSH_PAIRS = 64  # event pairs of l2="flushed", reused chunk by chunk (never one pair per call of a block)


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
                 flush: Callable[[], object] | None = None, alloc: Callable[[int], Any] | None = None):
        """latency: "throughput" or "single"; l2: "warm" or "flushed" (see the module docstring).
        flush: what writes the L2-sized buffer (default: zero_ on a buffer of 2x the L2 size, made by
        `alloc(bytes)`: torch.empty(bytes, dtype=int8, device="cuda") unless a test injects its own)."""
        if cuda is None:
            import torch

            cuda = torch.cuda
        self._cuda = cuda
        self.latency = check_option("latency", latency, LATENCY_SEMANTICS)
        self.l2 = check_option("l2", l2, L2_STATES)
        self._flush = (flush or _l2_flusher(cuda, alloc)) if l2 == "flushed" else None
        self._start = cuda.Event(enable_timing=True)
        self._end = cuda.Event(enable_timing=True)
        self._pairs: list[tuple[Any, Any]] = []  # l2="flushed": at most FLUSH_PAIRS (start, end), reused
        self._flush_s: float | None = None  # l2="flushed": device time of one flush, measured once
        self._per_call: dict[int, float] = {}  # l2="flushed": id(fn) -> its last timed seconds per call
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
        first: list[BaseException] = []  # the first error raised while capturing, if any
        failed: BaseException | None = None
        try:
            with cuda.graph(graph, stream=side):
                try:
                    fn()
                except BaseException as exc:
                    first.append(exc)
                    raise
        except Exception as exc:  # noqa: BLE001 - decided below: out of memory fails, the rest skips
            failed = first[0] if first and isinstance(first[0], Exception) else exc
        finally:
            # torch.cuda.graph.__exit__ skips its stream restore when capture_end raises
            cuda.set_stream(current)
        if first and not isinstance(first[0], Exception):
            raise first[0]  # a Ctrl-C while capturing stops the run, whatever capture_end said
        if failed is not None:
            _drop(graph)
            from latbench.faults import is_oom

            if is_oom(failed):
                raise failed  # a failure (status failed, "out of memory: ..."), not a property of the model
            text = str(failed).strip().splitlines()[0] if str(failed).strip() else type(failed).__name__
            raise CaptureError(f"cannot be captured as a CUDA graph: {type(failed).__name__}: {text}"[:500]) \
                from failed
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
        self._per_call.clear()  # ids of released callables may be reused
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
        calls = self._flushed_calls(fn, iters) if flush is not None else iters
        total_ms = 0.0
        for _ in range(calls):
            if flush is not None:
                flush()  # before the sync: the call must not start behind it (the flush would hide its launch)
            cuda.synchronize()  # idle GPU: the call pays its launch
            start.record()
            fn()
            end.record()
            end.synchronize()
            total_ms += start.elapsed_time(end)
        return self._scaled(fn, total_ms * 1e-3, calls, iters)

    def _flushed(self, fn: Callable[[], object], iters: int) -> float:
        cuda, flush, pairs = self._cuda, self._flush, self._pairs
        calls = self._flushed_calls(fn, iters)
        total_ms, done = 0.0, 0
        cuda.synchronize()
        while done < calls:
            n = min(FLUSH_PAIRS, calls - done)
            while len(pairs) < n:
                pairs.append((cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)))
            chunk = pairs[:n]  # this chunk's pairs only: the pool's others hold earlier chunks' times
            for start, end in chunk:
                flush()  # not timed: it runs before the start event
                start.record()
                fn()
                end.record()
            chunk[-1][1].synchronize()
            total_ms += sum(start.elapsed_time(end) for start, end in chunk)
            done += n
        return self._scaled(fn, total_ms * 1e-3, calls, iters)

    def _flushed_calls(self, fn: Callable[[], object], iters: int) -> int:
        """How many of a flushed block's `iters` calls to time: as many as fit, with a flush before
        each, in the time `iters` calls take without it (all of them until the call's time is known)."""
        per_call = self._per_call.get(id(fn))
        if per_call is None or per_call <= 0:
            return iters
        flush_s = self._flush_cost_s()
        return max(1, min(iters, math.ceil(iters * per_call / (per_call + flush_s))))

    def _scaled(self, fn: Callable[[], object], seconds: float, calls: int, iters: int) -> float:
        """A block of `iters` calls, of which `calls` were timed (`seconds` in all): iters x their mean."""
        per_call = seconds / calls
        self._per_call[id(fn)] = per_call
        return per_call * iters

    def _flush_cost_s(self) -> float:
        """Device seconds of one flush (events around one; once per backend)."""
        if self._flush_s is None:
            cuda, start, end = self._cuda, self._start, self._end
            cuda.synchronize()
            start.record()
            self._flush()
            end.record()
            end.synchronize()
            self._flush_s = max(0.0, start.elapsed_time(end) * 1e-3)
        return self._flush_s


def _drop(graph: Any) -> None:
    """Free what a failed capture left (its private pool), as far as this torch allows."""
    reset = getattr(graph, "reset", None)
    if reset is not None:
        try:
            reset()
        except Exception:  # noqa: BLE001 - a graph whose capture never ended may refuse; it is garbage anyway
            pass


def flush_bytes(l2_bytes: int) -> int:
    """The flush buffer's size for an L2 of `l2_bytes`: twice it (an L2 is not strictly LRU), >= 64 MiB."""
    return max(2 * int(l2_bytes or 0), L2_FLUSH_MIN_BYTES)


def _l2_flusher(cuda: Any, alloc: Callable[[int], Any] | None = None) -> Callable[[], object]:
    """zero_ of an int8 buffer twice the size of the current GPU's L2 (at least 64 MiB)."""
    props = cuda.get_device_properties(cuda.current_device())
    size = flush_bytes(int(getattr(props, "L2_cache_size", 0) or 0))
    if alloc is None:
        import torch

        return torch.empty(size, dtype=torch.int8, device="cuda").zero_
    return alloc(size).zero_
