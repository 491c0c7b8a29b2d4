"""The command line: parse arguments, call the core, render, choose the exit code.

Exit codes: 0 done and fine; 1 done, but the answer is no (a case failed, a gate failed);
2 could not answer (bad usage, invalid suite, unreadable results, device unavailable).
"""

from __future__ import annotations

import dataclasses
import sys
import uuid
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from latbench import __version__
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
    err.print(f"error: {exc}", style="red", highlight=False, markup=False)
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
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress or advice on stderr (errors still show).")] = False,
    debug: Annotated[bool, typer.Option(help="Show tracebacks for user errors too.")] = False,
    allow_import: Annotated[bool, typer.Option("--allow-import", help="Let suites with 'builder: user' import and run the Python module they name (your own code; off by default).")] = False,
) -> None:
    """Build each case of the suites, check FLOPs, warm up, time, and write results/ tables."""
    try:
        code = _run(suites, device.value, quick, threads, schedule.value, widths.value if widths else None,
                    platform.value if platform else None, batch, modes, max_time, min_time, target,
                    cudnn_benchmark, results_dir, seed, quiet, allow_import)
    except LatbenchError as exc:
        fail(exc, debug)
    raise typer.Exit(code)


def _run(suite_paths, device, quick, threads, schedule, widths, platform, batch, modes, max_time, min_time,
         target, cudnn_benchmark, results_dir, seed, quiet, allow_import=False) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from latbench import devices, env, runner
    from latbench.claims import check_claims
    from latbench.report import claims_table, run_table
    from latbench.store import RunFiles
    from latbench.suite import expand, load_suite

    # Everything that can be wrong with the input is checked before anything is measured.
    loaded = [load_suite(p, allow_import) for p in suite_paths]
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
        run_id = uuid.uuid4().hex[:12]
        files = RunFiles.reserve(results_dir, suite.model.suite, device)
        cfg = runner.RunConfig(device=device, run_id=run_id, modes=mode_list, schedule=schedule, policy=policy,
                               threads=dev.threads, seed=seed)
        files.metadata = {
            "schema_version": runner.SCHEMA_VERSION, "run_id": run_id, "status": "running",
            "command": sys.argv, "suite": {"name": suite.model.suite, "path": suite.path, "sha256": suite.sha256,
                                            "experiment": suite.model.experiment,
                                            "description": suite.model.description},
            "device": device, "platform_widths": plat, "widths_mode": widths or suite.model.widths,
            "quick": quick, "schedule": schedule, "modes": list(mode_list), "seed": seed, "threads": dev.threads,
            "policy": dataclasses.asdict(policy), "device_settings": dev.settings, "fingerprint": fingerprint,
            "started_at_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": {"results": files.csv.name, "samples": files.samples.name},
        }
        files.flush()
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("round {task.completed:.0f}"),
                      TimeElapsedColumn(), console=err, disable=quiet, transient=True) as progress:
            task = progress.add_task(suite.model.suite, total=None)

            def on_progress(label: str, rounds: int, _: float) -> None:
                progress.update(task, description=f"{suite.model.suite} {label}", completed=rounds)

            try:
                rows = runner.run_specs(specs, cfg, dev.backend, files.add, on_progress)
            except KeyboardInterrupt:
                files.metadata.update(status="interrupted",
                                      finished_at_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"))
                files.write_meta()
                err.print(f"interrupted: the groups finished so far are in {files.csv}", style="yellow")
                raise typer.Exit(130) from None
        failed = [r for r in rows if r["status"] == "failed"]
        files.metadata.update(status="complete", failed_cases=len(failed),
                              finished_at_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        files.write_meta()
        title = (f"{suite.model.suite} ({suite.model.experiment}) on {device}"
                 f" [{fingerprint['cpu_model'] if device == 'cpu' else dev.settings.get('cuda_device_name')}]"
                 f", {dev.threads} thread(s), {schedule}, batch {','.join(dict.fromkeys(str(s.batch) for s in specs))}")
        out.print(run_table(rows, title))
        if suite.model.claims:  # the suite's claims, judged from this run's paired samples
            verdicts = check_claims(suite.model.claims, rows, files.sample_rows, device)
            files.metadata["claims"] = verdicts
            files.write_meta()
            out.print(claims_table(verdicts, f"claims of {suite.path}"))
        if not quiet and any(r.get("warnings") for r in rows):
            err.print("notes: 'noisy +-x%' = 95% CI half-width of the median; 'ratio +-x%' = of the ratio to the "
                      "baseline; remedies: raise --max-time, stop other jobs, pin --threads (full text in the "
                      "'warnings' column; -q hides this)", style="yellow", highlight=False)
        if not quiet:
            err.print(f"wrote {files.csv}, {files.samples.name}, {files.meta.name}", highlight=False)
        skipped = [r for r in rows if r["status"] == "skipped"]
        if skipped and not quiet:
            err.print(f"{len(skipped)} case(s) skipped: this device cannot run them (reason in the 'error' column)",
                      style="cyan", highlight=False)
        if failed:
            err.print(f"{len(failed)} case(s) failed in {suite.path}; see the 'error' column", style="red")
            code = 1
    return code


@app.command("list")
def list_cmd() -> None:
    """List the network builders a suite can name."""
    from latbench.models import get_builder, list_builders

    for name in list_builders():
        b = get_builder(name)
        fields = ", ".join(f"{k}" for k in b.params.model_fields)
        out.print(f"{name}: {b.summary}\n    parameters: {fields}; widths: {', '.join(b.width_names)}",
                  highlight=False)
