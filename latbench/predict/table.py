"""The latency table: a versioned results file of measured blocks for one machine.

A JSON object:
    format          "latbench-latency-table"
    version         TABLE_VERSION (a table of another version is refused: rebuild it)
    device, threads, mode, latency_semantics   what a block's latency means (the blocks' key context)
    fingerprint     env.fingerprint() of the machine that measured it; a prediction on a machine whose
                    identity (env.machine_identity: CPU, cores, memory, torch, ... and device, threads)
                    differs is refused unless --allow-different-machine, as `latbench gate` refuses
    policy, created, updated, argv
    blocks          {key: entry}: kind, label, desc (blocks.Block.desc: enough to rebuild it), flops,
                    mac_bytes, activations, latency_ms (median), ci_low_ms, ci_high_ms (its 95 % CI),
                    samples, stop_reason, run (the run_id of the run that measured it), measured_at; and
                    when its group's reference was measured: ratio, ratio_ci_low, ratio_ci_high (to the
                    reference, same interleaved rounds) and measured_ms (its own median in its group), with
                    latency_ms and its CI = ratio (CI) x the reference's median over the groups
    reference       the block every group opens with (measure.reference_block): label, desc, group_ms (its
                    median in each group measured so far); absent in tables from before 2026-12-06, whose
                    entries keep their own medians
    calibration     null, or model.calibrate's fit: whole networks measured against their sums of blocks

It is written only through results/files.py (write_output: the file policy; an update of the table a
build resumes replaces it atomically) and read here with located errors (exit 2).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from latbench.errors import ResultsError

TABLE_FORMAT = "latbench-latency-table"
TABLE_VERSION = 1
ENTRY_FIELDS = ("kind", "label", "desc", "flops", "mac_bytes", "activations", "latency_ms", "ci_low_ms", "ci_high_ms")
REBUILD = "build a new one with 'latbench lut build NETWORK... -o FILE'"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Table:
    meta: dict[str, Any]
    blocks: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    path: Path | None = None

    @property
    def context(self) -> dict[str, Any]:
        """What a block's key depends on besides its ops (blocks.Block.key)."""
        return {k: self.meta.get(k) for k in ("device", "threads", "mode", "latency_semantics")}

    def to_json(self) -> dict[str, Any]:
        return {**self.meta, "format": TABLE_FORMAT, "version": TABLE_VERSION, "updated": now(),
                "blocks": self.blocks, "calibration": self.calibration}

    def text(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n"


def new_table(device: str, threads: int | None, mode: str, latency_semantics: str, fingerprint: dict[str, Any],
              policy: dict[str, Any] | None = None, argv: list[str] | None = None) -> Table:
    return Table({"device": device, "threads": threads, "mode": mode, "latency_semantics": latency_semantics,
                  "fingerprint": fingerprint, "policy": policy or {}, "created": now(), "argv": argv or []})


def save_table(table: Table, path: str | Path, force: bool = False, option: str = "-o") -> Path:
    """The table written under the file policy (an existing file only with force; never through a link)."""
    from latbench.results.files import write_output

    return write_output(path, table.text(), force, option)


def check_writable(path: str | Path, force: bool, option: str = "-o") -> Path:
    """OutputRefused now (before anything is measured) for a table that could not be written later."""
    from latbench.results.files import check_output

    return check_output(path, force, option)


def finite_number(v: Any) -> bool:
    """A finite int or float (not a bool): what a table's numbers must be."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_table(path: str | Path, option: str = "--table") -> Table:
    """A table from its file; ResultsError (exit 2) naming the file, the entry and what is wrong."""
    from latbench.results.read import _json, small_text

    where = str(path)
    try:
        data = _json(small_text(Path(path)))
    except FileNotFoundError:
        raise ResultsError("no such file", where=where, hint=f"give {option} an existing latency table, or "
                                                               f"{REBUILD}") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"not a readable latency table ({type(exc).__name__}: {exc})", where=where,
                           hint=f"give {option} a table written by 'latbench lut build', or {REBUILD}") from None
    if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
        raise ResultsError(f"not a latency table (no \"format\": \"{TABLE_FORMAT}\")", where=where,
                           hint=f"give {option} a table written by 'latbench lut build'")
    if data.get("version") != TABLE_VERSION:
        raise ResultsError(f"a version {data.get('version')!r} latency table; this latbench reads version "
                           f"{TABLE_VERSION}", where=where, hint=REBUILD)
    for k in ("device", "mode", "fingerprint", "blocks"):
        if k not in data:
            raise ResultsError(f"the table has no {k!r}", where=where, hint=REBUILD)
    blocks = data["blocks"]
    if not isinstance(blocks, dict) or not isinstance(data["fingerprint"], dict):
        raise ResultsError("'blocks' and 'fingerprint' must be JSON objects", where=where, hint=REBUILD)
    for key, e in blocks.items():
        missing = [f for f in ENTRY_FIELDS if not isinstance(e, dict) or f not in e]
        if missing:
            raise ResultsError(f"block {key} lacks {', '.join(missing)}", where=f"{where}: blocks.{key}", hint=REBUILD)
        bad = [f for f in ("latency_ms", "ci_low_ms", "ci_high_ms", "flops", "mac_bytes") if not finite_number(e[f])]
        if bad or e["latency_ms"] <= 0:
            raise ResultsError(f"block {key}: {', '.join(bad) or 'latency_ms'} is not a positive finite number",
                               where=f"{where}: blocks.{key}", hint="rebuild that block: delete the entry and run "
                                                                    "'latbench lut build ... --resume'")
    cal = data.get("calibration")
    if cal is not None and not (isinstance(cal, dict) and finite_number(cal.get("factor")) and cal["factor"] > 0
                                and finite_number(cal.get("log_halfwidth")) and cal["log_halfwidth"] >= 0
                                and all(finite_number(cal.get(t, 0.0)) and cal.get(t, 0.0) >= 0
                                        for t in ("per_block_ms", "per_weight_mb_ms"))):
        raise ResultsError("the calibration is not {factor > 0, log_halfwidth >= 0, per_block_ms >= 0, per_weight_mb_ms >= 0, ...}", where=f"{where}: calibration",
                           hint="rebuild it with 'latbench lut build ... --calibrate', or set it to null")
    meta = {k: v for k, v in data.items() if k not in ("blocks", "calibration", "format", "version", "updated")}
    return Table(meta, dict(blocks), cal, Path(path))


def machine_differences(table: Table, fingerprint: dict[str, Any], device: str, threads: int | None) -> list[str]:
    """The machine and software fields (env.machine_identity) in which this machine differs from the
    table's, in the words `latbench gate` uses (runsets.fingerprint_differences)."""
    from latbench.runsets import fingerprint_differences

    theirs = SimpleNamespace(meta={"fingerprint": table.meta["fingerprint"], "device": table.meta["device"],
                                   "threads": table.meta.get("threads")})
    ours = SimpleNamespace(meta={"fingerprint": fingerprint, "device": device, "threads": threads})
    return [d.replace("baseline", "table").replace("candidate", "this machine")
            for d in fingerprint_differences([theirs], [ours])]


def require_same_machine(table: Table, differences: list[str], allow: bool) -> list[str]:
    """ResultsError (exit 2) when the table holds for another machine, unless allowed; the warnings then."""
    if not differences:
        return []
    if not allow:
        raise ResultsError("the latency table was measured on another machine or software ("
                           + "; ".join(differences) + ")", where=str(table.path or "--table"),
                           hint="build a table on this machine ('latbench lut build'), or pass "
                                "--allow-different-machine to predict with it anyway")
    return [f"the table holds for another machine ({'; '.join(differences)}): predictions may be off"]
