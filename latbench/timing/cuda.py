"""CUDA backend: blocks timed with CUDA events on the current stream; eager or CUDA-graph replay.

Every block: synchronize (the GPU is idle, so nothing queued earlier leaks into the block), record a
start event, enqueue `iters` calls, record an end event, wait for it. The events measure the GPU
timeline from the start marker to the end marker, including any time the GPU waits for the CPU to
launch kernels - that wait is the launch overhead that graph replay removes, and it is what a
batch-1 latency really costs. One synchronization per block, none per call.

`cuda` is the torch.cuda module, injectable so the logic runs in tests without a GPU
(tests/fakes.py provides a fake with the same Event / Stream / CUDAGraph surface).
"""

from __future__ import annotations

from typing import Any, Callable

GRAPH_WARMUP_ITERS = 3  # side-stream calls before capture, as torch.cuda.graphs' docs require


class CudaBackend:
    modes = ("eager", "cudagraph")

    def __init__(self, cuda: Any = None):
        if cuda is None:
            import torch

            cuda = torch.cuda
        self._cuda = cuda
        self._start = cuda.Event(enable_timing=True)
        self._end = cuda.Event(enable_timing=True)
        self.name = "cuda:events"
        self.graphs: list[Any] = []  # keep captured graphs (and their memory pools) alive

    def prepare(self, fn: Callable[[], object], mode: str) -> Callable[[], object]:
        if mode == "eager":
            return fn
        if mode != "cudagraph":
            raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(self.modes)}")
        cuda = self._cuda
        side = cuda.Stream()
        side.wait_stream(cuda.current_stream())
        with cuda.stream(side):
            for _ in range(GRAPH_WARMUP_ITERS):
                fn()
        cuda.current_stream().wait_stream(side)
        graph = cuda.CUDAGraph()
        with cuda.graph(graph):
            fn()
        cuda.synchronize()
        self.graphs.append(graph)
        return graph.replay

    def time_block(self, fn: Callable[[], object], iters: int) -> float:
        start, end = self._start, self._end
        self._cuda.synchronize()
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e-3  # elapsed_time is in milliseconds
