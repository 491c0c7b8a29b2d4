"""CudaBackend's logic on a fake torch.cuda that refuses what a GPU refuses (tests/fakes.py).

Numbers are exact: the fake's host runs ahead of its device as on hardware, so each test states the
time a correct backend must report, and a backend that skips a synchronization, an event flag, a
stream or a reference gets another number or an error. benchmarks/cuda_mutations.py checks that.
"""

import gc
import weakref

import pytest

from fakes import FakeClock, FakeCuda, FakeRaceError
from latbench.errors import DeviceError
from latbench.timing import prepare
from latbench.timing.cpu import CpuBackend
from latbench.timing.cuda import CaptureError, CudaBackend
from latbench.timing.loop import StopPolicy, measure

MS = 1e-3


def setup(**kw):
    cuda = FakeCuda(FakeClock(), **{k: kw.pop(k) for k in ("graph_launch_s", "flush_s") if k in kw})
    return cuda, CudaBackend(cuda, **kw)


def test_block_is_timed_by_events_with_one_sync_before_and_one_wait_after():
    cuda, backend = setup()
    work = cuda.work(2 * MS)
    syncs = cuda.syncs
    t = backend.time_block(work, 5)
    assert t == pytest.approx(10 * MS)
    assert cuda.syncs - syncs == 2  # device sync before the start event, end-event wait after
    assert cuda.events_recorded == 2


def test_block_after_queued_work_starts_on_an_idle_gpu():
    """The sync before the start event: without it the start marker waits behind queued work while
    the host launches ahead, and the first launch (0.4 ms) disappears from the block."""
    cuda, backend = setup()
    work = cuda.work(1 * MS, launch_s=0.4 * MS)
    work()  # untimed, still running on the device (as the loop's priming call is)
    assert backend.time_block(work, 5) == pytest.approx((0.4 + 5 * 1.0) * MS)


def test_throughput_eager_costs_max_of_launch_and_gpu_time_and_graph_removes_launch():
    cuda, backend = setup(graph_launch_s=0.05 * MS)
    gpu_bound = cuda.work(1.0 * MS, launch_s=0.4 * MS)
    launch_bound = cuda.work(0.4 * MS, launch_s=1.0 * MS)
    per_call = {}
    for name, w in (("gpu", gpu_bound), ("launch", launch_bound)):
        for mode in ("eager", "cudagraph"):
            fn = backend.prepare(w, mode)
            per_call[name, mode] = backend.time_block(fn, 10) / 10 / MS
    assert per_call["gpu", "eager"] == pytest.approx(1.0 + 0.04)  # the host runs ahead: eager ~ graph
    assert per_call["gpu", "cudagraph"] == pytest.approx(1.0 + 0.005)
    assert per_call["launch", "eager"] == pytest.approx(1.0 + 0.04)  # launches are the bottleneck
    assert per_call["launch", "cudagraph"] == pytest.approx(0.4 + 0.005)


def test_single_request_pays_launch_and_gpu_time_per_call():
    cuda, backend = setup(graph_launch_s=0.05 * MS, latency="single")
    work = cuda.work(1.0 * MS, launch_s=0.4 * MS)
    eager, graph = backend.prepare(work, "eager"), backend.prepare(work, "cudagraph")
    syncs = cuda.syncs
    assert backend.time_block(eager, 4) == pytest.approx(4 * 1.4 * MS)
    assert cuda.syncs - syncs == 8  # a sync before and a wait after every call
    work()  # queued work before a single-request block is waited for too
    assert backend.time_block(graph, 4) == pytest.approx(4 * 1.05 * MS)
    assert backend.columns() == {"latency_semantics": "single", "l2": "warm"}


@pytest.mark.parametrize("latency", ["throughput", "single"])
def test_l2_flushed_makes_every_call_cold_and_leaves_the_flush_untimed(latency):
    cuda = FakeCuda(FakeClock(), flush_s=2 * MS)
    work = cuda.work(1.0 * MS, cold_s=0.3 * MS)
    warm = CudaBackend(cuda, latency=latency)
    cold = CudaBackend(cuda, latency=latency, l2="flushed", flush=cuda.flush_l2)
    work()
    assert warm.time_block(work, 6) == pytest.approx(6 * 1.0 * MS)
    flushes = cuda.flushes
    assert cold.time_block(work, 6) == pytest.approx(6 * 1.3 * MS)
    assert cuda.flushes - flushes == 6
    assert cold.columns() == {"latency_semantics": latency, "l2": "flushed"}


def test_unknown_latency_or_l2_is_a_user_error():
    with pytest.raises(DeviceError, match="latency.*throughput, single"):
        CudaBackend(FakeCuda(FakeClock()), latency="p99")
    with pytest.raises(DeviceError, match="l2.*warm, flushed"):
        CudaBackend(FakeCuda(FakeClock()), l2="cold")
    with pytest.raises(DeviceError, match="latency"):
        CpuBackend(latency="batch")
    with pytest.raises(DeviceError, match="needs a CUDA device"):
        CpuBackend(l2="flushed")


def test_cpu_single_request_reads_the_clock_around_each_call():
    clock = FakeClock(read_ns=100)
    from fakes import FakeWork

    work = FakeWork(clock, 1 * MS)
    assert CpuBackend(clock).time_block(work, 10) == pytest.approx(10 * MS + 100e-9)
    single = CpuBackend(clock, latency="single")
    assert single.time_block(work, 10) == pytest.approx(10 * (MS + 100e-9))
    assert single.columns() == {"latency_semantics": "single", "l2": "warm"} and single.release() == 0


def test_graph_only_group_keeps_model_and_input_alive():
    """Item 1: with mode cudagraph alone nothing else holds the callable; the graph must."""
    cuda, backend = setup()
    work = cuda.work(1 * MS)
    alive = weakref.ref(work)
    graph = backend.prepare(work, "cudagraph")
    del work
    gc.collect()
    assert alive() is not None
    assert backend.time_block(graph, 3) == pytest.approx(3 * MS)


def test_release_drops_graphs_and_frees_their_pools():
    """Item 3: each capture owns a private pool; release() after a group hands them all back."""
    cuda, backend = setup()
    works = [cuda.work(1 * MS) for _ in range(3)]
    graphs = [backend.prepare(w, "cudagraph") for w in works]
    assert cuda.pools_alive == 3 and len(backend.graphs) == 3
    alive = weakref.ref(works[0])
    del works
    assert backend.release() == 3
    gc.collect()
    assert cuda.pools_alive == 0 and backend.graphs == [] and alive() is None
    with pytest.raises(RuntimeError, match="released"):
        graphs[0]()


def test_capture_runs_after_a_side_stream_warm_up_that_absorbs_autotuning():
    cuda, backend = setup()
    work = cuda.work(1 * MS, autotune_calls=3)
    graph = backend.prepare(work, "cudagraph")
    assert work.calls == 3 + 1 and graph.graph.replays == 1  # warm-up, capture, one checked replay
    assert cuda.current_stream() is cuda.default  # the side stream is left


def test_a_model_that_cannot_be_captured_raises_capture_error_and_is_skipped():
    cuda, backend = setup()
    with pytest.raises(CaptureError, match="cannot be captured"):
        backend.prepare(cuda.work(1 * MS, capturable=False), "cudagraph")

    class Refusing:
        modes = ("eager", "cudagraph")

        def prepare(self, fn, mode):
            raise CaptureError("cannot be captured as a CUDA graph: synchronizing op")

    import torch

    prep = prepare._mode(torch.nn.Identity(), torch.zeros(1), "cudagraph", "cuda", Refusing())
    assert prep.fn is None and prep.error is None and "cannot be captured" in prep.skip


def test_bf16_skip_ignores_emulation(monkeypatch):
    """Item 8: is_bf16_supported() is True on pre-Ampere GPUs by emulation; only native bf16 counts."""
    import torch

    from latbench.devices import CudaDevice

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert "bfloat16" in CudaDevice().dtype_skip("bfloat16")
    assert CudaDevice().dtype_skip("float32") is None


def test_prepare_case_asks_the_device_object_what_it_cannot_run():
    """prepare_case takes the Device (not its name): its dtype_skip decides, no device branch in timing/."""
    from latbench.records import CaseSpec

    class NoHalf:
        name = "cpu"

        def dtype_skip(self, dtype):
            return "no float16 here (test)" if dtype == "float16" else None

    spec = CaseSpec(suite="s", experiment="E", case="c", scale=1, builder="nope", params=(), blocks=1, batch=1,
                    height=8, width=8, baseline_case="c", dtype="float16")
    out = prepare.prepare_case(spec, ("eager",), NoHalf(), CpuBackend(), 0, build=None)
    assert out["eager"].skip == "no float16 here (test)" and out["eager"].fn is None


def test_measure_on_the_fake_gpu_interleaves_eager_and_graph():
    cuda, backend = setup(graph_launch_s=0.01 * MS)
    work = cuda.work(0.4 * MS, launch_s=1.0 * MS)
    items = [("eager", backend.prepare(work, "eager")), ("graph", backend.prepare(work, "cudagraph"))]
    policy = StopPolicy(warmup_s=0.01, warmup_min_iters=10, block_s=0.01, min_rounds=5, max_rounds=5)
    done, failed = measure(items, backend, policy)
    assert not failed
    assert min(done["graph"].samples_s) < 0.5 * min(done["eager"].samples_s)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        CudaBackend(FakeCuda(FakeClock())).prepare(lambda: None, "compile")


# --- the fake itself refuses what hardware refuses (else the tests above prove nothing) ---

def test_fake_events_refuse_elapsed_time_without_timing_recording_or_completion():
    cuda = FakeCuda(FakeClock())
    work = cuda.work(1 * MS)
    plain, a, b = cuda.Event(), cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
    with pytest.raises(RuntimeError, match="recorded"):
        a.elapsed_time(b)
    plain.record(), a.record(), work(), b.record()
    with pytest.raises(RuntimeError, match="enable_timing"):
        plain.elapsed_time(b)
    with pytest.raises(RuntimeError, match="not ready"):
        a.elapsed_time(b)
    b.synchronize()
    assert a.elapsed_time(b) == pytest.approx(1.0)


def test_fake_refuses_unordered_streams_and_capture_on_the_default_stream():
    cuda = FakeCuda(FakeClock())
    work = cuda.work(1 * MS)  # its upload is queued on the default stream
    side = cuda.Stream()
    with cuda.stream(side), pytest.raises(FakeRaceError):
        work()
    side.wait_stream(cuda.default)
    with cuda.stream(side):
        work()
    with pytest.raises(FakeRaceError):
        work()  # back on the default stream, not ordered after the side stream
    with pytest.raises(RuntimeError, match="non-default stream"):
        with cuda.graph(cuda.CUDAGraph(), stream=cuda.default):
            pass


def test_gpu_acceptance_exits_2_with_one_line_without_cuda(monkeypatch, capsys):
    import torch

    from benchmarks import gpu_acceptance

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_acceptance.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no CUDA device" in err and "GPU" in err


def test_kernel_count_excludes_memcpy_memset_and_the_marker_range():
    """Item 8: the profiler lists copies, memsets and the record_function range on the GPU timeline
    too; only kernels count (one forward here: 3 kernels, 1 memcpy, 1 memset, 1 marker range)."""
    from types import SimpleNamespace

    import torch

    from latbench import opbreakdown
    from latbench.devices import CudaDevice

    cuda = torch.autograd.DeviceType.CUDA
    marker = SimpleNamespace(name=opbreakdown._MARKER, cpu_parent=None, device_type=torch.autograd.DeviceType.CPU)
    conv = SimpleNamespace(name="aten::convolution", cpu_parent=marker, cpu_children=[], device_time_total=2.0,
                           device_type=torch.autograd.DeviceType.CPU)

    def dev_event(name, activity, annotation=False):
        return SimpleNamespace(name=name, cpu_parent=None, device_type=cuda, activity_type=activity,
                               is_user_annotation=annotation)

    events = [marker, conv, dev_event("sm80_xmma_fprop", "kernel"), dev_event("vectorized_elementwise", "kernel"),
              dev_event("void at::native::reduce_kernel", "kernel"),
              dev_event("Memcpy HtoD (Pageable -> Device)", "gpu_memcpy"), dev_event("Memset (Device)", "gpu_memset"),
              dev_event(opbreakdown._MARKER, "gpu_user_annotation", annotation=True)]
    assert opbreakdown.breakdown(events, CudaDevice(), 1)["op_count_per_forward"] == 3
    # without the activity type (older torch): the names still tell
    bare = [SimpleNamespace(name=e.name, cpu_parent=e.cpu_parent, device_type=e.device_type) for e in events[2:]]
    assert CudaDevice().kernel_count(bare) == 3 + 1  # the marker range is dropped by breakdown(), not here
    assert opbreakdown.breakdown([marker, conv, *bare], CudaDevice(), 1)["op_count_per_forward"] == 3


# --- issue 23: what a GPU would punish, on a fake that models it ----------------------------------

def test_the_start_event_is_recorded_after_the_sync_so_the_hosts_wake_up_is_not_timed():
    """A real host wakes some microseconds after the GPU drains (sync_wake_s). A start event recorded
    before the synchronize sits at the end of the queued work, and the block then times the wake-up."""
    cuda = FakeCuda(FakeClock(), sync_wake_s=0.05 * MS)
    backend = CudaBackend(cuda)
    work = cuda.work(1 * MS, launch_s=0.4 * MS)
    work()  # still running on the device
    assert backend.time_block(work, 5) == pytest.approx((0.4 + 5 * 1.0) * MS)


def _flushed(latency, **kw):
    """A backend with the real flusher (2x L2 buffer, zero_ on the current stream) driven through the fake."""
    cuda = FakeCuda(FakeClock(), flush_s=2 * MS, l2_bytes=96 << 20, **kw)
    return cuda, CudaBackend(cuda, latency=latency, l2="flushed", alloc=cuda.alloc)


def test_the_real_flusher_writes_twice_the_l2_on_the_current_stream():
    cuda, backend = _flushed("throughput")
    [buf] = cuda.buffers
    assert buf.nbytes == 2 * (96 << 20) >= cuda.l2_bytes
    small = FakeCuda(FakeClock(), l2_bytes=8 << 20)
    CudaBackend(small, l2="flushed", alloc=small.alloc)
    assert small.buffers[0].nbytes == 64 << 20  # at least 64 MiB


@pytest.mark.parametrize("latency, per_call_ms", [
    ("throughput", 1.0 + 0.3),  # the flush (2 ms, queued ahead) hides the 0.4 ms launch: GPU time from cold
    ("single", 0.4 + 1.0 + 0.3),  # flush, sync, then the call alone: it pays its launch
])
def test_flushed_calls_start_cold_behind_an_ordered_flush(latency, per_call_ms):
    """The flush runs on the current stream before each start event and evicts the whole L2: a flush
    on its own (unordered) stream overlaps the call, a buffer smaller than the L2 leaves it warm, and
    a flush queued after the single-request sync hides the launch: each gives another number."""
    cuda, backend = _flushed(latency)
    work = cuda.work(1.0 * MS, launch_s=0.4 * MS, cold_s=0.3 * MS)
    work()
    flushes = cuda.flushes
    assert backend.time_block(work, 6) == pytest.approx(6 * per_call_ms * MS)
    assert cuda.flushes - flushes == 6 and cuda.current_stream() is cuda.default


def test_flushed_blocks_read_their_own_event_pairs_only():
    cuda, backend = _flushed("throughput")
    work = cuda.work(1.0 * MS, launch_s=0.1 * MS, cold_s=0.3 * MS)
    assert backend.time_block(work, 10) == pytest.approx(10 * 1.3 * MS)
    other = cuda.work(0.5 * MS, launch_s=0.1 * MS, cold_s=0.1 * MS)
    assert backend.time_block(other, 3) == pytest.approx(3 * 0.6 * MS)  # 3 pairs read, not the pool's 10
    assert backend.time_block(work, 6) == pytest.approx(6 * 1.3 * MS)


def test_flushed_mode_keeps_wall_time_within_max_time_and_its_event_pairs_bounded():
    """Each timed call costs a flush besides: timing every call of every block (the loop sizes blocks
    by the calls' time) ran ~(flush + call) / call times --max-time, with one event pair per call of
    the largest warm-up block. Now a block times as many calls as fit, and pairs come from a pool."""
    from latbench.timing.cuda import FLUSH_PAIRS

    cuda, backend = _flushed("throughput")
    work = cuda.work(0.1 * MS, launch_s=0.01 * MS, cold_s=0.02 * MS, noise=0.01)
    policy = StopPolicy(warmup_s=0.02, warmup_min_iters=3, block_s=0.005, min_rounds=3, max_rounds=10_000,
                        min_time_s=0.0, max_time_s=0.1, rel_ci=1e-9)
    t0 = cuda.clock.now_s
    done, failed = measure([("w", work)], backend, policy)
    wall = cuda.clock.now_s - t0
    m = done["w"]
    assert not failed and m.stop_reason == "max_time"
    assert sorted(m.samples_s)[len(m.samples_s) // 2] == pytest.approx(0.12 * MS, rel=0.05)  # the cold call
    assert wall < 1.5 * (policy.warmup_s + policy.max_time_s)  # was ~17x: a 2 ms flush per 0.12 ms call
    assert cuda.events_created <= 2 * FLUSH_PAIRS + 2


def test_a_failed_capture_restores_the_stream_and_keeps_the_first_error():
    """torch.cuda.graph.__exit__ skips its stream restore when capture_end raises, and capture_end's
    own error is 'operation failed due to a previous error during capture': the reason must be the
    first error, the current stream the one before, and the half-made graph's pool freed."""
    cuda, backend = setup()
    with pytest.raises(CaptureError) as info:
        backend.prepare(cuda.work(1 * MS, capturable=False), "cudagraph")
    assert "synchronizing op" in str(info.value) and "previous error" not in str(info.value)
    assert cuda.current_stream() is cuda.default
    gc.collect()
    assert cuda.pools_alive == 0
    work = cuda.work(1 * MS)  # the next case captures and times on the default stream as usual
    graph = backend.prepare(work, "cudagraph")
    assert backend.time_block(graph, 2) == pytest.approx(2 * MS)


def test_out_of_memory_while_capturing_fails_the_case_instead_of_skipping_it():
    """The allocator's free-and-retry synchronizes, which invalidates the capture: capture_end raises
    the generic error, and an out-of-memory read as 'cannot be captured' became a skip."""
    import torch

    from latbench.faults import is_oom

    cuda, backend = setup()
    with pytest.raises(RuntimeError) as info:
        backend.prepare(cuda.work(1 * MS, fail_after=3), "cudagraph")  # 3 warm-up calls, then the capture
    assert is_oom(info.value) and not isinstance(info.value, CaptureError)
    assert cuda.current_stream() is cuda.default

    class Backend:
        modes = ("eager", "cudagraph")

        def prepare(self, fn, mode):
            return backend.prepare(cuda.work(1 * MS, fail_after=3), mode)

    prep = prepare._mode(torch.nn.Identity(), torch.zeros(1), "cudagraph", "cuda", Backend())
    assert prep.skip is None and prep.fn is None and prep.error.startswith("out of memory")


def test_a_long_flushed_block_reuses_a_bounded_pool_of_event_pairs():
    from latbench.timing.cuda import FLUSH_PAIRS

    cuda, backend = _flushed("throughput")
    work = cuda.work(0.1 * MS, cold_s=0.02 * MS)
    created = cuda.events_created
    assert backend.time_block(work, 3 * FLUSH_PAIRS + 5) == pytest.approx((3 * FLUSH_PAIRS + 5) * 0.12 * MS)
    assert cuda.events_created - created <= 2 * FLUSH_PAIRS
