"""The layout rules of README's Architecture section, checked on the source (no imports run):
nothing imports the CLI, no module imports one above it in the flow, and the import graph has no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "latbench"

# Lowest first. A module may import modules of its own layer or below, never above.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "records", "faults", "verdict"),
    ("models", "stats", "env", "claims", "suite.yamlnodes", "suite.sweep", "timing.backend", "timing.cuda",
     "timing.cpu", "timing.fake", "timing.loop", "results.schema"),
    ("cost", "solver", "timing.prepare", "timing", "telemetry", "results", "suite"),
    ("devices", "roofline", "opbreakdown", "runsets", "compare", "run.options"),
    ("run.rows", "gate", "audit", "report"),
    ("run.guard",),
    ("run.pipeline", "run.runfile", "run.sources", "run.warm"),
    ("run.workers",),
    ("run.session", "run.merge", "run.fleet", "run"),
    ("api", "pytest_plugin", "ab", "predict"),
    ("cli", "__main__"),
]


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix("__init__").rstrip(".")


def graph() -> dict[str, set[str]]:
    """module -> latbench modules it imports (at any depth: module level and inside functions)."""
    out: dict[str, set[str]] = {}
    for p in sorted(ROOT.rglob("*.py")):
        mod, deps = module_name(p), set()
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("latbench"):
                if node.module == "latbench":
                    deps.update(a.name for a in node.names if a.name != "__version__")
                else:
                    deps.add(node.module.removeprefix("latbench").lstrip("."))
            elif isinstance(node, ast.Import):
                deps.update(a.name.removeprefix("latbench").lstrip(".") for a in node.names
                            if a.name.startswith("latbench."))
        deps.discard(mod)
        deps.discard("")
        out[mod] = deps
    return out


def layer(mod: str) -> int:
    """The layer of the longest matching prefix ('report.plots' -> 'report', 'suite.load' -> 'suite')."""
    best, found = -1, None
    for i, names in enumerate(LAYERS):
        for n in names:
            if (mod == n or mod.startswith(n + ".")) and len(n) > best:
                best, found = len(n), i
    if found is None:
        raise AssertionError(f"latbench.{mod} is in no layer: add it to LAYERS in tests/test_layout.py and README")
    return found


def test_every_module_has_a_layer_and_imports_only_downward():
    g = graph()
    upward = [f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
              for m, deps in g.items() if m for d in deps if layer(d) > layer(m)]
    assert upward == []


def test_nothing_imports_the_cli():
    assert [m for m, deps in graph().items() if "cli" in deps and m != "__main__"] == []


def test_the_import_graph_has_no_cycle():
    g = graph()
    # a package's __init__ re-exporting its submodules is not a cycle of the flow
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in g.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in edges.get(m, ()):
            if state.get(d) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(d):], d]) if d in path else d)
            if d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in edges:
        if m not in state:
            visit(m, [m])


def test_the_rules_would_catch_an_upward_import(monkeypatch):
    """Mutation check: stats importing session must be reported."""
    real = graph()
    monkeypatch.setattr(__import__(__name__), "graph", lambda: {**real, "stats": real["stats"] | {"session"}})
    with pytest.raises(AssertionError):
        test_every_module_has_a_layer_and_imports_only_downward()


def test_only_the_device_object_and_timing_backends_ask_which_device():
    """Issue 11: the device travels as an object; no `== "cuda"` branches elsewhere."""
    import re

    pattern = re.compile(r"""[!=]= *["']cuda["']|["']cuda["'] *[!=]=""")
    found = [f"{p.relative_to(ROOT.parent)}:{i}" for p in sorted(ROOT.rglob("*.py"))
             if p.name != "devices.py" and "timing" not in p.parts
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert found == []


CATALOGUES = ("models/designs.py", "models/networks/")  # model catalogues: one builder after another
MAX_LINES = 450


def test_no_module_is_over_450_lines_except_model_catalogues():
    long = [f"{p.relative_to(ROOT)}: {n}" for p in sorted(ROOT.rglob("*.py"))
            if not str(p.relative_to(ROOT)).startswith(CATALOGUES)
            and (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert long == []
