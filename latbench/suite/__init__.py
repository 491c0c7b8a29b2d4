"""Suites: YAML files describing networks and sweeps, validated and expanded into CaseSpecs."""

from latbench.suite.load import Suite, expand, load_suite

__all__ = ["Suite", "expand", "load_suite"]
