"""Prediction cache: one row per (model fingerprint, audio content hash, condition, seed).

A SQLite file written in transactions (WAL journal), so an audit killed at any moment
leaves a consistent cache and a re-run resumes where it stopped.  :func:`prediction_key` is
the single place that knows what a prediction depends on.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading

import numpy as np

#: 2: perturbation versions and the call pattern (signals per call) enter the key, and the
#: engine calls ONNX sessions with one thread (both can change a model's outputs)
SCHEMA_VERSION = "2"


def default_cache_dir() -> str:
    """``$SERTEST_CACHE``, else ``$XDG_CACHE_HOME/sertest``, else ``~/.cache/sertest``."""
    if os.environ.get("SERTEST_CACHE"):
        return os.environ["SERTEST_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sertest")


def prediction_key(model_fingerprint: str, audio_hash: str, condition_key: str,
                   sampling_rate: int, seed: int | None = None, item_id: str | None = None,
                   condition_version: int = 0, max_batch: int | None = None) -> str:
    """The cache key of one prediction.

    ``seed`` and ``item_id`` enter only when the condition or the model draws random numbers
    (their generator derives from them); deterministic predictions are shared across seeds.
    ``condition_version`` is the perturbation's implementation version and ``max_batch``
    the most signals per model call: onnxruntime's kernels may differ in the last bit
    between batch sizes, which a quantised model can amplify into a visible change.
    """
    parts = [SCHEMA_VERSION, model_fingerprint, audio_hash, condition_key, str(int(sampling_rate)),
             f"v={int(condition_version)}", f"batch<={max_batch}"]
    if seed is not None:
        parts += [f"seed={int(seed)}", f"id={item_id}"]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


class PredictionCache:
    """A persistent key -> float vector store.  ``path=None`` keeps it in memory."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path or ":memory:", check_same_thread=False,
                                     isolation_level=None, timeout=60)
        if path:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS predictions "
                           "(key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        self.hits = 0
        self.misses = 0

    @classmethod
    def open(cls, cache: str | bool | None) -> "PredictionCache":
        """``True``/``None`` -> default folder; ``False`` -> memory only; a str -> that folder."""
        if cache is False:
            return cls(None)
        folder = default_cache_dir() if cache in (None, True) else str(cache)
        return cls(os.path.join(folder, "predictions.sqlite"))

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                q = f"SELECT key, value FROM predictions WHERE key IN ({','.join('?' * len(chunk))})"
                for k, v in self._conn.execute(q, chunk):
                    found[k] = np.frombuffer(v, dtype=np.float64).copy()
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        """Store all items in one transaction (all or nothing)."""
        if not items:
            return
        rows = [(k, np.asarray(v, dtype=np.float64).tobytes()) for k, v in items.items()]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO predictions (key, value) VALUES (?, ?)", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
