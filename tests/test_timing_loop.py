"""The measurement loop on a fake clock: exact block sizing, warm-up, stopping, drift, failures."""

import statistics

import pytest

from fakes import FakeClock, FakeWork
from latbench.stats import paired_ratio
from latbench.timing.cpu import CpuBackend
from latbench.timing.loop import StopPolicy, measure, warm_up


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
