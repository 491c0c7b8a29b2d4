"""latbench as a library: `measure(models, example_inputs)` -> the results table as a DataFrame.

Models given as Python objects become the cases of one group of an `ObjectSource` (a case source of
the run wing, latbench/run/sources.py) and go through the run's one orchestration
(run.session.run_sources): the same device object, stop rule, pipeline, rows, metadata and, with
`results_dir`, the same three files, so `latbench compare` reads them. There is no second loop here.

The objects reach the pipeline through a builder of their own (`_object`, registered below, whose
`make` hands back the model and input as they are); the source registers its objects under fresh
keys while the run measures them and forgets them when it ends.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from latbench.errors import LatbenchError
from latbench.models.registry import Builder, register_builder
from latbench.records import RESULT_COLUMNS, SAMPLE_COLUMNS, CaseSpec
from latbench.results.schema import apply_dtypes
from latbench.run.options import SCHEDULES, RunOptions
from latbench.run.session import device_of, run_sources

__all__ = ["measure", "MeasureError", "OBJECT_BUILDER"]

OBJECT_BUILDER = "_object"  # the builder name of measure()'s objects ('latbench list' does not show it)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$"  # a suite name (it goes into file names)
WHERE = "latbench.measure"


class MeasureError(LatbenchError):
    """measure() was called with arguments it cannot use."""


# ---------------------------------------------------------------- the objects' builder

_OBJECTS: dict[str, tuple[nn.Module, Any]] = {}
_KEYS = itertools.count()
_LOCK = threading.Lock()


class _ObjectParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key: str


def _make(params: dict[str, Any]) -> tuple[nn.Module, Any]:
    try:
        return _OBJECTS[params["key"]]
    except KeyError:
        raise RuntimeError(f"latbench.measure object {params['key']!r} is gone (measured after measure() returned?)"
                           ) from None


def _unsupported(*_: Any) -> Any:
    raise RuntimeError("the _object builder hands back existing objects only (Builder.make)")


register_builder(Builder(
    name=OBJECT_BUILDER,
    summary="the models given to latbench.measure() (Python objects; not for suites)",
    params=_ObjectParams, width_names=(), build=_unsupported, in_channels=_unsupported,
    widths=lambda p: {}, proportions=lambda p: {}, make=_make,
))


class _Bound(nn.Module):
    """model(x, *rest): the first input is the one the runner passes, the rest are bound here."""

    def __init__(self, model: nn.Module, rest: tuple[Any, ...]):
        super().__init__()
        self.model = model
        self.rest = rest

    def forward(self, x: Any) -> Any:
        return self.model(x, *self.rest)


# ---------------------------------------------------------------- arguments

def _models(models: Any) -> dict[str, nn.Module]:
    if isinstance(models, nn.Module):
        return {type(models).__name__: models}
    if isinstance(models, Mapping):
        if not models:
            raise MeasureError("models is an empty dict", where=WHERE, hint="give a model or {name: model}")
        out = {}
        for name, m in models.items():
            if not isinstance(name, str) or not re.match(r"^\S(.*\S)?$", name):
                raise MeasureError(f"model name {name!r} is not a non-empty string without outer spaces",
                                   where=WHERE, hint="name models with strings, e.g. {'old': m1, 'new': m2}")
            if not isinstance(m, nn.Module):
                raise MeasureError(f"models[{name!r}] is a {type(m).__name__}, not a torch.nn.Module", where=WHERE,
                                   hint="wrap a function in an nn.Module whose forward calls it")
            out[name] = m
        return out
    raise MeasureError(f"models is a {type(models).__name__}", where=WHERE,
                       hint="give a torch.nn.Module or a dict {name: module}")


def _is_input(x: Any) -> bool:
    return isinstance(x, torch.Tensor) or (isinstance(x, (tuple, list)) and len(x) > 0)


def _inputs(example_inputs: Any, names: list[str]) -> dict[str, tuple[Any, ...]]:
    """One input for every model, or {name: input} with one per model; each as a tuple of arguments."""
    if isinstance(example_inputs, Mapping):
        missing = [n for n in names if n not in example_inputs]
        extra = [str(k) for k in example_inputs if k not in names]
        if missing or extra:
            raise MeasureError(f"example_inputs has no input for {missing}" if missing
                               else f"example_inputs names {extra}, which are not models",
                               where=WHERE, hint=f"give one input for all models or one per model: {names}")
        given = dict(example_inputs)
    else:
        given = {n: example_inputs for n in names}
    out = {}
    for n, x in given.items():
        if not _is_input(x):
            raise MeasureError(f"the example input of {n!r} is a {type(x).__name__}", where=WHERE,
                               hint="give a tensor, or a tuple of the model's positional arguments")
        out[n] = (x,) if isinstance(x, torch.Tensor) else tuple(x)
    return out


MAX_NAME = 100  # as a suite's name: it is part of file names
MAX_THREADS = 1024  # more intra-op threads than this is no benchmark setting (and may exhaust the machine)
MIN_TIMES = {"max_time": 0.01, "min_time": 0.0, "target": 0.0001}  # as `latbench run`'s option minimums
MAX_SEED = 2**63 - 1


def _check_data(named: dict[str, nn.Module], args: dict[str, tuple[Any, ...]]) -> None:
    """MeasureError for a model or input without data: on the meta device nothing can be timed."""
    for n, model in named.items():
        if any(t.is_meta for t in itertools.chain(model.parameters(), model.buffers())):
            raise MeasureError(f"model {n!r} has parameters on the meta device (shapes without data), which "
                               f"cannot run", where=WHERE, hint="build or load the model on 'cpu' (then device= moves it)")
        for i, a in enumerate(args[n]):
            if isinstance(a, torch.Tensor) and a.is_meta:
                raise MeasureError(f"example input {i} of {n!r} is on the meta device (a shape without data)",
                                   where=WHERE, hint="give a real tensor, e.g. torch.randn(1, 3, 224, 224)")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v: float) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an int beyond any float (10**400)
        return False


def _check_options(**kw: Any) -> None:
    """The options' types and ranges, as `latbench run` checks its options: MeasureError, never a late
    RuntimeError from torch or a run that cannot stop (a NaN time)."""
    if not isinstance(kw["device"], str):
        raise MeasureError(f"device {kw['device']!r} is not a string", where=WHERE, hint="use 'cpu' or 'cuda'")
    threads = kw["threads"]
    if threads is not None and not (_is_int(threads) and 1 <= threads <= MAX_THREADS):
        raise MeasureError(f"threads={threads!r} is not a whole number from 1 to {MAX_THREADS}", where=WHERE,
                           hint="give e.g. threads=1, or None for the default")
    modes = kw["modes"]
    if modes is not None and not (isinstance(modes, str) and modes.strip(" ,")):
        raise MeasureError(f"modes={modes!r} is not a comma-separated string of modes", where=WHERE,
                           hint="give e.g. modes='eager' or modes='eager,compile'")
    for key, low in MIN_TIMES.items():
        v = kw[key]
        if v is None:
            continue
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not _finite(v) or v < low:
            raise MeasureError(f"{key}={v!r} is not a finite number of at least {low:g}", where=WHERE,
                               hint=f"give {key} as a number, e.g. {key}={max(low, 0.5):g}, or None for the default")
    for key in ("quick", "roofline"):
        if not isinstance(kw[key], bool):
            raise MeasureError(f"{key}={kw[key]!r} is not True or False", where=WHERE, hint=f"give {key}=True or False")
    if kw["fake_backend"] is not None and not isinstance(kw["fake_backend"], bool):
        raise MeasureError(f"fake_backend={kw['fake_backend']!r} is not True, False or None", where=WHERE,
                           hint="give fake_backend=True (tests) or leave it out")
    seed = kw["seed"]
    if not (_is_int(seed) and 0 <= seed <= MAX_SEED):
        raise MeasureError(f"seed={seed!r} is not a whole number from 0 to {MAX_SEED}", where=WHERE,
                           hint="give e.g. seed=0")
    rd = kw["results_dir"]
    if rd is not None and (not isinstance(rd, (str, os.PathLike)) or not os.fspath(rd).strip()):
        raise MeasureError(f"results_dir={rd!r} is not a path", where=WHERE,
                           hint="give a directory as a string or pathlib.Path, or None to keep results in memory")


def _to(x: Any, device: str) -> Any:
    return x.to(device) if isinstance(x, torch.Tensor) else x


def _dtype(model: nn.Module, args: tuple[Any, ...]) -> str:
    for t in itertools.chain(model.parameters(), (a for a in args if isinstance(a, torch.Tensor))):
        if t.is_floating_point():
            return str(t.dtype).removeprefix("torch.")
    first = next((a for a in args if isinstance(a, torch.Tensor)), None)
    return str(first.dtype).removeprefix("torch.") if first is not None else "float32"


def _batch(args: tuple[Any, ...]) -> int:
    first = next((a for a in args if isinstance(a, torch.Tensor)), None)
    return int(first.shape[0]) if first is not None and first.dim() > 0 else 1


# ---------------------------------------------------------------- the source

@dataclass
class ObjectSource:
    """measure()'s models as a case source: one group, the objects registered while it is measured."""

    name: str
    models: dict[str, nn.Module]
    args: dict[str, tuple[Any, ...]]
    baseline: str
    device: str
    widths: str = "object"
    claims: list[Any] = field(default_factory=list)
    in_process_only: bool = True
    path: str = WHERE
    _keys: dict[str, str] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "path": WHERE, "sha256": None, "experiment": self.name,
                "description": f"latbench.measure of {', '.join(self.models)}"}

    def specs(self, platform: str, **_: Any) -> list[CaseSpec]:
        with _LOCK:
            self._keys = {n: f"{n}#{next(_KEYS)}" for n in self.models}
        return [CaseSpec(suite=self.name, experiment=self.name, case=n, scale=1, builder=OBJECT_BUILDER,
                         params=(("key", self._keys[n]),), blocks=1, batch=_batch(self.args[n]), height=0, width=0,
                         baseline_case=self.baseline, widths_mode="object", dtype=_dtype(m, self.args[n]),
                         source=WHERE) for n, m in self.models.items()]

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        training = [(m, m.training) for model in self.models.values() for m in model.modules()]
        try:
            with _LOCK:
                for n, model in self.models.items():
                    try:
                        model = model.to(self.device).eval()
                    except Exception as exc:  # noqa: BLE001 - the user's module refuses: their error, one line
                        raise MeasureError(f"model {n!r}: .to({self.device!r}).eval() raised {type(exc).__name__}: "
                                           f"{exc}", where=WHERE, hint="fix the module, or measure it in eval mode "
                                                                       "already on the device") from None
                    moved = tuple(_to(a, self.device) for a in self.args[n])
                    _OBJECTS[self._keys[n]] = (model if len(moved) == 1 else _Bound(model, moved[1:]), moved[0])
            yield
        finally:
            for key in self._keys.values():
                _OBJECTS.pop(key, None)
            for m, was in training:
                m.train(was)


# ---------------------------------------------------------------- measure

def measure(models: nn.Module | Mapping[str, nn.Module], example_inputs: Any, device: str = "cpu", *,
            baseline: str | None = None, threads: int | None = None, modes: str | None = None,
            schedule: str = "interleaved", max_time: float | None = None, min_time: float | None = None,
            target: float | None = None, quick: bool = False, seed: int = 0, roofline: bool = False,
            results_dir: str | Path | None = None, name: str = "measure", fake_backend: bool | None = None,
            ) -> pd.DataFrame:
    """Measure models interleaved, as `latbench run` measures a suite's group; one row per model x mode.

    models: an nn.Module, or {name: module} (the first is the baseline of every ratio unless
        `baseline` names another). example_inputs: a tensor, or a tuple of positional arguments,
        for all models; or {name: input}, one per model. Models are put in eval() for the
        measurement (their training flags are restored afterwards) and run under inference_mode;
        models and tensors are moved to `device` (in place, as Module.to does).
    device, threads, modes, schedule, max_time, min_time, target, quick, seed, roofline: as the
        `latbench run` options of the same names (threads default 1 on cpu; torch's thread count is
        restored afterwards).
    results_dir: also write the run's three files there (<name>-<device>-<UTC time>.csv, samples,
        .json), for `latbench compare`/`gate`. name: the `suite` column and the file names' stem.
    fake_backend: time with the fake backend (tests; default $LATBENCH_FAKE_BACKEND).

    Returns a DataFrame with the results CSV's columns (RESULT_COLUMNS, same dtypes); `.attrs` holds
    the run's metadata (what the .json holds: device settings, stop policy, fingerprint, ...), and
    `.attrs["samples"]` the raw samples as records (`pd.DataFrame(df.attrs["samples"])`).
    Bad arguments raise MeasureError (a LatbenchError); a model that fails is a row with status
    'failed' and the reason in `error`, as in a run.
    """
    named = _models(models)
    names = list(named)
    args = _inputs(example_inputs, names)
    _check_data(named, args)
    if baseline is not None and (not isinstance(baseline, str) or baseline not in named):
        raise MeasureError(f"baseline {baseline!r} is not one of the models", where=WHERE, hint=f"use one of {names}")
    if not isinstance(name, str) or len(name) > MAX_NAME or not re.match(NAME_PATTERN, name):
        raise MeasureError(f"name {name!r} cannot be a file name stem", where=WHERE,
                           hint=f"use a string of letters, digits and _ . = + - (e.g. 'my-models'), at most "
                                f"{MAX_NAME} characters")
    if not isinstance(schedule, str) or schedule not in SCHEDULES:
        raise MeasureError(f"schedule {schedule!r} is unknown", where=WHERE, hint="use " + ", ".join(SCHEDULES))
    _check_options(device=device, threads=threads, modes=modes, max_time=max_time, min_time=min_time,
                   target=target, quick=quick, seed=seed, roofline=roofline, results_dir=results_dir,
                   fake_backend=fake_backend)
    opts = RunOptions(device=device, quick=quick, threads=threads, schedule=schedule, modes=modes, max_time=max_time,
                      min_time=min_time, target=target, seed=seed, roofline=roofline, argv=("latbench.measure",),
                      fake_backend=fake_backend, results_dir=Path(results_dir) if results_dir is not None else None,
                      api=True)
    threads_before, dtype_before, grad_before = torch.get_num_threads(), torch.get_default_dtype(), torch.is_grad_enabled()
    try:
        dev = device_of(opts)
        source = ObjectSource(name, named, args, baseline or names[0], dev.name)
        result = run_sources(opts, [source], device=dev).suites[0]
    finally:
        torch.set_num_threads(threads_before)
        torch.set_default_dtype(dtype_before)
        torch.set_grad_enabled(grad_before)
    df = apply_dtypes(pd.DataFrame(result.rows, columns=list(RESULT_COLUMNS)))
    df.attrs.update(result.metadata)
    df.attrs["samples"] = [{c: s.get(c) for c in SAMPLE_COLUMNS} for s in result.samples]
    return df
