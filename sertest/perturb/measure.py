"""Levels and parameter checks shared by the perturbation families.

Level helpers (linear amplitude, dB with the 20 log10 convention):

- :func:`measured_snr_db` -- ``10 log10(sum(clean^2) / sum(noise^2))`` of two components.
- :func:`peak_limit` -- scale down only if the peak exceeds 1.0 (full scale).
- :func:`peak_normalise` -- scale so that the peak is exactly 1.0 (0 dBFS).
- :func:`restore_rms` -- scale ``y`` to the RMS of a reference signal.

Parameter checks raise :class:`~sertest.errors.UsageError` naming the perturbation and the
parameter.  A parameter given as a list (one value drawn per call) is checked element-wise.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..errors import UsageError
from .base import Perturbation, rms

_TINY = 1e-20


# -- levels ------------------------------------------------------------------------------
def measured_snr_db(clean: np.ndarray, mixture_noise: np.ndarray) -> float:
    """SNR in dB of two mixture components: ``10 log10(rms(clean)^2 / rms(noise)^2)``.

    Both arrays must have the same length.  Returns ``inf`` for a silent noise component.
    """
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(mixture_noise, dtype=np.float64)
    if clean.shape != noise.shape:
        raise ValueError(f"measured_snr_db: shapes differ: {clean.shape} vs {noise.shape}")
    p_noise = float(np.mean(noise**2))
    p_clean = float(np.mean(clean**2))
    if p_noise <= 0.0:
        return float("inf")
    if p_clean <= 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(p_clean / p_noise))


def peak(x: np.ndarray) -> float:
    """Largest absolute sample value (linear amplitude, 1.0 = full scale)."""
    return float(np.max(np.abs(x))) if x.size else 0.0


def peak_limit(x: np.ndarray, limit: float = 1.0) -> np.ndarray:
    """Scale ``x`` down so that its peak is ``limit`` -- only if the peak exceeds it."""
    p = peak(x)
    return x * (limit / p) if p > limit else x


def peak_normalise(x: np.ndarray, target: float = 1.0) -> np.ndarray:
    """Scale ``x`` so that its peak equals ``target`` (silence is returned unchanged)."""
    p = peak(x)
    return x * (target / p) if p > _TINY else x


def restore_rms(y: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Scale ``y`` to the RMS of ``reference`` (silence is returned unchanged)."""
    r_y = rms(y)
    return y * (rms(reference) / r_y) if r_y > _TINY else y


# -- parameter checks ----------------------------------------------------------------------
def values_of(p: Perturbation, key: str) -> list[Any]:
    """The value(s) of parameter ``key``: a list parameter yields its elements."""
    value = p.params[key]
    return list(value) if isinstance(value, list) else [value]


def check_number(p: Perturbation, key: str, *, low: float | None = None,
                 high: float | None = None, integer: bool = False,
                 strict_low: bool = False, allow_none: bool = False) -> None:
    """Every value of ``key`` is a number in ``[low, high]`` (``(low, high]`` if strict_low)."""
    vals = values_of(p, key)
    if isinstance(p.params[key], list) and not vals:
        raise UsageError(f"perturbation {p.name!r}: parameter {key} is an empty list")
    for v in vals:
        if v is None and allow_none:
            continue
        ok_type = isinstance(v, (int, float)) and not isinstance(v, bool)
        if ok_type and integer and float(v) != int(v):
            ok_type = False
        if not ok_type or not np.isfinite(v):
            kind = "an integer" if integer else "a finite number"
            raise UsageError(f"perturbation {p.name!r}: parameter {key}={v!r} must be {kind}")
        if low is not None and (v < low or (strict_low and v == low)):
            rel = ">" if strict_low else ">="
            raise UsageError(f"perturbation {p.name!r}: parameter {key}={v!r} must be {rel} {low}")
        if high is not None and v > high:
            raise UsageError(f"perturbation {p.name!r}: parameter {key}={v!r} must be <= {high}")


def check_choice(p: Perturbation, key: str, choices: Iterable[str]) -> None:
    """Every value of ``key`` is one of ``choices``."""
    choices = tuple(choices)
    vals = values_of(p, key)
    if isinstance(p.params[key], list) and not vals:
        raise UsageError(f"perturbation {p.name!r}: parameter {key} is an empty list")
    for v in vals:
        if v not in choices:
            raise UsageError(f"perturbation {p.name!r}: parameter {key}={v!r} must be one of "
                             f"{', '.join(map(str, choices))}")


def check_range(p: Perturbation, key: str, *, low: float | None = None,
                high: float | None = None, integer: bool = False) -> None:
    """Parameter ``key`` is a ``[min, max]`` pair of numbers with ``min <= max``."""
    v = p.params[key]
    if (not isinstance(v, list) or len(v) != 2
            or not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in v)
            or v[0] > v[1]):
        raise UsageError(f"perturbation {p.name!r}: parameter {key}={v!r} must be a "
                         f"[min, max] pair of numbers")
    if integer and any(float(e) != int(e) for e in v):
        raise UsageError(f"perturbation {p.name!r}: parameter {key}={v!r} must hold integers")
    if low is not None and v[0] < low:
        raise UsageError(f"perturbation {p.name!r}: parameter {key}={v!r} must be >= {low}")
    if high is not None and v[1] > high:
        raise UsageError(f"perturbation {p.name!r}: parameter {key}={v!r} must be <= {high}")


def check_below_nyquist(p: Perturbation, key: str, value_hz: float, sampling_rate: int) -> None:
    """A frequency parameter must lie below the Nyquist frequency ``sampling_rate / 2``."""
    nyquist = sampling_rate / 2.0
    if value_hz >= nyquist:
        raise UsageError(
            f"perturbation {p.name!r}: parameter {key}={value_hz!r} Hz is not below the Nyquist "
            f"frequency {nyquist:g} Hz at sampling rate {sampling_rate} Hz")
