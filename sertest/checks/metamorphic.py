"""Metamorphic expectations: how a prediction should move when the audio changes.

CheckList (Ribeiro et al., ACL 2020) tests NLP models with *invariance* (INV: the output
must not change) and *directional* (DIR: the output must move one way) expectations.
``robustness_metamorphic`` brings both to speech emotion: a suite names perturbations and,
for each, how the predictions of each dimension should relate to the clean ones::

    - test: robustness_metamorphic
      params:
        expectations:
          louder_6db:
            perturbation: {name: gain, gain_db: 6}
            expect: {arousal: not_decrease, by: 0.05}
          mild_noise:
            perturbation: {name: white_noise, snr_db: 30}
            expect: unchanged              # every dimension (and the emotion label)
      thresholds: {holds: "> 0.9"}

Per item, with ``d = y_perturbed - y_clean`` (prediction units) and slack ``by`` (the
expectation's ``by``, else the test's ``tolerance``, 0.05):

===============  ==================
relation         holds if
===============  ==================
``unchanged``    ``|d| < by``
``not_decrease`` ``d > -by``
``not_increase`` ``d < by``
``increase``     ``d >= by``
``decrease``     ``d <= -by``
===============  ==================

For ``emotion`` only ``unchanged`` is defined (the same label).  Each (expectation,
dimension) gives one ``holds`` measurement: the share of items for which it holds, with a
bootstrap interval clustered by speaker and widened to Wilson's score interval (a share of
1.0 on 30 items is not certainty), judged by :mod:`sertest.checks.verdict` against the
threshold (``> 0.9`` by default); ``mean_change`` (the mean of ``d`` with its interval) is
shown beside it without a threshold.  A dimension no expectation names is skipped.

Which expectations are defensible is a modelling choice; see ``test_suites/metamorphic.yaml``
and the README for the defaults and the ones the emotion literature does not support.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import figures, metrics, stats
from ..errors import UsageError
from ..vocabulary import DIMENSIONS, EMOTION
from ..perturb import from_spec
from ..perturb.base import Perturbation
from .base import Check, Context, Measurement, Outcome, Request, register
from .conditions import clusters, is_number, item_ids, plain, wilson_interval

RELATIONS = ("unchanged", "not_decrease", "not_increase", "increase", "decrease")
_EXP_KEYS = {"perturbation", "expect", "by"}


@dataclass(frozen=True)
class Expectation:
    """One perturbation and the relation each target's prediction must keep to its clean one.

    ``relations`` maps a target (a dimension or ``emotion``) to a relation of
    :data:`RELATIONS`; ``"*"`` stands for every target of the model.
    """

    label: str
    perturbation: Perturbation
    relations: tuple[tuple[str, str], ...]
    by: float

    def relation_for(self, target: str) -> str | None:
        rel = dict(self.relations)
        return rel.get(target, rel.get("*"))


def holds(delta: np.ndarray, relation: str, by: float) -> np.ndarray:
    """Per item: whether a change ``delta`` (perturbed - clean) keeps ``relation`` with slack
    ``by`` (see the module docstring).

    >>> holds(np.array([-0.1, 0.0, 0.1]), "not_decrease", 0.05).tolist()
    [False, True, True]
    >>> holds(np.array([-0.1, 0.0, 0.1]), "unchanged", 0.05).tolist()
    [False, True, False]
    """
    d = np.asarray(delta, dtype=float)
    if relation == "unchanged":
        return np.abs(d) < by
    if relation == "not_decrease":
        return d > -by
    if relation == "not_increase":
        return d < by
    if relation == "increase":
        return d >= by
    if relation == "decrease":
        return d <= -by
    raise ValueError(f"unknown relation {relation!r}")


def parse_expectations(value: Any, tolerance: float, where: str) -> list[Expectation]:
    """Expectations from the ``expectations`` parameter: a mapping ``label -> {perturbation,
    expect, by?}`` (or a list of such mappings, labelled by their perturbation).

    Raises:
        UsageError: naming the expectation and the key at fault, with the accepted forms.
    """
    if isinstance(value, dict):
        entries = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        entries = [(None, v) for v in value]
    else:
        raise UsageError(f"{where} expectations must map a label to {{perturbation: ..., "
                         f"expect: ...}}, got {value!r}")
    if not entries:
        raise UsageError(f"{where} expectations: give at least one")
    out: list[Expectation] = []
    for label, entry in entries:
        here = f"{where} expectations[{label if label is not None else len(out)}]"
        if not isinstance(entry, dict) or "perturbation" not in entry or "expect" not in entry:
            raise UsageError(f"{here}: expected a mapping with 'perturbation' and 'expect', "
                             f"e.g. {{perturbation: {{name: gain, gain_db: 6}}, expect: "
                             f"{{arousal: not_decrease}}}}; got {entry!r}")
        unknown = sorted(set(entry) - _EXP_KEYS)
        if unknown:
            raise UsageError(f"{here}: unknown key(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(sorted(_EXP_KEYS))}")
        spec = entry["perturbation"]
        if not isinstance(spec, (str, dict)):
            raise UsageError(f"{here}.perturbation: {spec!r} is not a perturbation name or "
                             "spec mapping")
        try:
            p = from_spec(spec)
        except UsageError as exc:
            raise UsageError(f"{here}.perturbation: {exc}") from None
        by = entry.get("by", None)
        relations, by = _parse_expect(entry["expect"], by, tolerance, f"{here}.expect")
        if label is None:
            label = p.key if isinstance(spec, dict) else str(spec)
        if label in [e.label for e in out]:
            raise UsageError(f"{here}: label {label!r} used twice")
        out.append(Expectation(label, p, relations, by))
    return out


def _parse_expect(value: Any, by: Any, tolerance: float, where: str
                  ) -> tuple[tuple[tuple[str, str], ...], float]:
    """``unchanged`` or ``{target: relation, ..., by: x}`` -> (relations, slack)."""
    hint = (f"write 'unchanged' or a mapping such as {{arousal: not_decrease, by: 0.02}}; "
            f"relations: {', '.join(RELATIONS)}; targets: {', '.join(DIMENSIONS)}, {EMOTION}")
    if isinstance(value, str):
        if value != "unchanged":
            raise UsageError(f"{where}: {value!r} is not an expectation; {hint}")
        relations: tuple[tuple[str, str], ...] = (("*", "unchanged"),)
    elif isinstance(value, dict):
        value = dict(value)
        if "by" in value:
            if by is not None:
                raise UsageError(f"{where}: 'by' given twice (in expect and beside it)")
            by = value.pop("by")
        if not value:
            raise UsageError(f"{where}: names no target; {hint}")
        rel = []
        for target, relation in value.items():
            if target not in DIMENSIONS and target != EMOTION:
                raise UsageError(f"{where}: unknown target {target!r}; {hint}")
            if relation not in RELATIONS:
                raise UsageError(f"{where}: {target}: unknown relation {relation!r}; {hint}")
            if target == EMOTION and relation != "unchanged":
                raise UsageError(f"{where}: emotion classes have no direction; only "
                                 "'emotion: unchanged' is defined")
            rel.append((str(target), str(relation)))
        relations = tuple(rel)
    else:
        raise UsageError(f"{where}: {value!r} is not an expectation; {hint}")
    if by is None:
        by = tolerance
    if not is_number(by) or by < 0:
        raise UsageError(f"{where}: by={by!r} must be a number >= 0 (prediction units)")
    return relations, float(by)


@register
class Metamorphic(Check):
    """Metamorphic (INV/DIR) expectations per perturbation; see the module docstring.

    Params: ``expectations`` (required), ``tolerance`` (default slack ``by``, 0.05),
    ``max_items`` (a seeded subset shared with the robustness tests), ``n_worst`` (items
    that break each expectation furthest, listed for the gallery)."""

    id = "robustness_metamorphic"
    topic = "robustness"
    description = ("metamorphic expectations (unchanged / increase / not_decrease ...): share "
                   "of items whose prediction moves as the suite says")
    kinds = ("regression", "classification")
    requires_truth = False
    metrics = {"holds": "> 0.9", "mean_change": None}
    defaults = {"expectations": None, "tolerance": 0.05, "max_items": None, "n_worst": 3}

    def __init__(self, params=None, thresholds=None, name=None) -> None:
        super().__init__(params, thresholds, name)
        where = f"test {self.name!r}: parameter"
        p = self.params
        if not is_number(p["tolerance"]) or not p["tolerance"] >= 0:
            raise UsageError(f"{where} tolerance={p['tolerance']!r} must be a number >= 0")
        if p["max_items"] is not None and (isinstance(p["max_items"], bool) or not isinstance(
                p["max_items"], int) or p["max_items"] < 3):
            raise UsageError(f"{where} max_items={p['max_items']!r} must be null or an "
                             "integer >= 3")
        if isinstance(p["n_worst"], bool) or not isinstance(p["n_worst"], int) or p["n_worst"] < 0:
            raise UsageError(f"{where} n_worst={p['n_worst']!r} must be an integer >= 0")
        if p["expectations"] is None:
            raise UsageError(f"{where} expectations is required, e.g. {{louder: {{perturbation: "
                             "{name: gain, gain_db: 6}, expect: {arousal: not_decrease}}}}")
        self.expectations = parse_expectations(p["expectations"], float(p["tolerance"]), where)

    def requests(self, ctx: Context) -> list[Request]:
        ids = item_ids(ctx, self.params["max_items"])
        return [Request(None, ids)] + [Request(e.perturbation, ids) for e in self.expectations]

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        ids = item_ids(ctx, self.params["max_items"])
        out = Outcome()
        mine = [(e, e.relation_for(target)) for e in self.expectations]
        mine = [(e, r) for e, r in mine if r is not None]
        if not mine:
            out.skipped = f"no expectation names {target}"
            return out
        emotion = target == EMOTION
        base = ctx.prediction(model, target, None, ids)
        rows = []
        worst = []
        for exp, relation in mine:
            other = ctx.prediction(model, target, exp.perturbation, ids)
            common = base.index.intersection(other.index, sort=False)
            n = len(common)
            extra = {"relation": relation, "by": exp.by, "perturbation": exp.perturbation.spec()}
            if n == 0:
                out.measurements.append(Measurement("holds", math.nan,
                                                    slice={"expectation": exp.label}, n=0,
                                                    extra=extra))
                out.notes.append(f"{exp.label}: no predictions to compare (see item errors)")
                continue
            b, o = base.loc[common], other.loc[common]
            if emotion:
                ok = (b.to_numpy(object) == o.to_numpy(object))
                delta = None
            else:
                delta = o.to_numpy(float) - b.to_numpy(float)
                ok = holds(delta, relation, exp.by)
            value = float(np.mean(ok))
            cl = clusters(ctx, common)
            ci, reps = self._interval(ctx, target, n, ok.astype(np.int64), cl, value)
            out.measurements.append(Measurement(
                "holds", value, slice={"expectation": exp.label}, ci=ci, n=n, replicates=reps,
                extra={**extra, "interval": "bootstrap widened to Wilson's score interval"}))
            row = {"label": exp.label, "relation": relation, "by": exp.by, "holds": value,
                   "ci": list(ci) if ci else None, "n": n}
            if delta is not None:
                mean = float(np.mean(delta))
                mci, mreps = (None, None)
                if ctx.n_boot > 0 and n >= 3:
                    mreps = stats.replicates(_mean_diff, np.zeros(n), delta,
                                             n_boot=ctx.n_boot, rng=ctx.rng(
                                                 "bootstrap", f"{self.name}/{target}", n),
                                             groups=cl)
                    mci = stats.percentile_interval(mreps, ctx.confidence)
                out.measurements.append(Measurement("mean_change", mean,
                                                    slice={"expectation": exp.label},
                                                    ci=mci, n=n, replicates=mreps,
                                                    extra=dict(extra)))
                row["mean_change"] = mean
                worst.extend(_breakers(common, b, o, ok, delta, exp, relation,
                                       int(self.params["n_worst"])))
            rows.append(row)
        out.plots = plain(figures.metamorphic(target=target, expectations=rows, worst=worst))
        return out

    def _interval(self, ctx: Context, target: str, n: int, ok: np.ndarray, cl, value: float):
        """Clustered bootstrap of the share, widened to Wilson's score interval."""
        if ctx.n_boot <= 0 or n < 3:
            return None, None
        rng = ctx.rng("bootstrap", f"{self.name}/{target}", n)
        reps = stats.replicates(metrics.accuracy, ok, np.ones(n, dtype=np.int64),
                                n_boot=ctx.n_boot, rng=rng, groups=cl)
        ci = stats.percentile_interval(reps, ctx.confidence)
        if ci is None:
            return None, reps
        w_lo, w_hi = wilson_interval(value, n, ctx.confidence)
        return (min(ci[0], w_lo), max(ci[1], w_hi)), reps


def _mean_diff(t: np.ndarray, p: np.ndarray) -> float:
    """Mean of ``p - t`` (the mean change when ``t`` is zeros)."""
    return float(np.mean(np.asarray(p, float) - np.asarray(t, float)))


def _breakers(ids: pd.Index, base: pd.Series, other: pd.Series, ok: np.ndarray,
              delta: np.ndarray, exp: Expectation, relation: str, n_worst: int) -> list[dict]:
    """The ``n_worst`` items that break the expectation furthest (listenable counterexamples)."""
    if n_worst <= 0:
        return []
    bad = np.nonzero(~ok)[0]
    if not bad.size:
        return []
    if relation in ("not_decrease", "increase"):
        badness = -delta[bad]
    elif relation in ("not_increase", "decrease"):
        badness = delta[bad]
    else:
        badness = np.abs(delta[bad])
    order = bad[np.lexsort((np.array([str(ids[i]) for i in bad]), -badness))][:n_worst]
    return [{"id": ids[i], "condition": exp.perturbation.spec(), "label": exp.label,
             "delta": round(float(delta[i]), 4), "baseline_value": round(float(base.iloc[i]), 4),
             "condition_value": round(float(other.iloc[i]), 4)} for i in order]
