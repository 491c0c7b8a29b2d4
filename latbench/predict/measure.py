"""Measuring a latency table's blocks, and networks whole for its calibration, through the run wing.

The blocks a set of networks needs and the table lacks become one case source (`BlockSource`): each
block a `user` case whose factory (blocks.FACTORY) rebuilds it from its description, so the run's one
orchestration (run.session.run_sources) measures them like any suite: built and counted on the meta
device, warmed up, timed in interleaved rounds in groups of GROUP blocks, in worker processes. Each
finished group goes into the table at once (`TableEvents`), so an interrupted build keeps its blocks
and `--resume` measures only the rest.

Every group opens with the same reference block (`reference_block`, kept in the table's "reference"),
the group's baseline: a block's entry holds its ratio to the reference from the same interleaved rounds
(paired, as `run`'s ratios), and its latency_ms is that ratio times the median of the reference over all
the table's groups (`normalise`). A slow spell of the machine during a build of minutes then moves a
group's blocks and its reference alike and cancels, instead of making the networks whose blocks were
measured in it look 10-19 % slower (2026-12-05: docs/benchmarks/predict-2026-12-05/run-to-run-repeat.md).
A group whose reference failed keeps its blocks' own medians.
"""

from __future__ import annotations

import contextlib
import json
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from latbench.predict.blocks import FACTORY, Block
from latbench.predict.networks import Network
from latbench.predict.table import Table, finite_number, now
from latbench.records import CaseSpec
from latbench.results.schema import OK
from latbench.run.session import Events, RunOutcome, run_sources

GROUP = 8  # blocks measured together in interleaved rounds (a group's worker builds and warms them all)
SUITE = "lut"
REFERENCE_CASE = "reference"  # the reference's case name in group i: f"{REFERENCE_CASE}#{i:04d}"


def reference_block() -> Block:
    """The reference every group of blocks is measured against: a 3x3 conv + BN + ReLU, 32 channels at
    28x28, batch 1, float32 (about 7 M multiply-adds: a typical block of the built-in networks)."""
    import torch
    from torch import nn

    from latbench.predict.blocks import network_blocks as cut_network

    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
        x = torch.empty(1, 32, 28, 28)
    (block,) = cut_network(model.eval(), x)
    return block


def reference_of(table: Table) -> dict[str, Any]:
    """The table's reference ({label, desc, group_ms: its median in each group so far}), made on first use."""
    ref = table.meta.get("reference")
    if not isinstance(ref, dict) or not isinstance(ref.get("desc"), dict) or not isinstance(ref.get("group_ms"), list):
        b = reference_block()
        ref = table.meta["reference"] = {"label": b.label, "desc": b.desc, "group_ms": []}
    return ref


def reference_ms(table: Table) -> float | None:
    """The median of the reference over the table's groups (None before one was measured)."""
    ref = table.meta.get("reference")
    ms = ref.get("group_ms") if isinstance(ref, dict) else None
    ms = [v for v in ms if finite_number(v) and v > 0] if isinstance(ms, list) else []
    return float(statistics.median(ms)) if ms else None


def normalise(table: Table) -> None:
    """Every entry measured against the reference: latency_ms (and its CI) = ratio x reference_ms(table)."""
    ref = reference_ms(table)
    if ref is None:
        return
    for e in table.blocks.values():
        if all(finite_number(e.get(k)) and e[k] > 0 for k in ("ratio", "ratio_ci_low", "ratio_ci_high")):
            e["latency_ms"], e["ci_low_ms"], e["ci_high_ms"] = (e["ratio"] * ref, e["ratio_ci_low"] * ref,
                                                               e["ratio_ci_high"] * ref)


def network_blocks(net: Network, fuse: bool = True) -> list[Block]:
    """The blocks of one forward pass of `net` (traced on the meta device: no memory, no time)."""
    from latbench.predict.blocks import network_blocks as cut_network

    model, x = net.build("meta")
    blocks = cut_network(model, x, fuse)
    if any(b.data_dependent for b in blocks):  # measured on this network's own tensors (blocks.DATA_DEPENDENT)
        s = net.spec
        recipe = {"builder": s.builder, "params": s.param_dict, "blocks": s.blocks, "batch": s.batch,
                  "height": s.height, "width": s.width, "dtype": s.dtype}
        try:
            json.dumps(recipe)
        except (TypeError, ValueError):  # a network that cannot be described as data: random tensors
            return blocks
        blocks = [b.on_network_data(recipe) if b.data_dependent else b for b in blocks]
    return blocks


def needed(networks: Sequence[Network], table: Table, fuse: bool = True
           ) -> tuple[dict[str, list[tuple[str, Block]]], dict[str, Block]]:
    """Every network's blocks with their keys, and the distinct blocks the table lacks (in first-use order)."""
    per: dict[str, list[tuple[str, Block]]] = {}
    todo: dict[str, Block] = {}
    for net in networks:
        keyed = [(b.key(table.context), b) for b in network_blocks(net, fuse)]
        per[net.name] = keyed
        for key, b in keyed:
            if key not in table.blocks and key not in todo:
                todo[key] = b
    return per, todo


@dataclass
class BlockSource:
    """Blocks to measure as a case source of the run wing (run/sources.py)."""

    todo: dict[str, Block]
    group: int = GROUP
    reference: Block | None = None  # opens every group as its baseline (None: the group's first block)
    name: str = SUITE
    path: str = "latbench lut build"
    widths: str = "object"
    claims: list[Any] = field(default_factory=list)
    in_process_only: bool = False

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "sha256": None, "experiment": "blocks",
                "description": f"{len(self.todo)} block(s) of a latency table"}

    def specs(self, platform: str, **_: Any) -> list[CaseSpec]:
        keys = list(self.todo)
        out = []
        for i, key in enumerate(keys):
            g = i // self.group
            first = keys[i - i % self.group] if self.reference is None else f"{REFERENCE_CASE}#{g:04d}"
            if self.reference is not None and i % self.group == 0:
                out.append(self._spec(first, self.reference, g, first))
            out.append(self._spec(key, self.todo[key], g, first))
        return out

    def _spec(self, case: str, b: Block, group: int, baseline: str) -> CaseSpec:
        kwargs = {"block": json.dumps(b.desc, sort_keys=True, separators=(",", ":"))}
        dtype = next((t["dtype"] for t in b.desc["inputs"] if t["dtype"].startswith(("float", "bfloat"))), "float32")
        return CaseSpec(suite=self.name, experiment=f"blocks{group:04d}", case=case, scale=1, builder="user",
                        params=tuple(sorted({"factory": FACTORY, "kwargs": kwargs, "input_shape": [1]}.items())),
                        blocks=1, batch=1, height=1, width=1, baseline_case=baseline, widths_mode="object",
                        dtype=dtype, source=f"{self.path}: {b.label}")

    def active(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def entry(block: Block, row: dict[str, Any], against_reference: bool = False) -> dict[str, Any]:
    """A measured row as the table's entry for its block; with `against_reference` (the group's baseline
    was the reference, and measured) also its ratio to it, which `normalise` turns into latency_ms."""
    e = {"kind": block.kind, "label": block.label, "desc": block.desc, "flops": int(row["flops"]),
         "mac_bytes": int(row["mac_bytes"]), "activations": int(row["activations"]),
         "latency_ms": float(row["latency_ms"]), "ci_low_ms": float(row["latency_ci_low_ms"]),
         "ci_high_ms": float(row["latency_ci_high_ms"]), "samples": int(row["samples"]),
         "stop_reason": str(row["stop_reason"]), "run": str(row["run_id"]), "measured_at": now()}
    ratio = [row.get(k) for k in ("ratio_to_baseline", "ratio_ci_low", "ratio_ci_high")]
    if against_reference and all(finite_number(r) and r > 0 for r in ratio):
        e.update(measured_ms=e["latency_ms"], ratio=float(ratio[0]), ratio_ci_low=float(ratio[1]),
                 ratio_ci_high=float(ratio[2]))
    return e


class TableEvents(Events):
    """Passes a run's events on, and puts each finished group's blocks into the table, then `save()`s it."""

    def __init__(self, table: Table, todo: dict[str, Block], save: Callable[[], None], inner: Events | None = None):
        self.table, self.todo, self.save, self.inner = table, todo, save, inner or Events()
        self.failed: list[tuple[str, str]] = []  # (block label, why)

    def on_group_done(self, suite_name: str, group: str, rows: list[dict[str, Any]]) -> None:
        refs = [r for r in rows if str(r["case"]).startswith(REFERENCE_CASE + "#")]
        rows = [r for r in rows if not str(r["case"]).startswith(REFERENCE_CASE + "#")]
        against = bool(refs) and refs[0]["status"] == OK and finite_number(refs[0]["latency_ms"]) \
            and refs[0]["latency_ms"] > 0
        if against:
            reference_of(self.table)["group_ms"].append(float(refs[0]["latency_ms"]))
        for row in rows:
            block = self.todo[row["case"]]
            if row["status"] == OK and row["latency_ms"] > 0:
                self.table.blocks[row["case"]] = entry(block, row, against)
            else:
                self.failed.append((block.label, str(row.get("error") or row["status"])))
        normalise(self.table)
        self.save()
        self.inner.on_group_done(suite_name, group, rows)

    def on_note(self, kind: str, text: str) -> None:
        self.inner.on_note(kind, text)

    def on_suite_start(self, suite_name: str) -> None:
        self.inner.on_suite_start(suite_name)

    def on_group_start(self, suite_name: str, group: str) -> None:
        self.inner.on_group_start(suite_name, group)

    def on_progress(self, suite_name: str, group: str, rounds: int) -> None:
        self.inner.on_progress(suite_name, group, rounds)

    def on_interrupted(self, info: Any) -> None:
        self.inner.on_interrupted(info)

    def on_suite_done(self, result: Any) -> None:
        self.inner.on_suite_done(result)


def measure_blocks(opts: Any, table: Table, todo: dict[str, Block], save: Callable[[], None],
                   events: Events | None = None, group: int = GROUP) -> tuple[RunOutcome, list[tuple[str, str]]]:
    """Measure `todo` through the run wing (opts: run.options.RunOptions), filling `table` group by group."""
    view = TableEvents(table, todo, save, events)
    if not todo:
        return RunOutcome(), []
    ref = reference_of(table)
    reference = Block([], ref["desc"], label=ref["label"])
    outcome = run_sources(opts, [BlockSource(todo, group, reference=reference)], view)
    return outcome, view.failed


def measure_networks(opts: Any, networks: Sequence[Network], events: Events | None = None) -> dict[str, float]:
    """Each network measured whole through the run wing (one run per source): {name: median latency ms}."""
    sources: list[Any] = []
    for net in networks:
        if all(net.source is not s for s in sources):
            sources.append(net.source)
    outcome = run_sources(opts, sources, events)
    wanted = {(n.spec.case, n.spec.scale, n.spec.batch, n.spec.dtype): n.name for n in networks}
    out = {}
    for suite in outcome.suites:
        for row in suite.rows:
            name = wanted.get((row["case"], row["scale"], row["batch"], row["dtype"]))
            if name is not None and row["status"] == OK:
                out[name] = float(row["latency_ms"])
    return out

