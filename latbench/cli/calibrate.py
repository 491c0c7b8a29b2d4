"""`latbench calibrate`: A/A runs -> per-case gate thresholds (the core is latbench.gate.calibrate)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from latbench.cli.common import (DebugOpt, ForceOpt, Format, at_least, check_output_option, command, err, fail,
                                 out, write_output)
from latbench.errors import LatbenchError


@command()
def calibrate(
    files: Annotated[Optional[list[str]], typer.Argument(metavar="CSV", help="A/A results: >= 2 runs of one suite, same code, same machine.", show_default=False)] = None,
    suite: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Instead of CSVs: run this suite --runs times now (as separate processes) and calibrate on those runs.")] = None,
    runs: Annotated[int, typer.Option(metavar="N", callback=at_least(2), help="With --suite: how many runs.")] = 3,
    run_args: Annotated[str, typer.Option(metavar="ARGS", help="With --suite: extra 'latbench run' options, e.g. '--quick' or '--max-time 2'.")] = "",
    results_dir: Annotated[Path, typer.Option(metavar="DIR", help="With --suite: where the runs' files go.")] = Path("results/calibration"),
    runs_per_side: Annotated[int, typer.Option(metavar="N", callback=at_least(1), help="How many runs per side the gate will get (thresholds shrink with more runs).")] = 3,
    min_threshold: Annotated[str, typer.Option(metavar="PCT", help="Never suggest less than this (2% or 0.02).")] = "2%",
    output: Annotated[Optional[Path], typer.Option("-o", "--output", metavar="FILE", callback=check_output_option, help="Write the thresholds file (YAML) here, for 'latbench gate --thresholds' (an existing FILE only with --force).")] = None,
    force: ForceOpt = False,
    fmt: Annotated[Format, typer.Option("--format", metavar="FORMAT", help="How the suggestions are printed: table (default), csv, json (the thresholds file's content) or markdown.")] = Format.table,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", metavar="", help="No progress on stderr (errors still show).")] = False,
    debug: DebugOpt = False,
) -> None:
    """A/A calibration: measure run-to-run noise per case and suggest per-case gate thresholds."""
    import json
    import shlex

    from latbench.compare import load_runs
    from latbench.gate import aa_runs, calibrate as calibrate_runs, parse_threshold, thresholds_file_text
    from latbench.report import formats
    from latbench.report.terminal import calibration_table

    def progress(i: int, n: int) -> None:
        if not quiet:
            err.print(f"calibration run {i}/{n} of {suite}", highlight=False)

    try:
        minimum = parse_threshold(min_threshold, "--min-threshold")
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
    if output is not None:  # the one file policy of every -o (latbench.results.files.write_output)
        write_output(thresholds_file_text(cal), output, force)
        if not quiet:
            err.print(f"wrote {output}; use it with 'latbench gate --thresholds {output}'", highlight=False)
    if fmt is Format.json:
        sys.stdout.write(json.dumps(cal.data, indent=2) + "\n")
    elif fmt is Format.csv:
        sys.stdout.write(formats.calibration_csv(cal.data))
    elif fmt is Format.markdown:
        sys.stdout.write(formats.calibration_markdown(cal.data))
    else:
        out.print(calibration_table(cal.suggestions, cal.pooled_pct, cal.noise_floor, cal.runs_per_side))
