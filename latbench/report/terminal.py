"""Views of result rows for people: the rich table of a run. Formatting only, no statistics."""

from __future__ import annotations

import dataclasses
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


def ratio_number(v: float) -> str:
    """A ratio with three decimals, or three significant digits where three decimals would print 0.000
    or a number too long to read."""
    return f"{v:.3f}" if 0.01 <= abs(v) < 1000 else f"{v:.3g}"


def ratio_ci_text(r: float, lo: float, hi: float) -> str:
    """'1.420x [1.400, 1.450]' for a latency ratio and its CI; '-' without a ratio, 'undefined' for a ratio
    that is not a finite positive number, '1.420x [CI undefined]' for an undefined or absurd CI
    (verdict.defined): such intervals are never printed as numbers."""
    from latbench.verdict import defined

    r, lo, hi = _num(r), _num(lo), _num(hi)
    if math.isnan(r):
        return "-"
    if not defined(r, r):
        return "undefined"
    if not defined(lo, hi):
        return f"{ratio_number(r)}x [CI undefined]"
    return f"{ratio_number(r)}x [{ratio_number(lo)}, {ratio_number(hi)}]"


IN_PROCESS_INTERVALS = ("order", "order-ess")  # stats.INTERVALS made from one process's rounds


def interval_scope(rows: Iterable[dict[str, Any]]) -> str:
    """What the rows' ratio CIs cover, for a column header: 'within one process' (one process's rounds:
    run-to-run variation is not in them), 'over N processes' (pooled: it is), or '' when mixed/unknown."""
    kinds = set()
    for row in rows:
        if row.get("case") == row.get("baseline_case") or row.get("status") != "ok":
            continue
        interval = str(row.get("ratio_interval") or "")
        if interval in IN_PROCESS_INTERVALS:
            kinds.add("within one process")
        elif interval.startswith("processes"):
            kinds.add(f"over {_int(row.get('repeats'))} processes")
        else:
            kinds.add("")
    return kinds.pop() if len(kinds) == 1 else ""


def _int(v: Any) -> str:
    f = _num(v)
    return str(int(f)) if math.isfinite(f) else "?"


def ratio_text(row: dict[str, Any]) -> str:
    """'1.42x [1.40, 1.45]' for a row's ratio to its baseline, 'no difference' when its CI includes 1."""
    r, lo, hi = _num(row.get("ratio_to_baseline")), _num(row.get("ratio_ci_low")), _num(row.get("ratio_ci_high"))
    if row.get("case") == row.get("baseline_case"):
        return "baseline"
    text = ratio_ci_text(r, lo, hi)
    if "undefined" in text:
        return text
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


def plain(v: Any) -> Any:
    """A cell for JSON: NaN and missing become None, numpy scalars Python numbers."""
    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def jsonable(obj: Any) -> Any:
    """obj with every NaN (at any depth) as None and numpy scalars as Python numbers: strict JSON."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return plain(obj)


def run_cells(rows: Iterable[dict[str, Any]]) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """The run table's (label, justify) columns and text cells; each label names the quantity it holds.

    When rows differ in batch, dtype, memory format or threads (a sweep), a 'point' column names
    them and p99 and images/s columns show the latency-throughput trade.
    """
    rows = list(rows)
    swept = [a for a in SWEEP_AXES if len({str(r.get(a)) for r in rows}) > 1]
    columns = [("case", "left"), ("scale", "right"), ("mode", "left")] + ([("point", "left")] if swept else []) + [
        ("widths", "left"), ("M mult-adds", "right"), ("FLOPs drift", "right"), ("MAC MB", "right"),
        ("latency ms", "right"), ("p10-p90 ms", "right")] + (
        [("p99 ms", "right"), ("images/s", "right")] if swept else []) + [
        ("speed vs baseline", "right"), (ratio_header(rows), "left"), ("note", "left")]
    cells = []
    for row in rows:
        lat, r = _num(row.get("latency_ms")), _num(row.get("ratio_to_baseline"))
        failed = row.get("status") != "ok"
        note = row.get("error") if failed else short_warnings(row.get("warnings"))
        extra = ([f"{_num(row.get('latency_p99_ms')):.3f}", f"{_num(row.get('images_per_s')):,.0f}"]
                 if swept and not failed else ["", ""] if swept else [])
        cells.append([
            str(row["case"]), f"x{row['scale']}", str(row["mode"]),
            *([point_text(row, swept)] if swept else []), str(row.get("widths", "")),
            f"{_num(row.get('mult_adds')) / 1e6:,.1f}",
            "" if math.isnan(_num(row.get("flops_drift_pct"))) else f"{_num(row['flops_drift_pct']):+.1f}%",
            f"{_num(row.get('mac_bytes')) / 1e6:,.2f}",
            str(row.get("status", "")).upper() if failed else f"{lat:.3f}",
            "" if failed else f"{_num(row.get('latency_p10_ms')):.3f}-{_num(row.get('latency_p90_ms')):.3f}",
            *extra,
            "" if failed or math.isnan(r) or r <= 0 else f"{1 / r:.2f}",
            "" if failed else ratio_text(row),
            str(note or ""),
        ])
    return columns, cells


def ratio_header(rows: Iterable[dict[str, Any]]) -> str:
    """'latency ratio [95% CI within one process]' (or 'over 8 processes'): the run table's CI column names
    what its intervals cover."""
    scope = interval_scope(rows)
    return f"latency ratio [95% CI {scope}]" if scope else "latency ratio [95% CI]"


def run_table(rows: Iterable[dict[str, Any]], title: str) -> Table:
    """The paper's comparison at a glance: multiply-adds, MAC, latency and speed relative to the first case."""
    rows = list(rows)
    columns, cells = run_cells(rows)
    caption = ("CIs within one process: they do not include how far a new process lands (run without "
               "--in-process/--quick, or --repeats N, to pool N processes)"
               if interval_scope(rows) == "within one process" else None)
    t = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for name, justify in columns:
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row, c in zip(rows, cells):
        t.add_row(escape(c[0]), *c[1:-1], _markup_note(c[-1], row.get("status")))
    return t


def markdown_table(columns: list[tuple[str, str]], cells: list[list[str]]) -> str:
    """A GitHub markdown table (| escaped in cells)."""
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    align = {"left": ":---", "right": "---:"}
    lines = ["| " + " | ".join(esc(n) for n, _ in columns) + " |",
             "|" + "|".join(align.get(j, "---") for _, j in columns) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def run_markdown(rows: Iterable[dict[str, Any]], title: str) -> str:
    """`latbench run --format markdown`: the run table of one suite under a heading."""
    rows = list(rows)
    note = ("\nCIs within one process: they do not include how far a new process lands.\n"
            if interval_scope(rows) == "within one process" else "")
    return f"### {title}\n\n" + markdown_table(*run_cells(rows)) + note


def env_table(fp: dict[str, Any]) -> Table:
    """`latbench env`: the fingerprint as a two-column table, one extra section per GPU."""
    t = Table(title="latbench env", title_justify="left", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    for key, value in fp.items():
        if key == "gpus":
            continue
        if key == "memory_bytes" and isinstance(value, (int, float)):
            value = f"{value / 2**30:.1f} GiB"
        t.add_row(key, "-" if value is None else str(value))
    gpus = fp.get("gpus") or []
    if not gpus:
        t.add_row("gpus", "none visible to NVML")
    for gpu in gpus:
        t.add_section()
        for key, value in gpu.items():
            t.add_row(f"gpu{gpu.get('index', '')}.{key}", "-" if value is None else str(value))
    return t


# ---------------------------------------------------------------- compare and gate views
# Marks as asv compare uses them: '+' slower, '-' faster, '~' significant but within threshold,
# ' ' no significant change, 'x' missing on one side, '!' failed.

def _mark(d: Any) -> str:
    if d.status == "slower":
        return "+"
    if d.status == "faster":
        return "-"
    if d.status == "missing":
        return "x"
    if d.status in ("failed", "invalid"):
        return "!"
    if d.status == "inconclusive":
        return "?"
    return "~" if d.significant else " "


def _ms(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3f}"


_ratio_ci = ratio_ci_text


def _change(d: Any) -> str:
    from latbench.verdict import defined

    changed = "; changed" if getattr(d, "changed", "") else ""
    if d.status in ("missing", "failed", "skipped", "invalid") or (d.status == "inconclusive"
                                                                   and not defined(d.ratio, d.ratio)):
        return d.status + changed
    if d.status == "inconclusive":
        return f"inconclusive ({100 * (d.ratio - 1):+.1f}%)" + changed
    pct = f"{100 * (d.ratio - 1):+.1f}%"
    if d.status == "same":
        return f"same ({pct})" + (", within threshold" if d.significant else "") + changed
    return f"{d.status} ({pct})" + changed


def _case(d: Any) -> str:
    k = d.key
    return f"{k['suite']}/{k['case']}"


def _runs(d: Any) -> str:
    return f"{d.base_runs}/{d.cand_runs}"


def _compare_rows(cmp: Any) -> list[list[str]]:
    return [[_mark(d), _case(d), f"x{d.key['scale']}", str(d.key["device"]), str(d.key["mode"]),
             str(d.key["batch"]), _ms(d.base_ms), _ms(d.cand_ms), _ratio_ci(d.ratio, d.ci_low, d.ci_high),
             _change(d), f"{d.threshold:.0%}" if d.threshold * 100 == round(d.threshold * 100) else f"{d.threshold:.1%}",
             _runs(d), "-" if math.isnan(d.run_noise_pct) else f"{d.run_noise_pct:.1f}%",
             _ratio_ci(d.norm_ratio, d.norm_ci_low, d.norm_ci_high), d.note] for d in cmp.deltas]


_COMPARE_HEADERS = ("", "case", "scale", "device", "mode", "batch", "baseline ms", "candidate ms",
                    "ratio [CI]", "change", "threshold", "runs b/c", "run noise", "vs baseline case", "note")


def compare_table(cmp: Any, title: str) -> Table:
    """Medians side by side, ratio candidate/baseline with its CI, and the verdict per case."""
    t = Table(title=title, title_justify="left")
    for h in _COMPARE_HEADERS:
        t.add_column(h, justify="right" if h.endswith(("ms", "batch", "runs b/c", "noise", "threshold")) else "left")
    style = {"+": "red", "-": "green", "!": "red", "x": "yellow"}
    for cells in _compare_rows(cmp):
        t.add_row(*[c.replace("[", r"\[") for c in cells], style=style.get(cells[0]))
    return t


def compare_markdown(cmp: Any, outcome: Any = None, title: str = "latbench compare") -> str:
    """A report fit for a PR comment or $GITHUB_STEP_SUMMARY: verdict, regressions first, then all cases."""
    lines = [f"### {title}", ""]
    if outcome is not None:
        icon = ":white_check_mark:" if outcome.passed else ":x:"
        lines += [f"{icon} **{outcome.summary()}**", ""]
    lines += [f"Baseline: {len(cmp.base_files)} run(s); candidate: {len(cmp.cand_files)} run(s). "
              f"Ratio = candidate / baseline latency with its {1 - cmp.alpha:.0%} CI. A case passes only when the "
              f"CI's upper end is below 1 + its threshold; it is slower when the whole CI lies above 1 + threshold, "
              f"inconclusive in between (the note says what it would take to decide).", ""]
    for w in cmp.warnings:
        lines.append(f"> :warning: {w}")
    if cmp.warnings:
        lines.append("")
    order = {"slower": 0, "failed": 1, "invalid": 1, "inconclusive": 2, "missing": 3, "faster": 4, "same": 5}
    deltas = sorted(cmp.deltas, key=lambda d: order.get(d.status, 5))
    sub = dataclasses.replace(cmp, deltas=deltas)
    lines.append("| " + " | ".join(h or "Δ" for h in _COMPARE_HEADERS) + " |")
    lines.append("|" + "|".join(":-:" if i == 0 else ("--:" if h.endswith(("ms", "batch")) else "---")
                                for i, h in enumerate(_COMPARE_HEADERS)) + "|")
    for cells in _compare_rows(sub):
        cells[0] = {"+": ":red_circle:", "-": ":green_circle:", "!": ":x:", "x": ":grey_question:"}.get(cells[0],
                                                                                                    cells[0].strip())
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "Marks: :red_circle: slower, :green_circle: faster, ~ significant but within threshold, "
                  ":grey_question: in one side only, ? inconclusive (CI undefined, or reaching 1 + threshold without "
                  "lying above it), :x: failed. Method per case in the JSON output "
                  "(`runs-welch`: t-test on run medians; `samples-bootstrap+floor`: one run per side, CI widened "
                  f"by a {cmp.noise_floor:.0%} run-to-run noise floor).", ""]
    return "\n".join(lines)


def compare_csv(cmp: Any) -> str:
    import pandas as pd

    return pd.DataFrame([d.as_dict() for d in cmp.deltas]).to_csv(index=False)


def compare_json(cmp: Any, outcome: Any = None) -> str:
    import json

    doc: dict[str, Any] = {
        "baseline_files": cmp.base_files, "candidate_files": cmp.cand_files, "alpha": cmp.alpha,
        "noise_floor": cmp.noise_floor, "warnings": cmp.warnings,
        "fingerprint_differences": cmp.fingerprint_differences, "cases": [d.as_dict() for d in cmp.deltas],
    }
    if outcome is not None:
        doc["gate"] = {"passed": outcome.passed, "summary": outcome.summary(),
                       "regressions": [d.label for d in outcome.regressions],
                       "failed": [d.label for d in outcome.failed],
                       "improvements": [d.label for d in outcome.improvements],
                       "missing": [d.label for d in outcome.missing],
                       "inconclusive": [d.label for d in getattr(outcome, "inconclusive", [])],
                       "invalid": [d.label for d in getattr(outcome, "invalid", [])],
                       "relaxed": list(getattr(outcome, "relaxed", [])), "reasons": list(getattr(outcome, "reasons", []))}
    return json.dumps(doc, indent=2, default=str) + "\n"


def calibration_table(suggestions: Any, pooled_pct: float, noise_floor: float, runs_per_side: int) -> Table:
    t = Table(title=f"A/A noise: pooled run-to-run sd {pooled_pct:.1f}%; suggested thresholds for "
                    f"{runs_per_side} run(s) per side; single-run --noise-floor {noise_floor:.1%}",
              title_justify="left")
    for h in ("case", "scale", "device", "mode", "batch", "runs", "median ms", "case noise", "used noise",
              "threshold"):
        t.add_column(h, justify="left" if h in ("case", "device", "mode") else "right")
    for s in suggestions:
        k = s.key
        t.add_row(f"{k['suite']}/{k['case']}", f"x{k['scale']}", str(k["device"]), str(k["mode"]), str(k["batch"]),
                  str(s.runs), f"{s.median_ms:.3f}", "-" if math.isnan(s.case_noise_pct) else f"{s.case_noise_pct:.1f}%",
                  f"{s.noise_pct:.1f}%", f"{s.threshold:.1%}")
    return t


def _markup_note(note: Any, status: Any) -> str:
    if not note:
        return ""
    text = escape(str(note))
    colour = {"failed": "red", "skipped": "cyan"}.get(str(status), "yellow")
    return f"[{colour}]{text}[/{colour}]"


def expected_text(expect: str, bound: float, band: Any = None) -> str:
    """'> 1', '<= 1.05', 'in [0.95, 1.05]': what a claim expects of the ratio latency(case)/latency(than)."""
    if expect == "equivalent":
        return f"in [{band[0]:g}, {band[1]:g}]" if band else "in its band"
    return {"faster": "< 1", "slower": "> 1", "at_most": f"<= {bound:g}", "at_least": f">= {bound:g}"}[expect]


def claim_effect_text(v: dict[str, Any]) -> str:
    """The raw ratio [CI]; where FLOPs differ, the per-FLOP ratio beside it; the paper's ratio."""
    text = ratio_ci_text(v["ratio"], v["ratio_ci_low"], v["ratio_ci_high"])
    fr = _num(v.get("flops_ratio"))
    if math.isfinite(fr) and abs(fr - 1) > 5e-4:
        per = ratio_ci_text(v.get("ratio_per_flop"), v.get("per_flop_ci_low"), v.get("per_flop_ci_high"))
        judged = ", judged" if v.get("judged_on") == "per FLOP" else ", not judged"
        text += f"; per FLOP {per} (FLOPs {fr - 1:+.1%}{judged})"
    paper, judged = _num(v.get("paper_ratio")), _num(v.get("paper_ratio_judged"))
    per = f" ({judged:.3g}x per FLOP)" if math.isfinite(judged) and abs(judged / paper - 1) > 5e-4 else ""
    return text + (f"; paper {paper:.3g}x{per}" if math.isfinite(paper) else "")


def claims_table(verdicts: Iterable[dict[str, Any]], title: str) -> Table:
    """One line per claim and group: the paired ratio latency(case)/latency(than) (and per FLOP), the
    verdict with its p-value, under false-discovery control over the run's claims (claims.fdr_text)."""
    from latbench.claims import fdr_text, p_text, verdict_text

    verdicts = list(verdicts)
    swept = [a for a in (*SWEEP_AXES, "mode") if len({str(v.get(a)) for v in verdicts}) > 1]
    t = Table(title=title, title_justify="left", caption=fdr_text(verdicts) or None, caption_justify="left")
    for name in ("claim", "group", "latency ratio case/than [95% CI]", "expected", "verdict", "p"):
        t.add_column(name)
    for v in verdicts:
        group = f"x{v['scale']} {point_text(v, swept)}".strip()
        colour = {"fails": "red", "unclear": "yellow"}.get(str(v["verdict"]), "green")
        t.add_row(escape(f"{v['case']} vs {v['than']}: {v['claim']}"), group, escape(claim_effect_text(v)),
                  expected_text(v["expect"], v["bound"], v.get("band")),
                  f"[{colour}]{escape(verdict_text(v))}[/{colour}]", p_text(v))
    if not t.row_count:
        t.add_row("no claim could be judged (cases skipped, failed, or claims for other devices)", "", "", "", "", "")
    return t


def _scale(v: Any) -> str:
    try:
        return f"{float(v):g}"
    except (TypeError, ValueError):
        return str(v)


def group_text(groups: list[dict[str, Any]]) -> list[str]:
    """'x1', 'x2 b8' ...: each group of a claim result, naming only the axes that vary."""
    swept = [a for a in SWEEP_AXES if len({str(v.get(a)) for v in groups}) > 1]
    return [f"x{_scale(v.get('scale'))} {point_text(v, swept)}".strip() for v in groups]


def report_claims_table(claims: Iterable[Any], suites: Iterable[Any], title: str) -> Table:
    """`latbench report`'s summary: each claim's verdict over all runs (report.analysis.ClaimResult), per
    group with its p-value, under false-discovery control over the whole report; a suite without claims
    says so."""
    from latbench.claims import fdr_text, join_words, p_text, verdict_text

    claims = list(claims)
    t = Table(title=title, title_justify="left", caption_justify="left",
              caption=fdr_text([v for c in claims for v in c.groups]) or None)
    for col in ("suite", "claim", "device", "mode", "verdict", "per group", "p per group"):
        t.add_column(col)
    for c in claims:
        names = group_text(c.groups)
        t.add_row(c.suite, escape(f"{c.claim.case} vs {c.claim.than}: {c.claim.text}"), c.device_label, c.mode,
                  c.verdict, escape(join_words(f"{g}: {verdict_text(v)}" for g, v in zip(names, c.groups))),
                  ", ".join(f"{g}: {p_text(v)}" for g, v in zip(names, c.groups)))
    for s in suites:
        if not s.claims:
            t.add_row(s.name, "no claims in this suite", "", "", "", "", "")
    return t


def predictor_table(header: list[str], rows: list[list[str]], lines: list[str], title: str) -> Table:
    """`latbench report`'s predictor table: report.predictors' cells, with its sentences as the caption."""
    t = Table(*header, title=title, title_justify="left", caption_justify="left",
              caption=escape("\n".join(lines).replace("**", "")) or None)
    for r in rows:
        t.add_row(*map(escape, r))
    return t
