"""Resample weights drawn once and reused by every model of an audit.

The generator of a test's resamples depends on the audit seed, the test, the target and the
data, never on the model (common random numbers, see :mod:`sertest.stats.bootstrap`).  An
audit of ten models (seven audited, three random baselines) therefore draws the same weight
matrices ten times; the draws cost as much as the weighted metrics computed on them.  This
memo keeps the last matrices drawn, keyed by the **generator's state before the draw** and
the draw's shape and clusters, and hands out the same (read-only) arrays again, leaving the
generator in the state the draw would have left it in.  So a hit is indistinguishable from
drawing again: same numbers, same generator state afterwards (``tests/test_bootstrap.py``).

Memory is bounded by bytes (:data:`MAX_BYTES`, least recently used first out); a draw larger
than a quarter of it is not kept, so audits of many items draw as before.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

#: bytes of weight matrices kept (float64): about 12 matrices of 500 resamples x 968 items
MAX_BYTES = 48 * 2**20


def generator_key(rng: np.random.Generator) -> tuple:
    """The generator's full state as a hashable key (two generators with equal keys draw
    the same numbers)."""
    state = rng.bit_generator.state
    inner = state.get("state")
    if isinstance(inner, dict):
        inner = tuple(sorted(inner.items()))
    elif isinstance(inner, np.ndarray):
        inner = inner.tobytes()
    rest = tuple(sorted((k, v) for k, v in state.items()
                        if k != "state" and not isinstance(v, (dict, np.ndarray))))
    return (state.get("bit_generator"), inner, rest)


def array_digest(*arrays: Any) -> str:
    """A digest of arrays' dtypes, shapes and bytes (part of a draw's key)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if a is None:
            h.update(b"none\x00")
            continue
        a = np.asarray(a)
        if a.dtype == object:  # the values, not the addresses of the objects
            a = a.astype(str)
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class WeightMemo:
    """Least-recently-used store of ``key -> (blocks, generator state after the draw)``.

    ``blocks`` is a tuple of read-only arrays; ``max_bytes`` bounds their total size.
    """

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple, tuple[tuple[Any, ...], dict, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> tuple[tuple[Any, ...], dict] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0], entry[1]

    def put(self, key: tuple, blocks: tuple[Any, ...], state_after: dict) -> None:
        size = sum(b.nbytes for b in _arrays(blocks))
        if size > self.max_bytes // 4:
            return
        for b in _arrays(blocks):
            b.flags.writeable = False
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            self._entries[key] = (blocks, state_after, size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._entries:
                _, (_, _, s) = self._entries.popitem(last=False)
                self._bytes -= s

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)


def _arrays(blocks: tuple[Any, ...]):
    for b in blocks:
        if isinstance(b, np.ndarray):
            yield b
        elif isinstance(b, tuple):
            yield from _arrays(b)


#: the process's memo (weights depend only on the generator state and the draw's inputs)
MEMO = WeightMemo()
