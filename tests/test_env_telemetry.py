"""Fingerprint and telemetry with a fake NVML and fake psutil: values, flags, graceful degradation."""

import json

from typer.testing import CliRunner

from fakes import FakeClock, FakeNVML, FakePsutil
from latbench import env
from latbench.cli import app
from latbench.telemetry import TELEMETRY_COLUMNS, TelemetrySampler


def test_gpus_reads_every_field_from_nvml():
    nv = FakeNVML(unsupported=("nvmlDeviceGetMigMode",))
    [gpu] = env.gpus(nv)
    assert gpu["name"] == "NVIDIA Fake A10" and gpu["uuid"] == "GPU-0000-fake" and gpu["driver"] == "550.54.15"
    assert gpu["sm_clock_max_mhz"] == 1950 and gpu["power_limit_w"] == 300 and gpu["persistence_mode"] is True
    assert gpu["mig_mode"] is None  # unsupported query: None, not a crash
    assert nv.inits == nv.shutdowns == 1


def test_no_nvml_means_no_gpus():
    assert env.gpus(FakeNVML(fail_init=True)) == []


def test_fingerprint_carries_gpus_and_threads():
    fp = env.fingerprint(FakeNVML())
    assert fp["gpus"][0]["name"] == "NVIDIA Fake A10"
    assert fp["torch_num_threads"] >= 1 and fp["python"] and fp["cpu_model"]


def test_env_command_json_and_table():
    r = CliRunner().invoke(app, ["env", "--json"])
    assert r.exit_code == 0, r.output
    fp = json.loads(r.stdout)
    assert {"cpu_model", "torch", "cuda_version", "gpus", "torch_num_threads", "cpu_governor"} <= set(fp)
    r = CliRunner().invoke(app, ["env"])
    assert r.exit_code == 0 and "cpu_model" in r.stdout and "gpus" in r.stdout


def _sampler(ps, clock, **kw):
    return TelemetrySampler(threads=1, interval_s=None, psutil_mod=ps, clock=lambda: clock.now_s, **kw)


def _cpu_window(tmp_path, seconds, own_cores, other_cores):
    ps, clock = FakePsutil(), FakeClock()
    s = _sampler(ps, clock, thermal_root=tmp_path)
    s.start()
    clock.advance(seconds)
    ps.tick(seconds, own_cores=own_cores, other_cores=other_cores)
    return s.stop()


def test_quiet_cpu_window_is_not_flagged(tmp_path):
    t = _cpu_window(tmp_path, 2.0, own_cores=1.0, other_cores=0.1)
    assert t.cpu_freq_mhz == 3000.0 and abs(t.cpu_load_pct - 100 * 1.1 / 4) < 1e-6
    assert abs(t.other_load_cores - 0.1) < 1e-9
    assert not t.throttled and not t.under_load and t.notes == ()
    assert t.gpu_sm_clock_mhz is None  # CPU run: no GPU columns
    assert set(t.columns()) == set(TELEMETRY_COLUMNS)


def test_other_processes_flag_under_load(tmp_path):
    t = _cpu_window(tmp_path, 1.0, own_cores=1.0, other_cores=2.0)
    assert t.under_load and not t.throttled
    assert any(n.startswith("under load: other processes kept 2.0 of 4 cores") for n in t.notes)


def test_cpu_thermal_events_and_clock_drop_flag_throttled(tmp_path):
    counter = tmp_path / "cpu0" / "thermal_throttle" / "core_throttle_count"
    counter.parent.mkdir(parents=True)
    counter.write_text("5\n")
    ps, clock = FakePsutil(), FakeClock()
    s = _sampler(ps, clock, thermal_root=tmp_path)
    s.start()
    counter.write_text("7\n")
    ps.freqs_mhz = [2000.0] * 4  # 3000 -> 2000 MHz mid-window
    s.sample()
    clock.advance(1.0)
    t = s.stop()
    assert t.throttled
    assert any("2 CPU thermal throttle event(s)" in n for n in t.notes)
    assert any("moved between 2000 and 3000 MHz" in n for n in t.notes)


def test_gpu_throttle_reasons_and_readings(tmp_path):
    nv = FakeNVML(sm_mhz=1500, temp_c=83, power_mw=250_000, reasons=0x4 | 0x1, other_pids=(4242,))
    ps, clock = FakePsutil(), FakeClock()
    s = _sampler(ps, clock, gpu_index=0, nvml=nv, thermal_root=tmp_path)
    s.start()
    clock.advance(1.0)
    t = s.stop()
    assert (t.gpu_sm_clock_mhz, t.gpu_temp_c, t.gpu_power_w) == (1500.0, 83.0, 250.0)
    assert t.throttled and any("sw_power_cap" in n for n in t.notes)
    assert not any("gpu_idle" in n for n in t.notes)  # idle is not throttling
    assert t.under_load  # another process computed on the GPU
    assert nv.shutdowns == 1


def test_gpu_idle_reason_alone_is_not_throttling(tmp_path):
    s = _sampler(FakePsutil(), FakeClock(), gpu_index=0, nvml=FakeNVML(reasons=0x1), thermal_root=tmp_path)
    s.start()
    assert not s.stop().throttled


def test_missing_nvml_and_missing_counters_degrade_gracefully(tmp_path):
    class NoPsutil:
        def __getattr__(self, name):
            raise RuntimeError("not on this OS")

    s = TelemetrySampler(gpu_index=0, interval_s=None, psutil_mod=NoPsutil(), nvml=FakeNVML(fail_init=True),
                         thermal_root=tmp_path)
    s.start()
    t = s.stop()
    assert t.cpu_freq_mhz is None and t.cpu_load_pct is None and t.gpu_sm_clock_mhz is None
    assert not t.throttled and not t.under_load


def test_polling_thread_samples_and_stops(tmp_path):
    s = TelemetrySampler(interval_s=0.01, psutil_mod=FakePsutil(), thermal_root=tmp_path)
    s.start()
    import time

    time.sleep(0.1)
    t = s.stop()
    assert t.samples >= 3  # start + polls + stop
    assert s._thread is None
