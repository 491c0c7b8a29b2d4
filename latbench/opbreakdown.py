"""Per-op breakdown of a forward pass with torch.profiler: how many ops (kernels) it launches and what
share of its op time goes to ops that do no counted arithmetic (ReLU, add, concat, shuffle, copies).

This makes G3 (fragmentation: many small ops) and G4 (element-wise ops: zero FLOPs, real time)
measurable. "Zero-FLOP" means FlopCounterMode counts no FLOPs for the op: a top-level aten op
counts as arithmetic when it or any op it calls is in torch.utils.flop_counter's registry (convs,
matmuls, attention). Run only after measurement, never inside a timed block: the profiler adds
per-op overhead.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
from torch.profiler import profile, record_function
from torch.utils.flop_counter import flop_registry

from latbench.devices import Device

PROFILE_FORWARDS = 5
_MARKER = "latbench::forward"
FLOP_OP_NAMES = frozenset("aten::" + str(k).split(".", 1)[-1] for k in flop_registry)

OPBREAKDOWN_COLUMNS = ("op_count_per_forward", "zero_flop_time_pct")


def quiet_kineto() -> None:
    """Keep torch's profiler backend (kineto) from printing 'USDT: ... profiler_start/stop' to stderr on
    every profiled block: its log level is read at the profiler's first use in a process, so call this
    before it (a user's own KINETO_LOG_LEVEL is kept)."""
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")


def profile_forward(fn: Callable[[], object], device: Device, forwards: int = PROFILE_FORWARDS) -> dict[str, Any]:
    """op_count_per_forward (kernels on cuda, without memcpy/memset or the marker range; top-level aten
    ops on cpu) and zero_flop_time_pct (share
    of op time, device time on cuda, spent in ops with no counted FLOPs), over `forwards` calls."""
    dev = device
    with torch.inference_mode():
        fn()  # a call outside the trace: lazy initialisation is not the model's cost
        quiet_kineto()
        with profile(activities=dev.profiler_activities()) as prof:
            for _ in range(forwards):
                with record_function(_MARKER):
                    fn()
            dev.synchronize()
    return breakdown(prof.events(), dev, forwards)


def breakdown(events: Any, device: Device, forwards: int) -> dict[str, Any]:
    """Columns from profiler events (a list of torch.autograd FunctionEvent-like objects)."""
    dev = device
    top = [e for e in events if e.cpu_parent is not None and e.cpu_parent.name == _MARKER]
    if not top or forwards <= 0:
        return {name: None for name in OPBREAKDOWN_COLUMNS}
    total = sum(dev.op_time(e) for e in top)
    zero = sum(dev.op_time(e) for e in top if not _does_arithmetic(e))
    kernels = dev.kernel_count([e for e in events if e.name != _MARKER])  # the marker's GPU-side range
    count = len(top) if kernels is None else kernels
    return {"op_count_per_forward": count / forwards,
            "zero_flop_time_pct": 100 * zero / total if total > 0 else None}


def _does_arithmetic(e: Any) -> bool:
    return e.name in FLOP_OP_NAMES or any(_does_arithmetic(c) for c in e.cpu_children)
