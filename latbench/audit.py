"""A guideline audit of one network: where its time goes, layer by layer, against its FLOPs.

`latbench audit NETWORK|MODULE:FACTORY --input CxHxW` builds the network (as `run --model` does),
counts every layer's multiply-adds and memory access cost (MAC bytes, cost.py's rule per aten op),
and times it in interleaved rounds: each round times the whole network alone (no profiler, no hooks)
and then a few forwards under torch.profiler with one record_function scope per module. A layer is
a leaf module (a conv, a ReLU, a Linear) or the ops a container's own forward runs (a block's
concat, add, channel shuffle). Its time is the profiler time of the aten ops it launched: the
median forward's op time split in proportion to each layer's median over every profiled forward;
"framework" is the whole network timed alone (the median forward over the same rounds) less
the layers' op time: Python, module calls, dispatch. The parts add up to the whole when the op time
fits in it, within TOLERANCE (the profiler adds a little per op); else the audit says so.

Per layer: arithmetic intensity (FLOPs per MAC byte), its roofline bound under the device's measured
ceilings (roofline.py) and the time above it, its share of time against its share of FLOPs, and
the ShuffleNet V2 guideline it strains (Ma et al., ECCV 2018, Section 2):
  G1  a 1x1 conv whose input and output widths differ (MAC is least when they are equal);
  G2  a grouped conv (1 < groups < in_channels; depthwise is not flagged): MAC grows with groups;
  G3  a layer in a block of more than G3_MAX_FRAGMENTS ops per forward (fragmentation);
  G4  an op with no counted FLOPs (element-wise: ReLU, add, concat, shuffle copies, pooling).
The summary ranks where the network loses time against FLOPs: per layer, the time beyond its
FLOPs-proportional share of the whole; per guideline and per kind of layer, share of time against
share of FLOPs. Rendering (markdown, CSV, figure) is in report/audit.py.
"""

from __future__ import annotations

import functools
import os

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import torch
from torch import nn
from torch.profiler import profile, record_function
from torch.utils.flop_counter import FlopCounterMode

from latbench import devices, env, roofline
from latbench.cost import _MemoryAccessCounter, build_network
from latbench.errors import LatbenchError
from latbench.opbreakdown import quiet_kineto

TOLERANCE = 0.10  # the layers' op time may exceed the whole network timed alone by this much (profiler overhead)
G3_MAX_FRAGMENTS = 10  # ops per forward in one block above which its layers strain G3
DEFAULT_ROUNDS = 7
PROFILED_FORWARDS = 3  # forwards under the profiler per round
BLOCK_S = 0.05  # seconds of whole-network forwards timed alone per round (at least PROFILED_FORWARDS calls)
_ROOT = "latbench.audit::forward"
_SCOPE = "latbench.layer::"
FRAMEWORK = "(framework)"


@dataclass
class Layer:
    name: str  # module path, or 'path (own ops)' for a container's own forward
    kind: str  # 'Conv2d 1x1 24->116', 'ReLU', 'ops: cat, transpose'
    category: str  # conv1x1 | conv1x1-grouped | depthwise | conv-grouped | conv | linear | element-wise | framework
    block: str
    mult_adds: int = 0
    mac_bytes: int = 0
    ops: int = 0  # aten ops (non-view) per forward
    time_ms: float = 0.0  # per forward, median over rounds (profiled)
    block_fragments: int = 0
    guideline: str = ""
    time_share: float = 0.0
    flops_share: float = 0.0
    intensity: float | None = None
    bound_ms: float | None = None
    above_bound_ms: float | None = None
    excess_ms: float = 0.0  # time beyond the layer's FLOPs-proportional share of the whole network


@dataclass
class Audit:
    target: str
    input_shape: tuple[int, ...]
    batch: int
    dtype: str
    device: str
    device_name: str
    threads: int
    rounds: int
    whole_ms: float  # median of the whole network's forwards timed alone (no profiler, no hooks)
    whole_spread_ms: tuple[float, float]  # 10th and 90th percentile of those forwards
    profiled_ms: float  # median of the rounds' profiled forward (with a record_function per module)
    ops_ms: float  # the layers' op times summed (profiled): at most the whole, within TOLERANCE
    mult_adds: int
    mac_bytes: int
    layers: list[Layer]
    ceilings: Any = None
    measured_at_utc: str = ""
    load_1min: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def gap(self) -> float:
        """The layers' op time over the whole network timed alone, less 1 (<= 0 when they fit in it)."""
        return self.ops_ms / self.whole_ms - 1 if self.whole_ms > 0 else float("nan")

    @property
    def adds_up(self) -> bool:
        """The parts (layers' op times, then the framework remainder) add up to the whole: the op
        times fit in the whole network's time, within TOLERANCE."""
        return self.gap <= TOLERANCE

    def by(self, key: str) -> list[dict[str, Any]]:
        """Time share against FLOPs share, summed per `key` ('category' or 'guideline' (each G once))."""
        acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0])
        for layer in self.layers:
            keys = [g.split(":")[0] for g in layer.guideline.split("; ") if g] if key == "guideline" \
                else [getattr(layer, key)]
            for k in keys or (["no guideline"] if key == "guideline" else []):
                a = acc[k]
                a[0] += layer.time_share
                a[1] += layer.flops_share
                a[2] += layer.excess_ms
                a[3] += 1
        rows = [{key: k, "layers": int(a[3]), "time_share": a[0], "flops_share": a[1], "excess_ms": a[2]}
                for k, a in acc.items()]
        return sorted(rows, key=lambda r: -r["excess_ms"])

    def ranking(self, n: int = 10) -> list[Layer]:
        """The layers losing most time against their FLOPs (largest excess first)."""
        return sorted(self.layers, key=lambda l: -l.excess_ms)[:n]


# ---------------------------------------------------------------- scopes and counting

class _Scopes:
    """Forward hooks on every module: a stack of module paths, and (when `profiling`) a record_function
    scope per module call."""

    def __init__(self, model: nn.Module):
        self.names = {m: n for n, m in model.named_modules()}
        self.stack: list[str] = []
        self.records: list[Any] = []
        self.profiling = False
        self.handles: list[Any] = []

    def attach(self) -> None:
        """Hook every module (the whole network is timed without hooks: they cost Python time)."""
        for m in self.names:
            self.handles.append(m.register_forward_pre_hook(self._enter))
            self.handles.append(m.register_forward_hook(self._exit))

    def _enter(self, module, args):
        name = self.names[module]
        self.stack.append(name)
        if self.profiling:
            rf = record_function(_SCOPE + name)
            rf.__enter__()
            self.records.append(rf)

    def _exit(self, module, args, out):
        self.stack.pop()
        if self.profiling:
            self.records.pop().__exit__(None, None, None)

    @property
    def current(self) -> str:
        return self.stack[-1] if self.stack else ""

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.stack.clear()


class _PerScopeCounter(_MemoryAccessCounter):
    """cost.py's MAC rule and torch's FLOP formulas, per op, attributed to the innermost module."""

    def __init__(self, scopes: _Scopes):
        super().__init__()
        self.scopes = scopes
        self.flops: dict[str, int] = defaultdict(int)
        self.bytes_of: dict[str, int] = defaultdict(int)
        self.ops: dict[str, int] = defaultdict(int)
        self.op_names: dict[str, list[str]] = defaultdict(list)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        before = self.bytes
        out = super().__torch_dispatch__(func, types, args, kwargs)
        scope = self.scopes.current
        if self.bytes > before:
            self.bytes_of[scope] += self.bytes - before
            self.ops[scope] += 1
            self.op_names[scope].append(func.overloadpacket.__name__)
        return out

    def own_flops(self, model: nn.Module, counts: dict[str, dict[Any, int]]) -> None:
        """Each scope's own FLOPs from FlopCounterMode's per-module totals (a module's total less its
        children's), FlopCounterMode naming modules '<root class>.<path>'."""
        root = type(model).__name__

        def total(path: str) -> int:
            return sum(counts.get(f"{root}.{path}" if path else root, {}).values())

        for path, m in model.named_modules():
            prefix = f"{path}." if path else ""
            own = total(path) - sum(total(prefix + c) for c, _ in m.named_children())
            if own:
                self.flops[path] += own


def _kind(module: nn.Module) -> tuple[str, str]:
    """(kind text, category) of a leaf module."""
    if isinstance(module, nn.Conv2d):
        k = "x".join(map(str, module.kernel_size))
        g, cin, cout = module.groups, module.in_channels, module.out_channels
        text = f"Conv2d {k} {cin}->{cout}" + (f" g={g}" if g > 1 else "") + (f" s{module.stride[0]}" if module.stride[0] > 1 else "")
        if g > 1 and g == cin:
            return text, "depthwise"
        if module.kernel_size == (1, 1):
            return text, "conv1x1-grouped" if g > 1 else "conv1x1"
        return text, "conv-grouped" if g > 1 else "conv"
    if isinstance(module, nn.Linear):
        return f"Linear {module.in_features}->{module.out_features}", "linear"
    return type(module).__name__, "element-wise"


def _guidelines(module: nn.Module | None, flops: int, fragments: int) -> str:
    tags = []
    if isinstance(module, nn.Conv2d):
        cin, cout, g = module.in_channels, module.out_channels, module.groups
        if module.kernel_size == (1, 1) and cin != cout:
            tags.append(f"G1: 1x1 conv {cin}->{cout} ({max(cin, cout) / min(cin, cout):.1f}:1)")
        if 1 < g < cin:
            tags.append(f"G2: groups={g}")
    if fragments > G3_MAX_FRAGMENTS:
        tags.append(f"G3: {fragments} ops in its block")
    if flops == 0:
        tags.append("G4: no FLOPs")
    return "; ".join(tags)


# ---------------------------------------------------------------- timing

def _whole(model: nn.Module, x: torch.Tensor, calls: int, dev: Any) -> list[float]:
    """Each of `calls` forwards timed alone by the device's timing backend (the one every run uses:
    CUDA events on a GPU, the monotonic clock on the CPU), ms -- single calls, like the profiled
    forwards' medians."""
    forward = functools.partial(model, x)
    return [dev.backend.time_block(forward, 1) * 1e3 for _ in range(calls)]


def _profiled(model: nn.Module, x: torch.Tensor, scopes: _Scopes, dev: Any,
              forwards: int) -> tuple[list[dict[str, float]], list[float]]:
    """Per forward of `forwards` calls: {scope: its top-level ops' time, ms}, and the profiled forward's ms."""
    scopes.attach()
    scopes.profiling = True
    quiet_kineto()
    try:
        with profile(activities=dev.profiler_activities()) as prof:
            for _ in range(forwards):
                with record_function(_ROOT):
                    model(x)
            dev.synchronize()
    finally:
        scopes.profiling = False
        scopes.remove()
    roots: dict[int, int] = {}  # id of a ROOT event -> its forward's index
    per: list[dict[str, float]] = []
    totals: list[float] = []
    for e in prof.events():
        if e.name == _ROOT:
            roots[id(e)] = len(per)
            per.append(defaultdict(float))
            totals.append(e.cpu_time_total / 1e3)
    for e in prof.events():
        parent = e.cpu_parent
        if parent is None or e.name == _ROOT or e.name.startswith(_SCOPE):
            continue
        if not (parent.name.startswith(_SCOPE) or parent.name == _ROOT):
            continue  # not a top-level aten op of a scope
        scope = parent.name[len(_SCOPE):] if parent.name.startswith(_SCOPE) else ""
        root = parent
        while root is not None and root.name != _ROOT:
            root = root.cpu_parent
        if root is not None and id(root) in roots:
            per[roots[id(root)]][scope] += dev.op_time(e) / 1e3
    return per, totals


# ---------------------------------------------------------------- the audit

def audit_network(model: nn.Module, x: torch.Tensor, target: str, device: str = "cpu", threads: int | None = None,
                  rounds: int = DEFAULT_ROUNDS, ceilings: Any = None, dev: Any = None) -> Audit:
    """Audit `model` on input `x` (already on the device, eval mode). `dev`: a configured device object
    (devices.get); `ceilings`: roofline.Ceilings, or None to measure (cached) them."""
    dev = dev or devices.get(device, threads)
    fp = env.fingerprint()
    if ceilings is None:
        ceilings, _ = roofline.measure_ceilings(dev, dev.model_name(fp), dev.threads)
    scopes = _Scopes(model)
    try:
        with torch.inference_mode():
            counter = _PerScopeCounter(scopes)
            flops = FlopCounterMode(display=False)
            scopes.attach()
            with flops, counter:  # the counter sees ops first; FlopCounterMode decomposes conv2d & co.
                model(x)
            scopes.remove()
            counter.own_flops(model, flops.get_flop_counts())
            # warm-up, and how many calls make one whole-network block (timed by the device's backend:
            # on a GPU the host clock would time only the launches)
            per_call = max(dev.backend.time_block(functools.partial(model, x), 2) / 2, 1e-6)
            calls = max(PROFILED_FORWARDS, min(1000, round(BLOCK_S / per_call)))
            wholes: list[float] = []
            profiled: list[float] = []
            per_forward: list[dict[str, float]] = []
            for r in range(rounds):
                order = (0, 1) if r % 2 == 0 else (1, 0)  # interleaved: alternate which goes first
                for which in order:
                    if which == 0:
                        wholes += _whole(model, x, calls, dev)
                    else:
                        forwards, totals = _profiled(model, x, scopes, dev, PROFILED_FORWARDS)
                        profiled += totals
                        per_forward += forwards
    finally:
        scopes.remove()
    modules = dict(model.named_modules())
    scope_names = {k for f in per_forward for k in f}
    medians = {k: statistics.median(f.get(k, 0.0) for f in per_forward) for k in scope_names}
    # The median forward's op time, split in proportion to each layer's median (a sum of medians
    # understates a sum of right-skewed times).
    ops_ms = statistics.median(sum(f.values()) for f in per_forward)
    scale = ops_ms / sum(medians.values()) if sum(medians.values()) > 0 else 1.0
    layers = _layers(modules, counter, {k: v * scale for k, v in medians.items()})
    whole, prof_ms = statistics.median(wholes), statistics.median(profiled)
    layers.append(Layer(FRAMEWORK, "the whole network timed alone less its layers' op time: Python, module "
                        "calls, dispatch", "framework", "", time_ms=max(whole - ops_ms, 0.0)))
    total_flops = sum(counter.flops.values())
    audit = Audit(target=target, input_shape=tuple(x.shape[1:]), batch=x.shape[0], dtype=str(x.dtype).removeprefix("torch."),
                  device=dev.name, device_name=dev.model_name(fp), threads=dev.threads, rounds=rounds,
                  whole_ms=whole, whole_spread_ms=_p10_p90(wholes), profiled_ms=prof_ms, ops_ms=ops_ms,
                  mult_adds=total_flops // 2, mac_bytes=sum(counter.bytes_of.values()), layers=layers,
                  ceilings=ceilings, measured_at_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  load_1min=_load())
    _shares(audit, total_flops)
    if not audit.adds_up:
        audit.notes.append(f"the layers' op time ({ops_ms:.3f} ms) exceeds the whole network timed alone "
                           f"({whole:.3f} ms) by {audit.gap:.0%}, beyond the {TOLERANCE:.0%} tolerance: the "
                           f"machine drifted between the halves of the rounds or the profiler's per-op overhead "
                           f"is large against these ops; read shares, not milliseconds")
    return audit


def _p10_p90(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=10)
    return q[0], q[-1]


def _load() -> float | None:
    try:
        import os

        return os.getloadavg()[0]
    except OSError:
        return None


def _layers(modules: dict[str, nn.Module], counter: _PerScopeCounter, times: dict[str, float]) -> list[Layer]:
    """One Layer per scope that ran ops: leaves, and containers' own forwards."""
    scopes = [s for s in modules if counter.ops.get(s) or counter.flops.get(s) or times.get(s)]
    owners = {s for s in scopes if list(modules[s].children())}  # containers whose forward runs ops itself

    def block_of(scope: str) -> str:
        parts = scope.split(".")
        for i in range(len(parts) - 1, 0, -1):  # the nearest proper ancestor with its own ops
            anc = ".".join(parts[:i])
            if anc in owners:
                return anc
        if scope in owners:
            return scope
        return parts[0] if scope else ""

    fragments: dict[str, int] = defaultdict(int)
    for s in scopes:
        fragments[block_of(s)] += counter.ops.get(s, 0)
    out = []
    for s in scopes:
        m = modules[s]
        if s in owners:
            names = list(dict.fromkeys(counter.op_names.get(s, [])))
            kind, category, name, mod = "ops: " + ", ".join(names[:6]), "element-wise", f"{s or 'network'} (own ops)", None
            if counter.flops.get(s):
                category = "other"
        else:
            (kind, category), name, mod = _kind(m), s, m
        block = block_of(s)
        frag = fragments[block] if block else 0
        flops = counter.flops.get(s, 0)
        out.append(Layer(name=name, kind=kind, category=category, block=block, mult_adds=flops // 2,
                         mac_bytes=counter.bytes_of.get(s, 0), ops=counter.ops.get(s, 0), time_ms=times.get(s, 0.0),
                         block_fragments=frag, guideline=_guidelines(mod, flops, frag)))
    return out


def _shares(a: Audit, total_flops: int) -> None:
    parts = sum(l.time_ms for l in a.layers)
    c = a.ceilings
    for l in a.layers:
        l.time_share = l.time_ms / parts if parts > 0 else 0.0
        l.flops_share = 2 * l.mult_adds / total_flops if total_flops else 0.0
        l.excess_ms = (l.time_share - l.flops_share) * a.whole_ms
        if l.category == "framework":
            continue
        cols = roofline.row_columns(2 * l.mult_adds, l.mac_bytes, l.time_ms, c)
        l.intensity = cols["arithmetic_intensity_flops_per_byte"]
        l.bound_ms = cols["roofline_bound_ms"]
        if l.bound_ms is not None:
            l.above_bound_ms = l.time_ms - l.bound_ms


def run_audit(target: str, input_shape: str | None = None, kwargs: str | None = None, batch: int = 1,
              dtype: str = "float32", device: str = "cpu", threads: int | None = None,
              rounds: int = DEFAULT_ROUNDS, seed: int = 0) -> Audit:
    """Audit a built-in network or MODULE:FACTORY (importing it: naming it is the opt-in)."""
    from latbench.suite import expand
    from latbench.suite.adhoc import ModelRequest, build_suite

    if rounds < 1:
        raise LatbenchError(f"--rounds {rounds}: at least 1", hint="e.g. --rounds 7")
    suite = build_suite(ModelRequest(models=(target,), input=input_shape, kwargs=(kwargs,) if kwargs else (),
                                     batches=(batch,), dtypes=(dtype,)))
    spec = expand(suite, devices.default_platform(device))[0]
    dev = devices.get(device, threads, fake=False)
    torch.manual_seed(seed)
    try:
        model, x = build_network(spec.builder, spec.param_dict, spec.blocks, batch, spec.height, spec.width,
                                 dev.name, getattr(torch, dtype))
        with torch.inference_mode():
            model(x)
    except Exception as exc:  # noqa: BLE001 - the user's model: one line, not a traceback
        raise LatbenchError(f"{target}: the model does not run on input {tuple(x.shape) if 'x' in dir() else '?'}: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                            where=f"--model {target}", hint="check --input and --kwargs") from None
    name = target + (f" {kwargs}" if kwargs else "")
    return audit_network(model, x, name, dev=dev, rounds=rounds)
