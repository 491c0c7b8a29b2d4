"""Warm-up, block sizing, interleaved rounds and the stopping rule. Knows nothing about devices.

Why interleave: on a shared machine the speed of the whole box drifts by tens of percent over
seconds. Measuring case A for a while and then case B puts that drift into the A/B ratio. Here every
round times one block of each item, in a fresh random order, so drift lands on all items alike and
each round yields one paired ratio sample. `schedule="sequential"` measures items one after another
(each alone, the classic harness) for comparison.

What stops a group (Measurement.stop_reason, STOP_REASONS):
  converged   every item's ratio to its baseline (the paper's comparison) has a CI within +-rel_ci at
              policy.stop_confidence; an item with no other item to compare with (a lone case, the
              sequential schedule) needs its own median within +-rel_ci instead. Absolute medians of
              items that have a baseline are not waited for: machine drift moves them, not the ratios.
  max_time    an item reached max_time_s of timed blocks first
  max_rounds  the round backstop (max_rounds) came first
  failed      every item of the group failed (run/pipeline.py adds "skipped" for cases the device cannot run)

Optional stopping: looking at a 95 % interval after every round and stopping at the first narrow one
picks a lucky stretch (issue 13's simulation: the interval then held the truth 92.5 % of the time;
tests/test_timing_loop.py with rounds correlated at phi = 0.4: 89 %). Here the
rule is looked at only on geometrically spaced rounds (min_rounds, then x check_growth) and decides on
a wider interval (stop_confidence, 99 %), so the 95 % interval reported at the stop keeps its
coverage; the decision also takes the larger autocorrelation time of the ranks (median_ci_dependent
conservative=True), so that it does not stop on series whose dependence it happened to underestimate.
Seeded simulations (tests/test_timing_loop.py, 300-400 stops per setting): independent rounds
96-98 %; rounds correlated at phi = 0.3-0.5, 92-97 % depending on the block of seeds (about 94 % on
average: the effective sample size of the short series the rule stops on is the remaining limit),
where the old rule gave 83-89 %.
"""

from __future__ import annotations

import gc
import math
import random
import statistics
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

from latbench.faults import describe, time_limit
from latbench.records import Measurement
from latbench.stats import median_ci_dependent, per_round_ratios, relative_halfwidth
from latbench.timing.backend import TimingBackend

SCHEDULES = ("interleaved", "roundrobin", "sequential")
STOP_REASONS = ("converged", "max_time", "max_rounds", "failed")


@dataclass(frozen=True)
class StopPolicy:
    """When to stop warming up and measuring. Times are per item, in seconds.

    Defaults: warm-up of >= 0.2 s and >= 3 calls (CPU; the CUDA defaults in run/options.py use 0.5 s and
    10 calls for clock ramp and cuDNN autotuning); blocks of ~20 ms so two clock reads cost < 0.01 %;
    at least 10 rounds and 0.5 s; stop when every ratio to the baseline (a lone item: its median) has a
    99 % CI within +-1 %, looked at on rounds 10, 12, 15, 18, ... (x1.2), or at 10 s (run/options.CPU_POLICY: 2.5 s). Warm-up stops at
    warmup_max_calls whatever the clock says (a backend reporting 0 s once made 6.8 M calls in 3 s).
    """

    warmup_s: float = 0.2
    warmup_min_iters: int = 3
    block_s: float = 0.02
    min_rounds: int = 10
    max_rounds: int = 100_000  # a backstop only (e.g. a backend that reports 0 s); time limits rule
    min_time_s: float = 0.5
    max_time_s: float = 10.0
    rel_ci: float = 0.01
    prime_iters: int = 1  # untimed calls before a block whose item was just switched in ...
    prime_min_iters: int = 4  # ... when the block holds at least this many calls (else priming costs
    # >= 25 % more wall time, and a call long enough to fill a block dwarfs any cold-cache penalty)
    stop_confidence: float = 0.99  # the interval the stop decision looks at (reported CIs stay 95 %)
    check_growth: float = 1.2  # the stop rule is looked at on rounds min_rounds * growth^k (1.0: every round)
    warmup_max_calls: int = 1_000_000  # warm-up backstop, whatever the backend reports


@dataclass
class _State:
    key: Hashable
    fn: Callable[[], object]
    iters: int = 1
    warmup_iters: int = 0
    warmup_s: float = 0.0
    measured_s: float = 0.0
    error: str | None = None

    def __post_init__(self) -> None:
        self.samples: list[float] = []
        self.rounds: list[int] = []
        self.positions: list[int] = []


def warm_up(fn: Callable[[], object], backend: TimingBackend, policy: StopPolicy) -> tuple[int, float, float]:
    """Run fn until warm-up time and count are met. Returns (calls, seconds, seconds per call).

    Blocks double in size so that short calls are not dominated by per-block costs; the per-call
    estimate comes from the largest block (the least overhead per call), later blocks winning ties.
    """
    n, calls, spent, per_call, largest = 1, 0, 0.0, math.inf, 0
    while (spent < policy.warmup_s or calls < policy.warmup_min_iters) and calls < policy.warmup_max_calls:
        t = backend.time_block(fn, n)
        calls, spent = calls + n, spent + t
        if n >= largest:
            largest, per_call = n, t / n
        remaining = policy.warmup_s - spent
        if per_call <= 0:  # a clock that does not move: grow blocks so the call backstop comes soon
            n *= 2
        else:
            n = max(1, min(n * 2, int(remaining / per_call) if remaining > 0 else 1))
        n = max(1, min(n, policy.warmup_max_calls - calls))
    return calls, spent, per_call


def measure(items: Sequence[tuple[Hashable, Callable[[], object]]], backend: TimingBackend,
            policy: StopPolicy = StopPolicy(), schedule: str = "interleaved", seed: int = 0,
            baselines: dict[Hashable, Hashable] | None = None,
            on_progress: Callable[[int, float], None] | None = None, case_timeout_s: float = 0.0,
            ) -> tuple[dict[Hashable, Measurement], dict[Hashable, str]]:
    """Measure every item; returns ({key: Measurement}, {key: error message} for items that raised).

    baselines: {key: key of its baseline}; each item's paired ratio to its baseline must converge
        too (default: the first item is everyone's baseline).
    on_progress(round, seconds measured so far) is called after every round.
    case_timeout_s: an item's warm-up, and each of its timed blocks, fails it with "timed out" when
        it takes longer (0: no limit; see latbench/faults.py for what cannot be interrupted).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")
    states = [_State(key, fn) for key, fn in items]
    if not states:
        return {}, {}
    baselines = baselines if baselines is not None else {st.key: states[0].key for st in states}
    rng = random.Random(seed)
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()  # a collection inside a timed block is noise, not the model's cost (as timeit does)
    try:
        for st in states:
            _guard(st, lambda st=st: _warm(st, backend, policy), case_timeout_s)
        live = [st for st in states if st.error is None]
        if schedule == "sequential":
            reasons = {st.key: _rounds([st], backend, policy, rng, {}, False, on_progress, case_timeout_s)
                       for st in live}
        else:
            reason = _rounds(live, backend, policy, rng, baselines, schedule == "interleaved", on_progress,
                             case_timeout_s)
            reasons = {st.key: reason for st in live}
    finally:
        if gc_was_enabled:
            gc.enable()
    done = {st.key: Measurement(samples_s=tuple(st.samples), iters_per_sample=st.iters, rounds=tuple(st.rounds),
                                positions=tuple(st.positions), warmup_iters=st.warmup_iters,
                                warmup_s=st.warmup_s, stop_reason=reasons.get(st.key, "failed"))
            for st in states if st.error is None}
    return done, {st.key: st.error for st in states if st.error is not None}


def _warm(st: _State, backend: TimingBackend, policy: StopPolicy) -> None:
    st.warmup_iters, st.warmup_s, per_call = warm_up(st.fn, backend, policy)
    st.iters = max(1, math.ceil(policy.block_s / per_call)) if per_call > 0 else 1


def _guard(st: _State, action: Callable[[], object], limit_s: float = 0.0) -> None:
    """Run action within limit_s; an exception (OOM, unsupported op, timeout) fails this item only."""
    try:
        with time_limit(limit_s):
            action()
    except BaseException as exc:  # noqa: BLE001 - any failure of user/model code is recorded, not raised
        if isinstance(exc, KeyboardInterrupt):  # a real Ctrl-C/SIGTERM stops the run (faults.is_case_fault)
            raise
        st.error = describe(exc)


def _rounds(states: list[_State], backend: TimingBackend, policy: StopPolicy, rng: random.Random,
            baselines: dict[Hashable, Hashable], shuffle: bool, on_progress: Callable[[int, float], None] | None,
            limit_s: float = 0.0) -> str:
    """Time one block of every live item per round until the policy says stop; returns why."""
    order = list(states)
    r = 0
    next_check = policy.min_rounds
    while True:
        if shuffle:
            rng.shuffle(order)
        switching = len(order) > 1
        for pos, st in enumerate(order):
            if st.error is not None:
                continue
            _guard(st, lambda st=st, pos=pos: _one_block(st, backend, policy, r, pos, switching), limit_s)
        r += 1
        live = [st for st in states if st.error is None]
        if on_progress:
            on_progress(r, max((st.measured_s for st in live), default=0.0))
        if not live:
            return "failed"
        look = r >= next_check
        reason = _should_stop(live, policy, r, baselines, look)
        if reason:
            return reason
        if look and r >= policy.min_rounds and all(st.measured_s >= policy.min_time_s for st in live):
            next_check = max(r + 1, math.ceil(r * policy.check_growth))


def _one_block(st: _State, backend: TimingBackend, policy: StopPolicy, r: int, pos: int, switching: bool) -> None:
    if switching and st.iters >= policy.prime_min_iters:
        for _ in range(policy.prime_iters):
            st.fn()
    t = backend.time_block(st.fn, st.iters)
    st.samples.append(t / st.iters)
    st.rounds.append(r)
    st.positions.append(pos)
    st.measured_s += t


def _should_stop(live: list[_State], policy: StopPolicy, rounds: int,
                 baselines: dict[Hashable, Hashable], look: bool = True) -> str | None:
    """Why to stop after this round (STOP_REASONS), or None. The convergence test runs only when
    `look` (a scheduled check round): see the module docstring on optional stopping."""
    if rounds >= policy.max_rounds:
        return "max_rounds"
    if any(st.measured_s >= policy.max_time_s for st in live):
        return "max_time"
    if not look or rounds < policy.min_rounds or any(st.measured_s < policy.min_time_s for st in live):
        return None
    return "converged" if _converged(live, policy, baselines) else None


def _converged(live: list[_State], policy: StopPolicy, baselines: dict[Hashable, Hashable]) -> bool:
    """Every ratio to a live baseline within target; items with nothing to compare with: their median."""
    by_key = {st.key: st for st in live}
    pairs = [(st, by_key.get(baselines.get(st.key))) for st in live]
    compared = any(base is not None and base is not st for st, base in pairs)
    for st, base in pairs:
        if base is not None and base is not st:
            ratios = per_round_ratios(st.samples, st.rounds, base.samples, base.rounds)
            if not ratios:
                return False
            lo, hi = median_ci_dependent(ratios, policy.stop_confidence, conservative=True)
            if not relative_halfwidth(lo, hi, statistics.median(ratios)) <= policy.rel_ci:
                return False
        elif not compared or not any(b is st for _, b in pairs):
            lo, hi = median_ci_dependent(st.samples, policy.stop_confidence, conservative=True)
            if not relative_halfwidth(lo, hi, statistics.median(st.samples)) <= policy.rel_ci:
                return False
    return True
