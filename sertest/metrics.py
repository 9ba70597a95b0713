r"""Pure metric functions: agreement, distributions, classification, bins, bootstrap.

Every function takes array-likes (lists, numpy arrays, pandas Series) and returns a
Python ``float`` (or a ``dict`` of floats keyed by class / bin).  Nothing here sets a
threshold: computing is kept apart from judging (the checks compare these numbers
with the suite's thresholds).

Conventions shared by all functions

* Paired metrics (``truth`` and ``prediction`` item by item) raise ``ValueError`` when
  the two sequences differ in length.  Distribution comparisons
  (:func:`jensen_shannon_distance`, :func:`relative_difference_per_class`,
  :func:`relative_difference_per_bin`) compare two samples and accept different
  lengths.
* Empty input raises ``ValueError``; so do NaN / infinite values in numeric input
  (a model that outputs NaN is an error to report, not a value to average away).
* A metric that is mathematically undefined for valid input returns ``nan`` (for
  example PCC of a constant series, recall of a class that never occurs in ``truth``).
* Regression values are unitless scores (sertest's dimensions live in [0, 1]).

The reference implementation is ``audmetric``; differences from it are stated in the
docstrings.  Where ser-tests (audEERING's original suite) differs, that is stated too.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.spatial.distance
import scipy.stats

from .stats.bootstrap import percentile_interval, register_weighted_form, replicates

__all__ = [
    "DEFAULT_EDGES",
    "accuracy",
    "bin_names",
    "bin_values",
    "bootstrap_ci",
    "ccc",
    "class_proportions",
    "confusion_matrix",
    "fraction_unchanged",
    "histogram_proportions",
    "jensen_shannon_distance",
    "label_agreement",
    "mae",
    "min_samples_for_bins",
    "mse",
    "pcc",
    "precision_per_bin",
    "precision_per_class",
    "proportion_in_range",
    "recall_per_bin",
    "recall_per_class",
    "relative_difference_per_bin",
    "relative_difference_per_class",
    "spearman",
    "uap",
    "uar",
]

#: Inner bin edges used by ser-tests for per-bin metrics: 4 bins
#: (-inf, 0.25], (0.25, 0.5], (0.5, 0.75], (0.75, +inf).
DEFAULT_EDGES: tuple[float, ...] = (0.25, 0.5, 0.75)

ArrayLike = npt.ArrayLike


# --------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------


def _float_array(values: ArrayLike, name: str, func: str, *, allow_inf: bool = False) -> np.ndarray:
    """``values`` as a 1-D float64 array; ``ValueError`` naming ``func`` and ``name``."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{func}: {name} must be numeric ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(f"{func}: {name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{func}: {name} is empty")
    bad = np.isnan(arr) if allow_inf else ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"{func}: {name} contains {int(bad.sum())} non-finite value(s), "
            f"first at position {int(np.argmax(bad))}"
        )
    return arr


def _check_same_length(len_a: int, len_b: int, names: str, func: str) -> None:
    if len_a != len_b:
        raise ValueError(f"{func}: {names} differ in length ({len_a} != {len_b})")


def _paired_floats(
    truth: ArrayLike, prediction: ArrayLike, func: str
) -> tuple[np.ndarray, np.ndarray]:
    t = _float_array(truth, "truth", func)
    p = _float_array(prediction, "prediction", func)
    _check_same_length(t.size, p.size, "truth and prediction", func)
    return t, p


def _label_list(values: ArrayLike, name: str, func: str) -> list[Any]:
    """``values`` as a list of Python objects (numpy scalars become Python scalars)."""
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"{func}: {name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{func}: {name} is empty")
    return [v.item() if isinstance(v, np.generic) else v for v in arr.tolist()]


def _paired_labels(
    truth: ArrayLike, prediction: ArrayLike, func: str
) -> tuple[list[Any], list[Any]]:
    t = _label_list(truth, "truth", func)
    p = _label_list(prediction, "prediction", func)
    _check_same_length(len(t), len(p), "truth and prediction", func)
    return t, p


def _sorted_unique(*sequences: Sequence[Any]) -> list[Any]:
    """Distinct values of all sequences, sorted (in order of appearance if unsortable)."""
    unique = list(dict.fromkeys(v for seq in sequences for v in seq))
    try:
        return sorted(unique)
    except TypeError:
        return unique


def _resolve_labels(labels: Sequence[Hashable] | None, default: list[Any], func: str) -> list[Any]:
    if labels is None:
        return default
    resolved = [v.item() if isinstance(v, np.generic) else v for v in labels]
    if not resolved:
        raise ValueError(f"{func}: labels is empty")
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"{func}: labels contains duplicates: {resolved}")
    return resolved


def _encode(values: Sequence[Any], labels: Sequence[Any]) -> np.ndarray:
    """Position of each value in ``labels``; -1 for values not in ``labels``."""
    index = {label: i for i, label in enumerate(labels)}
    return np.fromiter((index.get(v, -1) for v in values), dtype=np.intp, count=len(values))


def _check_edges(edges: Sequence[float], func: str) -> np.ndarray:
    arr = np.asarray(edges, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{func}: edges must be a non-empty 1-D sequence, got {edges!r}")
    if not np.all(np.isfinite(arr)) or np.any(np.diff(arr) <= 0):
        raise ValueError(f"{func}: edges must be finite and strictly increasing, got {edges!r}")
    return arr


def _check_min_samples(min_samples: int, func: str) -> int:
    if int(min_samples) != min_samples or min_samples < 0:
        raise ValueError(f"{func}: min_samples must be a non-negative integer, got {min_samples!r}")
    return int(min_samples)


def _ratio(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    """``num / den`` with ``zero_division`` wherever ``den == 0``."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, float(zero_division))
    np.divide(num, den, out=out, where=den != 0)
    return out


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN where every entry is NaN (no warning)."""
    valid = ~np.isnan(values)
    count = valid.sum(axis=-1)
    total = np.where(valid, values, 0.0).sum(axis=-1)
    return _ratio(total, count, np.nan)


# --------------------------------------------------------------------------------------
# Regression: agreement between truth and prediction
# --------------------------------------------------------------------------------------


def ccc(truth: ArrayLike, prediction: ArrayLike) -> float:
    r"""Concordance correlation coefficient (Lin, 1989).

    .. math::

        \rho_c = \frac{2 \, s_{xy}}{s_x^2 + s_y^2 + (\bar x - \bar y)^2}

    with :math:`x` = truth, :math:`y` = prediction, means :math:`\bar x, \bar y`,
    population (1/n) variances :math:`s^2` and covariance :math:`s_{xy}`.
    Equivalently :math:`\rho_c = \rho \cdot 2 s_x s_y / (s_x^2 + s_y^2 + (\bar x-\bar y)^2)`,
    so :math:`|\rho_c| \le |\rho|`.  Range [-1, 1]; 1 only for identical series.

    Undefined cases (following audmetric, whose ``concordance_cc`` has the same
    mathematical conventions):

    * fewer than 2 items: ``nan``;
    * both series constant and equal (0/0): ``nan``;
    * both constant but different, or exactly one constant: ``0.0`` (no co-variation,
      the denominator is positive).  Constancy is tested exactly (all values equal),
      so the result is exactly 0 rather than audmetric's rounding noise (~1e-16).

    Raises:
        ValueError: lengths differ, input empty or non-finite.

    >>> round(ccc([0.1, 0.4, 0.6, 0.9], [0.2, 0.4, 0.5, 0.8]), 4)
    0.9434
    >>> ccc([0.1, 0.4, 0.6, 0.9], [0.1, 0.4, 0.6, 0.9])
    1.0
    """
    x, y = _paired_floats(truth, prediction, "ccc")
    n = x.size
    if n < 2:
        return math.nan
    const_x = bool(np.ptp(x) == 0)
    const_y = bool(np.ptp(y) == 0)
    if const_x and const_y:
        return math.nan if x[0] == y[0] else 0.0
    if const_x or const_y:
        return 0.0
    mx, my = x.mean(), y.mean()
    a, b, d = x - mx, y - my, mx - my
    # CCC is unchanged by a common rescaling; scaling to unit size avoids underflow
    # or overflow of the squares for extreme magnitudes.
    scale = max(np.abs(a).max(), np.abs(b).max(), abs(d))
    a, b, d = a / scale, b / scale, d / scale
    num = 2.0 * np.dot(a, b)
    den = np.dot(a, a) + np.dot(b, b) + n * d**2
    return float(np.clip(num / den, -1.0, 1.0))


def pcc(truth: ArrayLike, prediction: ArrayLike) -> float:
    r"""Pearson correlation coefficient.

    .. math::

        \rho = \frac{\sum_i (x_i - \bar x)(y_i - \bar y)}
                    {\sqrt{\sum_i (x_i - \bar x)^2} \sqrt{\sum_i (y_i - \bar y)^2}}

    with :math:`x` = truth, :math:`y` = prediction.  Range [-1, 1]; invariant to
    positive affine maps :math:`y \mapsto a y + b, a > 0` of either series.

    ``nan`` for fewer than 2 items or when either series is constant (audmetric returns
    ``nan`` in the same cases; for a constant prediction it checks ``std() == 0``, which
    rounding can miss, then numpy's ``corrcoef`` yields noise or ``nan``).

    Raises:
        ValueError: lengths differ, input empty or non-finite.

    >>> round(pcc([0.1, 0.4, 0.6, 0.9], [0.3, 0.5, 0.6, 0.8]), 4)
    0.9989
    """
    x, y = _paired_floats(truth, prediction, "pcc")
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    a, b = x - x.mean(), y - y.mean()
    a, b = a / np.abs(a).max(), b / np.abs(b).max()  # PCC is scale-free; avoids underflow
    den = np.sqrt(np.dot(a, a)) * np.sqrt(np.dot(b, b))
    return float(np.clip(np.dot(a, b) / den, -1.0, 1.0))


def mae(truth: ArrayLike, prediction: ArrayLike) -> float:
    r"""Mean absolute error :math:`\frac{1}{n}\sum_i |y_i - x_i|` (units of the input).

    Raises:
        ValueError: lengths differ, input empty or non-finite.

    >>> round(mae([0.2, 0.4, 0.6], [0.3, 0.4, 0.4]), 4)
    0.1
    """
    x, y = _paired_floats(truth, prediction, "mae")
    return float(np.mean(np.abs(y - x)))


def mse(truth: ArrayLike, prediction: ArrayLike) -> float:
    r"""Mean squared error :math:`\frac{1}{n}\sum_i (y_i - x_i)^2` (squared input units).

    Raises:
        ValueError: lengths differ, input empty or non-finite.

    >>> round(mse([0.2, 0.4, 0.6], [0.3, 0.4, 0.4]), 4)
    0.0167
    """
    x, y = _paired_floats(truth, prediction, "mse")
    return float(np.mean(np.square(y - x)))


def spearman(truth: ArrayLike, prediction: ArrayLike) -> float:
    r"""Spearman's rank correlation :math:`\rho_s` = Pearson correlation of the ranks.

    Computed with ``scipy.stats.spearmanr`` (ties get average ranks).  ``nan`` for fewer
    than 2 items or a constant series.  ser-tests judged ``|rho| > 0.7``, so a strong
    *negative* ranking passed; this function only measures, the sign is kept.

    Raises:
        ValueError: lengths differ, input empty or non-finite.

    >>> round(spearman([0.1, 0.2, 0.3, 0.4], [0.2, 0.1, 0.5, 0.9]), 4)
    0.8
    """
    x, y = _paired_floats(truth, prediction, "spearman")
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = scipy.stats.spearmanr(x, y).statistic
    return float(rho)


# --------------------------------------------------------------------------------------
# Distributions of regression values
# --------------------------------------------------------------------------------------


def histogram_proportions(
    values: ArrayLike,
    bins: int = 10,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    r"""Share of ``values`` in each of ``bins`` equal-width bins over ``value_range``.

    Bin edges are ``numpy.linspace(low, high, bins + 1)``; bin :math:`k` is
    :math:`[e_k, e_{k+1})`, the last bin is closed :math:`[e_{B-1}, e_B]`.  Values outside
    ``value_range`` are **clipped into the outer bins** (a prediction of 1.2 counts in
    the top bin, -0.1 in the bottom bin), so every value is counted and the result
    sums to 1.

    Returns:
        float array of length ``bins``, entries in [0, 1] summing to 1.

    Raises:
        ValueError: empty input, NaN values, ``bins < 1`` or ``low >= high``.

    >>> histogram_proportions([0.05, 0.15, 0.15, 0.95], bins=4).tolist()
    [0.75, 0.0, 0.0, 0.25]
    """
    func = "histogram_proportions"
    bins, low, high = _histogram_spec(bins, value_range, func)
    arr = _float_array(values, "values", func, allow_inf=True)
    counts, _ = np.histogram(np.clip(arr, low, high), bins=bins, range=(low, high))
    return counts / arr.size


def _histogram_spec(bins: int, value_range: tuple[float, float], func: str
                    ) -> tuple[int, float, float]:
    if int(bins) != bins or bins < 1:
        raise ValueError(f"{func}: bins must be a positive integer, got {bins!r}")
    low, high = (float(v) for v in value_range)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{func}: value_range must be finite with low < high, got {value_range!r}")
    return int(bins), low, high


def _histogram_onehot(values: np.ndarray, bins: int, low: float, high: float) -> np.ndarray:
    """(n, bins) indicator of each value's bin, the bins of :func:`histogram_proportions`
    (numpy's: edges ``linspace(low, high, bins + 1)``, ``[e_k, e_k+1)``, the last closed)."""
    edges = np.linspace(low, high, bins + 1)
    codes = np.searchsorted(edges, np.clip(values, low, high), side="right") - 1
    codes = np.minimum(codes, bins - 1)  # a value at ``high`` is in the last bin
    return (codes[:, None] == np.arange(bins)[None, :]).astype(np.float64)


def jensen_shannon_distance(
    truth: ArrayLike,
    prediction: ArrayLike,
    bins: int = 10,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> float:
    r"""Jensen-Shannon distance between the histograms of truth and prediction.

    Both series are histogrammed on the same ``bins`` equal-width bins over
    ``value_range`` (:func:`histogram_proportions`; values outside the range are clipped
    into the outer bins), giving proportions :math:`P` (prediction) and :math:`Q` (truth):

    .. math::

        \mathrm{JSD}(P, Q) = \sqrt{\tfrac12 D_{KL}(P \| M) + \tfrac12 D_{KL}(Q \| M)},
        \quad M = \tfrac12 (P + Q),

    with base-2 logarithms (``scipy.spatial.distance.jensenshannon(..., base=2)``), so the
    distance lies in [0, 1]: 0 for identical histograms, 1 for disjoint support.  It is
    symmetric and a metric.  The two series may differ in length.

    ser-tests used ``value_counts(bins=np.arange(0, 1, 0.1))``: edges 0.0 ... 0.9, i.e.
    effectively **9 bins** with values above 0.9 dropped, while its docs say 10 bins.
    That bug is not reproduced here: ``bins`` bins really are used and nothing is dropped.

    Raises:
        ValueError: empty input, NaN values, invalid ``bins`` / ``value_range``.

    >>> jensen_shannon_distance([0.1, 0.2, 0.8], [0.1, 0.2, 0.8])
    0.0
    >>> round(jensen_shannon_distance([0.1, 0.1], [0.9, 0.9], bins=2), 4)
    1.0
    """
    q = histogram_proportions(truth, bins, value_range)
    p = histogram_proportions(prediction, bins, value_range)
    distance = scipy.spatial.distance.jensenshannon(p, q, base=2)
    return float(np.clip(distance, 0.0, 1.0))


def _prepare_jsd(arrays: tuple[Any, ...], kwargs: dict[str, Any]):
    """Vectorised :func:`jensen_shannon_distance` of paired series: each row of weights
    gives both histograms as weighted bin counts (exact for integer draw counts, so equal
    to the histograms of the resampled items)."""
    if len(arrays) != 2 or set(kwargs) - {"bins", "value_range"}:
        return None
    func = "jensen_shannon_distance"
    bins, low, high = _histogram_spec(kwargs.get("bins", 10),
                                      kwargs.get("value_range", (0.0, 1.0)), func)
    t = _float_array(arrays[0], "truth", func, allow_inf=True)
    p = _float_array(arrays[1], "prediction", func, allow_inf=True)
    _check_same_length(t.size, p.size, "truth and prediction", func)
    in_t, in_p = _histogram_onehot(t, bins, low, high), _histogram_onehot(p, bins, low, high)

    def metric(w: np.ndarray) -> np.ndarray:
        sw = w.sum(axis=1)
        ok = sw > 0  # a row that draws nothing has no histogram
        out = np.full(w.shape[0], np.nan)
        wk = w if ok.all() else w[ok]
        q = _wsum(wk, in_t) / sw[ok, None]
        pp = _wsum(wk, in_p) / sw[ok, None]
        out[ok] = np.clip(scipy.spatial.distance.jensenshannon(pp, q, base=2, axis=1), 0.0, 1.0)
        return out

    return metric


def bin_values(values: ArrayLike, edges: Sequence[float] = DEFAULT_EDGES) -> np.ndarray:
    r"""Bin index of each value, with open outer bins (as in ser-tests).

    With inner edges :math:`e_1 < \dots < e_m` there are :math:`m + 1` bins
    :math:`(-\infty, e_1], (e_1, e_2], \dots, (e_m, +\infty)` (right-closed, like
    ``pandas.cut``); the default edges give ser-tests' 4 bins
    (-inf, 0.25], (0.25, 0.5], (0.5, 0.75], (0.75, +inf).

    Returns:
        integer array of bin indices in ``0 .. len(edges)``.

    Raises:
        ValueError: empty input, NaN values, edges not strictly increasing.

    >>> bin_values([0.1, 0.3, 0.5, 0.9]).tolist()
    [0, 1, 1, 3]
    """
    e = _check_edges(edges, "bin_values")
    arr = _float_array(values, "values", "bin_values", allow_inf=True)
    return np.searchsorted(e, arr, side="left").astype(np.int64)


def bin_names(edges: Sequence[float] = DEFAULT_EDGES) -> list[str]:
    """Readable interval names of the bins of :func:`bin_values`, e.g. ``"(0.25, 0.5]"``.

    >>> bin_names()
    ['(-inf, 0.25]', '(0.25, 0.5]', '(0.5, 0.75]', '(0.75, inf)']
    """
    e = _check_edges(edges, "bin_names").tolist()
    bounds = [-math.inf, *e, math.inf]
    return [
        f"({_fmt_edge(lo)}, {_fmt_edge(hi)}{')' if math.isinf(hi) else ']'}"
        for lo, hi in zip(bounds[:-1], bounds[1:])
    ]


def _fmt_edge(value: float) -> str:
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return f"{value:g}"


def min_samples_for_bins(n: int, mean: float = 0.5, sd: float = 1 / 6, edge: float = 0.25) -> int:
    r"""Expected item count in the outer bin for ``n`` draws of a random Gaussian model.

    .. math::

        \mathrm{round}\big(n \cdot P(X \le \mathrm{edge})\big), \quad
        X \sim \mathcal N(\mathrm{mean}, \mathrm{sd}^2)

    For the defaults :math:`P(X \le 0.25) = \Phi(-1.5) \approx 0.0668`.  ser-tests used 67
    for n = 1000 (66.8) and 4 for n = 60 (4.008): rounding to nearest reproduces both,
    while floor gives 66 and ceil gives 5.  (The *untruncated* normal is meant: the
    truncated normal of the random baseline would give 65.6 -> 66.)  Halves round up.

    Raises:
        ValueError: negative ``n`` or non-positive ``sd``.

    >>> min_samples_for_bins(100)
    7
    """
    if int(n) != n or n < 0:
        raise ValueError(f"min_samples_for_bins: n must be a non-negative integer, got {n!r}")
    if not sd > 0:
        raise ValueError(f"min_samples_for_bins: sd must be positive, got {sd!r}")
    p = 0.5 * (1.0 + math.erf((edge - mean) / (sd * math.sqrt(2.0))))
    return int(math.floor(p * n + 0.5))


def proportion_in_range(
    values: ArrayLike, low: float | None = None, high: float | None = None
) -> float:
    r"""Share of values in the closed range :math:`[\mathrm{low}, \mathrm{high}]`.

    ``None`` on one side means no limit on that side.  Range [0, 1].

    Raises:
        ValueError: both limits ``None`` (an unbounded range is a configuration error),
            ``low > high``, empty input or NaN values.

    >>> proportion_in_range([0.1, 0.5, 0.9, 1.2], low=0.0, high=1.0)
    0.75
    """
    func = "proportion_in_range"
    if low is None and high is None:
        raise ValueError(f"{func}: give low, high or both (an unbounded range measures nothing)")
    if low is not None and high is not None and low > high:
        raise ValueError(f"{func}: low ({low}) is greater than high ({high})")
    arr = _float_array(values, "values", func, allow_inf=True)
    inside = np.ones(arr.size, dtype=bool)
    if low is not None:
        inside &= arr >= low
    if high is not None:
        inside &= arr <= high
    return float(inside.mean())


def fraction_unchanged(a: ArrayLike, b: ArrayLike, tolerance: float = 0.05) -> float:
    r"""Share of paired regression values that changed by less than ``tolerance``.

    .. math::  \frac{1}{n} \sum_i [\, |a_i - b_i| < \mathrm{tolerance} \,]

    A fraction in [0, 1].  ser-tests called this "percentage unchanged" although it is
    a fraction; it was computed on predictions rounded to 2 decimals (its prediction
    cache).  No rounding happens here: round first to reproduce ser-tests exactly.
    For class labels use :func:`label_agreement`.

    Raises:
        ValueError: lengths differ, empty input, non-finite values, ``tolerance <= 0``.

    >>> round(fraction_unchanged([0.50, 0.40, 0.70], [0.52, 0.40, 0.60]), 4)
    0.6667
    """
    func = "fraction_unchanged"
    if not tolerance > 0:
        raise ValueError(f"{func}: tolerance must be positive, got {tolerance!r}")
    x = _float_array(a, "a", func)
    y = _float_array(b, "b", func)
    _check_same_length(x.size, y.size, "a and b", func)
    return float(np.mean(np.abs(x - y) < tolerance))


def label_agreement(a: ArrayLike, b: ArrayLike) -> float:
    r"""Share of identical labels :math:`\frac{1}{n}\sum_i [a_i = b_i]`, in [0, 1].

    Raises:
        ValueError: lengths differ or empty input.

    >>> round(label_agreement(['anger', 'neutral', 'sadness'], ['anger', 'neutral', 'neutral']), 4)
    0.6667
    """
    x = _label_list(a, "a", "label_agreement")
    y = _label_list(b, "b", "label_agreement")
    _check_same_length(len(x), len(y), "a and b", "label_agreement")
    return sum(1 for u, v in zip(x, y) if u == v) / len(x)


# --------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------


def _class_counts(
    t_codes: np.ndarray, p_codes: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true positives, truth count, prediction count) per class; code -1 is ignored."""
    hit = (t_codes >= 0) & (t_codes == p_codes)
    tp = np.bincount(t_codes[hit], minlength=k)
    n_truth = np.bincount(t_codes[t_codes >= 0], minlength=k)
    n_pred = np.bincount(p_codes[p_codes >= 0], minlength=k)
    return tp, n_truth, n_pred


def confusion_matrix(
    truth: ArrayLike,
    prediction: ArrayLike,
    labels: Sequence[Hashable] | None = None,
    *,
    normalize: bool = False,
) -> np.ndarray:
    r"""Confusion matrix :math:`C_{jk}` = number of items of true class j predicted as k.

    Rows follow ``labels`` for the truth, columns for the prediction.  ``labels``
    defaults to the sorted union of classes in truth and prediction (audmetric).
    Items whose truth or prediction is not in ``labels`` are not counted.  With
    ``normalize`` each row is divided by its sum (rows summing to 0 stay 0).

    Returns:
        ``(K, K)`` array: int counts, or floats when ``normalize``.

    Raises:
        ValueError: lengths differ, empty input, duplicate labels.

    >>> confusion_matrix(['anger', 'neutral', 'neutral'], ['anger', 'anger', 'neutral']).tolist()
    [[1, 0], [1, 1]]
    """
    t, p = _paired_labels(truth, prediction, "confusion_matrix")
    lab = _resolve_labels(labels, _sorted_unique(t, p), "confusion_matrix")
    k = len(lab)
    tc, pc = _encode(t, lab), _encode(p, lab)
    keep = (tc >= 0) & (pc >= 0)
    matrix = np.bincount(tc[keep] * k + pc[keep], minlength=k * k).reshape(k, k)
    if normalize:
        return _ratio(matrix, matrix.sum(axis=1, keepdims=True), 0.0)
    return matrix


def recall_per_class(
    truth: ArrayLike,
    prediction: ArrayLike,
    labels: Sequence[Hashable] | None = None,
    *,
    zero_division: float = math.nan,
) -> dict[Hashable, float]:
    r"""Recall of each class :math:`\mathrm{TP}_k / (\mathrm{TP}_k + \mathrm{FN}_k)`.

    The denominator is the number of items whose truth is class k.  ``labels``
    defaults to the sorted union of classes in truth and prediction (audmetric).

    A class that never occurs in ``truth`` has undefined recall and gets
    ``zero_division``: ``nan`` by default; audmetric's default is 0, so
    ``zero_division=0`` reproduces audmetric (and ser-tests).

    Difference from audmetric: an item whose truth is class k but whose prediction is
    *not in* ``labels`` counts as a miss of k here; audmetric drops such items (it
    derives recall from the label-restricted confusion matrix), which inflates recall,
    e.g. for an 8-class model scored on 4 labels.  Both agree whenever every
    prediction is one of ``labels``.

    Raises:
        ValueError: lengths differ, empty input, duplicate labels.

    >>> recall_per_class(['anger', 'neutral', 'neutral'], ['anger', 'anger', 'neutral'])
    {'anger': 1.0, 'neutral': 0.5}
    """
    t, p = _paired_labels(truth, prediction, "recall_per_class")
    lab = _resolve_labels(labels, _sorted_unique(t, p), "recall_per_class")
    tp, n_truth, _ = _class_counts(_encode(t, lab), _encode(p, lab), len(lab))
    values = _ratio(tp, n_truth, zero_division)
    return {label: float(v) for label, v in zip(lab, values)}


def precision_per_class(
    truth: ArrayLike,
    prediction: ArrayLike,
    labels: Sequence[Hashable] | None = None,
    *,
    zero_division: float = math.nan,
) -> dict[Hashable, float]:
    r"""Precision of each class :math:`\mathrm{TP}_k / (\mathrm{TP}_k + \mathrm{FP}_k)`.

    The denominator is the number of items *predicted* as class k.  ``labels``
    defaults to the sorted union of classes in truth and prediction (audmetric).

    A class that is never predicted has undefined precision and gets
    ``zero_division``: ``nan`` by default ("not measurable", skipped by checks);
    audmetric's default is 0 (so ser-tests failed such cells), reproduced by
    ``zero_division=0``.

    Difference from audmetric: an item predicted as k whose truth is *not in*
    ``labels`` counts as a false positive of k here; audmetric drops it.  Both agree
    whenever every truth value is one of ``labels``.

    Raises:
        ValueError: lengths differ, empty input, duplicate labels.

    >>> precision_per_class(['anger', 'neutral', 'neutral'], ['anger', 'anger', 'neutral'])
    {'anger': 0.5, 'neutral': 1.0}
    """
    t, p = _paired_labels(truth, prediction, "precision_per_class")
    lab = _resolve_labels(labels, _sorted_unique(t, p), "precision_per_class")
    tp, _, n_pred = _class_counts(_encode(t, lab), _encode(p, lab), len(lab))
    values = _ratio(tp, n_pred, zero_division)
    return {label: float(v) for label, v in zip(lab, values)}


def uar(
    truth: ArrayLike,
    prediction: ArrayLike,
    labels: Sequence[Hashable] | None = None,
    *,
    zero_division: float = math.nan,
) -> float:
    r"""Unweighted average recall (balanced accuracy).

    .. math::  \mathrm{UAR} = \frac{1}{K} \sum_{k=1}^{K} \mathrm{recall}_k

    over the classes present in ``truth`` (default) or over ``labels``.  A perfect
    prediction scores 1; a constant prediction of one of the K classes scores 1/K,
    whatever the class balance.

    A label absent from ``truth`` has undefined recall: with the default
    ``zero_division=nan`` it is left out of the mean; ``zero_division=0`` counts it as 0.
    audmetric's default (labels = union of truth and prediction, zero_division = 0)
    also averages in a 0 for every class that is only *predicted*; pass
    ``labels=<that union>, zero_division=0`` to reproduce it.  Predictions outside
    the labels count as misses (see :func:`recall_per_class`).

    Returns:
        UAR in [0, 1]; ``nan`` if no label has a defined recall.

    Raises:
        ValueError: lengths differ, empty input, duplicate labels.

    >>> uar(['anger', 'neutral', 'neutral'], ['anger', 'anger', 'neutral'])
    0.75
    """
    t, p = _paired_labels(truth, prediction, "uar")
    lab = _resolve_labels(labels, _sorted_unique(t), "uar")
    tp, n_truth, _ = _class_counts(_encode(t, lab), _encode(p, lab), len(lab))
    return float(_nanmean_rows(_ratio(tp, n_truth, zero_division)))


def uap(
    truth: ArrayLike,
    prediction: ArrayLike,
    labels: Sequence[Hashable] | None = None,
    *,
    zero_division: float = 0.0,
) -> float:
    r"""Unweighted average precision.

    .. math::  \mathrm{UAP} = \frac{1}{K} \sum_{k=1}^{K} \mathrm{precision}_k

    over the classes present in ``truth`` (default) or over ``labels``.

    A class that is never predicted counts as ``zero_division`` = **0** by default
    (as in audmetric), so a model that ignores a class is penalised instead of having
    that class silently dropped from the mean; ``zero_division=nan`` leaves such
    classes out.  This differs on purpose from :func:`precision_per_class`, whose
    per-class cells default to ``nan`` ("not measurable").  audmetric's defaults are
    reproduced by ``labels=<sorted union of truth and prediction>``.

    Returns:
        UAP in [0, 1]; ``nan`` only if every label's precision is ``nan``.

    Raises:
        ValueError: lengths differ, empty input, duplicate labels.

    >>> uap(['anger', 'neutral', 'neutral'], ['anger', 'anger', 'neutral'])
    0.75
    """
    t, p = _paired_labels(truth, prediction, "uap")
    lab = _resolve_labels(labels, _sorted_unique(t), "uap")
    tp, _, n_pred = _class_counts(_encode(t, lab), _encode(p, lab), len(lab))
    return float(_nanmean_rows(_ratio(tp, n_pred, zero_division)))


def accuracy(truth: ArrayLike, prediction: ArrayLike) -> float:
    r"""Share of correct predictions :math:`\frac{1}{n}\sum_i [y_i = x_i]`, in [0, 1].

    Unlike audmetric there is no ``labels`` filter: every item counts.

    Raises:
        ValueError: lengths differ or empty input.

    >>> round(accuracy(['anger', 'neutral', 'neutral'], ['anger', 'anger', 'neutral']), 4)
    0.6667
    """
    t, p = _paired_labels(truth, prediction, "accuracy")
    return sum(1 for u, v in zip(t, p) if u == v) / len(t)


def class_proportions(
    labels_seq: ArrayLike,
    labels: Sequence[Hashable] | None = None,
) -> dict[Hashable, float]:
    r"""Proportion of each class :math:`p(c) = n_c / \sum_{c' \in \mathrm{labels}} n_{c'}`.

    Items whose label is not in ``labels`` are ignored (ser-tests' convention), so the
    proportions over ``labels`` sum to 1.  ``labels`` defaults to the sorted distinct
    values of ``labels_seq``.  If no item has one of ``labels`` every proportion is
    ``nan``.

    Raises:
        ValueError: empty input or duplicate labels.

    >>> class_proportions(['anger', 'neutral', 'neutral', 'sadness'])
    {'anger': 0.25, 'neutral': 0.5, 'sadness': 0.25}
    """
    values = _label_list(labels_seq, "labels_seq", "class_proportions")
    lab = _resolve_labels(labels, _sorted_unique(values), "class_proportions")
    codes = _encode(values, lab)
    counts = np.bincount(codes[codes >= 0], minlength=len(lab))
    shares = _ratio(counts, counts.sum(), math.nan)
    return {label: float(v) for label, v in zip(lab, shares)}


def relative_difference_per_class(
    prediction: ArrayLike,
    reference: ArrayLike,
    labels: Sequence[Hashable] | None = None,
) -> dict[Hashable, float]:
    r"""Difference of class proportions :math:`p_\mathrm{pred}(c) - p_\mathrm{ref}(c)`.

    Each proportion is taken within its own series (:func:`class_proportions`), so the
    two series may differ in length (e.g. one group's predictions against all
    predictions, or predictions against the truth).  Values in [-1, 1]; 0.2 means the
    prediction has 20 percentage points more items in class c.  ``labels`` defaults to
    the sorted union of both series' classes.

    Raises:
        ValueError: empty input or duplicate labels.

    >>> relative_difference_per_class(['anger', 'anger', 'neutral', 'neutral'],
    ...                               ['anger', 'neutral', 'neutral', 'neutral'])
    {'anger': 0.25, 'neutral': -0.25}
    """
    func = "relative_difference_per_class"
    pred = _label_list(prediction, "prediction", func)
    ref = _label_list(reference, "reference", func)
    lab = _resolve_labels(labels, _sorted_unique(pred, ref), func)
    p_pred = class_proportions(pred, lab)
    p_ref = class_proportions(ref, lab)
    return {label: p_pred[label] - p_ref[label] for label in lab}


# --------------------------------------------------------------------------------------
# Per-bin metrics (regression values cut into bins, then scored as classes)
# --------------------------------------------------------------------------------------


def _skip_sparse_bins(
    result: dict[int, float], counts: np.ndarray, min_samples: int
) -> dict[int, float]:
    return {b: (math.nan if counts[b] < min_samples else v) for b, v in result.items()}


def precision_per_bin(
    truth: ArrayLike,
    prediction: ArrayLike,
    edges: Sequence[float] = DEFAULT_EDGES,
    min_samples: int = 0,
    *,
    zero_division: float = math.nan,
) -> dict[int, float]:
    r"""Precision per bin: both series are binned (:func:`bin_values`), then
    :func:`precision_per_class` is computed on the bin indices.

    Keys are bin indices ``0 .. len(edges)`` (names: :func:`bin_names`).  A bin is ``nan``
    when ``truth`` has fewer than ``min_samples`` items in it (ser-tests used
    :func:`min_samples_for_bins`, e.g. 67 for 1000 items), or when it is never
    predicted (``zero_division``; ser-tests/audmetric used 0).

    Raises:
        ValueError: lengths differ, empty or NaN input, invalid edges / min_samples.

    >>> precision_per_bin([0.1, 0.3, 0.6, 0.9], [0.1, 0.6, 0.6, 0.9])
    {0: 1.0, 1: nan, 2: 0.5, 3: 1.0}
    """
    func = "precision_per_bin"
    min_samples = _check_min_samples(min_samples, func)
    t, p = _binned_pair(truth, prediction, edges, func)
    n_bins = len(edges) + 1
    tp, n_truth, n_pred = _class_counts(t, p, n_bins)
    result = dict(enumerate(_ratio(tp, n_pred, zero_division).tolist()))
    return _skip_sparse_bins(result, n_truth, min_samples)


def recall_per_bin(
    truth: ArrayLike,
    prediction: ArrayLike,
    edges: Sequence[float] = DEFAULT_EDGES,
    min_samples: int = 0,
    *,
    zero_division: float = math.nan,
) -> dict[int, float]:
    r"""Recall per bin: both series are binned (:func:`bin_values`), then
    :func:`recall_per_class` is computed on the bin indices.

    Keys are bin indices ``0 .. len(edges)``.  A bin is ``nan`` when ``truth`` has fewer
    than ``min_samples`` items in it (and, with the default ``zero_division``, when it
    has none at all).

    Raises:
        ValueError: lengths differ, empty or NaN input, invalid edges / min_samples.

    >>> recall_per_bin([0.1, 0.3, 0.6, 0.9], [0.1, 0.6, 0.6, 0.9])
    {0: 1.0, 1: 0.0, 2: 1.0, 3: 1.0}
    """
    func = "recall_per_bin"
    min_samples = _check_min_samples(min_samples, func)
    t, p = _binned_pair(truth, prediction, edges, func)
    n_bins = len(edges) + 1
    tp, n_truth, _ = _class_counts(t, p, n_bins)
    result = dict(enumerate(_ratio(tp, n_truth, zero_division).tolist()))
    return _skip_sparse_bins(result, n_truth, min_samples)


def _binned_pair(
    truth: ArrayLike, prediction: ArrayLike, edges: Sequence[float], func: str
) -> tuple[np.ndarray, np.ndarray]:
    e = _check_edges(edges, func)
    x = _float_array(truth, "truth", func, allow_inf=True)
    y = _float_array(prediction, "prediction", func, allow_inf=True)
    _check_same_length(x.size, y.size, "truth and prediction", func)
    return np.searchsorted(e, x, side="left"), np.searchsorted(e, y, side="left")


def relative_difference_per_bin(
    prediction: ArrayLike,
    reference: ArrayLike,
    edges: Sequence[float] = DEFAULT_EDGES,
    min_samples: int = 0,
) -> dict[int, float]:
    r"""Difference of bin proportions :math:`p_\mathrm{pred}(b) - p_\mathrm{ref}(b)`.

    Both series are binned with :func:`bin_values`; each proportion is taken within
    its own series, so lengths may differ.  Keys are bin indices ``0 .. len(edges)``.
    A bin is ``nan`` when ``reference`` has fewer than ``min_samples`` items in it
    (ser-tests: 4 for 60-item accent groups, 67 for 1000-item groups).

    Raises:
        ValueError: empty or NaN input, invalid edges / min_samples.

    >>> relative_difference_per_bin([0.1, 0.6, 0.6, 0.9], [0.1, 0.1, 0.6, 0.9])
    {0: -0.25, 1: 0.0, 2: 0.25, 3: 0.0}
    """
    func = "relative_difference_per_bin"
    min_samples = _check_min_samples(min_samples, func)
    e = _check_edges(edges, func)
    n_bins = e.size + 1
    pred_values = _float_array(prediction, "prediction", func, allow_inf=True)
    ref_values = _float_array(reference, "reference", func, allow_inf=True)
    pred = np.searchsorted(e, pred_values, side="left")
    ref = np.searchsorted(e, ref_values, side="left")
    n_pred = np.bincount(pred, minlength=n_bins)
    n_ref = np.bincount(ref, minlength=n_bins)
    diff = n_pred / pred.size - n_ref / ref.size
    return _skip_sparse_bins(dict(enumerate(diff.tolist())), n_ref, min_samples)


# --------------------------------------------------------------------------------------
# Bootstrap confidence intervals
# --------------------------------------------------------------------------------------
#
# A resample is represented by a row of integer weights w_i = how often item i was
# drawn.  A metric of the resampled items equals the *weighted* metric with these
# weights, so whole batches of resamples are one product W @ x.  Item and
# cluster bootstrap differ only in how W is drawn.


def _wsum(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Weighted sums ``w @ v`` per row, without BLAS.

    ``numpy.einsum`` (no ``optimize``) runs single-threaded: a multi-threaded BLAS
    matrix-vector product was 100x slower on a busy 2-core machine (threads spinning
    for a core), and its result could depend on the thread count.
    """
    if v.ndim == 1:
        return np.einsum("ij,j->i", w, v)
    return np.einsum("ij,jk->ik", w, v)


_TINY_SPREAD = 1e-6  # see _weighted_moments


def _weighted_moments(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Per row of weights: sum of weights, mean difference, centred sums of squares.

    Values are centred on the overall means and divided by one common scale (CCC and
    PCC do not change under it), so the one-pass sums are accurate and cannot
    underflow or overflow.  Their rounding error is a small multiple of ``1e-16 * sw``
    in these units, so for rows flagged ``tiny`` (a sum of squares below
    ``_TINY_SPREAD * sw``: constant or nearly constant resamples, or fewer than 2
    items) they are not trusted and the caller recomputes those rows exactly.
    """
    sw = w.sum(axis=1)
    cx, cy = x.mean(), y.mean()
    xc, yc = x - cx, y - cy
    scale = max(np.abs(xc).max(), np.abs(yc).max(), abs(cx - cy))
    scale = scale if scale > 0 else 1.0
    xc, yc, offset = xc / scale, yc / scale, (cx - cy) / scale
    mx = _wsum(w, xc) / sw
    my = _wsum(w, yc) / sw
    sxx = _wsum(w, xc * xc) - sw * mx * mx
    syy = _wsum(w, yc * yc) - sw * my * my
    sxy = _wsum(w, xc * yc) - sw * mx * my
    tiny = (sxx <= _TINY_SPREAD * sw) | (syy <= _TINY_SPREAD * sw) | (sw < 2)
    return {"sw": sw, "diff": (mx - my) + offset, "sxx": sxx, "syy": syy, "sxy": sxy, "tiny": tiny}


def _recompute_rows(
    out: np.ndarray, rows: np.ndarray, w: np.ndarray, x: np.ndarray, y: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], float],
) -> np.ndarray:
    """Overwrite ``out[rows]`` with ``metric`` of the items each row's weights select."""
    items = np.arange(x.size)
    for r in np.flatnonzero(rows):
        chosen = np.repeat(items, w[r].astype(np.int64))
        out[r] = metric(x[chosen], y[chosen])
    return out


def _ccc_weighted(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CCC for each row of integer item weights ``w`` (same conventions as :func:`ccc`)."""
    m = _weighted_moments(w, x, y)
    const_x, const_y = bool(np.ptp(x) == 0), bool(np.ptp(y) == 0)
    if const_x != const_y:
        # one series constant (e.g. a constant predictor): CCC is exactly 0 in every row
        # except rows with < 2 items or where the other series is constant too (rare),
        # which are recomputed exactly - not every row, as the generic path would
        other = m["syy"] if const_x else m["sxx"]
        rows = (other <= _TINY_SPREAD * m["sw"]) | (m["sw"] < 2)
        return _recompute_rows(np.zeros(len(m["sw"])), rows, w, x, y, ccc)
    den = m["sxx"] + m["syy"] + m["sw"] * m["diff"] ** 2
    out = np.clip(_ratio(2.0 * m["sxy"], den, np.nan), -1.0, 1.0)
    return _recompute_rows(out, m["tiny"], w, x, y, ccc)


def _pcc_weighted(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """PCC for each row of integer item weights ``w`` (same conventions as :func:`pcc`)."""
    if np.ptp(x) == 0 or np.ptp(y) == 0:  # a constant series: undefined in every row
        return np.full(w.shape[0], np.nan)
    m = _weighted_moments(w, x, y)
    den = np.sqrt(np.maximum(m["sxx"], 0.0)) * np.sqrt(np.maximum(m["syy"], 0.0))
    out = np.clip(_ratio(m["sxy"], den, np.nan), -1.0, 1.0)
    return _recompute_rows(out, m["tiny"], w, x, y, pcc)


def _mae_weighted(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """MAE for each row of item weights ``w``."""
    return _wsum(w, np.abs(y - x)) / w.sum(axis=1)


def _mse_weighted(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """MSE for each row of item weights ``w``."""
    return _wsum(w, np.square(y - x)) / w.sum(axis=1)


_WeightedMetric = Callable[[np.ndarray], np.ndarray]


def _prepare_regression(kernel: Callable[..., np.ndarray], name: str):
    def prepare(arrays: tuple[Any, ...], kwargs: dict[str, Any]) -> _WeightedMetric | None:
        if len(arrays) != 2 or kwargs:
            return None
        x, y = _paired_floats(arrays[0], arrays[1], name)
        return lambda w: kernel(w, x, y)

    return prepare


def _prepare_average(kind: str):
    """Vectorised UAR / UAP with the keyword arguments of :func:`uar` / :func:`uap`."""

    def prepare(arrays: tuple[Any, ...], kwargs: dict[str, Any]) -> _WeightedMetric | None:
        if len(arrays) != 2 or set(kwargs) - {"labels", "zero_division"}:
            return None
        t, p = _paired_labels(arrays[0], arrays[1], kind)
        labels = kwargs.get("labels")
        zero_division = kwargs.get("zero_division", math.nan if kind == "uar" else 0.0)
        lab = _resolve_labels(labels, _sorted_unique(t), kind)
        classes = np.arange(len(lab))
        tc, pc = _encode(t, lab), _encode(p, lab)
        is_t = (tc[:, None] == classes).astype(np.float64)
        is_p = (pc[:, None] == classes).astype(np.float64)
        is_tp = is_t * is_p

        def metric(w: np.ndarray) -> np.ndarray:
            n_truth = _wsum(w, is_t)
            tp = _wsum(w, is_tp)
            den = n_truth if kind == "uar" else _wsum(w, is_p)
            values = _ratio(tp, den, zero_division)
            if labels is None:  # labels = classes present in this resample's truth
                values[n_truth == 0] = np.nan
            return _nanmean_rows(values)

        return metric

    return prepare


def _prepare_accuracy(arrays: tuple[Any, ...], kwargs: dict[str, Any]) -> _WeightedMetric | None:
    if len(arrays) != 2 or kwargs:
        return None
    t, p = _paired_labels(arrays[0], arrays[1], "accuracy")
    correct = np.array([u == v for u, v in zip(t, p)], dtype=np.float64)
    return lambda w: _wsum(w, correct) / w.sum(axis=1)


# The weighted forms are declared to the statistics layer, which evaluates them for all
# resamples at once (sertest.stats.weighted_form looks them up).
for _metric, _prepare in (
    (ccc, _prepare_regression(_ccc_weighted, "ccc")),
    (pcc, _prepare_regression(_pcc_weighted, "pcc")),
    (mae, _prepare_regression(_mae_weighted, "mae")),
    (mse, _prepare_regression(_mse_weighted, "mse")),
    (uar, _prepare_average("uar")),
    (uap, _prepare_average("uap")),
    (accuracy, _prepare_accuracy),
    (jensen_shannon_distance, _prepare_jsd),
):
    register_weighted_form(_metric, _prepare)


def bootstrap_ci(
    metric: Callable[..., float],
    *arrays: ArrayLike,
    n_boot: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator,
    groups: ArrayLike | None = None,
    max_nan_fraction: float = 0.1,
) -> tuple[float, float]:
    r"""Percentile bootstrap confidence interval of ``metric(*arrays)``.

    Each of ``n_boot`` resamples draws n items with replacement; the draw is *paired*
    (the same item indices for every array, e.g. truth and prediction).  The interval
    is the :math:`(\alpha/2, 1-\alpha/2)` quantile pair of the resampled metric values,
    :math:`\alpha = 1 - \mathrm{confidence}` (numpy's linear quantile interpolation).

    **Cluster bootstrap** (``groups`` given, one cluster id per item, e.g. the speaker):
    each resample draws G clusters with replacement out of the G clusters present and
    takes *all* items of every drawn cluster (resample size varies with cluster size).
    This matters because items of one speaker are not independent: they share voice,
    microphone, session and often label tendencies, so there is less information than
    n independent items.  An item bootstrap then treats correlated items as independent
    and gives intervals that are too narrow (over-confident verdicts); resampling whole
    speakers keeps the within-speaker correlation and reflects the speaker-to-speaker
    variation a new test set would show.

    Resamples where the metric is ``nan`` (e.g. CCC of a constant resample) are ignored;
    if more than ``max_nan_fraction`` of them are ``nan`` the interval is ``(nan, nan)``,
    because the remaining ones would no longer describe the metric's variability.

    :func:`ccc`, :func:`pcc`, :func:`mae`, :func:`mse`, :func:`uar`, :func:`uap` and
    :func:`accuracy` (also wrapped in ``functools.partial`` with keyword arguments)
    are evaluated for all resamples at once as weighted statistics (1000 resamples of
    CCC on 1000 items take a few tens of ms); any other ``metric`` is called once per
    resample with the resampled arrays.  Metrics must not depend on item order.

    Args:
        metric: function of the arrays returning a float.
        arrays: equally long 1-D array-likes (the metric's positional arguments).
        n_boot: number of resamples.
        confidence: coverage of the interval, in (0, 1).
        rng: the generator all draws come from (required; see ``sertest.seeding``).
        groups: optional cluster id per item for the cluster bootstrap.
        max_nan_fraction: largest tolerated share of ``nan`` resamples, in [0, 1].

    Returns:
        ``(low, high)`` as floats.

    Raises:
        TypeError: ``rng`` is not a ``numpy.random.Generator``.
        ValueError: no arrays, arrays of different lengths or empty, invalid options.

    >>> import numpy as np
    >>> truth, prediction = [0.1, 0.3, 0.4, 0.6, 0.8, 0.9], [0.2, 0.3, 0.5, 0.5, 0.7, 0.9]
    >>> low, high = bootstrap_ci(ccc, truth, prediction, n_boot=200, rng=np.random.default_rng(0))
    >>> bool(low <= ccc(truth, prediction) <= high)
    True
    """
    func = "bootstrap_ci"
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{func}: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if not arrays:
        raise ValueError(f"{func}: give at least one array to resample")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"{func}: n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"{func}: confidence must lie in (0, 1), got {confidence!r}")
    if not 0.0 <= max_nan_fraction <= 1.0:
        raise ValueError(f"{func}: max_nan_fraction must lie in [0, 1], got {max_nan_fraction!r}")
    n_boot = int(n_boot)
    lengths = [len(a) for a in arrays]  # type: ignore[arg-type]
    n = lengths[0]
    if n == 0:
        raise ValueError(f"{func}: arrays are empty")
    if any(length != n for length in lengths):
        raise ValueError(f"{func}: arrays differ in length {lengths}")
    cluster_ids = None if groups is None else _label_list(groups, "groups", func)
    if cluster_ids is not None:
        _check_same_length(len(cluster_ids), n, "groups and arrays", func)
    values = replicates(metric, *arrays, n_boot=n_boot, rng=rng, groups=cluster_ids)
    interval = percentile_interval(values, confidence, max_nan_fraction)
    return (math.nan, math.nan) if interval is None else interval
