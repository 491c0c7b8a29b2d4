"""Report figures people can read: plain log tick labels (no overlapping minor labels), titles inside
the figure, legends off the data, file names without '-s-'. Drawn on synthetic rows (Agg, headless)."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from latbench.report import plots  # noqa: E402
from latbench.report.analysis import CaseEffect, slug  # noqa: E402

LONG = "G4: removing ReLU and shortcut (zero-FLOP element-wise ops) makes a unit faster at every scale"


def _rows() -> pd.DataFrame:
    rows = []
    for exp in ("G1", "G4"):
        for case, k in (("a", 1.0), ("b", 1.2), ("c", 1.4)):
            for scale, ma in ((1, 30e6), (2, 130e6), (4, 540e6)):
                lat = ma / 1e7 * k
                rows.append({"experiment": exp, "case": case, "scale": scale, "mult_adds": ma, "latency_ms": lat,
                             "latency_ci_low_ms": lat * 0.97, "latency_ci_high_ms": lat * 1.03,
                             "roofline_bound_ms": lat / 3, "arithmetic_intensity_flops_per_byte": 2 + scale * k,
                             "achieved_flops_per_s": 2 * ma / (lat * 1e-3)})
    return pd.DataFrame(rows)


@pytest.fixture
def saved(monkeypatch):
    figs = []
    real = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: figs.append(fig) or real(fig, path))
    return figs


def _check_readable(fig) -> None:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    fbox = fig.bbox
    texts = [t for ax in fig.axes for t in (ax.title,)] + ([fig._suptitle] if fig._suptitle else [])
    for t in texts:
        b = t.get_window_extent(renderer)
        assert b.x0 >= fbox.x0 - 1 and b.x1 <= fbox.x1 + 1, f"title cut off: {t.get_text()!r}"
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None:  # off the data: outside the axes
            assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                assert all(not t.get_text() for t in axis.get_minorticklabels()), "minor tick labels shown"
                majors = [t.get_text() for t in axis.get_majorticklabels() if t.get_text()]
                assert majors and not any("times" in m or "^" in m for m in majors), majors


def test_flops_latency_and_roofline_figures_are_readable(tmp_path, saved):
    rows = _rows()
    assert plots.flops_vs_latency(rows, {"G4": LONG}, "cpu: AMD EPYC, 1 thread(s)", tmp_path / "f.png")
    assert plots.roofline(rows, {"peak_flops_per_s": 8e10, "bandwidth_bytes_per_s": 6e10}, "t", tmp_path / "r.png")
    assert len(saved) == 2
    for fig in saved:
        _check_readable(fig)
    assert "\n" in saved[0].axes[1].get_title()  # the long title wraps instead of running off the figure


def test_paper_figure_has_one_legend_off_the_bars(tmp_path, saved):
    effects = [CaseEffect("cpu", "eager", exp, case, "a", scale, r, r * 0.98, r * 1.02, 10, 0.5,
                          {"arm": 1 / r, "gpu": 0.9 / r})
               for exp in ("G1", "G2") for scale in (1, 2) for case, r in (("a", 1.0), ("b", 1.3))]
    assert plots.paper_side_by_side(effects, "cpu", tmp_path / "p.png")
    fig = saved[0]
    _check_readable(fig)
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    lb = fig.legends[0].get_window_extent(r)
    assert not any(lb.overlaps(ax.get_window_extent(r)) for ax in fig.axes)


def test_figure_file_name_slugs_have_no_stray_s():
    assert slug("cpu: AMD EPYC, 1 thread(s)") == "cpu-amd-epyc-1-thread"
    assert "-s-" not in slug("cpu: X, 2 thread(s) eager")
