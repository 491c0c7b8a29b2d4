"""`latbench lut build` (measure a latency table of blocks) and `latbench predict` (a network's latency
from it); the core is latbench.predict."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from latbench import faults
from latbench.cli.common import (DebugOpt, DeviceName, ForceOpt, Format, ReadableCommand, ReadableGroup, app,
                                 at_least, err, fail, out, write_output)
from latbench.errors import LatbenchError

lut_app = typer.Typer(cls=ReadableGroup, no_args_is_help=True, help="Latency tables of measured blocks (for 'latbench predict').")
app.add_typer(lut_app, name="lut")

NetworksArg = Annotated[list[str], typer.Argument(metavar="NETWORK...", help="Built-in networks (latbench list), MODULE:FACTORY (with --input), or suites (e.g. networks).", show_default=False)]
InputOpt = Annotated[Optional[str], typer.Option("--input", metavar="CxHxW", help="Input without the batch: for MODULE:FACTORY; a built-in network takes 3xRxR.")]
BatchOpt = Annotated[int, typer.Option(metavar="N", callback=at_least(1), help="Batch size.")]
AllowImportOpt = Annotated[bool, typer.Option("--allow-import", metavar="", help="Let a suite naming 'builder: user' import its module (MODULE:FACTORY needs no flag: naming it is the opt-in, as for 'run --model').")]
NoFuseOpt = Annotated[bool, typer.Option("--no-fuse", metavar="", help="Every operator its own block (no conv+act blocks): the sum-of-operators baseline.")]


def build_view(total: int, quiet: bool):
    """Progress of a table's build: a bar over its blocks with the time left (a run Events; latbench.run
    imports torch, so the class is made when a build starts)."""
    from latbench.run import Events

    class _View(Events):
        def __init__(self) -> None:
            self.progress = None
            self.done = 0

        def on_suite_start(self, suite_name: str) -> None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
                TimeRemainingColumn

            if suite_name != "lut" or quiet:
                return
            self.progress = Progress(TextColumn("blocks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                     TextColumn("left"), TimeRemainingColumn(), console=err, transient=True)
            self.progress.start()
            self.task = self.progress.add_task("blocks", total=total)

        def on_group_done(self, suite_name: str, group: str, rows: list) -> None:
            if self.progress is not None and suite_name == "lut":
                self.progress.update(self.task, advance=len(rows))

        def on_suite_done(self, result) -> None:
            self.stop()

        def on_note(self, kind: str, text: str) -> None:
            if not quiet and kind in ("advice", "unstable"):
                err.print(f"warning: {text}", style="yellow", highlight=False, markup=False)

        def stop(self) -> None:
            if self.progress is not None:
                self.progress.stop()
                self.progress = None

    return _View()


@lut_app.command("build", cls=ReadableCommand)
def lut_build(
    networks: NetworksArg,
    device: Annotated[DeviceName, typer.Option(metavar="NAME", help="cpu or cuda.")] = DeviceName.cpu,
    threads: Annotated[Optional[int], typer.Option(metavar="N", callback=at_least(1), help="CPU threads (default 1).")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", metavar="FILE", help="The table to write (default lut-DEVICE.json; an existing FILE only with --force).")] = None,
    resume: Annotated[Optional[Path], typer.Option(metavar="TABLE", help="Add to this table, in place: its measured blocks are skipped (same machine only).")] = None,
    force: ForceOpt = False,
    max_time: Annotated[float, typer.Option(metavar="SECONDS", callback=at_least(0.01), help="Measurement per block at most (blocks use the --quick stop rule: 0.05 s warm-up, >= 5 rounds, +-2 %).")] = 0.3,
    repeats: Annotated[int, typer.Option(metavar="N", callback=at_least(1), help="Worker processes per group of blocks.")] = 1,
    calibrate: Annotated[bool, typer.Option("--calibrate", metavar="", help="Also measure the networks whole (run's default stop rule) and fit the table's calibration: factor and interval.")] = False,
    input_shape: InputOpt = None,
    batch: BatchOpt = 1,
    no_fuse: NoFuseOpt = False,
    allow_import: AllowImportOpt = False,
    results_dir: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Also keep the runs' files here (default: the table only).")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", metavar="", help="No progress on stderr.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Measure the blocks NETWORK... need (conv+act, linear, pooling, add, concat, shuffle, ...) into a latency table.

    Blocks go through the run wing (warm-up, interleaved rounds, worker processes); the table is saved after every group of blocks, so Ctrl-C keeps what is measured and --resume TABLE goes on. Exit 0 done, 1 a block failed, 2 bad input, 130/143 interrupted.
    """
    from latbench.predict.api import plan_build, run_build
    from latbench.predict.model import MIN_TERMS
    from latbench.run import RunOptions

    argv = tuple(sys.argv)
    opts = RunOptions(device=device.value, threads=threads, quick=True, max_time=max_time, repeats=repeats,
                      roofline=False, results_dir=results_dir, argv=argv)
    whole = RunOptions(device=device.value, threads=threads, roofline=False, results_dir=results_dir, argv=argv)
    try:
        plan = plan_build(networks, output, resume=resume, force=force, opts=opts, input=input_shape, batch=batch,
                          allow_import=allow_import, fuse=not no_fuse, calibrate=calibrate)
        typical, most = plan.estimate_s()
        if not quiet:
            err.print(f"{len(plan.networks)} network(s), {len(plan.todo)} block(s) to measure"
                      f"{f' ({len(plan.table.blocks)} in the table already)' if plan.table.blocks else ''}; "
                      f"about {typical / 60:.1f} min (at most {most / 60:.1f})"
                      f"{', then the networks whole' if calibrate else ''}", highlight=False)
        view = build_view(len(plan.todo), quiet)
        try:
            with faults.signals_as_interrupts():
                result = run_build(plan, view, whole if calibrate else None)
        finally:
            view.stop()
    except LatbenchError as exc:
        fail(exc, debug)
    except KeyboardInterrupt as exc:
        err.print("interrupted", style="yellow")
        raise typer.Exit(exc.exit_code if isinstance(exc, faults.Interrupted) else 130) from None
    if result.interrupted is not None:
        err.print(f"interrupted: {len(result.table.blocks)} block(s) are in {result.output}; go on with "
                  f"'latbench lut build {' '.join(networks)} --resume {result.output}'", style="yellow", highlight=False)
        raise typer.Exit(128 + result.interrupted.signum)
    if not quiet:
        cal = result.calibration
        err.print(f"wrote {result.output}: {len(result.table.blocks)} block(s), {result.measured} measured now"
                  + (f"; calibration over {cal['n']} network(s): " + (
                      f"blocks + {cal['per_block_ms'] * 1e3:.1f} us per block use + {cal['per_weight_mb_ms']:.3f} ms "
                      f"per MB of weights" if cal.get("model") != "factor" else
                      f"{cal['factor']:.3f} x blocks (a factor alone: fewer than {MIN_TERMS} networks, or networks "
                      f"faster than their blocks)") + f", {cal['level']:.0%} interval x/÷ {math.exp(cal['log_halfwidth']):.2f}"
                     if cal else ""),
                  highlight=False)
    for label, why in result.failed:
        err.print(f"block {label} failed: {why}", style="red", highlight=False, markup=False)
    raise typer.Exit(1 if result.failed else 0)


@app.command("predict", cls=ReadableCommand)
def predict_cmd(
    networks: NetworksArg,
    table: Annotated[Path, typer.Option("--table", metavar="TABLE", help="A latency table from 'latbench lut build' on this machine.")],
    device: Annotated[DeviceName, typer.Option(metavar="NAME", help="cpu or cuda (the table's).")] = DeviceName.cpu,
    allow_different_machine: Annotated[bool, typer.Option("--allow-different-machine", metavar="", help="Predict even when the table was measured on another machine or software.")] = False,
    top: Annotated[int, typer.Option(metavar="N", callback=at_least(0), help="Blocks shown per network, costliest first (0: all).")] = 12,
    input_shape: InputOpt = None,
    batch: BatchOpt = 1,
    no_fuse: NoFuseOpt = False,
    allow_import: AllowImportOpt = False,
    fmt: Annotated[Format, typer.Option("--format", metavar="FORMAT", help="table (default) or json (every block).")] = Format.table,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", metavar="FILE", help="Print into FILE instead of stdout (an existing FILE only with --force).")] = None,
    force: ForceOpt = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", metavar="", help="No warnings on stderr.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Predict NETWORK...'s latency from a table of measured blocks: interval and per-block breakdown."""
    from latbench.devices import default_platform
    from latbench.predict.api import open_table, predict_networks
    from latbench.predict.networks import resolve

    if fmt not in (Format.table, Format.json):
        fail(LatbenchError(f"--format {fmt.value} is not available here", where="--format", hint="use table or json"), debug)
    try:
        tab, warnings = open_table(table, device.value, allow_different_machine)
        nets = resolve(networks, input=input_shape, batch=batch, platform=default_platform(device.value),
                       allow_import=allow_import)
        preds = predict_networks(nets, tab, fuse=not no_fuse)
    except LatbenchError as exc:
        fail(exc, debug)
    if not quiet:
        for w in warnings + sorted({n for p in preds for n in p.notes if n.startswith("uncalibrated")}):
            err.print(f"warning: {w}", style="yellow", highlight=False, markup=False)
        for p in preds:
            for n in p.notes:
                if n.startswith("outside the calibration"):
                    err.print(f"warning: {p.network}: {n}", style="yellow", highlight=False, markup=False)
    if fmt is Format.json:
        text = json.dumps([p.as_dict() for p in preds], indent=1) + "\n"
    else:
        text = _tables(preds, top)
    write_output(text, output, force)


def _tables(preds: list, top: int) -> str:
    from rich.table import Table as RichTable

    from latbench.cli.common import rendered

    head = RichTable(title=f"predicted latency ({int(preds[0].level * 100)} % interval)", show_lines=False)
    for c in ("network", "predicted ms", "interval ms", "sum of blocks ms", "factor", "blocks", "fitted", "MFLOPs", "MAC MB"):
        head.add_column(c, justify="left" if c == "network" else "right")
    for p in preds:
        head.add_row(p.network, f"{p.latency_ms:.3f}", f"[{p.low_ms:.3f}, {p.high_ms:.3f}]"
                     + (" (outside calibration)" if p.outside_calibration else ""), f"{p.blocks_sum_ms:.3f}",
                     f"{p.factor:.3f}" + ("" if p.calibrated else " (none)"), str(sum(b.uses for b in p.blocks)),
                     f"{p.fitted_share:.0%}", f"{p.flops / 1e6:.1f}", f"{p.mac_bytes / 1e6:.1f}")
    parts = [head]
    for p in preds:
        t = RichTable(title=f"{p.network}: blocks by predicted time")
        for c in ("block", "uses", "predicted ms", "share", "MFLOPs", "MAC MB", "how"):
            t.add_column(c, justify="left" if c in ("block", "how") else "right")
        blocks = sorted(p.blocks, key=lambda b: -b.total_ms)
        for b in blocks[:top or None]:
            t.add_row(b.label, str(b.uses), f"{p.block_ms(b):.4f}", f"{b.total_ms / p.blocks_sum_ms:.1%}",
                      f"{b.uses * b.flops / 1e6:.2f}", f"{b.uses * b.mac_bytes / 1e6:.2f}", b.how)
        if top and len(blocks) > top:
            rest = blocks[top:]
            t.add_row(f"... {len(rest)} more", str(sum(b.uses for b in rest)),
                      f"{sum(p.block_ms(b) for b in rest):.4f}",
                      f"{sum(b.total_ms for b in rest) / p.blocks_sum_ms:.1%}",
                      f"{sum(b.uses * b.flops for b in rest) / 1e6:.2f}",
                      f"{sum(b.uses * b.mac_bytes for b in rest) / 1e6:.2f}", "")
        parts.append(t)
    return rendered(*parts)
