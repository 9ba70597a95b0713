"""The listening gallery: the worst clean/perturbed pairs as embedded Opus audio.

The report re-creates exactly what the model heard, as the engine does
(:mod:`sertest.engine.execute`): decode the item, resample to the model's sampling rate,
apply ``from_spec(spec)`` with ``derive_rng(seed, item_id, condition_key)``.  Both signals
are then resampled to 16 kHz, cut to the first :data:`MAX_SECONDS` seconds and written as
Ogg Opus ``data:`` URIs (:data:`OPUS_BITRATE`, PyAV's libopus; about a tenth of 16-bit WAV),
within a total size budget, so the page stays self-contained and small.  The first
:data:`WAV_FALLBACK` pair(s) also carry an 8 kHz 16-bit WAV source for browsers without Opus (the
page says so where it cannot play Opus); without an Opus encoder every pair is WAV.  Levels
are not normalised: a level change may be the perturbation itself.

Worst-case searches (``robustness_search``) add their *minimal counterexamples* first: for
the earliest-breaking items of each search (:data:`COUNTEREXAMPLES_PER_SEARCH`, at most
:data:`MAX_COUNTEREXAMPLES` in all) the clean clip and the clip at the item's breakdown point,
the mildest grid setting that moved its prediction (two axes: the mildest breaking pair),
re-created from the search's own listing in ``results.json`` through the same replay.

Anything missing (dataset moved, file gone, unknown perturbation) becomes a note; the
report never fails because of the gallery.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .plots import condition_label, condition_spec

MAX_ITEMS = 6
#: the worst-case search's counterexamples: earliest-breaking items per search entry and in all
#: (in addition to the MAX_ITEMS pairs of the other robustness tests)
COUNTEREXAMPLES_PER_SEARCH = 2
MAX_COUNTEREXAMPLES = 4
#: the tests whose listed items are breakdown points (checks/search.py)
SEARCH_CHECKS = ("robustness_search",)
MAX_SECONDS = 4.0
SAMPLING_RATE = 16000  # Hz, of the embedded audio
BUDGET_BYTES = 2_000_000  # base64 characters of all embedded audio together
OPUS_BITRATE = 24000  # bit/s of the embedded Opus audio (mono, 16 kHz)
#: pairs (the largest changes) that also embed WAV for browsers that cannot play Opus
WAV_FALLBACK = 1
WAV_FALLBACK_RATE = 8000  # Hz of the fallback WAV


@dataclass
class Clip:
    """One gallery entry: a clean/perturbed pair of one item under one condition."""

    test: str
    model: str
    dimension: str
    anchor: str
    item_id: str
    condition: str
    clean_value: Any
    perturbed_value: Any
    change: float | None
    clean_uri: str | None = None
    perturbed_uri: str | None = None
    seconds: float | None = None
    cut: bool = False
    note: str | None = None
    before_label: str = "clean"
    before_wave: Any = ""
    after_wave: Any = ""
    #: WAV versions for browsers without Opus (only the first pairs; see WAV_FALLBACK)
    clean_wav: str | None = None
    perturbed_wav: str | None = None
    #: the "after" side's perturbation spec as replayed (a search's breakdown setting)
    spec: dict | None = None
    #: a search counterexample: the setting that held last (one grid step milder), if any
    held_at: Any = None
    counterexample: bool = False

    @property
    def mime(self) -> str:
        """The type of ``clean_uri``/``perturbed_uri`` for a ``<source type>``."""
        return "audio/ogg; codecs=opus" if (self.clean_uri or "").startswith(
            "data:audio/ogg") else "audio/wav"


def wav_data_uri(signal: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> str:
    """A mono 16-bit PCM WAV of ``signal`` (float in [-1, 1]) as a ``data:`` URI."""
    import soundfile as sf

    buf = io.BytesIO()
    x = np.clip(np.nan_to_num(np.asarray(signal, dtype=np.float64)), -1.0, 1.0)
    sf.write(buf, x, sampling_rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def opus_data_uri(signal: np.ndarray, sampling_rate: int = SAMPLING_RATE,
                  bit_rate: int = OPUS_BITRATE) -> str:
    """A mono Ogg Opus file of ``signal`` (float in [-1, 1]) as a ``data:`` URI (PyAV's
    libopus encoder; raises if PyAV or the encoder is missing).  Byte-reproducible: the Ogg
    muxer is bit-exact (its stream serial number is otherwise random, and it writes the
    library's version), so one audit renders one report."""
    import av

    x = np.clip(np.nan_to_num(np.asarray(signal, dtype=np.float32)), -1.0, 1.0)
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libopus", rate=sampling_rate)
        stream.bit_rate = bit_rate
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(x[None, :], format="flt", layout="mono")
        frame.sample_rate = sampling_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return "data:audio/ogg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def encode(signal: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> str:
    """Opus where an encoder is available, else WAV (a ``data:`` URI either way)."""
    try:
        return opus_data_uri(signal, sampling_rate)
    except Exception:  # noqa: BLE001 - no PyAV, no libopus: WAV plays everywhere
        return wav_data_uri(signal, sampling_rate)


class AuditItems:
    """The audited dataset's items, read again from the results document's description
    (``doc["dataset"]``: its source, audformat table and label ranges), to find an item's
    audio file: from the worst entry itself or from the dataset's table.

    A dataset that is gone is no exception: :meth:`table` returns ``None`` and
    :attr:`error` says why.

    >>> items = AuditItems({"dataset": {"source": "/no/such/data.csv"}})
    >>> items.table() is None
    True
    >>> items.error
    "the dataset '/no/such/data.csv' is not available on this machine"
    """

    def __init__(self, doc: dict, data_root: str | None = None) -> None:
        self.source = (doc.get("dataset") or {}).get("source") or ""
        if data_root and self.source and not os.path.isabs(self.source):
            # results.json names the data relative to its root (sertest/published.py)
            self.source = os.path.normpath(os.path.join(data_root, self.source))
        # the audformat table and label ranges the audit used, to read the same items again
        self._options = {k: (doc.get("dataset") or {}).get(k) for k in ("table", "label_range")}
        self._table = None
        self.error: str | None = None

    def locate(self, item: dict) -> tuple[str, float | None, float | None]:
        if item.get("file") and isinstance(item["file"], str):
            path = str(item["file"])
            if not os.path.isabs(path) and self.source:
                base = self.source if os.path.isdir(self.source) else os.path.dirname(self.source)
                path = os.path.join(base, path)
            return path, _f(item.get("start")), _f(item.get("end"))
        table = self.table()
        item_id = str(item.get("id"))
        if table is None:
            raise LookupError(self.error or "the dataset is not available")
        if item_id not in table.index:
            raise LookupError(f"item {item_id!r} is not in the dataset {self.source!r}")
        row = table.loc[item_id]
        return str(row["file"]), _f(row.get("start")), _f(row.get("end"))

    def table(self):
        """The dataset's item table (a ``pandas.DataFrame`` indexed by item id, as
        :func:`sertest.data.load_dataset` reads it with the audit's options), read once;
        ``None`` when the dataset cannot be read (:attr:`error` says why)."""
        if self._table is None and self.error is None:
            if not self.source or not os.path.exists(self.source):
                self.error = f"the dataset {self.source!r} is not available on this machine"
                return None
            try:
                from ..data import load_dataset

                # the audit already accepted these paths (it may have run with
                # --allow-outside-root); the report only reads the same audio again
                self._table = load_dataset(self.source, allow_outside_root=True,
                                           **self._options).table
            except Exception as exc:  # noqa: BLE001 - shown as a note
                self.error = f"cannot read the dataset {self.source!r}: {exc}"
        return self._table


def _f(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def pick(candidates: list[tuple[dict, dict, str]], max_items: int = MAX_ITEMS
         ) -> list[tuple[dict, dict, str]]:
    """The most severe pairs first (largest |change|), at most half of the picks from one
    test; every item and every condition at most once, so the gallery spans items and
    severities instead of repeating the harshest condition (-5 dB, RT60 1.6 s); rows whose
    prediction did not change at all are left out (nothing to hear)."""
    pool = []
    for order, (entry, row, anchor) in enumerate(candidates):
        ch = row.get("change")
        if ch == 0 or (ch is None and row.get("clean") == row.get("perturbed")):
            continue
        pool.append((-(abs(ch) if isinstance(ch, (int, float)) else 0.0), order, entry, row, anchor))
    pool.sort(key=lambda t: (t[0], t[1]))
    per_test_cap = max(1, (max_items + 1) // 2)
    chosen, seen, per_test, per_item = [], set(), {}, {}
    for _, _, entry, row, anchor in pool:
        key = str(row["condition"])
        if key in seen or per_test.get(entry["test"], 0) >= per_test_cap or per_item.get(row["id"], 0) >= 1:
            continue
        seen.add(key)
        per_test[entry["test"]] = per_test.get(entry["test"], 0) + 1
        per_item[row["id"]] = per_item.get(row["id"], 0) + 1
        chosen.append((entry, row, anchor))
        if len(chosen) >= max_items:
            break
    return chosen


def _is_search(entry: dict) -> bool:
    return str(entry.get("check") or entry.get("test")) in SEARCH_CHECKS


def counterexamples(doc: dict, candidates: list[tuple[dict, dict, str]] = (),
                    per_search: int = COUNTEREXAMPLES_PER_SEARCH,
                    most: int = MAX_COUNTEREXAMPLES) -> list[tuple[dict, dict, str]]:
    """(entry, row, anchor) of the worst-case searches' minimal counterexamples.

    Read from each search entry's ``plots.worst`` (earliest-breaking first; each row's spec
    is the perturbation at the item's breakdown point) of the candidate models (baselines
    left out); per entry its first ``per_search`` rows, taken in turns across entries (the
    first entry of each search test, then the second ..., so every search, model and
    dimension is heard before a second item of one), each clip (item, model, setting) once,
    at most ``most``.  ``anchor``: the candidates' anchor of the entry (its section of
    the report), else ``gallery``."""
    from .display import is_baseline
    from .plots import worst_rows

    baseline = {m.get("name") for m in doc.get("models", []) if is_baseline(m)}
    anchors = {(e.get("test"), e.get("model"), e.get("dimension")): a
               for e, _, a in candidates}
    queues, per_test = [], {}
    for e in doc.get("tests", []):
        plots = e.get("plots")
        if not _is_search(e) or e.get("model") in baseline or not isinstance(plots, dict):
            continue
        rows = [r for r in worst_rows(plots.get("worst") or []) if r["spec"]][:per_search]
        key = (e.get("test"), e.get("model"), e.get("dimension"))
        anchor = anchors.get(key, "gallery")
        # k-th entry of its test: every search test (one axis, two axes) is heard early
        rank = per_test[e.get("test")] = per_test.get(e.get("test"), -1) + 1
        queues.append((rank, len(queues), [(e, r, anchor) for r in rows]))
    queues = [q for _, _, q in sorted(queues, key=lambda t: t[:2])]
    chosen, seen = [], set()
    for turn in range(per_search):
        for q in queues:
            if turn < len(q) and len(chosen) < most:
                e, r, _ = q[turn]
                if (r["id"], e.get("model"), str(r["spec"])) not in seen:
                    seen.add((r["id"], e.get("model"), str(r["spec"])))
                    chosen.append(q[turn])
    return chosen


def _render(items: "AuditItems", item: dict, item_id: str, spec: dict | None, sr: int, seed: int
            ) -> np.ndarray:
    """The signal the model heard: item audio at ``sr`` Hz, perturbed as the engine does."""
    from .. import audio
    from ..engine.render import condition_signal
    from ..perturb import from_spec

    path, start, end = items.locate({**item, "id": item_id})
    signal, sr_native = audio.read(path, start, end)
    x = audio.resample(signal, sr_native, sr)
    if spec is None:
        return x
    return condition_signal(x, sr, from_spec(spec), seed, item_id)


def _pair(items: "AuditItems", row: dict, sr: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The "before" and "after" signals of one worst row at ``sr`` Hz (see :func:`build`)."""
    raw = row.get("raw") or {}
    after_spec = row.get("spec")
    before_spec = condition_spec(raw.get("baseline"))
    before_id = str(raw.get("reference_id") or row["id"])
    if after_spec is None and before_id == row["id"]:
        raise ValueError("no perturbation to re-create for this item")
    before_item = {} if before_id != row["id"] else raw
    return (_render(items, before_item, before_id, before_spec, sr, seed),
            _render(items, raw, row["id"], after_spec, sr, seed))


def replay(doc: dict, row: dict, model: str | None = None, data_root: str | None = None
           ) -> tuple[np.ndarray, np.ndarray, int]:
    """What the model heard for one worst row (from :func:`plots.worst_rows` or
    :func:`counterexamples`): the "before" and "after" signals at the model's sampling rate
    (Hz, the third value), as the gallery embeds them before its 16 kHz playback copy.
    Raises if the item's audio cannot be read."""
    rates = {m["name"]: int((m.get("info") or {}).get("sampling_rate") or SAMPLING_RATE)
             for m in doc.get("models", [])}
    sr = rates.get(model, SAMPLING_RATE)
    x, y = _pair(AuditItems(doc, data_root), row, sr, int(doc.get("seed", 0) or 0))
    return x, y, sr


def build(doc: dict, candidates: list[tuple[dict, dict, str]], *, max_items: int = MAX_ITEMS,
          max_seconds: float = MAX_SECONDS, budget: int = BUDGET_BYTES,
          data_root: str | None = None) -> tuple[list[Clip], list[str]]:
    """Clips for the chosen worst items and notes about what could not be embedded.

    ``candidates`` are (test entry, normalised worst row from :func:`plots.worst_rows`,
    anchor); ``data_root``: the absolute folder the document's data paths are relative to
    (:attr:`Results.data_root`).  The "before" side is the item under the row's baseline condition (clean
    audio unless a baseline spec is given; for paired recordings the reference recording's
    item), the "after" side the item under the condition.
    """
    from .. import audio

    notes: list[str] = []
    clips: list[Clip] = []
    items = AuditItems(doc, data_root)
    seed = int(doc.get("seed", 0) or 0)
    rates = {m["name"]: int((m.get("info") or {}).get("sampling_rate") or SAMPLING_RATE)
             for m in doc.get("models", [])}
    used = 0
    found = counterexamples(doc, candidates)
    if found:
        notes.append(f"The first {len(found)} pair(s) are worst-case search counterexamples: "
                     "the clean item and the item at its breakdown point, the mildest searched "
                     "setting (two axes: pair of settings) that moved its prediction, one grid "
                     "step past the last that held; earliest-breaking items first, at most "
                     f"{COUNTEREXAMPLES_PER_SEARCH} per search.")
    candidates = [c for c in candidates if not _is_search(c[0])]
    chosen = pick(candidates, max_items)
    if len(candidates) > len(chosen):
        notes.append(f"{len(chosen)} of {len(candidates)} listed items are shown, largest change "
                     f"first, each item and each condition once (so milder conditions are heard "
                     f"too), at most half from one test; unchanged items are left out.")
    over_budget = 0
    for entry, row, anchor in found + chosen:
        raw = row.get("raw") or {}
        clip = Clip(entry["test"], entry["model"], entry["dimension"], anchor, row["id"],
                    row["condition"], row.get("clean"), row.get("perturbed"), row.get("change"),
                    spec=row.get("spec"), held_at=raw.get("held_at"),
                    counterexample=_is_search(entry))
        clips.append(clip)
        try:
            sr = rates.get(entry["model"], SAMPLING_RATE)
            before_spec = condition_spec(raw.get("baseline"))
            before_id = str(raw.get("reference_id") or row["id"])
            x, y = _pair(items, row, sr, seed)
            x16, y16 = audio.resample(x, sr, SAMPLING_RATE), audio.resample(y, sr, SAMPLING_RATE)
            n = int(max_seconds * SAMPLING_RATE)
            clip.cut = max(len(x16), len(y16)) > n
            clip.seconds = round(min(max(len(x16), len(y16)), n) / SAMPLING_RATE, 2)
            clip.before_label = "clean" if before_spec is None and before_id == row["id"] else (
                condition_label(raw.get("baseline")) if before_spec else f"reference recording ({before_id})")
            uri_c, uri_p = encode(x16[:n]), encode(y16[:n])
            if uri_c.startswith("data:audio/ogg") and sum(c.clean_wav is not None
                                                          for c in clips) < WAV_FALLBACK:
                # the fallback at 8 kHz (telephone band): half the size of 16 kHz WAV
                clip.clean_wav, clip.perturbed_wav = (
                    wav_data_uri(audio.resample(x16[:n], SAMPLING_RATE, WAV_FALLBACK_RATE),
                                 WAV_FALLBACK_RATE),
                    wav_data_uri(audio.resample(y16[:n], SAMPLING_RATE, WAV_FALLBACK_RATE),
                                 WAV_FALLBACK_RATE))
            from .svg import waveform

            clip.before_wave, clip.after_wave = waveform(x16[:n]), waveform(y16[:n], css="after")
            size = len(uri_c) + len(uri_p) + len(clip.clean_wav or "") + len(clip.perturbed_wav or "")
            if used + size > budget and clip.clean_wav:  # the fallback goes first
                clip.clean_wav = clip.perturbed_wav = None
                size = len(uri_c) + len(uri_p)
            if used + size > budget:
                over_budget += 1
                clip.clean_wav = clip.perturbed_wav = None
                clip.note = "not embedded: the report's audio size budget is used up"
                continue
            used += size
            clip.clean_uri, clip.perturbed_uri = uri_c, uri_p
        except Exception as exc:  # noqa: BLE001 - degrade to a note
            clip.note = ("audio not available: the dataset cannot be read (see the note above)"
                         if items.error else f"audio not available: {exc}")
    if items.error:
        notes.append(f"Audio could not be embedded: {items.error}.")
    if over_budget:
        notes.append(f"{over_budget} pair(s) left out to keep the embedded audio under "
                     f"{budget / 1e6:.1f} MB.")
    if any(c.clean_uri for c in clips):
        opus = any(c.mime.startswith("audio/ogg") for c in clips if c.clean_uri)
        notes.append(f"Audio is re-created from the dataset with the audit seed (what the model "
                     f"heard), resampled to {SAMPLING_RATE // 1000} kHz"
                     + (f" and encoded as Opus at {OPUS_BITRATE // 1000} kbit/s" if opus else " 16-bit")
                     + f" for playback and cut to the first {max_seconds:g} s; levels are not "
                     "normalised.")
    return clips, notes
