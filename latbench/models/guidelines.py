"""The ShuffleNet V2 guideline networks (Ma et al. 2018, Section 2, Tables 1-4, Appendix Fig. 1).

Every network is `blocks` identical blocks in a row at a fixed feature-map size. Convs carry no bias
and no BatchNorm (the paper names only convs; an inference library folds BN into the conv anyway).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from latbench.models.registry import Builder, register_builder


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def conv1x1(c_in: int, c_out: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1, groups=groups, bias=False)


# ---- G1: equal channel width minimizes memory access cost (Table 1) --------------------------

class ConvPairParams(_Params):
    c1: int = Field(ge=1, description="outer width (block input and output channels)")
    c2: int = Field(ge=1, description="inner width")
    ratio: float = Field(default=1.0, gt=0, description="c2/c1 the case stands for (the solver keeps it)")


def _conv_pair(p: dict[str, Any], blocks: int) -> nn.Module:
    return nn.Sequential(*[nn.Sequential(conv1x1(p["c1"], p["c2"]), conv1x1(p["c2"], p["c1"]))
                           for _ in range(blocks)])


register_builder(Builder(
    name="g1_conv_pair",
    summary="G1: blocks of two 1x1 convs c1->c2->c1 (channel ratio c1:c2)",
    params=ConvPairParams,
    width_names=("c1", "c2"),
    build=_conv_pair,
    in_channels=lambda p: p["c1"],
    widths=lambda p: {"c1": 1, "c2": 1},
    proportions=lambda p: {"c1": 1.0, "c2": p["ratio"]},
))


# ---- G2: excessive group convolution increases MAC (Table 2) ---------------------------------

class GroupConvParams(_Params):
    c: int = Field(ge=1, description="input = output channels of every conv")
    groups: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _divisible(self) -> "GroupConvParams":
        if self.c % self.groups:
            raise ValueError(f"c={self.c} is not divisible by groups={self.groups}; "
                             f"use a multiple of {self.groups} (e.g. {self.groups * round(self.c / self.groups)})")
        return self


register_builder(Builder(
    name="g2_group_conv",
    summary="G2: 1x1 group convs c->c with g groups",
    params=GroupConvParams,
    width_names=("c",),
    build=lambda p, blocks: nn.Sequential(*[conv1x1(p["c"], p["c"], p["groups"]) for _ in range(blocks)]),
    in_channels=lambda p: p["c"],
    widths=lambda p: {"c": p["groups"]},
    proportions=lambda p: {"c": 1.0},
))


# ---- G3: network fragmentation reduces parallelism (Table 3, Appendix Fig. 1) ---------------

class FragmentParams(_Params):
    c: int = Field(ge=1, description="width of every fragment (1x1 conv c->c)")
    fragments: int = Field(default=1, ge=1)
    arrangement: Literal["series", "parallel"] = "series"


class ParallelFragments(nn.Module):
    """The block input feeds n 1x1 convs whose outputs are summed element-wise (the figure's ⊕)."""

    def __init__(self, c: int, n: int):
        super().__init__()
        self.branches = nn.ModuleList(conv1x1(c, c) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out += branch(x)
        return out


def _fragment(p: dict[str, Any], blocks: int) -> nn.Module:
    c, n = p["c"], p["fragments"]
    if p["arrangement"] == "parallel" and n > 1:
        return nn.Sequential(*[ParallelFragments(c, n) for _ in range(blocks)])
    return nn.Sequential(*[conv1x1(c, c) for _ in range(blocks * n)])


register_builder(Builder(
    name="g3_fragment",
    summary="G3: blocks of n 1x1 convs c->c, in series or in parallel (outputs summed)",
    params=FragmentParams,
    width_names=("c",),
    build=_fragment,
    in_channels=lambda p: p["c"],
    widths=lambda p: {"c": 1},
    proportions=lambda p: {"c": 1.0},
))


# ---- G4: element-wise operations are non-negligible (Table 4) --------------------------------

class BottleneckParams(_Params):
    c: int = Field(ge=1, description="channels in and out of the unit")
    relu: bool = True
    shortcut: bool = True
    expansion: int = Field(default=4, ge=1, description="inner width is c / expansion (ResNet: 4)")

    @model_validator(mode="after")
    def _divisible(self) -> "BottleneckParams":
        if self.c % self.expansion:
            raise ValueError(f"c={self.c} is not divisible by expansion={self.expansion}; "
                             f"use a multiple of {self.expansion}")
        return self


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 c->c/4, 3x3 c/4->c/4, 1x1 c/4->c, identity shortcut; ReLU after the
    first two convs and after the add (torchvision's placement), each part switchable."""

    def __init__(self, c: int, relu: bool, shortcut: bool, expansion: int):
        super().__init__()
        inner = c // expansion
        self.conv1 = conv1x1(c, inner)
        self.conv2 = nn.Conv2d(inner, inner, kernel_size=3, padding=1, bias=False)
        self.conv3 = conv1x1(inner, c)
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.conv1(x))
        out = self.act(self.conv2(out))
        out = self.conv3(out)
        if self.shortcut:
            out += x
        return self.act(out)


register_builder(Builder(
    name="g4_bottleneck",
    summary="G4: ResNet bottleneck units with ReLU and identity shortcut switchable",
    params=BottleneckParams,
    width_names=("c",),
    build=lambda p, blocks: nn.Sequential(*[Bottleneck(p["c"], p["relu"], p["shortcut"], p["expansion"])
                                            for _ in range(blocks)]),
    in_channels=lambda p: p["c"],
    widths=lambda p: {"c": p["expansion"]},
    proportions=lambda p: {"c": 1.0},
))
