"""The results schema in one place: columns, their dtypes, the status vocabulary, and how older schema
versions are migrated on read. The column lists themselves live in latbench.records (the runner writes
them and imports nothing from here); they are re-exported for readers."""

from __future__ import annotations

from typing import Any

import pandas as pd

from latbench.records import KEY_COLUMNS, KEY_DEFAULTS, RESULT_COLUMNS, SAMPLE_COLUMNS, SCHEMA_VERSION

__all__ = ["KEY_COLUMNS", "KEY_DEFAULTS", "RESULT_COLUMNS", "SAMPLE_COLUMNS", "SCHEMA_VERSION", "OK", "FAILED",
           "SKIPPED", "ROW_STATUSES", "RUNNING", "COMPLETE", "INTERRUPTED", "RUN_STATUSES", "STRING_COLUMNS",
           "BOOL_COLUMNS", "NUMERIC_COLUMNS", "OLDEST_SCHEMA", "SCHEMA_ADDED", "SAMPLE_ADDED", "IDENTITY_COLUMNS", "apply_dtypes", "fill_identity", "identity_of_meta",
           "migrate"]

# --- status of a row (one case x mode)
OK = "ok"  # measured: latency_ms > 0
FAILED = "failed"  # tried and failed (reason in `error`): a result in its own right
SKIPPED = "skipped"  # not tried, the device cannot run it (reason in `error`): no latency, not a failure
ROW_STATUSES = (OK, FAILED, SKIPPED)

# --- status of a run (metadata "status")
RUNNING = "running"  # being written; a run whose process died (SIGKILL, power loss) still says so, but
#                      nobody holds its lock: read_run reports such a run as INTERRUPTED
COMPLETE = "complete"  # every group finished
INTERRUPTED = "interrupted"  # stopped by a signal after its last finished group; --resume continues it
RUN_STATUSES = (RUNNING, COMPLETE, INTERRUPTED)

# Columns read as strings even when every value looks like a number (a run_id of 12 hex digits can be
# all digits; a case may be called "1"). Every other column that is not boolean is numeric.
STRING_COLUMNS: tuple[str, ...] = (
    "run_id", "suite", "experiment", "case", "device", "mode", "dtype", "memory_format", "widths", "widths_mode",
    "baseline_case", "schedule", "stop_reason", "status", "error", "warnings", "source",
    "latency_semantics", "l2", "gpu_throttle_reasons", "roofline_ceiling",
    "ratio_interval", "host", "device_name",
)
BOOL_COLUMNS: tuple[str, ...] = ("ratio_differs", "throttled", "under_load", "ratio_unstable", "oversubscribed")
# Numeric: the rest of the declared columns (a column this version does not know is left as pandas reads it).
NUMERIC_COLUMNS: tuple[str, ...] = tuple(c for c in dict.fromkeys(RESULT_COLUMNS + SAMPLE_COLUMNS)
                                         if c not in STRING_COLUMNS and c not in BOOL_COLUMNS)

OLDEST_SCHEMA = 1
# Columns each schema version added (its readers fill them in for older files), and the value they take.
SCHEMA_ADDED: dict[int, dict[str, Any]] = {
    2: {"memory_format": KEY_DEFAULTS["memory_format"], "latency_p99_ms": float("nan"), "compile_s": float("nan")},
    # every run before schema 3 timed blocks back to back with nothing flushed between calls
    3: {"latency_semantics": "throughput", "l2": "warm", "gpu_throttle_reasons": "", "roofline_ceiling": ""},
    4: {"ratio_interval": "unrecorded", "repeats": 1, "ratio_process_spread_pct": float("nan"),
        "ratio_between_pct": float("nan"), "ratio_unstable": False},
    # the machine that measured a row: from the run's metadata where the reader has it (fill_identity)
    5: {"host": "", "device_name": ""},
    # before schema 6 nobody looked: unknown, and not flagged (older verdicts keep their meaning)
    6: {"cpu_per_wall": float("nan"), "oversubscribed": False},
}
IDENTITY_COLUMNS = ("host", "device_name")
# Columns each schema version added to the samples file, and the value older files imply.
SAMPLE_ADDED: dict[int, dict[str, Any]] = {4: {"process": 0}}


def apply_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    """Declared dtypes on a frame read with every STRING_COLUMNS column as str: NUMERIC_COLUMNS numeric
    (unparseable values become NaN); empty cells are NaN. Returns the same frame."""
    for col in NUMERIC_COLUMNS:
        if col in df.columns and not pd.api.types.is_numeric_dtype(df[col]):
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def migrate(df: pd.DataFrame, version: int, meta: dict[str, Any] | None = None) -> pd.DataFrame:
    """Rows of schema `version` as the current schema reads them: every column a later version added is
    filled with its implied value; with the run's metadata, rows older than schema 5 get their machine
    from it (fill_identity). The schema_version column keeps the version on disk."""
    for v in range(version + 1, SCHEMA_VERSION + 1):
        for col, value in SCHEMA_ADDED.get(v, {}).items():
            if col not in df.columns:
                df[col] = value
    if meta is not None:
        fill_identity(df, meta)
    return df


def identity_of_meta(meta: dict[str, Any]) -> dict[str, str]:
    """The machine a run's metadata names: host = the fingerprint's hostname, device_name = the GPU
    (device_settings.cuda_device_name) or else the fingerprint's CPU model; "" where it says nothing."""
    fp = meta.get("fingerprint") if isinstance(meta.get("fingerprint"), dict) else {}
    settings = meta.get("device_settings") if isinstance(meta.get("device_settings"), dict) else {}
    return {"host": str(fp.get("hostname") or ""),
            "device_name": str(settings.get("cuda_device_name") or fp.get("cpu_model") or "")}


def fill_identity(df: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    """Empty host/device_name cells (rows written before schema 5) filled from the run's metadata
    (identity_of_meta); rows that name their machine keep it. Returns the same frame."""
    known = identity_of_meta(meta)
    for col in IDENTITY_COLUMNS:
        if col not in df.columns:
            df[col] = known[col]
        else:
            empty = df[col].isna() | (df[col].astype(str).str.strip() == "")
            if empty.any():
                df[col] = df[col].astype(object).where(~empty, known[col])
    return df


def disagreement(rows: pd.DataFrame, samples: pd.DataFrame, meta: dict[str, Any]) -> str | None:
    """Why a run's three files cannot be one run's (a file copied from another run, samples that do not
    back the rows), or None: one run_id in rows, metadata and samples; every sample a row's; every ok
    row with samples."""
    ids = set(rows["run_id"].astype(str))
    if meta.get("run_id") is not None and ids != {str(meta["run_id"])}:
        return f"the rows are of run {', '.join(sorted(ids))}, the metadata of run {meta['run_id']}"
    other = set(samples["run_id"].astype(str)) - ids
    if other:
        return f"the samples are of another run ({', '.join(sorted(other))})"
    key = [c for c in ("case", "mode", "scale", "batch", "dtype") if c in rows.columns and c in samples.columns]
    label = lambda df: set(map(tuple, df[key].astype(str).itertuples(index=False)))  # noqa: E731
    extra, unbacked = label(samples) - label(rows), label(rows[rows["status"] == OK]) - label(samples)
    if extra or unbacked:
        return (f"samples of {'/'.join(sorted(extra)[0])}, which no row has" if extra else
                f"the ok row {'/'.join(sorted(unbacked)[0])} has no samples")
    return None
