"""Measuring a latency table's blocks, and networks whole for its calibration, through the run wing.

The blocks a set of networks needs and the table lacks become one case source (`BlockSource`): each
block a `user` case whose factory (blocks.FACTORY) rebuilds it from its description, so the run's one
orchestration (run.session.run_sources) measures them like any suite: built and counted on the meta
device, warmed up, timed in interleaved rounds in groups of GROUP blocks, in worker processes. Each
finished group goes into the table at once (`TableEvents`), so an interrupted build keeps its blocks
and `--resume` measures only the rest.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from latbench.predict.blocks import FACTORY, Block
from latbench.predict.networks import Network
from latbench.predict.table import Table, now
from latbench.records import CaseSpec
from latbench.results.schema import OK
from latbench.run.session import Events, RunOutcome, run_sources

GROUP = 8  # blocks measured together in interleaved rounds (a group's worker builds and warms them all)
SUITE = "lut"


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
            b = self.todo[key]
            first = keys[i - i % self.group]
            kwargs = {"block": json.dumps(b.desc, sort_keys=True, separators=(",", ":"))}
            dtype = next((t["dtype"] for t in b.desc["inputs"] if t["dtype"].startswith(("float", "bfloat"))), "float32")
            out.append(CaseSpec(suite=self.name, experiment=f"blocks{i // self.group:04d}", case=key, scale=1,
                                builder="user", params=tuple(sorted({"factory": FACTORY, "kwargs": kwargs,
                                                                     "input_shape": [1]}.items())),
                                blocks=1, batch=1, height=1, width=1, baseline_case=first, widths_mode="object",
                                dtype=dtype, source=f"{self.path}: {b.label}"))
        return out

    def active(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def entry(block: Block, row: dict[str, Any]) -> dict[str, Any]:
    """A measured row as the table's entry for its block."""
    return {"kind": block.kind, "label": block.label, "desc": block.desc, "flops": int(row["flops"]),
            "mac_bytes": int(row["mac_bytes"]), "activations": int(row["activations"]),
            "latency_ms": float(row["latency_ms"]), "ci_low_ms": float(row["latency_ci_low_ms"]),
            "ci_high_ms": float(row["latency_ci_high_ms"]), "samples": int(row["samples"]),
            "stop_reason": str(row["stop_reason"]), "run": str(row["run_id"]), "measured_at": now()}


class TableEvents(Events):
    """Passes a run's events on, and puts each finished group's blocks into the table, then `save()`s it."""

    def __init__(self, table: Table, todo: dict[str, Block], save: Callable[[], None], inner: Events | None = None):
        self.table, self.todo, self.save, self.inner = table, todo, save, inner or Events()
        self.failed: list[tuple[str, str]] = []  # (block label, why)

    def on_group_done(self, suite_name: str, group: str, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            block = self.todo[row["case"]]
            if row["status"] == OK and row["latency_ms"] > 0:
                self.table.blocks[row["case"]] = entry(block, row)
            else:
                self.failed.append((block.label, str(row.get("error") or row["status"])))
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
    outcome = run_sources(opts, [BlockSource(todo, group)], view)
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

