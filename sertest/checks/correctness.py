"""Correctness: does the model predict what the labels say?

Tests (ids as in audEERING's ser-tests; thresholds from its YAML files, catalogue §3.1):

* ``correctness_regression``: CCC, PCC, MAE of predicted against true dimensions.
* ``correctness_distribution``: Jensen-Shannon distance of the truth and prediction
  histograms (dimensions); per-class proportion differences (emotion).
* ``correctness_consistency``: for items with a categorical emotion label, the share of
  dimensional predictions inside the range the category implies (e.g. anger -> high arousal).
* ``correctness_speaker_average``: per-speaker mean prediction against per-speaker mean
  truth (dimensions), per-speaker class proportions (emotion).
* ``correctness_speaker_ranking``: Spearman correlation of the per-speaker means (signed).
* ``correctness_classification``: UAR, UAP, per-class recall and precision, confusion matrix.

Every main metric gets a bootstrap confidence interval, clustered by speaker when the data
has a ``speaker`` column (items of one speaker are not independent).  Paired re-recordings
(rows that share a ``pair`` id) would count one utterance several times, so only the first
row of each pair (in table order: the ``headset`` rendition of the bundled corpus) is scored.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pandas as pd

from .. import figures, metrics, stats
from ..errors import DataError, UsageError
from .base import Check, Context, Measurement, Outcome, Request, id_list, register

MAX_PLOT_POINTS = 600
#: bin width of the plotted truth / prediction histograms (ser-tests plotted 0.03)
HIST_BINS = 20  # 0.05 wide over [0, 1]


# -- helpers shared by correctness and fairness ---------------------------------------------
def _clusters(ctx: Context, ids) -> np.ndarray | None:
    """Speaker ids for a cluster bootstrap (items of one speaker are not independent)."""
    if ctx.dataset.has("speaker"):
        return ctx.table.loc[id_list(ids), "speaker"].astype(str).to_numpy()
    return None


def with_ci(ctx: Context, metric, truth, pred, key: str, groups=None
            ) -> tuple[float, tuple | None, np.ndarray | None]:
    """A metric value, its bootstrap confidence interval and the bootstrap replicates.

    ``key`` names the test, target and cell but never the model: every model measured on
    the same items sees the same resamples (common random numbers, paired comparisons).
    """
    value = float(metric(truth, pred))
    if ctx.n_boot <= 0 or len(truth) < 3 or not np.isfinite(value):
        return value, None, None
    reps = stats.replicates(metric, truth, pred, n_boot=ctx.n_boot,
                            rng=ctx.rng("bootstrap", key, len(truth)), groups=groups)
    return value, stats.percentile_interval(reps, ctx.confidence), reps


def subsample_points(ctx: Context, key: str, *arrays, limit: int = MAX_PLOT_POINTS):
    """At most ``limit`` aligned points for scatter plots, drawn reproducibly."""
    n = len(arrays[0])
    idx = np.arange(n)
    if n > limit:
        idx = np.sort(ctx.rng("plot", key).choice(n, size=limit, replace=False))
    return [np.round(np.asarray(a, dtype=float)[idx], 4).tolist() for a in arrays]


def primary_ids(ctx: Context) -> list[str]:
    """The items to score: all valid items except extra renditions of a paired utterance.

    Rows sharing a non-empty ``pair`` id are renditions of one utterance (robustness tests
    compare them); only the first in table order is kept here, so no utterance counts twice.
    """
    table = ctx.table
    ids = ctx.valid_ids()
    if "pair" not in table.columns:
        return ids
    pair = table.loc[ids, "pair"]
    has_pair = pair.notna() & (pair.astype(str).str.strip() != "")
    dup = has_pair & pair.duplicated(keep="first")
    return [i for i, d in zip(ids, dup.to_numpy()) if not d]


def histogram(values, bins: int = HIST_BINS) -> list[float]:
    """Proportions of ``values`` in ``bins`` equal bins over [0, 1] (outliers clipped in)."""
    shares = metrics.histogram_proportions(np.asarray(values, dtype=float), bins)
    return np.round(shares, 4).tolist()


def mae_skill(truth, prediction) -> float:
    r"""Skill of ``prediction`` over the best constant: :math:`1 - \mathrm{MAE}(t, p) /
    \mathrm{MAE}(t, \tilde t)`, with :math:`\tilde t` the median truth, the constant of
    least MAE (NaN if every truth is equal).  So every constant predictor scores <= 0.

    >>> mae_skill([0.2, 0.5, 0.8], [0.5, 0.5, 0.5])
    0.0
    """
    t = np.asarray(truth, dtype=float)
    ref = float(np.mean(np.abs(t - np.median(t))))
    if ref <= 1e-12:
        return math.nan
    return 1.0 - metrics.mae(t, prediction) / ref


def share_difference(indicator_a, indicator_b) -> float:
    """``mean(indicator_b) - mean(indicator_a)``: a difference of two shares (0/1 arrays)."""
    return float(np.mean(indicator_b) - np.mean(indicator_a))


def _share(zeros, indicator) -> float:
    """Share of ones (MAE against zeros)."""
    return metrics.mae(zeros, indicator)


def _weighted_means_difference(arrays, kwargs):
    """:func:`share_difference` for every row of weights at once (exact for 0/1 indicators
    and integer draw counts: the same sums as on the resampled items)."""
    if len(arrays) != 2 or kwargs:
        return None
    a, b = (np.asarray(x, dtype=float) for x in arrays)
    if a.ndim != 1 or a.shape != b.shape or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    def metric(w: np.ndarray) -> np.ndarray:
        sw = w.sum(axis=1)
        return np.einsum("ij,j->i", w, b) / sw - np.einsum("ij,j->i", w, a) / sw

    return metric


# the bootstrap evaluates them for all resamples at once (sertest.stats.replicates)
stats.register_weighted_form(share_difference, _weighted_means_difference)
stats.register_weighted_form(_share, lambda arrays, kwargs: None if kwargs else
                             stats.weighted_form(metrics.mae, arrays))


def weighted_spearman(weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of ``x`` and ``y`` for each row of integer item weights (draw counts).

    Equals :func:`sertest.metrics.spearman` on the items repeated as often as drawn (average
    ranks for ties), computed for all rows at once: a resampled item of weight w occupies w
    consecutive ranks, so its average rank is (weight of smaller values) + (w_tie + 1) / 2
    with w_tie the weight of its tie block.  NaN where either series is constant.
    """
    w = np.asarray(weights, dtype=float)

    def ranks(v: np.ndarray) -> np.ndarray:
        _, block = np.unique(v, return_inverse=True)
        order = np.argsort(block, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(block[order]) != 0])
        # (R, blocks) weight of each tie block: integer sums, exact in any order (an
        # (items x blocks) indicator product was n x n floats: 1 GB at 11,200 items)
        per_block = np.add.reduceat(w[:, order], starts, axis=1)
        before = np.cumsum(per_block, axis=1) - per_block
        return (before + (per_block + 1.0) / 2.0)[:, block]

    rx, ry = ranks(np.asarray(x, float)), ranks(np.asarray(y, float))
    sw = np.maximum(w.sum(axis=1, keepdims=True), 1e-300)  # all-zero rows give NaN below
    dx = rx - (w * rx).sum(axis=1, keepdims=True) / sw
    dy = ry - (w * ry).sum(axis=1, keepdims=True) / sw
    sxx, syy = (w * dx * dx).sum(axis=1), (w * dy * dy).sum(axis=1)
    sxy = (w * dx * dy).sum(axis=1)
    out = np.full(w.shape[0], np.nan)
    ok = (sxx > 1e-12) & (syy > 1e-12)
    out[ok] = sxy[ok] / np.sqrt(sxx[ok] * syy[ok])
    return np.clip(out, -1.0, 1.0)


def spearman_ci(ctx: Context, x: np.ndarray, y: np.ndarray, key: str
                ) -> tuple[tuple | None, np.ndarray | None]:
    """Bootstrap CI and replicates of Spearman's rho over the units (rows) of ``x``, ``y``."""
    n = len(x)
    if ctx.n_boot <= 0 or n < 3:
        return None, None
    weights = stats.cluster_weights(n, ctx.n_boot, ctx.rng("bootstrap", key, n))
    values = weighted_spearman(weights, x, y)
    return stats.percentile_interval(values, ctx.confidence), values


def class_labels_for(ctx: Context, model: str, truth: pd.Series,
                     labels: list[str] | None = None) -> tuple[list[str], pd.Series, list[str]]:
    """Classes to score, the truth restricted to them, and the truth classes left out.

    By default the model's classes that occur in the truth (ser-tests filtered the truth
    to its four classes); items whose true class the model cannot output are dropped.
    """
    known = list(labels) if labels else [c for c in ctx.models[model].classes]
    present = set(truth.astype(str))
    used = [c for c in known if c in present]
    dropped = sorted(present - set(known))
    return used, truth[truth.isin(used)], dropped


def no_shared_classes(ctx: Context, model: str, truth: pd.Series) -> DataError:
    """The error of a model whose classes share none with the data's labels: a mapping is
    missing, not a test that does not apply - so the entry is ``error``, never ``skipped``
    (a skipped entry would let the mismatched model outscore the right one)."""
    data = sorted(set(truth.dropna().astype(str)))
    return DataError(f"none of the data's emotion classes {data} is one of model {model!r}'s "
                     f"classes {list(ctx.models[model].classes)}: map them with --label-map "
                     "DATA=MODEL,... (e.g. --label-map angry=anger,happy=happiness) or a "
                     "'# sertest: label_map=...' line in the manifest")


def _speaker_column(ctx: Context) -> str | None:
    return "speaker" if ctx.dataset.has("speaker") else None


# -- tests ------------------------------------------------------------------------------------
class _PrimaryCheck(Check):
    """A check scored on clean audio of the primary items (see :func:`primary_ids`)."""

    def requests(self, ctx: Context) -> list[Request]:
        return [Request(None, primary_ids(ctx))]


@register
class Regression(_PrimaryCheck):
    """CCC, PCC and MAE of predictions against the truth, with bootstrap CIs."""

    id = "correctness_regression"
    topic = "correctness"
    description = "CCC, PCC and MAE of predicted against true arousal/dominance/valence"
    kinds = ("regression",)
    metrics = {"ccc": "> 0.5", "pcc": "> 0.5", "mae": "< 0.1"}
    #: the metric whose whole-set verdict decides whether a model is competent on a
    #: dimension (the judge's competence gate, :func:`verdict.competence_checks`)
    competence = "ccc"

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        truth, pred = ctx.paired(model, target, ids=primary_ids(ctx))
        if len(truth) < 3:
            return Outcome(skipped=f"only {len(truth)} items with {target} labels")
        t, p = truth.to_numpy(float), pred.to_numpy(float)
        groups = _clusters(ctx, truth.index)
        out = Outcome()
        for name, fn in (("ccc", metrics.ccc), ("pcc", metrics.pcc), ("mae", metrics.mae)):
            if name not in self.thresholds:
                continue
            value, ci, reps = with_ci(ctx, fn, t, p, f"{self.name}/{target}", groups)
            out.measurements.append(Measurement(name, value, ci=ci, n=len(t), replicates=reps))
        tx, px = subsample_points(ctx, f"{self.name}/{target}", t, p)
        out.plots["scatter"] = figures.scatter(truth=tx, prediction=px)
        return out


def _edges(bins: int = HIST_BINS) -> list[float]:
    return np.round(np.linspace(0.0, 1.0, bins + 1), 4).tolist()


@register
class Distribution(_PrimaryCheck):
    """Does the prediction distribution match the truth distribution?

    Dimensions: Jensen-Shannon distance (base 2, in [0, 1]) between the histograms of truth
    and prediction on ``bins`` equal bins over [0, 1] (outliers clipped into the outer bins).
    ser-tests' code used ``value_counts(bins=np.arange(0, 1, 0.1))``, i.e. only **9 bins**
    (edges 0.0 ... 0.9) and silently dropped every value above 0.9, while its docs say 10
    bins; sertest really uses 10 bins and drops nothing, so values differ slightly.

    Emotion: per class, ``p_pred(c) - p_truth(c)`` (class shares within each series), judged
    on its absolute value.  Proportions are taken over all items, so predictions of classes
    outside the truth's classes (e.g. an 8-class model) lower the other classes' shares and
    get their own cell.
    """

    id = "correctness_distribution"
    topic = "correctness"
    description = "distance between the truth and prediction distributions"
    metrics = {"jsd": "< 0.2", "relative_difference_per_class": "abs < 0.15"}
    defaults = {"bins": 10}

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        truth, pred = ctx.paired(model, target, ids=primary_ids(ctx))
        if len(truth) < 3:
            return Outcome(skipped=f"only {len(truth)} items with {target} labels")
        groups = _clusters(ctx, truth.index)
        key = f"{self.name}/{target}"
        out = Outcome()
        if self.kind_of(target) == "regression":
            bins = int(self.params["bins"])
            if bins < 2:
                raise UsageError(f"test {self.name!r}: bins must be at least 2, got {bins}")
            t, p = truth.to_numpy(float), pred.to_numpy(float)
            jsd = functools.partial(metrics.jensen_shannon_distance, bins=bins)
            value, ci, reps = with_ci(ctx, jsd, t, p, key, groups)
            out.measurements.append(Measurement("jsd", value, ci=ci, n=len(t),
                                                extra={"bins": bins}, replicates=reps))
            out.plots["histogram"] = figures.histogram(edges=_edges(), truth=histogram(t),
                                                       prediction=histogram(p))
            return out
        labels, kept, dropped = class_labels_for(ctx, model, truth)
        if dropped:
            out.notes.append(f"truth classes the model cannot output were left out: {dropped}")
        if not labels:
            raise no_shared_classes(ctx, model, truth)
        truth = kept
        pred = pred.loc[truth.index]
        t, p = truth.astype(str).to_numpy(), pred.astype(str).to_numpy()
        cells = list(labels) + sorted(set(p) - set(labels))
        diffs = metrics.relative_difference_per_class(p, t, labels=cells)
        for c in cells:
            ti, pi = (t == c).astype(float), (p == c).astype(float)
            ci = reps = None
            if ctx.n_boot > 0 and len(t) >= 3:
                reps = stats.replicates(share_difference, ti, pi, n_boot=ctx.n_boot,
                                        rng=ctx.rng("bootstrap", key, len(t)), groups=groups)
                ci = stats.percentile_interval(reps, ctx.confidence)
            out.measurements.append(Measurement(
                "relative_difference_per_class", diffs[c], slice={"class": c}, ci=ci, n=len(t),
                replicates=reps,
                extra={"truth_share": float(ti.mean()), "prediction_share": float(pi.mean())}))
        out.plots["class_distribution"] = figures.shares(groups={
            "truth": {c: round(float(np.mean(t == c)), 4) for c in cells},
            "prediction": {c: round(float(np.mean(p == c)), 4) for c in cells}})
        return out


#: Value ranges implied by a category (ser-tests ``CATEGORY_LOW/NEUTRAL/HIGH``).  The
#: neutral range is [0.3, 0.7] as in ser-tests' *code*; its YAML and docs say [0.3, 0.6].
CATEGORY_RANGES: dict[str, tuple[float | None, float | None]] = {
    "low": (None, 0.45), "neutral": (0.3, 0.7), "high": (0.55, None)}

#: Expected range per dimension and category (ser-tests; contempt, disgust for arousal and
#: surprise for valence were commented out there as ambiguous and are left out here too).
EXPECTED_RANGES: dict[str, dict[str, list[str]]] = {
    "arousal": {"low": ["boredom", "sadness"], "neutral": ["neutral"],
                "high": ["anger", "fear", "surprise"]},
    "dominance": {"low": ["fear", "sadness"], "neutral": ["happiness", "neutral", "surprise"],
                  "high": ["anger"]},
    "valence": {"low": ["anger", "disgust", "fear", "frustration", "sadness"],
                "neutral": ["boredom", "neutral"], "high": ["happiness"]},
}


@register
class Consistency(_PrimaryCheck):
    """Are dimensional predictions consistent with categorical labels?

    For each emotion category with an expected range on the audited dimension (e.g. sadness
    -> low arousal, at most 0.45), the share of the items of that category whose prediction
    lies in the range.  Ranges: low [-inf, 0.45], neutral [0.3, 0.7] (ser-tests' code; its
    docs say 0.6), high [0.55, inf].  Categories without an expected range on a dimension
    (e.g. happiness for arousal) are not judged.  Needs a categorical label column
    (``column``, default ``emotion``), not dimensional labels.

    Parameters:
        column: the categorical label column.
        ranges: override of :data:`CATEGORY_RANGES` (``{low: [null, 0.45], ...}``).
        categories: override of :data:`EXPECTED_RANGES` for the audited dimension(s)
            (``{arousal: {low: [sadness], ...}}``).
        min_samples: categories with fewer items are skipped.
    """

    id = "correctness_consistency"
    topic = "correctness"
    description = "share of dimensional predictions in the range implied by the emotion label"
    kinds = ("regression",)
    metrics = {"proportion_in_range": "> 0.75"}
    defaults = {"column": "emotion", "ranges": None, "categories": None, "min_samples": 1}
    requires_truth = False  # reads the categorical column, not the judged dimension

    def __init__(self, params=None, thresholds=None, name=None) -> None:
        super().__init__(params, thresholds, name)
        ranges = dict(CATEGORY_RANGES)
        for level, bounds in (self.params["ranges"] or {}).items():
            if (not isinstance(bounds, (list, tuple)) or len(bounds) != 2
                    or all(b is None for b in bounds)):
                raise UsageError(f"test {self.name!r}: ranges.{level} must be [low, high] with "
                                 f"null for an open side, got {bounds!r}")
            ranges[str(level)] = (None if bounds[0] is None else float(bounds[0]),
                                  None if bounds[1] is None else float(bounds[1]))
        self.ranges = ranges
        expected = {d: dict(v) for d, v in EXPECTED_RANGES.items()}
        for dim, mapping in (self.params["categories"] or {}).items():
            if not isinstance(mapping, dict):
                raise UsageError(f"test {self.name!r}: categories.{dim} must map a level "
                                 "(low/neutral/high) to a list of categories")
            unknown = sorted(set(mapping) - set(ranges))
            if unknown:
                raise UsageError(f"test {self.name!r}: categories.{dim}: unknown level(s) "
                                 f"{unknown}; known: {sorted(ranges)}")
            expected[str(dim)] = {k: [str(c).lower() for c in v] for k, v in mapping.items()}
        self.expected = expected

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        column = self.params["column"]
        if not ctx.dataset.has(column):
            return Outcome(skipped=f"the data has no {column!r} column of categorical labels")
        levels = self.expected.get(target)
        if not levels:
            return Outcome(skipped=f"no expected ranges for {target!r}")
        ids = primary_ids(ctx)
        cats = ctx.table.loc[ids, column].dropna().astype(str).str.lower()
        pred = ctx.prediction(model, target, None, cats.index)
        cats = cats.loc[pred.index]
        groups_all = _clusters(ctx, pred.index)
        out = Outcome()
        dist: dict[str, Any] = {}
        for level, categories in levels.items():
            low, high = self.ranges[level]
            for cat in categories:
                mask = (cats == cat).to_numpy()
                n = int(mask.sum())
                if n == 0:
                    continue
                values = pred.to_numpy(float)[mask]
                extra = {"level": level, "range": [low, high]}
                if n < int(self.params["min_samples"]):
                    out.measurements.append(Measurement(
                        "proportion_in_range", math.nan, slice={"category": cat}, n=n,
                        extra={**extra, "reason": f"only {n} items (min_samples "
                               f"{self.params['min_samples']})"}))
                    continue
                inside = ((values >= low) if low is not None else np.ones(n, bool)) & \
                    ((values <= high) if high is not None else np.ones(n, bool))
                value = metrics.proportion_in_range(values, low, high)
                groups = None if groups_all is None else groups_all[mask]
                _, ci, reps = with_ci(ctx, _share, np.zeros(n), inside.astype(float),
                                      f"{self.name}/{target}/{cat}", groups)
                out.measurements.append(Measurement("proportion_in_range", value,
                                                    slice={"category": cat}, ci=ci, n=n,
                                                    extra=extra, replicates=reps))
                expected = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
                dist[cat] = {"edges": _edges(), "prediction": histogram(values), "n": n,
                             "expected": expected,
                             "xlabel": f"{target} (expected {expected})"}
        if not out.measurements:
            present = sorted(set(cats))
            return Outcome(skipped=f"no item has a category with an expected {target} range "
                           f"(categories present: {present})")
        out.plots["category_distributions"] = figures.categories(dist)
        return out


def _speaker_table(ctx: Context, truth: pd.Series, pred: pd.Series) -> pd.DataFrame:
    speakers = ctx.table.loc[truth.index, "speaker"].astype(str)
    return pd.DataFrame({"speaker": speakers.to_numpy(), "truth": truth.to_numpy(),
                         "prediction": pred.loc[truth.index].to_numpy()}, index=truth.index)


def _proportions(frame: pd.DataFrame, column: str, labels: list[str]) -> pd.DataFrame:
    """Per-speaker share of each label in ``column`` (over all of the speaker's items)."""
    counts = pd.crosstab(frame["speaker"], frame[column])
    counts = counts.reindex(columns=labels, fill_value=0)
    sizes = frame.groupby("speaker").size()
    return counts.div(sizes.loc[counts.index], axis=0)


class _SpeakerCheck(_PrimaryCheck):
    """Shared selection of speakers with enough items (and enough items per class)."""

    kinds = ("regression", "classification")

    def _select(self, ctx: Context, model: str, target: str
                ) -> tuple[pd.DataFrame | None, list[str], Outcome]:
        out = Outcome()
        if _speaker_column(ctx) is None:
            return None, [], Outcome(skipped="the data has no 'speaker' column")
        truth, pred = ctx.paired(model, target, ids=primary_ids(ctx))
        labels: list[str] = []
        if self.kind_of(target) == "classification":
            labels, truth, dropped = class_labels_for(ctx, model, truth)
            if dropped:
                out.notes.append(f"truth classes the model cannot output were left out: {dropped}")
            pred = pred.loc[truth.index]
        frame = _speaker_table(ctx, truth, pred)
        if frame.empty:
            return None, labels, Outcome(skipped=f"no item has both a speaker and {target} labels")
        sizes = frame.groupby("speaker").size()
        keep = sizes[sizes >= int(self.params["min_samples"])].index
        reason = f"at least {self.params['min_samples']} items"
        min_class = int(self.params.get("min_per_class") or 0)
        if labels and min_class > 0:
            counts = pd.crosstab(frame["speaker"], frame["truth"]).reindex(columns=labels,
                                                                           fill_value=0)
            rich = counts[(counts >= min_class).all(axis=1)].index
            keep = keep.intersection(rich)
            reason += f" and at least {min_class} of each class {labels}"
        frame = frame[frame["speaker"].isin(keep)]
        out.notes.append(f"{len(keep)} of {len(sizes)} speakers have {reason}")
        min_speakers = int(self.params.get("min_speakers") or 1)
        if len(keep) < max(min_speakers, 2):
            return None, labels, Outcome(skipped=f"only {len(keep)} speakers with {reason} "
                                         f"(need {max(min_speakers, 2)}); lower min_samples"
                                         + (" or min_per_class" if min_class else ""))
        return frame, labels, out

    def _speakers_alike(self, frame: pd.DataFrame, labels: list[str], target: str) -> str | None:
        """A reason when the speakers' true means do not differ (one-way ANOVA of the truth
        by speaker does not reject equal means at ``speaker_difference_p``), else None."""
        alpha = self.params.get("speaker_difference_p")
        if labels or alpha is None:
            return None
        from scipy.stats import f_oneway

        groups = [g.to_numpy(float) for _, g in frame.groupby("speaker")["truth"]]
        p_value = float(f_oneway(*groups).pvalue) if len(groups) > 1 else float("nan")
        if p_value < alpha:
            return None
        return (f"the speakers' true mean {target} values do not differ (one-way ANOVA "
                f"p = {p_value:.2g} >= {alpha:g})")


@register
class SpeakerAverage(_SpeakerCheck):
    """Does the model get each speaker's average right?

    Dimensions: per speaker (with at least ``min_samples`` items) the mean truth and the
    mean prediction; the metric ``mae`` is the mean over speakers of
    ``|mean truth - mean prediction|``.  The plot data flag speakers whose error exceeds
    ``flag`` (0.2, as in ser-tests' figure).

    Emotion: speakers also need ``min_per_class`` items of every class; per class, the mean
    over speakers of ``|p_truth(c | speaker) - p_pred(c | speaker)|`` (``class_proportion_mae``).

    CIs: bootstrap over speakers.

    Applicability (dimensions): when the speakers' true means do not differ (one-way ANOVA,
    as in ``correctness_speaker_ranking``; ``speaker_difference_p``), a constant predictor
    gets every speaker's average right and the test cannot tell a model that hears the
    speaker from one that hears nothing: it is skipped with that reason.  Where they differ,
    the MAE of the model is judged together with ``mae_skill`` = 1 - MAE / MAE of
    predicting the median speaker average for every speaker (``> 0``: the model must know more
    about the speakers than a constant does; a constant predictor scores at most 0).
    """

    id = "correctness_speaker_average"
    topic = "correctness"
    description = "error of the per-speaker average prediction"
    metrics = {"mae": "< 0.1", "mae_skill": "> 0", "class_proportion_mae": "< 0.1"}
    defaults = {"min_samples": 10, "min_per_class": 8, "flag": 0.2,
                "speaker_difference_p": 0.05}

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        frame, labels, out = self._select(ctx, model, target)
        if frame is None:
            return out
        reason = self._speakers_alike(frame, labels, target)
        if reason:
            return Outcome(skipped=f"{reason}: a constant predictor would get every "
                           "speaker's average right, so the test cannot tell")
        key = f"{self.name}/{target}"
        n_items = len(frame)
        if not labels:
            means = frame.groupby("speaker")[["truth", "prediction"]].mean()
            sizes = frame.groupby("speaker").size()
            t, p = means["truth"].to_numpy(float), means["prediction"].to_numpy(float)
            value, ci, reps = with_ci(ctx, metrics.mae, t, p, key)
            out.measurements.append(Measurement("mae", value, ci=ci, n=len(t),
                                                extra={"items": n_items}, replicates=reps))
            if "mae_skill" in self.thresholds:
                value, ci, reps = with_ci(ctx, mae_skill, t, p, key)
                out.measurements.append(Measurement(
                    "mae_skill", value, ci=ci, n=len(t), replicates=reps,
                    extra={"items": n_items, "reference": "the median speaker average for "
                           "every speaker"}))
            flag = float(self.params["flag"])
            out.plots["speaker_averages"] = figures.speakers(
                speaker=list(means.index), truth=np.round(t, 4).tolist(),
                prediction=np.round(p, 4).tolist(),
                n=[int(sizes[s]) for s in means.index], flag=flag,
                flagged=[bool(abs(a - b) > flag) for a, b in zip(t, p)])
            return out
        pt = _proportions(frame, "truth", labels)
        pp = _proportions(frame, "prediction", labels).reindex(pt.index)
        for c in labels:
            t, p = pt[c].to_numpy(float), pp[c].to_numpy(float)
            value, ci, reps = with_ci(ctx, metrics.mae, t, p, key)
            out.measurements.append(Measurement("class_proportion_mae", value,
                                                slice={"class": c}, ci=ci,
                                                n=len(t), extra={"items": n_items},
                                                replicates=reps))
        sizes = frame.groupby("speaker").size()
        out.plots["speaker_proportions"] = figures.speakers_per_class({
            c: {"speaker": list(pt.index), "truth": np.round(pt[c].to_numpy(float), 4).tolist(),
                "prediction": np.round(pp[c].to_numpy(float), 4).tolist(),
                "n": [int(sizes[s]) for s in pt.index], "flag": float(self.params["flag"])}
            for c in labels})
        return out


@register
class SpeakerRanking(_SpeakerCheck):
    """Does the model rank speakers like the truth does?

    Spearman's rho between the per-speaker mean truth and mean prediction (dimensions), or,
    per class, between the per-speaker true and predicted class proportions (emotion).
    Judged **signed** (``> 0.7``): ser-tests compared ``|rho| > 0.7``, so a model that
    ranks speakers in reverse order passed; here it fails.  Speakers need ``min_samples``
    items; at least ``min_speakers`` speakers are needed.  CI: bootstrap over speakers.

    Applicability (dimensions): a ranking can only be reproduced if the speakers' true
    means differ.  If a one-way ANOVA of the truth by speaker does not reject equal means
    at ``speaker_difference_p`` (default 0.05) — e.g. a corpus balanced so that every
    speaker reads every emotion — the test is skipped with the p-value as the reason
    (``speaker_difference_p: null`` always measures).
    """

    id = "correctness_speaker_ranking"
    topic = "correctness"
    description = "rank correlation of per-speaker averages (signed)"
    metrics = {"spearman": "> 0.7"}
    defaults = {"min_samples": 10, "min_speakers": 5, "speaker_difference_p": 0.05}

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        frame, labels, out = self._select(ctx, model, target)
        if frame is None:
            return out
        key = f"{self.name}/{target}"
        reason = self._speakers_alike(frame, labels, target)
        if reason:
            return Outcome(skipped=f"{reason}: there is no speaker ranking to reproduce")
        if not labels:
            means = frame.groupby("speaker")[["truth", "prediction"]].mean()
            series = {None: (means["truth"], means["prediction"])}
        else:
            pt = _proportions(frame, "truth", labels)
            pp = _proportions(frame, "prediction", labels).reindex(pt.index)
            series = {c: (pt[c], pp[c]) for c in labels}
        ranks: dict[str, Any] = {}
        for c, (t_s, p_s) in series.items():
            t, p = t_s.to_numpy(float), p_s.to_numpy(float)
            value = metrics.spearman(t, p)
            ci, reps = spearman_ci(ctx, t, p, key) if np.isfinite(value) else (None, None)
            extra = {"items": len(frame)}
            if not np.isfinite(value):
                extra["reason"] = "constant per-speaker values: no ranking to compare"
            out.measurements.append(Measurement("spearman", value,
                                                slice={} if c is None else {"class": c},
                                                ci=ci, n=len(t),
                                                extra=extra, replicates=reps))
            ranks[c] = {"names": list(t_s.index), "truth": np.round(t, 4).tolist(),
                        "prediction": np.round(p, 4).tolist()}
        # rank against rank (the report draws the top and bottom quarter boxes)
        out.plots["ranks"] = (figures.ranks(**ranks[None]) if None in ranks
                             else figures.ranks_per_class(ranks))
        return out


@register
class Classification(_PrimaryCheck):
    """UAR, UAP, per-class recall and precision of the emotion classifier.

    Classes: the model's classes that occur in the truth (items with other true classes are
    left out, as ser-tests filtered its truth to four classes).  Predictions are the argmax
    over all the model's classes, so an extra class (e.g. of an 8-class model) counts as a
    miss.  A class that is never predicted has undefined precision: that cell is skipped
    (its recall, 0, fails).  UAP counts it as 0 (audmetric's convention).  The confusion
    matrix (counts; rows: truth, columns: prediction) is in the plot data.
    """

    id = "correctness_classification"
    topic = "correctness"
    description = "UAR, UAP, per-class recall and precision, confusion matrix"
    kinds = ("classification",)
    metrics = {"uar": "> 0.5", "uap": "> 0.5", "recall_per_class": "> 0.5",
               "precision_per_class": "> 0.5"}
    defaults = {"labels": None}
    competence = "uar"  # the competence gate on emotion

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        truth, pred = ctx.paired(model, target, ids=primary_ids(ctx))
        out = Outcome()
        labels, kept, dropped = class_labels_for(ctx, model, truth, self.params["labels"])
        if dropped:
            out.notes.append(f"truth classes outside {labels} were left out: {dropped}")
        if not labels and not self.params["labels"] and len(truth):
            raise no_shared_classes(ctx, model, truth)
        truth = kept
        if len(truth) < 3 or not labels:
            return Outcome(skipped=f"only {len(truth)} items whose true class is one of the "
                           f"model's classes {list(ctx.models[model].classes)}")
        pred = pred.loc[truth.index]
        t, p = truth.astype(str).to_numpy(), pred.astype(str).to_numpy()
        groups = _clusters(ctx, truth.index)
        key = f"{self.name}/{target}"
        for name, fn in (("uar", metrics.uar), ("uap", metrics.uap)):
            if name in self.thresholds:
                value, ci, reps = with_ci(ctx, functools.partial(fn, labels=labels), t, p,
                                          key, groups)
                out.measurements.append(Measurement(name, value, ci=ci, n=len(t),
                                                    replicates=reps))
        recall = metrics.recall_per_class(t, p, labels=labels)
        precision = metrics.precision_per_class(t, p, labels=labels)
        for c in labels:
            n_true, n_pred = int((t == c).sum()), int((p == c).sum())
            value, ci, reps = with_ci(ctx, functools.partial(metrics.uar, labels=[c]), t, p,
                                      key, groups)
            out.measurements.append(Measurement("recall_per_class", recall[c], slice={"class": c},
                                                ci=ci if np.isfinite(value) else None,
                                                n=n_true, replicates=reps))
            extra = {} if n_pred else {"reason": f"{c!r} is never predicted"}
            ci = reps = None
            if n_pred:
                _, ci, reps = with_ci(ctx, functools.partial(metrics.uap, labels=[c],
                                                             zero_division=math.nan),
                                      t, p, key, groups)
            out.measurements.append(Measurement("precision_per_class", precision[c],
                                                slice={"class": c},
                                                ci=ci, n=n_pred, extra=extra, replicates=reps))
        columns = list(labels) + sorted(set(p) - set(labels))
        matrix = metrics.confusion_matrix(t, p, labels=columns)[: len(labels)]
        out.plots["confusion_matrix"] = figures.confusion(matrix=matrix.tolist(),
                                                          rows=list(labels), columns=columns)
        return out
