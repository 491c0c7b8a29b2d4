"""Where a run's cases come from, behind one interface: a suite file, `run --model` (an in-memory
suite), the objects handed to `latbench.measure()` (api.py), the two sides of `latbench ab` (ab.py).

The pipeline asks a source for its cases (`specs`), for what the run's metadata records about it
(`info`), and holds `active()` open while measuring (a source whose cases live in this process --
Python objects, modules imported under aliases -- sets them up there and says `in_process_only`:
worker processes cannot rebuild its cases).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ContextManager, Iterator, Protocol

from latbench.records import CaseSpec


class CaseSource(Protocol):
    name: str  # the run's suite name (file names, the `suite` column)
    path: str  # where the cases were declared (a suite file, "--model", "latbench.measure")
    widths: str  # the default widths mode ("paper", "flops", "object")
    claims: list[Any]  # claims to judge on the rows (suite files only)
    in_process_only: bool  # the cases live in this process (no --isolate, no --repeats)

    def info(self) -> dict[str, Any]:
        """The metadata's `suite`: name, path, sha256, experiment, description."""
        ...

    def specs(self, platform: str, *, quick: bool = False, widths_mode: str | None = None, batch: int | None = None,
              max_cases: int | None = None) -> list[CaseSpec]:
        """Every case to measure (SuiteError for a suite that cannot be expanded)."""
        ...

    def active(self) -> ContextManager[None]:
        """Held open while the cases are built and measured."""
        ...


@dataclass
class SuiteSource:
    """A loaded suite (latbench.suite.Suite): a YAML file, or the in-memory suite of `run --model`."""

    suite: Any
    in_process_only: bool = False

    @property
    def name(self) -> str:
        return self.suite.model.suite

    @property
    def path(self) -> str:
        return self.suite.path

    @property
    def widths(self) -> str:
        return self.suite.model.widths

    @property
    def claims(self) -> list[Any]:
        return list(self.suite.model.claims or [])

    def info(self) -> dict[str, Any]:
        m = self.suite.model
        return {"name": m.suite, "path": self.suite.path, "sha256": self.suite.sha256, "experiment": m.experiment,
                "description": m.description}

    def specs(self, platform: str, *, quick: bool = False, widths_mode: str | None = None, batch: int | None = None,
              max_cases: int | None = None) -> list[CaseSpec]:
        from latbench.suite import expand

        limit = {} if max_cases is None else {"max_cases": max_cases}
        return expand(self.suite, platform, quick=quick, widths_mode=widths_mode, batch=batch, **limit)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        yield
