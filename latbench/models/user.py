"""The `user` builder: a module made by the user's own factory, named by import path.

`params: {factory: "package.module:function", kwargs: {...}, input_shape: [C, H, W]}`. Importing a
module runs its code, so a suite naming user code loads only with `latbench run --allow-import`
(suite/load.py enforces that before anything here is called). `blocks` stacks that many copies of
the module, so leave `blocks: 1` unless the module maps its input shape to itself.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from latbench.errors import SuiteError
from latbench.models.registry import Builder, register_builder

FACTORY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class UserParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    factory: str = Field(pattern=FACTORY_PATTERN, description="'package.module:function' returning an nn.Module")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments for the factory")
    input_shape: list[int] = Field(min_length=1, max_length=8, description="input shape without the batch, "
                                   "e.g. [3, 224, 224]")


def resolve_factory(path: str) -> Callable[..., Any]:
    """Import 'package.module:function' and return the function. The current directory is searched
    first, as `python -m` does. Raises SuiteError (without a location; the caller adds it)."""
    module_name, _, attr = path.partition(":")
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SuiteError(f"cannot import {module_name!r} for factory {path!r}: {exc}",
                         hint="install the package or run latbench from the directory that holds it "
                              "(or put it on PYTHONPATH)") from None
    finally:
        if added:
            sys.path.remove(os.getcwd())
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise SuiteError(f"module {module_name!r} has no callable {attr!r} (factory {path!r})",
                         hint=f"name a function or class defined in {module_name}")
    return fn


def _build(p: dict[str, Any], blocks: int) -> nn.Module:
    factory = resolve_factory(p["factory"])
    mods = [factory(**p["kwargs"]) for _ in range(blocks)]
    if not isinstance(mods[0], nn.Module):
        raise TypeError(f"factory {p['factory']!r} returned {type(mods[0]).__name__}, not a torch.nn.Module")
    return mods[0] if blocks == 1 else nn.Sequential(*mods)


register_builder(Builder(
    name="user",
    summary="your own nn.Module from factory 'package.module:function' with kwargs and input_shape "
            "(needs 'latbench run --allow-import')",
    params=UserParams,
    width_names=(),
    build=_build,
    in_channels=lambda p: p["input_shape"][0],
    widths=lambda p: {},
    proportions=lambda p: {},
    input_shape=lambda p: tuple(p["input_shape"]),
))
