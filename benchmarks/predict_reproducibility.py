"""How far the two sides of a latency prediction move between runs of benchmarks/predict_validation.py on
the same machine: each network's sum of blocks and its whole measurement, run B over run A.

A prediction cannot be closer to a measurement than the measurements are to themselves: if a network's
blocks sum to 10 % more in one run than in another, no calibration fitted on other networks can put
both runs within ±10 %.

    python benchmarks/predict_reproducibility.py A.json B.json [--md OUT.md]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def compare(a: dict, b: dict) -> dict:
    pa = {p["network"]: p for p in a["per_network"]}
    pb = {p["network"]: p for p in b["per_network"]}
    common = [k for k in pa if k in pb]
    rows = [{"network": k, "blocks_ratio": pb[k]["blocks_sum_ms"] / pa[k]["blocks_sum_ms"],
             "whole_ratio": pb[k]["measured_ms"] / pa[k]["measured_ms"]} for k in common]
    out = {"a": a["date"], "b": b["date"], "networks": len(rows), "rows": rows}
    for side in ("blocks_ratio", "whole_ratio"):
        dev = np.array([abs(math.log(r[side])) for r in rows])
        out[side] = {"median_abs_pct": float(np.expm1(np.median(dev)) * 100),
                     "max_abs_pct": float(np.expm1(dev.max()) * 100),
                     "over_5_pct": int((dev > math.log(1.05)).sum()), "over_10_pct": int((dev > math.log(1.10)).sum())}
    # the prediction's own error moves with the ratio of the two: whole / blocks, run B over run A
    dev = np.array([abs(math.log(r["whole_ratio"] / r["blocks_ratio"])) for r in rows])
    out["measured_over_blocks"] = {"median_abs_pct": float(np.expm1(np.median(dev)) * 100),
                                   "over_10_pct": int((dev > math.log(1.10)).sum())}
    return out


def markdown(r: dict, names: tuple[str, str]) -> str:
    lines = [f"# Run to run: {names[0]} ({r['a']}) against {names[1]} ({r['b']})", "",
             f"{r['networks']} networks in both. Each side, run B over run A:", "",
             "| side | median move | largest | networks moved > 5 % | > 10 % |", "|---|---:|---:|---:|---:|"]
    for side, label in (("blocks_ratio", "sum of blocks"), ("whole_ratio", "whole network")):
        s = r[side]
        lines.append(f"| {label} | {s['median_abs_pct']:.1f} % | {s['max_abs_pct']:.1f} % | {s['over_5_pct']} | "
                     f"{s['over_10_pct']} |")
    m = r["measured_over_blocks"]
    lines += ["", f"Measured / sum of blocks (what the calibration must carry from one network to another) moved by "
              f"{m['median_abs_pct']:.1f} % (median), by more than 10 % for {m['over_10_pct']} of {r['networks']}.", "",
              "| network | blocks B/A | whole B/A |", "|---|---:|---:|"]
    for row in sorted(r["rows"], key=lambda x: -abs(math.log(x["blocks_ratio"]))):
        lines.append(f"| {row['network']} | {row['blocks_ratio']:.3f} | {row['whole_ratio']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    r = compare(json.loads(args.a.read_text()), json.loads(args.b.read_text()))
    text = markdown(r, (args.a.name, args.b.name))
    if args.md:
        args.md.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
