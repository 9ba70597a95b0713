"""Dose-response sweeps: how quickly does a model degrade as a perturbation gets stronger?

Beyond the ser-tests catalogue (one fixed severity per perturbation), each sweep applies one
perturbation at a few levels (SNR in dB, codec bit rate in bit/s, RT60 in s, pitch shift in
semitones) and measures at every level the robustness metrics of
:mod:`sertest.checks.robustness` against clean audio (``ccc_change``/``uar_change``,
``unchanged``, and ``fidelity`` in label-free mode), with bootstrap CIs.  These per-level
measurements are shown without a threshold (``info``).

The judged number is the **breakdown point**: the level at which the *criterion* metric
first crosses its limit (``criterion: change`` -> change in CCC/UAR ``<= change_limit``,
default -0.05; ``criterion: unchanged`` -> fraction unchanged ``<= unchanged_limit``,
default 0.9), linearly interpolated between the last passing and the first failing level.
Levels are visited from mild to severe; where a level is equivalent to clean audio (pitch
0 st, RT60 0 s) it anchors the curve (change 0, unchanged 1).  Without labels (and without
``--reference``) the criterion falls back to ``unchanged``.

* Never crossed within the sweep: value NaN, a note, and a verdict from the interval beyond
  the most severe level (e.g. ``breakdown_snr_db < 10`` passes if the model held up to
  -5 dB).
* Crossed already at the mildest level without an anchor: the value is that level and the
  interval extends to clean audio.
* CI: the crossings of the lower and upper pointwise CI curves (an approximate interval;
  infinite where a CI curve never crosses).

Default judgements (overridable in the suite): ``breakdown_snr_db < 10`` (white noise),
``breakdown_bitrate < 12000`` bit/s (Opus), ``breakdown_rt60_s > 0.5`` s (office room,
RMS kept), ``breakdown_semitones abs > 2`` (down and up separately).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pandas as pd

from .. import figures
from ..errors import UsageError
from ..perturb import from_spec
from ..vocabulary import EMOTION
from .base import Check, Context, Measurement, Outcome, Request, register
from .conditions import (
    COMMON_DEFAULTS,
    Condition,
    check_common_params,
    clusters,
    compare_series,
    is_number,
    item_ids,
    plain,
    wanted_metrics,
    worst_items,
)
from .verdict import judge_interval  # noqa: F401 - re-exported for older imports

CRITERIA = ("change", "unchanged")

DOSE_DEFAULTS: dict[str, Any] = {
    **COMMON_DEFAULTS,
    "criterion": "change",     # which metric defines the breakdown: change | unchanged
    "change_limit": -0.05,     # change in CCC/UAR at or below this = broken down
    "unchanged_limit": 0.9,    # fraction unchanged at or below this = broken down
    "n_worst": 1,              # items with the largest change listed per level
    "max_items": 200,          # a sweep multiplies the cost: a seeded subset (null = all)
}


def crossing(points: list[tuple[float, float]], limit: float) -> tuple[float, str]:
    """Where a curve first drops to ``limit`` or below.

    Args:
        points: ``(level, metric)`` from mild to severe (NaN metrics are skipped).
        limit: the metric passes while it is ``> limit``.

    Returns:
        ``(level, "crossed")`` linearly interpolated between the last passing and the first
        failing point; ``(first level, "at_first")`` if the first point already fails;
        ``(nan, "never")`` if no point fails.
    """
    pts = [(float(x), float(m)) for x, m in points if m is not None and math.isfinite(m)]
    for i, (x, m) in enumerate(pts):
        if not m > limit:
            if i == 0:
                return x, "at_first"
            x0, m0 = pts[i - 1]
            return x0 + (limit - m0) * (x - x0) / (m - m0), "crossed"
    return math.nan, "never"


class DoseCheck(Check):
    """Base of the sweeps.  Subclasses set the class attributes below.

    Class attributes:
        parameter: the perturbation parameter swept (``snr_db``).
        unit: its unit for labels (``dB``).
        direction: ``down`` (lower = more severe, e.g. SNR), ``up`` (higher = more severe,
            e.g. RT60) or ``both`` (further from ``anchor`` either way, e.g. semitones).
        anchor: the level that equals clean audio, or ``None`` if it is not finite.
        breakdown: the breakdown metric id.
        default_levels: default levels.
    """

    topic = "robustness"
    kinds = ("regression", "classification")
    parameter: ClassVar[str] = ""
    unit: ClassVar[str] = ""
    direction: ClassVar[str] = "down"
    anchor: ClassVar[float | None] = None
    breakdown: ClassVar[str] = ""
    default_levels: ClassVar[list[float]] = []

    def __init__(self, params=None, thresholds=None, name=None) -> None:
        super().__init__(params, thresholds, name)
        check_common_params(self)
        where = f"test {self.name!r}: parameter"
        if self.params["criterion"] not in CRITERIA:
            raise UsageError(f"{where} criterion={self.params['criterion']!r} must be one of "
                             f"{', '.join(CRITERIA)}")
        for key in ("change_limit", "unchanged_limit"):
            if not is_number(self.params[key]):
                raise UsageError(f"{where} {key}={self.params[key]!r} must be a number")
        spec = self.params["perturbation"]
        spec = {"name": spec} if isinstance(spec, str) else spec
        if not isinstance(spec, dict) or "name" not in spec:
            raise UsageError(f"{where} perturbation must be a perturbation name or a spec "
                             f"mapping with 'name', got {spec!r}")
        spec = dict(spec)
        levels = self.params["levels"]
        if levels is None:
            levels = self.levels_for(spec)
        if (not isinstance(levels, list) or not levels or not all(is_number(v) for v in levels)
                or len(set(levels)) != len(levels)):
            raise UsageError(f"{where} levels={levels!r} must be a non-empty list of distinct "
                             f"numbers ({self.unit})")
        if self.anchor is not None and self.anchor in levels:
            raise UsageError(f"{where} levels: {self.anchor:g} {self.unit} equals clean audio; "
                             "leave it out (it anchors the curve)")
        self.levels: list[float] = list(levels)
        self.conditions: dict[float, Condition] = {}
        for level in self.levels:
            try:
                p = from_spec({**spec, self.parameter: level})
            except UsageError as exc:
                raise UsageError(f"{where} levels / perturbation: {exc}") from exc
            if self.parameter not in p.params:
                raise UsageError(f"{where} perturbation {spec['name']!r} has no parameter "
                                 f"{self.parameter!r} to sweep")
            self.conditions[level] = Condition(self.label(level), p)

    # -- to override ----------------------------------------------------------------------
    def levels_for(self, spec: dict[str, Any]) -> list[float]:
        """Default levels for a perturbation spec."""
        return list(self.default_levels)

    # -- helpers ------------------------------------------------------------------------------
    def label(self, level: float) -> str:
        sign = "+" if self.direction == "both" and level > 0 else ""
        return f"{sign}{level:g} {self.unit}"

    def sides(self) -> dict[str | None, list[float]]:
        """Levels per side, ordered from mild to severe."""
        if self.direction == "both":
            a = self.anchor or 0.0
            down = sorted((v for v in self.levels if v < a), reverse=True)
            up = sorted(v for v in self.levels if v > a)
            return {k: v for k, v in (("down", down), ("up", up)) if v}
        return {None: sorted(self.levels, reverse=self.direction == "down")}

    def severe_limit(self, side: str | None) -> float:
        """The infinitely severe end of a side (``-inf`` for SNR, ``+inf`` for RT60)."""
        if self.direction == "down" or side == "down":
            return -math.inf
        return math.inf

    # -- Check API ----------------------------------------------------------------------
    def requests(self, ctx: Context) -> list[Request]:
        ids = item_ids(ctx, self.params["max_items"])
        return [Request(None, ids)] + [Request(c.perturbation, ids)
                                       for c in self.conditions.values()]

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        ids = item_ids(ctx, self.params["max_items"])
        out = Outcome()
        emotion = target == EMOTION
        classes = ctx.models[model].classes if emotion else None
        has_truth = ctx.has_truth(target)
        truth = ctx.truth(target, ids) if has_truth else None
        reference = ctx.reference if (ctx.reference is not None and ctx.reference != model
                                      and target in ctx.models[ctx.reference].targets) else None
        all_ids = ctx.valid_ids(ids)
        groups = (pd.Series(clusters(ctx, all_ids), index=all_ids)
                  if ctx.dataset.has("speaker") else None)
        want = wanted_metrics(self, target)
        criterion = self.params["criterion"]
        if criterion == "change" and not has_truth:
            out.notes.append(f"no {target!r} truth (labels or --reference): the breakdown "
                             "point uses the fraction unchanged instead of the change in "
                             f"{'UAR' if emotion else 'CCC'}")
            criterion = "unchanged"
        crit_metric = want.get(criterion, "unchanged")
        limit = float(self.params["change_limit" if criterion == "change"
                                   else "unchanged_limit"])
        anchor_value = 0.0 if criterion == "change" else 1.0

        per_level: dict[float, dict[str, Measurement]] = {}
        worst: list[dict] = []
        base = ctx.prediction(model, target, None, ids)  # clean: the same for every level
        for level in self.levels:
            cond = self.conditions[level]
            other = ctx.prediction(model, target, cond.perturbation, ids)
            ref_other = (ctx.prediction(reference, target, cond.perturbation, ids)
                         if reference else None)
            res = compare_series(
                ctx, f"{self.name}/{target}", target, cond.label, base,
                other, want, truth=truth, groups=groups, reference_other=ref_other,
                tolerance=float(self.params["tolerance"]), decimals=self.params["decimals"],
                classes=classes)
            for m in res.measurements:
                m.extra = {**m.extra, "level": level, "unit": self.unit}
            out.measurements.extend(res.measurements)
            out.notes.extend(res.notes)
            per_level[level] = {m.metric: m for m in res.measurements}
            worst.extend(worst_items(res, int(self.params["n_worst"]), cond, emotion))

        breakdowns: dict[str, Any] = {}
        for side, levels in self.sides().items():
            m = self.breakdown_point(side, levels, per_level, crit_metric, limit, anchor_value)
            out.measurements.append(m)
            breakdowns[side or "all"] = {"value": m.value, "ci": list(m.ci) if m.ci else None,
                                         "censored": m.extra.get("censored")}
            if m.extra.get("censored") == "never":
                beyond = levels[-1]
                out.notes.append(f"{self.breakdown}{'' if side is None else f' ({side})'}: "
                                 f"{crit_metric} never reached {limit:g} within the sweep "
                                 f"(held up to {self.label(beyond)})")
            elif m.extra.get("censored") == "at_first":
                out.notes.append(f"{self.breakdown}{'' if side is None else f' ({side})'}: "
                                 f"{crit_metric} already reached {limit:g} at the mildest "
                                 f"level {self.label(levels[0])}")
        ordered = [v for lv in self.sides().values() for v in lv]
        if self.direction == "both":
            ordered = sorted(self.levels)
        curves = {}
        for metric in sorted({k for d in per_level.values() for k in d}):
            curves[metric] = {
                "values": [per_level[v][metric].value if metric in per_level[v] else None
                           for v in ordered],
                "ci": [list(per_level[v][metric].ci)
                       if metric in per_level[v] and per_level[v][metric].ci else None
                       for v in ordered]}
        out.plots = plain(figures.dose(
            target=target, parameter=self.parameter, unit=self.unit,
            direction=self.direction, anchor=self.anchor,
            perturbation=next(iter(self.conditions.values())).perturbation.spec(),
            levels=ordered, labels=[self.label(v) for v in ordered],
            criterion=crit_metric, limit=limit, curves=curves,
            breakdown=breakdowns, worst=worst))
        return out

    def breakdown_point(self, side: str | None, levels: list[float],
                        per_level: dict[float, dict[str, Measurement]], metric: str,
                        limit: float, anchor_value: float) -> Measurement:
        """The breakdown measurement of one side of the sweep (judged here if censored).

        ``levels`` are the sweep's levels on that side, mildest first (dB SNR, kbit/s, s of
        RT60, semitones); ``per_level`` the measurements per level; ``metric`` the criterion
        (``ccc_change``/``uar_change``/``unchanged``) and ``limit`` its threshold value;
        ``anchor_value`` the criterion's value at the sweep's anchor (clean audio).  The
        value is the level where the criterion's curve crosses ``limit`` (interpolated).
        """
        ms = [per_level[v].get(metric) for v in levels]
        anchor = [] if self.anchor is None else [(self.anchor, anchor_value)]

        def curve(pick) -> list[tuple[float, float]]:
            return anchor + [(v, pick(m)) for v, m in zip(levels, ms, strict=True)
                             if m is not None]

        value, status = crossing(curve(lambda m: m.value), limit)
        severe = self.severe_limit(side)
        mild = -severe
        ci = None
        if all(m is not None and m.ci for m in ms) and ms:
            bounds = []
            for k in (0, 1):  # lower (pessimistic) and upper (optimistic) CI curve
                x, st = crossing(curve(lambda m, k=k: m.ci[k]), limit)
                if st == "never":
                    x = severe
                elif st == "at_first" and k == 0:
                    x = mild  # crossed somewhere between clean audio and the first level
                bounds.append(x)
            ci = (min(bounds), max(bounds))
        n = min((m.n for m in ms if m is not None and m.n is not None), default=None)
        extra = {"criterion": metric, "limit": limit, "unit": self.unit,
                 "censored": None if status == "crossed" else status}
        meas = Measurement(self.breakdown, value, slice={} if side is None else {"side": side},
                           ci=ci, n=n, extra=extra)
        if status == "never":
            # beyond the most severe level, or as mild as the lower CI curve's crossing
            last = levels[-1]
            lo = last if ci is None else (max(ci[1], last) if severe < 0 else min(ci[0], last))
            meas.ci = (min(lo, severe), max(lo, severe))
            # censored: the value is only known to lie between these (the judge decides)
            meas.extra["known_between"] = [lo, severe]
        elif status == "at_first" and ci is None:
            meas.ci = (min(value, mild), max(value, mild))  # somewhere toward clean audio
        return meas


@register
class DoseNoise(DoseCheck):
    """Additive noise swept over SNR (dB).  Params: ``perturbation`` (default
    ``white_noise``; any noise with ``snr_db``, e.g. babble or ``noise_file``), ``levels``
    (default 40, 30, 20, 10, 5, 0, -5 dB), ``criterion``, the limits and the common ones."""

    id = "robustness_dose_noise"
    description = "dose-response over SNR: change in CCC/UAR per level and breakdown SNR (dB)"
    parameter, unit, direction, anchor = "snr_db", "dB", "down", None
    breakdown = "breakdown_snr_db"
    default_levels = [40.0, 30.0, 20.0, 10.0, 5.0, 0.0, -5.0]
    metrics = {"ccc_change": None, "uar_change": None, "unchanged": None, "fidelity": None,
               "breakdown_snr_db": "< 10"}
    defaults = {**DOSE_DEFAULTS, "perturbation": "white_noise", "levels": None}


#: Default bit rates (bit/s) per codec, from transparent to harsh.
CODEC_LEVELS: dict[str, list[float]] = {
    "opus": [32000, 24000, 16000, 12000, 8000, 6000],
    "mp3": [64000, 32000, 24000, 16000, 8000],
    "amr_nb": [12200, 10200, 7400, 5900, 4750],
    "low_quality_phone": [12200, 7400, 4750],
}


@register
class DoseCodec(DoseCheck):
    """A codec swept over bit rate (bit/s).  Params: ``perturbation`` (``opus`` default,
    ``mp3``, ``amr_nb`` or ``low_quality_phone``), ``levels`` (default per codec, see
    :data:`CODEC_LEVELS`; AMR-NB takes only its eight modes), ``criterion``, the limits and
    the common ones."""

    id = "robustness_dose_codec"
    description = "dose-response over codec bit rate: per-level change and breakdown bit rate"
    parameter, unit, direction, anchor = "bitrate", "bit/s", "down", None
    breakdown = "breakdown_bitrate"
    metrics = {"ccc_change": None, "uar_change": None, "unchanged": None, "fidelity": None,
               "breakdown_bitrate": "< 12000"}
    defaults = {**DOSE_DEFAULTS, "perturbation": "opus", "levels": None}

    def levels_for(self, spec: dict[str, Any]) -> list[float]:
        name = spec.get("name")
        if name not in CODEC_LEVELS:
            raise UsageError(f"test {self.name!r}: no default levels for codec {name!r}; give "
                             f"params.levels (bit/s) or use one of {', '.join(CODEC_LEVELS)}")
        return list(CODEC_LEVELS[name])

    def label(self, level: float) -> str:
        return f"{level / 1000:g} kbit/s"


@register
class DoseReverb(DoseCheck):
    """A simulated room swept over RT60 (s), RMS kept so only reverberation changes.
    Params: ``perturbation`` (default ``room`` preset office, 2 m, ``level: rms``),
    ``levels`` (default 0.2, 0.4, 0.6, 0.8, 1.2, 1.6 s), ``criterion``, the limits and the
    common ones.  RT60 0 s (anechoic, aligned, RMS kept = clean) anchors the curve."""

    id = "robustness_dose_reverb"
    description = "dose-response over reverberation time: per-level change and breakdown RT60"
    parameter, unit, direction, anchor = "rt60_s", "s", "up", 0.0
    breakdown = "breakdown_rt60_s"
    metrics = {"ccc_change": None, "uar_change": None, "unchanged": None, "fidelity": None,
               "breakdown_rt60_s": "> 0.5"}
    defaults = {**DOSE_DEFAULTS, "perturbation": {"name": "room", "preset": "office",
                                                  "level": "rms"},
                "levels": None}
    default_levels = [0.2, 0.4, 0.6, 0.8, 1.2, 1.6]

    def levels_for(self, spec: dict[str, Any]) -> list[float]:
        return list(self.default_levels)


@register
class DosePitch(DoseCheck):
    """Pitch shift swept over semitones, down and up separately (duration kept).
    Params: ``perturbation`` (default ``pitch_shift``), ``levels`` (default -6, -4, -2, 2, 4,
    6), ``criterion``, the limits and the common ones.  0 st (clean) anchors both sides."""

    id = "robustness_dose_pitch"
    description = "dose-response over pitch shift: per-level change and breakdown (semitones)"
    parameter, unit, direction, anchor = "semitones", "st", "both", 0.0
    breakdown = "breakdown_semitones"
    metrics = {"ccc_change": None, "uar_change": None, "unchanged": None, "fidelity": None,
               "breakdown_semitones": "abs > 2"}
    defaults = {**DOSE_DEFAULTS, "perturbation": "pitch_shift", "levels": None}
    default_levels = [-6.0, -4.0, -2.0, 2.0, 4.0, 6.0]

