"""Compute every needed (item, condition, model) prediction once, in batches, cached.

:func:`execute` is the execution stage of an audit, in four steps:

1. hash every needed item's file content and ask the cache for each (model, condition,
   item) prediction, by keys that only :mod:`sertest.engine.cache` builds;
2. group what is missing into units, one per item (:class:`~sertest.engine.units.Unit`:
   decode once, resample once per model rate, apply each needed condition, run each model
   on the item's signals in one call);
3. hand the units to an executor (:mod:`sertest.engine.executors`: ``local`` threads or
   ``dask``), optionally with models isolated in supervised worker processes
   (:mod:`sertest.engine.isolate`);
4. take each unit's outcome as it comes: predictions into the
   :class:`~sertest.engine.store.PredictionStore` (clipped into the declared range, see
   :func:`~sertest.engine.units.clip_row`) and into the cache, errors into the item errors.

Each unit's predictions are stored in the cache as soon as it finishes, so even a crash of
this process loses only the units in flight.  Outcomes do not depend on the executor, the
number of workers or their timing (see :mod:`sertest.engine.units`).
"""

from __future__ import annotations

import os
import sys
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import audio
from ..errors import AudioError, SertestError, UsageError
from ..models.base import Model
from ..perturb.base import Perturbation
from .cache import PredictionCache, model_prediction_key
from .executors import check_executor, get_executor, trim_heap
from .segments import is_segmented, item_frames, parse_segment, read_header, window_bounds
from .store import CLEAN, PredictionStore
from .units import ItemError, SigintWatch, Unit, UnitOutcome, clip_row


class FailFast(SertestError):
    """Raised with ``fail_fast`` at the first item error."""


@dataclass
class Stats:
    """What the execution cost (wall-clock figures go to timings.json, not results.json)."""

    predictions: int = 0
    cached: int = 0
    computed: int = 0
    decoded_files: int = 0
    decode_seconds: float = 0.0
    perturb_seconds: float = 0.0
    audio_seconds: dict[str, float] = field(default_factory=dict)
    model_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    #: model name -> how its isolated workers crashed (see :mod:`sertest.engine.isolate`)
    crashes: dict[str, str] = field(default_factory=dict)
    #: item id -> content hash of its audio (:func:`sertest.audio.content_hash`), for every
    #: item some condition needs whose file could be read (the data's fingerprint)
    audio_hashes: dict[str, str] = field(default_factory=dict)
    #: the :class:`~sertest.engine.segments.Segmentation` asked for (``None``: whole items)
    segment: Any = None
    #: item id -> number of windows, for every item audited in windows
    segmented: dict[str, int] = field(default_factory=dict)


def _segment(v) -> float | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


def execute(dataset, models: dict[str, Model], conditions: dict[str, Perturbation | None],
            needed: dict[str, set[str]], *, seed: int = 0, cache: PredictionCache | None = None,
            jobs: int | None = None, progress: bool | None = None, fail_fast: bool = False,
            on_unit: Callable[[int, int], None] | None = None,
            clean_only: set[str] | frozenset = frozenset(), timeout: float | None = None,
            executor: str = "local", scheduler: str | None = None, isolate: bool = False,
            segment: Any = None) -> tuple[PredictionStore, list[ItemError], Stats]:
    """Run the predictions.

    Args:
        dataset: the :class:`~sertest.data.Dataset`.
        models: name -> model.
        conditions: condition key -> perturbation (``None`` for clean).
        needed: condition key -> item ids that need it (for every model).
        seed: audit seed.
        cache: prediction cache (memory-only if ``None``).
        jobs: worker threads, each taking whole units (default: CPU count, at most 4).
        progress: show a progress bar (default: only on a terminal, never under CI).
        clean_only: models (feature extractors) that only ever see clean audio.
        timeout: per-batch model timeout in seconds (``None``: no limit).
        executor: a registered executor name (:mod:`sertest.engine.executors`): ``local``
            (threads) or ``dask``; ``scheduler`` is the Dask scheduler address (``None``: an
            in-process LocalCluster).
        isolate: run each model loaded from a spec in supervised worker processes, so
            that a crash of the interpreter (segfault, abort, ``os._exit``, an OOM kill) costs
            only that model's predictions (:mod:`sertest.engine.isolate`; executors that run
            units in this process only: on Dask a crash costs a worker, see
            :mod:`sertest.engine.dask_executor`).
        segment: audit items longer than a window in windows (:mod:`sertest.engine.segments`):
            ``"WINDOW[:HOP]"`` in seconds, a number or a Segmentation; ``None``: whole items.
            Runs on the ``local`` executor.
    """
    t0 = time.perf_counter()
    check_executor(executor)
    segment = parse_segment(segment)
    if segment is not None and executor != "local":
        raise UsageError(f"--segment {segment.key} runs on the local executor only, not on "
                         f"{executor!r}: drop --executor (or pass --executor local)")
    cache = PredictionCache(None) if cache is None else cache
    jobs = max(1, int(jobs or min(4, os.cpu_count() or 1)))
    store = PredictionStore({n: m.outputs for n, m in models.items()})
    errors: list[ItemError] = []
    stats = Stats(segment=segment)

    # 1. content hashes and cache keys (cheap: file bytes only, no decoding); look-up
    units, keys = _plan_units(dataset, models, conditions, needed, seed, jobs, clean_only,
                              errors, fail_fast, segment)
    stats.segmented = {u.item_id: len(window_bounds(*u.segment_frames, segment))
                       for u in units if u.segment is not None}
    stats.audio_hashes = {u.item_id: u.audio_hash for u in units}
    all_keys = list(keys.values())
    cached = cache.get_many(all_keys)
    stats.predictions = len(all_keys)
    stats.cached = len(cached)
    unit_by_id = {u.item_id: u for u in units}
    to_compute: dict[str, int] = {}
    for (name, ck, item_id), key in keys.items():
        if key in cached:
            store.add(name, ck, item_id, *clip_row(models[name], cached[key]))
        else:
            u = unit_by_id[item_id]
            sr = models[name].sampling_rate
            u.needs.setdefault(sr, {}).setdefault(ck, []).append(name)
            to_compute[name] = to_compute.get(name, 0) + 1
    # the keys of what is computed are built again as each row comes (a few microseconds
    # each): keeping all of them through the run held about 290 bytes per prediction
    del keys, all_keys, cached
    keyed_models = models  # the models the keys name (isolation swaps in proxies below)

    def key_of(name: str, ck: str, unit: Unit) -> str:
        return model_prediction_key(keyed_models[name], unit.audio_hash, ck, conditions[ck],
                                    seed, unit.item_id,
                                    unit.segment.key if unit.segment is not None else None)
    _share_needs(units)
    todo = [u for u in units if u.needs]
    runner = get_executor(executor, jobs=jobs, scheduler=scheduler)
    isolated: dict[str, Any] = {}
    if isolate and runner.in_process and todo:
        from .isolate import isolate_models

        isolated = isolate_models(models, to_compute, workers=jobs)
        models = {**models, **isolated}

    # 2. the units on the executor; each outcome taken as it comes
    bar = _progress_bar(len(todo), progress)
    pending: dict[str, np.ndarray] = {}
    hung: set[str] = set()

    def consume(outcome: UnitOutcome) -> None:
        stats.decode_seconds += outcome.decode_seconds
        stats.perturb_seconds += outcome.perturb_seconds
        if outcome.decoded:
            stats.decoded_files += 1
        for name, secs in outcome.model_seconds.items():
            stats.model_seconds[name] = stats.model_seconds.get(name, 0.0) + secs
        for name, secs in outcome.audio_seconds.items():
            stats.audio_seconds[name] = stats.audio_seconds.get(name, 0.0) + secs
        for err in outcome.errors:
            errors.append(err)
            if fail_fast:
                raise FailFast(f"item {err.item_id!r}"
                               + (f", condition {err.condition}" if err.condition else "")
                               + (f", model {err.model}" if err.model else "") + f": {err.error}")
        hung.update(outcome.hung)
        for (name, ck), row in outcome.rows.items():
            # the cache keeps the row as predicted; clipping happens on the way into the store
            store.add(name, ck, outcome.item_id, *clip_row(models[name], row))
            pending[key_of(name, ck, unit_by_id[outcome.item_id])] = row
            stats.computed += 1
        if bar is not None:
            bar.update(1)
        if pending:  # per unit: a crash of the process loses only the units in flight
            cache.put_many(pending)
            pending.clear()

    watch = SigintWatch()
    outcomes = None
    try:
        watch.__enter__()
        outcomes = runner.run(todo, models, conditions, seed=seed, timeout=timeout, hung=hung)
        for i, outcome in enumerate(outcomes):
            consume(outcome)
            if on_unit:
                on_unit(i + 1, len(todo))
    finally:
        if hasattr(outcomes, "close"):
            outcomes.close()  # an executor stops its work in flight (a failure, fail_fast)
        watch.__exit__()
        for proxy in isolated.values():
            proxy.close()
            if proxy.summary():
                stats.crashes[proxy.name] = proxy.summary()
        cache.put_many(pending)
        pending.clear()
        if bar is not None:
            bar.close()
    errors.sort(key=lambda e: (e.item_id, e.stage, e.condition or "", e.model or ""))
    stats.wall_seconds = time.perf_counter() - t0
    trim_heap()  # the workers' freed blocks (signals, activations, outcomes), before the checks
    return store, errors, stats


def _share_needs(units: list[Unit]) -> None:
    """Units whose needs are equal share one ``needs`` object (read-only from here on).

    Most items of an audit need the same conditions of the same models.  A Dask scheduler
    keeps the messages of the last 1,000 batches it sent each worker
    (``distributed.admin.low-level-log-length``), with the units the tasks carry; pickled
    together, a task's units with shared needs carry them once.  With a scheduler in the
    audit's process, 20 x the corpus, ``quick``: about 7 MB less at the prediction stage's
    end together with ``Unit``'s slots (benchmarks/README.md, "Scale-out", point 5)."""
    shared: dict[tuple, dict] = {}
    for unit in units:
        if unit.needs:
            frozen = tuple((sr, tuple((ck, tuple(names)) for ck, names in conds.items()))
                           for sr, conds in unit.needs.items())
            unit.needs = shared.setdefault(frozen, unit.needs)


def _plan_units(dataset, models: dict[str, Model], conditions: dict[str, Perturbation | None],
                needed: dict[str, set[str]], seed: int, jobs: int, clean_only,
                errors: list[ItemError], fail_fast: bool, segment: Any = None
                ) -> tuple[list[Unit], dict[tuple[str, str, str], str]]:
    """The units of the items some condition needs (in the data's order, nothing to compute
    yet) and the cache key of every (model, condition key, item id) prediction.  An item whose
    file cannot be hashed (missing, refused) gets a ``decode`` error in ``errors``.  With a
    ``segment``, an item longer than its window gets it (and its keys carry it)."""
    table = dataset.table
    by_item: dict[str, list[str]] = OrderedDict((i, []) for i in table.index)
    for ck in conditions:
        for item_id in needed.get(ck, ()):
            by_item[item_id].append(ck)
    units: list[Unit] = []
    keys: dict[tuple[str, str, str], str] = {}
    item_ids = [i for i, cks in by_item.items() if cks]
    # the columns as plain lists once (a pandas row look-up per item costs more than its hash)
    files = dict(zip(table.index, table["file"].tolist()))
    starts = dict(zip(table.index, table["start"].tolist()))
    ends = dict(zip(table.index, table["end"].tolist()))
    refused_ids = getattr(dataset, "refused", {})
    hashes: dict[str, tuple[str, float | None] | AudioError] = {}

    def _hash(item_id: str):
        refused = refused_ids.get(item_id)  # e.g. a path outside the root
        if refused:
            return item_id, AudioError(refused)
        try:
            h = audio.content_hash(files[item_id], _segment(starts[item_id]),
                                   _segment(ends[item_id]))
        except AudioError as exc:
            return item_id, exc
        return item_id, (h, read_header(files[item_id]))

    with ThreadPoolExecutor(jobs) as pool:
        for item_id, h in pool.map(_hash, item_ids):
            hashes[item_id] = h
    for item_id in item_ids:
        file = files[item_id]
        h = hashes[item_id]
        if isinstance(h, AudioError):
            errors.append(ItemError(item_id, file, "decode", str(h)))
            if fail_fast:
                raise FailFast(f"item {item_id!r}: {h}")
            continue
        h, header = h  # the header is read once, for the in-flight bound and the windows
        unit = Unit(item_id, file, _segment(starts[item_id]), _segment(ends[item_id]), h,
                    file_seconds=header[0] / header[1] if header else float("nan"))
        if segment is not None:
            frames = item_frames(unit.file, unit.start, unit.end, header=header)
            if is_segmented(frames, segment):
                unit.segment, unit.segment_frames = segment, frames
        seg_key = unit.segment.key if unit.segment is not None else None
        for ck in sorted(by_item[item_id]):
            for name, model in models.items():
                if name in clean_only and ck != CLEAN:
                    continue
                keys[(name, ck, item_id)] = model_prediction_key(model, h, ck, conditions[ck],
                                                                 seed, item_id, seg_key)
        units.append(unit)
    return units, keys


def _progress_bar(total: int, progress: bool | None):
    if progress is None:
        progress = sys.stderr.isatty() and not os.environ.get("CI")
    if not progress or total == 0:
        return None
    try:
        from tqdm.auto import tqdm
    except ModuleNotFoundError:
        return None
    return tqdm(total=total, unit="file", desc="predicting", leave=False, file=sys.stderr)
