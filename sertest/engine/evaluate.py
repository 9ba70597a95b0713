"""Measure and judge: every (test, model, target) of a suite on gathered predictions.

``evaluate`` is the stage after execution: it reads only the :class:`~sertest.checks.base.Context`
(dataset, labels, prediction store) and returns the test entries of the results document.
It never runs a model, so the same predictions can be evaluated many times (e.g. on
resamples of the data by ``sertest validate``).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Callable

from ..checks.base import Context, Measurement
from ..checks.health import (clipped_count, clipped_text, failures_text, health_check,
                             item_failures, needed_pairs)
from ..checks.verdict import ERROR, INFO, SKIPPED, judge_audit, judge_entry
from ..stats import weight_memo

log = logging.getLogger("sertest")


def evaluate(suite, ctx_for: Callable[[Any], Context], models: dict[str, Any],
             plan_errors: dict[str, str] | None = None, health_ctx: Context | None = None,
             roles: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Test entries for every check of ``suite`` x audited model x supported target.

    Args:
        suite: the :class:`~sertest.suite.Suite`.
        ctx_for: the context of a check (its item subset, the shared store).
        models: the audited models (candidates and baselines) by name.
        plan_errors: check name -> error raised while planning (its entries are errors).
        health_ctx: the audit's whole-dataset context; given, the entries start with one
            ``model_health`` entry per model (:mod:`sertest.checks.health`).
        roles: model name -> role (``baseline`` entries decide which tests are
            uninformative, see :func:`sertest.checks.verdict.judge_audit`).

    Entries keep their bootstrap replicates under ``_replicates`` ({cell key: array});
    :func:`pop_replicates` takes them out before the document is written.
    """
    with one_blas_thread():
        try:
            return _evaluate(suite, ctx_for, models, plan_errors, health_ctx, roles)
        finally:  # the shared resample weights serve one evaluation: free them for what follows
            weight_memo.MEMO.clear()


def one_blas_thread():
    """A context in which BLAS (numpy's matrix products) runs on one thread.

    The checks' products are small (resample weights times indicators, a few hundred items
    by ten bins): a second BLAS thread gains nothing and spins waiting for work - 8.9 to
    12.3 CPU-seconds of a 7-model ``default`` audit's checks on a 2-core machine, taken
    from whatever else runs there.  Measured with per-thread CPU times in
    benchmarks/README.md ("Many models in one audit").
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency; only the spinning thread returns
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _evaluate(suite, ctx_for, models, plan_errors, health_ctx, roles) -> list[dict[str, Any]]:
    plan_errors = plan_errors or {}
    tests: list[dict[str, Any]] = []
    if health_ctx is not None:
        health = health_check(suite)
        pairs = check_pairs(health, health_ctx)
        tests += [run_check(health, health_ctx, name, "all", None, pairs) for name in models]
    # one context and one set of needed predictions per check, shared by all of its cells
    planned: dict[str, tuple[Context, Any]] = {}
    for check, name, target in suite.cells(models):  # the cells the pytest plugin collects
        plan_error = plan_errors.get(check.name)
        if check.name not in planned:
            ctx = ctx_for(check)
            planned[check.name] = (ctx, None if plan_error else check_pairs(check, ctx))
        ctx, pairs = planned[check.name]
        tests.append(run_check(check, ctx, name, target, plan_error, pairs))
    judge_audit(tests, roles)
    return tests


def pop_replicates(tests: list[dict[str, Any]]) -> dict[str, Any]:
    """Take the bootstrap replicates out of the entries:
    ``{"model|test|dimension|metric|group": array}``."""
    out = {}
    for t in tests:
        for cell, values in (t.pop("_replicates", None) or {}).items():
            out[f"{t['model']}|{t['test']}|{t['dimension']}|{cell}"] = values
    return out


def check_pairs(check, ctx: Context) -> set[tuple[str, str]] | None:
    """:func:`~sertest.checks.health.needed_pairs` of ``check`` in ``ctx`` (the same for
    every model and target), or ``None`` when the check cannot say (it failed to plan)."""
    try:
        return needed_pairs(check, ctx)
    except Exception:  # noqa: BLE001 - a check that cannot plan was already an error
        log.debug("requests of %s failed", check.name, exc_info=True)
        return None


def run_check(check, ctx: Context, model: str, target: str, plan_error: str | None,
              pairs: Any = ...
              ) -> dict[str, Any]:
    """One entry, judged; then :func:`_model_outcome` turns it into ``error`` if the model
    failed predictions the check needs, and flags clipped predictions.  When the model
    failed every prediction the check needs, the check is not run (nothing to measure).
    ``pairs``: the check's :func:`check_pairs` in ``ctx`` when the caller knows them (one
    set for all cells of a check); ``...`` (default): found here."""
    if plan_error:
        return _run_check(check, ctx, model, target, plan_error)
    if pairs is ...:
        pairs = check_pairs(check, ctx)
    if pairs is None:
        return _run_check(check, ctx, model, target, plan_error)
    failures = item_failures(ctx, model, pairs)
    if (failures and failures["count"] == failures["needed"]
            and not getattr(check, "measures_item_failures", False)):
        entry = _base_entry(check, model, target)
        entry.update(verdict=ERROR, measurements=[])
    else:
        entry = _run_check(check, ctx, model, target, plan_error)
    _model_outcome(entry, check, ctx, model, pairs, failures)
    return entry


def _model_outcome(entry: dict[str, Any], check, ctx: Context, model: str,
                   pairs: set[tuple[str, str]], failures: dict[str, Any] | None) -> None:
    """Item errors caused by the model are never a skip: an entry whose needed
    (condition, item) predictions the model failed to produce is ``error``, with
    ``item_failures`` and a ``reason`` naming the count and the first error (the
    measurements computed on the remaining items are kept).  Predictions clipped into the
    declared range add a ``clipped`` flag."""
    if failures:
        entry["item_failures"] = failures
        text = failures_text(failures, "this test needs" if not getattr(
            check, "measures_item_failures", False) else "the audit asked of it")
        _flag(entry, "item_failures", text)
        if not getattr(check, "measures_item_failures", False):
            if entry.get("verdict") == SKIPPED and entry.get("reason"):
                entry.setdefault("notes", []).append(
                    f"on the items it could judge, the test said: {entry['reason']}")
            entry["verdict"] = ERROR
            entry["reason"] = text
    elif entry.get("verdict") == SKIPPED and entry.get("reason"):
        # the real cause where it is not the model's: undecodable items, a failing reference
        undecoded = len(ctx.failed_ids.intersection(ctx.dataset.ids))
        if undecoded:
            entry["reason"] += (f" ({undecoded} item(s) of the data could not be decoded; "
                                "see items.errors)")
        ref = ctx.reference
        ref_failures = item_failures(ctx, ref, pairs) if ref and ref != model else None
        if ref_failures:
            entry["reason"] += (f" (the reference model {ref!r} "
                                + failures_text(ref_failures)[len("the model "):] + ")")
    target = entry.get("dimension")
    clipped = clipped_count(ctx, model, pairs, target)
    if clipped:
        _flag(entry, "clipped", clipped_text(ctx, model, clipped, len(pairs), target))


def _flag(entry: dict[str, Any], kind: str, text: str) -> None:
    entry.setdefault("flags", []).append({"kind": kind, "text": text})


def _base_entry(check, model: str, target: str) -> dict[str, Any]:
    return {"test": check.name, "check": check.id, "topic": check.topic, "model": model,
            "dimension": target, "description": check.description}


def _run_check(check, ctx: Context, model: str, target: str, plan_error: str | None
               ) -> dict[str, Any]:
    entry = _base_entry(check, model, target)
    if plan_error:
        entry.update(verdict=ERROR, error=plan_error, measurements=[])
        return entry
    if (check.requires_truth and not ctx.has_truth(target) and check.topic == "correctness"
            and ctx.reference is None):
        entry.update(verdict=SKIPPED, reason=f"the data has no {target!r} labels; "
                     "give --reference MODEL for label-free correctness", measurements=[])
        return entry
    try:
        outcome = check.measure(ctx, model, target)
    except Exception as exc:  # noqa: BLE001 - a crashing check is an error result
        log.debug("check %s crashed", check.name, exc_info=True)
        entry.update(verdict=ERROR, error=f"{type(exc).__name__}: {exc}",
                     traceback=traceback.format_exc(limit=4), measurements=[])
        return entry
    if outcome.skipped:
        entry.update(verdict=SKIPPED, reason=outcome.skipped, measurements=[])
        return entry
    fields = judge_entry(outcome.measurements, check.threshold_for, ctx.confidence)
    if not any(m.verdict not in (SKIPPED, INFO) for m in outcome.measurements):
        reasons = [m.extra.get("reason") for m in outcome.measurements if m.extra.get("reason")]
        if reasons:
            entry["reason"] = f"no measurement could be judged: {reasons[0]}"
    entry["verdict"] = fields.pop("verdict")
    flags = list(outcome.flags) + fields.pop("flags")
    entry.update(fields)
    if flags:
        entry.setdefault("flags", []).extend(flags)
    entry["measurements"] = [m.to_dict() for m in outcome.measurements]
    reps = {_cell_key(m): m.replicates for m in outcome.measurements
            if m.replicates is not None}
    if reps:
        entry["_replicates"] = reps  # popped by the audit into replicates.npz
    if outcome.plots:
        entry["plots"] = outcome.plots
    if outcome.notes:
        entry["notes"] = outcome.notes
    return entry


def _cell_key(m: Measurement) -> str:
    """A measurement's key within its entry (metric and group)."""
    return f"{m.metric}|{'' if m.group is None else m.group}"
