"""The ten "small changes" of the ser-tests catalogue (robustness_small_changes).

Parameters are exactly the catalogue's lists; one value is drawn per call from the generator
(so all ten are stochastic).  Values are defined at 16 kHz: sample counts are used as given
at every rate, and the two frequencies that can exceed Nyquist below 16 kHz (the low-pass
cutoff and the tone frequency) are scaled by ``sampling_rate / 16000`` there, keeping the
same fraction of the band.  The DSP is that of the general families (subclasses).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .base import Perturbation, register
from .filters import Clip, Gain, HighPass, LowPass
from .measure import check_number, check_range, peak
from .noise import WhiteNoise

REFERENCE_RATE = 16000
SAMPLE_COUNTS = [100, 500, 1000]


def _band_scale(sampling_rate: int) -> float:
    """1 at 16 kHz and above; ``sampling_rate / 16000`` below."""
    return min(1.0, sampling_rate / REFERENCE_RATE)


@register
class AdditiveTone(Perturbation):
    """Add a sine tone: frequency an integer drawn uniformly from ``freq_range_hz``
    (5000–7000 Hz inclusive; scaled by sr/16000 below 16 kHz), peak ``peak_snr_db`` dB below
    the signal's peak (40/45/50 dB), phase 0 at the first sample."""

    name = "additive_tone"
    description = "add a 5-7 kHz sine tone peak_snr_db (dB) below the signal peak"
    defaults = {"freq_range_hz": [5000, 7000], "peak_snr_db": [40, 45, 50]}
    list_params: ClassVar[tuple[str, ...]] = ("freq_range_hz",)
    stochastic = True

    def validate(self) -> None:
        check_range(self, "freq_range_hz", low=1, integer=True)
        check_number(self, "peak_snr_db", low=-60.0, high=200.0)

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        params = super().draw(rng)
        lo, hi = params["freq_range_hz"]
        params["freq_hz"] = int(rng.integers(int(lo), int(hi) + 1))
        return params

    def apply(self, signal, sampling_rate, rng, params):
        freq = params["freq_hz"] * _band_scale(sampling_rate)
        amplitude = peak(signal) * 10.0 ** (-float(params["peak_snr_db"]) / 20.0)
        t = np.arange(signal.size) / sampling_rate
        return (signal + amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


class _Samples(Perturbation):
    defaults = {"samples": SAMPLE_COUNTS}
    stochastic = True
    length_preserving = False

    def validate(self) -> None:
        check_number(self, "samples", low=0, integer=True)


@register
class AppendZeros(_Samples):
    """Append ``samples`` zeros (100/500/1000) at the end; not length-preserving."""

    name = "append_zeros"
    description = "append samples (100|500|1000) zeros at the end"

    def apply(self, signal, sampling_rate, rng, params):
        return np.concatenate([signal, np.zeros(int(params["samples"]), np.float32)])


@register
class PrependZeros(_Samples):
    """Prepend ``samples`` zeros (100/500/1000) at the start; not length-preserving."""

    name = "prepend_zeros"
    description = "prepend samples (100|500|1000) zeros at the start"

    def apply(self, signal, sampling_rate, rng, params):
        return np.concatenate([np.zeros(int(params["samples"]), np.float32), signal])


@register
class CropBeginning(_Samples):
    """Remove ``samples`` (100/500/1000) from the start — at most half the signal, so a
    short signal is never emptied; not length-preserving."""

    name = "crop_beginning"
    description = "remove samples (100|500|1000, at most half) from the start"

    def apply(self, signal, sampling_rate, rng, params):
        k = min(int(params["samples"]), signal.size // 2)
        return signal[k:]


@register
class CropEnd(_Samples):
    """Remove ``samples`` (100/500/1000) from the end — at most half the signal; not
    length-preserving."""

    name = "crop_end"
    description = "remove samples (100|500|1000, at most half) from the end"

    def apply(self, signal, sampling_rate, rng, params):
        k = min(int(params["samples"]), signal.size // 2)
        return signal[: signal.size - k]


@register
class ClipSmall(Clip):
    """Hard-clip a fraction 0.001/0.002/0.003 of the samples (auglib ClipByRatio)."""

    name = "clip_small"
    description = "hard-clip the fraction ratio (0.001|0.002|0.003) of samples"
    defaults = {"ratio": [0.001, 0.002, 0.003]}
    stochastic = True


@register
class GainSmall(Gain):
    """Gain of −2/−1/1/2 dB."""

    name = "gain_small"
    description = "gain by gain_db (-2|-1|1|2 dB)"
    defaults = {"gain_db": [-2, -1, 1, 2]}
    stochastic = True


@register
class HighPassSmall(HighPass):
    """First-order Butterworth high-pass at 50/100/150 Hz."""

    name = "high_pass_small"
    description = "order-1 Butterworth high-pass at cutoff_hz (50|100|150 Hz)"
    defaults = {"cutoff_hz": [50, 100, 150], "order": 1}
    stochastic = True


@register
class LowPassSmall(LowPass):
    """First-order Butterworth low-pass at 7500/7000/6500 Hz (× sr/16000 below 16 kHz)."""

    name = "low_pass_small"
    description = "order-1 Butterworth low-pass at cutoff_hz (7500|7000|6500 Hz at 16 kHz)"
    defaults = {"cutoff_hz": [7500, 7000, 6500], "order": 1}
    stochastic = True

    def cutoff(self, params: dict[str, Any], sampling_rate: int) -> float:
        return float(params["cutoff_hz"]) * _band_scale(sampling_rate)


@register
class WhiteNoiseSmall(WhiteNoise):
    """Gaussian white noise at an RMS SNR of 35/40/45 dB (mixing rule of :mod:`.noise`)."""

    name = "white_noise_small"
    description = "Gaussian white noise at snr_db (35|40|45 dB, RMS)"
    defaults = {"snr_db": [35, 40, 45]}


SMALL_CHANGES: tuple[str, ...] = (
    "additive_tone", "append_zeros", "clip_small", "crop_beginning", "crop_end", "gain_small",
    "high_pass_small", "low_pass_small", "prepend_zeros", "white_noise_small",
)
