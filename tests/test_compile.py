"""`compile` rows are compiled code or a failure with the reason (issue 13, item 2).

The dynamo-only backend ("eager") keeps these fast; one inductor smoke test runs a tiny model.
"""

import sys

import pytest
import torch

from latbench.timing import prepare


@pytest.fixture(autouse=True)
def _dynamo_only(monkeypatch):
    monkeypatch.setattr(prepare, "COMPILE_BACKEND", "eager")
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _net(width: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.ReLU(), torch.nn.Linear(width, 2)).eval()


def test_cases_past_the_recompile_limit_still_compile():
    """Before: every model's forward shared one code object, so past config.recompile_limit the
    remaining cases ran eager, labelled compile. Each case now has its own cache."""
    x = torch.randn(3, 4)
    with torch.inference_mode(), torch._dynamo.config.patch(recompile_limit=2):
        preps = [prepare._compile(_net(w), x) for w in (3, 5, 7, 9)]
        assert all(p.error is None and p.skip is None and p.compile_s > 0 for p in preps), preps
        for p in preps:  # interleaved calls after all are prepared: none recompiles (it would raise)
            p.fn()
            p.fn()


def test_a_recompile_while_timing_fails_the_call_with_the_reason():
    class Scaled(torch.nn.Module):
        scale = 2.0

        def forward(self, x):
            return x * self.scale

    model = Scaled()
    prep = prepare._compile(model, torch.randn(3))
    assert prep.fn is not None
    model.scale = 3.0  # a guarded constant changes: dynamo would compile again
    with pytest.raises(Exception, match="recompiled"):
        prep.fn()


def test_a_graph_break_fails_the_case_instead_of_running_part_eager():
    class Breaks(torch.nn.Module):
        def forward(self, x):
            y = x + 1
            torch._dynamo.graph_break()
            return y * 2

    prep = prepare._compile(Breaks(), torch.randn(2))
    assert prep.fn is None and prep.skip is None
    assert "fullgraph" in prep.error and "graph break" in prep.error


def test_a_model_dynamo_would_skip_fails_instead_of_running_eager():
    class Disabled(torch.nn.Module):
        @torch._dynamo.disable
        def forward(self, x):
            return x * 2

    prep = prepare._compile(Disabled(), torch.randn(2))
    assert prep.fn is None and prep.skip is None and "disable" in prep.error


def test_compile_time_is_returned_and_eager_modes_have_none():
    prep = prepare._compile(_net(3), torch.randn(3, 4))
    assert prep.compile_s is not None and prep.compile_s > 0


def test_release_resets_dynamo_and_the_backend():
    class Backend:
        released = 0

        def release(self):
            Backend.released += 1
            return 0

    prep = prepare._compile(_net(3), torch.randn(3, 4))
    prepare.release(Backend())
    assert Backend.released == 1
    with pytest.raises(Exception, match="recompiled"):
        prep.fn()  # its compiled code is gone: calling it again would compile again, which is refused


# not marked slow: 4-10 s here (call, 2 shared cores; 9.2 s under load), under the ~20 s CI budget
def test_inductor_smoke_on_a_tiny_model(monkeypatch):
    monkeypatch.setattr(prepare, "COMPILE_BACKEND", "inductor")
    model, x = _net(8), torch.randn(3, 4)
    limit = sys.getrecursionlimit()
    try:
        with torch.inference_mode():
            prep = prepare._compile(model, x)
            if prep.skip:
                pytest.skip(prep.skip)  # no C++ toolchain here: compile is a skip by design
            assert prep.error is None and prep.compile_s > 0
            torch.testing.assert_close(prep.fn(), model(x))
    finally:
        # inductor raises the process's recursion limit to 2000 (compile_fx.py); later tests
        # (test_suite_load.py's deep nesting) rely on the default
        sys.setrecursionlimit(limit)
