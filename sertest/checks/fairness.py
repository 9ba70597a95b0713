r"""Fairness: does the model behave the same for every group of speakers?

Tests (ids and default thresholds as in audEERING's ser-tests, catalogue §3.2):
``fairness_sex``, ``fairness_pitch``, ``fairness_accent``, ``fairness_language``,
``fairness_linguistic_sentiment``, plus ``fairness_group`` for any group column the user
declares (or an intersection of columns, e.g. ``columns: [sex, language]``).

Every fairness metric is a difference :math:`\Delta = m(\text{group}) - m(\text{combined})`,
where *combined* is the union of the compared groups, judged on its absolute value
(``abs < t``).  Three methods, as in ser-tests:

``quality`` (sex, pitch; needs labels, or ``--reference`` in label-free mode)
    The groups are first **balanced on the truth**: ``samples`` items (at most the size of
    the smallest group) are drawn from the smallest group, and for each of them one item
    from every other group with the closest true value (dimensions) or the same class
    (emotion), without replacement.  For emotion, a class that another group cannot match
    is cut down in every group, so the class distributions are identical.  Then:

    * dimensions: ``ccc_difference``; ``precision_per_bin_difference`` and
      ``recall_per_bin_difference`` with values cut into 4 bins (edges 0.25 / 0.5 / 0.75,
      open outer bins); a bin with fewer than ``min_samples`` true items in the group or
      in the combined set is skipped;
    * emotion: ``precision_per_class_difference``, ``recall_per_class_difference``,
      ``uar_difference``.

``distribution`` (accent, language; needs no labels)
    Prediction distributions of each group against the combined predictions:
    ``mean_difference`` and ``relative_difference_per_bin`` (share of predictions per bin;
    a bin with fewer than ``min_samples`` combined predictions is skipped) for dimensions,
    ``relative_difference_per_class`` for emotion.  ``samples`` caps the items drawn per
    group (ser-tests: 2000 per language, all for accents).

``shift`` (linguistic sentiment)
    For language *l* and lexical sentiment *s*: :math:`\mathrm{shift}(l, s) =
    m(\text{pred} \mid l, s) - m(\text{pred} \mid l)` and
    :math:`\Delta(l, s) = \mathrm{shift}(l, s) - \operatorname{mean}_{l'} \mathrm{shift}(l', s)`
    with *m* the mean (``mean_shift_difference``), the share per bin
    (``bin_proportion_shift_difference``; a bin with fewer than ``min_samples`` predictions
    of sentiment *s* over all languages is skipped) or per class
    (``class_proportion_shift_difference``).  A model that reacts to the words of one
    language but not another shows up here.

Beyond ser-tests:

* **Group quality.**  Where labels exist, each group's own quality is measured as well
  (``ccc`` or ``uar`` per group, default ``> 0.5`` like correctness), so a model that is
  equally bad for every group is not called fair.  Set its threshold to ``null`` in a
  suite to show it without judging.
* **Confidence intervals.**  Every Delta gets a bootstrap interval: speakers (or items,
  without a ``speaker`` column) are resampled within each group when speakers are nested in
  groups, else over the whole sample; the combined value is recomputed from the same
  resample.  The verdict is ``inconclusive`` when the interval straddles the threshold.
* **Calibrated thresholds** (``calibrate``; see :mod:`sertest.checks.calibration`): the
  thresholds ser-tests derived for its own group sizes are re-derived by random-model
  simulation for the user's group sizes.
* **Minimum sizes.**  Groups with fewer than ``min_group_size`` items give skipped cells
  with the reason; ``min_samples: auto`` follows ser-tests' rule
  (:func:`sertest.metrics.min_samples_for_bins` of the smallest group size: 67 for 1000
  items) but is at least 10 (ser-tests: 4 for 60-item accent groups; set
  ``min_samples: 4`` to reproduce).  A cell whose bootstrap is undefined in more than 10 %
  of resamples (e.g. a bin the model rarely predicts) is ``inconclusive``, never judged on
  its point value alone.
* **Intersections.**  ``columns: [sex, language]`` compares every combination (``female &
  en``) that has enough items.
* **Errors where labels exist.**  The label-free methods see a group's bias only through
  its predictions, which also move with the labels' own differences between groups (and
  whose bootstrap re-draws every group's emotion mix).  On labelled dimensions the
  distribution method adds ``mean_error_difference`` (each group's signed mean error
  against the rest's, as the quality method) and the shift method
  ``mean_error_shift_difference`` (:func:`error_shift_differences`), both ``abs < 0.075``;
  they carry the verdict, and the label-free cells are judged as *secondary* cells
  (``extra.role``): they can fail the test, but an underpowered one does not keep a sound
  model from passing.  Measured on the bundled corpus with ``sertest validate``: the
  label-free cells alone let an oracle pass fairness_language in 20-30 % of resamples.

Measurements: ``group`` is ``"<group>"`` for scalar cells and ``"<group> / <bin or class>"``
(``"<language> / <sentiment>[ / <bin or class>]"`` for the shift method) with the parts
repeated in ``extra`` (``group``, ``bin``/``class``, ``context``).  ``n`` is the group's
number of items.  Plot data (shapes the HTML report draws): ``group_sizes`` (bars),
``distributions`` (the predictions per group and combined - 401 quantiles for groups of
more than 400 items - or class shares per group), ``calibration`` (the calibrated limits, when calibrating).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import figures, metrics, stats
from ..errors import UsageError
from ..features import F0Estimator
from .base import Check, Context, Measurement, Outcome, Request, _plain, register
from .correctness import class_labels_for, primary_ids
from .verdict import SECONDARY, Threshold

EDGES: tuple[float, ...] = metrics.DEFAULT_EDGES
BIN_NAMES: list[str] = metrics.bin_names(EDGES)
SEP = " / "    # joins a group and its context in the plots' labels (as slice_label does)
JOIN = " & "   # joins the values of an intersection of group columns
#: floor of ``min_samples: auto``: per-bin shares and their intervals are meaningless on
#: fewer items (ser-tests' rule alone gives 4 for 60-item groups, 1 for 16)
AUTO_MIN_SAMPLES_FLOOR = 10
MAX_PLOT_VALUES = 400  # prediction values per group in the plot data (quantiles beyond)

QUALITY, DISTRIBUTION, SHIFT = "quality", "distribution", "shift"
QUALITY_METRICS = {"regression": "ccc", "classification": "uar"}

# =============================================================================================
# Vectorised statistics over rows of item weights
# =============================================================================================
#
# Every statistic below is computed for R rows at once.  Row r weights item i by w[r, i]:
# all ones for the measured value, bootstrap draw counts for confidence intervals.  The
# values x may be one array (N,) shared by all rows, or (R, N) (one simulated data set per
# row, for calibration).  With unit weights each statistic equals its counterpart in
# sertest.metrics (tested), which stays the reference definition.


def _seg(x: np.ndarray, a: int, b: int) -> np.ndarray:
    return x[..., a:b]


def _wmean(w: np.ndarray, x: np.ndarray, a: int, b: int) -> np.ndarray:
    ww = w[:, a:b]
    sw = ww.sum(axis=-1)
    return _div((ww * _seg(x, a, b)).sum(axis=-1), sw)


def _div(num, den) -> np.ndarray:
    num, den = np.broadcast_arrays(np.asarray(num, float), np.asarray(den, float))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _wccc(w: np.ndarray, x: np.ndarray, y: np.ndarray, a: int, b: int) -> np.ndarray:
    """Weighted CCC per row (population moments), as :func:`sertest.metrics.ccc`."""
    ww, xs, ys = w[:, a:b], _seg(x, a, b), _seg(y, a, b)
    sw = ww.sum(axis=-1)
    mx, my = _div((ww * xs).sum(-1), sw), _div((ww * ys).sum(-1), sw)
    dx, dy = xs - mx[:, None], ys - my[:, None]
    vx = _div((ww * dx * dx).sum(-1), sw)
    vy = _div((ww * dy * dy).sum(-1), sw)
    cxy = _div((ww * dx * dy).sum(-1), sw)
    tiny = 1e-24
    cxy = np.where((vx < tiny) | (vy < tiny), 0.0, cxy)
    out = _div(2.0 * cxy, vx + vy + (mx - my) ** 2)
    out[np.broadcast_to(sw, out.shape) < 2] = np.nan
    return np.clip(out, -1.0, 1.0)


def _wcounts(w: np.ndarray, codes: np.ndarray, k: int, a: int, b: int) -> np.ndarray:
    """Weighted count of each code 0..k-1 per row (code -1 is ignored): (R, k)."""
    ww, cc = w[:, a:b], _seg(codes, a, b)
    if cc.ndim == 1:
        onehot = (cc[:, None] == np.arange(k)[None, :]).astype(float)
        return ww @ onehot  # integer counts: exact whatever BLAS's order or threads
    ww, cc = np.broadcast_arrays(ww, cc)
    rows = ww.shape[0]
    valid = cc >= 0
    flat = (np.arange(rows)[:, None] * k + cc)[valid]
    return np.bincount(flat, weights=ww[valid], minlength=rows * k).reshape(rows, k)


def _codes_regression(x: np.ndarray, edges=EDGES) -> np.ndarray:
    """Bin index of each value, as :func:`sertest.metrics.bin_values` (any shape)."""
    return np.searchsorted(np.asarray(edges, float), x, side="left")


def _class_scores(w, t, p, k, a, b, min_samples):
    """Per-class (or per-bin) precision and recall per row, with sparse classes skipped."""
    hit = np.where(t == p, t, -1)
    n_true = _wcounts(w, t, k, a, b)
    n_pred = _wcounts(w, p, k, a, b)
    tp = _wcounts(w, hit, k, a, b)
    precision, recall = _div(tp, n_pred), _div(tp, n_true)
    sparse = n_true < min_samples
    precision[sparse] = np.nan
    recall[sparse] = np.nan
    return precision, recall, n_true


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    valid = np.isfinite(x)
    return _div(np.where(valid, x, 0.0).sum(axis=axis), valid.sum(axis=axis))


@dataclass
class Layout:
    """The compared items, ordered so that each group is one contiguous block.

    ``bounds[g]`` is the ``[start, stop)`` block of group ``names[g]``; for the shift method
    ``contexts[g]`` lists ``(context, start, stop)`` blocks inside group g.
    """

    names: list[str]
    bounds: list[tuple[int, int]]
    ids: list[str]
    regression: bool
    k: int  # number of bins or classes
    labels: list[str]
    pred: np.ndarray  # values (regression) or class codes (-1: not one of labels)
    truth: np.ndarray | None = None
    clusters: np.ndarray | None = None
    contexts: list[list[tuple[str, int, int]]] | None = None
    context_names: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.ids)

    def sizes(self) -> tuple:
        if self.contexts is None:
            return tuple(b - a for a, b in self.bounds)
        return tuple(tuple(b - a for _, a, b in ctxs) for ctxs in self.contexts)


Cells = dict[str, tuple[list[tuple[str, ...]], np.ndarray]]


def quality_cells(layout: Layout, w: np.ndarray, t: np.ndarray, p: np.ndarray,
                  min_samples: int) -> Cells:
    """Differences of quality metrics, group minus combined: ``{metric: (keys, (R, C))}``."""
    k = layout.k
    if layout.regression:
        tc, pc = _codes_regression(t), _codes_regression(p)
    else:
        tc, pc = t, p
    segs = [(0, layout.n)] + list(layout.bounds)
    prec, rec, scalar = [], [], []
    per_bin_min = min_samples if layout.regression else 0  # no minimum per class (ser-tests)
    for a, b in segs:
        pr, rc, _ = _class_scores(w, tc, pc, k, a, b, per_bin_min)
        prec.append(pr)
        rec.append(rc)
        if layout.regression:
            scalar.append(_wccc(w, t, p, a, b))
        else:
            _, rc_all, n_true = _class_scores(w, tc, pc, k, a, b, 0)
            rc_all = np.where(n_true > 0, rc_all, np.nan)
            scalar.append(_nanmean(rc_all, axis=1))
    names = layout.names
    subs = BIN_NAMES if layout.regression else layout.labels
    keys1 = [(g,) for g in names]
    keys2 = [(g, s) for g in names for s in subs]
    d_scalar = np.stack([scalar[i + 1] - scalar[0] for i in range(len(names))], axis=1)
    d_prec = np.concatenate([prec[i + 1] - prec[0] for i in range(len(names))], axis=1)
    d_rec = np.concatenate([rec[i + 1] - rec[0] for i in range(len(names))], axis=1)
    if layout.regression:
        return {"mean_error_difference": (keys1, mean_error_differences(layout, w, t, p)),
                "ccc_difference": (keys1, d_scalar),
                "precision_per_bin_difference": (keys2, d_prec),
                "recall_per_bin_difference": (keys2, d_rec)}
    return {"uar_difference": (keys1, d_scalar),
            "precision_per_class_difference": (keys2, d_prec),
            "recall_per_class_difference": (keys2, d_rec)}


def mean_error_differences(layout: Layout, w: np.ndarray, t: np.ndarray, p: np.ndarray
                           ) -> np.ndarray:
    r"""Signed mean error of each group against the rest: (R, groups).

    :math:`\mathrm{ME}(g) - \mathrm{ME}(\bar g)` with :math:`\mathrm{ME} =
    \operatorname{mean}(\text{prediction} - \text{truth})` over the items of group g and
    over all other compared items.  A level shift of +d for one group's predictions moves
    this by exactly +d, whatever the groups' sizes; CCC and per-bin differences see it only
    indirectly.  Items without truth are left out.
    """
    has = np.isfinite(t)
    err = np.where(has, p - np.where(has, t, 0.0), 0.0)
    wv = w * has
    s_all = (wv * err).sum(axis=-1)
    n_all = wv.sum(axis=-1)
    out = []
    for a, b in layout.bounds:
        s_g = (wv[..., a:b] * err[..., a:b]).sum(axis=-1)
        n_g = wv[..., a:b].sum(axis=-1)
        out.append(_div(s_g, n_g) - _div(s_all - s_g, n_all - n_g))
    return np.stack(out, axis=-1)


def distribution_cells(layout: Layout, w: np.ndarray, p: np.ndarray, min_samples: int) -> Cells:
    """Differences of prediction distributions, group minus combined."""
    k = layout.k
    codes = _codes_regression(p) if layout.regression else p
    n_all = layout.n

    def shares(a, b):
        sw = w[:, a:b].sum(axis=-1)
        counts = _wcounts(w, codes, k, a, b)
        return _div(counts, sw[:, None]), counts

    share_all, count_all = shares(0, n_all)
    sparse = count_all < min_samples if layout.regression else np.zeros_like(
        count_all, dtype=bool)
    names = layout.names
    subs = BIN_NAMES if layout.regression else layout.labels
    diffs = []
    for a, b in layout.bounds:
        sh, _ = shares(a, b)
        d = sh - share_all
        d[np.broadcast_to(sparse, d.shape)] = np.nan
        diffs.append(d)
    keys2 = [(g, s) for g in names for s in subs]
    d_share = np.concatenate(diffs, axis=1)
    if not layout.regression:
        return {"relative_difference_per_class": (keys2, d_share)}
    mean_all = _wmean(w, p, 0, n_all)
    d_mean = np.stack([_wmean(w, p, a, b) - mean_all for a, b in layout.bounds], axis=1)
    return {"mean_difference": ([(g,) for g in names], d_mean),
            "relative_difference_per_bin": (keys2, d_share)}


def shift_cells(layout: Layout, w: np.ndarray, p: np.ndarray, min_samples: int) -> Cells:
    """Shift differences per (group, context): how a context moves a group's predictions,
    compared with the mean move over groups."""
    assert layout.contexts is not None
    k = layout.k
    codes = _codes_regression(p) if layout.regression else p
    ctx_names = layout.context_names
    n_groups, n_ctx = len(layout.names), len(ctx_names)
    rows = w.shape[0] if p.ndim == 1 else max(w.shape[0], p.shape[0])
    mean_shift = np.full((rows, n_groups, n_ctx), np.nan)
    share_shift = np.full((rows, n_groups, n_ctx, k), np.nan)
    ctx_counts = np.zeros((rows, n_ctx, k))
    for g, (a, b) in enumerate(layout.bounds):
        m_g = _wmean(w, p, a, b)
        sw_g = w[:, a:b].sum(axis=-1)
        sh_g = _div(_wcounts(w, codes, k, a, b), sw_g[:, None])
        for name, c0, c1 in layout.contexts[g]:
            j = ctx_names.index(name)
            if c1 <= c0:
                continue
            mean_shift[:, g, j] = _wmean(w, p, c0, c1) - m_g
            counts = _wcounts(w, codes, k, c0, c1)
            share_shift[:, g, j, :] = _div(counts, w[:, c0:c1].sum(axis=-1)[:, None]) - sh_g
            ctx_counts[:, j, :] += counts
    d_mean = mean_shift - _nanmean(mean_shift, axis=1)[:, None, :]
    avg = _nanmean(share_shift, axis=1)
    d_share = share_shift - avg[:, None, :, :]
    if layout.regression:
        sparse = ctx_counts < min_samples  # (R, n_ctx, k)
        d_share[np.broadcast_to(sparse[:, None, :, :], d_share.shape)] = np.nan
    subs = BIN_NAMES if layout.regression else layout.labels
    keys_mean = [(g, c) for g in layout.names for c in ctx_names]
    keys_share = [(g, c, s) for g in layout.names for c in ctx_names for s in subs]
    d_share = d_share.reshape(rows, -1)
    d_mean = d_mean.reshape(rows, -1)
    if layout.regression:
        return {"mean_shift_difference": (keys_mean, d_mean),
                "bin_proportion_shift_difference": (keys_share, d_share)}
    return {"class_proportion_shift_difference": (keys_share, d_share)}


def error_shift_differences(layout: Layout, w: np.ndarray, t: np.ndarray, p: np.ndarray
                            ) -> np.ndarray:
    r"""Shift of the signed mean error per (group, context), against the mean shift over
    groups: (R, groups x contexts), keys as ``mean_shift_difference``'s.

    :math:`[\mathrm{ME}(g, c) - \mathrm{ME}(g)] - \operatorname{mean}_{g'}[\mathrm{ME}(g', c)
    - \mathrm{ME}(g')]` with :math:`\mathrm{ME} = \operatorname{mean}(\text{prediction} -
    \text{truth})`.  The label-free ``mean_shift_difference`` also moves with the labels'
    own differences between the cells (and its bootstrap re-draws the emotion mix of every
    cell); the error removes them, so a model that reads the words of one language shifts
    this by the size of its reading, with the item noise of its errors only.  Items without
    truth are left out.
    """
    assert layout.contexts is not None
    has = np.isfinite(t)
    err = np.where(has, p - np.where(has, t, 0.0), 0.0)
    wv = w * has
    rows = wv.shape[0]
    ctx_names = layout.context_names
    shift = np.full((rows, len(layout.names), len(ctx_names)), np.nan)

    def me(a: int, b: int) -> np.ndarray:
        return _div((wv[:, a:b] * err[a:b]).sum(axis=-1), wv[:, a:b].sum(axis=-1))

    for g, (a, b) in enumerate(layout.bounds):
        m_g = me(a, b)
        for name, c0, c1 in layout.contexts[g]:
            if c1 > c0:
                shift[:, g, ctx_names.index(name)] = me(c0, c1) - m_g
    return (shift - _nanmean(shift, axis=1)[:, None, :]).reshape(rows, -1)


#: the error-based cell each label-free method gains when labels exist (see GroupFairness)
ERROR_CELLS = {DISTRIBUTION: "mean_error_difference", SHIFT: "mean_error_shift_difference"}


def error_cells(layout: Layout, method: str, w: np.ndarray) -> Cells:
    """The error-based cells of a label-free method on labelled regression data:
    ``mean_error_difference`` per group (distribution method) or
    ``mean_error_shift_difference`` per (group, context) (shift method); ``{}`` otherwise."""
    metric = ERROR_CELLS.get(method)
    if metric is None or not layout.regression or layout.truth is None:
        return {}
    t, p = layout.truth, layout.pred
    if method == SHIFT:
        keys = [(g, c) for g in layout.names for c in layout.context_names]
        return {metric: (keys, error_shift_differences(layout, w, t, p))}
    return {metric: ([(g,) for g in layout.names], mean_error_differences(layout, w, t, p))}


def compute_cells(layout: Layout, method: str, w: np.ndarray, t: np.ndarray | None,
                  p: np.ndarray, min_samples: int) -> Cells:
    """All Delta cells of ``method`` for rows of weights ``w``."""
    if method == QUALITY:
        return quality_cells(layout, w, t, p, min_samples)
    if method == SHIFT:
        return shift_cells(layout, w, p, min_samples)
    return distribution_cells(layout, w, p, min_samples)


def group_quality_cells(layout: Layout, w: np.ndarray) -> Cells:
    """Each group's own quality on its labelled items: CCC (dimensions) or UAR (emotion)."""
    t, p = layout.truth, layout.pred
    keys = [(g,) for g in layout.names]
    values = []
    if layout.regression:
        has = np.isfinite(t)
        wq, tt = w * has, np.where(has, t, 0.0)
        values = [_wccc(wq, tt, p, a, b) for a, b in layout.bounds]
        return {"ccc": (keys, np.stack(values, axis=1))}
    for a, b in layout.bounds:
        _, recall, n_true = _class_scores(w, t, p, layout.k, a, b, 0)
        values.append(_nanmean(np.where(n_true > 0, recall, np.nan), axis=1))
    return {"uar": (keys, np.stack(values, axis=1))}


def bootstrap_weights(layout: Layout, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of item weights (draw counts) for a two-stage cluster bootstrap.

    Clusters are speakers (single items without a ``speaker`` column).  Stage 1 draws the
    clusters with replacement - within each group when every cluster lies in one group
    (the group sizes then stay about the same), else over the whole sample; stage 2 draws,
    for every drawn copy of a cluster, as many of its items with replacement as it has.
    A one-stage cluster bootstrap only sees the variation *between* speakers and gives
    far too narrow intervals when a group has few speakers (2 voices per language in the
    bundled corpus); the second stage adds the variation within speakers, which makes the
    interval somewhat conservative rather than over-confident.
    """
    n = layout.n
    clusters = layout.clusters if layout.clusters is not None else np.arange(n)
    group_of = np.empty(n, dtype=int)
    for g, (a, b) in enumerate(layout.bounds):
        group_of[a:b] = g
    nested = pd.Series(group_of).groupby(clusters).nunique().max() <= 1
    strata = [np.arange(a, b) for a, b in layout.bounds] if nested else [np.arange(n)]
    return stats.two_stage_weights(np.asarray(clusters), strata, n_boot, rng)


# =============================================================================================
# Choosing the items: groups, balancing, caps
# =============================================================================================


def balance_groups(truth: pd.Series, groups: dict[str, list[str]], samples: int | None,
                   rng: np.random.Generator, regression: bool) -> dict[str, list[str]]:
    """Truth-balanced samples of equal size from every group (ser-tests' method).

    ``min(samples, size of the smallest group)`` items are drawn from the smallest group
    without replacement.  For each of them, every other group contributes the unused item
    with the closest true value (ties broken at random) or, for classes, an unused item of
    the same class; classes another group cannot match are cut down in every group so the
    class counts stay identical.
    """
    order = sorted(groups, key=lambda g: (len(groups[g]), g))
    small = order[0]
    k = len(groups[small]) if samples is None else min(int(samples), len(groups[small]))
    base = list(rng.choice(np.asarray(groups[small], dtype=object), size=k, replace=False))
    out: dict[str, list[str]] = {small: base}
    if regression:
        q = truth.loc[base].to_numpy(float)
        for g in order[1:]:
            ids = np.asarray(groups[g], dtype=object)
            values = truth.loc[ids].to_numpy(float)
            used = np.zeros(values.size, dtype=bool)
            chosen = []
            for v in q:
                dist = np.where(used, np.inf, np.abs(values - v))
                best = np.flatnonzero(dist == dist.min())
                j = best[0] if best.size == 1 else int(rng.choice(best))
                used[j] = True
                chosen.append(ids[j])
            out[g] = chosen
        return {g: out[g] for g in groups}
    base_cls = truth.loc[base].astype(str)
    classes = sorted(set(base_cls))
    pools = {g: truth.loc[groups[g]].astype(str) for g in order[1:]}
    keep = {c: min([int((base_cls == c).sum())] + [int((pools[g] == c).sum()) for g in pools])
            for c in classes}
    out[small] = _cap_in_order(base, base_cls.tolist(), keep)
    for g in order[1:]:
        picked = []
        for c in classes:
            cand = np.asarray(pools[g].index[pools[g] == c], dtype=object)
            if keep[c]:
                picked.extend(rng.choice(cand, size=keep[c], replace=False).tolist())
        out[g] = picked
    return {g: out[g] for g in groups}


def _cap_in_order(ids: list[str], classes: list[str], keep: dict[str, int]) -> list[str]:
    """The first ``keep[c]`` items of each class, in the given order."""
    used: dict[str, int] = {}
    out = []
    for i, c in zip(ids, classes):
        if used.get(c, 0) < keep.get(c, 0):
            out.append(i)
            used[c] = used.get(c, 0) + 1
    return out


def cap_groups(groups: dict[str, list[str]], samples: int | None, rng: np.random.Generator
               ) -> dict[str, list[str]]:
    """At most ``samples`` items per group, drawn at random without replacement."""
    if samples is None:
        return groups
    out = {}
    for g, ids in groups.items():
        if len(ids) > samples:
            out[g] = sorted(rng.choice(np.asarray(ids, dtype=object), size=int(samples),
                                       replace=False).tolist())
        else:
            out[g] = list(ids)
    return out


class Skip(Exception):
    """The check does not apply to this data (the message says why)."""


# =============================================================================================
# The checks
# =============================================================================================

COMMON_DEFAULTS: dict[str, Any] = {
    "column": None,          # group column
    "columns": None,         # or several columns: their intersection
    "groups": None,          # values (or "a & b" intersections) to compare; None = all
    "method": "quality",     # quality | distribution | auto (quality if labels exist)
    "samples": 1000,         # quality: balanced items per group; distribution: cap per group
    "min_group_size": 1,     # groups with fewer items are skipped
    "min_samples": "auto",   # per-bin minimum; auto = min_samples_for_bins(smallest group)
    "calibrate": False,      # False | True | {simulations, quantile, truth}
}

SEX_THRESHOLDS = {  # fairness_sex (catalogue §3.2) plus the signed mean error (sertest)
    "mean_error_difference": "abs < 0.075",
    "ccc_difference": "abs < 0.075", "precision_per_bin_difference": "abs < 0.1",
    "recall_per_bin_difference": "abs < 0.1", "precision_per_class_difference": "abs < 0.075",
    "recall_per_class_difference": "abs < 0.175", "uar_difference": "abs < 0.075"}
ACCENT_THRESHOLDS = {  # fairness_accent (catalogue §3.2)
    "mean_difference": "abs < 0.075", "relative_difference_per_bin": "abs < 0.225",
    "relative_difference_per_class": "abs < 0.225"}
GROUP_QUALITY = {"ccc": "> 0.5", "uar": "> 0.5"}
#: labelled regression data: the signed mean error of a group against the rest (as
#: fairness_sex's) carries the verdict of the label-free accent and language tests
ERROR_THRESHOLD = {"mean_error_difference": "abs < 0.075"}
NO_QUALITY_DELTAS = {m: None for m in SEX_THRESHOLDS}
NO_DISTRIBUTION = {m: None for m in ACCENT_THRESHOLDS}


class GroupFairness(Check):
    """Shared machinery: groups -> items -> Delta cells, CIs, calibration, measurements."""

    topic = "fairness"
    kinds = ("regression", "classification")
    defaults = dict(COMMON_DEFAULTS)
    methods: tuple[str, ...] = (QUALITY, DISTRIBUTION, "auto")

    def __init__(self, params=None, thresholds=None, name=None) -> None:
        super().__init__(params, thresholds, name)
        from .calibration import parse_calibration

        where = f"test {self.name!r}"
        self.calibration = parse_calibration(self.params.get("calibrate"), where)
        method = self.params.get("method")
        if method not in self.methods:
            raise UsageError(f"{where}: method must be one of {list(self.methods)}, got {method!r}")
        for key in ("samples", "min_group_size"):
            v = self.params.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise UsageError(f"{where}: {key} must be a positive integer or null, got {v!r}")
        ms = self.params.get("min_samples")
        if ms != "auto" and (isinstance(ms, bool) or not isinstance(ms, int) or ms < 0):
            raise UsageError(f"{where}: min_samples must be 'auto' or an integer >= 0, got {ms!r}")
        cols = self.params.get("columns")
        if cols is not None and (not isinstance(cols, list) or not cols
                                 or not all(isinstance(c, str) for c in cols)):
            raise UsageError(f"{where}: columns must be a non-empty list of column names")
        self._cache: dict[Any, Any] = {}

    # -- hooks ---------------------------------------------------------------------------
    def group_columns(self) -> list[str]:
        cols = self.params.get("columns") or ([self.params["column"]] if self.params.get(
            "column") else [])
        if not cols:
            raise UsageError(f"test {self.name!r}: give the group column with params: "
                             "{column: NAME} or {columns: [A, B]}")
        return list(cols)

    def group_of(self, ctx: Context, ids: list[str]) -> pd.Series:
        """Group name per item (items without a group are left out)."""
        cols = self.group_columns()
        missing = [c for c in cols if c not in ctx.table.columns]
        if missing:
            raise Skip(f"the data has no {', '.join(map(repr, missing))} column")
        frame = ctx.table.loc[ids, cols].dropna().astype(str)
        frame = frame[(frame.apply(lambda s: s.str.strip()) != "").all(axis=1)]
        if frame.empty:
            raise Skip(f"no item has a value in {', '.join(map(repr, cols))}")
        names = frame[cols[0]]
        for c in cols[1:]:
            names = names + JOIN + frame[c]
        return names

    def choose_method(self, ctx: Context, target: str) -> str:
        method = self.params.get("method")
        if method == "auto":
            return QUALITY if ctx.has_truth(target) else DISTRIBUTION
        if method == QUALITY and not ctx.has_truth(target):
            raise Skip(f"needs {target} labels (or --reference) to compare quality between "
                       "groups; set method: distribution to compare prediction distributions")
        return method

    # -- planning ----------------------------------------------------------------------------
    def requests(self, ctx: Context) -> list[Request]:
        return [Request(None, primary_ids(ctx))]

    # -- measuring ---------------------------------------------------------------------------
    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        try:
            return self._measure(ctx, model, target)
        except Skip as exc:
            return Outcome(skipped=str(exc))

    def _measure(self, ctx: Context, model: str, target: str) -> Outcome:
        out = Outcome()
        regression = self.kind_of(target) == "regression"
        method = self.choose_method(ctx, target)
        ids = primary_ids(ctx)
        group = self.group_of(ctx, ids)
        wanted = self.params.get("groups")
        if wanted:
            wanted = [str(g) for g in wanted]
            absent = [g for g in wanted if g not in set(group)]
            if absent:
                out.notes.append(f"groups not in the data: {absent}")
            group = group[group.isin(wanted)]
        has_truth = ctx.has_truth(target)
        truth = ctx.truth(target, group.index) if has_truth else None
        labels: list[str] = []
        if not regression:
            if truth is not None:
                labels, truth, dropped = class_labels_for(ctx, model, truth)
                if dropped:
                    out.notes.append(f"truth classes the model cannot output were left out: "
                                     f"{dropped}")
            else:
                labels = list(ctx.models[model].classes)
        if method == QUALITY:
            group = group.loc[group.index.intersection(truth.index, sort=False)]
        pred = ctx.prediction(model, target, None, group.index)
        if method == QUALITY:
            # balancing must not depend on the model: use every item with truth, then drop
            # the items this model has no prediction for
            selection, skipped = self.select(ctx, target, group, truth, regression, method)
        else:
            group = group.loc[group.index.intersection(pred.index, sort=False)]
            selection, skipped = self.select(ctx, target, group, truth, regression, method)
        selection = {g: [i for i in v if i in pred.index] for g, v in selection.items()}
        for g in [g for g, v in selection.items() if not v]:
            skipped[g] = "no item of this group has a prediction"
            del selection[g]
        if len(selection) < 2:
            raise Skip(self._too_few(selection, skipped))
        from .confounds import group_confounds

        # the same items give the same confounds for every model: computed once per selection
        key = ("confounds", id(ctx.dataset),
               tuple((g, tuple(v)) for g, v in sorted(selection.items())))
        if key not in self._cache:
            self._cache[key] = (ctx.dataset, group_confounds(ctx, selection))  # keeps id valid
        out.flags += [{"kind": "confound", "text": c} for c in self._cache[key][1]]
        layout = self.layout(ctx, selection, pred, truth, regression, labels, method)
        min_samples = self._min_samples(layout)
        t = layout.truth if method == QUALITY else None
        ones = np.ones((1, layout.n))
        cells = compute_cells(layout, method, ones, t, layout.pred, min_samples)
        quality_id = QUALITY_METRICS["regression" if regression else "classification"]
        with_quality = (has_truth and method != SHIFT and layout.truth is not None
                        and quality_id in self.thresholds)
        if with_quality:
            cells.update(group_quality_cells(layout, ones))
        boot: Cells = {}
        if ctx.n_boot > 0:
            # the resamples depend on the test, target and items, never on the model:
            # every model sees the same resamples (paired comparisons)
            w = bootstrap_weights(layout, ctx.n_boot, stats.resample_rng(
                ctx.seed, self.name, target, layout.ids))
            boot = compute_cells(layout, method, w, t, layout.pred, 0)
            if with_quality:
                boot.update(group_quality_cells(layout, w))
        limits = self.calibrate(ctx, target, layout, method, min_samples, cells, out)
        # labelled regression data: a label-free method gains its error-based cell (signed
        # mean error, or its shift), which carries the verdict; the label-free cells stay,
        # judged as secondary (they can fail a test but, underpowered, never block a pass)
        secondary: set[str] = set()
        if has_truth and ERROR_CELLS.get(method) in self.thresholds:
            extra_cells = error_cells(layout, method, ones)
            if extra_cells:
                secondary = {m for m in cells if m != quality_id}
                cells = {**extra_cells, **cells}
                if boot:
                    boot = {**error_cells(layout, method, w), **boot}
        sizes = dict(zip(layout.names, (b - a for a, b in layout.bounds)))
        for metric_id, (keys, values) in cells.items():
            threshold = limits.get(metric_id)
            if threshold is None and metric_id not in self.thresholds:
                continue
            for j, key in enumerate(keys):
                value = float(values[0, j])
                reps = boot[metric_id][1][:, j] if boot else None
                ci = stats.percentile_interval(reps, ctx.confidence) \
                    if reps is not None and np.isfinite(value) else None
                extra = self._extra(key, method)
                n = self._cell_n(layout, key)
                if metric_id == quality_id:
                    extra["role"] = "group quality"
                    n = self._labelled_n(layout, key)
                elif metric_id in secondary:
                    extra["role"] = SECONDARY
                elif metric_id in ERROR_CELLS.values():
                    n = self._labelled_n(layout, key) if len(key) == 1 else n
                m = Measurement(metric_id, value, slice=self._slice(key, method), ci=ci, n=n,
                                extra=extra, replicates=reps if np.isfinite(value) else None)
                if not np.isfinite(value):
                    m.extra["reason"] = self._nan_reason(metric_id, min_samples)
                if threshold is not None:
                    m.threshold = threshold
                # a bin rarely predicted may have no interval: the judge makes it inconclusive
                out.measurements.append(m)
        for g, reason in skipped.items():
            for metric_id in cells:
                if metric_id in self.thresholds or metric_id in limits:
                    out.measurements.append(Measurement(metric_id, math.nan, slice={"group": g},
                                                        n=0,
                                                        extra={"group": g, "reason": reason}))
        out.plots.update(self._plots(layout, method, min_samples, sizes))
        out.plots = _plain(out.plots)  # JSON-safe: NaN -> None, numpy -> Python
        out.notes.append(f"method {method}: {len(layout.names)} groups, "
                         f"{layout.n} items; per-bin minimum {min_samples}")
        return out

    # -- selection -----------------------------------------------------------------------------
    def select(self, ctx: Context, target: str, group: pd.Series, truth: pd.Series | None,
               regression: bool, method: str) -> tuple[dict[str, list[str]], dict[str, str]]:
        """Items per group (balanced or capped) and the groups skipped with their reason."""
        min_size = int(self.params.get("min_group_size") or 1)
        members = {g: v.tolist() for g, v in group.groupby(group, sort=True).groups.items()}
        skipped = {g: f"only {len(v)} items (min_group_size {min_size})"
                   for g, v in members.items() if len(v) < min_size}
        members = {g: v for g, v in members.items() if g not in skipped}
        if len(members) < 2:
            return members, skipped
        samples = self.params.get("samples")
        if method == QUALITY:
            # the same items, truth and seed give the same balanced sample for every model
            key = ("balance", ctx.seed, target,
                   tuple((g, tuple(v)) for g, v in members.items()),
                   tuple(truth.loc[[i for v in members.values() for i in v]].astype(str)))
            if key not in self._cache:
                rng = ctx.rng("balance", self.name, target)
                self._cache[key] = balance_groups(truth, members, samples, rng, regression)
            return self._cache[key], skipped
        rng = ctx.rng("sample", self.name, target)
        return cap_groups(members, samples, rng), skipped

    def layout(self, ctx: Context, selection: dict[str, list[str]], pred: pd.Series,
               truth: pd.Series | None, regression: bool, labels: list[str], method: str
               ) -> Layout:
        names = [g for g in selection if selection[g]]
        ids: list[str] = []
        bounds = []
        for g in names:
            bounds.append((len(ids), len(ids) + len(selection[g])))
            ids.extend(selection[g])
        return self._make_layout(ctx, names, bounds, ids, pred, truth, regression, labels)

    def _make_layout(self, ctx, names, bounds, ids, pred, truth, regression, labels,
                     contexts=None, context_names=()) -> Layout:
        """Arrays in group order; missing truth is NaN (dimensions) or -1 (emotion)."""
        t = None
        if regression:
            p = pred.loc[ids].to_numpy(float)
            if truth is not None:
                t = truth.reindex(ids).to_numpy(float)
            k = len(EDGES) + 1
        else:
            code = {c: i for i, c in enumerate(labels)}
            p = np.array([code.get(str(v), -1) for v in pred.loc[ids]], dtype=int)
            if truth is not None:
                t = np.array([code.get(str(v), -1) if isinstance(v, str) else -1
                              for v in truth.reindex(ids)], dtype=int)
            k = len(labels)
        clusters = None
        if ctx.dataset.has("speaker"):
            spk = ctx.table.loc[ids, "speaker"].astype(str).to_numpy()
            clusters = pd.factorize(spk)[0]
        return Layout(names, bounds, ids, regression, k, list(labels), p, t, clusters,
                      contexts, list(context_names))

    def _min_samples(self, layout: Layout) -> int:
        ms = self.params.get("min_samples")
        if ms != "auto":
            return int(ms)
        sizes = [b - a for a, b in layout.bounds]
        if layout.contexts is not None:
            sizes = [c1 - c0 for ctxs in layout.contexts for _, c0, c1 in ctxs if c1 > c0]
        if not sizes:
            return 0
        return max(metrics.min_samples_for_bins(min(sizes)), AUTO_MIN_SAMPLES_FLOOR)

    # -- calibration -----------------------------------------------------------------------------
    def calibrate(self, ctx: Context, target: str, layout: Layout, method: str,
                  min_samples: int, cells: Cells, out: Outcome) -> dict[str, Threshold]:
        """Calibrated thresholds per Delta metric (empty if calibration is off)."""
        spec = self.calibration
        if spec is None:
            return {}
        from .calibration import simulate_limits

        use_data = spec.truth == "data" and method == QUALITY
        key = ("calibrate", ctx.seed, method, layout.regression, layout.k, layout.sizes(),
               min_samples, spec, layout.truth.tobytes() if use_data else None)
        if key not in self._cache:
            def compute(t: np.ndarray | None, p: np.ndarray) -> Cells:
                return compute_cells(layout, method, np.ones((1, layout.n)), t, p, min_samples)

            # the generator depends on what is simulated, not on the model or the order in
            # which targets are audited (the truth-from-data case also on the target)
            seed_key = f"{method}/{layout.regression}/{layout.k}/{layout.sizes()}/{min_samples}"
            rng = ctx.rng("calibrate", self.name, seed_key, target if use_data else "")
            self._cache[key] = simulate_limits(
                compute, layout.n, layout.regression, layout.k, spec, rng,
                truth=layout.truth if use_data else None, needs_truth=method == QUALITY)
        result = self._cache[key]
        limits = {}
        for metric_id, info in result.items():
            if metric_id not in cells or not np.isfinite(info["limit"]):
                continue
            limits[metric_id] = Threshold("<", round(float(info["limit"]), 6), absolute=True)
        out.plots["calibration"] = figures.bars(
            labels=list(result), values=[info["limit"] for info in result.values()],
            metric="calibrated limit of |difference|",
            details={m: {k: (round(v, 6) if isinstance(v, float) else v)
                         for k, v in info.items()} for m, info in result.items()})
        if limits:
            out.notes.append("thresholds calibrated by random-model simulation: " + ", ".join(
                f"{m} {th.text}" for m, th in limits.items()))
        return limits

    # -- measurement details ------------------------------------------------------------------
    def _cell_n(self, layout: Layout, key: tuple[str, ...]) -> int:
        g = layout.names.index(key[0])
        a, b = layout.bounds[g]
        if layout.contexts is not None and len(key) > 1:
            for name, c0, c1 in layout.contexts[g]:
                if name == key[1]:
                    return c1 - c0
        return b - a

    @staticmethod
    def _slice(key: tuple[str, ...], method: str) -> dict[str, str]:
        """A cell's key (group, [context,] [bin or class]) as a measurement's slice."""
        facets = ["group", "context"] if method == SHIFT else ["group"]
        cell = dict(zip(facets, key))
        if len(key) > len(facets):
            cell["bin" if key[len(facets)] in BIN_NAMES else "class"] = key[len(facets)]
        return cell

    def _extra(self, key: tuple[str, ...], method: str) -> dict[str, Any]:
        if method == SHIFT:
            extra = {"group": key[0], "context": key[1]}
            if len(key) > 2:
                extra["bin" if key[2] in BIN_NAMES else "class"] = key[2]
            return extra
        extra = {"group": key[0]}
        if len(key) > 1:
            extra["bin" if key[1] in BIN_NAMES else "class"] = key[1]
        return extra

    @staticmethod
    def _nan_reason(metric_id: str, min_samples: int) -> str:
        if "bin" in metric_id:
            return f"fewer than {min_samples} items in this bin"
        if "precision" in metric_id:
            return "class never predicted in the group or the combined set"
        if "shift" in metric_id or "mean" in metric_id:
            return "no items in this cell"
        return "not measurable (e.g. a class missing from the group)"

    @staticmethod
    def _too_few(selection: dict, skipped: dict) -> str:
        text = f"{len(selection)} group(s) with enough items; need 2"
        if skipped:
            text += "; skipped: " + "; ".join(f"{g}: {r}" for g, r in skipped.items())
        return text

    @staticmethod
    def _labelled_n(layout: Layout, key: tuple[str, ...]) -> int:
        a, b = layout.bounds[layout.names.index(key[0])]
        t = layout.truth[a:b]
        return int(np.isfinite(t).sum() if layout.regression else (t >= 0).sum())

    def _plots(self, layout: Layout, method: str, min_samples: int, sizes) -> dict[str, Any]:
        """Group sizes and the prediction distribution of every group and of all of them."""
        plots: dict[str, Any] = {"group_sizes": figures.sizes(
            labels=list(sizes), values=[int(n) for n in sizes.values()], metric="items")}
        blocks = [(g, a, b) for g, (a, b) in zip(layout.names, layout.bounds)]
        if method == SHIFT and layout.contexts is not None:
            blocks = [(f"{g}{SEP}{c}", c0, c1) for g, ctxs in zip(layout.names, layout.contexts)
                      for c, c0, c1 in ctxs if c1 > c0]
        if layout.regression:
            def summary(values):  # the values, or 401 quantiles of a larger group
                if values.size <= MAX_PLOT_VALUES:
                    return np.round(np.sort(values), 4).tolist()
                grid = np.linspace(0, 1, MAX_PLOT_VALUES + 1)
                return np.round(np.quantile(values, grid), 4).tolist()

            groups = {"combined": summary(layout.pred)}
            groups.update({g: summary(layout.pred[a:b]) for g, a, b in blocks})
            plots["distributions"] = figures.distributions(groups=groups, reference="combined")
        else:
            def shares(codes):
                return {c: round(float(np.mean(codes == i)), 4)
                        for i, c in enumerate(layout.labels)}

            groups = {"combined": shares(layout.pred)}
            groups.update({g: shares(layout.pred[a:b]) for g, a, b in blocks})
            plots["distributions"] = figures.shares(groups=groups)
        return plots


# -- the ser-tests tests ----------------------------------------------------------------------
@register
class FairnessSex(GroupFairness):
    """Quality differences between female and male speakers (truth-balanced samples).

    Needs ``sex`` (female / male; ``f``/``m``/``w`` are normalised when loading) and labels.
    ser-tests: iemocap and msppodcast, 1000 balanced items per group.
    """

    id = "fairness_sex"
    description = "quality difference between sexes on truth-balanced samples"
    metrics = {**SEX_THRESHOLDS, **GROUP_QUALITY, **NO_DISTRIBUTION}
    defaults = {**COMMON_DEFAULTS, "column": "sex"}


@register
class FairnessPitch(GroupFairness):
    """Quality differences between low, medium and high pitched speakers.

    Groups by the speaker's mean F0 (Hz): low (0, 145], medium (145, 190], high (190, 350]
    (``f0_groups``).  F0 per item is estimated by sertest (:class:`~sertest.features.
    F0Estimator`, YIN; ser-tests used Praat) or read from the column ``f0_column``;
    items without a reliable F0 are ignored; the speaker's F0 is the mean over its items.
    Only speakers with at least ``min_speaker_samples`` items (25 in ser-tests) are used.
    Without a ``speaker`` column each item is grouped by its own F0.
    """

    id = "fairness_pitch"
    description = "quality difference between low, medium and high pitched speakers"
    metrics = {"mean_error_difference": "abs < 0.075",
               "ccc_difference": "abs < 0.1", "precision_per_bin_difference": "abs < 0.125",
               "recall_per_bin_difference": "abs < 0.125",
               "precision_per_class_difference": "abs < 0.1",
               "recall_per_class_difference": "abs < 0.225", "uar_difference": "abs < 0.075",
               **GROUP_QUALITY, **NO_DISTRIBUTION}
    defaults = {**COMMON_DEFAULTS, "f0_groups": {"low": [0, 145], "medium": [145, 190],
                                                 "high": [190, 350]},
                "min_speaker_samples": 25, "f0_column": None}

    def __init__(self, params=None, thresholds=None, name=None) -> None:
        super().__init__(params, thresholds, name)
        bands = self.params["f0_groups"]
        if not isinstance(bands, dict) or not bands:
            raise UsageError(f"test {self.name!r}: f0_groups must map a name to [low, high] Hz")
        self.bands: list[tuple[str, float, float]] = []
        for g, lim in bands.items():
            if (not isinstance(lim, (list, tuple)) or len(lim) != 2
                    or not float(lim[0]) < float(lim[1])):
                raise UsageError(f"test {self.name!r}: f0_groups.{g} must be [low, high] Hz "
                                 f"with low < high, got {lim!r}")
            self.bands.append((str(g), float(lim[0]), float(lim[1])))
        self._f0 = F0Estimator()

    def features(self, ctx: Context) -> list:
        return [] if self.params.get("f0_column") else [self._f0]

    def group_columns(self) -> list[str]:
        return ["f0"]

    def item_f0(self, ctx: Context, ids: list[str]) -> pd.Series:
        col = self.params.get("f0_column")
        if col:
            if col not in ctx.table.columns:
                raise Skip(f"the data has no {col!r} column (f0_column)")
            f0 = pd.to_numeric(ctx.table.loc[ids, col], errors="coerce")
        else:
            f0 = ctx.prediction(self._f0.name, "f0", None, ids)
        return f0[(f0 > 0) & np.isfinite(f0)]

    def group_of(self, ctx: Context, ids: list[str]) -> pd.Series:
        f0 = self.item_f0(ctx, ids)
        if f0.empty:
            raise Skip("no item has a reliable F0")
        if ctx.dataset.has("speaker"):
            spk = ctx.table.loc[f0.index, "speaker"].astype(str)
            counts = spk.value_counts()
            min_n = int(self.params["min_speaker_samples"])
            ok = counts[counts >= min_n].index
            if len(ok) == 0:
                raise Skip(f"no speaker has {min_n} items with a reliable F0 "
                           f"(most: {int(counts.max())}); lower min_speaker_samples")
            f0 = f0[spk.isin(ok)]
            spk = spk.loc[f0.index]
            per_item = spk.map(f0.groupby(spk).mean())
        else:
            per_item = f0
        names = pd.Series(index=per_item.index, dtype=object)
        for g, lo, hi in self.bands:
            names[(per_item > lo) & (per_item <= hi)] = g
        names = names.dropna().astype(str)
        if names.empty:
            raise Skip("no speaker's mean F0 falls into the f0_groups")
        return names

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        out = super().measure(ctx, model, target)
        if not out.skipped:
            out.notes.append("groups by " + ", ".join(f"{g} ({lo:g}, {hi:g}] Hz"
                                                      for g, lo, hi in self.bands))
        return out


@register
class FairnessAccent(GroupFairness):
    """Prediction distributions of each accent against all accents (no labels needed).

    ser-tests: 31 native languages of the speech accent archive, at least 60 items and
    5 female + 5 male speakers per accent; sertest applies ``min_group_size`` (60).
    """

    id = "fairness_accent"
    description = "prediction distribution of each accent against all accents"
    metrics = {**ACCENT_THRESHOLDS, **GROUP_QUALITY, **NO_QUALITY_DELTAS, **ERROR_THRESHOLD}
    defaults = {**COMMON_DEFAULTS, "column": "accent", "method": DISTRIBUTION,
                "samples": None, "min_group_size": 60}


@register
class FairnessLanguage(GroupFairness):
    """Prediction distributions of each language against all languages.

    ser-tests: Common Voice de/en/es/fr/it/zh, 2000 random clips per language; thresholds
    raised above the simulated ones to allow for true differences between languages.
    """

    id = "fairness_language"
    description = "prediction distribution of each language against all languages"
    metrics = {"mean_difference": "abs < 0.03", "relative_difference_per_bin": "abs < 0.1",
               "relative_difference_per_class": "abs < 0.1", **GROUP_QUALITY,
               **NO_QUALITY_DELTAS, **ERROR_THRESHOLD}
    defaults = {**COMMON_DEFAULTS, "column": "language", "method": DISTRIBUTION,
                "samples": 2000}


@register
class FairnessLinguisticSentiment(GroupFairness):
    """Does the lexical sentiment of the words move predictions differently per language?

    Needs a ``sentiment`` column (``context``; ser-tests: negative / neutral / positive) and
    a ``language`` column (``column``); at most ``samples`` items per language (2000).
    Cells ``(language, sentiment)`` with fewer than ``min_group_size`` items are skipped.
    """

    id = "fairness_linguistic_sentiment"
    description = "shift of predictions with lexical sentiment, per language"
    metrics = {"mean_error_shift_difference": "abs < 0.075",
               "mean_shift_difference": "abs < 0.025",
               "bin_proportion_shift_difference": "abs < 0.075",
               "class_proportion_shift_difference": "abs < 0.075"}
    defaults = {**COMMON_DEFAULTS, "column": "language", "method": SHIFT, "samples": 2000,
                "context": "sentiment", "contexts": None}
    methods = (SHIFT,)

    def choose_method(self, ctx: Context, target: str) -> str:
        return SHIFT

    def _too_few(self, selection: dict, skipped: dict) -> str:
        return (f"needs at least 2 languages in column {self.params['column']!r}; found "
                f"{len(selection)}: the shift difference of a single language is 0 by "
                "construction")

    def select(self, ctx, target, group, truth, regression, method):
        rng = ctx.rng("sample", self.name, target)
        members = {g: v.tolist() for g, v in group.groupby(group, sort=True).groups.items()}
        return cap_groups(members, self.params.get("samples"), rng), {}

    def layout(self, ctx, selection, pred, truth, regression, labels, method) -> Layout:
        col = self.params["context"]
        if col not in ctx.table.columns:
            raise Skip(f"the data has no {col!r} column")
        wanted = self.params.get("contexts")
        min_size = int(self.params.get("min_group_size") or 1)
        names, bounds, ids, contexts, skipped = [], [], [], [], []
        context_values = ctx.table[col].dropna().astype(str)
        all_ctx = sorted(set(context_values)) if not wanted else [str(c) for c in wanted]
        for g, members in selection.items():
            ctx_of = ctx.table.loc[members, col].tolist()
            blocks, start = [], len(ids)
            for c in all_ctx:
                items = [i for i, v in zip(members, ctx_of) if isinstance(v, str) and v == c]
                if len(items) < min_size:
                    if items:
                        skipped.append(f"{g}{SEP}{c}: only {len(items)} items")
                    items = []
                blocks.append((c, len(ids), len(ids) + len(items)))
                ids.extend(items)
            if len(ids) > start:
                names.append(g)
                bounds.append((start, len(ids)))
                contexts.append(blocks)
        if len(names) < 2:
            raise Skip(f"needs at least 2 languages with {col} labels in column "
                       f"{self.params['column']!r}; found {len(names)}")
        layout = self._make_layout(ctx, names, bounds, ids, pred, truth, regression, labels,
                                   contexts, all_ctx)
        self._skipped_cells = skipped
        return layout

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        self._skipped_cells = []
        out = super().measure(ctx, model, target)
        if self._skipped_cells and not out.skipped:
            out.notes.append(f"cells with fewer than {self.params['min_group_size']} items "
                             "left out: " + "; ".join(self._skipped_cells))
        return out


@register
class FairnessGroup(GroupFairness):
    """Fairness for any group column the suite declares, or an intersection of columns.

    ``params: {column: age_group}`` or ``{columns: [sex, language]}``.  The method is
    ``auto``: quality differences on truth-balanced samples when labels exist, prediction
    distributions otherwise.  No ser-tests thresholds exist for arbitrary groups, so the
    thresholds are calibrated by random-model simulation for the actual group sizes by
    default (``calibrate: true``); the listed defaults (fairness_sex's and
    fairness_accent's) apply when calibration is switched off.
    """

    id = "fairness_group"
    description = "fairness between the groups of any declared column(s)"
    metrics = {**SEX_THRESHOLDS, **ACCENT_THRESHOLDS, **GROUP_QUALITY}
    defaults = {**COMMON_DEFAULTS, "method": "auto", "calibrate": True, "min_group_size": 20}

    def __init__(self, params=None, thresholds=None, name=None) -> None:
        super().__init__(params, thresholds, name)
        self.group_columns()  # fail at suite load if no column is given


__all__ = ["FairnessAccent", "FairnessGroup", "FairnessLanguage",
           "FairnessLinguisticSentiment", "FairnessPitch", "FairnessSex", "GroupFairness",
           "Layout", "balance_groups", "bootstrap_weights", "compute_cells",
           "distribution_cells", "quality_cells", "shift_cells"]
