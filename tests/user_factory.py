"""Factories a test suite names with `builder: user` (tests/ is on sys.path, see conftest.py)."""

from torch import nn


def tiny(c: int = 4, hidden: int = 8) -> nn.Module:
    """3x3 conv c->hidden, ReLU, 1x1 conv hidden->c: 9*c*hidden + hidden*c multiply-adds per pixel."""
    return nn.Sequential(nn.Conv2d(c, hidden, 3, padding=1, bias=False), nn.ReLU(),
                         nn.Conv2d(hidden, c, 1, bias=False))


class _DataDependent(nn.Module):
    """Reads a value (.item()), which the meta device cannot do: latbench counts it on the CPU."""

    def __init__(self, c: int):
        super().__init__()
        self.proj = nn.Linear(c, c, bias=False)

    def forward(self, x):
        scale = 1.0 if x.abs().sum().item() >= 0 else 2.0
        return self.proj(x) * scale


def data_dependent(c: int = 4) -> nn.Module:
    return _DataDependent(c)


def not_a_module() -> int:
    return 3
