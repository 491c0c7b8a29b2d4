"""The tracebacks, the hang and the lax inputs of issue 22, one test each: a located one-line error and
exit 2 (CLI) or a MeasureError (API), never a traceback, a hang or a late failure. Fake backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from latbench import faults
from latbench.api import MeasureError, measure
from latbench.cli import app
from latbench.errors import SuiteError
from latbench.results.schema import SCHEMA_VERSION
from latbench.suite.load import load_suite
from resultfiles import write_run

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "data" / "tiny.yaml"
ENV = {**os.environ, "LATBENCH_FAKE_BACKEND": "1", "PYTHONPATH": str(ROOT)}


def one_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in text, text
    return lines[0]


# ---------------------------------------------------------------- time limits

@pytest.mark.parametrize("seconds", [1e-9, 5e-324, 1e-6])
def test_a_limit_that_fires_during_its_own_set_up_fails_the_case_and_leaves_no_alarm(seconds):
    """Issue 22: --case-timeout 1e-9 was "internal error ... generator didn't yield", then SIGALRM killed
    the process (the timer was left armed without its handler)."""
    seen = []
    start = time.monotonic()
    with faults.case_boundary(seconds, seen.append):
        while time.monotonic() - start < 3:
            pass
    assert seen and isinstance(seen[0], faults.CaseTimeout)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.default_int_handler, None) \
        or not isinstance(signal.getsignal(signal.SIGALRM), type(faults.time_limit(1)._on_alarm))


def test_run_with_a_tiny_case_timeout_fails_each_case_cleanly(tmp_path):
    r = CliRunner().invoke(app, ["run", str(TINY), "--quick", "--no-roofline", "-q", "--in-process", "--case-timeout",
                                 "1e-9", "--results-dir", str(tmp_path / "res")], env={"LATBENCH_FAKE_BACKEND": "1"})
    assert r.exit_code == 1 and "timed out after 1e-09 s" in r.stderr and "internal error" not in r.stderr, r.output
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


# ---------------------------------------------------------------- measure()'s arguments

M, X = nn.Linear(4, 4), torch.randn(2, 4)


@pytest.mark.parametrize("kwargs, match", [
    ({"threads": -1}, "threads=-1"), ({"threads": 1.5}, "threads=1.5"), ({"threads": "2"}, "threads='2'"),
    ({"threads": True}, "threads=True"), ({"threads": 10**6}, "threads=1000000"),
    ({"modes": ["eager"]}, "modes="), ({"modes": " , "}, "modes="), ({"name": 5}, "name 5"),
    ({"name": "a" * 101}, "cannot be a file name"),
    ({"max_time": float("nan")}, "max_time=nan"), ({"max_time": -1.0}, "max_time=-1.0"),
    ({"max_time": "1"}, "max_time='1'"), ({"min_time": float("inf")}, "min_time=inf"),
    ({"target": float("nan")}, "target=nan"), ({"seed": -1}, "seed=-1"), ({"seed": 1.5}, "seed=1.5"),
    ({"quick": "yes"}, "quick='yes'"), ({"roofline": 1}, "roofline=1"), ({"fake_backend": "x"}, "fake_backend"),
    ({"device": 5}, "device 5"), ({"results_dir": 5}, "results_dir=5"), ({"baseline": 5}, "baseline 5"),
    ({"schedule": 5}, "schedule 5"),
])
def test_measure_checks_every_argument(kwargs, match):
    start = time.monotonic()
    with pytest.raises(MeasureError, match=match):
        measure(M, X, **{"fake_backend": True, "quick": True, **kwargs})
    assert time.monotonic() - start < 5  # refused before anything runs: never a hang


def test_measure_refuses_meta_tensors_and_meta_models():
    with pytest.raises(MeasureError, match="meta device"):
        measure(M, torch.randn(2, 4, device="meta"), fake_backend=True, quick=True)
    with pytest.raises(MeasureError, match="meta device"):
        measure(nn.Linear(4, 4, device="meta"), X, fake_backend=True, quick=True)


# ---------------------------------------------------------------- suites: integers are integers

@pytest.mark.parametrize("old, new, says", [
    ("blocks: 2", "blocks: true", "blocks: True is not a whole number"),
    ("blocks: 2", "blocks: '2'", "blocks: '2' is not a whole number"),
    ("blocks: 2", "blocks: 2.0", "blocks: 2.0 is not a whole number"),
    ("batch: 1", "batch: true", "batch: True"),
    ("{gpu: {c: 8}, arm: {c: 8}}", "{gpu: {c: true}, arm: {c: 8}}", "widths.gpu.c: True"),
    ("{gpu: {c: 8}, arm: {c: 8}}", "{gpu: {c: '8'}, arm: {c: 8}}", "widths.gpu.c: '8'"),
    ("scales: [1, 2, 3, 4]", "scales: ['1']", "scales[0]: '1'"),
    ("scales: [1, 2, 3, 4]", "scales: [2147483648]", "up to 1024"),
    ("height: 8", "height: 8.0", "input.height: 8.0"),
    ("groups: 1}", "groups: true}", "groups: True is not a whole number"),
    ("groups: 1}", "groups: '1'}", "groups: '1'"),
    ("widths: paper", "widths: paper\nsweep: {batch: [true, 2]}", "sweep.batch[0]: True"),
    ("widths: paper", "widths: paper\nflops_tolerance: '0.1'", "flops_tolerance: '0.1' is not a number"),
    ("{gpu: {c: 8}, arm: {c: 8}}", "{gpu: {c: 100000000000000000000}, arm: {c: 8}}", "more than 16,777,216"),
    ("scales: [1, 2, 3, 4]", "scales: [1, 1000]\n", "more than 16,777,216"),
])
def test_a_suite_value_that_is_a_number_only_by_conversion_is_refused_at_its_line(tmp_path, old, new, says):
    text = TINY.read_text()
    assert old in text
    p = tmp_path / "s.yaml"
    p.write_text(text.replace(old, new, 1))
    if "1000" in new:  # 8 channels x 1000 fits; make the width large enough that a scale overflows the bound
        p.write_text(p.read_text().replace("{gpu: {c: 8}, arm: {c: 8}}", "{gpu: {c: 20000}, arm: {c: 20000}}", 1))
    with pytest.raises(SuiteError) as exc:
        load_suite(p)
    assert says in str(exc.value) and f"{p}:" in str(exc.value), str(exc.value)


# ---------------------------------------------------------------- results readers

def test_metadata_nested_100000_levels_is_one_line_in_gate_and_compare(tmp_path):
    a = write_run(tmp_path / "a", {"g=1": 1.0, "g=2": 1.2}, seed=1)
    b = write_run(tmp_path / "b", {"g=1": 1.0, "g=2": 1.2}, seed=2)
    b.with_suffix(".json").write_text("[" * 100_000 + "]" * 100_000)
    for args in (["gate", "-b", str(a), "-c", str(b)], ["compare", str(a), str(b)], ["report", str(b), "-o",
                                                                                      str(tmp_path / "r" / "r.md")]):
        r = CliRunner().invoke(app, [*args, "-q"])
        assert r.exit_code == 2 and "nested too deeply" in one_line(r.stderr), r.output


# ---------------------------------------------------------------- output streams and signals

@pytest.mark.parametrize("args", [["env"], ["env", "--format", "json"], ["list", "suites"]])
def test_stdout_on_dev_full_is_one_line_exit_2(args):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "latbench", *args], stdout=full, stderr=subprocess.PIPE, text=True,
                           env=ENV, timeout=120)
    assert p.returncode == 2 and "No space left" in one_line(p.stderr), p.stderr


def test_exit_quietly_on_interrupt_ends_an_import_phase_with_130_and_no_traceback():
    code = ("import os, signal, time\nfrom latbench import faults\nfaults.exit_quietly_on_interrupt()\n"
            "os.kill(os.getpid(), signal.SIGINT)\ntime.sleep(5)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert p.returncode == 130 and "Traceback" not in p.stderr, p.stderr


def test_a_signal_while_the_interpreter_shuts_down_kills_without_a_traceback():
    """2026-12-05 corpus: SIGINT during merge's ~0.5 s of interpreter teardown (after its files were written) ended
    in an exception raised inside torch's finalizers, printed as a traceback. The command line's last act gives the
    stop signals their default: the process dies of the signal at once (a shell sees 130)."""
    code = ("import atexit, sys, time\n"
            "atexit.register(lambda: (print('shutting down', flush=True), time.sleep(30)))\n"
            "from latbench.__main__ import main\nsys.argv = ['latbench', '--version']\nmain()\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=ENV, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = [p.stdout.readline(), p.stdout.readline()]
    assert lines[0].startswith("latbench ") and lines[1] == "shutting down\n", lines
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGINT and "Traceback" not in err, (p.returncode, err)


def test_a_worker_that_cannot_be_started_fails_its_group_not_the_run(monkeypatch):
    """SIGTERM to the whole process group kills the forkserver: starting a worker then raised
    BrokenPipeError out of the manager (issue 22)."""
    from latbench.run import workers

    class Dead:
        def __init__(self, *a, **k):
            self.exitcode = None

        def start(self):
            raise BrokenPipeError(32, "Broken pipe")

    class Ctx:
        def Pipe(self, duplex=False):  # noqa: N802 - multiprocessing's name
            import multiprocessing as mp

            return mp.Pipe(duplex=False)

        Process = Dead

    monkeypatch.setattr(workers, "_context", lambda: Ctx())
    job = workers.Job(groups=((),), recipe=workers.DeviceRecipe("cpu", 1), run_id="r", modes=("eager",),
                      schedule="interleaved", policy=None, seed=0, case_timeout_s=0)
    result = workers.run_job(job)
    assert result.groups == [] and "could not start a worker process (BrokenPipeError" in result.error


def test_stderr_that_cannot_be_written_keeps_the_exit_code(tmp_path):
    a = write_run(tmp_path / "a", {"g=1": 1.0, "g=2": 1.2}, seed=1)
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "latbench", "compare", str(a), "-q"], stdout=subprocess.PIPE,
                           stderr=full, text=True, env=ENV, timeout=120)
    assert p.returncode == 2  # a usage error stays exit 2 even when its message cannot be printed


@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_gate_and_compare_refuse_a_seed_out_of_range(tmp_path, seed):
    """Issue 22: `gate --seed -1` was a ValueError traceback out of numpy."""
    a = write_run(tmp_path / "a", {"g=1": 1.0, "g=2": 1.2}, seed=1)
    b = write_run(tmp_path / "b", {"g=1": 1.0, "g=2": 1.2}, seed=2)
    for args in (["gate", "-b", str(a), "-c", str(b)], ["compare", str(a), str(b)]):
        r = CliRunner().invoke(app, [*args, "-q", "--seed", seed])
        assert r.exit_code == 2 and "out of range" in r.output and r.exception is None or \
            isinstance(r.exception, SystemExit), r.output


def test_a_fifo_at_a_runs_lock_name_never_hangs_a_reader(tmp_path):
    a = write_run(tmp_path / "a", {"g=1": 1.0, "g=2": 1.2}, seed=1)
    b = write_run(tmp_path / "b", {"g=1": 1.0, "g=2": 1.2}, seed=2)
    meta = a.with_suffix(".json")
    meta.write_text(meta.read_text().replace('"status": "complete"', '"status": "running"'))  # its lock is read
    os.mkfifo(a.with_suffix(".lock"))
    p = subprocess.run([sys.executable, "-m", "latbench", "compare", str(a), str(b), "-q"], capture_output=True,
                       text=True, env=ENV, timeout=120)  # opening the FIFO for reading blocked until a writer came
    assert p.returncode == 2 and "its process died" in one_line(p.stderr), p.stderr


@pytest.mark.slow
def test_a_closed_stdout_at_start_is_dev_null_for_the_run_and_its_workers(tmp_path):
    """`latbench run ... >&-`: fd 1 closed at start made the workers' sys.stdout None (tracebacks, every
    case failed), and the next file opened would have become fd 1."""
    cmd = f"{sys.executable} -m latbench run {TINY} --quick --no-roofline -q --format csv --results-dir {tmp_path / 'r'}"
    p = subprocess.run(["bash", "-c", cmd + " >&-"], capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    (meta,) = (tmp_path / "r").glob("*.json")
    assert '"status": "complete"' in meta.read_text()


def test_a_fifo_or_device_as_a_runs_metadata_is_one_line_not_a_hang(tmp_path):
    a = write_run(tmp_path / "a", {"g=1": 1.0, "g=2": 1.2}, seed=1)
    b = write_run(tmp_path / "b", {"g=1": 1.0, "g=2": 1.2}, seed=2)
    b.with_suffix(".json").unlink()
    os.mkfifo(b.with_suffix(".json"))  # reading it blocked for ever
    p = subprocess.run([sys.executable, "-m", "latbench", "compare", str(a), str(b), "-q"], capture_output=True,
                       text=True, env=ENV, timeout=120)
    assert p.returncode == 2 and "not a regular file" in one_line(p.stderr), p.stderr


# ---------------------------------------------------------------- issue 22, second attack

def test_sighup_is_an_interruption_like_sigterm():
    """A terminal that closes (SIGHUP) killed a command mid-write, leaving its temporary file: it is a
    stop signal now (exit 129), and a command run in-process hands its signal handlers back."""
    assert signal.SIGHUP in faults.STOP_SIGNALS and faults.Interrupted(signal.SIGHUP).exit_code == 129
    code = ("import os, signal, time\nfrom latbench import faults\nfaults.exit_quietly_on_interrupt()\n"
            "os.kill(os.getpid(), signal.SIGHUP)\ntime.sleep(5)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert p.returncode == 129 and "Traceback" not in p.stderr, p.stderr
    before = [signal.getsignal(s) for s in faults.STOP_SIGNALS]
    assert CliRunner().invoke(app, ["env", "--format", "json"]).exit_code == 0
    assert [signal.getsignal(s) for s in faults.STOP_SIGNALS] == before


def test_measure_refuses_an_int_beyond_any_float_and_a_model_that_refuses_eval():
    m, x = nn.Linear(4, 4), torch.randn(2, 4)
    with pytest.raises(MeasureError, match="max_time="):
        measure(m, x, max_time=10**400, fake_backend=True, quick=True)

    class NoEval(nn.Linear):
        def eval(self):  # noqa: A003
            raise RuntimeError("eval refused")

    with pytest.raises(MeasureError, match="eval refused"):
        measure(NoEval(4, 4), x, fake_backend=True, quick=True)


@pytest.mark.parametrize("damage, said", [
    ("duplicated latency_ms", "column latency_ms appears twice"),
    ("schema_version abc", "is not a schema number"),
    (f"schema_version {SCHEMA_VERSION + 0.5:g}", f"uses schema {SCHEMA_VERSION + 0.5:g}"),  # above this one
    ("schema_version 1.5", "is not a schema number"),
    ("metadata of another run", "the metadata of run"),
    ("samples of another run", "the samples are of another run"),
    ("half the rows gone", "which no row has"),
])
def test_a_results_file_that_lies_is_refused_and_never_judged(tmp_path, damage, said):
    import pandas as pd

    a = write_run(tmp_path / "a", {"g=1": 1.0, "g=2": 1.2}, seed=1)
    b = write_run(tmp_path / "b", {"g=1": 1.0, "g=2": 1.2}, seed=2)
    c = write_run(tmp_path / "c", {"g=1": 1.0, "g=2": 1.2}, seed=3)
    rows = pd.read_csv(b, dtype=str, keep_default_na=False)
    samples = b.with_name(b.stem + "-samples.csv")
    if damage == "duplicated latency_ms":
        text = b.read_text().splitlines()  # a second latency_ms column, 1 ms on every row, before the first
        j = text[0].split(",").index("latency_ms")
        b.write_text("\n".join(",".join(r.split(",")[:j] + ["latency_ms" if i == 0 else "1"] + r.split(",")[j:])
                               for i, r in enumerate(text)) + "\n")
    elif damage.startswith("schema_version"):
        rows["schema_version"] = damage.split()[1]
        rows.to_csv(b, index=False)
    elif damage == "metadata of another run":
        b.with_suffix(".json").write_text(c.with_suffix(".json").read_text())
    elif damage == "samples of another run":
        samples.write_text(c.with_name(c.stem + "-samples.csv").read_text())
    else:
        rows.iloc[: len(rows) // 2].to_csv(b, index=False)
    for args in (["gate", "-b", str(a), "-c", str(b)], ["gate", "-b", str(b), "-c", str(a)],
                 ["compare", str(a), str(b)]):
        r = CliRunner().invoke(app, [*args, "-q"])
        assert r.exit_code == 2 and said in one_line(r.stderr), r.output


def test_measure_refuses_a_results_dir_that_names_no_directory(tmp_path, monkeypatch):
    """results_dir='' wrote the run's three files into the working directory."""
    monkeypatch.chdir(tmp_path)
    for bad in ("", "   "):
        with pytest.raises(MeasureError, match="results_dir="):
            measure(nn.Linear(4, 4), torch.randn(2, 4), results_dir=bad, fake_backend=True, quick=True)
    assert list(tmp_path.iterdir()) == []


def test_resume_of_a_run_whose_files_are_links_to_another_run_is_refused(tmp_path):
    """--resume through links replaced them by files of their own: one run then lived in two places."""
    csv = write_run(tmp_path / "real", {"g=1": 1.0, "g=2": 1.2}, seed=1)
    links = tmp_path / "links"
    links.mkdir()
    for suffix in (".csv", "-samples.csv", ".json"):
        (links / (csv.stem + suffix)).symlink_to(csv.with_name(csv.stem + suffix))
    before = {p.name: p.read_bytes() for p in csv.parent.iterdir()}
    r = CliRunner().invoke(app, ["run", str(ROOT / "tests" / "data" / "tiny.yaml"), "--quick", "--no-roofline", "-q",
                                 "--in-process", "--results-dir", str(links), "--resume", str(links / csv.name)],
                           env={"LATBENCH_FAKE_BACKEND": "1"})
    assert r.exit_code == 2 and "symbolic link" in one_line(r.stderr), r.output
    assert all(p.is_symlink() for p in links.iterdir())
    assert {p.name: p.read_bytes() for p in csv.parent.iterdir()} == before


@pytest.mark.slow
def test_a_signal_to_calibrate_suite_lets_its_run_save_and_leaves_no_worker_file(tmp_path):
    """2026-12-05 corpus: SIGINT to `calibrate --suite` while its `latbench run` child measured: the child was
    SIGKILLed (subprocess.run's clean-up), leaving its run at status 'running', its lock and its worker's
    output file in TMPDIR. Now the signal is passed on, the run saves and says 'interrupted'."""
    tmp, res = tmp_path / "tmp", tmp_path / "res"
    tmp.mkdir()
    env = {k: v for k, v in ENV.items() if k != "LATBENCH_FAKE_BACKEND"} | {"TMPDIR": str(tmp)}
    p = subprocess.Popen([sys.executable, "-m", "latbench", "calibrate", "--suite", str(ROOT / "tests/data/tiny.yaml"),
                          "--runs", "2", "--run-args", "--max-time 3 --no-roofline", "--results-dir", str(res), "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not list(res.glob("*.json")) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
    assert p.poll() is None and list(res.glob("*.json")), "the child run never started"
    time.sleep(2.0)  # measuring in its workers now
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=180)
    assert p.returncode == 128 + signal.SIGTERM and "Traceback" not in err, (p.returncode, err)
    import json

    assert [json.loads(m.read_text())["status"] for m in res.glob("*.json")] == ["interrupted"]
    assert not list(res.glob("*.lock")) and not list(tmp.glob("latbench-*")), list(tmp.iterdir())


def test_a_stop_signal_while_torch_is_being_imported_waits_for_the_import():
    """2026-12-05 corpus: SIGTERM to the process group while `run` imported torch raised Interrupted inside
    torch's import, across its C++ code: 'terminate called after throwing pybind11::error_already_set', exit -6.
    The handler now lets the import finish and the signal arrives again after it."""
    code = (
        "import importlib.machinery, os, signal, sys, time, types\n"
        "from latbench import faults\n"
        "m = types.ModuleType('torch._latbench_probe')\n"
        "m.__spec__ = importlib.machinery.ModuleSpec('torch._latbench_probe', None)\n"
        "m.__spec__._initializing = True\n"
        "sys.modules[m.__name__] = m\n"
        "with faults.signals_as_interrupts():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    for _ in range(30):\n"
        "        time.sleep(0.01)\n"
        "    print('deferred', flush=True)\n"
        "    m.__spec__._initializing = False\n"
        "    try:\n"
        "        time.sleep(10)\n"
        "        print('never came')\n"
        "    except faults.Interrupted as exc:\n"
        "        print('raised', exc.signum)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert p.stdout.split() == ["deferred", "raised", str(int(signal.SIGTERM))], (p.stdout, p.stderr)


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_gate_thresholds_from_a_fifo_or_a_device_is_a_clean_error_not_a_hang(tmp_path, special):
    """2026-12-05 corpus: `gate --thresholds` read the file whole: a FIFO blocked and /dev/zero never ended."""
    r = CliRunner().invoke(app, ["run", str(ROOT / "tests" / "data" / "tiny.yaml"), "--quick", "--no-roofline",
                                 "-q", "--in-process", "--results-dir", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    run = next(p for p in (tmp_path / "r").glob("*.csv") if not p.name.endswith("-samples.csv"))
    path = tmp_path / "fifo" if special == "fifo" else Path(special)
    if special == "fifo":
        os.mkfifo(path)
    p = subprocess.run([sys.executable, "-m", "latbench", "gate", "-b", str(run), "-c", str(run), "--thresholds",
                        str(path), "-q"], capture_output=True, text=True, env=ENV, timeout=60)
    assert p.returncode == 2 and "not a regular file" in p.stderr and "Traceback" not in p.stderr, p.stderr
