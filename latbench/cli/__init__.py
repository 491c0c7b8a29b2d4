"""The command line: parse arguments, call the core, render, choose the exit code.

Exit codes: 0 done and fine; 1 done, but the answer is no (a case failed, a gate failed);
2 could not answer (bad usage, invalid suite, unreadable results, device unavailable).

One module per command family: run (run, run_view), results (compare, gate), calibrate, merge, ab, info
(list, env), report (report, audit), predict (lut build, predict); common holds the app and what they share. Importing this package
registers every command and imports no torch: each command imports the core it needs when it runs.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from latbench import __version__, faults
from latbench.cli.common import app, out

# Importing a command module registers its commands, in the order `latbench -h` lists them.
from latbench.cli import run  # noqa: F401,E402  isort: skip
from latbench.cli import info  # noqa: F401,E402  isort: skip
from latbench.cli import report  # noqa: F401,E402  isort: skip
from latbench.cli import results  # noqa: F401,E402  isort: skip
from latbench.cli import calibrate  # noqa: F401,E402  isort: skip
from latbench.cli import merge  # noqa: F401,E402  isort: skip
from latbench.cli import ab  # noqa: F401,E402  isort: skip
from latbench.cli import predict  # noqa: F401,E402  isort: skip
from latbench.suite.catalog import resolve_suite

__all__ = ["app", "resolve_suite"]


def version_callback(value: bool) -> None:
    if value:
        out.print(f"latbench {__version__}")
        raise typer.Exit()


@app.callback()
def main(ctx: typer.Context,
         version: Annotated[Optional[bool], typer.Option("--version", "-V", metavar="", callback=version_callback,
                                                         is_eager=True, help="Show the version.")] = None) -> None:
    """latbench: `run` a suite, `compare` results, `gate` a CI build."""
    faults.guard_stdio()  # odd encodings and a closed stdout (| head -1) never end in a traceback
    ctx.with_resource(faults.signals_as_interrupts())  # SIGINT/TERM/HUP: Interrupted, exit 128+N; handlers back after
