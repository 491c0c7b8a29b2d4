"""Issue 26: what `latbench run --on ray` costs and gains. The same suite run locally (worker processes,
no Ray), then on a local Ray cluster with one node, then with two nodes (custom resource latbench_slot
= 1 each, started on this machine with ray.cluster_utils, the driver being this process).

Reported, per repetition and as medians:
  local_s            wall time of the local run (groups one after another in worker processes)
  ray1_s, ray2_s     wall time on a 1-node and a 2-node cluster (groups as Ray tasks)
  overhead_per_group (ray1_s - local_s) / groups: what Ray adds per group with the same single machine
                     doing the measuring (dispatch, the node's task plumbing, the result sent back, saved)
  driver_gap_per_group (ray1_s - sum of the groups' task durations on the node) / groups: the time the
                     node was idle between groups (scheduling, transfer, saving), from the run's placement
  speedup            ray1_s / ray2_s
  latency_shift_pct  median over cases of latency(2 nodes) / latency(1 node) - 1: how much two nodes
                     measuring at once on one machine disturb each other (nodes on separate machines: ~0)

Every run measures each group for a fixed time (--max-time), so two nodes sharing one machine's cores
finish about twice as fast even when they slow each other's calls down: the speed-up is the scheduling's,
and latency_shift_pct says what sharing the cores did to the numbers. Warm-up runs (Ray worker start,
torch imports, the forkservers) come before the timed ones and are not counted.

Run from the repository root (needs Ray: pip install -e '.[ray]'):
    python benchmarks/fleet_overhead.py --groups 8 --reps 3 --out fleet.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_json  # noqa: E402

SUITE = """\
suite: fleet
experiment: F
description: small group convs, one group per scale
builder: g2_group_conv
input: {{height: 16, width: 16}}
blocks: 2
batch: 1
scales: {scales}
widths: paper
cases:
  - name: g=1
    params: {{groups: 1}}
    widths: {{gpu: {{c: 16}}, arm: {{c: 16}}}}
  - name: g=2
    params: {{groups: 2}}
    widths: {{gpu: {{c: 16}}, arm: {{c: 16}}}}
"""


def one_run(suite: Path, out: Path, on: str | None, args: argparse.Namespace) -> tuple[float, Any]:
    from latbench.run import RunOptions, run

    opts = RunOptions(suites=(suite,), max_time=args.max_time, repeats=1, roofline=False, fake_backend=args.fake,
                      results_dir=out, on=on)
    t0 = time.perf_counter()
    result = run(opts).suites[0]
    return time.perf_counter() - t0, result


def task_seconds(result: Any) -> float:
    groups = result.metadata.get("placement", {}).get("groups", {}).values()
    return sum(g["ended"] - g["started"] for g in groups if "ended" in g)


def latencies(result: Any) -> dict[tuple[Any, ...], float]:
    return {(r["scale"], r["case"]): float(r["latency_ms"]) for r in result.rows if r["status"] == "ok"}


def shift_pct(a: dict[tuple[Any, ...], float], b: dict[tuple[Any, ...], float]) -> float:
    common = sorted(set(a) & set(b))
    return 100 * (statistics.median(b[k] / a[k] for k in common) - 1) if common else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--groups", type=int, default=8, help="groups in the suite (8)")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions of each configuration (3)")
    p.add_argument("--max-time", type=float, default=0.2, help="--max-time of every run (0.2 s per case)")
    p.add_argument("--fake", action="store_true", help="the fake timing backend (tests); default: the real CPU one")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray.cluster_utils import Cluster

    tmp = Path(tempfile.mkdtemp(prefix="latbench-fleet-"))
    suite = tmp / "fleet.yaml"
    suite.write_text(SUITE.format(scales=list(range(1, args.groups + 1))))
    load_before = os.getloadavg()
    node = {"num_cpus": 1, "resources": {"latbench_slot": 1}, "object_store_memory": 80 * 2**20}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    ray.init(address=cluster.address, log_to_driver=False, namespace="latbench")
    reps: list[dict[str, Any]] = []
    try:
        one_run(suite, tmp / "warm", None, args)  # forkserver, torch: warm before anything is timed
        one_run(suite, tmp / "warm", "ray", args)  # the head's Ray worker and its forkserver
        single = []
        for i in range(args.reps):  # local and 1 node alternate, so drift hits both
            t_local, local = one_run(suite, tmp / f"local{i}", None, args)
            t_ray1, ray1 = one_run(suite, tmp / f"ray1-{i}", "ray", args)
            single.append((t_local, local, t_ray1, ray1))
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        one_run(suite, tmp / "warm2", "ray", args)  # the second node's worker
        for i, (t_local, local, t_ray1, ray1) in enumerate(single):
            t_ray2, ray2 = one_run(suite, tmp / f"ray2-{i}", "ray", args)
            nodes = {g.get("node") for g in ray2.metadata["placement"]["groups"].values()}
            reps.append({"local_s": t_local, "ray1_s": t_ray1, "ray2_s": t_ray2, "nodes_used_2": len(nodes),
                         "overhead_per_group_s": (t_ray1 - t_local) / args.groups,
                         "driver_gap_per_group_s": (t_ray1 - task_seconds(ray1)) / args.groups,
                         "speedup": t_ray1 / t_ray2, "latency_shift_pct": shift_pct(latencies(ray1), latencies(ray2)),
                         "latency_shift_local_vs_ray1_pct": shift_pct(latencies(local), latencies(ray1))})
    finally:
        ray.shutdown()
        cluster.shutdown()
    keys = [k for k in reps[0] if k != "nodes_used_2"]
    summary = {k: statistics.median(r[k] for r in reps) for k in keys}
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPUs, load {load_before[0]:.2f}",
              "command": " ".join(["python", *sys.argv]), "groups": args.groups, "max_time": args.max_time,
              "fake": args.fake, "ray": ray.__version__, "reps": reps, "median": summary,
              "load_after": os.getloadavg()[0]}
    print(f"| figure | median of {len(reps)} | per repetition |\n|---|---:|---|")
    for k in keys:
        print(f"| {k} | {summary[k]:.3f} | {', '.join(f'{r[k]:.3f}' for r in reps)} |")
    print(f"\n{args.groups} groups, --max-time {args.max_time}, {'fake' if args.fake else 'cpu'} backend, "
          f"ray {ray.__version__}, load average {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} CPUs", file=sys.stderr)
    if args.out:
        write_json(args.out, report)


if __name__ == "__main__":
    main()
