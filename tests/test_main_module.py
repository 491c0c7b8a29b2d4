"""`python -m latbench` in an interpreter without latbench's dependencies: one located line, exit 2."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_missing_dependency_is_one_line_and_exit_2():
    code = "import sys, runpy; sys.modules['typer'] = None; sys.argv = ['latbench', '--help']; " \
           "runpy.run_module('latbench', run_name='__main__')"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "latbench needs 'typer'" in r.stderr
