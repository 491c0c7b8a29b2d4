"""`latbench ab`: two versions of your code measured in the same rounds (latbench.ab), gated."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from latbench import faults
from latbench.cli.common import (DebugOpt, DeviceName, Format, FormatOpt, JsonOpt, OutputOpt, QuietOpt,
                                 ThresholdOpt, at_least, command, err, fail)
from latbench.cli.results import finish_gate
from latbench.errors import LatbenchError


@command("ab")
def ab_cmd(
    suite: Annotated[Path, typer.Argument(metavar="SUITE", show_default=False, help="Suite whose cases are 'builder: user' (your modules).")],
    base: Annotated[str, typer.Option("--base", metavar="DIR|REF", help="Baseline code: a source directory, or a git ref of --repo (checked out as a temporary worktree).")],
    head: Annotated[str, typer.Option("--head", metavar="DIR|REF", help="Candidate code: a source directory or a git ref, as --base.")],
    repo: Annotated[Path, typer.Option(metavar="DIR", help="The git repository --base/--head refs belong to.")] = Path("."),
    allow_import: Annotated[bool, typer.Option("--allow-import", metavar="", help="Required: the suite imports and runs your code, from both sides.")] = False,
    device: Annotated[DeviceName, typer.Option(metavar="cpu|cuda", help="cpu or cuda.")] = DeviceName.cpu,
    threads: Annotated[Optional[int], typer.Option(metavar="N", callback=at_least(1), help="torch threads.")] = None,
    max_time: Annotated[Optional[float], typer.Option(metavar="SECONDS", callback=at_least(0.01), help="Seconds of measurement per case at most (both sides together).")] = None,
    min_time: Annotated[Optional[float], typer.Option(metavar="SECONDS", callback=at_least(0.0), help="Seconds of measurement per case at least.")] = None,
    threshold: ThresholdOpt = None,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", metavar="", help="Relax: a case measured on one side only does not fail the gate.")] = False,
    inconclusive: Annotated[str, typer.Option("--inconclusive", metavar="fail|pass", help="fail (default) or pass: what a case whose CI is undefined or wider than its threshold does to the gate.")] = "fail",
    fmt: FormatOpt = Format.table,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of the interleaving order and of the models' weights.")] = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Interleaved A/B gate: measure two versions of your code (directories or git refs) in the same rounds, one process, and gate on each case's paired per-round ratio head/base. Exit codes as 'latbench gate'."""
    from latbench import ab, devices
    from latbench.gate import DEFAULT_THRESHOLD, decide, parse_threshold, relaxations

    try:
        relax = relaxations(allow_missing, inconclusive, False)
        thr = parse_threshold(threshold, "--threshold") if threshold is not None else DEFAULT_THRESHOLD
        with ab.checkout_sides(base, head, repo) as sides:
            specs = ab.load_ab_suite(suite, sides[0], devices.default_platform(device.value), allow_import)
            result = ab.run_ab(specs, sides, device.value, threads, thr, max_time_s=max_time, min_time_s=min_time,
                               seed=seed, on_case=lambda label: None if quiet else err.print(
                                   f"measuring {label} (base and head interleaved)", highlight=False, markup=False))
    except LatbenchError as exc:
        fail(exc, debug)
    except faults.Interrupted as exc:  # nothing judged: never a gate's 0 or 1
        err.print(f"interrupted by {exc}: nothing was judged", style="yellow", highlight=False, markup=False)
        raise typer.Exit(exc.exit_code) from None
    outcome = decide(result.comparison.deltas, relax)
    finish_gate(result.comparison, outcome, Format.json if as_json else fmt, "latbench ab", output)
