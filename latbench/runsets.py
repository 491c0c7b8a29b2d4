"""Which runs may be compared and pooled: the machines (fingerprints) and the settings a run was
measured with, which must agree before its latencies are pooled with another run's (compare, gate); the
checks that refuse sides that cannot be compared; and a list of runs split into sets by suite and
settings, in time order (`latbench compare results/*.csv` on a directory of several suites and runs).

A --quick run and a full one, runs at other thread counts, latency semantics, L2 states, numbers of
worker processes or schedules measure different things: they are never pooled on one side.
"""

from __future__ import annotations

from typing import Sequence

from latbench.env import machine_identity
from latbench.errors import ResultsError
from latbench.results.read import Run


def fingerprint_differences(base: Sequence[Run], cand: Sequence[Run]) -> list[str]:
    """Human lines naming each machine/software field (env.machine_identity) whose values differ
    between (or within) the sides. Only fields every run records are compared (fingerprint_coverage
    says which an older file lacks)."""
    ids = [machine_identity(r.meta) for r in (*base, *cand)]
    common = [f for f in ids[0] if all(f in i for i in ids)] if ids else []
    out = []
    for f in common:
        bv = sorted({machine_identity(r.meta)[f] for r in base})
        cv = sorted({machine_identity(r.meta)[f] for r in cand})
        if bv != cv or len(bv) > 1:
            out.append(f"{f}: baseline {' / '.join(map(repr, bv))}, candidate {' / '.join(map(repr, cv))}")
    return out


def fingerprint_coverage(base: Sequence[Run], cand: Sequence[Run]) -> str:
    """'' when every run records the same fingerprint fields; else a line naming the fields compared
    and those some (older) files lack, which the machine check could not compare."""
    ids = [machine_identity(r.meta) for r in (*base, *cand)]
    every = set().union(*ids) if ids else set()
    common = set.intersection(*(set(i) for i in ids)) if ids else set()
    lacking = sorted(every - common)
    if not lacking:
        return ""
    older = sorted({r.path.name for r, i in zip((*base, *cand), ids) if set(i) != every})
    return (f"fingerprints compared on the {len(common)} field(s) every file records; {', '.join(older)} "
            f"(older) lack(s) {', '.join(lacking)}, so machines that differ only there cannot be told apart")


def suites_of(runs: Sequence[Run]) -> set[str]:
    """The suites the runs' rows belong to."""
    return {str(v) for r in runs for v in r.rows["suite"].dropna().unique()}


# What a run's metadata records about how it measured, which changes what its latencies mean: runs that
# differ in one of these are never pooled on one side. Older files lack some: their value then.
RUN_SETTINGS = ("device", "quick", "threads", "latency_semantics", "l2", "repeats", "schedule", "widths_mode",
                "platform_widths")
SETTING_DEFAULTS = {"latency_semantics": "throughput", "l2": "warm", "repeats": 1, "schedule": "interleaved"}
# Between the sides, widths are the network's (compare marks a changed network in its `changed` column).
# Between the sides, device and threads are the fingerprint's (compare aligns CPU against CUDA on purpose).
BETWEEN_SIDES = ("quick", "latency_semantics", "l2", "repeats", "schedule")


def run_settings(run: Run) -> dict[str, str]:
    """The RUN_SETTINGS of a run, as text ('--quick' runs say quick=True)."""
    m = run.meta
    return {k: str(m.get(k, SETTING_DEFAULTS.get(k, "unrecorded"))) for k in RUN_SETTINGS}


def settings_text(settings: dict[str, str], keys: Sequence[str] = RUN_SETTINGS) -> str:
    """'quick, 1 thread(s), throughput, l2 warm, 8 process(es), interleaved' (device first when asked)."""
    parts = {"device": settings.get("device", ""), "quick": "quick" if settings.get("quick") == "True" else "full",
             "threads": f"{settings.get('threads')} thread(s)", "latency_semantics": settings.get("latency_semantics"),
             "l2": f"l2 {settings.get('l2')}", "repeats": f"{settings.get('repeats')} process(es)",
             "schedule": settings.get("schedule"), "widths_mode": f"{settings.get('widths_mode')} widths",
             "platform_widths": f"{settings.get('platform_widths')} platform"}
    return ", ".join(str(parts[k]) for k in keys if k in parts)


def _differing(runs: Sequence[Run], keys: Sequence[str]) -> list[str]:
    vals = [run_settings(r) for r in runs]
    out = []
    for k in keys:
        seen: dict[str, list[str]] = {}
        for r, v in zip(runs, vals):
            seen.setdefault(v[k], []).append(r.path.name)
        if len(seen) > 1:
            out.append(f"{k}: " + " / ".join(f"{v} ({', '.join(names[:2])}{' ...' if len(names) > 2 else ''})"
                                             for v, names in seen.items()))
    return out


def settings_differences(base: Sequence[Run], cand: Sequence[Run]) -> list[str]:
    """Human lines naming each BETWEEN_SIDES setting whose value differs between the sides."""
    bv = {k: sorted({run_settings(r)[k] for r in base}) for k in BETWEEN_SIDES}
    cv = {k: sorted({run_settings(r)[k] for r in cand}) for k in BETWEEN_SIDES}
    return [f"{k}: baseline {' / '.join(bv[k])}, candidate {' / '.join(cv[k])}" for k in BETWEEN_SIDES
            if bv[k] != cv[k]]


def check_settings(runs: Sequence[Run], side: str) -> None:
    """ResultsError (exit 2) when the runs of one side were measured with different settings."""
    diffs = _differing(runs, RUN_SETTINGS)
    if diffs:
        raise ResultsError(f"the {side} runs were measured with different settings ({'; '.join(diffs)}): runs of "
                           f"different settings are never pooled", where=str(runs[0].path),
                           hint="give one setting's runs per side; 'latbench compare DIR/*.csv' (no --baseline) "
                                "splits a directory by suite and setting")


def settings_groups(runs: Sequence[Run]) -> list[list[Run]]:
    """The runs split by suite and RUN_SETTINGS, each group in time order (metadata start, then name),
    the groups in the order of their first run."""
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        key = (tuple(sorted(suites_of([r]))), tuple(run_settings(r).values()))
        groups.setdefault(key, []).append(r)
    ordered = [sorted(g, key=_when) for g in groups.values()]
    return sorted(ordered, key=lambda g: _when(g[0]))


def _when(run: Run) -> tuple[str, str]:
    """When a run started: its metadata's start, else the UTC stamp in its file name (then the name)."""
    import re

    stamp = re.search(r"(\d{8}T\d{6})Z", run.path.name)
    started = str(run.meta.get("started_at_utc") or "")
    if not started and stamp:
        d = stamp.group(1)
        started = f"{d[:4]}-{d[4:6]}-{d[6:8]}T{d[9:11]}:{d[11:13]}:{d[13:15]}"
    return (started[:19], run.path.name)


def check_sides(base: Sequence[Run], cand: Sequence[Run]) -> None:
    """ResultsError (exit 2) when the sides cannot be compared at all: a side without runs, one run on
    both sides (the same file, or a copy: same run_id), runs of one side measured with different
    settings (check_settings), or runs of different suites."""
    for side, runs in (("baseline", base), ("candidate", cand)):
        if not runs:
            raise ResultsError(f"no {side} runs given", hint="give at least one results file per side")
    bids = {r.run_id: r for r in base}
    for r in cand:
        same = next((b for b in base if b.path.resolve() == r.path.resolve()), None) or bids.get(r.run_id)
        if same is not None:
            raise ResultsError(f"the same run is on both sides (run_id {r.run_id})", where=str(r.path),
                               hint="give the baseline's results as --baseline and the candidate's as --candidate")
    for side, runs in (("baseline", base), ("candidate", cand)):
        check_settings(runs, side)
    bs, cs = suites_of(base), suites_of(cand)
    if bs != cs:
        raise ResultsError(f"the sides ran different suites: baseline {', '.join(sorted(bs))}, candidate "
                           f"{', '.join(sorted(cs))}", where=str(cand[0].path),
                           hint="compare runs of the same suite (a renamed suite is a different one)")
