"""Paired comparisons under conditions: what every test that changes the audio shares.

A test that perturbs the audio compares the predictions for the same items under a
*baseline* (clean audio, a reference room, the headset recording) and a *condition*.  This
module holds the pieces robustness (:mod:`sertest.checks.robustness`), dose-response
(:mod:`sertest.checks.dose`) and newer tests share: labelled :class:`Condition` objects
parsed from suite parameters, the common parameters (:data:`COMMON_DEFAULTS`), the seeded
item subset, the paired measurement of one baseline/condition pair
(:func:`compare_series`: change in CCC/UAR, fraction unchanged, fidelity, each with a
bootstrap interval), the plot data and the items that changed most.

Predictions are scores in about [0, 1] (unitless); tolerances are in the same units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from .. import figures, metrics, stats
from ..errors import UsageError
from ..perturb import from_spec
from ..perturb.base import Perturbation
from ..vocabulary import EMOTION
from .base import Check, Context, Measurement, id_list

#: Bin edges of the plot data: baseline prediction (x) and its change (y) for the 2-D
#: histogram, and predictions for the overlaid histograms.  Values outside are counted in
#: the outermost bins.
CLEAN_EDGES = np.round(np.linspace(0.0, 1.0, 21), 4)
DELTA_EDGES = np.round(np.linspace(-0.3, 0.3, 25), 4)
VALUE_EDGES = np.round(np.linspace(0.0, 1.0, 41), 4)

COMMON_DEFAULTS: dict[str, Any] = {
    "max_items": None,   # audit at most this many items (a seeded subset shared by all tests)
    "tolerance": 0.05,   # |change| below this counts as unchanged (prediction units)
    "decimals": 2,       # round predictions to this many decimals first (None: no rounding)
    "n_worst": 3,        # items with the largest change listed per condition
}


# -- conditions --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """One labelled rendition: a perturbation (``None`` = clean audio) and its baseline.

    ``suffix`` is appended to the metric ids (``unchanged`` + ``_room``) for tests that
    judge two families of conditions separately.
    """

    label: str
    perturbation: Perturbation | None
    baseline: Perturbation | None = None
    suffix: str = ""

    def spec(self) -> dict[str, Any] | None:
        return None if self.perturbation is None else self.perturbation.spec()


def auto_label(p: Perturbation) -> str:
    """``name`` or ``name(param=value, ...)`` listing the parameters that differ from defaults."""
    changed = [f"{k}={v}" for k, v in p.params.items() if v != type(p).defaults.get(k)]
    return f"{p.name}({', '.join(changed)})" if changed else p.name


def parse_conditions(value: Any, where: str, make: Callable[[Any], Perturbation] = from_spec
                     ) -> list[tuple[str, Perturbation]]:
    """Labelled perturbations from a suite parameter.

    ``value`` is a mapping ``label -> spec`` or a list of specs (labels made by
    :func:`auto_label`); a spec is a perturbation name or ``{"name": ..., **params}``, turned
    into a perturbation by ``make``.

    Raises:
        UsageError: naming ``where`` for a bad spec, an empty list or a repeated label.
    """
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(None, v) for v in value]
    else:
        raise UsageError(f"{where}: expected a list or a mapping of perturbation specs, "
                         f"got {value!r}")
    if not items:
        raise UsageError(f"{where}: give at least one condition")
    out: list[tuple[str, Perturbation]] = []
    for label, spec in items:
        if not isinstance(spec, (str, dict)):
            raise UsageError(f"{where}: {spec!r} is not a perturbation name or spec mapping")
        try:
            p = make(spec)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from exc
        label = label or (spec if isinstance(spec, str) else auto_label(p))
        if label in [lab for lab, _ in out]:
            raise UsageError(f"{where}: condition label {label!r} used twice")
        out.append((label, p))
    return out


def check_common_params(check: Check) -> None:
    """Validate the parameters shared by every robustness test (:data:`COMMON_DEFAULTS`)."""
    p, where = check.params, f"test {check.name!r}"
    if p["max_items"] is not None and (not is_integer(p["max_items"]) or p["max_items"] < 3):
        raise UsageError(f"{where}: parameter max_items={p['max_items']!r} must be null or an "
                         "integer >= 3")
    if not is_number(p["tolerance"]) or not p["tolerance"] > 0:
        raise UsageError(f"{where}: parameter tolerance={p['tolerance']!r} must be a positive "
                         "number (prediction units)")
    if p["decimals"] is not None and (not is_integer(p["decimals"]) or not 0 <= p["decimals"] <= 10):
        raise UsageError(f"{where}: parameter decimals={p['decimals']!r} must be null or an "
                         "integer 0..10")
    if not is_integer(p["n_worst"]) or p["n_worst"] < 0:
        raise UsageError(f"{where}: parameter n_worst={p['n_worst']!r} must be an integer >= 0")


def is_integer(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and math.isfinite(v)


def item_ids(ctx: Context, max_items: int | None) -> list[str] | None:
    """All items (``None``) or a seeded subset of ``max_items``; the same subset for every
    test with the same ``max_items`` (so their clean predictions are shared)."""
    if max_items is None or len(ctx.dataset) <= max_items:
        return None
    ids = sorted(ctx.dataset.ids)
    pick = ctx.rng("robustness-items", int(max_items)).choice(len(ids), size=int(max_items),
                                                               replace=False)
    return [ids[i] for i in sorted(pick)]


def clusters(ctx: Context, ids) -> np.ndarray | None:
    """Speaker per item for the cluster bootstrap (``None`` without a speaker column)."""
    if ctx.dataset.has("speaker"):
        return ctx.table.loc[id_list(ids), "speaker"].astype(str).to_numpy()
    return None


# -- statistics ----------------------------------------------------------------------------------
def difference_replicates(metric: Callable[..., float], truth, base, other, *, n_boot: int,
                          rng: np.random.Generator, groups=None) -> np.ndarray:
    """Paired bootstrap replicates of ``metric(truth, other) - metric(truth, base)``.

    Every resample draws the same items (or speakers, with ``groups``) for both terms.
    """
    return stats.replicates(metric, truth, other, n_boot=n_boot, rng=rng, groups=groups,
                            minus=metric, minus_arrays=(truth, base))


def bootstrap_interval(ctx: Context, key: str, n: int, fn) -> tuple[tuple[float, float] | None,
                                                      np.ndarray | None]:
    """(interval, replicates) from ``fn(rng)`` -> replicates; the generator depends on the
    test, target and number of items, never on the model or the condition, so every model
    and every condition of a test on the same items share their resamples."""
    if ctx.n_boot <= 0:
        return None, None
    reps = fn(ctx.rng("bootstrap", key, n))
    return stats.percentile_interval(reps, ctx.confidence), reps


def wilson_interval(fraction: float, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion ``fraction`` observed on ``n`` items.

    Used beside the bootstrap for fractions unchanged: a percentile bootstrap collapses to
    (1, 1) when every item is unchanged, which would claim certainty from any sample size;
    the reported interval is the wider of the two.
    """
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2.0))
    denom = 1.0 + z * z / n
    centre = (fraction + z * z / (2 * n)) / denom
    half = z * math.sqrt(fraction * (1 - fraction) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def unchanged_mask(base: np.ndarray, other: np.ndarray, tolerance: float,
                   decimals: int | None) -> np.ndarray:
    """``|other - base| < tolerance`` after rounding both to ``decimals`` (exact decimals:
    a change of exactly ``tolerance`` counts as changed)."""
    if decimals is None:
        return np.abs(other - base) < tolerance
    delta = np.round(np.round(other, decimals) - np.round(base, decimals), decimals)
    return np.abs(delta) < tolerance


def wanted_metrics(check: Check, target: str, suffix: str = "") -> dict[str, str]:
    """Which measurements a test takes: ``{"change"|"unchanged"|"fidelity": metric id}``."""
    change = "uar_change" if target == EMOTION else "ccc_change"
    out = {"change": change + suffix, "unchanged": "unchanged" + suffix, "fidelity": "fidelity"}
    return {k: v for k, v in out.items() if v in check.metrics}


@dataclass
class PairResult:
    """Measurements comparing a baseline with a condition, plus what plots need."""

    measurements: list[Measurement] = field(default_factory=list)
    delta: pd.Series | None = None      # condition - baseline (regression) or 1.0 = changed
    base: pd.Series | None = None
    other: pd.Series | None = None
    notes: list[str] = field(default_factory=list)


def compare_series(ctx: Context, key: str, target: str, group: str, base: pd.Series,
                   other: pd.Series, want: dict[str, str], *, truth: pd.Series | None,
                   groups: pd.Series | None, reference_other: pd.Series | None,
                   tolerance: float, decimals: int | None, classes=None) -> PairResult:
    """Measure baseline vs condition predictions indexed alike (item or pair ids).

    Args:
        key: seeds the bootstrap: the test and target, never the model or condition
            (common random numbers: paired comparisons between models and conditions).
        group: the condition label written into every measurement.
        want: metric ids to measure (see :func:`wanted_metrics`).
        truth: labels for the change metric (``None``: not measured).
        groups: cluster id per index entry (speaker) or ``None``.
        reference_other: the reference model's predictions under the condition (fidelity).
        classes: the audited model's classes (emotion truth outside them is left out).
    """
    res = PairResult()
    cell = {"condition": group}  # the measurements' slice
    common = base.index.intersection(other.index, sort=False)
    base, other = base.loc[common], other.loc[common]
    res.base, res.other = base, other
    emotion = target == EMOTION
    cl = None if groups is None else groups.reindex(common).astype(str).to_numpy()
    n = len(common)
    if "change" in want and truth is not None:
        t = truth.dropna()
        if emotion and classes is not None:
            t = t[t.isin(list(classes))]
        idx = common.intersection(t.index, sort=False)
        if len(idx) < 3:
            res.measurements.append(Measurement(want["change"], math.nan, slice=cell,
                                                n=len(idx)))
            res.notes.append(f"{group}: only {len(idx)} items with truth and both predictions")
        else:
            metric = metrics.uar if emotion else metrics.ccc
            conv = (lambda s: s.loc[idx].to_numpy(object)) if emotion else \
                (lambda s: s.loc[idx].to_numpy(float))
            tt, bb, oo = conv(t), conv(base), conv(other)
            value = float(metric(tt, oo) - metric(tt, bb))
            g = None if groups is None else groups.reindex(idx).astype(str).to_numpy()
            ci, reps = bootstrap_interval(ctx, key, len(idx), lambda rng: difference_replicates(
                metric, tt, bb, oo, n_boot=ctx.n_boot, rng=rng, groups=g)) \
                if math.isfinite(value) else (None, None)
            res.measurements.append(Measurement(want["change"], value, slice=cell, ci=ci,
                                                n=len(idx), replicates=reps))
    if "unchanged" in want:
        if n == 0:
            res.measurements.append(Measurement(want["unchanged"], math.nan, slice=cell, n=0))
            res.notes.append(f"{group}: no predictions to compare (see item errors)")
        else:
            if emotion:
                a, b = base.to_numpy(object), other.to_numpy(object)
                value = metrics.label_agreement(a, b)
            else:
                mask = unchanged_mask(base.to_numpy(float), other.to_numpy(float), tolerance,
                                      decimals)
                a, b = mask.astype(np.int64), np.ones(n, dtype=np.int64)
                value = float(mask.mean())
            ci, reps = bootstrap_interval(ctx, key, n, lambda rng: stats.replicates(
                metrics.accuracy, a, b, n_boot=ctx.n_boot, rng=rng, groups=cl)) \
                if n >= 3 else (None, None)
            if ci is not None:  # the bootstrap collapses at 0 and 1: widen by Wilson's
                w_lo, w_hi = wilson_interval(value, n, ctx.confidence)
                ci = (min(ci[0], w_lo), max(ci[1], w_hi))
            res.measurements.append(Measurement(want["unchanged"], value, slice=cell, ci=ci,
                                                n=n, replicates=reps,
                                                extra={"interval": "bootstrap widened to "
                                                       "Wilson's score interval"}))
    if "fidelity" in want and reference_other is not None:
        idx = common.intersection(reference_other.index, sort=False)
        if len(idx) >= 3:
            if emotion:
                r, m = reference_other.loc[idx].to_numpy(object), other.loc[idx].to_numpy(object)
                fn = metrics.accuracy
            else:
                r, m = reference_other.loc[idx].to_numpy(float), other.loc[idx].to_numpy(float)
                fn = metrics.ccc
            value = float(fn(r, m))
            g = None if groups is None else groups.reindex(idx).astype(str).to_numpy()
            ci, reps = bootstrap_interval(ctx, key, len(idx), lambda rng: stats.replicates(
                fn, r, m, n_boot=ctx.n_boot, rng=rng, groups=g)) \
                if math.isfinite(value) else (None, None)
            res.measurements.append(Measurement(
                want["fidelity"], value, slice=cell, ci=ci, n=len(idx), replicates=reps,
                extra={"measure": "label agreement" if emotion else "ccc",
                       "reference": ctx.reference}))
    if n:
        if emotion:
            res.delta = (base != other).astype(float)
        else:
            res.delta = other.astype(float) - base.astype(float)
    return res


# -- plot data ------------------------------------------------------------------------------
def plain(x: Any) -> Any:
    """Plot data as strict JSON: numpy scalars -> Python, NaN/inf -> ``None``, tuples -> lists."""
    if type(x) is list and all(type(v) is int or (type(v) is float and math.isfinite(v))
                               for v in x):
        return list(x)  # already plain (histogram counts): no call per number
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray, pd.Series)):
        return [plain(v) for v in list(x)]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def histogram_counts(values: np.ndarray, edges: np.ndarray) -> list[int]:
    clipped = np.clip(values, edges[0], edges[-1])
    return np.histogram(clipped, bins=edges)[0].astype(int).tolist()


def plot_data(res: PairResult, target: str, classes) -> dict[str, Any]:
    """Histograms (dimensions) or a baseline -> condition confusion matrix (emotion).

    ``hist2d[i][j]`` counts items whose baseline prediction falls in bin ``i`` of
    ``edges.baseline`` and whose change falls in bin ``j`` of ``edges.delta``; ``hist``
    counts baseline and condition predictions on ``edges.value``.
    """
    if res.base is None or len(res.base) == 0:
        return {}
    if target == EMOTION:
        labels = list(classes) if classes else sorted(set(res.base) | set(res.other))
        cm = metrics.confusion_matrix(res.base.to_numpy(object), res.other.to_numpy(object),
                                      labels=labels)
        return {"confusion": {"labels": labels, "matrix": cm.astype(int).tolist()}}
    b, o = res.base.to_numpy(float), res.other.to_numpy(float)
    x = np.clip(b, CLEAN_EDGES[0], CLEAN_EDGES[-1])
    d = np.clip(o - b, DELTA_EDGES[0], DELTA_EDGES[-1])
    h2, _, _ = np.histogram2d(x, d, bins=[CLEAN_EDGES, DELTA_EDGES])
    return {"hist2d": h2.astype(int).tolist(),
            "hist": {"baseline": histogram_counts(b, VALUE_EDGES), "condition": histogram_counts(o, VALUE_EDGES)}}


def robustness_plots(target: str, tolerance: float, per_condition: list[dict],
                     unchanged: dict[str, Any], worst: list[dict]) -> dict[str, Any]:
    """The plot data of a robustness test (the report's "robustness" kind)."""
    return plain(figures.robustness(
        target=target, tolerance=tolerance,
        edges={"baseline": CLEAN_EDGES, "delta": DELTA_EDGES, "value": VALUE_EDGES},
        conditions=per_condition, unchanged=unchanged, worst=worst))


def _id_text(index: pd.Index) -> np.ndarray:
    """Item ids as a numpy text array (the tie-break of :func:`worst_items`)."""
    return np.asarray(index.astype(str).to_numpy(), dtype=str)


def _at(series: pd.Series, index: pd.Index, positions: np.ndarray, keys) -> np.ndarray:
    """``series`` at ``keys``, the entries at ``positions`` of ``index`` (read by position
    when ``series`` is indexed like ``index``, as a :class:`PairResult`'s are)."""
    if series.index.equals(index):
        return series.to_numpy(float)[positions]
    return series.reindex(keys).to_numpy(float)


def worst_items(res: PairResult, n_worst: int, condition: Condition, emotion: bool,
                ids: dict[Any, str] | None = None, scores: tuple | None = None) -> list[dict]:
    """The ``n_worst`` items that changed most (regression: largest |change|; emotion:
    changed labels, by the drop of the baseline class's score when scores are given)."""
    if n_worst <= 0 or res.delta is None or len(res.delta) == 0:
        return []
    delta = res.delta
    if emotion:
        changed = delta[delta > 0].index
        if not len(changed):
            return []
        label = res.base.reindex(changed)
        drop = np.ones(len(changed))
        if scores is not None:  # the drop of the baseline class's score, where scored
            s_base, s_other = scores
            ok = (changed.isin(s_base.index) & changed.isin(s_other.index)
                  & label.isin(s_base.columns).to_numpy() & label.isin(s_other.columns).to_numpy())
            if ok.any():
                at, cls = changed[ok], label.to_numpy(object)[ok]
                r = np.arange(len(at))
                vb = s_base.reindex(at).to_numpy(float)[r, s_base.columns.get_indexer(cls)]
                vo = s_other.reindex(at).to_numpy(float)[r, s_other.columns.get_indexer(cls)]
                drop[ok] = vb - vo
        top = np.lexsort((_id_text(changed), -drop))[:n_worst]
        keys = changed[top]
        other = res.other.reindex(keys).to_numpy(object)
        rows = [{"delta": round(float(drop[j]), 4), "baseline_label": label.iloc[j],
                 "condition_label": o, "key": k} for j, k, o in zip(top, keys.tolist(), other)]
    else:
        d = delta.to_numpy(float)
        # largest change first, ties by id as text (vectorised: this runs per condition)
        top = np.lexsort((_id_text(delta.index), -np.abs(d)))[:n_worst]
        keys = delta.index[top]
        base, other = _at(res.base, delta.index, top, keys), _at(res.other, delta.index, top, keys)
        rows = [{"delta": round(float(d[j]), 4), "baseline_value": round(float(b), 4),
                 "condition_value": round(float(o), 4), "key": k}
                for j, k, b, o in zip(top, keys.tolist(), base, other)]
    out = []
    for r in rows:
        k = r.pop("key")
        entry = {"id": ids[k] if ids else k, "condition": condition.spec(),
                 "label": condition.label}
        if condition.baseline is not None:
            entry["baseline"] = condition.baseline.spec()
        if ids:
            entry["pair"] = k
        entry.update(r)
        out.append(entry)
    return out
