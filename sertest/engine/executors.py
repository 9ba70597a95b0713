"""Executors: where the audit's units run (``--executor NAME``), behind one small interface.

An executor takes the units that still need predictions (:class:`~sertest.engine.units.Unit`)
and yields one :class:`~sertest.engine.units.UnitOutcome` per unit, in any order; it runs
each unit with :func:`~sertest.engine.units.run_unit` (:func:`~sertest.engine.units.prepare_unit`
then :func:`~sertest.engine.units.infer_unit`, with a long item's memory bounded in samples),
so every executor gives the same outcomes.  The
caller (:func:`sertest.engine.execute.execute`) stores them, writes the cache and counts.

Built in: ``local`` (:class:`LocalExecutor`, threads of this process) and ``dask``
(:class:`sertest.engine.dask_executor.DaskExecutor`, a Dask cluster).  A new executor is a
subclass of :class:`Executor` in a module of its own plus one :func:`register_executor`
line; entries may name their class as ``"module:Class"``, imported on first use, so an
executor's optional dependencies are imported only when it is chosen.
"""

from __future__ import annotations

import importlib
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, ClassVar, Iterator

from ..errors import UsageError
from ..models.base import Model
from ..perturb.base import Perturbation
from . import units as _units
from .units import Unit, UnitOutcome, one_thread_per_call, run_unit, unit_samples


class Executor:
    """Runs units; subclasses implement :meth:`run`.

    Args:
        jobs: worker threads or processes (at least 1).
        scheduler: where to reach an external scheduler (executors that have one), or
            ``None``.

    Class attributes:
        name: the registry name (``--executor NAME``).
        in_process: ``True`` if units run in this process, where models loaded from a spec
            may run in supervised worker processes (``--isolate``,
            :mod:`sertest.engine.isolate`); an executor with its own worker processes
            handles crashes itself.
    """

    name: ClassVar[str] = ""
    in_process: ClassVar[bool] = True

    def __init__(self, jobs: int = 1, scheduler: str | None = None) -> None:
        self.jobs = max(1, int(jobs))
        self.scheduler = scheduler

    def run(self, units: list[Unit], models: dict[str, Model],
            conditions: dict[str, Perturbation | None], *, seed: int,
            timeout: float | None, hung: set[str]) -> Iterator[UnitOutcome]:
        """Yield the outcome of every unit of ``units``, in any order.

        ``conditions``: condition key -> perturbation (``None``: clean audio); ``timeout``:
        per-batch model timeout in seconds; ``hung``: names of the models that timed out so
        far (the caller adds each outcome's), which an executor that can share it skips.
        """
        raise NotImplementedError


_HEAP_BOUND = [False]

#: glibc's mmap threshold in the audit's process (bytes): blocks from this size up are
#: mapped for themselves and unmapped when freed (:func:`bound_heap`)
MMAP_THRESHOLD = 16 * 2**20


def bound_heap() -> None:
    """Once per process: fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` (16 MiB).

    glibc's default raises the threshold to the largest freed block (up to 32 MiB), after
    which such blocks come from the heap and stay there, fragmented between worker threads:
    a 7-model audit peaked at 1.3 to 1.8 GB that way before onnxruntime's arenas were shrunk
    and the heap trimmed (:class:`HeapTrim`).  A fixed threshold keeps the largest blocks (a
    Wav2Small call's arena: 26 MB for 4 x 4 s) out of the heap.  It was 4 MiB before
    2026-11-30: then every onnxruntime arena chunk and torch activation of 4 to 16 MiB was a
    fresh ``mmap`` whose pages faulted in again at each model call, and the prediction stage
    of the 7-model ``default`` audit spent 58 s of system time on 23.7 million page faults
    (16 MiB: 42 s, 16.0 million); one thread, 20 calls of 8 signals of 2-4.5 s, CPU-seconds
    at 4 / 16 MiB: the teacher 1.54 / 1.24, Wav2Small 2.64 / 2.80 (int8 5.40 / 4.79),
    MobileNet-V4 0.62 / 0.54, V3 0.65 / 0.49 (benchmarks/README.md, "Many models in one
    audit", point 8).  A no-op where the C library is not glibc."""
    if _HEAP_BOUND[0]:
        return
    _HEAP_BOUND[0] = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD (fixed: no dynamic raise)
    except (OSError, AttributeError):
        pass


#: seconds between two returns of the heap's free pages to the system (:class:`HeapTrim`)
TRIM_INTERVAL_S = 2.0


def _malloc_trim():
    """glibc's ``malloc_trim``, or ``None`` where the C library is not glibc."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def trim_heap() -> bool:
    """Return the free pages inside glibc's heaps to the system now (``malloc_trim(0)``);
    ``False`` where the C library is not glibc.  Called between the audit's stages (after
    the prediction stage, after the checks), whose freed blocks would otherwise stay
    resident under the next stage's peak: :class:`HeapTrim` covers the prediction stage
    itself."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class HeapTrim:
    """Returns the free pages inside glibc's heaps to the system (``malloc_trim``), at most
    once every :data:`TRIM_INTERVAL_S` seconds, from the thread that consumes the units.

    The worker threads' perturbations and model calls free many blocks under the mmap
    threshold; glibc keeps them resident in each thread's arena (it only trims the top of a
    heap), so the process's RSS holds freed memory on top of its live data.  Measured on the
    7 reference models, ``quick`` suite (benchmarks/README.md, "Many models in one audit"):
    a ``malloc_trim`` right after the prediction stage gave back 165 MB of 813, and
    trimming during the stage lowered its peak RSS from 842-879 MB to 806 MB (every 0.5 s)
    and 813 MB (every 5 s).  Every trim makes the next allocations fault their pages in
    again: at 0.5 s the stage took about 6 % longer (two alternating pairs), at 5 s no
    measurable time.  Since the mmap threshold is 16 MiB (:func:`bound_heap`) the heap also
    takes the blocks of 4-16 MiB, and the interval is 2 s: the 7-model ``default`` audit's
    prediction stage, one run each with a 32 MiB threshold, peaked at 1,018 MB trimming
    every 5 s and at 996 MB every second (benchmarks/README.md, "Many models in one audit",
    point 8).  A no-op where the C library is not glibc."""

    def __init__(self, interval_s: float = TRIM_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.calls = 0
        self._last = time.monotonic()
        self._trim = _malloc_trim()

    def __call__(self) -> None:
        if self._trim is None or time.monotonic() - self._last < self.interval_s:
            return
        self._trim(0)
        self.calls += 1
        self._last = time.monotonic()


class LocalExecutor(Executor):
    """Threads of this process, each taking whole units.

    At most ``2 * jobs + 2`` units are in flight, and at most
    :data:`~sertest.engine.units.INFLIGHT_SAMPLES` samples of decoded audio (a long item
    runs with few others, or alone), so memory grows neither with the data nor with the
    items' lengths beyond one long item (:func:`~sertest.engine.units.run_unit`);
    models that are not :attr:`~sertest.models.base.Model.concurrent` are called by one
    thread at a time, concurrent ones run one thread per call
    (:meth:`~sertest.models.base.Model.use_threads`), so the workers use the cores without
    oversubscribing them and no output depends on the thread count.
    """

    name = "local"
    in_process = True

    def run(self, units, models, conditions, *, seed, timeout, hung):
        bound_heap()
        trim = HeapTrim()
        if self.jobs <= 1:
            one_thread_per_call(models)  # as with more workers: the same outputs
            for unit in units:
                yield run_unit(unit, models, conditions, seed, timeout, hung)
                trim()
            return
        guarded = _serialised(models)

        def work(unit: Unit) -> UnitOutcome:
            return run_unit(unit, guarded, conditions, seed, timeout, hung)

        # a bounded window of units in flight (in units and in samples), refilled as soon as
        # *any* unit finishes (waiting for the oldest would idle a worker behind one slow
        # item); the order of consumption does not matter: the store is keyed and errors
        # are sorted
        window = 2 * self.jobs + 2
        with ThreadPoolExecutor(self.jobs, thread_name_prefix="sertest-unit") as pool:
            queue = list(reversed(units))
            order: dict = {}  # future -> submission number
            weight: dict = {}  # future -> its unit's samples
            submitted = 0

            def fill() -> None:
                nonlocal submitted
                while queue and len(order) < window:
                    samples = unit_samples(queue[-1])
                    if order and sum(weight.values()) + samples > _units.INFLIGHT_SAMPLES:
                        return  # it waits for room (one unit always runs)
                    fut = pool.submit(work, queue.pop())
                    order[fut], weight[fut] = submitted, samples
                    submitted += 1

            fill()
            try:
                while order:
                    finished, _ = wait(list(order), return_when=FIRST_COMPLETED)
                    for fut in sorted(finished, key=order.__getitem__):
                        del order[fut], weight[fut]
                        fill()
                        yield fut.result()
                    trim()
            finally:
                for f in order:
                    f.cancel()


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


def _serialised(models: dict[str, Model]) -> dict[str, Model]:
    """The models as several worker threads may call them: concurrent ones with one thread
    per call, the others behind a lock."""
    one_thread_per_call(models)
    return {name: model if model.concurrent else _Serialised(model)
            for name, model in models.items()}


#: executor name -> its class, or ``"module:Class"`` imported on first use
_REGISTRY: dict[str, Any] = {
    "local": LocalExecutor,
    "dask": "sertest.engine.dask_executor:DaskExecutor",
    "batched": "sertest.engine.batched_executor:BatchedExecutor",
    "batched-processes": "sertest.engine.batched_executor:ProcessBatchedExecutor",
}


def register_executor(name: str, executor: type[Executor] | str) -> None:
    """Make ``executor`` (a subclass of :class:`Executor`, or ``"module:Class"``) available
    as ``--executor name``."""
    if name in _REGISTRY and _REGISTRY[name] != executor:
        raise TypeError(f"executor name {name!r} registered twice")
    _REGISTRY[name] = executor


def executor_names() -> list[str]:
    """The registered executor names, built-in ones first (``["local", "dask", ...]``)."""
    return list(_REGISTRY)


def check_executor(name: str) -> None:
    """Raise :class:`~sertest.errors.UsageError` naming the choices if ``name`` is not a
    registered executor."""
    if name not in _REGISTRY:
        raise UsageError(f"--executor {name!r}: use {' or '.join(executor_names())}")


def get_executor(name: str, jobs: int = 1, scheduler: str | None = None) -> Executor:
    """The executor registered as ``name``, set up for ``jobs`` workers (and ``scheduler``).

    >>> get_executor("local", jobs=2).jobs
    2
    """
    check_executor(name)
    entry = _REGISTRY[name]
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
    return entry(jobs=jobs, scheduler=scheduler)
