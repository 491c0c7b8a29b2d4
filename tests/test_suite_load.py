"""Suite files: the real suites load and expand; every kind of bad input is ONE located line with a fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from latbench.errors import SuiteError
from latbench.suite import expand, load_suite
from latbench.suite.yamlnodes import MAX_BYTES, MAX_NODES

ROOT = Path(__file__).resolve().parent.parent
SUITES = ROOT / "suites"
G2 = (SUITES / "g2.yaml").read_text()


def line_with(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line containing `needle` (how a person would find it)."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    assert len(hits) >= nth, f"{needle!r} occurs {len(hits)} times"
    return hits[nth - 1]


def write(tmp_path: Path, text: str | bytes, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return p


def error_of(path: Path, platform: str | None = None, **expand_kw) -> SuiteError:
    with pytest.raises(SuiteError) as info:
        suite = load_suite(path)
        if platform:
            expand(suite, platform, **expand_kw)
    return info.value


def assert_located(exc: SuiteError, path: Path, line: int | None) -> str:
    """One line, starting 'file:line: ', with a fix; returns the text."""
    text = str(exc)
    assert "\n" not in text, text
    where = f"{path}:{line}" if line else str(path)
    assert exc.where == where, text
    assert text.startswith(where + ": "), text
    assert exc.hint, f"no fix offered: {text}"
    return text


# ---- the real suites ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, n_cases", [("g1", 4), ("g2", 4), ("g3", 5), ("g4", 4)])
def test_real_suites_load_and_expand(name, n_cases):
    path = SUITES / f"{name}.yaml"
    suite = load_suite(path)
    text = path.read_text()
    m = suite.model
    assert m.suite == name and m.experiment == name.upper() and len(m.cases) == n_cases
    assert m.scales == [1, 2, 4] and m.blocks == 10 and m.batch == 1
    assert re.fullmatch(r"[0-9a-f]{64}", suite.sha256)
    for platform in ("gpu", "arm"):
        specs = expand(suite, platform)
        assert len(specs) == n_cases * 3
        assert [s.scale for s in specs] == sorted(s.scale for s in specs)  # grouped by scale
        for i, spec in enumerate(specs[:n_cases]):
            # each case remembers the line of its '- name:' item
            assert spec.source == f"{path}:{line_with(text, '- name:', i + 1)}"
            assert spec.baseline_case == m.cases[0].name and spec.widths_mode == "paper"
        quick = expand(suite, platform, quick=True)
        assert len(quick) == n_cases and {s.scale for s in quick} == {1}


def test_scales_multiply_widths_and_per_scale_lists_are_taken_as_written():
    suite = load_suite(SUITES / "g2.yaml")
    widths = {(s.case, s.scale): s.param_dict["c"] for s in expand(suite, "arm")}
    assert widths[("g=1", 1)] == 64 and widths[("g=1", 2)] == 128 and widths[("g=1", 4)] == 256
    assert [widths[("g=8", k)] for k in (1, 2, 4)] == [184, 360, 720]  # the per-scale list


# ---- schema errors, each at its line --------------------------------------------------------------

# (id, text in g2.yaml, its replacement, text on the line the error must name, nth such line, must-say)
EDITS = [
    ("unknown top-level key", "blocks: 10", "blokcs: 10", "blokcs", 1,
     ["unknown key 'blokcs'", "did you mean 'blocks'"]),
    ("unknown case key", "  - name: g=2\n", "  - name: g=2\n    parms: {groups: 2}\n", "parms:", 1,
     ["cases[1].parms", "did you mean 'params'"]),
    ("unknown nested key", "input: {height: 56, width: 56}", "input:\n  height: 56\n  widht: 56", "widht", 1,
     ["did you mean 'width'"]),
    ("wrong type", "blocks: 10", 'blocks: "ten"', "blocks:", 1, ["blocks", "integer"]),
    ("bad value", "scales: [1, 2, 4]", "scales: [0]", "scales:", 1, ["positive"]),
    ("literal choice", "widths: paper", "widths: papr", "widths: papr", 1, ["'paper'", "'flops'"]),
    ("duplicate case names", "name: g=4", "name: g=2", "name: g=2", 2, ["'g=2'", "unique"]),
    ("duplicate YAML key", "blocks: 10", "blocks: 10\nbatch: 2\nblocks: 12", "blocks: 12", 1,
     ["duplicate key 'blocks'"]),
    ("unknown builder", "builder: g2_group_conv", "builder: g2_group_cnov", "builder:", 1,
     ["unknown builder 'g2_group_cnov'", "did you mean 'g2_group_conv'"]),
    ("unknown builder parameter", "params: {groups: 2}", "params:\n      groups: 2\n      grops: 3", "grops:", 1,
     ["unknown parameter 'grops'", "allowed: groups"]),
    ("unknown width name", "gpu: {c: 180}", "gpu: {d: 180}", "{d: 180}", 1, ["unknown width 'd'", "widths c"]),
    ("groups not dividing c", "params: {groups: 4}", "params: {groups: 3}", "gpu: {c: 256}", 1,
     ["c=256 is not divisible by groups=3", "multiple of 3"]),
    ("per-scale list too short", "[{c: 184}, {c: 360}, {c: 720}]", "[{c: 184}, {c: 360}]", "arm: [{c: 184}", 1,
     ["2 width sets for 3 scales"]),
    ("invalid YAML syntax", "blocks: 10", "blocks: [10", "batch: 1", 1, ["invalid YAML"]),  # where it is noticed
    ("unreadable scalar", "experiment: G2", "experiment: 2001-13-45", "experiment:", 1,  # a date that is none
     ["cannot read the value", "quote"]),
]


@pytest.mark.parametrize("old, new, marker, nth, says", [e[1:] for e in EDITS], ids=[e[0] for e in EDITS])
def test_bad_suite_is_one_located_line_with_a_fix(tmp_path, old, new, marker, nth, says):
    assert old in G2
    src = G2.replace(old, new, 1)
    p = write(tmp_path, src)
    text = assert_located(error_of(p), p, line_with(src, marker, nth))
    for fragment in says:
        assert fragment in text


def test_bad_builder_parameter_value_without_widths(tmp_path):
    # no widths in the case: the values are still checked at load time, not later in flops mode
    src = ("experiment: X\nbuilder: g1_conv_pair\nwidths: flops\nflops_target: {gpu: 1.0e+6}\n"
           "cases:\n  - name: a\n    params:\n      ratio: -1\n")
    p = write(tmp_path, src)
    text = assert_located(error_of(p), p, line_with(src, "ratio:"))
    assert "ratio" in text and "greater than 0" in text


FLOPS_SUITE = ("experiment: X\nbuilder: g1_conv_pair\nwidths: flops\nflops_target: {{gpu: {}}}\n"
               "cases:\n  - name: a\n    params: {{ratio: 2}}\n")


@pytest.mark.parametrize("target", ["0", "-5", "0.1", ".inf", ".nan"])
def test_flops_target_must_be_a_positive_finite_number(tmp_path, target):
    p = write(tmp_path, FLOPS_SUITE.format(target))
    text = assert_located(error_of(p), p, 4)
    assert "flops_target.gpu" in text


def test_unreachable_flops_target_is_a_suite_error(tmp_path):
    p = write(tmp_path, FLOPS_SUITE.format("1.0e+30"))
    text = assert_located(error_of(p, "gpu"), p, 6)
    assert "no width up to" in text and "lower flops_target" in text


def test_missing_platform_widths_at_expand(tmp_path):
    src = G2.replace("widths: {gpu: {c: 180}, arm: {c: 90}}", "widths: {gpu: {c: 180}}")
    p = write(tmp_path, src)
    suite = load_suite(p)  # loading is fine: the platform is chosen at run time
    with pytest.raises(SuiteError) as info:
        expand(suite, "arm")
    text = assert_located(info.value, p, line_with(src, "name: g=2"))
    assert "no widths for platform 'arm'" in text and "--widths flops" in text


def test_flops_mode_infeasible_names_best_widths_and_drift(tmp_path):
    p = SUITES / "g2.yaml"
    exc = error_of(p, "arm", widths_mode="flops")
    text = assert_located(exc, p, line_with(G2, "name: g=2"))
    # c*c/2 = 64*64 needs c = 90.5: the nearest multiples of 2 are 90 (-1.1 %) and 92 (+3.3 %)
    assert "c=90" in text and "-1.1%" in text and "flops_tolerance 1.0%" in text


# ---- file-level errors ------------------------------------------------------------------------

def test_missing_file(tmp_path):
    p = tmp_path / "nope.yaml"
    text = assert_located(error_of(p), p, None)
    assert "no such suite file" in text


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n"])
def test_empty_file(tmp_path, content):
    p = write(tmp_path, content)
    assert "empty" in assert_located(error_of(p), p, None)


@pytest.mark.parametrize("content, kind", [("- a\n- b\n", "list"), ("just words\n", "str"), ("42\n", "int")])
def test_not_a_mapping(tmp_path, content, kind):
    p = write(tmp_path, content)
    assert f"not a {kind}" in assert_located(error_of(p), p, 1)


def test_bad_indentation(tmp_path):
    src = "suite: x\nexperiment: X\n  builder: g2_group_conv\n"
    p = write(tmp_path, src)
    assert "invalid YAML" in assert_located(error_of(p), p, 3)


def test_non_utf8_bytes(tmp_path):
    p = write(tmp_path, G2.encode() + b"\nnote: caf\xe9\n")
    text = assert_located(error_of(p), p, None)
    assert "not UTF-8" in text and str(len(G2.encode()) + 10) in text  # the offending byte offset


def test_control_characters_are_refused(tmp_path):
    p = write(tmp_path, "suite: x\nexperiment: \x00\n")
    assert "invalid YAML" in assert_located(error_of(p), p, 2)


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/object/new:os.system"])
def test_python_tags_never_construct_anything(tmp_path, tag):
    marker = tmp_path / "pwned"
    src = G2 + f'\nnote: {tag} ["touch {marker}"]\n'
    p = write(tmp_path, src)
    text = assert_located(error_of(p), p, line_with(src, "note:"))
    assert "not allowed" in text
    assert not marker.exists()


def test_python_object_tag_on_a_mapping(tmp_path):
    src = "!!python/object:latbench.records.Ratio {value: 1}\n"
    p = write(tmp_path, src)
    assert "not allowed" in assert_located(error_of(p), p, 1)


def test_alias_bomb_is_refused_quickly(tmp_path):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")  # 9**9 values in all
    p = write(tmp_path, "\n".join(lines) + "\n")
    text = str(error_of(p))
    assert "\n" not in text and f"more than {MAX_NODES} values" in text and text.startswith(f"{p}:")


@pytest.mark.parametrize("depth, line", [(100, 1), (700, None)])  # our limit; PyYAML's recursion
def test_deep_nesting_is_refused(tmp_path, depth, line):
    p = write(tmp_path, "cases: " + "[" * depth + "]" * depth + "\n")
    assert "nested" in assert_located(error_of(p), p, line)


def test_huge_file_is_refused(tmp_path):
    p = write(tmp_path, G2 + "# " + "x" * MAX_BYTES + "\n")
    text = str(error_of(p))
    assert "\n" not in text and text.startswith(str(p)) and "more than a suite may have" in text

