"""The run wing: case sources -> one pipeline -> rows on disk (README "Architecture").

options (RunOptions, the one place stop rules are built) -> sources (suite files, --model, measure()'s
objects, ab's sides) -> session (the one orchestration) -> pipeline (one group: build, count,
measure, rows) -> rows (the frozen Row, built once) -> runfile (a run file's life) ; workers (the one
worker-process protocol: --isolate, --repeats).
"""

from latbench.run.options import RunOptions
from latbench.run.session import Events, Interruption, RunOutcome, SuiteResult, run

__all__ = ["Events", "Interruption", "RunOptions", "RunOutcome", "SuiteResult", "run"]
