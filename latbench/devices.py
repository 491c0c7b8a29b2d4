"""Pick and configure the device at the edge: thread count, cuDNN flags, and the timing backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from latbench.errors import DeviceError
from latbench.timing.backend import TimingBackend
from latbench.timing.cpu import CpuBackend
from latbench.timing.cuda import CudaBackend


@dataclass
class DeviceSetup:
    device: str
    backend: TimingBackend
    threads: int
    settings: dict[str, Any] = field(default_factory=dict)  # recorded in metadata


def setup(device: str, threads: int | None, cudnn_benchmark: bool = True) -> DeviceSetup:
    """Configure torch for timing on `device`; DeviceError (exit 2) when it is not there."""
    if device == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for, but no CUDA device is available "
                              f"(torch {torch.__version__}, built with CUDA {torch.version.cuda or 'none'})",
                              hint="run with --device cpu, or install a CUDA build of torch on a machine with a GPU")
        torch.backends.cudnn.benchmark = cudnn_benchmark
        if threads:
            torch.set_num_threads(threads)
        backend: TimingBackend = CudaBackend()
        settings = {
            "cuda_device_name": torch.cuda.get_device_name(),
            "cuda_capability": ".".join(map(str, torch.cuda.get_device_capability())),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        }
    elif device == "cpu":
        torch.set_num_threads(threads or 1)
        cpu = CpuBackend()
        backend = cpu
        settings = {"timer_overhead_ns": round(cpu.timer_overhead_s() * 1e9, 1),
                    "mkldnn_enabled": torch.backends.mkldnn.enabled}
    else:
        raise DeviceError(f"unknown device {device!r}", hint="use cpu or cuda")
    settings.update({"torch_num_threads": torch.get_num_threads(),
                     "torch_num_interop_threads": torch.get_num_interop_threads(),
                     "backend": backend.name})
    return DeviceSetup(device=device, backend=backend, threads=torch.get_num_threads(), settings=settings)
