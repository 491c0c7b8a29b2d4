"""Running specs through the run wing's pipeline in tests: a CPU device with a chosen backend, rows as dicts."""

from __future__ import annotations

from typing import Any

from latbench.devices import CpuDevice
from latbench.run import pipeline
from latbench.timing.cpu import CpuBackend


def cpu(backend: Any = None, threads: int = 1) -> CpuDevice:
    """An unconfigured CPU device timing with `backend` (default: the real CPU backend)."""
    return CpuDevice(backend=backend or CpuBackend(), threads=threads)


def run_specs(specs: list, cfg: pipeline.RunConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every group of `specs` measured in this process: (rows as the CSV holds them, samples)."""
    rows: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    pipeline.run_in_process(pipeline.groups_of(specs), cfg,
                            lambda r, s: (rows.extend(x.to_dict() for x in r), samples.extend(s)))
    return rows, samples
