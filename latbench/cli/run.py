"""`latbench run`: suites or --model networks through the run session (latbench.run), rendered."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from latbench import faults
from latbench.cli.common import (DeviceName, ForceOpt, Format, at_least, check_output_option, command, err, fail,
                                 rendered, write_output)
from latbench.errors import LatbenchError


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


class Latency(str, Enum):  # latbench.timing.cuda.LATENCY_SEMANTICS
    throughput = "throughput"
    single = "single"


class L2(str, Enum):  # latbench.timing.cuda.L2_STATES
    warm = "warm"
    flushed = "flushed"


# Help panels of `run --help`, in the order they show.
P_WHAT, P_MEASURE, P_HW, P_OUT, P_MORE = "What to run", "Measurement", "Hardware analysis", "Output", "Other"


@command()
def run(
    suites: Annotated[Optional[list[Path]], typer.Argument(metavar="SUITE", help="Suite files (suites/g1.yaml) or names of suites 'latbench list' shows (g1); several run one after another. Optional with --model.", show_default=False)] = None,
    device: Annotated[DeviceName, typer.Option(metavar="cpu|cuda", help="Where to run (cuda without a GPU: exit 2).", rich_help_panel=P_WHAT)] = DeviceName.cpu,
    quick: Annotated[bool, typer.Option("--quick", metavar="", help="Reduced run for CI: first scale only, ~0.3 s per case.", rich_help_panel=P_WHAT)] = False,
    widths: Annotated[Optional[WidthsMode], typer.Option(metavar="paper|flops", help="paper: the suite's channel lists; flops: widths solved to the first case's FLOPs. Default: the suite's.", rich_help_panel=P_WHAT)] = None,
    platform: Annotated[Optional[Platform], typer.Option(metavar="gpu|arm", help="Whose paper widths. Default: gpu on cuda, arm on cpu.", rich_help_panel=P_WHAT)] = None,
    batch: Annotated[Optional[str], typer.Option(metavar="N", help="Batch size (default: the suite's). --model: a list, e.g. 1,8.", rich_help_panel=P_WHAT)] = None,
    modes: Annotated[Optional[str], typer.Option(metavar="LIST", help="Execution modes, comma-separated. cuda: eager,cudagraph (default); cpu: eager.", rich_help_panel=P_WHAT)] = None,
    threads: Annotated[Optional[int], typer.Option(metavar="N", callback=at_least(1), help="torch intra-op threads. Default: 1 on cpu (as the paper's ARM runs), torch's on cuda.", rich_help_panel=P_WHAT)] = None,
    model: Annotated[Optional[list[str]], typer.Option("--model", metavar="SPEC", help="A built-in network or MODULE:FACTORY (imports it) to time without a suite; repeat, the first is the baseline.", rich_help_panel=P_WHAT)] = None,
    input_shape: Annotated[Optional[str], typer.Option("--input", metavar="CxHxW", help="--model input without the batch, e.g. 3x224x224.", rich_help_panel=P_WHAT)] = None,
    kwargs: Annotated[Optional[list[str]], typer.Option("--kwargs", metavar="JSON", help="--model keyword arguments, a JSON object: one for all, or one per --model (repeat --kwargs, or give a JSON list of objects).", rich_help_panel=P_WHAT)] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", metavar="LIST", help="--model dtypes, e.g. float32,bfloat16.", rich_help_panel=P_WHAT)] = None,
    channels_last: Annotated[bool, typer.Option("--channels-last", metavar="", help="--model in channels_last memory format.", rich_help_panel=P_WHAT)] = False,
    compile_: Annotated[bool, typer.Option("--compile", metavar="", help="--model compiled (mode 'compile').", rich_help_panel=P_WHAT)] = False,
    schedule: Annotated[Schedule, typer.Option(metavar="NAME", help="interleaved: a group's cases alternate in random order each round, so drift cancels in ratios; roundrobin: fixed order; sequential: each case alone.", rich_help_panel=P_MEASURE)] = Schedule.interleaved,
    max_time: Annotated[Optional[float], typer.Option(metavar="SECONDS", callback=at_least(0.01), help="Measurement per case at most (default: cpu 2.5, cuda 10; quick 0.3).", rich_help_panel=P_MEASURE)] = None,
    min_time: Annotated[Optional[float], typer.Option(metavar="SECONDS", callback=at_least(0.0), help="Measurement per case at least (default 0.5).", rich_help_panel=P_MEASURE)] = None,
    target: Annotated[Optional[float], typer.Option(metavar="FRACTION", callback=at_least(0.0001), help="Stop when every ratio (a lone case: its median) is known to +-this (99% CI). Default 0.01.", rich_help_panel=P_MEASURE)] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed for weights, inputs and the round order.", rich_help_panel=P_MEASURE)] = 0,
    case_timeout: Annotated[float, typer.Option(metavar="SECONDS", callback=at_least(0.0), help="A case's build and warm-up, and each timed block, may take this long before the case fails ('timed out') and the run goes on. 0: no limit (docs/reliability.md).", rich_help_panel=P_MEASURE)] = faults.DEFAULT_CASE_TIMEOUT_S,
    repeats: Annotated[Optional[int], typer.Option(metavar="N", callback=at_least(1), help="Each group in N worker processes spread over the run, pooled: the ratio CI includes the spread between processes (default 1).", rich_help_panel=P_MEASURE)] = None,
    latency: Annotated[Latency, typer.Option(metavar="KIND", help="throughput (default): calls back to back; single: each call alone, synchronized (README: CUDA).", rich_help_panel=P_MEASURE)] = Latency.throughput,
    l2: Annotated[L2, typer.Option(metavar="STATE", help="cuda: L2 warm (default) or flushed before every call.", rich_help_panel=P_MEASURE)] = L2.warm,
    no_cudnn_benchmark: Annotated[bool, typer.Option("--no-cudnn-benchmark", metavar="", help="cuda: do not let cuDNN autotune conv algorithms (the paper did).", rich_help_panel=P_MEASURE)] = False,
    cudnn_benchmark: Annotated[bool, typer.Option("--cudnn-benchmark", hidden=True, help="The default (kept for old scripts).")] = True,
    profile: Annotated[bool, typer.Option("--profile", metavar="", help="After each group, torch.profiler over 5 more forwards per case: ops per forward, time share of zero-FLOP ops. Never inside timed blocks.", rich_help_panel=P_HW)] = False,
    no_roofline: Annotated[bool, typer.Option("--no-roofline", metavar="", help="Skip the peak FLOP/s and bandwidth probe (< 2 s, cached per machine) and the roofline columns.", rich_help_panel=P_HW)] = False,
    roofline: Annotated[bool, typer.Option("--roofline", hidden=True, help="The default (kept for old scripts).")] = True,
    fmt: Annotated[Format, typer.Option("--format", metavar="FORMAT", help="How the results are printed: table (default, one per suite), csv, json or markdown.", rich_help_panel=P_OUT)] = Format.table,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", metavar="FILE", callback=check_output_option, help="Print the results into FILE instead of stdout (an existing FILE only with --force).", rich_help_panel=P_OUT)] = None,
    force: Annotated[bool, typer.Option("--force", metavar="", is_eager=True, help="Replace -o FILE if it exists (never a run's files, never through a symbolic link).", rich_help_panel=P_OUT)] = False,
    results_dir: Annotated[Path, typer.Option(metavar="DIR", help="Where the run's files go (never overwritten).", rich_help_panel=P_OUT)] = Path("results"),
    quiet: Annotated[bool, typer.Option("-q", "--quiet", metavar="", help="No progress or notes on stderr (errors still show).", rich_help_panel=P_OUT)] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", metavar="", help="Also a line per finished group on stderr.", rich_help_panel=P_OUT)] = False,
    resume: Annotated[Optional[Path], typer.Option(metavar="CSV", help="Continue an interrupted run (its results .csv) with the same suite and options.", rich_help_panel=P_MORE)] = None,
    allow_import: Annotated[bool, typer.Option("--allow-import", metavar="", help="Let 'builder: user' suites import the Python module they name.", rich_help_panel=P_MORE)] = False,
    max_cases: Annotated[Optional[int], typer.Option(metavar="N", callback=at_least(0), help="Refuse a suite expanding to more cases than this, before anything is built. Default 1000; 0: no limit.", rich_help_panel=P_MORE)] = None,
    isolate: Annotated[bool, typer.Option("--isolate", metavar="", hidden=True, help="Kept for older command lines: groups already run in worker processes (a crash fails its cases only; a stuck call is killed).", rich_help_panel=P_MORE)] = False,
    in_process: Annotated[bool, typer.Option("--in-process", metavar="", help="Measure in this process, not in worker processes (debugging, profiling; user code can then disturb the run).", rich_help_panel=P_MORE)] = False,
    shard: Annotated[Optional[str], typer.Option(metavar="I/N", help="Measure share I of N of the groups (merge).", rich_help_panel=P_MORE)] = None,
    on: Annotated[Optional[str], typer.Option(metavar="RAY", help="ray[://ADDR]: on a Ray cluster's nodes.", rich_help_panel=P_MORE)] = None,
    devices: Annotated[Optional[str], typer.Option(metavar="A,B", help="--on: device pools, a run file each.", rich_help_panel=P_MORE)] = None,
    debug: Annotated[bool, typer.Option("--debug", metavar="", help="Show tracebacks for user errors too.", rich_help_panel=P_MORE)] = False,
) -> None:
    """Build each case of the suites, count FLOPs and MAC, warm up, time interleaved, write results/.

    Each finished group (experiment x scale) is on disk at once; Ctrl-C or SIGTERM keeps them and says how to --resume. Exit 0 fine, 1 a case failed, 2 bad input, 130/143 interrupted.
    """
    from latbench.run import RunOptions
    from latbench.suite import adhoc
    from latbench.suite.catalog import resolve_suite

    cudnn_benchmark, roofline = cudnn_benchmark and not no_cudnn_benchmark, roofline and not no_roofline
    try:
        suites = [resolve_suite(p) for p in suites or ()]
        models, batch = adhoc.from_options(model, input_shape, kwargs, batch, dtype, channels_last, compile_)
    except LatbenchError as exc:
        fail(exc, debug)
    opts = RunOptions(suites=tuple(suites), models=models, device=device.value, quick=quick, threads=threads, schedule=schedule.value,
                      widths=widths.value if widths else None, platform=platform.value if platform else None,
                      batch=batch, modes=modes, max_time=max_time, min_time=min_time, target=target,
                      cudnn_benchmark=cudnn_benchmark, latency=latency.value, l2=l2.value, results_dir=results_dir, seed=seed, resume=resume,
                      case_timeout=case_timeout, profile=profile, roofline=roofline, allow_import=allow_import,
                      argv=tuple(sys.argv), max_cases=max_cases, isolate=isolate, in_process=in_process, repeats=repeats,
                      shard=shard, on=on, devices=tuple(d.strip() for d in devices.split(",") if d.strip()) if devices else None)
    try:
        with faults.signals_as_interrupts():
            code = _run(opts, quiet, verbose, fmt, output)
    except LatbenchError as exc:
        fail(exc, debug)
    except Exception as exc:  # a bug in latbench: the run's metadata already has a final status (session)
        if debug:
            raise
        fail(LatbenchError(f"internal error: {type(exc).__name__}: {exc}"[:500],
                           hint="this is a latbench bug; rerun with --debug for the traceback and report it"))
    except KeyboardInterrupt as exc:  # before or between runs: nothing half-written to report
        err.print(f"interrupted by {exc}" if isinstance(exc, faults.Interrupted) else "interrupted", style="yellow")
        code = exc.exit_code if isinstance(exc, faults.Interrupted) else 130
    raise typer.Exit(code)


def _run(opts, quiet: bool, verbose: bool = False, fmt: Format = Format.table, output: Optional[Path] = None) -> int:
    """Run the session (latbench.run), rendering its events; the exit code."""
    from latbench.cli.run_view import RunView
    from latbench.run import run as run_session

    view = RunView(quiet, verbose, tables_on_stdout=fmt is Format.table and output is None)
    try:
        outcome = run_session(opts, view)
    finally:
        view.stop_progress()
    if outcome.suites and (fmt is not Format.table or output is not None):
        write_output(run_output(outcome.suites, fmt), output)
    if outcome.interrupted is not None:
        return 128 + outcome.interrupted.signum  # as shells report it: 130 SIGINT, 143 SIGTERM
    return 1 if outcome.failed else 0


def run_output(results: list, fmt: Format) -> str:
    """A run's results in --format: csv (one table, every suite), json, markdown or table (text)."""
    from latbench.report import formats, terminal

    if fmt is Format.csv:
        return formats.run_csv(results)
    if fmt is Format.json:
        return formats.run_json(results)
    if fmt is Format.markdown:
        return formats.run_markdowns(results)
    return rendered(*(t for s in results for t in (
        [terminal.run_table(s.rows, s.title)]
        + ([terminal.claims_table(s.verdicts, f"claims of {s.suite_path}")] if s.verdicts is not None else []))))
