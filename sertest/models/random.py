"""Random baselines, as in ser-tests, but seeded per item; and a constant baseline.

``random:gaussian`` draws arousal, dominance and valence independently from a normal
distribution with mean 0.5 and standard deviation 1/6, truncated to [0, 1].
``random:categorical`` draws one of the classes uniformly (a one-hot probability row).
``random:constant`` predicts 0.5 for every dimension, whatever it hears.

Every draw comes from the generator the engine derives from (audit seed, item, condition),
so a baseline gives the same prediction for the same item and condition in every run.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import truncnorm

from ..errors import UsageError
from .base import CATEGORIES, DIMENSIONS, Model, ModelInfo

_MEAN, _SD = 0.5, 1.0 / 6.0
_A, _B = (0.0 - _MEAN) / _SD, (1.0 - _MEAN) / _SD


class RandomGaussian(Model):
    """Truncated normal N(0.5, (1/6)^2) on [0, 1] for each dimension."""

    stochastic = True
    concurrent = True  # draws only from the generators it is given

    def __init__(self, name: str = "random-gaussian", sampling_rate: int = 16000,
                 dimensions: tuple[str, ...] = DIMENSIONS) -> None:
        self.name = name
        self.sampling_rate = int(sampling_rate)
        self.dimensions = tuple(dimensions)
        self.classes = ()

    def predict_random(self, signals, rngs):
        out = np.empty((len(signals), len(self.dimensions)))
        for i, rng in enumerate(rngs):
            out[i] = truncnorm.rvs(_A, _B, loc=_MEAN, scale=_SD, size=len(self.dimensions),
                                   random_state=rng)
        return out

    def fingerprint(self) -> str:
        return f"random-gaussian:v1:{','.join(self.dimensions)}"

    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, format="random", sampling_rate=self.sampling_rate,
                         dimensions=self.dimensions, parameters=0, file_size=0,
                         extra={"distribution": "truncated normal, mean 0.5, sd 1/6, on [0, 1]"})


class RandomCategorical(Model):
    """Uniform choice over the classes, returned as a one-hot probability row."""

    stochastic = True
    concurrent = True  # draws only from the generators it is given

    def __init__(self, name: str = "random-categorical", sampling_rate: int = 16000,
                 classes: tuple[str, ...] = CATEGORIES) -> None:
        self.name = name
        self.sampling_rate = int(sampling_rate)
        self.dimensions = ()
        self.classes = tuple(classes)

    def predict_random(self, signals, rngs):
        out = np.zeros((len(signals), len(self.classes)))
        for i, rng in enumerate(rngs):
            out[i, int(rng.integers(len(self.classes)))] = 1.0
        return out

    def fingerprint(self) -> str:
        return f"random-categorical:v1:{','.join(self.classes)}"

    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, format="random", sampling_rate=self.sampling_rate,
                         classes=self.classes, parameters=0, file_size=0,
                         extra={"distribution": "uniform over the classes"})


class Constant(Model):
    """The same prediction for every signal: ``value`` for each dimension and, for
    classes, one-hot on the first class.  A test this baseline passes on the data cannot
    tell a model that listens from one that does not (flagged ``uninformative``)."""

    concurrent = True

    def __init__(self, name: str = "constant", sampling_rate: int = 16000,
                 dimensions: tuple[str, ...] = DIMENSIONS, classes: tuple[str, ...] = (),
                 value: float = 0.5) -> None:
        self.name = name
        self.sampling_rate = int(sampling_rate)
        self.dimensions = tuple(dimensions)
        self.classes = tuple(classes)
        self.value = float(value)

    def predict_batch(self, signals):
        row = np.zeros(len(self.outputs))
        row[: len(self.dimensions)] = self.value
        if self.classes:
            row[len(self.dimensions)] = 1.0
        return np.tile(row, (len(signals), 1))

    def fingerprint(self) -> str:
        return f"constant:v1:{self.value:g}:{','.join(self.dimensions)}:{','.join(self.classes)}"

    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, format="random", sampling_rate=self.sampling_rate,
                         dimensions=self.dimensions, classes=self.classes, parameters=0,
                         file_size=0, extra={"distribution": f"constant {self.value:g}"})


def load_random(target: str, name: str | None = None, sampling_rate: int = 16000,
                labels=None, classes=None, **_: object) -> Model:
    """``random:gaussian`` or ``random:categorical``."""
    kind = target.strip().lower()
    if kind == "gaussian":
        dims = tuple(_labels(labels)) if labels else DIMENSIONS
        return RandomGaussian(name or "random-gaussian", sampling_rate, dims)
    if kind == "categorical":
        cls = tuple(_labels(classes or labels)) if (classes or labels) else CATEGORIES
        return RandomCategorical(name or "random-categorical", sampling_rate, cls)
    if kind == "constant":
        dims = tuple(_labels(labels)) if labels else DIMENSIONS
        cls = tuple(_labels(classes)) if classes else ()
        return Constant(name or "constant", sampling_rate, dims, cls)
    raise UsageError(f"--model random:{target}: unknown baseline; use random:gaussian, "
                     "random:categorical or random:constant")


def _labels(value) -> list[str]:
    return [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
