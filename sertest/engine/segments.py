"""Opt-in segmentation of long recordings: windows decoded, perturbed and predicted one at a time.

By default an item is audited whole (one prediction per item and condition from the whole
utterance, :mod:`sertest.engine.units`).  A model's own memory then grows with the input
(Wav2Small: about 2.2 MB per second of audio), so a 10-minute file costs a whole-utterance
audit more than a gigabyte whatever the engine does.  With a :class:`Segmentation` (``sertest
run --segment WINDOW[:HOP]``, ``audit(..., segment="30")``) an item **longer than the
window** is audited in windows instead:

* windows start every ``hop_s`` seconds and last ``window_s`` seconds (the last one ends at
  the item's end; a last window shorter than half a window is merged into the one before,
  so no window is shorter than half a window nor longer than 1.5 windows);
  :func:`window_bounds`;
* each window is decoded from the file on its own (libsndfile seeks to it,
  :func:`read_window`; the whole file is never decoded), resampled, perturbed under each
  condition and predicted, then released before the next window is decoded;
  a window of digital silence (all samples zero) is skipped;
* a perturbation's parameters (e.g. a gain drawn from a list) are drawn **once per item
  and condition**, from the generator the whole-utterance audit would draw them from
  (``derive_rng(seed, item, condition)``), and applied to every window; what a
  perturbation draws while applying them (noise samples, a noise file's offset) comes from
  ``derive_rng(seed, item, condition, "window", k)`` for window ``k``.  So noise is
  independent between windows, a level-relative perturbation (noise at an SNR, a level
  normalisation) measures the level of each window, and filters, rooms and codecs start
  afresh at each window: their transients (a reverberation tail, a codec's frame
  alignment, the resampler's filter) are cut at window boundaries rather than carried over;
* the windows' predictions are aggregated per model and condition by their
  **duration-weighted mean** (weights: each window's length in seconds; overlapping
  windows count their shared audio twice): for arousal, dominance and valence the mean
  value, for emotion classes the mean of each class column (the mean probability for a
  probability head; for a score or logit head the mean score), the class being the argmax
  of the means.  A model may declare its own rule (``aggregate_windows(rows, seconds,
  total_s)``): the signal statistics take the peak over windows, the RMS as a mean of
  powers and the item's whole duration (:class:`sertest.engine.signal_stats.SignalStats`);
* an item fails as it would whole: a window that cannot be decoded is the item's decode
  error, a window that fails under a condition or a model fails that item x condition
  (x model), the error naming the window.

Items not longer than the window are audited exactly as without segmentation (the same
cache keys, the same calls, byte-identical results), so ``--segment 30`` changes nothing on
a corpus of short utterances.  A segmented item's cache keys carry the window and hop
(:func:`sertest.engine.cache.model_prediction_key`), and ``results.json`` records them in
``dataset.segmentation`` (only when some item was segmented).  Segmentation needs a file
libsndfile reads (WAV, FLAC, OGG, MP3): a file only FFmpeg decodes is audited whole.
The samples a segmented item holds (:data:`sertest.engine.units.HELD`) are bounded by
about 1.5 windows per rate times one condition group, not by the file's length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import audio
from ..errors import AudioError, UsageError
from ..models.base import Model
from ..perturb.base import Perturbation
from ..seeding import derive_rng
from .render import condition_rng

_FORMAT = ("WINDOW or WINDOW:HOP in seconds, e.g. 30 (30 s windows, no overlap) or 30:15 "
           "(30 s windows every 15 s); the window at least 1 s, the hop greater than 0 and "
           "at most the window")


@dataclass(frozen=True)
class Segmentation:
    """Windows of ``window_s`` seconds every ``hop_s`` seconds (see the module)."""

    window_s: float
    hop_s: float

    @property
    def key(self) -> str:
        """What enters a segmented item's cache keys, e.g. ``"30:15"``."""
        return f"{self.window_s:g}:{self.hop_s:g}"

    def to_dict(self) -> dict[str, float]:
        return {"window_s": self.window_s, "hop_s": self.hop_s}


def parse_segment(value: Any, option: str = "--segment") -> Segmentation | None:
    """A :class:`Segmentation` from ``"30"``, ``"30:15"``, a number, a mapping
    ``{"window": 30, "hop": 15}`` or a Segmentation; ``None`` (or ``""``) for whole-utterance
    auditing.  A bad value is a :class:`~sertest.errors.UsageError` naming ``option``.

    >>> parse_segment("30:15")
    Segmentation(window_s=30.0, hop_s=15.0)
    >>> parse_segment(20).key
    '20:20'
    """
    if value is None or isinstance(value, Segmentation):
        return value
    try:
        if isinstance(value, dict):
            unknown = set(value) - {"window", "hop"}
            if unknown or "window" not in value:
                raise ValueError
            window = float(value["window"])
            hop = float(value.get("hop", window))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            window = hop = float(value)
        elif isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            head, sep, tail = text.partition(":")
            window = float(head)
            hop = float(tail) if sep else window
        else:
            raise ValueError
    except (TypeError, ValueError):
        raise UsageError(f"{option} {value!r}: expected {_FORMAT}") from None
    if not (math.isfinite(window) and math.isfinite(hop)) or window < 1 or not 0 < hop <= window:
        raise UsageError(f"{option} {value!r}: expected {_FORMAT}")
    return Segmentation(window, hop)


def read_header(path: str) -> tuple[int, int] | None:
    """``(frames, sampling_rate)`` of the audio file at ``path`` from its header
    (libsndfile), without decoding it; ``None`` where libsndfile cannot read the header."""
    try:
        import soundfile as sf

        info = sf.info(path)
    except Exception:  # noqa: BLE001 - not a libsndfile format (or unreadable)
        return None
    return int(info.frames), int(info.samplerate)


_UNREAD: Any = object()


def item_frames(path: str, start: float | None, end: float | None,
                header: tuple[int, int] | None = _UNREAD) -> tuple[int, int, int] | None:
    """``(first, last, sampling_rate)``: the item's frames in the file, from its header
    (``header``: :func:`read_header` of ``path`` if already read, else it is read here),
    or ``None`` where libsndfile cannot read the header (the item is then audited whole)."""
    if header is _UNREAD:
        header = read_header(path)
    if header is None:
        return None
    frames, sr = header
    first = int(round(start * sr)) if start else 0
    last = int(round(end * sr)) if end is not None and np.isfinite(end) else frames
    last = min(last, frames)
    if first < 0 or last <= first:
        return None  # the whole-utterance path reports the bad segment
    return first, last, sr


def window_bounds(first: int, last: int, sampling_rate: int, seg: Segmentation
                  ) -> list[tuple[int, int]]:
    """The windows ``[a, b)`` (frames) of the item ``[first, last)``: one every hop, each a
    window long, the last ending at ``last``; a last window shorter than half a window
    joins the one before.  An item not longer than the window is one window.

    >>> window_bounds(0, 100, 10, Segmentation(3, 3))
    [(0, 30), (30, 60), (60, 100)]
    >>> window_bounds(0, 100, 10, Segmentation(4, 2))
    [(0, 40), (20, 60), (40, 80), (60, 100)]
    """
    win = max(1, int(round(seg.window_s * sampling_rate)))
    hop = max(1, int(round(seg.hop_s * sampling_rate)))
    if last - first <= win:
        return [(first, last)]
    out: list[tuple[int, int]] = []
    a = first
    while True:
        b = min(a + win, last)
        out.append((a, b))
        if b >= last:
            break
        a += hop
    if len(out) > 1 and out[-1][1] - out[-1][0] < win / 2:
        out.pop()
        out[-1] = (out[-1][0], last)
    return out


def is_segmented(frames: tuple[int, int, int] | None, seg: Segmentation | None) -> bool:
    """Whether an item of ``frames`` (:func:`item_frames`) is audited in windows."""
    if seg is None or frames is None:
        return False
    first, last, sr = frames
    return last - first > int(round(seg.window_s * sr))


def read_window(path: str, a: int, b: int, sampling_rate: int) -> np.ndarray | None:
    """Frames ``[a, b)`` of ``path`` decoded on their own (seek, then read), mixed down to
    mono float32; ``None`` for a window of digital silence.  Raises
    :class:`~sertest.errors.AudioError` naming the file and the window (seconds)."""
    import soundfile as sf

    where = f"{path}: window {a / sampling_rate:.2f}-{b / sampling_rate:.2f} s"
    try:
        with sf.SoundFile(path) as fh:
            fh.seek(a)
            data = fh.read(b - a, dtype="float32", always_2d=True)
    except MemoryError:
        raise AudioError(f"{where}: out of memory while decoding") from None
    except Exception as exc:  # noqa: BLE001 - libsndfile raises generic errors
        raise AudioError(f"{where}: cannot decode ({exc})") from exc
    x = audio.mixdown(data)
    if x.size == 0:
        raise AudioError(f"{where}: no samples (the file is shorter than its header says)")
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{where}: {int(x.size - np.count_nonzero(np.isfinite(x)))} NaN or "
                         "infinite sample(s)")
    return np.ascontiguousarray(x) if np.any(x) else None


def window_signal(x: np.ndarray, sampling_rate: int, condition: Perturbation,
                  params: dict[str, Any], seed: int, item_id: str, key: str, k: int
                  ) -> np.ndarray:
    """Window ``k`` of item ``item_id`` under ``condition`` with the item's drawn ``params``
    (see the module); its own draws come from ``derive_rng(seed, item_id, key, "window", k)``."""
    y = condition.apply(x.copy(), int(sampling_rate), derive_rng(seed, item_id, key, "window", k),
                        params)
    y = np.asarray(y, dtype=np.float32)
    if condition.length_preserving and y.shape[0] != x.shape[0]:
        raise RuntimeError(f"{condition.name}: promised to preserve length, returned "
                           f"{y.shape[0]} samples for {x.shape[0]}")
    return audio.check_signal(y, f"{item_id} under {condition.name}, window {k}")


def aggregate(model: Model, rows: np.ndarray, seconds: np.ndarray, total_s: float) -> np.ndarray:
    """One row from the windows' ``rows`` (windows x outputs) of durations ``seconds``: the
    model's ``aggregate_windows`` where it declares one, else the duration-weighted mean."""
    rule = getattr(model, "aggregate_windows", None)
    if callable(rule):
        return np.asarray(rule(rows, seconds, total_s), dtype=np.float64)
    w = np.asarray(seconds, dtype=np.float64)
    return (np.asarray(rows, dtype=np.float64) * w[:, None]).sum(axis=0) / w.sum()
