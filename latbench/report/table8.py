"""The report's Table 8 section: measured speed of the whole networks (suites/networks.yaml, experiment
`table8`) beside the paper's (latbench/data/shufflenetv2_table8.csv), per complexity group. Which cost
predicts the networks' latency is ranked with the other predictors in report/predictors.py.

Measured speed within a group is relative to the group's ShuffleNet v2 (ratio of median latencies,
pooled as the median over runs); the paper's is the same ratio of its throughputs. Only ranks and
ratios can transfer: the paper timed a Snapdragon 810 core (ARM) and a GTX 1080Ti at batch 8.
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any

import pandas as pd

EXPERIMENT = "table8"
GROUPS = ("40", "140", "300", "500")


def paper_table8() -> pd.DataFrame:
    """All rows of Table 8 as packaged (the paper's speeds; '-' read as missing)."""
    with resources.files("latbench").joinpath("data/shufflenetv2_table8.csv").open(encoding="utf-8") as f:
        df = pd.read_csv(f, na_values=["-"])
    return df


def _n(v: Any, fmt: str) -> str:
    try:
        return "-" if v is None or not math.isfinite(float(v)) else format(float(v), fmt)
    except (TypeError, ValueError):
        return "-"


def section(rows: pd.DataFrame) -> str | None:
    """Markdown for the table8 rows of a report (None when there are none)."""
    t8 = rows[(rows["experiment"] == EXPERIMENT) & (rows["status"] == "ok")]
    if t8.empty:
        return None
    paper = paper_table8()
    paper = paper[paper["latbench_case"].notna() & paper["complexity_group"].astype(str).isin(GROUPS)]
    parts = ["## Table 8 beside the paper",
             "Measured: median latency per case (median over runs), and speed relative to the group's "
             "ShuffleNet v2 (its latency / the case's; > 1 = faster than ShuffleNet v2). Paper: Snapdragon 810 "
             "images/s (batch 1) and GTX 1080Ti batches/s (batch 8), as ratios to the group's ShuffleNet v2. "
             "Rows of the paper that share a case (1.0/1.4 MobileNet v2 and their 'our impl.' rows) use the "
             "first printed row. Only ranks and ratios transfer across hardware."]
    for (label, mode, batch), g in t8.groupby(["device_label", "mode", "batch"], sort=True):
        lat = g.groupby("case")[["latency_ms", "mult_adds", "mac_bytes", "activations", "flops"]].median()
        for group in GROUPS:
            p = paper[paper["complexity_group"].astype(str) == group].drop_duplicates("latbench_case")
            p = p[p["latbench_case"].isin(lat.index)]
            if p.empty:
                continue
            ref = p[p["latbench_case"].str.startswith("shufflenet_v2")]
            ref_case = ref["latbench_case"].iloc[0] if not ref.empty else p["latbench_case"].iloc[0]
            ref_p = p[p["latbench_case"] == ref_case].iloc[0]
            table = ["| paper row | case | M mult-adds | latency ms | measured speed | paper ARM img/s | "
                     "paper ARM speed | paper GPU batch/s | paper GPU speed |",
                     "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
            order = []
            for _, r in p.iterrows():
                case = r["latbench_case"]
                speed = lat.loc[ref_case, "latency_ms"] / lat.loc[case, "latency_ms"]
                order.append((speed, case))
                table.append(f"| {r['model']} | `{case}` | {_n(lat.loc[case, 'mult_adds'] / 1e6, '.1f')} | "
                             f"{_n(lat.loc[case, 'latency_ms'], '.3f')} | {_n(speed, '.2f')} | "
                             f"{_n(r['arm_images_per_s'], '.1f')} | "
                             f"{_n(r['arm_images_per_s'] / ref_p['arm_images_per_s'], '.2f')} | "
                             f"{_n(r['gpu_batches_per_s'], '.0f')} | "
                             f"{_n(r['gpu_batches_per_s'] / ref_p['gpu_batches_per_s'], '.2f')} |")
            fastest = max(order)[1]
            arm_best = p.loc[p["arm_images_per_s"].idxmax(), "latbench_case"] if p["arm_images_per_s"].notna().any() else "-"
            gpu_best = p.loc[p["gpu_batches_per_s"].idxmax(), "latbench_case"] if p["gpu_batches_per_s"].notna().any() else "-"
            parts += [f"### ~{group} MFLOPs, {label} ({mode}, batch {batch})", "\n".join(table),
                      f"Fastest here: `{fastest}`; the paper's fastest on ARM: `{arm_best}`, on GPU: `{gpu_best}`."]
    return "\n\n".join(parts)
