"""Interleaved A/B gate (issue 12, item 3): two versions of the user's code measured in the SAME rounds.

`latbench ab SUITE --base B --head H --allow-import`: B and H are two source directories, or two git
refs of --repo checked out as temporary worktrees. The modules the suite's `builder: user` factories
name are imported from each side under distinct module names (`_latbench_ab_base.pkg.mod`,
`_latbench_ab_head.pkg.mod`) in this one process. Each suite case becomes a group of two cases,
`case@base` (the group's baseline) and `case@head`, measured by the run wing's pipeline (run/pipeline.py) in interleaved
rounds, so machine-wide drift lands on both sides of every round and cancels in the per-round ratio
head/base. Which side is built, allocated, warmed up and sized first is not left to one side: each case
is measured in two groups, base first and head first, each in half the case's budget (ORDERS), and the
judged quantity is the median of the paired ratios of both with its interval (order statistics widened
for autocorrelation between rounds); compare.classify (verdict.gate_status) and gate.decide make the
decision, so output and exit codes are the gate's.

Limits: a factory that imports more of its package lazily (inside the function) would import it
from sys.path, not from its side: import what the model needs at module level. A change that needs
two environments (a torch upgrade) cannot be measured in one process; use the multi-run gate
(`latbench gate` on ABAB-alternated runs) for that.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import subprocess
import sys
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from latbench.compare import DEFAULT_ALPHA, Comparison, Delta, classify, network_change, to_decide
from latbench.errors import LatbenchError, SuiteError
from latbench.records import KEY_COLUMNS, CaseSpec
from latbench.stats import geometric_mean
from latbench.verdict import revoke_oversubscribed_pass

SIDES = ("base", "head")
ALIAS = "_latbench_ab_{side}"
METHOD = "ab-paired-rounds"
# Issue 21: which side is built, allocated, warmed up and block-sized first is a bias of its own (A/A
# ratios 0.98-1.00 with base always first). Each case is measured twice, base first and head first, each
# in half the time, and the paired per-round ratios of both orders are pooled, so the order cancels.
ORDERS = (("", SIDES), ("#head-first", SIDES[::-1]))


@dataclass(frozen=True)
class Side:
    name: str  # base | head
    spec: str  # what the user gave: a directory or a git ref
    root: Path  # the source directory imported from


@contextlib.contextmanager
def checkout_sides(base: str, head: str, repo: Path) -> Iterator[tuple[Side, Side]]:
    """The two sides as source directories: a directory is used as it is; anything else is a git ref
    of `repo`, checked out (detached) as a temporary worktree that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="latbench-ab-") as tmp:
        made: list[Path] = []
        try:
            sides = tuple(_side(name, spec, repo, Path(tmp), made) for name, spec in zip(SIDES, (base, head)))
            yield sides  # type: ignore[misc]
        finally:
            for wt in made:
                subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(wt)],
                               capture_output=True, text=True)


def _side(name: str, spec: str, repo: Path, tmp: Path, made: list[Path]) -> Side:
    p = Path(spec)
    if p.is_dir():
        return Side(name, spec, p.resolve())
    sha = _git(repo, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}", what=f"--{name} {spec}")
    wt = tmp / name
    _git(repo, "worktree", "add", "--detach", str(wt), sha, what=f"--{name} {spec}")
    made.append(wt)
    return Side(name, f"{spec} ({sha[:12]})", wt.resolve())


def _git(repo: Path, *args: str, what: str) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise LatbenchError(f"{what}: cannot run git ({exc})", hint="install git, or give a source directory")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["not a commit"])[-1]
        raise LatbenchError(f"{what} is neither a directory nor a commit of {repo} ({last})", where=str(repo),
                            hint="give a source directory, or a branch/tag/sha with --repo pointing at the checkout")
    return proc.stdout.strip()


def load_ab_suite(path: Path, side: Side, platform: str, allow_import: bool) -> list[CaseSpec]:
    """The suite's cases, loaded (and its factories checked) against one side's code; the modules that
    check imported are forgotten again, so that load_side imports each side afresh."""
    from latbench.suite import expand, load_suite

    before = set(sys.modules)
    sys.path.insert(0, str(side.root))
    importlib.invalidate_caches()
    try:
        specs = expand(load_suite(path, allow_import), platform)
    finally:
        sys.path.remove(str(side.root))
        for k in set(sys.modules) - before:
            origin = getattr(sys.modules[k], "__file__", None) or ""
            if origin and side.root in Path(origin).resolve().parents:
                del sys.modules[k]
    factory_modules(specs)
    return specs


def factory_modules(specs: Sequence[CaseSpec]) -> list[str]:
    """The modules the suite's user factories live in; SuiteError when a case is not `builder: user`."""
    mods = []
    for s in specs:
        if s.builder != "user":
            raise SuiteError(f"case {s.case!r} uses builder {s.builder!r}: 'latbench ab' compares two versions "
                             f"of YOUR code, so every case must be 'builder: user'", where=s.source,
                             hint="name your module with builder: user and params.factory 'pkg.module:function'")
        mods.append(str(s.param_dict["factory"]).partition(":")[0])
    return list(dict.fromkeys(mods))


def load_side(side: Side, modules: Sequence[str]) -> None:
    """Import `modules` from side.root and register them as ALIAS.<module> (so both sides coexist).

    Whatever was imported under the same top-level names before is put back afterwards."""
    alias = ALIAS.format(side=side.name)
    tops = {m.split(".")[0] for m in modules}

    def ours(name: str) -> bool:
        return name.split(".")[0] in tops

    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if ours(k)}
    sys.path.insert(0, str(side.root))
    importlib.invalidate_caches()
    loaded: dict[str, types.ModuleType] = {}
    try:
        for m in modules:
            try:
                mod = importlib.import_module(m)
            except Exception as exc:  # noqa: BLE001 - the user's code, any error: one located line
                raise SuiteError(f"cannot import {m!r} from the {side.name} ({side.spec}): "
                                 f"{type(exc).__name__}: {exc}", where=str(side.root),
                                 hint="the suite's factory must exist in both versions of the code") from None
            origin = Path(getattr(mod, "__file__", "") or "").resolve()
            if side.root not in origin.parents:
                raise SuiteError(f"{m!r} imported from {origin}, not from the {side.name} ({side.root})",
                                 where=str(side.root), hint="uninstall the package under test from this "
                                 "environment (install latbench only), so each side imports its own copy")
    finally:
        sys.path.remove(str(side.root))
        loaded = {k: sys.modules.pop(k) for k in list(sys.modules) if ours(k)}
        sys.modules.update(saved)
    pkg = types.ModuleType(alias)
    pkg.__path__ = []  # a namespace for the side's modules
    sys.modules[alias] = pkg
    for name, mod in loaded.items():
        sys.modules[f"{alias}.{name}"] = mod


def unload_sides() -> None:
    for k in [k for k in sys.modules if k.split(".")[0] in {ALIAS.format(side=s) for s in SIDES}]:
        del sys.modules[k]


def side_spec(spec: CaseSpec, side: str) -> CaseSpec:
    """The case as measured on one side: case@side, its factory under the side's module alias."""
    params = dict(spec.params)
    params["factory"] = f"{ALIAS.format(side=side)}.{params['factory']}"
    return dataclasses.replace(spec, case=f"{spec.case}@{side}", params=tuple(sorted(params.items())),
                               baseline_case=f"{spec.case}@base")


@dataclass(frozen=True)
class ABResult:
    comparison: Comparison
    rows: list[dict[str, Any]]  # the pipeline's rows (case@base, case@head)
    sides: tuple[Side, Side]


@dataclass
class ABSource:
    """The suite's cases on both sides as a case source of the run wing: each case a group of two,
    case@base (the baseline) and case@head; the sides' modules are imported while it is measured."""

    cases: Sequence[CaseSpec]
    sides: tuple[Side, Side]
    name: str = "ab"
    path: str = "latbench ab"
    widths: str = "paper"
    in_process_only: bool = True
    claims: list[Any] = dataclasses.field(default_factory=list)
    on_case: Callable[[str], None] = lambda label: None

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "sha256": None, "experiment": "ab",
                "description": f"base {self.sides[0].spec} vs head {self.sides[1].spec}"}

    def specs(self, platform: str, **_: Any) -> list[CaseSpec]:
        # each case two groups of its own, one per build order (ORDERS): the experiment names the case and
        # the order, so groupby keeps each pair together; base stays the baseline of both
        return [dataclasses.replace(side_spec(c, side), experiment=f"{c.experiment}/{c.case}{suffix}")
                for c in self.cases for suffix, order in ORDERS for side in order]

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        modules = factory_modules(self.cases)
        try:
            for side in self.sides:
                load_side(side, modules)
            yield
        finally:
            unload_sides()


def run_ab(specs: Sequence[CaseSpec], sides: tuple[Side, Side], device: str = "cpu", threads: int | None = None,
           threshold_for: Callable[[dict[str, Any]], float] | float = 0.10, modes: Sequence[str] = ("eager",),
           max_time_s: float | None = None, min_time_s: float | None = None, seed: int = 0,
           fake_backend: bool | None = None,
           on_case: Callable[[str], None] = lambda label: None) -> ABResult:
    """Measure every case of `specs` on both sides in interleaved rounds and judge it (see module doc)."""
    from latbench.run.options import RunOptions
    from latbench.run.session import Events, run_sources

    from latbench.run.options import stop_policy

    thr = threshold_for if callable(threshold_for) else (lambda _k, t=float(threshold_for): t)
    factory_modules(specs)
    # the two build orders share the case's budget and target (each measures half, to rel_ci * sqrt 2)
    whole = stop_policy(device, max_time=max_time_s, min_time=min_time_s)
    opts = RunOptions(device=device, threads=threads, modes=",".join(modes), max_time=whole.max_time_s / len(ORDERS),
                      min_time=whole.min_time_s / len(ORDERS), target=whole.rel_ci * math.sqrt(len(ORDERS)),
                      seed=seed, fake_backend=fake_backend, roofline=False, results_dir=None, repeats=1,
                      argv=("latbench", "ab"))

    source = ABSource(specs, sides)
    labels = {s.group_label: f"{c.label}{' (head built first)' if suffix else ''}"
              for s, (c, suffix) in zip(source.specs(""), [(c, sfx) for c in specs for sfx, _ in ORDERS
                                                             for _ in SIDES])}

    class _Cases(Events):
        def on_group_start(self, suite_name: str, group: str) -> None:
            on_case(labels.get(group, group))

    outcome = run_sources(opts, [source], _Cases())
    if outcome.interrupted is not None:  # a partial A/B is never judged: the command stops with 128 + N
        from latbench.faults import Interrupted

        raise Interrupted(outcome.interrupted.signum)
    result = outcome.suites[0]
    by_case = {f"{c.experiment}/{c.case}{suffix}": c for c in specs for suffix, _ in ORDERS}
    rows = both_orders(result.rows, result.samples)
    rows = [{**r, "experiment": by_case[str(r["experiment"])].experiment} for r in rows]
    deltas = judge_rows(rows, thr)
    cmp = Comparison(deltas, [f"base: {sides[0].spec}"], [f"head: {sides[1].spec}"], alpha=DEFAULT_ALPHA,
                     noise_floor=0.0)
    return ABResult(cmp, rows, sides)


def both_orders(rows: Sequence[dict[str, Any]], samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One base and one head row per case and mode from its two groups (ORDERS): when all four rows are
    ok, the head row's ratio is the median of the paired per-round ratios head/base of BOTH orders, with
    their interval (stats.median_ci_dependent over the rounds of both), and the latencies are the
    geometric means of the two orders'; otherwise the rows of the order that failed (so the failure is
    judged), or the base-first order's. Rows keep the base-first group's experiment name."""
    from latbench.stats import INTERVAL, median_ci_dependent, per_round_ratios

    first, second = (suffix for suffix, _ in ORDERS)
    groups: dict[tuple, dict[tuple[str, str], dict[str, Any]]] = {}
    for r in rows:
        exp = str(r["experiment"])
        suffix = second if exp.endswith(second) else first
        case, _, side = str(r["case"]).rpartition("@")
        key = (exp[: len(exp) - len(suffix)] if suffix else exp, case, str(r.get("mode")))
        groups.setdefault(key, {})[(suffix, side)] = r
    out: list[dict[str, Any]] = []
    for (exp, case, mode), got in groups.items():
        four = [got.get((sfx, side)) for sfx in (first, second) for side in SIDES]
        if any(r is None for r in four):  # not both orders (a sub-selection, an older caller): as measured
            out.extend({**r, "experiment": exp} for r in four if r is not None)
            continue
        b1, h1, b2, h2 = four
        if not all(r.get("status") == "ok" for r in four):
            bad = (b2, h2) if any(r.get("status") != "ok" for r in (b2, h2)) else (b1, h1)
            out.extend({**r, "experiment": exp} for r in bad)
            continue

        def series(sfx: str, side: str) -> tuple[list[float], list[int]]:
            mine = [x for x in samples if str(x.get("experiment")) == exp + sfx and str(x.get("mode")) == mode
                    and str(x.get("case")) == f"{case}@{side}"]
            return [float(x["latency_ms"]) for x in mine], [int(x["round"]) for x in mine]

        ratios = [q for sfx in (first, second) for q in per_round_ratios(*series(sfx, "head"), *series(sfx, "base"))]
        if not ratios:
            out.extend({**r, "experiment": exp} for r in (b1, h1))
            continue
        lo, hi = median_ci_dependent(ratios)
        gm = lambda a, b: geometric_mean([float(a), float(b)])  # noqa: E731
        # a pair judged on both orders is oversubscribed where any of its four rows was (no pass on it)
        over = {"oversubscribed": any(r.get("oversubscribed") is True for r in four)}
        b1, h1 = {**b1, **over}, {**h1, **over}
        out.append({**b1, "experiment": exp, "latency_ms": gm(b1["latency_ms"], b2["latency_ms"]),
                    "samples": int(b1.get("samples") or 0) + int(b2.get("samples") or 0)})
        out.append({**h1, "experiment": exp, "latency_ms": gm(h1["latency_ms"], h2["latency_ms"]),
                    "ratio_to_baseline": float(sorted(ratios)[len(ratios) // 2]) if len(ratios) % 2 else
                    float((sorted(ratios)[len(ratios) // 2 - 1] + sorted(ratios)[len(ratios) // 2]) / 2),
                    "ratio_ci_low": lo, "ratio_ci_high": hi, "samples": len(ratios),
                    "ratio_interval": f"{INTERVAL} (both build orders)"})
    return out


def judge_rows(rows: Sequence[dict[str, Any]], thr: Callable[[dict[str, Any]], float]) -> list[Delta]:
    """One Delta per (case, mode): the head row's paired ratio to the base row, classified."""
    by: dict[tuple, dict[str, dict[str, Any]]] = {}
    for row in rows:
        case, _, side = str(row["case"]).rpartition("@")
        key = {c: row.get(c) for c in KEY_COLUMNS}
        key["case"] = case
        by.setdefault(tuple(str(key[c]) for c in KEY_COLUMNS), {})[side] = {**row, "_key": key}
    out = []
    for pair in by.values():
        b, h = pair.get("base"), pair.get("head")
        key = (h or b)["_key"]
        t = float(thr(key))
        if b is None or h is None:
            out.append(Delta(key, "missing", t, note=f"not measured on the {'base' if b is None else 'head'}"))
            continue
        st = {s: r.get("status") for s, r in (("base", b), ("head", h))}
        if st["base"] == "skipped" and st["head"] == "skipped":
            out.append(Delta(key, "skipped", t, note=f"skipped on both sides: {h.get('error', '')}"))
            continue
        changed = network_change(b, h)
        if st["head"] != "ok":
            out.append(Delta(key, "failed", t, note=f"failed in the candidate (head): {h.get('error', '')}"[:300],
                             changed=changed, failed_side="candidate"))
            continue
        if st["base"] != "ok":
            out.append(Delta(key, "failed", t, note=f"failed in every baseline run (base): {b.get('error', '')}"[:300],
                             changed=changed, failed_side="baseline"))
            continue
        bms, hms = float(b["latency_ms"]), float(h["latency_ms"])
        if not all(math.isfinite(v) and v > 0 for v in (bms, hms)):
            out.append(Delta(key, "invalid", t, note=f"latency_ms base {bms}, head {hms}", changed=changed))
            continue
        ratio, lo, hi = (float(h.get(c) if h.get(c) is not None else math.nan)
                         for c in ("ratio_to_baseline", "ratio_ci_low", "ratio_ci_high"))
        status, significant = classify(ratio, lo, hi, t)
        d = Delta(key, status, t, base_ms=geometric_mean([bms]), cand_ms=geometric_mean([hms]), ratio=ratio,
                  ci_low=lo, ci_high=hi, significant=significant, method=METHOD, base_runs=1, cand_runs=1,
                  note="; ".join(n for n in (f"changed network: {changed}" if changed else "",
                                             f"{h.get('samples')} paired rounds" + (
                                                 ", both build orders" if "both" in str(
                                                     h.get("ratio_interval") or "") else "")) if n),
                  changed=changed)
        out.append(revoke_oversubscribed_pass(d, {"base": [b], "head": [h]}))
    return [dataclasses.replace(d, note="; ".join(n for n in (d.note, to_decide(d)) if n)) for d in out]
