"""Local Hugging Face folders of the wav2vec2 / WavLM teacher family.

Supported layouts (see :mod:`sertest.models.arch.teacher`):

- audEERING's ``Wav2Vec2ForSpeechClassification``-style folders: ``config.json`` with
  ``id2label`` = arousal/dominance/valence, weights ``wav2vec2.*`` (or ``wavlm.*``) and
  ``classifier.dense`` / ``classifier.out_proj`` in ``model.safetensors`` or
  ``pytorch_model.bin``;
- sertest's teacher folders: the same plus a ``categorical.*`` head (anger, happiness,
  neutral, sadness) described in ``sertest_head.json``.

Processing: per-utterance z-normalisation of the waveform, ``(x − mean)/sqrt(var +
1e-7)`` (as audEERING's processor), encoder, mean over time of the last hidden state,
regression head → dimensions; categorical head → softmax probabilities.

Nothing is ever downloaded: the target must be an existing local folder, and the
Hugging Face offline switches are set before ``transformers`` is imported.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import ModelError, UsageError
from .base import CATEGORIES, DIMENSIONS, Model, ModelInfo, file_digest, path_size

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Idle OpenMP threads sleep rather than spin (only effective if torch is not imported yet):
# spinning threads made torch ~10x slower on an oversubscribed machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402


class HFModel(Model):
    """A teacher-family model loaded from a local folder."""

    def __init__(self, folder: str, *, name: str | None = None, threads: int | None = None
                 ) -> None:
        from .arch.teacher import load_teacher

        self.path = os.path.abspath(folder)
        self.name = name or os.path.basename(os.path.normpath(folder))
        self.sampling_rate = 16000
        self._threads = int(threads) if threads else None
        if self._threads:
            torch.set_num_threads(self._threads)
        try:
            self.model = load_teacher(folder)
        except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
            raise ModelError(f"cannot load Hugging Face folder {folder}: {exc}") from exc
        self.model.eval()
        head_labels = list(self.model.dimensions)
        order = {d: i for i, d in enumerate(DIMENSIONS)}
        if set(head_labels) <= set(DIMENSIONS):
            self._reg_index = sorted(range(len(head_labels)),
                                     key=lambda i: order[head_labels[i]])
            self.dimensions = tuple(head_labels[i] for i in self._reg_index)
            self._reg_is_classes = False
            self.classes = tuple(self.model.classes)
        elif set(head_labels) & set(CATEGORIES):
            # A classification folder: the "classifier" head holds the emotion classes.
            self._reg_index = []
            self.dimensions = ()
            self._reg_is_classes = True
            self.classes = tuple(head_labels)
        else:
            raise ModelError(
                f"{folder}: config.json id2label {head_labels} names neither "
                f"{list(DIMENSIONS)} nor emotion categories {list(CATEGORIES)}")

    def predict_batch(self, signals: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(signals, dtype=np.float32))
        try:
            with torch.inference_mode():
                dims, logits = self.model(x)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"model {self.name!r} failed on a batch of shape "
                             f"{tuple(signals.shape)}: {type(exc).__name__}: {exc}") from exc
        if self._reg_is_classes:
            return torch.softmax(dims, dim=1).double().numpy()
        cols = [dims[:, self._reg_index].double()]
        if self.classes and logits is not None:
            cols.append(torch.softmax(logits, dim=1).double())
        return torch.cat(cols, dim=1).numpy()

    def fingerprint(self) -> str:
        if not hasattr(self, "_fingerprint"):
            self._fingerprint = "hf:" + file_digest(self.path)[:32]
        return self._fingerprint

    def info(self) -> ModelInfo:
        cfg = self.model.config
        return ModelInfo(
            name=self.name, format="hf", sampling_rate=self.sampling_rate,
            dimensions=self.dimensions, classes=self.classes,
            parameters=sum(int(p.numel()) for p in self.model.parameters()),
            file_size=path_size(self.path), path=self.path,
            extra={"model_type": cfg.model_type, "hidden_size": cfg.hidden_size,
                   "layers": cfg.num_hidden_layers, "pooling": "mean",
                   "normalisation": "per-utterance z-score"})


def load_hf(target: str, name: str | None = None, threads: int | None = None,
            **_: Any) -> Model:
    """Load a local teacher-family folder (see the module docstring)."""
    if not os.path.isdir(target):
        raise UsageError(
            f"--model {target!r}: no such folder. sertest never downloads models: pass a "
            "local folder (config.json + model.safetensors or pytorch_model.bin), e.g. one "
            "saved with save_pretrained")
    if not os.path.isfile(os.path.join(target, "config.json")):
        raise UsageError(f"--model {target!r}: the folder has no config.json; pass a local "
                         "Hugging Face model folder")
    return HFModel(target, name=name, threads=threads)
