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
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch

from latbench import faults
from latbench.errors import DeviceError
from latbench.timing.backend import TimingBackend
from latbench.timing.cpu import CpuBackend
from latbench.timing.cuda import CudaBackend

# CudaDevice.time_calls holds the GPU (torch.cuda._sleep, in clock cycles) while the host queues a
# batch: HOST_LAUNCH_S per call (a torch op's launch from Python takes ~5 us), at most MAX_HOLD_S;
# cycles at HOLD_CYCLES_PER_S (above any GPU's clock, so the hold is never shorter than meant).
HOST_LAUNCH_S = 10e-6
MAX_HOLD_S = 0.02
HOLD_CYCLES_PER_S = 2.5e9

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
    def time_calls(self, fn: Any, calls: int) -> float: ...


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
        """The UUID of the GPU in use as torch reports it (bare, or with a 'GPU-'/'MIG-' prefix); None on
        the CPU. telemetry.gpu_handle tries the prefixes NVML knows (a MIG instance is 'MIG-...')."""
        return None

    def math_mode(self, dtype: str) -> str:
        """The math mode `dtype`'s convs run at, which picks the roofline ceiling: float32 "ieee" (the
        CPU has no TF32), "" for the half types (one mode each)."""
        return "ieee" if dtype == "float32" else ""

    def model_name(self, fingerprint: dict[str, Any]) -> str:
        return str(fingerprint.get("cpu_model"))

    def gemm_size(self) -> int:
        """n of the roofline GEMM probe (n x n); with copy_sizes and time_calls, what roofline.py asks."""
        return 512 if torch.get_num_threads() == 1 else 1024

    def time_calls(self, fn: Any, calls: int) -> float:
        """Seconds `calls` back-to-back calls of fn take on this device (the roofline probes' clock).
        The CPU runs synchronously: the host clock around them."""
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        return time.perf_counter() - t0


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


def _read(get: Any) -> Any:
    """get(), or None when this torch lacks the setting or refuses to read it."""
    try:
        return get()
    except Exception:  # noqa: BLE001 - AttributeError (older torch), RuntimeError (mixed TF32 APIs)
        return None


def float32_math() -> dict[str, str]:
    """What float32 cuDNN convs and cuBLAS matmuls run at: {"conv": "tf32"|"ieee", "matmul": ...}.

    torch >= 2.9 has per-backend, per-op `fp32_precision` settings ("ieee", "tf32", "none" =
    inherit; read back resolved through their parents), and what convs and matmuls run at is
    `torch.backends.cudnn.conv.fp32_precision == "tf32"` and
    `torch.backends.cuda.matmul.fp32_precision == "tf32"` (aten/src/ATen/Context.cpp: allowTF32CuDNN
    with an op, and cuBLAS's float32Precision(CUDA, MATMUL)). Once a user sets them, reading the old
    flags raises ("mix of the legacy and new APIs"), so the new settings are read first; older torch
    has only `torch.backends.cudnn.allow_tf32` and `torch.backends.cuda.matmul.allow_tf32`. Never
    raises: a setting that cannot be read counts as "ieee"."""
    def mode(new: Any, old: Any) -> str:
        value = _read(new)
        if isinstance(value, str):
            return "tf32" if value == "tf32" else "ieee"
        return "tf32" if _read(old) is True else "ieee"

    return {"conv": mode(lambda: torch.backends.cudnn.conv.fp32_precision, lambda: torch.backends.cudnn.allow_tf32),
            "matmul": mode(lambda: torch.backends.cuda.matmul.fp32_precision,
                           lambda: torch.backends.cuda.matmul.allow_tf32)}


def float32_settings() -> dict[str, Any]:
    """The float32 math settings recorded in metadata: what convs and matmuls run at, and the legacy
    flags as torch reads them (None where it refuses, after the fp32_precision API was used)."""
    modes = float32_math()
    return {"cudnn_conv_fp32_math": modes["conv"], "matmul_fp32_math": modes["matmul"],
            "cudnn_allow_tf32": _read(lambda: torch.backends.cudnn.allow_tf32),
            "matmul_allow_tf32": _read(lambda: torch.backends.cuda.matmul.allow_tf32),
            "float32_matmul_precision": _read(torch.get_float32_matmul_precision)}


@dataclass
class CudaDevice(_Base):
    name: ClassVar[str] = "cuda"
    default_platform: ClassVar[str] = "gpu"
    copy_sizes: ClassVar[tuple[int, ...]] = (4 << 20, 256 << 20)  # in L2, in HBM/GDDR
    cuda: Any = field(default=None, repr=False, compare=False)  # torch.cuda (None), or a test's fake

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
            **float32_settings(),
        })

    @property
    def _torch_cuda(self) -> Any:
        return self.cuda if self.cuda is not None else torch.cuda

    def synchronize(self) -> None:
        self._torch_cuda.synchronize()

    def time_calls(self, fn: Any, calls: int) -> float:
        """Seconds of `calls` back-to-back calls on the GPU: CUDA events around the batch on the current
        stream (a host clock and a synchronize add 10-20 us, which swamps a ~1 us L2-resident copy).

        Before the start event the GPU waits (torch.cuda._sleep) about as long as the host takes to
        queue the batch, so the calls run from a full queue: a ~1 us copy is shorter than its launch,
        and a batch launched while the GPU is idle times the launches, not the copies."""
        cuda = self._torch_cuda
        start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
        cuda.synchronize()
        hold = getattr(cuda, "_sleep", None)
        if hold is not None:
            hold(int(min(calls * HOST_LAUNCH_S, MAX_HOLD_S) * HOLD_CYCLES_PER_S))
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e-3

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
        """The NVML index of the GPU in use (CUDA's numbering differs under CUDA_VISIBLE_DEVICES); None
        when torch gives a UUID that NVML's GPU list lacks (a MIG instance: telemetry finds it by UUID)."""
        from latbench.env import gpus

        cuda = self._torch_cuda
        index = cuda.current_device()
        return nvml_index(index, self.telemetry_gpu_uuid(), gpus(), os.environ.get("CUDA_VISIBLE_DEVICES"))

    def math_mode(self, dtype: str) -> str:
        """The math mode float32 rows are held to: "tf32" only when both cuDNN convs and cuBLAS matmuls
        run TF32, else "ieee".

        A row's FLOPs are not split by op, so with torch's defaults (cuDNN convs TF32, matmuls IEEE) a
        Linear-heavy model would be held to a TF32 peak its matmuls never reach. When the two differ the
        row is held to the IEEE ceiling, the precision every float32 op reaches; a conv-heavy row may
        then read above 100 % and is warned, not clamped (README, CUDA section). Read through
        float32_math(): torch >= 2.9's fp32_precision settings, else the allow_tf32 flags."""
        if dtype != "float32":
            return ""
        modes = float32_math()
        return "tf32" if modes["conv"] == modes["matmul"] == "tf32" else "ieee"

    def telemetry_gpu_uuid(self) -> str | None:
        """torch's UUID of the current device as torch writes it: bare ('6f2a...'), or already prefixed
        'GPU-'/'MIG-'. Not prefixed here: a bare UUID may be a MIG instance's ('MIG-...' to NVML), so
        telemetry.gpu_handle tries both prefixes."""
        cuda = self._torch_cuda
        uuid = getattr(cuda.get_device_properties(cuda.current_device()), "uuid", None)
        text = str(uuid).strip() if uuid is not None else ""
        return text or None

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
               visible: str | None) -> int | None:
    """NVML's index of CUDA device `cuda_index`: by UUID when NVML lists it; None when a UUID was given
    and NVML's GPU list lacks it (a MIG instance, whose handle only its UUID finds; or a GPU NVML does
    not show): never another GPU's index. Without a UUID: through CUDA_VISIBLE_DEVICES when that holds
    indices, else the CUDA index itself."""
    from latbench.telemetry import bare_uuid

    if cuda_uuid:
        want = bare_uuid(cuda_uuid)
        for g in nvml_gpus:
            if bare_uuid(g.get("uuid")) == want:
                return int(g["index"])
        return None
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
