"""Issue 23: a group's memory is handed back (release, then Device.reset_memory) only once nothing
references its models, inputs and compiled or captured callables any more."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
import torch

from fakes import FakeClock, FakeCuda
from latbench.devices import CpuDevice
from latbench.run import pipeline
from latbench.suite import expand, load_suite
from latbench.timing.cpu import CpuBackend
from latbench.timing.cuda import CudaBackend
from latbench.timing.loop import StopPolicy

TINY = Path(__file__).resolve().parent / "data" / "tiny.yaml"
FAST = StopPolicy(warmup_s=0.0, warmup_min_iters=1, block_s=0.0005, min_rounds=3, max_rounds=3,
                  min_time_s=0.0, max_time_s=1.0, warmup_max_calls=4)


class CudaLike(CudaBackend):
    """The CUDA backend on a fake torch.cuda: each model's forward also queues a FakeCudaWork."""

    fake: FakeCuda | None = None

    def __init__(self):
        CudaLike.fake = FakeCuda(FakeClock())
        super().__init__(CudaLike.fake)


class OnFakeGpu(torch.nn.Linear):
    def forward(self, x):
        self.work()  # the fake device's share of the forward (kept alive by the model, as weights are)
        return super().forward(x)


@pytest.mark.parametrize("backend, modes", [(CpuBackend, ("eager",)), (CudaLike, ("eager", "cudagraph"))])
def test_memory_is_reset_after_the_groups_callables_are_dropped(monkeypatch, backend, modes):
    built: list[weakref.ref] = []
    alive_at_reset: list[int] = []

    def build(spec, device):
        model, x = OnFakeGpu(8, 8), torch.zeros(1, 8)
        model.work = CudaLike.fake.work(1e-4) if backend is CudaLike else (lambda: None)
        built.extend((weakref.ref(model), weakref.ref(x)))
        return model, x

    class Dev(CpuDevice):
        def reset_memory(self):
            gc.collect()
            alive_at_reset.append(sum(r() is not None for r in built))

    monkeypatch.setattr(pipeline, "_build", build)
    specs = expand(load_suite(TINY), "arm", quick=False)
    group = [s for s in specs if s.group == specs[0].group]
    cfg = pipeline.RunConfig(device=Dev(backend=backend(), threads=1), run_id="t", modes=modes, policy=FAST)
    rows, _ = pipeline.run_group(group, cfg)
    assert rows and all(r.status == "ok" for r in rows), [r.error for r in rows]
    assert len(built) == 2 * len(group) and alive_at_reset == [0]  # every model and input already freed
