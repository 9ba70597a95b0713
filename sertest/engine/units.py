"""One unit of work: an item decoded once, perturbed, and predicted by every model.

A :class:`Unit` is all the work on one item: decode the file once, resample once per model
sampling rate, apply each needed condition (:func:`prepare_unit`, through
:func:`sertest.engine.render.condition_signal`), then run each model on all of the item's
signals in one call (:func:`infer_unit`).  Every executor (:mod:`sertest.engine.executors`)
runs units with these two functions, in threads of this process or on Dask workers, and
gets back a :class:`UnitOutcome` of plain data.  Every random draw derives from (seed, item,
condition), and a unit's batches (at most :attr:`~sertest.models.base.Model.max_batch`
signals each) depend only on the unit, so outcomes never depend on where or when a unit ran.

Long recordings are audited whole (one prediction per item and condition, as for short
ones), with memory bounded in samples rather than in signals: :func:`run_unit` decodes an
item once and then perturbs and predicts its conditions in groups of at most
:data:`UNIT_SAMPLES` samples (one condition at a time for a long item, all at once for a
short one, which keeps short items' model calls exactly as before), and each model call
receives at most :data:`CALL_SAMPLES` samples, or the model's own bound
(:func:`predict_bounded`).  The executor
bounds the units in flight by their samples too (:data:`INFLIGHT_SAMPLES`).  A long item
therefore holds its decoded signal, one perturbed copy and one model call's activations,
whatever the number of conditions; :data:`HELD` counts the samples units hold.  With
opt-in segmentation (:mod:`sertest.engine.segments`) an item longer than the window is a
unit whose ``segment`` is set: :func:`run_segmented` decodes, perturbs and predicts it one
window at a time and aggregates the windows' predictions by duration.

A model's failures are its own items' errors, never the audit's end: an exception of any
kind raised by model code (``SystemExit`` and ``KeyboardInterrupt`` included, see
:func:`model_interrupt`) fails the signals of that call, which are then retried one by one.
Non-finite outputs and wrong shapes are item errors; finite regression outputs further
than ``RANGE_TOLERANCE`` outside the declared range are clipped (:func:`clip_row`) and
counted in :attr:`~sertest.engine.store.PredictionStore.clipped`, never dropped.  A model
isolated in worker processes (:mod:`sertest.engine.isolate`) that crashes raises
:class:`~sertest.engine.isolate.ModelCrash`: the call's signals are retried one by one in a
fresh worker, and an item whose signal crashes it again is quarantined for that model.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import audio
from ..errors import AudioError, SertestError
from ..models.base import Model
from ..perturb.base import Perturbation
from ..seeding import derive_rng
from .isolate import ModelCrash, ModelGivenUp
from .render import condition_rng, condition_signal
from .segments import (aggregate, item_frames, read_header, read_window, window_bounds,
                       window_signal)

#: most samples of perturbed signals one unit holds at once (2**22: 262 s at 16 kHz, 16 MB of
#: float32), unless a single condition's signal is longer (a long item: one at a time)
UNIT_SAMPLES = 1 << 22
#: most samples one model call receives unless the model says otherwise
#: (:attr:`~sertest.models.base.Model.call_samples`; 2**19: 32.8 s at 16 kHz, 2 MB of
#: float32): 8 signals of the bundled corpus's longest item (4 s) make one call, a long
#: signal goes alone.  It bounds the call's activations, of which the workers hold one each
#: at a time; 8 signals a call cost no more CPU than 16 (measured on the reference teacher,
#: Wav2Small and MobileNet-V4), 4 a call cost the teacher 10-20 % more (2026-11-30: the
#: teacher's audit against its tight loop went from 1.00 to 1.115 in CPU-seconds with every
#: model at 4 a call), so ONNX models, which gain nothing from larger calls, take 2**18
#: (:attr:`sertest.models.onnx.OnnxModel.call_samples`)
CALL_SAMPLES = 1 << 19
#: most samples of decoded audio the units in flight of one executor hold (2**24: 17.5 min
#: at 16 kHz, 64 MB of float32), beyond which a new unit waits (one unit always runs)
INFLIGHT_SAMPLES = 1 << 24


def model_call_samples(model) -> int:
    """The most samples one call of ``model`` receives: its
    :attr:`~sertest.models.base.Model.call_samples`, else :data:`CALL_SAMPLES`."""
    own = getattr(model, "call_samples", None)
    return int(own) if own else CALL_SAMPLES


class SampleGauge:
    """A thread-safe count of samples held, with its peak (the public hook that shows the
    memory bound at work: :data:`HELD`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def add(self, samples: int) -> None:
        with self._lock:
            self.current += int(samples)
            self.peak = max(self.peak, self.current)

    def remove(self, samples: int) -> None:
        with self._lock:
            self.current -= int(samples)

    def reset(self) -> None:
        """Set the peak to the current count."""
        with self._lock:
            self.peak = self.current


#: samples of decoded and perturbed signals the units running in this process hold
HELD = SampleGauge()


@dataclass(slots=True)
class Unit:
    """All work on one item: which conditions each model still needs."""

    item_id: str
    file: str
    start: float | None
    end: float | None
    audio_hash: str
    #: sampling rate -> condition key -> model names still to predict
    needs: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    #: the :class:`~sertest.engine.segments.Segmentation` of an item audited in windows
    #: (longer than the window, :mod:`sertest.engine.segments`); ``None``: audited whole
    segment: Any = None
    #: its ``(first, last, sampling rate)`` frames in the file (read from the header)
    segment_frames: Any = None
    #: the whole file's duration (s) from its header, read while planning (``None``: not
    #: read; NaN: libsndfile cannot read the header, e.g. a format only FFmpeg reads)
    file_seconds: float | None = None


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



def one_thread_per_call(models: dict[str, Model]) -> None:
    """Every concurrent model computes each call on one thread, wherever units run (one
    worker, several, or Dask workers), so no output depends on the thread count."""
    for model in models.values():
        if model.concurrent:
            model.use_threads(1)



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
    prepared = _perturb(unit, resampled, conditions, seed)
    prepared.decode_seconds = t_dec
    return prepared


def _perturb(unit: Unit, resampled: dict[int, np.ndarray],
             conditions: dict[str, Perturbation | None], seed: int) -> Prepared:
    """Apply each condition ``unit.needs`` names to the decoded signal at its rate."""
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
                y = condition_signal(x, sr, cond, seed, unit.item_id, key=ck)
                signals[sr][ck] = audio.check_signal(y, f"{unit.item_id} under {cond.name}")
            except Exception as exc:  # noqa: BLE001 - recorded per item and condition
                signals[sr][ck] = exc
    return Prepared(unit, signals, None, 0.0, time.perf_counter() - t)


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


def unit_samples(unit: Unit) -> int:
    """The samples a unit's decoded signals will hold (estimated from the file's header, at
    its highest model rate; from the file size where the header cannot be read), without
    decoding it."""
    import os

    rate = max(unit.needs or {16000: None})
    if unit.segment is not None:  # at most 1.5 windows decoded at once
        return int(1.5 * unit.segment.window_s * rate) * max(1, len(unit.needs))
    seconds = unit.file_seconds
    if seconds is None:
        header = read_header(unit.file)
        seconds = header[0] / header[1] if header else None
    if seconds is None or seconds != seconds:  # not a libsndfile format: 16-bit mono, a guess
        try:
            seconds = os.path.getsize(unit.file) / 2 / rate
        except OSError:
            return 0
    if unit.end is not None:
        seconds = min(seconds, unit.end)
    if unit.start is not None:
        seconds = max(0.0, seconds - unit.start)
    return int(seconds * rate) * max(1, len(unit.needs))


def run_unit(unit: Unit, models: dict[str, Model], conditions: dict[str, Perturbation | None],
             seed: int, timeout: float | None = None, hung: set[str] | None = None
             ) -> UnitOutcome:
    """:func:`prepare_unit` then :func:`infer_unit`, with memory bounded in samples: the
    item is decoded once, then its conditions are perturbed and predicted in groups of at
    most :data:`UNIT_SAMPLES` samples (:func:`condition_groups`), each group's signals
    released before the next is made.  A short item is one group: the same calls, the same
    outputs as ``infer_unit(prepare_unit(unit, ...))``.  An item with a ``segment`` is
    audited in windows (:func:`run_segmented`)."""
    if unit.segment is not None:
        return run_segmented(unit, models, conditions, seed, timeout, hung)
    t = time.perf_counter()
    try:
        signal, sr_native = audio.read(unit.file, unit.start, unit.end)
        resampled = {sr: audio.resample(signal, sr_native, sr, unit.file) for sr in unit.needs}
        del signal
    except (AudioError, MemoryError) as exc:  # out of memory too: this item's error only
        error = exc if isinstance(exc, AudioError) else AudioError(
            f"{unit.file}: out of memory while decoding")
        return infer_unit(Prepared(unit, {}, error, time.perf_counter() - t), models, seed,
                          timeout, hung)
    t_dec = time.perf_counter() - t
    decoded = sum(len(x) for x in resampled.values())
    HELD.add(decoded)
    out = UnitOutcome(unit.item_id, decode_seconds=t_dec)
    try:
        for group in condition_groups(unit, {sr: len(x) for sr, x in resampled.items()}):
            sub = Unit(unit.item_id, unit.file, unit.start, unit.end, unit.audio_hash, group)
            prepared = _perturb(sub, resampled, conditions, seed)
            held = sum(len(y) for conds in prepared.signals.values() for ck, y in conds.items()
                       if conditions[ck] is not None and not isinstance(y, Exception))
            HELD.add(held)
            try:
                part = infer_unit(prepared, models, seed, timeout, hung)
            finally:
                del prepared
                HELD.remove(held)
            out.decoded = out.decoded or part.decoded
            out.perturb_seconds += part.perturb_seconds
            out.rows.update(part.rows)
            out.errors.extend(part.errors)
            out.hung.update(part.hung)
            for name, secs in part.model_seconds.items():
                out.model_seconds[name] = out.model_seconds.get(name, 0.0) + secs
            for name, secs in part.audio_seconds.items():
                out.audio_seconds[name] = out.audio_seconds.get(name, 0.0) + secs
    finally:
        HELD.remove(decoded)
    return out


def run_segmented(unit: Unit, models: dict[str, Model],
                  conditions: dict[str, Perturbation | None], seed: int,
                  timeout: float | None = None, hung: set[str] | None = None) -> UnitOutcome:
    """:func:`run_unit` for an item audited in windows (:mod:`sertest.engine.segments`):
    each window decoded, resampled, perturbed (in condition groups) and predicted, then released;
    the predictions aggregated by :func:`~sertest.engine.segments.aggregate`.  Returns a
    :class:`UnitOutcome` as for a whole item."""
    out = UnitOutcome(unit.item_id)
    hung = hung if hung is not None else set()
    frames = unit.segment_frames or item_frames(unit.file, unit.start, unit.end)
    if frames is None:
        out.errors.append(ItemError(unit.item_id, unit.file, "decode",
                                    f"{unit.file}: cannot read the header to segment it"))
        return out
    first, last, native = frames
    windows = window_bounds(first, last, native, unit.segment)
    params: dict[str, dict[str, Any]] = {}
    for ck, cond in conditions.items():
        if cond is not None and any(ck in conds for conds in unit.needs.values()):
            params[ck] = cond.draw(condition_rng(seed, unit.item_id, ck))
    rows: dict[tuple[str, str], list[np.ndarray]] = {}
    seconds: dict[tuple[str, str], list[float]] = {}
    failed: dict[tuple[str, str | None, str | None], ItemError] = {}
    heard = 0
    for k, (a, b) in enumerate(windows):
        t = time.perf_counter()
        try:
            x = read_window(unit.file, a, b, native)
            resampled = {} if x is None else {
                sr: audio.resample(x, native, sr, f"{unit.file} (window {k})") for sr in unit.needs}
            del x
        except (AudioError, MemoryError) as exc:  # the item cannot be decoded: its error
            out.rows.clear()
            out.errors = [ItemError(unit.item_id, unit.file, "decode", str(exc))]
            return out
        out.decode_seconds += time.perf_counter() - t
        if not resampled:
            continue  # digital silence: no model hears it
        heard += 1
        decoded = sum(len(v) for v in resampled.values())
        HELD.add(decoded)
        try:
            for group in condition_groups(unit, {sr: len(v) for sr, v in resampled.items()}):
                t = time.perf_counter()
                signals: dict[int, dict[str, Any]] = {}
                held = 0
                for sr, conds in group.items():
                    signals[sr] = {}
                    for ck in conds:
                        cond = conditions[ck]
                        if cond is None:
                            signals[sr][ck] = resampled[sr]
                            continue
                        try:
                            signals[sr][ck] = window_signal(resampled[sr], sr, cond, params[ck],
                                                            seed, unit.item_id, ck, k)
                            held += len(signals[sr][ck])
                        except Exception as exc:  # noqa: BLE001 - this item x condition
                            signals[sr][ck] = exc
                HELD.add(held)
                try:
                    sub = Unit(unit.item_id, unit.file, None, None, unit.audio_hash, group)
                    part = infer_unit(Prepared(sub, signals, None, 0.0, time.perf_counter() - t),
                                      models, seed, timeout, hung)
                finally:
                    del signals
                    HELD.remove(held)
                out.decoded = True
                out.perturb_seconds += part.perturb_seconds
                out.hung.update(part.hung)
                for name, secs in part.model_seconds.items():
                    out.model_seconds[name] = out.model_seconds.get(name, 0.0) + secs
                for name, secs in part.audio_seconds.items():
                    out.audio_seconds[name] = out.audio_seconds.get(name, 0.0) + secs
                for err in part.errors:
                    where = (err.stage, err.condition, err.model)
                    if where not in failed:
                        failed[where] = ItemError(
                            err.item_id, err.file, err.stage,
                            f"window {k} ({a / native:.2f}-{b / native:.2f} s): {err.error}",
                            condition=err.condition, model=err.model)
                for pair, row in part.rows.items():
                    rows.setdefault(pair, []).append(row)
                    seconds.setdefault(pair, []).append((b - a) / native)
        finally:
            HELD.remove(decoded)
    if not heard:
        out.errors.append(ItemError(unit.item_id, unit.file, "decode",
                                    f"{unit.file}: silent (all samples are zero)"))
        return out
    out.errors.extend(failed.values())
    bad_conditions = {c for (stage, c, _) in failed if stage == "perturb"}
    bad_pairs = {(m, c) for (stage, c, m) in failed if stage == "model"}
    total_s = (last - first) / native
    for (name, ck), got in rows.items():
        if ck in bad_conditions or (name, ck) in bad_pairs:
            continue  # a window failed: the item x condition (x model) is an error
        out.rows[(name, ck)] = aggregate(models[name], np.stack(got),
                                         np.asarray(seconds[(name, ck)]), total_s)
    return out


def condition_groups(unit: Unit, lengths: dict[int, int]
                     ) -> list[dict[int, dict[str, list[str]]]]:
    """``unit.needs`` split, in order, into groups whose signals (``lengths``: rate -> the
    decoded signal's samples) hold at most :data:`UNIT_SAMPLES` samples; a condition longer
    than that alone is a group of its own.

    >>> u = Unit("a", "a.wav", None, None, "h", {16000: {"c1": ["m"], "c2": ["m"]}})
    >>> len(condition_groups(u, {16000: 1000})), len(condition_groups(u, {16000: UNIT_SAMPLES}))
    (1, 2)
    """
    groups: list[dict[int, dict[str, list[str]]]] = []
    current: dict[int, dict[str, list[str]]] = {}
    size = 0
    for sr, conds in unit.needs.items():
        for ck, names in conds.items():
            n = lengths[sr]
            if current and size + n > UNIT_SAMPLES:
                groups.append(current)
                current, size = {}, 0
            current.setdefault(sr, {})[ck] = names
            size += n
    if current:
        groups.append(current)
    return groups


def predict_bounded(model: Model, signals: list[np.ndarray],
                    rngs: list[np.random.Generator] | None = None) -> np.ndarray:
    """``model.predict(signals, rngs)`` in calls of at most :func:`model_call_samples`
    samples (:data:`CALL_SAMPLES` unless the model sets its own).

    Signals that fit in one call go in one call (the model batches them as always);
    otherwise the equal-length signals are batched as :meth:`Model.predict` does (at most
    ``max_batch`` each), with fewer per batch where ``max_batch`` long signals would exceed
    the cap, and each batch is a call of its own.
    """
    bound = model_call_samples(model)
    if sum(len(s) for s in signals) <= bound:
        return model.predict(signals, rngs)
    out = np.empty((len(signals), len(model.outputs)), dtype=np.float64)
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(signals):
        groups.setdefault(len(s), []).append(i)
    for length, group in groups.items():
        step = max(1, min(int(model.max_batch) if model.batchable else 1,
                          bound // max(1, length)))
        for k in range(0, len(group), step):
            idx = group[k:k + step]
            out[idx] = model.predict([signals[i] for i in idx],
                                     [rngs[i] for i in idx] if rngs else None)
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
        rows = call_with_timeout(lambda: predict_bounded(model, sigs, rngs), timeout)
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


#: SIGINTs delivered to this process while :func:`~sertest.engine.execute.execute` watched (see :class:`SigintWatch`)
_SIGINTS = [0]


class SigintWatch:
    """Counts real Ctrl-C's (SIGINT) during an execution, so that a ``KeyboardInterrupt``
    raised by model code can be told from the user's.

    Installed only in the main thread and only over a Python-level handler (the default
    one raises ``KeyboardInterrupt``), which it calls after counting.  Where it cannot be
    installed (the audit runs in another thread) a real SIGINT never raises in this thread,
    so any ``KeyboardInterrupt`` seen here comes from model code.
    """

    def __init__(self) -> None:
        self._prev = None

    def __enter__(self) -> "SigintWatch":
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
