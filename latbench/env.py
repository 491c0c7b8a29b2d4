"""Machine and software fingerprint (psutil, torch, NVML), plus checks that return advice."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any, Callable

import psutil

import latbench


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The commit of the latbench checkout, if it runs from one."""
    root = Path(latbench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def load_nvml(nvml: Any = None) -> Any:
    """An initialized NVML module (pynvml, or the fake a test passes), or None when there is no NVML.

    Callers pair it with nvml.nvmlShutdown(). No driver, no library and no GPU all mean None.
    """
    try:
        if nvml is None:
            import pynvml as nvml
        nvml.nvmlInit()
    except Exception:  # noqa: BLE001 - pynvml raises its own NVMLError subclasses, or ImportError
        return None
    return nvml


def try_call(call: Callable[[], Any]) -> Any:
    """call(), or None when it raises: a counter the OS or GPU does not offer reads as None."""
    try:
        return call()
    except Exception:  # noqa: BLE001 - not every GPU supports every query
        return None


def gpus(nvml: Any = None) -> list[dict[str, Any]]:
    """Per GPU: name, UUID, driver, clocks (MHz), power limit (W), temperature (C), persistence and
    MIG state. Empty without NVML. `nvml` is the pynvml module (tests pass a fake)."""
    nv = load_nvml(nvml)
    if nv is None:
        return []
    out = []
    try:
        driver = _s(try_call(nv.nvmlSystemGetDriverVersion))
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            info: dict[str, Any] = {"index": i, "name": _s(nv.nvmlDeviceGetName(h)),
                                    "uuid": _s(try_call(lambda: nv.nvmlDeviceGetUUID(h))), "driver": driver}
            for key, call in (("sm_clock_mhz", lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)),
                              ("sm_clock_max_mhz", lambda: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM)),
                              ("mem_clock_max_mhz", lambda: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_MEM)),
                              ("power_limit_w", lambda: nv.nvmlDeviceGetPowerManagementLimit(h) / 1000),
                              ("temperature_c", lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)),
                              ("persistence_mode", lambda: bool(nv.nvmlDeviceGetPersistenceMode(h))),
                              ("mig_mode", lambda: nv.nvmlDeviceGetMigMode(h)[0])):
                info[key] = try_call(call)
            out.append(info)
    finally:
        try_call(nv.nvmlShutdown)
    return out


def _s(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def fingerprint(nvml: Any = None) -> dict[str, Any]:
    """What a result depends on besides the code: goes into every run's metadata (and `latbench env`)."""
    import torch

    freq = psutil.cpu_freq()
    governor = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    fp: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "latbench": latbench.__version__,
        "latbench_commit": git_commit(),
        "cpu_model": cpu_model(),
        "cpu_logical_cores": psutil.cpu_count(logical=True),
        "cpu_physical_cores": psutil.cpu_count(logical=False),
        "cpu_freq_mhz": round(freq.current, 1) if freq else None,
        "cpu_freq_max_mhz": freq.max if freq and freq.max else None,
        "cpu_governor": governor.read_text().strip() if governor.exists() else None,
        "memory_bytes": psutil.virtual_memory().total,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "mkl_num_threads_env": os.environ.get("MKL_NUM_THREADS"),
        "mkldnn_enabled": torch.backends.mkldnn.is_available(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "cuda_visible_devices_env": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cudnn_version": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpus": gpus(nvml),
    }
    return fp


def load_advice(threads: int) -> list[str]:
    """Warnings about the machine's state that make timings noisy (returned, not printed)."""
    advice = []
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        return advice
    cores = psutil.cpu_count(logical=True) or 1
    if load1 + threads > cores + 0.5:
        advice.append(f"load average {load1:.1f} on {cores} cores: other jobs compete with the {threads} "
                      f"benchmark thread(s); expect noisy absolute times (interleaved ratios hold better). "
                      f"Stop other jobs or use fewer --threads.")
    return advice
