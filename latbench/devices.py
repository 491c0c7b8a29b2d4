"""The device a run measures on, chosen once at the edge: `get(name, threads, cudnn_benchmark)`.

Everything that differs between devices is a method or attribute of the device object, so no other
module asks `device == "cuda"`: synchronization, memory reset and out-of-memory handling, profiler
activities, dtype support (skip reasons), the telemetry handle (which GPU), what the roofline
probe needs (sizes, synchronize), the settings recorded in metadata, and the name shown in titles.
Timing itself stays in the backend (latbench/timing), which the device carries.

The device's default stop rule lives with every other stop rule (run/options.py).
LATBENCH_FAKE_BACKEND=1 (or `get(..., fake=True)`) times on the CPU with latbench.timing.fake's
FakeBackend: one real call per block, scaled to the block, so CLI tests run the whole pipeline in a
fraction of the time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch

from latbench import faults
from latbench.errors import DeviceError
from latbench.timing.backend import TimingBackend
from latbench.timing.cpu import CpuBackend
from latbench.timing.cuda import CudaBackend

FAKE_ENV = "LATBENCH_FAKE_BACKEND"  # "1": time with FakeBackend (tests, dry runs); results are not latencies


class Device(Protocol):
    name: str  # "cpu", "cuda": the results' device column and torch's device string
    default_platform: str  # whose paper widths to use by default ("arm", "gpu")
    copy_sizes: tuple[int, ...]  # buffer sizes (bytes) of the roofline bandwidth probe
    backend: TimingBackend | None
    threads: int | None
    settings: dict[str, Any]

    def synchronize(self) -> None: ...
    def reset_memory(self) -> None: ...
    def error_text(self, exc: BaseException) -> str: ...
    def dtype_skip(self, dtype: str) -> str | None: ...
    def profiler_activities(self) -> list[Any]: ...
    def kernel_count(self, events: Any) -> int | None: ...
    def op_time(self, event: Any) -> float: ...
    def telemetry_gpu_index(self) -> int | None: ...
    def telemetry_gpu_uuid(self) -> str | None: ...
    def math_mode(self, dtype: str) -> str: ...
    def model_name(self, fingerprint: dict[str, Any]) -> str: ...
    def gemm_size(self) -> int: ...


@dataclass
class _Base:
    backend: TimingBackend | None = None
    threads: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # recorded in metadata ("device_settings")

    name: ClassVar[str] = "?"

    def __str__(self) -> str:
        return self.name

    @classmethod
    def configure(cls, threads: int | None, cudnn_benchmark: bool, fake: bool, latency: str = "throughput",
                  l2: str = "warm") -> "_Base":
        """Set torch up for timing on this device; the device with its backend (timing `latency`
        semantics with the L2 `l2`, latbench/timing/cuda.py) and settings."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait until work queued on the device is done (the CPU runs synchronously)."""

    def reset_memory(self) -> None:
        """Hand cached memory back after a group (nothing to do on the CPU)."""

    def error_text(self, exc: BaseException) -> str:
        """The row's error text for a failed case; after an out-of-memory, free what can be freed."""
        if faults.is_oom(exc):
            self.reset_memory()
        return faults.describe(exc)

    def dtype_skip(self, dtype: str) -> str | None:
        """A reason this device cannot run `dtype` at all, known without trying."""
        return None

    def profiler_activities(self) -> list[Any]:
        from torch.profiler import ProfilerActivity

        return [ProfilerActivity.CPU]

    def kernel_count(self, events: Any) -> int | None:
        """Device kernels among profiler events; None where ops are the unit (CPU)."""
        return None

    def op_time(self, event: Any) -> float:
        """A profiler event's time on this device."""
        return float(event.cpu_time_total)

    def telemetry_gpu_index(self) -> int | None:
        return None

    def telemetry_gpu_uuid(self) -> str | None:
        """The UUID of the GPU in use, as NVML writes it ('GPU-...'); None on the CPU."""
        return None

    def math_mode(self, dtype: str) -> str:
        """The math mode `dtype`'s convs run at, which picks the roofline ceiling: float32 "ieee" (the
        CPU has no TF32), "" for the half types (one mode each)."""
        return "ieee" if dtype == "float32" else ""

    def model_name(self, fingerprint: dict[str, Any]) -> str:
        return str(fingerprint.get("cpu_model"))

    def gemm_size(self) -> int:
        """n of the roofline GEMM probe (n x n); with copy_sizes and synchronize, what roofline.py asks."""
        return 512 if torch.get_num_threads() == 1 else 1024


@dataclass
class CpuDevice(_Base):
    name: ClassVar[str] = "cpu"
    default_platform: ClassVar[str] = "arm"
    copy_sizes: ClassVar[tuple[int, ...]] = (4 << 20, 64 << 20)  # roofline copy probe: in cache, in DRAM

    @classmethod
    def configure(cls, threads: int | None, cudnn_benchmark: bool, fake: bool, latency: str = "throughput",
                  l2: str = "warm") -> "CpuDevice":
        """torch set up for CPU timing: `threads` intra-op threads (default 1, as the paper's ARM runs)."""
        cpu = CpuBackend(latency=latency, l2=l2)  # DeviceError for l2="flushed": no L2 flush on the CPU
        torch.set_num_threads(threads or 1)
        backend: TimingBackend = cpu
        if fake:
            from latbench.timing.fake import FakeBackend

            backend = FakeBackend(latency=latency, l2=l2)
        return cls(backend=backend,
                   settings={"timer_overhead_ns": round(cpu.timer_overhead_s() * 1e9, 1),
                             "mkldnn_enabled": torch.backends.mkldnn.enabled})


@dataclass
class CudaDevice(_Base):
    name: ClassVar[str] = "cuda"
    default_platform: ClassVar[str] = "gpu"
    copy_sizes: ClassVar[tuple[int, ...]] = (4 << 20, 256 << 20)  # in L2, in HBM/GDDR

    @classmethod
    def configure(cls, threads: int | None, cudnn_benchmark: bool, fake: bool, latency: str = "throughput",
                  l2: str = "warm") -> "CudaDevice":
        """torch set up for GPU timing (cuDNN autotuning as asked); DeviceError without a GPU."""
        if fake:
            raise DeviceError(f"{FAKE_ENV} times on the CPU only, but --device cuda was asked for",
                              hint=f"unset {FAKE_ENV}, or run with --device cpu")
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for, but no CUDA device is available "
                              f"(torch {torch.__version__}, built with CUDA {torch.version.cuda or 'none'})",
                              hint="run with --device cpu, or install a CUDA build of torch on a machine with a GPU")
        torch.backends.cudnn.benchmark = cudnn_benchmark
        if threads:
            torch.set_num_threads(threads)
        return cls(backend=CudaBackend(latency=latency, l2=l2), settings={
            "cuda_device_name": torch.cuda.get_device_name(),
            "cuda_capability": ".".join(map(str, torch.cuda.get_device_capability())),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        })

    def synchronize(self) -> None:
        torch.cuda.synchronize()

    def reset_memory(self) -> None:
        torch.cuda.empty_cache()

    def dtype_skip(self, dtype: str) -> str | None:
        # including_emulation=False: bf16 emulated on pre-Ampere GPUs is not a bf16 measurement
        if dtype == "bfloat16" and not torch.cuda.is_bf16_supported(including_emulation=False):
            return "bfloat16 is not supported on this GPU (needs compute capability 8.0+)"
        return None

    def profiler_activities(self) -> list[Any]:
        from torch.profiler import ProfilerActivity

        return [ProfilerActivity.CPU, ProfilerActivity.CUDA]

    def kernel_count(self, events: Any) -> int | None:
        """Kernels launched: CUDA events that are not copies, memsets or annotations (issue 13 item 8)."""
        return sum(1 for e in events if is_kernel(e))

    def op_time(self, event: Any) -> float:
        return float(getattr(event, "device_time_total", 0.0))

    def telemetry_gpu_index(self) -> int | None:
        """The NVML index of the GPU in use (CUDA's numbering differs under CUDA_VISIBLE_DEVICES)."""
        from latbench.env import gpus

        index = torch.cuda.current_device()
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        return nvml_index(index, str(uuid) if uuid is not None else None, gpus(),
                          os.environ.get("CUDA_VISIBLE_DEVICES"))

    def math_mode(self, dtype: str) -> str:
        """float32 convs run in TF32 when cuDNN allows it (its default) and matmuls when matmul allows it:
        either makes TF32 the ceiling float32 rows can reach."""
        if dtype != "float32":
            return ""
        tf32 = torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32
        return "tf32" if tf32 else "ieee"

    def telemetry_gpu_uuid(self) -> str | None:
        """torch's UUID of the current device (what NVML's handle is looked up by), as 'GPU-...'."""
        uuid = getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "uuid", None)
        if uuid is None or not str(uuid):
            return None
        text = str(uuid)
        return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"

    def model_name(self, fingerprint: dict[str, Any]) -> str:
        return str(self.settings.get("cuda_device_name") or torch.cuda.get_device_name())

    def gemm_size(self) -> int:
        return 4096


# Kineto activity types of device events that are not kernels the model launched.
NOT_KERNEL_ACTIVITIES = frozenset({"gpu_memcpy", "gpu_memset", "gpu_user_annotation", "user_annotation"})


def is_kernel(event: Any) -> bool:
    """A profiler event is a CUDA kernel: on the device, and not a memcpy/memset (which the profiler
    also lists on the device, named 'Memcpy HtoD ...', 'Memset (Device)') nor a record_function range
    (shown again on the GPU timeline as a user annotation)."""
    if getattr(event, "device_type", None) != torch.autograd.DeviceType.CUDA:
        return False
    if getattr(event, "is_user_annotation", False) or getattr(event, "activity_type", None) in NOT_KERNEL_ACTIVITIES:
        return False
    return not str(getattr(event, "name", "")).lower().startswith(("memcpy", "memset"))


def nvml_index(cuda_index: int, cuda_uuid: str | None, nvml_gpus: list[dict[str, Any]],
               visible: str | None) -> int:
    """NVML's index of CUDA device `cuda_index`: by UUID when NVML lists it, else through
    CUDA_VISIBLE_DEVICES when that holds indices, else the CUDA index itself."""
    if cuda_uuid:
        want = cuda_uuid.removeprefix("GPU-").lower()
        for g in nvml_gpus:
            if str(g.get("uuid") or "").removeprefix("GPU-").lower() == want:
                return int(g["index"])
    entries = [v.strip() for v in (visible or "").split(",") if v.strip()]
    if cuda_index < len(entries) and entries[cuda_index].isdigit():
        return int(entries[cuda_index])
    return cuda_index


DEVICES: dict[str, type[_Base]] = {"cpu": CpuDevice, "cuda": CudaDevice}


def names() -> tuple[str, ...]:
    return tuple(DEVICES)


def default_platform(name: str) -> str:
    """Whose paper widths a device uses by default ("arm" on cpu, "gpu" on cuda), without configuring torch."""
    try:
        return DEVICES[name].default_platform
    except KeyError:
        raise DeviceError(f"unknown device {name!r}", hint=f"use one of {', '.join(DEVICES)}") from None


def fake_requested() -> bool:
    return os.environ.get(FAKE_ENV, "").strip() not in ("", "0")


def get(name: str, threads: int | None, cudnn_benchmark: bool = True, fake: bool | None = None,
        latency: str = "throughput", l2: str = "warm") -> Device:
    """Configure torch for timing on device `name`; DeviceError (exit 2) when it is not there.

    fake (default: $LATBENCH_FAKE_BACKEND): time with FakeBackend (CPU only).
    latency ("throughput"/"single") and l2 ("warm"/"flushed", cuda only): what the backend measures,
    recorded per row (backend.columns()); DeviceError for a value the device cannot do.
    """
    cls = DEVICES.get(name)
    if cls is None:
        raise DeviceError(f"unknown device {name!r}", hint=f"use one of {', '.join(DEVICES)}")
    dev = cls.configure(threads, cudnn_benchmark, fake_requested() if fake is None else fake, latency, l2)
    dev.settings.update({"torch_num_threads": torch.get_num_threads(),
                         "torch_num_interop_threads": torch.get_num_interop_threads(),
                         "backend": dev.backend.name})
    dev.threads = torch.get_num_threads()
    return dev
