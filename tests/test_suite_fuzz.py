"""Fuzzing suite loading: whatever the bytes, load_suite returns a Suite or raises SuiteError, and
`latbench run FILE` on an invalid file exits 2 with one 'error:' line on stderr and no traceback."""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import latbench.run.pipeline
from latbench.cli import app
from latbench.errors import SuiteError
from latbench.suite import Suite, expand, load_suite

SUITES = Path(__file__).resolve().parent.parent / "suites"
REAL = {p.name: p.read_bytes() for p in sorted(SUITES.glob("g*.yaml"))}
REAL_DATA = {name: yaml.safe_load(text) for name, text in REAL.items()}

# A fixed, fast sample by default; LATBENCH_FUZZ_EXAMPLES=2000 explores (randomly) for longer.
N = int(os.environ.get("LATBENCH_FUZZ_EXAMPLES", "0"))
FAST = settings(max_examples=N or 40, deadline=None, derandomize=not N, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
_DIR = Path(tempfile.mkdtemp(prefix="latbench-fuzz-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)

# Characters that mean something to YAML, so that mutations reach the parser's corners.
YAML_CHARS = st.sampled_from(list(":-[]{}&*!|>'\"#%@`,?\n \t0123456789.~<=") + ["\xe9", "\x00", "\ufeff"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["gpu", "arm", "c", "c1", "groups", "paper", "flops"]))
nested = st.recursive(scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.integers(0, 9)), kids, max_size=4)),
    max_leaves=20)


def check_load(data: bytes, name: str = "fuzz.yaml") -> Suite | None:
    """The property: a Suite (which then expands or fails cleanly) or a located SuiteError."""
    path = _DIR / name
    path.write_bytes(data)
    try:
        suite = load_suite(path)
    except SuiteError as exc:
        assert str(exc) and "\n" not in str(exc), str(exc)
        assert str(exc).startswith(str(path)), str(exc)
        return None
    assert isinstance(suite, Suite)
    for platform in ("gpu", "arm"):
        try:
            specs = expand(suite, platform, widths_mode="paper")  # flops mode counts: too slow here
        except SuiteError as exc:
            assert "\n" not in str(exc)
        else:
            assert all(s.source.startswith(str(path)) for s in specs)
    return suite


@FAST
@given(st.binary(max_size=600))
def test_random_bytes(data):
    check_load(data)


@FAST
@given(st.sampled_from(sorted(REAL)), st.floats(0, 1))
def test_truncated_real_suites(name, frac):
    text = REAL[name]
    check_load(text[: int(len(text) * frac)])


@FAST
@given(st.sampled_from(sorted(REAL)), st.data())
def test_mutated_real_suites(name, data):
    text = bytearray(REAL[name])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 8))
        insert = data.draw(st.text(YAML_CHARS, max_size=6)).encode("utf-8")
        text[at:at + cut] = insert
    check_load(bytes(text))


@FAST
@given(st.sampled_from(sorted(REAL)), st.data())
def test_line_shuffles_of_real_suites(name, data):
    lines = REAL[name].decode().splitlines(keepends=True)
    i, j = data.draw(st.integers(0, len(lines) - 1)), data.draw(st.integers(0, len(lines) - 1))
    lines[i], lines[j] = lines[j], lines[i]
    if data.draw(st.booleans()):
        del lines[data.draw(st.integers(0, len(lines) - 1))]
    check_load("".join(lines).encode())


@FAST
@given(nested)
def test_random_yaml_structures(value):
    check_load(yaml.safe_dump(value).encode())


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


@FAST
@given(st.sampled_from(sorted(REAL)), st.data())
def test_real_suites_with_a_subtree_replaced(name, data):
    """Structural mutations reach the deep checks (builder params, widths, groups, scales)."""
    doc = copy.deepcopy(REAL_DATA[name])
    path = data.draw(st.sampled_from([p for p in _paths(doc) if p]))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if data.draw(st.booleans()):
        parent[path[-1]] = data.draw(nested)
    elif isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    check_load(yaml.safe_dump(doc, sort_keys=False).encode())


# ---- the CLI: exit 2, one 'error:' line, no traceback, nothing measured ----------------------------

@pytest.fixture
def no_measuring(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a fuzzed suite reached the measurement")

    monkeypatch.setattr(latbench.run.pipeline, "run_group", refuse)


def _is_invalid(path: Path) -> bool:
    try:
        expand(load_suite(path), "arm")
    except SuiteError:
        return True
    return False


@settings(FAST, max_examples=N or 20)
@given(st.one_of(
    st.binary(max_size=300),
    st.builds(lambda v: yaml.safe_dump(v).encode(), nested),
    st.builds(lambda name, frac: REAL[name][: int(len(REAL[name]) * frac)], st.sampled_from(sorted(REAL)),
              st.floats(0, 0.95)),
))
def test_cli_exits_2_with_one_error_line(no_measuring, data):
    path = _DIR / "cli-fuzz.yaml"
    path.write_bytes(data)
    if not _is_invalid(path):  # a valid suite would be measured: not this test's business
        return
    result = CliRunner().invoke(app, ["run", str(path), "--results-dir", str(_DIR / "results")])
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), result.stderr
    assert "Traceback" not in result.stderr
    assert not (_DIR / "results").exists()  # nothing reserved before the input is known good
