"""``audit(models, data, suite) -> Results``: the engine's entry point (computes, writes nothing).

The library API's :func:`sertest.audit` (:mod:`sertest.api`) calls it and writes the
output folder; the engine never imports a renderer.

An audit is three stages, each a module with one job:

1. plan (:mod:`sertest.engine.plan`): load the data, suite and models; ask every check
   which (condition, items) predictions it needs;
2. execute (:mod:`sertest.engine.execute`): compute each needed prediction once, cached,
   on an executor (:mod:`sertest.engine.executors`), then measure and judge every test
   on the gathered predictions (:mod:`sertest.engine.evaluate`);
3. assemble (:mod:`sertest.engine.assemble`): the results document and its timings.
"""

from __future__ import annotations

import os
import time
from typing import Sequence

from ..data import Dataset
from ..models import Model
from ..results import Results
from ..suite import Suite
from .assemble import assemble
from .cache import PredictionCache
from .evaluate import evaluate, pop_replicates
from .execute import execute
from .executors import check_executor, trim_heap
from .plan import plan_audit
from .segments import parse_segment


def audit(models: Sequence[str | Model], data: str | Dataset | None = None,
          suite: str | dict | Suite = "quick", *, seed: int = 0,
          jobs: int | None = None, cache: str | bool | None = None, baselines: bool = True,
          reference: str | Model | None = None, labels: str | None = None,
          progress: bool | None = None, fail_fast: bool = False,
          allow_outside_root: bool = False, n_boot: int | None = None,
          executor: str = "local", scheduler: str | None = None,
          timeout: float | None = None, profile: bool = False,
          isolate: bool | None = None, label_range: str | dict | None = None,
          label_map: str | dict | None = None, table: str | None = None,
          segment: str | float | None = None) -> Results:
    """Audit ``models`` on ``data`` with ``suite``.

    Args:
        models: model specs (see :mod:`sertest.models`) or loaded models.
        data: manifest, folder, audformat database or Dataset; ``None`` = bundled corpus.
        suite: path, bundled suite name, mapping or Suite.
        seed: every random draw derives from it.
        jobs: worker threads (each decodes, perturbs and predicts whole items).
        cache: cache folder, ``True``/``None`` for the default, ``False`` for none.
        baselines: add the random baselines beside the audited models.
        reference: a model whose clean predictions serve as truth (label-free mode).
        labels: output labels for ONNX models that do not declare them.
        executor: ``local`` (threads) or ``dask`` (any name registered in
            :mod:`sertest.engine.executors`); ``scheduler``: Dask scheduler address
            (``None`` with ``dask``: an in-process LocalCluster of ``jobs`` workers).
        timeout: per-batch model timeout in seconds; a model that times out is skipped
            for the rest of the audit and its items are reported.
        profile: measure each audited model's peak RAM in a subprocess (timings.json).
        isolate: run each model loaded from a spec in supervised worker processes, so a
            model that crashes the interpreter costs only its own predictions
            (:mod:`sertest.engine.isolate`); ``None``: ``$SERTEST_ISOLATE`` (``1`` = on),
            else off.
        label_range: the data's label scale, e.g. ``"1:7"`` or ``"arousal=1:7,valence=1:5"``,
            mapped to [0, 1]; ``label_map``: data class -> model class, e.g.
            ``"angry=anger"`` or a YAML/JSON file; ``table``: the audformat table to audit
            (see :mod:`sertest.data.labels`, :mod:`sertest.data.audformat`).
        segment: audit items longer than a window in windows whose predictions are
            averaged by duration, e.g. ``"30"`` or ``"30:15"`` (window[:hop] in seconds; see
            :mod:`sertest.engine.segments`); ``None`` (default): every item whole.
    """
    check_executor(executor)
    segment = parse_segment(segment)  # a bad value is a usage error before anything loads
    t_start = time.perf_counter()
    plan = plan_audit(models, data, suite, seed=seed, baselines=baselines, reference=reference,
                      labels=labels, allow_outside_root=allow_outside_root, n_boot=n_boot,
                      label_range=label_range, label_map=label_map, table=table)

    cache_obj = PredictionCache.open(cache)
    # what does not reach a cache file is kept in memory only for checks that predict
    # while measuring (the audit's own look-up happens once, before anything is computed)
    cache_obj.keep_in_memory = any(getattr(check, "predicts_on_demand", True)
                                   for check, _ in plan.suite.checks)
    try:
        store, item_errors, stats = execute(
            plan.dataset, plan.models, plan.conditions, plan.needed, seed=seed,
            cache=cache_obj, jobs=jobs, progress=progress, fail_fast=fail_fast,
            clean_only=plan.features, timeout=timeout, executor=executor,
            scheduler=scheduler, isolate=_isolate(isolate), segment=segment)

        # measure and judge, on one context per check (the shared store and item errors);
        # a check that picks its conditions while measuring predicts through the same cache
        failed_ids = {e.item_id for e in item_errors if e.stage == "decode"}
        needed = {ck: set(ids) for ck, ids in plan.needed.items()}
        predictor = on_demand(plan.dataset, seed=seed, cache=cache_obj, jobs=jobs,
                              segment=stats.segment, timeout=timeout)

        def ctx_for(check):
            return plan.context(plan.subsets[check.name], store, failed_ids=failed_ids,
                                item_errors=item_errors, needed=needed, predictor=predictor)

        health_ctx = plan.context(plan.dataset, store, failed_ids=failed_ids,
                                  item_errors=item_errors, needed=needed)
        audited = {n: plan.models[n] for n in plan.audited}
        tests = evaluate(plan.suite, ctx_for, audited, plan.errors, health_ctx=health_ctx,
                         roles=plan.roles)
    finally:
        cache_obj.close()
    trim_heap()  # the checks' freed blocks, before the results and reports are built
    replicates = pop_replicates(tests)

    results = assemble(plan, tests, replicates, store, item_errors, stats, t_start, jobs,
                       profile)
    for m in plan.models.values():
        m.close()
    return results


def _isolate(isolate: bool | None) -> bool:
    """``isolate``, or for ``None`` the environment's ``SERTEST_ISOLATE`` (``1`` = on)."""
    if isolate is not None:
        return bool(isolate)
    return os.environ.get("SERTEST_ISOLATE", "").strip().lower() in ("1", "true", "yes", "on")


def on_demand(dataset, *, seed: int = 0, cache=None, jobs: int | None = 1, segment=None,
              timeout: float | None = None):
    """A predictor for checks that choose their conditions while measuring (see
    :attr:`sertest.checks.base.Context.predictor`): ``predict(models, conditions, needed)``
    runs :func:`~sertest.engine.execute.execute` on ``dataset`` with this seed, cache,
    windows and per-batch ``timeout`` and returns ``(store, item_errors)``; every prediction
    is cached like the audit's own.  Its models run in the audit's process, also under
    ``isolate`` (isolated workers live for one execution; restarting them for every step
    of a search would cost a model load per step)."""
    def predict(models, conditions, needed):
        store, errors, _ = execute(dataset, models, conditions, needed, seed=seed, cache=cache,
                                   jobs=jobs, progress=False, segment=segment, timeout=timeout)
        return store, errors
    return predict
