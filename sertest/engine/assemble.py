"""Assemble an audit's results: the results document and its timings, from the plan, the
execution and the judged test entries.  Nothing here runs a model or a check.

The document's fields are described in docs/results-schema.md; the timings (wall-clock
figures, which differ from run to run) go to timings.json, never into the document.
"""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import time
from typing import Any

from .._version import __version__
from ..results import SCHEMA, Results, summarise
from .execute import Stats
from .plan import AuditPlan
from .signal_stats import warnings_from
from .store import PredictionStore
from .units import ItemError


def data_fingerprint(audio_hashes: dict[str, str]) -> str:
    """The audited data's digest: ``"sha256:"`` and the SHA-256 of the sorted (item id, audio
    content hash) pairs, one ``id<TAB>hash`` line each (the hashes the engine computed for the
    cache keys: file bytes plus segment bounds, see :func:`sertest.audio.content_hash`).

    It changes when an item is added, removed, renamed or its audio (or segment) changes,
    and does not depend on file paths, ``--jobs`` or the cache.  Labels are not part of it.

    >>> data_fingerprint({"b": "2", "a": "1"}) == data_fingerprint({"a": "1", "b": "2"})
    True
    """
    h = hashlib.sha256()
    for item_id, digest in sorted((str(k), v) for k, v in audio_hashes.items()):
        h.update(f"{item_id}\t{digest}\n".encode("utf-8", "surrogateescape"))
    return "sha256:" + h.hexdigest()


def document(plan: AuditPlan, tests: list[dict[str, Any]], store: PredictionStore,
             item_errors: list[ItemError], stats: Stats) -> dict[str, Any]:
    """The results document (``results.json``) of an audit, with its summary."""
    models, roles = plan.models, plan.roles
    doc = {
        "schema": SCHEMA,
        "sertest_version": __version__,
        "seed": plan.seed,
        "suite": plan.suite.to_dict(),
        "dataset": {**plan.dataset.describe(),
                    # only when some item was audited in windows (sertest.engine.segments)
                    **({"segmentation": {**stats.segment.to_dict(),
                                         "aggregation": "duration-weighted mean",
                                         "items": dict(sorted(stats.segmented.items()))}}
                       if stats.segmented else {}),
                    "fingerprint": data_fingerprint(stats.audio_hashes)},
        "reference": plan.reference,
        "models": [{"name": n, "role": roles[n], "fingerprint": models[n].fingerprint(),
                    "info": models[n].info().to_dict(),
                    **({"crashed": stats.crashes[n]} if n in stats.crashes else {}),
                    **plan.mismatches.get(n, {})}
                   for n in models if roles[n] != "feature"],
        "tests": tests,
        "items": {"total": len(plan.dataset), "errors": [e.to_dict() for e in item_errors],
                  "warnings": warnings_from(store.frame(plan.signal_stats.name, None))},
    }
    doc["summary"] = summarise(doc)
    return doc


def timings(plan: AuditPlan, stats: Stats, t_start: float, jobs: int | None,
            profile: bool = False) -> dict[str, Any]:
    """What the audit cost (``timings.json``): wall-clock and per-model seconds, real-time
    factors, peak memory; with ``profile`` each audited model's size and peak RAM measured
    in a subprocess (:mod:`sertest.efficiency`)."""
    out = {
        "wall_seconds": round(time.perf_counter() - t_start, 3),
        "execute_seconds": round(stats.wall_seconds, 3),
        "predictions": stats.predictions, "cached": stats.cached, "computed": stats.computed,
        "decoded_files": stats.decoded_files,
        "decode_seconds": round(stats.decode_seconds, 3),
        "perturb_seconds": round(stats.perturb_seconds, 3),
        "models": {n: {"model_seconds": round(stats.model_seconds.get(n, 0.0), 3),
                       "audio_seconds": round(stats.audio_seconds.get(n, 0.0), 3),
                       "real_time_factor": (round(stats.model_seconds[n] / stats.audio_seconds[n], 6)
                                            if stats.audio_seconds.get(n) else None)}
                   for n in plan.models},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "jobs": jobs, "python": platform.python_version(), "cpu_count": os.cpu_count(),
    }
    if profile:
        from ..efficiency import profile as profile_model

        out["efficiency"] = {}
        for n in plan.audited:
            m = plan.models[n]
            info = m.info()
            entry = {"parameters": info.parameters, "file_size": info.file_size}
            if getattr(m, "spec", None):
                entry.update(profile_model(m.spec, m.spec_options))
            out["efficiency"][n] = entry
    return out


def assemble(plan: AuditPlan, tests: list[dict[str, Any]], replicates: dict[str, Any],
             store: PredictionStore, item_errors: list[ItemError], stats: Stats,
             t_start: float, jobs: int | None, profile: bool = False) -> Results:
    """The :class:`~sertest.results.Results` of an audit (document, timings, replicates)."""
    doc = document(plan, tests, store, item_errors, stats)
    return Results(doc, timings=timings(plan, stats, t_start, jobs, profile),
                   replicates=replicates)
