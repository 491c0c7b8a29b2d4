"""Axes any suite can sweep (`sweep:` in a suite): batch, dtype, memory format, threads, mode.

Every case is expanded over the product of the listed values. Each sweep point becomes part of the
case's identity (CaseSpec fields -> CSV key columns), so `compare` lines runs up point by point, and
each point is its own measurement group: cases are interleaved and get their ratio to the baseline
only against cases at the same batch, dtype, format, threads and mode.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from latbench.records import CaseSpec

def _distinct(v: list) -> list:
    if len(set(v)) != len(v):
        raise ValueError(f"values must be distinct; got {v}")
    return v


class SweepModel(BaseModel):
    """The `sweep:` mapping. Every key is optional; an absent key keeps the suite's single value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch: list[int] | None = Field(default=None, min_length=1, description="batch sizes (a latency-throughput "
                                    "curve); replaces the suite's batch")
    dtype: list[Literal["float32", "bfloat16", "float16"]] | None = Field(default=None, min_length=1)
    memory_format: list[Literal["contiguous", "channels_last"]] | None = Field(default=None, min_length=1)
    threads: list[int] | None = Field(default=None, min_length=1, description="torch intra-op threads per group")
    mode: list[Literal["eager", "compile", "cudagraph"]] | None = Field(
        default=None, min_length=1, description="execution modes; replaces --modes for this suite")

    @field_validator("batch", "threads")
    @classmethod
    def _positive(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(x < 1 or x > 65536 for x in v):
            raise ValueError("values must be integers from 1 to 65536")
        return _distinct(v) if v is not None else v

    @field_validator("dtype", "memory_format", "mode")
    @classmethod
    def _unique(cls, v: list | None) -> list | None:
        return _distinct(v) if v is not None else v


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    batch: int
    dtype: str = "float32"
    memory_format: str = "contiguous"
    threads: int | None = None
    mode: str | None = None


def count_points(sweep: SweepModel | None, batch_override: int | None = None) -> int:
    """How many points `points` would give, without building them (a 40,000-point sweep is refused first)."""
    s = sweep or SweepModel()
    n = 1
    for axis in (None if batch_override else s.batch, s.dtype, s.memory_format, s.threads, s.mode):
        n *= len(axis) if axis else 1
    return n


def points(sweep: SweepModel | None, batch: int, batch_override: int | None = None) -> list[SweepPoint]:
    """The product of the sweep's axes, batch outermost. --batch (batch_override) replaces a batch sweep."""
    s = sweep or SweepModel()
    batches = [batch_override] if batch_override else (s.batch or [batch])
    axes = itertools.product(batches, s.dtype or ["float32"], s.memory_format or ["contiguous"],
                             s.threads or [None], s.mode or [None])
    return [SweepPoint(*values) for values in axes]


def expand_specs(specs: list[CaseSpec], pts: list[SweepPoint]) -> list[CaseSpec]:
    """Each spec at every point, ordered scale, point, case (so one group's cases are adjacent).

    The specs were solved at their own batch; FLOPs grow linearly with batch, so the FLOPs target of
    another batch is scaled by the batch ratio (widths do not depend on batch).
    """
    out: list[CaseSpec] = []
    for _, group in itertools.groupby(specs, key=lambda s: s.scale):
        group = list(group)
        for pt in pts:
            for spec in group:
                target = spec.flops_target * pt.batch // spec.batch if spec.flops_target is not None else None
                out.append(dataclasses.replace(spec, batch=pt.batch, dtype=pt.dtype, memory_format=pt.memory_format,
                                               threads=pt.threads, mode=pt.mode, flops_target=target))
    return out
