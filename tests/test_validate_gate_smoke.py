"""benchmarks/validate_gate.py: structure and arithmetic on tiny settings (no figures asserted: the
machine is shared; only that every gate decided and the summary adds up)."""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks import validate_gate as vg


def test_levels_are_real_code_changes():
    assert [vg.layers_for(p, 20) for p in (0, 5, 10, 20)] == [20, 21, 22, 24]


def test_summary_counts_slower_and_fail_closed_separately():
    ds = [{"method": "ab", "level_pct": 0, "status": "same", "passed": True, "wall_s": 1.0, "ratio": 0.99,
           "ci": [0.98, 1.01], "load_before": 1.0, "load_after": 1.5},
          {"method": "ab", "level_pct": 0, "status": "inconclusive", "passed": False, "wall_s": 3.0, "ratio": 1.01,
           "ci": [1.005, 1.02]},
          {"method": "asv", "level_pct": 20, "status": "slower", "wall_s": 2.0}]
    s = vg.summarize(ds)
    assert [(x["method"], x["level_pct"], x["slower"], x["passed"], x["gate_failed"], x["median_wall_s"])
            for x in s] == [("ab", 0, 0, 1, 1, 2.0), ("asv", 20, 1, 0, 1, 2.0)]
    assert s[0]["median_ratio"] == 1.0 and (s[0]["ci_holds_1"], s[0]["cis"]) == (1, 2) and s[0]["load"] == [1.0, 1.5]
    assert "| conv | ab | A/A (false alarms) | 2 | 0 | 1 | 1 | " in vg.markdown(s)


def test_the_mixed_network_is_a_real_module_with_depthwise_pointwise_and_elementwise_ops(tmp_path):
    import importlib.util

    vg.write_code(tmp_path, 3, "mixed")
    spec = importlib.util.spec_from_file_location("net", tmp_path / "gatepkg" / "net.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import torch

    net = mod.make(8)
    assert len(net) == 3 and net[0].depthwise.groups == 32 and net(torch.zeros(1, 8, 6, 6)).shape == (1, 8, 6, 6)


def _in_process(args, cwd):
    """vg._latbench without a new process (each would import torch again): the CLI in this process,
    from `cwd`, with the side's module forgotten first so that each side imports its own code."""
    from typer.testing import CliRunner

    from latbench.cli import app

    for k in [k for k in sys.modules if k.split(".")[0] == "gatepkg"]:
        del sys.modules[k]
    before = os.getcwd()
    os.chdir(cwd)
    try:
        r = CliRunner().invoke(app, [str(a) for a in args], env={"LATBENCH_FAKE_BACKEND": "1"})
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)


def test_every_gate_decides_on_a_tiny_run(tmp_path, monkeypatch):
    monkeypatch.setattr(vg, "_latbench", _in_process)
    opts = vg.parse_args(["--trials", "1", "--levels", "20", "--max-time", "0.2", "--runs-per-side", "1",
                          "--layers", "4", "--channels", "8", "--size", "12", "--workdir", str(tmp_path),
                          "--run-max-time", "0.2"])
    res = vg.validate(opts)
    got = {d["method"]: d for d in res["decisions"]}
    assert set(got) == {"ab", "multi", "asv"}
    assert all(d["status"] != "error" and d["wall_s"] > 0 and d["layers"] == [4, 5] for d in got.values()), got
    assert (tmp_path / "code-conv-20pct" / "gatepkg" / "net.py").read_text().count("LAYERS = 5") == 1
