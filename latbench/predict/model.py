"""A network's predicted latency: the sum of its blocks' measured medians, times a calibration factor,
with an interval.

- Blocks in the table contribute their median (latency_ms) once per use.
- Blocks the table lacks (shapes between measured ones, a new network) are *fitted*: per block kind
  (conv, depthwise conv, group conv, linear, pooling, elementwise, concatenation, copy, activation)
  latency = a + b * FLOPs + c * MAC bytes with a, b, c >= 0, fitted by non-negative least squares on
  the table's blocks of that kind, weighted by 1 / latency (relative error); a kind with fewer than
  MIN_FIT blocks uses the fit over all blocks. Its error is the fit's residual spread (log_sd).
- Calibration (`calibrate`): whole networks measured against their blocks, by one of two models.
  "blocks + per block + weights": measured = sum of blocks + per_block_ms * block uses +
  per_weight_mb_ms * MB of weights, the two terms >= 0 fitted by least squares on relative error: what a
  network pays that its blocks measured alone do not — a fixed cost per block (the modules' Python
  calls between kernels) and its weights read cold once per forward pass (a block timed alone keeps its
  weights in cache; a block's weights count only if they fit in the last-level cache: larger ones stream
  from memory alone too). A block's own time is not scaled: a factor fitted beside the terms on small
  networks (1.06 on the Table 8 cases, 2026-12-06) over-predicted large convolutional ones by 11-12 %.
  "factor": measured = factor * sum (the geometric mean of measured / sum): with fewer than MIN_TERMS networks,
  without the terms' data (older tables), or when most networks run faster than their blocks' sum (a
  device that overlaps kernels: the terms, >= 0, cannot say so). On the calibration networks alone the
  factor's leave-one-out error was the smaller (3.4 against 3.7 %, all of them small networks), yet it
  extrapolated worse: the choice is by the structure, not by that error.
  The interval's half-width (in log space) is the split-conformal quantile at LEVEL of the calibration
  networks' residuals, each from a fit without that network (leave-one-out: a fitted term does not
  flatter its own residual), so for a network exchangeable with them it covers the measurement with
  probability about LEVEL. This network's own block uncertainty (measured CIs, fitted blocks' spread) is
  added in quadrature. Without calibration the factor is 1 and the interval holds the blocks' uncertainty
  only (and says so).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from latbench.predict.blocks import Block
from latbench.predict.table import Table, finite_number

LEVEL = 0.90  # the prediction interval's stated coverage
Z_BLOCK = 1.96  # a block's CI is a 95 % interval: its half-width / Z_BLOCK is its standard error
MIN_FIT = 4  # blocks of a kind needed to fit that kind alone
MIN_TERMS = 10  # calibration networks needed to fit the per-block and weight terms beside the factor


@dataclass
class KindFit:
    kind: str
    a_ms: float
    b_ms_per_gflop: float
    c_ms_per_mb: float
    n: int
    log_sd: float  # the fit's residual spread on its own blocks, in log(measured / fitted)

    def __call__(self, flops: float, mac_bytes: float) -> float:
        return self.a_ms + self.b_ms_per_gflop * flops / 1e9 + self.c_ms_per_mb * mac_bytes / 1e6


def _nnls(rows: list[dict[str, Any]], kind: str) -> KindFit:
    y = np.array([r["latency_ms"] for r in rows])
    x = np.array([[1.0, r["flops"] / 1e9, r["mac_bytes"] / 1e6] for r in rows])
    coef = _relative_nnls(x, y)
    fitted = np.maximum(x @ coef, 1e-9)
    resid = np.log(y / fitted)
    sd = float(np.sqrt(np.mean(resid**2))) if len(rows) > 1 else math.inf
    return KindFit(kind, *map(float, coef), len(rows), sd)


def fit_table(table: Table, exclude: set[str] = frozenset()) -> dict[str, KindFit]:
    """{kind: fit} over the table's blocks (minus `exclude` keys), and "all" over every block."""
    rows = [e for k, e in table.blocks.items() if k not in exclude]
    if not rows:
        return {}
    fits = {"all": _nnls(rows, "all")}
    for kind in sorted({e["kind"] for e in rows}):
        mine = [e for e in rows if e["kind"] == kind]
        if len(mine) >= MIN_FIT:
            fits[kind] = _nnls(mine, kind)
    return fits


@dataclass
class BlockUse:
    key: str
    label: str
    kind: str
    uses: int
    latency_ms: float  # one use
    sd_ms: float  # one use's standard error (measured CI, or the fit's spread)
    flops: int
    mac_bytes: int
    activations: int
    how: str  # "measured" or "fitted"
    weight_bytes: int = 0  # one use's parameters if they fit in the last-level cache, else 0 (cold_weights)

    @property
    def total_ms(self) -> float:
        return self.uses * self.latency_ms


@dataclass
class Prediction:
    network: str
    latency_ms: float
    low_ms: float
    high_ms: float
    level: float
    blocks_sum_ms: float
    factor: float
    calibrated: bool
    flops: int
    mac_bytes: int
    activations: int
    blocks: list[BlockUse] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    block_uses: int = 0
    weight_bytes: int = 0
    per_block_ms: float = 0.0  # the calibration's terms (0 uncalibrated or factor-only)
    per_weight_mb_ms: float = 0.0
    outside_calibration: bool = False  # its sum of blocks or ms per block lies outside the calibration networks'

    def block_ms(self, b: BlockUse) -> float:
        """A block's part of the prediction (all uses): the blocks' parts add up to latency_ms."""
        return (self.factor * b.total_ms + self.per_block_ms * b.uses
                + self.per_weight_mb_ms * b.uses * b.weight_bytes / 1e6)

    @property
    def fitted_share(self) -> float:
        """The share of the sum of blocks that came from fits, not measurements."""
        return sum(b.total_ms for b in self.blocks if b.how == "fitted") / self.blocks_sum_ms if self.blocks_sum_ms else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fitted_share"] = self.fitted_share
        for b, use in zip(d["blocks"], self.blocks):
            b["total_ms"] = use.total_ms
            b["predicted_ms"] = self.block_ms(use)
            b["share"] = use.total_ms / self.blocks_sum_ms if self.blocks_sum_ms else 0.0
        return d


def _block_cost(block: Block) -> tuple[int, int, int]:
    import torch

    from latbench.cost import count_call
    from latbench.predict.blocks import BlockModule

    with torch.device("meta"):
        module = BlockModule(block.desc)
    c = count_call(module, torch.empty(1, device="meta"))
    return c.flops, c.mac_bytes, c.activations


def predict_blocks(name: str, keyed: Sequence[tuple[str, Block]], table: Table,
                   fits: dict[str, KindFit] | None = None, calibrated: bool = True) -> Prediction:
    """The prediction for a network given as its blocks (measure.needed's keyed list)."""
    uses: dict[str, BlockUse] = {}
    for key, block in keyed:
        if key in uses:
            uses[key].uses += 1
            continue
        weights = cold_weights(getattr(block, "weight_bytes", 0), table)
        e = table.blocks.get(key)
        if e is not None:
            sd = max(e["ci_high_ms"] - e["latency_ms"], e["latency_ms"] - e["ci_low_ms"], 0.0) / Z_BLOCK
            uses[key] = BlockUse(key, e["label"], e["kind"], 1, e["latency_ms"], sd, e["flops"], e["mac_bytes"],
                                 e.get("activations", 0), "measured", weights)
            continue
        fits = fit_table(table) if fits is None else fits
        flops, mac, acts = _block_cost(block)
        fit = fits.get(block.kind) or fits.get("all")
        if fit is None:
            from latbench.errors import ResultsError

            raise ResultsError(f"block {block.label} of {name} is not in the table, and the table is empty",
                               where=str(table.path or "--table"), hint=f"measure it: latbench lut build {name} "
                                                                         f"--resume {table.path or 'TABLE'}")
        lat = max(fit(flops, mac), 1e-6)
        uses[key] = BlockUse(key, block.label, block.kind, 1, lat, lat * (math.exp(fit.log_sd) - 1), flops, mac,
                             acts, "fitted", weights)
    blocks = list(uses.values())
    total = sum(b.total_ms for b in blocks)
    sd_ms = math.sqrt(sum((b.uses * b.sd_ms) ** 2 for b in blocks))
    rel = sd_ms / total if total > 0 else 0.0
    cal = table.calibration if calibrated else None
    z = _z(LEVEL)
    notes = []
    n_uses = sum(b.uses for b in blocks)
    weights = sum(b.uses * b.weight_bytes for b in blocks)  # the weights that fit in the last-level cache
    per_block = per_mb = 0.0
    if cal is not None:
        factor = float(cal["factor"])
        per_block, per_mb = float(cal.get("per_block_ms", 0.0)), float(cal.get("per_weight_mb_ms", 0.0))
        half = math.hypot(float(cal["log_halfwidth"]), z * rel)
    else:
        factor, half = 1.0, z * rel
        notes.append("uncalibrated: the table has no calibration, so the interval holds the blocks' measurement "
                     "only, not how blocks combine in the network ('latbench lut build --calibrate')")
    fitted = [b for b in blocks if b.how == "fitted"]
    if fitted:
        notes.append(f"{len(fitted)} block(s) not in the table were fitted from its other blocks")
    outside = outside_calibration(cal, total, n_uses) if cal is not None else None
    if outside:
        notes.append(outside)
    pred = total * factor + per_block * n_uses + per_mb * weights / 1e6
    return Prediction(name, pred, pred * math.exp(-half), pred * math.exp(half), LEVEL, total, factor,
                      cal is not None, sum(b.uses * b.flops for b in blocks), sum(b.uses * b.mac_bytes for b in blocks),
                      sum(b.uses * b.activations for b in blocks), blocks, notes, n_uses, weights, per_block, per_mb,
                      bool(outside))


def outside_calibration(cal: dict[str, Any], sum_ms: float, uses: int) -> str | None:
    """Why a network lies outside the networks the calibration was fitted on (its sum of blocks, or its ms per
    block use, beyond theirs), or None. The interval is a statement about networks like those: on
    2026-12-06 networks inside both ranges were within +-10 % 15 of 16 times and covered 14 of 16, networks
    outside 11 of 14 and 8 of 14 (docs/prediction.md)."""
    given = cal.get("networks")
    nets = [v for v in (given.values() if isinstance(given, dict) else ()) if isinstance(v, (list, tuple))
            and len(v) >= 3 and all(finite_number(x) and x > 0 for x in (v[0], v[2]))]
    if len(nets) < 2 or uses <= 0:
        return None
    sums = [v[0] for v in nets]
    per = [v[0] / v[2] for v in nets]
    out = []
    if not min(sums) <= sum_ms <= max(sums):
        out.append(f"sum of blocks {sum_ms:.3g} ms (theirs {min(sums):.3g}-{max(sums):.3g})")
    if not min(per) <= sum_ms / uses <= max(per):
        out.append(f"{sum_ms / uses * 1e3:.3g} us per block use (theirs {min(per) * 1e3:.3g}-{max(per) * 1e3:.3g})")
    if not out:
        return None
    return (f"outside the calibration: {' and '.join(out)}; its interval holds for networks like the "
            f"{len(nets)} calibration networks, and may not cover this one (calibrate with networks like it)")


def cold_weights(weight_bytes: int, table: Table) -> int:
    """The weight bytes a network reads cold that its block timed alone reads from cache: all of them if they
    fit in the last-level cache, none if not (timed alone in a loop, weights larger than the cache stream
    from memory every call too). Until 2026-12-06 larger weights counted as the cache's size: AlexNet's
    fully connected layers (151 and 67 MB) then over-predicted it by 34.5 %, though it runs at 0.99x its
    blocks (docs/prediction.md)."""
    return weight_bytes if weight_bytes <= last_level_cache(table) else 0


def last_level_cache(table: Table) -> float:
    """The largest cache of the table's machine in bytes (its fingerprint's cpu_caches; inf if unknown)."""
    import re

    text = str((table.meta.get("fingerprint") or {}).get("cpu_caches") or "")
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    sizes = [int(n) * units[u.upper()] for n, u in re.findall(r"(\d+)\s*([KMG])", text, flags=re.I)]
    return float(max(sizes)) if sizes else math.inf


def _z(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf((1 + level) / 2)


def conformal_halfwidth(residuals: Sequence[float], level: float = LEVEL) -> float:
    """The split-conformal quantile of |residuals|: the ceil((n + 1) * level)-th smallest (inf when n is too
    small for the level)."""
    r = sorted(abs(x) for x in residuals)
    k = math.ceil((len(r) + 1) * level)
    return r[k - 1] if 0 < k <= len(r) else math.inf


def calibrate(pairs: dict[str, tuple[float, ...]], level: float = LEVEL) -> dict[str, Any]:
    """The calibration from {network: (sum of blocks ms, measured ms[, block uses, weight bytes])} (module
    docstring): factor, per_block_ms, per_weight_mb_ms, log_halfwidth, n, level."""
    from latbench.errors import LatbenchError

    good = {k: (tuple(v) + (0, 0))[:4] for k, v in pairs.items() if v[0] > 0 and v[1] > 0}
    if len(good) < 2:
        raise LatbenchError(f"calibration needs at least 2 networks measured whole, got {len(good)}",
                            hint="give more networks to 'latbench lut build --calibrate'")
    names = list(good)
    logs = {k: math.log(m / s) for k, (s, m, _, _) in good.items()}
    n = len(logs)
    mean = sum(logs.values()) / n
    factor_loo = [(logs[k] - mean) * n / (n - 1) for k in names]  # each residual from the mean without it
    factor = {"model": "factor", "factor": math.exp(mean), "per_block_ms": 0.0, "per_weight_mb_ms": 0.0,
              "log_halfwidth": conformal_or_widest(factor_loo, level),
              "log_sd": float(np.std([v - mean for v in logs.values()], ddof=1)), "level": level, "n": n,
              "networks": {k: list(v) for k, v in good.items()}}
    if n >= MIN_TERMS and any(good[k][2] or good[k][3] for k in names) and float(np.median(list(logs.values()))) >= 0:
        coef = _terms(good, names)
        resid = [math.log(good[k][1] / _terms_predict(_terms(good, [o for o in names if o != k]), good[k]))
                 for k in names]  # each network's residual from a fit without it
        fitted = [math.log(good[k][1] / _terms_predict(coef, good[k])) for k in names]
        return factor | {"model": "blocks + per block + weights", "factor": 1.0, "per_block_ms": float(coef[0]),
                         "per_weight_mb_ms": float(coef[1]), "log_halfwidth": conformal_or_widest(resid, level),
                         "log_sd": float(np.std(fitted, ddof=1))}
    return factor


def conformal_or_widest(resid: Sequence[float], level: float) -> float:
    """The conformal half-width; with too few networks for the level, the largest |residual| doubled."""
    half = conformal_halfwidth(resid, level)
    return half if math.isfinite(half) else 2 * max(abs(r) for r in resid)


def _relative_nnls(x: np.ndarray, y: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
    """Coefficients >= 0 with base + x @ coef ~ y, least squares on relative error (each row weighted 1 / y)."""
    from scipy.optimize import nnls

    return nnls(x / y[:, None], (y - (0 if base is None else base)) / y)[0]


def _terms(good: dict[str, tuple], names: Sequence[str]) -> np.ndarray:
    """(ms per block use, ms per MB of weights) >= 0 that the networks pay beyond their blocks' sum, least
    squares on relative error: measured - sum ~ per_block_ms x uses + per_weight_mb_ms x MB."""
    x = np.array([[good[k][2], good[k][3] / 1e6] for k in names], dtype=float)
    return _relative_nnls(x, np.array([good[k][1] for k in names], dtype=float),
                          np.array([good[k][0] for k in names], dtype=float))


def _terms_predict(coef: np.ndarray, obs: tuple) -> float:
    return max(float(obs[0] + coef[0] * obs[2] + coef[1] * obs[3] / 1e6), 1e-12)
