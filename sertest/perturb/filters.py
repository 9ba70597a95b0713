"""Filters and level changes: high/low/band-pass, spectral tilt, gain, clipping, compression.

Butterworth filters and gain run through audiomentations with *frozen* parameters:
audiomentations draws parameters from the global ``random``/``np.random`` state in
``randomize_parameters``; :func:`run_audiomentations` sets ``transform.parameters`` itself and
freezes them, so that method never runs and no global random state is read or changed.
All filters here are deterministic (``stochastic = False``) unless a parameter is a list.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from scipy.signal import fftconvolve, firwin2

from ..errors import UsageError
from .base import Perturbation, db_to_amplitude, register
from .measure import check_below_nyquist, check_choice, check_number, restore_rms

TILT_TAPS = 1023
TILT_REFERENCE_HZ = 8000.0


def run_audiomentations(transform: Any, parameters: dict[str, Any], signal: np.ndarray,
                        sampling_rate: int) -> np.ndarray:
    """Apply an audiomentations transform with the given parameters and no random draw.

    ``parameters`` are the values the transform's ``randomize_parameters`` would have drawn
    (e.g. ``{"cutoff_freq": 300.0, "rolloff": 24}``); ``should_apply`` is forced True.
    """
    transform.parameters = {**parameters, "should_apply": True}
    transform.freeze_parameters()
    return np.asarray(transform(np.ascontiguousarray(signal, dtype=np.float32), sampling_rate),
                      dtype=np.float32)


def butterworth(signal: np.ndarray, sampling_rate: int, btype: str, order: int,
                cutoff_hz: float | tuple[float, float]) -> np.ndarray:
    """Causal Butterworth filter of ``order`` (6·order dB/octave per edge) via audiomentations.

    ``btype``: ``"lowpass"``/``"highpass"`` (``cutoff_hz`` a number) or ``"bandpass"``
    (``cutoff_hz = (low, high)``; scipy's band-pass of order N has N poles per edge).
    The filter state starts as if the first sample had lasted forever (no start click).
    """
    from audiomentations import BandPassFilter, HighPassFilter, LowPassFilter

    rolloff = 6 * int(order)
    if btype == "bandpass":
        low, high = (float(f) for f in cutoff_hz)  # type: ignore[union-attr]
        centre = (low + high) / 2.0
        transform = BandPassFilter(min_center_freq=centre, max_center_freq=centre,
                                   min_bandwidth_fraction=(high - low) / centre,
                                   max_bandwidth_fraction=(high - low) / centre,
                                   min_rolloff=rolloff, max_rolloff=rolloff,
                                   zero_phase=False, p=1.0)
        parameters = {"center_freq": centre, "bandwidth": high - low, "rolloff": rolloff}
    else:
        cls = LowPassFilter if btype == "lowpass" else HighPassFilter
        cutoff = float(cutoff_hz)  # type: ignore[arg-type]
        transform = cls(min_cutoff_freq=cutoff, max_cutoff_freq=cutoff, min_rolloff=rolloff,
                        max_rolloff=rolloff, zero_phase=False, p=1.0)
        parameters = {"cutoff_freq": cutoff, "rolloff": rolloff}
    return run_audiomentations(transform, parameters, signal, sampling_rate)


class _Butterworth(Perturbation):
    btype = "lowpass"
    defaults = {"cutoff_hz": 1000.0, "order": 4}

    def validate(self) -> None:
        check_number(self, "cutoff_hz", low=0.0, strict_low=True)
        check_number(self, "order", low=1, high=16, integer=True)

    def cutoff(self, params: dict[str, Any], sampling_rate: int) -> float:
        """The cutoff in Hz used at ``sampling_rate`` (subclasses may adapt it)."""
        return float(params["cutoff_hz"])

    def apply(self, signal, sampling_rate, rng, params):
        cutoff = self.cutoff(params, sampling_rate)
        check_below_nyquist(self, "cutoff_hz", cutoff, sampling_rate)
        return butterworth(signal, sampling_rate, self.btype, int(params["order"]), cutoff)


@register
class HighPass(_Butterworth):
    """Causal Butterworth high-pass: ``cutoff_hz`` (Hz, −3 dB), ``order`` (6·order dB/octave).
    A cutoff at or above Nyquist raises UsageError naming ``cutoff_hz``."""

    name = "high_pass"
    description = "Butterworth high-pass at cutoff_hz (Hz), order (6 dB/octave each)"
    defaults = {"cutoff_hz": 300.0, "order": 4}
    btype = "highpass"


@register
class LowPass(_Butterworth):
    """Causal Butterworth low-pass: ``cutoff_hz`` (Hz, −3 dB), ``order`` (6·order dB/octave).
    A cutoff at or above Nyquist raises UsageError naming ``cutoff_hz``."""

    name = "low_pass"
    description = "Butterworth low-pass at cutoff_hz (Hz), order (6 dB/octave each)"
    defaults = {"cutoff_hz": 3400.0, "order": 4}
    btype = "lowpass"


@register
class BandPass(Perturbation):
    """Causal Butterworth band-pass from ``low_hz`` to ``high_hz`` (−3 dB edges, Hz);
    ``order`` poles per edge.  ``high_hz`` at or above Nyquist raises UsageError."""

    name = "band_pass"
    description = "Butterworth band-pass low_hz..high_hz (Hz), order per edge"
    defaults = {"low_hz": 300.0, "high_hz": 3400.0, "order": 4}

    def validate(self) -> None:
        check_number(self, "low_hz", low=0.0, strict_low=True)
        check_number(self, "high_hz", low=0.0, strict_low=True)
        check_number(self, "order", low=1, high=16, integer=True)

    def apply(self, signal, sampling_rate, rng, params):
        low, high = float(params["low_hz"]), float(params["high_hz"])
        if low >= high:
            raise UsageError(f"perturbation {self.name!r}: parameter low_hz={low} must be "
                             f"below high_hz={high}")
        check_below_nyquist(self, "high_hz", high, sampling_rate)
        return butterworth(signal, sampling_rate, "bandpass", int(params["order"]), (low, high))


# -- spectral tilt ------------------------------------------------------------------------------
def tilt_gain(freqs_hz: np.ndarray, direction: str) -> np.ndarray:
    """Target linear magnitude of the spectral tilt at ``freqs_hz``.

    Magnitude linear in frequency, as the ser-tests impulse responses measure at 16 kHz:
    ``down``: ``max(0, 1 − f/8000)`` (≈0 dB at 100 Hz, −6 dB at 4 kHz, −12 dB at 6 kHz);
    ``up``: ``min(2, f/4000)`` (−18 dB at 500 Hz, −6 dB at 2 kHz, 0 dB at 4 kHz, +6 dB at
    8 kHz; held at +6 dB above 8 kHz).  Defined in Hz, so the same at every sampling rate.
    """
    f = np.asarray(freqs_hz, dtype=float)
    if direction == "down":
        return np.clip(1.0 - f / TILT_REFERENCE_HZ, 0.0, None)
    return np.minimum(f / (TILT_REFERENCE_HZ / 2.0), 2.0)


@functools.lru_cache(maxsize=32)
def tilt_fir(direction: str, sampling_rate: int) -> np.ndarray:
    """Linear-phase FIR (``TILT_TAPS`` taps, firwin2, Hamming window) for the tilt.

    1023 taps rather than the catalogue's 1024: an odd length is a type-I filter with an
    integer delay of 511 samples (exact alignment) and no forced zero at Nyquist.
    """
    freqs = np.linspace(0.0, sampling_rate / 2.0, 513)
    taps = firwin2(TILT_TAPS, freqs, tilt_gain(freqs, direction), fs=sampling_rate)
    taps.setflags(write=False)
    return taps


@register
class SpectralTilt(Perturbation):
    """Spectral tilt (``direction`` down|up), magnitude linear in frequency (see
    :func:`tilt_gain`): 1023-tap linear-phase FIR, convolution trimmed by the 511-sample delay
    (aligned, same length), then the input RMS is restored."""

    name = "spectral_tilt"
    description = "linear-in-frequency spectral tilt down|up (down: -6 dB at 4 kHz), RMS restored"
    defaults = {"direction": "down"}

    def validate(self) -> None:
        check_choice(self, "direction", ("down", "up"))

    def apply(self, signal, sampling_rate, rng, params):
        taps = tilt_fir(params["direction"], sampling_rate)
        y = fftconvolve(signal.astype(np.float64), taps, mode="same")
        return restore_rms(y, signal).astype(np.float32)


# -- level changes ----------------------------------------------------------------------------
@register
class Gain(Perturbation):
    """Multiply by ``10 ** (gain_db / 20)`` (audiomentations Gain); no clipping."""

    name = "gain"
    description = "gain by gain_db (dB), no clipping"
    defaults = {"gain_db": -6.0}

    def validate(self) -> None:
        check_number(self, "gain_db", low=-120.0, high=120.0)

    def apply(self, signal, sampling_rate, rng, params):
        from audiomentations import Gain as AmGain

        g = float(params["gain_db"])
        transform = AmGain(min_gain_db=g, max_gain_db=g, p=1.0)
        return run_audiomentations(transform, {"amplitude_ratio": db_to_amplitude(g)},
                                   signal, sampling_rate)


def clip_by_ratio(signal: np.ndarray, ratio: float) -> np.ndarray:
    """Hard-clip symmetrically at the amplitude that ``floor(ratio · n)`` samples exceed.

    Like auglib ClipByRatio (not audiomentations ClippingDistortion, whose threshold is
    an integer percentage and asymmetric percentiles, so 0.1 % is impossible).
    """
    n = signal.size
    k = int(np.floor(float(ratio) * n))
    if k <= 0:
        return signal
    magnitude = np.abs(signal)
    threshold = np.partition(magnitude, n - k - 1)[n - k - 1] if k < n else 0.0
    return np.clip(signal, -threshold, threshold)


@register
class Clip(Perturbation):
    """Hard clipping of a fraction ``ratio`` of the samples (auglib ClipByRatio)."""

    name = "clip"
    description = "hard-clip the fraction ratio (0..1) of samples with the largest magnitude"
    defaults = {"ratio": 0.01}

    def validate(self) -> None:
        check_number(self, "ratio", low=0.0, high=1.0)

    def apply(self, signal, sampling_rate, rng, params):
        return clip_by_ratio(signal, float(params["ratio"]))


def compress_dynamic_range(signal: np.ndarray, sampling_rate: int, threshold_db: float,
                           ratio: float, attack_s: float, release_s: float,
                           knee_db: float = 4.0, makeup_db: float = 0.0,
                           clip: bool = False) -> np.ndarray:
    """Feed-forward peak compressor (soft knee), gain computed on 1 ms blocks.

    ``ratio`` follows auglib's convention as we read it ("the higher the ratio, the stronger
    the gain reduction"; the catalogue uses 0.8): the fraction of the level above
    ``threshold_db`` that is removed, so 0 = no compression, 0.5 = 2:1, 0.8 = 5:1, 1 = limiter.
    Level: block peak in dBFS; soft knee of half-width ``knee_db`` around the threshold;
    gain reduction smoothed by one-pole attack/release (time constants in s), linearly
    interpolated to samples; then ``makeup_db`` and optional clipping to [−1, 1].
    """
    x = np.asarray(signal, dtype=np.float64)
    n = x.size
    if n == 0:
        return x
    hop = max(1, int(round(0.001 * sampling_rate)))
    blocks = int(np.ceil(n / hop))
    padded = np.zeros(blocks * hop)
    padded[:n] = np.abs(x)
    level_db = 20.0 * np.log10(np.maximum(padded.reshape(blocks, hop).max(axis=1), 1e-10))
    over = level_db - float(threshold_db)
    knee = max(float(knee_db), 0.0)
    reduction = np.where(over > knee, ratio * over, 0.0)
    if knee > 0:
        in_knee = np.abs(over) <= knee
        reduction[in_knee] = ratio * (over[in_knee] + knee) ** 2 / (4.0 * knee)
    a_att = np.exp(-hop / (max(attack_s, 1e-6) * sampling_rate))
    a_rel = np.exp(-hop / (max(release_s, 1e-6) * sampling_rate))
    smoothed = np.empty(blocks)
    state = 0.0
    for i, target in enumerate(reduction.tolist()):
        a = a_att if target > state else a_rel
        state = a * state + (1.0 - a) * target
        smoothed[i] = state
    centres = (np.arange(blocks) + 0.5) * hop
    gain_db = np.interp(np.arange(n), centres, -smoothed) + float(makeup_db)
    y = x * 10.0 ** (gain_db / 20.0)
    return np.clip(y, -1.0, 1.0) if clip else y


@register
class CompressDynamicRange(Perturbation):
    """Dynamic range compression (see :func:`compress_dynamic_range`): ``threshold_db``
    (dBFS), ``ratio`` (0..1, fraction of the overshoot removed; 0.8 = 5:1), ``attack_s`` and
    ``release_s`` (s), ``knee_db`` (dB), ``makeup_db`` (dB), ``clip`` (to [−1, 1])."""

    name = "compress_dynamic_range"
    description = "compressor: threshold_db (dBFS), ratio 0..1 (0.8=5:1), attack_s/release_s (s)"
    defaults = {"threshold_db": -20.0, "ratio": 0.8, "attack_s": 0.01, "release_s": 0.02,
                "knee_db": 4.0, "makeup_db": 0.0, "clip": False}

    def validate(self) -> None:
        check_number(self, "threshold_db", low=-120.0, high=0.0)
        check_number(self, "ratio", low=0.0, high=1.0)
        check_number(self, "attack_s", low=0.0, high=10.0, strict_low=True)
        check_number(self, "release_s", low=0.0, high=10.0, strict_low=True)
        check_number(self, "knee_db", low=0.0, high=40.0)
        check_number(self, "makeup_db", low=-60.0, high=60.0)
        if not isinstance(self.params["clip"], bool):
            raise UsageError(f"perturbation {self.name!r}: parameter clip="
                             f"{self.params['clip']!r} must be true or false")

    def apply(self, signal, sampling_rate, rng, params):
        return compress_dynamic_range(
            signal, sampling_rate, float(params["threshold_db"]), float(params["ratio"]),
            float(params["attack_s"]), float(params["release_s"]), float(params["knee_db"]),
            float(params["makeup_db"]), bool(params["clip"])).astype(np.float32)
