"""Run audit units on a Dask cluster (``--executor dask --scheduler ADDRESS``).

Each unit (one item: decode once, apply its conditions, run every model) is one task.
Models and perturbations travel to the workers pickled (ONNX sessions are re-created
there); each worker process runs inference single-threaded, so N workers use N cores.
Results come back as plain data; the caller writes the cache and the results, so the
output is identical to a local run whatever the number of workers.
"""

from __future__ import annotations

import os
from typing import Iterator

from ..errors import UsageError


def _work(unit, models, conditions, seed, timeout):
    os.environ.setdefault("SERTEST_THREADS", "1")
    from .execute import infer_unit, prepare_unit

    return infer_unit(prepare_unit(unit, conditions, seed), models, seed, timeout)


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
        futures = [client.submit(_work, u, models_f, conditions_f, seed, timeout, pure=False)
                   for u in units]
        for fut in as_completed(futures):
            yield fut.result()
            fut.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
