"""Suite files: schema, validation with located errors, and expansion into CaseSpecs.

A suite is one experiment: a builder, a list of cases (the sweep) and the scales to run them at.
Widths come either from the suite's per-platform channel lists (`widths: paper`) or from a FLOPs
target that latbench/solver.py meets within `flops_tolerance` (`widths: flops`). A case may name its
own builder (to compare different unit types at matched FLOPs), the optional `sweep:` expands every
case over batch, dtype, memory format, threads and mode (suite/sweep.py), and `claims:` states what
the run should show (latbench/claims.py). The full schema is in docs/suites.md.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from latbench.cost import count
from latbench.claims import ClaimModel
from latbench.errors import SuiteError
from latbench.models import Builder, get_builder
from latbench.models.networks import NETWORKS
from latbench.records import CaseSpec
from latbench.solver import solve_widths
from latbench.suite.sweep import SweepModel, count_points, expand_specs, points

# A suite expanding (scales x sweep points x cases) to more cases than this is refused before anything
# is built or counted: 40,000 sweep points took 5 GB and 45 s before the first measurement.
DEFAULT_MAX_CASES = 1000
MAX_SUITE_BYTES = 4_000_000  # read at most this much of a suite file (yamlnodes.MAX_BYTES limits the text)
MAX_SCALE = 1024  # width multipliers beyond this are no experiment; 2**31 overflowed only at run time
MAX_CHANNELS = 1 << 24  # a width (scaled) beyond this is no layer any device holds (a 2^24-square weight is PBs)
from latbench.suite.yamlnodes import line_of, load_with_lines

Platform = Literal["gpu", "arm"]
Widths = Union[dict[str, int], list[dict[str, int]]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputShape(_Strict):
    height: int = Field(default=56, ge=1, le=4096)
    width: int = Field(default=56, ge=1, le=4096)


class CaseModel(_Strict):
    name: str = Field(min_length=1, description="the case's label, unique in the suite")
    builder: str | None = Field(default=None, description="this case's builder (default: the suite's)")
    params: dict[str, Any] = Field(default_factory=dict, description="builder parameters other than widths")
    widths: dict[Platform, Widths] = Field(
        default_factory=dict,
        description="per platform: one {width: channels} mapping multiplied by each scale, "
                    "or a list with one mapping per scale")
    note: str = ""


class SuiteModel(_Strict):
    suite: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")  # part of file names
    experiment: str = Field(min_length=1)
    description: str = ""
    builder: str
    params: dict[str, Any] = Field(default_factory=dict, description="parameters every case shares "
                                   "(a case's own params override them)")
    input: InputShape = InputShape()
    blocks: int = Field(default=10, ge=1, le=1000)
    batch: int = Field(default=1, ge=1, le=65536)
    scales: list[int] = Field(default=[1], min_length=1)
    widths: Literal["paper", "flops"] = "paper"
    flops_target: dict[Platform, Annotated[float, Field(ge=1, allow_inf_nan=False)]] | None = Field(
        default=None, description="multiply-adds per image at scale 1 (the paper's FLOPs); "
                                  "default: the first case's count")
    flops_tolerance: float = Field(default=0.01, gt=0, le=0.5)
    sweep: SweepModel | None = None
    claims: list[ClaimModel] = Field(default_factory=list)
    cases: list[CaseModel] = Field(min_length=1)

    @field_validator("scales")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(not 1 <= s <= MAX_SCALE for s in v) or len(set(v)) != len(v):
            raise ValueError(f"scales must be distinct positive integers up to {MAX_SCALE}, e.g. [1, 2, 4]")
        return v


@dataclass(frozen=True)
class Suite:
    model: SuiteModel
    path: str
    sha256: str
    lines: dict[tuple[Any, ...], int]

    def where(self, *path: Any) -> str:
        line = line_of(self.lines, tuple(path))
        return f"{self.path}:{line}" if line else self.path

    def builder_of(self, i: int) -> str:
        """The builder of case i: its own, else the suite's."""
        return self.model.cases[i].builder or self.model.builder

    def params_of(self, i: int) -> dict[str, Any]:
        return {**self.model.params, **self.model.cases[i].params}


def load_suite(path: str | Path, allow_import: bool = False) -> Suite:
    """Read and validate a suite file. Raises SuiteError naming file, line and fix.

    allow_import: a suite whose cases use the `user` builder imports (runs) the named Python code;
    without this opt-in (`latbench run --allow-import`) such a suite is refused.
    """
    p = Path(path)
    if not p.is_file():
        raise SuiteError("no such suite file", where=str(path),
                         hint="give a path to a .yaml suite, e.g. suites/g1.yaml")
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_SUITE_BYTES + 1)  # /dev/zero, a FIFO-like file or a huge file: never all of it
    except OSError as exc:  # /proc/self/mem, a permission denied, an I/O error
        raise SuiteError(f"cannot read the suite file: {exc.strerror or exc}", where=str(path),
                         hint="give a path to a .yaml suite, e.g. suites/g1.yaml") from None
    if len(raw) > MAX_SUITE_BYTES:
        raise SuiteError(f"file is larger than a suite may be ({MAX_SUITE_BYTES:,} bytes)", where=str(path),
                         hint="a suite is a short YAML file; split it or give the right path")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError(f"not UTF-8 text (byte {exc.start})", where=str(path), hint="save the file as UTF-8") from None
    data, lines = load_with_lines(text, str(path))
    if data is None:
        raise SuiteError("the file is empty", where=str(path), hint="see suites/g1.yaml for a complete suite")
    if not isinstance(data, dict):
        raise SuiteError(f"a suite is a mapping of keys, not a {type(data).__name__}", where=f"{path}:1",
                         hint="start with 'suite: NAME', 'builder: ...', 'cases: [...]'")
    data.setdefault("suite", p.stem)
    try:
        model = SuiteModel.model_validate(data)
    except ValidationError as exc:
        raise _located(exc, str(path), lines, SuiteModel) from None
    _refuse_lax(SuiteModel, data, str(path), lines)
    suite = Suite(model=model, path=str(path), sha256=hashlib.sha256(raw).hexdigest(), lines=lines)
    get_builder(model.builder, where=suite.where("builder"))
    names = [c.name for c in model.cases]
    for j, name in enumerate(names):
        if name in names[:j]:  # checked here, not in the schema, to point at the repeat's line
            raise SuiteError(f"cases[{j}]: case name {name!r} is already used by cases[{names.index(name)}]",
                             where=suite.where("cases", j, "name"), hint="give every case a unique name")
    for i, case in enumerate(model.cases):
        if case.builder:
            get_builder(case.builder, where=suite.where("cases", i, "builder"))
        _check_case(suite, i, case)
        if suite.builder_of(i) == "user":
            _check_user(suite, i, allow_import)
    for j, claim in enumerate(model.claims):
        for key in ("case", "than"):
            if getattr(claim, key) not in names:
                close = difflib.get_close_matches(getattr(claim, key), names, n=1)
                raise SuiteError(f"claims[{j}].{key}: no case named {getattr(claim, key)!r}",
                                 where=suite.where("claims", j, key),
                                 hint=(f"did you mean {close[0]!r}? " if close else "") + f"cases: {', '.join(names)}")
    return suite


def _check_user(suite: Suite, i: int, allow_import: bool) -> None:
    """User code is imported only on explicit opt-in; then its factory must resolve."""
    from latbench.models.user import resolve_factory

    factory = suite.params_of(i).get("factory", "?")
    where = suite.where("cases", i, "params", "factory") if "factory" in suite.model.cases[i].params \
        else suite.where("params", "factory") if "factory" in suite.model.params else suite.where("cases", i)
    if not allow_import:
        raise SuiteError(f"cases[{i}] ({suite.model.cases[i].name}) would import and run your code {factory!r}, "
                         f"and latbench imports user code only when asked", where=where,
                         hint="pass --allow-import to 'latbench run' if you trust this suite")
    try:
        resolve_factory(factory)
    except SuiteError as exc:
        raise SuiteError(exc.message, where=where, hint=exc.hint) from None


def _lax_errors(model: type[BaseModel], data: Any) -> list[dict]:
    """The values pydantic accepted only by converting them to a number: YAML `true`, `'1'` or `2.0`
    where a whole number belongs, `true` or `'0.5'` where a number belongs (a strict validation's
    int/float type errors; its other complaints, e.g. a list for a tuple, are no such conversions)."""
    try:
        model.model_validate(data, strict=True)
    except ValidationError as exc:
        return [e for e in exc.errors() if (e["type"] == "int_type" and not isinstance(e["input"], int))
                or (e["type"] == "int_type" and isinstance(e["input"], bool))
                or (e["type"] == "float_type" and isinstance(e["input"], (bool, str)))]
    return []


def _refuse_lax(model: type[BaseModel], data: Any, path: str, lines: dict, prefix: tuple = (),
                what: str = "") -> None:
    """SuiteError at its line for the first value that is a number only by conversion (_lax_errors):
    integers are integers (widths, batch, blocks, scales, sizes, builder parameters)."""
    bad = _lax_errors(model, data)
    if not bad:
        return
    err = bad[0]
    loc = prefix + tuple(x for x in err["loc"] if isinstance(x, int) or "[" not in str(x))  # no union tags
    line = line_of(lines, loc)
    dotted = ".".join(f"[{x}]" if isinstance(x, int) else str(x) for x in loc).replace(".[", "[")
    kind = "a whole number" if err["type"] == "int_type" else "a number"
    raise SuiteError(f"{what}{dotted}: {err['input']!r} is not {kind}", where=f"{path}:{line}" if line else path,
                     hint=f"write {kind} without quotes, e.g. 8" + (" (not true/false)" if isinstance(
                         err["input"], bool) else ""))


def _located(exc: ValidationError, path: str, lines: dict, model: type[BaseModel], prefix: tuple = ()) -> SuiteError:
    """The most telling pydantic error as a one-line SuiteError at its line: unknown keys first
    (a misspelt key explains the other errors), then the earliest line."""
    def rank(e: dict) -> tuple[bool, int]:
        return (e["type"] != "extra_forbidden", line_of(lines, prefix + tuple(e["loc"])) or 0)

    err = min(exc.errors(), key=rank)
    loc = prefix + tuple(err["loc"])
    line = line_of(lines, loc)
    dotted = ".".join(f"[{x}]" if isinstance(x, int) else str(x) for x in loc).replace(".[", "[")
    where = f"{path}:{line}" if line else path
    more = f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc[len(prefix):-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = (f"did you mean {close[0]!r}? " if close else "") + f"allowed: {', '.join(allowed)}"
        return SuiteError(f"unknown key {dotted!r}{more}", where=where, hint=hint)
    return SuiteError(f"{dotted or 'suite'}: {err['msg'].removeprefix('Value error, ')}{more}", where=where,
                      hint=_hint(err) or "see suites/g1.yaml and README 'Suites'")


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (nested) model that `loc` points into."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            break
        ann = field.annotation
        inner = getattr(ann, "__args__", (ann,))[0] if getattr(ann, "__args__", None) else ann
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            model = inner
    return list(model.model_fields)


def _hint(err: dict) -> str | None:
    ctx = err.get("ctx") or {}
    if err["type"] == "literal_error":
        return f"use one of {ctx.get('expected')}"
    if err["type"] == "missing":
        return "add this key"
    return None


def _check_case(suite: Suite, i: int, case: CaseModel) -> None:
    """Builder parameters and widths are known and valid (at scale 1, paper widths)."""
    b = get_builder(suite.builder_of(i))
    width_names = set(b.width_names)
    if b.name in NETWORKS and suite.model.blocks != 1:  # a classifier cannot be stacked
        given = ("blocks",) in suite.lines
        raise SuiteError(f"cases[{i}] ({case.name}): builder {b.name!r} is a whole network, so blocks must be 1 "
                         f"(got {suite.model.blocks}{'' if given else ', the default'})",
                         where=suite.where("blocks") if given else suite.where("cases", i), hint="set 'blocks: 1'")
    for key in suite.params_of(i):
        if key not in b.params.model_fields or key in width_names:
            allowed = [k for k in b.params.model_fields if k not in width_names]
            path = ("cases", i, "params", key) if key in case.params else ("params", key)
            raise SuiteError(f"cases[{i}].params: unknown parameter {key!r} for builder {b.name!r}",
                             where=suite.where(*path), hint=f"allowed: {', '.join(allowed)}")
    if not b.width_names:
        if case.widths:
            raise SuiteError(f"cases[{i}].widths: builder {b.name!r} has no widths", where=suite.where("cases", i,
                             "widths"), hint="remove 'widths' from this case")
        _validate_params(suite, i, suite.params_of(i), ("cases", i))
    # the values too, even when no platform lists widths (flops mode solves them later)
    params = suite.params_of(i)
    try:
        b.params.model_validate({**{n: 1 for n in width_names}, **params})
    except ValidationError as exc:
        bad = [e for e in exc.errors() if e["loc"] and e["loc"][0] in params]
        if bad:
            key = bad[0]["loc"][0]
            path = ("cases", i, "params", key) if key in case.params else ("params", key)
            raise SuiteError(f"cases[{i}] ({case.name}): params.{key}: {bad[0]['msg']}",
                             where=suite.where(*path),
                             hint=_hint(bad[0]) or f"see 'latbench list' for {b.name}") from None
    for platform, widths in case.widths.items():
        per_scale = widths if isinstance(widths, list) else [widths]
        if isinstance(widths, list) and len(widths) != len(suite.model.scales):
            raise SuiteError(f"cases[{i}].widths.{platform} lists {len(widths)} width sets for "
                             f"{len(suite.model.scales)} scales", where=suite.where("cases", i, "widths", platform),
                             hint="give one mapping per scale, or a single mapping that each scale multiplies")
        scaled = per_scale if isinstance(widths, list) else [
            {k: v * sc for k, v in widths.items()} for sc in suite.model.scales]
        for w in scaled:  # bounds at load, at every scale: never a width that fails only at run time
            big = next(((k, v) for k, v in w.items() if v > MAX_CHANNELS), None)
            if big:
                raise SuiteError(f"cases[{i}].widths.{platform}: {big[0]}={big[1]:,} (at its scale) is more than "
                                 f"{MAX_CHANNELS:,} channels", where=suite.where("cases", i, "widths", platform),
                                 hint="use realistic widths and scales")
        for w in per_scale:
            unknown = set(w) - width_names
            if unknown:
                raise SuiteError(f"cases[{i}].widths.{platform}: unknown width {sorted(unknown)[0]!r}",
                                 where=suite.where("cases", i, "widths", platform),
                                 hint=f"builder {b.name!r} has widths {', '.join(sorted(width_names))}")
            _validate_params(suite, i, {**suite.params_of(i), **w}, ("cases", i, "widths", platform))


def _validate_params(suite: Suite, i: int, params: dict, path: tuple) -> dict[str, Any]:
    b = get_builder(suite.builder_of(i))
    try:
        valid = b.params.model_validate(params).model_dump()
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        field = ".".join(str(x) for x in err["loc"])
        raise SuiteError(f"cases[{i}] ({suite.model.cases[i].name}): {field + ': ' if field else ''}{msg}",
                         where=suite.where(*path), hint=_hint(err) or f"see 'latbench list' for {b.name}") from None
    lax = _lax_errors(b.params, params)
    if lax:
        key = lax[0]["loc"][0] if lax[0]["loc"] else None
        where = (suite.where("cases", i, "params", key) if key in suite.model.cases[i].params
                 else suite.where("params", key) if key in suite.model.params else suite.where(*path))
        raise SuiteError(f"cases[{i}] ({suite.model.cases[i].name}): {key}: {lax[0]['input']!r} is not a "
                         f"{'whole ' if lax[0]['type'] == 'int_type' else ''}number", where=where,
                         hint="write the number without quotes (not true/false)")
    return valid


def expand(suite: Suite, platform: str, *, quick: bool = False, widths_mode: str | None = None,
           batch: int | None = None, max_cases: int = DEFAULT_MAX_CASES) -> list[CaseSpec]:
    """Every (scale, sweep point, case) of the suite as a CaseSpec with widths resolved for `platform`.

    quick keeps the first scale only. In flops mode every case's counted FLOPs must be within
    flops_tolerance of the target, else SuiteError names the best widths found. batch replaces the
    suite's batch and a batch sweep. More than max_cases cases (0: no limit) is a SuiteError before
    anything is built.
    """
    m = suite.model
    n = (1 if quick else len(m.scales)) * count_points(m.sweep, batch) * len(m.cases)
    if max_cases and n > max_cases:
        raise SuiteError(f"the suite expands to {n:,} cases (scales x sweep points x cases), more than the "
                         f"limit of {max_cases:,}", where=suite.where("sweep") if m.sweep else suite.where("cases"),
                         hint=f"shrink the sweep or the scales, or allow it with --max-cases {n}")
    mode = widths_mode or m.widths
    pts = points(m.sweep, m.batch, batch)
    batch = pts[0].batch
    scales = m.scales[:1] if quick else m.scales
    h, w = m.input.height, m.input.width
    specs: list[CaseSpec] = []
    for s_idx, scale in enumerate(scales):
        target: int | None = None
        if mode == "flops":
            if m.flops_target and platform in m.flops_target:
                target = round(2 * m.flops_target[platform] * scale * scale * batch)
            else:
                base = _paper_params(suite, 0, platform, s_idx, scale)
                target = count(suite.builder_of(0), base, m.blocks, batch, h, w).flops
        for i, case in enumerate(m.cases):
            if mode == "paper":
                params = _paper_params(suite, i, platform, s_idx, scale)
            else:
                assert target is not None
                _require_widths(suite, i)
                try:
                    params, flops = solve_widths(suite.builder_of(i), suite.params_of(i), target, batch, h, w,
                                                 m.blocks)
                except ValueError as exc:  # no width reaches the target
                    raise SuiteError(f"cases[{i}] ({case.name}) at x{scale}: {exc}", where=suite.where("cases", i),
                                     hint="lower flops_target or use 'widths: paper'") from None
                drift = flops / target - 1
                if abs(drift) > m.flops_tolerance:
                    raise SuiteError(
                        f"cases[{i}] ({case.name}) at x{scale}: the nearest widths "
                        f"{_fmt_widths(params, suite.builder_of(i))} give {flops:,} FLOPs, {drift:+.1%} off the target {target:,}, "
                        f"beyond flops_tolerance {m.flops_tolerance:.1%}", where=suite.where("cases", i),
                        hint="raise flops_tolerance, use larger widths (a larger scale or flops_target), "
                             "or use 'widths: paper'")
            specs.append(CaseSpec(
                suite=m.suite, experiment=m.experiment, case=case.name, scale=scale, builder=suite.builder_of(i),
                params=tuple(sorted(params.items())), blocks=m.blocks, batch=batch, height=h, width=w,
                baseline_case=m.cases[0].name, widths_mode=mode, flops_target=target,
                flops_tolerance=m.flops_tolerance, source=suite.where("cases", i)))
    return expand_specs(specs, pts)


def _require_widths(suite: Suite, i: int) -> Builder:
    b = get_builder(suite.builder_of(i))
    if not b.width_names:
        raise SuiteError(f"cases[{i}] ({suite.model.cases[i].name}): builder {b.name!r} has no widths to solve "
                         f"for a FLOPs target", where=suite.where("cases", i), hint="use 'widths: paper'")
    return b


def _paper_params(suite: Suite, i: int, platform: str, s_idx: int, scale: int) -> dict[str, Any]:
    case = suite.model.cases[i]
    if not get_builder(suite.builder_of(i)).width_names:
        return _validate_params(suite, i, suite.params_of(i), ("cases", i))
    if platform not in case.widths:
        raise SuiteError(f"cases[{i}] ({case.name}) has no widths for platform {platform!r}",
                         where=suite.where("cases", i), hint=f"add widths.{platform}, pass --platform "
                         f"{'/'.join(case.widths) or 'gpu|arm'}, or use --widths flops")
    widths = case.widths[platform]
    chosen = widths[s_idx] if isinstance(widths, list) else {k: v * scale for k, v in widths.items()}
    return _validate_params(suite, i, {**suite.params_of(i), **chosen}, ("cases", i, "widths", platform))


def _fmt_widths(params: dict[str, Any], builder: str) -> str:
    return ", ".join(f"{k}={params[k]}" for k in get_builder(builder).width_names)
