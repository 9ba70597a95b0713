"""Model health: did the model produce the predictions the audit asked of it?

Every audit adds one ``model_health`` entry per audited model (candidates and baselines;
topic ``correctness``, dimension ``all``), whatever the suite:

* ``item_failure_share``: the share of the predictions the audit asked of the model that it
  failed to produce (it raised, returned NaN/inf or the wrong shape, timed out), judged
  against :data:`ITEM_FAILURE_LIMIT` (a suite may override it with
  ``model_health: {thresholds: {item_failure_share: "< 0.01"}}``); ``n`` is the number of
  predictions asked.
* ``clipped_share`` (``info``): the share of those predictions whose regression outputs lay
  further than ``RANGE_TOLERANCE`` outside the model's declared range and were clipped
  (:func:`sertest.engine.execute.clip_row`).

Predictions that could not be asked because the data failed (an item that does not decode,
a perturbation that fails on it) are not the model's and are not counted; they are listed in
``items.errors``.  The same helpers decide which entries of a model turn ``error`` because
the model failed predictions they need (:func:`needed_pairs`, :func:`item_failures`).
"""

from __future__ import annotations

from typing import Any

from ..vocabulary import CLEAN
from .base import Check, Context, Measurement, Outcome

HEALTH_TEST = "model_health"
#: default threshold of ``item_failure_share``: fail when 5 % or more of the predictions
#: asked of the model could not be produced
ITEM_FAILURE_LIMIT = "< 0.05"
#: model failures quoted in an entry's ``item_failures.first``
FIRST_FAILURES = 3


def _condition_key(condition) -> str:
    """The prediction store's key of a condition (as ``sertest.engine.store.condition_key``)."""
    return CLEAN if condition is None else condition.key


def needed_pairs(check: Check, ctx: Context) -> set[tuple[str, str]]:
    """The (condition key, item id) predictions ``check`` needs of each model, less those the
    data's failures made impossible (undecodable items, failed perturbations)."""
    own = getattr(check, "needed_predictions", None)
    if own is not None:
        pairs = set(own(ctx))
    else:
        pairs = set()
        for req in check.requests(ctx):
            ck = _condition_key(req.condition)
            ids = ctx.dataset.ids if req.ids is None else req.ids
            pairs.update((ck, i) for i in ids)
    data_failed = {(e.condition, e.item_id) for e in ctx.item_errors if e.stage == "perturb"}
    return {(ck, i) for ck, i in pairs
            if i not in ctx.failed_ids and (ck, i) not in data_failed}


def model_failures(ctx: Context, model: str, pairs: set[tuple[str, str]]) -> list:
    """The model's item errors among ``pairs`` (in the engine's sorted order, one per pair)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for e in ctx.item_errors:
        key = (e.condition or CLEAN, e.item_id)
        if e.stage == "model" and e.model == model and key in pairs and key not in seen:
            seen.add(key)
            out.append(e)
    return out


def item_failures(ctx: Context, model: str, pairs: set[tuple[str, str]]) -> dict[str, Any] | None:
    """``{count, needed, first: [{id, condition, error}, ...]}`` or ``None`` if none failed."""
    failed = model_failures(ctx, model, pairs)
    if not failed:
        return None
    return {"count": len(failed), "needed": len(pairs),
            "first": [{"id": e.item_id, "condition": e.condition, "error": e.error}
                      for e in failed[:FIRST_FAILURES]]}


def failures_text(f: dict[str, Any], what: str = "this test needs") -> str:
    """One line: how many predictions failed and the first error."""
    first = f["first"][0]
    cond = f" under {first['condition']}" if first.get("condition") not in (None, "clean") else ""
    return (f"the model failed {f['count']} of the {f['needed']} predictions {what}; first: "
            f"item {first['id']!r}{cond}: {first['error']}")


def clipped_count(ctx: Context, model: str, pairs: set[tuple[str, str]],
                  target: str | None = None) -> int:
    """How many of ``pairs``' predictions of ``model`` were clipped into range (only those
    whose ``target`` output was clipped, if given; ``None`` or ``all``: any output)."""
    clipped = getattr(ctx.store, "clipped", None)
    if not clipped:
        return 0
    n = 0
    for ck, i in pairs:
        names = clipped.get((model, ck, i))
        if names and (target in (None, "all") or target in names):
            n += 1
    return n


def clipped_text(ctx: Context, model: str, count: int, needed: int,
                 target: str | None = None) -> str:
    from ..models.base import RANGE_TOLERANCE

    lo, hi = ctx.models[model].output_range or (0.0, 1.0)
    what = f"{target} predictions" if target not in (None, "all") else "predictions"
    return (f"{count} of {needed} {what} lay more than {RANGE_TOLERANCE:g} outside the "
            f"declared range [{lo:g}, {hi:g}] and were clipped to "
            f"[{lo - RANGE_TOLERANCE:g}, {hi + RANGE_TOLERANCE:g}]")


class ModelHealth(Check):
    """Share of the asked predictions the model failed to produce, and of clipped ones.

    Not a suite test (it is not registered): the audit adds it for every audited model.
    """

    id = HEALTH_TEST
    topic = "correctness"
    description = "share of the predictions asked of the model that it failed to produce"
    metrics = {"item_failure_share": ITEM_FAILURE_LIMIT, "clipped_share": None}
    requires_truth = False
    #: this check measures item failures itself; they do not turn its entry into an error
    measures_item_failures = True

    def supports(self, target: str) -> bool:
        return True

    def requests(self, ctx: Context) -> list:
        return []  # it reads what the audit asked of every model

    def needed_predictions(self, ctx: Context) -> set[tuple[str, str]]:
        return {(ck, i) for ck, ids in ctx.needed.items() for i in ids}

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        pairs = needed_pairs(self, ctx)
        n = len(pairs)
        if not n:
            return Outcome(skipped="the audit asked this model for no prediction "
                                   "(every item failed to decode)")
        failed = len(model_failures(ctx, model, pairs))
        clipped = clipped_count(ctx, model, pairs)
        return Outcome(measurements=[
            Measurement("item_failure_share", failed / n, n=n, extra={"failed": failed}),
            Measurement("clipped_share", clipped / n, n=n, extra={"clipped": clipped})])


def health_check(suite=None) -> ModelHealth:
    """The model-health check with the suite's ``model_health`` thresholds, if any."""
    found = getattr(suite, "health", None)
    return found if isinstance(found, ModelHealth) else ModelHealth()


__all__ = ["FIRST_FAILURES", "HEALTH_TEST", "ITEM_FAILURE_LIMIT", "ModelHealth", "clipped_count",
           "clipped_text", "failures_text", "health_check", "item_failures", "model_failures",
           "needed_pairs"]
