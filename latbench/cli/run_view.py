"""How `latbench run` shows a run session: progress and notes on stderr, tables on stdout.

Imported when a run starts (it subclasses latbench.run.Events, and latbench.run imports torch)."""

from __future__ import annotations

from latbench.cli.common import err, out
from latbench.run import Events

MAX_NAMED_FAILURES = 10  # the summary line names this many failed cases; the CSV's 'error' column has all


class RunView(Events):
    """The run session's callbacks, rendered. tables_on_stdout: each suite's table as it finishes (else the
    command prints every result at the end, in its --format or into -o FILE)."""

    def __init__(self, quiet: bool, verbose: bool = False, tables_on_stdout: bool = True):
        self.quiet = quiet
        self.verbose = verbose and not quiet
        self.stdout_table = tables_on_stdout
        self.progress = None
        self.task = None

    def on_note(self, kind: str, text: str) -> None:
        if self.quiet:
            return
        if kind in ("advice", "unstable"):
            err.print(f"warning: {text}", style="yellow", highlight=False, markup=False)
        else:
            err.print(text, highlight=False)

    def on_suite_start(self, suite_name: str) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.stop_progress()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("round {task.completed:.0f}"),
                                 TimeElapsedColumn(), console=err, disable=self.quiet, transient=True)
        self.progress.start()
        self.task = self.progress.add_task(suite_name, total=None)

    def on_progress(self, suite_name: str, group: str, rounds: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"{suite_name} {group}", completed=rounds)

    def on_group_start(self, suite_name: str, group: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"{suite_name} {group}", completed=0)

    def on_group_done(self, suite_name: str, group: str, rows: list) -> None:
        if self.verbose:
            ok = sum(r["status"] == "ok" for r in rows)
            stops = ", ".join(sorted({str(r.get("stop_reason")) for r in rows}))
            err.print(f"{suite_name} {group}: {ok}/{len(rows)} row(s) ok, stopped by {stops}", highlight=False,
                      markup=False)

    def stop_progress(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_interrupted(self, info) -> None:
        self.stop_progress()
        err.print(f"interrupted by {info.signal_name}: {len(info.finished)} of "
                  f"{len(info.finished) + len(info.pending)} group(s) are saved in {info.csv} "
                  f"(status 'interrupted' in {info.meta_name}); not measured: {', '.join(info.pending)}",
                  style="yellow", highlight=False, markup=False, soft_wrap=True)
        err.print(f"resume with: {info.resume_command}", highlight=False, markup=False, soft_wrap=True)

    def on_suite_done(self, result) -> None:
        from latbench.report.terminal import claims_table, run_table

        self.stop_progress()
        files, quiet = result.files, self.quiet
        if self.stdout_table:
            out.print(run_table(files.rows, result.title))
            if result.verdicts is not None:
                out.print(claims_table(result.verdicts, f"claims of {result.suite_path}"))
        if not quiet and any(r.get("warnings") for r in files.rows):
            err.print("notes: 'noisy +-x%' = 95% CI half-width of the median; 'ratio +-x%' = of the ratio to the "
                      "baseline; remedies: raise --max-time, stop other jobs, pin --threads (full text in the "
                      "'warnings' column; -q hides this)", style="yellow", highlight=False)
        if not quiet:
            err.print(f"wrote {files.csv}, {files.samples.name}, {files.meta.name}", highlight=False)
        failed, skipped = result.failed, result.skipped
        if skipped and not quiet:
            err.print(f"{len(skipped)} case(s) skipped: this device cannot run them (reason in the 'error' column)",
                      style="cyan", highlight=False)
        if failed:
            named = "; ".join(f"{r['experiment']}/{r['case']}/x{r['scale']} {r['mode']}: {r['error']}"
                              for r in failed[:MAX_NAMED_FAILURES])
            more = f"; and {len(failed) - MAX_NAMED_FAILURES} more" if len(failed) > MAX_NAMED_FAILURES else ""
            err.print(f"{len(failed)} case(s) failed in {result.suite_path} (the run went on): {named}{more}",
                      style="red", highlight=False, markup=False, soft_wrap=True)
