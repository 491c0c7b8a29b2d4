"""Results as text in the machine-readable --format choices: a run's rows (csv, json, markdown) and a
calibration's suggested thresholds (csv, markdown). Tables for the terminal are in report/terminal.py."""

from __future__ import annotations

import json
from typing import Any, Sequence

from latbench.records import RESULT_COLUMNS
from latbench.report.terminal import jsonable, markdown_table, plain, run_markdown


def run_csv(results: Sequence[Any]) -> str:
    """The rows of every suite of a run (session.SuiteResult) as one CSV table."""
    import pandas as pd

    return pd.DataFrame([r for s in results for r in s.rows], columns=list(RESULT_COLUMNS)).to_csv(index=False)


def run_json(results: Sequence[Any]) -> str:
    """Each suite of a run: its name, files, rows and claim verdicts, as strict JSON (NaN as null)."""
    doc = [{"suite": s.suite_name, "suite_path": s.suite_path, "title": s.title, "results_csv": str(s.files.csv),
            "rows": [{c: plain(r.get(c)) for c in RESULT_COLUMNS} for r in s.rows],
            "claims": s.verdicts} for s in results]
    return json.dumps(jsonable(doc), indent=2, default=str, allow_nan=False) + "\n"


def run_markdowns(results: Sequence[Any]) -> str:
    """The run table of each suite, as markdown under its heading."""
    return "\n".join(run_markdown(s.rows, s.title) for s in results)


def calibration_csv(data: dict[str, Any]) -> str:
    """The per-case rows of a thresholds file (gate.Calibration.data) as CSV."""
    import pandas as pd

    return pd.DataFrame(data.get("cases") or []).to_csv(index=False)


def calibration_markdown(data: dict[str, Any]) -> str:
    """The per-case rows of a thresholds file (gate.Calibration.data) as a markdown table."""
    cases = list(data.get("cases") or [])
    columns = list(dict.fromkeys(k for c in cases for k in c))
    return markdown_table([(str(c), "left") for c in columns], [[str(c.get(k)) for k in columns] for c in cases])


def comparisons_text(cmps: Sequence[Any], singles: Sequence[str], fmt: str) -> str:
    """Several comparisons (one per suite and setting) as json, csv or markdown, each under its title;
    `singles`: the lines saying what could not be compared."""
    from latbench.report import terminal as report

    if fmt == "json":
        docs = [{"title": c.title, **json.loads(report.compare_json(c))} for c in cmps]
        return json.dumps({"comparisons": docs, "not_compared": list(singles)}, indent=2, default=str) + "\n"
    if fmt == "csv":
        import io

        import pandas as pd

        frames = [pd.read_csv(io.StringIO(report.compare_csv(c))).assign(comparison=c.title) for c in cmps]
        return pd.concat(frames, ignore_index=True).to_csv(index=False)
    text = "\n".join(report.compare_markdown(c, title=f"latbench compare: {c.title}") for c in cmps)
    return text + "".join(f"\n> {line}\n" for line in singles)
