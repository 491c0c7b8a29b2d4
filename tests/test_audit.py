"""`latbench audit`: per-layer costs add up to the network's, guidelines are tagged where they apply,
the parts add up to the whole, and the markdown, CSV and figure are written (a tiny network, fast)."""

from __future__ import annotations

import io

import pandas as pd
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from latbench import devices
from latbench.audit import FRAMEWORK, G3_MAX_FRAGMENTS, TOLERANCE, audit_network
from latbench.cli import app
from latbench.cost import _MemoryAccessCounter
from latbench.report.audit import CSV_COLUMNS, audit_csv, audit_markdown, write_audit
from latbench.roofline import Ceilings
from torch.utils.flop_counter import FlopCounterMode

CEILINGS = Ceilings(peak_flops_per_s=1e10, bandwidth_bytes_per_s=1e10, device="cpu", device_name="test", threads=1,
                    dtype="float32", key="k", measured_at_utc="", probes={})


class Block(nn.Module):
    """Two branches and a concat in its own forward (a block with own ops)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.ReLU())  # G1: 8 -> 16
        self.b = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # depthwise: not G2
                               nn.Conv2d(8, 16, 3, padding=1, groups=2, bias=False))  # G2

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], 1) + 1


class Fragmented(nn.Module):
    """More than G3_MAX_FRAGMENTS ops in one block."""

    def forward(self, x):
        for _ in range(G3_MAX_FRAGMENTS + 2):
            x = torch.relu(x + 1)
        return x


def tiny() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), Block(), Fragmented(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)).eval()
    return model, torch.randn(1, 3, 16, 16)


@pytest.fixture(scope="module")
def audit():
    model, x = tiny()
    return audit_network(model, x, "tiny", dev=devices.get("cpu", 1, fake=False), rounds=2, ceilings=CEILINGS)


def by_name(a, name):
    return next(l for l in a.layers if l.name == name)


def test_layer_costs_add_up_to_the_network_counts(audit):
    model, x = tiny()
    flops, mac = FlopCounterMode(display=False), _MemoryAccessCounter()
    with torch.inference_mode(), flops, mac:
        model(x)
    assert 2 * sum(l.mult_adds for l in audit.layers) == flops.get_total_flops() == 2 * audit.mult_adds
    assert sum(l.mac_bytes for l in audit.layers) == mac.bytes == audit.mac_bytes
    conv = by_name(audit, "1.a.0")
    assert conv.mult_adds == 16 * 8 * 16 * 16 and conv.intensity == pytest.approx(2 * conv.mult_adds / conv.mac_bytes)


def test_guidelines_are_tagged_where_they_apply(audit):
    assert by_name(audit, "1.a.0").guideline.startswith("G1: 1x1 conv 8->16")
    assert "G2: groups=2" in by_name(audit, "1.b.1").guideline
    assert "G2" not in by_name(audit, "1.b.0").guideline and by_name(audit, "1.b.0").category == "depthwise"
    own = by_name(audit, "1 (own ops)")
    assert "cat" in own.kind and "add" in own.kind and "G4" in own.guideline and own.mult_adds == 0
    frag = by_name(audit, "2")  # a leaf with a forward of its own: one layer, its own block
    assert frag.block_fragments == 2 * (G3_MAX_FRAGMENTS + 2) and "G3" in frag.guideline
    assert "G3" not in by_name(audit, "1.a.0").guideline
    assert "G4" in by_name(audit, "1.a.1").guideline and "G4" not in by_name(audit, "5").guideline


def test_parts_add_up_to_the_whole(audit):
    assert sum(l.time_share for l in audit.layers) == pytest.approx(1.0)
    assert sum(l.flops_share for l in audit.layers) == pytest.approx(1.0)
    fw = by_name(audit, FRAMEWORK)
    assert fw.time_ms >= 0 and audit.whole_ms > 0 and audit.ops_ms > 0
    assert audit.adds_up == (audit.ops_ms / audit.whole_ms - 1 <= TOLERANCE)
    # the framework row is what the whole has beyond the layers' op time (never negative), so the rows sum
    # to the whole, or to the op time where profiling measured a little more than the whole (within TOLERANCE)
    assert sum(l.time_ms for l in audit.layers) == pytest.approx(max(audit.whole_ms, audit.ops_ms))
    excess = [l.excess_ms for l in audit.ranking(100)]
    assert excess == sorted(excess, reverse=True)
    assert sum(l.excess_ms for l in audit.layers) == pytest.approx(0.0, abs=1e-9)


def test_roofline_columns_use_the_ceilings(audit):
    conv = by_name(audit, "1.a.0")
    expected = 1e3 * max(2 * conv.mult_adds / 1e10, conv.mac_bytes / 1e10)
    assert conv.bound_ms == pytest.approx(expected) and conv.above_bound_ms == pytest.approx(conv.time_ms - expected)


def test_markdown_csv_and_figure(audit, tmp_path):
    rows = pd.read_csv(io.StringIO(audit_csv(audit)))
    assert list(rows.columns) == list(CSV_COLUMNS) and len(rows) == len(audit.layers)
    md = audit_markdown(audit)
    assert "Parts add up to the whole within the 10% tolerance" in md and "| G1 |" in md and "| G4 |" in md
    md_path, csv_path, fig = write_audit(audit, tmp_path)
    assert fig.read_bytes()[:4] == b"\x89PNG" and csv_path.exists() and "figures/" in md_path.read_text()


def test_cli_audit_of_a_builtin_network(tmp_path):
    r = CliRunner().invoke(app, ["audit", "squeezenet", "--input", "3x32x32", "--rounds", "1", "--out", str(tmp_path),
                                 "-q"])
    assert r.exit_code == 0, r.output
    assert {p.name for p in tmp_path.iterdir()} == {"audit-squeezenet.md", "audit-squeezenet.csv", "figures"}


@pytest.mark.parametrize("args, says", [
    (["nonet"], "neither a built-in network"),
    (["squeezenet", "--kwargs", "{x"], "not JSON"),
    (["squeezenet", "--dtype", "float8"], "unknown dtype"),
])
def test_cli_audit_bad_input_is_one_line_and_exit_2(tmp_path, args, says):
    r = CliRunner().invoke(app, ["audit", *args, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and says in r.output and len(r.output.strip().splitlines()) == 1, r.output
