"""Pick integer channel widths so that a network's counted FLOPs hit a target (fixed-FLOPs sweeps).

The builder says which parameters are widths, what each must be a multiple of (groups), and the
proportions between them (c2 = 6 c1 for a 1:6 pair). We bisect a continuous size s so that the widths
round(s * proportion) reach the target, then try the nearby multiples of every width (the proportion
may bend a little: c1=9, c2=114 is closer to a 1:12 target than 9:108) and keep the combination whose
counted FLOPs are nearest to the target. FLOPs of one block are counted (all blocks are identical)
and the winner is counted again in full by the caller.
"""

from __future__ import annotations

import itertools
from typing import Any

from latbench.cost import count
from latbench.models import get_builder

NEIGHBOURS = 3  # multiples tried on each side of the bisected width
GOOD_ENOUGH = 0.005  # FLOPs drift below which keeping the proportions matters more


def _round_to(x: float, step: int) -> int:
    return max(step, step * round(x / step))


def solve_widths(builder: str, params: dict[str, Any], target_flops: int, batch: int, height: int,
                 width: int, blocks: int) -> tuple[dict[str, Any], int]:
    """Widths nearest to `target_flops` (whole network, 2 FLOPs per multiply-add).

    Returns (params with widths filled in, counted FLOPs). The caller checks the tolerance.
    """
    b = get_builder(builder)
    per_block_target = target_flops / blocks

    memo: dict[tuple, int] = {}  # bisection revisits the same rounded widths

    def flops_of(widths: dict[str, int]) -> int:
        key = tuple(sorted(widths.items()))
        if key not in memo:
            p = b.params.model_validate({**params, **widths}).model_dump()
            memo[key] = count(builder, p, 1, batch, height, width).flops
        return memo[key]

    defaults = {n: f.default for n, f in b.params.model_fields.items() if not f.is_required()}
    shape = {**defaults, **params}
    steps = b.widths(shape)  # width name -> the multiple it must be
    props = b.proportions(shape)

    def at(s: float) -> dict[str, int]:
        return {k: _round_to(s * props[k], steps[k]) for k in steps}

    lo, hi = 0.5, 1.0
    while flops_of(at(hi)) < per_block_target:
        hi *= 2
        if hi > 1 << 16:
            raise ValueError(f"no width up to {hi:.0f} reaches {target_flops} FLOPs")
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if flops_of(at(mid)) < per_block_target else (lo, mid)
        if hi - lo < 0.25 / max(props.values()):
            break
    centre = {k: hi * props[k] for k in steps}
    choices = [[_round_to(centre[k] + d * steps[k], steps[k]) for d in range(-NEIGHBOURS, NEIGHBOURS + 1)]
               for k in steps]
    best: tuple[float, float, dict[str, int]] | None = None
    for combo in itertools.product(*(sorted(set(c)) for c in choices)):
        widths = dict(zip(steps, combo))
        try:
            f = flops_of(widths)
        except ValueError:  # e.g. not divisible by groups
            continue
        # within GOOD_ENOUGH the least bent proportions win, beyond it the nearest FLOPs
        drift = abs(f - per_block_target) / per_block_target
        bend = sum(abs(widths[k] - centre[k]) / centre[k] for k in steps)
        key = (drift if drift > GOOD_ENOUGH else 0.0, bend, widths)
        if best is None or key[:2] < best[:2]:
            best = key
    assert best is not None
    solved = b.params.model_validate({**params, **best[2]}).model_dump()
    return solved, count(builder, solved, blocks, batch, height, width).flops

