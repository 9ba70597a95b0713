r"""Bootstrap resampling shared by every check.

A resample is a row of item **weights** (how often each item was drawn); a metric that
:mod:`sertest.metrics` can evaluate as a weighted statistic (CCC, PCC, MAE, UAR, ...) is
then computed for all rows at once.  Three designs:

* item bootstrap - n items drawn with replacement;
* one-stage cluster bootstrap (:func:`cluster_weights` with ``clusters``) - G speakers
  drawn with replacement, every item of a drawn speaker taken (items of one speaker are not
  independent: an item bootstrap would be over-confident);
* two-stage cluster bootstrap (:func:`two_stage_weights`) - speakers, then items within
  each drawn speaker; used where groups hold few speakers.

**Common random numbers.**  The generator of a test's resamples is
:func:`resample_rng` ``(seed, test, target, items)``: it depends on the audit seed, the
test, the target and the *data* (a digest of the item ids, in order), never on the model.
Two models measured on the same items therefore see identical resamples, so the difference
of their replicates is a paired bootstrap of their difference (used by ``sertest
compare``), and cells of one test measured on the same items share their resamples (used
for simultaneous intervals).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..seeding import derive_rng
from .weight_memo import MEMO, array_digest, generator_key

MAX_NAN_FRACTION = 0.1  # replicates allowed to be NaN before an interval is withheld
#: weight-matrix cells per block of resamples (2 MB of float64): the bootstrap's memory stays
#: bounded whatever the number of items (the blocks draw the same numbers as one matrix)
_MAX_WEIGHT_CELLS = 250_000


def data_digest(ids: Sequence[Any]) -> str:
    """A short digest of item ids in order (the "data" a resample depends on).

    >>> data_digest(["a", "b"]) == data_digest(["a", "b"]) != data_digest(["b", "a"])
    True
    """
    h = hashlib.blake2b(digest_size=8)
    for i in ids:
        h.update(str(i).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def resample_rng(seed: int, test: str, target: str, ids: Sequence[Any], *keys: str | int
                 ) -> np.random.Generator:
    """The generator of a test's bootstrap resamples: seed, test, target and data only."""
    return derive_rng(seed, "resample", test, target, data_digest(ids), *keys)


def _counts(rng: np.random.Generator, rows: int, units: int) -> np.ndarray:
    """(rows, units) draw counts of ``units`` draws with replacement per row."""
    draws = rng.integers(0, units, size=(rows, units))
    draws += (np.arange(rows) * units)[:, None]  # in place: one (rows, units) array less
    return np.bincount(draws.ravel(), minlength=rows * units).reshape(rows, units)


def cluster_weights(n: int, n_boot: int, rng: np.random.Generator,
                    clusters: Sequence[Any] | np.ndarray | None = None) -> np.ndarray:
    """(n_boot, n) item weights of an item or one-stage cluster bootstrap.

    Args:
        n: number of items.
        n_boot: number of resamples.
        rng: the generator (see :func:`resample_rng`).
        clusters: optional cluster id per item (the speaker); whole clusters are drawn.

    >>> w = cluster_weights(4, 3, np.random.default_rng(0))
    >>> w.shape, bool((w.sum(axis=1) == 4).all())
    ((3, 4), True)
    """
    if clusters is None:
        return _counts(rng, n_boot, n).astype(np.float64)
    codes, uniques = pd.factorize(pd.Series(np.asarray(clusters, dtype=object)))
    return _counts(rng, n_boot, len(uniques))[:, codes].astype(np.float64)


def weight_blocks(n: int, n_boot: int, rng: np.random.Generator,
                  clusters: Sequence[Any] | np.ndarray | None = None,
                  max_cells: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """The rows of :func:`cluster_weights` in blocks: ``(first row, (rows, n) weights)``.

    A block holds about ``max_cells`` weights (default ``_MAX_WEIGHT_CELLS``, 2 MB of
    float64), so the memory of a bootstrap over many items stays bounded.  The rows are
    drawn in order from the one generator, so the blocks stacked equal
    :func:`cluster_weights` ``(n, n_boot, rng, clusters)`` from the same generator state.
    A block has at least two rows (the last one up to ``2 * rows - 1``): numpy's ``einsum``
    sums a single row's products in another order than a matrix's rows (an ulp apart, seen
    from about 10,000 items), while for two rows or more it gives every row the same bits
    whatever their number - so the block size changes no replicate.  The blocks are
    read-only and are handed out again for a draw from the same generator state
    (:mod:`sertest.stats.weight_memo`), which then leaves the generator as drawing would;
    consumers draw every block.

    >>> blocks = list(weight_blocks(4, 5, np.random.default_rng(0), max_cells=8))
    >>> [(start, w.shape) for start, w in blocks]
    [(0, (2, 4)), (2, (3, 4))]
    >>> whole = cluster_weights(4, 5, np.random.default_rng(0))
    >>> bool((np.vstack([w for _, w in blocks]) == whole).all())
    True
    """
    if clusters is None:
        codes, n_units = None, n
    else:
        codes, uniques = pd.factorize(pd.Series(np.asarray(clusters, dtype=object)))
        n_units = len(uniques)
    cells = _MAX_WEIGHT_CELLS if max_cells is None else int(max_cells)
    rows_per_block = max(2, min(n_boot, cells // max(n, n_units, 1)))
    key = ("blocks", generator_key(rng), n, n_boot, n_units, rows_per_block,
           None if codes is None else array_digest(codes))
    hit = MEMO.get(key)
    if hit is not None:  # drawn before from the same generator state (another model)
        blocks, state_after = hit
        rng.bit_generator.state = state_after
        yield from blocks
        return
    starts = list(range(0, n_boot, rows_per_block))
    if len(starts) > 1 and n_boot - starts[-1] == 1:
        starts.pop()  # no block of one row: see the docstring
    drawn = []
    for start, stop in zip(starts, starts[1:] + [n_boot]):
        counts = _counts(rng, stop - start, n_units)
        w = (counts if codes is None else counts[:, codes]).astype(np.float64)
        w.flags.writeable = False  # shared with later draws from the same state
        drawn.append((start, w))
        yield start, w
    MEMO.put(key, tuple(drawn), rng.bit_generator.state)


def two_stage_weights(clusters: np.ndarray, strata: list[np.ndarray], n_boot: int,
                      rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) weights of a two-stage cluster bootstrap, stratified.

    Within each stratum (an index array, e.g. one group's items), stage 1 draws the
    stratum's clusters with replacement; stage 2 draws, for every drawn copy of a cluster,
    as many of its items with replacement as it has.  The second stage adds the variation
    within speakers, which a one-stage cluster bootstrap misses when a group has only a few
    speakers (the interval is then somewhat conservative rather than over-confident).

    The matrix is read-only: a draw from the same generator state returns the same array
    (:mod:`sertest.stats.weight_memo`; every model of an audit draws the same resamples).
    """
    n = len(clusters)
    key = ("two-stage", generator_key(rng), n_boot, array_digest(np.asarray(clusters)),
           array_digest(*[np.asarray(s) for s in strata]), len(strata))
    hit = MEMO.get(key)
    if hit is not None:  # drawn before from the same generator state (another model)
        (weights,), state_after = hit
        rng.bit_generator.state = state_after
        return weights
    weights = _two_stage(clusters, strata, n_boot, rng)
    weights.flags.writeable = False  # shared with later draws from the same state
    MEMO.put(key, (weights,), rng.bit_generator.state)
    return weights


def _two_stage(clusters: np.ndarray, strata: list[np.ndarray], n_boot: int,
               rng: np.random.Generator) -> np.ndarray:
    n = len(clusters)
    weights = np.zeros((n_boot, n))
    for items in strata:
        if items.size == 0:
            continue
        uniq, local = np.unique(clusters[items], return_inverse=True)
        m = uniq.size
        copies = _counts(rng, n_boot, m)
        sizes = np.bincount(local, minlength=m)
        single = sizes[local] == 1
        weights[:, items[single]] = copies[:, local[single]]
        for j in np.flatnonzero(sizes > 1):
            members = items[local == j]
            k = members.size
            weights[:, members] = rng.multinomial(copies[:, j] * k, np.full(k, 1.0 / k))
    return weights


#: a metric's weighted form: ``prepare(arrays, keywords)`` returns a function of a weight
#: matrix (one row per resample) giving the metric per row, or ``None`` where it cannot
WeightedForm = Callable[[tuple[Any, ...], dict[str, Any]], Callable[[np.ndarray], np.ndarray] | None]

_WEIGHTED_FORMS: dict[Callable[..., Any], WeightedForm] = {}


def register_weighted_form(metric: Callable[..., Any], prepare: WeightedForm) -> None:
    """Declare how to evaluate ``metric`` for all resamples at once as a weighted statistic.

    :mod:`sertest.metrics` declares its own (CCC, PCC, MAE, MSE, UAR, UAP, accuracy); this
    module never imports the metrics, so the statistics layer stays below them.
    """
    _WEIGHTED_FORMS[metric] = prepare


def weighted_form(metric: Callable[..., Any],
                  arrays: tuple[Any, ...]) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function of the weight matrix computing ``metric`` on ``arrays``, if one is declared.

    ``metric`` may be wrapped in ``functools.partial`` with keyword arguments only.  Each row
    of the weight matrix (how often each item was drawn) gives one value.

    >>> import numpy as np
    >>> from sertest.metrics import mae
    >>> f = weighted_form(mae, (np.array([0.0, 1.0]), np.array([0.0, 0.0])))
    >>> f(np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0]])).tolist()
    [0.5, 0.0, 1.0]
    >>> weighted_form(lambda a, b: 0.0, ([0.0], [0.0])) is None
    True
    """
    kwargs: dict[str, Any] = {}
    if isinstance(metric, functools.partial) and not metric.args:
        kwargs = dict(metric.keywords)
        metric = metric.func
    try:
        prepare = _WEIGHTED_FORMS.get(metric)
    except TypeError:  # unhashable callable
        return None
    return None if prepare is None else prepare(arrays, kwargs)


def _weighted(metric: Callable[..., Any], arrays: tuple[np.ndarray, ...]):
    try:
        return weighted_form(metric, arrays)
    except (TypeError, ValueError):
        return None


def replicates(metric: Callable[..., float], *arrays: Any, n_boot: int,
               rng: np.random.Generator, groups: Any = None,
               minus: Callable[..., float] | None = None,
               minus_arrays: tuple[Any, ...] | None = None) -> np.ndarray:
    r"""Bootstrap replicates of ``metric(*arrays)`` (optionally minus ``minus(*minus_arrays)``).

    Each resample draws the same items (or speakers, with ``groups``) for every array, so
    the draw is paired; with ``minus`` the difference of two metrics is resampled jointly
    (e.g. CCC under a condition minus CCC on clean audio, on the same items).  NaN marks a
    resample where the metric is undefined.

    Args:
        metric: function of the arrays returning a float.
        arrays: equally long 1-D array-likes.
        n_boot: number of resamples.
        rng: generator of the resamples (see :func:`resample_rng`).
        groups: optional cluster id per item (cluster bootstrap).
        minus, minus_arrays: a second metric subtracted on the same resample.

    Returns:
        float array of shape ``(n_boot,)``.

    >>> from sertest.metrics import mae
    >>> r = replicates(mae, [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], n_boot=200,
    ...                rng=np.random.default_rng(1))
    >>> r.shape, bool(((r >= 0) & (r <= 1)).all())
    ((200,), True)
    """
    data = tuple(np.asarray(a) for a in arrays)
    n = len(data[0])
    extra = tuple(np.asarray(a) for a in (minus_arrays or ()))
    if minus is not None and not extra:
        raise ValueError("replicates: minus needs minus_arrays")
    f = _weighted(metric, data)
    g = _weighted(minus, extra) if minus is not None else None
    vector = f is not None and (minus is None or g is not None)
    values = np.empty(n_boot)
    index = np.arange(n)
    for start, w in weight_blocks(n, n_boot, rng, groups):
        rows = w.shape[0]
        if vector:
            v = f(w)
            if g is not None:
                v = v - g(w)
            values[start:start + rows] = v
            continue
        for r in range(rows):
            chosen = np.repeat(index, w[r].astype(np.int64))
            v = float(metric(*(a[chosen] for a in data)))
            if minus is not None:
                v -= float(minus(*(a[chosen] for a in extra)))
            values[start + r] = v
    return values


def percentile_interval(values: np.ndarray, confidence: float,
                        max_nan_fraction: float = MAX_NAN_FRACTION) -> tuple[float, float] | None:
    r"""Percentile interval :math:`(q_{\alpha/2}, q_{1-\alpha/2})` of bootstrap replicates.

    ``None`` when more than ``max_nan_fraction`` of the replicates are NaN: the others
    would no longer describe the metric's variability.

    >>> [round(x, 6) for x in percentile_interval(np.arange(101.0), 0.9)]
    [5.0, 95.0]
    """
    values = np.asarray(values, dtype=float)
    ok = values[np.isfinite(values)]
    if ok.size == 0 or values.size - ok.size > max_nan_fraction * values.size:
        return None
    alpha = 1.0 - confidence
    lo, hi = np.quantile(ok, [alpha / 2.0, 1.0 - alpha / 2.0])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return float(lo), float(hi)
