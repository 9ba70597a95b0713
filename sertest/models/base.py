"""The one protocol every model adapter follows.

A model turns a batch of mono float32 signals at its own sampling rate into one row of
named outputs per signal.  Outputs are columns: regression dimensions first
(``arousal``, ``dominance``, ``valence``; floats in about [0, 1]), then the class
probabilities or scores of a categorical head (``anger``, ``happiness``, ...).  The
categorical prediction ``emotion`` is the argmax over the class columns.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# the vocabulary lives in a leaf module; re-exported here for older imports
from ..vocabulary import CATEGORIES, DIMENSIONS, EMOTION  # noqa: F401
RANGE_TOLERANCE = 0.5
#: prefix of a fingerprint that is not stable across processes: predictions of such a
#: model are never stored in the prediction cache file (see :mod:`sertest.engine.cache`)
VOLATILE = "volatile:"
_UNFINGERPRINTED: set[tuple[str, str, str]] = set()


@dataclass
class ModelInfo:
    """Static facts about a model, shown in results and reports.

    Attributes:
        name: display name.
        format: ``onnx``, ``audonnx``, ``torch``, ``hf``, ``callable`` or ``random``.
        parameters: number of parameters (``None`` if unknown).
        file_size: bytes on disk of the model file(s) (``None`` if not a file).
        sampling_rate: input rate in Hz.
        dimensions: regression outputs.
        classes: categorical outputs.
        path: where it was loaded from.
        extra: anything else (opset, quantisation, ...).
    """

    name: str
    format: str
    sampling_rate: int
    dimensions: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    parameters: int | None = None
    file_size: int | None = None
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "sampling_rate": self.sampling_rate,
            "dimensions": list(self.dimensions),
            "classes": list(self.classes),
            "parameters": self.parameters,
            "file_size": self.file_size,
            "path": self.path,
            **({"extra": self.extra} if self.extra else {}),
        }


class Model:
    """Base class of adapters.

    Subclasses set ``name``, ``sampling_rate``, ``dimensions``, ``classes`` and implement
    :meth:`predict_batch` (and usually :meth:`fingerprint` and :meth:`info`).
    ``batchable`` says whether signals of equal length may be stacked into one call, and
    ``max_batch`` how many at most: an item under a suite's 50-odd conditions would
    otherwise be one call whose activations (kept by onnxruntime's memory arena, one per
    session) can reach hundreds of MB per concurrent call, for no speed gain on a CPU
    (Wav2Small: real-time factor 0.00307 at batch 1, 0.00294 at batch 24).
    """

    name: str = "model"
    sampling_rate: int = 16000
    dimensions: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    batchable: bool = True
    #: most signals per :meth:`predict_batch` call (bounds the memory of one call)
    max_batch: int = 16
    #: most samples the engine puts in one call (``None``: the engine's
    #: :data:`~sertest.engine.units.CALL_SAMPLES`, 2**19); it enters the cache keys
    call_samples: int | None = None
    #: ``True`` for models whose output depends on the generator (random baselines).
    stochastic: bool = False
    #: declared range of the regression dimensions; predictions further than
    #: ``RANGE_TOLERANCE`` outside it are clipped to [lo - tolerance, hi + tolerance] and
    #: counted (the ``model_health`` entry's ``clipped_share``, a ``clipped`` flag), never
    #: dropped; values within the tolerance are kept as predicted.
    output_range: tuple[float, float] | None = (0.0, 1.0)
    #: ``True`` if :meth:`predict` may run in several threads at once (stateless numpy code,
    #: ONNX Runtime sessions).  Otherwise the engine serialises the model's calls.
    concurrent: bool = False
    #: where the model computes: ``cpu``, or ``cuda:N`` after :meth:`to_device`
    device: str = "cpu"
    #: ``True`` if :meth:`predict_padded` may stack signals of different lengths (padding
    #: masked by an attention mask, outputs as one at a time within float32 rounding)
    pads_with_mask: bool = False

    @property
    def outputs(self) -> tuple[str, ...]:
        """Column names of the prediction matrix."""
        return tuple(self.dimensions) + tuple(self.classes)

    @property
    def targets(self) -> tuple[str, ...]:
        """What tests can judge: the regression dimensions, plus ``emotion`` if classes exist."""
        return tuple(self.dimensions) + ((EMOTION,) if self.classes else ())

    def predict_batch(self, signals: np.ndarray) -> np.ndarray:
        """Predict a stack of equal-length signals.

        Args:
            signals: float32 array (batch, samples) at :attr:`sampling_rate`.

        Returns:
            float array (batch, len(outputs)).
        """
        raise NotImplementedError

    def predict(self, signals: list[np.ndarray], rngs: list[np.random.Generator] | None = None
                ) -> np.ndarray:
        """Predict a list of signals of any lengths; equal lengths are stacked.

        Stochastic models receive one generator per signal in ``rngs``.
        """
        out = np.empty((len(signals), len(self.outputs)), dtype=np.float64)
        if not signals:
            return out
        if self.stochastic:
            return self.predict_random(signals, rngs or [np.random.default_rng(0)] * len(signals))
        groups: dict[int, list[int]] = {}
        for i, s in enumerate(signals):
            groups.setdefault(len(s), []).append(i)
        for _, group in groups.items():
            if self.batchable:
                step = max(1, int(self.max_batch))
                for k in range(0, len(group), step):
                    idx = group[k:k + step]
                    batch = np.stack([np.asarray(signals[i], dtype=np.float32) for i in idx])
                    out[idx] = self._checked(self.predict_batch(batch), len(idx))
            else:
                for i in group:
                    x = np.asarray(signals[i], dtype=np.float32)[None, :]
                    out[i] = self._checked(self.predict_batch(x), 1)[0]
        return out

    def predict_random(self, signals: list[np.ndarray], rngs: list[np.random.Generator]
                       ) -> np.ndarray:
        raise NotImplementedError

    def _checked(self, y: Any, n: int) -> np.ndarray:
        from ..errors import ModelError

        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1 and len(self.outputs) == 1:
            y = y[:, None]
        if y.shape != (n, len(self.outputs)):
            raise ModelError(
                f"model {self.name!r} returned shape {tuple(y.shape)}, expected "
                f"({n}, {len(self.outputs)}) for outputs {list(self.outputs)}")
        return y

    def fingerprint(self) -> str:
        """A string that changes whenever the model's weights or configuration change.

        Adapters override it (a digest of every file they load).  This fallback cannot know
        the weights, so it returns a :data:`VOLATILE` fingerprint: the model's predictions
        are kept for this process only, never served from the prediction cache in a later
        run (they could be stale), and a warning says so once per model.
        """
        key = (type(self).__module__, type(self).__qualname__, self.name)
        if key not in _UNFINGERPRINTED:
            _UNFINGERPRINTED.add(key)
            logging.getLogger("sertest").warning(
                "model %r (%s) has no fingerprint() of its weights: its predictions are not "
                "cached across runs (define fingerprint() returning e.g. a digest of its "
                "weight files to cache them)", self.name, type(self).__name__)
        return f"{VOLATILE}{type(self).__name__}:{self.name}"

    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, format="unknown", sampling_rate=self.sampling_rate,
                         dimensions=self.dimensions, classes=self.classes)

    def use_threads(self, threads: int) -> None:
        """Let each :meth:`predict` call use ``threads`` threads (asked of :attr:`concurrent`
        models only).  The engine asks for 1 and runs several calls at once, so the cores are
        not oversubscribed and the outputs never depend on ``--jobs`` or the machine's core
        count.  Default: nothing to do."""

    def close(self) -> None:
        """Release sessions and threads."""

    def to_device(self, device: str) -> None:
        """Compute on ``device`` (a ``--device`` value, see :mod:`sertest.models.device`).
        Adapters that can use a GPU override it; this one keeps the model on the CPU for
        ``cpu`` and ``auto`` and refuses ``cuda``."""
        from .device import cpu_only

        self.device = cpu_only(device, f"--model {self.name}", self.info().format)

    def predict_padded(self, signals: list[np.ndarray]) -> np.ndarray:
        """Predict signals of different lengths in one call, padding masked (only where
        :attr:`pads_with_mask`).  Returns float64 ``(len(signals), len(outputs))``."""
        raise NotImplementedError(f"model {self.name!r} cannot mask padding")


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (or of all files under a folder, in sorted order)."""
    h = hashlib.sha256()
    paths = [path]
    if os.path.isdir(path):
        paths = sorted(os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs)
    for p in paths:
        h.update(os.path.relpath(p, path).encode() if os.path.isdir(path) else b"")
        with open(p, "rb") as fh:
            while True:
                b = fh.read(chunk)
                if not b:
                    break
                h.update(b)
    return h.hexdigest()


def path_size(path: str | os.PathLike) -> int:
    """Bytes on disk of a file, or of all files under a folder."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)
