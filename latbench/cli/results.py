"""`latbench compare` and `gate`: results files in, a comparison and a decision out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from latbench.cli.common import (AlphaOpt, DebugOpt, Format, FormatOpt, JsonOpt, NoiseFloorOpt, NormalizedOpt,
                                 ForceOpt, OutputOpt, QuietOpt, SeedOpt, ThresholdOpt, command, err, fail,
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

    from latbench.report import formats
    from latbench.report import terminal as report

    if fmt is not Format.table:
        write_output(formats.comparisons_text(cmps, singles, fmt.value), output)
        return
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
