"""A `latbench run` session: everything between parsed options and rendered output.

Options -> device, policy and suites (all checked before anything is measured); per suite: the run's
files (new, or an interrupted run to --resume), the metadata, the groups not yet on disk measured
and saved one by one, the claims judged. Progress and notes go out through `Events` callbacks; the
CLI renders them and picks the exit code from the `RunOutcome`. Nothing here prints or exits.

The metadata schema is written here only: `run_settings` (the keys resume.SETTINGS and
OTHER_SETTINGS declare, checked) and `new_metadata` (the rest of a run's .json).
"""

from __future__ import annotations

import dataclasses
import signal
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from latbench import devices, env, faults, runner
from latbench import resume as resuming
from latbench.devices import Device
from latbench.errors import DeviceError, LatbenchError
from latbench.resume import OTHER_SETTINGS, SETTINGS
from latbench.results.files import RunFiles
from latbench.timing.loop import StopPolicy

@dataclass(frozen=True)
class RunOptions:
    """What `latbench run` was asked to do (the CLI's options, parsed; None = the default)."""

    suites: tuple[Path, ...]
    device: str = "cpu"
    quick: bool = False
    threads: int | None = None
    schedule: str = "interleaved"
    widths: str | None = None
    platform: str | None = None
    batch: int | None = None
    modes: str | None = None  # comma-separated, as given
    max_time: float | None = None
    min_time: float | None = None
    target: float | None = None
    cudnn_benchmark: bool = True
    latency: str = "throughput"  # latency semantics: "throughput" or "single" (latbench.timing.cuda)
    l2: str = "warm"  # "warm" or "flushed" (cuda only)
    results_dir: Path = Path("results")
    seed: int = 0
    resume: Path | None = None
    case_timeout: float = faults.DEFAULT_CASE_TIMEOUT_S
    profile: bool = False
    roofline: bool = True
    allow_import: bool = False
    argv: tuple[str, ...] = ("latbench",)  # the command line: recorded, and the base of resume hints
    fake_backend: bool | None = None  # None: $LATBENCH_FAKE_BACKEND decides (devices.FAKE_ENV)
    models: Any = None  # suite.adhoc.ModelRequest: models named by --model, run as one more suite
    isolate: bool = False  # each group in a worker process (runner.run_group_isolated)
    max_cases: int | None = None  # a suite expanding to more cases is refused (None: suite.load.DEFAULT_MAX_CASES)
    repeats: int | None = None  # worker processes per group (latbench/repeats.py); None: repeats.DEFAULT_REPEATS


@dataclass
class Interruption:
    """A run stopped by SIGINT/SIGTERM after its finished groups were saved."""

    signal_name: str
    signum: int  # the exit status is 128 + signum (130 SIGINT, 143 SIGTERM)
    csv: Path
    meta_name: str
    finished: list[str]
    pending: list[str]
    resume_command: str


@dataclass
class SuiteResult:
    suite_path: str
    suite_name: str
    title: str
    files: RunFiles
    verdicts: list[dict[str, Any]] | None = None  # the suite's claims judged on this run, when it has claims

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.files.rows

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.files.rows if r["status"] == "failed"]

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return [r for r in self.files.rows if r["status"] == "skipped"]


@dataclass
class RunOutcome:
    suites: list[SuiteResult] = field(default_factory=list)
    interrupted: Interruption | None = None

    @property
    def failed(self) -> bool:
        """A case failed in some suite (the run went on)."""
        return any(s.failed for s in self.suites)


class Events:
    """Callbacks of a session (all optional: subclass and override what you show)."""

    def on_note(self, kind: str, text: str) -> None:
        """kind: 'advice' (a machine setting that hurts timing), 'roofline', 'resuming', 'unstable' (a ratio
        that moved between --repeats processes more than its interval)."""

    def on_suite_start(self, suite_name: str) -> None:
        """A suite's groups are about to be measured."""

    def on_group_start(self, suite_name: str, group: str) -> None:
        """`group` (e.g. 'G2 x1') is about to be built and measured."""

    def on_progress(self, suite_name: str, group: str, rounds: int) -> None:
        """A round of `group` was timed."""

    def on_group_done(self, suite_name: str, group: str, rows: list[dict[str, Any]]) -> None:
        """A group's rows are on disk."""

    def on_interrupted(self, info: Interruption) -> None:
        """SIGINT/SIGTERM: the finished groups are saved; the run stops after this call."""

    def on_suite_done(self, result: SuiteResult) -> None:
        """A suite's run is complete and its files written."""


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_modes(modes: str | None, device: Device) -> tuple[str, ...]:
    """--modes as a tuple, checked against what the device's backend can time."""
    available = device.backend.modes
    mode_list = tuple(m.strip() for m in modes.split(",") if m.strip()) if modes else available
    unknown = [m for m in mode_list if m not in available]
    if unknown or not mode_list:
        raise DeviceError(f"--modes {modes!r}: {', '.join(unknown) or 'empty'} not available on {device.name}",
                          hint=f"use a subset of {','.join(available)}")
    return mode_list


MAX_SEED = 2**63 - 1  # torch.manual_seed takes a 64-bit integer


def check_options(opts: RunOptions) -> None:
    """LatbenchError for option values no run can use (typer has checked types and minimums)."""
    import math

    if not 0 <= opts.seed <= MAX_SEED:
        raise LatbenchError(f"--seed {opts.seed} is out of range", hint=f"use an integer from 0 to {MAX_SEED}")
    if math.isnan(opts.case_timeout):
        raise LatbenchError("--case-timeout nan is not a number of seconds", hint="use e.g. 600, or 0 for no limit")
    for flag, v in (("--max-time", opts.max_time), ("--min-time", opts.min_time), ("--target", opts.target)):
        if v is not None and not math.isfinite(v):
            raise LatbenchError(f"{flag} {v} is not a finite number", hint=f"give {flag} a finite value")


def resolve_policy(opts: RunOptions, device: Device) -> StopPolicy:
    """The device's stop policy (or --quick's) with --max-time/--min-time/--target applied."""
    base = runner.QUICK_POLICY if opts.quick else device.policy
    given = (("max_time_s", opts.max_time), ("min_time_s", opts.min_time), ("rel_ci", opts.target))
    policy = dataclasses.replace(base, **{k: v for k, v in given if v is not None})
    if policy.min_time_s > policy.max_time_s:
        policy = dataclasses.replace(policy, min_time_s=policy.max_time_s)
    return policy


def repeat_count(opts: RunOptions) -> int:
    """--repeats, checked (LatbenchError outside 1..repeats.MAX_REPEATS); the default when not given."""
    from latbench import repeats

    n = repeats.DEFAULT_REPEATS if opts.repeats is None else opts.repeats
    if not 1 <= n <= repeats.MAX_REPEATS:
        raise LatbenchError(f"--repeats {n}: must be 1 to {repeats.MAX_REPEATS}", where="--repeats",
                            hint=f"use e.g. --repeats {repeats.REPRODUCE_REPEATS} (processes per group)")
    if n > 1 and opts.isolate:
        raise LatbenchError("--repeats and --isolate cannot be combined yet", where="--isolate",
                            hint="--repeats already runs each group in worker processes; drop one of the two")
    return n


def run_settings(opts: RunOptions, suite: Any, device: Device, platform: str, modes: Sequence[str], batch: int,
                 policy: StopPolicy, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The settings part of a run's metadata: SETTINGS' keys and OTHER_SETTINGS'."""
    settings = {
        "suite": {"name": suite.model.suite, "path": suite.path, "sha256": suite.sha256,
                  "experiment": suite.model.experiment, "description": suite.model.description},
        "device": device.name, "platform_widths": platform, "widths_mode": opts.widths or suite.model.widths,
        "quick": opts.quick, "schedule": opts.schedule, "modes": list(modes), "seed": opts.seed,
        "threads": device.threads, "batch": batch, "policy": dataclasses.asdict(policy),
        "profile": opts.profile, "roofline_columns": opts.roofline,
        "latency_semantics": opts.latency, "l2": opts.l2,
        "device_settings": device.settings, "fingerprint": fingerprint, "case_timeout_s": opts.case_timeout,
        "repeats": repeat_count(opts),
    }
    if set(settings) != set(SETTINGS) | set(OTHER_SETTINGS):
        raise RuntimeError("run_settings and resume.SETTINGS/OTHER_SETTINGS disagree: declare a new setting there")
    return settings


def new_metadata(files: RunFiles, settings: dict[str, Any], argv: Sequence[str],
                 ceilings: Any) -> dict[str, Any]:
    """The metadata of a new run, as written when it starts (status 'running')."""
    return {"schema_version": runner.SCHEMA_VERSION, "run_id": uuid.uuid4().hex[:12], "status": "running",
            "command": list(argv), **settings, "started_at_utc": now_utc(),
            "roofline": ceilings.metadata() if ceilings else None,
            "files": {"results": files.csv.name, "samples": files.samples.name}}


def resumed_metadata(metadata: dict[str, Any], case_timeout: float) -> None:
    """Mark an interrupted run's metadata as running again (in place)."""
    for stale in ("interrupted_by", "finished_at_utc"):
        metadata.pop(stale, None)
    metadata.update(status="running", case_timeout_s=case_timeout,
                    resumed_at_utc=[*metadata.get("resumed_at_utc", []), now_utc()])


def hardware(opts: RunOptions, device: Device, fingerprint: dict[str, Any], events: Events,
             dtypes: Sequence[str] = ("float32",)) -> dict[str, Any]:
    """RunConfig fields for hardware-aware rows: telemetry sampler, roofline ceilings (one per dtype
    the rows use, at the math mode the device runs it: roofline.CeilingSet), profiling."""
    from latbench import roofline as rl
    from latbench.telemetry import TelemetrySampler

    ceilings = None
    if opts.roofline:
        ceilings, cached, missing = rl.measure_ceiling_set(device, device.model_name(fingerprint), device.threads,
                                                           list(dtypes))
        for dtype, c in ceilings.by_dtype.items():
            events.on_note("roofline", f"roofline {c.label} ({'cached' if cached[dtype] else 'probed'}): peak "
                                       f"{c.peak_flops_per_s / 1e9:.1f} GFLOP/s, bandwidth "
                                       f"{c.bandwidth_bytes_per_s / 1e9:.1f} GB/s at {device.threads} thread(s) "
                                       f"(delete {rl.cache_file()} to re-measure)")
        for dtype, why in missing.items():
            events.on_note("roofline", f"roofline: no {dtype} ceiling ({why}); its rows get no roofline bound")
    return {"telemetry": TelemetrySampler(threads=device.threads, gpu_index=device.telemetry_gpu_index(),
                                          gpu_uuid=device.telemetry_gpu_uuid()),
            "ceilings": ceilings, "profile": opts.profile}


def run(opts: RunOptions, events: Events | None = None) -> RunOutcome:
    """Run every suite of `opts`; LatbenchError for bad input (before anything is measured).

    A SIGINT/SIGTERM (faults.Interrupted, inside faults.signals_as_interrupts) while groups are
    measured is saved and reported through events.on_interrupted and RunOutcome.interrupted; one
    arriving outside the measurement propagates.
    """
    from latbench.suite import expand, load_suite

    events = events or Events()
    # Everything that can be wrong with the input is checked before anything is measured.
    check_options(opts)
    loaded = [load_suite(p, opts.allow_import) for p in opts.suites]
    if opts.models is not None:  # --model: an in-memory suite, run like a file
        from latbench.suite.adhoc import build_suite

        loaded.append(build_suite(opts.models))
    if not loaded:
        raise LatbenchError("nothing to run", hint="give a suite file (e.g. suites/g1.yaml) or --model NAME|MODULE:FACTORY")
    if opts.resume and len(loaded) != 1:
        raise LatbenchError(f"--resume continues one run, but {len(loaded)} suites were given",
                            hint="give only the suite that the run in --resume measured")
    plat = opts.platform or devices.of(opts.device).default_platform
    limit = {} if opts.max_cases is None else {"max_cases": opts.max_cases}
    expanded = [(s, expand(s, plat, quick=opts.quick, widths_mode=opts.widths, batch=opts.batch, **limit))
                for s in loaded]
    device = devices.get(opts.device, opts.threads, opts.cudnn_benchmark, fake=opts.fake_backend,
                         latency=opts.latency, l2=opts.l2)
    mode_list = parse_modes(opts.modes, device)
    policy = resolve_policy(opts, device)
    n_repeats = repeat_count(opts)
    fingerprint = env.fingerprint()
    for advice in env.load_advice(device.threads):
        events.on_note("advice", advice)
    hw = hardware(opts, device, fingerprint, events, [s.dtype for _, specs in expanded for s in specs])

    outcome = RunOutcome()
    for suite, specs in expanded:
        settings = run_settings(opts, suite, device, plat, mode_list, specs[0].batch, policy, fingerprint)
        files = _open_files(opts, suite, settings, hw["ceilings"])
        try:
            cfg = runner.RunConfig(device=device, run_id=files.metadata["run_id"], modes=mode_list,
                                   schedule=opts.schedule, policy=policy, threads=device.threads, seed=opts.seed,
                                   case_timeout_s=opts.case_timeout, isolate=opts.isolate, **hw)
            workers = {"repeats": n_repeats, "cudnn_benchmark": opts.cudnn_benchmark,
                       "fake": devices.fake_requested() if opts.fake_backend is None else opts.fake_backend}
            outcome.interrupted = _run_groups(suite, specs, files, cfg, device, events,
                                              resuming.resume_command(list(opts.argv), suite.path, files.csv),
                                              workers)
        finally:
            files.unlock()
        if outcome.interrupted is not None:
            return outcome
        title = (f"{suite.model.suite} ({suite.model.experiment}) on {device.name}"
                 f" [{device.model_name(fingerprint)}]"
                 f", {device.threads} thread(s), {opts.schedule}, batch "
                 f"{','.join(dict.fromkeys(str(s.batch) for s in specs))}")
        result = SuiteResult(suite.path, suite.model.suite, title, files)
        if suite.model.claims:  # the suite's claims, judged from this run's paired samples
            from latbench.claims import check_claims

            result.verdicts = check_claims(suite.model.claims, files.rows, files.sample_rows, device.name)
            files.metadata["claims"] = result.verdicts
            files.write_meta()
        outcome.suites.append(result)
        events.on_suite_done(result)
    return outcome


def _open_files(opts: RunOptions, suite: Any, settings: dict[str, Any], ceilings: Any) -> RunFiles:
    """The run's files, locked: the --resume run's (checked to be the same run), or newly reserved."""
    if opts.resume:
        files = resuming.open_run(opts.resume)
        resuming.check_same_run(files.metadata, settings, opts.resume,
                                resuming.resume_command(files.metadata.get("command") or list(opts.argv),
                                                        suite.path, opts.resume))
        files.lock()
        resumed_metadata(files.metadata, opts.case_timeout)
    else:
        files = RunFiles.reserve(opts.results_dir, suite.model.suite, settings["device"])
        files.lock()
        files.metadata = new_metadata(files, settings, opts.argv, ceilings)
    return files


def _stopped_by_error(files: RunFiles, groups: Any, exc: Exception, resume_cmd: str) -> None:
    """Mark the run 'interrupted' (resumable) by `exc`, as far as the disk lets us; a write error
    (a LatbenchError) gets the resume command as its hint."""
    from latbench.results.files import ResultsWriteError

    with faults.signals_ignored():
        files.metadata.update(status="interrupted", interrupted_by=f"{type(exc).__name__}: {exc}"[:300],
                              groups=groups(files.rows), finished_at_utc=now_utc())
        try:
            files.write_meta()
        except OSError:
            pass  # the disk is full: the metadata says 'running', which readers report as interrupted
    if isinstance(exc, ResultsWriteError):
        exc.hint = f"{exc.hint}; the finished groups are kept: resume with: {resume_cmd}"


def _run_groups(suite: Any, specs: list, files: RunFiles, cfg: runner.RunConfig, device: Device, events: Events,
                resume_cmd: str, workers: dict[str, Any] | None = None) -> Interruption | None:
    """Measure the groups not yet on disk, saving each as it finishes. On SIGINT/SIGTERM, save the
    finished groups with status 'interrupted' and return what to tell the user."""
    from latbench.resume import group_status, rows_of_groups, spec_group

    name = suite.model.suite

    def groups(rows):
        return group_status(specs, cfg.modes, rows)

    done = groups(files.rows)
    files.rows = rows_of_groups(specs, cfg.modes, done["finished"], files.rows)
    files.sample_rows = rows_of_groups(specs, cfg.modes, done["finished"], files.sample_rows)
    todo = [s for s in specs if spec_group(s) in done["pending"]]
    files.metadata["groups"] = done
    files.flush()
    if done["finished"]:
        events.on_note("resuming", f"resuming {files.csv}: {len(done['finished'])} group(s) already finished, "
                                   f"{len(done['pending'])} to measure")

    def save_group(rows, samples):
        for s in samples:
            s.setdefault("process", 0)
        files.metadata["groups"] = groups([*files.rows, *rows])
        files.add(rows, samples)
        labels = groups(rows)["finished"]  # this group's label
        events.on_group_done(name, labels[0] if labels else "", rows)

    events.on_suite_start(name)
    try:
        if workers and workers["repeats"] > 1:  # each group in N worker processes, pooled (issue 16)
            from latbench import repeats

            repeats.run_repeats(todo, cfg, workers["repeats"], workers["fake"], workers["cudnn_benchmark"],
                                save_group, lambda label, rounds, _: events.on_progress(name, label, rounds),
                                lambda label: events.on_group_start(name, label),
                                lambda text: events.on_note("unstable", text))
        else:
            runner.run_specs(todo, cfg, device.backend, save_group,
                             lambda label, rounds, _: events.on_progress(name, label, rounds),
                             lambda label: events.on_group_start(name, label))
    except Exception as exc:  # a write that failed (disk full), or a bug: the metadata still gets a final status
        _stopped_by_error(files, groups, exc, resume_cmd)
        raise
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, faults.Interrupted) else signal.SIGINT
        with faults.signals_ignored():  # a second Ctrl-C must not cut the last save short
            state = groups(files.rows)
            files.metadata.update(status="interrupted", interrupted_by=signal.Signals(signum).name,
                                  groups=state, finished_at_utc=now_utc())
            files.flush()
        info = Interruption(signal.Signals(signum).name, int(signum), files.csv, files.meta.name,
                            state["finished"], state["pending"], resume_cmd)
        events.on_interrupted(info)
        return info
    failed = sum(r["status"] == "failed" for r in files.rows)
    files.metadata.update(status="complete", failed_cases=failed, groups=groups(files.rows),
                          finished_at_utc=now_utc())
    files.write_meta()
    return None
