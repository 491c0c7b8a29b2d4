"""Validation of latency prediction from measured blocks (issue 25), predicted against measured.

Every built-in network (`latbench list`) and every Table 8 case of suites/networks.yaml, at batch 1,
1 thread, CPU:

1. `latbench lut build` of every network's fusion-aware blocks from scratch (timed), then the extra
   per-operator blocks of the sum-of-operators baseline (`--no-fuse --resume`, timed);
2. `latbench run networks --model ...`: every network measured whole, interleaved (the run wing);
3. in this process: each network's sum of blocks, calibrated on the Table 8 cases (the calibration
   split), predicted for all; the built-in networks outside Table 8 (other families: GoogLeNet,
   SqueezeNet, ResNeXt, EfficientNet, MixNet, GhostNets, VarGNet) are the held-out split, used neither
   to choose the method nor to calibrate it; and leave-one-out over all networks;
4. error per network, share within +-5 / +-10 %, interval coverage, Spearman (bootstrap CI,
   stats.rank_correlation) of predicted vs measured, and the same for the sum of operators, FLOPs, MAC
   and activations as predictors (each scaled by one factor fitted on the calibration split);
5. the interpolation error, separately: each network predicted with the blocks only it uses removed from
   the table (fitted from the other blocks instead), and each block's leave-one-out fit error by kind;
6. the time of a prediction from a warm table (the Python API in a warm process, and the CLI).

    python benchmarks/predict_validation.py                          # ~15 min on one core
    python benchmarks/predict_validation.py --networks mobilenet_v1,squeezenet --block-max-time 0.05  # smoke
Writes --md and --json (docs/benchmarks/predict_validation.{md,json}) and keeps the table and run files
under --work (results/predict-validation).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import json_safe  # noqa: E402
from benchmarks.heldout_networks import FRESH, FRESH2, FRESH3  # noqa: E402

LATER = ("fresh2", "fresh3")  # the later fresh sets: each committed before it was measured, after the one before was seen


def sh(cmd: list[str]) -> float:
    """Run a latbench command (its output on stderr); its wall seconds. Exit 2 stops the benchmark."""
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=sys.stderr)
    if r.returncode not in (0, 1):
        sys.exit(f"{cmd[0]} {cmd[1]} exited {r.returncode}")
    return time.perf_counter() - t0


FRESH_MODULE = "benchmarks.heldout_networks"
FRESH_INPUT = "3x224x224"


def fresh_networks(names: list[str]) -> list[Any]:
    """The fresh held-out networks (benchmarks/heldout_networks.py) as `module:factory` networks."""
    from latbench.predict.networks import resolve

    return resolve([f"{FRESH_MODULE}:{n}" for n in names], input=FRESH_INPUT) if names else []


def networks(only: list[str] | None) -> tuple[list[Any], dict[str, str]]:
    """The networks (built-in defaults that are not a Table 8 case, then Table 8), and the aliases dropped."""
    from latbench.models import get_builder
    from latbench.models.networks import NETWORKS
    from latbench.predict.networks import resolve

    nets = resolve(["networks"]) + resolve(sorted(NETWORKS))
    seen: dict[str, str] = {}
    out, aliases = [], {}
    for n in nets:
        p = get_builder(n.spec.builder).params.model_validate(n.spec.param_dict).model_dump()
        key = json.dumps([n.spec.builder, p], sort_keys=True)
        if key in seen:
            aliases[n.name] = seen[key]
            continue
        seen[key] = n.name
        out.append(n)
    if only:
        out = [n for n in out if n.name in only]
    return out, aliases


def measured_whole(results_dir: Path, ci: dict[str, tuple[float, float]] | None = None) -> dict[str, float]:
    """{network: median ms} of the whole-network runs (and each one's 95 % CI into `ci`)."""
    from latbench.results.read import read_results

    out = {}
    for csv in sorted(results_dir.glob("*.csv")):
        if csv.name.endswith("-samples.csv"):
            continue
        rows = read_results(csv)
        for _, r in rows[rows["status"] == "ok"].iterrows():
            out[str(r["case"])] = float(r["latency_ms"])
            if ci is not None:
                ci[str(r["case"])] = (float(r["latency_ci_low_ms"]), float(r["latency_ci_high_ms"]))
    return out


def summary(err: dict[str, float], covered: dict[str, bool] | None = None) -> dict[str, Any]:
    e = np.array([abs(v) for v in err.values()])
    if e.size == 0:
        return {"n": 0}
    out = {"n": int(e.size), "median_abs_err_pct": float(np.median(e) * 100), "max_abs_err_pct": float(e.max() * 100),
           "within_5_pct": float(np.mean(e <= 0.05)), "within_10_pct": float(np.mean(e <= 0.10))}
    if covered is not None:
        out["coverage"] = float(np.mean([covered[k] for k in err]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "results" / "predict-validation")
    ap.add_argument("--block-max-time", type=float, default=0.05, help="latbench lut build --max-time (0.05 s)")
    ap.add_argument("--net-max-time", type=float, default=2.0, help="latbench run --max-time (2 s)")
    ap.add_argument("--repeats", type=int, default=3, help="latbench run --repeats (3)")
    ap.add_argument("--networks", help="comma-separated subset of the built-in networks (smoke tests)")
    for i, default in ((2, FRESH2), (3, FRESH3)):
        ap.add_argument(f"--fresh{i}", default=",".join(default),
                        help=f"comma-separated networks of benchmarks/heldout_networks.py's set {i}, committed before any "
                             f"was measured (after set {i - 1} had been seen): split 'fresh {i}' ('' for none)")
    ap.add_argument("--fresh", default=",".join(FRESH),
                    help="comma-separated networks of benchmarks/heldout_networks.py judged as never seen ('' for none)")
    ap.add_argument("--reuse", type=Path, help="analyse the table and runs of an earlier --work/<time> folder again")
    ap.add_argument("--md", type=Path, default=ROOT / "docs" / "benchmarks" / "predict_validation.md")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "benchmarks" / "predict_validation.json")
    args = ap.parse_args()
    started, load_before = time.time(), os.getloadavg()
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    work = args.reuse or args.work / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    work.mkdir(parents=True, exist_ok=args.reuse is not None)
    nets, aliases = networks(args.networks.split(",") if args.networks else None)
    later = {k: fresh_networks([f for f in getattr(args, k).split(",") if f]) for k in LATER}
    fresh = fresh_networks([f for f in args.fresh.split(",") if f]) + [n for v in later.values() for n in v]
    table8 = {n.name for n in nets if n.source.suite.model.suite == "networks"}
    cli = [sys.executable, "-m", "latbench"]
    build_args = []  # how the CLI names them: the suite's cases by the suite, built-ins by name
    if any(n.name in table8 for n in nets):
        build_args.append("networks")
    build_args += [n.name for n in nets if n.name not in table8]
    if args.networks:  # a subset: built-in networks by name only (a Table 8 case is named by its suite)
        nets = [n for n in nets if n.name not in table8]
        build_args = [n.name for n in nets]
    nets += fresh
    names = [n.name for n in nets]
    table_path = work / "lut.json"
    if args.reuse:
        timing = json.loads((work / "timing.json").read_text())
        t_build, n_fused, t_ops, t_run = (timing[k] for k in ("build", "fused", "ops", "run"))
        measured_on = timing.get("cpus")  # the measurement's pinning (None: not recorded in older folders)
    else:
        t_build, n_fused, t_ops, t_run = measure_all(args, cli, build_args, nets, table8, table_path, work,
                                                     [n.name for n in fresh])
        measured_on = sorted(os.sched_getaffinity(0))
        (work / "timing.json").write_text(json.dumps({"build": t_build, "fused": n_fused, "ops": t_ops, "run": t_run,
                                                      "cpus": measured_on}))
    measured_ci: dict[str, tuple[float, float]] = {}
    measured = measured_whole(work / "runs", measured_ci)
    for n in nets:  # the one-group suite's case names back to the networks' names (older work folders: as they are)
        if case_name(n.name) in measured and n.name not in measured:
            measured[n.name] = measured.pop(case_name(n.name))
            measured_ci[n.name] = measured_ci.pop(case_name(n.name))
    report = analyse(nets, table8, measured, table_path, {n.name for n in fresh},
                     {k: {n.name for n in v} for k, v in later.items()})
    for p in report["per_network"]:  # how well the measurement itself is known
        lo, hi = measured_ci.get(p["network"], (math.nan, math.nan))
        p["measured_ci_ms"] = [lo, hi]
        p["measured_ci_halfwidth_pct"] = (hi - lo) / 2 / p["measured_ms"] * 100
    report.update(date=date, command=" ".join(["python", "benchmarks/predict_validation.py"] + sys.argv[1:]),
                  aliases=aliases, networks=names, calibration_split=sorted(table8 & set(names)),
                  held_out_split=sorted(set(names) - table8 - {n.name for n in fresh}),
                  fresh_split=[n.name for n in fresh if n.name in measured and all(n not in v for v in later.values())],
                  **{f"{k}_split": [n.name for n in v if n.name in measured] for k, v in later.items()},
                  timing={"lut_build_fused_s": t_build, "fused_blocks": n_fused, "lut_build_extra_operators_s": t_ops,
                          "blocks_total": len(json.loads(table_path.read_text())["blocks"]), "whole_networks_run_s": t_run,
                          **warm_prediction(table_path, next(n for n in names if n not in table8))},
                  settings=vars(args) | {"work": str(work), "cpus": measured_on}, load_avg_before=load_before, load_avg_after=os.getloadavg(),
                  elapsed_s=time.time() - started)
    from latbench.env import fingerprint

    report["fingerprint"] = fingerprint()
    report["reference"] = reference_spread(table_path)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(json_safe(report), indent=1, default=str) + "\n")
    args.md.write_text(markdown(report))
    print(markdown(report))


def reference_spread(table_path: Path) -> dict[str, Any]:
    """The reference block over the table's groups (latbench/predict/measure.py): how much the machine moved
    while the table was built, which the blocks' ratios to it cancel."""
    ref = json.loads(table_path.read_text()).get("reference") or {}
    ms = np.array(ref.get("group_ms") or [], dtype=float)
    if ms.size == 0:
        return {"groups": 0}
    return {"label": ref.get("label"), "groups": int(ms.size), "median_ms": float(np.median(ms)),
            "p5_ms": float(np.percentile(ms, 5)), "p95_ms": float(np.percentile(ms, 95)),
            "min_ms": float(ms.min()), "max_ms": float(ms.max())}


def case_name(name: str) -> str:
    """A network's case in the one-group suite (a `module:factory` name is not a case name)."""
    return "fresh-" + name.rsplit(":", 1)[1] if ":" in name else name


def one_group_suite(nets: list[Any], path: Path) -> Path:
    """Every network as a case of one experiment: `latbench run` measures them all in the same interleaved
    rounds, so a slow spell of the machine reaches the calibration and the held-out networks alike (three
    runs one after another had the held-out networks measured in a 24 s window 7-22 % slower than 12 min
    earlier, while the calibration networks agreed within 3 %: 2026-12-05 23:07)."""
    import yaml

    cases = [{"name": case_name(n.name), "builder": n.spec.builder, "params": n.spec.param_dict} for n in nets]
    data = {"suite": "predict-validation", "experiment": "networks", "builder": cases[0]["builder"], "blocks": 1,
            "batch": 1, "input": {"height": 224, "width": 224}, "scales": [1], "widths": "paper",
            "description": "every network of benchmarks/predict_validation.py, measured in one group", "cases": cases}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def measure_all(args: Any, cli: list[str], build_args: list[str], nets: list[Any], table8: set[str],
                table_path: Path, work: Path, fresh: list[str]) -> tuple[float, int, float, float]:
    """The table built (timed), its per-operator blocks added (timed), the networks run whole in one group
    (timed). The fresh networks (`module:factory`, with --input) are built in the same commands as the rest:
    their blocks are measured in the same minutes against the same reference (a command of their own at the
    end of the build had their blocks 10-19 % slower in one of two runs: 2026-12-05 23:54)."""
    every = build_args + fresh
    shape = ["--input", FRESH_INPUT] if fresh else []
    t_build = sh(cli + ["lut", "build", *every, *shape, "-o", str(table_path), "--max-time", str(args.block_max_time), "-q"])
    n_fused = len(json.loads(table_path.read_text())["blocks"])
    t_ops = sh(cli + ["lut", "build", *every, *shape, "--resume", str(table_path), "--no-fuse", "--max-time",
                      str(args.block_max_time), "-q"])
    suite = one_group_suite(nets, work / "validation.yaml")
    t_run = sh(cli + ["run", str(suite), "--allow-import", "--device", "cpu", "--threads", "1", "--max-time",
                      str(args.net_max_time), "--repeats", str(args.repeats), "--no-roofline", "--results-dir",
                      str(work / "runs"), "-q"])
    return t_build, n_fused, t_ops, t_run


def analyse(nets: list[Any], table8: set[str], measured: dict[str, float], table_path: Path,
            fresh: set[str] = frozenset(), later: dict[str, set[str]] | None = None) -> dict[str, Any]:
    from latbench.predict.measure import network_blocks
    from latbench.predict.model import calibrate, fit_table, predict_blocks
    from latbench.predict.table import read_table
    from latbench.stats import rank_correlation

    table = read_table(table_path)
    ctx = table.context
    nets = [n for n in nets if n.name in measured]
    keyed = {n.name: [(b.key(ctx), b) for b in network_blocks(n)] for n in nets}
    ops = {n.name: [(b.key(ctx), b) for b in network_blocks(n, fuse=False)] for n in nets}
    raw = {k: predict_blocks(k, v, table, calibrated=False) for k, v in keyed.items()}
    ops_raw = {k: predict_blocks(k, v, table, calibrated=False).blocks_sum_ms for k, v in ops.items()}
    names = list(raw)
    calib = [k for k in names if k in table8] or names
    held = [k for k in names if k not in table8 and k not in fresh]
    later = later or {}
    new = [k for k in names if k in fresh and all(k not in v for v in later.values())]
    news = {s: [k for k in names if k in v] for s, v in later.items()}

    def obs(k: str) -> tuple[float, float, int, int]:  # what calibrate() takes
        return raw[k].blocks_sum_ms, measured[k], raw[k].block_uses, raw[k].weight_bytes

    def predictor(values: dict[str, float], fit_on: list[str]) -> float:  # one factor, geometric mean
        return math.exp(np.mean([math.log(measured[k] / values[k]) for k in fit_on]))

    table.calibration = calibrate({k: obs(k) for k in calib})
    pred = {k: predict_blocks(k, keyed[k], table) for k in names}
    err = {k: pred[k].latency_ms / measured[k] - 1 for k in names}
    cov = {k: pred[k].low_ms <= measured[k] <= pred[k].high_ms for k in names}
    # leave one out: calibrated on every other network
    loo_err, loo_cov = {}, {}
    for k in names:
        table.calibration = calibrate({o: obs(o) for o in names if o != k})
        p = predict_blocks(k, keyed[k], table)
        loo_err[k], loo_cov[k] = p.latency_ms / measured[k] - 1, p.low_ms <= measured[k] <= p.high_ms
    table.calibration = calibrate({k: obs(k) for k in calib})
    costs = {"flops": {k: raw[k].flops for k in names}, "mac_bytes": {k: raw[k].mac_bytes for k in names},
             "activations": {k: raw[k].activations for k in names}}
    predictors = {"blocks (fused)": {k: raw[k].blocks_sum_ms for k in names}, "sum of operators": ops_raw, **costs}
    table_rows = {}
    for label, values in predictors.items():
        f = predictor(values, calib)
        e = {k: values[k] * f / measured[k] - 1 for k in names}
        fl = {k: values[k] * predictor(values, [o for o in names if o != k]) / measured[k] - 1 for k in names}
        rc = rank_correlation([values[k] for k in names], [measured[k] for k in names],
                              against=[costs["flops"][k] for k in names])
        table_rows[label] = {"factor": f, "held_out": summary({k: e[k] for k in held}),
                             "fresh": summary({k: e[k] for k in new}),
                             **{s: summary({k: e[k] for k in v}) for s, v in news.items()},
                             "loo": summary(fl),
                             "spearman": rc.spearman, "spearman_ci": [rc.spearman_low, rc.spearman_high],
                             "kendall": rc.kendall, "minus_flops": rc.diff, "minus_flops_ci": [rc.diff_low, rc.diff_high]}
    split = {k: "calibration" if k in table8 else next((f"fresh {s[-1]}" for s, v in later.items() if k in v),
                                                        "fresh" if k in fresh else "held-out") for k in names}
    per = [{"network": k, "split": split[k], "measured_ms": measured[k],
            "predicted_ms": pred[k].latency_ms, "low_ms": pred[k].low_ms, "high_ms": pred[k].high_ms,
            "err_pct": err[k] * 100, "loo_err_pct": loo_err[k] * 100, "covered": cov[k], "loo_covered": loo_cov[k],
            "outside_calibration": pred[k].outside_calibration,
            "blocks_sum_ms": raw[k].blocks_sum_ms, "ops_sum_ms": ops_raw[k], "blocks": sum(b.uses for b in raw[k].blocks),
            "weight_mb": raw[k].weight_bytes / 1e6,
            "flops": raw[k].flops, "mac_bytes": raw[k].mac_bytes, "activations": raw[k].activations,
            "ratio_measured_to_blocks": measured[k] / raw[k].blocks_sum_ms,
            "kind_shares": kind_shares(raw[k])} for k in names]
    return {"calibration": table.calibration, "per_network": per, "predictors": table_rows,
            "prediction": {"held_out": summary({k: err[k] for k in held}, cov),
                           "fresh": summary({k: err[k] for k in new}, cov),
                           **{s: summary({k: err[k] for k in v}, cov) for s, v in news.items()},
                           "calibration_split": summary({k: err[k] for k in calib}, cov),
                           "loo_all": summary(loo_err, loo_cov),
                           **{f"not_calibrated_{w}": summary({k: err[k] for k in names if k not in calib
                                                              and pred[k].outside_calibration == (w == "outside")}, cov)
                              for w in ("inside", "outside")}},
            "interpolation": interpolation(table, keyed, names, measured, raw, fit_table),
            "interactions": interactions(per)}


def kind_shares(p: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for b in p.blocks:
        out[b.kind] = out.get(b.kind, 0.0) + b.total_ms / p.blocks_sum_ms
    return out


def interpolation(table: Any, keyed: dict, names: list[str], measured: dict, raw: dict, fit_table: Any) -> dict[str, Any]:
    """Networks predicted with the blocks only they use fitted instead of measured; blocks' LOO fit error."""
    from latbench.predict.model import _nnls, predict_blocks
    from latbench.predict.table import Table

    users: dict[str, set[str]] = {}
    for n in names:
        for key, _ in keyed[n]:
            users.setdefault(key, set()).add(n)
    per = {}
    for n in names:
        own = {key for key, _ in keyed[n] if users[key] == {n}}
        if not own:
            continue
        sub = Table(table.meta, {k: e for k, e in table.blocks.items() if k not in own}, table.calibration)
        p = predict_blocks(n, keyed[n], sub, fit_table(sub))
        full = raw[n].blocks_sum_ms
        per[n] = {"own_blocks": len(own), "fitted_share": p.fitted_share,
                  "change_vs_measured_blocks_pct": (p.blocks_sum_ms / full - 1) * 100,
                  "err_vs_measured_pct": (p.latency_ms / measured[n] - 1) * 100}
    by_kind: dict[str, list[float]] = {}
    entries = list(table.blocks.items())
    for kind in sorted({e["kind"] for _, e in entries}):
        mine = [e for _, e in entries if e["kind"] == kind]
        if len(mine) < 5:
            continue
        errs = []
        for i, e in enumerate(mine[:200]):  # at most 200 per kind: the fit is cheap but not free
            f = _nnls(mine[:i] + mine[i + 1:], kind)
            errs.append(abs(math.log(max(f(e["flops"], e["mac_bytes"]), 1e-9) / e["latency_ms"])))
        by_kind[kind] = {"n": len(mine), "median_abs_err_pct": float(np.expm1(np.median(errs)) * 100),
                         "p90_abs_err_pct": float(np.expm1(np.percentile(errs, 90)) * 100)}
    chg = [abs(v["change_vs_measured_blocks_pct"]) for v in per.values()]
    return {"networks": per, "median_abs_change_pct": float(np.median(chg)) if chg else None, "block_loo_by_kind": by_kind}


def interactions(per: list[dict[str, Any]]) -> dict[str, Any]:
    """What the misses have in common: the residual log(measured / blocks) against kind shares and size."""
    from latbench.stats import rank_correlation

    resid = [math.log(p["ratio_measured_to_blocks"]) for p in per]
    out = {}
    for kind in sorted({k for p in per for k in p["kind_shares"]}):
        rc = rank_correlation([p["kind_shares"].get(kind, 0.0) for p in per], resid)
        out[f"share of {kind}"] = {"spearman": rc.spearman, "ci": [rc.spearman_low, rc.spearman_high]}
    for what in ("measured_ms", "blocks"):
        rc = rank_correlation([p[what] for p in per], resid)
        out[what] = {"spearman": rc.spearman, "ci": [rc.spearman_low, rc.spearman_high]}
    rc = rank_correlation([p["blocks"] / p["measured_ms"] for p in per], resid)
    out["blocks per ms"] = {"spearman": rc.spearman, "ci": [rc.spearman_low, rc.spearman_high]}
    return out


def warm_prediction(table: Path, name: str) -> dict[str, float]:
    """Seconds for one network's prediction from a warm table: latbench.predict() in a process that has
    imported latbench and torch (5 repetitions, median), and `latbench predict` as a whole command."""
    code = ("import time, statistics, latbench, torch; import latbench.predict.api; ts = []\n"
            f"for _ in range(5):\n t0 = time.perf_counter(); latbench.predict({name!r}, table={str(table)!r}); "
            "ts.append(time.perf_counter() - t0)\nprint(statistics.median(ts))")
    api = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()[-1])
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "latbench", "predict", name, "--table", str(table), "-q"], capture_output=True,
                   check=True)
    return {"warm_predict_api_s": api, "warm_predict_cli_s": time.perf_counter() - t0, "warm_predict_network": name}


def _pinning(settings: dict[str, Any]) -> str:
    """' on CPUs 0' when the benchmark ran pinned (taskset), '' when it could use every core (or an older
    file did not record it: the text said 'under taskset -c 1' whatever the pinning was)."""
    cpus = settings.get("cpus")
    if not cpus or len(cpus) >= (os.cpu_count() or 0):
        return ""
    return f" pinned to CPU {','.join(map(str, cpus))} (`taskset -c {','.join(map(str, cpus))}`)"


def markdown(r: dict[str, Any]) -> str:
    fp = r["fingerprint"]
    t = r["timing"]
    lines = [f"# Latency prediction from measured blocks: validation ({r['date']})", "",
             f"Machine: {fp.get('cpu_model')}, {fp.get('cpu_logical_cores')} logical cores (KVM VM, shared), torch "
             f"{fp.get('torch')}, 1 thread, batch 1, CPU. Measured from {Path(r['settings']['work']).name} (UTC) by "
             f"`python benchmarks/predict_validation.py`{_pinning(r['settings'])}"
             f"{'; analysed again by `' + r['command'] + '`' if r['settings'].get('reuse') else ''}. "
             f"Load average {r['load_avg_before'][0]:.1f} before, {r['load_avg_after'][0]:.1f} after; "
             f"{r['elapsed_s'] / 60:.1f} min in all.", "",
             f"Calibration split: the {len(r['calibration_split'])} Table 8 cases; held out: the "
             f"{len(r['held_out_split'])} other built-in networks ({', '.join(r['held_out_split'])}); fresh (never seen "
             f"before the method was fixed): {', '.join(r.get('fresh_split') or []) or 'none'}; "
             + "; ".join(f"fresh {k[-1]} (written and committed before any was measured, after the set before had been seen): "
                         f"{', '.join(r.get(k + '_split') or []) or 'none'}" for k in LATER) + ". "
             f"Memory allocator: "
             f"{fp.get('allocator', 'not recorded')}. Aliases measured "
             f"once: {', '.join(f'{a} = {b}' for a, b in r['aliases'].items()) or 'none'}.", "",
             "## Predictors against measured latency", "",
             "Each predictor scaled by one factor (geometric mean of measured / predictor on the calibration split; "
             "leave-one-out: on every other network). Spearman over all networks with its 95 % bootstrap CI.", "",
             "| predictor | fresh: within ±10 % | fresh 2: within ±10 % | fresh 3: within ±10 % | held-out: median abs err | "
             "within ±5 % | within ±10 % | leave-one-out: median abs err | within ±10 % | Spearman ρ [95 % CI] | "
             "ρ − ρ(FLOPs) [95 % CI] |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for label, p in r["predictors"].items():
        h, lo, f, f2, f3 = p["held_out"], p["loo"], p.get("fresh") or {}, p.get("fresh2") or {}, p.get("fresh3") or {}
        lines.append(f"| {label} | {f.get('within_10_pct', math.nan):.0%} | {f2.get('within_10_pct', math.nan):.0%} | "
                     f"{f3.get('within_10_pct', math.nan):.0%} | "
                     f"{h.get('median_abs_err_pct', math.nan):.1f} % | {h.get('within_5_pct', math.nan):.0%} | "
                     f"{h.get('within_10_pct', math.nan):.0%} | {lo['median_abs_err_pct']:.1f} % | {lo['within_10_pct']:.0%} | "
                     f"{p['spearman']:.3f} [{p['spearman_ci'][0]:.3f}, {p['spearman_ci'][1]:.3f}] | "
                     f"{p['minus_flops']:+.3f} [{p['minus_flops_ci'][0]:+.3f}, {p['minus_flops_ci'][1]:+.3f}] |")
    pr = r["prediction"]
    cal = r["calibration"]
    lines += ["", "## The prediction (blocks x calibration) and its interval", "",
              f"Calibration ({cal.get('model', 'factor')}, over {cal['n']} networks): measured ≈ {cal['factor']:.3f} × "
              f"sum of blocks + {cal.get('per_block_ms', 0) * 1e3:.1f} µs per block use + "
              f"{cal.get('per_weight_mb_ms', 0):.3f} ms per MB of weights; log half-width {cal['log_halfwidth']:.3f} "
              f"(×/÷ {math.exp(cal['log_halfwidth']):.2f}) for a {cal['level']:.0%} interval.", "",
              "| split | n | median abs err | max abs err | within ±5 % | within ±10 % | interval coverage (stated 90 %) |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for label, key in (("fresh", "fresh"), ("fresh 2", "fresh2"), ("fresh 3", "fresh3"), ("held-out", "held_out"),
                       ("not calibrated, inside the calibration range", "not_calibrated_inside"),
                       ("not calibrated, outside it (`predict` warns)", "not_calibrated_outside"), ("calibration", "calibration_split"),
                       ("leave-one-out, all", "loo_all")):
        s = pr.get(key) or {}
        if s.get("n"):
            lines.append(f"| {label} | {s['n']} | {s['median_abs_err_pct']:.1f} % | {s['max_abs_err_pct']:.1f} % | "
                         f"{s['within_5_pct']:.0%} | {s['within_10_pct']:.0%} | {s['coverage']:.0%} |")
    widths = {}
    for p in r["per_network"]:
        widths.setdefault(p["split"], []).append(p.get("measured_ci_halfwidth_pct", math.nan))
    lines += ["", "How well the whole-network measurements themselves are known (median half-width of their 95 % CI, "
              "`latbench run`): " + ", ".join(f"{k} {np.nanmedian(v):.1f} %" for k, v in sorted(widths.items())) + "."]
    lines += ["", "## Per network", "",
              "| network | split | measured ms | ± (its 95 % CI) | predicted ms [90 % interval] | error | LOO error | "
              "sum of blocks ms | sum of operators ms | measured / blocks | MFLOPs |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in sorted(r["per_network"], key=lambda p: (p["split"], p["network"])):
        lines.append(f"| {p['network']} | {p['split']}{', outside' if p.get('outside_calibration') else ''} | {p['measured_ms']:.2f} | "
                     f"{p.get('measured_ci_halfwidth_pct', math.nan):.1f} % | {p['predicted_ms']:.2f} "
                     f"[{p['low_ms']:.2f}, {p['high_ms']:.2f}]{'' if p['covered'] else ' ✗'} | {p['err_pct']:+.1f} % | "
                     f"{p['loo_err_pct']:+.1f} % | {p['blocks_sum_ms']:.2f} | {p['ops_sum_ms']:.2f} | "
                     f"{p['ratio_measured_to_blocks']:.3f} | {p['flops'] / 2e6:.0f} |")
    ip = r["interpolation"]
    lines += ["", "## Interpolation error (blocks the table lacks, fitted)", "",
              f"Each network predicted with the blocks only it uses removed from the table and fitted from the others "
              f"(per kind: latency = a + b·FLOPs + c·MAC, a, b, c ≥ 0, weighted least squares): median change of its "
              f"sum of blocks {ip['median_abs_change_pct'] or math.nan:.1f} % over {len(ip['networks'])} networks. "
              f"Each block's leave-one-out fit error by kind:", "",
              "| kind | blocks | median abs err | 90th percentile |", "|---|---:|---:|---:|"]
    for kind, v in ip["block_loo_by_kind"].items():
        lines.append(f"| {kind} | {v['n']} | {v['median_abs_err_pct']:.0f} % | {v['p90_abs_err_pct']:.0f} % |")
    lines += ["", "## What the misses have in common", "",
              "Spearman of the residual log(measured / sum of blocks) with each network's time share per block kind, "
              "its size and its blocks per ms (a positive ρ: more of it, the network runs slower than its blocks):", "",
              "| quantity | ρ [95 % CI] |", "|---|---|"]
    for k, v in r["interactions"].items():
        lines.append(f"| {k} | {v['spearman']:+.2f} [{v['ci'][0]:+.2f}, {v['ci'][1]:+.2f}] |")
    ref = r.get("reference") or {}
    if ref.get("groups"):
        lines += ["", f"The table's reference block ({ref['label']}) over its {ref['groups']} groups: median "
                  f"{ref['median_ms']:.4f} ms, 5-95th percentile {ref['p5_ms'] / ref['median_ms']:.3f}-"
                  f"{ref['p95_ms'] / ref['median_ms']:.3f}× of it, extremes {ref['min_ms'] / ref['median_ms']:.3f}-"
                  f"{ref['max_ms'] / ref['median_ms']:.3f}× (each block is stored as its ratio to the reference in its "
                  f"group times the median)."]
    lines += ["", "## Time", "",
              f"- LUT build from scratch: {t['fused_blocks']} fusion-aware blocks in {t['lut_build_fused_s'] / 60:.1f} min "
              f"(`--max-time {r['settings']['block_max_time']}`); the sum-of-operators baseline's extra per-operator blocks: "
              f"{t['blocks_total'] - t['fused_blocks']} more in {t['lut_build_extra_operators_s'] / 60:.1f} min.",
              f"- Whole networks (`latbench run`, all in one interleaved group, {r['settings']['repeats']} processes, `--max-time "
              f"{r['settings']['net_max_time']}`): {t['whole_networks_run_s'] / 60:.1f} min.",
              f"- A prediction from a warm table ({t['warm_predict_network']}): {t['warm_predict_api_s']:.2f} s with "
              f"`latbench.predict()` in a warm process, {t['warm_predict_cli_s']:.1f} s as a `latbench predict` command "
              f"(Python and torch start-up included).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
