"""Audio decoding: read, mix down to mono, resample, float32.

soundfile (libsndfile) reads WAV, FLAC, OGG/Vorbis/Opus and MP3; anything it cannot
read is tried with PyAV (FFmpeg).  Every failure raises :class:`~sertest.errors.AudioError`
with the file name and the reason, so the engine can record it per item and go on.

Hostile inputs cannot hang or exhaust the audit:

* only regular files are opened (:func:`regular_file`): a FIFO, a device (also behind a
  symlink, e.g. to ``/dev/zero``), a socket or a folder is refused before any read;
* a declared sampling rate outside :data:`RATE_RANGE` is refused, and so is a decode or
  a resampled signal of more than :data:`MAX_SAMPLES` values (a header claiming 1 Hz or a
  huge frame count would otherwise need gigabytes); ``MemoryError`` becomes an
  :class:`AudioError` naming the declared rate and length;
* decoding stops after :data:`DECODE_TIME_LIMIT_S` seconds.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time

import numpy as np

from .errors import AudioError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff",
                    ".au", ".webm")

#: sampling rates (Hz) a file may declare; speech is never recorded outside them
RATE_RANGE = (2000, 768_000)
#: most sample values (frames x channels) one decode or one resampled signal may hold:
#: 2**28 float32 values = 1 GiB, i.e. 4.6 h mono at 16 kHz or 93 min mono at 48 kHz.
#: Longer recordings: list segments (``start``/``end`` columns), only those are decoded.
MAX_SAMPLES = 2 ** 28
#: wall-clock bound (seconds) of decoding one item
DECODE_TIME_LIMIT_S = 300.0
_BLOCK = 1 << 20  # frames per read: the limits are checked between blocks

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a folder"))


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def regular_file(path: str) -> os.stat_result:
    """``os.stat`` of ``path`` (symlinks followed) if it is a regular file.

    Raises:
        AudioError: missing, or a FIFO, device, socket or folder (reading those can block
            forever or never end), naming what it is.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise AudioError(f"{path}: file not found") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({exc.strerror})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise AudioError(f"{path}: is {_kind(st.st_mode)}, not a regular file; only regular "
                         "audio files are read")
    return st


def check_rate(sr: int, path: str) -> None:
    """Refuse a declared sampling rate outside :data:`RATE_RANGE` (Hz)."""
    lo, hi = RATE_RANGE
    if not lo <= int(sr) <= hi:
        raise AudioError(f"{path}: declared sampling rate {sr} Hz is outside {lo}-{hi} Hz; "
                         "the header is broken or the file is not audio for speech models")


def _check_size(values: int, path: str, what: str) -> None:
    """Refuse ``values`` sample values (``what`` says where the number comes from)."""
    if values > MAX_SAMPLES:
        raise AudioError(
            f"{path}: {what}: {values} sample values, more than the {MAX_SAMPLES} one item "
            "may hold; list segments (start/end columns in a manifest) to audit parts of a "
            "long recording")


class _Deadline:
    def __init__(self, path: str, limit: float | None) -> None:
        self.path = path
        self.limit = DECODE_TIME_LIMIT_S if limit is None else float(limit)
        self.end = time.monotonic() + self.limit

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise AudioError(f"{self.path}: decoding took longer than {self.limit:g} s "
                             "(decode time limit)")


def read(path: str, start: float | None = None, end: float | None = None, *,
         time_limit: float | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` (optionally the segment ``[start, end)`` in seconds) as mono float32.

    Args:
        time_limit: seconds decoding may take (default :data:`DECODE_TIME_LIMIT_S`).

    Returns:
        (signal, sampling_rate): 1-D float32 array in [-1, 1] and its rate in Hz.

    Raises:
        AudioError: missing, not a regular file, empty, undecodable, a declared rate or
            length out of bounds, too slow to decode, non-finite or silent audio.
    """
    st = regular_file(path)
    if st.st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    deadline = _Deadline(path, time_limit)
    try:
        signal, sr = _read_soundfile(path, start, end, deadline)
    except AudioError:
        raise
    except MemoryError:
        raise AudioError(f"{path}: out of memory while decoding") from None
    except Exception as sf_exc:  # noqa: BLE001 - libsndfile raises generic errors
        try:
            signal, sr = _read_pyav(path, start, end, deadline)
        except AudioError:
            raise
        except MemoryError:
            raise AudioError(f"{path}: out of memory while decoding (FFmpeg)") from None
        except Exception as av_exc:  # noqa: BLE001
            raise AudioError(f"{path}: cannot decode ({sf_exc}; FFmpeg: {av_exc})") from av_exc
    return check_signal(signal, path), sr


def _read_soundfile(path, start, end, deadline: _Deadline):
    import soundfile as sf

    with sf.SoundFile(path) as fh:
        sr = fh.samplerate
        check_rate(sr, path)
        first = int(round(start * sr)) if start else 0
        last = int(round(end * sr)) if end is not None and np.isfinite(end) else fh.frames
        if first < 0 or last < first:
            raise AudioError(f"{path}: bad segment start={start} end={end} (seconds)")
        if first > fh.frames:
            raise AudioError(f"{path}: segment starts at {start} s, after the end of the file "
                             f"({fh.frames / sr:.3f} s)")
        last = min(last, fh.frames)
        _check_size((last - first) * fh.channels, path,
                    f"the header declares {fh.frames} frames x {fh.channels} channel(s) at "
                    f"{sr} Hz ({fh.frames / sr:.0f} s)")
        fh.seek(first)
        blocks = []
        remaining = last - first
        while remaining > 0:
            data = fh.read(min(_BLOCK, remaining), dtype="float32", always_2d=True)
            if len(data) == 0:
                break
            blocks.append(mixdown(data))
            remaining -= len(data)
            deadline.check()
    return (np.concatenate(blocks) if blocks else np.zeros(0, np.float32)), sr


def _read_pyav(path, start, end, deadline: _Deadline):
    import av

    with av.open(path) as container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            raise AudioError(f"{path}: no audio stream")
        stream = streams[0]
        if stream.sample_rate:
            check_rate(stream.sample_rate, path)
        resampler = av.AudioResampler(format="flt", layout="mono")
        chunks = []
        sr = None
        total = 0
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                sr = out.sample_rate
                chunks.append(out.to_ndarray().reshape(-1))
                total += chunks[-1].size
            _check_size(total, path, f"decoding (FFmpeg, {sr or stream.sample_rate} Hz) "
                        "yields more")
            deadline.check()
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    if sr is None:
        raise AudioError(f"{path}: no decodable audio frames")
    check_rate(sr, path)
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


def resample(signal: np.ndarray, sr_in: int, sr_out: int, name: str = "signal") -> np.ndarray:
    """Resample with soxr (high quality); returns float32.  No-op if the rates agree.

    Raises:
        AudioError: a rate outside :data:`RATE_RANGE`, an output of more than
            :data:`MAX_SAMPLES` samples, or soxr running out of memory (naming the rates
            and the length; ``name`` says whose signal it is).
    """
    if int(sr_in) == int(sr_out):
        return np.asarray(signal, dtype=np.float32)
    check_rate(sr_in, name)
    check_rate(sr_out, name)
    n_out = int(np.ceil(len(signal) * int(sr_out) / int(sr_in)))
    _check_size(n_out, name, f"{len(signal)} samples resampled from {sr_in} Hz to "
                f"{sr_out} Hz would be")
    import soxr

    try:
        return soxr.resample(np.asarray(signal, dtype=np.float32), int(sr_in), int(sr_out),
                             quality="HQ").astype(np.float32)
    except MemoryError:
        raise AudioError(f"{name}: out of memory resampling {len(signal)} samples from "
                         f"{sr_in} Hz to {sr_out} Hz") from None


def load(path: str, sampling_rate: int, start: float | None = None, end: float | None = None
         ) -> np.ndarray:
    """Decode, mix down and resample to ``sampling_rate`` (Hz) in one call."""
    signal, sr = read(path, start, end)
    return resample(signal, sr, sampling_rate, path)


def content_hash(path: str, start: float | None = None, end: float | None = None) -> str:
    """SHA-256 of the file's bytes plus the segment bounds: the audio part of cache keys.

    The file is opened without blocking and checked to be a regular file on the open
    descriptor, so a FIFO or a device (also behind a symlink) is refused, never read.
    """
    regular_file(path)
    h = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced since the check above
            raise AudioError(f"{path}: is {_kind(st.st_mode)}, not a regular file; only "
                             "regular audio files are read")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({exc.strerror})") from exc
    finally:
        os.close(fd)
    h.update(f"|{start}|{end}".encode())
    return h.hexdigest()
