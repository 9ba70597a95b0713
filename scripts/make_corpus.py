#!/usr/bin/env python
"""Generate sertest's bundled default corpus (synthetic speech with nominal labels).

Run from the repository root::

    .venv/bin/python scripts/make_corpus.py --out sertest/data/corpus

What it does (all deterministic: fixed seed, explicit ``numpy.random.Generator`` per item):

1. Builds a plan: every speaker (one fixed TTS voice configuration) reads the sentences of
   its language (8 positive, 8 negative, 8 neutral). Within each (speaker, sentiment) the
   emotions anger/happiness/neutral/sadness are assigned equally often in a seeded random
   order, so the prosody is independent of the lexical sentiment.
2. Draws continuous prosody parameters per item around the emotion's profile (pitch shift in
   semitones, rate as a ratio to the engine default, level in dB re -30 dBFS, pitch range as a
   ratio to the default range) and maps them to nominal arousal/dominance/valence in [0, 1]
   with the formula in :func:`nominal_labels`.
3. Renders with espeak-ng (``-p``/``-s`` flags and SSML ``<prosody range>``) or flite
   (``--setf int_f0_target_mean/int_f0_target_stddev/duration_stretch``), resamples to
   16 kHz with soxr, trims leading/trailing silence, sets the level by a gain and writes
   16-bit mono FLAC.
4. For 40 utterances it writes paired renditions: ``headset`` (the clean item itself),
   ``boundary`` (a pyroomacoustics shoebox room, source-microphone distance 2.06 m) and
   ``mobile`` (300-3400 Hz band-pass and a small level change).
5. Optionally copies a label-free subset of real speech from Debian's pocketsphinx-testdata
   into ``real/``.
6. Writes ``manifest.csv`` and ``DATASHEET.md`` (with counts per group).

Requires the Debian packages ``espeak-ng`` and ``flite`` on PATH and the Python packages
numpy, scipy, soundfile, soxr and pyroomacoustics.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf

try:
    from sertest.seeding import derive_rng
except ImportError:  # running from a checkout without an installed sertest
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from sertest.seeding import derive_rng

SEED = 20240617
SR = 16000  # Hz, output sampling rate
REFERENCE_DBFS = -30.0  # dBFS RMS of the trimmed utterance at level = 0 dB
PEAK_LIMIT = 0.98  # linear full scale; louder renditions are turned down and `level` records it
ESPEAK_DEFAULT_WPM = 175
ESPEAK_UNITS_PER_SEMITONE = 6.0  # espeak-ng -p units per semitone (measured: 0.15-0.18 st/unit)
N_PAIRS = 40

EMOTIONS = ("anger", "happiness", "neutral", "sadness")
SENTIMENTS = ("positive", "negative", "neutral")
RECORDINGS = ("headset", "boundary", "mobile")

MANIFEST_COLUMNS = (
    "id", "file", "speaker", "sex", "language", "accent", "text", "sentiment", "emotion",
    "arousal", "dominance", "valence", "pitch_shift", "rate", "level", "pair", "recording",
    "engine", "voice", "pitch_range",
)
REAL_COLUMNS = ("id", "file", "speaker", "sex", "language")


# --------------------------------------------------------------------------------------------
# Text: CheckList-style sentences, 8 per sentiment, in 7 languages (same order = translations)
# --------------------------------------------------------------------------------------------

SENTENCES: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "positive": ("I love this place.", "What a wonderful day.", "This is a great idea.",
                     "The food was delicious.", "That is such good news.",
                     "You did a fantastic job.", "This gift is perfect.",
                     "We had a lovely time."),
        "negative": ("This is the worst day.", "I hate this place.", "The food was awful.",
                     "This is a terrible idea.", "You did a horrible job.",
                     "This gift is useless.", "We had a miserable time.",
                     "Everything went wrong today."),
        "neutral": ("The meeting is at noon.", "The train leaves at six.",
                    "The book is on the table.", "The shop opens at nine.",
                    "The door is on the left.", "We live on the second floor.",
                    "The letter came on Monday.", "The car is parked outside."),
    },
    "de": {
        "positive": ("Ich liebe diesen Ort.", "Was für ein wunderbarer Tag.",
                     "Das ist eine großartige Idee.", "Das Essen war köstlich.",
                     "Das sind wirklich gute Nachrichten.", "Du hast das fantastisch gemacht.",
                     "Dieses Geschenk ist perfekt.", "Wir hatten eine schöne Zeit."),
        "negative": ("Das ist der schlimmste Tag.", "Ich hasse diesen Ort.",
                     "Das Essen war furchtbar.", "Das ist eine schreckliche Idee.",
                     "Du hast das miserabel gemacht.", "Dieses Geschenk ist nutzlos.",
                     "Wir hatten eine elende Zeit.", "Heute ging alles schief."),
        "neutral": ("Das Treffen ist um zwölf Uhr.", "Der Zug fährt um sechs ab.",
                    "Das Buch liegt auf dem Tisch.", "Der Laden öffnet um neun.",
                    "Die Tür ist links.", "Wir wohnen im zweiten Stock.",
                    "Der Brief kam am Montag.", "Das Auto steht draußen."),
    },
    "fr": {
        "positive": ("J'adore cet endroit.", "Quelle merveilleuse journée.",
                     "C'est une excellente idée.", "Le repas était délicieux.",
                     "C'est une très bonne nouvelle.", "Tu as fait un travail fantastique.",
                     "Ce cadeau est parfait.", "Nous avons passé un très bon moment."),
        "negative": ("C'est la pire journée.", "Je déteste cet endroit.",
                     "Le repas était affreux.", "C'est une idée terrible.",
                     "Tu as fait un travail horrible.", "Ce cadeau est inutile.",
                     "Nous avons passé un moment pénible.", "Tout a mal tourné aujourd'hui."),
        "neutral": ("La réunion est à midi.", "Le train part à six heures.",
                    "Le livre est sur la table.", "Le magasin ouvre à neuf heures.",
                    "La porte est à gauche.", "Nous habitons au deuxième étage.",
                    "La lettre est arrivée lundi.", "La voiture est garée dehors."),
    },
    "es": {
        "positive": ("Me encanta este lugar.", "Qué día tan maravilloso.",
                     "Es una idea genial.", "La comida estaba deliciosa.",
                     "Es una noticia estupenda.", "Hiciste un trabajo fantástico.",
                     "Este regalo es perfecto.", "Lo pasamos muy bien."),
        "negative": ("Es el peor día.", "Odio este lugar.", "La comida estaba horrible.",
                     "Es una idea terrible.", "Hiciste un trabajo pésimo.",
                     "Este regalo es inútil.", "Lo pasamos fatal.", "Hoy todo salió mal."),
        "neutral": ("La reunión es a mediodía.", "El tren sale a las seis.",
                    "El libro está sobre la mesa.", "La tienda abre a las nueve.",
                    "La puerta está a la izquierda.", "Vivimos en el segundo piso.",
                    "La carta llegó el lunes.", "El coche está aparcado fuera."),
    },
    "it": {
        "positive": ("Adoro questo posto.", "Che giornata meravigliosa.",
                     "È un'ottima idea.", "Il cibo era delizioso.",
                     "È una notizia splendida.", "Hai fatto un lavoro fantastico.",
                     "Questo regalo è perfetto.", "Ci siamo divertiti molto."),
        "negative": ("È il giorno peggiore.", "Odio questo posto.", "Il cibo era orribile.",
                     "È un'idea terribile.", "Hai fatto un lavoro pessimo.",
                     "Questo regalo è inutile.", "È stata una serata disastrosa.",
                     "Oggi è andato tutto storto."),
        "neutral": ("La riunione è a mezzogiorno.", "Il treno parte alle sei.",
                    "Il libro è sul tavolo.", "Il negozio apre alle nove.",
                    "La porta è a sinistra.", "Abitiamo al secondo piano.",
                    "La lettera è arrivata lunedì.", "La macchina è parcheggiata fuori."),
    },
    "pt": {
        "positive": ("Adoro este lugar.", "Que dia maravilhoso.", "É uma ótima ideia.",
                     "A comida estava deliciosa.", "É uma excelente notícia.",
                     "Fizeste um trabalho fantástico.", "Este presente é perfeito.",
                     "Divertimo-nos imenso."),
        "negative": ("É o pior dia.", "Odeio este lugar.", "A comida estava horrível.",
                     "É uma ideia terrível.", "Fizeste um trabalho péssimo.",
                     "Este presente é inútil.", "Foi uma noite miserável.",
                     "Hoje correu tudo mal."),
        "neutral": ("A reunião é ao meio-dia.", "O comboio parte às seis.",
                    "O livro está em cima da mesa.", "A loja abre às nove.",
                    "A porta é à esquerda.", "Vivemos no segundo andar.",
                    "A carta chegou na segunda-feira.", "O carro está estacionado lá fora."),
    },
    "nl": {
        "positive": ("Ik hou van deze plek.", "Wat een prachtige dag.",
                     "Dat is een geweldig idee.", "Het eten was heerlijk.",
                     "Dat is echt goed nieuws.", "Je hebt het fantastisch gedaan.",
                     "Dit cadeau is perfect.", "We hebben een leuke tijd gehad."),
        "negative": ("Dit is de slechtste dag.", "Ik haat deze plek.",
                     "Het eten was vreselijk.", "Dat is een afschuwelijk idee.",
                     "Je hebt het waardeloos gedaan.", "Dit cadeau is nutteloos.",
                     "We hebben een ellendige tijd gehad.", "Vandaag ging alles mis."),
        "neutral": ("De vergadering is om twaalf uur.", "De trein vertrekt om zes uur.",
                    "Het boek ligt op tafel.", "De winkel gaat om negen uur open.",
                    "De deur is links.", "We wonen op de tweede verdieping.",
                    "De brief kwam op maandag.", "De auto staat buiten."),
    },
}
SENTIMENT_CODE = {"positive": "pos", "negative": "neg", "neutral": "neu"}


# --------------------------------------------------------------------------------------------
# Speakers: one fixed voice configuration each
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Speaker:
    """A fixed TTS voice configuration.

    ``base_pitch`` is the espeak-ng ``-p`` value (0-99) at pitch_shift 0, or for flite the
    ``int_f0_target_mean`` in Hz; ``base_range`` is flite's ``int_f0_target_stddev`` in Hz at
    pitch_range 1 (unused for espeak-ng, whose SSML range is a percentage of its default).
    """

    id: str
    engine: str  # espeak-ng | flite
    voice: str
    sex: str
    language: str
    accent: str
    base_pitch: float
    base_range: float = 0.0
    half: int | None = None  # None: reads all 8 sentences per sentiment; 0/1: reads 1-4 / 5-8


def _espeak(lang_voice: str, variant: str, sex: str, language: str, accent: str,
            base_pitch: int, half: int | None = None) -> Speaker:
    return Speaker(f"espeak-{lang_voice}-{variant}", "espeak-ng", f"{lang_voice}+{variant}",
                   sex, language, accent, float(base_pitch), half=half)


SPEAKERS: tuple[Speaker, ...] = (
    # Every voice reads all 24 sentences of its language (the English espeak-ng voices read
    # complementary halves until issue 12: 24 items per accent left fairness_accent unable
    # to pass a sound model).
    _espeak("en-us", "m3", "male", "en", "us", 50),
    _espeak("en-us", "f3", "female", "en", "us", 48),
    _espeak("en-gb", "m1", "male", "en", "gb", 52),
    _espeak("en-gb", "f2", "female", "en", "gb", 50),
    _espeak("en-gb-scotland", "m7", "male", "en", "scottish", 46),
    _espeak("en-gb-scotland", "f4", "female", "en", "scottish", 52),
    _espeak("en-029", "m5", "male", "en", "caribbean", 54),
    _espeak("en-029", "f5", "female", "en", "caribbean", 46),
    _espeak("en-us-nyc", "m2", "male", "en", "nyc", 48),
    _espeak("en-us-nyc", "f1", "female", "en", "nyc", 54),
    Speaker("flite-slt", "flite", "slt", "female", "en", "us", 170.0, 30.0),
    Speaker("flite-awb", "flite", "awb", "male", "en", "scottish", 125.0, 20.0),
    Speaker("flite-kal16", "flite", "kal16", "male", "en", "us", 95.0, 12.0),
    _espeak("de", "m4", "male", "de", "de", 50),
    _espeak("de", "f1", "female", "de", "de", 48),
    _espeak("fr", "m6", "male", "fr", "fr", 48),
    _espeak("fr", "f2", "female", "fr", "fr", 52),
    _espeak("es", "m2", "male", "es", "es", 52),
    _espeak("es", "f3", "female", "es", "es", 50),
    _espeak("it", "m1", "male", "it", "it", 46),
    _espeak("it", "f4", "female", "it", "it", 50),
    _espeak("pt", "m7", "male", "pt", "pt", 54),
    _espeak("pt", "f5", "female", "pt", "pt", 48),
    _espeak("nl", "m5", "male", "nl", "nl", 50),
    _espeak("nl", "f4", "female", "nl", "nl", 46),
    # A second male and female voice per non-English language: 4 voices and 32 items per
    # (language, sentiment) cell, so that a sound model can pass the per-cell fairness
    # comparisons of fairness_linguistic_sentiment (16 items per cell could not resolve a
    # shift of 0.075 - measured with `sertest validate`, see docs/validity.md).  The new
    # female voices speak lower (-p 24, mean F0 about 150-190 Hz): before them only two
    # voices fell in fairness_pitch's medium band (145-190 Hz), and the band's 48 items
    # limited every truth-balanced pitch comparison to 48 items per group.
    _espeak("de", "m2", "male", "de", "de", 46),
    _espeak("de", "f3", "female", "de", "de", 24),
    _espeak("fr", "m3", "male", "fr", "fr", 54),
    _espeak("fr", "f5", "female", "fr", "fr", 24),
    _espeak("es", "m6", "male", "es", "es", 48),
    _espeak("es", "f1", "female", "es", "es", 24),
    _espeak("it", "m5", "male", "it", "it", 52),
    _espeak("it", "f2", "female", "it", "it", 24),
    _espeak("pt", "m4", "male", "pt", "pt", 50),
    _espeak("pt", "f3", "female", "pt", "pt", 24),
    _espeak("nl", "m1", "male", "nl", "nl", 54),
    _espeak("nl", "f5", "female", "nl", "nl", 24),
)


# --------------------------------------------------------------------------------------------
# Prosody profiles and the label formula
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Profile:
    """Mean prosody of an emotion: semitones, rate ratio, dB re reference, range ratio."""

    pitch_shift: float
    rate: float
    level: float
    pitch_range: float


PROFILES = {
    "anger": Profile(pitch_shift=2.5, rate=1.25, level=6.0, pitch_range=0.6),
    "happiness": Profile(pitch_shift=4.0, rate=1.12, level=2.0, pitch_range=1.6),
    "neutral": Profile(pitch_shift=0.0, rate=1.0, level=0.0, pitch_range=1.0),
    "sadness": Profile(pitch_shift=-3.0, rate=0.78, level=-7.0, pitch_range=0.45),
}
JITTER_SD = {"pitch_shift": 1.0, "log_rate": 0.06, "level": 1.5, "log2_range": 0.15}
LIMITS = {"pitch_shift": (-6.0, 7.0), "rate": (0.6, 1.6), "level": (-12.0, 10.0),
          "pitch_range": (0.3, 2.0)}


def nominal_labels(pitch_shift: float, rate: float, level: float,
                   pitch_range: float) -> tuple[float, float, float]:
    """Nominal (arousal, dominance, valence) in [0, 1] from prosody parameters.

    pitch_shift in semitones re the speaker default, rate as a ratio to the engine default,
    level in dB re -30 dBFS RMS, pitch_range as a ratio to the default F0 range::

        a = 0.45*level/8 + 0.35*log2(rate)/0.4 + 0.20*pitch_shift/4
        d = 0.75*level/8 + 0.25*log2(rate)/0.4
        v = 0.70*log2(pitch_range) + 0.30*pitch_shift/4
        label = clip(0.5 + 0.4*x, 0, 1), rounded to 3 decimals
    """
    lr = math.log2(rate) / 0.4
    a = 0.45 * level / 8 + 0.35 * lr + 0.20 * pitch_shift / 4
    d = 0.75 * level / 8 + 0.25 * lr
    v = 0.70 * math.log2(pitch_range) + 0.30 * pitch_shift / 4

    def squash(x: float) -> float:
        return round(min(1.0, max(0.0, 0.5 + 0.4 * x)), 3)

    return squash(a), squash(d), squash(v)


# --------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------

@dataclass
class Item:
    """One manifest row plus what is needed to render it."""

    id: str
    speaker: Speaker
    sentence_key: str
    text: str
    sentiment: str
    emotion: str
    pitch_shift: float
    rate: float
    level: float
    pitch_range: float
    engine_args: dict = field(default_factory=dict)
    pair: str = ""
    recording: str = ""
    source: str = ""  # id of the headset item a boundary/mobile rendition is derived from

    @property
    def file(self) -> str:
        return f"audio/{self.speaker.id}/{self.id}.flac"


def _quantise(speaker: Speaker, pitch_shift: float, rate: float,
              pitch_range: float) -> tuple[float, float, float, dict]:
    """Engine arguments and the parameter values they actually realise."""
    if speaker.engine == "espeak-ng":
        p = int(min(99, max(0, round(speaker.base_pitch + ESPEAK_UNITS_PER_SEMITONE * pitch_shift))))
        s = int(round(ESPEAK_DEFAULT_WPM * rate))
        r = int(round(100 * pitch_range))
        args = {"p": p, "s": s, "range_pct": r}
        return ((p - speaker.base_pitch) / ESPEAK_UNITS_PER_SEMITONE, s / ESPEAK_DEFAULT_WPM,
                r / 100, args)
    pitch_shift = round(pitch_shift, 2)
    stretch = round(1.0 / rate, 3)
    pitch_range = round(pitch_range, 3)
    args = {"f0_mean": round(speaker.base_pitch * 2 ** (pitch_shift / 12), 2),
            "f0_sd": round(speaker.base_range * pitch_range, 2), "stretch": stretch}
    return pitch_shift, 1.0 / stretch, pitch_range, args


def _draw_prosody(profile: Profile, rng: np.random.Generator) -> tuple[float, float, float, float]:
    lo, hi = LIMITS["pitch_shift"]
    pitch = float(np.clip(profile.pitch_shift + JITTER_SD["pitch_shift"] * rng.standard_normal(), lo, hi))
    lo, hi = LIMITS["rate"]
    rate = float(np.clip(profile.rate * math.exp(JITTER_SD["log_rate"] * rng.standard_normal()), lo, hi))
    lo, hi = LIMITS["level"]
    level = float(np.clip(profile.level + JITTER_SD["level"] * rng.standard_normal(), lo, hi))
    lo, hi = LIMITS["pitch_range"]
    prange = float(np.clip(profile.pitch_range * 2 ** (JITTER_SD["log2_range"] * rng.standard_normal()), lo, hi))
    return pitch, rate, level, prange


def build_plan(seed: int = SEED) -> list[Item]:
    """Every item of the corpus in manifest order (paired renditions follow their source)."""
    items: list[Item] = []
    for spk in SPEAKERS:
        for sentiment in SENTIMENTS:
            texts = SENTENCES[spk.language][sentiment]
            numbers = list(range(len(texts)))
            if spk.half is not None:
                h = len(texts) // 2
                numbers = numbers[spk.half * h:(spk.half + 1) * h]
            emotions = [EMOTIONS[i % len(EMOTIONS)] for i in range(len(numbers))]
            order = derive_rng(seed, "emotion", spk.id, sentiment).permutation(len(numbers))
            for j, k in enumerate(numbers):
                text = texts[k]
                emotion = emotions[int(order[j])]
                key = f"{SENTIMENT_CODE[sentiment]}{k + 1:02d}"
                item_id = f"{spk.id}_{key}"
                rng = derive_rng(seed, "prosody", item_id)
                pitch, rate, level, prange = _draw_prosody(PROFILES[emotion], rng)
                pitch, rate, prange, args = _quantise(spk, pitch, rate, prange)
                items.append(Item(item_id, spk, key, text, sentiment, emotion, pitch, rate,
                                  round(level, 2), prange, args))
    return _add_pairs(items, seed)


def _add_pairs(items: list[Item], seed: int) -> list[Item]:
    """Choose N_PAIRS items (balanced over emotions, at most 2 per speaker) for paired renditions."""
    rng = derive_rng(seed, "pairs")
    per_emotion = N_PAIRS // len(EMOTIONS)
    taken_emotion: Counter = Counter()
    taken_speaker: Counter = Counter()
    chosen: list[int] = []
    for idx in rng.permutation(len(items)):
        it = items[int(idx)]
        if taken_emotion[it.emotion] < per_emotion and taken_speaker[it.speaker.id] < 2:
            chosen.append(int(idx))
            taken_emotion[it.emotion] += 1
            taken_speaker[it.speaker.id] += 1
        if len(chosen) == N_PAIRS:
            break
    pair_of = {idx: f"pair{n + 1:03d}" for n, idx in enumerate(sorted(chosen))}
    out: list[Item] = []
    for idx, it in enumerate(items):
        out.append(it)
        if idx in pair_of:
            it.pair, it.recording = pair_of[idx], "headset"
            for rec in RECORDINGS[1:]:
                out.append(Item(f"{it.id}_{rec}", it.speaker, it.sentence_key, it.text,
                                it.sentiment, it.emotion, it.pitch_shift, it.rate, it.level,
                                it.pitch_range, it.engine_args, it.pair, rec, source=it.id))
    return out


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

def _run(cmd: list[str], what: str) -> bytes:
    try:
        res = subprocess.run(cmd, capture_output=True, check=True)
    except FileNotFoundError as exc:
        raise SystemExit(f"make_corpus: {cmd[0]} not found on PATH (needed for {what}); "
                         "install it with `apt-get install espeak-ng flite`") from exc
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"make_corpus: {cmd[0]} failed for {what}: "
                         f"{exc.stderr.decode(errors='replace')}") from exc
    return res.stdout


def synthesise(item: Item, tmpdir: Path) -> tuple[np.ndarray, int]:
    """Raw TTS output of ``item`` as float64 in [-1, 1] and its sampling rate in Hz."""
    spk, a = item.speaker, item.engine_args
    if spk.engine == "espeak-ng":
        ssml = f'<speak><prosody range="{a["range_pct"]}%">{escape(item.text)}</prosody></speak>'
        wav = _run(["espeak-ng", "-v", spk.voice, "-p", str(a["p"]), "-s", str(a["s"]),
                    "-a", "100", "-b", "1", "-m", "-z", "--stdout", ssml], f"item {item.id}")
        x, sr = sf.read(io.BytesIO(wav), dtype="float64")
    else:
        out = tmpdir / f"{item.id}.wav"
        _run(["flite", "-voice", spk.voice,
              "--setf", f"int_f0_target_mean={a['f0_mean']}",
              "--setf", f"int_f0_target_stddev={a['f0_sd']}",
              "--setf", f"duration_stretch={a['stretch']}",
              "-t", item.text, "-o", str(out)], f"item {item.id}")
        x, sr = sf.read(out, dtype="float64")
        out.unlink()
    if x.ndim > 1:
        x = x.mean(axis=1)
    return x, int(sr)


def resample(x: np.ndarray, sr: int) -> np.ndarray:
    """Resample to SR (16 kHz) with soxr's HQ filter."""
    if sr == SR:
        return x
    import soxr

    return soxr.resample(x, sr, SR, quality="HQ")


def trim_silence(x: np.ndarray, floor_db: float = 45.0, pad_s: float = 0.04,
                 fade_s: float = 0.005) -> np.ndarray:
    """Cut leading/trailing frames more than ``floor_db`` dB below the loudest 20-ms frame.

    Keeps ``pad_s`` seconds on each side and applies ``fade_s``-second linear fades.
    """
    hop, win = SR // 100, SR // 50
    n = max(1, 1 + (len(x) - win) // hop)
    energy = np.array([np.mean(x[i * hop:i * hop + win] ** 2) for i in range(n)]) + 1e-20
    db = 10 * np.log10(energy)
    active = np.flatnonzero(db > db.max() - floor_db)
    pad = int(pad_s * SR)
    start = max(0, active[0] * hop - pad)
    stop = min(len(x), active[-1] * hop + win + pad)
    y = x[start:stop].copy()
    nf = int(fade_s * SR)
    ramp = np.linspace(0.0, 1.0, nf)
    y[:nf] *= ramp
    y[-nf:] *= ramp[::-1]
    return y


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level of ``x`` in dB re full scale (1.0)."""
    return float(10 * np.log10(np.mean(x ** 2) + 1e-20))


def set_level(x: np.ndarray, level_db: float) -> tuple[np.ndarray, float]:
    """Scale ``x`` to REFERENCE_DBFS + ``level_db`` RMS; turn down if the peak would exceed
    PEAK_LIMIT. Returns the signal and the level (dB re reference) actually applied."""
    gain = 10 ** ((REFERENCE_DBFS + level_db - rms_dbfs(x)) / 20)
    peak = float(np.max(np.abs(x))) * gain
    if peak > PEAK_LIMIT:
        gain *= PEAK_LIMIT / peak
    y = x * gain
    return y, round(rms_dbfs(y) - REFERENCE_DBFS, 2)


_ROOM_IR: np.ndarray | None = None


def room_ir() -> np.ndarray:
    """Impulse response of a fixed shoebox room (6.0 x 4.5 x 2.8 m, RT60 0.45 s) from a
    source at (2.0, 2.25, 1.5) m to a boundary microphone at (4.0, 2.25, 1.0) m, 2.06 m away.

    Image-source method only (no ray tracing), so it involves no random numbers.
    """
    global _ROOM_IR
    if _ROOM_IR is None:
        import pyroomacoustics as pra

        dim = [6.0, 4.5, 2.8]
        absorption, max_order = pra.inverse_sabine(0.45, dim)
        room = pra.ShoeBox(dim, fs=SR, materials=pra.Material(absorption),
                           max_order=min(max_order, 17), use_rand_ism=False)
        room.add_source([2.0, 2.25, 1.5])
        room.add_microphone([4.0, 2.25, 1.0])
        room.compute_rir()
        _ROOM_IR = np.asarray(room.rir[0][0], dtype=np.float64)
    return _ROOM_IR


def boundary(x: np.ndarray) -> np.ndarray:
    """``x`` through the simulated room, 0.25 s of reverberant tail kept, same energy as ``x``."""
    from scipy.signal import fftconvolve

    y = fftconvolve(x, room_ir())[: len(x) + SR // 4]
    y *= math.sqrt(np.sum(x ** 2) / np.sum(y ** 2))
    return _limit(y)


def mobile(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` band-limited to 300-3400 Hz (4th-order Butterworth, causal) with a gain drawn
    uniformly from -4 to -1 dB."""
    from scipy.signal import butter, sosfilt

    sos = butter(4, [300, 3400], btype="bandpass", fs=SR, output="sos")
    gain_db = float(rng.uniform(-4.0, -1.0))
    return _limit(sosfilt(sos, x) * 10 ** (gain_db / 20))


def _limit(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(x)))
    return x * (PEAK_LIMIT / peak) if peak > PEAK_LIMIT else x


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] to int16 samples (round half to even, clipped)."""
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def write_flac(path: Path, x: np.ndarray) -> None:
    """Write 16-bit mono FLAC at SR, highest compression."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, to_pcm16(x), SR, format="FLAC", subtype="PCM_16", compression_level=1.0)


def render(items: list[Item], plan: list[Item], out: Path, seed: int) -> None:
    """Render ``items`` (a subset of ``plan``) into ``out``.

    Updates ``item.level`` to the level actually applied. Paired renditions are derived from
    their source item in ``plan``, which is synthesised even if it is not in ``items``.
    """
    import tempfile

    clean: dict[str, np.ndarray] = {}
    by_id = {it.id: it for it in plan}
    with tempfile.TemporaryDirectory() as tmp:
        def get_clean(item: Item) -> np.ndarray:
            if item.id not in clean:
                x, sr = synthesise(item, Path(tmp))
                y, applied = set_level(trim_silence(resample(x, sr)), item.level)
                if abs(applied - item.level) > 0.01:
                    print(f"make_corpus: {item.id}: level {item.level:+.2f} dB would clip; "
                          f"applied {applied:+.2f} dB", file=sys.stderr)
                item.level = applied
                clean[item.id] = y
            return clean[item.id]

        for it in items:
            if it.recording in ("", "headset"):
                y = get_clean(it)
            else:
                src = by_id[it.source]
                base = get_clean(src)
                it.level = src.level
                y = boundary(base) if it.recording == "boundary" else mobile(
                    base, derive_rng(seed, "mobile", it.id))
            write_flac(out / it.file, y)


# --------------------------------------------------------------------------------------------
# Manifest, real-speech subset, datasheet
# --------------------------------------------------------------------------------------------

def manifest_row(it: Item) -> dict[str, str]:
    """The manifest row of ``it`` as strings, in MANIFEST_COLUMNS order."""
    a, d, v = nominal_labels(it.pitch_shift, it.rate, it.level, it.pitch_range)
    row = {
        "id": it.id, "file": it.file, "speaker": it.speaker.id, "sex": it.speaker.sex,
        "language": it.speaker.language, "accent": it.speaker.accent, "text": it.text,
        "sentiment": it.sentiment, "emotion": it.emotion,
        "arousal": f"{a:.3f}", "dominance": f"{d:.3f}", "valence": f"{v:.3f}",
        "pitch_shift": f"{it.pitch_shift:.2f}", "rate": f"{it.rate:.3f}",
        "level": f"{it.level:.2f}", "pair": it.pair, "recording": it.recording,
        "engine": it.speaker.engine, "voice": it.speaker.voice,
        "pitch_range": f"{it.pitch_range:.3f}",
    }
    return {c: row[c] for c in MANIFEST_COLUMNS}


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    """UTF-8 CSV with a header and Unix line ends."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


REAL_SOURCES = (
    # (id, path relative to the pocketsphinx test data folder, speaker, raw?)
    ("librivox-0880", "librivox/sense_and_sensibility_01_austen_64kb-0880.wav", "librivox-reader", False),
    ("librivox-0930", "librivox/sense_and_sensibility_01_austen_64kb-0930.wav", "librivox-reader", False),
    ("cards-001", "cards/001.wav", "cards-speaker", False),
    ("cards-002", "cards/002.wav", "cards-speaker", False),
    ("cards-003", "cards/003.wav", "cards-speaker", False),
    ("cards-004", "cards/004.wav", "cards-speaker", False),
    ("cards-005", "cards/005.wav", "cards-speaker", False),
    ("an4-goforward", "goforward.raw", "an4-goforward-speaker", True),
    ("an4-numbers", "numbers.raw", "an4-numbers-speaker", True),
    ("an4-something", "something.raw", "an4-something-speaker", True),
)
REAL_DEFAULT_DIRS = ("/usr/share/pocketsphinx/test/data", "/usr/share/pocketsphinx-testdata/test/data")

REAL_LICENSE = """\
Real-speech subset of sertest's bundled corpus
==============================================

The files in this folder are FLAC re-encodings (16 kHz, 16-bit, mono, unmodified samples)
of test recordings shipped in Debian's `pocketsphinx-testdata` package
(folder /usr/share/pocketsphinx/test/data):

- librivox/sense_and_sensibility_01_austen_64kb-0880.wav and -0930.wav: excerpts of a LibriVox
  reading of Jane Austen's "Sense and Sensibility", chapter 1 (LibriVox recordings are in the
  public domain);
- cards/001.wav ... 005.wav and goforward.raw, numbers.raw, something.raw: CMU Sphinx test
  recordings.

They carry no emotion labels. `speaker` names the recording set; recordings in different
sets may or may not be the same person. `sex` is "male" for all of them (median F0 80-130 Hz).

Debian's copyright file for pocketsphinx declares these files under the BSD-2-Clause licence:

Copyright: 1995-2014 Carnegie Mellon University.  All rights reserved.
           2014-2015 Alpha Cephei Inc.

Redistribution and use in source and binary forms, with or without modification, are
permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of
   conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice, this list of
   conditions and the following disclaimer in the documentation and/or other materials
   provided with the distribution.

This work was supported in part by funding from the Defense Advanced Research Projects
Agency and the National Science Foundation of the United States of America, and the CMU
Sphinx Speech Consortium.

THIS SOFTWARE IS PROVIDED BY CARNEGIE MELLON UNIVERSITY ``AS IS'' AND ANY EXPRESSED OR
IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY
AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED.  IN NO EVENT SHALL CARNEGIE MELLON
UNIVERSITY NOR ITS EMPLOYEES BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL,
EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE
GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND
ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING
NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED
OF THE POSSIBILITY OF SUCH DAMAGE.
"""


def find_real_source(explicit: str | None) -> Path | None:
    """The pocketsphinx test data folder, or None if it is not installed."""
    candidates = [explicit] if explicit else list(REAL_DEFAULT_DIRS)
    for c in candidates:
        if c and (Path(c) / "cards" / "001.wav").is_file():
            return Path(c)
    if explicit:
        raise SystemExit(f"make_corpus: --real-source {explicit}: cards/001.wav not found there")
    return None


def write_real(src: Path, out: Path) -> list[dict[str, str]]:
    """Copy the real-speech subset into ``out/real`` as FLAC; return its manifest rows."""
    rows = []
    for rid, rel, speaker, raw in REAL_SOURCES:
        path = src / rel
        if raw:
            x = np.fromfile(path, dtype="<i2")
            sr = SR
        else:
            x, sr = sf.read(path, dtype="int16")
        if sr != SR or x.ndim != 1:
            raise SystemExit(f"make_corpus: {path}: expected 16 kHz mono, got {sr} Hz, shape {x.shape}")
        dest = out / "real" / "audio" / f"{rid}.flac"
        dest.parent.mkdir(parents=True, exist_ok=True)
        sf.write(dest, x, SR, format="FLAC", subtype="PCM_16", compression_level=1.0)
        rows.append({"id": rid, "file": f"audio/{rid}.flac", "speaker": speaker,
                     "sex": "male", "language": "en"})
    write_csv(out / "real" / "manifest.csv", REAL_COLUMNS, rows)
    (out / "real" / "LICENSE").write_text(REAL_LICENSE, encoding="utf-8")
    return rows


def _count_table(rows: list[dict[str, str]], column: str) -> str:
    counts = Counter(r[column] for r in rows)
    lines = [f"| {column} | items |", "|---|---|"]
    lines += [f"| {k or '(empty)'} | {n} |" for k, n in sorted(counts.items())]
    return "\n".join(lines)


def _cross_table(rows: list[dict[str, str]], a: str, b: str) -> str:
    counts = Counter((r[a], r[b]) for r in rows)
    cols = sorted({r[b] for r in rows})
    lines = [f"| {a} \\ {b} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for key in sorted({r[a] for r in rows}):
        lines.append(f"| {key} | " + " | ".join(str(counts[(key, c)]) for c in cols) + " |")
    return "\n".join(lines)


def _speaker_table() -> str:
    lines = ["| speaker | engine | voice | sex | language | accent | base pitch |", "|---|---|---|---|---|---|---|"]
    for s in SPEAKERS:
        base = f"-p {s.base_pitch:g}" if s.engine == "espeak-ng" else (
            f"F0 mean {s.base_pitch:g} Hz, sd {s.base_range:g} Hz")
        lines.append(f"| {s.id} | {s.engine} | {s.voice} | {s.sex} | {s.language} | {s.accent} | {base} |")
    return "\n".join(lines)


def _profile_table() -> str:
    lines = ["| emotion | pitch_shift (st) | rate (ratio) | level (dB) | pitch_range (ratio) |",
             "|---|---|---|---|---|"]
    for e, p in PROFILES.items():
        lines.append(f"| {e} | {p.pitch_shift:+g} | {p.rate:g} | {p.level:+g} | {p.pitch_range:g} |")
    return "\n".join(lines)


def _label_stats(rows: list[dict[str, str]]) -> str:
    lines = ["| emotion | arousal mean (min-max) | dominance mean (min-max) | valence mean (min-max) |",
             "|---|---|---|---|"]
    for e in EMOTIONS:
        cells = []
        for dim in ("arousal", "dominance", "valence"):
            vals = np.array([float(r[dim]) for r in rows if r["emotion"] == e])
            cells.append(f"{vals.mean():.2f} ({vals.min():.2f}-{vals.max():.2f})")
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _tool_version(cmd: list[str]) -> str:
    """The line of ``cmd``'s output that names the version, without machine-specific paths."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return "not installed"
    lines = [ln.strip() for ln in (out.stdout or out.stderr).splitlines() if ln.strip()]
    for ln in lines:
        if "version" in ln.lower() or "text-to-speech" in ln.lower():
            return ln.split("  Data at:")[0].strip()
    return lines[0] if lines else "unknown"


def write_datasheet(out: Path, rows: list[dict[str, str]], real_rows: list[dict[str, str]],
                    seed: int) -> None:
    """DATASHEET.md: provenance, columns, label formula, counts, licences, limitations."""
    import soxr

    clean = [r for r in rows if r["recording"] in ("", "headset")]
    espeak_v = _tool_version(["espeak-ng", "--version"])
    flite_v = _tool_version(["flite", "--version"])
    text = DATASHEET_TEMPLATE.format(
        n_items=len(rows), n_clean=len(clean), n_speakers=len({r["speaker"] for r in rows}),
        n_pairs=len({r["pair"] for r in rows if r["pair"]}),
        n_real=len(real_rows), seed=seed, ref=REFERENCE_DBFS,
        espeak=espeak_v, flite=flite_v, soxr=soxr.__version__, soundfile=sf.__version__,
        numpy=np.__version__,
        speakers=_speaker_table(), profiles=_profile_table(), jitter=_jitter_text(),
        t_sex=_count_table(clean, "sex"), t_lang=_count_table(clean, "language"),
        t_accent=_cross_table(clean, "accent", "sex"),
        t_sent=_cross_table(clean, "sentiment", "emotion"),
        t_engine=_count_table(clean, "engine"), t_rec=_count_table(rows, "recording"),
        t_lang_emotion=_cross_table(clean, "language", "emotion"),
        t_labels=_label_stats(clean),
        duration=_duration_text(out, clean), acoustics=_acoustics_table(out, clean),
    )
    (out / "DATASHEET.md").write_text(text, encoding="utf-8")


def _duration_text(out: Path, rows: list[dict[str, str]]) -> str:
    d = np.array([sf.info(out / r["file"]).duration for r in rows])
    return (f"{d.sum() / 60:.1f} min in total, {d.mean():.2f} s on average "
            f"(min {d.min():.2f} s, max {d.max():.2f} s)")


def _acoustics_table(out: Path, rows: list[dict[str, str]]) -> str:
    """Spearman correlations between nominal labels and simple measured acoustics."""
    level, logdur = [], []
    for r in rows:
        x, _ = sf.read(out / r["file"], dtype="float64")
        level.append(rms_dbfs(x))
        logdur.append(math.log(len(x) / SR))
    level_a, logdur_a = np.array(level), np.array(logdur)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r["language"], r["text"]), []).append(i)
    speed = np.empty(len(rows))
    for idx in groups.values():
        speed[idx] = -(logdur_a[idx] - logdur_a[idx].mean())

    def rho(a: np.ndarray, b: np.ndarray) -> float:
        ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
        return float(np.corrcoef(ra, rb)[0, 1])

    col = {k: np.array([float(r[k]) for r in rows]) for k in ("arousal", "dominance", "valence", "rate")}
    lines = ["| label / parameter | measured RMS level (dBFS) | measured speaking rate |", "|---|---|---|"]
    for k in ("arousal", "dominance", "valence", "rate"):
        lines.append(f"| {k} | {rho(col[k], level_a):.2f} | {rho(col[k], speed):.2f} |")
    return "\n".join(lines)


def _jitter_text() -> str:
    j = JITTER_SD
    return (f"pitch_shift + N(0, {j['pitch_shift']:g}) st; rate × exp(N(0, {j['log_rate']:g})); "
            f"level + N(0, {j['level']:g}) dB; pitch_range × 2^N(0, {j['log2_range']:g}); "
            f"then clipped to pitch_shift {LIMITS['pitch_shift']}, rate {LIMITS['rate']}, "
            f"level {LIMITS['level']}, pitch_range {LIMITS['pitch_range']}")


DATASHEET_TEMPLATE = """\
# Datasheet: sertest bundled corpus (synthetic speech with nominal prosody labels)

*This file is written by `scripts/make_corpus.py`; edit the script, not this file.*

## What it is

A small offline corpus so that `sertest run --model M` works without downloading anything.
It holds **{n_items} items** ({n_clean} clean utterances plus {n_pairs} × 2 extra paired
renditions) from **{n_speakers} synthetic speakers**, 16 kHz, 16-bit mono FLAC, about 1-3 s
each, plus an optional label-free subset of {n_real} real recordings in `real/`.

- **Speech**: text-to-speech from the formant synthesiser **espeak-ng** and the diphone /
  statistical-parametric voices of **flite**. No human speaker was recorded.
- **Text**: short CheckList-style sentences with positive, negative or neutral lexical
  sentiment, written for this corpus in English and translated (by the authors, not by
  native-speaker reviewers) into German, French, Spanish, Italian, Portuguese and Dutch.
  Every speaker reads all 24 sentences of its language (8 per sentiment).
- **Labels**: the emotion category is the *prosody profile* used to render the utterance;
  arousal, dominance and valence are **nominal values computed from the prosody parameters**
  by the formula below. They are not judgements by human listeners.
- **Balanced design**: within every (speaker, sentiment) each emotion profile is used equally
  often (twice, or once for the 12-sentence voices), in a seeded random order, so prosody is
  independent of the words. A model that reads
  the words instead of the voice shows up as a shift between sentiment groups.

Intended use: smoke tests, demos, CI runs and *relative* behavioural checks of SER models
(does arousal follow loudness and rate, does a model react to lexical sentiment, do
predictions change between paired recording conditions, do groups differ). **Not** for
training or validating production models, and not for estimating real-world accuracy.

## What it is NOT

- Not emotional speech: nobody felt or acted an emotion. The "emotions" are rule-based
  changes of pitch, pitch range, speaking rate and level applied to a robotic TTS voice.
  Real emotional speech also changes voice quality, spectral tilt, articulation and timing
  in ways these voices cannot.
- The voices are robotic and do not belong to real people; a `speaker` is a TTS voice
  configuration, and speakers of the same engine share one synthesiser.
- `sex` is the nominal sex of the TTS voice (espeak-ng variant m*/f*, flite voice), not a
  person's sex or gender.
- Accents are the engines' pronunciation rules, not recordings of accented speakers.
- Translations were not checked by native speakers; espeak-ng's pronunciation of some words
  may be wrong.

## Files

- `manifest.csv`: one row per item (UTF-8, comma-separated, header row). Paths are relative
  to the manifest.
- `audio/<speaker>/<id>.flac`: 16 kHz, 16-bit, mono FLAC, leading/trailing silence trimmed.
- `real/manifest.csv`, `real/audio/*.flac`, `real/LICENSE`: real recorded speech (see below).
- `DATASHEET.md`: this file.

## Columns of manifest.csv

| column | meaning |
|---|---|
| id | unique item id: `<speaker>_<sentence>` (`pos01`…`neu08`), plus `_boundary`/`_mobile` for paired renditions |
| file | relative path of the FLAC file |
| speaker | TTS voice configuration (table below) |
| sex | female / male: nominal sex of the TTS voice |
| language | ISO 639-1 code: en, de, fr, es, it, pt, nl |
| accent | English: us, gb, scottish, caribbean, nyc; other languages: the language code (standard variant of the engine; `pt` is European Portuguese) |
| text | the sentence read |
| sentiment | positive / negative / neutral lexical sentiment of the text |
| emotion | prosody profile: anger / happiness / neutral / sadness |
| arousal, dominance, valence | nominal labels in [0, 1], 3 decimals (formula below) |
| pitch_shift | F0 shift in semitones re the speaker's base pitch (nominal for espeak-ng: `-p = base + 6 × pitch_shift`, measured 0.15-0.18 st per `-p` unit; flite: `int_f0_target_mean = base × 2^(pitch_shift/12)`) |
| rate | speaking rate as a ratio to the engine default (espeak-ng: `-s = 175 × rate` words/min; flite: `duration_stretch = 1/rate`) |
| level | RMS level of the trimmed clean utterance in dB re {ref:g} dBFS (applied as a gain after synthesis; renditions whose peak would exceed 0.98 full scale were turned down and this column records the level actually applied) |
| pair | empty, or an id shared by the paired renditions of one utterance |
| recording | empty, or `headset` (the clean item itself), `boundary`, `mobile` |
| engine | espeak-ng / flite |
| voice | engine voice (espeak-ng `language+variant`, flite voice name) |
| pitch_range | F0 range as a ratio to the default (espeak-ng SSML `<prosody range="100×pitch_range %">`, effective up to 2.0; flite: `int_f0_target_stddev = base sd × pitch_range`). **Extra column** after the specified ones, needed to recompute valence |

The clean set (one rendition per utterance) is `recording ∈ {{"", "headset"}}`; `boundary`
and `mobile` rows duplicate their `headset` row's text and labels.

## Prosody profiles and label formula

Each item draws continuous parameters around its emotion's profile:

{profiles}

Jitter per item (seeded by the item id): {jitter}. The engine quantises the values
(espeak-ng takes integers) and the manifest records the values actually used.

Nominal labels (`l` = level in dB, `r` = rate ratio, `p` = pitch_shift in st, `g` = pitch_range ratio):

```
arousal   = clip(0.5 + 0.4 × (0.45·l/8 + 0.35·log2(r)/0.4 + 0.20·p/4), 0, 1)
dominance = clip(0.5 + 0.4 × (0.75·l/8 + 0.25·log2(r)/0.4), 0, 1)
valence   = clip(0.5 + 0.4 × (0.70·log2(g) + 0.30·p/4), 0, 1)
```

So arousal follows level, rate and pitch; dominance mostly level; valence mostly pitch
range and height (happiness: wide range, high pitch; anger: narrow "tense" range; sadness:
narrow range, low pitch). Label summary of the clean set:

{t_labels}

## Speakers

{speakers}

espeak-ng variants m1-m7 and f1-f5 share one formant synthesiser; flite slt is the CMU
ARCTIC "slt" voice (statistical parametric), awb (Scottish English) and kal16 are diphone /
parametric male voices. flite's `rms` voice was not used because it ignores F0 controls.

## Counts (clean set: recording empty or headset)

{t_sex}

{t_lang}

{t_engine}

Accent × sex:

{t_accent}

Sentiment × emotion (balanced by design):

{t_sent}

Language × emotion:

{t_lang_emotion}

Recording condition (all rows):

{t_rec}

Every speaker has 12 or 24 clean items; every language has at least 48. For a
speaker-independent split, hold out whole speakers: each language has a male and a female
voice, English has 13 (6 female, 7 male).

Duration of the clean set: {duration}.

## Are the labels learnable from the audio?

Measured on this copy's clean set (Spearman rank correlation; speaking rate = negative log
duration relative to the mean duration of the same sentence in the same language):

{acoustics}

When the script was written, a YIN-based F0 analysis also gave: pitch_shift vs the
speaker-normalised median F0 rho = 0.97; pitch_range vs the 10-90 percentile F0 range rho =
0.69; valence vs that F0 range rho = 0.64.

## Paired recording conditions

{n_pairs} utterances (10 per emotion, at most 2 per speaker, chosen with a seeded generator)
have three renditions with the same `pair` id and labels:

- `headset`: the clean item;
- `boundary`: the same signal convolved with the impulse response of a pyroomacoustics
  shoebox room (6.0 × 4.5 × 2.8 m, RT60 0.45 s by inverse Sabine, image-source method, max
  order 17, no ray tracing, source (2.0, 2.25, 1.5) m, microphone (4.0, 2.25, 1.0) m,
  distance 2.06 m), 0.25 s of tail kept, scaled to the clean signal's energy;
- `mobile`: 4th-order Butterworth band-pass 300-3400 Hz (causal) and a gain drawn uniformly
  from -4 to -1 dB.

## Real speech subset (`real/`)

{n_real} label-free recordings (16 kHz, male, English) from Debian's `pocketsphinx-testdata`
package: LibriVox excerpts (public domain) and CMU Sphinx test recordings, BSD-2-Clause per
Debian's copyright file; see `real/LICENSE`. Columns: id, file, speaker, sex, language. Use it
to check that a model behaves plausibly on real speech; it has no emotion labels and no
female voice.

## How to regenerate

On Debian 12 (or similar):

```
apt-get install -y --no-install-recommends espeak-ng flite pocketsphinx-testdata
.venv/bin/pip install numpy scipy soundfile soxr pyroomacoustics
.venv/bin/python scripts/make_corpus.py --out sertest/data/corpus
```

Seed {seed}. All random draws come from `numpy.random.Generator`s derived from the seed
and the item id (`sertest.seeding.derive_rng`). Output is byte-identical for the same tool
versions; a different espeak-ng or flite version changes the audio but not the manifest.
This copy was made with: espeak-ng `{espeak}`; flite `{flite}`; soxr {soxr}; soundfile
{soundfile}; numpy {numpy}.

## Licences

- Generated audio and text: released with sertest (MIT). The sentences were written for
  this corpus.
- espeak-ng is GPL-3.0-or-later. The GPL covers the program, not the speech it synthesises
  (GNU GPL FAQ: the output of a program is not covered unless it copies part of the program);
  no espeak-ng code or data is distributed here.
- flite and its voices (slt, awb, kal16): permissive BSD-style CMU/Festvox licences.
- `real/`: BSD-2-Clause (pocketsphinx-testdata), see `real/LICENSE`.
"""


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def select(plan: list[Item], limit: int | None, only: list[str] | None) -> list[Item]:
    """The items to render: all, the first ``limit`` rows, or the ids in ``only``."""
    if only:
        ids = {it.id for it in plan}
        unknown = [i for i in only if i not in ids]
        if unknown:
            raise SystemExit(f"make_corpus: --only: unknown item id(s): {', '.join(unknown)}")
        wanted = set(only)
        return [it for it in plan if it.id in wanted]
    if limit is not None:
        if limit < 1:
            raise SystemExit(f"make_corpus: --limit must be >= 1, got {limit}")
        return plan[:limit]
    return plan


def _is_our_corpus(out: Path) -> bool:
    """True if ``out/manifest.csv`` has the header this script writes."""
    try:
        with open(out / "manifest.csv", encoding="utf-8") as fh:
            return fh.readline().strip() == ",".join(MANIFEST_COLUMNS)
    except OSError:
        return False


def prepare_out(out: Path, overwrite: bool) -> None:
    """Create ``out`` and remove what this script wrote there before (audio/, real/,
    manifest.csv, DATASHEET.md). Anything else in ``out`` is left alone; a folder that does not
    hold a corpus made by this script is only cleared with ``overwrite``."""
    out.mkdir(parents=True, exist_ok=True)
    ours = [out / "audio", out / "real", out / "manifest.csv", out / "DATASHEET.md"]
    existing = [p for p in ours if p.exists()]
    if existing and not (overwrite or _is_our_corpus(out)):
        raise SystemExit(f"make_corpus: --out {out} already holds {existing[0].name} but no "
                         "manifest.csv written by this script; pass --overwrite to replace it")
    for p in existing:
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="output folder (e.g. sertest/data/corpus)")
    ap.add_argument("--seed", type=int, default=SEED, help=f"master seed (default {SEED})")
    ap.add_argument("--limit", type=int, default=None, help="render only the first N manifest rows")
    ap.add_argument("--only", default=None, help="render only these comma-separated item ids")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace audio/, real/, manifest.csv, DATASHEET.md in --out even if they "
                         "were not written by this script")
    ap.add_argument("--no-real", action="store_true", help="skip the real-speech subset")
    ap.add_argument("--real-source", default=None,
                    help="pocketsphinx test data folder (default: auto-detect)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    plan = build_plan(args.seed)
    items = select(plan, args.limit, args.only.split(",") if args.only else None)
    subset = len(items) < len(plan)
    prepare_out(args.out, args.overwrite)
    render(items, plan, args.out, args.seed)
    rows = [manifest_row(it) for it in items]
    write_csv(args.out / "manifest.csv", MANIFEST_COLUMNS, rows)
    real_rows: list[dict[str, str]] = []
    if not args.no_real and not subset:
        src = find_real_source(args.real_source)
        if src is None:
            print("make_corpus: pocketsphinx-testdata not found; skipping real/", file=sys.stderr)
        else:
            real_rows = write_real(src, args.out)
    if not subset:
        write_datasheet(args.out, rows, real_rows, args.seed)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"make_corpus: {len(rows)} items, {len(real_rows)} real, {size / 1e6:.2f} MB, "
          f"{time.perf_counter() - t0:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
