"""Every suite in suites/ loads, and its quick variant (first scale) meets its FLOPs target within
tolerance on both platforms' widths, so `latbench run SUITE --quick` cannot fail at expansion in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from latbench.suite import expand, load_suite
from latbench.suite.sweep import points

SUITES = sorted((Path(__file__).resolve().parent.parent / "suites").glob("*.yaml"))
DESIGN_SUITES = {"conv_families", "vargnet", "units", "se_overhead", "ghost", "g_ghost", "inception", "fire", "resnext",
                 "mixconv", "mbconv", "networks"}


@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_quick_variant_expands_within_tolerance(path):
    suite = load_suite(path)
    specs = expand(suite, "arm", quick=True)
    assert specs and all(s.scale == suite.model.scales[0] for s in specs)
    if suite.model.widths == "flops":
        from latbench.cost import count_spec

        for s in specs[:len(suite.model.cases)]:
            assert abs(count_spec(s).flops / s.flops_target - 1) <= suite.model.flops_tolerance


def test_every_design_suite_states_claims_it_tests():
    found = {p.stem for p in SUITES} & DESIGN_SUITES
    assert found == DESIGN_SUITES
    for stem in DESIGN_SUITES:
        m = load_suite(next(p for p in SUITES if p.stem == stem)).model
        assert m.description.strip() and m.claims, stem


@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_every_suite_expands_fully_on_both_platforms(path):
    suite = load_suite(path)
    for platform in ("gpu", "arm"):
        specs = expand(suite, platform)
        assert len(specs) == len(suite.model.cases) * len(suite.model.scales) * len(points(suite.model.sweep,
                                                                                           suite.model.batch))


def test_whole_network_suites_use_one_block():
    from latbench.models.networks import NETWORKS

    for path in SUITES:
        m = load_suite(path).model
        if any((c.builder or m.builder) in NETWORKS for c in m.cases):
            assert m.blocks == 1, path.stem
