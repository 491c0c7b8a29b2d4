"""What a run is asked to do, checked; and the one place stop rules are built.

`RunOptions` is the parsed form of `latbench run`'s options (the API and `ab` fill in the same
record). `stop_policy` turns a device's default, --quick, --max-time/--min-time/--target and the
number of worker processes into the StopPolicy that timing/loop.py obeys: no other module builds one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latbench import faults
from latbench.errors import DeviceError, LatbenchError
from latbench.timing.loop import StopPolicy

# The device's default stop rule. CPU: at most 2.5 s per case (the full G1-G4 x1/x2/x4 run within
# ~3 min on 2 shared cores; a max_time stop does not depend on the data, so intervals keep their
# coverage). CUDA: >= 0.5 s and >= 10 calls of warm-up for clock ramp-up and cuDNN autotuning.
CPU_POLICY = StopPolicy(max_time_s=2.5)
CUDA_POLICY = StopPolicy(warmup_s=0.5, warmup_min_iters=10)
DEVICE_POLICIES = {"cpu": CPU_POLICY, "cuda": CUDA_POLICY}
# --quick: a smoke-test budget (all four guidelines in well under a minute on 2 CPU cores).
QUICK_POLICY = StopPolicy(warmup_s=0.05, warmup_min_iters=2, block_s=0.01, min_rounds=5,
                          min_time_s=0.05, max_time_s=0.3, rel_ci=0.02)

# Worker processes per group (issue 21): a group measured in N processes spread over the run, its
# ratio CI pooled over them (stats.pool_processes), so the interval includes how far a new process
# lands. 6 processes: a t interval on 5 degrees of freedom (t = 2.57; 3 processes: t = 4.30) at about
# the wall time of one process (stop_policy shares the budget). Each process costs a fork, a build, a
# count and a warm-up of every case (~0.75 s per group on 2 loaded cores): 8 processes took 1.4-1.6x
# a one-process run there (docs/intervals.md has the measurements).
DEFAULT_REPEATS = 6
QUICK_REPEATS = 1  # --quick is a smoke test: one process, its interval labelled within one process
REPRODUCE_REPEATS = 3  # the --repeats hint's example
# A worker's warm-up on CPU when the budget is shared by N processes: the device's warm-up / N, but at
# least this, and at least CPU_WORKER_WARMUP_CALLS calls: a fresh process's first call (allocation,
# oneDNN primitive creation) is in the untimed warm-up, and so is a second, warm one. Three calls in
# each of 6 processes was a third of a default run's extra time on 2 loaded cores (the x4 cases).
CPU_WORKER_WARMUP_S = 0.02
CPU_WORKER_WARMUP_CALLS = 2
# N processes measure 80 % of one process's max time between them: the other 20 % pays for their own
# warm-ups, builds and counting, so a default run takes about the time of a one-process run (measured:
# docs/intervals.md). Where the stop rule converges first (a quiet machine), nothing is cut.
SHARED_BUDGET = 0.8
MAX_REPEATS = 50
MAX_SEED = 2**63 - 1  # torch.manual_seed takes a 64-bit integer
SCHEDULES = ("interleaved", "roundrobin", "sequential")


@dataclass(frozen=True)
class RunOptions:
    """What a run was asked to do (None = the default)."""

    suites: tuple[Path, ...] = ()
    device: str = "cpu"
    quick: bool = False
    threads: int | None = None
    schedule: str = "interleaved"
    widths: str | None = None
    platform: str | None = None
    batch: int | None = None
    modes: str | None = None  # comma-separated, as given
    max_time: float | None = None
    min_time: float | None = None
    target: float | None = None
    cudnn_benchmark: bool = True
    latency: str = "throughput"  # latency semantics: "throughput" or "single" (latbench.timing.cuda)
    l2: str = "warm"  # "warm" or "flushed" (cuda only)
    results_dir: Path | None = Path("results")  # None: rows stay in memory (latbench.measure without results_dir)
    seed: int = 0
    resume: Path | None = None
    case_timeout: float = faults.DEFAULT_CASE_TIMEOUT_S
    profile: bool = False
    roofline: bool = True
    allow_import: bool = False
    argv: tuple[str, ...] = ("latbench",)  # the command line: recorded, and the base of resume hints
    fake_backend: bool | None = None  # None: $LATBENCH_FAKE_BACKEND decides (tests)
    models: Any = None  # suite.adhoc.ModelRequest: models named by --model, run as one more suite
    isolate: bool = False  # accepted for older command lines: groups run in worker processes by default
    in_process: bool = False  # measure in this process, not in worker processes (debugging, profiling)
    max_cases: int | None = None  # a suite expanding to more cases is refused (None: suite.load.DEFAULT_MAX_CASES)
    repeats: int | None = None  # worker processes per group (run/workers.py); None: DEFAULT_REPEATS
    api: bool = False  # called from Python: warnings name keyword arguments (max_time=), not flags (--max-time)
    # many machines (issue 26; latbench/run/merge.py, latbench/run/fleet.py)
    shard: str | None = None  # "i/n": this run measures groups i-1, i-1+n, ... of each suite (merge joins them)
    on: str | None = None  # "ray" or "ray://ADDRESS": every group a Ray task on a node having the device
    devices: tuple[str, ...] | None = None  # --on ray: device pools, one run file each (cuda, cpu, KIND)


def option_name(name: str, api: bool) -> str:
    """How a remedy names an option to the caller: '--max-time' on the command line, 'max_time=' in Python."""
    return f"{name}=" if api else "--" + name.replace("_", "-")


def check_options(opts: RunOptions) -> None:
    """LatbenchError for option values no run can use (typer has checked types and minimums)."""
    flag = lambda n: option_name(n, opts.api)  # noqa: E731
    if not 0 <= opts.seed <= MAX_SEED:
        raise LatbenchError(f"{flag('seed')} {opts.seed} is out of range", hint=f"use an integer from 0 to {MAX_SEED}")
    if math.isnan(opts.case_timeout):
        raise LatbenchError(f"{flag('case_timeout')} nan is not a number of seconds",
                            hint="use e.g. 600, or 0 for no limit")
    for name, v in (("max_time", opts.max_time), ("min_time", opts.min_time), ("target", opts.target)):
        if v is not None and not math.isfinite(v):
            raise LatbenchError(f"{flag(name)} {v} is not a finite number", hint=f"give {flag(name)} a finite value")
    if opts.schedule not in SCHEDULES:
        raise LatbenchError(f"schedule {opts.schedule!r} is unknown", where=flag("schedule"),
                            hint="use " + ", ".join(SCHEDULES))
    repeat_count(opts)


def repeat_count(opts: RunOptions) -> int:
    """--repeats, checked (LatbenchError outside 1..MAX_REPEATS); the default when not given."""
    n = default_repeats(opts) if opts.repeats is None else opts.repeats
    if not 1 <= n <= MAX_REPEATS:
        raise LatbenchError(f"--repeats {n}: must be 1 to {MAX_REPEATS}", where="--repeats",
                            hint=f"use e.g. --repeats {REPRODUCE_REPEATS} (processes per group)")
    if n > 1 and opts.in_process:
        raise LatbenchError(f"{option_name('repeats', opts.api)} {n} measures each group in {n} worker processes, "
                            f"but {option_name('in_process', opts.api)} asks for none", where="--in-process",
                            hint="drop one of the two")
    return n


def default_repeats(opts: RunOptions) -> int:
    """Processes per group when --repeats is not given: DEFAULT_REPEATS; one with --in-process and for
    latbench.measure() (its models live in the calling process), and with the fake timing backend (tests
    and dry runs: its numbers are not latencies, so there is no between-process spread to pool);
    QUICK_REPEATS with --quick."""
    from latbench.devices import fake_requested

    fake = fake_requested() if opts.fake_backend is None else opts.fake_backend
    if opts.in_process or opts.api or fake:
        return 1
    return QUICK_REPEATS if opts.quick else DEFAULT_REPEATS


def parse_modes(modes: str | None, device: Any) -> tuple[str, ...]:
    """--modes as a tuple, checked against what the device's backend can time."""
    available = device.backend.modes
    mode_list = tuple(m.strip() for m in modes.split(",") if m.strip()) if modes else available
    unknown = [m for m in mode_list if m not in available]
    if unknown or not mode_list:
        raise DeviceError(f"--modes {modes!r}: {', '.join(unknown) or 'empty'} not available on {device.name}",
                          hint=f"use a subset of {','.join(available)}")
    return mode_list


def stop_policy(device: str, *, quick: bool = False, max_time: float | None = None, min_time: float | None = None,
                target: float | None = None, processes: int = 1) -> StopPolicy:
    """The stop rule of one process measuring a group on `device` ("cpu", "cuda").

    The device's default (or --quick's), with --max-time/--min-time/--target applied (min time never
    above max time). With `processes` > 1 (each group measured in N worker processes and pooled), the
    budget is shared: each process measures at most SHARED_BUDGET * max_time_s / N (never below
    min_time_s / N) and at least min_time_s / N, stops at
    rel_ci * sqrt(N) (N agreeing processes pool to about one process's target), and on CPU warms up for
    warmup_s / N (at least CPU_WORKER_WARMUP_S) and CPU_WORKER_WARMUP_CALLS calls; CUDA keeps its
    warm-up (cuDNN autotuning is per process). N processes then take about the time of one.
    """
    base = QUICK_POLICY if quick else DEVICE_POLICIES[device]
    given = (("max_time_s", max_time), ("min_time_s", min_time), ("rel_ci", target))
    policy = dataclasses.replace(base, **{k: v for k, v in given if v is not None})
    if policy.min_time_s > policy.max_time_s:
        policy = dataclasses.replace(policy, min_time_s=policy.max_time_s)
    if processes > 1:
        if device == "cpu":
            policy = dataclasses.replace(policy, warmup_s=max(min(policy.warmup_s, CPU_WORKER_WARMUP_S),
                                                              policy.warmup_s / processes),
                                         warmup_min_iters=min(policy.warmup_min_iters, CPU_WORKER_WARMUP_CALLS))
        policy = dataclasses.replace(policy, rel_ci=policy.rel_ci * math.sqrt(processes),
                                     max_time_s=max(policy.min_time_s, SHARED_BUDGET * policy.max_time_s) / processes,
                                     min_time_s=policy.min_time_s / processes)
    return policy


def policy_of(opts: RunOptions) -> StopPolicy:
    """The stop rule of one process of a run of `opts`."""
    return stop_policy(opts.device, quick=opts.quick, max_time=opts.max_time, min_time=opts.min_time,
                       target=opts.target, processes=repeat_count(opts))


def run_policy(opts: RunOptions) -> StopPolicy:
    """The run's stop rule as recorded in its metadata (one process's rule before --repeats divides it)."""
    return stop_policy(opts.device, quick=opts.quick, max_time=opts.max_time, min_time=opts.min_time,
                       target=opts.target)
