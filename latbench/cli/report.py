"""`latbench report` (markdown and figures for any results) and `latbench audit` (one network's layers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from latbench.cli.common import at_least, command, err, fail, out
from latbench.errors import LatbenchError


@command("report")
def report_cmd(
    files: Annotated[list[Path], typer.Argument(metavar="CSV", help="Results CSVs, e.g. results/*.csv (the *-samples.csv and .json beside each are read too; samples files given here are skipped).", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="FILE", help="The markdown report; its figures go into figures/ beside it (created).")] = Path("report/report.md"),
    out_dir: Annotated[Optional[Path], typer.Option("--out", hidden=True, help="Deprecated: use -o DIR/NAME.md.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", hidden=True, help="Deprecated: use -o DIR/NAME.md.")] = None,
    force: Annotated[bool, typer.Option("--force", metavar="", help="Replace an existing report and its figures (never a run's files, never through a symbolic link).")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", metavar="", help="Do not list written files on stderr.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", metavar="", help="List every figure written.")] = False,
    debug: Annotated[bool, typer.Option("--debug", metavar="", help="Show tracebacks for user errors too.")] = False,
) -> None:
    """Write a markdown report with PNG figures for the results of any suites.

    Each suite's claims judged over all its runs, every case against its baseline (the paper side by side for G1-G4), roofline, and which cost (FLOPs, MAC, activations, parameters, roofline time) ranks latency, with bootstrap CIs and a held-out check. Headless."""
    from latbench.report.markdown import check_report_name, title, write_report
    from latbench.report.terminal import report_claims_table
    from latbench.results.read import partial_runs

    if out_dir is not None or name is not None:  # the old --out DIR --name NAME.md
        output = (out_dir or output.parent) / (name or output.name)
        if not quiet:
            err.print(f"warning: --out/--name are deprecated; use -o {output}", style="yellow", highlight=False)
    try:
        check_report_name(name if name is not None else output.name)
        rep = write_report(files, output.parent, output.name, force)
        partial = partial_runs(files)
    except LatbenchError as exc:
        fail(exc, debug)
    except OSError as exc:  # --out a file, read-only, disk full: one line, exit 2
        fail(LatbenchError(f"cannot write the report: {exc.strerror or exc}", where=str(exc.filename or output),
                           hint="give -o a writable path"), debug)
    if not quiet:
        for run in partial:
            err.print(f"warning: {run.path} is a partial run (status '{run.status}'): the report covers only its "
                      f"finished groups; finish it with 'latbench run ... --resume {run.path}'", style="yellow",
                      highlight=False, markup=False, soft_wrap=True)
    out.print(report_claims_table(rep.claims, rep.suites, f"claims: {title(rep.suites)}"))
    if rep.predictors.ranks:  # which cost ranks latency (report.predictors), as in the markdown
        from latbench.report.predictors import HEADER, sentences, table_rows
        from latbench.report.terminal import predictor_table

        out.print(predictor_table(HEADER, table_rows(rep.predictors), sentences(rep.predictors),
                                  "which cost ranks latency (Spearman, Kendall; bootstrap 95% CIs)"))
    if not quiet:
        err.print(f"wrote {rep.markdown} and {len(rep.figures)} figure(s) in {rep.markdown.parent / 'figures'}",
                  highlight=False)
        if verbose:
            for f in rep.figures:
                err.print(f"  {f}", highlight=False)


@command("audit")
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
    force: Annotated[bool, typer.Option("--force", metavar="", help="Replace existing outputs of the same stem (never a run's files, never through a symbolic link).")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", metavar="", help="Do not list written files on stderr.")] = False,
    table: Annotated[Optional[Path], typer.Option("--table", metavar="TABLE", help="Also show the latency predicted from this table of measured blocks ('latbench lut build') beside the measured one.")] = None,
    debug: Annotated[bool, typer.Option("--debug", metavar="", help="Show tracebacks for user errors too.")] = False,
) -> None:
    """Guideline audit of one network on the CPU: per layer multiply-adds, MAC bytes, arithmetic intensity, share of time, time above its roofline bound and the ShuffleNet V2 guideline it strains (G1-G4); a ranking of where it loses time against FLOPs. Markdown, CSV and a figure."""
    from latbench.audit import run_audit
    from latbench.report.audit import write_audit

    try:
        if table is not None:  # the table is checked (machine, version) before the audit measures anything
            from latbench.predict.api import open_table, predict_networks
            from latbench.predict.networks import resolve

            lut, _ = open_table(table)
            predicted = predict_networks(resolve([model], input=input_shape, batch=batch, kwargs=kwargs), lut)[0]
        a = run_audit(model, input_shape, kwargs, batch=batch, dtype=dtype, threads=threads, rounds=rounds)
        md, csv_path, fig = write_audit(a, out_dir, name, force)
    except LatbenchError as exc:
        fail(exc, debug)
    out.print(f"{a.target}: {a.whole_ms:.3f} ms per forward; layers' op time {100 * a.ops_ms / a.whole_ms:.0f} % "
              f"of it (adds up within tolerance: {'yes' if a.adds_up else 'no'})", highlight=False)
    if table is not None:
        p = predicted
        out.print(f"predicted from blocks ({table}): {p.latency_ms:.3f} ms [{p.low_ms:.3f}, {p.high_ms:.3f}] "
                  f"({int(p.level * 100)} % interval{'' if p.calibrated else ', uncalibrated'}), "
                  f"{100 * (p.latency_ms / a.whole_ms - 1):+.1f} % against the measured {a.whole_ms:.3f} ms",
                  highlight=False, markup=False)
    for i, layer in enumerate(a.ranking(5), 1):
        out.print(f"  {i}. {layer.name} ({layer.kind}): {100 * layer.time_share:.1f} % of time, "
                  f"{100 * layer.flops_share:.1f} % of FLOPs {layer.guideline}", highlight=False, markup=False)
    if not quiet:
        err.print(f"wrote {md}, {csv_path} and {fig}", highlight=False)
