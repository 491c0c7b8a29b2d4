"""Issue 24: `latbench audit` profiles layers with torch's profiler, whose kineto backend printed a
'USDT: ... profiler_start' / 'profiler_stop' line to stderr per profiled round; the audit silences it."""

from __future__ import annotations

import subprocess
from pathlib import Path
import sys

import pytest

CODE = """
import torch
from latbench import audit
m = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU()).eval()
x = torch.randn(1, 4, 8, 8)
a = audit.audit_network(m, x, "tiny", rounds=2, ceilings=None)
print("layers", len(a.layers))
"""


@pytest.mark.slow
def test_audit_prints_no_profiler_lines(tmp_path):
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LATBENCH_CACHE": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "layers" in r.stdout
    assert "USDT" not in r.stderr and "profiler_start" not in r.stderr, r.stderr[-2000:]


@pytest.mark.slow
def test_run_profile_prints_no_profiler_lines(tmp_path):
    """`run --profile` (benchmarks/reproduce.sh) printed the same lines, one pair per profiled group."""
    r = subprocess.run([sys.executable, "-m", "latbench", "run", "g4", "--quick", "--profile", "--no-roofline", "-q",
                        "--results-dir", str(tmp_path / "res")], capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LATBENCH_CACHE": str(tmp_path),
                            "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "USDT" not in r.stderr and "profiler_start" not in r.stderr, r.stderr[-2000:]
