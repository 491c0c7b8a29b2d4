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


SWEEP_AXES = ("batch", "dtype", "memory_format", "threads")


def point_text(row: dict[str, Any], axes: Iterable[str]) -> str:
    """'b8 bfloat16 channels_last t2': the values of the swept axes of a row."""
    fmt = {"batch": "b{}", "threads": "t{}"}
    return " ".join(fmt.get(a, "{}").format(row.get(a)) for a in axes)


def run_table(rows: Iterable[dict[str, Any]], title: str) -> Table:
    """The paper's comparison at a glance: FLOPs, MAC, latency and speed relative to the first case.

    When rows differ in batch, dtype, memory format or threads (a sweep), a 'point' column names
    them and p99 and images/s columns show the latency-throughput trade.
    """
    rows = list(rows)
    swept = [a for a in SWEEP_AXES if len({str(r.get(a)) for r in rows}) > 1]
    t = Table(title=title, title_justify="left")
    columns = [("case", "left"), ("scale", "right"), ("mode", "left")] + ([("point", "left")] if swept else []) + [
        ("widths", "left"), ("MFLOPs", "right"), ("drift", "right"), ("MAC MB", "right"), ("latency ms", "right"),
        ("p10-p90 ms", "right")] + ([("p99 ms", "right"), ("images/s", "right")] if swept else []) + [
        ("rel. speed", "right"), ("latency ratio [95% CI]", "left"), ("note", "left")]
    for name, justify in columns:
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        lat, r = _num(row.get("latency_ms")), _num(row.get("ratio_to_baseline"))
        failed = row.get("status") != "ok"
        note = row.get("error") if failed else short_warnings(row.get("warnings"))
        extra = ([f"{_num(row.get('latency_p99_ms')):.3f}", f"{_num(row.get('images_per_s')):,.0f}"]
                 if swept and not failed else ["", ""] if swept else [])
        t.add_row(
            str(row["case"]), f"x{row['scale']}", str(row["mode"]),
            *([point_text(row, swept)] if swept else []), str(row.get("widths", "")),
            f"{_num(row['mult_adds']) / 1e6:,.1f}",
            "" if math.isnan(_num(row.get("flops_drift_pct"))) else f"{_num(row['flops_drift_pct']):+.1f}%",
            f"{_num(row['mac_bytes']) / 1e6:,.2f}",
            str(row.get("status", "")).upper() if failed else f"{lat:.3f}",
            "" if failed else f"{_num(row.get('latency_p10_ms')):.3f}-{_num(row.get('latency_p90_ms')):.3f}",
            *extra,
            "" if failed or math.isnan(r) or r <= 0 else f"{1 / r:.2f}",
            "" if failed else ratio_text(row),
            _markup_note(note, row.get("status")),
        )
    return t


def _markup_note(note: Any, status: Any) -> str:
    if not note:
        return ""
    text = escape(str(note))
    colour = {"failed": "red", "skipped": "cyan"}.get(str(status), "yellow")
    return f"[{colour}]{text}[/{colour}]"


def claims_table(verdicts: Iterable[dict[str, Any]], title: str) -> Table:
    """One line per claim and group: the paired ratio latency(case)/latency(than) and the verdict."""
    verdicts = list(verdicts)
    swept = [a for a in (*SWEEP_AXES, "mode") if len({str(v.get(a)) for v in verdicts}) > 1]
    t = Table(title=title, title_justify="left")
    for name in ("claim", "group", "latency ratio case/than [95% CI]", "expected", "verdict"):
        t.add_column(name)
    colours = {"holds": "green", "fails": "red", "unclear": "yellow"}
    for v in verdicts:
        group = f"x{v['scale']} {point_text(v, swept)}".strip()
        expected = {"faster": "< 1", "slower": "> 1", "at_most": f"<= {v['bound']:g}",
                    "at_least": f">= {v['bound']:g}"}[v["expect"]]
        t.add_row(escape(f"{v['case']} vs {v['than']}: {v['claim']}"), group,
                  f"{v['ratio']:.3f}x [{v['ratio_ci_low']:.3f}, {v['ratio_ci_high']:.3f}]", expected,
                  f"[{colours[v['verdict']]}]{v['verdict']}[/{colours[v['verdict']]}]")
    if not t.row_count:
        t.add_row("no claim could be judged (cases skipped, failed, or claims for other devices)", "", "", "", "")
    return t
