"""CudaBackend's logic on a fake torch.cuda that refuses what a GPU refuses (tests/fakes.py).

Numbers are exact: the fake's host runs ahead of its device as on hardware, so each test states the
time a correct backend must report, and a backend that skips a synchronization, an event flag, a
stream or a reference gets another number or an error. benchmarks/mutate_cuda_backend.py checks that.
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
