"""Rendering of a guideline audit (latbench/audit.py): markdown, CSV and one figure. Drawing and
formatting only; the numbers are the Audit's."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from latbench.audit import G3_MAX_FRAGMENTS, TOLERANCE, Audit, Layer
from latbench.errors import LatbenchError
from latbench.results.files import check_output, safe_directory, write_output

CSV_COLUMNS = ("layer", "kind", "category", "block", "block_fragments", "mult_adds", "mac_bytes",
               "arithmetic_intensity_flops_per_byte", "time_ms", "time_share_pct", "flops_share_pct",
               "roofline_bound_ms", "time_above_bound_ms", "excess_vs_flops_ms", "guideline")


def slug(target: str) -> str:
    """A file-name stem for an audit target ('shufflenet_v2 {"width": 1.0}' -> 'shufflenet_v2-width-1.0')."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", target).strip("-") or "network"


def _row(l: Layer) -> dict[str, object]:
    def r(v, n=4):
        return None if v is None else round(v, n)

    return {"layer": l.name, "kind": l.kind, "category": l.category, "block": l.block,
            "block_fragments": l.block_fragments, "mult_adds": l.mult_adds, "mac_bytes": l.mac_bytes,
            "arithmetic_intensity_flops_per_byte": r(l.intensity, 3), "time_ms": r(l.time_ms),
            "time_share_pct": r(100 * l.time_share, 2), "flops_share_pct": r(100 * l.flops_share, 2),
            "roofline_bound_ms": r(l.bound_ms, 5), "time_above_bound_ms": r(l.above_bound_ms),
            "excess_vs_flops_ms": r(l.excess_ms), "guideline": l.guideline}


def audit_csv(a: Audit) -> str:
    """One row per layer, in execution order (the framework remainder last)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for layer in a.layers:
        w.writerow(_row(layer))
    return buf.getvalue()


def _ms(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"


def audit_markdown(a: Audit, figure: str | None = None, csv_name: str | None = None, top: int = 12) -> str:
    """The audit as markdown: setup, whether the parts add up, the ranking, per guideline, per kind."""
    c = a.ceilings
    lines = [f"# Guideline audit: {a.target}", "",
             f"Input {a.batch}x{'x'.join(map(str, a.input_shape))} {a.dtype}, {a.device} [{a.device_name}], "
             f"{a.threads} thread(s); {a.rounds} interleaved rounds; measured {a.measured_at_utc}"
             + (f", 1-min load average {a.load_1min:.2f} at the end" if a.load_1min is not None else "") + ".",
             "",
             f"- whole network, timed alone: **{a.whole_ms:.3f} ms** per forward (median forward over {a.rounds} rounds; "
             f"p10-p90 {a.whole_spread_ms[0]:.3f}-{a.whole_spread_ms[1]:.3f} ms)",
             f"- multiply-adds {a.mult_adds / 1e6:.1f} M, MAC {a.mac_bytes / 1e6:.1f} MB"
             + (f"; ceilings: peak {c.peak_flops_per_s / 1e9:.1f} GFLOP/s, bandwidth "
                f"{c.bandwidth_bytes_per_s / 1e9:.1f} GB/s (roofline.py probes)" if c is not None else ""),
             f"- the layers' op time (profiled, medians) sums to {a.ops_ms:.3f} ms = {100 * a.ops_ms / a.whole_ms:.0f} % "
             f"of the whole; the rest ({max(a.whole_ms - a.ops_ms, 0):.3f} ms) is *framework* (Python, module "
             f"calls, dispatch). Parts add up to the whole within the {TOLERANCE:.0%} tolerance: "
             f"**{'yes' if a.adds_up else 'no'}** (a profiled forward, with a scope per module, took "
             f"{a.profiled_ms:.3f} ms)", ""]
    for note in a.notes:
        lines += [f"> note: {note}", ""]
    lines += ["## Where the network loses time against FLOPs", "",
              "Excess = the layer's time less its FLOPs-proportional share of the whole network's time.", "",
              "| # | layer | kind | time ms | time % | FLOPs % | excess ms | above roofline ms | guideline |",
              "|---:|---|---|---:|---:|---:|---:|---:|---|"]
    for i, l in enumerate(a.ranking(top), 1):
        lines.append(f"| {i} | `{l.name}` | {l.kind} | {l.time_ms:.3f} | {100 * l.time_share:.1f} | "
                     f"{100 * l.flops_share:.1f} | {l.excess_ms:+.3f} | {_ms(l.above_bound_ms)} | {l.guideline} |")
    lines += ["", "## By guideline", "",
              f"G1: 1x1 conv with unequal input/output widths; G2: grouped conv (not depthwise); G3: a layer in a "
              f"block of more than {G3_MAX_FRAGMENTS} ops per forward; G4: ops with no counted FLOPs "
              f"(element-wise, pooling, concat, shuffle copies). A layer may strain several.", "",
              "| guideline | layers | time % | FLOPs % | excess ms |", "|---|---:|---:|---:|---:|"]
    for r in a.by("guideline"):
        lines.append(f"| {r['guideline']} | {r['layers']} | {100 * r['time_share']:.1f} | "
                     f"{100 * r['flops_share']:.1f} | {r['excess_ms']:+.3f} |")
    lines += ["", "## By kind of layer", "", "| kind | layers | time % | FLOPs % | excess ms |",
              "|---|---:|---:|---:|---:|"]
    for r in a.by("category"):
        lines.append(f"| {r['category']} | {r['layers']} | {100 * r['time_share']:.1f} | "
                     f"{100 * r['flops_share']:.1f} | {r['excess_ms']:+.3f} |")
    lines.append("")
    if figure:
        lines += [f"![time share against FLOPs share]({figure})", ""]
    if csv_name:
        lines += [f"Every layer (multiply-adds, MAC bytes, arithmetic intensity, roofline bound, time above it): "
                  f"[{csv_name}]({csv_name}).", ""]
    return "\n".join(lines)


def audit_figure(a: Audit, path: Path, top: int = 15, force: bool = True) -> Path:
    """Two panels: time vs FLOPs share per kind of layer; the layers with the largest excess. Written
    under the file policy (results.files)."""
    from latbench.report.plots import _figure, save_png

    fig, (ax1, ax2) = _figure(1, 2, (12, 5))
    cats = a.by("category")
    y = range(len(cats))
    ax1.barh([i + 0.2 for i in y], [100 * r["time_share"] for r in cats], height=0.4, label="time %")
    ax1.barh([i - 0.2 for i in y], [100 * r["flops_share"] for r in cats], height=0.4, label="FLOPs %")
    ax1.set_yticks(list(y), [r["category"] for r in cats])
    ax1.invert_yaxis()
    ax1.set_xlabel("share of the network (%)")
    ax1.set_title("time against FLOPs, by kind of layer")
    ax1.legend()
    worst = a.ranking(top)
    ax2.barh(range(len(worst)), [l.excess_ms for l in worst], color="tab:red")
    ax2.set_yticks(range(len(worst)), [l.name if l.category == "framework" else f"{l.name} ({l.kind[:28]})"
                                       for l in worst], fontsize=7)
    ax2.invert_yaxis()
    ax2.set_xlabel("time beyond the FLOPs-proportional share (ms)")
    ax2.set_title("layers losing most time against FLOPs")
    fig.suptitle(f"{a.target}: {a.whole_ms:.2f} ms on {a.device} [{a.device_name}], {a.threads} thread(s), "
                 f"{a.measured_at_utc[:10]}"
                 + (f"; 1-min load average {a.load_1min:.1f} on {os.cpu_count()} CPUs" if a.load_1min is not None else ""),
                 fontsize=9)
    return save_png(fig, path, force)


def write_audit(a: Audit, out_dir: Path, stem: str | None = None, force: bool = False) -> tuple[Path, Path, Path]:
    """<stem>.md, <stem>.csv and figures/<stem>.png in out_dir, under the file policy (results.files):
    all three checked before any is written; an existing one replaced only with `force`; never a run's
    file; never through a symbolic link (figures/ included); each written atomically."""
    stem = stem or f"audit-{slug(a.target)}"
    if not stem.strip() or stem in (".", "..") or any(c in stem for c in "/\\\0"):
        raise LatbenchError(f"--name {stem!r} is not a plain file stem", where="latbench audit",
                            hint="give a name such as audit-mynet (the directory goes in -o)")
    md = check_output(out_dir / f"{stem}.md", force)
    out_dir = md.parent  # resolved once
    csv_path = check_output(out_dir / f"{stem}.csv", force)
    check_output(out_dir / "figures" / f"{stem}.png", force)
    safe_directory(out_dir)
    safe_directory(out_dir / "figures")
    fig = audit_figure(a, out_dir / "figures" / f"{stem}.png", force=force)
    write_output(csv_path, audit_csv(a), force)
    write_output(md, audit_markdown(a, f"figures/{fig.name}", csv_path.name), force)
    return md, csv_path, fig
