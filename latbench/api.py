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
                    model = model.to(self.device).eval()
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
    if baseline is not None and baseline not in named:
        raise MeasureError(f"baseline {baseline!r} is not one of the models", where=WHERE, hint=f"use one of {names}")
    if not re.match(NAME_PATTERN, name):
        raise MeasureError(f"name {name!r} cannot be a file name stem", where=WHERE,
                           hint="use letters, digits and _ . = + - (e.g. 'my-models')")
    if schedule not in SCHEDULES:
        raise MeasureError(f"schedule {schedule!r} is unknown", where=WHERE, hint="use " + ", ".join(SCHEDULES))
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
