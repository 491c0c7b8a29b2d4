"""Pick integer channel widths so that a network's counted FLOPs hit a target (fixed-FLOPs sweeps).

The builder says which parameters are widths, what each must be a multiple of (groups), and the
proportions between them (c2 = 6 c1 for a 1:6 pair). We bisect a continuous size s so that the widths
round(s * proportion) reach the target, then try the nearby multiples of every width (the proportion
may bend a little: c1=9, c2=114 is closer to a 1:12 target than 9:108) and keep the combination whose
counted FLOPs are nearest to the target. The widest width also gets the two multiples that straddle
the target with the others rounded down and up: a small width's rounding moves a wide one by more
than its neighbours (1:12 at c1=18 needs c2=228, not 222 +- 3). FLOPs of one block are counted (all blocks are identical)
and the winner is counted again in full by the caller.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from latbench.cost import count
from latbench.models import get_builder

NEIGHBOURS = 3  # multiples tried on each side of the bisected width
GOOD_ENOUGH = 0.005  # FLOPs drift below which keeping the proportions matters more


def _round_to(x: float, step: int) -> int:
    return max(step, step * round(x / step))


def _straddle(f, centre: float, step: int, target: float) -> list[int]:
    """The multiples of `step` next to where the increasing f crosses `target` (galloping from centre)."""
    lo = hi = _round_to(centre, step)
    gap = step
    if f(lo) < target:
        while f(hi) < target:
            lo, hi, gap = hi, hi + gap, gap * 2
            if hi > 1 << 20:
                return [lo]
    else:
        while lo > step and f(lo) >= target:
            hi, lo, gap = lo, max(step, lo - gap), gap * 2
        if f(lo) >= target:
            return [lo]
    while hi - lo > step:  # f(lo) < target <= f(hi)
        mid = lo + (hi - lo) // (2 * step) * step
        lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
    return [lo, hi]


def solve_widths(builder: str, params: dict[str, Any], target_flops: int, batch: int, height: int,
                 width: int, blocks: int) -> tuple[dict[str, Any], int]:
    """Widths nearest to `target_flops` (whole network, 2 FLOPs per multiply-add).

    Returns (params with widths filled in, counted FLOPs). The caller checks the tolerance.
    """
    b = get_builder(builder)
    per_block_target = target_flops / blocks

    cache: dict[tuple, int] = {}

    def flops_of(widths: dict[str, int]) -> int:
        key = tuple(sorted(widths.items()))
        if key not in cache:
            p = b.params.model_validate({**params, **widths}).model_dump()
            cache[key] = count(builder, p, 1, batch, height, width).flops
        return cache[key]

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
    candidates = [dict(zip(steps, combo)) for combo in itertools.product(*(sorted(set(c)) for c in choices))]
    free = max(steps, key=lambda k: props[k])
    others = [k for k in steps if k != free]
    for combo in itertools.product(*({max(steps[k], steps[k] * math.floor(centre[k] / steps[k])),
                                      steps[k] * math.ceil(centre[k] / steps[k])} for k in others)):
        fixed = dict(zip(others, combo))
        try:
            candidates += [{**fixed, free: v} for v in _straddle(lambda v: flops_of({**fixed, free: v}),
                                                                   centre[free], steps[free], per_block_target)]
        except ValueError:
            continue
    best: tuple[float, float, dict[str, int]] | None = None
    # within GOOD_ENOUGH the least bent proportions win, beyond it the nearest FLOPs; so in order of
    # bend the first candidate within GOOD_ENOUGH wins and the rest need not be counted
    bend_of = {id(w): sum(abs(w[k] - centre[k]) / centre[k] for k in steps) for w in candidates}
    for widths in sorted(candidates, key=lambda w: bend_of[id(w)]):
        try:
            f = flops_of(widths)
        except ValueError:  # e.g. not divisible by groups
            continue
        drift = abs(f - per_block_target) / per_block_target
        key = (drift if drift > GOOD_ENOUGH else 0.0, bend_of[id(widths)], widths)
        if best is None or key[:2] < best[:2]:
            best = key
        if drift <= GOOD_ENOUGH:
            break
    assert best is not None
    solved = b.params.model_validate({**params, **best[2]}).model_dump()
    return solved, count(builder, solved, blocks, batch, height, width).flops

