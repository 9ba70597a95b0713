"""Robustness: do predictions stay put when the audio changes in ways that should not matter?

Every test compares the predictions for the same items under two renditions: a *baseline*
(clean audio, a reference room, or the headset recording) and a *condition* (a perturbation,
another room, another microphone).  Per condition it measures (ser-tests catalogue §2):

* ``ccc_change`` (dimensions) / ``uar_change`` (emotion) -- **change in metric**:
  ``metric(truth, y_condition) - metric(truth, y_baseline)`` on the same items; negative =
  worse.  Needs truth (labels, or the ``--reference`` model's clean predictions in
  label-free mode).  CI: paired bootstrap (the same resampled items for both terms).
* ``unchanged`` -- **fraction unchanged**: share of items with ``|y_condition - y_baseline|
  < tolerance`` (0.05) on values rounded to ``decimals`` (2), like ser-tests' prediction
  cache; for emotion the share of identical labels.  Needs no truth.  CI: the wider of the
  (cluster) bootstrap and the Wilson score interval, since the bootstrap collapses to a
  point when every item is unchanged.
* ``fidelity`` -- **distillation fidelity** (label-free mode only): agreement of the
  audited model with the reference model, both on the condition's audio (CCC for
  dimensions, label agreement for emotion).  No threshold by default (shown as info).

All CIs are bootstrap intervals clustered by ``speaker`` when the data has that column.
Each test yields one measurement per metric and condition (``group`` = condition label).
Plot data: a 2-D histogram of (condition - baseline) against baseline, overlaid histograms,
fraction unchanged per condition, a baseline -> condition confusion matrix for emotion, and
the items that changed most (``plots["worst"]``) for a listenable gallery.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..errors import UsageError
from ..perturb import from_spec
from ..perturb.base import Perturbation
from ..vocabulary import EMOTION
from .base import Check, Context, Outcome, Request, register
# the machinery shared with dose-response and newer tests; re-exported for older imports
from .conditions import (  # noqa: F401
    CLEAN_EDGES,
    COMMON_DEFAULTS,
    DELTA_EDGES,
    VALUE_EDGES,
    Condition,
    PairResult,
    auto_label,
    bootstrap_interval,
    check_common_params,
    clusters,
    compare_series,
    difference_replicates,
    histogram_counts,
    is_integer,
    is_number,
    item_ids,
    parse_conditions,
    plain,
    plot_data,
    robustness_plots,
    unchanged_mask,
    wanted_metrics,
    wilson_interval,
    worst_items,
)

_is_num = is_number  # older name (imported by modules written before the move)


# -- the perturbation tests ------------------------------------------------------------------
class PerturbationCheck(Check):
    """Base of the tests that compare each item under a baseline and under conditions.

    Subclasses implement :meth:`build_conditions` (called at construction, so a bad
    parameter fails when the suite is loaded).
    """

    topic = "robustness"
    kinds = ("regression", "classification")

    def __init__(self, params=None, thresholds=None, name=None) -> None:
        super().__init__(params, thresholds, name)
        check_common_params(self)
        self.conditions: list[Condition] = self.build_conditions()

    def build_conditions(self) -> list[Condition]:
        raise NotImplementedError

    def requests(self, ctx: Context) -> list[Request]:
        ids = item_ids(ctx, self.params["max_items"])
        seen: dict[str, Perturbation | None] = {"clean": None}
        for c in self.conditions:
            for p in (c.baseline, c.perturbation):
                if p is not None:
                    seen[p.key] = p
        return [Request(p, ids) for p in seen.values()]

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        ids = item_ids(ctx, self.params["max_items"])
        out = Outcome()
        classes = ctx.models[model].classes if target == EMOTION else None
        has_truth = ctx.has_truth(target)
        truth = ctx.truth(target, ids) if has_truth else None
        reference = ctx.reference if (ctx.reference is not None and ctx.reference != model
                                      and target in ctx.models[ctx.reference].targets) else None
        all_ids = ctx.valid_ids(ids)
        groups = (pd.Series(clusters(ctx, all_ids), index=all_ids)
                  if ctx.dataset.has("speaker") else None)
        dots: dict[str, Any] = {"labels": [], "values": [], "ci": []}
        per_condition: list[dict[str, Any]] = []
        worst: list[dict] = []
        for cond in self.conditions:
            want = wanted_metrics(self, target, cond.suffix)
            base = ctx.prediction(model, target, cond.baseline, ids)
            other = ctx.prediction(model, target, cond.perturbation, ids)
            ref_other = (ctx.prediction(reference, target, cond.perturbation, ids)
                         if reference else None)
            res = compare_series(
                ctx, f"{self.name}/{target}", target, cond.label, base,
                other, want, truth=truth, groups=groups, reference_other=ref_other,
                tolerance=float(self.params["tolerance"]), decimals=self.params["decimals"],
                classes=classes)
            out.measurements.extend(res.measurements)
            out.notes.extend(res.notes)
            for m in res.measurements:
                if m.metric == want.get("unchanged"):
                    dots["labels"].append(cond.label)
                    dots["values"].append(m.value)
                    dots["ci"].append(list(m.ci) if m.ci else None)
            scores = None
            if target == EMOTION and classes:
                scores = (ctx.store.frame(model, cond.baseline, ids)[list(classes)],
                          ctx.store.frame(model, cond.perturbation, ids)[list(classes)])
            worst.extend(worst_items(res, int(self.params["n_worst"]), cond, target == EMOTION,
                                     scores=scores))
            per_condition.append({"label": cond.label, "condition": cond.spec(),
                                  "baseline": None if cond.baseline is None
                                  else cond.baseline.spec(),
                                  "n": len(res.base) if res.base is not None else 0,
                                  **plot_data(res, target, classes)})
        if not has_truth and any("change" in wanted_metrics(self, target, c.suffix)
                                 for c in self.conditions):
            out.notes.append(f"no {target!r} truth (labels or --reference): change in "
                             f"{'UAR' if target == EMOTION else 'CCC'} not measured")
        out.plots = robustness_plots(target, self.params["tolerance"], per_condition, dots,
                                     worst)
        return out


def _catalogue_metrics(change: str | None, unchanged: str | None,
                       emotion_change: str | None = None) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    if change is not None:
        out["ccc_change"] = change
        out["uar_change"] = emotion_change or change
    if unchanged is not None:
        out["unchanged"] = unchanged
    out["fidelity"] = None
    return out


def _versus_clean(pairs: list[tuple[str, Perturbation]]) -> list[Condition]:
    return [Condition(label, p) for label, p in pairs]


#: The catalogue's background noises (MUSAN and the internal cough/sneeze set are replaced
#: by the bundled corpus and synthetic noises; give ``noise_file`` folders for real ones).
BACKGROUND_NOISES: dict[str, dict[str, Any]] = {
    "babble": {"name": "babble", "snr_db": 20.0},
    "coughing": {"name": "cough_like", "snr_db": 10.0},
    "environmental": {"name": "environmental_noise", "snr_db": 20.0},
    "music": {"name": "music", "snr_db": 20.0},
    "sneezing": {"name": "cough_like", "snr_db": 7.0},
    "white": {"name": "white_noise", "snr_db": 20.0},
}


def _sneeze_spec() -> dict[str, Any]:
    """A sneeze-like event: ``cough_like`` with ``kind: sneeze`` if the perturbation offers
    it; otherwise a stand-in (a louder cough-like burst at 7 dB) so the condition differs."""
    from ..perturb import registry as perturbations

    cls = perturbations().get("cough_like")
    if cls is not None and "kind" in cls.defaults:
        try:
            cls(kind="sneeze", snr_db=10.0)
            return {"name": "cough_like", "kind": "sneeze", "snr_db": 10.0}
        except UsageError:
            pass
    return dict(BACKGROUND_NOISES["sneezing"])


@register
class BackgroundNoise(PerturbationCheck):
    """Background noise at the catalogue's SNRs (20 dB; cough/sneeze-like events 10 dB).

    Params: ``noises`` (mapping label -> perturbation spec; default :data:`BACKGROUND_NOISES`),
    ``snr_db`` (null, or one SNR in dB for every noise, e.g. 10 for a harder suite),
    ``noise_folders`` (mapping label -> folder: adds a ``noise_file`` condition per folder,
    e.g. a MUSAN ``noise`` copy, at 20 dB or ``snr_db``), plus the common parameters.
    """

    id = "robustness_background_noise"
    description = "change in CCC/UAR and fraction unchanged under babble, cough, noise, music"
    metrics = _catalogue_metrics("> -0.05", "> 0.9")
    defaults = {**COMMON_DEFAULTS, "noises": None, "snr_db": None, "noise_folders": None}

    def build_conditions(self) -> list[Condition]:
        where = f"test {self.name!r}: parameter"
        noises = self.params["noises"]
        if noises is None:
            noises = {k: dict(v) for k, v in BACKGROUND_NOISES.items()}
            noises["sneezing"] = _sneeze_spec()
        snr = self.params["snr_db"]
        if snr is not None and not is_number(snr):
            raise UsageError(f"{where} snr_db={snr!r} must be null or a number (dB)")
        folders = self.params["noise_folders"] or {}
        if not isinstance(folders, dict):
            raise UsageError(f"{where} noise_folders must map a label to a folder of audio "
                             f"files, got {folders!r}")

        def make(spec: Any) -> Perturbation:
            spec = {"name": spec} if isinstance(spec, str) else dict(spec)
            if snr is not None:
                spec["snr_db"] = float(snr)
            return from_spec(spec)

        pairs = parse_conditions(noises, f"{where} noises", make)
        if folders:
            pairs += parse_conditions(
                {str(k): {"name": "noise_file", "folder": str(v)} for k, v in folders.items()},
                f"{where} noise_folders", make)
            labels = [lab for lab, _ in pairs]
            dup = sorted({lab for lab in labels if labels.count(lab) > 1})
            if dup:
                raise UsageError(f"{where} noise_folders: label(s) {dup} already used by noises")
        return _versus_clean(pairs)


@register
class LowQualityPhone(PerturbationCheck):
    """The catalogue's low-quality phone chain (compression, AMR-NB 7.4 kbit/s, pink noise).

    Params: ``phone`` (perturbation spec, default ``low_quality_phone``) and the common ones.
    """

    id = "robustness_low_quality_phone"
    description = "change in CCC/UAR and fraction unchanged on a low-quality phone line"
    metrics = _catalogue_metrics("> -0.05", "> 0.5")
    defaults = {**COMMON_DEFAULTS, "phone": "low_quality_phone"}

    def build_conditions(self) -> list[Condition]:
        value = self.params["phone"]
        return _versus_clean(parse_conditions({"low_quality_phone": value},
                                              f"test {self.name!r}: parameter phone"))


@register
class SmallChanges(PerturbationCheck):
    """The catalogue's ten small changes (tone, zeros, clipping, crops, gain, filters, noise).

    Params: ``changes`` (list or mapping of perturbation specs; default the ten of
    :data:`sertest.perturb.small_changes.SMALL_CHANGES`) and the common ones.
    """

    id = "robustness_small_changes"
    description = "fraction unchanged under ten tiny changes (gain, zeros, crops, filters...)"
    metrics = {"unchanged": "> 0.95", "fidelity": None}
    defaults = {**COMMON_DEFAULTS, "changes": None}

    def build_conditions(self) -> list[Condition]:
        value = self.params["changes"]
        if value is None:
            from ..perturb.small_changes import SMALL_CHANGES

            value = list(SMALL_CHANGES)
        return _versus_clean(parse_conditions(value, f"test {self.name!r}: parameter changes"))


@register
class SpectralTilt(PerturbationCheck):
    """Spectral tilt down and up (magnitude linear in frequency, RMS restored).

    Params: ``directions`` (default ``[down, up]``) and the common ones.
    """

    id = "robustness_spectral_tilt"
    description = "change in CCC/UAR and fraction unchanged under spectral tilt down/up"
    metrics = _catalogue_metrics("> -0.05", "> 0.8", emotion_change="> -0.02")
    defaults = {**COMMON_DEFAULTS, "directions": ["down", "up"]}

    def build_conditions(self) -> list[Condition]:
        dirs = self.params["directions"]
        if not isinstance(dirs, list) or not dirs:
            raise UsageError(f"test {self.name!r}: parameter directions must be a list from "
                             f"[down, up], got {dirs!r}")
        return _versus_clean(parse_conditions(
            {str(d): {"name": "spectral_tilt", "direction": d} for d in dirs},
            f"test {self.name!r}: parameter directions"))


#: Codecs beyond the catalogue (which has AMR-NB only inside the phone chain).
CODECS: dict[str, dict[str, Any]] = {
    "amr_nb_7k4": {"name": "amr_nb", "bitrate": 7400},
    "g711_mu": {"name": "g711", "law": "mu"},
    "gsm": {"name": "gsm"},
    "mp3_32k": {"name": "mp3", "bitrate": 32000},
    "opus_12k": {"name": "opus", "bitrate": 12000},
}


@register
class Codecs(PerturbationCheck):
    """Speech and audio codecs: AMR-NB 7.4 kbit/s, G.711 mu-law, GSM 06.10, MP3 32 kbit/s,
    Opus 12 kbit/s (beyond the catalogue; thresholds as its spectral tilt test).

    Params: ``codecs`` (mapping label -> spec; default :data:`CODECS`) and the common ones.
    """

    id = "robustness_codecs"
    description = "change in CCC/UAR and fraction unchanged after speech/audio codecs"
    metrics = _catalogue_metrics("> -0.05", "> 0.8")
    defaults = {**COMMON_DEFAULTS, "codecs": None}

    def build_conditions(self) -> list[Condition]:
        value = self.params["codecs"] or {k: dict(v) for k, v in CODECS.items()}
        return _versus_clean(parse_conditions(value, f"test {self.name!r}: parameter codecs"))


@register
class PitchShift(PerturbationCheck):
    """Pitch shifted by a few semitones, duration kept (beyond the catalogue).

    Within a speaker's natural range (about ±2 semitones) the emotion should not change.
    Params: ``semitones`` (default ``[-2, -1, 1, 2]``) and the common ones.
    """

    id = "robustness_pitch_shift"
    description = "change in CCC/UAR and fraction unchanged under small pitch shifts"
    metrics = _catalogue_metrics("> -0.05", "> 0.8")
    defaults = {**COMMON_DEFAULTS, "semitones": [-2, -1, 1, 2]}

    def build_conditions(self) -> list[Condition]:
        st = self.params["semitones"]
        if not isinstance(st, list) or not st or not all(is_number(s) and s != 0 for s in st):
            raise UsageError(f"test {self.name!r}: parameter semitones must be a list of "
                             f"non-zero numbers, got {st!r}")
        return _versus_clean(parse_conditions(
            {f"{s:+g} st": {"name": "pitch_shift", "semitones": float(s)} for s in st},
            f"test {self.name!r}: parameter semitones"))


def _room(spec: Any, level: str) -> Perturbation:
    """A room preset name -> ``room`` perturbation; a mapping -> any perturbation spec
    (e.g. ``{"name": "impulse_response", "path": "ir_1_C.wav"}`` for measured responses)."""
    if isinstance(spec, str):
        return from_spec({"name": "room", "preset": spec, "level": level})
    return from_spec(spec)


@register
class SimulatedRecordingCondition(PerturbationCheck):
    """Simulated rooms and microphone positions, each compared with a reference rendition.

    Rooms (catalogue: AIR booth vs lecture/meeting/office) and positions (MARDY: centre
    at 1 m vs left/right and 2/3 m) come from the ``room`` presets of
    :mod:`sertest.perturb.rooms`; measured responses can be given as ``impulse_response``
    specs.  Metrics ``unchanged_room`` and ``unchanged_position`` compare each condition
    with its reference (not with clean audio).

    Params: ``reference_room`` (booth), ``rooms`` ([lecture, meeting, office]),
    ``reference_position`` (centre_1m), ``positions`` (the other eight), ``level``
    (peak: peak-normalised like the catalogue, or rms), plus the common ones.  Set
    ``rooms`` or ``positions`` to ``[]`` to leave a family out.
    """

    id = "robustness_simulated_recording_condition"
    description = "fraction unchanged across simulated rooms and microphone positions"
    metrics = {"unchanged_room": "> 0.8", "unchanged_position": "> 0.8", "fidelity": None}
    defaults = {**COMMON_DEFAULTS, "reference_room": "booth",
                "rooms": ["lecture", "meeting", "office"], "reference_position": "centre_1m",
                "positions": ["left_1m", "right_1m", "centre_2m", "left_2m", "right_2m",
                              "centre_3m", "left_3m", "right_3m"],
                "level": "peak"}

    def build_conditions(self) -> list[Condition]:
        where = f"test {self.name!r}: parameter"
        level = self.params["level"]
        if level not in ("peak", "rms"):
            raise UsageError(f"{where} level={level!r} must be 'peak' or 'rms'")
        out: list[Condition] = []
        for family, suffix in (("room", "_room"), ("position", "_position")):
            others = self.params[f"{family}s"]
            if others in (None, [], {}):
                continue
            ref_spec = self.params[f"reference_{family}"]
            try:
                ref = _room(ref_spec, level)
            except UsageError as exc:
                raise UsageError(f"{where} reference_{family}: {exc}") from exc
            for label, p in parse_conditions(others, f"{where} {family}s",
                                             lambda s: _room(s, level)):
                out.append(Condition(label, p, baseline=ref, suffix=suffix))
        if not out:
            raise UsageError(f"{where}s: rooms and positions are both empty")
        return out


# -- paired real recordings ------------------------------------------------------------------
@register
class RecordingCondition(Check):
    """The same utterance recorded with different microphones (catalogue: IMDA headset vs
    boundary and mobile), no perturbation: predictions of each rendition are compared with
    the reference recording's (``unchanged``, one measurement per other recording).

    The data needs a ``pair`` column (one value per utterance, shared by its renditions) and
    a ``recording`` column (e.g. headset / boundary / mobile).  Params:
    ``reference_recording`` (headset), ``pair_column``, ``recording_column`` and the common
    ones (``max_items`` is not used: every pair is compared).
    """

    id = "robustness_recording_condition"
    topic = "robustness"
    description = "fraction unchanged between renditions of one utterance on other microphones"
    kinds = ("regression", "classification")
    metrics = {"unchanged": "> 0.8", "fidelity": None}
    defaults = {**COMMON_DEFAULTS, "reference_recording": "headset", "pair_column": "pair",
                "recording_column": "recording"}

    def __init__(self, params=None, thresholds=None, name=None) -> None:
        super().__init__(params, thresholds, name)
        check_common_params(self)

    def _pairs(self, ctx: Context) -> tuple[pd.DataFrame | None, str | None]:
        pc, rc = self.params["pair_column"], self.params["recording_column"]
        missing = [c for c in (pc, rc) if not ctx.dataset.has(c)]
        if missing:
            return None, (f"the data has no {' or '.join(repr(c) for c in missing)} column; "
                          f"give paired renditions (columns {pc!r} and {rc!r}) to run this test")
        tab = ctx.table.loc[ctx.valid_ids(), [pc, rc]].dropna().astype(str)
        ref = str(self.params["reference_recording"])
        recs = sorted(set(tab[rc]))
        if ref not in recs:
            return None, (f"no item has {rc}={ref!r} (found: {', '.join(recs)}); set "
                          f"params.reference_recording")
        if len(recs) < 2:
            return None, f"only one recording condition ({ref!r}) in column {rc!r}"
        return tab, None

    def requests(self, ctx: Context) -> list[Request]:
        tab, _ = self._pairs(ctx)
        return [] if tab is None else [Request(None, list(tab.index))]

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        tab, reason = self._pairs(ctx)
        if tab is None:
            return Outcome(skipped=reason)
        pc, rc = self.params["pair_column"], self.params["recording_column"]
        ref = str(self.params["reference_recording"])
        out = Outcome()
        classes = ctx.models[model].classes if target == EMOTION else None
        reference = ctx.reference if (ctx.reference is not None and ctx.reference != model
                                      and target in ctx.models[ctx.reference].targets) else None
        want = wanted_metrics(self, target)

        def by_pair(rec: str) -> pd.Series:  # pair -> item id (first id if repeated)
            rows = tab[tab[rc] == rec].sort_index()
            dup = int(rows[pc].duplicated().sum())
            if dup:
                out.notes.append(f"{rec}: {dup} repeated pair value(s); the first item is used")
            return pd.Series(rows.index, index=rows[pc]).groupby(level=0).first()

        def preds(name: str, id_of: pd.Series) -> pd.Series:
            p = ctx.prediction(name, target, None, list(id_of.values))
            inv = pd.Series(id_of.index, index=id_of.values)
            return pd.Series(p.to_numpy(), index=inv.loc[p.index].to_numpy())

        ref_ids = by_pair(ref)
        base = preds(model, ref_ids)
        speakers = None
        if ctx.dataset.has("speaker"):
            spk = ctx.table.loc[ref_ids.values, "speaker"].astype(str)
            speakers = pd.Series(spk.to_numpy(), index=ref_ids.index)
        dots: dict[str, Any] = {"labels": [], "values": [], "ci": []}
        per_condition, worst = [], []
        for rec in sorted(set(tab[rc]) - {ref}):
            ids_other = by_pair(rec)
            other = preds(model, ids_other)
            ref_other = preds(reference, ids_other) if reference else None
            res = compare_series(ctx, f"{self.name}/{target}", target, rec, base,
                                 other, want, truth=None, groups=speakers,
                                 reference_other=ref_other,
                                 tolerance=float(self.params["tolerance"]),
                                 decimals=self.params["decimals"], classes=classes)
            out.measurements.extend(res.measurements)
            out.notes.extend(res.notes)
            for m in res.measurements:
                if m.metric == "unchanged":
                    dots["labels"].append(rec)
                    dots["values"].append(m.value)
                    dots["ci"].append(list(m.ci) if m.ci else None)
            cond = Condition(rec, None)
            for w in worst_items(res, int(self.params["n_worst"]), cond, target == EMOTION,
                                 ids=dict(ids_other.items())):
                w.update(reference_id=ref_ids.get(w["pair"]), recording=rec,
                         reference_recording=ref)
                worst.append(w)
            per_condition.append({"label": rec, "condition": None, "baseline": None,
                                  "recording": rec, "reference_recording": ref,
                                  "n": len(res.base) if res.base is not None else 0,
                                  **plot_data(res, target, classes)})
        out.plots = robustness_plots(target, self.params["tolerance"], per_condition, dots,
                                     worst)
        return out

