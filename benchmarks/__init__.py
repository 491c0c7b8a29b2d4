"""Benchmark scripts that produce the evidence for latbench's measurement core (see README.md)."""
