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
err = Console(stderr=True, soft_wrap=True)


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
    profile: Annotated[bool, typer.Option("--profile", help="After measuring each group, run torch.profiler over 5 more forwards per case: op (kernel) count per forward and the time share of zero-FLOP ops (ReLU, add, concat, copies). Never inside timed blocks.")] = False,
    roofline: Annotated[bool, typer.Option(help="Probe the device's peak FLOP/s and bandwidth (< 2 s, cached per machine in ~/.cache/latbench or $LATBENCH_CACHE) and add roofline columns.")] = True,
    allow_import: Annotated[bool, typer.Option("--allow-import", help="Let suites with 'builder: user' import and run the Python module they name (your own code; off by default).")] = False,
) -> None:
    """Build each case of the suites, check FLOPs, warm up, time, and write results/ tables.

    Each finished group (experiment x scale) is on disk at once; Ctrl-C or SIGTERM keeps them and
    says how to --resume. Exit 0 fine, 1 a case failed, 2 bad input, 130/143 interrupted.
    """
    try:
        with faults.signals_as_interrupts():
            code = _run(suites, device.value, quick, threads, schedule.value, widths.value if widths else None,
                        platform.value if platform else None, batch, modes, max_time, min_time, target,
                        cudnn_benchmark, results_dir, seed, quiet, resume, case_timeout, profile=profile,
                        roofline=roofline, allow_import=allow_import)
    except LatbenchError as exc:
        fail(exc, debug)
    except KeyboardInterrupt as exc:  # before or between runs: nothing half-written to report
        err.print(f"interrupted by {exc}" if isinstance(exc, faults.Interrupted) else "interrupted", style="yellow")
        code = exc.exit_code if isinstance(exc, faults.Interrupted) else 130
    raise typer.Exit(code)


def _run(suite_paths, device, quick, threads, schedule, widths, platform, batch, modes, max_time, min_time,
         target, cudnn_benchmark, results_dir, seed, quiet, resume=None, case_timeout=0.0, profile=False,
         roofline=True, allow_import=False) -> int:
    from latbench import devices, env, runner
    from latbench import resume as resuming
    from latbench.claims import check_claims
    from latbench.report.terminal import claims_table, run_table
    from latbench.results.files import RunFiles
    from latbench.suite import expand, load_suite

    # Everything that can be wrong with the input is checked before anything is measured.
    loaded = [load_suite(p, allow_import) for p in suite_paths]
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
    hardware = _hardware(device, dev, fingerprint, roofline, profile, quiet)

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
                              "roofline": dataclasses.asdict(hardware["ceilings"]) if hardware["ceilings"] else None,
                              "files": {"results": files.csv.name, "samples": files.samples.name}}
        try:
            code = max(code, _run_groups(suite, specs, files, runner.RunConfig(
                device=device, run_id=files.metadata["run_id"], modes=mode_list, schedule=schedule, policy=policy,
                threads=dev.threads, seed=seed, case_timeout_s=case_timeout, **hardware), dev.backend, quiet,
                resuming.resume_command(sys.argv, suite.path, files.csv)))
        finally:
            files.unlock()
        title = (f"{suite.model.suite} ({suite.model.experiment}) on {device}"
                 f" [{fingerprint['cpu_model'] if device == 'cpu' else dev.settings.get('cuda_device_name')}]"
                 f", {dev.threads} thread(s), {schedule}, batch {','.join(dict.fromkeys(str(s.batch) for s in specs))}")
        out.print(run_table(files.rows, title))
        if suite.model.claims:  # the suite's claims, judged from this run's paired samples
            verdicts = check_claims(suite.model.claims, files.rows, files.sample_rows, device)
            files.metadata["claims"] = verdicts
            files.write_meta()
            out.print(claims_table(verdicts, f"claims of {suite.path}"))
        if not quiet and any(r.get("warnings") for r in files.rows):
            err.print("notes: 'noisy +-x%' = 95% CI half-width of the median; 'ratio +-x%' = of the ratio to the "
                      "baseline; remedies: raise --max-time, stop other jobs, pin --threads (full text in the "
                      "'warnings' column; -q hides this)", style="yellow", highlight=False)
        if not quiet:
            err.print(f"wrote {files.csv}, {files.samples.name}, {files.meta.name}", highlight=False)
        failed = [r for r in files.rows if r["status"] == "failed"]
        skipped = [r for r in files.rows if r["status"] == "skipped"]
        if skipped and not quiet:
            err.print(f"{len(skipped)} case(s) skipped: this device cannot run them (reason in the 'error' column)",
                      style="cyan", highlight=False)
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
    failed = sum(r["status"] == "failed" for r in files.rows)
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


def _hardware(device: str, dev, fingerprint: dict, roofline: bool, profile: bool, quiet: bool) -> dict:
    """RunConfig fields for hardware-aware rows: telemetry sampler, roofline ceilings, profiling."""
    from latbench import roofline as rl
    from latbench.telemetry import TelemetrySampler

    ceilings = None
    if roofline:
        name = dev.settings.get("cuda_device_name") if device == "cuda" else fingerprint["cpu_model"]
        ceilings, cached = rl.measure_ceilings(device, str(name), dev.threads)
        if not quiet:
            err.print(f"roofline ({'cached' if cached else 'probed'}): peak {ceilings.peak_flops_per_s / 1e9:.1f} "
                      f"GFLOP/s, bandwidth {ceilings.bandwidth_bytes_per_s / 1e9:.1f} GB/s at {dev.threads} "
                      f"thread(s) (delete {rl.cache_file()} to re-measure)", highlight=False)
    gpu_index = None
    if device == "cuda":
        import torch

        gpu_index = torch.cuda.current_device()  # NVML numbering; differs only under CUDA_VISIBLE_DEVICES
    return {"telemetry": TelemetrySampler(threads=dev.threads, gpu_index=gpu_index), "ceilings": ceilings,
            "profile": profile}


@app.command("env")
def env_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print the fingerprint as JSON (what each run's metadata holds).")] = False,
) -> None:
    """Show this machine's fingerprint: CPU, clocks, governor, memory, OS, Python, torch, CUDA/cuDNN, threads, GPUs."""
    import json

    from latbench.env import fingerprint
    from latbench.report.terminal import env_table

    fp = fingerprint()
    if json_out:
        typer.echo(json.dumps(fp, indent=2, sort_keys=True, default=str))
    else:
        out.print(env_table(fp))


@app.command("report")
def report_cmd(
    files: Annotated[list[Path], typer.Argument(help="Results CSVs, e.g. results/*.csv (the *-samples.csv and .json beside each are read too; samples files given here are skipped).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the markdown report and its figures/ (created).")] = Path("report"),
    name: Annotated[str, typer.Option(help="File name of the markdown report inside --out.")] = "report.md",
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Do not list written files on stderr.")] = False,
    debug: Annotated[bool, typer.Option(help="Show tracebacks for user errors too.")] = False,
) -> None:
    """Write a markdown report with PNG plots for the results of any suites: each suite's claims judged
    over all its runs, every case against its baseline (the paper side by side for G1-G4), roofline, and
    which cost (FLOPs, MAC, roofline time) ranks latency best. Headless."""
    from rich.markup import escape
    from rich.table import Table

    from latbench.report.markdown import group_text, title, write_report

    try:
        rep = write_report(files, out_dir, name)
    except LatbenchError as exc:
        fail(exc, debug)
    t = Table(title=f"claims: {title(rep.suites)}", title_justify="left")
    for col in ("suite", "claim", "device", "mode", "verdict", "per group"):
        t.add_column(col)
    for c in rep.claims:
        t.add_row(c.suite, escape(f"{c.claim.case} vs {c.claim.than}: {c.claim.text}"), c.device_label, c.mode,
                  c.verdict, ", ".join(f"{g}: {v['verdict']}" for g, v in zip(group_text(c.groups), c.groups)))
    for s in rep.suites:
        if not s.claims:
            t.add_row(s.name, "no claims in this suite", "", "", "", "")
    out.print(t)
    if not quiet:
        err.print(f"wrote {rep.markdown} and {len(rep.figures)} figure(s) in {rep.markdown.parent / 'figures'}",
                  highlight=False)


# ---------------------------------------------------------------- compare, gate, calibrate

class Format(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"


_THRESHOLD_HELP = ("A case counts as slower (or faster) only beyond this change AND when the change is "
                   "significant: 10% (default), 0.1 and 10 all mean 10%.")
_NOISE_FLOOR_HELP = ("Only with ONE file per side: assumed run-to-run drift that within-run samples cannot "
                     "show; widens the ratio's CI by this factor. Default 10% (or the --thresholds file's). "
                     "Better: give >= 2 runs per side.")


# Options compare and gate share (typer reads Annotated aliases like inline annotations).
ThresholdOpt = Annotated[Optional[str], typer.Option(help=_THRESHOLD_HELP)]
AlphaOpt = Annotated[float, typer.Option(help="Significance level: the ratio's CI is 1-alpha (two-sided).")]
NoiseFloorOpt = Annotated[Optional[str], typer.Option(help=_NOISE_FLOOR_HELP)]
FormatOpt = Annotated[Format, typer.Option("--format", help="table (default), markdown (PR comment), csv or json.")]
NormalizedOpt = Annotated[bool, typer.Option("--normalized", help="Judge each case by its change relative to its suite's first (reference) case, paired within each run, so machine-wide drift cancels; the reference itself is not judged. Use when the machine is noisy and the suite has a reference case your change cannot affect (docs/compare-and-gate.md).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Same as --format json.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the bootstrap (one run per side).")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="No warnings on stderr (errors still show).")]
DebugOpt = Annotated[bool, typer.Option(help="Show tracebacks for user errors too.")]


def _comparison(base: list, cand: list, threshold: Optional[str], thresholds: Optional[Path], alpha: float,
                noise_floor: Optional[str], seed: int, normalized: bool = False):
    from latbench.compare import DEFAULT_NOISE_FLOOR, compare, load_runs
    from latbench.gate import DEFAULT_THRESHOLD, Thresholds, parse_fraction

    if not 0 < alpha < 0.5:
        raise LatbenchError(f"--alpha {alpha} is out of range", hint="use e.g. 0.05 (a 95% confidence interval)")
    given = parse_fraction(threshold) if threshold is not None else None
    thr = Thresholds.from_file(thresholds, given) if thresholds is not None else Thresholds(
        given if given is not None else DEFAULT_THRESHOLD)
    floor = (parse_fraction(noise_floor, "--noise-floor") if noise_floor is not None
             else thr.noise_floor if thr.noise_floor is not None else DEFAULT_NOISE_FLOOR)
    base_runs, cand_runs = load_runs(base, "baseline"), load_runs(cand, "candidate")
    return compare(base_runs, cand_runs, thr.for_case, alpha, floor, seed, normalized)


def _emit(cmp, fmt: Format, title: str, outcome=None) -> None:
    from latbench.report import terminal as report

    if fmt is Format.json:
        sys.stdout.write(report.compare_json(cmp, outcome))
    elif fmt is Format.csv:
        sys.stdout.write(report.compare_csv(cmp))
    elif fmt is Format.markdown:
        sys.stdout.write(report.compare_markdown(cmp, outcome, title))
    else:
        out.print(report.compare_table(cmp, title))
        if outcome is not None:
            out.print(outcome.summary(), style="green" if outcome.passed else "red", highlight=False)


def _warn_all(lines: list[str], quiet: bool) -> None:
    if not quiet:
        for w in lines:
            err.print(f"warning: {w}", style="yellow", highlight=False, markup=False)


@app.command("compare")
def compare_cmd(
    files: Annotated[list[str], typer.Argument(help="Results CSVs, directories or globs (results/* works: a run's -samples.csv and .json count as that run). Without --baseline the first run is the baseline and the rest are repeated runs of the candidate.")],
    baseline: Annotated[Optional[list[str]], typer.Option("--baseline", "-b", help="Baseline results: a CSV, a directory of them or a quoted glob; repeat for several runs. Then every FILE is a candidate run.")] = None,
    threshold: ThresholdOpt = None,
    thresholds: Annotated[Optional[Path], typer.Option(help="Per-case thresholds written by 'latbench calibrate'.")] = None,
    alpha: AlphaOpt = 0.05,
    noise_floor: NoiseFloorOpt = None,
    normalized: NormalizedOpt = False,
    fmt: FormatOpt = Format.table,
    as_json: JsonOpt = False,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Align the cases of result files: baseline vs candidate medians, the ratio with its CI, and which changes are significant (also across devices and machines)."""
    from latbench.results.read import split_first

    try:
        base, cand = (list(baseline), list(files)) if baseline else split_first(files)
        if not cand:
            raise LatbenchError("compare needs a baseline and at least one candidate results file",
                                hint="latbench compare BASE.csv NEW.csv, or --baseline BASE.csv NEW.csv")
        cmp = _comparison(base, cand, threshold, thresholds, alpha, noise_floor, seed, normalized)
    except LatbenchError as exc:
        fail(exc, debug)
    _warn_all(cmp.warnings, quiet)
    _emit(cmp, Format.json if as_json else fmt, "latbench compare")


@app.command()
def gate(
    baseline: Annotated[list[str], typer.Option("--baseline", "-b", help="Baseline results: a CSV, a directory or a quoted glob ('base/*.csv'); repeat the option for several runs.")],
    candidate: Annotated[list[str], typer.Option("--candidate", "-c", help="Candidate results, as for --baseline. Give >= 2 runs per side (e.g. 3, ABAB-alternated) so the test sees run-to-run noise.")],
    threshold: ThresholdOpt = None,
    thresholds: Annotated[Optional[Path], typer.Option(help="Per-case thresholds written by 'latbench calibrate' (cases not in it use --threshold).")] = None,
    alpha: AlphaOpt = 0.05,
    noise_floor: NoiseFloorOpt = None,
    allow_different_machine: Annotated[bool, typer.Option(help="Gate even when CPU/GPU model, driver, torch, threads or device differ between the sides.")] = False,
    normalized: NormalizedOpt = False,
    fmt: FormatOpt = Format.table,
    as_json: JsonOpt = False,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """CI latency gate: exit 1 when a case is slower than its threshold AND significantly so (or failed to run), 0 otherwise, 2 for unreadable input; appends a markdown report to $GITHUB_STEP_SUMMARY."""
    import os

    from latbench.gate import decide, require_same_machine
    from latbench.report.terminal import compare_markdown

    try:
        cmp = _comparison(baseline, candidate, threshold, thresholds, alpha, noise_floor, seed, normalized)
        if not allow_different_machine:
            require_same_machine(cmp.fingerprint_differences)
    except LatbenchError as exc:
        fail(exc, debug)
    _warn_all(cmp.warnings, quiet)
    outcome = decide(cmp.deltas)
    _emit(cmp, Format.json if as_json else fmt, "latbench gate", outcome)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(compare_markdown(cmp, outcome, "latbench gate") + "\n")
        except OSError as exc:
            err.print(f"warning: could not append to $GITHUB_STEP_SUMMARY ({exc})", style="yellow", markup=False)
    raise typer.Exit(outcome.exit_code)


@app.command()
def calibrate(
    files: Annotated[Optional[list[str]], typer.Argument(help="A/A results: >= 2 runs of one suite, same code, same machine.")] = None,
    suite: Annotated[Optional[Path], typer.Option(help="Instead of FILES: run this suite --runs times now (as separate processes) and calibrate on those runs.")] = None,
    runs: Annotated[int, typer.Option(min=2, help="With --suite: how many runs.")] = 3,
    run_args: Annotated[str, typer.Option(help="With --suite: extra 'latbench run' options, e.g. '--quick' or '--max-time 2'.")] = "",
    results_dir: Annotated[Path, typer.Option(help="With --suite: where the runs' files go.")] = Path("results/calibration"),
    runs_per_side: Annotated[int, typer.Option(min=1, help="How many runs per side the gate will get (thresholds shrink with more runs).")] = 3,
    min_threshold: Annotated[str, typer.Option(help="Never suggest less than this.")] = "2%",
    output: Annotated[Optional[Path], typer.Option(help="Write the thresholds file here (YAML), for 'latbench gate --thresholds'.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table (default) or json (the thresholds file's content).")] = Format.table,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress on stderr (errors still show).")] = False,
    debug: DebugOpt = False,
) -> None:
    """A/A calibration: measure run-to-run noise per case and suggest per-case gate thresholds."""
    import json
    import shlex

    import yaml

    from latbench.compare import load_runs
    from latbench.gate import aa_runs, calibrate as calibrate_runs, parse_fraction
    from latbench.report.terminal import calibration_table

    def progress(i: int, n: int) -> None:
        if not quiet:
            err.print(f"calibration run {i}/{n} of {suite}", highlight=False)

    try:
        minimum = parse_fraction(min_threshold)
        specs = list(files or [])
        if suite is not None:
            specs += [str(p) for p in aa_runs(suite, runs, shlex.split(run_args), results_dir, progress)]
        if not specs:
            raise LatbenchError("nothing to calibrate on", hint="give >= 2 A/A results files, or --suite FILE")
        cal = calibrate_runs(load_runs(specs, "A/A"), runs_per_side, minimum)
    except LatbenchError as exc:
        fail(exc, debug)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("# latbench gate thresholds, from 'latbench calibrate' (A/A run-to-run noise)\n"
                          + yaml.safe_dump(cal.data, sort_keys=False), encoding="utf-8")
        if not quiet:
            err.print(f"wrote {output}; use it with 'latbench gate --thresholds {output}'", highlight=False)
    if fmt is Format.json:
        sys.stdout.write(json.dumps(cal.data, indent=2) + "\n")
    else:
        out.print(calibration_table(cal.suggestions, cal.pooled_pct, cal.noise_floor, cal.runs_per_side))
