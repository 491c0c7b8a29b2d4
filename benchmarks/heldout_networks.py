"""Networks kept out of latbench's catalogue and out of every choice of the prediction method, to judge it
on networks it has never seen (benchmarks/predict_validation.py --fresh). Plain torch, as the built-in
networks are (convs without bias, BatchNorm folded away, activations where the design has them), input
(3, 224, 224); each is a `module:factory` for `latbench run --model` and `latbench lut build`.

Architectures as published: ResNet-18/34/50 (He et al. 2016, torchvision's layout), VGG-11 (Simonyan &
Zisserman 2015, configuration A), MobileNet V3-Large (Howard et al. 2019, Table 1), MNASNet 1.0 as torchvision builds it
(Tan et al. 2019, without squeeze-and-excitation).

FRESH2, a second set written and committed on 2026-12-06 before any of it was measured (after the first
set had been seen): MobileNet V3-Small (Howard et al. 2019, Table 2), ResNet-101, RegNetX-400MF (Radosavovic
et al. 2020: group width 16, depths 1/2/7/12, widths 32/64/160/400), AlexNet (torchvision's layout),
DenseNet-121 (Huang et al. 2017: growth 32, blocks 6/12/24/16, BN-ReLU folded as elsewhere here), ConvNeXt-T
(Liu et al. 2022: 7x7 depthwise, LayerNorm, GELU, linear layers; without layer scale and drop path).

FRESH3, a third set written and committed on 2026-12-06 before any of it was measured (after the second
had been seen): Wide ResNet-50-2 (Zagoruyko & Komodakis 2016, torchvision's layout), ResNeXt-50 32x4d (Xie
et al. 2017), SqueezeNet 1.1 (Iandola et al. 2016, torchvision's), RegNetY-400MF (Radosavovic et al. 2020:
group width 8, depths 1/3/6/6, widths 48/104/208/440, squeeze-and-excitation 0.25), MNASNet 0.5
(torchvision's), VGG-13 (configuration B)."""

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


def _resnet(bottleneck: bool, depths: tuple[int, ...], width: int = 64, groups: int = 1) -> nn.Module:
    layers: list[nn.Module] = [_conv(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    c, exp = 64, 4 if bottleneck else 1
    for i, n in enumerate(depths):
        w, inner = 64 * 2 ** i, width * 2 ** i
        for j in range(n):
            s = 2 if j == 0 and i > 0 else 1
            if bottleneck:
                body = nn.Sequential(_conv(c, inner, 1), _conv(inner, inner, 3, s, groups=groups),
                                     _conv(inner, w * exp, 1, act=None))
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
    return _vgg((64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"))


def _vgg(config: tuple) -> nn.Module:
    layers: list[nn.Module] = []
    c = 3
    for v in config:
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
    return _mobilenet_v3(V3_LARGE, 960, 1280)


def _mobilenet_v3(table: list[tuple], last: int, hidden: int) -> nn.Module:
    layers: list[nn.Module] = [_conv(3, 16, 3, 2, act=nn.Hardswish)]
    c = 16
    for k, exp, out, se, a, s in table:
        layers.append(_mbconv(c, exp, out, k, s, bool(se), nn.Hardswish if a == "HS" else nn.ReLU))
        c = out
    layers += [_conv(c, last, 1, act=nn.Hardswish), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(last, hidden),
               nn.Hardswish(), nn.Linear(hidden, 1000)]
    return nn.Sequential(*layers).eval()


# MNASNet 1.0 (torchvision): expansion, out, repeats, kernel, stride
MNAS = [(3, 24, 3, 3, 2), (3, 40, 3, 5, 2), (6, 80, 3, 5, 2), (6, 96, 2, 3, 1), (6, 192, 4, 5, 2), (6, 320, 1, 3, 1)]


def mnasnet1_0() -> nn.Module:
    return _mnasnet(1.0)


def _mnasnet(alpha: float) -> nn.Module:
    def depth(v: float) -> int:  # torchvision's _round_to_multiple_of(v, 8), round-up bias 0.9
        r = max(8, int(v + 4) // 8 * 8)
        return r if r >= 0.9 * v else r + 8

    first = depth(32 * alpha)
    layers: list[nn.Module] = [_conv(3, first, 3, 2), _conv(first, first, 3, groups=first),
                               _conv(first, depth(16 * alpha), 1, act=None)]
    c = depth(16 * alpha)
    for e, out, n, k, s in MNAS:
        for j in range(n):
            layers.append(_mbconv(c, c * e, depth(out * alpha), k, s if j == 0 else 1, False, nn.ReLU))
            c = depth(out * alpha)
    layers += [_conv(c, 1280, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000)]
    return nn.Sequential(*layers).eval()


FRESH = ("resnet18", "resnet34", "resnet50", "vgg11", "mobilenet_v3_large", "mnasnet1_0")


# MobileNet V3-Small, Table 2: kernel, expansion, out, SE, activation, stride
V3_SMALL = [(3, 16, 16, 1, "RE", 2), (3, 72, 24, 0, "RE", 2), (3, 88, 24, 0, "RE", 1), (5, 96, 40, 1, "HS", 2),
            (5, 240, 40, 1, "HS", 1), (5, 240, 40, 1, "HS", 1), (5, 120, 48, 1, "HS", 1), (5, 144, 48, 1, "HS", 1),
            (5, 288, 96, 1, "HS", 2), (5, 576, 96, 1, "HS", 1), (5, 576, 96, 1, "HS", 1)]


def mobilenet_v3_small() -> nn.Module:
    return _mobilenet_v3(V3_SMALL, 576, 1024)


def resnet101() -> nn.Module:
    return _resnet(True, (3, 4, 23, 3))


def regnetx_400mf() -> nn.Module:
    layers: list[nn.Module] = [_conv(3, 32, 3, 2)]
    c = 32
    for d, w in zip((1, 2, 7, 12), (32, 64, 160, 400)):
        for j in range(d):
            s = 2 if j == 0 else 1
            body = nn.Sequential(_conv(c, w, 1), _conv(w, w, 3, s, groups=w // 16), _conv(w, w, 1, act=None))
            short = _conv(c, w, 1, s, act=None) if s != 1 or c != w else None
            layers.append(_Residual(body, short))
            c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1000)]
    return nn.Sequential(*layers).eval()


def alexnet() -> nn.Module:
    return nn.Sequential(_conv(3, 64, 11, 4), nn.MaxPool2d(3, 2), _conv(64, 192, 5), nn.MaxPool2d(3, 2),
                         _conv(192, 384, 3), _conv(384, 256, 3), _conv(256, 256, 3), nn.MaxPool2d(3, 2),
                         nn.AdaptiveAvgPool2d(6), nn.Flatten(), nn.Linear(256 * 36, 4096), nn.ReLU(inplace=True),
                         nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, 1000)).eval()


class _Dense(nn.Module):
    def __init__(self, c: int, growth: int = 32):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), _conv(c, 4 * growth, 1), _conv(4 * growth, growth, 3, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


def densenet121() -> nn.Module:
    layers: list[nn.Module] = [_conv(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    c = 64
    for i, n in enumerate((6, 12, 24, 16)):
        for _ in range(n):
            layers.append(_Dense(c))
            c += 32
        if i < 3:
            layers += [nn.ReLU(), _conv(c, c // 2, 1, act=None), nn.AvgPool2d(2, 2)]
            c //= 2
    layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1000)]
    return nn.Sequential(*layers).eval()


class _ChannelsLastNorm(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.norm = nn.LayerNorm(c, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _ConvNeXtBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.dw(x).permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return x + y


def convnext_tiny() -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, 96, 4, 4), _ChannelsLastNorm(96)]
    widths = (96, 192, 384, 768)
    for i, (d, w) in enumerate(zip((3, 3, 9, 3), widths)):
        if i > 0:
            layers += [_ChannelsLastNorm(widths[i - 1]), nn.Conv2d(widths[i - 1], w, 2, 2)]
        layers += [_ConvNeXtBlock(w) for _ in range(d)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(768, eps=1e-6), nn.Linear(768, 1000)]
    return nn.Sequential(*layers).eval()


def wide_resnet50_2() -> nn.Module:
    return _resnet(True, (3, 4, 6, 3), width=128)


def resnext50_32x4d() -> nn.Module:
    return _resnet(True, (3, 4, 6, 3), width=128, groups=32)


class _Fire(nn.Module):
    def __init__(self, c: int, squeeze: int, expand: int):
        super().__init__()
        self.squeeze = _conv(c, squeeze, 1)
        self.e1, self.e3 = _conv(squeeze, expand, 1), _conv(squeeze, expand, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze(x)
        return torch.cat([self.e1(x), self.e3(x)], 1)


def squeezenet1_1() -> nn.Module:
    return nn.Sequential(_conv(3, 64, 3, 2), nn.MaxPool2d(3, 2, ceil_mode=True), _Fire(64, 16, 64), _Fire(128, 16, 64),
                         nn.MaxPool2d(3, 2, ceil_mode=True), _Fire(128, 32, 128), _Fire(256, 32, 128),
                         nn.MaxPool2d(3, 2, ceil_mode=True), _Fire(256, 48, 192), _Fire(384, 48, 192),
                         _Fire(384, 64, 256), _Fire(512, 64, 256), _conv(512, 1000, 1), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten()).eval()


class _SEReLU(nn.Module):
    def __init__(self, c: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, hidden, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(hidden, c, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.body(x)


def regnety_400mf() -> nn.Module:
    layers: list[nn.Module] = [_conv(3, 32, 3, 2)]
    c = 32
    for d, w in zip((1, 3, 6, 6), (48, 104, 208, 440)):
        for j in range(d):
            s = 2 if j == 0 else 1
            body = nn.Sequential(_conv(c, w, 1), _conv(w, w, 3, s, groups=w // 8), _SEReLU(w, max(1, c // 4)),
                                 _conv(w, w, 1, act=None))
            short = _conv(c, w, 1, s, act=None) if s != 1 or c != w else None
            layers.append(_Residual(body, short))
            c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1000)]
    return nn.Sequential(*layers).eval()


def mnasnet0_5() -> nn.Module:
    return _mnasnet(0.5).eval()


def vgg13() -> nn.Module:
    return _vgg((64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"))


FRESH3 = ("wide_resnet50_2", "resnext50_32x4d", "squeezenet1_1", "regnety_400mf", "mnasnet0_5", "vgg13")


FRESH2 = ("mobilenet_v3_small", "resnet101", "regnetx_400mf", "alexnet", "densenet121", "convnext_tiny")
