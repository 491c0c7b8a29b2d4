"""What `latbench lut build`, `latbench predict` and `latbench.predict()` do, without rendering.

`build_table`: resolve the networks, cut them into blocks, check the output before anything is
measured, measure the blocks the table lacks through the run wing (measure.py) with the table saved
after every group, and with `calibrate` measure the networks whole too and fit the calibration.
`predict_networks`: the table read and checked against this machine, each network cut and predicted.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from latbench.errors import LatbenchError
from latbench.predict import measure as _measure
from latbench.predict.model import Prediction, calibrate, fit_table, predict_blocks
from latbench.predict.networks import Network, resolve
from latbench.predict.table import Table, check_writable, machine_differences, new_table, read_table, \
    require_same_machine, save_table

LUT_MAX_TIME = 0.3  # default measurement per block (s): blocks are short, and there are hundreds
WHERE = "latbench.predict"


@dataclass
class BuildPlan:
    """A build checked and cut, before anything is measured (the CLI prints its estimate)."""

    table: Table
    output: Path
    networks: list[Network]
    per_network: dict[str, list[tuple[str, Any]]]
    todo: dict[str, Any]
    opts: Any  # run.options.RunOptions of the blocks' run
    resumed: bool
    force: bool
    fuse: bool = True

    def estimate_s(self) -> tuple[float, float]:
        """(typical, at most) seconds the blocks' measurement takes: per block its build, count, warm-up and
        minimum rounds (~0.2 s on the 2-core development machine, docs/prediction.md) and its --max-time,
        which the stop rule usually does not use up (typical: 70 %)."""
        from latbench.run.options import policy_of

        p = policy_of(self.opts)
        n = len(self.todo) + -(-len(self.todo) // _measure.GROUP)  # and each group's reference
        return n * (0.2 + 0.7 * p.max_time_s), n * (0.25 + p.warmup_s + p.max_time_s)


@dataclass
class BuildResult:
    table: Table
    output: Path
    measured: int
    failed: list[tuple[str, str]] = field(default_factory=list)
    interrupted: Any = None
    calibration: dict[str, Any] | None = None


def plan_build(names: Sequence[str], output: str | Path | None, *, resume: str | Path | None = None, force: bool = False,
               opts: Any, input: str | None = None, batch: int = 1, allow_import: bool = False,
               fuse: bool = True, calibrate: bool = False) -> BuildPlan:
    """Resolve, cut and check; LatbenchError (exit 2) for anything wrong, before anything is measured."""
    from latbench import env
    from latbench.devices import default_platform
    from latbench.run.options import check_options, run_policy
    from latbench.run.session import device_of

    check_options(opts)
    if resume is not None and output is not None and Path(output) != Path(resume):
        raise LatbenchError(f"--resume {resume} and -o {output} name two tables", where="-o",
                            hint="--resume continues that table in place: leave -o out")
    networks = resolve(names, input=input, batch=batch, platform=default_platform(opts.device),
                       allow_import=allow_import)
    if calibrate and len(networks) < 2:
        raise LatbenchError(f"--calibrate fits how whole networks differ from their sums of blocks, and needs at "
                            f"least 2 networks ({len(networks)} given)", where="--calibrate",
                            hint="name more networks, e.g. a suite such as 'networks'")
    device = device_of(opts)
    fp = env.fingerprint()
    if resume is not None:
        table = read_table(resume, "--resume")
        require_same_machine(table, machine_differences(table, fp, device.name, device.threads), allow=False)
        target = check_writable(resume, True, "--resume")
    else:
        target = check_writable(output or f"lut-{device.name}.json", force)
        table = new_table(device.name, device.threads, "eager", opts.latency, fp, dataclasses.asdict(run_policy(opts)),
                          list(opts.argv))
    per, todo = _measure.needed(networks, table, fuse)
    return BuildPlan(table, target, networks, per, todo, opts, resume is not None, force, fuse)


def run_build(plan: BuildPlan, events: Any = None, calibrate_with: Any = None) -> BuildResult:
    """Measure what the plan lacks; the table is saved after every group (and once at the start)."""
    state = {"first": not plan.resumed and not plan.force}

    def save() -> None:
        save_table(plan.table, plan.output, force=not state["first"])
        state["first"] = False

    save()
    outcome, failed = _measure.measure_blocks(plan.opts, plan.table, plan.todo, save, events)
    result = BuildResult(plan.table, plan.output, len(plan.todo) - len(failed), failed, outcome.interrupted)
    if calibrate_with is not None and outcome.interrupted is None:
        measured = _measure.measure_networks(calibrate_with, plan.networks, events)
        raw = {n: predict_blocks(n, plan.per_network[n], plan.table, calibrated=False) for n in measured}
        pairs = {n: (raw[n].blocks_sum_ms, ms, raw[n].block_uses, raw[n].weight_bytes) for n, ms in measured.items()}
        plan.table.calibration = calibrate(pairs)
        result.calibration = plan.table.calibration
        save()
    return result


def open_table(path: str | Path, device: str = "cpu", allow_different_machine: bool = False) -> tuple[Table, list[str]]:
    """The table, checked against this machine (ResultsError unless allowed); the warnings."""
    from latbench import env

    table = read_table(path)
    if table.meta["device"] != device:
        raise LatbenchError(f"the table was measured on {table.meta['device']}, not {device}", where=str(path),
                            hint=f"give --device {table.meta['device']} or a table built with --device {device}")
    diffs = machine_differences(table, env.fingerprint(), device, table.meta.get("threads"))
    return table, require_same_machine(table, diffs, allow_different_machine)


def predict_networks(networks: Sequence[Network], table: Table, fuse: bool = True) -> list[Prediction]:
    fits = None
    out = []
    for net in networks:
        keyed = [(b.key(table.context), b) for b in _measure.network_blocks(net, fuse)]
        if fits is None and any(k not in table.blocks for k, _ in keyed):
            fits = fit_table(table)
        out.append(predict_blocks(net.name, keyed, table, fits))
    return out


def predict(model: Any, *input_shape: int, table: str | Path, device: str = "cpu", batch: int = 1,
            allow_different_machine: bool = False, fuse: bool = True) -> Prediction:
    """The predicted latency of a network from a latency table (`latbench lut build`).

    model: a built-in network's name (`latbench list`), 'package.module:function', or an nn.Module;
    input_shape: the input without the batch (C, H, W), needed for a module or a factory (a built-in
    network takes (3, R, R) or nothing for 224). The table must hold for this machine (ResultsError
    otherwise, unless allow_different_machine). Returns a model.Prediction: latency_ms with its
    interval (low_ms, high_ms at `level`) and the per-block breakdown.
    """
    import torch
    from torch import nn

    from latbench.predict.blocks import network_blocks

    if any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in input_shape):
        raise LatbenchError(f"input_shape {input_shape!r} is not positive whole numbers", where=WHERE,
                            hint="give the input without the batch, e.g. predict(m, 3, 224, 224, table=...)")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise LatbenchError(f"batch={batch!r} is not a positive whole number", where=WHERE, hint="give e.g. batch=1")
    tab, _ = open_table(table, device, allow_different_machine)
    if isinstance(model, nn.Module):
        if not input_shape:
            raise LatbenchError("an nn.Module needs its input shape", where=WHERE,
                                hint="give it without the batch: predict(m, 3, 224, 224, table=...)")
        param = next(iter(model.parameters()), None)
        x = torch.randn(batch, *input_shape, device=param.device if param is not None else "cpu")
        was = model.training
        try:
            keyed = [(b.key(tab.context), b) for b in network_blocks(model.eval(), x, fuse)]
        finally:
            model.train(was)
        return predict_blocks(type(model).__name__, keyed, tab)
    if not isinstance(model, str):
        raise LatbenchError(f"model is a {type(model).__name__}", where=WHERE,
                            hint="give an nn.Module, a built-in network's name or 'package.module:function'")
    shape = "x".join(map(str, input_shape)) if input_shape else None
    return predict_networks(resolve([model], input=shape, batch=batch), tab, fuse)[0]
