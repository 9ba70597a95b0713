"""Compute every needed (item, condition, model) prediction once, in batches, cached.

Work is cut into *units*, one per item: decode the file once, resample once per model
sampling rate, apply each needed condition, then run each model on all of the item's
signals of equal length in one call.  Decoding and perturbing run in worker threads ahead
of inference (``jobs``), in a bounded window so memory does not grow with the dataset.
Every random draw derives from (seed, item, condition), and a unit's batches depend only
on the unit, so results never depend on the number of workers or their timing.
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
from ..errors import AudioError, SertestError
from ..models.base import Model
from ..perturb.base import Perturbation
from ..seeding import derive_rng
from .cache import PredictionCache, prediction_key
from .store import CLEAN, PredictionStore


@dataclass
class Unit:
    """All work on one item: which conditions each model still needs."""

    item_id: str
    file: str
    start: float | None
    end: float | None
    audio_hash: str
    #: sampling rate -> condition key -> model names still to predict
    needs: dict[int, dict[str, list[str]]] = field(default_factory=dict)


@dataclass
class ItemError:
    """One item (or item x condition x model) that could not be predicted."""

    item_id: str
    file: str
    stage: str  # decode | perturb | model
    error: str
    condition: str | None = None
    model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.item_id, "file": self.file, "stage": self.stage, "error": self.error,
                "condition": self.condition, "model": self.model}


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


def _segment(v) -> float | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


def execute(dataset, models: dict[str, Model], conditions: dict[str, Perturbation | None],
            needed: dict[str, set[str]], *, seed: int = 0, cache: PredictionCache | None = None,
            jobs: int | None = None, progress: bool | None = None, fail_fast: bool = False,
            on_unit: Callable[[int, int], None] | None = None,
            clean_only: set[str] | frozenset = frozenset(),
            ) -> tuple[PredictionStore, list[ItemError], Stats]:
    """Run the predictions.

    Args:
        dataset: the :class:`~sertest.data.Dataset`.
        models: name -> model.
        conditions: condition key -> perturbation (``None`` for clean).
        needed: condition key -> item ids that need it (for every model).
        seed: audit seed.
        cache: prediction cache (memory-only if ``None``).
        jobs: decode/perturb worker threads (default: CPU count, at most 4).
        progress: show a progress bar (default: only on a terminal, never under CI).
        clean_only: models (feature extractors) that only ever see clean audio.
    """
    t0 = time.perf_counter()
    cache = PredictionCache(None) if cache is None else cache
    jobs = max(1, int(jobs or min(4, os.cpu_count() or 1)))
    store = PredictionStore({n: m.outputs for n, m in models.items()})
    errors: list[ItemError] = []
    stats = Stats()
    table = dataset.table
    by_item: dict[str, list[str]] = OrderedDict((i, []) for i in table.index)
    for ck in conditions:
        for item_id in needed.get(ck, ()):
            by_item[item_id].append(ck)
    units: list[Unit] = []
    keys: dict[tuple[str, str, str], str] = {}
    item_ids = [i for i, cks in by_item.items() if cks]

    # 1. content hashes and cache look-up (cheap: file bytes only, no decoding)
    hashes: dict[str, str | AudioError] = {}

    def _hash(item_id: str):
        row = table.loc[item_id]
        try:
            return item_id, audio.content_hash(row["file"], _segment(row["start"]), _segment(row["end"]))
        except AudioError as exc:
            return item_id, exc

    with ThreadPoolExecutor(jobs) as pool:
        for item_id, h in pool.map(_hash, item_ids):
            hashes[item_id] = h
    for item_id in item_ids:
        row = table.loc[item_id]
        h = hashes[item_id]
        if isinstance(h, AudioError):
            errors.append(ItemError(item_id, row["file"], "decode", str(h)))
            if fail_fast:
                raise FailFast(f"item {item_id!r}: {h}")
            continue
        unit = Unit(item_id, row["file"], _segment(row["start"]), _segment(row["end"]), h)
        for ck in sorted(by_item[item_id]):
            stochastic_cond = conditions[ck] is not None and conditions[ck].stochastic
            for name, model in models.items():
                if name in clean_only and ck != CLEAN:
                    continue
                random_part = stochastic_cond or model.stochastic
                keys[(name, ck, item_id)] = prediction_key(
                    model.fingerprint(), h, ck, model.sampling_rate,
                    seed if random_part else None, item_id if random_part else None)
        units.append(unit)
    all_keys = list(keys.values())
    cached = cache.get_many(all_keys)
    stats.predictions = len(all_keys)
    stats.cached = len(cached)
    unit_by_id = {u.item_id: u for u in units}
    for (name, ck, item_id), key in keys.items():
        if key in cached:
            store.add(name, ck, item_id, cached[key])
        else:
            u = unit_by_id[item_id]
            sr = models[name].sampling_rate
            u.needs.setdefault(sr, {}).setdefault(ck, []).append(name)
    todo = [u for u in units if u.needs]

    # 2. decode + perturb ahead in threads, infer in this thread
    bar = _progress_bar(len(todo), progress)
    pending: dict[str, np.ndarray] = {}
    last_flush = time.perf_counter()

    def prepare(unit: Unit):
        t = time.perf_counter()
        try:
            signal, sr_native = audio.read(unit.file, unit.start, unit.end)
        except AudioError as exc:
            return unit, exc, {}, time.perf_counter() - t, 0.0
        t_dec = time.perf_counter() - t
        signals: dict[int, dict[str, np.ndarray | Exception]] = {}
        t = time.perf_counter()
        for sr, conds in unit.needs.items():
            x = audio.resample(signal, sr_native, sr)
            signals[sr] = {}
            for ck in conds:
                cond = conditions[ck]
                if cond is None:
                    signals[sr][ck] = x
                    continue
                try:
                    y = cond(x, sr, derive_rng(seed, unit.item_id, ck))
                    signals[sr][ck] = audio.check_signal(y, f"{unit.item_id} under {cond.name}")
                except Exception as exc:  # noqa: BLE001 - recorded per item and condition
                    signals[sr][ck] = exc
        return unit, None, signals, t_dec, time.perf_counter() - t

    def consume(result) -> None:
        nonlocal last_flush
        unit, decode_error, signals, t_dec, t_pert = result
        stats.decode_seconds += t_dec
        stats.perturb_seconds += t_pert
        if decode_error is not None:
            errors.append(ItemError(unit.item_id, unit.file, "decode", str(decode_error)))
            if fail_fast:
                raise FailFast(f"item {unit.item_id!r}: {decode_error}")
            return
        stats.decoded_files += 1
        for sr, conds in unit.needs.items():
            for ck, sig in signals[sr].items():
                if isinstance(sig, Exception):
                    errors.append(ItemError(unit.item_id, unit.file, "perturb",
                                            f"{type(sig).__name__}: {sig}", condition=ck))
                    if fail_fast:
                        raise FailFast(f"item {unit.item_id!r}, condition {ck}: {sig}")
            for name, model in models.items():
                if model.sampling_rate != sr:
                    continue
                ok = [ck for ck, names in conds.items()
                      if name in names and not isinstance(signals[sr][ck], Exception)]
                if ok:
                    _infer(unit, name, model, ok, signals[sr])
        if bar is not None:
            bar.update(1)
        if pending and (len(pending) >= 2000 or time.perf_counter() - last_flush > 2.0):
            cache.put_many(pending)
            pending.clear()
            last_flush = time.perf_counter()

    def _infer(unit: Unit, name: str, model: Model, cks: list[str], signals) -> None:
        sigs = [signals[ck] for ck in cks]
        rngs = [derive_rng(seed, "model", name, unit.item_id, ck) for ck in cks] \
            if model.stochastic else None
        t = time.perf_counter()
        try:
            rows = model.predict(sigs, rngs)
            failed = {}
        except Exception:  # noqa: BLE001 - retry one by one to isolate the failing signal(s)
            rows = np.full((len(sigs), len(model.outputs)), np.nan)
            failed = {}
            for j, s in enumerate(sigs):
                try:
                    rows[j] = model.predict([s], [rngs[j]] if rngs else None)[0]
                except Exception as exc_j:  # noqa: BLE001
                    failed[j] = f"{type(exc_j).__name__}: {exc_j}"
        stats.model_seconds[name] = stats.model_seconds.get(name, 0.0) + time.perf_counter() - t
        stats.audio_seconds[name] = stats.audio_seconds.get(name, 0.0) + sum(
            len(s) for s in sigs) / model.sampling_rate
        for j, ck in enumerate(cks):
            if j in failed:
                err = failed[j]
            elif not np.all(np.isfinite(rows[j])):
                err = f"model output is not finite: {np.round(rows[j], 4).tolist()}"
            else:
                err = None
            if err is not None:
                errors.append(ItemError(unit.item_id, unit.file, "model", err, condition=ck,
                                        model=name))
                if fail_fast:
                    raise FailFast(f"item {unit.item_id!r}, model {name}: {err}")
                continue
            store.add(name, ck, unit.item_id, rows[j])
            pending[keys[(name, ck, unit.item_id)]] = rows[j]
            stats.computed += 1

    try:
        if jobs <= 1:
            for i, unit in enumerate(todo):
                consume(prepare(unit))
                if on_unit:
                    on_unit(i + 1, len(todo))
        else:
            window = 2 * jobs + 2
            with ThreadPoolExecutor(jobs) as pool:
                futures = []
                it = iter(todo)
                for unit in it:
                    futures.append(pool.submit(prepare, unit))
                    if len(futures) >= window:
                        break
                done = 0
                while futures:
                    result = futures.pop(0).result()
                    nxt = next(it, None)
                    if nxt is not None:
                        futures.append(pool.submit(prepare, nxt))
                    consume(result)
                    done += 1
                    if on_unit:
                        on_unit(done, len(todo))
    finally:
        cache.put_many(pending)
        pending.clear()
        if bar is not None:
            bar.close()
    errors.sort(key=lambda e: (e.item_id, e.stage, e.condition or "", e.model or ""))
    stats.wall_seconds = time.perf_counter() - t0
    return store, errors, stats


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
