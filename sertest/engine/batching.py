"""Length buckets: model calls built from the signals of several items of similar length.

A GPU is kept busy by large calls, but one item under a suite's conditions gives few
signals.  The ``batched`` executor (:mod:`sertest.engine.batched_executor`) pools the
signals of a window of items and cuts them into buckets here:

- a model that masks padding (:attr:`~sertest.models.base.Model.pads_with_mask`: Hugging
  Face models that take an ``attention_mask``) gets buckets of signals whose lengths differ
  by at most ``spread`` (0.25: the longest is at most 25 % longer than the shortest), padded
  to the longest with the mask; its outputs equal one-at-a-time outputs within float32
  rounding (tested to 1e-5 in ``tests/test_devices.py``);
- any other model gets buckets of equal lengths only (nothing is padded).

Each bucket holds at most ``max_signals`` signals and ``max_samples`` samples once padded
(count x longest), which bounds one call's memory.  Buckets depend only on the lengths, so
the same window always gives the same calls.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..models.base import Model


def length_buckets(lengths: Sequence[int], *, max_signals: int, max_samples: int,
                   spread: float = 0.0) -> list[list[int]]:
    """Cut signals into calls of similar length.

    Args:
        lengths: samples of each signal.
        max_signals: most signals in one bucket (at least 1).
        max_samples: most samples of one padded bucket, count x longest (a longer signal
            still gets a bucket of its own).
        spread: the longest signal of a bucket is at most ``1 + spread`` times its shortest;
            0 gives equal lengths only.

    Returns:
        indices into ``lengths``, one list per bucket, shortest signals first; every index
        is in exactly one bucket.

    >>> length_buckets([100, 300, 100, 310, 50], max_signals=8, max_samples=10_000, spread=0.1)
    [[4], [0, 2], [1, 3]]
    >>> length_buckets([100, 100, 100], max_signals=2, max_samples=10_000)
    [[0, 1], [2]]
    >>> length_buckets([100, 100, 100], max_signals=8, max_samples=250)
    [[0, 1], [2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (int(lengths[i]), i))
    cap = max(1, int(max_signals))
    buckets: list[list[int]] = []
    for i in order:
        n = int(lengths[i])
        if buckets:
            current = buckets[-1]
            shortest = int(lengths[current[0]])
            if (len(current) < cap and n * (len(current) + 1) <= max_samples
                    and n <= shortest * (1.0 + spread)):
                current.append(i)
                continue
        buckets.append([i])
    return buckets


def padding_share(lengths: Sequence[int], buckets: list[list[int]]) -> float:
    """Share of the computed samples that are padding (0 for equal-length buckets).

    >>> padding_share([100, 80], [[0, 1]])
    0.1
    """
    real = sum(int(lengths[i]) for b in buckets for i in b)
    padded = sum(len(b) * max(int(lengths[i]) for i in b) for b in buckets)
    return 0.0 if not padded else round(1.0 - real / padded, 6)


def predict_bucket(model: Model, signals: list[np.ndarray]) -> np.ndarray:
    """One bucket's predictions, float64 ``(len(signals), len(outputs))``: equal lengths
    through :meth:`~sertest.models.base.Model.predict` (stacked), different lengths through
    :meth:`~sertest.models.base.Model.predict_padded` (masked padding)."""
    if len({len(s) for s in signals}) <= 1:
        return model.predict(signals)
    return model.predict_padded(signals)
