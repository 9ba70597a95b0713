"""Corpus loading, the speaker-independent split, seeded augmentation and length-bucketed
batches for the distillation pipeline.

All randomness comes from :func:`sertest.seeding.derive_rng` generators.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

from sertest.seeding import derive_rng

SR = 16000
DIMENSIONS = ("arousal", "dominance", "valence")
CATEGORIES = ("anger", "happiness", "neutral", "sadness")


@dataclass
class Corpus:
    """The bundled corpus in memory.

    Attributes:
        table: manifest rows (labelled items), in manifest order.
        signals: float32 waveforms at 16 kHz, aligned with ``table``.
        real: label-free real recordings (waveforms), used only as extra distillation audio.
    """

    table: pd.DataFrame
    signals: list[np.ndarray]
    real: list[np.ndarray] = field(default_factory=list)

    @property
    def targets(self) -> np.ndarray:
        """Nominal arousal, dominance, valence, ``(n, 3)`` in [0, 1]."""
        return self.table[list(DIMENSIONS)].to_numpy(np.float32)

    @property
    def emotion_index(self) -> np.ndarray:
        return np.array([CATEGORIES.index(e) for e in self.table["emotion"]], dtype=np.int64)


def _read(path: str) -> np.ndarray:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    if sr != SR:
        raise ValueError(f"{path}: {sr} Hz, expected {SR} Hz")
    return x.mean(axis=1)


def load_corpus(root: str) -> Corpus:
    """Read ``root/manifest.csv`` (and ``root/real/manifest.csv`` if present)."""
    table = pd.read_csv(os.path.join(root, "manifest.csv"), keep_default_na=False)
    signals = [_read(os.path.join(root, f)) for f in table["file"]]
    real: list[np.ndarray] = []
    real_manifest = os.path.join(root, "real", "manifest.csv")
    if os.path.isfile(real_manifest):
        rt = pd.read_csv(real_manifest, keep_default_na=False)
        real = [_read(os.path.join(root, "real", f)) for f in rt["file"]]
    return Corpus(table=table.reset_index(drop=True), signals=signals, real=real)


def speaker_split(table: pd.DataFrame, seed: int, held_out: float = 0.2
                  ) -> tuple[list[str], list[str]]:
    """Hold out ``held_out`` of the speakers (rounded), chosen by a seeded permutation of
    the sorted speaker list.  Returns (train speakers, held-out speakers), both sorted."""
    speakers = sorted(table["speaker"].unique())
    rng = derive_rng(seed, "speaker-split")
    order = rng.permutation(len(speakers))
    n_out = max(1, int(round(held_out * len(speakers))))
    test = sorted(speakers[i] for i in order[:n_out])
    train = sorted(set(speakers) - set(test))
    return train, test


# ----------------------------------------------------------------------------- augmentation

def add_noise(x: np.ndarray, rng: np.random.Generator, snr_db: float, colour: str) -> np.ndarray:
    """Add white or lowpass ("brown-ish") noise at ``snr_db`` dB re the signal power."""
    noise = rng.standard_normal(x.size)
    if colour == "low":
        noise = sosfilt(butter(2, 500, fs=SR, output="sos"), noise)
    p_sig = float(np.mean(x.astype(np.float64) ** 2)) + 1e-12
    p_noise = float(np.mean(noise ** 2)) + 1e-12
    return (x + noise * np.sqrt(p_sig / p_noise / 10 ** (snr_db / 10))).astype(np.float32)


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Resample-based speed change (tempo and pitch scale by ``factor``)."""
    up, down = {0.9: (10, 9), 1.1: (10, 11), 0.95: (20, 19), 1.05: (20, 21)}[factor]
    return resample_poly(x, up, down).astype(np.float32)


def band_limit(x: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """8th-order Butterworth low-pass at ``cutoff_hz`` Hz."""
    return sosfilt(butter(8, cutoff_hz, fs=SR, output="sos"), x).astype(np.float32)


def reverberate(x: np.ndarray, rng: np.random.Generator, rt60_s: float) -> np.ndarray:
    """Convolve with exponentially decaying noise (reverberation time ``rt60_s`` s)."""
    n = int(rt60_s * SR)
    t = np.arange(n) / SR
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    ir[0] = 1.0
    y = fftconvolve(x, ir)[: x.size]
    return (y / (np.max(np.abs(y)) + 1e-9) * np.max(np.abs(x))).astype(np.float32)


def augment(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One random chain of one or two augmentations; returns (signal, description)."""
    ops = ["noise", "speed", "band", "reverb", "lownoise"]
    chosen = rng.choice(len(ops), size=int(rng.integers(1, 3)), replace=False)
    desc = []
    y = x
    for i in sorted(chosen):
        op = ops[i]
        if op == "noise":
            snr = float(rng.uniform(5, 30))
            y = add_noise(y, rng, snr, "white")
            desc.append(f"white noise {snr:.0f} dB")
        elif op == "lownoise":
            snr = float(rng.uniform(0, 20))
            y = add_noise(y, rng, snr, "low")
            desc.append(f"low noise {snr:.0f} dB")
        elif op == "speed":
            f = float(rng.choice([0.9, 0.95, 1.05, 1.1]))
            y = change_speed(y, f)
            desc.append(f"speed x{f}")
        elif op == "band":
            c = float(rng.choice([3400.0, 4000.0, 5500.0]))
            y = band_limit(y, c)
            desc.append(f"lowpass {c:.0f} Hz")
        else:
            rt = float(rng.uniform(0.2, 0.7))
            y = reverberate(y, rng, rt)
            desc.append(f"reverb {rt:.2f} s")
    return y, ", ".join(desc)


def light_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Teacher-training augmentation: keep the labels valid (no pitch/tempo change)."""
    if rng.random() < 0.5:
        return add_noise(x, rng, float(rng.uniform(15, 40)), "white")
    return x


# ----------------------------------------------------------------------------- batching

def bucket_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                   jitter: float = 0.25) -> list[np.ndarray]:
    """Groups of item indices of similar length (sorted by length × (1 + jitter noise)),
    in random order.  Each batch is later cropped to its shortest member."""
    key = lengths * (1.0 + jitter * rng.random(lengths.size))
    order = np.argsort(key, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, order.size, batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


#: Crop lengths are multiples of this many samples (0.25 s), so that only a few distinct
#: input shapes occur: oneDNN builds a new convolution plan for every new shape.
CROP_UNIT = 4000


def crop_batch(signals: list[np.ndarray], idx: np.ndarray, rng: np.random.Generator,
               max_len: int | None = None, transform=None) -> np.ndarray:
    """Stack ``signals[idx]`` cropped (random offsets) to the shortest one (≤ ``max_len``),
    rounded down to a multiple of :data:`CROP_UNIT` samples when possible."""
    items = [signals[i] if transform is None else transform(signals[i], rng) for i in idx]
    n = min(x.size for x in items)
    if max_len:
        n = min(n, max_len)
    if n >= CROP_UNIT:
        n -= n % CROP_UNIT
    out = np.empty((len(items), n), dtype=np.float32)
    for j, x in enumerate(items):
        start = int(rng.integers(0, x.size - n + 1))
        out[j] = x[start:start + n]
    return out
