"""Models named on the command line (`latbench run --model ...`) as an in-memory suite.

`--model MODULE:FACTORY` (your own code: naming it is the opt-in to import it) or `--model NAME` (a
built-in whole network, `latbench list`), with `--input CxHxW`, `--kwargs JSON`, `--batch 1,8`,
`--dtype float32,bfloat16`, `--channels-last` and `--compile`, become one validated `Suite` that the
session runs like a file: the same checks, groups, interleaving and results files. The cases are
measured together (one group per batch x dtype point), the first model being the baseline of ratios.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
from dataclasses import dataclass
from typing import Any, Sequence

from pydantic import ValidationError

from latbench.errors import SuiteError
from latbench.models import get_builder
from latbench.models.networks import NETWORKS
from latbench.suite.load import Suite, SuiteModel, _check_case, _check_user

SUITE_NAME = "models"
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ModelRequest:
    """What `latbench run --model ...` asked for (the CLI's options, parsed)."""

    models: tuple[str, ...]
    input: str | None = None  # "CxHxW", e.g. "3x224x224"
    kwargs: tuple[str, ...] = ()  # JSON objects: one for every model, or one per model (or one JSON list)
    batches: tuple[int, ...] = (1,)
    dtypes: tuple[str, ...] = ("float32",)
    channels_last: bool = False
    compile: bool = False

    def label(self) -> str:
        """How the suite is named in metadata and errors: the options that made it."""
        return " ".join(f"--model {m}" for m in self.models)


def parse_input(text: str, where: str = "--input") -> tuple[int, ...]:
    """'3x224x224' (or '3,224,224') -> (3, 224, 224)."""
    parts = text.lower().replace(",", "x").replace("*", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape) or len(shape) > 8:
        raise SuiteError(f"{text!r} is not a shape", where=where,
                         hint="give the input without the batch as CxHxW, e.g. --input 3x224x224")
    return shape


def parse_list(text: str, what: str) -> tuple[str, ...]:
    """'1,8' -> ('1', '8'): distinct, non-empty items."""
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items or len(set(items)) != len(items):
        raise SuiteError(f"--{what} {text!r}: give distinct comma-separated values", where=f"--{what}",
                         hint=f"e.g. --{what} {'1,8' if what == 'batch' else 'float32,bfloat16'}")
    return items


def parse_batches(text: str) -> tuple[int, ...]:
    out = []
    for item in parse_list(text, "batch"):
        if not item.isdigit() or not 1 <= int(item) <= 65536:
            raise SuiteError(f"--batch {text!r}: {item!r} is not a batch size", where="--batch",
                             hint="give positive integers, e.g. --batch 1,8")
        out.append(int(item))
    return tuple(out)


def parse_dtypes(text: str) -> tuple[str, ...]:
    items = parse_list(text, "dtype")
    for item in items:
        if item not in DTYPES:
            close = difflib.get_close_matches(item, DTYPES, n=1)
            raise SuiteError(f"--dtype {text!r}: unknown dtype {item!r}", where="--dtype",
                             hint=(f"did you mean {close[0]!r}? " if close else "") + f"use {', '.join(DTYPES)}")
    return items


_KWARGS_HINT = 'give a JSON object, e.g. --kwargs \'{"num_classes": 10}\', or a list of them, one per --model'


def from_options(models: Sequence[str] | None, input: str | None = None, kwargs: Sequence[str] | None = None,
                 batch: str | None = None, dtype: str | None = None, channels_last: bool = False,
                 compile: bool = False) -> tuple[ModelRequest | None, int | None]:
    """`latbench run`'s --model options as a ModelRequest (None without --model), and --batch for suites.
    The options of --model without --model, or several batches for a suite, are refused (SuiteError)."""
    batches = parse_batches(batch) if batch is not None else None
    if not models:
        given = [n for n, v in (("--input", input), ("--kwargs", kwargs), ("--dtype", dtype),
                                ("--channels-last", channels_last), ("--compile", compile)) if v]
        if given:
            raise SuiteError(f"{given[0]} is an option of --model", hint="add --model NAME|MODULE:FACTORY, "
                             "or use a suite's 'sweep:' for dtype, memory format and mode")
        if batches and len(batches) > 1:
            raise SuiteError(f"--batch {batch}: several batches need --model", hint="for a suite, give one "
                             "batch, or list them under 'sweep: batch:' in the suite")
        return None, batches[0] if batches else None
    req = ModelRequest(models=tuple(models), input=input, kwargs=tuple(kwargs or ()), batches=batches or (1,),
                       dtypes=parse_dtypes(dtype) if dtype else ("float32",), channels_last=channels_last,
                       compile=compile)
    return req, None


def _json_kwargs(text: str) -> list[dict[str, Any]]:
    """One --kwargs: a JSON object, or a JSON list of objects (one per --model)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SuiteError(f"--kwargs {text!r} is not JSON ({exc.msg} at column {exc.colno})", where="--kwargs",
                         hint=_KWARGS_HINT) from None
    if not isinstance(value, list):
        value = [value]
        if not isinstance(value[0], dict):
            raise SuiteError(f"--kwargs {text!r} is a {type(value[0]).__name__}, not a JSON object", where="--kwargs",
                             hint=_KWARGS_HINT)
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise SuiteError(f"--kwargs {text!r}: item {i} of the list is {json.dumps(item)}, not a JSON object",
                             where="--kwargs", hint=_KWARGS_HINT)
    return value


def _kwargs(req: ModelRequest) -> list[dict[str, Any]]:
    """One kwargs mapping per model: --kwargs once (an object for every model, or a JSON list with one
    object per model) or once per --model."""
    n = len(req.models)
    lists = [t for t in req.kwargs if t.lstrip().startswith("[")]
    if lists and len(req.kwargs) > 1:
        raise SuiteError("a JSON list of --kwargs and another --kwargs", where="--kwargs",
                         hint="give one JSON list with an object per --model, or one --kwargs object per --model")
    out = [kw for text in req.kwargs for kw in _json_kwargs(text)]
    if len(out) not in (0, 1, n) or (lists and len(out) != n):
        given = f"a JSON list of {len(out)} object(s)" if lists else f"{len(out)} --kwargs"
        raise SuiteError(f"{given} for {n} --model", where="--kwargs",
                         hint="give one --kwargs for every model, or one per --model in the same order "
                              "(repeated, or as one JSON list)")
    return out * n if len(out) == 1 else out or [{} for _ in range(n)]


def _case(spec: str, kwargs: dict[str, Any], shape: tuple[int, ...] | None, i: int) -> dict[str, Any]:
    """The suite case of one --model."""
    where = f"--model {spec}"
    name = spec + (f" {json.dumps(kwargs, sort_keys=True, separators=(',', ':'))}" if kwargs else "")
    if ":" in spec:
        if shape is None:
            _factory(spec)  # a factory that does not exist is the first thing to fix
            raise SuiteError(f"{where}: your module's input shape is needed", where="--input",
                             hint="add --input CxHxW (without the batch), e.g. --input 3x224x224")
        return {"name": name, "builder": "user",
                "params": {"factory": spec, "kwargs": kwargs, "input_shape": list(shape)}}
    if spec not in NETWORKS:
        close = difflib.get_close_matches(spec, sorted(NETWORKS), n=1)
        raise SuiteError(f"--model {spec!r} is neither a built-in network nor MODULE:FACTORY", where=where,
                         hint=(f"did you mean {close[0]!r}? " if close else "")
                         + f"built-in networks: {', '.join(sorted(NETWORKS))}; or your own 'package.module:function'")
    params = dict(kwargs)
    if shape is not None:
        if len(shape) != 3 or shape[0] != 3 or shape[1] != shape[2]:
            raise SuiteError(f"{where}: a built-in network takes a 3xRxR image, not --input {'x'.join(map(str, shape))}",
                             where="--input", hint="give e.g. --input 3x224x224, or leave --input out (224)")
        if "resolution" in params and params["resolution"] != shape[1]:
            raise SuiteError(f"{where}: --kwargs resolution {params['resolution']} and --input {shape[1]} disagree",
                             where="--kwargs", hint="give the size once")
        params["resolution"] = shape[1]
    allowed = get_builder(spec).params.model_fields
    for key in params:
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            raise SuiteError(f"{where}: unknown parameter {key!r}", where="--kwargs",
                             hint=(f"did you mean {close[0]!r}? " if close else "") + f"allowed: {', '.join(allowed)}")
    return {"name": name, "builder": spec, "params": params}


def _factory(spec: str):
    """The factory --model MODULE:FACTORY names (imports its module: naming it is the opt-in)."""
    from latbench.models.user import resolve_factory

    try:
        return resolve_factory(spec)
    except SuiteError as exc:
        raise SuiteError(exc.message, where=f"--model {spec}", hint=exc.hint) from None


def _check_kwargs(params: dict[str, Any]) -> None:
    """The factory accepts the --kwargs given (checked on its signature, without calling it)."""
    from latbench.models.user import resolve_factory

    fn = resolve_factory(params["factory"])
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return
    try:
        sig.bind(**params["kwargs"])
    except TypeError as exc:
        raise SuiteError(f"factory {params['factory']!r} does not accept --kwargs {json.dumps(params['kwargs'])}: "
                         f"{exc}", hint=f"its parameters: {', '.join(sig.parameters) or 'none'}") from None


def build_suite(req: ModelRequest) -> Suite:
    """The models of `req` as a validated in-memory Suite (SuiteError, exit 2, for a bad spec)."""
    if not req.models:
        raise SuiteError("no --model given", where="--model", hint="e.g. --model shufflenet_v2 --input 3x224x224")
    if len(set(req.models)) != len(req.models) and not req.kwargs:
        raise SuiteError("the same --model is given twice", where="--model", hint="name each model once")
    shape = parse_input(req.input) if req.input else None
    for d in req.dtypes:
        if d not in DTYPES:
            raise SuiteError(f"--dtype: unknown dtype {d!r}", where="--dtype", hint=f"use {', '.join(DTYPES)}")
    cases = [_case(m, kw, shape, i) for i, (m, kw) in enumerate(zip(req.models, _kwargs(req)))]
    names = [c["name"] for c in cases]
    if len(set(names)) != len(names):
        raise SuiteError("two --model give the same case", where="--model", hint="name each model once")
    hw = shape[1:] if shape and len(shape) == 3 else (224, 224)  # used by user modules' counts only
    sweep: dict[str, Any] = {"batch": list(req.batches), "dtype": list(req.dtypes)}
    if req.channels_last:
        sweep["memory_format"] = ["channels_last"]
    if req.compile:
        sweep["mode"] = ["compile"]
    data = {"suite": SUITE_NAME, "experiment": SUITE_NAME, "builder": cases[0]["builder"], "blocks": 1,
            "batch": req.batches[0], "input": {"height": hw[0], "width": hw[1]},
            "description": "models named on the command line: " + ", ".join(req.models),
            "sweep": sweep, "cases": cases}
    try:
        model = SuiteModel.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise SuiteError(f"{loc}: {err['msg']}", where=req.label(), hint="see 'latbench run --help'") from None
    text = json.dumps(data, sort_keys=True)
    suite = Suite(model=model, path=req.label(), sha256=hashlib.sha256(text.encode()).hexdigest(), lines={})
    for i, case in enumerate(model.cases):
        try:
            if suite.builder_of(i) == "user":
                _check_user(suite, i, allow_import=True)  # naming the model is the opt-in
                _check_kwargs(suite.params_of(i))
            _check_case(suite, i, case)
        except SuiteError as exc:
            raise SuiteError(exc.message, where=f"--model {req.models[i]}", hint=exc.hint) from None
    return suite
