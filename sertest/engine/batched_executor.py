"""The ``batched`` executor: model calls built from several items, for a GPU.

``--executor batched`` (chosen by ``sertest run --device cuda[:N]|auto`` unless another
executor is named) takes the units in windows of ``window`` items, in their order:

1. a pool of ``jobs`` workers decodes and perturbs every unit of the window
   (:func:`~sertest.engine.units.prepare_unit`), threads by default, worker processes with
   ``--executor batched-processes`` (perturbations then run beside the model calls on all
   cores, without the interpreter lock, so they keep a GPU fed);
2. while the pool already prepares the next window, each model's signals of the whole
   window are cut into length buckets (:mod:`sertest.engine.batching`) and predicted one
   bucket per call;
3. the window's outcomes are yielded, one per unit, as every executor's.

Random baselines (stochastic models, which draw from one generator per item and
condition) and models that cannot stack signals run per unit with
:func:`~sertest.engine.units.infer_unit`, as under ``local``.  A bucket whose call fails is
retried through the per-unit path (:func:`~sertest.engine.units._infer_model`: each unit's
signals, then one by one), so a failing signal costs only its own prediction; a call past
``--timeout`` skips the model for the rest of the audit.

Outcomes equal the ``local`` executor's within float32 rounding (different batch
compositions; with padding, masked): shown to 1e-5 on the CPU by ``tests/test_devices.py``.
They depend only on the units and the window size, never on timing.  Memory: two windows
of prepared signals (the one predicted, the one being prepared) are held at once, each at
most :data:`~sertest.engine.units.INFLIGHT_SAMPLES` samples; an item too long for a window
(more than :data:`~sertest.engine.units.UNIT_SAMPLES` samples under its conditions) runs
alone, condition by condition (:func:`~sertest.engine.units.run_unit`), as under ``local``.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor as FuturesExecutor
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np

from ..models.base import Model
from ..perturb.base import Perturbation
from .batching import length_buckets, predict_bucket
from .executors import Executor
from . import units as _units
from .units import (_SIGINTS, ItemError, ModelTimeout, Prepared, Unit, UnitOutcome,
                    _infer_model, call_with_timeout, infer_unit, model_interrupt,
                    one_thread_per_call, prepare_unit, run_unit, unit_samples)

#: a worker process's conditions and seed (set once by :func:`_start_worker`)
_WORKER: dict[str, Any] = {}


def _start_worker(conditions: dict[str, Perturbation | None], seed: int) -> None:
    _WORKER["conditions"], _WORKER["seed"] = conditions, seed


def _prepare_in_worker(unit: Unit) -> Prepared:
    return prepare_unit(unit, _WORKER["conditions"], _WORKER["seed"])


class BatchedExecutor(Executor):
    """Windows of units; each model's calls built from a whole window's signals.

    Class attributes (set on a subclass or an instance to tune):
        window: units pooled into one set of buckets (and prepared ahead).
        max_samples: most samples of one padded call (count x longest; 4 M = 250 s at
            16 kHz).
        spread: longest / shortest - 1 within a padded bucket (models that mask padding).
        processes: prepare units in worker processes instead of threads.
    """

    name: ClassVar[str] = "batched"
    in_process: ClassVar[bool] = True
    window: int = 16
    max_samples: int = 4_000_000
    spread: float = 0.25
    processes: bool = False

    def _pool(self, conditions, seed) -> tuple[FuturesExecutor, Any]:
        if self.processes:
            import multiprocessing

            # spawn: a forked child of a process holding torch or CUDA threads can hang
            pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_start_worker, initargs=(conditions, seed))
            return pool, _prepare_in_worker
        pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="sertest-prepare")
        return pool, lambda unit: prepare_unit(unit, conditions, seed)

    def run(self, units, models, conditions, *, seed, timeout, hung):
        one_thread_per_call(models)  # CPU models compute as under `local`
        per_unit = {n: m for n, m in models.items() if m.stochastic or not m.batchable}
        batched = {n: m for n, m in models.items() if n not in per_unit}
        windows = self._windows(units)
        if not windows:
            return
        pool, prepare = self._pool(conditions, seed)

        def submit(window: tuple[bool, list[Unit]]) -> list:
            long, members = window
            return [] if long else [pool.submit(prepare, u) for u in members]

        pending = submit(windows[0])
        try:
            for k, (long, members) in enumerate(windows):
                prepared = [f.result() for f in pending]
                pending = submit(windows[k + 1]) if k + 1 < len(windows) else []
                if long:  # one long item: condition by condition, memory bounded in samples
                    yield run_unit(members[0], models, conditions, seed, timeout, hung)
                    continue
                outcomes = [infer_unit(p, per_unit, seed, timeout, hung) for p in prepared]
                for name, model in batched.items():
                    self._infer_window(prepared, outcomes, name, model, seed, timeout, hung)
                yield from outcomes
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def _windows(self, units: list[Unit]) -> list[tuple[bool, list[Unit]]]:
        """``(long, units)`` in the units' order: at most :attr:`window` units and
        :data:`~sertest.engine.units.INFLIGHT_SAMPLES` samples of prepared signals per
        window (estimated from the files' headers); an item whose signals alone exceed
        :data:`~sertest.engine.units.UNIT_SAMPLES` is a window of its own, run by
        :func:`~sertest.engine.units.run_unit` (as under ``local``)."""
        out: list[tuple[bool, list[Unit]]] = []
        current: list[Unit] = []
        held = 0
        for unit in units:
            conditions = max(1, sum(len(c) for c in unit.needs.values()))
            samples = unit_samples(unit) * conditions
            if samples > _units.UNIT_SAMPLES:
                if current:
                    out.append((False, current))
                    current, held = [], 0
                out.append((True, [unit]))
                continue
            if current and (len(current) >= max(1, int(self.window))
                            or held + samples > _units.INFLIGHT_SAMPLES):
                out.append((False, current))
                current, held = [], 0
            current.append(unit)
            held += samples
        if current:
            out.append((False, current))
        return out

    def _infer_window(self, prepared: list[Prepared], outcomes: list[UnitOutcome], name: str,
                      model: Model, seed: int, timeout: float | None, hung: set[str]) -> None:
        sr = model.sampling_rate
        entries: list[tuple[int, str, np.ndarray]] = []  # (unit index, condition, signal)
        for i, p in enumerate(prepared):
            conds = p.unit.needs.get(sr) if p.decode_error is None else None
            if not conds:
                continue
            cks = [ck for ck, names in conds.items()
                   if name in names and not isinstance(p.signals[sr][ck], Exception)]
            entries += [(i, ck, p.signals[sr][ck]) for ck in cks]
        if not entries:
            return
        lengths = [len(s) for _, _, s in entries]
        spread = self.spread if getattr(model, "pads_with_mask", False) else 0.0
        buckets = length_buckets(lengths, max_signals=max(1, int(model.max_batch)),
                                 max_samples=self.max_samples, spread=spread)
        for bucket in buckets:
            if name in hung:
                for j in bucket:
                    i, ck, _ = entries[j]
                    _error(outcomes[i], prepared[i].unit, name, ck,
                           "skipped: the model timed out on an earlier batch")
                continue
            sigs = [entries[j][2] for j in bucket]
            interrupts = _SIGINTS[0]
            t = time.perf_counter()
            try:
                rows = call_with_timeout(lambda: predict_bucket(model, sigs), timeout)
            except ModelTimeout as exc:
                hung.add(name)
                for j in bucket:
                    i, ck, _ = entries[j]
                    outcomes[i].hung.add(name)
                    _error(outcomes[i], prepared[i].unit, name, ck, str(exc))
                continue
            except BaseException as exc:  # noqa: BLE001 - retried per unit, then one by one
                if not model_interrupt(exc, interrupts):
                    raise
                by_unit: dict[int, list[str]] = {}
                for j in bucket:
                    by_unit.setdefault(entries[j][0], []).append(entries[j][1])
                for i, cks in by_unit.items():
                    _infer_model(outcomes[i], prepared[i].unit, name, model, cks,
                                 prepared[i].signals[sr], seed, timeout)
                    if name in outcomes[i].hung:
                        hung.add(name)
                continue
            elapsed = time.perf_counter() - t
            total = float(sum(lengths[j] for j in bucket)) or 1.0
            for row, j in zip(np.asarray(rows, dtype=np.float64), bucket):
                i, ck, s = entries[j]
                out = outcomes[i]
                out.model_seconds[name] = out.model_seconds.get(name, 0.0) + \
                    elapsed * len(s) / total
                out.audio_seconds[name] = out.audio_seconds.get(name, 0.0) + len(s) / sr
                if np.all(np.isfinite(row)):
                    out.rows[(name, ck)] = row
                else:
                    _error(out, prepared[i].unit, name, ck,
                           f"model output is not finite: {np.round(row, 4).tolist()}")


class ProcessBatchedExecutor(BatchedExecutor):
    """``batched`` with the units prepared (decoded, perturbed) in ``jobs`` worker
    processes: ``--executor batched-processes``."""

    name: ClassVar[str] = "batched-processes"
    processes = True


def _error(out: UnitOutcome, unit: Unit, name: str, ck: str, text: str) -> None:
    out.errors.append(ItemError(unit.item_id, unit.file, "model", text, condition=ck,
                                model=name))
