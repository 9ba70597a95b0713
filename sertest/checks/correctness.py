"""Correctness: does the model predict what the labels say?"""

from __future__ import annotations

import numpy as np

from .. import metrics
from .base import Check, Context, Measurement, Outcome, register

MAX_PLOT_POINTS = 600


def _clusters(ctx: Context, ids) -> np.ndarray | None:
    """Speaker ids for a cluster bootstrap (items of one speaker are not independent)."""
    if ctx.dataset.has("speaker"):
        return ctx.table.loc[list(ids), "speaker"].astype(str).to_numpy()
    return None


def with_ci(ctx: Context, metric, truth, pred, key: str, groups=None) -> tuple[float, tuple | None]:
    """A metric value and its bootstrap confidence interval (seeded by the check key)."""
    value = float(metric(truth, pred))
    if ctx.n_boot <= 0 or len(truth) < 3 or not np.isfinite(value):
        return value, None
    lo, hi = metrics.bootstrap_ci(metric, truth, pred, n_boot=ctx.n_boot,
                                  confidence=ctx.confidence, rng=ctx.rng("bootstrap", key),
                                  groups=groups)
    return value, (float(lo), float(hi))


def subsample_points(ctx: Context, key: str, *arrays, limit: int = MAX_PLOT_POINTS):
    """At most ``limit`` aligned points for scatter plots, drawn reproducibly."""
    n = len(arrays[0])
    idx = np.arange(n)
    if n > limit:
        idx = np.sort(ctx.rng("plot", key).choice(n, size=limit, replace=False))
    return [np.round(np.asarray(a, dtype=float)[idx], 4).tolist() for a in arrays]


@register
class Regression(Check):
    """CCC, PCC and MAE of predictions against the truth, with bootstrap CIs."""

    id = "correctness_regression"
    topic = "correctness"
    description = "CCC, PCC and MAE of predicted against true arousal/dominance/valence"
    kinds = ("regression",)
    metrics = {"ccc": "> 0.5", "pcc": "> 0.5", "mae": "< 0.1"}

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        truth, pred = ctx.paired(model, target)
        if len(truth) < 3:
            return Outcome(skipped=f"only {len(truth)} items with {target} labels")
        t, p = truth.to_numpy(float), pred.to_numpy(float)
        groups = _clusters(ctx, truth.index)
        out = Outcome()
        for name, fn in (("ccc", metrics.ccc), ("pcc", metrics.pcc), ("mae", metrics.mae)):
            if name not in self.thresholds:
                continue
            value, ci = with_ci(ctx, fn, t, p, f"{self.id}/{model}/{target}/{name}", groups)
            out.measurements.append(Measurement(name, value, ci=ci, n=len(t)))
        tx, px = subsample_points(ctx, f"{self.id}/{model}/{target}", t, p)
        out.plots["scatter"] = {"truth": tx, "prediction": px}
        return out
