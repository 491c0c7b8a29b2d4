"""Toy sections for tests/test_gpu_acceptance.py: what a GPU section can do to its process (pass,
fail a check, raise, crash, hang, poison its process), without a GPU."""

import os
import time

from benchmarks.gpu_acceptance import Check

POISONED = []  # what a section left behind in its process (a sticky CUDA error, say)


def ok(ctx):
    ctx.figures["ok_figure"] = 42
    return [Check("toy ok", "1.00", "0.9..1.1", True), Check("toy skipped", "n/a", "-", True, skipped=True)]


def poison(ctx):
    POISONED.append("sticky error")
    return [Check("toy poison", "poisoned its process", "-", True)]


def clean(ctx):
    return [Check("toy clean", f"{len(POISONED)} leftovers", "0", not POISONED)]


def fails(ctx):
    return [Check("toy fails", "2.00", "0.9..1.1", False, "twice as slow")]


def raises(ctx):
    raise RuntimeError("CUDA error: an illegal memory access was encountered")


def crashes(ctx):
    os._exit(134)  # a segfault or abort in a CUDA library


def hangs(ctx):
    time.sleep(60)
