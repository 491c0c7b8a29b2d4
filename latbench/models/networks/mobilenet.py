"""MobileNet V1 (Howard et al. 2017), MobileNet V2 (Sandler et al. 2018) and the heavy-group IGCV-style
networks (IGCV2: Xie et al. 2018; IGCV3: Sun et al. 2018) built on their layouts."""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import Field, model_validator
from torch import nn

from latbench.models.networks._common import (Classifier, NetParams, channel_shuffle, conv, conv_act,
                                              make_divisible, register_network)

# ---- MobileNet V1 -------------------------------------------------------------------------------

# (output channels, stride) of the 13 depthwise-separable layers (Table 1 of the paper)
V1_LAYERS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
             (512, 1), (1024, 2), (1024, 1))


class MobileNetV1Params(NetParams):
    width: float = Field(default=1.0, gt=0, le=4, description="width multiplier alpha (0.25, 0.5, 0.75, 1.0)")


def mobilenet_v1(p: dict[str, Any]) -> nn.Module:
    a = p["width"]
    c = int(32 * a)
    layers: list[nn.Module] = [conv_act(3, c, 3, 2)]
    for out, stride in V1_LAYERS:
        out = int(out * a)
        layers += [conv_act(c, c, 3, stride, c), conv_act(c, out)]
        c = out
    layers.append(Classifier(c, p["num_classes"]))
    return nn.Sequential(*layers)


register_network("mobilenet_v1", "MobileNet V1 whole network at width multiplier alpha", MobileNetV1Params,
                 mobilenet_v1)


# ---- MobileNet V2 and IGCV3 ---------------------------------------------------------------------

# (expansion t, output channels c, repeats n, stride s) of the bottleneck stages (Table 2 of the paper)
V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1))
IGCV3_D_REPEATS = (1, 4, 6, 8, 6, 6, 1)  # IGCV3-D: the deeper layout of Sun et al. 2018


class MobileNetV2Params(NetParams):
    width: float = Field(default=1.0, gt=0, le=4, description="width multiplier (0.35 ... 1.4); channels rounded "
                         "to multiples of `divisor`, the last conv stays 1280 below 1.0")
    divisor: int = Field(default=8, ge=1, le=64, description="channels are multiples of this (MobileNet V2: 8)")


class InvertedResidual(nn.Module):
    """1x1 expand, ReLU6, 3x3 depthwise (stride), ReLU6, 1x1 linear project; add the input when shapes
    match. groups > 1 (IGCV3): both 1x1 convs are group convs and a channel shuffle follows the first."""

    def __init__(self, c_in: int, c_out: int, stride: int, t: int, groups: int = 1):
        super().__init__()
        hidden = c_in * t
        self.groups = groups if t != 1 else 1
        self.residual = stride == 1 and c_in == c_out
        self.expand = conv_act(c_in, hidden, groups=self.groups, act=nn.ReLU6) if t != 1 else nn.Identity()
        self.dw = conv_act(hidden, hidden, 3, stride, hidden, act=nn.ReLU6)
        self.project = conv(hidden, c_out, groups=self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x)
        if self.groups > 1:
            out = channel_shuffle(out, self.groups)
        out = self.project(self.dw(out))
        return x + out if self.residual else out


def _inverted_net(p: dict[str, Any], repeats: tuple[int, ...], groups: int, divisor: int) -> nn.Module:
    a = p["width"]
    c = make_divisible(32 * a, divisor)
    layers: list[nn.Module] = [conv_act(3, c, 3, 2, act=nn.ReLU6)]
    for (t, out, _, s), n in zip(V2_STAGES, repeats):
        out = make_divisible(out * a, divisor)
        for i in range(n):
            layers.append(InvertedResidual(c, out, s if i == 0 else 1, t, groups))
            c = out
    last = make_divisible(1280 * max(1.0, a), divisor)
    layers += [conv_act(c, last, act=nn.ReLU6), Classifier(last, p["num_classes"])]
    return nn.Sequential(*layers)


def mobilenet_v2(p: dict[str, Any]) -> nn.Module:
    return _inverted_net(p, tuple(n for _, _, n, _ in V2_STAGES), 1, p["divisor"])


register_network("mobilenet_v2", "MobileNet V2 whole network at width multiplier and resolution (160/192/224)",
                 MobileNetV2Params, mobilenet_v2)


class IGCV3Params(NetParams):
    width: float = Field(default=1.0, gt=0, le=4, description="width multiplier over MobileNet V2's channels "
                         "(suites/networks.yaml solves it to each IGCV3-D row's complexity)")
    groups: int = Field(default=2, ge=1, description="groups of both 1x1 convs of every block (IGCV3: 2)")
    divisor: int = Field(default=16, ge=1, le=64, description="channels are multiples of this (a multiple of groups)")

    @model_validator(mode="after")
    def _check(self) -> "IGCV3Params":
        if self.divisor % self.groups:
            raise ValueError(f"divisor={self.divisor} is not a multiple of groups={self.groups}")
        return self


def igcv3(p: dict[str, Any]) -> nn.Module:
    """IGCV3-D style: MobileNet V2's stages at depths (1, 4, 6, 8, 6, 6, 1), both 1x1 convs of every
    block with `groups` groups and a channel shuffle between them. The IGCV3 paper's exact widths are not
    reproduced: channels are MobileNet V2's x width (multiples of divisor), and the width is chosen
    to meet a published complexity (IGCV3-D 0.7 / 1.0 / 1.4: 210 / 318 / 610 M multiply-adds)."""
    return _inverted_net(p, IGCV3_D_REPEATS, p["groups"], p["divisor"])


register_network("igcv3", "IGCV3-D style heavy-group network: MobileNet V2 layout, deeper, group 1x1 convs + "
                 "shuffle", IGCV3Params, igcv3)


# ---- IGCV2 --------------------------------------------------------------------------------------

class IGCV2Params(NetParams):
    width: float = Field(default=1.0, gt=0, le=4, description="width multiplier over MobileNet V1's channels "
                         "(suites/networks.yaml solves it to each IGCV2 row's complexity)")
    group_channels: int = Field(default=8, ge=1, description="channels per group of the two interleaved 1x1 "
                                "group convs")


class IGCV2Block(nn.Module):
    """3x3 depthwise, then the 1x1 conv of MobileNet V1 replaced by two interleaved 1x1 group convs
    (channels per group S) with a permutation between them (IGCV2's staggered group convs)."""

    def __init__(self, c_in: int, c_out: int, stride: int, s: int):
        super().__init__()
        self.g1 = math.gcd(c_in // s, c_out // s)
        self.dw = conv_act(c_in, c_in, 3, stride, c_in, act=None)
        self.gc1 = conv(c_in, c_out, groups=self.g1)
        self.gc2 = conv_act(c_out, c_out, groups=c_out // s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gc2(channel_shuffle(self.gc1(self.dw(x)), self.g1))


def igcv2(p: dict[str, Any]) -> nn.Module:
    """IGCV2 style on MobileNet V1's layout. Widths: MobileNet V1's x width, rounded to multiples of
    group_channels; the IGCV2 paper's exact layout is not reproduced: the width is chosen to meet a
    published complexity (IGCV2-0.25 / 0.5 / 1.0: 46 / 156 / 564 M multiply-adds)."""
    a, s = p["width"], p["group_channels"]
    c = make_divisible(32 * a, s)
    layers: list[nn.Module] = [conv_act(3, c, 3, 2)]
    for out, stride in V1_LAYERS:
        out = make_divisible(out * a, s)
        layers.append(IGCV2Block(c, out, stride, s))
        c = out
    layers.append(Classifier(c, p["num_classes"]))
    return nn.Sequential(*layers)


register_network("igcv2", "IGCV2 style heavy-group network: MobileNet V1 layout with interleaved group 1x1 convs",
                 IGCV2Params, igcv2)
