"""The base of every behavioural test (a "check"): measure, then judge.

A check declares which predictions it needs (:meth:`Check.requests`: a condition and the
items), then measures from predictions and labels (:meth:`Check.measure`) and returns
:class:`Measurement` objects.  Judging against the suite's thresholds is done by
:mod:`sertest.checks.verdict`, never inside the measurement code.  A check that raises is
recorded as an ``error`` result; it never stops the audit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import UsageError
from ..perturb.base import Perturbation
from ..vocabulary import DIMENSIONS, EMOTION
from .registry import register, registry  # the table of tests (one line per module)
from .verdict import Threshold


@dataclass
class Request:
    """Predictions a check needs: one condition (``None`` = clean audio) on some items."""

    condition: Perturbation | None
    ids: list[str] | None = None  # None = every item of the dataset


#: the facets a measurement's :attr:`Measurement.slice` may name, in display order:
#: ``group`` a speaker group (``female``, an intersection ``female & young``), ``context``
#: the context a group is compared in (fairness ``shift``), ``condition`` a perturbation or
#: recording condition (``babble``), ``expectation`` a metamorphic expectation's label,
#: ``side`` the side of a two-sided dose sweep (``down``, ``up``), ``subset`` a discovered
#: slice (``gender=female & snr<5``), ``category`` an emotion category the items carry,
#: ``class`` an emotion class, ``bin`` a bin of a [0, 1] dimension (``0.25-0.5``)
FACETS = ("group", "context", "condition", "expectation", "side", "subset", "category",
          "class", "bin")
#: joins the facet values of a slice into its display label
LABEL_SEP = " / "


def slice_label(cell: dict[str, str] | None) -> str | None:
    """The display label of a measurement's slice: its facet values in :data:`FACETS` order,
    joined by ``" / "``; ``None`` for the whole set.  The one place the label is made (it is
    the ``group`` of results.json and the last part of a replicates key
    ``model|test|dimension|metric|group``).

    >>> slice_label({"bin": "0.25-0.5", "group": "female"})
    'female / 0.25-0.5'
    >>> slice_label({"condition": "babble"})
    'babble'
    >>> slice_label({}) is None
    True
    """
    if not cell:
        return None
    unknown = sorted(set(cell) - set(FACETS))
    if unknown:
        raise ValueError(f"unknown slice facet(s) {', '.join(unknown)}; known: {', '.join(FACETS)}")
    return LABEL_SEP.join(str(cell[f]) for f in FACETS if f in cell)


@dataclass
class Measurement:
    """One measured number, before or after judging.

    Attributes:
        metric: metric id, e.g. ``ccc`` or ``ccc_difference``.
        value: the measured value (NaN if it could not be computed).
        slice: what it was measured on, facet -> value (facets in :data:`FACETS`), e.g.
            ``{"group": "female", "bin": "0.25-0.5"}``, ``{"condition": "babble"}`` or
            ``{"class": "anger"}``; empty for the whole set.  :attr:`group` is its label.
        ci: (low, high) bootstrap confidence interval (marginal), if computed.
        n: number of items it rests on.
        threshold, verdict: filled in by judging.
    """

    metric: str
    value: float
    slice: dict[str, str] = field(default_factory=dict)
    ci: tuple[float, float] | None = None
    n: int | None = None
    threshold: Threshold | None = None
    verdict: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: bootstrap replicates of ``value`` (not written to results.json; the judge derives
    #: standard errors, simultaneous intervals and power from them; replicates.npz keeps
    #: them for paired comparisons)
    replicates: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: set by the judge: simultaneous interval (over the test's cells) and power analysis
    ci_simultaneous: tuple[float, float] | None = None
    power: dict[str, Any] | None = None

    @property
    def group(self) -> str | None:
        """The slice's display label (:func:`slice_label`); ``None`` for the whole set."""
        return slice_label(self.slice)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"metric": self.metric, "group": self.group,
                             "slice": {f: str(self.slice[f]) for f in FACETS if f in self.slice},
                             "value": _num(self.value),
                             "ci": [_num(c) for c in self.ci] if self.ci else None,
                             "n": self.n,
                             "threshold": self.threshold.to_dict() if self.threshold else None,
                             "verdict": self.verdict}
        if self.ci_simultaneous is not None:
            d["ci_simultaneous"] = [_num(c) for c in self.ci_simultaneous]
        if self.power is not None:
            d["power"] = _plain(self.power)
        if self.extra:
            d["extra"] = _plain(self.extra)
        return d


@dataclass
class Outcome:
    """What :meth:`Check.measure` returns: measurements, plot data and notes."""

    measurements: list[Measurement] = field(default_factory=list)
    plots: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # reason the check does not apply
    #: entry flags found while measuring, e.g. {"kind": "confound", "text": ...}
    flags: list[dict[str, str]] = field(default_factory=list)


class Check:
    """Base class of tests.

    Class attributes:
        id: the ser-tests name, e.g. ``correctness_regression``.
        topic: ``correctness``, ``fairness`` or ``robustness``.
        description: one line for ``sertest list``.
        kinds: ``regression`` (arousal, dominance, valence) and/or ``classification``
            (emotion).
        metrics: metric id -> default threshold expression (the suite may override).
        defaults: parameters and their defaults (the suite may override; unknown keys are
            refused).
    """

    id: ClassVar[str] = ""
    topic: ClassVar[str] = ""
    description: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ("regression", "classification")
    metrics: ClassVar[dict[str, str]] = {}
    defaults: ClassVar[dict[str, Any]] = {}
    #: False for checks that need no label of the judged target (e.g. consistency reads
    #: only the categorical ``emotion`` column while judging arousal)
    requires_truth: ClassVar[bool] = True
    #: True for checks that predict more while measuring (:attr:`Context.predictor`, e.g.
    #: the worst-case search): the audit then keeps its predictions in memory for them
    #: when there is no cache file (without it they would be computed again)
    predicts_on_demand: ClassVar[bool] = False

    def __init__(self, params: dict[str, Any] | None = None,
                 thresholds: dict[str, Any] | None = None, name: str | None = None) -> None:
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise UsageError(f"test {self.id!r}: unknown parameter(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(self.defaults)) or 'none'}")
        self.params = {**self.defaults, **params}
        thresholds = dict(thresholds or {})
        unknown = sorted(set(thresholds) - set(self.metrics))
        if unknown:
            import difflib

            close = [c for u in unknown for c in difflib.get_close_matches(u, list(self.metrics), n=1)]
            raise UsageError(f"test {self.id!r}: unknown metric(s) {', '.join(unknown)}; "
                             + (f"did you mean {' or '.join(map(repr, close))}? " if close else "")
                             + f"known: {', '.join(sorted(self.metrics))}")
        merged = {**self.metrics, **thresholds}
        self.thresholds = {k: Threshold.parse(v, f"test {self.id!r}, metric {k!r}")
                           for k, v in merged.items() if v is not None}
        self.name = name or self.id
        #: suite-level item filter (column -> allowed values), applied by the engine
        self.where: dict | None = None

    # -- to override ------------------------------------------------------------
    def requests(self, ctx: "Context") -> list[Request]:
        """The predictions this check needs (default: clean audio of every item)."""
        return [Request(None)]

    def features(self, ctx: "Context") -> list:
        """Feature extractors (Model objects, e.g. an F0 estimator) to run on clean audio.

        The engine runs them like models, once per item, cached; read their outputs with
        ``ctx.prediction(feature.name, output_name)``.  They are never audited.
        """
        return []

    def measure(self, ctx: "Context", model: str, target: str) -> Outcome:
        """Measure ``model`` on ``target`` (a dimension or ``emotion``)."""
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------
    @classmethod
    def kind_of(cls, target: str) -> str:
        return "classification" if target == EMOTION else "regression"

    def supports(self, target: str) -> bool:
        return self.kind_of(target) in self.kinds

    def threshold_for(self, metric: str) -> Threshold | None:
        return self.thresholds.get(metric)


class Context:
    """What checks see: the dataset, labels and the prediction store, nothing else.

    Truth for a target comes from the dataset's label column or, in label-free mode, from
    the reference model's predictions on clean audio.
    """

    def __init__(self, dataset, store, models: dict[str, Any], seed: int = 0,
                 reference: str | None = None, n_boot: int = 1000, confidence: float = 0.95,
                 failed_ids: set[str] | None = None, item_errors: list | None = None,
                 needed: dict[str, set[str]] | None = None, predictor=None) -> None:
        self.dataset = dataset
        self.store = store
        self.models = models
        self.seed = seed
        self.reference = reference
        self.n_boot = n_boot
        self.confidence = confidence
        #: items that could not be decoded (the data's fault): left out everywhere
        self.failed_ids = failed_ids or set()
        #: every :class:`~sertest.engine.execute.ItemError` of the execution (model failures
        #: make the entries that needed them ``error``, see :mod:`sertest.checks.health`)
        self.item_errors = list(item_errors or [])
        #: condition key -> item ids the audit asked every audited model to predict
        self.needed = needed or {}
        #: predictions on demand, for a check that chooses its conditions while measuring
        #: (the worst-case search): ``predictor(models, conditions, needed) -> (store,
        #: item_errors)`` with the audit's seed and prediction cache, set by the engine;
        #: ``None`` where no model may be called (e.g. ``sertest validate``'s resamples)
        self.predictor = predictor

    @property
    def table(self) -> pd.DataFrame:
        return self.dataset.table

    def rng(self, *keys: str | int) -> np.random.Generator:
        from ..seeding import derive_rng

        return derive_rng(self.seed, *keys)

    def valid_ids(self, ids=None) -> list[str]:
        ids = self.dataset.ids if ids is None else id_list(ids)
        if not self.failed_ids:
            return ids
        return [i for i in ids if i not in self.failed_ids]

    def has_truth(self, target: str) -> bool:
        if self.reference is not None:
            return target in self.models[self.reference].targets
        return self.dataset.has(target)

    def truth(self, target: str, ids=None) -> pd.Series:
        """Ground truth (or the reference model's clean prediction) for ``target``."""
        ids = self.valid_ids(ids)
        if self.reference is not None:
            return self.prediction(self.reference, target, None, ids)
        col = self.table.loc[ids, target]
        return col.dropna()

    def prediction(self, model: str, target: str, condition: Perturbation | None = None,
                   ids=None) -> pd.Series:
        """Predictions of ``model`` for ``target`` under ``condition`` (NaN-free)."""
        ids = self.valid_ids(ids)
        frame = self.store.frame(model, condition, ids)
        m = self.models[model]
        if target == EMOTION:
            classes = list(m.classes)
            if frame.empty:
                return pd.Series([], dtype=object, name=target)
            values = frame[classes].to_numpy()
            labels = np.asarray(classes, dtype=object)[np.argmax(values, axis=1)]
            return pd.Series(labels, index=frame.index, name=target)
        return frame[target].rename(target)

    def paired(self, model: str, target: str, condition: Perturbation | None = None,
               ids=None) -> tuple[pd.Series, pd.Series]:
        """Truth and prediction aligned on the items that have both."""
        t = self.truth(target, ids)
        p = self.prediction(model, target, condition, t.index)
        common = t.index.intersection(p.index)
        return t.loc[common], p.loc[common]


def id_list(ids) -> list:
    """Item ids as a new list: ``tolist()`` of a pandas Index or array (iterating a string
    Index item by item costs about 15 times more: 0.74 ms against 0.05 ms for 968 ids)."""
    tolist = getattr(ids, "tolist", None)
    return tolist() if callable(tolist) else list(ids)


def _num(x: Any) -> Any:
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return x
    if math.isnan(f) or math.isinf(f):
        return None
    return float(f"{f:.6g}")


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray, pd.Series)):
        return [_plain(v) for v in list(x)]
    if isinstance(x, (float, np.floating)):
        return _num(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


__all__ = ["Check", "Context", "DIMENSIONS", "EMOTION", "FACETS", "Measurement", "Outcome",
           "Request", "register", "registry", "slice_label"]
