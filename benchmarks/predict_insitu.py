"""Which blocks run slower inside a network than alone, and why (issue 25's "measured limit").

For each network, in one process per memory-allocator setting (glibc's defaults, and freed memory kept:
MALLOC_MMAP_THRESHOLD_=32 MiB, MALLOC_TRIM_THRESHOLD_=1e11):
- the whole forward pass (median of 30 after 5 warm-up);
- every aten op timed inside the network (a dispatch mode around each op, median of 20 passes), summed
  per block kind: *in situ*;
- every distinct block replayed alone on random tensors (BlockModule, the way `lut build` measures it),
  timed the same way: *alone*; for max-pool blocks also on the network's own tensors (what `lut build`
  does now, blocks.DATA_DEPENDENT).

    taskset -c 0 python benchmarks/predict_insitu.py            # ~4 min; --md/--json to docs/benchmarks
The dispatch mode adds a few microseconds per op to both sides alike; its totals are for comparing
in situ with alone, not a network's latency (the `whole` column is that).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import json_safe  # noqa: E402

ALLOCATORS = {"glibc defaults": {}, "freed memory kept": {"MALLOC_MMAP_THRESHOLD_": "33554432",
                                                           "MALLOC_TRIM_THRESHOLD_": "100000000000"}}
NETWORKS = ("mobilenet_v2", "shufflenet_v2", "squeezenet", "googlenet")


def child(names: list[str]) -> dict[str, Any]:
    """In this process (one allocator setting): whole, in-situ and alone per kind for each network."""
    import statistics as st
    from collections import defaultdict

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from latbench.predict.blocks import BlockModule
    from latbench.predict.measure import network_blocks
    from latbench.predict.networks import resolve

    torch.set_num_threads(1)

    class Timer(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.t: list[float] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            t0 = time.perf_counter()
            out = func(*args, **(kwargs or {}))
            self.t.append(time.perf_counter() - t0)
            return out

    def per_op(f: Any, reps: int) -> list[float]:
        runs = []
        for _ in range(reps):
            m = Timer()
            with m:
                f()
            runs.append(m.t)
        return [st.median(r[i] for r in runs) for i in range(len(runs[0]))]

    def plain(f: Any, reps: int) -> float:
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        return st.median(ts)

    out: dict[str, Any] = {}
    for name in names:
        net = resolve([name])[0]
        blocks = network_blocks(net)
        model, x = net.build("cpu")
        with torch.inference_mode():
            for _ in range(5):
                model(x)
            whole = plain(lambda: model(x), 30)
            ops = per_op(lambda: model(x), 20)
            insitu: dict[str, float] = defaultdict(float)
            alone: dict[str, float] = defaultdict(float)
            own: dict[str, float] = defaultdict(float)
            cache: dict[str, tuple[float, float]] = {}
            for b in blocks:
                insitu[b.kind] += sum(ops[i] for i in b.ops)
                key = json.dumps(b.desc, sort_keys=True)
                if key not in cache:
                    timed = []
                    for desc in ({k: v for k, v in b.desc.items() if k != "data"}, b.desc):
                        bm = BlockModule(desc)
                        for _ in range(3):
                            bm(x)
                        timed.append(sum(per_op(lambda: bm(x), 15)))
                    cache[key] = (timed[0], timed[1])
                alone[b.kind] += cache[key][0]
                own[b.kind] += cache[key][1]
        out[name] = {"whole_ms": whole * 1e3, "in_situ_ms": {k: v * 1e3 for k, v in insitu.items()},
                     "alone_ms": {k: v * 1e3 for k, v in alone.items()},
                     "alone_own_data_ms": {k: v * 1e3 for k, v in own.items()}}
    return out


def markdown(r: dict[str, Any]) -> str:
    lines = [f"# In situ against alone, per block kind ({r['date']})", "",
             f"Machine: {r['cpu']}, torch {r['torch']}, 1 thread, batch 1, CPU; `{r['command']}`"
             f"{' pinned to CPU ' + ','.join(map(str, r['cpus'])) if len(r['cpus']) < (os.cpu_count() or 0) else ''}; "
             f"{r['elapsed_s'] / 60:.1f} min. Per-op times under a dispatch mode (medians); `alone` on random "
             "tensors, `own data` on the network's own tensors (differs for max pools only).", "",
             "| allocator | network | whole ms | kind | alone ms | own data ms | in situ ms | in situ / alone |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    for alloc, nets in r["results"].items():
        for name, v in nets.items():
            kinds = sorted(v["alone_ms"], key=lambda k: -v["alone_ms"][k])
            tot_a, tot_o, tot_i = (sum(v[f].values()) for f in ("alone_ms", "alone_own_data_ms", "in_situ_ms"))
            lines.append(f"| {alloc} | {name} | {v['whole_ms']:.2f} | **all** | {tot_a:.2f} | {tot_o:.2f} | {tot_i:.2f} | "
                         f"{tot_i / tot_a:.2f} |")
            for k in kinds:
                a, o, i = v["alone_ms"][k], v["alone_own_data_ms"][k], v["in_situ_ms"][k]
                if a >= 0.02 * tot_a:
                    lines.append(f"| | | | {k} | {a:.2f} | {o:.2f} | {i:.2f} | {i / a:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--networks", default=",".join(NETWORKS))
    ap.add_argument("--md", type=Path, default=ROOT / "docs" / "benchmarks" / "predict_insitu.md")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "benchmarks" / "predict_insitu.json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    names = args.networks.split(",")
    if args.child:
        print(json.dumps(child(names)))
        return
    started = time.time()
    results = {}
    for label, env in ALLOCATORS.items():
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        r = subprocess.run([sys.executable, __file__, "--child", "--networks", args.networks], env=clean | env,
                           capture_output=True, text=True, check=True)
        results[label] = json.loads(r.stdout.strip().splitlines()[-1])
    import torch

    from latbench.env import cpu_model

    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_model(), "torch": torch.__version__,
              "command": " ".join(["python", "benchmarks/predict_insitu.py"] + sys.argv[1:]),
              "cpus": sorted(os.sched_getaffinity(0)), "allocators": ALLOCATORS, "results": results,
              "elapsed_s": time.time() - started}
    args.json.write_text(json.dumps(json_safe(report), indent=1) + "\n")
    args.md.write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
