"""latbench: hardware-aware latency benchmarking for PyTorch."""

__version__ = "0.1.0"
