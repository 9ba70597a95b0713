"""Wav2Small (Kounadis-Bastian et al. 2024, arXiv 2408.13920), written from the layer list
of the audEERING ``wav2small`` model card.

Pipeline for a batch ``(B, T)`` of 16 kHz samples:

1. per-utterance z-normalisation of the waveform (on a copy);
2. power STFT with a frozen DFT convolution, ``n_fft`` samples (64 = 4 ms), hop ``hop``
   (32 = 2 ms), no padding → ``F = (T − n_fft) // hop + 1`` frames;
3. log-mel: ``n_mels`` Slaney mel bands, 0–8 kHz, ``10·log10(max(·, 1e-10))`` dB →
   ``(B, 1, F, n_mels)``;
4. VGG7: seven ``Conv2d 3×3 (no bias) → BatchNorm → ReLU`` layers of ``channels``
   channels, with ``MaxPool2d(3, stride 2, padding 1)`` after the third →
   ``(B, C, F', M')``, ``M' = ceil(n_mels / 2)``;
5. attention pooling over time: ``sum_t lin(x) · softmax_t(sof(x))`` with 1×1 conv
   ``lin`` and ``sof`` → ``(B, C, M')``;
6. Gram features: ``[x, x·xᵀ]`` → ``(B, C, M' + C)`` → flattened ``C·(M' + C)``;
7. ``Linear(C·(M' + C), 3)`` → arousal, dominance, valence (no squashing).

Two configurations:

- :func:`wav2small_card` — the published layer layout (13 channels, 26 mels, n_fft 64,
  hop 32): 10,806 trainable parameters plus 4,224 frozen DFT weights.
- :func:`wav2small_paper` — a wider variant whose size matches the paper's "72K
  parameters" (the paper's own widths are not public): 32 channels, 26 mels, and an
  8 ms window (n_fft 128) with a 4 ms hop (64 samples) → 62,467 trainable + 16,640 frozen
  DFT = 79,107 parameters.  The wider VGG needs (32/13)² ≈ 6× the multiply-adds of the
  card per frame; halving the frame rate keeps training on two CPU cores affordable, and
  the longer window resolves pitch better (125 Hz bins instead of 250 Hz).  With a
  64-sample DFT (33 bins) more mel bands would not help: already at 26 bands one filter
  is empty.
"""

from __future__ import annotations

import torch
from torch import nn

from .frontend import LogMel

LABELS = ("arousal", "dominance", "valence")


class _ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class VGG7(nn.Module):
    """Seven 3×3 conv-BN-ReLU layers with one max-pool (time and mel halved) after the
    ``pool_after``-th layer."""

    def __init__(self, channels: int = 13, layers: int = 7, pool_after: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks.append(_ConvBNReLU(1 if i == 0 else channels, channels))
            if i + 1 == pool_after:
                blocks.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.body = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Wav2Small(nn.Module):
    """Wav2Small: raw waveform ``(B, T)`` at 16 kHz → ``(B, 3)`` arousal, dominance, valence.

    Args:
        channels: VGG width ``C``.
        n_mels: mel bands.
        n_fft: DFT length in samples.
        hop: STFT hop in samples.
        layers: VGG depth.
        n_outputs: size of the linear head.
        sampling_rate: Hz.
    """

    labels = LABELS

    def __init__(self, channels: int = 13, n_mels: int = 26, n_fft: int = 64, hop: int = 32,
                 layers: int = 7, n_outputs: int = 3, sampling_rate: int = 16000) -> None:
        super().__init__()
        self.config = dict(channels=channels, n_mels=n_mels, n_fft=n_fft, hop=hop,
                           layers=layers, n_outputs=n_outputs, sampling_rate=sampling_rate)
        self.frontend = LogMel(sampling_rate, n_fft=n_fft, hop=hop, n_mels=n_mels,
                               normalise=True, pad=False)
        self.vgg7 = VGG7(channels, layers)
        self.lin = nn.Conv2d(channels, channels, 1)
        self.sof = nn.Conv2d(channels, channels, 1)
        pooled_mels = (n_mels - 1) // 2 + 1
        self.hidden = channels * (pooled_mels + channels)
        self.adv = nn.Linear(self.hidden, n_outputs)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        x = self.vgg7(self.frontend(signal))                  # (B, C, F', M')
        x = (self.lin(x) * torch.softmax(self.sof(x), dim=2)).sum(dim=2)   # (B, C, M')
        gram = torch.bmm(x, x.transpose(1, 2))                 # (B, C, C)
        x = torch.cat([x, gram], dim=2).reshape(-1, self.hidden)
        return self.adv(x)


def wav2small_card(**kwargs) -> Wav2Small:
    """The model-card layout: 13 channels, 26 mels, n_fft 64, hop 32 (10,806 trainable)."""
    cfg = dict(channels=13, n_mels=26, n_fft=64, hop=32)
    cfg.update(kwargs)
    return Wav2Small(**cfg)


def wav2small_paper(**kwargs) -> Wav2Small:
    """The ~79 K-parameter variant of the committed artefact (32 channels, 26 mels, n_fft 128,
    hop 64)."""
    cfg = dict(channels=32, n_mels=26, n_fft=128, hop=64)
    cfg.update(kwargs)
    return Wav2Small(**cfg)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, frozen) parameter counts of ``model``."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return int(trainable), int(frozen)
