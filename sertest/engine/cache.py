"""Prediction cache: one row per (model fingerprint, audio content hash, condition, seed).

A SQLite file written in transactions (WAL journal), so an audit killed at any moment
leaves a consistent cache and a re-run resumes where it stopped.  :func:`prediction_key` and
:func:`model_prediction_key` are the single place that knows what a prediction depends on
(the engine asks them for every key and decides none of it).

The cache can only help, never cost an audit: a cache that cannot be used is reported in
ONE warning naming the cause (and ``sertest cache clear`` where that helps) and the audit
goes on without it (:attr:`PredictionCache.problem`):

* a read-only folder or file: cached predictions are read, new ones are not stored;
* a full disk (``SQLITE_FULL``) or any other write failure: nothing more is stored;
* a corrupt or truncated file, or a table written by a newer sertest (``PRAGMA
  user_version`` above :data:`TABLE_VERSION`, or other columns): the file is not used.

Predictions of a model that cannot be fingerprinted (:data:`VOLATILE`) are kept in memory
for this process only, never in the file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from urllib.parse import quote

import numpy as np

# a model fingerprint starting with VOLATILE is not stable across processes (see
# :meth:`sertest.models.base.Model.fingerprint`): its predictions stay in memory
from ..models.base import VOLATILE
from . import units as _units

log = logging.getLogger("sertest")

#: 2: perturbation versions and the call pattern (signals per call) enter the key, and the
#: engine calls ONNX sessions with one thread (both can change a model's outputs)
SCHEMA_VERSION = "2"
#: layout of the SQLite file (``PRAGMA user_version``): 1 = ``predictions(key, value)``;
#: files without a version (0) hold the same table and are upgraded on open
TABLE_VERSION = 1
_CLEAR_HINT = ("`sertest cache clear` removes it (or pass another --cache folder, or "
               "--no-cache)")


def default_cache_dir() -> str:
    """``$SERTEST_CACHE``, else ``$XDG_CACHE_HOME/sertest``, else ``~/.cache/sertest``."""
    if os.environ.get("SERTEST_CACHE"):
        return os.environ["SERTEST_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sertest")


def prediction_key(model_fingerprint: str, audio_hash: str, condition_key: str,
                   sampling_rate: int, seed: int | None = None, item_id: str | None = None,
                   condition_version: int | str = 0, max_batch: int | None = None,
                   segment: str | None = None, call_samples: int | None = None) -> str:
    """The cache key of one prediction.

    ``seed`` and ``item_id`` enter only when the condition or the model draws random numbers
    (their generator derives from them); deterministic predictions are shared across seeds.
    ``condition_version`` is the perturbation's
    :attr:`~sertest.perturb.base.Perturbation.cache_version` (its implementation version,
    those of the parts it uses and the digest of the files it reads), ``max_batch``
    the most signals per model call and ``call_samples`` the most samples per call
    (:func:`sertest.engine.units.model_call_samples`, which splits a batch of long signals):
    kernels may differ in the last bit between batch sizes (the reference teacher by about
    1e-7), which a quantised model can amplify into a visible change.
    A model fingerprint starting with :data:`VOLATILE` gives a key starting with it too.
    ``segment`` (``"WINDOW:HOP"``, seconds) enters only for an item audited in windows
    (:mod:`sertest.engine.segments`): other items keep the keys they have without it.
    """
    parts = [SCHEMA_VERSION, model_fingerprint, audio_hash, condition_key, str(int(sampling_rate)),
             f"v={condition_version}", f"batch<={max_batch}"]
    if call_samples is not None:
        parts.append(f"call<={int(call_samples)}")
    if segment is not None:
        parts.append(f"segment={segment}")
    if seed is not None:
        parts += [f"seed={int(seed)}", f"id={item_id}"]
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogateescape")).hexdigest()
    return VOLATILE + digest if model_fingerprint.startswith(VOLATILE) else digest


def model_prediction_key(model, audio_hash: str, condition_key: str, condition, seed: int,
                         item_id: str, segment: str | None = None) -> str:
    """The cache key of ``model``'s prediction of one item under one condition: decides
    what of the model and the condition enters :func:`prediction_key`.

    Args:
        model: the :class:`~sertest.models.base.Model` (its fingerprint, sampling rate,
            whether it draws random numbers and how many signals it takes per call).
        audio_hash: the content hash of the item's audio (:func:`sertest.audio.content_hash`).
        condition_key: the condition's key (``"clean"`` or its canonical spec).
        condition: the :class:`~sertest.perturb.base.Perturbation`, ``None`` for clean audio
            (its :attr:`~sertest.perturb.base.Perturbation.cache_version` enters the key).
        seed, item_id: the audit seed and the item; they enter only when the condition or
            the model is stochastic.
        segment: the :attr:`~sertest.engine.segments.Segmentation.key` of an item audited
            in windows, ``None`` for one audited whole.
    """
    random_part = (condition is not None and condition.stochastic) or model.stochastic
    return prediction_key(
        model.fingerprint(), audio_hash, condition_key, model.sampling_rate,
        seed if random_part else None, item_id if random_part else None,
        condition_version=condition.cache_version if condition is not None else 0,
        max_batch=model.max_batch if model.batchable else 1, segment=segment,
        call_samples=_units.model_call_samples(model))


class PredictionCache:
    """A persistent key -> float vector store.  ``path=None`` keeps it in memory.

    Attributes:
        problem: why the file is not (fully) used, or ``None``; logged once as a warning.
        writable: whether new predictions reach the file.
    """

    def __init__(self, path: str | None = None, *, max_mb: float | None = None) -> None:
        """``max_mb``: most megabytes the file may grow to; past it writes fail like on a
        full disk (the cache then stops storing, with one warning)."""
        self.path = path
        self._lock = threading.Lock()
        self._memory: dict[str, np.ndarray] = {}  # volatile keys, and everything if no file
        self._conn: sqlite3.Connection | None = None
        self.problem: str | None = None
        self.writable = True
        self.hits = 0
        self.misses = 0
        #: whether predictions that do not reach the file (no file, a full disk, a model
        #: without a fingerprint) are kept in memory for later look-ups in this process;
        #: the audit turns it off when nothing looks them up again (no check predicts on
        #: demand), which spares about 300 bytes a prediction
        self.keep_in_memory = True
        if not path:
            return
        try:
            self._conn = self._connect(path, max_mb)
        except (sqlite3.Error, OSError) as exc:
            self._disable(f"cannot be opened ({_cause(exc)})", corrupt=_corrupt(exc))

    # -- opening -------------------------------------------------------------------
    def _connect(self, path: str, max_mb: float | None) -> sqlite3.Connection | None:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                   timeout=60)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                if not self._check_table(conn, create=True):
                    conn.close()
                    return None
            except BaseException:
                conn.close()
                raise
        except (sqlite3.Error, OSError) as exc:
            if _corrupt(exc) or not os.path.isfile(path):
                raise
            return self._connect_read_only(path, exc)
        if max_mb is not None:
            page = int(conn.execute("PRAGMA page_size").fetchone()[0])
            conn.execute(f"PRAGMA max_page_count={max(1, int(max_mb * 1e6 // page))}")
        return conn

    def _connect_read_only(self, path: str, why: BaseException) -> sqlite3.Connection | None:
        """A cache we may not write: read it (``mode=ro``; ``immutable=1`` where a read-only
        folder keeps SQLite from making its WAL index), store nothing new."""
        uri = "file:" + _quote(os.path.abspath(path))
        last: BaseException = why
        for query in ("?mode=ro", "?mode=ro&immutable=1"):
            try:
                conn = sqlite3.connect(uri + query, uri=True, check_same_thread=False,
                                       isolation_level=None, timeout=60)
            except sqlite3.Error as exc:
                last = exc
                continue
            try:
                if not self._check_table(conn, create=False):
                    conn.close()
                    return None
            except sqlite3.Error as exc:
                conn.close()
                last = exc
                if _corrupt(exc):
                    raise
                continue
            self.writable = False
            self._warn(f"is read-only ({_cause(why)}): cached predictions are used, new ones "
                       "are not stored")
            return conn
        raise last

    def _check_table(self, conn: sqlite3.Connection, create: bool) -> bool:
        """``True`` if ``conn`` holds (or, with ``create``, now holds) this sertest's table;
        otherwise the cache is disabled with the reason and ``False`` returned."""
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > TABLE_VERSION:
            self._disable(f"was written by a newer sertest (cache schema {version}; this "
                          f"sertest reads {TABLE_VERSION})", corrupt=True)
            return False
        columns = [r[1] for r in conn.execute("PRAGMA table_info(predictions)")]
        if not columns:
            if not create:
                self._disable("holds no predictions table", corrupt=True)
                return False
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE IF NOT EXISTS predictions "
                         "(key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            conn.execute(f"PRAGMA user_version={TABLE_VERSION}")
            conn.execute("COMMIT")
        elif columns != ["key", "value"]:
            self._disable(f"has a predictions table of another layout (columns {columns})",
                          corrupt=True)
            return False
        elif version < TABLE_VERSION and create:
            conn.execute(f"PRAGMA user_version={TABLE_VERSION}")
        return True

    @classmethod
    def open(cls, cache: str | bool | None) -> "PredictionCache":
        """``True``/``None`` -> default folder; ``False`` -> memory only; a str -> that folder."""
        if cache is False:
            return cls(None)
        folder = default_cache_dir() if cache in (None, True) else str(cache)
        return cls(os.path.join(folder, "predictions.sqlite"))

    # -- degrading -----------------------------------------------------------------
    def _warn(self, text: str) -> None:
        if self.problem is None:
            self.problem = f"prediction cache {self.path} {text}"
            log.warning("%s", self.problem)

    def _disable(self, cause: str, *, corrupt: bool = False) -> None:
        """Stop using the file (keep this run's predictions in memory, if
        :attr:`keep_in_memory`); warn once."""
        hint = f"; {_CLEAR_HINT}" if corrupt else ""
        self._warn(f"{cause}: the audit goes on without it{hint}")
        self.writable = False
        self._drop_connection()

    # -- access --------------------------------------------------------------------
    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            stored = []
            for k in keys:
                if k in self._memory:
                    found[k] = self._memory[k]
                elif not k.startswith(VOLATILE):
                    stored.append(k)
            try:
                for start in range(0, len(stored) if self._conn else 0, 500):
                    chunk = stored[start:start + 500]
                    q = (f"SELECT key, value FROM predictions WHERE key IN "
                         f"({','.join('?' * len(chunk))})")
                    for k, v in self._conn.execute(q, chunk):  # type: ignore[union-attr]
                        found[k] = np.frombuffer(v, dtype=np.float64).copy()
            except sqlite3.Error as exc:
                self._disable(f"cannot be read ({_cause(exc)})", corrupt=_corrupt(exc))
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        """Store all items in one transaction (all or nothing); a failing write (full disk,
        read-only file) disables writing with one warning, never raises."""
        if not items:
            return
        with self._lock:
            rows = []
            for k, v in items.items():
                if self._conn is None or not self.writable or k.startswith(VOLATILE):
                    if self.keep_in_memory:
                        self._memory[k] = np.asarray(v, dtype=np.float64)
                else:
                    rows.append((k, np.asarray(v, dtype=np.float64).tobytes()))
            if not rows:
                return
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT OR REPLACE INTO predictions (key, value) VALUES (?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:  # SQLite may have rolled back already (SQLITE_FULL)
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                if not isinstance(exc, (sqlite3.Error, OSError)):
                    raise
                for k, v in items.items():
                    if self.keep_in_memory:
                        self._memory[k] = np.asarray(v, dtype=np.float64)
                if _corrupt(exc):
                    self._disable(f"cannot be written ({_cause(exc)})", corrupt=True)
                else:
                    self.writable = False
                    full = "full" in str(exc).lower()
                    self._warn(f"cannot be written ({_cause(exc)}): the audit goes on without "
                               "storing new predictions"
                               + ("; free disk space or run `sertest cache clear`" if full
                                  else ""))

    def __len__(self) -> int:
        """Predictions in the file (0 if it cannot be read) plus those kept in memory."""
        with self._lock:
            n = len(self._memory)
            if self._conn is None:
                return n
            try:
                return n + int(self._conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])
            except sqlite3.Error as exc:
                self._disable(f"cannot be read ({_cause(exc)})", corrupt=_corrupt(exc))
                return n

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    def _drop_connection(self) -> None:
        """Close the database connection, if any (errors on closing are of no use now)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass


def _cause(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _corrupt(exc: BaseException) -> bool:
    """Whether ``exc`` says the file's content is unusable (clearing it helps)."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and any(
        s in text for s in ("not a database", "malformed", "corrupt", "encrypted"))


def _quote(path: str) -> str:
    return quote(path, safe="/")
