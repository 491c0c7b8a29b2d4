"""`latbench merge`: the shard files of one `run --shard i/n` split joined into one run (latbench.run.merge)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from latbench.cli.common import DebugOpt, QuietOpt, command, err, fail
from latbench.errors import LatbenchError


@command("merge")
def merge_cmd(
    files: Annotated[list[Path], typer.Argument(metavar="SHARD.csv", help="The results CSVs that 'latbench run --shard i/n' wrote, one per share (their -samples.csv and .json beside them are read too).", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="RUN.csv", help="The merged run's results CSV; its -samples.csv and .json are written beside it. Never replaces a file.", show_default=False)],
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Join shard files into one run, as 'latbench run' writes it (compare, gate and report read it).

    Refuses shards of other suites, suite files, splits or settings, a shard given twice, a group in two files, and a missing shard (exit 2, naming the file). Each row keeps the host and device that measured it."""
    from latbench.run import merge as shards

    try:
        res = shards.merge(files, output, argv=sys.argv)
    except LatbenchError as exc:
        fail(exc, debug)
    if not quiet:
        hosts = ", ".join(h for h in res.hosts if h) or "unrecorded hosts"
        err.print(f"merged {res.shards} shard(s) of {res.suite} ({len(res.groups)} group(s), {res.rows} row(s), "
                  f"measured on {hosts}) into {res.csv}, {res.samples.name}, {res.meta.name}", highlight=False,
                  markup=False, soft_wrap=True)
