"""Machine and software fingerprint (psutil, torch, NVML), plus checks that return advice."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
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
        **cpu_identity(),
        "cpu_boost": cpu_boost(),
        **torch_libraries(),
        "allocator": allocator(),
    }
    return fp


# --- the memory allocator: glibc's defaults return freed memory to the OS, so a network's large
# intermediate tensors come back as fresh pages (faults, zeroing) on every forward. Measured 2026-12-05
# on the development machine (docs/benchmarks/predict_insitu.md): MobileNetV2 at batch 1 ran 22.3 ms with glibc's
# defaults and 16.9 ms with freed memory kept (MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_): two runs
# that differ in the allocator are two different machines for a gate.
ALLOCATOR_LIBS = ("jemalloc", "tcmalloc", "mimalloc", "hoard", "snmalloc")
ALLOCATOR_ENV = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_",
                 "MALLOC_TRIM_THRESHOLD_", "MALLOC_CONF", "TCMALLOC_RELEASE_RATE", "MIMALLOC_PURGE_DELAY")


def allocator(maps: str | None = None, environ: Any = None) -> str:
    """Which malloc this process runs on ('glibc' unless a library such as jemalloc or tcmalloc is mapped,
    e.g. by LD_PRELOAD) and the allocator settings in the environment that change its speed
    (glibc's MALLOC_*_ and GLIBC_TUNABLES' malloc entries, jemalloc's MALLOC_CONF, ...), as one string.
    `maps`/`environ` let tests pass another process's."""
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text(errors="replace")
        except OSError:
            maps = ""
    environ = os.environ if environ is None else environ
    libs = sorted({lib for line in maps.splitlines() for lib in ALLOCATOR_LIBS if lib in line.rsplit("/", 1)[-1]})
    name = "+".join(libs) if libs else ("glibc" if sys.platform.startswith("linux") else "system")
    settings = [f"{k}={environ[k]}" for k in ALLOCATOR_ENV if environ.get(k)]
    tunables = [t for t in (environ.get("GLIBC_TUNABLES") or "").split(":") if t.startswith("glibc.malloc.")]
    return " ".join([name, *settings, *tunables])


# --- what tells machines apart: two CPU generations both called "AMD EPYC" must differ ---------

# ISA extensions whose presence changes which kernels torch runs (x86: AVX-512, AMX, VNNI; Arm: SVE, NEON).
ISA_PREFIXES = ("avx512", "amx", "avx_vnni", "avx2", "fma", "sve", "sme", "asimd", "neon", "bf16", "i8mm")


def cpu_identity(cpuinfo: str | None = None, sysfs: Path = Path("/sys/devices/system/cpu")) -> dict[str, Any]:
    """CPU vendor, family, model, stepping, microcode, cache sizes and the ISA flags that matter, from
    /proc/cpuinfo (x86 and Arm spellings) and sysfs. Keys always present; a value the OS does not
    offer is None. `cpuinfo`/`sysfs` let tests pass another machine's."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    first: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip() and first:
            break  # the first processor's block describes the model (all cores of one socket agree)
        if ":" in line:
            k, v = line.split(":", 1)
            first.setdefault(k.strip().lower(), v.strip())
    flags = (first.get("flags") or first.get("features") or "").split()
    isa = sorted({f for f in flags if f.startswith(ISA_PREFIXES)})
    return {
        "cpu_vendor": first.get("vendor_id") or first.get("cpu implementer") or platform.machine() or None,
        "cpu_family": first.get("cpu family") or first.get("cpu architecture"),
        "cpu_model_id": first.get("model") or first.get("cpu part"),
        "cpu_stepping": first.get("stepping") or first.get("cpu revision"),
        "cpu_microcode": first.get("microcode"),
        "cpu_caches": cpu_caches(sysfs) or first.get("cache size"),
        "cpu_isa": " ".join(isa) if flags else None,
    }


def cpu_caches(sysfs: Path = Path("/sys/devices/system/cpu")) -> str | None:
    """'L1d 32K, L1i 32K, L2 512K, L3 32768K' of cpu0, from sysfs (None where sysfs has no cache info)."""
    out = []
    for d in sorted((sysfs / "cpu0" / "cache").glob("index*")):
        try:
            level, kind, size = ((d / f).read_text().strip() for f in ("level", "type", "size"))
        except OSError:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        out.append(f"L{level}{suffix} {size}")
    return ", ".join(out) or None


def cpu_boost(sysfs: Path = Path("/sys/devices/system/cpu")) -> str | None:
    """'on'/'off' when the OS exposes turbo/boost (acpi-cpufreq boost, intel_pstate no_turbo), else None."""
    for path, on in ((sysfs / "cpufreq" / "boost", "1"), (sysfs / "intel_pstate" / "no_turbo", "0")):
        try:
            return "on" if path.read_text().strip() == on else "off"
        except OSError:
            continue
    return None


def torch_libraries(config: str | None = None) -> dict[str, Any]:
    """MKL and oneDNN versions torch was built with (parsed from torch.__config__.show())."""
    import re

    if config is None:
        import torch

        config = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([^\s]+)", config)
    onednn = re.search(r"(?:MKL-DNN|oneDNN) (v[\d.]+)", config)
    return {"mkl_version": mkl.group(1) if mkl else None, "onednn_version": onednn.group(1) if onednn else None}


# Fingerprint fields that must agree for two results to come from the same machine and software.
# Transient state (current clock, temperature, load) and names (hostname) are left out.
MACHINE_FIELDS = ("cpu_model", "cpu_vendor", "cpu_family", "cpu_model_id", "cpu_stepping", "cpu_microcode",
                  "cpu_caches", "cpu_isa", "cpu_logical_cores", "cpu_physical_cores", "cpu_governor", "cpu_boost",
                  "memory_bytes", "torch", "cuda_version", "cudnn_version", "mkl_version", "onednn_version",
                  "allocator")
GPU_FIELDS = ("name", "uuid", "driver", "sm_clock_max_mhz", "mem_clock_max_mhz", "power_limit_w", "mig_mode")


def machine_identity(meta: dict[str, Any]) -> dict[str, str]:
    """The fields of a run's metadata that identify its machine and software, as comparable strings:
    device and threads, MACHINE_FIELDS and per GPU GPU_FIELDS (gpu0.name, ...). Only fields the file
    records are returned: an older file has fewer, and callers compare the fields both sides have."""
    fp = meta.get("fingerprint") or {}
    out = {"device": str(meta.get("device", "")), "threads": str(meta.get("threads", ""))}
    out.update({f: str(fp[f]) for f in MACHINE_FIELDS if f in fp})
    if "gpus" in fp:
        gpus = fp.get("gpus") or []
        out["gpus"] = str(len(gpus))
        for g in gpus:
            out.update({f"gpu{g.get('index', 0)}.{f}": str(g[f]) for f in GPU_FIELDS if f in g})
    return out


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
