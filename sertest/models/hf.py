"""Hugging Face folders and hub ids: the dispatcher, and the teacher-family adapter.

:func:`load_hf` takes a local folder or a hub id (``org/name[@revision]``, resolved from
the local Hugging Face cache by :mod:`sertest.models.hub`; a local path of that name
wins) and picks the layout from the folder:

- sertest's teacher (``sertest_head.json``) or audEERING's
  ``Wav2Vec2ForSpeechClassification`` / ``WavLMForSpeechClassification`` layout
  (``architectures`` in ``config.json``): :class:`HFModel` below;
- anything else: a ``transformers`` audio-classification model with its feature
  extractor, :class:`sertest.models.hf_auto.AutoAudioModel`.

Teacher-family layouts (see :mod:`sertest.models.arch.teacher`):

- audEERING's ``Wav2Vec2ForSpeechClassification``-style folders: ``config.json`` with
  ``id2label`` = arousal/dominance/valence, weights ``wav2vec2.*`` (or ``wavlm.*``) and
  ``classifier.dense`` / ``classifier.out_proj`` in ``model.safetensors`` or
  ``pytorch_model.bin``;
- sertest's teacher folders: the same plus a ``categorical.*`` head (anger, happiness,
  neutral, sadness) described in ``sertest_head.json``.

Processing: per-utterance z-normalisation of the waveform, ``(x − mean)/sqrt(var +
1e-7)`` (as audEERING's processor), encoder, mean over time of the last hidden state,
regression head → dimensions; categorical head → softmax probabilities.

Loading reads the local folder only; a hub id is downloaded only where the user allowed
it (see :mod:`sertest.models.hub`).  ``trust_remote_code`` is never enabled.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ..errors import ModelError, UsageError
from .base import CATEGORIES, DIMENSIONS, Model, ModelInfo, file_digest, path_size

# Idle OpenMP threads sleep rather than spin (only effective if torch is not imported yet):
# spinning threads made torch ~10x slower on an oversubscribed machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from .arch.teacher import HEAD_FILE  # noqa: E402
from .torch_adapter import TorchThreads  # noqa: E402


class HFModel(TorchThreads, Model):
    """A teacher-family model loaded from a local folder."""

    def __init__(self, folder: str, *, name: str | None = None, threads: int | None = None,
                 source: dict[str, Any] | None = None) -> None:
        from .arch.teacher import load_teacher

        self.path = os.path.abspath(folder)
        self.source = source
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
        self._call_threads()
        x = torch.from_numpy(np.ascontiguousarray(signals, dtype=np.float32)).to(self.device)
        try:
            with torch.inference_mode():
                dims, logits = self.model(x)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"model {self.name!r} failed on a batch of shape "
                             f"{tuple(signals.shape)}: {type(exc).__name__}: {exc}") from exc
        if self._reg_is_classes:
            return torch.softmax(dims, dim=1).double().cpu().numpy()
        cols = [dims[:, self._reg_index].double()]
        if self.classes and logits is not None:
            cols.append(torch.softmax(logits, dim=1).double())
        return torch.cat(cols, dim=1).cpu().numpy()

    def to_device(self, device: str) -> None:
        """Move the module to ``device`` (see :mod:`sertest.models.device`)."""
        from .device import move_module

        self.device = move_module(self.model, device, f"--model {self.name}")

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
            extra={"layout": "teacher" if os.path.isfile(os.path.join(self.path, HEAD_FILE))
                   else "audEERING", "model_type": cfg.model_type,
                   "hidden_size": cfg.hidden_size,
                   "layers": cfg.num_hidden_layers, "pooling": "mean",
                   "normalisation": "per-utterance z-score",
                   **({"hub": dict(self.source)} if self.source else {})})


def detect_layout(folder: str) -> str:
    """``teacher`` (sertest's or audEERING's layout, :class:`HFModel`) or ``auto``
    (a transformers audio-classification model)."""
    if os.path.isfile(os.path.join(folder, HEAD_FILE)):
        return "teacher"
    try:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as fh:
            raw = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{folder}/config.json: cannot read it: {exc}") from exc
    archs = [str(a) for a in (raw.get("architectures") or [])] if isinstance(raw, dict) else []
    if archs and all(a.endswith("ForSpeechClassification") for a in archs):
        return "teacher"   # audEERING's custom class, not part of transformers
    return "auto"


def load_hf(target: str, name: str | None = None, threads: int | None = None,
            labels: Any = None, allow_download: bool | None = None, **_: Any) -> Model:
    """Load a local Hugging Face folder or a hub id (see the module docstring).

    Args:
        target: folder, or ``org/name[@revision]`` when no such path exists.
        name: display name (default: the folder's or repository's name).
        threads: ``torch.set_num_threads``.
        labels: output names, used only where ``id2label`` holds generic ``LABEL_n`` names.
        allow_download: fetch a hub id missing from the cache (default:
            ``SERTEST_ALLOW_DOWNLOAD``); ``HF_HUB_OFFLINE`` always forbids it.
    """
    from .callable import parse_labels
    from .hub import parse_hub_id, resolve_hub_id

    source = None
    folder = target
    if not os.path.isdir(target):
        parsed = parse_hub_id(target)
        if parsed is None or os.path.exists(target):
            raise UsageError(
                f"--model {target!r}: no such folder. Pass a local folder (config.json + "
                "model.safetensors or pytorch_model.bin, e.g. one saved with save_pretrained) "
                "or a Hugging Face hub id org/name[@revision]")
        snapshot = resolve_hub_id(*parsed, allow_download=allow_download)
        folder, source = snapshot.folder, snapshot.to_dict()
        name = name or parsed[0].split("/")[1]
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise UsageError(f"--model {target!r}: {folder} has no config.json; pass a local "
                         "Hugging Face model folder (saved with save_pretrained)")
    name = name or os.path.basename(os.path.normpath(folder))
    if detect_layout(folder) == "teacher":
        return HFModel(folder, name=name, threads=threads, source=source)
    from .hf_auto import AutoAudioModel

    return AutoAudioModel(folder, name=name, labels=parse_labels(labels), threads=threads,
                          source=source)
