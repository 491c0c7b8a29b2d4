"""Small networks for tests/test_predict*.py (tests/ is on sys.path, see conftest.py)."""

import torch
from torch import nn


class Residual(nn.Module):
    """conv3x3+relu, depthwise conv, 1x1 conv, residual add, relu, global pool, linear: one block of
    every common kind, with a block (the 1x1 conv after the depthwise one) used twice."""

    def __init__(self, c: int = 8, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.ReLU())
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.pw = nn.Conv2d(c, c, 1, bias=False)
        self.pw2 = nn.Conv2d(c, c, 1, bias=False)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.stem(x)
        y = self.pw2(self.pw(self.dw(x)))
        x = torch.relu(x + y)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def residual(c: int = 8) -> nn.Module:
    return Residual(c)


def wider(c: int = 12) -> nn.Module:
    return Residual(c)


class Pooled(nn.Module):
    """conv+relu, max pool (a block whose time depends on its input's values), conv, max pool, linear."""

    def __init__(self, c: int = 8):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.ReLU(inplace=True))
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = self.pool(self.a(x))
        x = self.pool(self.b(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def pooled(c: int = 8) -> nn.Module:
    return Pooled(c)
