"""Audio decoding: read, mix down to mono, resample, float32.

soundfile (libsndfile) reads WAV, FLAC, OGG/Vorbis/Opus and MP3; anything it cannot
read is tried with PyAV (FFmpeg).  Every failure raises :class:`~sertest.errors.AudioError`
with the file name and the reason, so the engine can record it per item and go on.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from .errors import AudioError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff",
                    ".au", ".webm")


def read(path: str, start: float | None = None, end: float | None = None
         ) -> tuple[np.ndarray, int]:
    """Decode ``path`` (optionally the segment ``[start, end)`` in seconds) as mono float32.

    Returns:
        (signal, sampling_rate): 1-D float32 array in [-1, 1] and its rate in Hz.

    Raises:
        AudioError: missing, empty, undecodable, non-finite or silent audio.
    """
    if not os.path.exists(path):
        raise AudioError(f"{path}: file not found")
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        signal, sr = _read_soundfile(path, start, end)
    except AudioError:
        raise
    except Exception as sf_exc:  # noqa: BLE001 - libsndfile raises generic errors
        try:
            signal, sr = _read_pyav(path, start, end)
        except Exception as av_exc:  # noqa: BLE001
            raise AudioError(f"{path}: cannot decode ({sf_exc}; FFmpeg: {av_exc})") from av_exc
    return check_signal(signal, path), sr


def _read_soundfile(path, start, end):
    import soundfile as sf

    with sf.SoundFile(path) as fh:
        sr = fh.samplerate
        first = int(round(start * sr)) if start else 0
        last = int(round(end * sr)) if end is not None and np.isfinite(end) else fh.frames
        if first < 0 or last < first:
            raise AudioError(f"{path}: bad segment start={start} end={end} (seconds)")
        if first > fh.frames:
            raise AudioError(f"{path}: segment starts at {start} s, after the end of the file "
                             f"({fh.frames / sr:.3f} s)")
        fh.seek(first)
        data = fh.read(last - first, dtype="float32", always_2d=True)
    return mixdown(data), sr


def _read_pyav(path, start, end):
    import av

    with av.open(path) as container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            raise AudioError(f"{path}: no audio stream")
        stream = streams[0]
        resampler = av.AudioResampler(format="flt", layout="mono")
        chunks = []
        sr = None
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                sr = out.sample_rate
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    if sr is None:
        raise AudioError(f"{path}: no decodable audio frames")
    data = np.concatenate(chunks).astype(np.float32)
    first = int(round(start * sr)) if start else 0
    last = int(round(end * sr)) if end is not None and np.isfinite(end) else len(data)
    return data[first:last], sr


def mixdown(data: np.ndarray) -> np.ndarray:
    """Average the channels of a (samples, channels) array into a mono float32 signal."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 1:
        return data
    return data.mean(axis=1, dtype=np.float64).astype(np.float32) if data.shape[1] > 1 else data[:, 0]


def check_signal(signal: np.ndarray, name: str = "signal") -> np.ndarray:
    """Refuse signals no model should see: empty, non-finite or all zeros."""
    if signal.size == 0:
        raise AudioError(f"{name}: no samples (zero length)")
    if not np.all(np.isfinite(signal)):
        bad = int(np.size(signal) - np.count_nonzero(np.isfinite(signal)))
        raise AudioError(f"{name}: {bad} NaN or infinite sample(s)")
    if not np.any(signal):
        raise AudioError(f"{name}: silent (all samples are zero)")
    return np.ascontiguousarray(signal, dtype=np.float32)


def resample(signal: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample with soxr (high quality); returns float32.  No-op if the rates agree."""
    if int(sr_in) == int(sr_out):
        return np.asarray(signal, dtype=np.float32)
    import soxr

    return soxr.resample(np.asarray(signal, dtype=np.float32), int(sr_in), int(sr_out),
                         quality="HQ").astype(np.float32)


def load(path: str, sampling_rate: int, start: float | None = None, end: float | None = None
         ) -> np.ndarray:
    """Decode, mix down and resample to ``sampling_rate`` (Hz) in one call."""
    signal, sr = read(path, start, end)
    return resample(signal, sr, sampling_rate)


def content_hash(path: str, start: float | None = None, end: float | None = None) -> str:
    """SHA-256 of the file's bytes plus the segment bounds: the audio part of cache keys."""
    if not os.path.exists(path):
        raise AudioError(f"{path}: file not found")
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({exc.strerror})") from exc
    h.update(f"|{start}|{end}".encode())
    return h.hexdigest()
