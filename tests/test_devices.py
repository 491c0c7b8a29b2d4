"""The device object: chosen once (devices.get), asked instead of `device == "cuda"` everywhere."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from latbench import devices, opbreakdown
from latbench.devices import CpuDevice, CudaDevice
from latbench.run import options, pipeline
from latbench.timing.fake import FakeBackend
from latbench.errors import DeviceError
from latbench.records import CaseSpec
from latbench.timing.cpu import CpuBackend


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_get_cpu_configures_threads_and_records_settings(keep_threads, monkeypatch):
    monkeypatch.delenv(devices.FAKE_ENV, raising=False)
    dev = devices.get("cpu", 2)
    assert isinstance(dev, CpuDevice) and dev.name == "cpu" and str(dev) == "cpu"
    assert dev.threads == 2 == torch.get_num_threads()
    assert isinstance(dev.backend, CpuBackend) and dev.settings["backend"] == "cpu:perf_counter_ns"
    assert dev.settings["torch_num_threads"] == 2 and "timer_overhead_ns" in dev.settings
    assert dev.default_platform == "arm" and options.stop_policy(dev.name) == options.CPU_POLICY


def test_the_default_platform_of_a_name_touches_no_torch_setting(keep_threads):
    torch.set_num_threads(1)
    assert devices.default_platform("cuda") == "gpu" and devices.default_platform("cpu") == "arm"
    assert torch.get_num_threads() == 1
    assert options.stop_policy("cuda") == options.CUDA_POLICY


@pytest.mark.parametrize("call, expected", [
    (lambda: devices.get("tpu", None), "unknown device 'tpu'"),
    (lambda: devices.default_platform("tpu"), "unknown device 'tpu'"),
    (lambda: devices.get("cuda", None, fake=True), "LATBENCH_FAKE_BACKEND times on the CPU only"),
])
def test_bad_device_is_a_device_error_with_a_fix(call, expected):
    with pytest.raises(DeviceError, match=expected) as info:
        call()
    assert info.value.hint


def test_cuda_without_a_gpu_is_a_device_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="no CUDA device is available"):
        devices.get("cuda", None)


def test_fake_backend_from_the_environment(keep_threads, monkeypatch):
    monkeypatch.setenv(devices.FAKE_ENV, "1")
    dev = devices.get("cpu", 1)
    assert isinstance(dev.backend, FakeBackend) and dev.settings["backend"].startswith("cpu:fake")
    monkeypatch.setenv(devices.FAKE_ENV, "0")
    assert isinstance(devices.get("cpu", 1).backend, CpuBackend)


def test_fake_backend_calls_once_per_block_and_scales_the_time():
    reads = iter([0, 2_000_000])  # ns: the one call took 2 ms
    calls = []
    backend = FakeBackend(clock=lambda: next(reads))
    t = backend.time_block(lambda: calls.append(1), 50)
    assert calls == [1] and t == pytest.approx(50 * 2e-3)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        backend.prepare(lambda: None, "cudagraph")


def test_out_of_memory_frees_device_memory_on_cuda_only(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
    assert CpuDevice().error_text(oom).startswith("out of memory") and emptied == []
    assert CudaDevice().error_text(oom).startswith("out of memory") and emptied == [1]
    assert CudaDevice().error_text(ValueError("x")) == "ValueError: x" and emptied == [1]


def test_dtype_support(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert "compute capability 8.0" in CudaDevice().dtype_skip("bfloat16")
    assert CudaDevice().dtype_skip("float16") is None and CpuDevice().dtype_skip("bfloat16") is None


def test_profiler_view_per_device():
    from torch.profiler import ProfilerActivity

    assert CpuDevice().profiler_activities() == [ProfilerActivity.CPU]
    assert CudaDevice().profiler_activities() == [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    kernel = SimpleNamespace(device_type=torch.autograd.DeviceType.CUDA)
    host = SimpleNamespace(device_type=torch.autograd.DeviceType.CPU)
    assert CudaDevice().kernel_count([kernel, host, kernel]) == 2 and CpuDevice().kernel_count([kernel]) is None
    e = SimpleNamespace(cpu_time_total=3.0, device_time_total=5.0)
    assert CpuDevice().op_time(e) == 3.0 and CudaDevice().op_time(e) == 5.0


def test_breakdown_counts_kernels_on_cuda_and_ops_on_cpu():
    marker = SimpleNamespace(name=opbreakdown._MARKER)
    conv = SimpleNamespace(name="aten::convolution", cpu_parent=marker, cpu_children=[], cpu_time_total=6.0,
                           device_time_total=2.0, device_type=torch.autograd.DeviceType.CPU)
    relu = SimpleNamespace(name="aten::relu", cpu_parent=marker, cpu_children=[], cpu_time_total=2.0,
                           device_time_total=2.0, device_type=torch.autograd.DeviceType.CPU)
    kernels = [SimpleNamespace(name="k", cpu_parent=None, device_type=torch.autograd.DeviceType.CUDA)] * 6
    events = [conv, relu, *kernels]
    cpu = opbreakdown.breakdown(events, CpuDevice(), 1)
    assert cpu == {"op_count_per_forward": 2, "zero_flop_time_pct": 25.0}
    cuda = opbreakdown.breakdown(events, CudaDevice(), 2)
    assert cuda == {"op_count_per_forward": 3, "zero_flop_time_pct": 50.0}


def test_telemetry_handle_and_titles(monkeypatch):
    import latbench.env

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(uuid="bbbb-2"))
    monkeypatch.setattr(latbench.env, "gpus", lambda: [{"index": 0, "uuid": "GPU-aaaa-1"},
                                                       {"index": 1, "uuid": "GPU-bbbb-2"}])
    assert CpuDevice().telemetry_gpu_index() is None and CudaDevice().telemetry_gpu_index() == 1
    fp = {"cpu_model": "Some CPU"}
    assert CpuDevice().model_name(fp) == "Some CPU"
    assert CudaDevice(settings={"cuda_device_name": "Some GPU"}).model_name(fp) == "Some GPU"


@pytest.mark.parametrize("uuid, visible, expected", [
    ("bbbb-2", None, 1),  # by UUID: CUDA's device 0 is NVML's 1 (CUDA_VISIBLE_DEVICES=1, or another order)
    (None, "2,3", 2),  # no UUID: through CUDA_VISIBLE_DEVICES
    (None, "GPU-bbbb-2", 0),  # UUIDs there but not in NVML: the CUDA index
    ("cccc", None, None),  # a UUID NVML's list lacks (a MIG instance): no index, never NVML's GPU 0
    ("MIG-bbbb-2", "MIG-bbbb-2", 1),  # prefixes do not matter
])
def test_nvml_index_of_the_gpu_in_use(uuid, visible, expected):
    """Regression: telemetry read NVML's GPU 0 while the run used CUDA_VISIBLE_DEVICES=1 (another GPU)."""
    nvml = [{"index": 0, "uuid": "GPU-aaaa-1"}, {"index": 1, "uuid": "GPU-bbbb-2"}]
    assert devices.nvml_index(0, uuid, nvml, visible) == expected


def test_roofline_probe_sizes_come_from_the_device():
    assert CudaDevice().gemm_size() == 4096 and CpuDevice().gemm_size() in (512, 1024)
    assert max(CudaDevice.copy_sizes) > max(CpuDevice.copy_sizes)


class RecordingCpu(CpuDevice):
    """A CPU that remembers what the pipeline asked of it."""

    def __init__(self):
        super().__init__(backend=FakeBackend(), threads=1)
        self.resets = 0

    def reset_memory(self) -> None:
        self.resets += 1


def test_the_pipeline_asks_the_device_not_its_name():
    spec = CaseSpec(suite="t", experiment="T", case="a", builder="g2_group_conv", params=(("c", 8), ("groups", 1)),
                    blocks=1, batch=1, height=8, width=8, scale=1, baseline_case="a")
    dev = RecordingCpu()
    cfg = pipeline.RunConfig(device=dev, run_id="r", policy=options.QUICK_POLICY)
    rows, samples = pipeline.run_group([spec], cfg)
    assert dev.resets == 1  # memory reset after the group, asked of the device
    assert rows[0].status == "ok" and rows[0].device == "cpu" and samples[0]["device"] == "cpu"
