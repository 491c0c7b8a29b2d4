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
import threading
import time
import warnings

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


_ORIGIN = os.getpid()


def _fork() -> None:
    """Fork once, in the process that imported this module: the child returns into latbench's code."""
    if os.getpid() == _ORIGIN and not getattr(_fork, "done", False):
        _fork.done = True
        os.fork()


def _thread(name: str, body) -> None:
    threading.Thread(target=body, name=f"hostile-{name}", daemon=True).start()


def _spin() -> None:
    while True:
        pass


def _set_threads_forever() -> None:
    while True:
        torch.set_num_threads(2)
        time.sleep(0.001)


def _exit_later() -> None:
    time.sleep(0.3)
    os._exit(0)


def _environ() -> None:
    os.environ["HOSTILE_ENV"] = "1"
    os.environ["OMP_NUM_THREADS"] = "7"


# Issue 22's second attack: global state the first guard did not cover, threads, forks, __del__, odd returns.
ACTIONS2 = {
    "nothing": lambda: None,
    "fork": _fork,
    "thread_busy": lambda: _thread("busy", _spin),
    "thread_setter": lambda: _thread("setter", _set_threads_forever),
    "thread_exits_process": lambda: _thread("exit", _exit_later),
    "sigalrm_ignored": lambda: signal.signal(signal.SIGALRM, signal.SIG_IGN),
    "sighup_ignored": lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    "sigterm_handler": lambda: signal.signal(signal.SIGTERM, lambda s, f: None),
    "raise_sigint": lambda: signal.raise_signal(signal.SIGINT),
    "raise_sigterm": lambda: signal.raise_signal(signal.SIGTERM),
    "flush_denormal": lambda: torch.set_flush_denormal(True),
    "env_var": _environ,
    "env_clear": os.environ.clear,
    "recursion_low": lambda: sys.setrecursionlimit(400),
    "recursion_high": lambda: sys.setrecursionlimit(10**6),
    "warnings_error": lambda: warnings.simplefilter("error"),
    "warnings_ignore": lambda: warnings.simplefilter("ignore"),
    "perf_counter_patch": lambda: (setattr(time, "perf_counter", lambda: 0.0), setattr(time, "perf_counter_ns", lambda: 0)),
    "monotonic_patch": lambda: setattr(time, "monotonic", lambda: 0.0),
    "cuda_sync_patch": lambda: setattr(torch.cuda, "synchronize", lambda *a, **k: None),
    "nice": lambda: os.nice(5),
    "settrace": lambda: sys.settrace(lambda *a: None),
    "setprofile": lambda: sys.setprofile(lambda *a: None),
    "matmul_medium": lambda: torch.set_float32_matmul_precision("medium"),
    "default_device_meta": lambda: torch.set_default_device("meta"),
    "anomaly": lambda: torch.autograd.set_detect_anomaly(True),
    "autocast_on": lambda: torch.set_autocast_enabled("cpu", True),
    "huge_alloc": lambda: torch.empty(2**44, dtype=torch.uint8),
    "huge_bytes": lambda: bytearray(2**44),
    "returns_none": lambda: None, "returns_str": lambda: None, "returns_generator": lambda: None,
    "returns_list": lambda: None,
    "del_chdir": lambda: None, "del_threads": lambda: None, "del_print": lambda: None, "del_exit": lambda: None,
}
_RETURNS = {"returns_none": lambda x: None, "returns_str": lambda x: "not a tensor",
            "returns_generator": lambda x: (x for _ in range(3)), "returns_list": lambda x: [x] * 1000}
_DELETE = {"del_chdir": lambda: os.chdir("/"), "del_threads": lambda: torch.set_num_threads(3),
           "del_print": _print, "del_exit": lambda: os._exit(0)}


def _act(action: str) -> None:
    (ACTIONS.get(action) or ACTIONS2[action])()


class _Hostile(nn.Module):
    def __init__(self, c: int, action: str, stage: str):
        super().__init__()
        self.proj = nn.Conv2d(c, c, 1, bias=False)
        self.action, self.stage = action, stage

    def forward(self, x):
        if self.stage == "forward":
            _act(self.action)
            if self.action in _RETURNS:
                return _RETURNS[self.action](self.proj(x))
        return self.proj(x)

    def __del__(self):
        if self.action in _DELETE:
            _DELETE[self.action]()


def make(c: int = 4, action: str = "print", stage: str = "forward") -> nn.Module:
    """A 1x1 conv whose factory (stage 'factory') or every forward (stage 'forward') does `action`
    (a `returns_*` factory returns that instead of a module; `del_*` acts when the module is freed)."""
    if stage == "factory":
        _act(action)
        if action in _RETURNS:
            return _RETURNS[action](torch.zeros(1))
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
                     f"{torch.backends.cudnn.enabled}|{os.getcwd()}|{gc.isenabled()}|" + "|".join(map(str, _more())))
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (state + "\n").encode())
            finally:
                os.close(fd)
        return self.proj(x)


def _more() -> tuple:
    """The state issue 22's second attack changes: flush-denormal, clocks and cuda.synchronize replaced,
    recursion limit, 'error' warnings filters, environment, signal handlers, hostile threads alive, trace
    and profile functions, matmul precision, default device, anomaly mode, CPU autocast, priority."""
    flush = (torch.tensor([1e-40], dtype=torch.float32, device="cpu") * 1.0).item() == 0.0
    handlers = tuple(getattr(signal.getsignal(s), "__module__", str(signal.getsignal(s)))
                     for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
    return (flush, time.perf_counter.__module__, time.monotonic.__module__, torch.cuda.synchronize.__module__,
            sys.getrecursionlimit(), sum(f[0] == "error" for f in warnings.filters), "HOSTILE_ENV" in os.environ,
            len(os.environ) > 0, handlers, sum(t.name.startswith("hostile") for t in threading.enumerate()),
            sys.gettrace() is not None, sys.getprofile() is not None, torch.get_float32_matmul_precision(),
            torch.get_default_device(), torch.is_anomaly_enabled(), torch.is_autocast_enabled("cpu"),
            os.getpriority(os.PRIO_PROCESS, 0))


def probe(c: int = 4) -> nn.Module:
    """A 1x1 conv whose forward appends the process state it runs in to $LATBENCH_ATTACK_PROBE."""
    return _Probe(c)
