"""The figure contract: the plot data a check writes under ``plots`` in results.json.

Every figure is a plain dict whose first key is ``"kind"``; the report draws it by that kind
and never guesses from names or keys (documents of schema ``sertest/results@3`` on).  A
check builds each figure with the constructor of its kind below, which checks the fields
and returns the dict; the kinds and their fields are listed in docs/results-schema.md
("Figures").  A check's ``plots`` is either one *composite* figure (``robustness``,
``dose``, ``search``, ``search_pair``, ``metamorphic``, ``slices``: the whole test's plot
data) or a mapping of plot names to figures.

Values on the dimension scale are in [0, 1] label units; shares are in [0, 1]; levels are
in the unit the figure names (``unit``).  A *family* kind (``categories``,
``speakers_per_class``, ``ranks_per_class``) holds one member per category or class beside
its ``kind`` key.

>>> scatter(truth=[0.1, 0.5], prediction=[0.2, 0.4])
{'kind': 'scatter', 'truth': [0.1, 0.5], 'prediction': [0.2, 0.4]}
>>> figure("wave", x=[1])
Traceback (most recent call last):
...
ValueError: unknown figure kind 'wave'; known: bars, categories, confusion, distributions, \
dose, histogram, metamorphic, ranks, ranks_per_class, robustness, scatter, search, \
search_pair, shares, sizes, slices, speakers, speakers_per_class
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FigureKind:
    """One kind of figure: its required and optional fields (in the order written) and
    what it shows.  ``members`` names the fields every member of a family kind needs."""

    name: str
    required: tuple[str, ...]
    description: str
    optional: tuple[str, ...] = ()
    members: tuple[str, ...] | None = None  # a family: one member (a mapping) per name
    composite: bool = False  # the whole ``plots`` of a test, not one named plot

    @property
    def family(self) -> bool:
        return self.members is not None


_KINDS = (
    FigureKind("scatter", ("truth", "prediction"),
               "prediction against truth, one point per item (a reproducible subsample)"),
    FigureKind("histogram", ("edges", "truth", "prediction"),
               "counts of truth and prediction on shared bin edges"),
    FigureKind("shares", ("groups",),
               "class shares per series or group: groups maps a name to {class: share}"),
    FigureKind("categories", (), "predicted value per emotion category (ridges), each "
               "member with the category's expected range",
               members=("edges", "prediction")),
    FigureKind("speakers", ("speaker", "truth", "prediction"),
               "per-speaker mean truth and prediction", optional=("n", "flag", "flagged")),
    FigureKind("speakers_per_class", (), "per-speaker share of each class, truth and "
               "prediction, one member per class",
               members=("speaker", "truth", "prediction")),
    FigureKind("ranks", ("names", "truth", "prediction"),
               "per-speaker mean truth and prediction, drawn rank against rank"),
    FigureKind("ranks_per_class", (), "per-speaker shares of each class, drawn rank against "
               "rank, one member per class", members=("names", "truth", "prediction")),
    FigureKind("confusion", ("matrix", "rows", "columns"),
               "confusion matrix of counts (rows: truth, columns: prediction)"),
    FigureKind("sizes", ("labels", "values"), "items per group", optional=("metric",)),
    FigureKind("bars", ("labels", "values"), "one value per label (e.g. a calibrated limit)",
               optional=("metric", "ci", "details")),
    FigureKind("distributions", ("groups",), "predicted values per group (box plots): groups "
               "maps a group to its values or quantiles", optional=("reference",)),
    FigureKind("robustness", ("target", "tolerance", "edges", "conditions", "unchanged", "worst"),
               "per condition: change histograms or label confusions, the fraction unchanged, "
               "the items that changed most", composite=True),
    FigureKind("dose", ("target", "parameter", "unit", "direction", "anchor", "perturbation",
                        "levels", "labels", "criterion", "limit", "curves", "breakdown", "worst"),
               "metric curves over the levels of one perturbation with the limit and the "
               "breakdown point", composite=True),
    FigureKind("search", ("target", "axis", "parameter", "unit", "calls", "budget", "items",
                          "worst"),
               "per-item breakdown level along one axis (censored: held everywhere searched)",
               composite=True),
    FigureKind("search_pair", ("target", "axes", "parameters", "units", "calls", "budget",
                               "items", "worst"),
               "per-item breaking pair of levels along two axes and its severity",
               composite=True),
    FigureKind("metamorphic", ("target", "expectations", "worst"),
               "share of items for which each expectation holds, and the items breaking it "
               "furthest", composite=True),
    FigureKind("slices", ("target", "tested", "fdr", "slices"),
               "the slices with the largest error difference: n, effect, interval, q",
               composite=True),
)

#: every figure kind by name
KINDS: dict[str, FigureKind] = {k.name: k for k in _KINDS}
#: fields that hold a sequence (one value per item, bin, group or class) wherever they occur
SEQUENCE_FIELDS = frozenset({"truth", "prediction", "speaker", "names", "matrix", "rows",
                             "columns", "labels", "values", "levels", "items", "worst",
                             "expectations", "slices", "conditions"})
#: fields that hold a mapping wherever they occur
MAPPING_FIELDS = frozenset({"groups", "curves", "breakdown", "unchanged"})
#: the kinds that are a test's whole ``plots``
COMPOSITE_KINDS = tuple(k.name for k in _KINDS if k.composite)


def figure(kind: str, members: Mapping[str, Mapping] | None = None, /,
           **fields: Any) -> dict[str, Any]:
    """The figure dict ``{"kind": kind, **fields}`` (family kinds: ``{"kind": kind,
    **members}``), after checking that the kind is known and its fields are complete.

    Raises:
        ValueError: unknown kind, a missing or unknown field, or a family member that is not
            a mapping of the member fields (the message names the kind and the field).
    """
    spec = KINDS.get(kind)
    if spec is None:
        raise ValueError(f"unknown figure kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    if spec.family:
        if fields:
            raise ValueError(f"figure {kind!r} is a family: pass its members as one mapping, "
                             f"not fields {', '.join(sorted(fields))}")
        out: dict[str, Any] = {"kind": kind}
        for name, member in (members or {}).items():
            if str(name) == "kind":
                raise ValueError(f"figure {kind!r}: a member may not be named 'kind'")
            if not isinstance(member, Mapping):
                raise ValueError(f"figure {kind!r}: member {name!r} is a "
                                 f"{type(member).__name__}, not a mapping")
            missing = [f for f in spec.members or () if f not in member]
            if missing:
                raise ValueError(f"figure {kind!r}: member {name!r} lacks "
                                 f"{', '.join(missing)}")
            out[name] = member
        return out
    if members is not None:
        raise ValueError(f"figure {kind!r} has fields, not members")
    missing = [f for f in spec.required if f not in fields]
    unknown = [f for f in fields if f not in spec.required + spec.optional]
    if missing or unknown:
        raise ValueError(f"figure {kind!r}: " + "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else [])
            + ([f"unknown {', '.join(unknown)}"] if unknown else []))
            + f" (fields: {', '.join(spec.required + spec.optional)})")
    for name, value in fields.items():
        if name in SEQUENCE_FIELDS and not _is_sequence(value):
            raise ValueError(f"figure {kind!r}: {name} must be a list, not a "
                             f"{type(value).__name__}")
        if name in MAPPING_FIELDS and not isinstance(value, Mapping):
            raise ValueError(f"figure {kind!r}: {name} must be a mapping, not a "
                             f"{type(value).__name__}")
    return {"kind": kind, **fields}


def _is_sequence(value: Any) -> bool:
    """A list or tuple, or an array (anything with ``tolist``), never a string."""
    return isinstance(value, (list, tuple)) or (hasattr(value, "tolist")
                                                and not isinstance(value, (str, bytes)))


def problems(plots: Any) -> list[str]:
    """What makes a test entry's ``plots`` break the contract (empty when it keeps it): it
    must be one composite figure or a mapping of names to figures of known kinds with
    their required fields.

    >>> problems({"scatter": {"kind": "scatter", "truth": [], "prediction": []}})
    []
    >>> problems({"ranks": {"truth": [], "prediction": []}})
    ["plot 'ranks' has no kind"]
    """
    if not isinstance(plots, Mapping):
        return [f"plots is a {type(plots).__name__}, not a mapping"]
    if "kind" in plots:
        return _figure_problems("plots", plots, composite=True)
    out = []
    for name, fig in plots.items():
        out += _figure_problems(f"plot {name!r}", fig, composite=False)
    return out


def _figure_problems(where: str, fig: Any, *, composite: bool) -> list[str]:
    if not isinstance(fig, Mapping) or "kind" not in fig:
        return [f"{where} has no kind"]
    spec = KINDS.get(str(fig["kind"]))
    if spec is None:
        return [f"{where} has unknown kind {fig['kind']!r}"]
    if spec.composite != composite:
        return [f"{where}: kind {spec.name!r} is " + ("" if spec.composite else "not ")
                + "a whole test's plots"]
    if spec.family:
        return [f"{where}: member {k!r} lacks {', '.join(f for f in spec.members or () if f not in v)}"
                for k, v in fig.items() if k != "kind"
                if not isinstance(v, Mapping) or any(f not in v for f in spec.members or ())]
    missing = [f for f in spec.required if f not in fig]
    return [f"{where} ({spec.name}) lacks {', '.join(missing)}"] if missing else []


# -- one constructor per kind (the fields in the order they are written) --------------------

def scatter(*, truth: list, prediction: list) -> dict[str, Any]:
    """Prediction against truth per item (dimension scale, label units)."""
    return figure("scatter", truth=truth, prediction=prediction)


def histogram(*, edges: list, truth: list, prediction: list) -> dict[str, Any]:
    """Counts of truth and prediction in the bins ``edges`` (label units, len(counts) + 1)."""
    return figure("histogram", edges=edges, truth=truth, prediction=prediction)


def shares(*, groups: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Class shares (0-1) per series or group: ``{name: {class: share}}``."""
    return figure("shares", groups=groups)


def categories(members: Mapping[str, Mapping]) -> dict[str, Any]:
    """Per emotion category ``{edges, prediction (counts), n, expected, xlabel}``."""
    return figure("categories", members)


def speakers(*, speaker: list, truth: list, prediction: list, **optional: Any) -> dict[str, Any]:
    """Per-speaker mean truth and prediction; optional ``n`` (items per speaker), ``flag``
    (the gap drawn in vermillion, label units) and ``flagged``."""
    return figure("speakers", speaker=speaker, truth=truth, prediction=prediction, **optional)


def speakers_per_class(members: Mapping[str, Mapping]) -> dict[str, Any]:
    """Per class ``{speaker, truth, prediction (shares 0-1), n?, flag?}``."""
    return figure("speakers_per_class", members)


def ranks(*, names: list, truth: list, prediction: list) -> dict[str, Any]:
    """Per-speaker mean truth and prediction (drawn as ranks)."""
    return figure("ranks", names=names, truth=truth, prediction=prediction)


def ranks_per_class(members: Mapping[str, Mapping]) -> dict[str, Any]:
    """Per class ``{names, truth, prediction}`` (per-speaker shares, drawn as ranks)."""
    return figure("ranks_per_class", members)


def confusion(*, matrix: list, rows: list, columns: list) -> dict[str, Any]:
    """Counts, rows: true class, columns: predicted class."""
    return figure("confusion", matrix=matrix, rows=rows, columns=columns)


def sizes(*, labels: list, values: list, **optional: Any) -> dict[str, Any]:
    """Items per group; optional ``metric`` (the axis name)."""
    return figure("sizes", labels=labels, values=values, **optional)


def bars(*, labels: list, values: list, **optional: Any) -> dict[str, Any]:
    """One value per label; optional ``metric``, ``ci`` ([low, high] per label) and
    ``details`` (kept for results.json, not drawn)."""
    return figure("bars", labels=labels, values=values, **optional)


def distributions(*, groups: Mapping[str, list], **optional: Any) -> dict[str, Any]:
    """Predicted values (or quantiles) per group; optional ``reference`` (a group's name)."""
    return figure("distributions", groups=groups, **optional)


def robustness(**fields: Any) -> dict[str, Any]:
    """A robustness test's plots: ``target``, ``tolerance`` (label units), ``edges``
    (baseline, delta, value bin edges), ``conditions`` (per condition ``hist2d`` and
    ``hist``, or ``confusion``), ``unchanged`` ({labels, values, ci}), ``worst`` items."""
    return figure("robustness", **fields)


def dose(**fields: Any) -> dict[str, Any]:
    """A dose-response test's plots: ``levels`` (in ``unit``), ``curves`` ({metric: {values,
    ci}}), the ``criterion`` metric and its ``limit``, ``breakdown`` per side, ``worst``."""
    return figure("dose", **fields)


def search(**fields: Any) -> dict[str, Any]:
    """A one-axis search's plots: ``items`` ({id, breakdown (in ``unit``), held_at,
    censored}), ``calls`` and ``budget`` (model calls), ``worst`` items."""
    return figure("search", **fields)


def search_pair(**fields: Any) -> dict[str, Any]:
    """A two-axis search's plots: ``items`` ({id, levels, severity, censored}), ``axes``,
    ``parameters``, ``units``, ``calls``, ``budget``, ``worst`` items."""
    return figure("search_pair", **fields)


def metamorphic(**fields: Any) -> dict[str, Any]:
    """A metamorphic test's plots: ``expectations`` ({label, relation, by, holds (share),
    ci, n, mean_change?}) and ``worst`` (the items breaking an expectation furthest)."""
    return figure("metamorphic", **fields)


def slices(**fields: Any) -> dict[str, Any]:
    """A slice discovery's plots: ``tested`` (slices), ``fdr`` and ``slices`` ({slice, n,
    effect, lo, hi, q, effect_size, speakers, discovered}; effect in error units)."""
    return figure("slices", **fields)


__all__ = ["COMPOSITE_KINDS", "FigureKind", "KINDS", "figure", "problems", *KINDS]
