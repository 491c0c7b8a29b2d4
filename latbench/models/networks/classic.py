"""Classic designs of the seed notes as whole networks: GoogLeNet's Inception (Szegedy et al. 2015),
SqueezeNet's fire module (Iandola et al. 2016), ResNeXt (Xie et al. 2017), and the Xception- and
DenseNet-style networks of ShuffleNet V2's Table 8 (Chollet 2017; Huang et al. 2017)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from latbench.models.networks._common import Classifier, NetParams, conv, conv_act, make_divisible, register_network

# ---- GoogLeNet (Inception v1) -------------------------------------------------------------------


class Inception(nn.Module):
    """Four branches concatenated: 1x1; 1x1 reduce -> 3x3; 1x1 reduce -> 5x5; 3x3 max pool -> 1x1
    (Fig. 2b). reduced=False is the naive module (Fig. 2a): 1x1, 3x3, 5x5 on the input and the pool."""

    def __init__(self, c_in: int, c1: int, r3: int, c3: int, r5: int, c5: int, pool: int, reduced: bool = True):
        super().__init__()
        self.b1 = conv_act(c_in, c1)
        if reduced:
            self.b3 = nn.Sequential(conv_act(c_in, r3), conv_act(r3, c3, 3))
            self.b5 = nn.Sequential(conv_act(c_in, r5), conv_act(r5, c5, 5))
            self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_act(c_in, pool))
        else:
            self.b3, self.b5 = conv_act(c_in, c3, 3), conv_act(c_in, c5, 5)
            self.bp = nn.MaxPool2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.b1(x), self.b3(x), self.b5(x), self.bp(x)), dim=1)


# Table 1 of the GoogLeNet paper: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
INCEPTION = {"3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64), "4a": (192, 96, 208, 16, 48, 64),
             "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
             "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
             "5b": (384, 192, 384, 48, 128, 128)}


class GoogLeNetParams(NetParams):
    pass


def googlenet(p: dict[str, Any]) -> nn.Module:
    """GoogLeNet as in Table 1 (no auxiliary classifiers, no LRN: neither runs at inference time)."""
    layers: list[nn.Module] = [conv_act(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1), conv_act(64, 64), conv_act(64, 192, 3),
                               nn.MaxPool2d(3, 2, 1)]
    c = 192
    for name, cfg in INCEPTION.items():
        if name in ("4a", "5a"):
            layers.append(nn.MaxPool2d(3, 2, 1))
        layers.append(Inception(c, *cfg))
        c = cfg[0] + cfg[2] + cfg[4] + cfg[5]
    layers.append(Classifier(c, p["num_classes"]))
    return nn.Sequential(*layers)


register_network("googlenet", "GoogLeNet (Inception v1) whole network", GoogLeNetParams, googlenet)


# ---- SqueezeNet ---------------------------------------------------------------------------------

class Fire(nn.Module):
    """Squeeze 1x1 to s channels, ReLU; expand to e1 1x1 and e3 3x3 channels, ReLU; concat."""

    def __init__(self, c_in: int, s: int, e1: int, e3: int):
        super().__init__()
        self.squeeze = conv_act(c_in, s)
        self.e1, self.e3 = conv_act(s, e1), conv_act(s, e3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze(x)
        return torch.cat((self.e1(x), self.e3(x)), dim=1)


class SqueezeNetParams(NetParams):
    version: Literal["1.0", "1.1"] = Field(default="1.0", description="1.0 (the paper) or 1.1 (2.4x fewer FLOPs)")


def squeezenet(p: dict[str, Any]) -> nn.Module:
    """SqueezeNet (Table 1; v1.1: 3x3 conv1 of 64 and earlier pooling, from the authors' repository);
    ceil-mode pooling as the reference Caffe model. Classifier: 1x1 conv to classes, global pool."""
    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
    if p["version"] == "1.0":
        layers: list[nn.Module] = [conv_act(3, 96, 7, 2, ), pool(), Fire(96, 16, 64, 64), Fire(128, 16, 64, 64),
                                   Fire(128, 32, 128, 128), pool(), Fire(256, 32, 128, 128), Fire(256, 48, 192, 192),
                                   Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), pool(), Fire(512, 64, 256, 256)]
    else:
        layers = [conv_act(3, 64, 3, 2), pool(), Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool(),
                  Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool(), Fire(256, 48, 192, 192),
                  Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256)]
    layers[0][0].padding = (0, 0)  # conv1 is unpadded
    layers += [conv_act(512, p["num_classes"]), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


register_network("squeezenet", "SqueezeNet 1.0 / 1.1 whole network (fire modules)", SqueezeNetParams, squeezenet)


# ---- ResNeXt ------------------------------------------------------------------------------------

class ResNeXtBlock(nn.Module):
    """1x1 c_in->w, ReLU, 3x3 group conv w->w (cardinality groups, stride), ReLU, 1x1 w->c_out; add the
    input (or a strided 1x1 projection); ReLU (Fig. 3c)."""

    def __init__(self, c_in: int, w: int, c_out: int, stride: int, cardinality: int):
        super().__init__()
        self.body = nn.Sequential(conv_act(c_in, w), conv_act(w, w, 3, stride, cardinality), conv(w, c_out))
        self.short = conv(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.short(x))


class ResNeXtParams(NetParams):
    cardinality: int = Field(default=32, ge=1, description="C, groups of the 3x3 convs")
    group_width: int = Field(default=4, ge=1, description="d, channels per group in the first stage (32x4d)")
    depths: tuple[int, int, int, int] = Field(default=(3, 4, 6, 3), description="blocks per stage (50 layers)")


def resnext(p: dict[str, Any]) -> nn.Module:
    """ResNeXt (Table 1): ResNet stem, four stages of grouped bottlenecks, inner width C x d doubling per stage."""
    layers: list[nn.Module] = [conv_act(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    c = 64
    for s, n in enumerate(p["depths"]):
        w, out = p["cardinality"] * p["group_width"] * 2 ** s, 256 * 2 ** s
        for i in range(n):
            layers.append(ResNeXtBlock(c, w, out, 2 if i == 0 and s > 0 else 1, p["cardinality"]))
            c = out
    layers.append(Classifier(c, p["num_classes"]))
    return nn.Sequential(*layers)


register_network("resnext", "ResNeXt whole network (default ResNeXt-50 32x4d)", ResNeXtParams, resnext)


# ---- Xception-style (ShuffleNet V2's Table 8, "our impl.") ---------------------------------------

class XceptionUnit(nn.Module):
    """Three separable convs (3x3 depthwise, 1x1, ReLU), the first depthwise strided in a stage's first
    unit; add the input, or a strided 1x1 projection when the shape changes (Xception's residual modules)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(((c_in, c_out), (c_out, c_out), (c_out, c_out))):
            layers += [conv(a, a, 3, stride if i == 0 else 1, a), conv_act(a, b)]
        self.body = nn.Sequential(*layers)
        self.short = conv(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.short(x)


class XceptionParams(NetParams):
    width: float = Field(default=1.0, gt=0, le=8, description="multiplies the stage widths 96/192/384 "
                         "(suites/networks.yaml solves it to each Table 8 row's complexity)")


def xception(p: dict[str, Any]) -> nn.Module:
    """Xception-style at ShuffleNet scale. The paper does not print its widths; ours use the ShuffleNet
    skeleton (3x3 s2 conv of 24, max pool, stages of 4 / 8 / 4 units at 56 / 28 / 14 -> 28 / 14 / 7,
    1x1 conv to 1024, classifier) with Xception's units, and the width is chosen to meet each row's
    complexity."""
    layers: list[nn.Module] = [conv_act(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)]
    c = 24
    for base, n in zip((96, 192, 384), (4, 8, 4)):
        out = make_divisible(base * p["width"], 8)
        for i in range(n):
            layers.append(XceptionUnit(c, out, 2 if i == 0 else 1))
            c = out
    layers += [conv_act(c, 1024), Classifier(1024, p["num_classes"])]
    return nn.Sequential(*layers)


register_network("xception", "Xception-style whole network at ShuffleNet scale (Table 8's 'our impl.')",
                 XceptionParams, xception)


# ---- DenseNet-style ----------------------------------------------------------------------------

class DenseLayer(nn.Module):
    """1x1 conv c -> bottleneck, ReLU, 3x3 conv -> growth, ReLU; concat to the input."""

    def __init__(self, c: int, bottleneck: int, growth: int):
        super().__init__()
        self.body = nn.Sequential(conv_act(c, bottleneck), conv_act(bottleneck, growth, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.body(x)), dim=1)


class DenseNetParams(NetParams):
    growth: int = Field(default=12, ge=1, description="growth rate k (DenseNet-121: 32)")
    bottleneck: int = Field(default=0, ge=0, description="inner width of each layer's 1x1 conv (0: 4k)")
    depths: tuple[int, int, int, int] = Field(default=(6, 12, 24, 16), description="layers per dense block")


def densenet(p: dict[str, Any]) -> nn.Module:
    """DenseNet-BC style: 3x3 s2 stem of 2k, max pool, four dense blocks with 1x1 + 3x3 layers and
    transitions (1x1 conv halving the channels, 2x2 average pool), classifier. The paper's widths are not
    printed; growth and bottleneck are chosen to meet each Table 8 row's complexity."""
    k = p["growth"]
    inner = p["bottleneck"] or 4 * k
    c = 2 * k
    layers: list[nn.Module] = [conv_act(3, c, 3, 2), nn.MaxPool2d(3, 2, 1)]
    for b, n in enumerate(p["depths"]):
        for _ in range(n):
            layers.append(DenseLayer(c, inner, k))
            c += k
        if b < len(p["depths"]) - 1:
            layers += [conv_act(c, c // 2), nn.AvgPool2d(2)]
            c //= 2
    layers.append(Classifier(c, p["num_classes"]))
    return nn.Sequential(*layers)


register_network("densenet", "DenseNet-BC style whole network (Table 8's 'our impl.')", DenseNetParams, densenet)
