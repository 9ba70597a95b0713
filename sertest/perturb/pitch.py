"""Pitch shifting without changing duration."""

from __future__ import annotations

import numpy as np

from .base import Perturbation, register
from .filters import run_audiomentations
from .measure import check_number


@register
class PitchShift(Perturbation):
    """Shift the pitch by ``semitones`` (−24…24; negative = down) keeping the duration.

    audiomentations PitchShift with the Signalsmith Stretch method (its default), the
    number of semitones fixed (min = max, p = 1, parameters frozen, so no global random
    state is touched).  Deterministic, same length as the input, time-aligned.
    """

    name = "pitch_shift"
    description = "pitch shift by semitones (-24..24), duration kept (Signalsmith Stretch)"
    defaults = {"semitones": 2.0}

    def validate(self) -> None:
        check_number(self, "semitones", low=-24.0, high=24.0)

    def apply(self, signal, sampling_rate, rng, params):
        from audiomentations import PitchShift as AmPitchShift

        semitones = float(params["semitones"])
        if semitones == 0.0 or signal.size == 0:
            return signal
        transform = AmPitchShift(min_semitones=semitones, max_semitones=semitones,
                                 method="signalsmith_stretch", p=1.0)
        y = run_audiomentations(transform, {"num_semitones": semitones}, signal, sampling_rate)
        if y.size != signal.size:  # guard: Signalsmith returns the input length today
            y = np.concatenate([y, np.zeros(max(0, signal.size - y.size), np.float32)])
            y = y[: signal.size]
        return y
