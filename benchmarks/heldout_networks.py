"""Networks kept out of latbench's catalogue and out of every choice of the prediction method, to judge it
on networks it has never seen (benchmarks/predict_validation.py --fresh). Plain torch, as the built-in
networks are (convs without bias, BatchNorm folded away, activations where the design has them), input
(3, 224, 224); each is a `module:factory` for `latbench run --model` and `latbench lut build`.

Architectures as published: ResNet-18/34/50 (He et al. 2016, torchvision's layout), VGG-11 (Simonyan &
Zisserman 2015, configuration A), MobileNet V3-Large (Howard et al. 2019, Table 1), MNASNet 1.0 as torchvision builds it
(Tan et al. 2019, without squeeze-and-excitation)."""

from __future__ import annotations

import torch
from torch import nn


def _conv(c_in: int, c_out: int, k: int, s: int = 1, groups: int = 1, act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=False)]
    if act is not None:
        layers.append(act(inplace=True) if act in (nn.ReLU, nn.Hardswish) else act())
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, body: nn.Module, short: nn.Module | None, relu: bool = True):
        super().__init__()
        self.body, self.short, self.relu = body, short or nn.Identity(), relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x) + self.short(x)
        return torch.relu(y) if self.relu else y


def _resnet(bottleneck: bool, depths: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = [_conv(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    c, exp = 64, 4 if bottleneck else 1
    for i, n in enumerate(depths):
        w = 64 * 2 ** i
        for j in range(n):
            s = 2 if j == 0 and i > 0 else 1
            if bottleneck:
                body = nn.Sequential(_conv(c, w, 1), _conv(w, w, 3, s), _conv(w, w * exp, 1, act=None))
            else:
                body = nn.Sequential(_conv(c, w, 3, s), _conv(w, w, 3, act=None))
            short = _conv(c, w * exp, 1, s, act=None) if s != 1 or c != w * exp else None
            layers.append(_Residual(body, short))
            c = w * exp
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1000)]
    return nn.Sequential(*layers).eval()


def resnet18() -> nn.Module:
    return _resnet(False, (2, 2, 2, 2))


def resnet34() -> nn.Module:
    return _resnet(False, (3, 4, 6, 3))


def resnet50() -> nn.Module:
    return _resnet(True, (3, 4, 6, 3))


def vgg11() -> nn.Module:
    layers: list[nn.Module] = []
    c = 3
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers.append(_conv(c, int(v), 3))
            c = int(v)
    layers += [nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Linear(4096, 4096),
               nn.ReLU(inplace=True), nn.Linear(4096, 1000)]
    return nn.Sequential(*layers).eval()


class _SE(nn.Module):
    def __init__(self, c: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, hidden, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(hidden, c, 1), nn.Hardsigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.body(x)


def _mbconv(c_in: int, exp: int, c_out: int, k: int, s: int, se: bool, act: type[nn.Module]) -> nn.Module:
    layers: list[nn.Module] = [] if exp == c_in else [_conv(c_in, exp, 1, act=act)]
    layers.append(_conv(exp, exp, k, s, groups=exp, act=act))
    if se:
        layers.append(_SE(exp, max(8, (exp // 4 + 4) // 8 * 8)))
    layers.append(_conv(exp, c_out, 1, act=None))
    body = nn.Sequential(*layers)
    return _Residual(body, None, relu=False) if s == 1 and c_in == c_out else body


# MobileNet V3-Large, Table 1: kernel, expansion, out, SE, activation (HS: hard-swish), stride
V3_LARGE = [(3, 16, 16, 0, "RE", 1), (3, 64, 24, 0, "RE", 2), (3, 72, 24, 0, "RE", 1), (5, 72, 40, 1, "RE", 2),
            (5, 120, 40, 1, "RE", 1), (5, 120, 40, 1, "RE", 1), (3, 240, 80, 0, "HS", 2), (3, 200, 80, 0, "HS", 1),
            (3, 184, 80, 0, "HS", 1), (3, 184, 80, 0, "HS", 1), (3, 480, 112, 1, "HS", 1), (3, 672, 112, 1, "HS", 1),
            (5, 672, 160, 1, "HS", 2), (5, 960, 160, 1, "HS", 1), (5, 960, 160, 1, "HS", 1)]


def mobilenet_v3_large() -> nn.Module:
    layers: list[nn.Module] = [_conv(3, 16, 3, 2, act=nn.Hardswish)]
    c = 16
    for k, exp, out, se, a, s in V3_LARGE:
        layers.append(_mbconv(c, exp, out, k, s, bool(se), nn.Hardswish if a == "HS" else nn.ReLU))
        c = out
    layers += [_conv(c, 960, 1, act=nn.Hardswish), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(960, 1280),
               nn.Hardswish(), nn.Linear(1280, 1000)]
    return nn.Sequential(*layers).eval()


# MNASNet 1.0 (torchvision): expansion, out, repeats, kernel, stride
MNAS = [(3, 24, 3, 3, 2), (3, 40, 3, 5, 2), (6, 80, 3, 5, 2), (6, 96, 2, 3, 1), (6, 192, 4, 5, 2), (6, 320, 1, 3, 1)]


def mnasnet1_0() -> nn.Module:
    layers: list[nn.Module] = [_conv(3, 32, 3, 2), _conv(32, 32, 3, groups=32), _conv(32, 16, 1, act=None)]
    c = 16
    for e, out, n, k, s in MNAS:
        for j in range(n):
            layers.append(_mbconv(c, c * e, out, k, s if j == 0 else 1, False, nn.ReLU))
            c = out
    layers += [_conv(c, 1280, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000)]
    return nn.Sequential(*layers).eval()


FRESH = ("resnet18", "resnet34", "resnet50", "vgg11", "mobilenet_v3_large", "mnasnet1_0")
