"""Efficient-CNN designs from the seed notes, as builders: conv families (dense, group, depthwise-
separable, VarGNet's variable group conv), ShuffleNet V1/V2 units, MobileNet V2 inverted residual
with optional SE, the Ghost module (C-Ghost) and the G-Ghost stage.

As in models/guidelines.py every network is `blocks` identical blocks at a fixed feature-map size,
input channels = output channels, convs carry no bias and no BatchNorm (an inference library folds
BN into the conv); ReLUs stay where the design has them (they are real element-wise work, G4).
MobileNet V1's depthwise-separable unit is `conv` with `group_channels: 1, pointwise: true`.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from latbench.models.registry import Builder, register_builder


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _conv(c_in: int, c_out: int, k: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=k, padding=k // 2, groups=groups, bias=False)


def _multiple(c: int, step: int, what: str) -> None:
    if c % step:
        raise ValueError(f"c={c} is not a multiple of {step} ({what}); use e.g. c={step * max(1, round(c / step))}")


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: reshape to (g, c/g), transpose, flatten (one copy)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


def _register(name: str, summary: str, params: type[_Params], build, step=lambda p: 1) -> None:
    """Every design here has one width, c (block input = output channels), a multiple of step(p)."""
    register_builder(Builder(name=name, summary=summary, params=params, width_names=("c",), build=build,
                             in_channels=lambda p: p["c"], widths=lambda p: {"c": step(p)},
                             proportions=lambda p: {"c": 1.0}))


def _stack(block, p: dict[str, Any], blocks: int) -> nn.Module:
    return nn.Sequential(*[block(**p) for _ in range(blocks)])


# ---- Conv families: dense / group / depthwise-separable / variable group (VarGNet) -------------

class ConvParams(_Params):
    c: int = Field(ge=1, description="input = output channels")
    kernel: int = Field(default=3, ge=1, le=7, description="spatial kernel size (odd)")
    groups: int = Field(default=1, ge=1, description="fixed group count (1 = dense)")
    group_channels: int | None = Field(default=None, ge=1, description="VarGNet: fixed channels per group, so "
                                       "groups = c / group_channels (1 = depthwise); excludes groups")
    pointwise: bool = Field(default=False, description="follow with a 1x1 conv c->c (a separable block)")
    relu: bool = True

    @model_validator(mode="after")
    def _check(self) -> "ConvParams":
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel={self.kernel} is even; use an odd size (1, 3, 5, 7)")
        if self.group_channels is not None and self.groups != 1:
            raise ValueError("give groups or group_channels, not both")
        _multiple(self.c, self.group_channels or self.groups, "channels per group" if self.group_channels else "groups")
        return self


class ConvBlock(nn.Module):
    """k x k conv c->c with G groups [ReLU] [1x1 conv c->c, ReLU]."""

    def __init__(self, c: int, kernel: int, groups: int, group_channels: int | None, pointwise: bool, relu: bool):
        super().__init__()
        g = c // group_channels if group_channels else groups
        layers: list[nn.Module] = [_conv(c, c, kernel, g)] + ([nn.ReLU(inplace=True)] if relu else [])
        if pointwise:
            layers += [_conv(c, c)] + ([nn.ReLU(inplace=True)] if relu else [])
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


_register("conv", "k x k conv c->c: dense (groups 1), group (groups g), variable group (group_channels S, "
          "VarGNet), depthwise (group_channels 1); pointwise: true adds a 1x1 (MobileNet V1 unit)",
          ConvParams, lambda p, blocks: _stack(ConvBlock, p, blocks),
          step=lambda p: p.get("group_channels") or p.get("groups", 1))


# ---- ShuffleNet V1 unit (Zhang et al. 2018, Fig. 2b) --------------------------------------------

class ShuffleV1Params(_Params):
    c: int = Field(ge=1, description="unit input = output channels")
    groups: int = Field(default=3, ge=1, description="groups of both pointwise convs (the paper's g)")
    bottleneck: int = Field(default=4, ge=1, description="inner width is c / bottleneck (paper: 4)")

    @model_validator(mode="after")
    def _check(self) -> "ShuffleV1Params":
        _multiple(self.c, self.bottleneck * self.groups, "bottleneck x groups, so both group convs divide")
        return self


class ShuffleV1Unit(nn.Module):
    """1x1 group conv c->m, ReLU, channel shuffle, 3x3 depthwise m (no ReLU), 1x1 group conv m->c,
    add the input, ReLU (stride-1 unit)."""

    def __init__(self, c: int, groups: int, bottleneck: int):
        super().__init__()
        m = c // bottleneck
        self.groups = groups
        self.reduce = _conv(c, m, 1, groups)
        self.dw = _conv(m, m, 3, m)
        self.expand = _conv(m, c, 1, groups)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.reduce(x))
        out = self.expand(self.dw(channel_shuffle(out, self.groups)))
        return self.act(out + x)


_register("shufflenet_v1_unit", "ShuffleNet V1 unit: 1x1 group conv, channel shuffle, 3x3 depthwise, 1x1 group "
          "conv, residual add", ShuffleV1Params, lambda p, blocks: _stack(ShuffleV1Unit, p, blocks),
          step=lambda p: p.get("bottleneck", 4) * p.get("groups", 3))


# ---- ShuffleNet V2 unit (Ma et al. 2018, Fig. 3c) -----------------------------------------------

class ShuffleV2Params(_Params):
    c: int = Field(ge=2, description="unit input = output channels (split in half)")

    @model_validator(mode="after")
    def _check(self) -> "ShuffleV2Params":
        _multiple(self.c, 2, "the channel split halves it")
        return self


class ShuffleV2Unit(nn.Module):
    """Channel split in halves; one half passes, the other goes 1x1, ReLU, 3x3 depthwise, 1x1, ReLU;
    concat; channel shuffle with 2 groups (stride-1 unit)."""

    def __init__(self, c: int):
        super().__init__()
        h = c // 2
        self.branch = nn.Sequential(_conv(h, h), nn.ReLU(inplace=True), _conv(h, h, 3, h), _conv(h, h),
                                    nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep, work = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((keep, self.branch(work)), dim=1), 2)


_register("shufflenet_v2_unit", "ShuffleNet V2 unit: channel split, 1x1 / 3x3 depthwise / 1x1 on one half, "
          "concat, channel shuffle", ShuffleV2Params, lambda p, blocks: _stack(ShuffleV2Unit, p, blocks),
          step=lambda p: 2)


# ---- MobileNet V2 inverted residual (Sandler et al. 2018), optional SE (Hu et al. 2018) ---------

class SqueezeExcite(nn.Module):
    """SE: global average pool, 1x1 c->c/r, ReLU, 1x1 c/r->c, sigmoid, scale the input per channel."""

    def __init__(self, c: int, reduction: int):
        super().__init__()
        hidden = max(1, c // reduction)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), _conv(c, hidden), nn.ReLU(inplace=True),
                                  _conv(hidden, c), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class InvertedResidualParams(_Params):
    c: int = Field(ge=1, description="unit input = output channels")
    expansion: int = Field(default=6, ge=1, description="inner width is expansion x c (paper: 6)")
    se: bool = Field(default=False, description="squeeze-and-excitation on the branch before the add")
    se_reduction: int = Field(default=16, ge=1, description="SE hidden width is c / se_reduction (SENet: 16)")


class InvertedResidual(nn.Module):
    """1x1 c->tc, ReLU6, 3x3 depthwise tc, ReLU6, 1x1 tc->c (linear), [SE], add the input."""

    def __init__(self, c: int, expansion: int, se: bool, se_reduction: int):
        super().__init__()
        t = c * expansion
        layers: list[nn.Module] = [_conv(c, t), nn.ReLU6(inplace=True), _conv(t, t, 3, t), nn.ReLU6(inplace=True),
                                   _conv(t, c)]
        if se:
            layers.append(SqueezeExcite(c, se_reduction))
        self.branch = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


_register("mobilenet_v2_unit", "MobileNet V2 inverted residual (1x1 expand, 3x3 depthwise, 1x1 linear "
          "project, add), optional SE on the branch", InvertedResidualParams,
          lambda p, blocks: _stack(InvertedResidual, p, blocks))


# ---- Ghost module (Han et al. 2020, C-Ghost) ----------------------------------------------------

class GhostParams(_Params):
    c: int = Field(ge=1, description="module input = output channels")
    ratio: int = Field(default=2, ge=2, description="s: output / intrinsic channels (paper: 2)")
    dw_size: int = Field(default=3, ge=1, le=7, description="kernel of the cheap depthwise op (paper: 3)")
    relu: bool = True

    @model_validator(mode="after")
    def _check(self) -> "GhostParams":
        _multiple(self.c, self.ratio, "ratio, so intrinsic + ghost features make exactly c")
        return self


class GhostModule(nn.Module):
    """Primary 1x1 conv c->c/s [ReLU]; cheap depthwise d x d conv producing (s-1) ghost maps per
    intrinsic map [ReLU]; concat intrinsic and ghost features (c channels)."""

    def __init__(self, c: int, ratio: int, dw_size: int, relu: bool):
        super().__init__()
        m = c // ratio
        act = [nn.ReLU(inplace=True)] if relu else []
        self.primary = nn.Sequential(_conv(c, m), *act)
        self.cheap = nn.Sequential(_conv(m, m * (ratio - 1), dw_size, m), *act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.primary(x)
        return torch.cat((y, self.cheap(y)), dim=1)


_register("ghost_module", "Ghost module (C-Ghost): 1x1 conv to c/s intrinsic maps, cheap depthwise op for the "
          "rest, concat", GhostParams, lambda p, blocks: _stack(GhostModule, p, blocks),
          step=lambda p: p.get("ratio", 2))


# ---- G-Ghost stage (Han et al. 2022) and the plain stage it replaces ----------------------------

class GGhostParams(_Params):
    c: int = Field(ge=2, description="stage input = output channels")
    depth: int = Field(default=4, ge=3, description="blocks in the stage (3x3 conv + ReLU each)")
    ghost: bool = Field(default=True, description="false: the plain stage of `depth` blocks at width c")
    cheap_ratio: float = Field(default=0.5, gt=0, lt=1, description="lambda: share of output made cheaply")
    mix: bool = Field(default=True, description="the mix op: pooled intermediate features added to the cheap ones")

    @model_validator(mode="after")
    def _check(self) -> "GGhostParams":
        cheap = round(self.c * self.cheap_ratio)
        if self.ghost and not 1 <= cheap < self.c:
            raise ValueError(f"c={self.c} with cheap_ratio={self.cheap_ratio} leaves no cheap or no raw channels; "
                             f"use a larger c")
        return self


def _block(c: int) -> nn.Module:
    return nn.Sequential(_conv(c, c, 3), nn.ReLU(inplace=True))


class GGhostStage(nn.Module):
    """First block c->c (x0); depth-2 blocks on its first (1-lambda)c channels (complex features);
    the other lambda*c channels of x0 through a cheap 1x1 conv (ghost features), plus with `mix`
    a per-channel term from the pooled x0 and intermediates (1x1, ReLU, 1x1); ReLU; concat; last
    block c->c. With ghost=False: depth plain blocks."""

    def __init__(self, c: int, depth: int, ghost: bool, cheap_ratio: float, mix: bool):
        super().__init__()
        self.ghost, self.mix = ghost, mix
        if not ghost:
            self.plain = nn.Sequential(*[_block(c) for _ in range(depth)])
            return
        q = round(c * cheap_ratio)
        self.raw = c - q
        self.base, self.end = _block(c), _block(c)
        self.layers = nn.ModuleList(_block(self.raw) for _ in range(depth - 2))
        self.cheap = _conv(q, q)
        self.act = nn.ReLU(inplace=True)
        if mix:
            self.merge = nn.Sequential(nn.AdaptiveAvgPool2d(1), _conv(c + self.raw * (depth - 2), q),
                                       nn.ReLU(inplace=True), _conv(q, q))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.ghost:
            return self.plain(x)
        x0 = self.base(x)
        e, feats = x0[:, :self.raw], [x0]
        for layer in self.layers:
            e = layer(e)
            feats.append(e)
        g = self.cheap(x0[:, self.raw:])
        if self.mix:
            g = g + self.merge(torch.cat(feats, dim=1))
        return self.end(torch.cat((e, self.act(g)), dim=1))


_register("g_ghost_stage", "G-Ghost stage: complex features on (1-lambda)c channels, cheap 1x1 ghost features, "
          "optional mix op; ghost: false is the plain stage", GGhostParams,
          lambda p, blocks: _stack(GGhostStage, p, blocks), step=lambda p: 2)


# ---- Inception module (Szegedy et al. 2015, Fig. 2) ---------------------------------------------

class InceptionParams(_Params):
    c: int = Field(ge=16, description="module input = output channels: 1x1 c/4, 3x3 c/2, 5x5 c/8, pool c/8")
    reduced: bool = Field(default=True, description="1x1 reductions before the 3x3 (to c/4) and 5x5 (to c/16) "
                          "convs (Fig. 2b); false: the naive module (Fig. 2a)")

    @model_validator(mode="after")
    def _check(self) -> "InceptionParams":
        _multiple(self.c, 16, "the branches take c/4, c/2, c/8, c/8 and the 5x5 reduction c/16")
        return self


class InceptionModule(nn.Module):
    """Branches 1x1; [1x1 reduce] 3x3; [1x1 reduce] 5x5; 3x3 max pool + 1x1 projection; each with ReLU,
    concatenated (GoogLeNet 3a's proportions). The naive module drops the 3x3/5x5 reductions; its pool
    branch keeps the projection so that the output has c channels and modules stack."""

    def __init__(self, c: int, reduced: bool):
        super().__init__()
        relu = lambda: nn.ReLU(inplace=True)  # noqa: E731
        self.b1 = nn.Sequential(_conv(c, c // 4), relu())
        r3, r5 = (c // 4, c // 16) if reduced else (c, c)
        pre3 = [_conv(c, r3), relu()] if reduced else []
        pre5 = [_conv(c, r5), relu()] if reduced else []
        self.b3 = nn.Sequential(*pre3, _conv(r3, c // 2, 3), relu())
        self.b5 = nn.Sequential(*pre5, _conv(r5, c // 8, 5), relu())
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), _conv(c, c // 8), relu())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.b1(x), self.b3(x), self.b5(x), self.bp(x)), dim=1)


_register("inception_module", "Inception module (GoogLeNet): 1x1 / 3x3 / 5x5 / pool branches concatenated, with "
          "or without the 1x1 reductions", InceptionParams, lambda p, blocks: _stack(InceptionModule, p, blocks),
          step=lambda p: 16)


# ---- Fire module (SqueezeNet, Iandola et al. 2016) ----------------------------------------------

class FireParams(_Params):
    c: int = Field(ge=2, description="module input = output channels (expand 1x1 + expand 3x3)")
    squeeze_ratio: float = Field(default=0.125, gt=0, le=1, description="SR: squeeze width / c (SqueezeNet: 0.125)")
    pct_3x3: float = Field(default=0.5, ge=0, le=1, description="share of the expand channels made by 3x3 convs")

    @model_validator(mode="after")
    def _check(self) -> "FireParams":
        e3 = round(self.c * self.pct_3x3)
        if not 0 < e3 < self.c:
            raise ValueError(f"c={self.c} with pct_3x3={self.pct_3x3} leaves no 1x1 or no 3x3 expand channels")
        return self


class FireModule(nn.Module):
    """Squeeze 1x1 c -> SR*c, ReLU; expand 1x1 and 3x3 (pct_3x3 of c), ReLU; concat (c channels)."""

    def __init__(self, c: int, squeeze_ratio: float, pct_3x3: float):
        super().__init__()
        s, e3 = max(1, round(c * squeeze_ratio)), round(c * pct_3x3)
        self.squeeze = nn.Sequential(_conv(c, s), nn.ReLU(inplace=True))
        self.e1 = nn.Sequential(_conv(s, c - e3), nn.ReLU(inplace=True))
        self.e3 = nn.Sequential(_conv(s, e3, 3), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze(x)
        return torch.cat((self.e1(x), self.e3(x)), dim=1)


_register("fire_module", "SqueezeNet fire module: 1x1 squeeze, then 1x1 and 3x3 expand concatenated", FireParams,
          lambda p, blocks: _stack(FireModule, p, blocks), step=lambda p: 2)


# ---- ResNeXt block (Xie et al. 2017, Fig. 3c) ---------------------------------------------------

class ResNeXtParams(_Params):
    c: int = Field(ge=1, description="block input = output channels (ResNeXt conv2: 256)")
    cardinality: int = Field(default=32, ge=1, description="C: groups of the 3x3 conv")
    group_width: int = Field(default=4, ge=1, description="d: channels per group (inner width C x d)")


class ResNeXtBlock(nn.Module):
    """1x1 c -> C*d, ReLU, 3x3 group conv (C groups), ReLU, 1x1 C*d -> c, add the input, ReLU."""

    def __init__(self, c: int, cardinality: int, group_width: int):
        super().__init__()
        w = cardinality * group_width
        self.body = nn.Sequential(_conv(c, w), nn.ReLU(inplace=True), _conv(w, w, 3, cardinality),
                                  nn.ReLU(inplace=True), _conv(w, c))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + x)


_register("resnext_block", "ResNeXt bottleneck: 1x1, 3x3 group conv with cardinality C and d channels per group, "
          "1x1, residual add", ResNeXtParams, lambda p, blocks: _stack(ResNeXtBlock, p, blocks))


# ---- MixConv (Tan & Le 2019) --------------------------------------------------------------------

def split_channels(total: int, n: int) -> list[int]:
    """MixNet's channel split: equal parts, the first takes the remainder."""
    parts = [total // n] * n
    parts[0] += total - sum(parts)
    return parts


class MixedConv(nn.Module):
    """MixConv: the channels split into len(kernels) parts, each with its own kernel size; depthwise
    when `depthwise`, else a dense conv per part (MixNet's grouped 1x1); outputs concatenated."""

    def __init__(self, c_in: int, c_out: int, kernels: tuple[int, ...], stride: int = 1, depthwise: bool = False):
        super().__init__()
        self.ins = split_channels(c_in, len(kernels))
        outs = split_channels(c_out, len(kernels))
        self.convs = nn.ModuleList(nn.Conv2d(i, o, k, stride, k // 2, groups=i if depthwise else 1, bias=False)
                                   for i, o, k in zip(self.ins, outs, kernels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.convs) == 1:
            return self.convs[0](x)
        return torch.cat([conv(part) for conv, part in zip(self.convs, x.split(self.ins, dim=1))], dim=1)


class MixConvParams(_Params):
    c: int = Field(ge=1, description="block input = output channels")
    kernels: tuple[int, ...] = Field(default=(3,), min_length=1, max_length=8,
                                     description="depthwise kernel sizes, one per channel group (odd)")

    @model_validator(mode="after")
    def _check(self) -> "MixConvParams":
        if any(k % 2 == 0 or k < 1 for k in self.kernels):
            raise ValueError(f"kernels={list(self.kernels)}: use odd sizes such as [3, 5, 7]")
        if self.c < len(self.kernels):
            raise ValueError(f"c={self.c} is smaller than the {len(self.kernels)} kernel groups")
        return self


class MixConvBlock(nn.Module):
    """Mixed depthwise conv (kernels), ReLU, 1x1 conv c->c, ReLU (a separable block with MixConv)."""

    def __init__(self, c: int, kernels: tuple[int, ...]):
        super().__init__()
        self.body = nn.Sequential(MixedConv(c, c, tuple(kernels), depthwise=True), nn.ReLU(inplace=True),
                                  _conv(c, c), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


_register("mixconv", "MixConv block: depthwise conv with mixed kernel sizes over channel groups, then 1x1",
          MixConvParams, lambda p, blocks: _stack(MixConvBlock, p, blocks))


# ---- MBConv (EfficientNet, Tan & Le 2019): SE and swish switchable ------------------------------

class MBConvParams(_Params):
    c: int = Field(ge=1, description="block input = output channels")
    expansion: int = Field(default=6, ge=1, description="inner width is expansion x c")
    kernel: int = Field(default=3, ge=1, le=9, description="depthwise kernel size (odd)")
    se: bool = Field(default=True, description="squeeze-and-excitation (hidden = se_ratio x c, swish/ReLU, sigmoid)")
    se_ratio: float = Field(default=0.25, gt=0, le=1, description="EfficientNet: 0.25 of the block input")
    swish: bool = Field(default=True, description="swish (SiLU) activations; false: ReLU")

    @model_validator(mode="after")
    def _check(self) -> "MBConvParams":
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel={self.kernel} is even; use an odd size (3, 5, 7)")
        return self


class MBConvBlock(nn.Module):
    """1x1 expand, act, k x k depthwise, act, [SE], 1x1 linear project, add the input."""

    def __init__(self, c: int, expansion: int, kernel: int, se: bool, se_ratio: float, swish: bool):
        super().__init__()
        t = c * expansion
        act = nn.SiLU if swish else nn.ReLU
        layers: list[nn.Module] = [_conv(c, t), act(inplace=True), _conv(t, t, kernel, t), act(inplace=True)]
        if se:
            hidden = max(1, int(c * se_ratio))
            layers.append(_Gate(t, hidden, act))
        layers.append(_conv(t, c))
        self.branch = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class _Gate(nn.Module):
    """SE with a given hidden width and activation: pool, 1x1, act, 1x1, sigmoid, scale."""

    def __init__(self, c: int, hidden: int, act: type[nn.Module]):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, hidden, 1), act(inplace=True),
                                  nn.Conv2d(hidden, c, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


_register("mbconv", "EfficientNet MBConv: 1x1 expand, k x k depthwise, optional SE, 1x1 project, add; swish or "
          "ReLU", MBConvParams, lambda p, blocks: _stack(MBConvBlock, p, blocks))


# ---- issue 24: blocks for the seeds' claims (EfficientNet scaling, ResNeXt forms, MobileNet V2's
# narrow shortcut, Xception's separable order, VarGNet's block) ---------------------------------------

class MBConvStageParams(MBConvParams):
    depth: int = Field(default=2, ge=1, le=64, description="MBConv blocks in the stage (EfficientNet's depth)")


_register("mbconv_stage", "EfficientNet stage: depth MBConv blocks of width c (depth and width scale "
          "separately, as in compound scaling)", MBConvStageParams,
          lambda p, blocks: nn.Sequential(*[MBConvBlock(**{k: v for k, v in p.items() if k != "depth"})
                                            for _ in range(p["depth"] * blocks)]))


class ResNeXtFormParams(ResNeXtParams):
    form: Literal["split", "concat", "grouped"] = Field(default="grouped", description="ResNeXt Fig. 3: split (a: C paths summed), concat (b: early concatenation), "
                                  "grouped (c: one group conv); the same FLOPs")


class ResNeXtForm(nn.Module):
    """ResNeXt's three equivalent blocks (Xie et al. 2017, Fig. 3), residual add and ReLU after each:
    (a) C paths 1x1 c->d, 3x3 d->d, 1x1 d->c, summed; (b) C paths 1x1 c->d, 3x3 d->d, concatenated, one
    1x1 C*d->c; (c) 1x1 c->C*d, 3x3 group conv (C groups), 1x1 C*d->c (= resnext_block)."""

    def __init__(self, c: int, cardinality: int, group_width: int, form: str):
        super().__init__()
        n, d, relu = cardinality, group_width, lambda: nn.ReLU(inplace=True)  # noqa: E731
        self.form = form
        if form == "grouped":
            self.body = ResNeXtBlock(c, n, d).body
        else:
            tail = [_conv(d, c)] if form == "split" else []
            self.paths = nn.ModuleList(nn.Sequential(_conv(c, d), relu(), _conv(d, d, 3), relu(), *tail)
                                       for _ in range(n))
            self.merge = _conv(n * d, c) if form == "concat" else nn.Identity()
        self.act = relu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.form == "grouped":
            y = self.body(x)
        elif self.form == "concat":
            y = self.merge(torch.cat([p(x) for p in self.paths], dim=1))
        else:
            y = self.paths[0](x)
            for p in self.paths[1:]:
                y = y + p(x)
        return self.act(y + x)


_register("resnext_form", "ResNeXt's equivalent blocks (Fig. 3): split-transform-merge paths summed, early "
          "concatenation, or grouped conv; equal FLOPs", ResNeXtFormParams,
          lambda p, blocks: _stack(ResNeXtForm, p, blocks))


class ResidualPlacementParams(_Params):
    c: int = Field(ge=1, description="the narrow width: block input/output when inverted, the bottleneck when not")
    expansion: int = Field(default=6, ge=1, description="t: wide width = t x c")
    inverted: bool = Field(default=True, description="true: MobileNet V2 (narrow -> wide -> narrow, shortcut on "
                           "c channels); false: classic (wide -> narrow -> wide, shortcut on t x c channels)")
    shortcut: bool = Field(default=True, description="add the block input (in place)")


class ResidualPlacement(nn.Module):
    """1x1, ReLU6, 3x3 depthwise, ReLU6, 1x1 linear, [+ input]: inverted c -> tc -> tc -> c (MobileNet V2,
    Fig. 3b) or classic tc -> c -> c -> tc (the residual block of Fig. 3a with a depthwise middle)."""

    def __init__(self, c: int, expansion: int, inverted: bool, shortcut: bool):
        super().__init__()
        outer, inner = (c, c * expansion) if inverted else (c * expansion, c)
        self.shortcut = shortcut
        self.branch = nn.Sequential(_conv(outer, inner), nn.ReLU6(inplace=True), _conv(inner, inner, 3, inner),
                                    nn.ReLU6(inplace=True), _conv(inner, outer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch(x)
        return y.add_(x) if self.shortcut else y


register_builder(Builder(
    name="residual_placement", params=ResidualPlacementParams, width_names=("c",),
    summary="MobileNet V2's inverted residual (shortcut on narrow features) or the classic one (on wide), "
            "depthwise 3x3 in the middle; shortcut switchable",
    build=lambda p, blocks: _stack(ResidualPlacement, p, blocks),
    in_channels=lambda p: p["c"] * (1 if p.get("inverted", True) else p.get("expansion", 6)),
    widths=lambda p: {"c": 1}, proportions=lambda p: {"c": 1.0}))


class SeparableOrderParams(_Params):
    c: int = Field(ge=1, description="input = output channels")
    pointwise_first: bool = Field(default=False, description="true: 1x1 then 3x3 depthwise (Xception's 'extreme "
                                  "Inception'); false: 3x3 depthwise then 1x1 (depthwise separable conv)")
    mid_relu: bool = Field(default=False, description="a ReLU between the two convs (Xception: none)")


class SeparableOrder(nn.Module):
    """Depthwise 3x3 and 1x1 c->c in either order, [ReLU between], ReLU after (an Xception separable conv)."""

    def __init__(self, c: int, pointwise_first: bool, mid_relu: bool):
        super().__init__()
        convs = [_conv(c, c), _conv(c, c, 3, c)]
        if not pointwise_first:
            convs.reverse()
        self.body = nn.Sequential(convs[0], *([nn.ReLU(inplace=True)] if mid_relu else []), convs[1],
                                  nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


_register("separable_order", "Xception's separable conv: 3x3 depthwise and 1x1 in either order, optional ReLU "
          "between", SeparableOrderParams, lambda p, blocks: _stack(SeparableOrder, p, blocks))


class VarGBlockParams(_Params):
    c: int = Field(ge=1, description="block input = output channels")
    group_channels: int = Field(default=8, ge=1, description="S: channels per group of the 3x3 convs (1 = depthwise)")
    expansion: int = Field(default=2, ge=1, description="the 3x3 group conv widens c -> expansion x c (VarGNet: 2)")

    @model_validator(mode="after")
    def _check(self) -> "VarGBlockParams":
        _multiple(self.c, self.group_channels, "channels per group")
        return self


class VarGBlock(nn.Module):
    """VarGNet's normal block (Fig. 1): twice [3x3 variable group conv c -> e c (c/S groups), ReLU, 1x1 e c -> c,
    ReLU], add the input, ReLU."""

    def __init__(self, c: int, group_channels: int, expansion: int):
        super().__init__()
        g, w = c // group_channels, c * expansion
        sep = lambda: [_conv(c, w, 3, g), nn.ReLU(inplace=True), _conv(w, c), nn.ReLU(inplace=True)]  # noqa: E731
        self.body = nn.Sequential(*sep(), *sep()[:-1])
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + x)


_register("varg_block", "VarGNet normal block: two separable pairs of a 3x3 variable group conv (S channels per "
          "group, widening x2) and a 1x1, residual add", VarGBlockParams,
          lambda p, blocks: _stack(VarGBlock, p, blocks), step=lambda p: p["group_channels"])
