"""latbench: hardware-aware latency benchmarking for PyTorch.

`import latbench` stays light (no torch): `latbench.measure` is imported on first use.
"""

from typing import Any

__version__ = "0.2.0"
__all__ = ["measure", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "measure":
        from importlib import import_module

        return import_module("latbench.api").measure
    raise AttributeError(f"module 'latbench' has no attribute {name!r}")
