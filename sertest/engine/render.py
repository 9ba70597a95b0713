"""The signal a model hears under a condition: the one place that applies a perturbation.

The engine (:func:`sertest.engine.units.prepare_unit`) and the report's listening gallery
(:mod:`sertest.report.gallery`) both call :func:`condition_signal`, so the audio a report
plays back is the audio the model was given: the same perturbation, drawing from the same
generator, keyed by (audit seed, item id, condition key).
"""

from __future__ import annotations

import numpy as np

from ..perturb.base import Perturbation
from ..seeding import derive_rng
from .store import condition_key


def condition_rng(seed: int, item_id: str, key: str) -> np.random.Generator:
    """The generator a condition draws from for one item: ``derive_rng(seed, item_id, key)``
    (``key``: the condition key), whatever the worker, thread or order of processing."""
    return derive_rng(seed, item_id, key)


def condition_signal(signal: np.ndarray, sampling_rate: int, condition: Perturbation | None,
                     seed: int, item_id: str, key: str | None = None) -> np.ndarray:
    """``signal`` (mono, at ``sampling_rate`` Hz) of item ``item_id`` under ``condition``, as
    an audit with ``seed`` perturbs it; ``condition=None`` (clean audio) returns ``signal``.

    ``key``: the condition's key in the audit's plan (default and in every audit:
    :func:`~sertest.engine.store.condition_key` of ``condition``, its canonical spec).

    >>> import numpy as np
    >>> from sertest.perturb import from_spec
    >>> x = np.sin(np.linspace(0, 100, 16000)).astype(np.float32)
    >>> noisy = from_spec({"name": "white_noise", "snr_db": 10})
    >>> a = condition_signal(x, 16000, noisy, seed=0, item_id="spk1_001")
    >>> b = condition_signal(x, 16000, noisy, seed=0, item_id="spk1_001")
    >>> bool(np.array_equal(a, b)), bool(np.array_equal(a, x))
    (True, False)
    >>> condition_signal(x, 16000, None, seed=0, item_id="spk1_001") is x
    True
    """
    if condition is None:
        return signal
    key = condition_key(condition) if key is None else key
    return condition(signal, sampling_rate, condition_rng(seed, item_id, key))
