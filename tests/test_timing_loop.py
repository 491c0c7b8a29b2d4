"""The measurement loop on a fake clock: exact block sizing, warm-up, stopping, drift, failures."""

import math
import random
import statistics
import types

import pytest

from fakes import FakeClock, FakeWork
from latbench.stats import median_ci, paired_ratio, per_round_ratios
from latbench.timing import loop
from latbench.timing.cpu import CpuBackend
from latbench.timing.loop import STOP_REASONS, StopPolicy, measure, warm_up


def policy(**kw):
    base = dict(warmup_s=0.01, warmup_min_iters=3, block_s=0.01, min_rounds=10, max_rounds=40,
                min_time_s=0.05, max_time_s=1.0, rel_ci=0.01, prime_iters=1)
    base.update(kw)
    return StopPolicy(**base)


def test_block_is_sized_so_clock_reads_are_negligible():
    clock = FakeClock(read_ns=10_000)  # a terrible 10 us clock read
    work = FakeWork(clock, cost_s=5e-6)  # on a 5 us op
    done, failed = measure([("a", work)], CpuBackend(clock), policy(max_rounds=12))
    m = done["a"]
    assert not failed
    # a 10 ms block of 5 us calls: 2000 calls, so two 10 us reads add 0.1 % per block
    assert m.iters_per_sample >= 1900
    assert all(abs(s - 5e-6) / 5e-6 < 0.02 for s in m.samples_s)


def test_warm_up_meets_time_and_count_and_is_kept_apart():
    clock = FakeClock()
    work = FakeWork(clock, cost_s=1e-3)
    calls, spent, per_call = warm_up(work, CpuBackend(clock), policy(warmup_s=0.05, warmup_min_iters=3))
    assert calls >= 50 and spent >= 0.05 and per_call == pytest.approx(1e-3)
    done, _ = measure([("a", work)], CpuBackend(clock), policy(warmup_s=0.05))
    m = done["a"]
    assert m.warmup_iters >= 50
    # warm-up calls are not among the samples: calls = warm-up (twice: warm_up() above) + timed;
    # a lone item is never switched out, so no priming call precedes its blocks
    assert work.calls == m.warmup_iters * 2 + len(m.samples_s) * m.iters_per_sample


def test_priming_call_only_when_items_switch_and_blocks_are_long_enough():
    clock = FakeClock()
    short, long_ = FakeWork(clock, 1e-3), FakeWork(clock, 8e-3)  # 10 calls vs 2 calls per 10 ms block
    done, _ = measure([("s", short), ("l", long_)], CpuBackend(clock), policy())
    s, l_ = done["s"], done["l"]
    assert s.iters_per_sample == 10 and l_.iters_per_sample == 2
    assert short.calls == s.warmup_iters + len(s.samples_s) * (s.iters_per_sample + 1)
    assert long_.calls == l_.warmup_iters + len(l_.samples_s) * l_.iters_per_sample


def test_stops_when_converged_on_a_steady_machine():
    clock = FakeClock()
    done, _ = measure([("a", FakeWork(clock, 1e-3)), ("b", FakeWork(clock, 2e-3))], CpuBackend(clock), policy())
    assert done["a"].stop_reason == "converged"
    assert len(done["a"].samples_s) == 10  # min_rounds, and min_time 0.05 s = 5 blocks of 10 ms


def test_stops_at_max_rounds_when_noise_never_allows_the_target():
    clock = FakeClock()
    items = [("a", FakeWork(clock, 1e-3, noise=0.3, seed=1))]
    done, _ = measure(items, CpuBackend(clock), policy(max_rounds=15, rel_ci=0.0001))
    assert done["a"].stop_reason == "max_rounds" and len(done["a"].samples_s) == 15


def _drifting_run(schedule: str, seed: int) -> float:
    """A machine that is 40 % slower in the second half of the run; b costs 1.5x a."""
    clock = FakeClock()
    speed = lambda t: 1.0 if (t % 1.2) < 0.6 else 1.4  # noqa: E731
    a = FakeWork(clock, 1e-3, speed=speed, noise=0.01, seed=seed)
    b = FakeWork(clock, 1.5e-3, speed=speed, noise=0.01, seed=seed + 1)
    done, _ = measure([("a", a), ("b", b)], CpuBackend(clock),
                      policy(min_rounds=40, max_rounds=40, max_time_s=10, rel_ci=0.0), schedule=schedule, seed=seed)
    ra = done["a"]
    rb = done["b"]
    return paired_ratio(rb.samples_s, rb.rounds, ra.samples_s, ra.rounds).value


def test_interleaved_ratio_survives_drift_that_breaks_sequential():
    inter = [_drifting_run("interleaved", s) for s in range(5)]
    seq = [_drifting_run("sequential", s) for s in range(5)]
    assert all(abs(r - 1.5) / 1.5 < 0.03 for r in inter), inter
    # sequential: a is measured while the machine is fast, b while it is slow
    assert statistics.mean(seq) > 1.5 * 1.15, seq


def test_a_failing_item_is_reported_and_the_others_go_on():
    clock = FakeClock()
    bad = FakeWork(clock, 1e-3, fail_after=20)
    done, failed = measure([("ok", FakeWork(clock, 1e-3)), ("bad", bad)], CpuBackend(clock), policy())
    assert "bad" in failed and "out of memory" in failed["bad"]
    assert done["ok"].stop_reason == "converged"
    assert "bad" not in done


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="schedule"):
        measure([("a", lambda: None)], CpuBackend(), policy(), schedule="random")


# --- issue 16: stop on the ratios, at geometrically spaced looks; issue 13 item 8: warm-up backstop ---

def test_group_converges_on_its_ratios_while_the_machine_drifts():
    """Both items slow down together by up to 30 % over the run: their absolute medians never get
    a +-1 % interval (the old rule waited for them until max_time), their ratio does at once."""
    clock = FakeClock()
    speed = lambda t: 1.0 + 0.3 * math.sin(t)  # noqa: E731
    a = FakeWork(clock, 1e-3, speed=speed, noise=0.002, seed=1)
    b = FakeWork(clock, 2e-3, speed=speed, noise=0.002, seed=2)
    done, _ = measure([("a", a), ("b", b)], CpuBackend(clock), policy(max_rounds=400, max_time_s=2.0))
    assert done["b"].stop_reason == done["a"].stop_reason == "converged"
    assert len(done["a"].samples_s) < 40
    lo, hi = median_ci(done["a"].samples_s)
    assert (hi - lo) / 2 / statistics.median(done["a"].samples_s) > 0.01  # the median alone is not known


def test_a_lone_item_converges_on_its_own_median():
    clock = FakeClock()
    done, _ = measure([("a", FakeWork(clock, 1e-3, noise=0.01, seed=3))], CpuBackend(clock), policy(max_rounds=400))
    m = done["a"]
    assert m.stop_reason == "converged"
    lo, hi = median_ci(m.samples_s)
    assert (hi - lo) / 2 / statistics.median(m.samples_s) <= 0.01


def test_the_stop_rule_is_looked_at_on_geometrically_spaced_rounds():
    looks = []
    real = loop._should_stop

    def spy(live, policy_, rounds, baselines, look=True):
        if look:
            looks.append(rounds)
        return real(live, policy_, rounds, baselines, look)

    clock = FakeClock()
    items = [("a", FakeWork(clock, 1e-3, noise=0.05, seed=4)), ("b", FakeWork(clock, 1e-3, noise=0.05, seed=5))]
    orig, loop._should_stop = loop._should_stop, spy
    try:
        done, _ = measure(items, CpuBackend(clock), policy(max_rounds=200, max_time_s=100, rel_ci=0.001))
    finally:
        loop._should_stop = orig
    assert done["a"].stop_reason == "max_rounds"
    assert looks[:8] == [10, 12, 15, 18, 22, 27, 33, 40]  # min_rounds x 1.2^k, rounded up
    assert len(looks) < 20  # not 190 looks, each a chance to stop on a lucky stretch


def test_min_time_delays_the_first_look():
    looks = []
    real = loop._should_stop

    def spy(live, policy_, rounds, baselines, look=True):
        looks.append((rounds, look))
        return real(live, policy_, rounds, baselines, look)

    clock = FakeClock()
    orig, loop._should_stop = loop._should_stop, spy
    try:
        measure([("a", FakeWork(clock, 1e-3, noise=0.05, seed=6))], CpuBackend(clock),
                policy(min_rounds=2, min_time_s=0.1, max_rounds=60, max_time_s=100, rel_ci=0.0001))
    finally:
        loop._should_stop = orig
    # 10 ms blocks: 0.1 s is met after round 10; every round until then is a look, then x1.2
    assert [r for r, look in looks if look][:12] == [*range(2, 11), 12, 15, 18]


class _Ar1Speed:
    """Per-item slowness that persists from one call to the next (AR(1) in log space)."""

    def __init__(self, seed, phi, sd):
        self.rng, self.phi, self.sd = random.Random(seed), phi, sd
        self.x = self.rng.gauss(0.0, sd)

    def __call__(self, t):
        self.x = self.phi * self.x + self.rng.gauss(0.0, self.sd * math.sqrt(1 - self.phi ** 2))
        return math.exp(self.x)


def _covered_at_stop(seed, phi, sd, rel, **kw):
    """One measured pair b/a (true median ratio 1.5) on a fake clock; does the reported interval hold it?"""
    clock = FakeClock()
    a = FakeWork(clock, 1e-3, speed=_Ar1Speed(3 * seed, phi, sd))
    b = FakeWork(clock, 1.5e-3, speed=_Ar1Speed(3 * seed + 1, phi, sd))
    p = dict(warmup_s=0.0, warmup_min_iters=1, block_s=1e-6, min_rounds=10, max_rounds=5000, min_time_s=0,
             max_time_s=1e9, rel_ci=rel)
    done, _ = measure([("a", a), ("b", b)], CpuBackend(clock), StopPolicy(**{**p, **kw}), seed=seed)
    ma, mb = done["a"], done["b"]
    assert ma.stop_reason == "converged"
    r = paired_ratio(mb.samples_s, mb.rounds, ma.samples_s, ma.rounds)
    old_lo, old_hi = median_ci(per_round_ratios(mb.samples_s, mb.rounds, ma.samples_s, ma.rounds))
    return r.ci_low <= 1.5 <= r.ci_high, old_lo <= 1.5 <= old_hi


@pytest.fixture
def no_gc_collect(monkeypatch):
    """measure() runs gc.collect() once per call (~30 ms with torch loaded): not what these tests time."""
    monkeypatch.setattr(loop, "gc", types.SimpleNamespace(collect=lambda: 0, isenabled=lambda: False,
                                                          disable=lambda: None, enable=lambda: None))


def test_coverage_at_the_stop_holds_on_independent_rounds(no_gc_collect):
    hits = [_covered_at_stop(s, 0.0, 0.05, 0.03)[0] for s in range(300)]
    assert sum(hits) / len(hits) >= 0.94


@pytest.mark.slow
def test_coverage_at_the_stop_holds_on_autocorrelated_rounds_where_the_old_rule_did_not(no_gc_collect):
    """Rounds that remember the last one (phi = 0.4): the old rule (a 95 % interval as if rounds were
    independent, looked at every round) stops on a lucky stretch (89 % with these seeds); the new one
    keeps >= 94 % (96.7 % with these seeds; 92-97 % on other blocks of seeds, see loop.py)."""
    new = [_covered_at_stop(s, 0.4, 0.05, 0.03)[0] for s in range(300)]
    old = [_covered_at_stop(s, 0.4, 0.05, 0.03, stop_confidence=0.95, check_growth=1.0)[1] for s in range(100)]
    assert sum(new) / len(new) >= 0.94
    assert sum(old) / len(old) < 0.92


class _ZeroClockBackend:
    """A backend that reports 0 s for every block (a broken timer); refuses to run away."""

    def __init__(self):
        self.blocks = self.calls = 0

    def time_block(self, fn, iters):
        self.blocks += 1
        self.calls += iters
        if self.blocks > 500:
            raise RuntimeError("warm-up ran away")
        return 0.0


def test_warm_up_stops_at_the_call_backstop_when_the_clock_reports_zero():
    backend = _ZeroClockBackend()
    calls, spent, per_call = warm_up(lambda: None, backend, policy(warmup_s=0.2, warmup_max_calls=10_000))
    assert calls == backend.calls == 10_000 and spent == 0.0 and per_call == 0.0
    assert backend.blocks <= 15  # blocks double: log2(10 000) + 1, not 10 000 blocks of one call
    assert StopPolicy().warmup_max_calls <= 1_000_000


def test_every_stop_reason_is_documented():
    assert set(STOP_REASONS) == {"converged", "max_time", "max_rounds", "failed"}
    for reason in STOP_REASONS:
        assert reason in loop.__doc__
