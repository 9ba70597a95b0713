"""Planted defects: known faults added to a model's real predictions.

``sertest validate`` checks the suite, not the model: it takes the predictions the real model
made for every (condition, item) the suite needs and plants a known defect in them, in
**prediction space**, per item and condition.  A good suite flags every planted defect of a
size its thresholds name, and leaves the clean model and an oracle alone.

Each defect is a pure function
``plant(setup, state, condition key, perturbation, frame, magnitude) -> frame`` of the item
table (through ``setup``), the condition (its key and its :class:`~sertest.perturb.base.
Perturbation`), the real predictions under that condition (``frame``; the clean ones are in
``setup.clean``) and the magnitude (per target: the regression dimensions and ``emotion``).
Random draws come from :func:`sertest.seeding.derive_rng` keyed by the seed, the defect id,
the item id and, for defects that depend on the condition, the condition key, so a planted
prediction never depends on the other items, the resample or the order of work, and a
larger magnitude moves the same items in the same direction.  Dimensions are clipped to the
model's declared output range after planting.

Magnitudes (``m``), per target:

* ``level_shift_sex``, ``level_shift_pitch``: the items of one group (the first in sorted
  order: ``female``; of the pitch bands of the suite's ``fairness_pitch`` test, speakers
  grouped by mean F0, ``high``) get ``+m`` on every dimension, under every condition.
  Emotion: a share ``m`` of the group's items (item-seeded) is moved to the next class
  (cyclic, from the predicted one).
* ``noise_sensitivity``, ``band_sensitivity``, ``codec_sensitivity``: under an affected
  condition of severity ``s`` each item's dimensions move by ``m * s * z`` with ``z`` a
  standard normal drawn per (item, condition); emotion: with probability ``min(1, m * s)``
  the class changes to another one.  Severity (1 = the reference condition):

  - noise (``white_noise``, ``coloured_noise``, ``babble``, ``music``,
    ``environmental_noise``, ``cough_like``, ``noise_file``, ``white_noise_small``): the
    noise amplitude relative to 20 dB SNR, ``10 ** ((20 - snr_db) / 20)`` (a list of SNRs:
    their mean);
  - band (band-limiting and spectral colouring): ``band_pass``, ``spectral_tilt``,
    ``low_quality_phone``, the narrow-band codecs ``amr_nb``, ``g711``, ``gsm``: 1;
    ``low_pass``: ``(8000 - cutoff) / 4600`` in [0, 1] (1 at 3.4 kHz); ``high_pass``:
    ``cutoff / 300`` in [0, 1]; ``room``: ``rt60_s / 0.6`` in [0, 1] (room colouration);
  - codec: the bit rate relative to 12 kbit/s, ``12000 / bitrate`` (``opus``, ``mp3``,
    ``amr_nb``, ``low_quality_phone``); ``gsm`` 13 kbit/s, ``g711`` 64 kbit/s.

* ``lexical_sentiment``: in one language (the one with most items; ties: first in sorted
  order) items of ``positive`` lexical sentiment get ``+m`` and ``negative`` ones ``-m`` on
  every dimension; emotion: a share ``m`` moves to the next (positive) or previous
  (negative) class.  The model reads the words of one language.
* ``constant``: predictions shrink toward the model's mean clean prediction,
  ``(1 - m) * y + m * mean``; emotion: a share ``m`` of items gets the most frequent clean
  class.  ``m = 1`` is a constant model.
* ``shuffled``: a share ``m`` of items (item-seeded) takes another item's clean prediction
  (a seeded derangement among them), keeping its own change under every condition, so
  robustness is untouched.  ``m = 1`` shuffles every item.

**At the threshold** (:attr:`Defect.threshold`): where the targeted test's threshold ``t``
names a size of this defect, the driver also plants the defect at that size.  ``t`` is the
threshold the clean model's entry was judged with on the whole data (so a calibrated
threshold counts as calibrated), else the suite's:

* level shift, metric ``mean_error_difference`` ``abs < t`` (the group's mean error
  against the rest's): a shift ``m`` moves it by exactly ``m``, so ``m = t``; else
  ``mean_difference`` (group against the combined set of ``k`` equally sized groups, moved
  by ``m (k - 1) / k``): ``m = t k / (k - 1)``; emotion, ``uar_difference``: that formula
  as a share of moved items (approximate: only correctly classified items lose recall);
* lexical sentiment, ``mean_error_shift_difference`` (labelled data) or
  ``mean_shift_difference`` (emotion: ``class_proportion_shift_difference``) ``abs < t``
  over ``L`` languages: ``m = t L / (L - 1)``;
* sensitivity, fraction ``unchanged > t`` with tolerance ``tau``: the most affected of the
  test's comparisons (condition against its baseline, severities ``s_c``, ``s_b``) keeps a
  share ``t`` of items within ``tau`` when ``m sqrt(s_c^2 + s_b^2) = tau / Phi^-1((1 + t) /
  2)``; emotion: ``m (s_c + s_b) = 1 - t``.  The model's own changes are not counted, so
  the real share unchanged is a little lower;
* constant and shuffled: no threshold names a size; their reference is ``m = 1``;
* dose-response tests judge a breakdown level, not a size: grid only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..vocabulary import EMOTION
from ..perturb.base import Perturbation
from ..seeding import derive_rng

#: A planted magnitude per target (dimension or ``emotion``).
Magnitude = dict[str, float]

NOISES = ("white_noise", "white_noise_small", "coloured_noise", "babble", "music",
          "environmental_noise", "cough_like", "noise_file")
NARROW_BAND = ("band_pass", "spectral_tilt", "low_quality_phone", "amr_nb", "g711", "gsm")
CODEC_BITRATES = {"gsm": 13000.0, "g711": 64000.0}
CODECS = ("opus", "mp3", "amr_nb", "low_quality_phone", "gsm", "g711")
REFERENCE_SNR_DB = 20.0
REFERENCE_BITRATE = 12000.0


class NotApplicable(Exception):
    """The defect cannot be planted on this data (the message says why)."""


@dataclass
class Setup:
    """What every defect may read: the data, the model's outputs and its clean predictions.

    Attributes:
        table: the item table (index: item id).
        seed: the validation seed.
        dimensions, classes: the model's regression outputs and class columns.
        output_range: clip planted dimensions to this range (``None``: no clipping).
        clean: the model's clean predictions on every item it could predict.
        suite_checks: the suite's checks (a defect may group items as a test does).
        group_context: a whole-data :class:`~sertest.checks.base.Context` on the real
            predictions (feature outputs such as F0 included).
    """

    table: pd.DataFrame
    seed: int
    dimensions: tuple[str, ...]
    classes: tuple[str, ...]
    output_range: tuple[float, float] | None
    clean: pd.DataFrame
    suite_checks: list = field(default_factory=list)
    group_context: Any = None

    @property
    def targets(self) -> tuple[str, ...]:
        return self.dimensions + ((EMOTION,) if self.classes else ())

    def clip(self, values: np.ndarray) -> np.ndarray:
        if self.output_range is None:
            return values
        return np.clip(values, self.output_range[0], self.output_range[1])


@dataclass
class Defect:
    """One kind of planted defect.

    Attributes:
        id: stable id (enters the random keys; never a display name).
        description: one line for reports.
        grid: default magnitudes.
        unit: what a magnitude means, for reports.
        targets: ``check -> bool``: the tests this defect is meant to trip.
        prepare: ``setup -> state`` (raises :class:`NotApplicable`).
        apply: ``(setup, state, condition key, perturbation, frame, magnitude) -> frame``.
        threshold: ``(check, target, metric, limit, setup, state) -> magnitude or None``.
        condition_free: ``True`` if the defect is the same under every condition.
    """

    id: str
    description: str
    grid: tuple[float, ...]
    unit: str
    targets: Callable[[Any], bool]
    prepare: Callable[[Setup], Any]
    apply: Callable[..., pd.DataFrame]
    threshold: Callable[..., float | None] = lambda *a: None
    threshold_metrics: dict[str, tuple[str, ...]] = field(default_factory=dict)
    reference: float | None = None  # the size judged against the target when no threshold

    def plant(self, setup: Setup, state: Any, cond_key: str, condition: Perturbation | None,
              frame: pd.DataFrame, magnitude: Magnitude) -> pd.DataFrame:
        """The planted predictions (a new frame; ``frame`` is left alone)."""
        if frame.empty:
            return frame.copy()
        return self.apply(setup, state, cond_key, condition, frame, magnitude)


# -- random draws ----------------------------------------------------------------------------
def item_draws(setup: Setup, key: str, ids, *extra: str | int, normals: int = 0,
               uniforms: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per item: ``normals`` standard normals and ``uniforms`` uniforms on [0, 1), from
    ``derive_rng(seed, "validate", key, item id, *extra)``."""
    n = len(ids)
    z = np.empty((n, normals))
    u = np.empty((n, uniforms))
    for i, item in enumerate(ids):
        rng = derive_rng(setup.seed, "validate", key, str(item), *extra)
        if normals:
            z[i] = rng.standard_normal(normals)
        if uniforms:
            u[i] = rng.random(uniforms)
    return z, u


def _memo(state: dict, key: tuple, make: Callable[[], Any]) -> Any:
    cache = state.setdefault("_memo", {})
    if key not in cache:
        cache[key] = make()
    return cache[key]


# -- class scores --------------------------------------------------------------------------------
def move_class(scores: np.ndarray, rows: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Scores with the top score of each selected row swapped with class ``new``'s, so the
    predicted class becomes ``new`` (rows: boolean mask; new: class index per row)."""
    out = scores.copy()
    idx = np.flatnonzero(rows)
    if idx.size == 0:
        return out
    top = np.argmax(scores[idx], axis=1)
    tgt = np.asarray(new)[idx] % scores.shape[1]
    a = out[idx, top].copy()
    out[idx, top] = out[idx, tgt]
    out[idx, tgt] = a
    return out


def _shifted(setup: Setup, frame: pd.DataFrame, delta: dict[str, np.ndarray]) -> pd.DataFrame:
    out = frame.copy()
    for dim, d in delta.items():
        out[dim] = setup.clip(frame[dim].to_numpy() + d)
    return out


def _with_classes(setup: Setup, frame: pd.DataFrame, rows: np.ndarray, new: np.ndarray
                  ) -> pd.DataFrame:
    cols = list(setup.classes)
    frame[cols] = move_class(frame[cols].to_numpy(dtype=float), rows, new)
    return frame


def _m(magnitude: Magnitude, target: str) -> float:
    return float(magnitude.get(target, 0.0))


# -- group level shifts --------------------------------------------------------------------------
def _first_group(groups: pd.Series, what: str) -> tuple[str, pd.Series, int]:
    groups = groups.dropna().astype(str)
    if groups.empty:
        raise NotApplicable(f"no item has a {what} group")
    names = sorted(set(groups))
    if len(names) < 2:
        raise NotApplicable(f"only one {what} group ({names[0]})")
    return names[0], groups, len(names)


def _prepare_sex(setup: Setup) -> dict:
    if "sex" not in setup.table.columns or not setup.table["sex"].notna().any():
        raise NotApplicable("the data has no 'sex' column")
    group, groups, k = _first_group(setup.table["sex"], "sex")
    return {"group": group, "members": set(groups.index[groups == group]), "k": k,
            "what": f"sex = {group}"}


def _pitch_check(setup: Setup):
    for check in setup.suite_checks:
        if check.id == "fairness_pitch":
            return check
    from ..checks.fairness import FairnessPitch

    return FairnessPitch()


def _prepare_pitch(setup: Setup) -> dict:
    check = _pitch_check(setup)
    if setup.group_context is None:
        raise NotApplicable("no F0 estimates")
    try:
        groups = check.group_of(setup.group_context, list(setup.table.index))
    except Exception as exc:  # noqa: BLE001 - the test's own Skip or a missing F0
        raise NotApplicable(f"cannot group by pitch: {exc}") from exc
    group, groups, k = _first_group(groups, "pitch")
    return {"group": group, "members": set(groups.index[groups == group]), "k": k,
            "what": f"pitch band {group} (speaker mean F0)"}


def _apply_level(key: str):
    def apply(setup, state, ck, condition, frame, magnitude):
        inside = frame.index.isin(list(state["members"]))
        out = _shifted(setup, frame, {d: _m(magnitude, d) * inside for d in setup.dimensions})
        if setup.classes and _m(magnitude, EMOTION) > 0:
            _, u = _memo(state, ("u", tuple(frame.index)),
                         lambda: item_draws(setup, key, frame.index, uniforms=1))
            rows = inside & (u[:, 0] < _m(magnitude, EMOTION))
            top = np.argmax(frame[list(setup.classes)].to_numpy(dtype=float), axis=1)
            out = _with_classes(setup, out, rows, top + 1)
        return out
    return apply


def _level_threshold(check, target, metric, limit, setup, state) -> float:
    if metric == "mean_error_difference":  # group against the rest: moves by m * (1 - p)
        cols = (check.params.get("columns") or [check.params.get("column")]
                if check.id == "fairness_group" else [])
        if len([c for c in cols if c]) > 1:
            # an intersection cell (female & de) against the rest, which still holds the
            # shifted group's other cells (female & fr, ...): the difference moves by
            # m * (1 - p), p the shifted group's share of the rest (about its overall share)
            p = len(state["members"]) / max(1, len(setup.table))
            return abs(limit) / max(1e-9, 1.0 - p)
        return abs(limit)
    k = state["k"]  # group (or shift) against the combined set of k groups
    return abs(limit) * k / (k - 1)


def _is_group_test(column: str, check_id: str) -> Callable[[Any], bool]:
    def targets(check) -> bool:
        if check.id == check_id:
            return True
        if check.id == "fairness_group":
            cols = check.params.get("columns") or [check.params.get("column")]
            return column in cols
        return False
    return targets


# -- sensitivity to a family of conditions ---------------------------------------------------------
def _param(p: Perturbation, name: str, default: float) -> float:
    v = p.params.get(name, default)
    if isinstance(v, (list, tuple)):
        v = float(np.mean([float(x) for x in v])) if v else default
    return float(default if v is None else v)


def noise_severity(p: Perturbation | None) -> float:
    if p is None or p.name not in NOISES:
        return 0.0
    snr = _param(p, "snr_db", REFERENCE_SNR_DB)
    return float(10.0 ** ((REFERENCE_SNR_DB - snr) / 20.0))


def band_severity(p: Perturbation | None) -> float:
    if p is None:
        return 0.0
    if p.name in NARROW_BAND:
        return 1.0
    if p.name in ("low_pass", "low_pass_small"):
        return float(np.clip((8000.0 - _param(p, "cutoff_hz", 8000.0)) / 4600.0, 0.0, 1.0))
    if p.name in ("high_pass", "high_pass_small"):
        return float(np.clip(_param(p, "cutoff_hz", 0.0) / 300.0, 0.0, 1.0))
    if p.name == "room":
        try:
            rt60 = float(p.resolve(p.params)["rt60_s"])
        except Exception:  # noqa: BLE001 - drawn geometry: use the mean RT60 given
            rt60 = _param(p, "rt60_s", 0.4)
        return float(np.clip(rt60 / 0.6, 0.0, 1.0))
    return 0.0


def codec_severity(p: Perturbation | None) -> float:
    if p is None or p.name not in CODECS:
        return 0.0
    default = CODEC_BITRATES.get(p.name, REFERENCE_BITRATE)
    rate = _param(p, "bitrate", default) if "bitrate" in p.params else default
    return float(REFERENCE_BITRATE / max(rate, 1.0))


def _apply_sensitivity(key: str, severity: Callable[[Perturbation | None], float]):
    def apply(setup, state, ck, condition, frame, magnitude):
        s = severity(condition)
        if s <= 0:
            return frame.copy()
        nd = len(setup.dimensions)
        z, u = _memo(state, ("draws", ck, tuple(frame.index)),
                     lambda: item_draws(setup, key, frame.index, ck, normals=nd, uniforms=2))
        out = _shifted(setup, frame, {d: _m(magnitude, d) * s * z[:, j]
                                      for j, d in enumerate(setup.dimensions)})
        if setup.classes:
            p = min(1.0, _m(magnitude, EMOTION) * s)
            k = len(setup.classes)
            top = np.argmax(frame[list(setup.classes)].to_numpy(dtype=float), axis=1)
            other = top + 1 + np.floor(u[:, 1] * (k - 1)).astype(int)
            out = _with_classes(setup, out, u[:, 0] < p, other)
        return out
    return apply


def _sensitivity_threshold(severity: Callable[[Perturbation | None], float]):
    def threshold(check, target, metric, limit, setup, state) -> float | None:
        conds = getattr(check, "conditions", None)
        if not isinstance(conds, list) or not conds:
            return None
        pairs = [(severity(c.perturbation), severity(getattr(c, "baseline", None)))
                 for c in conds]
        if target == EMOTION:
            worst = max(a + b for a, b in pairs)
            return None if worst <= 0 or not 0 < limit < 1 else (1.0 - limit) / worst
        worst = max(math.hypot(a, b) for a, b in pairs)
        tau = float(check.params.get("tolerance", 0.05))
        if worst <= 0 or not 0 < limit < 1:
            return None
        from scipy.stats import norm

        return tau / float(norm.ppf((1.0 + limit) / 2.0)) / worst
    return threshold


def _no_state(setup: Setup) -> dict:
    return {}


def _in(*ids: str) -> Callable[[Any], bool]:
    return lambda check: check.id in ids


# -- lexical sentiment -----------------------------------------------------------------------------
def _prepare_lexical(setup: Setup) -> dict:
    t = setup.table
    for col in ("language", "sentiment"):
        if col not in t.columns or not t[col].notna().any():
            raise NotApplicable(f"the data has no {col!r} column")
    labelled = t[t["sentiment"].notna() & t["language"].notna()]
    counts = labelled["language"].astype(str).value_counts()
    languages = sorted(counts.index)
    if len(languages) < 2:
        raise NotApplicable("needs at least 2 languages with sentiment labels")
    top = sorted(languages, key=lambda lang: (-int(counts[lang]), lang))[0]
    sentiment = labelled["sentiment"].astype(str).str.lower()
    lang = labelled["language"].astype(str)
    sign = pd.Series(0.0, index=t.index)
    sign[labelled.index[(lang == top) & (sentiment == "positive")]] = 1.0
    sign[labelled.index[(lang == top) & (sentiment == "negative")]] = -1.0
    if not (sign != 0).any():
        raise NotApplicable(f"no positive or negative items in language {top!r}")
    return {"sign": sign, "k": len(languages), "what": f"language {top}"}


def _apply_lexical(setup, state, ck, condition, frame, magnitude):
    sign = state["sign"].reindex(frame.index).fillna(0.0).to_numpy()
    out = _shifted(setup, frame, {d: _m(magnitude, d) * sign for d in setup.dimensions})
    if setup.classes and _m(magnitude, EMOTION) > 0:
        _, u = _memo(state, ("u", tuple(frame.index)),
                     lambda: item_draws(setup, "lexical_sentiment", frame.index, uniforms=1))
        rows = (sign != 0) & (u[:, 0] < _m(magnitude, EMOTION))
        top = np.argmax(frame[list(setup.classes)].to_numpy(dtype=float), axis=1)
        out = _with_classes(setup, out, rows, top + sign.astype(int))
    return out


# -- constant and shuffled -------------------------------------------------------------------------
def _prepare_constant(setup: Setup) -> dict:
    if setup.clean.empty:
        raise NotApplicable("the model has no clean predictions")
    state: dict[str, Any] = {"mean": {d: float(setup.clean[d].mean()) for d in setup.dimensions}}
    if setup.classes:
        top = np.argmax(setup.clean[list(setup.classes)].to_numpy(dtype=float), axis=1)
        state["mode"] = int(np.bincount(top, minlength=len(setup.classes)).argmax())
    return state


def _apply_constant(setup, state, ck, condition, frame, magnitude):
    out = frame.copy()
    for d in setup.dimensions:
        m = _m(magnitude, d)
        out[d] = setup.clip((1.0 - m) * frame[d].to_numpy() + m * state["mean"][d])
    if setup.classes and _m(magnitude, EMOTION) > 0:
        _, u = _memo(state, ("u", tuple(frame.index)),
                     lambda: item_draws(setup, "constant", frame.index, uniforms=1))
        rows = u[:, 0] < _m(magnitude, EMOTION)
        out = _with_classes(setup, out, rows, np.full(len(frame), state["mode"]))
    return out


def _prepare_shuffled(setup: Setup) -> dict:
    if len(setup.clean) < 2:
        raise NotApplicable("fewer than 2 items with clean predictions")
    ids = sorted(setup.clean.index)
    _, u = item_draws(setup, "shuffled", ids, uniforms=1)
    return {"ids": ids, "u": pd.Series(u[:, 0], index=ids)}


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of 0..n-1 without fixed points (Sattolo's cycle, n >= 2)."""
    perm = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def _source(setup: Setup, state: dict, share: float, target: str) -> dict[str, str]:
    """item -> the item whose clean prediction it takes (share ``share`` of the items)."""
    def make() -> dict[str, str]:
        chosen = [i for i in state["ids"] if state["u"][i] < share]
        if len(chosen) < 2:
            return {}
        rng = derive_rng(setup.seed, "validate", "shuffled", "permutation", *chosen)
        perm = _derangement(len(chosen), rng)
        return {chosen[a]: chosen[perm[a]] for a in range(len(chosen))}
    return _memo(state, ("source", round(share, 12)), make)


def _apply_shuffled(setup, state, ck, condition, frame, magnitude):
    out = frame.copy()
    clean = setup.clean
    for target in setup.targets:
        cols = [target] if target != EMOTION else list(setup.classes)
        source = _source(setup, state, _m(magnitude, target), target)
        if not source:
            continue
        ids = [i for i in frame.index if i in source and i in clean.index]
        if not ids:
            continue
        src = [source[i] for i in ids]
        own = frame.loc[ids, cols].to_numpy(dtype=float)
        change = own - clean.loc[ids, cols].to_numpy(dtype=float)
        new = clean.loc[src, cols].to_numpy(dtype=float) + change
        if target != EMOTION:
            new = setup.clip(new)
        out.loc[ids, cols] = new
    return out


# -- the registry ----------------------------------------------------------------------------------
#: what constant and shuffled predictions must trip.  Not correctness_speaker_average: where
#: every speaker's labels have about the same mean (a balanced design such as the bundled
#: corpus's), a constant or shuffled model has the right speaker means.  Not
#: correctness_distribution for shuffled: a permutation keeps the distribution.
CORRECTNESS = ("correctness_regression", "correctness_classification",
               "correctness_speaker_ranking", "correctness_consistency")

DEFECTS: dict[str, Defect] = {d.id: d for d in (
    Defect("level_shift_sex",
           "one sex's predictions shifted by +m (emotion: share m moved to the next class)",
           (0.05, 0.1, 0.15, 0.2), "A/D/V units (emotion: share of the group's items)",
           _is_group_test("sex", "fairness_sex"), _prepare_sex, _apply_level("level_shift_sex"),
           _level_threshold,
           {"regression": ("mean_error_difference", "mean_difference"),
            "classification": ("uar_difference",)}),
    Defect("level_shift_pitch",
           "one pitch band's predictions shifted by +m (speakers grouped by mean F0)",
           (0.05, 0.1, 0.15, 0.2), "A/D/V units (emotion: share of the group's items)",
           _is_group_test("f0", "fairness_pitch"), _prepare_pitch,
           _apply_level("level_shift_pitch"), _level_threshold,
           {"regression": ("mean_error_difference", "mean_difference"),
            "classification": ("uar_difference",)}),
    Defect("noise_sensitivity",
           "predictions jitter by m x noise amplitude (relative to 20 dB SNR) under additive noise",
           (0.02, 0.05, 0.1, 0.2), "SD of the jitter at 20 dB SNR (emotion: flip probability)",
           _in("robustness_background_noise", "robustness_dose_noise"), _no_state,
           _apply_sensitivity("noise_sensitivity", noise_severity),
           _sensitivity_threshold(noise_severity),
           {"regression": ("unchanged",), "classification": ("unchanged",)}),
    Defect("band_sensitivity",
           "predictions jitter by m under band-limiting or spectral colouring (phone band, "
           "filters, tilt, rooms)",
           (0.02, 0.05, 0.1, 0.2), "SD of the jitter at full severity (emotion: flip probability)",
           _in("robustness_low_quality_phone", "robustness_spectral_tilt",
               "robustness_simulated_recording_condition"), _no_state,
           _apply_sensitivity("band_sensitivity", band_severity),
           _sensitivity_threshold(band_severity),
           {"regression": ("unchanged", "unchanged_room", "unchanged_position"),
            "classification": ("unchanged", "unchanged_room", "unchanged_position")}),
    Defect("codec_sensitivity",
           "predictions jitter by m x (12 kbit/s / bit rate) after lossy codecs",
           (0.02, 0.05, 0.1, 0.2), "SD of the jitter at 12 kbit/s (emotion: flip probability)",
           _in("robustness_codecs", "robustness_dose_codec"), _no_state,
           _apply_sensitivity("codec_sensitivity", codec_severity),
           _sensitivity_threshold(codec_severity),
           {"regression": ("unchanged",), "classification": ("unchanged",)}),
    Defect("lexical_sentiment",
           "in one language, +m for positive and -m for negative lexical sentiment",
           (0.025, 0.05, 0.1, 0.2), "A/D/V units (emotion: share of items moved)",
           _in("fairness_linguistic_sentiment"), _prepare_lexical, _apply_lexical,
           _level_threshold,
           {"regression": ("mean_error_shift_difference", "mean_shift_difference"),
            "classification": ("class_proportion_shift_difference",)}),
    Defect("constant",
           "predictions shrunk toward their mean: (1 - m) y + m mean (emotion: share m "
           "predicts the most frequent class)",
           (0.25, 0.5, 0.75, 1.0), "share of the way to a constant",
           _in(*CORRECTNESS, "correctness_distribution"), _prepare_constant, _apply_constant,
           reference=1.0),
    Defect("shuffled",
           "a share m of items takes another item's prediction (its own change under each "
           "condition kept)",
           (0.25, 0.5, 0.75, 1.0), "share of items shuffled",
           _in(*CORRECTNESS), _prepare_shuffled, _apply_shuffled, reference=1.0),
)}


def threshold_metric(defect: Defect, check, target: str) -> tuple[str, ...]:
    """The metric ids whose threshold names a size of ``defect`` for ``target``."""
    kind = "classification" if target == EMOTION else "regression"
    return defect.threshold_metrics.get(kind, ())


__all__ = ["DEFECTS", "Defect", "Magnitude", "NotApplicable", "Setup", "band_severity",
           "codec_severity", "item_draws", "move_class", "noise_severity", "threshold_metric"]
