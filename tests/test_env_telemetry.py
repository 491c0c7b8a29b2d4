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


def _cpu_window(tmp_path, seconds, own_cores, other_cores, **kw):
    ps, clock = FakePsutil(), FakeClock()
    s = _sampler(ps, clock, thermal_root=tmp_path, **kw)
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


def test_a_process_that_got_too_little_cpu_is_oversubscribed(tmp_path):
    """CPU seconds per wall second below 0.85: other processes took the measuring process's core."""
    t = _cpu_window(tmp_path, 2.0, own_cores=0.5, other_cores=1.5, judge_cpu_share=True)
    assert t.oversubscribed and abs(t.cpu_per_wall - 0.5) < 1e-9
    assert any(n.startswith("oversubscribed: the measuring process ran on a CPU for only 50%") for n in t.notes)
    assert t.columns()["oversubscribed"] is True and t.columns()["cpu_per_wall"] == 0.5
    # at the bound's right side, and where it is not judged (CUDA, the fake backend): not flagged
    assert not _cpu_window(tmp_path, 2.0, own_cores=0.86, other_cores=1.5, judge_cpu_share=True).oversubscribed
    t = _cpu_window(tmp_path, 2.0, own_cores=0.5, other_cores=1.5)
    assert not t.oversubscribed and not any(n.startswith("oversubscribed") for n in t.notes)
    assert abs(t.cpu_per_wall - 0.5) < 1e-9  # still recorded


def test_the_sampler_judges_cpu_share_only_for_the_real_cpu_backend():
    from latbench import devices

    assert TelemetrySampler.for_device(devices.get("cpu", threads=1, fake=False)).judge_cpu_share
    assert not TelemetrySampler.for_device(devices.get("cpu", threads=1, fake=True)).judge_cpu_share


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


# ---- the right GPU, under load in containers, throttle reasons (issue 13 items 4 and 5) ------------

TWO_GPUS = [{"uuid": "GPU-aaaa-1", "sm_mhz": 1000, "temp_c": 40, "reasons": 0x1},
            {"uuid": "GPU-bbbb-2", "sm_mhz": 1500, "temp_c": 80, "reasons": 0x40}]


def test_telemetry_reads_the_gpu_in_use_by_uuid_not_torchs_index(tmp_path):
    """CUDA_VISIBLE_DEVICES=1: torch's device 0 is NVML's GPU 1. The handle comes by UUID."""
    nv = FakeNVML(gpus=TWO_GPUS, self_on=1)
    s = _sampler(FakePsutil(), FakeClock(), gpu_index=0, gpu_uuid="GPU-bbbb-2", nvml=nv, thermal_root=tmp_path)
    s.start()
    t = s.stop()
    assert (t.gpu_sm_clock_mhz, t.gpu_temp_c) == (1500.0, 80.0)
    assert t.gpu_throttle_reasons == "hw_thermal" and t.throttled


def test_the_bare_uuid_torch_prints_and_an_unknown_uuid(tmp_path):
    from latbench.telemetry import gpu_handle

    nv = FakeNVML(gpus=TWO_GPUS)
    assert gpu_handle(nv, "bbbb-2", 0) == ("gpu", 1)  # str(props.uuid) has no "GPU-" prefix
    assert gpu_handle(nv, "GPU-cccc", 0) is None  # NVML does not know it: no readings, not NVML's GPU 0
    no_lookup = FakeNVML(gpus=TWO_GPUS, unsupported=("nvmlDeviceGetHandleByUUID",))
    assert gpu_handle(no_lookup, "GPU-bbbb-2", 1) == ("gpu", 1)  # by index, as that GPU has the UUID
    assert gpu_handle(no_lookup, "GPU-bbbb-2", 0) is None  # ... and not when it has another
    assert gpu_handle(nv, None, None) is None and gpu_handle(nv, None, 0) == ("gpu", 0)  # no UUID: the index


def test_the_cuda_device_reports_its_uuid_as_nvml_writes_it(monkeypatch):
    from types import SimpleNamespace

    import torch

    from latbench.devices import CpuDevice, CudaDevice

    from latbench.telemetry import gpu_handle

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(uuid="bbbb-2"))
    uuid = CudaDevice().telemetry_gpu_uuid()
    assert uuid == "bbbb-2" and CpuDevice().telemetry_gpu_uuid() is None  # as torch writes it: GPU or MIG
    assert gpu_handle(FakeNVML(gpus=TWO_GPUS), uuid, None) == ("gpu", 1)


def _gpu_window(tmp_path, nv):
    s = _sampler(FakePsutil(), FakeClock(), gpu_index=0, nvml=nv, thermal_root=tmp_path)
    s.start()
    return s.stop()


def test_in_a_container_latbench_alone_on_the_gpu_is_not_under_load(tmp_path):
    """NVML lists host PIDs: in a container latbench's own process shows as, say, 812345, never
    os.getpid(). It used to count itself as another process, flagging every row 'under load'."""
    t = _gpu_window(tmp_path, FakeNVML(self_pid=812345))
    assert not t.under_load and t.gpu_compute_processes == 1 and t.notes == ()


def test_a_second_compute_process_is_under_load_in_a_container_too(tmp_path):
    t = _gpu_window(tmp_path, FakeNVML(self_pid=812345, other_pids=(812999,)))
    assert t.under_load and t.gpu_compute_processes == 2
    assert any(n.startswith("under load: 1 other process(es) computed on the GPU") for n in t.notes)


def test_throttle_reasons_are_decoded_per_group(tmp_path):
    """Every reason bit seen in the group's window is named in gpu_throttle_reasons; only power and
    thermal ones set `throttled`. A CPU window has no reading (None), a quiet GPU 'none'."""
    nv = FakeNVML(reasons=0x1 | 0x2 | 0x4 | 0x100)
    t = _gpu_window(tmp_path, nv)
    assert t.gpu_throttle_reasons == "gpu_idle;applications_clocks_setting;sw_power_cap;display_clock_setting"
    assert t.columns()["gpu_throttle_reasons"] == t.gpu_throttle_reasons and t.throttled
    assert _gpu_window(tmp_path, FakeNVML(reasons=0)).gpu_throttle_reasons == "none"
    assert _cpu_window(tmp_path, 1.0, own_cores=1.0, other_cores=0.0).gpu_throttle_reasons is None
    # a second group's window starts clean: reasons are per group
    s = _sampler(FakePsutil(), FakeClock(), gpu_index=0, nvml=nv, thermal_root=tmp_path)
    s.start()
    s.stop()
    nv.gpus[0]["reasons"] = 0
    s.start()
    assert s.stop().gpu_throttle_reasons == "none"


def test_older_pynvml_with_only_the_throttle_reasons_call(tmp_path):
    """pynvml before 12 names it nvmlDeviceGetCurrentClocksThrottleReasons (same bits)."""

    class OldNVML(FakeNVML):
        @property
        def nvmlDeviceGetCurrentClocksEventReasons(self):
            raise AttributeError("not in this pynvml")

        def nvmlDeviceGetCurrentClocksThrottleReasons(self, h):
            return self._gpu(h)["reasons"]

    t = _gpu_window(tmp_path, OldNVML(reasons=0x20 | 0x10))
    assert t.gpu_throttle_reasons == "sync_boost;sw_thermal" and t.throttled


# ---- issue 23: MIG instances, no stand-in GPU, throttling accumulated between start and stop -----

MIG_GPUS = [{"uuid": "GPU-aaaa-1", "sm_mhz": 1000, "temp_c": 40},
            {"uuid": "GPU-bbbb-2", "sm_mhz": 1500, "temp_c": 70,
             "migs": [{"uuid": "MIG-cccc-3"}, {"uuid": "MIG-dddd-4", "other_pids": (777,)}]}]


def test_a_mig_instance_is_found_by_the_bare_uuid_torch_reports(tmp_path):
    """torch prints a MIG instance's UUID bare; NVML knows it as 'MIG-...'. Prefixing 'GPU-' found
    nothing and NVML's index 0 (another card here) stood in. Device readings come from the parent GPU,
    processes from the instance (another instance's process is not load on ours)."""
    nv = FakeNVML(gpus=MIG_GPUS, self_on=("mig", 1, 0), self_pid=812345)
    s = _sampler(FakePsutil(), FakeClock(), gpu_uuid="cccc-3", nvml=nv, thermal_root=tmp_path)
    s.start()
    t = s.stop()
    assert (t.gpu_sm_clock_mhz, t.gpu_temp_c) == (1500.0, 70.0)  # GPU 1, the instance's parent
    assert t.gpu_compute_processes == 1 and not t.under_load and t.notes == ()


def test_the_mig_device_maps_to_no_nvml_index_and_telemetry_finds_it_by_uuid(monkeypatch, tmp_path):
    from types import SimpleNamespace

    import torch

    import latbench.env
    from latbench.devices import CudaDevice

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(uuid="cccc-3"))
    monkeypatch.setattr(latbench.env, "gpus", lambda: [{"index": 0, "uuid": "GPU-aaaa-1"},
                                                       {"index": 1, "uuid": "GPU-bbbb-2"}])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-cccc-3")
    dev = CudaDevice()
    assert dev.telemetry_gpu_index() is None  # not CUDA's index 0, which NVML calls another GPU
    nv = FakeNVML(gpus=MIG_GPUS, self_on=("mig", 1, 0))
    s = _sampler(FakePsutil(), FakeClock(), gpu_index=dev.telemetry_gpu_index(), gpu_uuid=dev.telemetry_gpu_uuid(),
                 nvml=nv, thermal_root=tmp_path)
    s.start()
    assert s.stop().gpu_sm_clock_mhz == 1500.0


def test_a_uuid_nvml_does_not_know_turns_gpu_telemetry_off_with_a_note(tmp_path):
    nv = FakeNVML(gpus=TWO_GPUS)
    s = _sampler(FakePsutil(), FakeClock(), gpu_uuid="eeee-9", gpu_index=0, nvml=nv, thermal_root=tmp_path)
    s.start()
    t = s.stop()
    assert t.gpu_sm_clock_mhz is None and t.gpu_temp_c is None and t.gpu_throttle_reasons is None
    assert any(n.startswith("gpu telemetry off: NVML knows no GPU or MIG instance") and "eeee-9" in n
               for n in t.notes)
    assert not t.throttled and not t.under_load


def test_throttling_between_samples_is_counted_from_nvmls_accumulated_counters(tmp_path):
    """Every sample saw no throttle bit, but the power cap held the clocks for 120 ms between two
    samples: NVML's throttle-time counters grew, so the group is throttled."""
    nv = FakeNVML(gpus=[{"uuid": "GPU-0000-fake", "reasons": 0x1, "fields": {74: 5_000_000_000, 270: 0}}])
    ps, clock = FakePsutil(), FakeClock()
    s = _sampler(ps, clock, gpu_uuid="GPU-0000-fake", nvml=nv, thermal_root=tmp_path)
    s.start()
    clock.advance(1.0)
    s.sample()
    nv.gpus[0]["fields"][74] += 120_000_000  # sw power cap: 120 ms, between samples
    clock.advance(1.0)
    t = s.stop()
    assert t.throttled and "sw_power_cap" in t.gpu_throttle_reasons
    assert any("held back for 120.0 ms" in n and "sw_power_cap 120.0 ms" in n for n in t.notes)
    nv.gpus[0]["fields"][74] += 0  # a quiet group after it: counters unchanged, not throttled
    s.start()
    assert not s.stop().throttled


def test_violation_status_counts_when_field_values_are_not_offered(tmp_path):
    nv = FakeNVML(unsupported=("nvmlDeviceGetFieldValues",), gpus=[{"uuid": "GPU-0000-fake",
                                                                    "violations": {0: 0, 1: 10_000}}])
    s = _sampler(FakePsutil(), FakeClock(), gpu_index=0, nvml=nv, thermal_root=tmp_path)
    s.start()
    nv.gpus[0]["violations"][1] += 3_000_000  # thermal policy: 3 ms
    t = s.stop()
    assert t.throttled and any("thermal 3.0 ms" in n for n in t.notes)
