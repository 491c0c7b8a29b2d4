"""Views of result rows for people: the rich table of a run. Formatting only, no statistics."""

from __future__ import annotations

import math
from typing import Any, Iterable

from rich.markup import escape
from rich.table import Table


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def ratio_text(row: dict[str, Any]) -> str:
    """'1.42x [1.40, 1.45]' for a latency ratio, 'no difference' when its CI includes 1."""
    r, lo, hi = _num(row.get("ratio_to_baseline")), _num(row.get("ratio_ci_low")), _num(row.get("ratio_ci_high"))
    if row.get("case") == row.get("baseline_case"):
        return "baseline"
    if math.isnan(r):
        return "-"
    text = f"{r:.3f}x [{lo:.3f}, {hi:.3f}]"
    return text if (lo > 1 or hi < 1) else f"no difference ({text})"


def short_warnings(text: Any) -> str:
    """'noisy +-8.4%; ratio +-6.4%' from the warnings column (each warning is 'short: detail')."""
    if not isinstance(text, str) or not text:
        return ""
    return "; ".join(w.split(":", 1)[0].strip() for w in text.split(" | "))


def run_table(rows: Iterable[dict[str, Any]], title: str) -> Table:
    """The paper's comparison at a glance: FLOPs, MAC, latency and speed relative to the first case."""
    t = Table(title=title, title_justify="left")
    for name, justify in (("case", "left"), ("scale", "right"), ("mode", "left"), ("widths", "left"),
                          ("MFLOPs", "right"), ("drift", "right"), ("MAC MB", "right"), ("latency ms", "right"),
                          ("p10-p90 ms", "right"), ("rel. speed", "right"), ("latency ratio [95% CI]", "left"),
                          ("note", "left")):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        lat, r = _num(row.get("latency_ms")), _num(row.get("ratio_to_baseline"))
        failed = row.get("status") != "ok"
        # text from suites and exceptions is not markup: "[/x]" in an error must not break the table
        note = escape(str((row.get("error") if failed else short_warnings(row.get("warnings"))) or ""))
        t.add_row(
            escape(str(row["case"])), f"x{row['scale']}", str(row["mode"]), str(row.get("widths", "")),
            f"{_num(row['mult_adds']) / 1e6:,.1f}",
            "" if math.isnan(_num(row.get("flops_drift_pct"))) else f"{_num(row['flops_drift_pct']):+.1f}%",
            f"{_num(row['mac_bytes']) / 1e6:,.2f}",
            "FAILED" if failed else f"{lat:.3f}",
            "" if failed else f"{_num(row.get('latency_p10_ms')):.3f}-{_num(row.get('latency_p90_ms')):.3f}",
            "" if failed or math.isnan(r) or r <= 0 else f"{1 / r:.2f}",
            "" if failed else ratio_text(row),
            f"[red]{note}[/red]" if failed else (f"[yellow]{note}[/yellow]" if note else ""),
        )
    return t
