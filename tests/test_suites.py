"""Every suite in suites/ loads, and its quick variant (first scale) meets its FLOPs target within
tolerance on both platforms' widths, so `latbench run SUITE --quick` cannot fail at expansion in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from latbench.suite import expand, load_suite
from latbench.suite.sweep import points

SUITES = sorted((Path(__file__).resolve().parent.parent / "suites").glob("*.yaml"))
DESIGN_SUITES = {"conv_families", "vargnet", "units", "se_overhead", "ghost", "g_ghost", "inception", "fire", "resnext",
                 "mixconv", "mbconv", "networks", "efficientnet_scaling", "resnext_forms", "mobilenet_v2_shortcut",
                 "xception_block", "vargnet_block"}


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


# ---- claims (issue 24): fixed FLOPs, sources, the paper's own numbers --------------------------------

FIXED_FLOPS = 0.03  # claims.FIXED_FLOPS_TOLERANCE


def _claim_drifts(path: Path) -> dict[int, list[tuple[str, int, float]]]:
    """claim index -> (platform, scale, flops(case)/flops(than) - 1) at every scale and platform, for the claims
    that say they are at fixed FLOPs (the others say why not and are not counted)."""
    from latbench.cost import count_spec

    suite = load_suite(path)
    claims = [(j, c) for j, c in enumerate(suite.model.claims) if c.fixed_flops]
    out: dict[int, list[tuple[str, int, float]]] = {j: [] for j, _ in claims}
    if not claims:
        return out
    for platform in ("gpu", "arm"):
        flops = {(s.case, s.scale): count_spec(s).flops for s in expand(suite, platform)}
        for j, c in claims:
            for scale in suite.model.scales:
                out[j].append((platform, scale, flops[(c.case, scale)] / flops[(c.than, scale)] - 1))
    return out


@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_every_claim_is_at_fixed_flops_or_says_why_not(path):
    """A claim about FLOPs vs speed compares cases within 3 % FLOPs of each other at every scale on both
    platforms' widths; a claim whose cases are further apart says why (fixed_flops: false with why, or
    why beside fixed_flops, judged per FLOP)."""
    claims = load_suite(path).model.claims
    for j, drifts in _claim_drifts(path).items():
        off = [(p, s, f"{d:+.1%}") for p, s, d in drifts if abs(d) > FIXED_FLOPS]
        assert not off or claims[j].why, f"{path.stem} claims[{j}] ({claims[j].case} vs {claims[j].than}): {off}"
    for c in claims:
        assert c.fixed_flops or c.why, c.text


def test_block_design_suites_compare_at_fixed_flops_too():
    """inception, fire and mixconv compare cases of very different FLOPs for their sources' claims (which say
    why); each also has a claim on cases within 3 % FLOPs, judged per FLOP."""
    for stem in ("inception", "fire", "mixconv"):
        path = next(p for p in SUITES if p.stem == stem)
        drifts = _claim_drifts(path)
        fixed = [j for j, ds in drifts.items() if all(abs(d) <= FIXED_FLOPS for _, _, d in ds)]
        assert fixed, stem
        assert any(not c.fixed_flops for c in load_suite(path).model.claims), stem


def test_every_claim_names_its_source():
    for path in SUITES:
        for c in load_suite(path).model.claims:
            assert c.source, f"{path.stem}: {c.text}"


def test_paper_ratios_are_the_papers_numbers():
    """paper_ratio of G1-G4 (Tables 1-4) and of the networks suite (Table 8) are the papers' speeds of `than`
    over `case`, from the data shipped in latbench/data."""
    import csv
    from importlib import resources

    from latbench.report.analysis import paper_speed, paper_table

    table = paper_table()
    for stem in ("g1", "g2", "g3", "g4"):
        suite = load_suite(next(p for p in SUITES if p.stem == stem))
        for c in suite.model.claims:
            assert c.paper_ratio, c.text
            for platform, by_scale in c.paper_ratio.items():
                for scale, value in by_scale.items():  # type: ignore[union-attr]
                    want = 1 / paper_speed(table, suite.model.experiment, c.case, c.than, scale, platform)
                    assert value == pytest.approx(want, abs=6e-4), (stem, c.case, platform, scale)
    with resources.files("latbench").joinpath("data/shufflenetv2_table8.csv").open() as f:
        speed = {}
        for r in csv.DictReader(f):
            if r["latbench_case"] and r["gpu_batches_per_s"] != "-":
                speed.setdefault(r["latbench_case"], (float(r["gpu_batches_per_s"]), float(r["arm_images_per_s"])))
    for c in load_suite(next(p for p in SUITES if p.stem == "networks")).model.claims:
        assert c.paper_ratio == pytest.approx({"gpu": speed[c.than][0] / speed[c.case][0],
                                               "arm": speed[c.than][1] / speed[c.case][1]}, abs=6e-4), c.text
