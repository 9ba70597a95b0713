"""Compute every needed (item, condition, model) prediction once, in batches, cached.

Work is cut into *units*, one per item: decode the file once, resample once per model
sampling rate, apply each needed condition, then run each model on all of the item's
signals of equal length in one call.  ``jobs`` worker threads each take whole units, so
one unit's perturbations overlap another's inference; models that are not
:attr:`~sertest.models.base.Model.concurrent` are called by one thread at a time, and
concurrent ones run one thread per call (:meth:`~sertest.models.base.Model.use_threads`),
so the workers use the cores without oversubscribing them and no output depends on the
thread count.  At most ``2 * jobs + 2`` units are in flight, so memory does not grow with
the dataset.  Every random draw derives from (seed, item, condition), and a unit's batches
(at most :attr:`~sertest.models.base.Model.max_batch` signals each) depend only on the
unit, so results never depend on the number of workers or their timing.

A model's failures are its own items' errors, never the audit's end: an exception of any
kind raised by model code (``SystemExit`` and ``KeyboardInterrupt`` included, see
:func:`model_interrupt`) fails the signals of that call, which are then retried one by one.
Non-finite outputs and wrong shapes are item errors; finite regression outputs further
than ``RANGE_TOLERANCE`` outside the declared range are clipped (:func:`clip_row`) and
counted in :attr:`PredictionStore.clipped`, never dropped.  With ``isolate`` a model that
crashes the interpreter crashes only its worker process (:mod:`sertest.engine.isolate`):
the call's signals are retried one by one in a fresh worker, and an item whose signal crashes
it again is quarantined for that model.  Each unit's predictions are stored in the cache as
soon as it finishes, so even a crash of this process loses only the units in flight.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import audio
from ..errors import AudioError, SertestError
from ..models.base import Model
from ..perturb.base import Perturbation
from ..seeding import derive_rng
from .cache import PredictionCache, prediction_key
from .isolate import ModelCrash, ModelGivenUp
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
    #: model name -> how its isolated workers crashed (see :mod:`sertest.engine.isolate`)
    crashes: dict[str, str] = field(default_factory=dict)


def _segment(v) -> float | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


def execute(dataset, models: dict[str, Model], conditions: dict[str, Perturbation | None],
            needed: dict[str, set[str]], *, seed: int = 0, cache: PredictionCache | None = None,
            jobs: int | None = None, progress: bool | None = None, fail_fast: bool = False,
            on_unit: Callable[[int, int], None] | None = None,
            clean_only: set[str] | frozenset = frozenset(), timeout: float | None = None,
            executor: str = "local", scheduler: str | None = None, isolate: bool = False,
            ) -> tuple[PredictionStore, list[ItemError], Stats]:
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
        executor: ``local`` (threads) or ``dask``; ``scheduler`` is the Dask scheduler
            address (``None``: an in-process LocalCluster).
        isolate: run each model loaded from a spec in supervised worker processes, so
            that a crash of the interpreter (segfault, abort, ``os._exit``, an OOM kill) costs
            only that model's predictions (:mod:`sertest.engine.isolate`; local executor
            only: on Dask a crash costs a worker, see :mod:`sertest.engine.dask_executor`).
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
        refused = getattr(dataset, "refused", {}).get(item_id)  # e.g. a path outside the root
        if refused:
            return item_id, AudioError(refused)
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
                    seed if random_part else None, item_id if random_part else None,
                    condition_version=conditions[ck].cache_version if conditions[ck] is not None else 0,
                    max_batch=model.max_batch if model.batchable else 1)
        units.append(unit)
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
    todo = [u for u in units if u.needs]
    isolated: dict[str, Any] = {}
    if isolate and executor != "dask" and todo:
        from .isolate import isolate_models

        isolated = isolate_models(models, to_compute, workers=jobs)
        models = {**models, **isolated}

    # 2. decode + perturb ahead in threads, infer in this thread (or everything on Dask)
    bar = _progress_bar(len(todo), progress)
    pending: dict[str, np.ndarray] = {}
    hung: set[str] = set()

    def consume(outcome: "UnitOutcome") -> None:
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
            pending[keys[(name, ck, outcome.item_id)]] = row
            stats.computed += 1
        if bar is not None:
            bar.update(1)
        if pending:  # per unit: a crash of the process loses only the units in flight
            cache.put_many(pending)
            pending.clear()

    watch = _SigintWatch()
    try:
        watch.__enter__()
        if executor == "dask":
            from .dask_executor import run_on_dask

            for i, outcome in enumerate(run_on_dask(todo, models, conditions, seed, timeout,
                                                    scheduler, n_workers=jobs)):
                consume(outcome)
                if on_unit:
                    on_unit(i + 1, len(todo))
        elif jobs <= 1:
            one_thread_per_call(models)  # as with more workers: the same outputs
            for i, unit in enumerate(todo):
                prepared = prepare_unit(unit, conditions, seed)
                consume(infer_unit(prepared, models, seed, timeout, hung))
                if on_unit:
                    on_unit(i + 1, len(todo))
        else:
            guarded = _serialised(models)

            def work(unit: Unit) -> UnitOutcome:
                return infer_unit(prepare_unit(unit, conditions, seed), guarded, seed,
                                  timeout, hung)

            # a bounded window of units in flight, refilled as soon as *any* unit finishes
            # (waiting for the oldest would idle a worker behind one slow item); the order
            # of consumption does not matter: the store is keyed and errors are sorted
            window = 2 * jobs + 2
            with ThreadPoolExecutor(jobs, thread_name_prefix="sertest-unit") as pool:
                it = iter(todo)
                order = {}  # future -> submission number
                for _, u in zip(range(window), it):
                    order[pool.submit(work, u)] = len(order)
                submitted, done = len(order), 0
                try:
                    while order:
                        finished, _ = wait(list(order), return_when=FIRST_COMPLETED)
                        for fut in sorted(finished, key=order.__getitem__):
                            del order[fut]
                            nxt = next(it, None)
                            if nxt is not None:
                                order[pool.submit(work, nxt)] = submitted
                                submitted += 1
                            consume(fut.result())
                            done += 1
                            if on_unit:
                                on_unit(done, len(todo))
                finally:
                    for f in order:
                        f.cancel()
    finally:
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
    return store, errors, stats


class _Serialised:
    """A model whose :meth:`predict` calls take turns (for models that are not
    :attr:`~sertest.models.base.Model.concurrent`); every other attribute is the model's
    own (deliberately not a :class:`Model` subclass, whose class defaults would shadow
    them)."""

    def __init__(self, model: Model) -> None:
        import threading

        self._model = model
        self._lock = threading.Lock()

    def predict(self, signals, rngs=None):
        with self._lock:
            return self._model.predict(signals, rngs)

    def __getattr__(self, name: str):
        return getattr(self._model, name)


def one_thread_per_call(models: dict[str, Model]) -> None:
    """Every concurrent model computes each call on one thread, wherever units run (one
    worker, several, or Dask workers), so no output depends on the thread count."""
    for model in models.values():
        if model.concurrent:
            model.use_threads(1)


def _serialised(models: dict[str, Model]) -> dict[str, Model]:
    """The models as several worker threads may call them: concurrent ones with one thread
    per call, the others behind a lock."""
    one_thread_per_call(models)
    return {name: model if model.concurrent else _Serialised(model)
            for name, model in models.items()}


@dataclass
class Prepared:
    """A unit's decoded and perturbed signals (or the decode error)."""

    unit: Unit
    signals: dict[int, dict[str, Any]]  # rate -> condition key -> signal or exception
    decode_error: Exception | None = None
    decode_seconds: float = 0.0
    perturb_seconds: float = 0.0


@dataclass
class UnitOutcome:
    """Everything one unit produced; plain data, so it can travel back from a Dask worker."""

    item_id: str
    rows: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    errors: list[ItemError] = field(default_factory=list)
    decoded: bool = False
    decode_seconds: float = 0.0
    perturb_seconds: float = 0.0
    model_seconds: dict[str, float] = field(default_factory=dict)
    audio_seconds: dict[str, float] = field(default_factory=dict)
    hung: set[str] = field(default_factory=set)



def prepare_unit(unit: Unit, conditions: dict[str, Perturbation | None], seed: int) -> Prepared:
    """Decode the item once, resample once per rate, apply each needed condition."""
    t = time.perf_counter()
    try:
        signal, sr_native = audio.read(unit.file, unit.start, unit.end)
        resampled = {sr: audio.resample(signal, sr_native, sr, unit.file) for sr in unit.needs}
    except (AudioError, MemoryError) as exc:  # out of memory too: this item's error only
        return Prepared(unit, {}, exc if isinstance(exc, AudioError) else AudioError(
            f"{unit.file}: out of memory while decoding"), time.perf_counter() - t)
    t_dec = time.perf_counter() - t
    t = time.perf_counter()
    signals: dict[int, dict[str, Any]] = {}
    for sr, conds in unit.needs.items():
        x = resampled[sr]
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
    return Prepared(unit, signals, None, t_dec, time.perf_counter() - t)


def infer_unit(prepared: Prepared, models: dict[str, Model], seed: int,
               timeout: float | None = None, hung: set[str] | None = None) -> UnitOutcome:
    """Run every model on the unit's signals: one call per model and equal-length group."""
    unit = prepared.unit
    out = UnitOutcome(unit.item_id, decode_seconds=prepared.decode_seconds,
                      perturb_seconds=prepared.perturb_seconds)
    if prepared.decode_error is not None:
        out.errors.append(ItemError(unit.item_id, unit.file, "decode", str(prepared.decode_error)))
        return out
    out.decoded = True
    hung = hung if hung is not None else set()
    for sr, conds in unit.needs.items():
        for ck, sig in prepared.signals[sr].items():
            if isinstance(sig, Exception):
                out.errors.append(ItemError(unit.item_id, unit.file, "perturb",
                                            f"{type(sig).__name__}: {sig}", condition=ck))
        for name, model in models.items():
            if model.sampling_rate != sr:
                continue
            cks = [ck for ck, names in conds.items()
                   if name in names and not isinstance(prepared.signals[sr][ck], Exception)]
            if not cks:
                continue
            if name in hung:
                for ck in cks:
                    out.errors.append(ItemError(unit.item_id, unit.file, "model",
                                                "skipped: the model timed out on an earlier batch",
                                                condition=ck, model=name))
                continue
            _infer_model(out, unit, name, model, cks, prepared.signals[sr], seed, timeout)
            if name in out.hung:
                hung.add(name)
    return out


def _infer_model(out: UnitOutcome, unit: Unit, name: str, model: Model, cks: list[str],
                 signals: dict[str, Any], seed: int, timeout: float | None) -> None:
    sigs = [signals[ck] for ck in cks]
    rngs = [derive_rng(seed, "model", model.fingerprint(), unit.item_id, ck) for ck in cks] \
        if model.stochastic else None
    t = time.perf_counter()
    failed: dict[int, str] = {}
    interrupts = _SIGINTS[0]
    try:
        rows = call_with_timeout(lambda: model.predict(sigs, rngs), timeout)
    except ModelTimeout as exc:
        rows = np.full((len(sigs), len(model.outputs)), np.nan)
        failed = {j: str(exc) for j in range(len(sigs))}
        out.hung.add(name)
    except BaseException as exc:  # noqa: BLE001 - retry one by one to isolate the failing signal(s)
        if not model_interrupt(exc, interrupts):
            raise
        rows = np.full((len(sigs), len(model.outputs)), np.nan)
        quarantined = None  # the condition whose signal crashed a fresh worker again
        for j, s in enumerate(sigs):
            if isinstance(exc, ModelGivenUp):
                failed[j] = str(exc)
                continue
            if quarantined is not None:
                failed[j] = (f"skipped: the item is quarantined for this model (it crashed "
                             f"the model under {quarantined})")
                continue
            try:
                rows[j] = call_with_timeout(
                    lambda s=s, j=j: model.predict([s], [rngs[j]] if rngs else None), timeout)[0]
            except ModelTimeout as exc_j:
                failed[j] = str(exc_j)
                out.hung.add(name)
                break
            except BaseException as exc_j:  # noqa: BLE001 - the model's error for this signal
                if not model_interrupt(exc_j, interrupts):
                    raise
                if isinstance(exc_j, ModelCrash) and not isinstance(exc_j, ModelGivenUp):
                    # the second crash on this signal alone: the item, not the model
                    failed[j] = f"{exc_j}; crashed again on this item alone: quarantined"
                    quarantined = cks[j]
                else:
                    failed[j] = str(exc_j) if isinstance(exc_j, ModelCrash) else _error_text(exc_j)
        for j in range(len(sigs)):
            if name in out.hung and j not in failed and np.isnan(rows[j]).all():
                failed[j] = "skipped: the model timed out on this batch"
    out.model_seconds[name] = out.model_seconds.get(name, 0.0) + time.perf_counter() - t
    out.audio_seconds[name] = out.audio_seconds.get(name, 0.0) + sum(
        len(s) for s in sigs) / model.sampling_rate
    for j, ck in enumerate(cks):
        if j in failed:
            err = failed[j]
        elif not np.all(np.isfinite(rows[j])):
            err = f"model output is not finite: {np.round(rows[j], 4).tolist()}"
        else:
            out.rows[(name, ck)] = np.asarray(rows[j], dtype=np.float64)
            continue
        out.errors.append(ItemError(unit.item_id, unit.file, "model", err, condition=ck,
                                    model=name))


def clip_row(model: Model, row: np.ndarray) -> tuple[np.ndarray, frozenset[str]]:
    """``(row, clipped output names)``: regression outputs further than ``RANGE_TOLERANCE``
    outside the model's declared ``output_range`` [lo, hi] are clipped to [lo - tol, hi + tol].

    Values within the tolerance are kept as predicted; class columns are never touched.
    Dropping such an item instead would let a model gain CCC by losing its worst items, so
    the prediction stays (as the nearest value the range allows) and is counted.
    """
    row = np.asarray(row, dtype=np.float64)
    if not getattr(model, "output_range", None) or not model.dimensions:
        return row, frozenset()
    from ..models.base import RANGE_TOLERANCE

    lo, hi = model.output_range
    k = len(model.dimensions)
    low, high = lo - RANGE_TOLERANCE, hi + RANGE_TOLERANCE
    dims = row[:k]
    bad = (dims < low) | (dims > high)
    if not bad.any():
        return row, frozenset()
    row = row.copy()
    row[:k] = np.clip(dims, low, high)
    return row, frozenset(d for d, b in zip(model.dimensions, bad) if b)


#: SIGINTs delivered to this process while :func:`execute` watched (see :class:`_SigintWatch`)
_SIGINTS = [0]


class _SigintWatch:
    """Counts real Ctrl-C's (SIGINT) during an execution, so that a ``KeyboardInterrupt``
    raised by model code can be told from the user's.

    Installed only in the main thread and only over a Python-level handler (the default
    one raises ``KeyboardInterrupt``), which it calls after counting.  Where it cannot be
    installed (the audit runs in another thread) a real SIGINT never raises in this thread,
    so any ``KeyboardInterrupt`` seen here comes from model code.
    """

    def __init__(self) -> None:
        self._prev = None

    def __enter__(self) -> "_SigintWatch":
        if threading.current_thread() is not threading.main_thread():
            return self
        try:
            prev = signal.getsignal(signal.SIGINT)
        except (ValueError, AttributeError):  # pragma: no cover - no signals here
            return self
        if not callable(prev):
            return self  # SIG_IGN / SIG_DFL: a real SIGINT never raises KeyboardInterrupt

        def handler(signum, frame):
            _SIGINTS[0] += 1
            return prev(signum, frame)

        try:
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # pragma: no cover - not the main interpreter
            return self
        self._prev = prev
        return self

    def __exit__(self, *exc) -> None:
        if self._prev is not None:
            signal.signal(signal.SIGINT, self._prev)
            self._prev = None


def model_interrupt(exc: BaseException, sigints_before: int) -> bool:
    """Whether ``exc``, raised by a model call, is that model's error (``True``) or must
    stop the audit (``False``: a real Ctrl-C of the user).

    Every exception counts as the model's, ``SystemExit`` and ``GeneratorExit`` included
    (a model calling ``sys.exit(0)`` must not end the audit with exit 0), except a
    ``KeyboardInterrupt`` while a SIGINT reached the process since the call began.
    """
    if isinstance(exc, KeyboardInterrupt):
        return _SIGINTS[0] == sigints_before
    return True


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, (SystemExit, KeyboardInterrupt, GeneratorExit)):
        return (f"{type(exc).__name__}({text}) raised by the model (caught: a model cannot "
                "end the audit)")
    return f"{type(exc).__name__}: {text}"


class ModelTimeout(SertestError):
    """A model call that did not return within the per-batch timeout."""


def call_with_timeout(fn: Callable[[], Any], timeout: float | None) -> Any:
    """Call ``fn``; raise :class:`ModelTimeout` if it has not returned after ``timeout`` s.

    The call runs in a daemon thread, which is abandoned on timeout (a hung native call
    cannot be interrupted); the engine then skips that model for the rest of the audit.
    """
    if not timeout:
        return fn()
    import threading

    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="sertest-model-call")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ModelTimeout(f"model call did not return within {timeout:g} s (per-batch timeout)")
    if "error" in result:
        raise result["error"]
    return result["value"]


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
