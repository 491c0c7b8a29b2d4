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
    max_time: Annotated[Optional[float], typer.Option(min=0.01, help="Seconds of measurement per case at most (default: cpu 2.5, cuda 10; quick 0.3).")] = None,
    min_time: Annotated[Optional[float], typer.Option(min=0.0, help="Seconds of measurement per case at least (default 0.5).")] = None,
    target: Annotated[Optional[float], typer.Option(min=0.0001, help="Stop when every ratio to the baseline (a lone case: its median) is known to +-this fraction, decided at 99% confidence. Default 0.01.")] = None,
    repeats: Annotated[Optional[int], typer.Option(min=1, max=50, help="Measure each group in N separate worker processes spread over the run and pool them: the ratio CI then includes the spread between processes (ratio_interval 'processes-t'), and ratios that move between processes more than their interval are flagged unstable. Default 1; reproduction runs use 3 (docs/intervals.md).")] = None,
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
    from latbench.session import RunOptions

    opts = RunOptions(suites=tuple(suites), device=device.value, quick=quick, threads=threads, schedule=schedule.value,
                      widths=widths.value if widths else None, platform=platform.value if platform else None,
                      batch=batch, modes=modes, max_time=max_time, min_time=min_time, target=target,
                      cudnn_benchmark=cudnn_benchmark, results_dir=results_dir, seed=seed, resume=resume,
                      case_timeout=case_timeout, profile=profile, roofline=roofline, allow_import=allow_import,
                      argv=tuple(sys.argv), repeats=repeats)
    try:
        with faults.signals_as_interrupts():
            code = _run(opts, quiet)
    except LatbenchError as exc:
        fail(exc, debug)
    except KeyboardInterrupt as exc:  # before or between runs: nothing half-written to report
        err.print(f"interrupted by {exc}" if isinstance(exc, faults.Interrupted) else "interrupted", style="yellow")
        code = exc.exit_code if isinstance(exc, faults.Interrupted) else 130
    raise typer.Exit(code)


def _run(opts, quiet: bool) -> int:
    """Run the session (latbench.session), rendering its events; the exit code."""
    from latbench import session

    view = _RunView(quiet)
    try:
        outcome = session.run(opts, view)
    finally:
        view.stop_progress()
    if outcome.interrupted is not None:
        return 128 + outcome.interrupted.signum  # as shells report it: 130 SIGINT, 143 SIGTERM
    return 1 if outcome.failed else 0


MAX_NAMED_FAILURES = 10  # the summary line names this many failed cases; the CSV's 'error' column has all


class _RunView:
    """Renders a run session (the latbench.session.Events callbacks): progress and notes on stderr,
    tables on stdout."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
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
        pass

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
def list_cmd() -> None:
    """List the network builders a suite can name."""
    from latbench.models import get_builder, list_builders

    for name in list_builders():
        b = get_builder(name)
        fields = ", ".join(f"{k}" for k in b.params.model_fields)
        out.print(f"{name}: {b.summary}\n    parameters: {fields}; widths: {', '.join(b.width_names)}",
                  highlight=False)


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
