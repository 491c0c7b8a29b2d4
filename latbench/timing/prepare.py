"""A case at one sweep point -> timed callables, one per execution mode, all set up outside any
timed region: build on the device in the case's dtype and memory format, run it once (can this
device run this dtype?), then make the mode's callable (eager, torch.compile, CUDA graph).

What the device cannot do is a skip with a reason (status "skipped"), not a crash: bfloat16 on a
pre-Ampere GPU, a dtype whose kernels are missing, channels_last on a non-4-D input, CUDA graphs on
the CPU, a model that cannot be captured as a CUDA graph, torch.compile without a working compiler
toolchain. A `compile` row is compiled code or a failure: fullgraph=True, and a recompile or a
fallback to eager fails the case with the reason.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from latbench import faults
from latbench.records import CaseSpec
from latbench.timing.backend import TimingBackend
from latbench.timing.cuda import CaptureError

# torch.compile's backend. inductor needs a C++ compiler on the CPU and takes seconds per model;
# tests patch this to "eager" (TorchDynamo tracing only) to exercise the path quickly.
COMPILE_BACKEND = "inductor"


class CompileCheckError(RuntimeError):
    """torch.compile would not run the compiled graph (a recompile or a fallback to eager)."""


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


class DeviceLike(Protocol):
    """What preparing a case needs of latbench.devices' Device (a layer above: not imported here)."""

    name: str  # torch's device string, "cpu" or "cuda"

    def dtype_skip(self, dtype: str) -> str | None: ...


Build = Callable[[CaseSpec, str], "tuple[torch.nn.Module, torch.Tensor]"]  # (spec, device) -> (model, input)


def prepare_case(spec: CaseSpec, modes: tuple[str, ...], dev: DeviceLike, backend: TimingBackend,
                 seed: int, build: Build) -> dict[str, Prepared]:
    """{mode: Prepared} for one case on device object `dev` (devices.get/of); the model is built once
    and shared by its modes. What the device cannot run at all (dev.dtype_skip) is a skip."""
    device = dev.name
    reason = dev.dtype_skip(spec.dtype)
    if reason:
        return {m: Prepared(skip=reason) for m in modes}
    torch.manual_seed(seed)
    try:
        model, x = build(spec, device)
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
        return _compile(model, x)
    if mode not in backend.modes:
        return Prepared(skip=f"mode {mode!r} is not available on {device}; it has {', '.join(backend.modes)}"
                             f"{' and compile' if 'compile' not in backend.modes else ''}")
    try:
        return Prepared(fn=backend.prepare(functools.partial(model, x), mode))
    except CaptureError as exc:  # the model, not the device or latbench: a skip with the reason
        return Prepared(skip=str(exc))
    except Exception as exc:  # noqa: BLE001
        return Prepared(error=error_text(exc))


def reset_compiled() -> None:
    """Forget every compiled graph (torch._dynamo.reset()); call once a group is measured."""
    torch._dynamo.reset()


def release(backend: TimingBackend) -> None:
    """After a group is measured: drop its CUDA graphs (and their private pools) and compiled code."""
    backend.release()
    reset_compiled()


def _compile(model: torch.nn.Module, x: torch.Tensor) -> Prepared:
    """torch.compile(fullgraph=True) of this case alone, compiled exactly once, with its compile time.

    Each case gets a code object of its own: dynamo keeps compiled code and counts recompiles per
    code object, and every model's forward shares one (Module.__call__), so after 8 cases the rest
    ran eager. A second compile of the case (a guard failed: a recompile) fails the call, in
    preparation or while timing, rather than timing new code; a model no graph reaches the compiler
    for fails too. torch._dynamo.reset() is not called per case: it would discard the compiled
    code of the group's other cases; `release()` calls it once the group is measured.
    """
    import torch._dynamo

    def forward(inp: torch.Tensor) -> object:
        return model(inp)

    forward.__code__ = forward.__code__.replace()  # a fresh code object: this case's own cache
    inner = torch._dynamo.lookup_backend(COMPILE_BACKEND)
    compiles: list[int] = []

    def once(gm: torch.fx.GraphModule, example_inputs: list) -> Callable:
        if compiles:
            raise CompileCheckError(f"torch.compile recompiled the case (compile #{len(compiles) + 1}): a guard "
                                    "failed, so timing it would not time the compiled graph")
        compiles.append(len(gm.graph.nodes))
        return inner(gm, example_inputs)

    t0 = time.perf_counter()
    try:
        compiled = torch.compile(forward, backend=once, fullgraph=True)
        compiled(x)  # compiles
        compiled(x)  # and runs once more: a recompile shows here, not in the warm-up
        compile_s = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - what kind of failure decides skip or failed
        check = _compile_check(exc)
        if check:
            return Prepared(error=check)
        # no compiler toolchain, an inductor lowering missing: this machine cannot, a skip
        return Prepared(skip=f"torch.compile ({COMPILE_BACKEND}) failed: {_plain(exc)}")
    if not compiles:
        return Prepared(error=f"torch.compile ({COMPILE_BACKEND}) fell back to eager: no graph reached the compiler")
    return Prepared(fn=functools.partial(compiled, x), compile_s=compile_s)


def _compile_check(exc: BaseException) -> str | None:
    """A failed-case reason when torch.compile could not compile the whole model once, else None."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, CompileCheckError):
            return str(e)
        if isinstance(e, torch._dynamo.exc.Unsupported):
            return f"torch.compile(fullgraph=True) cannot capture the whole model (graph break): {_plain(e)}"
        e = e.__cause__ or e.__context__
    return None
