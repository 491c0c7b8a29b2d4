"""The run wing: one pipeline from case sources to rows on disk (being assembled; see README Architecture)."""

from latbench.session import Events, Interruption, RunOptions, RunOutcome, SuiteResult, run

__all__ = ["Events", "Interruption", "RunOptions", "RunOutcome", "SuiteResult", "run"]
