"""Worst-case search: the mildest perturbation that moves each item's prediction.

A dose-response sweep (:mod:`sertest.checks.dose`) measures every item at a few fixed
levels.  ``robustness_search`` (and ``sertest search``) instead *searches*, per item, one
perturbation axis for the mildest setting at which the prediction moves beyond the
tolerance (``|y - y_clean| >= tolerance`` in prediction units; for emotion, another label):

* the axis is a grid of settings from mild to severe (:data:`AXES`: SNR in 0.5 dB steps,
  Opus bit rate, RT60, semitones, gain);
* each item is first tried at the most severe setting: if its prediction holds there,
  its breakdown lies beyond the searched range (*censored*);
* otherwise bisection on the grid halves the bracket (last setting that held, first that
  moved) until they are neighbours: ``1 + ceil(log2(L))`` perturbed predictions per item
  for a grid of L settings, plus the clean one.  The breakdown point is the first setting
  that moved; the true crossing lies between it and the last that held (one grid step).

Bisection assumes that a prediction which moved at a setting also moves at every more
severe one (a monotone response); where it is not, it finds *a* crossing, not necessarily
the mildest.  The cost is bounded: at most ``budget`` model predictions in all; items
beyond what the budget allows are left out by a seeded sample (stated in the results).
Every prediction goes through the engine - the context's ``predictor``, which runs
:func:`~sertest.engine.execute.execute` (decoding, perturbation seeded by (seed, item,
condition), batching, the audit's prediction cache) - so a search is deterministic for a
seed and a re-run costs no model calls.

Reported: the median breakdown over items with a bootstrap interval (censored items count
as beyond the severe end; a median among them is known only as "beyond"), judged against
a per-axis default threshold; the share of items broken within the range (Wilson
interval); the 10th percentile (the earliest-breaking tenth, info); and the items that
break earliest with their clean and perturbed predictions (the gallery's counterexamples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import figures
from ..errors import UsageError
from ..vocabulary import EMOTION
from ..perturb import from_spec
from ..perturb.base import Perturbation
from .base import Check, Context, Measurement, Outcome, Request, register
from .conditions import is_number, plain, wilson_interval
from .verdict import Threshold


@dataclass(frozen=True)
class Axis:
    """One searchable perturbation parameter: its grid from mild to severe."""

    name: str
    spec: dict[str, Any]  # the perturbation, without the searched parameter
    parameter: str
    unit: str
    grid: tuple[float, ...]  # mild -> severe, clean audio excluded
    threshold: str  # default threshold of the median breakdown

    def perturbation(self, level: float) -> Perturbation:
        return from_spec({**self.spec, self.parameter: level})

    @property
    def severe_sign(self) -> float:
        """+1 if larger values are more severe (RT60), -1 if smaller ones are (SNR)."""
        return 1.0 if self.grid[-1] > self.grid[0] else -1.0

    def label(self, level: float) -> str:
        return f"{level / 1000:g} kbit/s" if self.unit == "bit/s" else f"{level:g} {self.unit}"


def _steps(mild: float, severe: float, step: float) -> tuple[float, ...]:
    n = int(round(abs(severe - mild) / step))
    sign = 1.0 if severe > mild else -1.0
    return tuple(round(mild + sign * step * i, 6) for i in range(1, n + 1))


#: The searchable axes.  Spectral tilt has no continuous parameter (``direction`` only),
#: so it is not an axis.
AXES: dict[str, Axis] = {
    "snr": Axis("snr", {"name": "white_noise"}, "snr_db", "dB", _steps(50.5, -10.0, 0.5),
                "< 10"),
    "bitrate": Axis("bitrate", {"name": "opus"}, "bitrate", "bit/s",
                    tuple(float(round(64000 * (6000 / 64000) ** (i / 31) / 100) * 100)
                          for i in range(1, 32)), "< 12000"),
    "rt60": Axis("rt60", {"name": "room", "preset": "office", "level": "rms"}, "rt60_s", "s",
                 _steps(0.0, 2.0, 0.05), "> 0.5"),
    "semitones_up": Axis("semitones_up", {"name": "pitch_shift"}, "semitones", "st",
                         _steps(0.0, 8.0, 0.25), "> 2"),
    "semitones_down": Axis("semitones_down", {"name": "pitch_shift"}, "semitones", "st",
                           _steps(0.0, -8.0, 0.25), "< -2"),
    "gain": Axis("gain", {"name": "gain"}, "gain_db", "dB", _steps(0.0, -40.0, 0.5), "< -20"),
}


def calls_per_item(axis: Axis) -> int:
    """Model predictions one item costs: clean + most severe + bisection steps."""
    return 2 + math.ceil(math.log2(len(axis.grid)))


@dataclass
class ItemBreakdown:
    """One item's search result (levels in the axis' unit)."""

    item_id: str
    breakdown: float | None  # the first setting that moved; None: held everywhere
    held: float | None  # the last setting that held (None: clean audio)
    clean_value: Any = None
    broken_value: Any = None
    calls: int = 0

    @property
    def censored(self) -> bool:
        return self.breakdown is None


@dataclass
class SearchResult:
    """Per-item breakdowns of one model, target and axis, and what they cost."""

    axis: Axis
    target: str
    tolerance: float
    items: list[ItemBreakdown] = field(default_factory=list)
    calls: int = 0
    budget: int | None = None
    sampled_from: int | None = None
    errors: list[str] = field(default_factory=list)


def _moved(target: str, clean: Any, other: Any, tolerance: float) -> bool:
    if target == EMOTION:
        return clean != other
    return abs(float(other) - float(clean)) >= tolerance


def _moved_values(target: str, clean: Any, broken: Any) -> dict[str, Any]:
    """The clean and broken prediction of a listed item, in the keys the robustness tests'
    ``worst`` lists use (labels for emotion; values and their delta for a dimension)."""
    if target == EMOTION:
        return {"baseline_label": clean, "condition_label": broken}
    return {"delta": round(float(broken) - float(clean), 4),
            "baseline_value": round(float(clean), 4),
            "condition_value": round(float(broken), 4)}


def predict_conditions(model, target: str, predictor, res,
                       conditions: dict[str, Perturbation | None]) -> dict[str, Any]:
    """One engine call: each item under its own condition (``None`` = clean audio).

    Returns item -> prediction of ``target`` (the arg-max class for emotion); items whose
    prediction failed are missing, their errors appended to ``res.errors`` and every
    requested prediction counted in ``res.calls``."""
    from ..vocabulary import CLEAN

    by_key: dict[str, Perturbation | None] = {}
    needed: dict[str, set[str]] = {}
    for item, p in conditions.items():
        key = CLEAN if p is None else p.key
        by_key[key] = p
        needed.setdefault(key, set()).add(item)
    name = model.name
    store, errs = predictor({name: model}, by_key, needed)
    res.calls += sum(len(v) for v in needed.values())
    for e in errs:
        res.errors.append(f"{e.item_id}: {e.stage}: {e.error}")
    out: dict[str, Any] = {}
    for key, p in by_key.items():
        frame = store.frame(name, p, sorted(needed[key]))
        if frame.empty:
            continue
        if target == EMOTION:
            classes = list(model.classes)
            labels = np.asarray(classes, dtype=object)[np.argmax(
                frame[classes].to_numpy(), axis=1)]
            out.update(zip(frame.index, labels))
        else:
            out.update(zip(frame.index, frame[target].to_numpy(float)))
    return out


def search_breakdowns(model, dataset, axis: Axis | str, *, target: str, predictor,
                      tolerance: float = 0.05, ids: list[str] | None = None, seed: int = 0,
                      budget: int | None = None, clean: pd.Series | None = None
                      ) -> SearchResult:
    """Bisect ``axis`` per item for the mildest setting that moves ``model``'s ``target``.

    Args:
        model: a loaded :class:`~sertest.models.base.Model`.
        dataset: the :class:`~sertest.data.Dataset` holding the items.
        axis: an :class:`Axis` or a name of :data:`AXES`.
        tolerance: a change of at least this (prediction units) counts as moved.
        ids: items to search (default: all); with ``budget`` a seeded sample of them.
        predictor: predictions on demand, ``predictor(models, conditions, needed) ->
            (store, item_errors)`` - the engine's (:func:`sertest.engine.audit.on_demand`,
            with the audit's seed and prediction cache).
        budget: most model predictions in all (``None``: no limit); the number of items is
            cut to ``budget // calls_per_item(axis)`` by a seeded sample.
        clean: the clean predictions of ``target`` if already known (saves their calls).
    """
    from ..seeding import derive_rng

    axis = AXES[axis] if isinstance(axis, str) else axis
    ids = sorted(dataset.ids if ids is None else ids)
    res = SearchResult(axis, target, tolerance, budget=budget)
    per_item = calls_per_item(axis)
    if budget is not None:
        most = budget // per_item
        if most < 1:
            raise UsageError(f"budget={budget}: one item costs {per_item} model predictions on "
                             f"axis {axis.name!r}; give at least {per_item}")
        if len(ids) > most:
            res.sampled_from = len(ids)
            pick = derive_rng(seed, "search-items", axis.name, most).choice(
                len(ids), size=most, replace=False)
            ids = [ids[i] for i in sorted(pick)]
    def predict(levels: dict[str, float | None]) -> dict[str, Any]:
        """One engine call: each item at its own setting (``None`` = clean)."""
        return predict_conditions(model, target, predictor, res, {
            i: None if level is None else axis.perturbation(level)
            for i, level in levels.items()})

    if clean is not None:
        base = {i: clean.loc[i] for i in ids if i in clean.index}
    else:
        base = predict({i: None for i in ids})
    state = {}  # item -> [lo, hi] grid indices: lo held (-1 = clean), hi moved (L = unknown)
    L = len(axis.grid)
    for i in ids:
        if i in base:
            state[i] = [-1, L]
    found: dict[str, Any] = {}
    # the most severe setting first: an item that holds there is censored
    first = predict({i: axis.grid[-1] for i in state})
    for i in list(state):
        if i not in first:
            del state[i]
            continue
        if _moved(target, base[i], first[i], tolerance):
            state[i][1] = L - 1
            found[i] = first[i]
        else:
            state[i][0] = L - 1
    while True:
        active = {i: (lo + hi) // 2 for i, (lo, hi) in state.items() if hi < L and hi - lo > 1}
        if not active:
            break
        got = predict({i: axis.grid[mid] for i, mid in active.items()})
        for i, mid in active.items():
            if i not in got:
                del state[i]
                continue
            if _moved(target, base[i], got[i], tolerance):
                state[i][1] = mid
                found[i] = got[i]
            else:
                state[i][0] = mid
    for i in ids:
        if i not in state:
            continue
        lo, hi = state[i]
        res.items.append(ItemBreakdown(
            i, None if hi >= L else axis.grid[hi], None if lo < 0 else axis.grid[lo],
            clean_value=base[i], broken_value=found.get(i)))
    return res


def summarise_breakdowns(res: SearchResult, *, n_boot: int, confidence: float,
                         rng: np.random.Generator) -> dict[str, Any]:
    """Median and 10th percentile of the per-item breakdowns with bootstrap intervals.

    Censored items count as infinitely severe (``-inf`` dB SNR, ``+inf`` s RT60); a
    statistic that lands among them is reported as known only to lie beyond the range.
    """
    sign = res.axis.severe_sign
    # severity: larger = more severe whatever the axis' direction; censored = +inf
    severity = np.array([math.inf if b.censored else sign * b.breakdown for b in res.items])
    out: dict[str, Any] = {"n": len(severity)}
    if not len(severity):
        return out
    idx = (rng.integers(0, len(severity), size=(n_boot, len(severity)))
           if n_boot > 0 and len(severity) >= 3 else None)
    a = (1 - confidence) / 2
    for key, q in (("median", 0.5), ("q10", 0.1)):  # q10: the earliest-breaking tenth
        value = sign * float(np.quantile(severity, q, method="inverted_cdf"))
        ci = None
        if idx is not None:
            reps = sign * np.quantile(severity[idx], q, axis=1, method="inverted_cdf")
            ci = tuple(sorted((float(np.quantile(reps, a, method="inverted_cdf")),
                               float(np.quantile(reps, 1 - a, method="inverted_cdf")))))
        out[key] = {"value": value, "ci": ci}
    broken = sum(not b.censored for b in res.items)
    out["broken_share"] = {"value": broken / len(severity),
                           "ci": wilson_interval(broken / len(severity), len(severity), confidence)}
    return out


@register
class RobustnessSearch(Check):
    """Worst-case search along one perturbation axis; see the module docstring.

    Params: ``axis`` (one of :data:`AXES`, default ``snr``), ``tolerance`` (0.05),
    ``max_items`` (items searched, a seeded sample; default 40), ``budget`` (most model
    predictions per model and target, default 600), ``n_worst`` (earliest-breaking items
    listed, 5).  Its predictions go through the audit's prediction cache (``--no-cache``
    reaches it) via :attr:`~sertest.checks.base.Context.predictor`."""

    predicts_on_demand = True

    id = "robustness_search"
    topic = "robustness"
    description = ("worst-case search: per-item mildest setting (SNR, bit rate, RT60, "
                   "semitones, gain) that moves the prediction; median breakdown")
    kinds = ("regression", "classification")
    requires_truth = False
    metrics = {"median_breakdown": "< 10", "q10_breakdown": None, "broken_share": None,
               "median_pair_severity": None}
    defaults = {"axis": "snr", "axes": None, "probes": 2, "tolerance": 0.05, "max_items": 40,
                "budget": 600, "n_worst": 5}

    def __init__(self, params=None, thresholds=None, name=None) -> None:
        thresholds = dict(thresholds or {})
        axis = (params or {}).get("axis", self.defaults["axis"])
        if axis not in AXES:
            raise UsageError(f"test {name or self.id!r}: parameter axis={axis!r}: choose from "
                             f"{', '.join(AXES)}")
        thresholds.setdefault("median_breakdown", AXES[axis].threshold)
        pair = (params or {}).get("axes")
        if pair is not None:
            if (not isinstance(pair, (list, tuple)) or len(pair) != 2 or pair[0] == pair[1]
                    or any(a not in AXES for a in pair)):
                raise UsageError(f"test {name or self.id!r}: parameter axes={pair!r}: give two "
                                 f"different axes of {', '.join(AXES)}, e.g. [snr, bitrate]")
            thresholds.setdefault("median_pair_severity", "> 0.5")
        super().__init__(params, thresholds, name)
        p, where = self.params, f"test {self.name!r}: parameter"
        self.axis = AXES[axis]
        self.pair = None if pair is None else (AXES[pair[0]], AXES[pair[1]])
        v = p["probes"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise UsageError(f"{where} probes={v!r} must be an integer >= 0")
        if not is_number(p["tolerance"]) or not p["tolerance"] > 0:
            raise UsageError(f"{where} tolerance={p['tolerance']!r} must be a positive number")
        for key, low in (("max_items", 3), ("budget", self._per_item()), ("n_worst", 0)):
            v = p[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise UsageError(f"{where} {key}={v!r} must be an integer >= {low}")

    def _per_item(self) -> int:
        """Most model predictions one item costs (clean included)."""
        if self.pair is None:
            return calls_per_item(self.axis)
        return pair_calls_per_item(*self.pair, int(self.params["probes"])) + 1

    def _ids(self, ctx: Context) -> list[str]:
        ids = sorted(ctx.valid_ids())
        most = min(int(self.params["max_items"]),
                   int(self.params["budget"]) // self._per_item())
        if len(ids) <= most:
            return ids
        names = [self.axis.name] if self.pair is None else [a.name for a in self.pair]
        pick = ctx.rng("search-items", *names, most).choice(len(ids), size=most,
                                                            replace=False)
        return [ids[i] for i in sorted(pick)]

    def requests(self, ctx: Context) -> list[Request]:
        return [Request(None, self._ids(ctx))]

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        out = Outcome()
        if ctx.predictor is None:
            return Outcome(skipped="needs predictions on demand (a running audit); "
                           "this evaluation can only read stored predictions")
        ids = self._ids(ctx)
        clean = ctx.prediction(model, target, None, ids)
        if self.pair is not None:
            pres = search_pairs(ctx.models[model], ctx.dataset, self.pair, target=target,
                                predictor=ctx.predictor,
                                tolerance=float(self.params["tolerance"]),
                                ids=list(clean.index), seed=ctx.seed, clean=clean,
                                budget=int(self.params["budget"]),
                                probes=int(self.params["probes"]))
            pres.calls += len(clean)
            out.measurements, out.plots, notes = pair_outcome(
                pres, n_boot=ctx.n_boot, confidence=ctx.confidence,
                rng=ctx.rng("bootstrap", f"{self.name}/{target}", len(pres.items)),
                n_worst=int(self.params["n_worst"]))
            out.notes.extend(notes)
            return out
        res = search_breakdowns(ctx.models[model], ctx.dataset, self.axis, target=target,
                                predictor=ctx.predictor,
                                tolerance=float(self.params["tolerance"]),
                                ids=list(clean.index), seed=ctx.seed, clean=clean,
                                budget=int(self.params["budget"]))
        res.calls += len(clean)
        out.measurements, out.plots, notes = search_outcome(
            res, n_boot=ctx.n_boot, confidence=ctx.confidence,
            rng=ctx.rng("bootstrap", f"{self.name}/{target}", len(res.items)),
            n_worst=int(self.params["n_worst"]))
        out.notes.extend(notes)
        return out


def search_outcome(res: SearchResult, *, n_boot: int, confidence: float,
                   rng: np.random.Generator, n_worst: int = 5
                   ) -> tuple[list[Measurement], dict[str, Any], list[str]]:
    """Measurements, plot data and notes of a search (shared by the test and the CLI)."""
    axis = res.axis
    s = summarise_breakdowns(res, n_boot=n_boot, confidence=confidence, rng=rng)
    n = s["n"]
    base_extra = {"axis": axis.name, "parameter": axis.parameter, "unit": axis.unit,
                  "perturbation": axis.spec, "tolerance": res.tolerance,
                  "range": [axis.grid[0], axis.grid[-1]], "step_resolution": "one grid step",
                  "model_calls": res.calls, "budget": res.budget}
    if res.sampled_from:
        base_extra["sampled_from"] = res.sampled_from
    ms: list[Measurement] = []
    notes: list[str] = []
    severe = axis.severe_sign * math.inf
    for key, metric in (("median", "median_breakdown"), ("q10", "q10_breakdown")):
        if key not in s:
            ms.append(Measurement(metric, math.nan, n=n, extra=dict(base_extra)))
            continue
        value, ci = s[key]["value"], s[key]["ci"]
        extra = dict(base_extra)
        if math.isinf(value):
            # beyond the searched range: known only to lie between its severe end and beyond
            extra["known_between"] = sorted([axis.grid[-1], severe])
            extra["censored"] = "never"
            value = math.nan if metric != "median_breakdown" else value
            ms.append(Measurement(metric, value, n=n, ci=None, extra=extra))
            notes.append(f"{metric}: beyond the searched range (held up to "
                         f"{axis.label(axis.grid[-1])})")
            continue
        if ci is not None:
            ci = tuple(sorted(ci))
            if not all(math.isfinite(c) for c in ci):
                notes.append(f"{metric}: the interval's severe end lies beyond the searched "
                             f"range (resamples in which the "
                             f"{'median' if key == 'median' else 'tenth-percentile'} item held at "
                             f"{axis.label(axis.grid[-1])}); results.json writes it as null")
        ms.append(Measurement(metric, value, n=n, ci=ci, extra=extra))
    bs = s.get("broken_share")
    if bs:
        ms.append(Measurement("broken_share", bs["value"], n=n, ci=tuple(bs["ci"]),
                              extra=dict(base_extra)))
    broken = sorted((b for b in res.items if not b.censored),
                    key=lambda b: (axis.severe_sign * b.breakdown, b.item_id))
    worst = []
    for b in broken[:n_worst]:
        entry = {"id": b.item_id, "condition": axis.perturbation(b.breakdown).spec(),
                 "label": axis.label(b.breakdown), "held_at": b.held}
        entry.update(_moved_values(res.target, b.clean_value, b.broken_value))
        worst.append(entry)
    if res.errors:
        notes.append(f"{len(res.errors)} prediction(s) failed during the search; first: "
                     f"{res.errors[0]}")
    plots = plain(figures.search(
        target=res.target, axis=axis.name, parameter=axis.parameter, unit=axis.unit,
        calls=res.calls, budget=res.budget,
        items=[{"id": b.item_id, "breakdown": b.breakdown, "held_at": b.held,
                "censored": b.censored} for b in res.items],
        worst=worst))
    return ms, plots, notes


# -- two axes at once ----------------------------------------------------------------------
#
# ``axes: [a, b]`` searches, per item, the 2-D grid of the two axes' settings, both
# applied (a ``chain`` perturbation: axis a's perturbation first, then axis b's - for
# ``[snr, bitrate]`` noise at the talker, then the Opus link).  A grid point (i, j) has
# the *normalised severity* ``((i + 1) / La + (j + 1) / Lb) / 2`` in (0, 1]: each axis
# contributes the share of its searched range covered (La, Lb settings), so 1 dB of SNR
# and one bit-rate step weigh by their axis' range.  The *mildest breaking pair* is the
# point that moved with the least normalised severity (ties: the smaller larger share,
# then the smaller i).
#
# Per item, assuming a monotone response (a point that moved stays moved when either
# axis gets more severe; a known result then settles every point it dominates without a
# call):
#   1. the most severe corner; if it holds, the item is censored;
#   2. bisection along the diagonal of equal shares -> a moved point (i0, j0);
#   3. bisection of axis a at j0, then of axis b at the i found (a point from which
#      neither axis can be eased alone);
#   4. ``probes`` seeded probes (``derive_rng(seed, "search-pair", a, b, item)``): a random
#      row (even probes) or column (odd) that could still hold a milder point, tested at
#      its mildest-enough setting and bisected if it moved.
# Cost per item: at most ``pair_calls_per_item`` predictions (:func:`pair_calls_per_item`)
# plus the clean one.  Under a monotone response with a rectangular breaking region (the
# model breaks iff a >= a* and b >= b*) steps 1-3 find (a*, b*) exactly; for other shapes
# the result is a breaking point on the region's edge and the probes look for milder ones.


def pair_calls_per_item(first: Axis, second: Axis, probes: int = 2) -> int:
    """Most perturbed predictions one item costs (the clean one not counted)."""
    la, lb = len(first.grid), len(second.grid)
    log = lambda n: math.ceil(math.log2(n)) if n > 1 else 0  # noqa: E731
    return 1 + log(max(la, lb)) + log(la) + log(lb) + probes * (1 + log(max(la, lb)))


def pair_perturbation(first: Axis, second: Axis, a: float, b: float) -> Perturbation:
    """The composite condition at settings ``a`` (first axis) and ``b`` (second)."""
    return from_spec({"name": "chain",
                      "steps": [{**first.spec, first.parameter: a},
                                {**second.spec, second.parameter: b}]})


@dataclass
class PairBreakdown:
    """One item's mildest breaking pair (grid indices and settings in each axis' unit)."""

    item_id: str
    index: tuple[int, int] | None  # None: held at the most severe corner (censored)
    levels: tuple[float, float] | None
    severity: float  # normalised, (0, 1]; inf if censored
    clean_value: Any = None
    broken_value: Any = None

    @property
    def censored(self) -> bool:
        return self.index is None


@dataclass
class PairSearchResult:
    """Per-item mildest breaking pairs of one model, target and pair of axes."""

    axes: tuple[Axis, Axis]
    target: str
    tolerance: float
    probes: int = 2
    items: list[PairBreakdown] = field(default_factory=list)
    calls: int = 0
    budget: int | None = None
    sampled_from: int | None = None
    errors: list[str] = field(default_factory=list)


def _pair_walk(la: int, lb: int, rng: np.random.Generator, probes: int):
    """One item's search as a generator: yields grid points (i, j) to predict, is sent
    ``True`` (moved) or ``False`` (held); returns the mildest moved point or ``None``."""
    known: dict[tuple[int, int], bool] = {}

    def severity(p):
        return ((p[0] + 1) / la + (p[1] + 1) / lb) / 2, max((p[0] + 1) / la, (p[1] + 1) / lb), p[0]

    def settled(p):
        for q, moved in known.items():
            if moved and q[0] <= p[0] and q[1] <= p[1]:
                return True
            if not moved and q[0] >= p[0] and q[1] >= p[1]:
                return False
        return None

    def test(p):
        got = settled(p)
        if got is None:
            got = yield p
            known[p] = got
        return got

    def first_moved(lo, hi, point):
        """Smallest k in (lo, hi] that moved, given ``point(hi)`` moved."""
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if (yield from test(point(mid))):
                hi = mid
            else:
                lo = mid
        return hi

    if not (yield from test((la - 1, lb - 1))):
        return None
    k_max = max(la, lb)
    diag = lambda k: (math.ceil(k * la / k_max) - 1, math.ceil(k * lb / k_max) - 1)  # noqa: E731
    i0, j0 = diag((yield from first_moved(0, k_max, diag)))
    i1 = yield from first_moved(-1, i0, lambda i: (i, j0))
    j1 = yield from first_moved(-1, j0, lambda j: (i1, j))
    best = (i1, j1)
    for n in range(probes):
        row = n % 2 == 0  # a row: fix axis a, search axis b; a column: the other way round
        size, other = (la, lb) if row else (lb, la)
        fix = lambda x, y: (x, y) if row else (y, x)  # noqa: E731
        # fixed settings at which some setting of the other axis could still be milder
        open_ = [x for x in range(size)
                 if severity(fix(x, 0)) < severity(best) and fix(x, 0) != best]
        if not open_:
            break
        x = open_[int(rng.integers(len(open_)))]
        ys = [y for y in range(other) if severity(fix(x, y)) < severity(best)]
        top = ys[-1]
        if (yield from test(fix(x, top))):
            y = yield from first_moved(-1, top, lambda y: fix(x, y))
            if severity(fix(x, y)) < severity(best):
                best = fix(x, y)
    return best


def search_pairs(model, dataset, axes: tuple[Axis | str, Axis | str], *, target: str,
                 predictor, tolerance: float = 0.05, ids: list[str] | None = None,
                 seed: int = 0, budget: int | None = None, probes: int = 2,
                 clean: pd.Series | None = None) -> PairSearchResult:
    """Per item, the mildest combination of two axes' settings that moves the prediction.

    Arguments as :func:`search_breakdowns`; ``axes`` names two of :data:`AXES` (applied in
    that order); ``probes`` seeded probes per item after the diagonal and coordinate
    bisections.  With ``budget`` the items are cut to ``budget // (pair_calls_per_item +
    1)`` by a seeded sample.  Deterministic for a seed; every prediction goes through
    ``predictor`` (and so the prediction cache)."""
    from ..seeding import derive_rng

    first, second = (AXES[a] if isinstance(a, str) else a for a in axes)
    if first.name == second.name:
        raise UsageError(f"axes=[{first.name}, {second.name}]: give two different axes")
    ids = sorted(dataset.ids if ids is None else ids)
    res = PairSearchResult((first, second), target, tolerance, probes=probes, budget=budget)
    per_item = pair_calls_per_item(first, second, probes) + 1
    if budget is not None:
        most = budget // per_item
        if most < 1:
            raise UsageError(f"budget={budget}: one item costs up to {per_item} model "
                             f"predictions on axes [{first.name}, {second.name}]; give at "
                             f"least {per_item}")
        if len(ids) > most:
            res.sampled_from = len(ids)
            pick = derive_rng(seed, "search-items", first.name, second.name, most).choice(
                len(ids), size=most, replace=False)
            ids = [ids[i] for i in sorted(pick)]
    la, lb = len(first.grid), len(second.grid)

    def at(point):
        return pair_perturbation(first, second, first.grid[point[0]], second.grid[point[1]])

    if clean is not None:
        base = {i: clean.loc[i] for i in ids if i in clean.index}
    else:
        base = predict_conditions(model, target, predictor, res, {i: None for i in ids})
    walks, pending, found, results = {}, {}, {}, {}
    for i in ids:
        if i in base:
            walks[i] = _pair_walk(la, lb, derive_rng(seed, "search-pair", first.name,
                                                     second.name, i), probes)
            pending[i] = next(walks[i])
    values: dict[str, dict[tuple[int, int], Any]] = {i: {} for i in walks}
    while pending:
        got = predict_conditions(model, target, predictor, res,
                                 {i: at(p) for i, p in pending.items()})
        nxt = {}
        for i, p in pending.items():
            if i not in got:
                continue  # the prediction failed: the item drops out (error recorded)
            values[i][p] = got[i]
            try:
                nxt[i] = walks[i].send(_moved(target, base[i], got[i], tolerance))
            except StopIteration as stop:
                results[i] = stop.value
        pending = nxt
    for i in ids:
        if i not in results:
            continue
        point = results[i]
        if point is None:
            res.items.append(PairBreakdown(i, None, None, math.inf, clean_value=base[i]))
            continue
        # broken_value: None where the best point was settled by dominance, not predicted
        res.items.append(PairBreakdown(
            i, point, (first.grid[point[0]], second.grid[point[1]]),
            ((point[0] + 1) / la + (point[1] + 1) / lb) / 2, clean_value=base[i],
            broken_value=values[i].get(point)))
    return res


def pair_outcome(res: PairSearchResult, *, n_boot: int, confidence: float,
                 rng: np.random.Generator, n_worst: int = 5
                 ) -> tuple[list[Measurement], dict[str, Any], list[str]]:
    """Measurements, plot data and notes of a two-axis search.

    ``median_pair_severity``: the median over items of the mildest breaking pair's
    normalised severity (censored items count as beyond 1), bootstrap interval over
    items; ``broken_share``: items broken anywhere on the grid (Wilson interval)."""
    first, second = res.axes
    sev = np.array([b.severity for b in res.items])
    n = len(sev)
    extra = {"axes": [first.name, second.name],
             "parameters": [first.parameter, second.parameter],
             "units": [first.unit, second.unit], "tolerance": res.tolerance,
             "ranges": [[first.grid[0], first.grid[-1]], [second.grid[0], second.grid[-1]]],
             "severity": "mean of each axis' share of its range covered, (i+1)/L",
             "step_resolution": "one grid step per axis", "probes": res.probes,
             "model_calls": res.calls, "budget": res.budget}
    if res.sampled_from:
        extra["sampled_from"] = res.sampled_from
    ms: list[Measurement] = []
    notes: list[str] = []
    if n:
        value = float(np.quantile(sev, 0.5, method="inverted_cdf"))
        ci = None
        if n_boot > 0 and n >= 3 and math.isfinite(value):
            reps = np.quantile(sev[rng.integers(0, n, size=(n_boot, n))], 0.5, axis=1,
                               method="inverted_cdf")
            a = (1 - confidence) / 2
            ci = (float(np.quantile(reps, a, method="inverted_cdf")),
                  float(np.quantile(reps, 1 - a, method="inverted_cdf")))
        cell = dict(extra)
        if math.isinf(value):
            cell.update(known_between=[1.0, math.inf], censored="never")
            notes.append("median_pair_severity: beyond the searched grid (held at "
                         f"{first.label(first.grid[-1])} with {second.label(second.grid[-1])})")
        elif ci is not None and not math.isfinite(ci[1]):
            notes.append("median_pair_severity: the interval's upper end lies beyond the "
                         "searched grid (resamples whose median item held at the most severe "
                         "corner); results.json writes it as null")
        ms.append(Measurement("median_pair_severity", value, n=n, ci=ci, extra=cell))
        broken = sum(not b.censored for b in res.items)
        ms.append(Measurement("broken_share", broken / n, n=n,
                              ci=tuple(wilson_interval(broken / n, n, confidence)),
                              extra=dict(extra)))
    else:
        ms.append(Measurement("median_pair_severity", math.nan, n=0, extra=dict(extra)))
    worst = []
    for b in sorted((b for b in res.items if not b.censored),
                    key=lambda b: (b.severity, b.item_id))[:n_worst]:
        entry = {"id": b.item_id,
                 "condition": pair_perturbation(first, second, *b.levels).spec(),
                 "label": f"{first.label(b.levels[0])} + {second.label(b.levels[1])}",
                 "severity": round(b.severity, 4)}
        if b.broken_value is not None:
            entry.update(_moved_values(res.target, b.clean_value, b.broken_value))
        worst.append(entry)
    if res.errors:
        notes.append(f"{len(res.errors)} prediction(s) failed during the search; first: "
                     f"{res.errors[0]}")
    plots = plain(figures.search_pair(
        target=res.target, axes=[first.name, second.name],
        parameters=[first.parameter, second.parameter], units=[first.unit, second.unit],
        calls=res.calls, budget=res.budget,
        items=[{"id": b.item_id, "levels": None if b.censored else list(b.levels),
                "severity": None if b.censored else b.severity,
                "censored": b.censored} for b in res.items],
        worst=worst))
    return ms, plots, notes
