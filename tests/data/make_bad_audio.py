"""Regenerate the corpus of awkward and broken audio under tests/data/bad/.

Run: .venv/bin/python tests/data/make_bad_audio.py
Each file is tiny (about 0.3 s). docs/reliability.md says what sertest does with each.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import soundfile as sf

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad")


def tone(sr: int, seconds: float = 0.3, level: float = 0.3, channels: int = 1) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = level * np.sin(2 * np.pi * 180 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x


def main() -> None:
    os.makedirs(HERE, exist_ok=True)
    rows = []

    def add(name, expect, note):
        rows.append({"id": os.path.splitext(name)[0], "file": name, "expect": expect, "note": note})

    sf.write(f"{HERE}/pcm16.wav", tone(16000), 16000, subtype="PCM_16")
    add("pcm16.wav", "ok", "reference: 16-bit 16 kHz mono")
    sf.write(f"{HERE}/pcm8.wav", tone(16000), 16000, subtype="PCM_U8")
    add("pcm8.wav", "ok", "8-bit unsigned PCM")
    sf.write(f"{HERE}/pcm24.wav", tone(16000), 16000, subtype="PCM_24")
    add("pcm24.wav", "ok", "24-bit PCM")
    sf.write(f"{HERE}/float32.wav", tone(16000).astype("float32"), 16000, subtype="FLOAT")
    add("float32.wav", "ok", "32-bit float")
    sf.write(f"{HERE}/stereo.wav", tone(16000, channels=2), 16000)
    add("stereo.wav", "ok", "stereo: mixed down")
    sf.write(f"{HERE}/six-channel.wav", tone(16000, channels=6), 16000)
    add("six-channel.wav", "ok", "5.1 multichannel: mixed down")
    sf.write(f"{HERE}/rate8k.wav", tone(8000), 8000)
    add("rate8k.wav", "ok", "8 kHz: resampled")
    sf.write(f"{HERE}/rate48k.flac", tone(48000), 48000)
    add("rate48k.flac", "ok", "48 kHz FLAC: resampled")
    clipped = np.clip(tone(16000, level=3.0), -1, 1)
    sf.write(f"{HERE}/clipped.wav", clipped, 16000)
    add("clipped.wav", "warning", "clipped: decoded, flagged with a warning")
    buf = f"{HERE}/flac-named.wav"
    sf.write(buf, tone(16000), 16000, format="FLAC")
    add("flac-named.wav", "ok", "wrong extension: FLAC content named .wav")
    open(f"{HERE}/empty.wav", "wb").close()
    add("empty.wav", "error", "0-byte file")
    sf.write(f"{HERE}/zero-length.wav", np.zeros(0), 16000)
    add("zero-length.wav", "error", "valid header, no samples")
    sf.write(f"{HERE}/all-zero.wav", np.zeros(4800), 16000)
    add("all-zero.wav", "error", "digital silence")
    nan = tone(16000).astype("float32")
    nan[100:110] = np.nan
    sf.write(f"{HERE}/nan.wav", nan, 16000, subtype="FLOAT")
    add("nan.wav", "error", "NaN samples in a float WAV")
    inf = tone(16000).astype("float32")
    inf[50] = np.inf
    sf.write(f"{HERE}/inf.wav", inf, 16000, subtype="FLOAT")
    add("inf.wav", "error", "infinite sample in a float WAV")
    with open(f"{HERE}/pcm16.wav", "rb") as fh:
        data = fh.read()
    with open(f"{HERE}/truncated-header.wav", "wb") as fh:
        fh.write(data[:20])
    add("truncated-header.wav", "error", "file cut inside the RIFF header")
    corrupt = bytearray(data)
    corrupt[8:16] = b"JUNKJUNK"
    with open(f"{HERE}/corrupt-header.wav", "wb") as fh:
        fh.write(bytes(corrupt))
    add("corrupt-header.wav", "error", "RIFF/WAVE header overwritten")
    with open(f"{HERE}/text.wav", "w") as fh:
        fh.write("this is not audio\n" * 10)
    add("text.wav", "error", "a text file named .wav")
    add("missing.wav", "error", "listed in the manifest, absent on disk")
    pd.DataFrame(rows).to_csv(f"{HERE}/manifest.csv", index=False)


if __name__ == "__main__":
    main()
