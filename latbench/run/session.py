"""A run: options and case sources in, rows on disk (or in memory) and outcomes out. The one
orchestration behind `latbench run`, `latbench.measure()`, `latbench ab` and the pytest plugin.

`prepare` checks everything that can be wrong with the input before anything is measured (options,
sources expanded, the device, modes, the stop rule) and probes the machine once (fingerprint,
roofline ceilings, telemetry); `execute` runs one source: its run file opened (new or --resume),
the groups not yet on disk measured (in this process, --isolate or --repeats worker processes) and
saved one by one, the final status written, the claims judged. Progress and notes go out through
`Events`; nothing here prints or exits.
"""

from __future__ import annotations

import dataclasses
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from latbench import env, faults
from latbench.devices import Device
from latbench.errors import LatbenchError
from latbench.records import CaseSpec
from latbench.results.schema import FAILED, SKIPPED
from latbench.run import workers
from latbench.run.options import (RunOptions, check_options, option_name, parse_modes, policy_of, repeat_count,
                                  run_policy)
from latbench.run.pipeline import RunConfig, groups_of, run_in_process
from latbench.run.rows import as_dicts
from latbench.run.runfile import OTHER_SETTINGS, SETTINGS, RunFile, resume_command
from latbench.run.sources import CaseSource, SuiteSource
from latbench.timing.loop import StopPolicy


@dataclass
class Interruption:
    """A run stopped by SIGINT/SIGTERM after its finished groups were saved."""

    signal_name: str
    signum: int  # the exit status is 128 + signum (130 SIGINT, 143 SIGTERM)
    csv: Path | None
    meta_name: str
    finished: list[str]
    pending: list[str]
    resume_command: str


@dataclass
class SuiteResult:
    suite_path: str
    suite_name: str
    title: str
    run: RunFile
    verdicts: list[dict[str, Any]] | None = None  # the suite's claims judged on this run, when it has claims

    @property
    def files(self) -> Any:
        """The run's files on disk (results.files.RunFiles), or None for a run kept in memory."""
        return self.run.files

    @property
    def metadata(self) -> dict[str, Any]:
        return self.run.metadata

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.run.rows

    @property
    def samples(self) -> list[dict[str, Any]]:
        return self.run.samples

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.run.rows if r["status"] == FAILED]

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return [r for r in self.run.rows if r["status"] == SKIPPED]


@dataclass
class RunOutcome:
    suites: list[SuiteResult] = field(default_factory=list)
    interrupted: Interruption | None = None

    @property
    def failed(self) -> bool:
        """A case failed in some suite (the run went on)."""
        return any(s.failed for s in self.suites)


class Events:
    """Callbacks of a run (all optional: subclass and override what you show)."""

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


@dataclass
class Plan:
    """What every source of a run shares, checked and probed once."""

    opts: RunOptions
    device: Device
    platform: str
    modes: tuple[str, ...]
    policy: StopPolicy  # one process's stop rule
    repeats: int
    fingerprint: dict[str, Any]
    hardware: dict[str, Any]  # RunConfig's telemetry, ceilings, profile
    in_process: bool = False  # measure here, not in worker processes
    target: Any = None  # run.fleet.Target: the device pool of a Ray cluster measuring the groups (--on ray)
    pools: Any = None  # run.fleet.Pools: every pool of the session (--on ray), shared by their plans


def device_of(opts: RunOptions) -> Device:
    """The configured device of a run (in this process; workers make theirs from the same recipe)."""
    return workers.DeviceRecipe.of(opts).make()


def prepare(opts: RunOptions, expanded: Sequence[tuple[CaseSource, list[CaseSpec]]], events: Events,
            device: Device | None = None, in_process: bool = False) -> Plan:
    """The device, modes, stop rule and machine probes of a run of `expanded` sources."""
    device = device or device_of(opts)
    modes = parse_modes(opts.modes, device)
    policy = policy_of(opts)
    fingerprint = env.fingerprint()
    for advice in env.load_advice(device.threads):
        events.on_note("advice", advice)
    hw = hardware(opts, device, fingerprint, events, [s.dtype for _, specs in expanded for s in specs])
    return Plan(opts, device, opts.platform or device.default_platform, modes, policy, repeat_count(opts),
                fingerprint, hw, in_process)


def hardware(opts: RunOptions, device: Device, fingerprint: dict[str, Any], events: Events,
             dtypes: Sequence[str] = ("float32",)) -> dict[str, Any]:
    """RunConfig fields for hardware-aware rows: telemetry sampler, roofline ceilings (one per dtype
    the rows use, at the math mode the device runs it: roofline.CeilingSet), profiling."""
    from latbench import roofline as rl
    from latbench.telemetry import TelemetrySampler

    ceilings = None
    if opts.roofline and not opts.on:  # --on ray: every node probes its own ceilings (run/fleet.py)
        ceilings, cached, missing = rl.measure_ceiling_set(device, device.model_name(fingerprint), device.threads,
                                                           list(dict.fromkeys(dtypes)))
        for dtype, c in ceilings.by_dtype.items():
            events.on_note("roofline", f"roofline {c.label} ({'cached' if cached[dtype] else 'probed'}): peak "
                                       f"{c.peak_flops_per_s / 1e9:.1f} GFLOP/s, bandwidth "
                                       f"{c.bandwidth_bytes_per_s / 1e9:.1f} GB/s at {device.threads} thread(s) "
                                       f"(delete {rl.cache_file()} to re-measure)")
        for dtype, why in missing.items():
            events.on_note("roofline", f"roofline: no {dtype} ceiling ({why}); its rows get no roofline bound")
    return {"telemetry": TelemetrySampler.for_device(device),
            "ceilings": ceilings, "profile": opts.profile}


def run_settings(plan: Plan, source: CaseSource, batch: int) -> dict[str, Any]:
    """The settings part of a run's metadata: exactly the keys runfile.SETTINGS and OTHER_SETTINGS declare."""
    opts, device = plan.opts, plan.device
    settings = {
        "suite": source.info(), "device": device.name, "platform_widths": plan.platform,
        "widths_mode": opts.widths or source.widths, "quick": opts.quick, "schedule": opts.schedule,
        "modes": list(plan.modes), "seed": opts.seed, "threads": device.threads, "batch": batch,
        "policy": dataclasses.asdict(run_policy(opts)), "profile": opts.profile, "roofline_columns": opts.roofline,
        "latency_semantics": opts.latency, "l2": opts.l2, "device_settings": device.settings,
        "fingerprint": plan.fingerprint, "case_timeout_s": opts.case_timeout, "repeats": plan.repeats,
        "in_process": plan.in_process, "shard": opts.shard,
        "fleet": plan.target.settings() if plan.target is not None else None,
    }
    if set(settings) != set(SETTINGS) | set(OTHER_SETTINGS):
        raise RuntimeError("run_settings and runfile.SETTINGS/OTHER_SETTINGS disagree: declare a new setting there")
    return settings


def run(opts: RunOptions, events: Events | None = None) -> RunOutcome:
    """Run every suite of `opts` (files and --model); LatbenchError for bad input, before anything is measured.

    A SIGINT/SIGTERM (faults.Interrupted, inside faults.signals_as_interrupts) while groups are
    measured is saved and reported through events.on_interrupted and RunOutcome.interrupted.
    """
    from latbench.suite import load_suite

    events = events or Events()
    check_options(opts)
    sources: list[CaseSource] = [SuiteSource(load_suite(p, opts.allow_import)) for p in opts.suites]
    if opts.models is not None:  # --model: an in-memory suite, run like a file
        from latbench.suite.adhoc import build_suite

        sources.append(SuiteSource(build_suite(opts.models)))
    if not sources:
        raise LatbenchError("nothing to run", hint="give a suite file (e.g. suites/g1.yaml) or --model NAME|MODULE:FACTORY")
    if opts.resume and len(sources) != 1:
        raise LatbenchError(f"--resume continues one run, but {len(sources)} suites were given",
                            hint="give only the suite that the run in --resume measured")
    if opts.resume and opts.repeats is None:  # the run's own process count, whatever today's default is
        opts = dataclasses.replace(opts, repeats=_recorded_repeats(opts.resume))
    return run_sources(opts, sources, events)


def _recorded_repeats(csv: Path) -> int | None:
    """--repeats as the run in `csv` recorded it (1 for runs from before it was recorded); None when its
    metadata cannot be read (the resume check then says what is wrong)."""
    import json

    try:
        meta = json.loads(Path(csv).with_suffix(".json").read_text(encoding="utf-8"))
        value = meta.get("repeats", 1) if isinstance(meta, dict) else None
    except (OSError, ValueError, RecursionError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def run_sources(opts: RunOptions, sources: Sequence[CaseSource], events: Events | None = None,
                device: Device | None = None) -> RunOutcome:
    """Expand every source (all checked first), then measure them one after the other."""
    from latbench import devices

    events = events or Events()
    check_options(opts)
    platform = opts.platform or devices.default_platform(opts.device)
    expanded = [(s, s.specs(platform, quick=opts.quick, widths_mode=opts.widths, batch=opts.batch,
                            max_cases=opts.max_cases)) for s in sources]
    if opts.shard:  # a deterministic share of every suite's groups; latbench merge joins the shares
        from latbench.run.merge import shard_specs

        expanded = [(s, shard_specs(specs, opts.shard, s.name, opts.api)) for s, specs in expanded]
    for source, _ in expanded:
        if source.in_process_only and (opts.isolate or repeat_count(opts) > 1):
            raise LatbenchError(f"{source.path}: its cases live in this process, so they cannot be measured in "
                                f"worker processes", hint=f"drop {option_name('isolate', opts.api)} and "
                                                          f"{option_name('repeats', opts.api)}")
    in_process = opts.in_process or any(source.in_process_only for source, _ in expanded)
    if opts.on or opts.devices:  # groups as tasks on a Ray cluster's nodes: one plan (run file) per device pool
        from latbench.run import fleet

        plans = fleet.plans(opts, expanded, events, in_process, prepare)
    else:
        plans = [prepare(opts, expanded, events, device, in_process)]
    outcome = RunOutcome()
    for plan in plans:
        for source, specs in expanded:
            result = execute(plan, source, specs, events)
            if isinstance(result, Interruption):
                outcome.interrupted = result
                return outcome
            outcome.suites.append(result)
    return outcome


def _open(plan: Plan, source: CaseSource, specs: list[CaseSpec]) -> RunFile:
    opts = plan.opts
    settings = run_settings(plan, source, specs[0].batch)
    if opts.resume:
        return RunFile.resume(opts.resume, settings, opts.argv, source.path, opts.case_timeout)
    return RunFile.create(opts.results_dir, source.name, settings, opts.argv, plan.hardware["ceilings"])


def execute(plan: Plan, source: CaseSource, specs: list[CaseSpec], events: Events) -> SuiteResult | Interruption:
    """Measure one source's groups not yet on disk, saving each as it finishes; its SuiteResult, or the
    Interruption when SIGINT/SIGTERM stopped it (the finished groups saved, status 'interrupted')."""
    opts, device, name = plan.opts, plan.device, source.name
    run = _open(plan, source, specs)
    try:
        csv = run.files.csv if run.files is not None else None
        resume_cmd = resume_command(list(opts.argv), source.path, csv) if csv is not None else ""
        cfg = RunConfig(device=device, run_id=run.run_id, modes=plan.modes, schedule=opts.schedule,
                        policy=plan.policy, seed=opts.seed, case_timeout_s=opts.case_timeout, api=opts.api,
                        **plan.hardware)
        todo, finished = run.start(specs, plan.modes)
        if finished:
            events.on_note("resuming", f"resuming {csv}: {len(finished)} group(s) already finished, "
                                       f"{len(run.metadata['groups']['pending'])} to measure")

        def save_group(rows: list[Any], samples: list[dict[str, Any]]) -> None:
            dicts = as_dicts(rows)
            events.on_group_done(name, run.save_group(dicts, samples), dicts)

        events.on_suite_start(name)
        try:
            with source.active():
                _measure(plan, cfg, groups_of(todo), save_group, events, name, run)
        except Exception as exc:  # a write that failed (disk full), or a bug: the metadata gets a final status
            run.stopped_by_error(exc, resume_cmd)
            raise
        except KeyboardInterrupt as exc:
            signum = exc.signum if isinstance(exc, faults.Interrupted) else signal.SIGINT
            state = run.interrupted(signal.Signals(signum).name)
            if opts.api:
                raise
            info = Interruption(signal.Signals(signum).name, int(signum), csv,
                                run.files.meta.name if run.files is not None else "", state["finished"],
                                state["pending"], resume_cmd)
            events.on_interrupted(info)
            return info
        run.complete()
    finally:
        run.unlock()
    result = SuiteResult(source.path, name, _title(plan, source, specs), run)
    if source.claims:  # the suite's claims, judged from this run's paired samples
        from latbench.claims import check_claims

        result.verdicts = check_claims(source.claims, run.rows, run.samples, device.name)
        run.metadata["claims"] = result.verdicts
        run.write_meta()
    events.on_suite_done(result)
    return result


def _measure(plan: Plan, cfg: RunConfig, groups: list[list[CaseSpec]], save_group: Any, events: Events,
             name: str, run: RunFile | None = None) -> None:
    """The groups measured in worker processes (user code cannot reach the run; --repeats N: N of
    them per group), in this process (--in-process, and sources whose cases live here), or with --on
    ray in the same worker processes on the nodes of a Ray cluster (run/fleet.py)."""
    opts = plan.opts
    progress = lambda label, rounds: events.on_progress(name, label, rounds)  # noqa: E731
    start = lambda label: events.on_group_start(name, label)  # noqa: E731
    if plan.in_process:
        run_in_process(groups, cfg, save_group, progress, start)
        return
    recipe = dataclasses.replace(workers.DeviceRecipe.of(opts), threads=plan.device.threads)  # as configured
    unstable = lambda text: events.on_note("unstable", text)  # noqa: E731
    if plan.target is not None:
        from latbench.run import fleet

        fleet.measure_groups(groups, workers.job_for(cfg, recipe), plan, save_group, start, unstable, run)
        return
    workers.measure_groups(groups, workers.job_for(cfg, recipe), plan.repeats, save_group, progress, start, unstable)


def _title(plan: Plan, source: CaseSource, specs: list[CaseSpec]) -> str:
    info, device = source.info(), plan.device
    return (f"{info['name']} ({info['experiment']}) on {device.name} [{device.model_name(plan.fingerprint)}]"
            f", {device.threads} thread(s), {plan.opts.schedule}, batch "
            f"{','.join(dict.fromkeys(str(s.batch) for s in specs))}")
