"""Suites: YAML files describing networks and sweeps, validated and expanded into CaseSpecs.

`import latbench.suite` is light (no torch): Suite, expand and load_suite (suite/load.py, which builds
and counts networks) are imported on first use, so that suite/catalog.py (`latbench list`, a suite's
lookup by name) stays fast.
"""

from typing import Any

__all__ = ["Suite", "expand", "load_suite"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from latbench.suite import load

        return getattr(load, name)
    raise AttributeError(f"module 'latbench.suite' has no attribute {name!r}")
