"""The command line: parse arguments, call the core, render, choose the exit code.

Exit codes: 0 done and fine; 1 done, but the answer is no (a case failed, a gate failed);
2 could not answer (bad usage, invalid suite, unreadable results, device unavailable).
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import uuid
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from latbench import __version__, faults
from latbench.errors import DeviceError, LatbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Hardware-aware latency benchmarking for PyTorch: FLOPs and memory access cost "
                       "against measured speed, with ratios you can trust.")
out = Console(soft_wrap=False, width=200)
err = Console(stderr=True)


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


class Schedule(str, Enum):
    interleaved = "interleaved"
    roundrobin = "roundrobin"
    sequential = "sequential"


class WidthsMode(str, Enum):
    paper = "paper"
    flops = "flops"


class Platform(str, Enum):
    gpu = "gpu"
    arm = "arm"


def fail(exc: LatbenchError, debug: bool = False) -> None:
    """Print a user error on stderr and exit 2 (the one place errors become exit codes)."""
    if debug:
        raise exc
    err.print(f"error: {exc}", style="red", highlight=False, markup=False, soft_wrap=True)  # one line, copyable
    raise typer.Exit(2)


def version_callback(value: bool) -> None:
    if value:
        out.print(f"latbench {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[Optional[bool], typer.Option("--version", callback=version_callback,
                                                         is_eager=True, help="Show the version.")] = None) -> None:
    """latbench: `run` a suite, `compare` results, `gate` a CI build."""


@app.command()
def run(
    suites: Annotated[list[Path], typer.Argument(help="Suite files, e.g. suites/g1.yaml (several run one after another).")],
    device: Annotated[Device, typer.Option(help="Where to run: cpu, or cuda (exit 2 if no GPU).")] = Device.cpu,
    quick: Annotated[bool, typer.Option("--quick", help="Reduced run for CI: first scale only, ~0.3 s per case.")] = False,
    threads: Annotated[Optional[int], typer.Option(min=1, help="torch intra-op threads. Default: 1 on cpu (as the paper's ARM runs), torch's default on cuda.")] = None,
    schedule: Annotated[Schedule, typer.Option(help="interleaved (default): cases of a group alternate in random order each round, so machine drift cancels in ratios; roundrobin: fixed order; sequential: each case alone, one after another.")] = Schedule.interleaved,
    widths: Annotated[Optional[WidthsMode], typer.Option(help="paper: the suite's channel lists; flops: solve widths to the first case's FLOPs (or flops_target). Default: the suite's.")] = None,
    platform: Annotated[Optional[Platform], typer.Option(help="Whose paper widths to use: gpu or arm. Default: gpu on cuda, arm on cpu.")] = None,
    batch: Annotated[Optional[int], typer.Option(min=1, help="Batch size. Default: the suite's (1).")] = None,
    modes: Annotated[Optional[str], typer.Option(help="Comma-separated execution modes. cuda: eager,cudagraph (default); cpu: eager.")] = None,
    max_time: Annotated[Optional[float], typer.Option(min=0.01, help="Seconds of measurement per case at most (default 10, quick 0.3).")] = None,
    min_time: Annotated[Optional[float], typer.Option(min=0.0, help="Seconds of measurement per case at least (default 0.5).")] = None,
    target: Annotated[Optional[float], typer.Option(min=0.0001, help="Stop when every median and ratio is known to +-this fraction (95% CI). Default 0.01.")] = None,
    cudnn_benchmark: Annotated[bool, typer.Option(help="cuda: let cuDNN autotune conv algorithms (the paper did).")] = True,
    results_dir: Annotated[Path, typer.Option(help="Where result files go (never overwritten).")] = Path("results"),
    seed: Annotated[int, typer.Option(help="Seed for weights, inputs and the round order.")] = 0,
    resume: Annotated[Optional[Path], typer.Option(help="Continue an interrupted run: its results .csv. Finished groups are kept, the rest measured; give the run's suite and options again.")] = None,
    case_timeout: Annotated[float, typer.Option(min=0.0, help="Seconds a case may take to build and warm up, and each of its timed blocks, before it is recorded as failed ('timed out') and the run goes on. 0: no limit. A single stuck native call cannot be cut short (docs/reliability.md).")] = faults.DEFAULT_CASE_TIMEOUT_S,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress or advice on stderr (errors still show).")] = False,
    debug: Annotated[bool, typer.Option(help="Show tracebacks for user errors too.")] = False,
) -> None:
    """Build each case of the suites, check FLOPs, warm up, time, and write results/ tables.

    Each finished group (experiment x scale) is on disk at once; Ctrl-C or SIGTERM keeps them and
    says how to --resume. Exit 0 fine, 1 a case failed, 2 bad input, 130/143 interrupted.
    """
    try:
        with faults.signals_as_interrupts():
            code = _run(suites, device.value, quick, threads, schedule.value, widths.value if widths else None,
                        platform.value if platform else None, batch, modes, max_time, min_time, target,
                        cudnn_benchmark, results_dir, seed, quiet, resume, case_timeout)
    except LatbenchError as exc:
        fail(exc, debug)
    except KeyboardInterrupt as exc:  # before or between runs: nothing half-written to report
        err.print(f"interrupted by {exc}" if isinstance(exc, faults.Interrupted) else "interrupted", style="yellow")
        code = exc.exit_code if isinstance(exc, faults.Interrupted) else 130
    raise typer.Exit(code)


def _run(suite_paths, device, quick, threads, schedule, widths, platform, batch, modes, max_time, min_time,
         target, cudnn_benchmark, results_dir, seed, quiet, resume=None, case_timeout=0.0) -> int:
    from latbench import devices, env, runner
    from latbench import resume as resuming
    from latbench.report import run_table
    from latbench.store import RunFiles
    from latbench.suite import expand, load_suite

    # Everything that can be wrong with the input is checked before anything is measured.
    loaded = [load_suite(p) for p in suite_paths]
    if resume and len(loaded) != 1:
        raise LatbenchError(f"--resume continues one run, but {len(loaded)} suites were given",
                            hint="give only the suite that the run in --resume measured")
    plat = platform or ("gpu" if device == "cuda" else "arm")
    expanded = [(s, expand(s, plat, quick=quick, widths_mode=widths, batch=batch)) for s in loaded]
    dev = devices.setup(device, threads, cudnn_benchmark)
    mode_list = tuple(m.strip() for m in modes.split(",") if m.strip()) if modes else dev.backend.modes
    unknown = [m for m in mode_list if m not in dev.backend.modes]
    if unknown or not mode_list:
        raise DeviceError(f"--modes {modes!r}: {', '.join(unknown) or 'empty'} not available on {device}",
                          hint=f"use a subset of {','.join(dev.backend.modes)}")
    base = runner.QUICK_POLICY if quick else (runner.CUDA_POLICY if device == "cuda" else runner.CPU_POLICY)
    policy = dataclasses.replace(base, **{k: v for k, v in (("max_time_s", max_time), ("min_time_s", min_time),
                                                             ("rel_ci", target)) if v is not None})
    if policy.min_time_s > policy.max_time_s:
        policy = dataclasses.replace(policy, min_time_s=policy.max_time_s)
    fingerprint = env.fingerprint()
    if not quiet:
        for advice in env.load_advice(dev.threads):
            err.print(f"warning: {advice}", style="yellow", highlight=False, markup=False)

    code = 0
    for suite, specs in expanded:
        settings = {
            "suite": {"name": suite.model.suite, "path": suite.path, "sha256": suite.sha256,
                      "experiment": suite.model.experiment, "description": suite.model.description},
            "device": device, "platform_widths": plat, "widths_mode": widths or suite.model.widths,
            "quick": quick, "schedule": schedule, "modes": list(mode_list), "seed": seed, "threads": dev.threads,
            "batch": specs[0].batch, "policy": dataclasses.asdict(policy), "device_settings": dev.settings,
            "fingerprint": fingerprint, "case_timeout_s": case_timeout,
        }
        if resume:
            files = resuming.open_run(resume)
            resuming.check_same_run(files.metadata, settings, resume,
                                    resuming.resume_command(files.metadata.get("command") or sys.argv, suite.path,
                                                            resume))
            files.lock()
            for stale in ("interrupted_by", "finished_at_utc"):
                files.metadata.pop(stale, None)
            files.metadata.update(status="running", case_timeout_s=case_timeout,
                                  resumed_at_utc=[*files.metadata.get("resumed_at_utc", []), _now()])
        else:
            files = RunFiles.reserve(results_dir, suite.model.suite, device)
            files.lock()
            files.metadata = {"schema_version": runner.SCHEMA_VERSION, "run_id": uuid.uuid4().hex[:12],
                              "status": "running", "command": sys.argv, **settings, "started_at_utc": _now(),
                              "files": {"results": files.csv.name, "samples": files.samples.name}}
        try:
            code = max(code, _run_groups(suite, specs, files, runner.RunConfig(
                device=device, run_id=files.metadata["run_id"], modes=mode_list, schedule=schedule, policy=policy,
                threads=dev.threads, seed=seed, case_timeout_s=case_timeout), dev.backend, quiet,
                resuming.resume_command(sys.argv, suite.path, files.csv)))
        finally:
            files.unlock()
        title = (f"{suite.model.suite} ({suite.model.experiment}) on {device}"
                 f" [{fingerprint['cpu_model'] if device == 'cpu' else dev.settings.get('cuda_device_name')}]"
                 f", {dev.threads} thread(s), {schedule}, batch {specs[0].batch}")
        out.print(run_table(files.rows, title))
        if not quiet and any(r.get("warnings") for r in files.rows):
            err.print("notes: 'noisy +-x%' = 95% CI half-width of the median; 'ratio +-x%' = of the ratio to the "
                      "baseline; remedies: raise --max-time, stop other jobs, pin --threads (full text in the "
                      "'warnings' column; -q hides this)", style="yellow", highlight=False)
        if not quiet:
            err.print(f"wrote {files.csv}, {files.samples.name}, {files.meta.name}", highlight=False)
        failed = [r for r in files.rows if r["status"] != "ok"]
        if failed:
            named = "; ".join(f"{r['experiment']}/{r['case']}/x{r['scale']} {r['mode']}: {r['error']}"
                              for r in failed[:MAX_NAMED_FAILURES])
            more = f"; and {len(failed) - MAX_NAMED_FAILURES} more" if len(failed) > MAX_NAMED_FAILURES else ""
            err.print(f"{len(failed)} case(s) failed in {suite.path} (the run went on): {named}{more}",
                      style="red", highlight=False, markup=False, soft_wrap=True)
    return code


MAX_NAMED_FAILURES = 10  # the summary line names this many failed cases; the CSV's 'error' column has all


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _run_groups(suite, specs, files, cfg, backend, quiet: bool, resume_cmd: str) -> int:
    """Measure the groups not yet on disk, saving each as it finishes. On SIGINT/SIGTERM, save the
    finished groups with status 'interrupted', say how to resume, and exit 130/143."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from latbench import runner
    from latbench.resume import group_label, group_status

    def groups(rows):
        return group_status(specs, cfg.modes, rows)

    done = groups(files.rows)
    files.rows = [r for r in files.rows if group_label(r["experiment"], r["scale"]) in done["finished"]]
    files.sample_rows = [r for r in files.sample_rows if group_label(r["experiment"], r["scale"]) in done["finished"]]
    todo = [s for s in specs if group_label(s.experiment, s.scale) in done["pending"]]
    files.metadata["groups"] = done
    files.flush()
    if done["finished"] and not quiet:
        err.print(f"resuming {files.csv}: {len(done['finished'])} group(s) already finished, "
                  f"{len(done['pending'])} to measure", highlight=False)

    def save_group(rows, samples):
        files.metadata["groups"] = groups([*files.rows, *rows])
        files.add(rows, samples)

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("round {task.completed:.0f}"),
                  TimeElapsedColumn(), console=err, disable=quiet, transient=True) as progress:
        task = progress.add_task(suite.model.suite, total=None)

        def on_progress(label: str, rounds: int, _: float) -> None:
            progress.update(task, description=f"{suite.model.suite} {label}", completed=rounds)

        try:
            runner.run_specs(todo, cfg, backend, save_group, on_progress)
        except KeyboardInterrupt as exc:
            signum = exc.signum if isinstance(exc, faults.Interrupted) else signal.SIGINT
            with faults.signals_ignored():  # a second Ctrl-C must not cut the last save short
                state = groups(files.rows)
                files.metadata.update(status="interrupted", interrupted_by=signal.Signals(signum).name,
                                      groups=state, finished_at_utc=_now())
                files.flush()
            progress.stop()
            err.print(f"interrupted by {signal.Signals(signum).name}: {len(state['finished'])} of "
                      f"{len(state['finished']) + len(state['pending'])} group(s) are saved in {files.csv} "
                      f"(status 'interrupted' in {files.meta.name}); not measured: {', '.join(state['pending'])}",
                      style="yellow", highlight=False, markup=False, soft_wrap=True)
            err.print(f"resume with: {resume_cmd}", highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(128 + signum) from None
    failed = sum(r["status"] != "ok" for r in files.rows)
    files.metadata.update(status="complete", failed_cases=failed, groups=groups(files.rows), finished_at_utc=_now())
    files.write_meta()
    return 1 if failed else 0


@app.command("list")
def list_cmd() -> None:
    """List the network builders a suite can name."""
    from latbench.models import get_builder, list_builders

    for name in list_builders():
        b = get_builder(name)
        fields = ", ".join(f"{k}" for k in b.params.model_fields)
        out.print(f"{name}: {b.summary}\n    parameters: {fields}; widths: {', '.join(b.width_names)}",
                  highlight=False)
