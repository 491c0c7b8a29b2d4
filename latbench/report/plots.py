"""PNG figures for `latbench report` (matplotlib, Agg canvas: headless, no display, no pyplot state).
Drawing only: the numbers come from analysis.py and the result rows."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pandas as pd

from latbench.report.analysis import CaseEffect
from latbench.errors import LatbenchError
from latbench.results.files import safe_directory, write_output

DPI = 110
TITLE_CHARS = 48  # a panel title wraps at this many characters (two panels side by side)


def _wrap(text: str, width: int = TITLE_CHARS) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _log(ax: Any, axis: str = "xy") -> None:
    """Log scale with plain tick labels (1, 2, 5, 10, 20, ...): no '3x10^4x10^1' of overlapping minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    def plain(v: float, _pos: Any) -> str:
        return f"{v:g}" if 1e-3 <= v < 1e6 else f"{v:.0e}"

    for name in axis:
        a = ax.xaxis if name == "x" else ax.yaxis
        (ax.set_xscale if name == "x" else ax.set_yscale)("log")
        a.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        a.set_major_formatter(FuncFormatter(plain))
        a.set_minor_formatter(NullFormatter())


def _legend_outside(ax: Any) -> None:
    """The legend right of the panel, off the data."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)


def _panels(n: int, size: tuple[float, float]) -> Any:
    """A figure with n panels, two per row (no empty cell: an odd last one is removed)."""
    cols = min(2, n)
    rows = math.ceil(n / cols)
    fig, axes = _figure(rows, cols, (size[0] * cols / 2, size[1] * rows / 2))
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def _figure(rows: int, cols: int, size: tuple[float, float]) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise LatbenchError("matplotlib is needed for report figures",
                            hint="pip install 'latbench[report]' (or matplotlib)") from None
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def _save(fig: Any, path: Path) -> Path:
    """The figure as a PNG at `path`, under the file policy (results.files.write_output: atomic, never
    through a symbolic link, never onto a run's file); the caller checked beforehand that replacing is
    allowed."""
    return save_png(fig, path)


def save_png(fig: Any, path: Path, force: bool = True) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    safe_directory(path.parent)
    return write_output(path, buf.getvalue(), force)


def flops_vs_latency(rows: pd.DataFrame, headings: dict[str, str], title: str, path: Path) -> Path | None:
    """One panel per experiment in the rows: measured latency against FLOPs, a series per case (log-log).
    headings: experiment -> panel title. None (no figure) without rows.

    At fixed FLOPs a perfect FLOPs proxy would stack the cases on one point; the vertical spread at
    each scale is what FLOPs miss.
    """
    rows = rows.dropna(subset=["latency_ms", "mult_adds"])
    experiments = list(dict.fromkeys(rows["experiment"]))
    if not experiments:
        return None
    fig, axes = _panels(len(experiments), (11, 8))
    for ax, exp in zip(axes, experiments):
        g = rows[rows["experiment"] == exp]
        ax.set_title(_wrap(headings.get(exp, exp)), fontsize=9)
        for case, h in g.groupby("case", sort=False):
            h = h.sort_values("mult_adds")
            x = h["mult_adds"] / 1e6
            y = h["latency_ms"]
            err = [(y - h["latency_ci_low_ms"]).clip(lower=0), (h["latency_ci_high_ms"] - y).clip(lower=0)]
            ax.errorbar(x, y, yerr=err, marker="o", ms=4, capsize=2, lw=1, label=str(case))
        _log(ax)
        ax.set_xlabel("mult-adds (M, the paper's FLOPs)")
        ax.set_ylabel("latency (ms, median, 95% CI)")
        _legend_outside(ax)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(_wrap(f"FLOPs vs latency - {title}", 100), fontsize=11)
    return _save(fig, path)


def roofline(rows: pd.DataFrame, ceilings: dict[str, Any] | None, title: str, path: Path) -> Path | None:
    """Left: measured time against the roofline lower bound (y = x is the ceiling), only when the runs
    measured ceilings. Right: the classic roofline, achieved FLOP/s against arithmetic intensity, under
    the measured roof. None (no figure) when the rows hold neither."""
    ok = rows.dropna(subset=["latency_ms"])
    has_bound = "roofline_bound_ms" in ok and ok["roofline_bound_ms"].notna().any()
    has_ai = all(c in ok for c in ("arithmetic_intensity_flops_per_byte", "achieved_flops_per_s")) and (
        ok["arithmetic_intensity_flops_per_byte"].notna() & ok["achieved_flops_per_s"].notna()).any()
    if not (has_bound or has_ai):
        return None
    fig, axes = _figure(1, 2 if has_bound and has_ai else 1, (12 if has_bound and has_ai else 6, 5))
    left, right = (axes[0] if has_bound else None), (axes[-1] if has_ai else None)
    for exp, g in ok.groupby("experiment"):
        if left is not None and g["roofline_bound_ms"].notna().any():
            left.scatter(g["roofline_bound_ms"], g["latency_ms"], s=18, label=str(exp))
        if right is not None:
            right.scatter(g["arithmetic_intensity_flops_per_byte"], g["achieved_flops_per_s"] / 1e9, s=18,
                          label=str(exp))
    if left is not None:
        lo = min(ok["roofline_bound_ms"].min(), ok["latency_ms"].min())
        hi = max(ok["roofline_bound_ms"].max(), ok["latency_ms"].max())
        for frac, style in ((1.0, "-"), (0.1, "--"), (0.01, ":")):
            left.plot([lo, hi], [lo / frac, hi / frac], "k" + style, lw=0.8, label=f"{frac:.0%} of roofline")
        _log(left)
        left.set_xlabel("roofline lower bound (ms)")
        left.set_ylabel("measured latency (ms)")
        left.set_title("measured time vs roofline bound", fontsize=10)
        _legend_outside(left)
        left.grid(True, which="both", alpha=0.3)
    if right is None:
        fig.suptitle(_wrap(f"Roofline - {title}", 100), fontsize=11)
        return _save(fig, path)
    if ceilings and len(ok):
        peak, bw = ceilings["peak_flops_per_s"] / 1e9, ceilings["bandwidth_bytes_per_s"] / 1e9
        ai = ok["arithmetic_intensity_flops_per_byte"].dropna()
        xs = [min(ai.min(), peak / bw) / 2, peak / bw, max(ai.max(), peak / bw) * 2]
        right.plot(xs, [min(peak, bw * x) for x in xs], "k-", lw=1,
                   label=f"roof: {peak:.0f} GFLOP/s, {bw:.0f} GB/s")
    _log(right)
    right.set_xlabel("arithmetic intensity (FLOPs per MAC byte)")
    right.set_ylabel("achieved GFLOP/s")
    right.set_title("roofline", fontsize=10)
    _legend_outside(right)
    right.grid(True, which="both", alpha=0.3)
    fig.suptitle(_wrap(f"Roofline - {title}", 100), fontsize=11)
    return _save(fig, path)


def paper_side_by_side(effects: list[CaseEffect], title: str, path: Path) -> Path | None:
    """One panel per experiment the paper has (G1-G4 present in the effects): our relative speed (95% CI)
    beside the paper's ARM and GPU numbers. None (no figure) when no effect has a paper number."""
    experiments = list(dict.fromkeys(c.experiment for c in effects if c.paper_speed))
    if not experiments:
        return None
    fig, axes = _panels(len(experiments), (13, 8))
    for ax, exp in zip(axes, experiments):
        cs = [c for c in effects if c.experiment == exp]
        ax.set_title(exp, fontsize=10)
        order = list(dict.fromkeys(c.case for c in cs))
        cs.sort(key=lambda c: (c.scale, order.index(c.case)))
        xs = list(range(len(cs)))
        ours = [c.speed for c in cs]
        err = [[max(0.0, c.speed - 1 / c.ci_high) if c.ci_high > 0 else 0 for c in cs],
               [max(0.0, 1 / c.ci_low - c.speed) if c.ci_low > 0 else 0 for c in cs]]
        w = 0.27
        ax.bar([x - w for x in xs], ours, w, yerr=err, capsize=2, label="ours (95% CI)")
        for k, plat in enumerate(("arm", "gpu"), start=0):
            vals = [c.paper_speed.get(plat, math.nan) for c in cs]
            ax.bar([x + k * w for x in xs], vals, w, label=f"paper {plat.upper()}", alpha=0.8)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(xs, [f"{c.case} x{c.scale}" for c in cs], fontsize=7, rotation=50, ha="right",
                      rotation_mode="anchor")
        ax.set_ylabel("speed relative to baseline")
        ax.grid(True, axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()  # the same three series in every panel: one legend
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8, frameon=False)
    fig.suptitle(_wrap(f"Relative speed, ours vs ShuffleNet V2 Tables 1-4 - {title}", 100), fontsize=11)
    return _save(fig, path)
