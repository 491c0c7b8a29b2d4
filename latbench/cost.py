"""Static cost of a network: FLOPs (torch.utils.flop_counter), parameters, activations, and the
ShuffleNet V2 memory access cost (MAC) in bytes, all counted on the meta device (no memory, no time).

FLOPs follow torch's FlopCounterMode: one multiply-add is 2 FLOPs. The paper's "FLOPs" are
multiply-adds, i.e. `Cost.mult_adds` = flops / 2.

MAC generalizes the paper's 1x1-conv formula h*w*(c1+c2) + c1*c2/g to every op: each aten op that
computes something (views are free) reads its tensor inputs (activations and weights) and writes its
outputs once, as if the cache held everything. For a 1x1 conv that is exactly the paper's formula;
a ReLU costs 2x its tensor, a residual add 3x. Bytes = elements x element size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from latbench.models import get_builder
from latbench.records import CaseSpec, Cost


class _MemoryAccessCounter(TorchDispatchMode):
    """Sums bytes read and written and elements produced by every non-view aten op."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.elements_out = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # contiguous() is declared a view (it may return self) but copies a strided input (a channel
        # shuffle's transpose): count it when it returned a new tensor.
        copied = func in _MAYBE_COPY_OPS and out is not args[0]
        if (copied or not func.is_view) and func not in _FREE_OPS:
            ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            self.bytes += sum(t.numel() * t.element_size() for t in ins + outs)
            self.elements_out += sum(t.numel() for t in outs)
        return out


_FREE_OPS = {torch.ops.aten.detach.default, torch.ops.aten.empty.memory_format}
_MAYBE_COPY_OPS = {torch.ops.aten.contiguous.default}


def build_network(builder: str, params: dict[str, Any], blocks: int, batch: int, height: int, width: int,
                  device: torch.device | str = "meta", dtype: torch.dtype = torch.float32,
                  ) -> tuple[nn.Module, torch.Tensor]:
    """The network in eval mode and a random input of shape (batch, C, height, width) on `device`."""
    b = get_builder(builder)
    params = b.params.model_validate(params).model_dump()
    if b.make is not None:  # objects that exist already (latbench.measure): as they are
        return b.make(params)
    shape = b.input_shape(params) if b.input_shape else (b.in_channels(params), height, width)
    with torch.device(device):
        model = b.build(params, blocks).to(dtype=dtype).eval()
        x = torch.randn(batch, *shape, dtype=dtype)
    return model, x


def count(builder: str, params: dict[str, Any], blocks: int, batch: int, height: int, width: int,
          dtype: torch.dtype = torch.float32) -> Cost:
    """Count FLOPs, MAC bytes, parameters and activations of one forward pass of a batch.

    On the meta device (no memory, no time); a module that cannot run there (a user module calling
    .item(), say) is counted by one real forward pass on the CPU instead.
    """
    try:
        return _count_on(builder, params, blocks, batch, height, width, dtype, "meta")
    except Exception:  # noqa: BLE001 - any meta failure: count for real
        return _count_on(builder, params, blocks, batch, height, width, dtype, "cpu")


def _count_on(builder: str, params: dict[str, Any], blocks: int, batch: int, height: int, width: int,
              dtype: torch.dtype, device: str) -> Cost:
    model, x = build_network(builder, params, blocks, batch, height, width, device, dtype)
    return count_call(model, x)


def count_call(model: nn.Module, x: Any) -> Cost:
    """The cost of one call `model(x)` on the device model and x are on (latbench.predict counts its
    blocks with it, so blocks and networks are counted alike)."""
    flops = FlopCounterMode(display=False)
    mac = _MemoryAccessCounter()
    with torch.inference_mode(), flops, mac:
        model(x)
    return Cost(flops=int(flops.get_total_flops()), mac_bytes=int(mac.bytes),
                params=sum(p.numel() for p in model.parameters()), activations=int(mac.elements_out))


def count_spec(spec: CaseSpec, dtype: torch.dtype | None = None) -> Cost:
    """The cost of a case at its batch and dtype (spec.dtype unless `dtype` is given)."""
    dtype = dtype or getattr(torch, spec.dtype)
    return count(spec.builder, spec.param_dict, spec.blocks, spec.batch, spec.height, spec.width, dtype)
