"""Shared parts of the whole networks: parameters, conv + activation, SE, registration.

Every network here is plain torch (torchvision cannot be imported next to the CPU build of torch).
As in models/designs.py, convs carry no bias and no BatchNorm (an inference library folds BN into
the conv); activations stay where the design has them. The input is (3, resolution, resolution).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from latbench.models.registry import Builder, register_builder

NETWORKS: set[str] = set()  # names of the whole-network builders (blocks must be 1)


class NetParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    resolution: int = Field(default=224, ge=32, le=1024, description="input height = width (the paper: 224; "
                            "Table 8's starred MobileNet V2 rows: 160, 192)")
    num_classes: int = Field(default=1000, ge=1, description="classifier outputs")


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """The MobileNet rounding: nearest multiple of divisor, never below 90 % of v."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv(c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1, padding: int | None = None) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2 if padding is None else padding, groups=groups,
                     bias=False)


def conv_act(c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1,
             act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    """k x k conv (BN folded) and its activation (none if act is None)."""
    layers: list[nn.Module] = [conv(c_in, c_out, k, stride, groups)]
    if act is not None:
        layers.append(act(inplace=True) if act in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish) else act())
    return nn.Sequential(*layers)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class SE(nn.Module):
    """Squeeze-and-excitation: pool, 1x1 c->hidden, act, 1x1 hidden->c, gate, scale."""

    def __init__(self, c: int, hidden: int, act: type[nn.Module] = nn.ReLU, gate: type[nn.Module] = nn.Sigmoid):
        super().__init__()
        self.body = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, hidden, 1), act(),
                                  nn.Conv2d(hidden, c, 1), gate())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.body(x)


class Classifier(nn.Module):
    """Global average pool, flatten, fully connected."""

    def __init__(self, c: int, num_classes: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(x), 1))


def register_network(name: str, summary: str, params: type[NetParams],
                     make: Callable[[dict[str, Any]], nn.Module]) -> None:
    """Register a whole network: no solver widths (its own width multiplier is a parameter), input
    (3, resolution, resolution); a suite must use `blocks: 1`."""

    def build(p: dict[str, Any], blocks: int) -> nn.Module:
        if blocks != 1:
            raise ValueError(f"{name} is a whole network and cannot be stacked: set 'blocks: 1' in the suite "
                             f"(it has blocks: {blocks})")
        return make(p)

    NETWORKS.add(name)
    register_builder(Builder(name=name, summary=summary, params=params, width_names=(), build=build,
                             in_channels=lambda p: 3, widths=lambda p: {}, proportions=lambda p: {},
                             input_shape=lambda p: (3, p["resolution"], p["resolution"])))
