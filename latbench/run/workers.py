"""Worker processes: one protocol (pyperf's manager/worker split) for every way latbench measures a
group outside the calling process.

A `Job` is a picklable recipe (the groups, how to make the device, the measurement settings); a
worker re-creates the device from it, measures its groups one by one through the pipeline
(run/pipeline.py, the same code as in-process runs) and sends over a pipe:
    ("start", label)             a group is about to be measured
    ("progress", label, rounds)  a round was timed
    ("group", rows, samples)     a group's Rows and samples
    ("error", text)              the worker failed outside any case
and exits. The manager (`run_job`) reads the pipe, enforces a hard time limit per group (a call
stuck in native code that SIGALRM cannot interrupt), and says why a worker that died died. SIGINT
is ignored in workers: the manager handles Ctrl-C and stops the worker.

Workers are forked from a multiprocessing *forkserver* that has imported torch and latbench once but
never touched a device: each worker is a fresh process (fresh allocations, no OpenMP or CUDA state
inherited) that starts in milliseconds, on a machine with or without a CUDA context in the manager.
The worker takes the manager's working directory, sys.path and environment variables as they are
when the job starts (not as they were when the forkserver started), so user code sees what it would
see in the manager; variables a library reads once at load (OMP_NUM_THREADS) are the server's.

`measure_groups` measures every group in N processes (--repeats N): N passes, each a worker measuring
every pending group once, so a group's N processes are spread over the whole run (each pass starts at
another group); the processes' rows are pooled (rows.pool) once a group's last pass is in. A worker
that dies (a crash, os._exit, the OOM killer) or is stopped at its hard limit ends one group: its
cases are retried each alone, so only the culprit fails, and a new worker goes on with the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
import pickle
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from latbench import faults
from latbench.records import CaseSpec
from latbench.run.pipeline import RunConfig, run_group
from latbench.run.rows import failed_rows, pool
from latbench.timing.loop import StopPolicy

GRACE_S = 2.0  # a worker gets this long beyond its own limits before it is killed
GroupDone = Callable[[list[Any], list[dict[str, Any]]], None]


@dataclass(frozen=True)
class DeviceRecipe:
    """How a worker makes the manager's device (devices.get's arguments)."""

    name: str
    threads: int | None
    cudnn_benchmark: bool = True
    fake: bool = False
    latency: str = "throughput"
    l2: str = "warm"

    @classmethod
    def of(cls, opts: Any) -> "DeviceRecipe":
        """The device a run's options ask for (RunOptions; $LATBENCH_FAKE_BACKEND read once, here)."""
        from latbench import devices

        return cls(opts.device, opts.threads, opts.cudnn_benchmark,
                   devices.fake_requested() if opts.fake_backend is None else opts.fake_backend, opts.latency, opts.l2)

    def make(self) -> Any:
        from latbench import devices

        return devices.get(self.name, self.threads, self.cudnn_benchmark, fake=self.fake, latency=self.latency,
                           l2=self.l2)


@dataclass(frozen=True)
class Job:
    """What one worker measures (picklable: no device object, no sampler)."""

    groups: tuple[tuple[CaseSpec, ...], ...]
    recipe: DeviceRecipe
    run_id: str
    modes: tuple[str, ...]
    schedule: str
    policy: StopPolicy
    seed: int
    case_timeout_s: float
    ceilings: Any = None
    profile: bool = False
    telemetry: bool = False
    manager_gpu_processes: int = 0  # compute processes of latbench's own on the GPU besides the worker
    api: bool = False
    cwd: str = ""
    sys_path: tuple[str, ...] = ()
    environ: tuple[tuple[str, str], ...] = ()
    output: str = ""  # a file the worker's fds 1 and 2 write to; the manager copies it to its stderr

    def with_groups(self, groups: Sequence[Sequence[CaseSpec]]) -> "Job":
        return dataclasses.replace(self, groups=tuple(tuple(g) for g in groups))

    def row_context(self) -> Any:
        """The RowContext of rows this job would write, made without a device (for failed rows)."""
        from latbench.run.rows import RowContext

        return RowContext(run_id=self.run_id, device=self.recipe.name, threads=self.recipe.threads,
                          schedule=self.schedule, rel_ci=self.policy.rel_ci, ceilings=self.ceilings, api=self.api)


def job_for(cfg: RunConfig, recipe: DeviceRecipe) -> Job:
    """The Job that measures like `cfg` does in this process (groups added per use)."""
    import torch

    return Job(groups=(), recipe=recipe, run_id=cfg.run_id, modes=cfg.modes, schedule=cfg.schedule,
               policy=cfg.policy, seed=cfg.seed, case_timeout_s=cfg.case_timeout_s, ceilings=cfg.ceilings,
               profile=cfg.profile, telemetry=cfg.telemetry is not None,
               manager_gpu_processes=int(torch.cuda.is_initialized()), api=cfg.api, cwd=os.getcwd(),
               sys_path=tuple(sys.path), environ=tuple(os.environ.items()))


# ---------------------------------------------------------------- the worker side

def _worker(conn: Any, job: Job) -> None:
    """Entry point of a worker process: measure job.groups one by one, sending each over conn."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the manager handles Ctrl-C (and a terminal's hang-up)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if job.output:  # what the worker (user code included) prints: to the manager, which shows it on stderr
        try:
            fd = os.open(job.output, os.O_WRONLY | os.O_APPEND)
        except OSError:  # the manager was interrupted while this worker started, and has removed the file
            return  # an orphan: nobody reads this worker any more (never a traceback on the run's stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    try:
        if job.cwd:
            os.chdir(job.cwd)
        if job.sys_path:
            sys.path[:] = list(job.sys_path)
        if job.environ:  # the forkserver's environment is the one it started with, not the manager's now
            os.environ.clear()
            os.environ.update(dict(job.environ))
        dev = job.recipe.make()
        tele = None
        if job.telemetry:
            from latbench.telemetry import TelemetrySampler

            tele = TelemetrySampler.for_device(dev, own_gpu_processes=1 + job.manager_gpu_processes)
        cfg = RunConfig(device=dev, run_id=job.run_id, modes=job.modes, schedule=job.schedule, policy=job.policy,
                        seed=job.seed, case_timeout_s=job.case_timeout_s, telemetry=tele, ceilings=job.ceilings,
                        profile=job.profile, api=job.api, worker=True)
        from latbench.run.pipeline import import_lazy_modules

        import_lazy_modules()
        for group in job.groups:
            conn.send(("start", group[0].group_label))
            rows, samples = run_group(list(group), cfg, lambda label, r: conn.send(("progress", label, r)))
            conn.send(("group", rows, samples))
    except BaseException as exc:  # noqa: BLE001 - whatever happens, the manager gets a line, not silence
        with contextlib.suppress(BaseException):
            conn.send(("error", f"worker process failed: {faults.describe(exc)}"))
    finally:
        conn.close()


# ---------------------------------------------------------------- the manager side

_CONTEXT: Any = None


def _context() -> Any:
    """The forkserver context (preloading torch and the pipeline), or spawn where there is none."""
    global _CONTEXT
    if _CONTEXT is None:
        try:
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["torch", "latbench.run.workers", "latbench.run.warm"])
        except ValueError:  # no forkserver on this platform
            ctx = mp.get_context("spawn")
        _CONTEXT = ctx
    return _CONTEXT


@contextlib.contextmanager
def _without_main() -> Iterator[None]:
    """Start a worker without re-running the caller's __main__ in it (multiprocessing would import the
    main script again: a script that calls latbench at top level would run itself recursively)."""
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


def group_limit_s(specs: Sequence[CaseSpec], job: Job) -> float:
    """The hard limit of one group in a worker: every case's build/count within --case-timeout, every
    timed block within it, and the stop rule's max time per case (0: no limit)."""
    if not 0 < job.case_timeout_s < faults.MAX_LIMIT_S:
        return 0.0
    n = len(specs) * max(1, len(job.modes))
    return 2 * n * job.case_timeout_s + 2 * n * job.policy.max_time_s + job.policy.warmup_s * n + GRACE_S


@dataclass
class JobResult:
    groups: list[tuple[list[Any], list[dict[str, Any]]]]  # the groups measured, in job order
    error: str | None  # why the worker stopped before its last group (None: it finished)


def run_job(job: Job, on_start: Callable[[str], None] | None = None,
            on_progress: Callable[[str, int], None] | None = None,
            on_group: Callable[[int, list[Any], list[dict[str, Any]]], None] | None = None) -> JobResult:
    """Run `job` in a worker process; each finished group goes to on_group(index, rows, samples) as it
    arrives. A KeyboardInterrupt in the manager kills the worker and propagates."""
    ctx = _context()
    fd, output = tempfile.mkstemp(prefix="latbench-worker-", suffix=".txt")
    os.close(fd)
    try:
        return _run_job(ctx, dataclasses.replace(job, output=output), on_start, on_progress, on_group)
    finally:
        _forward_output(output)


def _forward_output(path: str) -> None:
    """What a worker printed, onto this process's stderr (never its stdout: that carries results)."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace")
        os.unlink(path)
    except OSError:
        return
    if text:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(text)
            sys.stderr.flush()


def _run_job(ctx: Any, job: Job, on_start: Callable[[str], None] | None,
             on_progress: Callable[[str, int], None] | None,
             on_group: Callable[[int, list[Any], list[dict[str, Any]]], None] | None) -> JobResult:
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_worker, args=(send, job), daemon=True)
    try:
        with _without_main():
            proc.start()
    except (OSError, EOFError) as exc:  # the forkserver died (SIGTERM to the process group, the OOM killer)
        receive.close()
        send.close()
        return JobResult([], f"could not start a worker process ({type(exc).__name__}: {exc})")
    except BaseException:  # Ctrl-C/SIGTERM while starting it: no half-started worker left behind
        receive.close()
        send.close()
        with contextlib.suppress(Exception):
            proc.kill()
            proc.join(timeout=5)
        raise
    send.close()
    got: list[tuple[list[Any], list[dict[str, Any]]]] = []
    error: str | None = None
    deadline: float | None = None
    limit = 0.0
    try:
        while len(got) < len(job.groups):
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            try:
                ready = receive.poll(wait)
            except (EOFError, OSError):  # the worker's end went away (BrokenPipeError, a reset)
                error = "died"
                break
            if ready:
                try:
                    msg = receive.recv()
                except (EOFError, OSError, pickle.UnpicklingError):
                    error = "died"
                    break
                if msg[0] == "start":
                    limit = group_limit_s(job.groups[len(got)], job)
                    deadline = time.monotonic() + limit if limit else None
                    if on_start:
                        on_start(msg[1])
                elif msg[0] == "progress":
                    if on_progress:
                        on_progress(msg[1], msg[2])
                elif msg[0] == "group":
                    got.append((msg[1], msg[2]))
                    deadline = None
                    if on_group:
                        on_group(len(got) - 1, msg[1], msg[2])
                elif msg[0] == "error":
                    error = msg[1]
                    break
            elif not proc.is_alive() and not receive.poll(0):
                error = "died"
                break
            elif deadline is not None and time.monotonic() >= deadline:
                proc.kill()
                error = f"timed out after {limit:g} s (hard limit of a worker process; --case-timeout)"
                break
    except BaseException:  # Ctrl-C/SIGTERM while waiting: stop the worker, then stop the run
        with contextlib.suppress(Exception):  # never replace the interrupt by an error of this clean-up
            proc.kill()
            proc.join()
        raise
    finally:
        receive.close()
    proc.join(timeout=30)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        if error is None and len(got) < len(job.groups):
            error = "worker process stopped answering"
    if error == "died" or (error is None and len(got) < len(job.groups)):
        error = _death(proc.exitcode)
    return JobResult(got, error)


def _death(code: int | None) -> str:
    if code is None:
        return "worker process stopped answering"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        why = " (the OOM killer?)" if -code == signal.SIGKILL else ""
        return f"worker process crashed: killed by {name}{why}"
    return f"worker process exited with code {code} before finishing"


# ---------------------------------------------------------------- measuring groups in workers

def passes(groups: list[Any], repeats: int) -> list[list[Any]]:
    """The groups each pass measures, in order: pass p starts at group p (mod the number of groups)."""
    n = len(groups)
    return [[groups[(p + i) % n] for i in range(n)] for p in range(repeats)] if n else []


def _one_pass(order: Sequence[list[CaseSpec]], job: Job, tag: str, on_group: Callable[[int, Any], None],
              on_start: Callable[[str], None] | None, on_progress: Callable[[str, int], None] | None) -> None:
    """Measure `order` in workers, one after the other: when a worker dies inside a group, that group's
    cases are retried each alone in a worker of its own (only the culprit fails; the others are measured
    alone, with no ratio to a baseline in another worker) and a new worker takes the groups after it."""
    start = (lambda label: on_start(label + tag)) if on_start else None
    progress = (lambda label, r: on_progress(label + tag, r)) if on_progress else None
    ctx = job.row_context()
    done = 0
    while done < len(order):
        first = done
        result = run_job(job.with_groups(order[first:]), on_start=start, on_progress=progress,
                         on_group=lambda i, rows, samples: on_group(first + i, (rows, samples)))
        done = first + len(result.groups)
        if result.error is None or done >= len(order):
            break
        group, error = order[done], result.error
        if len(group) == 1:
            on_group(done, (failed_rows(group, job.modes, ctx, error), []))
        else:
            rows: list[Any] = []
            samples: list[dict[str, Any]] = []
            for spec in group:
                alone = run_job(job.with_groups([[spec]]), on_progress=progress)
                r, s = alone.groups[0] if alone.groups else (failed_rows([spec], job.modes, ctx, alone.error or
                                                                         error), [])
                rows.extend(r)
                samples.extend(s)
            on_group(done, (rows, samples))
        done += 1


def measure_groups(groups: Sequence[list[CaseSpec]], job: Job, processes: int, on_group_done: GroupDone,
                   on_progress: Callable[[str, int], None] | None = None,
                   on_group_start: Callable[[str], None] | None = None,
                   on_warning: Callable[[str], None] | None = None) -> None:
    """Every group measured in `processes` worker processes (one pass each, spread over the run; see the
    module docstring), its rows pooled across processes once its last pass is in and handed on."""
    labels = [g[0].group_label for g in groups]
    got: dict[str, list[tuple[list[Any], list[dict[str, Any]]]]] = {label: [] for label in labels}

    def finish(label: str) -> None:
        per_process = got.pop(label)
        if processes == 1:
            on_group_done(*per_process[0])
            return
        rows, samples = pool(per_process, job.ceilings, job.api)
        for r in rows:
            if r.ratio_unstable and on_warning:
                on_warning(f"{label} {r.case} ({r.mode}): " + next(n.text for n in r.notes if n.code == "unstable"))
        on_group_done(rows, samples)

    for p, order in enumerate(passes(list(groups), processes)):
        names = [g[0].group_label for g in order]

        def arrived(i: int, result: tuple[list[Any], list[dict[str, Any]]], names: list[str] = names) -> None:
            got[names[i]].append(result)
            if len(got[names[i]]) == processes:
                finish(names[i])

        _one_pass(order, job, f" [process {p + 1}/{processes}]" if processes > 1 else "", arrived,
                  on_group_start, on_progress)
