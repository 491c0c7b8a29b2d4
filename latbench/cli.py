"""The command line: parse arguments, call the core, render, choose the exit code.

Exit codes: 0 done and fine; 1 done, but the answer is no (a case failed, a gate failed);
2 could not answer (bad usage, invalid suite, unreadable results, device unavailable).
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from latbench import __version__, faults
from latbench.errors import LatbenchError

def _readable_help() -> None:
    """typer shows a parameter's Python type in help ('<bool>' beside -h, '<list[Path]>' beside an
    argument) even where a metavar says what to give: show the metavar, and nothing for -h."""
    try:
        from typer._click.core import Command
        from typer.core import TyperArgument
    except ImportError:  # another typer layout: its own help, unchanged
        return
    if getattr(Command, "_latbench_help", False):
        return
    get_help_option = Command.get_help_option

    def help_option(self, ctx):
        opt = get_help_option(self, ctx)
        if opt is not None:
            opt.metavar, opt.help = "", "Show this help and exit."
        return opt

    plain_type = TyperArgument.display_type_rich

    def argument_type(self, ctx):
        return "" if self.metavar is not None else plain_type(self, ctx)

    Command.get_help_option, TyperArgument.display_type_rich, Command._latbench_help = help_option, argument_type, True


_readable_help()
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
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


class Format(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"


# Help panels of `run --help`, in the order they show.
P_WHAT, P_MEASURE, P_HW, P_OUT, P_MORE = "What to run", "Measurement", "Hardware analysis", "Output", "Other"


def at_least(minimum: float):
    """An option callback refusing values below `minimum` (a range check without '[x>=1]' in the help)."""
    def check(value):
        if value is not None and value < minimum:
            raise typer.BadParameter(f"{value} is below the minimum {minimum:g}")
        return value
    return check


def write_output(text: str, output: Optional[Path]) -> None:
    """Printed results go to stdout, or to -o/--output FILE (its directory created)."""
    if output is None:
        sys.stdout.write(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")


def rendered(*renderables) -> str:
    """Rich renderables as plain text (a table written to -o FILE)."""
    import io

    console = Console(width=200, record=True, file=io.StringIO())
    for r in renderables:
        console.print(r)
    return console.export_text()


class Latency(str, Enum):  # latbench.timing.cuda.LATENCY_SEMANTICS
    throughput = "throughput"
    single = "single"


class L2(str, Enum):  # latbench.timing.cuda.L2_STATES
    warm = "warm"
    flushed = "flushed"


def fail(exc: LatbenchError, debug: bool = False) -> None:
    """Print a user error on stderr and exit 2 (the one place errors become exit codes)."""
    if debug:
        raise exc
    err.print(f"error: {exc}", style="red", highlight=False, markup=False, emoji=False, soft_wrap=True)  # one line, copyable
    raise typer.Exit(2)


def version_callback(value: bool) -> None:
    if value:
        out.print(f"latbench {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[Optional[bool], typer.Option("--version", "-V", metavar="", callback=version_callback,
                                                         is_eager=True, help="Show the version.")] = None) -> None:
    """latbench: `run` a suite, `compare` results, `gate` a CI build."""
    faults.guard_stdio()  # odd encodings and a closed stdout (| head -1) never end in a traceback


@app.command()
def run(
    suites: Annotated[Optional[list[Path]], typer.Argument(metavar="SUITE", help="Suite files (suites/g1.yaml) or names of suites 'latbench list' shows (g1); several run one after another. Optional with --model.", show_default=False)] = None,
    device: Annotated[Device, typer.Option(metavar="cpu|cuda", help="Where to run (cuda without a GPU: exit 2).", rich_help_panel=P_WHAT)] = Device.cpu,
    quick: Annotated[bool, typer.Option("--quick", metavar="", help="Reduced run for CI: first scale only, ~0.3 s per case.", rich_help_panel=P_WHAT)] = False,
    widths: Annotated[Optional[WidthsMode], typer.Option(metavar="paper|flops", help="paper: the suite's channel lists; flops: widths solved to the first case's FLOPs. Default: the suite's.", rich_help_panel=P_WHAT)] = None,
    platform: Annotated[Optional[Platform], typer.Option(metavar="gpu|arm", help="Whose paper widths. Default: gpu on cuda, arm on cpu.", rich_help_panel=P_WHAT)] = None,
    batch: Annotated[Optional[str], typer.Option(metavar="N", help="Batch size (default: the suite's). --model: a list, e.g. 1,8.", rich_help_panel=P_WHAT)] = None,
    modes: Annotated[Optional[str], typer.Option(metavar="LIST", help="Execution modes, comma-separated. cuda: eager,cudagraph (default); cpu: eager.", rich_help_panel=P_WHAT)] = None,
    threads: Annotated[Optional[int], typer.Option(metavar="N", callback=at_least(1), help="torch intra-op threads. Default: 1 on cpu (as the paper's ARM runs), torch's on cuda.", rich_help_panel=P_WHAT)] = None,
    model: Annotated[Optional[list[str]], typer.Option("--model", metavar="SPEC", help="A built-in network or MODULE:FACTORY (imports it) to time without a suite; repeat, the first is the baseline.", rich_help_panel=P_WHAT)] = None,
    input_shape: Annotated[Optional[str], typer.Option("--input", metavar="CxHxW", help="--model input without the batch, e.g. 3x224x224.", rich_help_panel=P_WHAT)] = None,
    kwargs: Annotated[Optional[list[str]], typer.Option("--kwargs", metavar="JSON", help="--model keyword arguments: one for all, or one per --model.", rich_help_panel=P_WHAT)] = None,
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
    output: Annotated[Optional[Path], typer.Option("-o", "--output", metavar="FILE", help="Print the results into FILE instead of stdout.", rich_help_panel=P_OUT)] = None,
    results_dir: Annotated[Path, typer.Option(metavar="DIR", help="Where the run's files go (never overwritten).", rich_help_panel=P_OUT)] = Path("results"),
    quiet: Annotated[bool, typer.Option("-q", "--quiet", metavar="", help="No progress or notes on stderr (errors still show).", rich_help_panel=P_OUT)] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", metavar="", help="Also a line per finished group on stderr.", rich_help_panel=P_OUT)] = False,
    resume: Annotated[Optional[Path], typer.Option(metavar="CSV", help="Continue an interrupted run (its results .csv) with the same suite and options.", rich_help_panel=P_MORE)] = None,
    allow_import: Annotated[bool, typer.Option("--allow-import", metavar="", help="Let 'builder: user' suites import the Python module they name.", rich_help_panel=P_MORE)] = False,
    max_cases: Annotated[Optional[int], typer.Option(metavar="N", callback=at_least(0), help="Refuse a suite expanding to more cases than this, before anything is built. Default 1000; 0: no limit.", rich_help_panel=P_MORE)] = None,
    isolate: Annotated[bool, typer.Option("--isolate", metavar="", help="Each group in a worker process: a crash fails its cases only; a stuck call is killed (docs/reliability.md).", rich_help_panel=P_MORE)] = False,
    debug: Annotated[bool, typer.Option("--debug", metavar="", help="Show tracebacks for user errors too.", rich_help_panel=P_MORE)] = False,
) -> None:
    """Build each case of the suites, count FLOPs and MAC, warm up, time interleaved, write results/.

    Each finished group (experiment x scale) is on disk at once; Ctrl-C or SIGTERM keeps them and says how to --resume. Exit 0 fine, 1 a case failed, 2 bad input, 130/143 interrupted.
    """
    from latbench.session import RunOptions

    cudnn_benchmark, roofline = cudnn_benchmark and not no_cudnn_benchmark, roofline and not no_roofline
    try:
        suites = [resolve_suite(p) for p in suites or ()]
        models, batch = _model_request(model, input_shape, kwargs, batch, dtype, channels_last, compile_)
    except LatbenchError as exc:
        fail(exc, debug)
    opts = RunOptions(suites=tuple(suites), models=models, device=device.value, quick=quick, threads=threads, schedule=schedule.value,
                      widths=widths.value if widths else None, platform=platform.value if platform else None,
                      batch=batch, modes=modes, max_time=max_time, min_time=min_time, target=target,
                      cudnn_benchmark=cudnn_benchmark, latency=latency.value, l2=l2.value, results_dir=results_dir, seed=seed, resume=resume,
                      case_timeout=case_timeout, profile=profile, roofline=roofline, allow_import=allow_import,
                      argv=tuple(sys.argv), max_cases=max_cases, isolate=isolate, repeats=repeats)
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


def _model_request(model, input_shape, kwargs, batch, dtype, channels_last, compile_):
    """--model and its options as a suite.adhoc.ModelRequest (None without --model), and --batch for suites."""
    from latbench.suite import adhoc

    batches = adhoc.parse_batches(batch) if batch is not None else None
    if not model:
        given = [n for n, v in (("--input", input_shape), ("--kwargs", kwargs), ("--dtype", dtype),
                                ("--channels-last", channels_last), ("--compile", compile_)) if v]
        if given:
            raise LatbenchError(f"{given[0]} is an option of --model", hint="add --model NAME|MODULE:FACTORY, "
                                "or use a suite's 'sweep:' for dtype, memory format and mode")
        if batches and len(batches) > 1:
            raise LatbenchError(f"--batch {batch}: several batches need --model", hint="for a suite, give one "
                                "batch, or list them under 'sweep: batch:' in the suite")
        return None, batches[0] if batches else None
    req = adhoc.ModelRequest(models=tuple(model), input=input_shape, kwargs=tuple(kwargs or ()),
                             batches=batches or (1,), dtypes=adhoc.parse_dtypes(dtype) if dtype else ("float32",),
                             channels_last=channels_last, compile=compile_)
    return req, None


def _run(opts, quiet: bool, verbose: bool = False, fmt: Format = Format.table, output: Optional[Path] = None) -> int:
    """Run the session (latbench.session), rendering its events; the exit code."""
    from latbench import session

    view = _RunView(quiet, verbose, fmt, output)
    try:
        outcome = session.run(opts, view)
    finally:
        view.stop_progress()
    if outcome.suites and (fmt is not Format.table or output is not None):
        write_output(run_output(outcome.suites, fmt), output)
    if outcome.interrupted is not None:
        return 128 + outcome.interrupted.signum  # as shells report it: 130 SIGINT, 143 SIGTERM
    return 1 if outcome.failed else 0


def run_output(results: list, fmt: Format) -> str:
    """A run's results in --format: csv (one table, every suite), json, markdown or table (text)."""
    import json

    from latbench.records import RESULT_COLUMNS
    from latbench.report import terminal

    if fmt is Format.csv:
        import pandas as pd

        return pd.DataFrame([r for s in results for r in s.rows], columns=list(RESULT_COLUMNS)).to_csv(index=False)
    if fmt is Format.json:
        doc = [{"suite": s.suite_name, "suite_path": s.suite_path, "title": s.title, "results_csv": str(s.files.csv),
                "rows": [{c: terminal.plain(r.get(c)) for c in RESULT_COLUMNS} for r in s.rows],
                "claims": s.verdicts} for s in results]
        return json.dumps(terminal.jsonable(doc), indent=2, default=str, allow_nan=False) + "\n"
    if fmt is Format.markdown:
        return "\n".join(terminal.run_markdown(s.rows, s.title) for s in results)
    return rendered(*(t for s in results for t in (
        [terminal.run_table(s.rows, s.title)]
        + ([terminal.claims_table(s.verdicts, f"claims of {s.suite_path}")] if s.verdicts is not None else []))))


def suite_dirs() -> list[Path]:
    """Where suites are found by name: ./suites, then the suites shipped with latbench."""
    return [Path("suites"), Path(__file__).resolve().parent / "suites"]


def resolve_suite(path: Path) -> Path:
    """A suite argument: a file as given, or a name ('g1') looked up in suite_dirs()."""
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    for d in suite_dirs():
        for ext in (".yaml", ".yml"):
            if (d / f"{path}{ext}").is_file():
                return d / f"{path}{ext}"
    raise LatbenchError(f"no suite file or suite named {str(path)!r}", where="latbench run",
                        hint="give a path such as suites/g1.yaml, or a name that 'latbench list' shows")


MAX_NAMED_FAILURES = 10  # the summary line names this many failed cases; the CSV's 'error' column has all


class _RunView:
    """Renders a run session (the latbench.session.Events callbacks): progress and notes on stderr,
    tables on stdout."""

    def __init__(self, quiet: bool, verbose: bool = False, fmt: Format = Format.table, output: Optional[Path] = None):
        self.quiet = quiet
        self.verbose = verbose and not quiet
        self.stdout_table = fmt is Format.table and output is None  # else _run prints everything at the end
        self.progress = None
        self.task = None

    def on_note(self, kind: str, text: str) -> None:
        if self.quiet:
            return
        if kind in ("advice", "unstable"):
            err.print(f"warning: {text}", style="yellow", highlight=False, markup=False)
        else:
            err.print(text, highlight=False)

    def on_suite_start(self, suite_name: str) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.stop_progress()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("round {task.completed:.0f}"),
                                 TimeElapsedColumn(), console=err, disable=self.quiet, transient=True)
        self.progress.start()
        self.task = self.progress.add_task(suite_name, total=None)

    def on_progress(self, suite_name: str, group: str, rounds: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"{suite_name} {group}", completed=rounds)

    def on_group_start(self, suite_name: str, group: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"{suite_name} {group}", completed=0)

    def on_group_done(self, suite_name: str, group: str, rows: list) -> None:
        if self.verbose:
            ok = sum(r["status"] == "ok" for r in rows)
            stops = ", ".join(sorted({str(r.get("stop_reason")) for r in rows}))
            err.print(f"{suite_name} {group}: {ok}/{len(rows)} row(s) ok, stopped by {stops}", highlight=False,
                      markup=False)

    def stop_progress(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_interrupted(self, info) -> None:
        self.stop_progress()
        err.print(f"interrupted by {info.signal_name}: {len(info.finished)} of "
                  f"{len(info.finished) + len(info.pending)} group(s) are saved in {info.csv} "
                  f"(status 'interrupted' in {info.meta_name}); not measured: {', '.join(info.pending)}",
                  style="yellow", highlight=False, markup=False, soft_wrap=True)
        err.print(f"resume with: {info.resume_command}", highlight=False, markup=False, soft_wrap=True)

    def on_suite_done(self, result) -> None:
        from latbench.report.terminal import claims_table, run_table

        self.stop_progress()
        files, quiet = result.files, self.quiet
        if self.stdout_table:
            out.print(run_table(files.rows, result.title))
            if result.verdicts is not None:
                out.print(claims_table(result.verdicts, f"claims of {result.suite_path}"))
        if not quiet and any(r.get("warnings") for r in files.rows):
            err.print("notes: 'noisy +-x%' = 95% CI half-width of the median; 'ratio +-x%' = of the ratio to the "
                      "baseline; remedies: raise --max-time, stop other jobs, pin --threads (full text in the "
                      "'warnings' column; -q hides this)", style="yellow", highlight=False)
        if not quiet:
            err.print(f"wrote {files.csv}, {files.samples.name}, {files.meta.name}", highlight=False)
        failed, skipped = result.failed, result.skipped
        if skipped and not quiet:
            err.print(f"{len(skipped)} case(s) skipped: this device cannot run them (reason in the 'error' column)",
                      style="cyan", highlight=False)
        if failed:
            named = "; ".join(f"{r['experiment']}/{r['case']}/x{r['scale']} {r['mode']}: {r['error']}"
                              for r in failed[:MAX_NAMED_FAILURES])
            more = f"; and {len(failed) - MAX_NAMED_FAILURES} more" if len(failed) > MAX_NAMED_FAILURES else ""
            err.print(f"{len(failed)} case(s) failed in {result.suite_path} (the run went on): {named}{more}",
                      style="red", highlight=False, markup=False, soft_wrap=True)


@app.command("list")
def list_cmd(
    what: Annotated[Optional[str], typer.Argument(metavar="[suites|builders]", help="Only suites or only builders (default: both).", show_default=False)] = None,
) -> None:
    """List the suites (./suites and latbench's own; run them by name) and the builders, with defaults."""
    if what not in (None, "suites", "builders"):
        fail(LatbenchError(f"cannot list {what!r}", where="latbench list", hint="use 'suites', 'builders' or nothing"))
    if what in (None, "suites"):
        _list_suites()
    if what in (None, "builders"):
        _list_builders()


def _list_suites() -> None:
    import yaml

    seen: set[Path] = set()
    out.print("suites (run one by name: latbench run NAME):", style="bold", highlight=False)
    for d in suite_dirs():
        for p in sorted(d.glob("*.y*ml")) if d.is_dir() else []:
            if p.resolve() in seen:
                continue
            seen.add(p.resolve())
            try:
                data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
                about = " ".join(str(data.get("description", "")).split())
            except (OSError, yaml.YAMLError) as exc:
                about = f"(unreadable: {str(exc).splitlines()[0]})"
            about = about if len(about) <= 90 else about[:87] + "..."
            out.print(f"  {p.stem:<16} {p}\n      {about}", highlight=False, markup=False)


def _list_builders() -> None:
    from pydantic_core import PydanticUndefined

    from latbench.models import get_builder, list_builders

    out.print("builders (a suite's 'builder:'; parameter=default, * = required):", style="bold", highlight=False)
    for name in list_builders():
        if name.startswith("_"):
            continue
        b = get_builder(name)
        params = ", ".join(f"{k}*" if f.default is PydanticUndefined and f.default_factory is None
                           else f"{k}={f.default_factory() if f.default_factory else f.default!r}"
                           for k, f in b.params.model_fields.items())
        widths = f"; widths: {', '.join(b.width_names)}" if b.width_names else ""
        out.print(f"  {name}: {b.summary}\n      parameters: {params}{widths}", highlight=False, markup=False)


@app.command("env")
def env_cmd(
    fmt: Annotated[Format, typer.Option("--format", metavar="table|json", help="json: what each run's metadata holds.")] = Format.table,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", metavar="FILE", help="Print into FILE instead of stdout.")] = None,
    json_out: Annotated[bool, typer.Option("--json", hidden=True, help="Same as --format json.")] = False,
) -> None:
    """Show this machine's fingerprint: CPU, clocks, governor, memory, OS, Python, torch, CUDA/cuDNN, threads, GPUs."""
    import json

    from latbench.env import fingerprint
    from latbench.report.terminal import env_table

    fp = fingerprint()
    if fmt in (Format.csv, Format.markdown):
        fail(LatbenchError(f"--format {fmt.value} is not available for env", where="latbench env",
                           hint="use --format table or --format json"))
    if json_out or fmt is Format.json:
        write_output(json.dumps(fp, indent=2, sort_keys=True, default=str) + "\n", output)
    elif output is not None:
        write_output(rendered(env_table(fp)), output)
    else:
        out.print(env_table(fp))


@app.command("report")
def report_cmd(
    files: Annotated[list[Path], typer.Argument(metavar="CSV", help="Results CSVs, e.g. results/*.csv (the *-samples.csv and .json beside each are read too; samples files given here are skipped).", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="FILE", help="The markdown report; its figures go into figures/ beside it (created).")] = Path("report/report.md"),
    out_dir: Annotated[Optional[Path], typer.Option("--out", hidden=True, help="Deprecated: use -o DIR/NAME.md.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", hidden=True, help="Deprecated: use -o DIR/NAME.md.")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", metavar="", help="Do not list written files on stderr.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", metavar="", help="List every figure written.")] = False,
    debug: Annotated[bool, typer.Option("--debug", metavar="", help="Show tracebacks for user errors too.")] = False,
) -> None:
    """Write a markdown report with PNG figures for the results of any suites.

    Each suite's claims judged over all its runs, every case against its baseline (the paper side by side for G1-G4), roofline, and which cost (FLOPs, MAC, roofline time) ranks latency best. Headless."""
    from rich.markup import escape
    from rich.table import Table

    from latbench.report.markdown import group_text, title, write_report

    if out_dir is not None or name is not None:  # the old --out DIR --name NAME.md
        output = (out_dir or output.parent) / (name or output.name)
        if not quiet:
            err.print(f"warning: --out/--name are deprecated; use -o {output}", style="yellow", highlight=False)
    try:
        _check_report_name(name if name is not None else output.name)
        rep = write_report(files, output.parent, output.name)
        partial = _partial_runs(files)
    except LatbenchError as exc:
        fail(exc, debug)
    except OSError as exc:  # --out a file, read-only, disk full: one line, exit 2
        fail(LatbenchError(f"cannot write the report: {exc.strerror or exc}", where=str(exc.filename or output),
                           hint="give -o a writable path"), debug)
    if not quiet:
        for path, status in partial:
            err.print(f"warning: {path} is a partial run (status '{status}'): the report covers only its finished "
                      f"groups; finish it with 'latbench run ... --resume {path}'", style="yellow", highlight=False,
                      markup=False, soft_wrap=True)
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
        if verbose:
            for f in rep.figures:
                err.print(f"  {f}", highlight=False)


@app.command("audit")
def audit_cmd(
    model: Annotated[str, typer.Argument(metavar="NETWORK|MODULE:FACTORY", help="A built-in network ('latbench list') or your own MODULE:FACTORY (naming it imports it).", show_default=False)],
    input_shape: Annotated[Optional[str], typer.Option("--input", metavar="CxHxW", help="The input without the batch. Needed for MODULE:FACTORY; a built-in network takes 3xRxR (default 3x224x224).")] = None,
    kwargs: Annotated[Optional[str], typer.Option("--kwargs", metavar="JSON", help="Keyword arguments of the factory (or a built-in network's parameters, e.g. '{\"width\": 0.5}').")] = None,
    batch: Annotated[int, typer.Option(metavar="N", callback=at_least(1), help="Batch size.")] = 1,
    dtype: Annotated[str, typer.Option(metavar="DTYPE", help="float32, bfloat16 or float16.")] = "float32",
    threads: Annotated[Optional[int], typer.Option(metavar="N", callback=at_least(1), help="torch intra-op threads (default 1, as 'run' on cpu).")] = None,
    rounds: Annotated[int, typer.Option(metavar="N", callback=at_least(1), help="Interleaved rounds: the whole network timed alone, then profiled layer by layer.")] = 7,
    out_dir: Annotated[Path, typer.Option("-o", "--output", "--out", metavar="DIR", help="Directory for the markdown, CSV and figures/ (created).")] = Path("report"),
    name: Annotated[Optional[str], typer.Option(metavar="STEM", help="File stem of the outputs (default audit-<model>).")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", metavar="", help="Do not list written files on stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", metavar="", help="Show tracebacks for user errors too.")] = False,
) -> None:
    """Guideline audit of one network on the CPU: per layer multiply-adds, MAC bytes, arithmetic intensity, share of time, time above its roofline bound and the ShuffleNet V2 guideline it strains (G1-G4); a ranking of where it loses time against FLOPs. Markdown, CSV and a figure."""
    from latbench.audit import run_audit
    from latbench.report.audit import write_audit

    try:
        a = run_audit(model, input_shape, kwargs, batch=batch, dtype=dtype, threads=threads, rounds=rounds)
        md, csv_path, fig = write_audit(a, out_dir, name)
    except LatbenchError as exc:
        fail(exc, debug)
    out.print(f"{a.target}: {a.whole_ms:.3f} ms per forward; layers' op time {100 * a.ops_ms / a.whole_ms:.0f} % "
              f"of it (adds up within tolerance: {'yes' if a.adds_up else 'no'})", highlight=False)
    for i, layer in enumerate(a.ranking(5), 1):
        out.print(f"  {i}. {layer.name} ({layer.kind}): {100 * layer.time_share:.1f} % of time, "
                  f"{100 * layer.flops_share:.1f} % of FLOPs {layer.guideline}", highlight=False, markup=False)
    if not quiet:
        err.print(f"wrote {md}, {csv_path} and {fig}", highlight=False)


def _check_report_name(name: str) -> None:
    """--name is a file name inside --out: not empty, no directory part (so never outside --out)."""
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise LatbenchError(f"--name {name!r} is not a plain file name",
                            hint="give a file name such as report.md; use --out for the directory")


def _partial_runs(files: list[Path]) -> list[tuple[str, str]]:
    """(path, status) of each run among `files` that did not finish (killed, interrupted)."""
    from latbench.results import schema
    from latbench.results.read import read_runs

    return [(str(r.path), r.status) for r in read_runs(list(files), strict=False) if r.status != schema.COMPLETE]


# ---------------------------------------------------------------- compare, gate, calibrate


_THRESHOLD_HELP = ("A case counts as slower (or faster) only beyond this change AND when the change is "
                   "significant: a percent with % (10%, the default) or a fraction (0.1); a bare number >= 1 "
                   "is refused as ambiguous.")
_NOISE_FLOOR_HELP = ("Only with ONE file per side: assumed run-to-run drift that within-run samples cannot "
                     "show; widens the ratio's CI by this factor (10% or 0.1). Default 10% (or the --thresholds file's). "
                     "Better: give >= 2 runs per side.")


# Options compare and gate share (typer reads Annotated aliases like inline annotations).
ThresholdOpt = Annotated[Optional[str], typer.Option(metavar="PCT", help=_THRESHOLD_HELP)]
AlphaOpt = Annotated[float, typer.Option(metavar="P", help="Significance level: the ratio's CI is 1-alpha (two-sided).")]
NoiseFloorOpt = Annotated[Optional[str], typer.Option(metavar="PCT", help=_NOISE_FLOOR_HELP)]
FormatOpt = Annotated[Format, typer.Option("--format", metavar="FORMAT", help="table (default), csv, json or markdown (a PR comment).")]
OutputOpt = Annotated[Optional[Path], typer.Option("-o", "--output", metavar="FILE", help="Print the results into FILE instead of stdout.")]
NormalizedOpt = Annotated[bool, typer.Option("--normalized", metavar="", help="Judge each case by its change relative to its suite's first (reference) case, paired within each run, so machine-wide drift cancels; the reference itself is not judged. Use when the machine is noisy and the suite has a reference case your change cannot affect (docs/compare-and-gate.md).")]
JsonOpt = Annotated[bool, typer.Option("--json", hidden=True, help="Same as --format json.")]
SeedOpt = Annotated[int, typer.Option(metavar="N", help="Seed of the bootstrap (one run per side).")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", metavar="", help="No warnings on stderr (errors still show).")]
DebugOpt = Annotated[bool, typer.Option("--debug", metavar="", help="Show tracebacks for user errors too.")]


def fraction_option(text: str, what: str) -> float:
    """A threshold as the command line takes it: '10%' or a fraction '0.1'. A bare number >= 1 is refused:
    it read as percent (1 = 1%) while 0.5 read as 50%, so the unit depended on the size."""
    from latbench.gate import parse_fraction

    s = str(text).strip()
    if not s.endswith("%"):
        try:
            v = float(s)
        except ValueError:
            v = None
        if v is not None and v >= 1:
            raise LatbenchError(f"{s!r} is ambiguous (1 percent or {v:g} times?)", where=what,
                                hint=f"write a percent with %, e.g. {v:g}%, or a fraction, e.g. {v / 100:g}")
    return parse_fraction(s, what, bare_percent=False)


def _comparison(base: list, cand: list, threshold: Optional[str], thresholds: Optional[Path], alpha: float,
                noise_floor: Optional[str], seed: int, normalized: bool = False):
    from latbench.compare import DEFAULT_NOISE_FLOOR, compare, load_runs
    from latbench.gate import DEFAULT_THRESHOLD, Thresholds

    if not 0 < alpha < 0.5:
        raise LatbenchError(f"--alpha {alpha} is out of range", hint="use e.g. 0.05 (a 95% confidence interval)")
    given = fraction_option(threshold, "--threshold") if threshold is not None else None
    thr = Thresholds.from_file(thresholds, given) if thresholds is not None else Thresholds(
        given if given is not None else DEFAULT_THRESHOLD)
    floor = (fraction_option(noise_floor, "--noise-floor") if noise_floor is not None
             else thr.noise_floor if thr.noise_floor is not None else DEFAULT_NOISE_FLOOR)
    base_runs, cand_runs = load_runs(base, "baseline"), load_runs(cand, "candidate")
    return compare(base_runs, cand_runs, thr.for_case, alpha, floor, seed, normalized)


def _emit(cmp, fmt: Format, title: str, outcome=None, output: Optional[Path] = None) -> None:
    from latbench.report import terminal as report

    if fmt is Format.json:
        write_output(report.compare_json(cmp, outcome), output)
    elif fmt is Format.csv:
        write_output(report.compare_csv(cmp), output)
    elif fmt is Format.markdown:
        write_output(report.compare_markdown(cmp, outcome, title), output)
    elif output is not None:
        write_output(rendered(report.compare_table(cmp, title), *([outcome.summary()] if outcome else [])), output)
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
    files: Annotated[list[str], typer.Argument(metavar="RESULTS", show_default=False, help="Results CSVs, directories or globs (results/* works: a run's -samples.csv and .json count as that run). Without --baseline the first run is the baseline and the rest are repeated runs of the candidate.")],
    baseline: Annotated[Optional[list[str]], typer.Option("--baseline", "-b", metavar="RESULTS", help="Baseline results: a CSV, a directory of them or a quoted glob; repeat for several runs. Then every FILE is a candidate run.")] = None,
    threshold: ThresholdOpt = None,
    thresholds: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Per-case thresholds written by 'latbench calibrate'.")] = None,
    alpha: AlphaOpt = 0.05,
    noise_floor: NoiseFloorOpt = None,
    normalized: NormalizedOpt = False,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
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
    _emit(cmp, Format.json if as_json else fmt, "latbench compare", output=output)


@app.command()
def gate(
    baseline: Annotated[list[str], typer.Option("--baseline", "-b", metavar="RESULTS", help="Baseline results: a CSV, a directory or a quoted glob ('base/*.csv'); repeat the option for several runs.")],
    candidate: Annotated[list[str], typer.Option("--candidate", "-c", metavar="RESULTS", help="Candidate results, as for --baseline. Give >= 2 runs per side (e.g. 3, ABAB-alternated) so the test sees run-to-run noise.")],
    threshold: ThresholdOpt = None,
    thresholds: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Per-case thresholds written by 'latbench calibrate' (cases not in it use --threshold).")] = None,
    alpha: AlphaOpt = 0.05,
    noise_floor: NoiseFloorOpt = None,
    allow_different_machine: Annotated[bool, typer.Option("--allow-different-machine", metavar="", help="Gate even when CPU/GPU model, driver, torch, threads or device differ between the sides.")] = False,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", metavar="", help="Relax: a case on one side only (or failed only in the baseline) does not fail the gate.")] = False,
    inconclusive: Annotated[str, typer.Option("--inconclusive", metavar="fail|pass", help="What a case whose CI is undefined or wider than its threshold does to the gate: fail (default) or pass.")] = "fail",
    normalized: NormalizedOpt = False,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """CI latency gate, fail-closed: exit 0 only when every case was judged and none regressed; 1 when a case is slower than its threshold AND significantly so, failed, is missing on a side, has an invalid latency or is inconclusive (the last two relaxable); 2 for unreadable or foreign input. Appends a markdown report to $GITHUB_STEP_SUMMARY."""
    from latbench.gate import decide, require_same_machine

    try:
        relax = _relaxations(allow_missing, inconclusive, allow_different_machine)
        cmp = _comparison(baseline, candidate, threshold, thresholds, alpha, noise_floor, seed, normalized)
        if not allow_different_machine:
            require_same_machine(cmp.fingerprint_differences)
    except LatbenchError as exc:
        fail(exc, debug)
    _warn_all(cmp.warnings, quiet)
    outcome = decide(cmp.deltas, relax)
    _finish_gate(cmp, outcome, Format.json if as_json else fmt, "latbench gate", output)


def _relaxations(allow_missing: bool, inconclusive: str, allow_different_machine: bool):
    from latbench.gate import Relaxations

    if inconclusive not in ("pass", "fail"):
        raise LatbenchError(f"--inconclusive {inconclusive!r} is neither pass nor fail",
                            hint="use --inconclusive fail (default) or --inconclusive pass")
    return Relaxations(allow_missing, inconclusive == "pass", allow_different_machine)


def _finish_gate(cmp, outcome, fmt: Format, title: str, output: Optional[Path] = None) -> None:
    """Print the gate's table and verdict, append markdown to $GITHUB_STEP_SUMMARY, exit 0 or 1."""
    import os

    from latbench.report.terminal import compare_markdown

    _emit(cmp, fmt, title, outcome, output)
    if fmt is Format.table:
        for line in outcome.reasons:
            err.print(f"gate: {line}", highlight=False, markup=False)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(compare_markdown(cmp, outcome, title) + "\n")
        except OSError as exc:
            err.print(f"warning: could not append to $GITHUB_STEP_SUMMARY ({exc})", style="yellow", markup=False)
    raise typer.Exit(outcome.exit_code)


@app.command()
def calibrate(
    files: Annotated[Optional[list[str]], typer.Argument(metavar="CSV", help="A/A results: >= 2 runs of one suite, same code, same machine.", show_default=False)] = None,
    suite: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Instead of CSVs: run this suite --runs times now (as separate processes) and calibrate on those runs.")] = None,
    runs: Annotated[int, typer.Option(metavar="N", callback=at_least(2), help="With --suite: how many runs.")] = 3,
    run_args: Annotated[str, typer.Option(metavar="ARGS", help="With --suite: extra 'latbench run' options, e.g. '--quick' or '--max-time 2'.")] = "",
    results_dir: Annotated[Path, typer.Option(metavar="DIR", help="With --suite: where the runs' files go.")] = Path("results/calibration"),
    runs_per_side: Annotated[int, typer.Option(metavar="N", callback=at_least(1), help="How many runs per side the gate will get (thresholds shrink with more runs).")] = 3,
    min_threshold: Annotated[str, typer.Option(metavar="PCT", help="Never suggest less than this (2% or 0.02).")] = "2%",
    output: Annotated[Optional[Path], typer.Option("-o", "--output", metavar="FILE", help="Write the thresholds file (YAML) here, for 'latbench gate --thresholds'.")] = None,
    fmt: Annotated[Format, typer.Option("--format", metavar="FORMAT", help="How the suggestions are printed: table (default), csv, json (the thresholds file's content) or markdown.")] = Format.table,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", metavar="", help="No progress on stderr (errors still show).")] = False,
    debug: DebugOpt = False,
) -> None:
    """A/A calibration: measure run-to-run noise per case and suggest per-case gate thresholds."""
    import json
    import shlex

    import yaml

    from latbench.compare import load_runs
    from latbench.gate import aa_runs, calibrate as calibrate_runs
    from latbench.report.terminal import calibration_table

    def progress(i: int, n: int) -> None:
        if not quiet:
            err.print(f"calibration run {i}/{n} of {suite}", highlight=False)

    try:
        minimum = fraction_option(min_threshold, "--min-threshold")
        if output is not None and (output.exists() or output.is_symlink()):  # never a silent overwrite
            raise LatbenchError("--output already exists" + (" and is a directory" if output.is_dir() else ""),
                                where=str(output), hint="give a new file path, or remove the old file first")
        try:
            extra = shlex.split(run_args)
        except ValueError as exc:
            raise LatbenchError(f"--run-args {run_args!r}: {exc}", hint="quote it as a shell would, "
                                                                       "e.g. --run-args '--quick --max-time 2'") from None
        specs = list(files or [])
        if suite is not None:
            specs += [str(p) for p in aa_runs(suite, runs, extra, results_dir, progress)]
        if not specs:
            raise LatbenchError("nothing to calibrate on", hint="give >= 2 A/A results files, or --suite FILE")
        cal = calibrate_runs(load_runs(specs, "A/A"), runs_per_side, minimum)
    except LatbenchError as exc:
        fail(exc, debug)
    if output is not None:
        from latbench.results.files import atomic_write_text

        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(output, "# latbench gate thresholds, from 'latbench calibrate' (A/A run-to-run noise)\n"
                              + yaml.safe_dump(cal.data, sort_keys=False))
        except OSError as exc:  # also ResultsWriteError
            fail(LatbenchError(f"cannot write --output: {getattr(exc, 'message', None) or exc.strerror or exc}",
                               where=str(output), hint="give a writable file path"), debug)
        if not quiet:
            err.print(f"wrote {output}; use it with 'latbench gate --thresholds {output}'", highlight=False)
    if fmt is Format.json:
        sys.stdout.write(json.dumps(cal.data, indent=2) + "\n")
    elif fmt in (Format.csv, Format.markdown):
        import pandas as pd

        from latbench.report.terminal import markdown_table

        cases = pd.DataFrame(cal.data.get("cases") or [])
        if fmt is Format.csv:
            sys.stdout.write(cases.to_csv(index=False))
        else:
            sys.stdout.write(markdown_table([(str(c), "left") for c in cases.columns],
                                            [[str(v) for v in row] for row in cases.itertuples(index=False)]))
    else:
        out.print(calibration_table(cal.suggestions, cal.pooled_pct, cal.noise_floor, cal.runs_per_side))


@app.command("ab")
def ab_cmd(
    suite: Annotated[Path, typer.Argument(metavar="SUITE", show_default=False, help="Suite whose cases are 'builder: user' (your modules).")],
    base: Annotated[str, typer.Option("--base", metavar="DIR|REF", help="Baseline code: a source directory, or a git ref of --repo (checked out as a temporary worktree).")],
    head: Annotated[str, typer.Option("--head", metavar="DIR|REF", help="Candidate code: a source directory or a git ref, as --base.")],
    repo: Annotated[Path, typer.Option(metavar="DIR", help="The git repository --base/--head refs belong to.")] = Path("."),
    allow_import: Annotated[bool, typer.Option("--allow-import", metavar="", help="Required: the suite imports and runs your code, from both sides.")] = False,
    device: Annotated[Device, typer.Option(metavar="cpu|cuda", help="cpu or cuda.")] = Device.cpu,
    threads: Annotated[Optional[int], typer.Option(metavar="N", callback=at_least(1), help="torch threads.")] = None,
    max_time: Annotated[Optional[float], typer.Option(metavar="SECONDS", callback=at_least(0.01), help="Seconds of measurement per case at most (both sides together).")] = None,
    min_time: Annotated[Optional[float], typer.Option(metavar="SECONDS", callback=at_least(0.0), help="Seconds of measurement per case at least.")] = None,
    threshold: ThresholdOpt = None,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", metavar="", help="Relax: a case measured on one side only does not fail the gate.")] = False,
    inconclusive: Annotated[str, typer.Option("--inconclusive", metavar="fail|pass", help="fail (default) or pass: what a case whose CI is undefined or wider than its threshold does to the gate.")] = "fail",
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of the interleaving order and of the models' weights.")] = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Interleaved A/B gate: measure two versions of your code (directories or git refs) in the same rounds, one process, and gate on each case's paired per-round ratio head/base. Exit codes as 'latbench gate'."""
    from latbench import ab, devices
    from latbench.gate import DEFAULT_THRESHOLD, decide

    try:
        relax = _relaxations(allow_missing, inconclusive, False)
        thr = fraction_option(threshold, "--threshold") if threshold is not None else DEFAULT_THRESHOLD
        with ab.checkout_sides(base, head, repo) as sides:
            specs = ab.load_ab_suite(suite, sides[0], devices.of(device.value).default_platform, allow_import)
            result = ab.run_ab(specs, sides, device.value, threads, thr, max_time_s=max_time, min_time_s=min_time,
                               seed=seed, on_case=lambda label: None if quiet else err.print(
                                   f"measuring {label} (base and head interleaved)", highlight=False, markup=False))
    except LatbenchError as exc:
        fail(exc, debug)
    outcome = decide(result.comparison.deltas, relax)
    _finish_gate(result.comparison, outcome, Format.json if as_json else fmt, "latbench ab", output)
