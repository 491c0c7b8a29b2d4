"""NETWORK arguments as `latbench run --model` and suites read them: a built-in network name
(`latbench list`), your own `package.module:function` (with --input; naming it is the opt-in to import
it, as for `run --model`), or a suite (a name such as `networks` or a file; a suite naming user code
needs --allow-import, as for `run`). Each becomes a case (records.CaseSpec) that the run wing can
measure whole and that cost.build_network builds for tracing into blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from latbench.errors import LatbenchError
from latbench.records import CaseSpec


@dataclass(frozen=True)
class Network:
    name: str
    spec: CaseSpec
    source: Any  # run.sources.SuiteSource the case comes from (to measure it whole)

    def build(self, device: str = "meta") -> tuple[Any, Any]:
        import torch

        from latbench.cost import build_network

        s = self.spec
        return build_network(s.builder, s.param_dict, s.blocks, s.batch, s.height, s.width, device,
                             getattr(torch, s.dtype))


def resolve(names: Sequence[str], *, input: str | None = None, batch: int = 1, platform: str = "cpu",
            allow_import: bool = False, kwargs: str | None = None) -> list[Network]:
    """The networks NETWORK... names, in order (LatbenchError, located, for a name that is none)."""
    from latbench.models.networks import NETWORKS
    from latbench.run.sources import SuiteSource
    from latbench.suite import load_suite
    from latbench.suite.adhoc import ModelRequest, build_suite
    from latbench.suite.catalog import resolve_suite

    if not names:
        raise LatbenchError("no NETWORK given", where="NETWORK", hint="name built-in networks (latbench list), "
                            "MODULE:FACTORY with --input, or a suite such as 'networks'")
    models = [n for n in names if n in NETWORKS or ":" in n]
    sources = []
    if models:
        sources.append(SuiteSource(build_suite(ModelRequest(models=tuple(models), input=input, batches=(batch,),
                                                            kwargs=(kwargs,) if kwargs else ()))))
    for n in names:
        if n in models:
            continue
        try:
            path = resolve_suite(Path(n))
        except LatbenchError:
            import difflib

            close = difflib.get_close_matches(n, sorted(NETWORKS), n=1)
            raise LatbenchError(f"{n!r} is neither a built-in network, MODULE:FACTORY, nor a suite", where=f"NETWORK {n}",
                                hint=(f"did you mean {close[0]!r}? " if close else "") + "see 'latbench list'") from None
        sources.append(SuiteSource(load_suite(path, allow_import)))
    out: list[Network] = []
    seen: set[str] = set()
    for i, src in enumerate(sources):
        suite_batch = batch if (i > 0 or not models) and batch != 1 else None  # --model cases have theirs
        for spec in src.specs(platform, batch=suite_batch):
            name = spec.case + (f" x{spec.scale}" if spec.scale != 1 else "") + (f" {spec.point}" if spec.point else "")
            if name in seen:
                continue
            seen.add(name)
            out.append(Network(name, spec, src))
    return out
