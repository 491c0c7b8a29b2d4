"""latbench: hardware-aware latency benchmarking for PyTorch.

`import latbench` stays light (no torch): `latbench.measure` and `latbench.predict` are imported on first use.
"""

from typing import Any

__version__ = "0.2.0"
__all__ = ["measure", "predict", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "measure":
        from importlib import import_module

        return import_module("latbench.api").measure
    if name == "predict":  # a callable package: latbench.predict(model, *input_shape, table=...)
        from importlib import import_module

        return import_module("latbench.predict")
    raise AttributeError(f"module 'latbench' has no attribute {name!r}")
