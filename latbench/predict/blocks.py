"""A network cut into the blocks a latency table measures.

`trace` runs the network once on the meta device (no memory, no time) under a dispatch mode and
records every aten op with where its tensors come from (the input, a parameter, an earlier op's
output). `cut` groups the ops into blocks as the runtime runs them: a block starts at a compute op
(conv, linear, pooling, an elementwise add/mul, a concatenation, a copy such as a channel shuffle's
`contiguous`), the activations (and eval BatchNorm) applied to that op's output join its block
(conv+bn+act, linear+act), and view ops (view, transpose, chunk, split: no kernel) join the block
that uses them. Every op is in exactly one block, so the blocks' FLOPs and MAC add up to the
network's (tests/test_predict_blocks.py checks it against cost.py).

A block is described by data only (`Block.desc`: its ops with their non-tensor arguments and the
shapes, strides and dtypes of the tensors it reads from outside), so it can be rebuilt anywhere:
`block_module(desc)` is an nn.Module that replays the ops on random tensors of those shapes. The
run wing measures blocks as `user` cases naming that factory (latbench/predict/measure.py), so
worker processes rebuild them from the description. `Block.key` is a hash of the description and the
measurement context (device, threads, mode): two networks sharing a block share its measurement.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from latbench.errors import LatbenchError

FACTORY = "latbench.predict.blocks:block_module"  # what the run wing builds a block with (models/user.py)

# Ops that join the block whose output they take (conv+bn+act): activations and eval BatchNorm.
FUSED = {"relu", "relu_", "relu6", "hardtanh", "hardtanh_", "silu", "silu_", "sigmoid", "sigmoid_", "hardswish",
         "hardswish_", "hardsigmoid", "hardsigmoid_", "gelu", "tanh", "tanh_", "leaky_relu", "leaky_relu_", "elu",
         "elu_", "mish", "mish_", "clamp", "clamp_", "clamp_min", "clamp_min_", "batch_norm",
         "_native_batch_norm_legit_no_training", "native_batch_norm"}
# View-like ops that may copy (contiguous of a strided tensor): a block of their own, a copy kernel.
MAYBE_COPY = {"contiguous"}
# What a block's first compute op makes it: the kinds the table fits separately (model.py).
KINDS = {"conv2d": "conv", "convolution": "conv", "conv1d": "conv", "conv3d": "conv", "linear": "linear",
         "addmm": "linear", "mm": "linear", "matmul": "linear", "bmm": "linear", "max_pool2d": "pool",
         "avg_pool2d": "pool", "adaptive_avg_pool2d": "pool", "mean": "pool", "cat": "cat", "contiguous": "copy",
         "add": "elementwise", "add_": "elementwise", "mul": "elementwise", "mul_": "elementwise",
         "div": "elementwise", "sub": "elementwise"}


# Ops whose time depends on the values they read, not only on shapes: GoogLeNet's max pools took 19 % less
# time on the network's own activations than on random numbers of the same shapes, SqueezeNet's 11 % less
# (2026-12-05, docs/benchmarks/predict_insitu.md; the same values shuffled ran as slowly as random ones:
# it is their spatial structure). Blocks with one are measured on the network's own tensors (`data`).
DATA_DEPENDENT = {"max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
                  "max_pool3d_with_indices", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d"}


class BlockError(LatbenchError):
    """A network whose ops cannot be described as blocks (an argument of a type a block cannot hold)."""


def op_base(name: str) -> str:
    """'aten.relu_.default' -> 'relu_'."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else name


# ---------------------------------------------------------------- trace

@dataclass
class TracedOp:
    name: str  # str(OpOverload), e.g. 'aten.conv2d.default'
    args: Any  # JSON-able tree; tensors as {"t": tensor id}
    outs: list[int]  # tensor ids of the outputs
    is_view: bool
    new: bool = True  # made a new tensor (False: an in-place op, contiguous of a contiguous tensor)


@dataclass
class Trace:
    ops: list[TracedOp]
    tensors: dict[int, dict[str, Any]]  # tensor id -> {"shape", "stride", "dtype", "producer": op index | None}


def _plain(v: Any, ids: dict[int, int], tensors: dict[int, dict[str, Any]], keep: list[Any], where: str) -> Any:
    """An argument as JSON-able data; tensors become references."""
    if isinstance(v, torch.Tensor):
        if id(v) not in ids:  # a tensor no traced op produced: the input, a parameter, a buffer
            ids[id(v)] = len(tensors)
            keep.append(v)
            tensors[ids[id(v)]] = _tensor_info(v, None) | {"weight": isinstance(v, nn.Parameter)}
        return {"t": ids[id(v)]}
    if v is None or isinstance(v, (bool, int, float, str)):
        if isinstance(v, float) and v != v:
            raise BlockError(f"{where}: a NaN argument", hint="a block holds finite numbers only")
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x, ids, tensors, keep, where) for x in v]
    if isinstance(v, torch.dtype):
        return {"dtype": str(v).removeprefix("torch.")}
    if isinstance(v, torch.device):
        return {"device": True}  # replayed on the block's own device
    if isinstance(v, torch.memory_format):
        return {"memory_format": str(v).removeprefix("torch.")}
    if isinstance(v, torch.layout):
        return {"layout": str(v).removeprefix("torch.")}
    raise BlockError(f"{where}: an argument of type {type(v).__name__} cannot be part of a block",
                     hint="latbench predict handles networks of tensor ops with plain arguments (ints, floats, "
                          "lists, dtypes); measure this network whole with 'latbench run --model'")


def _tensor_info(t: torch.Tensor, producer: tuple[int, int] | None) -> dict[str, Any]:
    return {"shape": list(t.shape), "stride": list(t.stride()), "dtype": str(t.dtype).removeprefix("torch."),
            "producer": producer}


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[TracedOp] = []
        self.tensors: dict[int, dict[str, Any]] = {}
        self.ids: dict[int, int] = {}
        self.keep: list[Any] = []  # every tensor stays alive, so no id() is reused

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func)
        where = f"op {len(self.ops)} ({name})"
        plain = [_plain(list(args), self.ids, self.tensors, self.keep, where),
                 {k: _plain(v, self.ids, self.tensors, self.keep, where) for k, v in kwargs.items()}]
        out = func(*args, **kwargs)
        outs = []
        for i, t in enumerate(x for x in tree_flatten(out)[0] if isinstance(x, torch.Tensor)):
            self.keep.append(t)
            if id(t) in self.ids:  # an in-place op (or contiguous of a contiguous tensor) returns its input
                outs.append(self.ids[id(t)])
                continue
            self.ids[id(t)] = len(self.tensors)
            self.tensors[self.ids[id(t)]] = _tensor_info(t, (len(self.ops), i))
            outs.append(self.ids[id(t)])
        new = any(self.tensors[o]["producer"] == (len(self.ops), k) for k, o in enumerate(outs))
        self.ops.append(TracedOp(name, plain, outs, bool(func.is_view), new))
        return out


def trace(model: nn.Module, x: torch.Tensor) -> Trace:
    """Every aten op of one forward pass of `model(x)` (on the device they are on: meta for no cost)."""
    rec = _Recorder()
    with torch.inference_mode(), rec:
        model(x)
    return Trace(rec.ops, rec.tensors)


# ---------------------------------------------------------------- blocks

@dataclass
class Block:
    """Consecutive ops run as one kernel group, described by data (`desc`)."""

    ops: list[int]  # op indices in the trace
    desc: dict[str, Any] = field(default_factory=dict)
    kind: str = "other"
    label: str = ""
    sources: list[Any] = field(default_factory=list)  # per input: [op, output, op name] that made it and the op
    # that first reads it (trace indices), or None for the network's input and parameters
    weight_bytes: int = 0  # the bytes of the parameters it reads (not part of its key)

    @property
    def data_dependent(self) -> bool:
        """Whether the block's time depends on the values it reads (DATA_DEPENDENT)."""
        return any(op_base(name) in DATA_DEPENDENT for name, _ in self.desc.get("ops", []))

    def on_network_data(self, network: dict[str, Any]) -> Block:
        """This block measured on its network's own tensors: `network` is how to build the network
        (cost.build_network's arguments), and the description names the ops whose outputs it reads, so
        the key is this network's (a shape-alike block of another network is measured apart)."""
        taken = {str(i): src for i, src in enumerate(self.sources)
                 if src is not None and getattr(torch, self.desc["inputs"][i]["dtype"]).is_floating_point}
        if not taken:
            return self
        return Block(self.ops, {**self.desc, "data": {"network": network, "inputs": taken}}, self.kind, self.label,
                     self.sources, self.weight_bytes)

    def key(self, context: dict[str, Any]) -> str:
        """The block's identity in a table: its description and where it is measured (device, threads, mode)."""
        text = json.dumps({"desc": self.desc, "context": context}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _tensor_refs(tree: Any) -> list[int]:
    if isinstance(tree, dict):
        return [tree["t"]] if set(tree) == {"t"} else [r for v in tree.values() for r in _tensor_refs(v)]
    if isinstance(tree, list):
        return [r for v in tree for r in _tensor_refs(v)]
    return []


def cut(tr: Trace, fuse: bool = True) -> list[Block]:
    """The trace's ops grouped into blocks (module docstring: compute op, its fused activations, views).
    fuse=False: every op with a kernel is a block of its own (the sum-of-operators baseline)."""
    groups: list[list[int]] = []
    pending: list[int] = []  # view ops waiting for the block that uses them
    for i, op in enumerate(tr.ops):
        base = op_base(op.name)
        if op.is_view and not (base in MAYBE_COPY and op.new):
            pending.append(i)
            continue
        if fuse and base in FUSED and groups:
            current = set(groups[-1]) | set(pending)
            src = _tensor_refs(op.args)[:1]
            producer = tr.tensors[src[0]]["producer"] if src else None
            if producer is not None and producer[0] in current:
                groups[-1].extend(pending + [i])
                pending = []
                continue
        groups.append(pending + [i])
        pending = []
    if pending:
        if groups:
            groups[-1].extend(pending)
        else:
            groups.append(pending)
    return [_describe(tr, g) for g in groups]


def _describe(tr: Trace, op_ids: list[int]) -> Block:
    inputs: list[int] = []  # tensor ids read from outside the block, in order of first use
    first_use: list[int] = []  # the op (trace index) that reads each first

    def rewrite(tree: Any, j: int) -> Any:
        if isinstance(tree, dict) and set(tree) == {"t"}:
            t = tree["t"]
            prod = tr.tensors[t]["producer"]
            if prod is not None and prod[0] in op_ids and op_ids.index(prod[0]) < j:
                return {"o": [op_ids.index(prod[0]), prod[1]]}
            if t not in inputs:
                inputs.append(t)
                first_use.append(op_ids[j])
            return {"in": inputs.index(t)}
        if isinstance(tree, list):
            return [rewrite(v, j) for v in tree]
        return tree  # a marker (dtype, device, ...) or a plain value

    ops = [[tr.ops[oi].name, [rewrite(tr.ops[oi].args[0], j), {k: rewrite(v, j) for k, v in tr.ops[oi].args[1].items()}]]
           for j, oi in enumerate(op_ids)]
    desc = {"ops": ops, "inputs": [{k: tr.tensors[t][k] for k in ("shape", "stride", "dtype")} for t in inputs]}
    names = [op_base(o[0]) for o in ops]
    compute = [n for n in names if n in KINDS] or [n for n in names if n not in FUSED] or names
    raw = tr.ops[op_ids[names.index(compute[0])]].args[0]
    kind, label = _name(names, compute[0], raw, lambda r: tr.tensors[r["t"]]["shape"]
                        if isinstance(r, dict) and "t" in r else None)
    made = [tr.tensors[t]["producer"] for t in inputs]
    sources = [[p[0], p[1], tr.ops[p[0]].name, use] if p else None for p, use in zip(made, first_use)]
    weights = sum(math.prod(tr.tensors[t]["shape"]) * getattr(torch, tr.tensors[t]["dtype"]).itemsize
                  for t in inputs if tr.tensors[t].get("weight"))
    return Block(op_ids, desc, kind, label, sources, weights)


def _name(names: list[str], first: str, args: list[Any], shape: Any) -> tuple[str, str]:
    """The block's kind (what the table fits separately) and a label people read, from its op names, its
    first compute op and that op's arguments (`shape` gives a tensor argument's shape)."""
    kind = KINDS.get(first, "act" if first in FUSED else "other")
    fused = "+".join(n.rstrip("_") for n in names if n in FUSED and n != first)
    label = first
    if kind == "conv":
        xs, ws = shape(args[0]), shape(args[1])
        if xs and ws and len(ws) == 4:
            stride = args[3] if len(args) > 3 else [1]
            groups = args[6] if len(args) > 6 else 1
            cin, cout = ws[1] * groups, ws[0]
            tag = "dwconv" if groups == cin and groups > 1 else "gconv" if groups > 1 else "conv"
            kind = {"dwconv": "conv_dw", "gconv": "conv_group", "conv": "conv"}[tag]
            label = (f"{tag}{ws[2]}x{ws[3]}/{stride[0] if isinstance(stride, list) else stride} {cin}>{cout}"
                     f"{f' g{groups}' if tag == 'gconv' else ''} @{'x'.join(map(str, xs[2:]))}")
    elif kind == "linear":
        ws = [shape(a) for a in args if shape(a)]
        label = f"linear {'x'.join(map(str, ws[-1]))}" if ws else first
    elif first in ("cat",):
        label = f"cat {len(args[0])} @{'x'.join(map(str, shape(args[0][0]) or []))}"
    else:
        s = next((shape(a) for a in (args if isinstance(args, list) else []) if shape(a)), None)
        label = f"{first.rstrip('_')} @{'x'.join(map(str, s))}" if s else first
    return kind, label + (f"+{fused}" if fused else "")


def network_blocks(model: nn.Module, x: torch.Tensor, fuse: bool = True) -> list[Block]:
    """The blocks of one forward pass, in execution order (repeated blocks appear once per use)."""
    return cut(trace(model, x), fuse)


# ---------------------------------------------------------------- replay

def _resolve(name: str) -> Any:
    parts = name.split(".")
    if len(parts) != 3 or parts[0] != "aten":
        raise BlockError(f"op {name!r} is not an aten op", hint="rebuild the table with this latbench")
    try:
        return getattr(getattr(torch.ops.aten, parts[1]), parts[2])
    except AttributeError:
        raise BlockError(f"op {name!r} is unknown to this torch", hint="rebuild the table with this torch") from None


def _random(info: dict[str, Any], device: Any) -> torch.Tensor:
    shape, stride, dtype = info["shape"], info["stride"], getattr(torch, info["dtype"])
    need = 1 + sum((s - 1) * st for s, st in zip(shape, stride)) if all(s > 0 for s in shape) else 0
    if dtype.is_floating_point:
        base = torch.randn(max(need, 1), dtype=dtype, device=device)
    else:
        base = torch.zeros(max(need, 1), dtype=dtype, device=device)
    return base.as_strided(shape, stride)


Getter = Callable[[list, list], Any]


def _pick(out: Any, k: int) -> Any:
    return out[k] if isinstance(out, (list, tuple)) else out


def _compile(tree: Any, device: Any) -> tuple[Any, Getter | None]:
    """An argument as (constant, None), or (None, getter(inputs, outputs)) where it reads tensors: the
    markers and constants are resolved once, so a call does no more Python work than it must."""
    if isinstance(tree, dict):
        if "in" in tree:
            i = tree["in"]
            return None, lambda ins, outs: ins[i]
        if "o" in tree:
            j, k = tree["o"]
            return None, lambda ins, outs: _pick(outs[j], k)
        for marker in ("dtype", "memory_format", "layout"):
            if marker in tree:
                return getattr(torch, tree[marker]), None
        if "device" in tree:
            return device, None
        raise BlockError(f"unknown marker {tree!r} in a block", hint="rebuild the table with this latbench")
    if isinstance(tree, list):
        parts = [_compile(v, device) for v in tree]
        if all(g is None for _, g in parts):
            return [c for c, _ in parts], None
        return None, lambda ins, outs: [g(ins, outs) if g is not None else c for c, g in parts]
    return tree, None


class BlockModule(nn.Module):
    """Replays a block's ops on random tensors of its inputs' shapes; `forward(x)` ignores x (the run
    wing's input) and returns the last op's output."""

    def __init__(self, desc: dict[str, Any]):
        super().__init__()
        device = torch.empty(0).device  # the device the builder runs under (meta to count, the run's device)
        self.ops = []
        for name, (args, kwargs) in desc["ops"]:
            const, get = _compile(args, device)
            kw = {k: _compile(v, device) for k, v in kwargs.items()}
            self.ops.append((_resolve(name), const, get, kw))
        real = network_tensors(desc["data"], device) if "data" in desc and device.type != "meta" else {}
        for i, info in enumerate(desc["inputs"]):
            if str(i) in real:  # the network's own tensor, laid out as the block reads it
                t = torch.empty_strided(info["shape"], info["stride"], dtype=getattr(torch, info["dtype"]),
                                        device=device)
                self.register_buffer(f"in{i}", t.copy_(real[str(i)]))
            else:
                self.register_buffer(f"in{i}", _random(info, device))
        self.n_inputs = len(desc["inputs"])

    def forward(self, x: torch.Tensor) -> Any:
        ins = [getattr(self, f"in{i}") for i in range(self.n_inputs)]
        outs: list[Any] = []
        for fn, const, get, kw in self.ops:
            args = get(ins, outs) if get is not None else const
            if kw:
                outs.append(fn(*args, **{k: g(ins, outs) if g is not None else c for k, (c, g) in kw.items()}))
            else:
                outs.append(fn(*args))
        return outs[-1] if outs else x


class _Capture(TorchDispatchMode):
    """Copies, as the op at a wanted index is about to read them, the tensors that earlier ops (at their
    indices, counted as _Recorder counts) made: what a block reads, in-place activations applied."""

    def __init__(self, data: dict[str, Any]):
        super().__init__()
        self.made: dict[int, list[tuple[str, int, str]]] = {}
        self.read: dict[int, list[str]] = {}
        for key, (op, k, name, use) in data.items():
            self.made.setdefault(op, []).append((key, k, name))
            self.read.setdefault(use, []).append(key)
        self.n, self.refs, self.got, self.names = 0, {}, {}, {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for key in self.read.get(self.n, []):
            if key in self.refs:
                self.got[key] = self.refs.pop(key).detach().clone()
        out = func(*args, **(kwargs or {}))
        for key, k, name in self.made.get(self.n, []):
            self.names[key] = (str(func), name)
            self.refs[key] = _pick(out, k)
        self.n += 1
        return out


def network_tensors(data: dict[str, Any], device: Any) -> dict[str, torch.Tensor]:
    """The tensors a block reads, from one forward pass of its network (built as `data["network"]` says,
    seeded, on `device`): {input index: tensor}. BlockError if the network runs other ops than it traced."""
    from latbench.cost import build_network

    n = data["network"]
    cap = _Capture(data["inputs"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, x = build_network(n["builder"], n["params"], n["blocks"], n["batch"], n["height"], n["width"],
                                 device, getattr(torch, n["dtype"]))
        with torch.inference_mode(), cap:
            model(x)
    for key, (ran, traced) in cap.names.items():
        if ran != traced:
            raise BlockError(f"the network ran {ran} where it traced {traced} (block input {key})",
                             hint="a network whose ops differ between the meta device and this one cannot give "
                                  "its tensors to a block; rebuild the table")
    missing = sorted(set(data["inputs"]) - set(cap.got))
    if missing:
        raise BlockError(f"the network ran {cap.n} ops, fewer than the block's inputs need ({missing})",
                         hint="rebuild the table with this latbench and torch")
    return {k: v.clone() for k, v in cap.got.items()}  # inference tensors: cloned outside inference mode


def block_module(block: str) -> nn.Module:
    """The factory the run wing calls (a `user` case): a block from its JSON description."""
    return BlockModule(json.loads(block))
