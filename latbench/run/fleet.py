"""Many machines on Ray (issue 26): `latbench run SUITE --on ray[://ADDRESS] [--devices POOLS]`.

Ray schedules, latbench measures. Each group is one Ray task placed on a node that has the device's
resource (cuda: {"GPU": 1}; a pool KIND: the custom resource "device:KIND") and one `latbench_slot`:
every latbench node declares latbench_slot = 1, so a node measures one group at a time (two groups
timed at once on one machine would disturb each other). The task runs the worker protocol of
run/workers.py on its node (`measure_groups`: forkserver worker processes, hard limits, crashes
failing only their cases, --repeats pooled there), with the node's own fingerprint, telemetry and
roofline ceilings, and returns the group's Rows and samples. The driver (this process) streams the
results in as they finish (ray.wait) and saves each through the run's RunFile (atomic, resumable).

A node that dies mid-group: Ray re-runs the task on another node of the pool (RETRIES times); when
no node of the pool is left (for LOST_AFTER_S) or the retries are spent, the group is written `failed`
with the reason. A group is on disk whole or not at all: never lost, never half-written.

`--devices` runs the suite on several device pools, one run file per pool (rows of one group measured
on two devices must not share a file: compare joins rows by case): `cuda` or `cpu` = every node having
that device (a pool per node), any other name = the nodes declaring "device:NAME" (one pool).
Ray is optional (pip install 'latbench[ray]'): this module imports it only when asked to.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from latbench.errors import LatbenchError
from latbench.records import CaseSpec
from latbench.run import workers
from latbench.run.options import RunOptions
from latbench.run.rows import failed_rows

SLOT = "latbench_slot"  # every latbench node: capacity 1; every task asks for 1 (one measurement per node)
DEVICE_PREFIX = "device:"  # a pool of nodes of one kind: ray start --resources '{"device:h100": 1, ...}'
DEVICE_RESOURCES: dict[str, dict[str, float]] = {"cpu": {}, "cuda": {"GPU": 1}}
RETRIES = 2  # a task whose node (or Ray worker) died is re-run on another node this many times
LOST_AFTER_S = 30.0  # a pool with no live node this long: its groups still pending are written failed
INSTALL = "pip install 'latbench[ray]' (or pip install ray), here and on every node"
START_HINT = ("start a head with: ray start --head --resources '{\"latbench_slot\": 1}', join nodes with: ray start "
              "--address HEAD:6379 --resources '{\"latbench_slot\": 1}' (README 'Many machines')")


@dataclass(frozen=True)
class Target:
    """A device pool: the resources a group's task asks for, and the node it is pinned to (a per-node pool)."""

    label: str  # "cpu", "device:h100", "cuda@gpu-box-3"
    resources: tuple[tuple[str, float], ...]
    node_id: str | None = None

    def settings(self) -> dict[str, Any]:
        """What the run's metadata records (runfile.SETTINGS "fleet": --resume must name the same pool)."""
        return {"target": self.label, "resources": dict(self.resources)}

    def task_options(self) -> dict[str, Any]:
        res = dict(self.resources)
        opts: dict[str, Any] = {"num_cpus": 0, "num_gpus": res.pop("GPU", 0), "resources": res,
                                "max_retries": RETRIES, "retry_exceptions": False}
        if self.node_id is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(self.node_id, soft=False)
        return opts


@dataclass
class NodeDevice:
    """A pool's device as one of its nodes reported it: what the session reads of a device to plan a run
    and record its settings (the driver measures nothing, and may have no such device)."""

    name: str
    threads: int | None
    settings: dict[str, Any]
    backend: Any  # .name and .modes
    default_platform: str
    model: str

    def model_name(self, fingerprint: dict[str, Any]) -> str:
        return self.model

    def telemetry_gpu_index(self) -> int | None:
        return None  # each node samples its own GPU

    def telemetry_gpu_uuid(self) -> str | None:
        return None


# ---------------------------------------------------------------- the driver: connecting, pools, plans

def connect(on: str) -> Any:
    """The ray module, connected to the cluster --on names: "ray" (the cluster this machine joined, or
    $RAY_ADDRESS) or "ray://HOST:PORT" (Ray Client). LatbenchError (exit 2) without Ray or a cluster."""
    if on != "ray" and not on.startswith("ray://"):
        raise LatbenchError(f"{on!r} is not a cluster latbench can use", where="--on",
                            hint="use --on ray (the cluster this machine joined, or $RAY_ADDRESS) or "
                                 "--on ray://HOST:10001 (Ray Client)")
    try:
        import ray
    except ImportError:
        raise LatbenchError("needs Ray, which is not installed", where="--on", hint=INSTALL) from None
    if not ray.is_initialized():
        try:
            ray.init(address="auto" if on == "ray" else on, log_to_driver=False, logging_level=logging.WARNING,
                     namespace="latbench")
        except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError: no cluster there
            raise LatbenchError(f"no Ray cluster to connect to at {on!r} ({str(exc).splitlines()[0][:200]})",
                                where="--on", hint=START_HINT + "; or set RAY_ADDRESS=HEAD:6379") from None
    return ray


def _alive(ray: Any) -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n.get("Alive")]


def _having(nodes: Sequence[dict[str, Any]], resources: dict[str, float]) -> list[dict[str, Any]]:
    return [n for n in nodes if all(n.get("Resources", {}).get(k, 0) >= v for k, v in resources.items())]


def targets(ray: Any, opts: RunOptions) -> list[Target]:
    """The device pools of the run: one (any node with the device) without --devices, else one per
    --devices entry (cpu/cuda: one per node having it). LatbenchError for a pool no live node serves."""
    nodes = _alive(ray)
    base = {**DEVICE_RESOURCES.get(opts.device, {}), SLOT: 1.0}
    names = [d.strip() for d in opts.devices or () if d.strip()] or [None]
    out: list[Target] = []
    for name in dict.fromkeys(names):
        if name is None or name in DEVICE_RESOURCES:
            want = dict(base)
        else:
            kind = name if name.startswith(DEVICE_PREFIX) else DEVICE_PREFIX + name
            want = {**base, kind: 1.0}
        found = _having(nodes, want)
        if not found:
            have = sorted({k for n in nodes for k in n.get("Resources", {}) if not k.startswith(("node:", "memory",
                                                                                               "object_store"))})
            raise LatbenchError(f"no live node of the Ray cluster has {want}" + (f" (--devices {name})" if name else ""),
                                where="--devices" if name else "--on",
                                hint=f"{START_HINT}; add the device's resource there; the cluster has: "
                                     f"{', '.join(have) or 'nothing'}")
        if name is None or name not in DEVICE_RESOURCES:
            out.append(Target(name or opts.device, tuple(sorted(want.items()))))
            continue
        hosts = [str(n.get("NodeManagerHostname") or n.get("NodeManagerAddress")) for n in found]
        for n, host in zip(found, hosts):  # every node having the device: a pool each
            label = f"{name}@{host}" + (f"#{n['NodeID'][:6]}" if hosts.count(host) > 1 else "")
            out.append(Target(label, tuple(sorted(want.items())), n["NodeID"]))
    return out


def plans(opts: RunOptions, expanded: Sequence[tuple[Any, list[CaseSpec]]], events: Any, in_process: bool,
          prepare: Callable[..., Any]) -> list[Any]:
    """One session Plan per device pool (its device as a node of the pool reports it), checked first."""
    if not opts.on:
        raise LatbenchError("device pools are groups of nodes of a Ray cluster", where="--devices", hint="add --on ray")
    if in_process:
        why = ("--in-process asks to measure in this process" if opts.in_process
               else "its cases live in this process (Python objects)")
        raise LatbenchError(f"{opts.on} measures on the cluster's nodes, but {why}", where="--on",
                            hint="drop --in-process, or run without --on")
    for name in opts.devices or ():
        if name.strip() in DEVICE_RESOURCES and name.strip() != opts.device:
            raise LatbenchError(f"{name.strip()}: the run measures on --device {opts.device}", where="--devices",
                                hint=f"add --device {name.strip()}, or name pools of {opts.device} nodes")
    ray = connect(opts.on)
    found = targets(ray, opts)
    if opts.resume and len(found) != 1:
        raise LatbenchError(f"--resume continues one run, but --devices names {len(found)} pools", where="--resume",
                            hint="resume with the one pool the run measured on (see 'fleet' in its metadata)")
    out, pools = [], Pools(expanded=list(expanded))
    for t in found:
        node = probe(ray, t, workers.DeviceRecipe.of(opts))
        count = 1 if t.node_id else len(_having(_alive(ray), dict(t.resources)))
        events.on_note("fleet", f"pool {t.label}: {count} node(s); {node['host']} reports {node['name']} "
                                f"[{node['model']}], {node['threads']} thread(s)")
        dev = NodeDevice(node["name"], node["threads"], node["settings"], _Backend(node["backend"], node["modes"]),
                         node["default_platform"], node["model"])
        out.append(dataclasses.replace(prepare(opts, expanded, events, dev, False), target=t, pools=pools))
    pools.plans.extend(out)
    return out


@dataclass(frozen=True)
class _Backend:
    name: str
    modes: tuple[str, ...]


def probe(ray: Any, target: Target, recipe: workers.DeviceRecipe) -> dict[str, Any]:
    """The pool's device as a node of it makes it (as a local run's manager does: with --device cuda, the Ray
    worker holds a CUDA context, which the measuring workers' telemetry counts as latbench's own)."""
    task = ray.remote(_probe_node).options(**target.task_options())
    try:
        return ray.get(task.remote(recipe))
    except Exception as exc:  # noqa: BLE001 - RayTaskError wraps the node's DeviceError
        cause = getattr(exc, "cause", None) or exc
        raise LatbenchError(f"a node of pool {target.label} cannot measure on {recipe.name}: "
                            f"{str(cause).splitlines()[-1][:300] if str(cause) else type(cause).__name__}",
                            where="--devices" if target.label != recipe.name else "--on",
                            hint="check that node's torch and device (latbench env there)") from None


def _probe_node(recipe: workers.DeviceRecipe) -> dict[str, Any]:
    from latbench import env

    dev = recipe.make()
    fp = env.fingerprint()
    return {"name": dev.name, "threads": dev.threads, "settings": dict(dev.settings), "backend": dev.backend.name,
            "modes": tuple(dev.backend.modes), "default_platform": dev.default_platform,
            "model": dev.model_name(fp), "host": fp.get("hostname")}


# ---------------------------------------------------------------- the node side: one group

_NODE: dict[str, Any] = {}  # per Ray worker process: its fingerprint and ceilings, probed once


def measure_on_node(job: workers.Job, group: tuple[CaseSpec, ...], processes: int, roofline: bool,
                    dtypes: tuple[str, ...]) -> dict[str, Any]:
    """A Ray task: `group` measured on this node by the worker protocol (workers.measure_groups), with
    this node's environment, telemetry and roofline ceilings; its Rows, samples and where it ran."""
    import ray
    import torch

    from latbench import env
    from latbench.run.rows import local_identity

    t0 = time.time()
    if "fingerprint" not in _NODE:
        _NODE["fingerprint"] = env.fingerprint()
    ceilings = _ceilings(job.recipe, dtypes) if roofline else None
    job = dataclasses.replace(job, ceilings=ceilings, cwd=os.getcwd(), sys_path=tuple(sys.path),
                              environ=tuple(os.environ.items()),  # CUDA_VISIBLE_DEVICES as Ray set it for this task
                              manager_gpu_processes=int(torch.cuda.is_initialized()))
    got: list[tuple[list[Any], list[dict[str, Any]]]] = []
    notes: list[str] = []
    workers.measure_groups([list(group)], job, processes, lambda rows, samples: got.append((rows, samples)),
                           on_warning=notes.append)
    host, device_name = local_identity(job.recipe.name)
    return {"rows": got[0][0], "samples": got[0][1], "notes": notes, "node": ray.get_runtime_context().get_node_id(),
            "host": host, "device_name": device_name, "pid": os.getpid(), "started": t0, "ended": time.time(),
            "fingerprint": _NODE["fingerprint"], "roofline": ceilings.metadata() if ceilings else None}


def _ceilings(recipe: workers.DeviceRecipe, dtypes: tuple[str, ...]) -> Any:
    key = ("ceilings", recipe, dtypes)
    if key not in _NODE:
        from latbench import roofline as rl

        dev = recipe.make()
        _NODE[key] = rl.measure_ceiling_set(dev, dev.model_name(_NODE["fingerprint"]), dev.threads or 1,
                                            list(dtypes))[0]
    return _NODE[key]


# ---------------------------------------------------------------- the driver: groups in, rows saved

@dataclass
class Pools:
    """The device pools of one session, shared by their Plans (Plan.pools). Several pools are several run
    files, measured one after the other by the session; their groups are submitted together when the
    first pool starts, so every pool's nodes work at once (the rows of a group submitted ahead get their
    run's id when they arrive)."""

    expanded: list[Any]
    plans: list[Any] = field(default_factory=list)
    submitted: set[tuple[str, str, str]] = field(default_factory=set)  # (pool, suite, group label)
    ahead: dict[tuple[str, str, str], Any] = field(default_factory=dict)  # ... -> its task, submitted ahead


def _submit(ray: Any, target: Target, job: workers.Job, group: Sequence[CaseSpec], plan: Any) -> Any:
    plan.pools.submitted.add((target.label, group[0].suite, group[0].group_label))
    dtypes = tuple(dict.fromkeys(s.dtype for s in group))
    task = ray.remote(measure_on_node).options(**target.task_options())
    return task.remote(job, tuple(group), plan.repeats, plan.opts.roofline, dtypes)


def _submit_ahead(ray: Any, plan: Any, job: workers.Job) -> None:
    """The groups of every other pool of the session, not yet submitted (with this job's settings and
    that pool's threads)."""
    from latbench.run.pipeline import groups_of

    pools: Pools = plan.pools
    for other in pools.plans:
        if other.target == plan.target:
            continue
        ahead = dataclasses.replace(job, recipe=dataclasses.replace(job.recipe, threads=other.device.threads))
        for _, specs in pools.expanded:
            for g in groups_of(specs):
                key = (other.target.label, g[0].suite, g[0].group_label)
                if key not in pools.submitted:
                    pools.ahead[key] = _submit(ray, other.target, ahead, g, other)

def measure_groups(groups: Sequence[list[CaseSpec]], job: workers.Job, plan: Any, save_group: workers.GroupDone,
                   on_start: Callable[[str], None] | None = None, on_warning: Callable[[str], None] | None = None,
                   run: Any = None, lost_after_s: float | None = None) -> None:
    """Every group a task on a node of plan.target; each saved (save_group) as its result arrives, a
    group whose task failed for good (node gone, retries spent) saved as failed rows with the reason.
    Ctrl-C/SIGTERM cancels the tasks still running (the saved groups stay; --resume measures the rest)."""
    import ray

    target: Target = plan.target
    lost_after = float(os.environ.get("LATBENCH_FLEET_LOST_S", LOST_AFTER_S)) if lost_after_s is None else lost_after_s
    job = dataclasses.replace(job, cwd="", sys_path=(), environ=(), manager_gpu_processes=0, ceilings=None)
    placement = (run.metadata if run is not None else {}).setdefault("placement", {"nodes": {}, "groups": {}})
    ahead = plan.pools.ahead
    pending = {(ahead.pop((target.label, g[0].suite, g[0].group_label), None) or _submit(ray, target, job, g, plan)): g
               for g in groups}
    _submit_ahead(ray, plan, job)
    run_id = job.run_id
    done, lost_since = 0, None
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                group = pending.pop(ref)
                rows, samples = _result(ray, ref, group, job, target, placement, on_warning)
                save_group([r.replace(run_id=run_id) for r in rows], [{**s, "run_id": run_id} for s in samples])
                done += 1
                if on_start:
                    on_start(f"{done}/{len(groups)} groups on {target.label}")
            if not ready and pending:
                if _having(_alive(ray), dict(target.resources)) if target.node_id is None else \
                        any(n["NodeID"] == target.node_id for n in _alive(ray)):
                    lost_since = None
                    continue
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since >= lost_after:
                    _give_up(ray, pending, job, target, placement, save_group, lost_after)
    except BaseException:  # every task of the session still running: cancelled
        for ref in [*pending, *ahead.values()]:
            ray.cancel(ref, force=True)
        ahead.clear()
        raise


def _result(ray: Any, ref: Any, group: list[CaseSpec], job: workers.Job, target: Target, placement: dict[str, Any],
            on_warning: Callable[[str], None] | None) -> tuple[list[Any], list[dict[str, Any]]]:
    label = group[0].group_label
    try:
        r = ray.get(ref)
    except Exception as exc:  # noqa: BLE001 - the node died and no retry is left, the task was cancelled, ...
        why = f"lost on the Ray cluster (pool {target.label}): {_why(exc)}"
        placement["groups"][label] = {"pool": target.label, "error": why}
        return failed_rows(group, job.modes, _ctx(job), why), []
    placement["nodes"].setdefault(r["node"], {"host": r["host"], "device_name": r["device_name"],
                                              "fingerprint": r["fingerprint"], "roofline": r["roofline"]})
    placement["groups"][label] = {"pool": target.label, "node": r["node"], "host": r["host"], "pid": r["pid"],
                                  "started": r["started"], "ended": r["ended"]}
    for note in r["notes"]:
        if on_warning:
            on_warning(note)
    return r["rows"], r["samples"]


def _give_up(ray: Any, pending: dict[Any, list[CaseSpec]], job: workers.Job, target: Target, placement: dict[str, Any],
             save_group: workers.GroupDone, waited: float) -> None:
    """No node of the pool has been alive for `waited` s: its pending groups are written failed."""
    why = f"no node of pool {target.label} left in the Ray cluster (waited {waited:g} s for one)"
    for ref in list(pending):
        ray.cancel(ref, force=True)
        group = pending.pop(ref)
        placement["groups"][group[0].group_label] = {"pool": target.label, "error": why}
        save_group(failed_rows(group, job.modes, _ctx(job), why), [])


def _ctx(job: workers.Job) -> Any:
    """Failed rows written by the driver: no node measured them, so no machine is named."""
    return dataclasses.replace(job.row_context(), host="", device_name="")


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
