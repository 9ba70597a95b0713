"""``validate(model, data, suite) -> Validation``: how often does a suite catch planted defects?

1. **Predict once.**  The real model runs through the normal engine
   (:func:`sertest.engine.execute.execute`, with the prediction cache) on every (condition,
   item) the suite needs on the whole data and on every resample (robustness tests pick a
   seeded subset of the items they are given, so each resample may need other items).
2. **Plant.**  Pseudo-models share the real model's outputs but are never called: their
   predictions are written into a copy of the prediction store - the clean model (the real
   predictions), the oracle (:mod:`sertest.validate.oracle`) and one model per defect and
   magnitude (:mod:`sertest.validate.defects`), including each defect at the size the
   targeted test's threshold names (read from the clean model's entry on the whole data, so
   calibrated thresholds count as judged).
3. **Judge on resamples.**  ``resamples`` times, a share ``share`` of the speakers (items
   without a speaker column) is drawn without replacement (``derive_rng(seed, "validate",
   "resample", r)``; items keep their ids) and the suite is evaluated
   (:func:`sertest.engine.evaluate.evaluate`) for every pseudo-model at once, with the checks'
   own seed derived per resample, as if it were an independent audit.
4. **Count.**  Per (test, dimension, model): the share of resamples whose entry is ``fail``
   or ``error`` (the detection rate of a defect; the false-alarm rate of the oracle and the
   fail rate of the clean model), and the shares of ``inconclusive``, ``gated``, ``pass``
   and ``skipped``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..checks.base import Context
from ..data import Dataset, load_dataset
from ..engine.store import CLEAN, PredictionStore
from ..errors import UsageError
from ..models import Model, load_model
from ..models.base import ModelInfo
from ..seeding import derive_rng, derive_seed
from ..suite import Suite, load_suite, select_items
from .defects import DEFECTS, Defect, NotApplicable, Setup, threshold_metric
from .oracle import DEFAULT_CONFUSION, DEFAULT_SIGMA, oracle_frame

SCHEMA = "sertest/validity@1"
CARRIERS = ("model", "oracle")
ORACLE = "oracle"
#: one letter per verdict in the per-resample verdict strings of the JSON document
CODES = {"pass": "p", "fail": "f", "inconclusive": "i", "error": "e", "skipped": "s",
         "gated": "g"}
DETECTED = ("fail", "error")
NOT_GREEN = ("fail", "error", "inconclusive", "gated")
DEFAULT_RESAMPLES = 20
QUICK_RESAMPLES = 5


class Planted(Model):
    """A pseudo-model: the base model's outputs, with predictions planted in the store.

    It is never called (:meth:`predict_batch` raises): ``sertest validate`` writes its rows.
    """

    def __init__(self, name: str, base: Model, kind: str, defect: str | None = None,
                 label: str | None = None, magnitude: dict[str, float] | None = None,
                 test: str | None = None) -> None:
        self.name = name
        self.sampling_rate = base.sampling_rate
        self.dimensions = tuple(base.dimensions)
        self.classes = tuple(base.classes)
        self.output_range = base.output_range
        self.kind = kind  # clean | oracle | defect
        self.defect = defect
        self.label = label
        self.magnitude = dict(magnitude or {})
        self.test = test  # the test whose threshold named the magnitude, if any
        self._base = base.name

    def predict_batch(self, signals):  # pragma: no cover - never called
        raise RuntimeError(f"{self.name!r} is a planted pseudo-model; it has no predict")

    def fingerprint(self) -> str:
        mags = ",".join(f"{k}={v:.6g}" for k, v in sorted(self.magnitude.items()))
        return f"planted:{self.kind}:{self.defect}:{mags}:{self._base}"

    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, format="planted", sampling_rate=self.sampling_rate,
                         dimensions=self.dimensions, classes=self.classes,
                         extra={"kind": self.kind, "defect": self.defect,
                                "magnitude": self.magnitude})

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "defect": self.defect,
                "label": self.label, "magnitude": {k: round(v, 6)
                                                   for k, v in self.magnitude.items()},
                "test": self.test}


@dataclass
class Validation:
    """The outcome: settings, the pseudo-models and one row per (test, dimension, model)."""

    doc: dict[str, Any]
    timings: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.doc["rows"]

    def row(self, test: str, dimension: str, model: str) -> dict[str, Any]:
        for r in self.rows:
            if r["test"] == test and r["dimension"] == dimension and r["model"] == model:
                return r
        raise KeyError((test, dimension, model))

    def write(self, out: str) -> list[str]:
        from .report import write_report

        return write_report(self, out)


# =============================================================================================
def validate(model: str | Model, data: str | Dataset | None = None,
             suite: str | dict | Suite = "default", *, resamples: int | None = None,
             seed: int = 0, share: float = 0.8, defects: Sequence[str] | None = None,
             quick: bool = False, magnitudes: Sequence[float] | dict | None = None,
             sigma: float = DEFAULT_SIGMA,
             confusion: float = DEFAULT_CONFUSION, cache: str | bool | None = None,
             jobs: int | None = None, labels: str | None = None, n_boot: int | None = None,
             progress: bool | None = None, allow_outside_root: bool = False,
             workers: int | None = None, carrier: str = "model",
             out: str | None = None, segment: str | float | None = None) -> Validation:
    """Plant defects in ``model``'s predictions and count how often ``suite`` catches them.

    Args:
        model: the model spec (see :mod:`sertest.models`) or a loaded model.
        data: manifest, folder, audformat database or Dataset; ``None`` = bundled corpus.
        suite: path, bundled suite name, mapping or Suite.
        resamples: speaker resamples (default 20; 5 with ``quick``).
        seed: every random draw derives from it.
        share: share of the speakers (items, without a speaker column) per resample.
        defects: defect ids (default: all, see :data:`sertest.validate.defects.DEFECTS`).
        quick: only the largest magnitude of each grid and the at-threshold ones.
        magnitudes: magnitudes instead of the defects' grids: one list for every defect or
            ``{defect id: [...]}`` (the at-threshold sizes are added either way).
        sigma, confusion: the oracle's noise SD and share of confused classes.
        cache, jobs, labels, n_boot, progress, allow_outside_root: as for
            :func:`sertest.audit`.
        workers: processes judging resamples at once (default 1; forked, so POSIX only -
            elsewhere the resamples are judged one after the other).  The table does not
            depend on it.
        carrier: whose predictions carry the defects: ``model`` (the real model's, as
            agreed for issue 12) or ``oracle`` (the oracle's, which pass every sound test, so
            detection measures the suite alone, free of the model's own failures).
        out: write ``validity.md`` and ``validity.json`` into this folder.
        segment: predict items longer than a window in windows, as :func:`sertest.audit`
            does (``"WINDOW[:HOP]"`` in seconds, see :mod:`sertest.engine.segments`);
            ``None`` (default): every item whole.  The defects are planted in the averaged
            predictions.
    """
    t_start = time.perf_counter()
    from ..engine.segments import parse_segment

    segment = parse_segment(segment)  # a bad value is a usage error before anything loads
    resamples = _check_options(resamples, quick, share, sigma, confusion)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise UsageError(f"--workers {workers!r}: give a whole number >= 1")
    if carrier not in CARRIERS:
        raise UsageError(f"--carrier {carrier!r}: use {' or '.join(CARRIERS)}")
    chosen = _defects(defects)
    grids = _grids(chosen, magnitudes, quick)
    dataset = data if isinstance(data, Dataset) else load_dataset(
        data, allow_outside_root=allow_outside_root)
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    base = model if isinstance(model, Model) else load_model(model, labels=labels)
    if not base.targets:
        raise UsageError(f"model {base.name!r} declares no dimension or class to judge")
    if base.name == ORACLE or "@" in base.name:
        raise UsageError(f"model name {base.name!r} is reserved by sertest validate; name it "
                         "with NAME=SPEC")
    n_boot = suite.n_boot if n_boot is None else n_boot
    say = _Progress(progress)

    # -- resamples; plan on the whole data and on every resample ---------------------------------
    samples = resample_ids(dataset, resamples, share, seed)
    seeds = [derive_seed(seed, "validate", "audit", r) for r in range(resamples)]
    plan = _plan(suite, dataset, base, chosen, samples, seeds, seed, n_boot)
    features, needed, conditions = plan.features, plan.needed, plan.conditions

    # -- predict once ------------------------------------------------------------------------------
    from ..engine.cache import PredictionCache
    from ..engine.execute import execute

    say(f"predicting {sum(len(v) for v in needed.values())} (condition, item) pairs with "
        f"{base.name} under {len(conditions)} conditions")
    cache_obj = PredictionCache.open(cache)
    try:
        store, item_errors, stats = execute(dataset, plan.loaded, conditions, needed,
                                            seed=seed, cache=cache_obj, jobs=jobs,
                                            progress=progress, clean_only=set(features),
                                            segment=segment)
    finally:
        cache_obj.close()
    t_predicted = time.perf_counter()
    failed_ids = {e.item_id for e in item_errors if e.stage == "decode"}
    data_failed = {(e.condition or CLEAN, e.item_id) for e in item_errors
                   if e.stage == "perturb"}

    def context(ds, st, models, seed_r, needed_r, errors) -> Context:
        return Context(ds, st, models, seed=seed_r, n_boot=n_boot, confidence=suite.confidence,
                       failed_ids=failed_ids, item_errors=errors, needed=needed_r)

    # -- the clean model on the whole data: judged thresholds ---------------------------------
    say("evaluating the clean model on the whole data")
    full_models = {base.name: base}
    full_ctx_models = {**features, base.name: base}
    full_entries = _evaluate(suite, lambda c: context(plan.full_subsets[c.name], store,
                                                      full_ctx_models, seed, needed,
                                                      item_errors),
                             full_models, plan.errors)
    setup = Setup(table=dataset.table, seed=seed, dimensions=tuple(base.dimensions),
                  classes=tuple(base.classes), output_range=base.output_range,
                  clean=store.frame(base.name, CLEAN), suite_checks=plan.group_checks,
                  group_context=context(dataset, store, full_ctx_models, seed, needed,
                                        item_errors))

    oracle_all = oracle_frame(setup, sorted(dataset.ids), sigma, confusion)
    if carrier == "oracle":
        setup.clean = oracle_all
    t_full = time.perf_counter()

    # -- pseudo-models -----------------------------------------------------------------------------
    states: dict[str, Any] = {}
    not_planted: dict[str, str] = {}
    for d in chosen:
        try:
            states[d.id] = d.prepare(setup)
        except NotApplicable as exc:
            not_planted[d.id] = str(exc)
    variants, thresholds = _variants(base, suite, chosen, grids, states, setup, full_entries)

    # -- plant -------------------------------------------------------------------------------------
    say(f"planting {len(variants) - 2} defective models, the clean model and the oracle")
    planted = PredictionStore({**{v.name: v.outputs for v in variants},
                               **{n: f.outputs for n, f in features.items()}})
    for n in features:
        _put(planted, n, CLEAN, store.frame(n, CLEAN))
    for ck, cond in conditions.items():
        real = store.frame(base.name, ck)
        oracle_ids = sorted(i for i in needed.get(ck, ()) if i not in failed_ids
                            and (ck, i) not in data_failed)
        oracle = oracle_all.loc[oracle_ids]  # the same under every condition
        frame = oracle if carrier == "oracle" else real
        for v in variants:
            if v.kind == "clean":
                rows = real
            elif v.kind == "oracle":
                rows = oracle
            else:
                d = DEFECTS[v.defect]
                rows = d.plant(setup, states[d.id], ck, cond, frame, v.magnitude)
            _put(planted, v.name, ck, rows)
    # the real model's failures are the defective models' too (not the oracle's)
    expanded = list(item_errors) + ([] if carrier == "oracle" else [
        dataclasses.replace(e, model=v.name) for v in variants if v.kind == "defect"
        for e in item_errors if e.stage == "model" and e.model == base.name])
    models = {v.name: v for v in variants}
    ctx_models = {**features, **models}
    t_planted = time.perf_counter()

    # -- judge on resamples ------------------------------------------------------------------------
    _JOB.update(suite=suite, plans=plan.resamples, seeds=seeds, models=models,
                context=lambda ds, seed_r, needed_r: context(ds, planted, ctx_models, seed_r,
                                                             needed_r, expanded))
    verdicts: dict[tuple[str, str, str, str], list[str]] = {}
    try:
        for r, n_items, found, seconds in _judge_all(resamples, workers):
            for key_verdict in found:
                verdicts.setdefault(key_verdict[:4], []).append(key_verdict[4])
            say(f"resample {r + 1}/{resamples}: {n_items} items, {len(found)} entries, "
                f"{seconds:.1f} s")
    finally:
        _JOB.clear()

    doc = _document(base, dataset, suite, variants, verdicts, chosen, not_planted,
                    thresholds, full_entries, settings={
                        "seed": seed, "resamples": resamples, "share": share, "quick": quick,
                        "carrier": carrier,
                        "n_boot": n_boot, "confidence": suite.confidence,
                        "oracle": {"sigma": sigma, "confusion": confusion},
                        "defects": [d.id for d in chosen],
                        "magnitudes": {k: list(v) for k, v in grids.items()},
                        "resample_sizes": [len(ids) for ids in samples],
                        **({"segment": segment.key} if segment is not None else {})})
    timings = {"wall_seconds": round(time.perf_counter() - t_start, 3),
               "predict_seconds": round(t_predicted - t_start, 3),
               "full_data_seconds": round(t_full - t_predicted, 3),
               "plant_seconds": round(t_planted - t_full, 3),
               "evaluate_seconds": round(time.perf_counter() - t_planted, 3),
               "predictions": stats.predictions, "cached": stats.cached,
               "computed": stats.computed}
    result = Validation(doc, timings)
    if out:
        for path in result.write(out):
            say(f"wrote {path}")
    for m in plan.loaded.values():
        m.close()
    return result


# =============================================================================================
def _variants(base: Model, suite: Suite, chosen: list[Defect], grids, states: dict,
              setup: Setup, full_entries: list[dict]) -> tuple[list[Planted], list[dict]]:
    """The clean model, the oracle, every planted defect on its grid and at the sizes the
    targeted tests' judged thresholds name; and those sizes, for the report."""
    variants: list[Planted] = [Planted(base.name, base, "clean"),
                               Planted(ORACLE, base, "oracle")]
    thresholds: list[dict[str, Any]] = []
    for d in chosen:
        if d.id not in states:
            continue
        for m in grids[d.id]:
            label = f"{m:g}"
            variants.append(Planted(f"{d.id}@{label}", base, "defect", d.id, label,
                                    {t: float(m) for t in base.targets}))
        for check, _ in suite.checks:
            if not d.targets(check):
                continue
            mags, named = {}, []
            for target in base.targets:
                if not check.supports(target):
                    continue
                found = _judged_threshold(full_entries, check, target,
                                          threshold_metric(d, check, target))
                if found is None:
                    continue
                metric, limit = found
                try:
                    m = d.threshold(check, target, metric, limit, setup, states[d.id])
                except Exception as exc:  # noqa: BLE001 - a mapping that cannot apply
                    named.append({"target": target, "metric": metric, "limit": limit,
                                  "error": f"{type(exc).__name__}: {exc}"})
                    continue
                if m is not None and math.isfinite(m) and m > 0:
                    mags[target] = float(m)
                    named.append({"target": target, "metric": metric, "limit": limit,
                                  "magnitude": round(float(m), 6)})
            if mags:
                label = f"threshold:{check.name}"
                variants.append(Planted(f"{d.id}@{label}", base, "defect", d.id, label, mags,
                                        test=check.name))
                thresholds.append({"defect": d.id, "test": check.name, "targets": named})
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise UsageError("two pseudo-models share a name; rename the model (NAME=SPEC)")
    return variants, thresholds


@dataclass
class _Plan:
    loaded: dict[str, Model]
    features: dict[str, Model]
    group_checks: list
    full_subsets: dict[str, Dataset]
    errors: dict[str, str]
    conditions: dict[str, Any]
    needed: dict[str, set[str]]
    #: per resample: (data, check subsets, plan errors, needed predictions)
    resamples: list[tuple]


def _plan(suite: Suite, dataset: Dataset, base: Model, chosen: list[Defect],
          samples: list[list[str]], seeds: list[int], seed: int, n_boot: int) -> _Plan:
    """What to predict: the feature extractors (e.g. F0) and every (condition, item) the
    suite needs on the whole data and on each resample, planned as :func:`sertest.audit`
    plans (robustness tests draw their item subsets from the items they are given)."""
    from ..engine.plan import plan_requests

    loaded: dict[str, Model] = {base.name: base}
    features: dict[str, Model] = {}
    group_checks = [c for c, _ in suite.checks]
    if any(d.id == "level_shift_pitch" for d in chosen) and not any(
            c.id == "fairness_pitch" for c in group_checks):
        from ..checks.fairness import FairnessPitch

        group_checks.append(FairnessPitch())  # only to group speakers by pitch
    full_subsets = _subsets(suite, dataset)
    errors: dict[str, str] = {}
    for check in group_checks:
        try:
            sub = full_subsets.get(check.name, dataset)
            for feat in check.features(Context(sub, None, loaded, seed=seed)):
                if feat.name not in loaded:
                    loaded[feat.name] = features[feat.name] = feat
        except Exception as exc:  # noqa: BLE001 - as in audit(): the check's entries are errors
            errors[check.name] = f"{type(exc).__name__}: {exc}"
    conditions: dict[str, Any] = {CLEAN: None}
    needed: dict[str, set[str]] = {CLEAN: set(dataset.ids)}  # defects read clean rows

    def planner(subsets: dict[str, Dataset], seed_r: int):
        return lambda check: Context(subsets[check.name], None, loaded, seed=seed_r,
                                     n_boot=n_boot, confidence=suite.confidence)

    plan_requests(suite, full_subsets, planner(full_subsets, seed), conditions, needed, errors)
    per_resample = []
    for r, ids in enumerate(samples):
        ds_r = dataset.subset(ids)
        subs = _subsets(suite, ds_r)
        errors_r: dict[str, str] = {}
        needed_r: dict[str, set[str]] = {CLEAN: set()}
        plan_requests(suite, subs, planner(subs, seeds[r]), conditions, needed_r, errors_r)
        for ck, ids_ck in needed_r.items():
            needed.setdefault(ck, set()).update(ids_ck)
        per_resample.append((ds_r, subs, {**errors, **errors_r}, needed_r))
    return _Plan(loaded, features, group_checks, full_subsets, errors, conditions, needed,
                 per_resample)


#: what the resample judges read (set before they run; forked workers inherit it)
_JOB: dict[str, Any] = {}


def _judge(r: int) -> tuple[int, int, list[tuple[str, str, str, str, str]], float]:
    """Evaluate every pseudo-model on resample ``r``: ``(r, items, [(test, check, dimension,
    model, verdict)], seconds)``."""
    t0 = time.perf_counter()
    job = _JOB
    ds_r, subs, errors_r, needed_r = job["plans"][r]
    seed_r = job["seeds"][r]
    entries = _evaluate(job["suite"], lambda c: job["context"](subs[c.name], seed_r, needed_r),
                        job["models"], errors_r)
    found = [(e["test"], e.get("check", ""), e["dimension"], e["model"],
              e.get("verdict", "error")) for e in entries]
    return r, len(ds_r), found, time.perf_counter() - t0


def _judge_all(resamples: int, workers: int | None):
    """Judged resamples in order, one process each at a time up to ``workers``."""
    import multiprocessing

    workers = min(int(workers or 1), resamples)
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for r in range(resamples):
            yield _judge(r)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(_judge, range(resamples))


def resample_ids(dataset: Dataset, resamples: int, share: float, seed: int) -> list[list[str]]:
    """Item ids of each resample: ``share`` of the speakers (or items), without replacement,
    drawn from ``derive_rng(seed, "validate", "resample", r)``, in the data's item order."""
    table = dataset.table
    if "speaker" in table.columns and table["speaker"].notna().any():
        unit = [str(s) if isinstance(s, str) or not pd.isna(s) else f"\0item:{i}"
                for i, s in zip(table.index, table["speaker"])]
    else:
        unit = [f"\0item:{i}" for i in table.index]
    units = sorted(set(unit))
    keep = min(len(units), max(1, int(round(share * len(units)))))
    out = []
    for r in range(resamples):
        rng = derive_rng(seed, "validate", "resample", r)
        pick = {units[i] for i in rng.choice(len(units), size=keep, replace=False)}
        out.append([i for i, u in zip(table.index, unit) if u in pick])
    return out


def _subsets(suite: Suite, dataset: Dataset) -> dict[str, Dataset]:
    return {check.name: (dataset if not check.where else
                         dataset.subset(select_items(dataset, check.where)))
            for check, _ in suite.checks}


def _evaluate(suite, ctx_for, models, plan_errors) -> list[dict[str, Any]]:
    from ..engine.evaluate import evaluate

    return evaluate(suite, ctx_for, models, plan_errors)


def _put(store, name: str, ck: str, frame: pd.DataFrame) -> None:
    values = frame.to_numpy(dtype=np.float64)
    for i, item in enumerate(frame.index):
        store.add(name, ck, item, values[i])


def _judged_threshold(entries: list[dict], check, target: str, metrics: Sequence[str]
                      ) -> tuple[str, float] | None:
    """``(metric, limit)`` of the first of ``metrics`` the clean entry was judged with (its
    measurements' thresholds; calibrated where the suite calibrates), else the suite's."""
    entry = next((e for e in entries if e["test"] == check.name
                  and e["dimension"] == target), None)
    for metric in metrics:
        limits = [m["threshold"]["value"] for m in (entry or {}).get("measurements", [])
                  if m.get("metric") == metric and isinstance(m.get("threshold"), dict)
                  and m["threshold"].get("value") is not None]
        if limits:
            return metric, float(min(limits, key=abs))
        th = check.thresholds.get(metric)
        if th is not None:
            return metric, float(th.limit)
    return None


def _check_options(resamples, quick, share, sigma, confusion) -> int:
    if resamples is None:
        resamples = QUICK_RESAMPLES if quick else DEFAULT_RESAMPLES
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) \
            or resamples < 1:
        raise UsageError(f"--resamples {resamples!r}: give a whole number >= 1")
    if not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise UsageError(f"--share {share!r}: give a share of the speakers in (0, 1]")
    if not isinstance(sigma, (int, float)) or not sigma >= 0:
        raise UsageError(f"oracle sigma {sigma!r}: give a number >= 0")
    if not isinstance(confusion, (int, float)) or not 0 <= confusion <= 1:
        raise UsageError(f"oracle confusion {confusion!r}: give a share in [0, 1]")
    return int(resamples)


def _grids(chosen: list[Defect], magnitudes, quick: bool) -> dict[str, tuple[float, ...]]:
    """Magnitudes per defect: the given ones, else the grid (its largest with ``quick``)."""
    out = {}
    for d in chosen:
        given = magnitudes.get(d.id) if isinstance(magnitudes, dict) else magnitudes
        if given is None:
            out[d.id] = d.grid[-1:] if quick else d.grid
            continue
        if isinstance(given, (int, float)):
            given = [given]
        try:
            values = tuple(dict.fromkeys(float(m) for m in given))
        except (TypeError, ValueError):
            values = ()
        if not values or not all(math.isfinite(m) and m > 0 for m in values):
            raise UsageError(f"--magnitudes {given!r} for {d.id}: give positive numbers")
        out[d.id] = values
    if isinstance(magnitudes, dict):
        unknown = sorted(set(magnitudes) - {d.id for d in chosen})
        if unknown:
            raise UsageError(f"--magnitudes: {', '.join(unknown)} is not a chosen defect")
    return out


def _defects(ids: Sequence[str] | str | None) -> list[Defect]:
    if ids is None:
        return list(DEFECTS.values())
    if isinstance(ids, str):
        ids = [s for s in ids.split(",")]
    ids = [s.strip() for s in ids if s.strip()]
    unknown = [s for s in ids if s not in DEFECTS]
    if unknown:
        raise UsageError(f"--defects: unknown defect(s) {', '.join(unknown)}; known: "
                         f"{', '.join(DEFECTS)}")
    if not ids:
        raise UsageError("--defects: give at least one defect id")
    return [DEFECTS[s] for s in dict.fromkeys(ids)]


class _Progress:
    def __init__(self, progress: bool | None) -> None:
        self.on = progress is not False
        self.t0 = time.perf_counter()

    def __call__(self, text: str) -> None:
        if self.on:
            print(f"sertest validate [{time.perf_counter() - self.t0:6.0f} s] {text}",
                  file=sys.stderr, flush=True)


# =============================================================================================
def _document(base, dataset, suite, variants, verdicts, chosen, not_planted, thresholds,
              full_entries, settings) -> dict[str, Any]:
    by_name = {v.name: v for v in variants}
    rows = []
    for (test, check_id, dim, model), vs in verdicts.items():
        v = by_name[model]
        n = len(vs)
        counts = Counter(vs)
        defect = DEFECTS.get(v.defect) if v.defect else None
        check = next((c for c, _ in suite.checks if c.name == test), None)
        rows.append({
            "test": test, "check": check_id, "dimension": dim, "model": model,
            "kind": v.kind, "defect": v.defect, "magnitude": v.label,
            "magnitude_value": v.magnitude.get(dim),
            "targeted": bool(defect and check is not None and defect.targets(check)),
            # the size issue 12's target judges: the one this test's threshold names (or the
            # defect's reference size where no threshold names one)
            "reference": bool(defect and v.magnitude.get(dim) and (
                v.test == test if v.test else v.magnitude.get(dim) == defect.reference)),
            "resamples": n,
            "counts": dict(sorted(counts.items())),
            "detection": round(sum(counts.get(k, 0) for k in DETECTED) / n, 4) if n else None,
            # a defect is caught when it does not come out green: fail, error, inconclusive
            # or gated (a test that cannot tell says so and is never green)
            "not_green": round(sum(counts.get(k, 0) for k in NOT_GREEN) / n, 4) if n else None,
            "passed": round(counts.get("pass", 0) / n, 4) if n else None,
            "inconclusive": round(counts.get("inconclusive", 0) / n, 4) if n else None,
            "gated": round(counts.get("gated", 0) / n, 4) if n else None,
            "skipped": round(counts.get("skipped", 0) / n, 4) if n else None,
            "verdicts": "".join(CODES.get(x, "?") for x in vs),
        })
    full = {(e["test"], e["dimension"]): e.get("verdict") for e in full_entries}
    return {
        "schema": SCHEMA,
        "model": {"name": base.name, "fingerprint": base.fingerprint(),
                  "info": base.info().to_dict()},
        "suite": suite.to_dict(),
        "dataset": dataset.describe(),
        "settings": settings,
        "defects": [{"id": d.id, "description": d.description, "unit": d.unit,
                     "grid": list(d.grid), "reference": d.reference,
                     "targets": [c.name for c, _ in suite.checks if d.targets(c)],
                     **({"not_planted": not_planted[d.id]} if d.id in not_planted else {})}
                    for d in chosen],
        "thresholds": thresholds,
        "models": [v.describe() for v in variants],
        "clean_full_data": [{"test": t, "dimension": dim, "verdict": v}
                            for (t, dim), v in full.items()],
        "rows": rows,
    }


__all__ = ["Planted", "Validation", "resample_ids", "validate"]
