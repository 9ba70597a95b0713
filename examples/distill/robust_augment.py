"""Training-time perturbations for the robust students, kept disjoint from the audit's.

Every perturbation comes from sertest's own registry (:func:`sertest.perturb.from_spec`),
but with parameters the ``default`` suite never uses, so that a student cannot be tuned to
the exact audit conditions:

* additive noise at 3, 8, 13, 17 and 25 dB SNR (the audit: −5, 0, 5, 10, 20, 30, 35, 40,
  45 dB), white, brown or blue (the audit adds no brown or blue noise), synthetic
  environmental noise and music (the audit's generators, other SNRs and other random
  streams), cough-like events at 4 and 14 dB (the audit: 10 dB);
* codecs at other bit rates: AMR-NB 5.15, 6.7, 7.95 kbit/s (the audit: 4.75, 5.9, 7.4, 10.2,
  12.2), Opus 7, 10, 14, 20 kbit/s (the audit: 6, 8, 12, 16, 24, 32), MP3 40, 48, 56 kbit/s
  (legal MPEG-2 layer III rates, so LAME does not round them onto the audit's 8, 16, 24, 32,
  64), G.711 A-law (the audit: mu-law); GSM 06.10 has no parameter and is left out;
* the low-quality phone chain at AMR-NB 5.15/6.7/7.95 kbit/s with another compressor
  (threshold −24/−16 dBFS, ratio 0.7/0.9) and phone noise at −30/−20 dBFS (the audit:
  7.4/4.75/12.2 kbit/s, −20 dBFS, 0.8, −25 dBFS);
* simulated shoebox rooms of other sizes (4.2×3.6×2.7, 7×5.5×3.2, 12×8×3.6 m), RT60s (0.3,
  0.5, 0.7, 1.0 s) and distances (1.2, 1.7, 2.6 m) than the audit's presets (booth,
  office, meeting, lecture, MARDY positions) and its office RT60 sweep (0.2–1.6 s);
* filters and small changes at other values: high-pass 80/200 Hz (order 2), low-pass
  4000/5500 Hz, band-pass 250–3800 / 400–3000 Hz, gain ±4/±9 dB, 250/750 zero samples or
  cropped samples (the audit's small changes: 100/500/1000 samples, ±1/±2 dB,
  50/100/150 Hz, 6.5–7.5 kHz).

Spectral tilt (two values only, both audited) and babble (its bank is the corpus, held-out
speakers included) are not used.

Random streams: every draw comes from ``derive_rng(seed, "robust-augment", item_id,
copy)``.  The audit draws a condition's randomness from ``derive_rng(seed, item_id,
condition_key)`` and a model's from ``derive_rng(seed, "model", fingerprint, ...)``: the
second entropy word differs (a 32-bit hash of ``"robust-augment"`` vs that of an item id
or ``"model"``; the tests check that no corpus item id collides with it), so a training
copy never replays an audit draw even where a generator is shared.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from sertest.perturb import from_spec
from sertest.seeding import derive_rng

#: first key of every training-augmentation random stream (see the module docstring)
STREAM = "robust-augment"

_SNR = [3.0, 8.0, 13.0, 17.0, 25.0]
_AMR = [5150, 6700, 7950]
_ROOMS = [[4.2, 3.6, 2.7], [7.0, 5.5, 3.2], [12.0, 8.0, 3.6]]

#: Families of training conditions: name -> list of perturbation specs whose list-valued
#: parameters are drawn per copy (``room_dim_m`` entries are lists of room sizes).
FAMILIES: dict[str, list[dict[str, Any]]] = {
    "noise": [
        {"name": "white_noise", "snr_db": _SNR},
        {"name": "coloured_noise", "colour": ["brown", "blue"], "snr_db": _SNR},
        {"name": "environmental_noise", "kind": ["traffic", "fan", "rain", "wind"],
         "snr_db": _SNR},
        {"name": "music", "snr_db": _SNR},
        {"name": "cough_like", "kind": ["cough", "sneeze"], "snr_db": [4.0, 14.0]},
    ],
    "codec": [
        {"name": "amr_nb", "bitrate": _AMR},
        {"name": "opus", "bitrate": [7000, 10000, 14000, 20000]},
        {"name": "mp3", "bitrate": [40000, 48000, 56000]},
        {"name": "g711", "law": "a"},
    ],
    "phone": [
        {"name": "low_quality_phone", "bitrate": _AMR, "threshold_db": [-24.0, -16.0],
         "ratio": [0.7, 0.9], "noise_gain_db": [-30.0, -20.0]},
    ],
    "room": [
        {"name": "room", "preset": None, "room_dim_m": _ROOMS, "rt60_s": [0.3, 0.5, 0.7, 1.0],
         "distance_m": [1.2, 1.7, 2.6], "azimuth_deg": [0.0, 20.0, -20.0], "level": "rms"},
    ],
    "filter": [
        {"name": "high_pass", "cutoff_hz": [80.0, 200.0], "order": 2},
        {"name": "low_pass", "cutoff_hz": [4000.0, 5500.0], "order": 4},
        {"name": "band_pass", "low_hz": [250.0, 400.0], "high_hz": [3000.0, 3800.0],
         "order": 2},
    ],
    "small": [
        {"name": "gain", "gain_db": [-9.0, -4.0, 4.0, 9.0]},
        {"name": "prepend_zeros", "samples": [250, 750]},
        {"name": "append_zeros", "samples": [250, 750]},
        {"name": "crop_beginning", "samples": [250, 750]},
        {"name": "crop_end", "samples": [250, 750]},
    ],
}

#: Probability of each family as the first perturbation of a copy (rooms, the phone chain
#: and codecs are where the reference students fail most).
WEIGHTS = {"room": 0.25, "phone": 0.15, "codec": 0.2, "noise": 0.25, "filter": 0.1,
           "small": 0.05}
#: Probability that a copy gets a second perturbation from another family.
SECOND = 0.4
#: Order in which the families of a chain are applied (acoustics first, channel last).
ORDER = ("room", "noise", "filter", "small", "codec", "phone")


def _draw_spec(template: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """One scalar spec: every list-valued parameter replaced by one of its values."""
    out = {}
    for key, value in template.items():
        out[key] = value[int(rng.integers(len(value)))] if isinstance(value, list) else value
    return out


def draw_chain(rng: np.random.Generator) -> list[dict[str, Any]]:
    """A chain of one or two scalar perturbation specs, in application order."""
    names = list(WEIGHTS)
    p = np.array([WEIGHTS[n] for n in names])
    first = names[int(rng.choice(len(names), p=p / p.sum()))]
    families = [first]
    if rng.random() < SECOND:
        rest = [n for n in names if n != first and not (
            {n, first} <= {"codec", "phone"})]       # never two codecs in a row
        q = np.array([WEIGHTS[n] for n in rest])
        families.append(rest[int(rng.choice(len(rest), p=q / q.sum()))])
    families.sort(key=ORDER.index)
    specs = []
    for fam in families:
        options = FAMILIES[fam]
        specs.append(_draw_spec(options[int(rng.integers(len(options)))], rng))
    return specs


def describe(specs: list[dict[str, Any]]) -> str:
    """Short text for a chain, e.g. ``room(rt60_s=0.5, ...) + opus(bitrate=14000)``."""
    return " + ".join(s["name"] + "(" + ", ".join(f"{k}={v}" for k, v in s.items()
                                                  if k != "name") + ")" for s in specs)


def perturbed_copy(x: np.ndarray, sampling_rate: int, seed: int, item_id: str, copy: int
                   ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The ``copy``-th training rendition of item ``item_id``: (signal, chain of specs)."""
    rng = derive_rng(seed, STREAM, item_id, copy)
    specs = draw_chain(rng)
    y = np.asarray(x, dtype=np.float32)
    for spec in specs:
        y = from_spec(spec)(y, sampling_rate, rng)
    return y, specs


def all_training_specs() -> list[dict[str, Any]]:
    """Every scalar spec the sampler can draw (the Cartesian product of each template)."""
    out = []
    for options in FAMILIES.values():
        for template in options:
            keys = list(template)
            values = [v if isinstance(v, list) else [v] for v in template.values()]
            if "room_dim_m" in template:       # a list of sizes, each one value
                values[keys.index("room_dim_m")] = template["room_dim_m"]
            for combo in itertools.product(*values):
                out.append(dict(zip(keys, combo)))
    return out
