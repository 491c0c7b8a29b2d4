"""Hostile user factories for the fault tests (`builder: user`, tests/ is on sys.path): each one
fails in its own way while latbench counts, builds or times it."""

from __future__ import annotations

import os
import sys
import time

import torch
from torch import nn

LOG_ENV = "LATBENCH_TEST_OBSERVE_LOG"  # "observe" forwards append what they saw to this file (any process)


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
        if a == "observe" and os.environ.get(LOG_ENV):
            with open(os.environ[LOG_ENV], "a") as f:
                f.write(f"{torch.get_num_threads()} {torch.get_default_dtype()} {torch.is_grad_enabled()} "
                        f"{os.getcwd()}\n")
        if a == "threads2":
            torch.set_num_threads(2)
        if a == "float64":
            torch.set_default_dtype(torch.float64)
        if a == "grad":
            torch.set_grad_enabled(True)
        if a == "chdir":
            os.chdir("/")
        if a == "print":
            print("user text on stdout")
            os.write(1, b"user bytes on fd 1\n")
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
