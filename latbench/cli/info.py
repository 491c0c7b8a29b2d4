"""`latbench list` (suites and builders) and `latbench env` (this machine's fingerprint)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from latbench.cli.common import Format, ForceOpt, check_output_option, command, fail, out, rendered, write_output
from latbench.errors import LatbenchError

ABOUT_WIDTH = 90  # a suite's description is cut to this many characters


@command("list")
def list_cmd(
    what: Annotated[Optional[str], typer.Argument(metavar="[suites|builders]", help="Only suites or only builders (default: both).", show_default=False)] = None,
) -> None:
    """List the suites (./suites and latbench's own; run them by name) and the builders, with defaults."""
    if what not in (None, "suites", "builders"):
        fail(LatbenchError(f"cannot list {what!r}", where="latbench list", hint="use 'suites', 'builders' or nothing"))
    if what in (None, "suites"):
        _show_suites()
    if what in (None, "builders"):
        _show_builders()


def _show_suites() -> None:
    from latbench.suite.catalog import list_suites

    out.print("suites (run one by name: latbench run NAME):", style="bold", highlight=False)
    for s in list_suites():
        about = s.about if len(s.about) <= ABOUT_WIDTH else s.about[:ABOUT_WIDTH - 3] + "..."
        out.print(f"  {s.name:<16} {s.path}\n      {about}", highlight=False, markup=False)


def _show_builders() -> None:
    from latbench.models import REQUIRED, describe_builders  # the builders' modules import torch

    out.print("builders (a suite's 'builder:'; parameter=default, * = required):", style="bold", highlight=False)
    for b in describe_builders():
        params = ", ".join(f"{k}*" if v is REQUIRED else f"{k}={v!r}" for k, v in b.params)
        widths = f"; widths: {', '.join(b.width_names)}" if b.width_names else ""
        out.print(f"  {b.name}: {b.summary}\n      parameters: {params}{widths}", highlight=False, markup=False)


@command("env")
def env_cmd(
    fmt: Annotated[Format, typer.Option("--format", metavar="table|json", help="json: what each run's metadata holds.")] = Format.table,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", metavar="FILE", callback=check_output_option, help="Print into FILE instead of stdout (an existing FILE only with --force).")] = None,
    force: ForceOpt = False,
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
