"""Efficient networks of the seed notes: EfficientNet-B0 (Tan & Le 2019), MixNet-S (Tan & Le 2019),
GhostNet (C-Ghost, Han et al. 2020), G-GhostNet (Han et al. 2022) and VarGNet (Zhang et al. 2019)."""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import Field
from torch import nn

from latbench.models.designs import GGhostStage, MixedConv
from latbench.models.networks._common import (SE, Classifier, NetParams, conv, conv_act, make_divisible,
                                              register_network)

# ---- MBConv with mixed kernels (EfficientNet, MixNet) --------------------------------------------


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (e x c_in), act; depthwise (mixed) k x k, act; SE (hidden = se x c_in);
    1x1 linear project; add the input when shapes match (EfficientNet's MBConv, MixNet's block)."""

    def __init__(self, c_in: int, c_out: int, e: int, kernels: tuple[int, ...], stride: int, se: float,
                 act: type[nn.Module], exp_groups: int = 1, proj_groups: int = 1):
        super().__init__()
        mid = c_in * e
        layers: list[nn.Module] = []
        if e != 1:
            layers += [MixedConv(c_in, mid, (1,) * exp_groups), act()]
        layers += [MixedConv(mid, mid, kernels, stride, depthwise=True), act()]
        if se:
            layers.append(SE(mid, max(1, int(c_in * se)), act))
        layers.append(MixedConv(mid, c_out, (1,) * proj_groups))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


# (expansion, kernel, stride, channels, repeats) of EfficientNet-B0 (Table 1 of the paper)
B0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
             (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


class EfficientNetParams(NetParams):
    se: bool = Field(default=True, description="squeeze-and-excitation in every block (ratio 0.25 of its input)")
    swish: bool = Field(default=True, description="swish (SiLU) activations; false: ReLU")


def efficientnet_b0(p: dict[str, Any]) -> nn.Module:
    """EfficientNet-B0: 3x3 s2 stem of 32, MBConv stages, 1x1 conv to 1280, classifier."""
    act = nn.SiLU if p["swish"] else nn.ReLU
    layers: list[nn.Module] = [conv_act(3, 32, 3, 2, act=act)]
    c = 32
    for e, k, s, out, n in B0_STAGES:
        for i in range(n):
            layers.append(MBConv(c, out, e, (k,), s if i == 0 else 1, 0.25 if p["se"] else 0, act))
            c = out
    layers += [conv_act(c, 1280, act=act), Classifier(1280, p["num_classes"])]
    return nn.Sequential(*layers)


register_network("efficientnet_b0", "EfficientNet-B0 whole network (MBConv, SE, swish; both switchable)",
                 EfficientNetParams, efficientnet_b0)


# MixNet-S blocks (the authors' TPU code / timm `mixnet_s`): expansion, dw kernels, stride, out channels,
# SE ratio of the block input, swish, expand groups, project groups
MIXNET_S = [(1, (3,), 1, 16, 0, False, 1, 1),
            (6, (3,), 2, 24, 0, False, 2, 2), (3, (3,), 1, 24, 0, False, 2, 2),
            (6, (3, 5, 7), 2, 40, 0.5, True, 1, 1)] + [(6, (3, 5), 1, 40, 0.5, True, 2, 2)] * 3 + [
            (6, (3, 5, 7), 2, 80, 0.25, True, 1, 2)] + [(6, (3, 5), 1, 80, 0.25, True, 1, 2)] * 2 + [
            (6, (3, 5, 7), 1, 120, 0.5, True, 2, 2)] + [(3, (3, 5, 7, 9), 1, 120, 0.5, True, 2, 2)] * 2 + [
            (6, (3, 5, 7, 9, 11), 2, 200, 0.5, True, 1, 1)] + [(6, (3, 5, 7, 9), 1, 200, 0.5, True, 1, 2)] * 2


class MixNetParams(NetParams):
    pass


def mixnet_s(p: dict[str, Any]) -> nn.Module:
    """MixNet-S: 3x3 s2 stem of 16, mixed-kernel MBConv blocks, 1x1 conv to 1536, classifier."""
    layers: list[nn.Module] = [conv_act(3, 16, 3, 2)]
    c = 16
    for e, ks, s, out, se, swish, eg, pg in MIXNET_S:
        layers.append(MBConv(c, out, e, ks, s, se, nn.SiLU if swish else nn.ReLU, eg, pg))
        c = out
    layers += [conv_act(c, 1536), Classifier(1536, p["num_classes"])]
    return nn.Sequential(*layers)


register_network("mixnet_s", "MixNet-S whole network (MixConv: mixed depthwise kernel sizes)", MixNetParams,
                 mixnet_s)


# ---- GhostNet (C-Ghost) -------------------------------------------------------------------------

class GhostModule(nn.Module):
    """Primary 1x1 conv to ceil(c_out/2) intrinsic maps [ReLU]; 3x3 depthwise for the ghost maps [ReLU];
    concat, keep c_out (Han et al. 2020, ratio 2)."""

    def __init__(self, c_in: int, c_out: int, relu: bool):
        super().__init__()
        self.c_out = c_out
        init = math.ceil(c_out / 2)
        act = nn.ReLU if relu else None
        self.primary = conv_act(c_in, init, act=act)
        self.cheap = conv_act(init, init, 3, groups=init, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.primary(x)
        return torch.cat((y, self.cheap(y)), dim=1)[:, :self.c_out]


class HardSigmoid(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.relu6(x + 3.0) / 6.0


class GhostBottleneck(nn.Module):
    """Ghost module (ReLU) to mid, [3x3/5x5 depthwise s2], [SE], Ghost module (linear) to c_out; add the
    input or a depthwise + 1x1 shortcut (Fig. 3)."""

    def __init__(self, c_in: int, mid: int, c_out: int, k: int, stride: int, se: float):
        super().__init__()
        layers: list[nn.Module] = [GhostModule(c_in, mid, True)]
        if stride > 1:
            layers.append(conv(mid, mid, k, stride, mid))
        if se:
            layers.append(SE(mid, make_divisible(mid * se, 4), nn.ReLU, HardSigmoid))
        layers.append(GhostModule(mid, c_out, False))
        self.body = nn.Sequential(*layers)
        self.short = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            conv(c_in, c_in, k, stride, c_in), conv(c_in, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.short(x)


# kernel, expansion width, output channels, SE ratio, stride (Table 1 of the paper)
GHOSTNET = ((3, 16, 16, 0, 1), (3, 48, 24, 0, 2), (3, 72, 24, 0, 1), (5, 72, 40, 0.25, 2), (5, 120, 40, 0.25, 1),
            (3, 240, 80, 0, 2), (3, 200, 80, 0, 1), (3, 184, 80, 0, 1), (3, 184, 80, 0, 1), (3, 480, 112, 0.25, 1),
            (3, 672, 112, 0.25, 1), (5, 672, 160, 0.25, 2), (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1),
            (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1))


class GhostNetParams(NetParams):
    width: float = Field(default=1.0, gt=0, le=4, description="width multiplier (paper: 0.5, 1.0, 1.3)")


def ghostnet(p: dict[str, Any]) -> nn.Module:
    """GhostNet: 3x3 s2 stem of 16, Ghost bottlenecks, 1x1 conv to 960, global pool, 1x1 conv to 1280,
    ReLU, classifier (channels x width, multiples of 4)."""
    w = p["width"]
    c = make_divisible(16 * w, 4)
    layers: list[nn.Module] = [conv_act(3, c, 3, 2)]
    for k, exp, out, se, s in GHOSTNET:
        out = make_divisible(out * w, 4)
        layers.append(GhostBottleneck(c, make_divisible(exp * w, 4), out, k, s, se))
        c = out
    last = make_divisible(960 * w, 4)
    layers += [conv_act(c, last), nn.AdaptiveAvgPool2d(1), nn.Conv2d(last, 1280, 1), nn.ReLU(inplace=True),
               nn.Flatten(), nn.Linear(1280, p["num_classes"])]
    return nn.Sequential(*layers)


register_network("ghostnet", "GhostNet (C-Ghost) whole network at width multiplier", GhostNetParams, ghostnet)


# ---- G-GhostNet ---------------------------------------------------------------------------------

class GGhostNetParams(NetParams):
    widths: tuple[int, int, int, int] = Field(default=(48, 96, 192, 384), description="stage widths")
    depths: tuple[int, int, int, int] = Field(default=(3, 4, 6, 3), description="3x3 blocks per stage (>= 3)")
    ghost: bool = Field(default=True, description="false: the plain stages G-Ghost replaces")
    cheap_ratio: float = Field(default=0.5, gt=0, lt=1, description="lambda: share of each stage's output made cheaply")
    mix: bool = Field(default=True, description="the mix op (pooled intermediate features)")


def g_ghostnet(p: dict[str, Any]) -> nn.Module:
    """G-GhostNet style (no published complexity checked): 3x3 s2 stem of 32, max pool, four stages at
    56 / 28 / 14 / 7, each a strided 3x3 conv to the stage width then a G-Ghost stage (designs.py) of
    plain 3x3 blocks, classifier. The paper's stages use RegNet bottlenecks; ours GPU-friendly dense convs."""
    layers: list[nn.Module] = [conv_act(3, 32, 3, 2), nn.MaxPool2d(3, 2, 1)]
    c = 32
    for s, (width, depth) in enumerate(zip(p["widths"], p["depths"])):
        layers += [conv_act(c, width, 3, 1 if s == 0 else 2),
                   GGhostStage(width, depth, p["ghost"], p["cheap_ratio"], p["mix"])]
        c = width
    layers.append(Classifier(c, p["num_classes"]))
    return nn.Sequential(*layers)


register_network("g_ghostnet", "G-GhostNet style whole network (G-Ghost stages; ghost: false = plain)",
                 GGhostNetParams, g_ghostnet)


# ---- VarGNet ------------------------------------------------------------------------------------

class VarGUnit(nn.Module):
    """Two variable-group separable convs (3x3 group conv with S channels per group, 1x1 conv, ReLU), the
    first strided in a stage's first unit; add the input or a strided variable-group projection."""

    def __init__(self, c_in: int, c_out: int, stride: int, s: int):
        super().__init__()
        self.body = nn.Sequential(conv(c_in, c_in, 3, stride, c_in // s), conv_act(c_in, c_out),
                                  conv(c_out, c_out, 3, 1, c_out // s), conv_act(c_out, c_out))
        self.short = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            conv(c_in, c_in, 3, stride, c_in // s), conv(c_in, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.short(x)


class VarGNetParams(NetParams):
    width: float = Field(default=1.0, gt=0, le=8, description="multiplies the stage widths 64/128/256")
    group_channels: int = Field(default=8, ge=1, description="S: channels per group of the 3x3 convs (VarGNet: 8)")


def vargnet(p: dict[str, Any]) -> nn.Module:
    """VarGNet style (no published complexity checked): ShuffleNet skeleton (3x3 s2 stem of 32, max pool,
    stages of 4 / 8 / 4 units, 1x1 conv to 1024, classifier) with VarGNet's fixed-channels-per-group units;
    widths are multiples of S."""
    s = p["group_channels"]
    layers: list[nn.Module] = [conv_act(3, 32, 3, 2), nn.MaxPool2d(3, 2, 1)]
    c = 32
    for base, n in zip((64, 128, 256), (4, 8, 4)):
        out = make_divisible(base * p["width"], s)
        for i in range(n):
            layers.append(VarGUnit(c, out, 2 if i == 0 else 1, s))
            c = out
    layers += [conv_act(c, 1024), Classifier(1024, p["num_classes"])]
    return nn.Sequential(*layers)


register_network("vargnet", "VarGNet style whole network (variable group convs, S channels per group)",
                 VarGNetParams, vargnet)
