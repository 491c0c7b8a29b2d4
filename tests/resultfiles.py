"""Synthetic result files with the exact schema 'latbench run' writes (rows made by run.rows.build_row,
files written by results.files.RunFiles), from seeded distributions with known medians and drift."""

from __future__ import annotations

import json
import math
import random
import uuid
from datetime import datetime
from pathlib import Path

from latbench.records import CaseSpec, Cost, Measurement
from latbench.run.rows import RowContext, build_row, sample_rows
from latbench.stats import paired_ratio
from latbench.results.files import RunFiles

FINGERPRINT = {"cpu_model": "AMD EPYC", "torch": "2.13.0+cpu", "gpus": [], "hostname": "vm"}


def spec(case: str, suite: str = "syn", scale: int = 1, baseline: str = "g=1") -> CaseSpec:
    return CaseSpec(suite=suite, experiment="SYN", case=case, scale=scale, builder="g2_group_conv",
                    params=(("c", 64), ("groups", 1)), blocks=10, batch=1, height=56, width=56,
                    baseline_case=baseline, source=f"suites/{suite}.yaml:1")


def write_run(results_dir: Path, medians_ms: dict[str, float], *, seed: int, drift: float = 1.0,
              noise: float = 0.02, n: int = 30, device: str = "cpu", failed: tuple[str, ...] = (),
              fingerprint: dict | None = None, threads: int = 1, suite: str = "syn",
              skipped: dict[str, str] | None = None, run_id: str | None = None, now: datetime | None = None,
              status: str = "complete", meta: dict | None = None) -> Path:
    """One run: each case's samples are median x drift x lognormal(noise), paired by round.

    drift is the machine-wide speed factor of this run (same for every case, as on a shared box).
    skipped: {case: reason} rows the device could not run (status skipped, as the runner writes them).
    now: the time in the file name (default: the clock). status: the metadata's run status.
    meta: more metadata keys (run settings such as quick, repeats, started_at_utc).
    Returns the path of the results CSV.
    """
    rng = random.Random(seed)
    run_id = run_id or uuid.UUID(int=rng.getrandbits(128)).hex[:12]
    skipped = skipped or {}
    ctx = RowContext(run_id=run_id, device=device, threads=threads, schedule="interleaved", rel_ci=0.01)
    files = RunFiles.reserve(results_dir, suite, device, now=now)
    cases = list(medians_ms)
    base_case = cases[0]
    meas = {}
    for c in cases:
        if c in failed or c in skipped:
            continue
        samples = tuple(medians_ms[c] * drift * math.exp(rng.gauss(0, noise)) / 1e3 for _ in range(n))
        meas[c] = Measurement(samples_s=samples, iters_per_sample=1, rounds=tuple(range(n)),
                              positions=tuple(0 for _ in range(n)), warmup_iters=2, warmup_s=0.01,
                              stop_reason="converged")
    rows, samples = [], []
    cost = Cost(flops=2_000_000, mac_bytes=1_000_000, params=1000, activations=1000)
    for c in cases:
        sp = spec(c, suite=suite, baseline=base_case)
        m, b = meas.get(c), meas.get(base_case)
        ratio = paired_ratio(m.samples_s, m.rounds, b.samples_s, b.rounds) if m and b else None
        rows.append(build_row(sp, "eager", ctx, cost=cost, measurement=m, ratio=ratio,
                              error="RuntimeError: boom" if c in failed else None, skip=skipped.get(c),
                              base_flops=cost.flops).to_dict())
        if m:
            samples.extend(sample_rows(sp, "eager", m, ctx))
    files.metadata = {"schema_version": 1, "run_id": run_id, "status": status, "device": device,
                      "threads": threads, "suite": {"name": suite}, "fingerprint": dict(fingerprint or FINGERPRINT),
                      **(meta or {})}
    files.add(rows, samples)
    return files.csv


def write_side(results_dir: Path, medians_ms: dict[str, float], runs: int, *, seed: int, drift_sd: float = 0.0,
               shift: float = 1.0, **kw) -> list[Path]:
    """`runs` runs whose machine-wide drift factors are lognormal(drift_sd); every latency x shift."""
    rng = random.Random(seed)
    out = []
    for i in range(runs):
        d = math.exp(rng.gauss(0, drift_sd)) if drift_sd else 1.0
        out.append(write_run(results_dir, {k: v * shift for k, v in medians_ms.items()}, seed=seed * 1000 + i,
                             drift=d, **kw))
    return out


def read_json(p: Path) -> dict:
    return json.loads(p.read_text())
