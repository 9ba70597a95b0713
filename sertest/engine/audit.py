"""``audit(models, data, suite) -> Results``: the library entry point behind every front end."""

from __future__ import annotations

import logging
import os
import platform
import resource
import time
from typing import Any, Sequence

from .. import __version__
from ..checks.base import Context
from ..data import Dataset, load_dataset
from ..errors import UsageError
from ..models import Model, load_model
from ..results import SCHEMA, Results, summarise
from ..suite import Suite, load_suite
from .cache import PredictionCache
from .evaluate import evaluate, pop_replicates
from .execute import execute
from .store import CLEAN, condition_key

log = logging.getLogger("sertest")


def audit(models: Sequence[str | Model], data: str | Dataset | None = None,
          suite: str | dict | Suite = "quick", *, out: str | None = None, seed: int = 0,
          jobs: int | None = None, cache: str | bool | None = None, baselines: bool = True,
          reference: str | Model | None = None, labels: str | None = None,
          progress: bool | None = None, fail_fast: bool = False,
          allow_outside_root: bool = False, n_boot: int | None = None,
          renderers: Sequence[str] = ("html", "junit", "markdown"),
          executor: str = "local", scheduler: str | None = None,
          timeout: float | None = None, profile: bool = False,
          isolate: bool | None = None, label_range: str | dict | None = None,
          label_map: str | dict | None = None, table: str | None = None) -> Results:
    """Audit ``models`` on ``data`` with ``suite``.

    Args:
        models: model specs (see :mod:`sertest.models`) or loaded models.
        data: manifest, folder, audformat database or Dataset; ``None`` = bundled corpus.
        suite: path, bundled suite name, mapping or Suite.
        out: folder for results.json (and the reports); ``None`` writes nothing.
        seed: every random draw derives from it.
        jobs: worker threads (each decodes, perturbs and predicts whole items).
        cache: cache folder, ``True``/``None`` for the default, ``False`` for none.
        baselines: add the random baselines beside the audited models.
        reference: a model whose clean predictions serve as truth (label-free mode).
        labels: output labels for ONNX models that do not declare them.
        executor: ``local`` (threads) or ``dask``; ``scheduler``: Dask scheduler address
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
    """
    if executor not in ("local", "dask"):
        raise UsageError(f"--executor {executor!r}: use local or dask")
    t_start = time.perf_counter()
    if not models:
        raise UsageError("no model given: pass at least one --model")
    dataset = data if isinstance(data, Dataset) else load_dataset(
        data, allow_outside_root=allow_outside_root, table=table, label_range=label_range,
        label_map=label_map)
    if isinstance(data, Dataset) and (label_range or label_map):
        dataset = data.relabelled(label_range=label_range, label_map=label_map)
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    loaded: dict[str, Model] = {}
    roles: dict[str, str] = {}
    for spec in models:
        m = load_model(spec, labels=labels)
        _add(loaded, roles, m, "candidate")
    ref_name = None
    if reference is not None:
        ref = load_model(reference, labels=labels)
        if ref.name in loaded:
            ref_name = ref.name
        else:
            _add(loaded, roles, ref, "reference")
            ref_name = ref.name
    # said now, not after the predictions: a data/model class-name mismatch
    mismatches = {n: class_mismatch(dataset, m) for n, m in loaded.items()}
    plan_errors: dict[str, str] = {}
    if baselines:
        wants_dims = any(m.dimensions for m in loaded.values())
        wants_cls = any(m.classes for m in loaded.values())
        rates = sorted({m.sampling_rate for m in loaded.values()})
        if wants_dims and not any(n.startswith("random-gaussian") for n in loaded):
            _add(loaded, roles, load_model("random:gaussian", sampling_rate=rates[0]), "baseline")
        if wants_cls and not any(n.startswith("random-categorical") for n in loaded):
            _add(loaded, roles, load_model("random:categorical", sampling_rate=rates[0]),
                 "baseline")
        if wants_dims and not any(n.startswith("constant") for n in loaded):
            _add(loaded, roles, load_model("random:constant", sampling_rate=rates[0]),
                 "baseline")
    from ..suite import select_items

    subsets = {check.name: (dataset if not check.where else
                            dataset.subset(select_items(dataset, check.where)))
               for check, _ in suite.checks}
    for check, _ in suite.checks:
        try:
            for feat in check.features(Context(subsets[check.name], None, loaded, seed=seed)):
                if feat.name not in loaded:
                    _add(loaded, roles, feat, "feature")
        except Exception as exc:  # noqa: BLE001
            plan_errors[check.name] = f"{type(exc).__name__}: {exc}"
    from .signal_stats import SignalStats, warnings_from

    stats_model = SignalStats(min(m.sampling_rate for m in loaded.values()))
    _add(loaded, roles, stats_model, "feature")
    n_boot = suite.n_boot if n_boot is None else n_boot
    ctx = Context(dataset, None, loaded, seed=seed, reference=ref_name, n_boot=n_boot,
                  confidence=suite.confidence)

    # plan: which (condition, items) each check needs
    conditions: dict[str, Any] = {CLEAN: None}
    needed: dict[str, set[str]] = {CLEAN: set()}
    def ctx_for(check) -> Context:
        c = Context(subsets[check.name], ctx.store, loaded, seed=seed, reference=ref_name,
                    n_boot=n_boot, confidence=suite.confidence, failed_ids=ctx.failed_ids,
                    item_errors=ctx.item_errors, needed=ctx.needed)
        return c

    plan_requests(suite, subsets, ctx_for, conditions, needed, plan_errors)
    if ref_name is not None:
        needed[CLEAN].update(dataset.ids)

    cache_obj = PredictionCache.open(cache)
    try:
        store, item_errors, stats = execute(
            dataset, loaded, conditions, needed, seed=seed, cache=cache_obj, jobs=jobs,
            progress=progress, fail_fast=fail_fast,
            clean_only={n for n, r in roles.items() if r == "feature"}, timeout=timeout,
            executor=executor, scheduler=scheduler, isolate=_isolate(isolate))
    finally:
        cache_obj.close()
    ctx.store = store
    ctx.failed_ids = {e.item_id for e in item_errors if e.stage == "decode"}
    ctx.item_errors = item_errors  # the model's failures make the entries needing them errors
    ctx.needed = {ck: set(ids) for ck, ids in needed.items()}

    # measure and judge
    audited = [n for n in loaded if roles[n] in ("candidate", "baseline")]
    tests = evaluate(suite, ctx_for, {n: loaded[n] for n in audited}, plan_errors,
                     health_ctx=ctx, roles=roles)
    replicates = pop_replicates(tests)

    doc = {
        "schema": SCHEMA,
        "sertest_version": __version__,
        "seed": seed,
        "suite": suite.to_dict(),
        "dataset": dataset.describe(),
        "reference": ref_name,
        "models": [{"name": n, "role": roles[n], "fingerprint": loaded[n].fingerprint(),
                    "info": loaded[n].info().to_dict(),
                    **({"crashed": stats.crashes[n]} if n in stats.crashes else {}),
                    **mismatches.get(n, {})}
                   for n in loaded if roles[n] != "feature"],
        "tests": tests,
        "items": {"total": len(dataset), "errors": [e.to_dict() for e in item_errors],
                  "warnings": warnings_from(store.frame(stats_model.name, None))},
    }
    doc["summary"] = summarise(doc)
    timings = {
        "wall_seconds": round(time.perf_counter() - t_start, 3),
        "execute_seconds": round(stats.wall_seconds, 3),
        "predictions": stats.predictions, "cached": stats.cached, "computed": stats.computed,
        "decoded_files": stats.decoded_files,
        "decode_seconds": round(stats.decode_seconds, 3),
        "perturb_seconds": round(stats.perturb_seconds, 3),
        "models": {n: {"model_seconds": round(stats.model_seconds.get(n, 0.0), 3),
                       "audio_seconds": round(stats.audio_seconds.get(n, 0.0), 3),
                       "real_time_factor": (round(stats.model_seconds[n] / stats.audio_seconds[n], 6)
                                            if stats.audio_seconds.get(n) else None)}
                   for n in loaded},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "jobs": jobs, "python": platform.python_version(), "cpu_count": os.cpu_count(),
    }
    if profile:
        from ..efficiency import profile as profile_model

        timings["efficiency"] = {}
        for n in audited:
            m = loaded[n]
            info = m.info()
            entry = {"parameters": info.parameters, "file_size": info.file_size}
            if getattr(m, "spec", None):
                entry.update(profile_model(m.spec, m.spec_options))
            timings["efficiency"][n] = entry
    results = Results(doc, timings=timings, replicates=replicates)
    if out:
        results.write(out, renderers=renderers)
    for m in loaded.values():
        m.close()
    return results


def plan_requests(suite: Suite, subsets: dict[str, Dataset], ctx_for, conditions: dict[str, Any],
                  needed: dict[str, set[str]], plan_errors: dict[str, str]) -> None:
    """Add the (condition, items) every check of ``suite`` requests to ``conditions`` (key ->
    perturbation) and ``needed`` (key -> item ids); a check that cannot plan gets its error
    in ``plan_errors`` (its entries become errors).  ``subsets``: check name -> its items;
    ``ctx_for``: check -> its planning context.  Also used by :mod:`sertest.validate`."""
    for check, _ in suite.checks:
        try:
            for req in check.requests(ctx_for(check)):
                ck = condition_key(req.condition)
                conditions[ck] = req.condition
                ids = subsets[check.name].ids if req.ids is None else list(req.ids)
                needed.setdefault(ck, set()).update(ids)
        except Exception as exc:  # noqa: BLE001 - a check that cannot plan is an error result
            plan_errors[check.name] = f"{type(exc).__name__}: {exc}"


def class_mismatch(dataset: Dataset, model: Model) -> dict:
    """``{"class_mismatch": {model_classes, data_classes, shared}}`` when some of the data's
    emotion classes are not among ``model``'s classes (their items cannot be scored; none
    shared: its emotion correctness cannot be scored at all), with a warning naming both
    sides and the ``--label-map`` that would fix a naming difference; ``{}`` otherwise."""
    if not model.classes or not dataset.has("emotion"):
        return {}
    seen = sorted({str(v) for v in dataset.column("emotion").dropna()})
    shared = [c for c in seen if c in model.classes]
    if len(shared) == len(seen):
        return {}
    missing = [c for c in seen if c not in model.classes]
    spare = [c for c in model.classes if c not in seen]
    what = (f"only the items of {shared} can be scored" if shared else
            "its emotion correctness cannot be scored")
    log.warning("model %r: the data's emotion classes %s are not among its classes %s, so %s; "
                "if they name the same emotions, map them with --label-map DATA=MODEL, "
                "e.g. --label-map %s=%s", model.name, missing, list(model.classes), what,
                missing[0], (spare or list(model.classes))[0])
    return {"class_mismatch": {"model_classes": list(model.classes), "data_classes": seen,
                               "shared": shared}}


def _isolate(isolate: bool | None) -> bool:
    """``isolate``, or for ``None`` the environment's ``SERTEST_ISOLATE`` (``1`` = on)."""
    if isolate is not None:
        return bool(isolate)
    return os.environ.get("SERTEST_ISOLATE", "").strip().lower() in ("1", "true", "yes", "on")


def _add(loaded: dict, roles: dict, model: Model, role: str) -> None:
    if model.name in loaded:
        raise UsageError(f"two models are named {model.name!r}; name them with NAME=SPEC")
    loaded[model.name] = model
    roles[model.name] = role
