"""Machine and software fingerprint (psutil, torch, NVML), plus checks that return advice."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

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


def gpus() -> list[dict[str, Any]]:
    """Per GPU: name, UUID, driver, clocks, power limit, persistence and MIG state (empty without NVML)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver, no library, no GPU: all mean "no NVML"
        return []
    out = []
    try:
        driver = _s(pynvml.nvmlSystemGetDriverVersion())
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            info: dict[str, Any] = {"index": i, "name": _s(pynvml.nvmlDeviceGetName(h)),
                                    "uuid": _s(pynvml.nvmlDeviceGetUUID(h)), "driver": driver}
            for key, call in (("sm_clock_max_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM)),
                              ("mem_clock_max_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM)),
                              ("power_limit_w", lambda: pynvml.nvmlDeviceGetPowerManagementLimit(h) / 1000),
                              ("persistence_mode", lambda: bool(pynvml.nvmlDeviceGetPersistenceMode(h))),
                              ("mig_mode", lambda: pynvml.nvmlDeviceGetMigMode(h)[0])):
                try:
                    info[key] = call()
                except Exception:  # noqa: BLE001 - not every GPU supports every query
                    info[key] = None
            out.append(info)
    finally:
        pynvml.nvmlShutdown()
    return out


def _s(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def fingerprint() -> dict[str, Any]:
    """What a result depends on besides the code: goes into every run's metadata."""
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
        "cpu_freq_max_mhz": freq.max if freq else None,
        "cpu_governor": governor.read_text().strip() if governor.exists() else None,
        "memory_bytes": psutil.virtual_memory().total,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "mkldnn_enabled": torch.backends.mkldnn.is_available(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpus": gpus(),
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
