"""What every command shares: the typer app, the consoles, `fail` (errors become exit 2), output helpers,
the choice enums and the options compare, gate and ab have in common.

Commands import torch-heavy modules (latbench.run, latbench.models, ...) inside their functions, never
here, so `latbench --help`, `latbench CMD --help` and `latbench list suites` stay fast.
"""

from __future__ import annotations

import io
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperCommand, TyperGroup

from latbench.errors import LatbenchError


class _MetavarArgument(TyperArgument):
    """An argument whose metavar says what to give: typer would add its Python type ('<list[Path]>')."""

    def display_type_rich(self, ctx) -> str:
        return ""


class ReadableCommand(TyperCommand):
    """A command whose help shows no Python types: '-h' without '<bool>', an argument's metavar alone."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for p in self.params:
            if type(p) is TyperArgument and p.metavar is not None:
                p.__class__ = _MetavarArgument  # the same object, one display method overridden (no new state)

    def get_help_option(self, ctx):
        return _plain_help(super().get_help_option(ctx))


class ReadableGroup(TyperGroup):
    """The app itself: its -h, as a command's; a stop signal no command handled is exit 128 + N."""

    def get_help_option(self, ctx):
        return _plain_help(super().get_help_option(ctx))

    def invoke(self, ctx):
        from latbench.faults import Interrupted

        try:
            return super().invoke(ctx)
        except Interrupted as exc:  # click would say 'Aborted!' and exit 1, the code of a failed gate
            raise typer.Exit(exc.exit_code) from None


def _plain_help(opt):
    if opt is not None:
        opt.metavar, opt.help = "", "Show this help and exit."
    return opt


app = typer.Typer(cls=ReadableGroup, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Hardware-aware latency benchmarking for PyTorch: FLOPs and memory access cost "
                       "against measured speed, with ratios you can trust.")


def command(name: Optional[str] = None, **settings):
    """@app.command with readable help (ReadableCommand)."""
    return app.command(name, cls=ReadableCommand, **settings)


out = Console(soft_wrap=False, width=200)
err = Console(stderr=True, soft_wrap=True)


class DeviceName(str, Enum):  # latbench.devices.of(name) is the Device object
    cpu = "cpu"
    cuda = "cuda"


class Format(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"


def fail(exc: LatbenchError, debug: bool = False) -> None:
    """Print a user error on stderr and exit 2 (the one place errors become exit codes)."""
    if debug:
        raise exc
    err.print(f"error: {exc}", style="red", highlight=False, markup=False, emoji=False, soft_wrap=True)  # one line, copyable
    raise typer.Exit(2)


def warn_all(lines: list[str], quiet: bool) -> None:
    if not quiet:
        for w in lines:
            err.print(f"warning: {w}", style="yellow", highlight=False, markup=False)


def at_least(minimum: float):
    """An option callback refusing values below `minimum` (a range check without '[x>=1]' in the help)."""
    def check(value):
        if value is not None and value < minimum:
            raise typer.BadParameter(f"{value} is below the minimum {minimum:g}")
        return value
    return check


MAX_SEED = 2**63 - 1  # as run's --seed (torch.manual_seed takes 64 bits; numpy refuses negative seeds)


def seed_in_range(value: Optional[int], flag: str) -> Optional[int]:
    """An option callback: a seed from 0 to MAX_SEED (numpy raised ValueError on -1: a traceback)."""
    if value is not None and not 0 <= value <= MAX_SEED:
        raise typer.BadParameter(f"{value} is out of range; use an integer from 0 to {MAX_SEED}")
    return value


def write_output(text: str, output: Optional[Path], force: Optional[bool] = None) -> None:
    """Printed results go to stdout, or to -o/--output FILE under the file policy
    (latbench.results.files.write_output: never replacing a file without --force, never through a link,
    never onto a run's files; atomic; its directory created). force: the command's --force; by default
    what check_output_option saw (the -o value it returns carries it). A refusal or a failed write is
    one line on stderr and exit 2 (SystemExit, so no caller's `except Exception` can turn it into
    another answer)."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from latbench.results.files import write_output as write_file

    try:
        write_file(output, text, getattr(output, "force", False) if force is None else force)
    except LatbenchError as exc:
        try:
            fail(exc)
        except typer.Exit:
            raise SystemExit(2) from None


class OutputPath(type(Path())):  # type: ignore[misc]  # PosixPath or WindowsPath: Path itself cannot be subclassed before 3.12
    """An -o path as check_output_option resolved it (absolute), with the --force it was checked under."""

    force = False


def check_output_option(ctx: typer.Context, param: typer.CallbackParam, value: Optional[Path]) -> Optional[Path]:
    """An -o FILE callback: the file policy checked before the command does any work (a refusal is exit 2
    at once, not after a run), the path resolved once (absolute: what runs later, user code that changes
    the working directory included, cannot move it). --force (ForceOpt) is eager, so it is known here
    wherever it stands on the command line; the returned path carries it to write_output."""
    if value is None or ctx.resilient_parsing:
        return value
    from latbench.results.files import check_output

    force = bool(ctx.params.get("force"))
    try:
        resolved = OutputPath(check_output(value, force))
    except LatbenchError as exc:
        fail(exc)
    resolved.force = force
    return resolved


ForceOpt = Annotated[bool, typer.Option("--force", metavar="", is_eager=True, help="Replace -o FILE if it exists (never a run's files, never through a symbolic link).")]


def rendered(*renderables) -> str:
    """Rich renderables as plain text (a table written to -o FILE)."""
    console = Console(width=200, record=True, file=io.StringIO())
    for r in renderables:
        console.print(r)
    return console.export_text()


_THRESHOLD_HELP = ("A case counts as slower (or faster) only beyond this change AND when the change is "
                   "significant: a percent with % (10%, the default) or a fraction (0.1); a bare number >= 1 "
                   "is refused as ambiguous.")
_NOISE_FLOOR_HELP = ("Only with ONE file per side: assumed run-to-run drift that within-run samples cannot "
                     "show; widens the ratio's CI by this factor (10% or 0.1). Default 10% (or the --thresholds file's). "
                     "Better: give >= 2 runs per side.")

# Options several commands share (typer reads Annotated aliases like inline annotations).
ThresholdOpt = Annotated[Optional[str], typer.Option(metavar="PCT", help=_THRESHOLD_HELP)]
AlphaOpt = Annotated[float, typer.Option(metavar="P", help="Significance level: the ratio's CI is 1-alpha (two-sided).")]
NoiseFloorOpt = Annotated[Optional[str], typer.Option(metavar="PCT", help=_NOISE_FLOOR_HELP)]
FormatOpt = Annotated[Format, typer.Option("--format", metavar="FORMAT", help="table (default), csv, json or markdown (a PR comment).")]
OutputOpt = Annotated[Optional[Path], typer.Option("-o", "--output", metavar="FILE", callback=check_output_option, help="Print the results into FILE instead of stdout (an existing FILE only with --force).")]
NormalizedOpt = Annotated[bool, typer.Option("--normalized", metavar="", help="Judge each case by its change relative to its suite's first (reference) case, paired within each run, so machine-wide drift cancels; the reference itself is not judged. Use when the machine is noisy and the suite has a reference case your change cannot affect (docs/compare-and-gate.md).")]
JsonOpt = Annotated[bool, typer.Option("--json", hidden=True, help="Same as --format json.")]
SeedOpt = Annotated[int, typer.Option(metavar="N", callback=lambda v: seed_in_range(v, "--seed"), help="Seed of the bootstrap (one run per side).")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", metavar="", help="No warnings on stderr (errors still show).")]
DebugOpt = Annotated[bool, typer.Option("--debug", metavar="", help="Show tracebacks for user errors too.")]
