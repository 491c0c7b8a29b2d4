"""Issue 12, item 4: a fingerprint that tells machines apart, and the gate refusing across machines."""

from __future__ import annotations

import json

from resultfiles import FINGERPRINT, write_side
from typer.testing import CliRunner

from latbench.cli import app
from latbench.env import allocator, cpu_boost, cpu_caches, cpu_identity, fingerprint, machine_identity, torch_libraries

runner = CliRunner()
ZEN2 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 49
model name\t: AMD EPYC
stepping\t: 0
microcode\t: 0x830104d
cache size\t: 512 KB
flags\t\t: fpu sse sse2 avx avx2 fma sha_ni

processor\t: 1
vendor_id\t: AuthenticAMD
"""
ZEN4 = ZEN2.replace("23", "25").replace("49", "17").replace("sha_ni", "avx512f avx512_bf16 avx512_vnni sha_ni")
GRAVITON = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes sve sveasimd i8mm bf16 svebf16
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd40
CPU revision\t: 1
"""


def test_two_epyc_generations_differ_in_family_model_microcode_and_isa():
    a, b = cpu_identity(ZEN2, sysfs=__import__("pathlib").Path("/nonexistent")), cpu_identity(ZEN4)
    assert a["cpu_vendor"] == "AuthenticAMD" and a["cpu_family"] == "23" and a["cpu_model_id"] == "49"
    assert a["cpu_microcode"] == "0x830104d" and a["cpu_caches"] == "512 KB"
    assert a["cpu_isa"] == "avx2 fma" and "avx512f" in b["cpu_isa"] and "avx512_vnni" in b["cpu_isa"]
    assert {k for k in a if a[k] != b[k]} >= {"cpu_family", "cpu_model_id", "cpu_isa"}


def test_arm_cpuinfo_and_sysfs_caches_and_boost(tmp_path):
    arm = cpu_identity(GRAVITON, sysfs=tmp_path)
    assert arm["cpu_vendor"] == "0x41" and arm["cpu_model_id"] == "0xd40" and arm["cpu_stepping"] == "1"
    assert {"sve", "asimd", "i8mm", "bf16"} <= set(arm["cpu_isa"].split()) and arm["cpu_microcode"] is None
    for i, (level, kind, size) in enumerate([("1", "Data", "32K"), ("1", "Instruction", "32K"), ("2", "Unified", "1024K")]):
        d = tmp_path / "cpu0" / "cache" / f"index{i}"
        d.mkdir(parents=True)
        for f, v in (("level", level), ("type", kind), ("size", size)):
            (d / f).write_text(v + "\n")
    assert cpu_caches(tmp_path) == "L1d 32K, L1i 32K, L2 1024K"
    assert cpu_boost(tmp_path) is None
    (tmp_path / "cpufreq").mkdir()
    (tmp_path / "cpufreq" / "boost").write_text("0\n")
    assert cpu_boost(tmp_path) == "off"


def test_torch_library_versions_are_parsed_and_the_live_fingerprint_has_every_field():
    libs = torch_libraries("  - Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build\n"
                           "  - Intel(R) MKL-DNN v3.12.0 (Git Hash 80afa)\n")
    assert libs == {"mkl_version": "2024.2-Product", "onednn_version": "v3.12.0"}
    fp = fingerprint()
    ident = machine_identity({"device": "cpu", "threads": 1, "fingerprint": fp})
    for f in ("cpu_vendor", "cpu_family", "cpu_model_id", "cpu_stepping", "cpu_microcode", "cpu_caches", "cpu_isa",
              "cpu_boost", "mkl_version", "onednn_version", "memory_bytes", "torch", "cudnn_version", "allocator"):
        assert f in fp and f in ident


def _gate(base, cand, *extra):
    args = ["gate", *sum((["-b", str(p)] for p in base), []), *sum((["-c", str(p)] for p in cand), []), *extra]
    return runner.invoke(app, [str(a) for a in args])


def test_gate_refuses_two_machines_both_called_amd_epyc_naming_the_field(tmp_path):
    cases = {"g=1": 10.0}
    base = write_side(tmp_path / "b", cases, 2, seed=1, fingerprint={**FINGERPRINT, **cpu_identity(ZEN2)})
    cand = write_side(tmp_path / "c", cases, 2, seed=2, fingerprint={**FINGERPRINT, **cpu_identity(ZEN4)})
    r = _gate(base, cand)
    flat = r.stderr.replace("\n", " ")
    assert r.exit_code == 2 and "cpu_family" in flat and "cpu_model_id" in flat and "--allow-different-machine" in flat
    r = _gate(base, cand, "--allow-different-machine", "--json")
    assert r.exit_code == 0, r.output
    assert "relaxed: --allow-different-machine" in json.loads(r.stdout)["gate"]["summary"]


def test_older_files_with_fewer_fields_are_compared_on_the_fields_both_have(tmp_path):
    cases = {"g=1": 10.0}
    old = write_side(tmp_path / "b", cases, 2, seed=1)  # FINGERPRINT: cpu_model, torch, gpus only
    new = write_side(tmp_path / "c", cases, 2, seed=2, fingerprint={**FINGERPRINT, **cpu_identity(ZEN4)})
    r = _gate(old, new, "--json")
    assert r.exit_code == 0, r.output
    flat = r.stderr.replace("\n", " ")
    assert "compared on the" in flat and "cpu_model_id" in flat and "lack" in flat
    r = _gate(old, write_side(tmp_path / "d", cases, 2, seed=3, fingerprint={**FINGERPRINT, "torch": "2.14"}))
    assert r.exit_code == 2 and "torch" in r.stderr


def test_the_allocator_is_named_with_the_settings_that_change_its_speed():
    jemalloc = "7f00-7f10 r-xp 00000000 08:01 12 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n"
    assert allocator("", {}) == "glibc"
    assert allocator(jemalloc, {"MALLOC_CONF": "background_thread:true", "HOME": "/root"}) == \
        "jemalloc MALLOC_CONF=background_thread:true"
    tuned = allocator("", {"MALLOC_TRIM_THRESHOLD_": "100000000000", "MALLOC_MMAP_THRESHOLD_": "33554432",
                           "GLIBC_TUNABLES": "glibc.rtld.nns=2:glibc.malloc.top_pad=1"})
    assert tuned == "glibc MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=100000000000 glibc.malloc.top_pad=1"
    assert allocator("/usr/lib/libtorch_cpu.so\n", {"MALLOC_ARENA_MAX": ""}) == "glibc"  # empty: not set


def test_gate_refuses_runs_on_two_allocators_naming_the_field(tmp_path):
    """glibc's defaults against freed memory kept: 22.3 vs 16.9 ms for MobileNetV2 on the development
    machine (docs/prediction.md). A gate across allocators compares allocators, not code."""
    cases = {"g=1": 10.0}
    base = write_side(tmp_path / "b", cases, 2, seed=1, fingerprint={**FINGERPRINT, "allocator": "glibc"})
    cand = write_side(tmp_path / "c", cases, 2, seed=2, fingerprint={**FINGERPRINT, "allocator": "jemalloc"})
    r = _gate(base, cand)
    assert r.exit_code == 2 and "allocator" in r.stderr and "--allow-different-machine" in r.stderr.replace("\n", " ")
    same = write_side(tmp_path / "d", cases, 2, seed=3, fingerprint={**FINGERPRINT, "allocator": "glibc"})
    assert _gate(base, same, "--json").exit_code == 0
