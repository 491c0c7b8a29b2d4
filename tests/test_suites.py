"""Every suite in suites/ loads, and its quick variant (first scale) meets its FLOPs target within
tolerance on both platforms' widths, so `latbench run SUITE --quick` cannot fail at expansion in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from latbench.suite import expand, load_suite

SUITES = sorted((Path(__file__).resolve().parent.parent / "suites").glob("*.yaml"))
DESIGN_SUITES = {"conv_families", "vargnet", "units", "se_overhead", "ghost", "g_ghost"}


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
