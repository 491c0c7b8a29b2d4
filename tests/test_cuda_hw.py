"""The GPU acceptance sections (benchmarks/gpu_acceptance.py) as tests: `pytest -m cuda` on a machine
with a GPU, each section in this process (the script itself runs each in its own); skipped without
one. None of these has run on hardware yet (no GPU was available)."""

import pytest
import torch

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

from benchmarks import gpu_acceptance as acc  # noqa: E402


@pytest.mark.parametrize("section", list(acc.SECTIONS))
def test_acceptance_section(section, tmp_path):
    torch.backends.cudnn.benchmark = True
    checks = acc.SECTIONS[section](acc.Ctx(out=tmp_path, quick=True))
    bad = [f"{c.name}: {c.value} (limit {c.limit}) {c.detail}" for c in checks if not (c.passed or c.skipped)]
    assert checks and not bad, bad
