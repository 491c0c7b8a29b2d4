"""A registry of network builders, looked up by the name a suite gives (`builder: g2_group_conv`)."""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel

from latbench.errors import SuiteError

if TYPE_CHECKING:  # annotations only: the registry itself needs no torch (the builders' modules do)
    from torch import nn


@dataclass(frozen=True)
class Builder:
    """How to make one family of networks.

    params: pydantic model of the case's parameters (shape and widths), extra keys refused.
    build(params, blocks) -> nn.Module taking a (batch, in_channels(params), H, W) tensor.
    width_names: the channel-width parameters (scaled by a suite's scales, picked by the solver).
    widths(params) -> {width name: divisor}: the channel widths that `scale` multiplies and the
        FLOPs solver picks, each a multiple of its divisor.
    proportions(params) -> {width name: relative size}: the shape the solver keeps while it
        searches for a FLOPs target (e.g. c2 = 6 * c1 for a 1:6 pair).
    input_shape(params) -> the input's shape without the batch dimension, when it is not
        (in_channels, suite height, suite width) (user modules give their own).
    make(params) -> (model, input) that exist already, on their device, used as they are
        (`latbench.measure`'s objects); build and input_shape are then not used.
    """

    name: str
    summary: str
    params: type[BaseModel]
    width_names: tuple[str, ...]
    build: Callable[[dict[str, Any], int], nn.Module]
    in_channels: Callable[[dict[str, Any]], int]
    widths: Callable[[dict[str, Any]], dict[str, int]]
    proportions: Callable[[dict[str, Any]], dict[str, float]]
    input_shape: Callable[[dict[str, Any]], tuple[int, ...]] | None = None
    make: Callable[[dict[str, Any]], tuple[nn.Module, Any]] | None = None


_REGISTRY: dict[str, Builder] = {}


def register_builder(builder: Builder) -> Builder:
    if builder.name in _REGISTRY:
        raise ValueError(f"builder {builder.name!r} registered twice")
    _REGISTRY[builder.name] = builder
    return builder


def list_builders(pattern: str = "*") -> list[str]:
    """Names of the builders a suite can name (private ones, '_object' of latbench.measure, are not listed)."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern) and not n.startswith("_"))


def get_builder(name: str, where: str | None = None) -> Builder:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise SuiteError(f"unknown builder {name!r}", where=where,
                         hint=f"{hint}known builders: {', '.join(list_builders())} (see 'latbench list')") from None


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()  # BuilderInfo.params: a parameter without a default


@dataclass(frozen=True)
class BuilderInfo:
    """What `latbench list` shows of a builder: its summary, parameters with defaults, and widths."""

    name: str
    summary: str
    params: tuple[tuple[str, Any], ...]  # (parameter, default), REQUIRED where the suite must give it
    width_names: tuple[str, ...]

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(k for k, v in self.params if v is REQUIRED)


def describe_builder(name: str) -> BuilderInfo:
    """A builder's parameters and their defaults as data (a default_factory is called)."""
    b = get_builder(name)
    params = tuple((k, REQUIRED if f.is_required() else f.get_default(call_default_factory=True))
                   for k, f in b.params.model_fields.items())
    return BuilderInfo(b.name, b.summary, params, tuple(b.width_names))


def describe_builders(pattern: str = "*") -> list[BuilderInfo]:
    """describe_builder of every listed builder (latbench.models registers them all on import)."""
    return [describe_builder(n) for n in list_builders(pattern)]
