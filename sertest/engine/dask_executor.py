"""Run audit units on a Dask cluster (``--executor dask --scheduler ADDRESS``).

A unit is one item (decode once, apply its conditions, run every model); a task carries a
few units (about 8 tasks per worker thread, at most 16 units each) to keep the scheduler's
per-task cost small; at most 4 tasks per worker thread are submitted and unfinished at a
time, topped up as tasks finish, so the scheduler never holds the whole audit's units.
Models and perturbations travel to the workers pickled once (ONNX sessions are
re-created there); inference runs one thread per task, so N single-threaded workers use N
cores and the outputs equal a local run's.
Results come back as plain data; the caller writes the cache and the results, so the
output is identical to a local run whatever the number of workers.

Models and conditions reach the workers through a worker plugin, which Dask also gives to
every worker started later (a restarted one included); scattered data would be lost with
the last worker holding it.  A model that cannot be pickled by reference, such as
``callable:path/to/file.py:function`` (workers cannot import the file as a module), travels
as its spec and is loaded by path on each worker (:class:`~sertest.engine.isolate.BySpec`).

An item that kills the worker running it (a segfault, ``abort()``, an out-of-memory kill) is
quarantined after one retry: when a task dies, each (item, model) of it runs again as a task
of its own; one that kills its worker again becomes that model's item errors for the item,
and the audit completes.  The in-process LocalCluster lets Dask itself retry nothing
(``distributed.scheduler.allowed-failures: 0``) and sends each single-threaded worker one
task at a time (``worker-saturation: 1.0``), so a dying worker takes only the task it was
running; an external scheduler retries as its configuration says before sertest's own
retry.
"""

from __future__ import annotations

import os
import time
from typing import Iterator

from ..errors import UsageError
from .executors import Executor
from .units import ItemError, UnitOutcome, infer_unit, one_thread_per_call, prepare_unit

try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ModuleNotFoundError:  # the dask extra is not installed: run_on_dask says so
    WorkerPlugin = object  # type: ignore[assignment,misc]


_MALLOC_TUNED = False


def _worker_setup(models) -> None:
    """Per task: single-threaded inference (one task per worker thread, as in a local run,
    so the outputs are the same; a no-op once set).  Once per worker process: glibc's
    adaptive malloc thresholds back.  Dask's nanny starts workers with
    ``MALLOC_TRIM_THRESHOLD_=65536``, which pins the mmap threshold at 128 KiB, so every
    signal-sized NumPy array is a fresh mmap and page-faults on first touch: the
    perturbations ran about 25 % slower (measured, docs in benchmarks/README.md)."""
    global _MALLOC_TUNED
    one_thread_per_call(models)
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD: arrays up to 32 MiB from the heap
        libc.mallopt(-1, 64 * 1024 * 1024)  # M_TRIM_THRESHOLD: return free heap above 64 MiB
    except (OSError, AttributeError):  # not glibc: nothing to undo
        pass


class _Payload(WorkerPlugin):
    """The audit's models and conditions, held by every worker (a Dask worker plugin) and
    unpickled there once, at first use."""

    def __init__(self, name: str, blob: bytes) -> None:
        self.name = name
        self.blob = blob
        self._loaded = None

    def get(self):
        import threading

        with _PAYLOAD_LOCK.setdefault(self.name, threading.Lock()):
            if self._loaded is None:
                import pickle

                self._loaded = pickle.loads(self.blob)
        return self._loaded


_PAYLOAD_LOCK: dict = {}


def _work(units, payload_name, seed, timeout):
    from distributed import get_worker

    models, conditions = get_worker().plugins[payload_name].get()
    _worker_setup(models)
    return [infer_unit(prepare_unit(u, conditions, seed), models, seed, timeout) for u in units]


def _shipped(models: dict) -> dict:
    """``models`` as they travel: those whose code workers cannot import by module name
    (``callable:path/to/file.py:function``) as their spec."""
    from ..models import parse_spec
    from .isolate import BySpec, isolatable

    out = {}
    for name, model in models.items():
        by_path = False
        if isolatable(model):
            _, kind, target = parse_spec(model.spec)
            by_path = kind == "callable" and target.rpartition(":")[0].endswith(".py")
        out[name] = BySpec(model) if by_path else model
    return out


def _one_model(unit, name: str):
    """``unit`` restricted to what model ``name`` still needs (``None`` if nothing)."""
    from dataclasses import replace

    needs = {}
    for sr, conds in unit.needs.items():
        mine = {ck: [name] for ck, names in conds.items() if name in names}
        if mine:
            needs[sr] = mine
    return replace(unit, needs=needs) if needs else None


def _quarantined(unit, exc: BaseException):
    """The item errors of a (unit, model) whose retry killed its worker again."""
    out = UnitOutcome(unit.item_id)
    for conds in unit.needs.values():
        for ck, names in sorted(conds.items()):
            for name in names:
                out.errors.append(ItemError(
                    unit.item_id, unit.file, "model",
                    f"the Dask worker running model {name!r} on this item died, and again on "
                    f"the retry ({type(exc).__name__}); the item is quarantined for this model "
                    "(the workers' log names the signal)", condition=ck, model=name))
    return out


def _merge(into, part) -> None:
    """Add a partial UnitOutcome (one model's retry) to the item's outcome."""
    into.rows.update(part.rows)
    into.errors.extend(part.errors)
    into.decoded = into.decoded or part.decoded
    into.decode_seconds += part.decode_seconds
    into.perturb_seconds += part.perturb_seconds
    for mine, theirs in ((into.model_seconds, part.model_seconds),
                         (into.audio_seconds, part.audio_seconds)):
        for k, v in theirs.items():
            mine[k] = mine.get(k, 0.0) + v
    into.hung |= part.hung


class DaskExecutor(Executor):
    """``--executor dask``: units on a Dask cluster, ``scheduler`` (an address) or, for
    ``None``, an in-process LocalCluster of ``jobs`` single-threaded worker processes
    (see the module docstring).  Workers skip no model that timed out elsewhere."""

    name = "dask"
    in_process = False

    def run(self, units, models, conditions, *, seed, timeout, hung):
        return run_on_dask(units, models, conditions, seed, timeout, self.scheduler,
                           n_workers=self.jobs)


def run_on_dask(units, models, conditions, seed, timeout, scheduler: str | None,
                n_workers: int | None = None) -> Iterator:
    """Yield a UnitOutcome per unit, computed on the cluster at ``scheduler``.

    ``scheduler=None`` starts an in-process LocalCluster with ``n_workers`` single-threaded
    worker processes (default: the number of CPUs).
    """
    try:
        from distributed import Client, LocalCluster, as_completed
    except ModuleNotFoundError as exc:
        raise UsageError("--executor dask needs dask.distributed: pip install 'sertest[dask]'") from exc
    import pickle
    import uuid
    from concurrent.futures import CancelledError

    import dask
    from distributed import KilledWorker

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        # a worker dying takes only the task it was running, which Dask does not retry
        with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                              "distributed.scheduler.worker-saturation": 1.0}):
            cluster = LocalCluster(n_workers=n_workers or os.cpu_count() or 1,
                                   threads_per_worker=1, processes=True, dashboard_address=None,
                                   env={"SERTEST_THREADS": "1", "OMP_NUM_THREADS": "1"})
        client = Client(cluster)
    name = f"sertest-payload-{uuid.uuid4().hex}"
    registered = False
    try:
        client.register_plugin(_Payload(name, pickle.dumps((_shipped(models), conditions))),
                               name=name)
        registered = True
        tasks = {}  # future -> (units, retry)
        chunks = _chunks(units, _chunk_size(len(units), _threads(client)))
        pending = as_completed()
        window = _Window(client)
        first = 0  # tasks of first attempts submitted and not yet finished

        def fill() -> None:
            # a window of tasks in flight, topped up as tasks finish: the scheduler (in this
            # process for a LocalCluster) holds the window's units, not the whole audit's
            nonlocal first
            while first < window.size():
                chunk = next(chunks, None)
                if chunk is None:
                    return
                fut = client.submit(_work, chunk, name, seed, timeout, pure=False)
                tasks[fut] = (chunk, False)
                pending.add(fut)
                first += 1

        fill()
        parts: dict[str, list] = {}  # item id -> [outcome so far, retries outstanding]
        for fut in pending:
            chunk, retry = tasks.pop(fut)
            if not retry:
                first -= 1
                fill()
            try:
                outcomes = fut.result()
            except (KilledWorker, CancelledError) as exc:
                if retry:  # the second death: quarantine the (item, model)
                    outcomes = [_quarantined(chunk[0], exc)]
                else:  # one retry for each (item, model) of the lost task
                    for unit in chunk:
                        subs = [s for s in (_one_model(unit, m) for m in models) if s]
                        parts[unit.item_id] = [None, len(subs)]
                        for sub in subs:
                            f = client.submit(_work, [sub], name, seed, timeout, pure=False)
                            tasks[f] = ([sub], True)
                            pending.add(f)
                    outcomes = []
            finally:
                fut.release()
            for outcome in outcomes:
                if outcome.item_id not in parts:
                    yield outcome
                    continue
                entry = parts[outcome.item_id]
                if entry[0] is None:
                    entry[0] = outcome
                else:
                    _merge(entry[0], outcome)
                entry[1] -= 1
                if entry[1] == 0:
                    yield parts.pop(outcome.item_id)[0]
    finally:
        if registered:
            try:
                client.unregister_worker_plugin(name)
            except Exception:  # noqa: BLE001 - the cluster is gone: nothing to unregister
                pass
        client.close()
        if cluster is not None:
            cluster.close()


#: tasks submitted and not finished, per worker thread of the cluster
IN_FLIGHT_PER_THREAD = 4


def _threads(client) -> int | None:
    """The cluster's worker threads now (``None`` if it cannot tell)."""
    try:
        return sum(client.nthreads().values())
    except Exception:  # noqa: BLE001 - an exotic cluster
        return None


class _Window:
    """How many tasks may be in flight: :data:`IN_FLIGHT_PER_THREAD` per worker thread,
    asked of the scheduler at most once a second, so workers that join a running cluster
    (an adaptive one) get work too."""

    def __init__(self, client) -> None:
        self._client = client
        self._asked = -1.0
        self._size = IN_FLIGHT_PER_THREAD

    def size(self) -> int:
        now = time.monotonic()
        if now - self._asked >= 1.0:
            self._asked = now
            self._size = IN_FLIGHT_PER_THREAD * max(1, _threads(self._client) or 0)
        return self._size


def _chunk_size(n_units: int, threads: int | None) -> int:
    """Units per task: few enough round trips to keep the scheduler's per-task cost small,
    enough tasks (about 8 per worker thread) to balance the load at the end; one unit per
    task on a cluster that cannot tell its threads."""
    if threads is None:
        return 1
    return max(1, min(16, n_units // (8 * max(1, threads))))


def _chunks(units: list, size: int) -> Iterator[list]:
    for i in range(0, len(units), size):
        yield units[i:i + size]
