"""latbench builds as an sdist and a wheel (the PEP 517 hooks `python -m build` calls) that hold the
package, its data, the suites, the console script and the pytest plugin, at latbench.__version__."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import latbench

ROOT = Path(__file__).resolve().parent.parent
BUILD = ("import sys; from setuptools import build_meta as b; "
         "print(getattr(b, 'build_' + sys.argv[1])(sys.argv[2]))")


def _build(kind: str, src: Path, out: Path) -> Path:
    out.mkdir(exist_ok=True)
    r = subprocess.run([sys.executable, "-c", BUILD, kind, str(out)], cwd=src, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return out / r.stdout.strip().splitlines()[-1]


def test_sdist_and_the_wheel_built_from_it_ship_the_package_suites_and_entry_points(tmp_path):
    src = tmp_path / "src"  # a copy: building writes build/ and *.egg-info into the tree
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "CHANGELOG.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "latbench", src / "latbench", symlinks=True, ignore=ignore)
    shutil.copytree(ROOT / "suites", src / "suites", ignore=ignore)

    sdist = _build("sdist", src, tmp_path / "dist")
    version = latbench.__version__
    assert sdist.name == f"latbench-{version}.tar.gz"
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked", filter="data")
    top = f"latbench-{version}"
    assert f"{top}/latbench/suites/g1.yaml" in names and f"{top}/CHANGELOG.md" in names

    wheel = _build("wheel", tmp_path / "unpacked" / top, tmp_path / "wheels")  # as pip does from an sdist
    assert wheel.name == f"latbench-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        files = set(z.namelist())
        entry_points = z.read(f"latbench-{version}.dist-info/entry_points.txt").decode()
        g1 = z.read("latbench/suites/g1.yaml")
    suites = {p.name for p in (ROOT / "suites").glob("*.yaml")}
    assert {f"latbench/suites/{s}" for s in suites} <= files
    assert g1 == (ROOT / "suites" / "g1.yaml").read_bytes()
    packages = {str(p.relative_to(ROOT).as_posix()) for p in (ROOT / "latbench").rglob("*.py")
                if "__pycache__" not in p.parts}
    assert packages <= files  # every module, including packages added later
    assert {"latbench/data/shufflenetv2_tables.csv", "latbench/pytest_plugin.py", "latbench/api.py"} <= files
    assert "latbench = latbench.__main__:main" in entry_points
    assert "[pytest11]" in entry_points and "latbench = latbench.pytest_plugin" in entry_points
    assert not any(f.startswith(("tests/", "results/")) for f in files)

    # installed from the wheel (no clone, another cwd): suites are listed and found by name
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                        str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-m", "latbench", "list", "suites"], cwd=elsewhere, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert str(target / "latbench" / "suites" / "g2.yaml") in r.stdout
    code = ("from pathlib import Path; from latbench.cli import resolve_suite; "
            "p = resolve_suite(Path('g2')); assert p.is_file() and 'site' in str(p), p")
    r = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
