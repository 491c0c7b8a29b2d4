"""`latbench report`: results CSVs of any suites -> a markdown report with PNG figures: each suite's
claims judged, every case against its baseline (beside the paper's Tables 1-4 for G1-G4), roofline and
which cost ranks latency. Formatting and file writing only; every number comes from analysis.py or the rows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


from latbench import __version__
from latbench.errors import LatbenchError
from latbench.report import analysis, plots, predictors
from latbench.report.analysis import CaseEffect, ClaimResult, ResultSet, SuiteInfo
from latbench.report.terminal import SWEEP_AXES, claim_effect_text, expected_text, group_text, point_text, \
    ratio_ci_text
from latbench.results.files import check_output, safe_directory, write_output

FIGURES_DIR = "figures"


@dataclass
class Report:
    markdown: Path
    figures: list[Path]
    suites: list[SuiteInfo]
    claims: list[ClaimResult]
    predictors: predictors.PredictorTable


def check_report_name(name: str) -> None:
    """The report's file name (-o's, or the old --name) is a plain name inside its directory: not empty, no
    directory part (so never outside it)."""
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise LatbenchError(f"--name {name!r} is not a plain file name",
                            hint="give a file name such as report.md; use --out for the directory")


def write_report(paths: list[Path], out_dir: Path, name: str = "report.md", force: bool = False) -> Report:
    """Analyse the results files and write out_dir/name plus out_dir/figures/*.png, under the file
    policy (results.files): nothing existing replaced unless `force`, never a run's file, never through
    a symbolic link (figures/ included); every file written atomically. All targets are checked before
    anything is written."""
    md = check_output(out_dir / name, force)
    out_dir = md.parent  # resolved once
    rs = analysis.load(paths)
    infos = analysis.suites(rs)
    effects = analysis.case_effects(rs)
    claims = analysis.judge_claims(rs, infos)
    scores = predictors.rank_predictors(rs.rows)
    ceilings = analysis.ceilings(rs)
    headings = {i.experiment: _heading(i) for i in infos}
    stem = Path(name).stem
    ok = rs.rows[rs.rows["status"] == "ok"]
    groups = [(label, mode, rows, out_dir / FIGURES_DIR / f"{stem}-{analysis.slug(label)}-{mode}")
              for (label, mode), rows in ok.groupby(["device_label", "mode"], sort=True)]
    if groups:
        safe_directory(out_dir)
        safe_directory(out_dir / FIGURES_DIR)
    for *_, base in groups:  # a figure of an earlier report is replaced only with force, like the report
        for kind in _FIGURE_KINDS:
            check_output(base.with_name(base.name + kind), force)
    check_output(md, force)
    figures: dict[str, list[Path]] = {}
    for label, mode, rows, base in groups:
        title = f"{label} ({mode})"
        drawn = [
            plots.flops_vs_latency(rows, headings, title, base.with_name(base.name + _FIGURE_KINDS[0])),
            plots.roofline(rows, ceilings.get(label), title, base.with_name(base.name + _FIGURE_KINDS[1])),
            plots.paper_side_by_side([c for c in effects if c.device_label == label and c.mode == mode], title,
                                     base.with_name(base.name + _FIGURE_KINDS[2])),
        ]
        figures[title] = [f for f in drawn if f is not None]
    safe_directory(out_dir)
    write_output(md, render(rs, infos, effects, claims, scores, ceilings, figures, out_dir), force)
    return Report(md, [p for ps in figures.values() for p in ps], infos, claims, scores)


_FIGURE_KINDS = ("-flops-latency.png", "-roofline.png", "-paper.png")


# --- rendering -----------------------------------------------------------------------------------


def _n(v: Any, fmt: str = ".2f", none: str = "-") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return none
    return none if math.isnan(f) else format(f, fmt)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def speed_text(c: CaseEffect) -> str:
    if c.case == c.baseline:
        return "1 (baseline)"
    if c.unstable:  # no tight CI for a number that does not hold from one process to the next
        return f"{c.speed:.2f} **unstable** (moved {c.spread_pct:.1f}% between {c.processes} processes)"
    from latbench.verdict import defined

    if not defined(c.ci_low, c.ci_high):  # undefined or absurd: never printed as numbers
        return f"{c.speed:.2f} [CI undefined]"
    lo, hi = 1 / c.ci_high, 1 / c.ci_low
    scope = " within one process" if c.processes <= 1 else ""  # issue 21: a CI without run-to-run variation
    return f"{c.speed:.2f} [{_n(lo)}, {_n(hi)}]{scope}"


def is_paper(experiment: str) -> bool:
    return experiment in analysis.PAPER_EXPERIMENTS


def title(infos: list[SuiteInfo]) -> str:
    """From the suites the results hold: the paper's guidelines, or the suites by name."""
    exps = list(dict.fromkeys(i.experiment for i in infos))
    if exps and all(is_paper(e) for e in exps):
        names = "G1-G4" if sorted(exps) == list(analysis.PAPER_EXPERIMENTS) else ", ".join(sorted(exps))
        return f"ShuffleNet V2 guidelines {names} on this hardware"
    return "Suites " + ", ".join(f"{i.name} ({i.experiment})" for i in infos) + " on this hardware"


def _heading(i: SuiteInfo) -> str:
    """'G1: equal channel widths (1:1) ...' for the paper's suites (their claim), else 'suite (experiment)'."""
    if is_paper(i.experiment) and i.claims:
        return i.claims[0].text
    return f"{i.name} ({i.experiment})"


def render(rs: ResultSet, infos: list[SuiteInfo], effects: list[CaseEffect], claims: list[ClaimResult],
           scores: predictors.PredictorTable, ceilings: dict[str, dict[str, Any]], figures: dict[str, list[Path]],
           out_dir: Path) -> str:
    parts = [
        f"# {title(infos)}",
        f"Generated by latbench {__version__} on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from "
        f"{len(rs.files)} results file(s): " + ", ".join(f"`{p.name}`" for p in rs.files) + ".",
    ]
    if any(is_paper(i.experiment) for i in infos):
        parts.append("Paper: Ma et al., *ShuffleNet V2*, ECCV 2018 / arXiv:1807.11164, Tables 1-4 (GTX 1080Ti at "
                     "batch 1 assumed, and one Snapdragon 810 core). Only trends transfer: our absolute times come "
                     "from a different library and hardware.")
    parts += [
        "## Devices", _devices(rs, ceilings),
        "## Runs", _runs(rs),
        "## Verdicts", _verdicts(infos, claims),
        "Each claim compares two cases of its suite (the suite's `claims:`) by the paired latency ratio "
        "case / than, pooled over the rounds of every run of the suite on the device (across processes where "
        "there are several). A claim about cases at fixed FLOPs is judged on the ratio **per FLOP** (ratio / "
        "FLOPs ratio), shown beside the raw one where FLOPs differ; a claim marked not at fixed FLOPs says why "
        "and is judged raw. Per group (scale and sweep point): **holds** when the whole 95% CI is on the "
        "claimed side of the bound, **fails** when it is wholly on the other side, **unclear** when it "
        "straddles the bound; **equivalent** when it lies inside a stated band. A claim that holds is read "
        "against the source's own ratio on this platform (within its tolerance): **holds, larger/smaller than "
        "the paper** when the whole CI lies beyond it. Overall: one word when all groups agree (sizes are per "
        "group), else **mixed**. Every verdict has a p-value (the inversion of its CI); "
        "over the report's verdicts the false-discovery rate is held at 5 % (Benjamini-Hochberg): a verdict "
        "whose test is not rejected is **unclear**, and the sentence under the table counts those that would "
        "flip without it (docs/claims.md).",
    ]
    for info in infos:
        cs = [c for c in effects if c.experiment == info.experiment]
        if cs:
            parts += [f"## {_heading(info)}", _suite_section(info, cs, claims)]
    from latbench.report.table8 import section as table8_section  # the whole networks beside Table 8

    parts += [s for s in [table8_section(rs.rows)] if s]
    parts += ["## Which cost predicts latency?", _predictors(scores)]
    for fig_title, figs in figures.items():
        if figs:
            parts.append(f"## Figures: {fig_title}")
            parts += [f"![{f.stem}]({f.relative_to(out_dir).as_posix()})" for f in figs]
    parts += ["## How to read this", _NOTES]
    return "\n\n".join(parts) + "\n"


def _devices(rs: ResultSet, ceilings: dict[str, dict[str, Any]]) -> str:
    flags = analysis.flag_counts(rs).set_index("device_label")
    rows = []
    for label, f in flags.iterrows():
        c = ceilings.get(str(label)) or {}
        runs = rs.rows.loc[rs.rows["device_label"] == label, "run_id"].unique()
        fp = (rs.meta.get(str(runs[0])) or {}).get("fingerprint") or {}
        peak, bw = c.get("peak_flops_per_s"), c.get("bandwidth_bytes_per_s")
        rows.append([str(label), str(len(runs)), str(f["rows"]), _n(peak / 1e9 if peak else None, ".1f"),
                     _n(bw / 1e9 if bw else None, ".1f"), _n(peak / bw if peak and bw else None, ".1f"),
                     f"torch {fp.get('torch', '?')}, {fp.get('os', '?')}",
                     f"{f['throttled']} throttled, {f['under_load']} under load"])
    return _table(["device", "runs", "rows", "peak GFLOP/s", "bandwidth GB/s", "ridge FLOP/B", "software",
                   "telemetry flags"], rows)


def _runs(rs: ResultSet) -> str:
    """Each run the report reads, from its metadata: when it was measured, on what machine and software, and
    the command that measured it (the interpreter's path to latbench shown as `latbench`)."""
    rows = []
    for run_id in dict.fromkeys(rs.rows["run_id"].dropna().astype(str)):
        m = rs.meta.get(run_id) or {}
        fp = m.get("fingerprint") if isinstance(m.get("fingerprint"), dict) else {}
        files = m.get("files") if isinstance(m.get("files"), dict) else {}
        start, end = str(m.get("started_at_utc") or "?"), str(m.get("finished_at_utc") or "?")
        end = end[11:16] if end[:10] == start[:10] else end[:16].replace("T", " ")  # the day once when it is one
        when = f"{start[:16].replace('T', ' ')} - {end}"
        cmd = [str(a) for a in (m.get("command") or [])]
        cmd = " ".join(["latbench", *cmd[1:]]) if cmd else "?"
        commit = f" (commit {fp['latbench_commit']})" if fp.get("latbench_commit") else ""
        rows.append([f"`{files.get('results') or run_id}`", when,
                     f"{fp.get('cpu_model', '?')}, {fp.get('cpu_logical_cores', '?')} logical / "
                     f"{fp.get('cpu_physical_cores', '?')} physical cores, host {fp.get('hostname', '?')}",
                     f"torch {fp.get('torch', '?')}, latbench {fp.get('latbench', '?')}{commit}, "
                     f"python {fp.get('python', '?')}",
                     f"`{cmd}`", str(m.get("status", "?"))])
    return _table(["results file", "measured (UTC)", "machine", "software", "command", "status"], rows)


def _verdicts(infos: list[SuiteInfo], claims: list[ClaimResult]) -> str:
    from latbench.claims import fdr_text, join_words, p_text, verdict_text

    rows = []
    with_paper = any(r.claim.paper for r in claims)
    for r in claims:
        names = group_text(r.groups)
        per_group = join_words(f"{g}: {verdict_text(v)}" for g, v in zip(names, r.groups))
        ps = ", ".join(f"{g}: {p_text(v)}" for g, v in zip(names, r.groups))
        effect = "<br>".join(f"{g}: {claim_effect_text(v)}" for g, v in zip(names, r.groups))
        source = f" (source: {r.claim.source})" if r.claim.source else ""
        why = f" Not at fixed FLOPs: {r.claim.why}" if not r.claim.fixed_flops else ""
        rows.append([r.suite, f"{r.device_label} ({r.mode})",
                     f"{r.claim.case} vs {r.claim.than}: {r.claim.text}{source}{why}",
                     expected_text(r.claim.expect, r.claim.bound, r.claim.band), f"**{r.verdict}** ({per_group})",
                     effect, ps] + ([r.claim.paper or ""] if with_paper else []))
    parts = []
    if rows:
        parts.append(_table(["suite", "device", "claim", "expected ratio", "verdict",
                             "latency ratio case/than [95% CI]", "p-value"] + (["paper"] if with_paper else []), rows))
        parts.append(fdr_text([v for r in claims for v in r.groups]))
    judged = {r.suite for r in claims}
    for i in infos:
        if not i.claims:
            where = f" (`{i.source}`)" if i.source else " (its suite file was not found: suites/" + i.name + ".yaml)"
            parts.append(f"- `{i.name}`: no claims in this suite{where}.")
        elif i.name not in judged:
            parts.append(f"- `{i.name}`: no claim could be judged (cases skipped, failed, or claims for other "
                         "devices).")
    return "\n\n".join(parts)


def _suite_section(info: SuiteInfo, cs: list[CaseEffect], claims: list[ClaimResult]) -> str:
    paper = is_paper(info.experiment)
    swept = [a for a in SWEEP_AXES if len({str(c.point.get(a)) for c in cs}) > 1]
    rows = []
    for c in cs:
        r = c.row
        rows.append([c.case, f"x{c.scale}"] + ([point_text(c.point, swept)] if swept else [])
                    + [c.device_label if len({x.device_label for x in cs}) > 1 else c.mode,
                       _n(r.get("mult_adds", math.nan) / 1e6, ".1f"), _n(r.get("mac_bytes", math.nan) / 1e6, ".2f"),
                       _n(r.get("latency_ms"), ".3f"), speed_text(c)]
                    + ([_n(c.paper_speed.get("arm")), _n(c.paper_speed.get("gpu"))] if paper else [])
                    + [_n(r.get("arithmetic_intensity_flops_per_byte"), ".1f"), _n(r.get("roofline_pct"), ".1f"),
                       _n(r.get("op_count_per_forward"), ".0f"), _n(r.get("zero_flop_time_pct"), ".1f")])
    lines = [f"Suite `{info.name}` (experiment {info.experiment}). {info.description}".strip()]
    lines += [f"Paper: {p}." for p in dict.fromkeys(c.paper for c in info.claims if c.paper)]
    lines += [f"**{r.device_label} ({r.mode}): {r.claim.case} vs {r.claim.than} {r.verdict}.**"
              + (f" Not at fixed FLOPs: {r.claim.why}" if not r.claim.fixed_flops else "")
              for r in claims if r.suite == info.name]
    if len({c.device_label for c in cs}) > 1:
        lines.append(_by_device(cs, swept, paper))
    lines.append(_table(["case", "scale"] + (["point"] if swept else []) + [
                         "mode/device", "M mult-adds", "MAC MB", "latency ms", "speed vs baseline [95% CI]"] + (["paper ARM", "paper GPU"] if paper else [])
                        + ["FLOP/B", "% of roofline", "ops/fwd", "zero-FLOP time %"], rows))
    return "\n\n".join(lines)


def _by_device(cs: list[CaseEffect], swept: list[str], paper: bool) -> str:
    """Speed vs baseline with one column per device (the paper's GPU/ARM layout): runs of several
    devices, a fleet run's pools (`run --on ray --devices`) or shards measured on other machines."""
    labels = list(dict.fromkeys(c.device_label for c in cs))
    keys: dict[tuple[Any, ...], dict[str, Any]] = {}
    for c in cs:
        key = (c.case, c.scale, point_text(c.point, swept) if swept else "", c.mode)
        keys.setdefault(key, {"paper": c.paper_speed})[c.device_label] = speed_text(c)
    rows = [[case, f"x{scale}"] + ([point] if swept else []) + [mode] + [v.get(label, "-") for label in labels]
            + ([_n(v["paper"].get("gpu")), _n(v["paper"].get("arm"))] if paper else [])
            for (case, scale, point, mode), v in keys.items()]
    return ("Speed vs baseline [95% CI] on each device:\n\n"
            + _table(["case", "scale"] + (["point"] if swept else []) + ["mode", *labels]
                     + (["paper GPU", "paper ARM"] if paper else []), rows))


def _predictors(t: predictors.PredictorTable) -> str:
    if not t.ranks:
        return "No predictor could be ranked (fewer than 3 cases in every group and no networks suite)."
    return "\n\n".join([_table(predictors.HEADER, predictors.table_rows(t)), "\n".join(predictors.sentences(t)),
                        predictors.NOTE])


_NOTES = """\
- **Latency ratio** = case latency / baseline latency, the median of per-round ratios: in an interleaved
  run every round times each case once, so machine drift cancels in the ratio. Several processes (runs,
  or `run --repeats` workers) are pooled across processes, so the CI includes the spread between them;
  **unstable** marks a ratio that moved between processes more than one process's CI (no CI is printed:
  see docs/intervals.md). **Speed** = 1 / ratio, as the paper's tables (baseline = 1, higher is faster).
- **Roofline**: peak FLOP/s from a GEMM probe and bandwidth from a copy probe at the run's thread count.
  Bound = max(FLOPs / peak, MAC bytes / bandwidth); **% of roofline** = bound / measured time (100 % = at
  the ceiling). MAC counts every op's reads and writes once (the paper's model). FLOP/B = FLOPs per MAC byte.
- **ops/fwd** and **zero-FLOP time %** (with `run --profile`): top-level aten ops (kernels on CUDA) per
  forward, and the share of op time in ops with no counted FLOPs (ReLU, add, concat, copies): G3 and G4.
- **Telemetry flags**: *throttled* = CPU thermal events, the benchmark cores' clock moving > 15 %, or an
  NVML power/thermal throttle reason; *under load* = other processes used > 0.5 cores, or shared the GPU.
  Flagged rows keep their absolute times suspect; ratios from interleaved rounds hold better."""
