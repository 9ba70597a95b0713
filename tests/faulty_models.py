"""Callable models with planted defects (used through the ``callable:`` adapter)."""

from __future__ import annotations

import time

import numpy as np


def _level(signals):
    return np.minimum(np.sqrt(np.mean(np.square(signals, dtype=np.float64), axis=1)) * 3, 1.0)


def good(signals, sampling_rate):
    a = _level(signals)
    return {"arousal": a, "dominance": 0.5 + 0 * a, "valence": 0.5 + 0 * a}


def nan_on_short(signals, sampling_rate):
    out = good(signals, sampling_rate)
    if signals.shape[1] < 0.6 * sampling_rate:
        out["arousal"] = np.full(len(signals), np.nan)
    return out


def inf_always(signals, sampling_rate):
    out = good(signals, sampling_rate)
    out["valence"] = np.full(len(signals), np.inf)
    return out


def raises_on_long(signals, sampling_rate):
    if signals.shape[1] > 1.05 * sampling_rate:  # the adapter probes with 1 s at load time
        raise RuntimeError("planted failure on long input")
    return good(signals, sampling_rate)


def wrong_width(signals, sampling_rate):
    return np.zeros((len(signals), 2))


wrong_width.labels = ["arousal", "dominance", "valence"]


def wrong_count(signals, sampling_rate):
    return np.zeros((len(signals) + 1, 3))


wrong_count.labels = ["arousal", "dominance", "valence"]


def out_of_range(signals, sampling_rate):
    out = good(signals, sampling_rate)
    out["dominance"] = out["dominance"] + 7.0
    return out


def slow(signals, sampling_rate):
    time.sleep(0.15)
    return good(signals, sampling_rate)


def hangs(signals, sampling_rate):
    if signals.shape[1] > 1.05 * sampling_rate:  # the adapter probes with 1 s at load time
        time.sleep(60)
    return good(signals, sampling_rate)


def all_nan(signals, sampling_rate):
    return np.full((len(signals), 3), np.nan)


all_nan.labels = ["arousal", "dominance", "valence"]


def exits_zero(signals, sampling_rate):
    raise SystemExit(0)


exits_zero.labels = ["arousal", "dominance", "valence"]


def raises_keyboard_interrupt(signals, sampling_rate):
    raise KeyboardInterrupt


raises_keyboard_interrupt.labels = ["arousal", "dominance", "valence"]


def slightly_above(signals, sampling_rate):
    """1.3 everywhere: outside [0, 1] but within the 0.5 tolerance, so kept as predicted."""
    return np.full((len(signals), 3), 1.3)


slightly_above.labels = ["arousal", "dominance", "valence"]


def huge(signals, sampling_rate):
    """1e30 everywhere: clipped to 1.5 and counted."""
    return np.full((len(signals), 3), 1e30)


huge.labels = ["arousal", "dominance", "valence"]


# -- models that end the interpreter (tests/test_crash_isolation.py) --------------------
# Each crashes on a "poison" signal: one whose peak amplitude is above 0.9 (the tests plant
# one loud item); the load-time probe and the other items are quiet.

LABELS = ["arousal", "dominance", "valence"]


def _poison(signals) -> bool:
    return bool(np.max(np.abs(signals)) > 0.9)


def _segfault() -> None:
    import ctypes

    ctypes.string_at(0)  # reads address 0: SIGSEGV


def segfaults_on_loud(signals, sampling_rate):
    if _poison(signals):
        _segfault()
    return good(signals, sampling_rate)


def aborts_on_loud(signals, sampling_rate):
    if _poison(signals):
        import os

        os.abort()
    return good(signals, sampling_rate)


def exits_on_loud(signals, sampling_rate):
    if _poison(signals):
        import os

        os._exit(3)
    return good(signals, sampling_rate)


def oom_killed_on_loud(signals, sampling_rate):
    """What the kernel's out-of-memory killer does to a process: SIGKILL (simulated; a real
    allocation storm would endanger the machine running the tests)."""
    if _poison(signals):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    return good(signals, sampling_rate)


_CALLS = [0]


def segfaults_always(signals, sampling_rate):
    """Crashes on every call after the first one of its process (a model, not an item, at
    fault)."""
    _CALLS[0] += 1
    if _CALLS[0] > 1:
        _segfault()
    return good(signals, sampling_rate)


for _f in (segfaults_on_loud, aborts_on_loud, exits_on_loud, oom_killed_on_loud,
           segfaults_always):
    _f.labels = LABELS
