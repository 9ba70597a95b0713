"""Acoustic features that sertest computes itself, run by the engine like models.

A feature extractor follows the :class:`~sertest.models.base.Model` protocol: the engine
runs it once per item on clean audio, caches its output under its fingerprint, and checks
read it with ``ctx.prediction(extractor.name, output)``.  Feature extractors are never
audited.

:class:`F0Estimator` gives the mean fundamental frequency (F0, Hz) of an utterance, used by
``fairness_pitch`` to form low / medium / high pitch groups.  ser-tests used Praat's
autocorrelation pitch tracker (parselmouth ``to_pitch()`` defaults); sertest uses its own
YIN estimator (de Cheveigné & Kawahara, 2002), written in numpy, deterministic and fast
(about 10 ms per second of audio, analysed at 8 kHz), with a voicing decision from YIN's
aperiodicity and the frame energy.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
import scipy.signal

from .models.base import Model, ModelInfo

#: internal analysis rate in Hz: F0 lies far below 4 kHz, so signals are resampled to 8 kHz
#: first (4x less work than at 16 kHz).
ANALYSIS_RATE = 8000

#: F0 value returned when an utterance has no reliable F0 (no voiced frame, or a mean
#: outside ``valid_range``).  The engine records non-finite model outputs as item errors,
#: so "unknown" is 0 Hz rather than NaN; checks treat ``f0 <= 0`` as missing.
NO_F0 = 0.0


class F0Estimator(Model):
    """Mean F0 in Hz over the voiced frames of a signal (YIN).

    Per frame (``window`` s long, every ``hop`` s) the cumulative mean normalised
    difference function d'(tau) is computed for periods tau between 1/``fmax`` and
    1/``fmin``; the first dip below ``threshold`` (refined to the minimum of that dip and
    by parabolic interpolation) gives the period.  A frame is voiced if such a dip exists
    and its RMS lies within ``gate_db`` dB of the loudest frame.  Octave errors are
    suppressed by keeping only voiced frames within a factor ``octave_guard`` of the
    median voiced F0; the output is the mean of those frames.  ser-tests' rule is kept:
    a mean outside ``valid_range`` (50-350 Hz) counts as "no F0" and gives :data:`NO_F0`.

    Output: one column ``f0`` (Hz).  Deterministic; no random state.
    """

    batchable = True
    #: outputs are in Hz, not in the [0, 1] range of emotion dimensions
    output_range = None
    concurrent = True  # pure numpy, no state

    def __init__(self, name: str = "sertest-f0", sampling_rate: int = 16000,
                 fmin: float = 50.0, fmax: float = 500.0, threshold: float = 0.15,
                 window: float = 0.032, hop: float = 0.010, gate_db: float = 30.0,
                 octave_guard: float = 1.5, valid_range: tuple[float, float] = (50.0, 350.0)
                 ) -> None:
        if not 0 < fmin < fmax:
            raise ValueError(f"F0Estimator: need 0 < fmin < fmax, got fmin={fmin}, fmax={fmax}")
        self.name = name
        self.sampling_rate = int(sampling_rate)
        self.dimensions = ("f0",)
        self.classes = ()
        self.fmin, self.fmax, self.threshold = float(fmin), float(fmax), float(threshold)
        self.window, self.hop, self.gate_db = float(window), float(hop), float(gate_db)
        self.octave_guard = float(octave_guard)
        self.valid_range = (float(valid_range[0]), float(valid_range[1]))
        self._rate = min(self.sampling_rate, ANALYSIS_RATE)  # Hz
        if not fmax < self._rate / 2:
            raise ValueError(f"F0Estimator: fmax must be below {self._rate / 2} Hz")
        self._win = max(2, int(round(window * self._rate)))  # samples
        self._hop = max(1, int(round(hop * self._rate)))  # samples
        self._tau_min = max(2, int(np.floor(self._rate / fmax)))  # samples
        self._tau_max = int(np.ceil(self._rate / fmin))  # samples
        self._nfft = scipy.fft.next_fast_len(2 * self._win + self._tau_max, real=True)

    # -- Model protocol ------------------------------------------------------------
    def predict_batch(self, signals: np.ndarray) -> np.ndarray:
        signals = np.asarray(signals, dtype=np.float64)
        return np.array([[self.mean_f0(x)] for x in signals], dtype=np.float64)

    def fingerprint(self) -> str:
        return (f"sertest-f0:yin:v2:sr={self.sampling_rate}:fmin={self.fmin:g}:"
                f"fmax={self.fmax:g}:thr={self.threshold:g}:win={self.window:g}:"
                f"hop={self.hop:g}:gate={self.gate_db:g}:guard={self.octave_guard:g}:"
                f"range={self.valid_range[0]:g}-{self.valid_range[1]:g}")

    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, format="feature", sampling_rate=self.sampling_rate,
                         dimensions=self.dimensions, parameters=0,
                         extra={"feature": "mean F0 over voiced frames (YIN), Hz; 0 = none"})

    # -- the estimator -------------------------------------------------------------
    def track(self, signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame-wise F0 (Hz) and voicing flags of a mono signal at :attr:`sampling_rate`."""
        x = np.asarray(signal, dtype=np.float64).ravel()
        if self._rate != self.sampling_rate:
            g = math.gcd(self._rate, self.sampling_rate)
            x = scipy.signal.resample_poly(x, self._rate // g, self.sampling_rate // g)
        w, tmax = self._win, self._tau_max
        span = w + tmax
        if x.size < span:
            x = np.concatenate([x, np.zeros(span - x.size)])
        n_frames = 1 + (x.size - span) // self._hop
        frames = np.lib.stride_tricks.sliding_window_view(x, span)[::self._hop][:n_frames]
        frames = frames - frames.mean(axis=1, keepdims=True)
        # d(tau) = e(0) + e(tau) - 2 r(tau), with r the cross-correlation of the first
        # `w` samples with the frame, and e(tau) the energy of samples tau .. tau+w-1.
        head = np.zeros((n_frames, self._nfft))
        head[:, :w] = frames[:, :w]
        spec_f = scipy.fft.rfft(frames, self._nfft, axis=1)
        spec_h = scipy.fft.rfft(head, axis=1)
        r = scipy.fft.irfft(np.conj(spec_h) * spec_f, self._nfft, axis=1)[:, :tmax + 1]
        csum = np.concatenate([np.zeros((n_frames, 1)), np.cumsum(frames ** 2, axis=1)], axis=1)
        taus = np.arange(tmax + 1)
        energy = csum[:, taus + w] - csum[:, taus]
        d = np.maximum(energy[:, :1] + energy - 2.0 * r, 0.0)
        d[:, 0] = 0.0
        cum = np.cumsum(d[:, 1:], axis=1)
        dn = np.ones_like(d)
        np.divide(d[:, 1:] * taus[1:], cum, out=dn[:, 1:], where=cum > 0)

        lo = self._tau_min
        sub = dn[:, lo:tmax]  # candidate periods tau_min .. tau_max-1 (keeps tau+1 in range)
        below = sub < self.threshold
        has = below.any(axis=1)
        first = np.argmax(below, axis=1)
        idx = np.arange(sub.shape[1])
        # the dip = the run of sub-threshold values starting at `first`
        after = idx[None, :] >= first[:, None]
        ends = np.where(after & ~below, idx[None, :], sub.shape[1])
        stop = ends.min(axis=1)
        in_dip = after & (idx[None, :] < stop[:, None])
        best = np.argmin(np.where(in_dip, sub, np.inf), axis=1) + lo
        rows = np.arange(n_frames)
        y0, y1, y2 = dn[rows, best - 1], dn[rows, best], dn[rows, best + 1]
        curve = y0 - 2.0 * y1 + y2
        shift = np.zeros(n_frames)
        np.divide(y0 - y2, 2.0 * curve, out=shift, where=np.abs(curve) > 1e-12)
        shift = np.clip(shift, -1.0, 1.0)
        f0 = self._rate / (best + shift)

        rms = np.sqrt(energy[:, 0] / w)
        loud = rms.max() if n_frames else 0.0
        gate = loud * 10.0 ** (-self.gate_db / 20.0)
        voiced = has & (rms > max(gate, 1e-5)) & (f0 >= self.fmin) & (f0 <= self.fmax)
        return f0, voiced

    def mean_f0(self, signal: np.ndarray) -> float:
        """Mean F0 (Hz) over the voiced frames of ``signal``; :data:`NO_F0` if none."""
        x = np.asarray(signal, dtype=np.float64).ravel()
        if x.size == 0 or not np.any(x):
            return NO_F0
        f0, voiced = self.track(x)
        values = f0[voiced]
        if values.size == 0:
            return NO_F0
        med = float(np.median(values))
        kept = values[(values >= med / self.octave_guard) & (values <= med * self.octave_guard)]
        mean = float(kept.mean()) if kept.size else med
        if not self.valid_range[0] <= mean <= self.valid_range[1]:
            return NO_F0
        return mean


__all__ = ["F0Estimator", "NO_F0"]
