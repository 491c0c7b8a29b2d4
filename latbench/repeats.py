"""`latbench run --repeats N`: every group measured in N separate worker processes, pooled (issue 16).

Why: inside one process the ratio of two networks is known to a fraction of a percent, yet a new
process (other memory placement, other allocator state, another moment of a shared machine) can
land several percent away. An interval from one process cannot show that spread; N processes can
(pyperf runs 20 worker processes for this reason).

Worker protocol. Workers are forked from a multiprocessing *forkserver* that has imported torch and
latbench once but never run a model or a parallel region: each worker is a fresh process (fresh
allocations, no OpenMP state inherited) that starts in milliseconds instead of seconds. Pass p
(p = 0 .. N-1) is one worker that measures every pending group of the suite once, through
runner.run_specs (the single-process code path), so the N processes of a group are spread over the
whole run, interleaved in time with the other groups' (pass 0 of every group, then pass 1, ...; each
pass starts at another group, so no group is always first). A worker sends over its pipe:
    ("start", label)                     a group is about to be measured
    ("progress", label, rounds)          a round was timed
    ("group", rows, samples)             a group's rows and samples (runner's dicts, picklable)
    ("error", text)                      the worker failed outside any case (the group fails)
and exits. SIGINT is ignored in workers: the parent handles Ctrl-C, terminates the worker and saves
the groups whose N passes are all done.

Pooling (pool_group): per case x mode, the processes' ratios are pooled with stats.pool_processes
(geometric mean, random-effects t interval over the process medians: the interval includes the
between-process variance; ratio_interval "processes-t"); latencies likewise; spread columns come
from all samples. Each process stops on its own at rel_ci * sqrt(N) (the pooled interval of N
agreeing processes is about 1/sqrt(N) of one process's), within max_time_s / N, so N processes cost
about what one did. Where the processes disagree by more than their own intervals (Pooled.unstable),
the row gets ratio_unstable=True and a warning with the measured spread.

Samples keep their process (`process` column); rounds are numbered on across processes (process 1's
first round follows process 0's last), so every reader that pairs samples by (run, round) still pairs
samples of one process and one round.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing as mp
import signal
import sys
from collections import Counter
from typing import Any, Callable, Iterator

from latbench import devices, roofline, runner
from latbench.records import CaseSpec, Ratio
from latbench.stats import pool_processes, summarize
from latbench.timing.loop import StopPolicy

DEFAULT_REPEATS = 1  # `latbench run`; benchmarks/reproduce.sh asks for REPRODUCE_REPEATS
REPRODUCE_REPEATS = 3  # reproduction runs: 3 processes per group (docs/intervals.md)
MAX_REPEATS = 50

_CONTEXT: Any = None


def _context() -> Any:
    """The forkserver context (preloading torch and the runner), or spawn where there is none."""
    global _CONTEXT
    if _CONTEXT is None:
        try:
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["torch", "latbench.runner", "latbench.repeats"])
        except ValueError:  # no forkserver on this platform
            ctx = mp.get_context("spawn")
        _CONTEXT = ctx
    return _CONTEXT


@contextlib.contextmanager
def _without_main() -> Iterator[None]:
    """Start a worker without re-running the caller's __main__ in it (multiprocessing would import the
    main script again: a script that calls latbench at top level would run itself recursively). The
    worker's entry point lives in this module, so it needs nothing from __main__."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved_file, saved_spec = main.__dict__.pop("__file__", None), getattr(main, "__spec__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__spec__ = saved_spec
        if saved_file is not None:
            main.__file__ = saved_file


def process_policy(policy: StopPolicy, repeats: int) -> StopPolicy:
    """The stop policy of one of `repeats` processes: target rel_ci * sqrt(N), max_time_s / N (at
    least min_time_s), so that N processes take about the time of one and pool to about its target."""
    if repeats <= 1:
        return policy
    max_time = max(policy.min_time_s, policy.max_time_s / repeats)
    return dataclasses.replace(policy, rel_ci=policy.rel_ci * math.sqrt(repeats), max_time_s=max_time)


@dataclasses.dataclass(frozen=True)
class WorkerJob:
    """What one worker process measures (picklable: no device object, no sampler)."""

    specs: tuple[CaseSpec, ...]
    device: str
    threads: int | None
    cudnn_benchmark: bool
    fake: bool
    run_id: str
    modes: tuple[str, ...]
    schedule: str
    policy: StopPolicy
    seed: int
    case_timeout_s: float
    ceilings: Any
    profile: bool
    telemetry: bool


def _worker(conn: Any, job: WorkerJob) -> None:
    """Entry point of a worker process: measure job.specs group by group, sending each over conn."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    try:
        dev = devices.get(job.device, job.threads, job.cudnn_benchmark, fake=job.fake)
        tele = None
        if job.telemetry:
            from latbench.telemetry import TelemetrySampler

            tele = TelemetrySampler(threads=dev.threads or 1, gpu_index=dev.telemetry_gpu_index())
        cfg = runner.RunConfig(device=dev, run_id=job.run_id, modes=job.modes, schedule=job.schedule,
                               policy=job.policy, threads=dev.threads, seed=job.seed,
                               case_timeout_s=job.case_timeout_s, telemetry=tele, ceilings=job.ceilings,
                               profile=job.profile)
        runner.run_specs(list(job.specs), cfg, dev.backend,
                         lambda rows, samples: conn.send(("group", rows, samples)),
                         lambda label, rounds, _: conn.send(("progress", label, rounds)),
                         lambda label: conn.send(("start", label)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the groups left
        conn.send(("error", f"worker process failed: {type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def passes(groups: list[list[CaseSpec]], repeats: int) -> list[list[list[CaseSpec]]]:
    """The groups each pass measures, in order: pass p starts at group p (mod the number of groups)."""
    n = len(groups)
    return [[groups[(p + i) % n] for i in range(n)] for p in range(repeats)] if n else []


def run_repeats(todo: list[CaseSpec], cfg: runner.RunConfig, repeats: int, fake: bool, cudnn_benchmark: bool,
                on_group_done: Callable[[list[dict], list[dict]], None],
                on_progress: Callable[[str, int, float], None] | None = None,
                on_group_start: Callable[[str], None] | None = None,
                on_warning: Callable[[str], None] | None = None) -> None:
    """Measure every group of `todo` in `repeats` worker processes (one pass each, see the module
    docstring); hand each group's pooled rows and all its samples to on_group_done after its last pass.
    A KeyboardInterrupt in the parent terminates the running worker and propagates."""
    from itertools import groupby

    groups = [list(g) for _, g in groupby(todo, key=lambda s: s.group)]
    labels = [runner.group_label(g[0]) for g in groups]
    got: dict[str, list[tuple[list[dict], list[dict]]]] = {label: [] for label in labels}
    errors: dict[str, list[str]] = {label: [] for label in labels}
    ctx = _context()
    policy = process_policy(cfg.policy, repeats)
    for p, order in enumerate(passes(groups, repeats)):
        job = WorkerJob(specs=tuple(s for g in order for s in g), device=cfg.device_name, threads=cfg.threads,
                        cudnn_benchmark=cudnn_benchmark, fake=fake, run_id=cfg.run_id, modes=cfg.modes,
                        schedule=cfg.schedule, policy=policy, seed=cfg.seed, case_timeout_s=cfg.case_timeout_s,
                        ceilings=cfg.ceilings, profile=cfg.profile, telemetry=cfg.telemetry is not None)
        pending = [runner.group_label(g[0]) for g in order]
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(child, job), daemon=True)
        with _without_main():
            proc.start()
        child.close()
        try:
            while True:
                try:
                    msg = parent.recv()
                except EOFError:
                    break
                if msg[0] == "start":
                    if on_group_start:
                        on_group_start(f"{msg[1]} [process {p + 1}/{repeats}]")
                elif msg[0] == "progress":
                    if on_progress:
                        on_progress(f"{msg[1]} [process {p + 1}/{repeats}]", msg[2], 0.0)
                elif msg[0] == "group":
                    rows, samples = msg[1], msg[2]
                    label = pending.pop(0)
                    got[label].append((rows, samples))
                    if p == repeats - 1 or len(got[label]) == repeats:
                        _finish(label, groups[labels.index(label)], got, errors, cfg, repeats, on_group_done,
                                on_warning)
                elif msg[0] == "error":
                    for label in pending:
                        errors[label].append(msg[1])
            proc.join()
            if pending and proc.exitcode:
                for label in pending:
                    errors[label].append(f"worker process {p + 1} died (exit code {proc.exitcode})")
        except BaseException:
            proc.terminate()
            proc.join(5)
            raise
        finally:
            parent.close()
        for label in pending:  # groups this pass could not measure
            if p == repeats - 1:
                _finish(label, groups[labels.index(label)], got, errors, cfg, repeats, on_group_done, on_warning)


def _finish(label: str, specs: list[CaseSpec], got: dict, errors: dict, cfg: runner.RunConfig, repeats: int,
            on_group_done: Callable, on_warning: Callable[[str], None] | None) -> None:
    per_process = got.pop(label, [])
    if not per_process:  # no pass measured it: failed rows
        err = "; ".join(dict.fromkeys(errors.get(label) or ["no worker process measured this group"]))
        rows = [runner.make_row(s, None, m, None, None, err, cfg, None) for s in specs
                for m in ((s.mode,) if s.mode else cfg.modes)]
        on_group_done(rows, [])
        return
    rows, samples = pool_group(per_process, cfg.ceilings)
    for r in rows:
        if r.get("ratio_unstable") and on_warning:
            on_warning(f"{label} {r['case']} ({r['mode']}): {_unstable_text(r)}")
    on_group_done(rows, samples)


def _unstable_text(row: dict[str, Any]) -> str:
    return (f"unstable ratio: moved {row['ratio_process_spread_pct']:.1f}% between {row['repeats']} processes "
            f"(sd {row['ratio_between_pct']:.1f}%), more than one process's own interval; the pooled CI "
            f"includes that spread, the number will not hold to a single run's precision")


def pool_group(per_process: list[tuple[list[dict], list[dict]]], ceilings: Any = None
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One group's rows and samples from its processes (each runner's (rows, samples)): rows pooled
    per case x mode (module docstring), samples tagged with `process` and their rounds numbered on."""
    samples: list[dict[str, Any]] = []
    offset = 0
    for p, (_, smp) in enumerate(per_process):
        last = -1
        for s in smp:
            samples.append({**s, "process": p, "round": s["round"] + offset})
            last = max(last, s["round"])
        offset += last + 1
    k = len(per_process)
    out = []
    for i, first in enumerate(per_process[0][0]):
        rows = [rs[i] for rs, _ in per_process if i < len(rs)]
        out.append(_pool_rows(rows, [s for s in samples if _same(s, first)], k, ceilings))
    return out, samples


_IDENTITY = ("case", "mode", "experiment", "scale", "batch", "dtype", "memory_format")


def _same(sample: dict[str, Any], row: dict[str, Any]) -> bool:
    return all(sample.get(c) == row.get(c) for c in _IDENTITY)


def _pool_rows(rows: list[dict[str, Any]], samples: list[dict[str, Any]], k: int, ceilings: Any) -> dict[str, Any]:
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:  # failed or skipped in every process: the first one's reason
        row = dict(rows[0])
        row.update(repeats=k)
        return row
    row = dict(ok[0])
    lat = pool_processes([Ratio(r["latency_ms"], r["latency_ci_low_ms"], r["latency_ci_high_ms"], r["samples"])
                          for r in ok])
    s = summarize([x["latency_ms"] / 1e3 for x in samples]) if samples else None
    if s is not None:
        row.update(latency_mean_ms=s.mean_ms, latency_p10_ms=s.p10_ms, latency_p90_ms=s.p90_ms,
                   latency_p99_ms=s.p99_ms, latency_iqr_ms=s.iqr_ms, samples=s.n, outliers=s.outliers)
    row.update(latency_ms=lat.value, latency_ci_low_ms=lat.ci_low, latency_ci_high_ms=lat.ci_high,
               images_per_s=1e3 * row["batch"] / lat.value, batches_per_s=1e3 / lat.value,
               stop_reason=Counter(r["stop_reason"] for r in ok).most_common(1)[0][0], repeats=len(ok),
               warmup_iters=sum(int(r.get("warmup_iters") or 0) for r in ok))
    warnings = [w for w in str(row.get("warnings") or "").split(" | ") if w and not w.startswith(("noisy", "ratio +-"))]
    if len(ok) < k:
        warnings.append(f"{k - len(ok)} of {k} processes failed: {next((r['error'] for r in rows if r.get('error')), '')}")
    ratios = [Ratio(r["ratio_to_baseline"], r["ratio_ci_low"], r["ratio_ci_high"], int(r.get("samples") or 0),
                    interval=str(r.get("ratio_interval") or "")) for r in ok if r.get("ratio_to_baseline") is not None]
    if ratios:
        pooled = pool_processes(ratios)
        is_base = row["case"] == row["baseline_case"]
        ratio = pooled.as_ratio(sum(r.n for r in ratios))
        row.update(ratio_to_baseline=ratio.value, ratio_ci_low=ratio.ci_low, ratio_ci_high=ratio.ci_high,
                   ratio_differs=False if is_base else ratio.differs, ratio_interval=pooled.interval,
                   ratio_process_spread_pct=100 * pooled.spread_rel, ratio_between_pct=100 * pooled.between_rel,
                   ratio_unstable=bool(pooled.unstable and not is_base))
        if row["ratio_unstable"]:
            warnings.append(_unstable_text(row))
        rel = (ratio.ci_high - ratio.ci_low) / 2 / ratio.value if ratio.value > 0 else math.inf
        if not is_base and rel > runner.NOISY_REL_CI:
            warnings.append(f"ratio +-{100 * rel:.1f}%: the ratio to {row['baseline_case']} is known to "
                            f"+-{100 * rel:.1f}% (95% CI over {len(ok)} processes); more --repeats or a quieter "
                            f"machine narrow it")
    row["warnings"] = " | ".join(warnings)
    row.update(roofline.row_columns(row.get("flops"), row.get("mac_bytes"), row["latency_ms"], ceilings))
    return row
