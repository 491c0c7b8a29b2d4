"""CudaBackend's logic on a fake torch.cuda: events around blocks, one sync per block, graph replay."""

import pytest

from fakes import FakeClock, FakeCuda
from latbench.timing.cuda import CudaBackend
from latbench.timing.loop import StopPolicy, measure


def test_block_is_timed_by_events_with_one_sync_before_and_one_wait_after():
    clock = FakeClock()
    cuda = FakeCuda(clock)
    work = cuda.work(2e-3)
    backend = CudaBackend(cuda)
    syncs = cuda.syncs
    t = backend.time_block(work, 5)
    assert t == pytest.approx(10e-3)
    assert cuda.syncs - syncs == 2  # device sync before the start event, end-event wait after
    assert cuda.events_recorded == 2


def test_cudagraph_replay_removes_launch_overhead_and_eager_keeps_it():
    clock = FakeClock()
    cuda = FakeCuda(clock)
    work = cuda.work(1e-3, launch_s=0.4e-3)
    backend = CudaBackend(cuda)
    eager = backend.prepare(work, "eager")
    graph = backend.prepare(work, "cudagraph")
    assert len(backend.graphs) == 1 and work.calls >= 4  # side-stream warm-up calls, then capture
    policy = StopPolicy(warmup_s=0.01, warmup_min_iters=10, block_s=0.01, min_rounds=5, max_rounds=5)
    done, failed = measure([("eager", eager), ("graph", graph)], backend, policy)
    assert not failed
    eager_ms = min(done["eager"].samples_s) * 1e3
    graph_ms = min(done["graph"].samples_s) * 1e3
    assert eager_ms == pytest.approx(1.4) and graph_ms == pytest.approx(1.0)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        CudaBackend(FakeCuda(FakeClock())).prepare(lambda: None, "compile")
