"""Hostile user code for the attack (benchmarks/attack.py) and the file/state tests: `builder: user`
factories whose factory or forward does one hostile thing (`action`), and a probe whose forward
records the process state it sees, so a run can check that no case measured another case's state.

    params: {factory: 'hostile_factory:make', kwargs: {action: chdir, stage: forward}, input_shape: [4, 6, 6]}
    params: {factory: 'hostile_factory:probe', kwargs: {}, input_shape: [4, 6, 6]}

The probe appends one line per forward to $LATBENCH_ATTACK_PROBE (any process, worker or not).
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import tempfile

import torch
from torch import nn

PROBE_ENV = "LATBENCH_ATTACK_PROBE"


def _os_exit(code: int) -> None:
    sys.stdout.flush()
    os._exit(code)


def _close(fd: int) -> None:
    os.close(fd)


def _print() -> None:
    print("user text on stdout " * 20)
    sys.stdout.flush()
    os.write(1, b"user bytes on fd 1\n")
    print("user text on stderr", file=sys.stderr)


class _Writer:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


ACTIONS = {
    "os_exit0": lambda: _os_exit(0),
    "os_exit3": lambda: _os_exit(3),
    "chdir_root": lambda: os.chdir("/"),
    "chdir_tmp": lambda: os.chdir(tempfile.gettempdir()),
    "close_fd0": lambda: _close(0),
    "close_fd1": lambda: _close(1),
    "close_fd2": lambda: _close(2),
    "devnull_fd1": lambda: os.dup2(os.open(os.devnull, os.O_WRONLY), 1),
    "keyboard_interrupt": lambda: (_ for _ in ()).throw(KeyboardInterrupt()),
    "system_exit0": lambda: sys.exit(0),
    "system_exit2": lambda: sys.exit(2),
    "generator_exit": lambda: (_ for _ in ()).throw(GeneratorExit()),
    "base_exception": lambda: (_ for _ in ()).throw(BaseException("user")),
    "memory_error": lambda: (_ for _ in ()).throw(MemoryError()),
    "recursion": lambda: (_ for _ in ()).throw(RecursionError("deep")),
    "threads2": lambda: torch.set_num_threads(2),
    "threads_max": lambda: torch.set_num_threads(os.cpu_count() or 2),
    "float64": lambda: torch.set_default_dtype(torch.float64),
    "float16": lambda: torch.set_default_dtype(torch.float16),
    "grad_on": lambda: torch.set_grad_enabled(True),
    "deterministic": lambda: torch.use_deterministic_algorithms(True),
    "mkldnn_off": lambda: setattr(torch.backends.mkldnn, "enabled", False),
    "cudnn_off": lambda: setattr(torch.backends.cudnn, "enabled", False),
    "cudnn_benchmark_off": lambda: setattr(torch.backends.cudnn, "benchmark", False),
    "print": _print,
    "replace_stdout": lambda: setattr(sys, "stdout", _Writer()),
    "replace_stderr": lambda: setattr(sys, "stderr", _Writer()),
    "stdout_none": lambda: setattr(sys, "stdout", None),
    "sigint_ignored": lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    "sigterm_ignored": lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN),
    "gc_off": gc.disable,
}


def _act(action: str) -> None:
    ACTIONS[action]()


class _Hostile(nn.Module):
    def __init__(self, c: int, action: str, stage: str):
        super().__init__()
        self.proj = nn.Conv2d(c, c, 1, bias=False)
        self.action, self.stage = action, stage

    def forward(self, x):
        if self.stage == "forward":
            _act(self.action)
        return self.proj(x)


def make(c: int = 4, action: str = "print", stage: str = "forward") -> nn.Module:
    """A 1x1 conv whose factory (stage 'factory') or every forward (stage 'forward') does `action`."""
    if stage == "factory":
        _act(action)
    return _Hostile(c, action, stage)


class _Probe(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.proj = nn.Conv2d(c, c, 1, bias=False)

    def forward(self, x):
        path = os.environ.get(PROBE_ENV)
        if path:
            state = (f"{torch.get_num_threads()}|{torch.get_default_dtype()}|{torch.is_grad_enabled()}|"
                     f"{torch.are_deterministic_algorithms_enabled()}|{torch.backends.mkldnn.enabled}|"
                     f"{torch.backends.cudnn.enabled}|{os.getcwd()}|{gc.isenabled()}")
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (state + "\n").encode())
            finally:
                os.close(fd)
        return self.proj(x)


def probe(c: int = 4) -> nn.Module:
    """A 1x1 conv whose forward appends the process state it runs in to $LATBENCH_ATTACK_PROBE."""
    return _Probe(c)
