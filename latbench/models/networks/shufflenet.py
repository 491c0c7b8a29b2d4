"""ShuffleNet V2 (Ma et al. 2018, Table 5) with optional SE, and ShuffleNet V1 (Zhang et al. 2018)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from latbench.models.networks._common import (SE, Classifier, NetParams, channel_shuffle, conv, conv_act,
                                              register_network)

# ---- ShuffleNet V2 ------------------------------------------------------------------------------

# Table 5: output channels of conv1, stages 2-4 and conv5 at each width
V2_CHANNELS = {0.5: (24, 48, 96, 192, 1024), 1.0: (24, 116, 232, 464, 1024), 1.5: (24, 176, 352, 704, 1024),
               2.0: (24, 244, 488, 976, 2048)}


class ShuffleNetV2Params(NetParams):
    width: Literal[0.5, 1.0, 1.5, 2.0] = Field(default=1.0, description="0.5x / 1x / 1.5x / 2x (Table 5)")
    se: bool = Field(default=False, description="squeeze-and-excitation on each unit's branch (Table 8's SE row)")
    se_reduction: int = Field(default=4, ge=1, description="SE hidden width is branch width / se_reduction")


class V2Unit(nn.Module):
    """Stride 1: channel split, 1x1 / 3x3 dw / 1x1 on one half, concat, shuffle. Stride 2: both branches
    take the whole input (left: 3x3 dw s2, 1x1), concat, shuffle (Fig. 3c, 3d)."""

    def __init__(self, c_in: int, c_out: int, stride: int, se: bool, se_reduction: int):
        super().__init__()
        self.stride = stride
        half = c_out // 2
        inp = c_in if stride == 2 else half
        layers: list[nn.Module] = [conv_act(inp, half), conv_act(half, half, 3, stride, half, act=None),
                                   conv_act(half, half)]
        if se:
            layers.append(SE(half, max(1, half // se_reduction)))
        self.branch = nn.Sequential(*layers)
        if stride == 2:
            self.left = nn.Sequential(conv_act(c_in, c_in, 3, 2, c_in, act=None), conv_act(c_in, half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            keep, work = x.chunk(2, dim=1)
            out = torch.cat((keep, self.branch(work)), dim=1)
        else:
            out = torch.cat((self.left(x), self.branch(x)), dim=1)
        return channel_shuffle(out, 2)


def shufflenet_v2(p: dict[str, Any]) -> nn.Module:
    c1, *stages, c5 = V2_CHANNELS[p["width"]]
    layers: list[nn.Module] = [conv_act(3, c1, 3, 2), nn.MaxPool2d(3, 2, 1)]
    c = c1
    for out, repeats in zip(stages, (4, 8, 4)):
        for i in range(repeats):
            layers.append(V2Unit(c, out, 2 if i == 0 else 1, p["se"], p["se_reduction"]))
            c = out
    layers += [conv_act(c, c5), Classifier(c5, p["num_classes"])]
    return nn.Sequential(*layers)


register_network("shufflenet_v2", "ShuffleNet V2 whole network 0.5x/1x/1.5x/2x (Table 5), optional SE",
                 ShuffleNetV2Params, shufflenet_v2)


# ---- ShuffleNet V1 ------------------------------------------------------------------------------

# output channels of conv1 and stages 2-4 (the authors' reference code, Megvii ShuffleNet-Series)
V1_CHANNELS = {3: {0.5: (12, 120, 240, 480), 1.0: (24, 240, 480, 960), 1.5: (24, 360, 720, 1440),
                   2.0: (48, 480, 960, 1920)},
               8: {0.5: (16, 192, 384, 768), 1.0: (24, 384, 768, 1536), 1.5: (24, 576, 1152, 2304),
                   2.0: (48, 768, 1536, 3072)}}


class ShuffleNetV1Params(NetParams):
    width: Literal[0.5, 1.0, 1.5, 2.0] = Field(default=1.0, description="0.5x / 1x / 1.5x / 2x")
    groups: Literal[3, 8] = Field(default=3, description="group count g of the pointwise convs")


class V1Unit(nn.Module):
    """1x1 group conv to c_out/4, ReLU, shuffle, 3x3 dw (stride), 1x1 group conv; stride 1: add the input,
    stride 2: concat a 3x3 average pool of the input (Fig. 2b, 2c); ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int, first: bool):
        super().__init__()
        self.stride, self.groups = stride, (1 if first else groups)
        mid = c_out // 4
        branch_out = c_out - c_in if stride == 2 else c_out
        self.reduce = conv_act(c_in, mid, 1, groups=self.groups)
        self.dw = conv(mid, mid, 3, stride, mid)
        self.expand = conv(mid, branch_out, 1, groups=groups)
        self.act = nn.ReLU(inplace=True)
        if stride == 2:
            self.pool = nn.AvgPool2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(self.dw(channel_shuffle(self.reduce(x), self.groups)))
        if self.stride == 2:
            return torch.cat((self.pool(x), self.act(out)), dim=1)
        return self.act(out + x)


def shufflenet_v1(p: dict[str, Any]) -> nn.Module:
    c1, *stages = V1_CHANNELS[p["groups"]][p["width"]]
    layers: list[nn.Module] = [conv_act(3, c1, 3, 2), nn.MaxPool2d(3, 2, 1)]
    c = c1
    for s, (out, repeats) in enumerate(zip(stages, (4, 8, 4))):
        for i in range(repeats):
            layers.append(V1Unit(c, out, 2 if i == 0 else 1, p["groups"], first=s == 0 and i == 0))
            c = out
    layers.append(Classifier(c, p["num_classes"]))
    return nn.Sequential(*layers)


register_network("shufflenet_v1", "ShuffleNet V1 whole network (g=3 or 8) 0.5x/1x/1.5x/2x", ShuffleNetV1Params,
                 shufflenet_v1)
