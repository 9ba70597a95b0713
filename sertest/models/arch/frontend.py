"""Log-mel front end made of fixed (frozen) layers, so that it exports to plain ONNX ops.

- :func:`normalise_waveform`: per-utterance zero mean, unit variance.
- :class:`STFTPower`: short-time power spectrum; the DFT is two frozen ``Conv1d`` layers
  (real and imaginary parts of a periodic-Hann-windowed DFT), no centre padding.
- :func:`mel_filterbank`: Slaney-style mel filters (the ``librosa.filters.mel`` default:
  linear below 1 kHz, logarithmic above, area-normalised triangles), written here so the
  front end needs no librosa at run time.
- :class:`LogMel`: power spectrum → mel (MatMul) → ``10·log10(max(x, amin))`` in dB.

The exported ONNX graph contains only Conv, Mul, Add, MatMul, Max, Log, ReduceMean, Sqrt,
Div and Transpose/Unsqueeze nodes: no STFT op, no complex numbers.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def normalise_waveform(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Zero mean and unit (population) variance per row, ``(x − mean)/sqrt(var + eps)``.

    This is the normalisation of audEERING's wav2vec2 processor and of Wav2Small.  A new
    tensor is returned; the caller's tensor is never modified.

    Args:
        x: waveform batch ``(batch, samples)``.
        eps: added to the variance (squared amplitude units).
    """
    mean = x.mean(dim=1, keepdim=True)
    centred = x - mean
    var = (centred * centred).mean(dim=1, keepdim=True)
    return centred / torch.sqrt(var + eps)


def periodic_hann(n: int) -> np.ndarray:
    """Periodic Hann window of ``n`` samples (the DFT-even window, as for spectral analysis)."""
    k = np.arange(n, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * k / n)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    mel = f / f_sp
    high = f >= min_log_hz
    mel[high] = min_log_mel + np.log(f[high] / min_log_hz) / logstep
    return mel


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    f = m * f_sp
    high = m >= min_log_mel
    f[high] = min_log_hz * np.exp(logstep * (m[high] - min_log_mel))
    return f


def mel_filterbank(sampling_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular mel filters on the Slaney scale with Slaney area normalisation.

    Args:
        sampling_rate: Hz.
        n_fft: DFT length in samples; the filters act on ``n_fft // 2 + 1`` bins.
        n_mels: number of mel bands.
        fmin, fmax: band edges in Hz (``fmax`` defaults to ``sampling_rate / 2``).

    Returns:
        float64 array ``(n_fft // 2 + 1, n_mels)`` (bins × bands), the transpose of
        ``librosa.filters.mel(sr=..., n_fft=..., n_mels=..., fmin=..., fmax=...)``.
    """
    fmax = sampling_rate / 2.0 if fmax is None else float(fmax)
    bins = np.linspace(0.0, sampling_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array([fmin]))[0],
                                   _hz_to_mel(np.array([fmax]))[0], n_mels + 2))
    widths = np.diff(edges)
    weights = np.zeros((n_mels, bins.size))
    for i in range(n_mels):
        rising = (bins - edges[i]) / widths[i]
        falling = (edges[i + 2] - bins) / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:n_mels + 2] - edges[:n_mels]))[:, None]
    return weights.T


class STFTPower(nn.Module):
    """Power spectrogram ``re² + im²`` by a frozen windowed-DFT convolution.

    Input ``(batch, samples)``; output ``(batch, n_fft // 2 + 1, frames)`` with
    ``frames = (samples − n_fft) // hop + 1`` (no padding; at least ``n_fft`` samples are
    needed).  The DFT kernels are ``nn.Parameter`` s with ``requires_grad=False`` (as in
    the Wav2Small card, so they count as parameters but are never trained).

    Args:
        n_fft: window and DFT length in samples.
        hop: hop in samples.
    """

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft, self.hop = int(n_fft), int(hop)
        bins = self.n_fft // 2 + 1
        window = periodic_hann(self.n_fft)
        t = np.arange(self.n_fft)[None, :]
        k = np.arange(bins)[:, None]
        angle = 2.0 * np.pi * k * t / self.n_fft
        real = (np.cos(angle) * window)[:, None, :]
        imag = (-np.sin(angle) * window)[:, None, :]
        self.conv_real = nn.Conv1d(1, bins, self.n_fft, stride=self.hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, self.n_fft, stride=self.hop, bias=False)
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy(real).float())
            self.conv_imag.weight.copy_(torch.from_numpy(imag).float())
        self.conv_real.weight.requires_grad_(False)
        self.conv_imag.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)
        re = self.conv_real(x)
        im = self.conv_imag(x)
        return re * re + im * im


class LogMel(nn.Module):
    """Waveform → log-mel "image" ``(batch, 1, frames, n_mels)`` in dB.

    Args:
        sampling_rate: Hz.
        n_fft: DFT length in samples.
        hop: hop in samples.
        n_mels: mel bands.
        fmin, fmax: band edges in Hz.
        amin: floor of the mel power before the logarithm (power units).
        normalise: z-normalise each waveform first (:func:`normalise_waveform`).
        pad: zero-pad ``n_fft // 2`` samples at both ends (centred frames), so that
            ``frames = samples // hop + 1`` and very short inputs still work.
    """

    def __init__(self, sampling_rate: int = 16000, n_fft: int = 64, hop: int = 32,
                 n_mels: int = 26, fmin: float = 0.0, fmax: float | None = None,
                 amin: float = 1e-10, normalise: bool = True, pad: bool = False) -> None:
        super().__init__()
        self.normalise = bool(normalise)
        self.pad = int(n_fft) // 2 if pad else 0
        self.stft = STFTPower(n_fft, hop)
        mel = mel_filterbank(sampling_rate, n_fft, n_mels, fmin, fmax)
        self.register_buffer("mel_weights", torch.from_numpy(mel).float())
        self.register_buffer("amin", torch.tensor(float(amin)))
        self.n_mels = int(n_mels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalise:
            x = normalise_waveform(x)
        if self.pad:
            x = nn.functional.pad(x, (self.pad, self.pad))
        power = self.stft(x).transpose(1, 2)          # (batch, frames, bins)
        mel = torch.matmul(power, self.mel_weights)    # (batch, frames, n_mels)
        return (10.0 * torch.log10(torch.maximum(mel, self.amin))).unsqueeze(1)
