"""Run audit units on a Dask cluster (``--executor dask --scheduler ADDRESS``).

A unit is one item (decode once, apply its conditions, run every model); a task carries a
few units (about 8 tasks per worker thread, at most 16 units each) to keep the scheduler's
per-task cost small.  Models and perturbations travel to the workers pickled once (ONNX
sessions are re-created there); inference runs one thread per task, so N single-threaded
workers use N cores and the outputs equal a local run's.
Results come back as plain data; the caller writes the cache and the results, so the
output is identical to a local run whatever the number of workers.
"""

from __future__ import annotations

import os
from typing import Iterator

from ..errors import UsageError


_MALLOC_TUNED = False


def _worker_setup(models) -> None:
    """Per task: single-threaded inference (one task per worker thread, as in a local run,
    so the outputs are the same; a no-op once set).  Once per worker process: glibc's
    adaptive malloc thresholds back.  Dask's nanny starts workers with
    ``MALLOC_TRIM_THRESHOLD_=65536``, which pins the mmap threshold at 128 KiB, so every
    signal-sized NumPy array is a fresh mmap and page-faults on first touch: the
    perturbations ran about 25 % slower (measured, docs in benchmarks/README.md)."""
    global _MALLOC_TUNED
    from .execute import one_thread_per_call

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


def _work(units, models, conditions, seed, timeout):
    from .execute import infer_unit, prepare_unit

    _worker_setup(models)
    return [infer_unit(prepare_unit(u, conditions, seed), models, seed, timeout) for u in units]


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
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1,
                               processes=True, dashboard_address=None,
                               env={"SERTEST_THREADS": "1", "OMP_NUM_THREADS": "1"})
        client = Client(cluster)
    try:
        models_f = client.scatter(models, broadcast=True)
        conditions_f = client.scatter(conditions, broadcast=True)
        futures = [client.submit(_work, chunk, models_f, conditions_f, seed, timeout, pure=False)
                   for chunk in _chunks(units, _chunk_size(len(units), client))]
        for fut in as_completed(futures):
            yield from fut.result()
            fut.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _chunk_size(n_units: int, client) -> int:
    """Units per task: few enough round trips to keep the scheduler's per-task cost small,
    enough tasks (about 8 per worker thread) to balance the load at the end."""
    try:
        threads = sum(client.nthreads().values()) or 1
    except Exception:  # noqa: BLE001 - an exotic cluster: fall back to one unit per task
        return 1
    return max(1, min(16, n_units // (8 * threads)))


def _chunks(units: list, size: int) -> Iterator[list]:
    for i in range(0, len(units), size):
        yield units[i:i + size]
