"""Hostile user factories for the fault tests (`builder: user`, tests/ is on sys.path): each one
fails in its own way while latbench counts, builds or times it."""

from __future__ import annotations

import os
import sys
import time

from torch import nn


class _Forward(nn.Module):
    def __init__(self, c: int, action: str):
        super().__init__()
        self.proj = nn.Conv2d(c, c, 1, bias=False)
        self.action = action

    def forward(self, x):
        a = self.action
        if a == "raise":
            raise ValueError("user forward is broken")
        if a == "exit0":
            sys.exit(0)
        if a == "exit3":
            sys.exit(3)
        if a == "base":
            raise BaseException("user BaseException")
        if a == "loop":
            while True:
                time.sleep(0.01)
        if a == "stuck":  # a native call that SIGALRM cannot interrupt: the alarm is blocked meanwhile
            import signal
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
            time.sleep(600)
        if a == "os_exit":
            os._exit(7)
        if a == "segfault":
            import ctypes
            ctypes.string_at(0)
        return self.proj(x)


def forward(c: int = 4, action: str = "ok") -> nn.Module:
    return _Forward(c, action)


def factory_raises(c: int = 4) -> nn.Module:
    raise RuntimeError("factory is broken")


def factory_exits(c: int = 4) -> nn.Module:
    sys.exit(0)


def not_a_module(c: int = 4) -> int:
    return 3
