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


class SignalStats(Model):
    """Outputs: ``clipped_fraction`` (share of samples at full scale), ``peak_dbfs``
    (dB re full scale), ``rms_dbfs`` (dB re full scale), ``duration_s`` (seconds)."""

    name = "signal-stats"
    dimensions = ("clipped_fraction", "peak_dbfs", "rms_dbfs", "duration_s")
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
        return np.stack([clipped, peak, rms, dur], axis=1)

    def fingerprint(self) -> str:
        return f"signal-stats:v1:{CLIP_LEVEL}"

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
