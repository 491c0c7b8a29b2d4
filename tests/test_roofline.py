"""Roofline ceilings (fake probes, cache) and per-row columns; the op breakdown on a tiny real network."""

import functools
import json
import math

import pytest
import torch

from latbench import roofline
from fakes import fp32_settings_kept
from latbench.devices import CpuDevice, float32_math
from latbench.cost import build_network
from latbench.opbreakdown import FLOP_OP_NAMES, profile_forward


def fake_probes(calls):
    def gemm(device, dtype):
        calls.append("gemm")
        return {"peak_flops_per_s": 100e9, "gemm_n": 8}

    def copy(device):
        calls.append("copy")
        return {"bandwidth_bytes_per_s": 20e9}

    return gemm, copy


def test_ceilings_are_probed_once_per_fingerprint_and_cached(tmp_path):
    calls, path = [], tmp_path / "roofline.json"
    gemm, copy = fake_probes(calls)
    c1, cached1 = roofline.measure_ceilings(CpuDevice(), "Fake CPU", 1, gemm_probe=gemm, copy_probe=copy, path=path)
    c2, cached2 = roofline.measure_ceilings(CpuDevice(), "Fake CPU", 1, gemm_probe=gemm, copy_probe=copy, path=path)
    assert (cached1, cached2) == (False, True) and calls == ["gemm", "copy"]
    assert c2 == c1 and c1.peak_flops_per_s == 100e9 and c1.ridge_flops_per_byte == 5.0
    c3, cached3 = roofline.measure_ceilings(CpuDevice(), "Fake CPU", 2, gemm_probe=gemm, copy_probe=copy, path=path)
    assert not cached3 and c3.key != c1.key  # another thread count is another fingerprint
    assert len(json.loads(path.read_text())) == 2


def test_cache_location_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LATBENCH_CACHE", str(tmp_path))
    assert roofline.cache_file() == tmp_path / "roofline.json"


def test_row_columns_compute_and_memory_bound():
    c = roofline.Ceilings(100e9, 20e9, "cpu", "x", 1, "float32", "k", "t", {})
    # compute-bound: 1 GFLOP, 10 MB -> bound = max(10 ms, 0.5 ms) = 10 ms; measured 40 ms -> 25 %
    cols = roofline.row_columns(1e9, 10e6, 40.0, c)
    assert cols["roofline_bound_ms"] == pytest.approx(10.0) and cols["roofline_pct"] == pytest.approx(25.0)
    assert cols["achieved_flops_per_s"] == pytest.approx(25e9)
    assert cols["achieved_bytes_per_s"] == pytest.approx(0.25e9)
    assert cols["arithmetic_intensity_flops_per_byte"] == pytest.approx(100.0)
    # memory-bound: 1 MFLOP, 200 MB -> 10 ms from bandwidth
    assert roofline.row_columns(1e6, 200e6, 20.0, c)["roofline_bound_ms"] == pytest.approx(10.0)


def test_row_columns_without_ceilings_or_latency():
    cols = roofline.row_columns(1e9, 1e6, math.nan, None)
    assert cols["arithmetic_intensity_flops_per_byte"] == 1000.0
    assert cols["roofline_bound_ms"] is None and cols["achieved_flops_per_s"] is None


def test_real_probes_are_sane_and_short():
    g = roofline.probe_gemm(CpuDevice(), n=64, budget_s=0.02)
    c = roofline.probe_copy(CpuDevice(), budget_s=0.02, sizes=(1 << 16,))
    assert 1e6 < g["peak_flops_per_s"] < 1e15 and 1e6 < c["bandwidth_bytes_per_s"] < 1e15


def test_flop_ops_are_the_flop_counters_registry():
    assert "aten::convolution" in FLOP_OP_NAMES and "aten::mm" in FLOP_OP_NAMES
    assert "aten::relu_" not in FLOP_OP_NAMES and "aten::add_" not in FLOP_OP_NAMES


def _profile(relu, shortcut):
    torch.manual_seed(0)
    model, x = build_network("g4_bottleneck", {"relu": relu, "shortcut": shortcut, "c": 16}, 2, 1, 8, 8, "cpu")
    return profile_forward(functools.partial(model, x), CpuDevice(), forwards=2)


def test_profile_counts_ops_and_zero_flop_share():
    full, bare = _profile(True, True), _profile(False, False)
    # per block: 3 convs + 3 ReLU + 1 add = 7 ops; bare: 3 convs. 2 blocks.
    assert full["op_count_per_forward"] == 14 and bare["op_count_per_forward"] == 6
    assert 0 < full["zero_flop_time_pct"] < 100
    assert bare["zero_flop_time_pct"] == 0


def test_probes_take_the_device_object(tmp_path):
    calls = []
    gemm, copy = fake_probes(calls)
    dev = CpuDevice()
    c, _ = roofline.measure_ceilings(dev, "Fake CPU", 1, gemm_probe=gemm, copy_probe=copy, path=tmp_path / "r.json")
    assert c.device == "cpu" and c.key == roofline.ceiling_key("cpu", "Fake CPU", 1, "float32", "ieee")
    assert roofline.probe_copy(dev, budget_s=0.01, sizes=(1 << 12,))["bandwidth_bytes_per_s"] > 0


# ---- ceilings per dtype and math mode (issue 13 item 7) -------------------------------------------

# A GPU as the probes see it: strict FP32 60 TFLOP/s, TF32 8x that, bf16/fp16 16x; HBM 3 TB/s.
FP32, TF32, HALF, HBM = 60e12, 480e12, 960e12, 3e12


def hw_probes(calls):
    def gemm(device, dtype):
        tf32 = float32_math()["matmul"] == "tf32"  # what cuBLAS reads (fp32_precision on torch >= 2.9)
        calls.append((str(dtype).removeprefix("torch."), tf32))
        return {"peak_flops_per_s": HALF if dtype in (torch.bfloat16, torch.float16) else TF32 if tf32 else FP32}

    def copy(device):
        return {"bandwidth_bytes_per_s": HBM}

    return gemm, copy


@pytest.fixture
def gpu(monkeypatch):
    """A GPU device in torch's default math settings (cuDNN convs TF32, matmuls IEEE), put back after."""
    from latbench.devices import CudaDevice

    monkeypatch.setattr(CudaDevice, "dtype_skip", lambda self, dtype: None)
    with fp32_settings_kept():
        torch.backends.cudnn.allow_tf32 = True  # cuDNN's default: convs run TF32
        torch.backends.cuda.matmul.allow_tf32 = False  # matmul's default
        yield CudaDevice()


def test_float32_rows_are_held_to_tf32_only_when_convs_and_matmuls_both_run_it(gpu, tmp_path):
    """With both in TF32 a conv row at 70 % of the TF32 peak reads 70 % (it read 560 % against a
    strict-FP32 probe). With torch's defaults (convs TF32, matmuls IEEE) a Linear-heavy float32 model
    runs IEEE matmuls: it was held to the TF32 peak (reading 8x less efficient than it is); now IEEE."""
    calls = []
    gemm, copy = hw_probes(calls)
    kw = dict(gemm_probe=gemm, copy_probe=copy, path=tmp_path / "r.json")
    defaults, _, _ = roofline.measure_ceiling_set(gpu, "Fake H100", 1, ["float32"], **kw)
    assert defaults.for_dtype("float32").label == "float32/ieee" and calls == [("float32", False)]
    linear_ms = 1e3 * 1e12 / (0.7 * FP32)  # a Linear-heavy row at 70 % of what its IEEE matmuls reach
    assert roofline.row_columns(1e12, 1e9, linear_ms, defaults, "float32")["roofline_pct"] == pytest.approx(70.0)
    torch.backends.cuda.matmul.allow_tf32 = True
    calls.clear()
    cs, cached, missing = roofline.measure_ceiling_set(gpu, "Fake H100", 1, ["float32", "bfloat16", "float32"], **kw)
    assert calls == [("float32", True), ("bfloat16", True)] and missing == {} and not any(cached.values())
    assert float32_math()["matmul"] == "tf32"  # restored as it was
    assert cs.for_dtype("float32").label == "float32/tf32" and cs.for_dtype("float32").peak_flops_per_s == TF32
    assert cs.for_dtype("bfloat16").label == "bfloat16" and cs.for_dtype("bfloat16").peak_flops_per_s == HALF
    flops, mac = 1e12, 1e9  # compute-bound
    for dtype, peak in (("float32", TF32), ("bfloat16", HALF)):
        latency_ms = 1e3 * flops / (0.7 * peak)  # the row runs at 70 % of its real peak
        cols = roofline.row_columns(flops, mac, latency_ms, cs, dtype)
        assert cols["roofline_pct"] == pytest.approx(70.0) and cols["roofline_ceiling"] == cs.for_dtype(dtype).label
        assert roofline.row_warnings(cols) == []
    meta = cs.metadata()
    assert meta["peak_flops_per_s"] == TF32 and set(meta["by_ceiling"]) == {"float32/tf32", "bfloat16"}


def test_strict_fp32_when_tf32_is_off_and_each_math_mode_is_its_own_cache_entry(gpu, tmp_path, monkeypatch):
    calls, path = [], tmp_path / "r.json"
    gemm, copy = hw_probes(calls)
    kw = dict(gemm_probe=gemm, copy_probe=copy, path=path)
    torch.backends.cuda.matmul.allow_tf32 = True
    tf32, _ = roofline.measure_ceilings(gpu, "Fake H100", 1, "float32", **kw)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    ieee, cached = roofline.measure_ceilings(gpu, "Fake H100", 1, "float32", **kw)
    assert not cached and (tf32.label, ieee.label) == ("float32/tf32", "float32/ieee")
    assert (tf32.peak_flops_per_s, ieee.peak_flops_per_s) == (TF32, FP32) and tf32.key != ieee.key
    again, cached = roofline.measure_ceilings(gpu, "Fake H100", 1, "float32", **kw)
    assert cached and again == ieee and len(calls) == 2 and len(json.loads(path.read_text())) == 2


def test_the_fp32_precision_api_is_read_and_set_without_crashing(gpu, tmp_path):
    """torch >= 2.9: once a user sets torch.backends.cuda.matmul.fp32_precision (or cudnn.conv's),
    reading the old allow_tf32 flags raises ('mix of the legacy and new APIs'); latbench read them."""
    if not hasattr(torch.backends.cudnn, "conv"):
        pytest.skip("this torch has no fp32_precision settings (< 2.9)")
    from latbench.devices import float32_settings

    torch.backends.cuda.matmul.fp32_precision = "tf32"
    torch.backends.cudnn.conv.fp32_precision = "tf32"
    with pytest.raises(RuntimeError, match="legacy and new"):
        torch.backends.cuda.matmul.allow_tf32  # noqa: B018 - what torch does: the old code crashed here
    assert float32_math() == {"conv": "tf32", "matmul": "tf32"} and gpu.math_mode("float32") == "tf32"
    settings = float32_settings()
    assert settings["matmul_fp32_math"] == "tf32" and settings["matmul_allow_tf32"] is None
    calls = []
    gemm, copy = hw_probes(calls)
    c, _ = roofline.measure_ceilings(gpu, "Fake H100", 1, "float32", gemm_probe=gemm, copy_probe=copy,
                                     path=tmp_path / "r.json")
    assert c.label == "float32/tf32" and c.peak_flops_per_s == TF32
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"  # put back through the new API
    torch.backends.cudnn.conv.fp32_precision = "ieee"  # convs IEEE, matmuls TF32: held to IEEE
    assert gpu.math_mode("float32") == "ieee"
    with roofline.math_mode_set("ieee"):
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"


def test_a_dtype_the_device_cannot_run_has_no_ceiling_and_its_rows_no_bound(tmp_path):
    calls = []
    gemm, copy = hw_probes(calls)

    def no_half_gemm(device, dtype):
        if dtype == torch.float16:
            raise RuntimeError('"addmm_impl_cpu_" not implemented for \'Half\'')
        return gemm(device, dtype)

    cs, _, missing = roofline.measure_ceiling_set(CpuDevice(), "Fake CPU", 1, ["float32", "float16"],
                                                  gemm_probe=no_half_gemm, copy_probe=copy, path=tmp_path / "r.json")
    assert cs.for_dtype("float32").label == "float32/ieee" and "not implemented" in missing["float16"]
    cols = roofline.row_columns(1e9, 1e6, 1.0, cs, "float16")
    assert cols["roofline_bound_ms"] is None and cols["roofline_ceiling"] is None


def test_a_row_above_its_ceiling_is_warned_not_clamped():
    from latbench.run.rows import Row, with_roofline

    c = roofline.Ceilings(100e9, 20e9, "cuda", "x", 1, "float32", "k", "t", {}, math_mode="ieee")
    row = Row(flops=1e9, mac_bytes=1e6, latency_ms=5.0, status="ok", dtype="float32")
    row = with_roofline(row, roofline.CeilingSet({"float32": c})).to_dict()
    assert row["roofline_pct"] == pytest.approx(200.0)  # 10 ms bound, 5 ms measured: reported as is
    assert row["warnings"].startswith("above roofline: 200% of the float32/ieee ceiling")


def test_the_l2_sized_copy_is_timed_on_the_device_in_batches():
    """A 4 MiB copy takes ~1 us on a GPU; a host clock around one call and a synchronize (here: a
    host that wakes 15 us after the GPU drains, a 4 us launch) measured the overhead, never the
    L2's bandwidth. The probe now asks the device: events around a batch run from a full queue."""
    from fakes import FakeClock, FakeCuda

    from latbench.devices import CudaDevice

    cuda = FakeCuda(FakeClock(), sync_wake_s=15e-6)
    copy = cuda.work(1e-6, launch_s=4e-6)  # 8 MiB moved (4 read + 4 written) in 1 us: 8.4 TB/s
    dev = CudaDevice(cuda=cuda)
    rate = roofline._best_rate(copy, 8 << 20, dev, budget_s=0.01)
    assert rate == pytest.approx((8 << 20) / 1e-6)
    assert cuda.events_recorded >= 2 * 3


def test_time_calls_on_the_cpu_is_the_host_clock():
    calls = []
    assert CpuDevice().time_calls(lambda: calls.append(1), 5) >= 0 and calls == [1] * 5
