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
#: the band edge lies where the power spectrum falls this far (dB) below its peak
EDGE_FLOOR_DB = 60.0


def welch_psd(x: np.ndarray, sampling_rate: int, nperseg: int = 512
              ) -> tuple[np.ndarray, np.ndarray]:
    r"""Welch's power spectral density (V**2/Hz) of each row of ``x``: Hann-windowed
    segments of ``nperseg`` samples with half overlap, each with its mean removed, the
    one-sided periodograms averaged - the estimate of ``scipy.signal.welch`` with its
    defaults, computed for all segments (and rows) in one FFT call instead of one per
    segment (about 3 times faster on a 1.4-s signal; the same values to rounding).

    Returns ``(freqs, psd)``: frequencies (Hz) of the ``nperseg // 2 + 1`` bins and the
    densities, of shape ``x.shape[:-1] + (bins,)``.

    .. math::

        P(f) = \frac{c_f}{K f_s \sum_n w_n^2} \sum_{k=1}^{K} \Big|\sum_n w_n
        (x_{k,n} - \bar x_k) \, e^{-2 \pi i f n / f_s}\Big|^2

    over the :math:`K` segments :math:`x_k` with window :math:`w`, sampling rate
    :math:`f_s` (Hz), :math:`c_f = 2` except at 0 Hz and the Nyquist frequency.

    >>> from scipy.signal import welch
    >>> x = np.random.default_rng(0).standard_normal(16000)
    >>> f, p = welch_psd(x, 16000)
    >>> f_ref, p_ref = welch(x, fs=16000, nperseg=512)
    >>> bool(np.allclose(p, p_ref, rtol=1e-12)) and bool(np.array_equal(f, f_ref))
    True
    """
    from scipy.signal import get_window

    x = np.asarray(x, dtype=np.float64)
    if nperseg < 1 or x.shape[-1] < nperseg:
        raise ValueError(f"need at least nperseg={nperseg} samples, got {x.shape[-1]}")
    step = nperseg - nperseg // 2
    frames = np.lib.stride_tricks.sliding_window_view(x, nperseg, axis=-1)[..., ::step, :]
    window = get_window("hann", nperseg)
    spectra = np.fft.rfft((frames - frames.mean(axis=-1, keepdims=True)) * window, axis=-1)
    psd = np.mean(spectra.real ** 2 + spectra.imag ** 2, axis=-2)
    psd /= sampling_rate * np.sum(window * window)
    last = None if nperseg % 2 else -1  # the Nyquist bin (even nperseg) is not doubled
    psd[..., 1:last] *= 2.0
    return np.fft.rfftfreq(nperseg, 1.0 / sampling_rate), psd


def band_edge_hz(x: np.ndarray, sampling_rate: int, floor_db: float = EDGE_FLOOR_DB) -> float:
    """Effective bandwidth (Hz): the highest frequency at which the Welch power spectrum
    (:func:`welch_psd`, 512-sample segments) is within ``floor_db`` dB of its peak; NaN
    for silence.

    Audio sampled at 8 kHz (or sent through a phone channel) and resampled keeps almost no
    energy above 4 kHz, so its edge lies at about 3.4-4 kHz, while wideband speech carries
    fricative and breath energy up to the Nyquist frequency, 40-60 dB below its voiced
    peak.  (A spectral roll-off - the frequency below which 99 % of the energy lies - cannot
    tell them apart: low-pitched wideband voices put 99 % of their energy below 4 kHz.
    Measured on 200 items of the bundled corpus: wideband edges 5.8-7.9 kHz, the same
    items through 8 kHz sampling 3.9 kHz at most.)

    >>> rng = np.random.default_rng(0)
    >>> noise = rng.standard_normal(16000)
    >>> round(band_edge_hz(noise, 16000) / 1000)
    8
    >>> from sertest.audio import resample
    >>> narrow = resample(resample(noise.astype(np.float32), 16000, 8000), 8000, 16000)
    >>> band_edge_hz(narrow, 16000) <= 4200
    True
    """
    if x.size < 64:
        return float("nan")
    freqs, psd = welch_psd(x, sampling_rate, nperseg=min(512, x.size))
    peak = psd.max()
    if not peak > 0:
        return float("nan")
    above = np.nonzero(psd > peak * 10.0 ** (-floor_db / 10.0))[0]
    return float(freqs[above[-1]])


class SignalStats(Model):
    """Outputs: ``clipped_fraction`` (share of samples at full scale), ``peak_dbfs``
    (dB re full scale), ``rms_dbfs`` (dB re full scale), ``duration_s`` (seconds) and
    ``bandwidth_hz`` (Hz): the effective bandwidth (:func:`band_edge_hz`) - an item
    recorded at 8 kHz or through a phone channel shows about 3.4-4 kHz however it was
    resampled."""

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
        bandwidth = np.array([band_edge_hz(row, self.sampling_rate) for row in x])
        return np.stack([clipped, peak, rms, dur, bandwidth], axis=1)

    def aggregate_windows(self, rows: np.ndarray, seconds: np.ndarray, total_s: float
                          ) -> np.ndarray:
        """The statistics of an item audited in windows (:mod:`sertest.engine.segments`)
        from its windows' ``rows`` of durations ``seconds`` (s): the clipped fraction and
        the bandwidth (Hz) averaged by duration, the peak the highest of the windows, the
        RMS from the duration-weighted mean power, the duration the item's ``total_s``."""
        w = np.asarray(seconds, dtype=np.float64) / np.sum(seconds)
        rows = np.asarray(rows, dtype=np.float64)
        power = np.sum(w * 10.0 ** (rows[:, 2] / 10.0))
        return np.array([np.sum(w * rows[:, 0]), np.max(rows[:, 1]),
                         10 * np.log10(max(power, 1e-20)), float(total_s),
                         np.sum(w * rows[:, 4])])

    def fingerprint(self) -> str:
        return f"signal-stats:v4:{CLIP_LEVEL}:{EDGE_FLOOR_DB}"

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
