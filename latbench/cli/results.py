"""`latbench compare`, `gate` and `calibrate`: results files in, a comparison or thresholds out."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from latbench.cli.common import (AlphaOpt, DebugOpt, Format, FormatOpt, JsonOpt, NoiseFloorOpt, NormalizedOpt,
                                 ForceOpt, OutputOpt, QuietOpt, SeedOpt, ThresholdOpt, at_least, command, err, fail,
                                 out, rendered, warn_all, write_output)
from latbench.errors import LatbenchError


def emit(cmp, fmt: Format, title: str, outcome=None, output: Optional[Path] = None) -> None:
    """A comparison (and a gate's outcome) in --format, on stdout or into -o FILE."""
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


def finish_gate(cmp, outcome, fmt: Format, title: str, output: Optional[Path] = None) -> None:
    """Print the gate's table and verdict, append markdown to $GITHUB_STEP_SUMMARY, exit 0 or 1."""
    import os

    from latbench.report.terminal import compare_markdown

    emit(cmp, fmt, title, outcome, output)
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


@command("compare")
def compare_cmd(
    files: Annotated[list[str], typer.Argument(metavar="RESULTS", show_default=False, help="Results CSVs, directories or globs (results/* works: a run's -samples.csv and .json count as that run). Without --baseline the first run is the baseline and the rest are repeated runs of the candidate; runs of several suites or settings (e.g. results/*.csv) are compared per suite and setting, each first run in time against the later ones.")],
    baseline: Annotated[Optional[list[str]], typer.Option("--baseline", "-b", metavar="RESULTS", help="Baseline results: a CSV, a directory of them or a quoted glob; repeat for several runs. Then every FILE is a candidate run.")] = None,
    threshold: ThresholdOpt = None,
    thresholds: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Per-case thresholds written by 'latbench calibrate'.")] = None,
    alpha: AlphaOpt = 0.05,
    noise_floor: NoiseFloorOpt = None,
    normalized: NormalizedOpt = False,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Align the cases of result files: baseline vs candidate medians, the ratio with its CI, and which changes are significant (also across devices and machines). Runs of several suites or settings (a results directory) are compared per suite and setting, each in time order."""
    from latbench.gate import check_alpha, comparison_options, compare_runs, load_comparison

    try:
        if baseline:
            cmps = [load_comparison(list(baseline), list(files), threshold, thresholds, alpha, noise_floor, seed,
                                    normalized)]
            singles: list[str] = []
        else:
            check_alpha(alpha)
            options = comparison_options(threshold, thresholds, noise_floor)
            cmps, singles = split_comparisons(files, lambda b, c: compare_runs(b, c, *options, alpha, seed,
                                                                                normalized))
    except LatbenchError as exc:
        fail(exc, debug)
    fmt = Format.json if as_json else fmt
    if len(cmps) == 1 and not singles:
        warn_all(cmps[0].warnings, quiet)
        emit(cmps[0], fmt, "latbench compare", output=output)
        return
    for cmp in cmps:
        warn_all([f"{cmp.title}: {w}" for w in cmp.warnings], quiet)
    emit_several(cmps, singles, fmt, output)


def split_comparisons(files: list[str], comparing) -> tuple[list, list[str]]:
    """`latbench compare FILES` without --baseline: the runs named, split by suite and settings
    (runsets.settings_groups). One set: the first run named is the baseline, the others repeated runs of
    the candidate. Several sets (e.g. results/*.csv over several suites and runs): per set, its first run
    in time is the baseline and the later ones the candidate; a set of one run is listed, not compared.
    Returns (comparisons, lines naming the single runs); LatbenchError when nothing can be compared."""
    import dataclasses

    from latbench.compare import load_runs
    from latbench.runsets import run_settings, settings_groups, settings_text

    runs = load_runs(files, "results")
    groups = settings_groups(runs)
    if len(groups) == 1:
        if len(runs) < 2:
            raise LatbenchError("compare needs a baseline and at least one candidate results file",
                                hint="latbench compare BASE.csv NEW.csv, or --baseline BASE.csv NEW.csv")
        return [comparing(runs[:1], runs[1:])], []
    cmps, singles = [], []
    for group in groups:
        label = f"{', '.join(sorted({s for r in group for s in r.rows['suite'].dropna().astype(str)}))} " \
                f"({settings_text(run_settings(group[0]))})"
        if len(group) == 1:
            singles.append(f"{label}: one run ({group[0].path.name}), nothing to compare it with")
            continue
        title = (f"{label}: {group[0].path.name} (first in time) vs {len(group) - 1} later run(s) "
                 f"{', '.join(r.path.name for r in group[1:])}")
        cmps.append(dataclasses.replace(comparing(group[:1], group[1:]), title=title))
    if not cmps:
        raise LatbenchError(f"no two runs of one suite with the same settings among the {len(runs)} given",
                            hint="give runs of one suite measured alike, or --baseline BASE.csv NEW.csv")
    return cmps, singles


def emit_several(cmps: list, singles: list[str], fmt: Format, output: Optional[Path]) -> None:
    """Several comparisons (one per suite and setting), each under its own title, clearly apart."""
    import json

    from latbench.report import terminal as report

    if fmt is Format.json:
        docs = [{"title": c.title, **json.loads(report.compare_json(c))} for c in cmps]
        write_output(json.dumps({"comparisons": docs, "not_compared": singles}, indent=2, default=str) + "\n",
                     output)
    elif fmt is Format.csv:
        import io

        import pandas as pd

        frames = [pd.read_csv(io.StringIO(report.compare_csv(c))).assign(comparison=c.title) for c in cmps]
        write_output(pd.concat(frames, ignore_index=True).to_csv(index=False), output)
    elif fmt is Format.markdown:
        text = "\n".join(report.compare_markdown(c, title=f"latbench compare: {c.title}") for c in cmps)
        write_output(text + "".join(f"\n> {line}\n" for line in singles), output)
    else:
        tables = [report.compare_table(c, f"latbench compare [{i + 1}/{len(cmps)}] {c.title}")
                  for i, c in enumerate(cmps)]
        if output is not None:
            write_output(rendered(*tables, *singles), output)
            return
        for t in tables:
            out.print(t)
            out.print()
        for line in singles:
            out.print(line, highlight=False, markup=False)


def unquoted_glob(extra: list[str], baseline: list[str], candidate: list[str]) -> LatbenchError:
    """Words after gate's options that belong to none: an unquoted glob the shell expanded
    (-b results/*.csv became -b results/a.csv results/b.csv, and only the first follows -b)."""
    first = Path(extra[0])
    if not (first.suffix == ".csv" or first.exists()):
        return LatbenchError(f"unexpected argument(s): {' '.join(extra)}", where="latbench gate",
                             hint="give results only after -b/--baseline and -c/--candidate")
    side = "-c" if any(Path(c).parent == first.parent for c in candidate) \
        and not any(Path(b).parent == first.parent for b in baseline) else "-b"
    pattern = "*" + first.suffix if first.parent == Path(".") else f"{first.parent.as_posix()}/*{first.suffix}"
    return LatbenchError(f"{len(extra)} results file(s) follow no option ({' '.join(extra[:3])}"
                         f"{' ...' if len(extra) > 3 else ''}): the shell expanded an unquoted glob",
                         where="latbench gate", hint=f"quote the glob: {side} '{pattern}' (or repeat {side} per file)")


@command(context_settings={"allow_extra_args": True})
def gate(
    ctx: typer.Context,
    baseline: Annotated[list[str], typer.Option("--baseline", "-b", metavar="RESULTS", help="Baseline results: a CSV, a directory or a quoted glob ('base/*.csv'); repeat the option for several runs.")],
    candidate: Annotated[list[str], typer.Option("--candidate", "-c", metavar="RESULTS", help="Candidate results, as for --baseline. Give >= 2 runs per side (e.g. 3, ABAB-alternated) so the test sees run-to-run noise.")],
    threshold: ThresholdOpt = None,
    thresholds: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Per-case thresholds written by 'latbench calibrate' (cases not in it use --threshold).")] = None,
    alpha: AlphaOpt = 0.05,
    noise_floor: NoiseFloorOpt = None,
    allow_different_machine: Annotated[bool, typer.Option("--allow-different-machine", metavar="", help="Gate even when CPU/GPU model, driver, torch, threads or device differ between the sides.")] = False,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", metavar="", help="Relax: a case on one side only (or failed only in the baseline) does not fail the gate.")] = False,
    inconclusive: Annotated[str, typer.Option("--inconclusive", metavar="fail|pass", help="What a case whose CI reaches its threshold without lying beyond it (or is undefined) does to the gate: fail (default) or pass; a CI wholly above 1 always fails.")] = "fail",
    normalized: NormalizedOpt = False,
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """CI latency gate, fail-closed: exit 0 only when a case was judged, every case was judged and none regressed: a case passes only when its CI's upper end is below 1 + threshold. Exit 1 when a case is slower (its whole CI above 1 + threshold), failed, is missing on a side, has an invalid latency or is inconclusive (the last two relaxable), or nothing was judged; 2 for unreadable or foreign input, runs of different settings, or an absurd threshold. Appends a markdown report to $GITHUB_STEP_SUMMARY."""
    from latbench.gate import decide, load_comparison, relaxations, require_same_machine, require_same_settings

    try:
        if ctx.args:
            raise unquoted_glob(list(ctx.args), baseline, candidate)
        relax = relaxations(allow_missing, inconclusive, allow_different_machine)
        cmp = load_comparison(baseline, candidate, threshold, thresholds, alpha, noise_floor, seed, normalized)
        if not allow_different_machine:
            require_same_machine(cmp.fingerprint_differences)
            require_same_settings(cmp.settings_differences)
    except LatbenchError as exc:
        fail(exc, debug)
    warn_all(cmp.warnings, quiet)
    outcome = decide(cmp.deltas, relax)
    finish_gate(cmp, outcome, Format.json if as_json else fmt, "latbench gate", output)


@command()
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

    from latbench.compare import load_runs
    from latbench.gate import aa_runs, calibrate as calibrate_runs, parse_threshold, thresholds_file_text
    from latbench.report import formats
    from latbench.report.terminal import calibration_table

    def progress(i: int, n: int) -> None:
        if not quiet:
            err.print(f"calibration run {i}/{n} of {suite}", highlight=False)

    try:
        minimum = parse_threshold(min_threshold, "--min-threshold")
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
            atomic_write_text(output, thresholds_file_text(cal))
        except OSError as exc:  # also ResultsWriteError
            fail(LatbenchError(f"cannot write --output: {getattr(exc, 'message', None) or exc.strerror or exc}",
                               where=str(output), hint="give a writable file path"), debug)
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
