"""Results on disk: the only code that finds, reads, validates and writes results, samples and metadata files.

schema (columns, dtypes, statuses, migrations) -> read (paths grouped into runs, typed Run) and
files (RunFiles: writing, locking).
"""

from latbench.results.read import Run, RunPaths, expand_paths, read_run, read_runs

__all__ = ["Run", "RunPaths", "expand_paths", "read_run", "read_runs"]
