"""A case at one sweep point -> timed callables, one per execution mode, all set up outside any
timed region: build on the device in the case's dtype and memory format, run it once (can this
device run this dtype?), then make the mode's callable (eager, torch.compile, CUDA graph).

What the device cannot do is a skip with a reason (status "skipped"), not a crash: bfloat16 on a
pre-Ampere GPU, a dtype whose kernels are missing, channels_last on a non-4-D input, CUDA graphs on
the CPU, torch.compile without a working compiler toolchain.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Callable

import torch

from latbench import faults
from latbench.cost import build_network
from latbench.records import CaseSpec
from latbench.timing.backend import TimingBackend

# torch.compile's backend. inductor needs a C++ compiler on the CPU and takes seconds per model;
# tests patch this to "eager" (TorchDynamo tracing only) to exercise the path quickly.
COMPILE_BACKEND = "inductor"


@dataclass
class Prepared:
    fn: Callable[[], object] | None = None
    skip: str | None = None  # why this device cannot run the case (status "skipped")
    error: str | None = None  # why the case failed (status "failed")
    compile_s: float | None = None  # seconds spent compiling (mode "compile")


def error_text(exc: BaseException) -> str:
    """The row's error text: the kind of failure (out of memory, unsupported, timed out) first."""
    return faults.describe(exc)


def _plain(exc: BaseException) -> str:
    """An exception as 'Type: first line', for skip reasons that already say what kind it is."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500]


def device_skip(device: str, dtype: str) -> str | None:
    """A reason the device cannot run `dtype` at all, known without trying."""
    if device == "cuda" and dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        return "bfloat16 is not supported on this GPU (needs compute capability 8.0+)"
    return None


def prepare_case(spec: CaseSpec, modes: tuple[str, ...], device: str, backend: TimingBackend,
                 seed: int) -> dict[str, Prepared]:
    """{mode: Prepared} for one case; the model is built once and shared by its modes."""
    reason = device_skip(device, spec.dtype)
    if reason:
        return {m: Prepared(skip=reason) for m in modes}
    torch.manual_seed(seed)
    try:
        model, x = build_network(spec.builder, spec.param_dict, spec.blocks, spec.batch, spec.height, spec.width,
                                 device, getattr(torch, spec.dtype))
    except Exception as exc:  # noqa: BLE001 - e.g. out of memory: record and go on
        return {m: Prepared(error=error_text(exc)) for m in modes}
    if spec.memory_format == "channels_last":
        if x.dim() != 4:
            return {m: Prepared(skip=f"channels_last needs a 4-D (N, C, H, W) input; this one is {x.dim()}-D")
                    for m in modes}
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    try:
        model(x)
    except Exception as exc:  # noqa: BLE001
        if spec.dtype != "float32":
            return {m: Prepared(skip=f"{spec.dtype} does not run on {device} here: {_plain(exc)}") for m in modes}
        return {m: Prepared(error=error_text(exc)) for m in modes}
    return {m: _mode(model, x, m, device, backend) for m in modes}


def _mode(model: torch.nn.Module, x: torch.Tensor, mode: str, device: str, backend: TimingBackend) -> Prepared:
    if mode == "compile":
        try:
            t0 = time.perf_counter()
            compiled = torch.compile(model, backend=COMPILE_BACKEND)
            compiled(x)  # compiles
            compiled(x)  # and runs once more, so no recompilation lands in the warm-up
            return Prepared(fn=functools.partial(compiled, x), compile_s=time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - no compiler, unsupported op: this machine cannot
            return Prepared(skip=f"torch.compile ({COMPILE_BACKEND}) failed: {_plain(exc)}")
    if mode not in backend.modes:
        return Prepared(skip=f"mode {mode!r} is not available on {device}; it has {', '.join(backend.modes)}"
                             f"{' and compile' if 'compile' not in backend.modes else ''}")
    try:
        return Prepared(fn=backend.prepare(functools.partial(model, x), mode))
    except Exception as exc:  # noqa: BLE001
        return Prepared(error=error_text(exc))
