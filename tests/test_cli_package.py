"""The cli/ package (issue 20): one module per command family, the CLI only parses, calls the core and
renders; help and `latbench list suites` import no torch; help without patching typer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "latbench" / "cli"
COMMANDS = ["run", "list", "env", "report", "audit", "compare", "gate", "calibrate", "merge", "ab", "predict"]


def _imports(path: Path) -> set[str]:
    """The modules a file imports, at any depth ('from latbench import ab' counts as latbench.ab)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "latbench":
                names.update(f"latbench.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_help_and_listing_suites_import_no_torch():
    """`latbench --help`, every `CMD --help` and `latbench list suites` in one process: torch stays out
    (it takes seconds to import; only running, `env`, `audit` and listing builders need it)."""
    argvs = [["--help"], ["list", "suites"], *[[c, "--help"] for c in COMMANDS], ["-h"], ["run", "-h"]]
    code = f"""
import contextlib, io, sys
from latbench.cli import app
for argv in {argvs!r}:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            app(argv, prog_name="latbench")
        except SystemExit as exc:
            assert exc.code in (0, None), (argv, exc.code)
    assert out.getvalue(), argv
    if "torch" in sys.modules:
        sys.exit(f"latbench {{' '.join(argv)}} imported torch")
print("no torch")
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "COLUMNS": "80", "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0 and r.stdout.strip() == "no torch", r.stderr[-2000:] or r.stdout


def test_python_dash_m_latbench_list_suites_imports_no_torch():
    code = ("import runpy, sys; sys.argv = ['latbench', 'list', 'suites']\n"
            "try:\n    runpy.run_module('latbench', run_name='__main__')\n"
            "except SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
            "print('torch' in sys.modules, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.stderr.strip().splitlines()[-1] == "False", r.stderr
    assert "g2.yaml" in r.stdout


def test_one_module_per_command_family_none_long():
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in CLI.glob("*.py")}
    assert {"__init__.py", "common.py", "run.py", "results.py", "ab.py", "info.py", "report.py"} <= set(sizes)
    assert max(sizes.values()) <= 250, sizes


def test_the_cli_reaches_the_run_wing_only_through_latbench_run():
    private = ("latbench.session", "latbench.runner", "latbench.repeats", "latbench.resume", "latbench.run.")
    found = {p.name: sorted(i for i in _imports(p) if i.startswith(private)) for p in CLI.glob("*.py")}
    assert {k: v for k, v in found.items() if v} == {}
    # and none of the core work it used to do: pydantic internals, typer internals, YAML
    for p in CLI.glob("*.py"):
        imports = _imports(p)
        assert not {i for i in imports if i.startswith(("pydantic", "typer._click", "yaml", "pandas"))}, p.name


def test_help_needs_no_patched_typer():
    """Readable help comes from the app's own command classes; typer's classes stay as shipped."""
    from typer.core import TyperArgument, TyperCommand, TyperGroup

    import latbench.cli  # noqa: F401

    for cls, method in ((TyperArgument, "display_type_rich"), (TyperCommand, "get_help_option"),
                        (TyperGroup, "get_help_option")):
        fn = getattr(cls, method, None)
        assert fn is None or not fn.__module__.startswith("latbench"), (cls, method)


def test_resolve_suite_stays_importable_from_the_cli():
    from latbench.cli import app, resolve_suite
    from latbench.suite.catalog import resolve_suite as core

    assert resolve_suite is core and app.registered_commands
    assert [c.name or c.callback.__name__ for c in app.registered_commands] == COMMANDS


def test_catalog_lists_suites_as_data():
    from latbench.suite.catalog import SHIPPED_SUITES, list_suites

    entries = {e.name: e for e in list_suites()}
    assert {"g1", "g2", "g3", "g4"} <= set(entries)
    assert entries["g2"].about and "\n" not in entries["g2"].about
    assert SHIPPED_SUITES.is_dir() and (SHIPPED_SUITES / "g1.yaml").is_file()


def test_catalog_lists_an_unreadable_suite_instead_of_failing(tmp_path, monkeypatch):
    from latbench.suite import catalog

    (tmp_path / "bad.yaml").write_text("description: [unclosed\n")
    (tmp_path / "list.yaml").write_text("- just a list\n")
    monkeypatch.setattr(catalog, "suite_dirs", lambda: [tmp_path])
    entries = {e.name: e.about for e in catalog.list_suites()}
    assert entries["bad"].startswith("(unreadable: ") and entries["list"] == ""


def test_builders_are_described_as_data():
    from latbench.models import REQUIRED, describe_builders

    infos = {b.name: b for b in describe_builders()}
    assert "g2_group_conv" in infos and not any(n.startswith("_") for n in infos)
    user = dict(infos["user"].params)
    assert user["factory"] is REQUIRED and user["kwargs"] == {}  # a default_factory is called
    assert "factory" in infos["user"].required
    assert infos["g2_group_conv"].width_names


@pytest.mark.parametrize("cmd", ["run", "list", "gate"])
def test_help_lines_name_no_python_types(cmd):
    from typer.testing import CliRunner

    from latbench.cli import app

    r = CliRunner().invoke(app, [cmd, "-h"], env={"COLUMNS": "100"})
    assert r.exit_code == 0 and "Show this help and exit." in r.output
    assert "<bool>" not in r.output and "<list[" not in r.output and "<str>" not in r.output
