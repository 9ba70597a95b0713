"""Signal statistics computed once per item on clean audio, like a feature extractor.

Run by the engine as a ``feature`` model, so the figures are cached with the predictions
and a warm re-run reports the same warnings without decoding anything.
"""

from __future__ import annotations

import numpy as np

from ..models.base import Model, ModelInfo

#: share of samples at full scale (|x| >= CLIP_LEVEL) above which an item is flagged
CLIP_WARNING = 0.001
CLIP_LEVEL = 0.999
ROLLOFF = 0.99  # share of the energy below the bandwidth estimate


def rolloff_hz(x: np.ndarray, sampling_rate: int, share: float = ROLLOFF) -> float:
    """Frequency (Hz) below which ``share`` of the signal's energy lies (Welch spectrum);
    NaN for silence.

    >>> t = np.arange(16000) / 16000
    >>> round(rolloff_hz(np.sin(2 * np.pi * 1000 * t), 16000) / 1000)
    1
    """
    from scipy.signal import welch

    if x.size < 64:
        return float("nan")
    freqs, psd = welch(x, fs=sampling_rate, nperseg=min(512, x.size))
    total = psd.sum()
    if not total > 0:
        return float("nan")
    cum = np.cumsum(psd) / total
    return float(freqs[min(int(np.searchsorted(cum, share)), len(freqs) - 1)])


class SignalStats(Model):
    """Outputs: ``clipped_fraction`` (share of samples at full scale), ``peak_dbfs``
    (dB re full scale), ``rms_dbfs`` (dB re full scale), ``duration_s`` (seconds) and
    ``bandwidth_hz`` (Hz): the spectral roll-off, the frequency below which
    :data:`ROLLOFF` of the energy lies (Welch power spectrum) - an item recorded at 8 kHz
    or through a phone channel shows about 3.5-4 kHz however it was resampled."""

    name = "signal-stats"
    dimensions = ("clipped_fraction", "peak_dbfs", "rms_dbfs", "duration_s", "bandwidth_hz")
    classes = ()
    output_range = None
    concurrent = True  # pure numpy, no state

    def __init__(self, sampling_rate: int = 16000) -> None:
        self.sampling_rate = int(sampling_rate)

    def predict_batch(self, signals: np.ndarray) -> np.ndarray:
        x = np.asarray(signals, dtype=np.float64)
        clipped = np.mean(np.abs(x) >= CLIP_LEVEL, axis=1)
        peak = 20 * np.log10(np.maximum(np.max(np.abs(x), axis=1), 1e-10))
        rms = 10 * np.log10(np.maximum(np.mean(x * x, axis=1), 1e-20))
        dur = np.full(len(x), x.shape[1] / self.sampling_rate)
        bandwidth = np.array([rolloff_hz(row, self.sampling_rate) for row in x])
        return np.stack([clipped, peak, rms, dur, bandwidth], axis=1)

    def fingerprint(self) -> str:
        return f"signal-stats:v2:{CLIP_LEVEL}:{ROLLOFF}"

    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, format="feature", sampling_rate=self.sampling_rate,
                         dimensions=self.dimensions)


def warnings_from(frame) -> list[dict]:
    """Per-item warnings (e.g. clipping) from the statistics table."""
    out = []
    for item_id, row in frame.iterrows():
        if row["clipped_fraction"] > CLIP_WARNING:
            out.append({"id": item_id,
                        "warning": f"clipped: {100 * row['clipped_fraction']:.2f} % of samples "
                                   "at full scale"})
    return out
