"""The report's Table 8 section: measured speed beside the paper's per complexity group."""

from __future__ import annotations

import pandas as pd

from latbench.report.table8 import paper_table8, section


def rows(latency: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"experiment": "table8", "status": "ok", "device_label": "cpu: X, 1 thread(s)",
                          "mode": "eager", "batch": 1, "case": c, "latency_ms": v, "mult_adds": 40e6,
                          "mac_bytes": 1e6 * v, "activations": 2e6 * v, "flops": 80e6 + i}
                         for i, (c, v) in enumerate(latency.items())])


def test_the_packaged_table_names_a_case_for_every_group_row():
    t = paper_table8()
    groups = t[t["complexity_group"].astype(str).isin(["40", "140", "300", "500"])]
    assert len(groups) > 20 and groups["latbench_case"].str.len().gt(0).sum() >= 28


def test_measured_speed_is_relative_to_the_groups_shufflenet_v2():
    text = section(rows({"shufflenet_v2-0.5x": 10.0, "mobilenet_v1-0.25": 5.0, "xception-0.5x": 20.0}))
    line = next(l for l in text.splitlines() if "`mobilenet_v1-0.25`" in l)
    cells = [c.strip() for c in line.split("|")]
    assert cells[4] == "5.000" and cells[5] == "2.00"  # latency, and 10 / 5 faster than ShuffleNet v2
    assert cells[7] == f"{36.4 / 57.0:.2f}"  # the paper's ARM speed against its ShuffleNet v2 0.5x
    assert "Fastest here: `mobilenet_v1-0.25`; the paper's fastest on ARM: `shufflenet_v2-0.5x`" in text
    assert "Spearman" not in text  # which cost ranks latency: the report's one table (tests/test_predictors.py)


def test_no_table8_rows_no_section():
    assert section(rows({"a": 1.0}).assign(experiment="G1")) is None
