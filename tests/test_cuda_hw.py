"""The GPU acceptance checks (benchmarks/gpu_acceptance.py) as tests: `pytest -m cuda` on a machine
with a GPU; skipped without one. None of these has run on hardware yet (no GPU was available)."""

import pytest
import torch

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

if torch.cuda.is_available():
    from benchmarks import gpu_acceptance as acc


def _ok(check):
    assert check.passed, f"{check.name}: {check.value} (limit {check.limit}) {check.detail}"


def test_events_agree_with_the_host_clock_on_a_large_mm():
    _ok(acc.check_mm_vs_host_clock())


def test_graph_replays_after_the_builders_objects_go_out_of_scope():
    _ok(acc.check_replay_after_scope())


def test_memory_reserved_is_flat_across_groups_when_graphs_are_released():
    _ok(acc.check_memory_flat(groups=3))


def test_cudagraph_is_not_slower_than_eager_for_any_case():
    for check in acc.check_graph_le_eager(acc.QUICK_POLICY):
        _ok(check)


def test_cudagraph_median_matches_torch_utils_benchmark():
    _ok(acc.check_vs_torch_benchmark(acc.QUICK_POLICY))


def test_op_count_matches_the_profilers_kernel_launches():
    _ok(acc.check_op_count())


def test_roofline_pct_is_at_most_100_against_the_rows_own_ceiling():
    _ok(acc.check_roofline_le_100(acc.QUICK_POLICY))
