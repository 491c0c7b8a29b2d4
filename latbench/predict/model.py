"""A network's predicted latency: the sum of its blocks' measured medians, times a calibration factor,
with an interval.

- Blocks in the table contribute their median (latency_ms) once per use.
- Blocks the table lacks (shapes between measured ones, a new network) are *fitted*: per block kind
  (conv, depthwise conv, group conv, linear, pooling, elementwise, concatenation, copy, activation)
  latency = a + b * FLOPs + c * MAC bytes with a, b, c >= 0, fitted by non-negative least squares on
  the table's blocks of that kind, weighted by 1 / latency (relative error); a kind with fewer than
  MIN_FIT blocks uses the fit over all blocks. Its error is the fit's residual spread (log_sd).
- Calibration (`calibrate`): whole networks measured against their sums of blocks. The factor is the
  geometric mean of measured / sum; the interval's half-width (in log space) is the split-conformal
  quantile of the calibration networks' residuals at LEVEL, so for a network exchangeable with them the
  interval covers its measurement with probability >= LEVEL. This network's own block uncertainty
  (measured CIs, fitted blocks' spread) is added in quadrature. Without calibration the factor is 1 and
  the interval holds the blocks' uncertainty only (and says so).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from latbench.predict.blocks import Block
from latbench.predict.table import Table

LEVEL = 0.90  # the prediction interval's stated coverage
Z_BLOCK = 1.96  # a block's CI is a 95 % interval: its half-width / Z_BLOCK is its standard error
MIN_FIT = 4  # blocks of a kind needed to fit that kind alone


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
    from scipy.optimize import nnls

    y = np.array([r["latency_ms"] for r in rows])
    x = np.array([[1.0, r["flops"] / 1e9, r["mac_bytes"] / 1e6] for r in rows])
    coef, _ = nnls(x / y[:, None], np.ones_like(y))
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

    @property
    def fitted_share(self) -> float:
        """The share of the sum of blocks that came from fits, not measurements."""
        return sum(b.total_ms for b in self.blocks if b.how == "fitted") / self.blocks_sum_ms if self.blocks_sum_ms else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fitted_share"] = self.fitted_share
        for b, use in zip(d["blocks"], self.blocks):
            b["total_ms"] = use.total_ms
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
        e = table.blocks.get(key)
        if e is not None:
            sd = max(e["ci_high_ms"] - e["latency_ms"], e["latency_ms"] - e["ci_low_ms"], 0.0) / Z_BLOCK
            uses[key] = BlockUse(key, e["label"], e["kind"], 1, e["latency_ms"], sd, e["flops"], e["mac_bytes"],
                                 e.get("activations", 0), "measured")
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
                             acts, "fitted")
    blocks = list(uses.values())
    total = sum(b.total_ms for b in blocks)
    sd_ms = math.sqrt(sum((b.uses * b.sd_ms) ** 2 for b in blocks))
    rel = sd_ms / total if total > 0 else 0.0
    cal = table.calibration if calibrated else None
    z = _z(LEVEL)
    notes = []
    if cal is not None:
        factor = float(cal["factor"])
        half = math.hypot(float(cal["log_halfwidth"]), z * rel)
    else:
        factor, half = 1.0, z * rel
        notes.append("uncalibrated: the table has no calibration, so the interval holds the blocks' measurement "
                     "only, not how blocks combine in the network ('latbench lut build --calibrate')")
    fitted = [b for b in blocks if b.how == "fitted"]
    if fitted:
        notes.append(f"{len(fitted)} block(s) not in the table were fitted from its other blocks")
    pred = total * factor
    return Prediction(name, pred, pred * math.exp(-half), pred * math.exp(half), LEVEL, total, factor,
                      cal is not None, sum(b.uses * b.flops for b in blocks), sum(b.uses * b.mac_bytes for b in blocks),
                      sum(b.uses * b.activations for b in blocks), blocks, notes)


def _z(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf((1 + level) / 2)


def conformal_halfwidth(residuals: Sequence[float], level: float = LEVEL) -> float:
    """The split-conformal quantile of |residuals|: the ceil((n + 1) * level)-th smallest (inf when n is too
    small for the level)."""
    r = sorted(abs(x) for x in residuals)
    k = math.ceil((len(r) + 1) * level)
    return r[k - 1] if 0 < k <= len(r) else math.inf


def calibrate(pairs: dict[str, tuple[float, float]], level: float = LEVEL) -> dict[str, Any]:
    """The calibration from {network: (sum of blocks ms, measured ms)}: factor, log_halfwidth, n, level."""
    from latbench.errors import LatbenchError

    good = {k: (s, m) for k, (s, m) in pairs.items() if s > 0 and m > 0}
    if len(good) < 2:
        raise LatbenchError(f"calibration needs at least 2 networks measured whole, got {len(good)}",
                            hint="give more networks to 'latbench lut build --calibrate'")
    logs = {k: math.log(m / s) for k, (s, m) in good.items()}
    mean = sum(logs.values()) / len(logs)
    resid = [v - mean for v in logs.values()]
    half = conformal_halfwidth(resid, level)
    if not math.isfinite(half):  # too few networks for a conformal quantile at this level: the largest, doubled
        half = 2 * max(abs(r) for r in resid)
    return {"factor": math.exp(mean), "log_halfwidth": half, "log_sd": float(np.std(resid, ddof=1)),
            "level": level, "n": len(good), "networks": {k: list(v) for k, v in good.items()}}
