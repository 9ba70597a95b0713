"""A small wav2vec2-family teacher in audEERING's layout, and its Hugging Face folder format.

Layout (as in audEERING's ``wav2vec2-large-robust-12-ft-emotion-msp-dim``):

- ``wav2vec2``: a ``transformers`` ``Wav2Vec2Model`` (or ``WavLMModel``, stored under
  ``wavlm``) — convolutional feature encoder (20 ms frames) + transformer layers;
- mean pooling of the last hidden state over time;
- ``classifier``: ``RegressionHead`` = dropout → ``dense`` Linear(H, H) → tanh → dropout →
  ``out_proj`` Linear(H, 3) → arousal, dominance, valence (ordered by ``id2label``);
- ``categorical`` (ours, optional): the same head shape with 4 outputs, the logits of
  anger, happiness, neutral, sadness (softmax gives probabilities).

The input is z-normalised per utterance, ``(x − mean)/sqrt(var + 1e-7)``, as audEERING's
``Wav2Vec2Processor`` does; :class:`TeacherModel` does this itself on a copy.

A folder holds ``config.json`` (a ``Wav2Vec2Config`` with ``architectures =
["Wav2Vec2ForSpeechClassification"]`` and ``id2label``), ``model.safetensors`` (keys
``wav2vec2.*``, ``classifier.*``, ``categorical.*``) and ``sertest_head.json``
(pooling, normalisation, head labels).  :func:`load_teacher` also reads audEERING-style
folders (no ``sertest_head.json``, ``pytorch_model.bin`` or ``model.safetensors``,
old ``weight_g``/``weight_v`` names of the positional convolution).
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn

from ...vocabulary import CATEGORIES, DIMENSIONS
from .frontend import normalise_waveform

HEAD_FILE = "sertest_head.json"


class RegressionHead(nn.Module):
    """dropout → Linear(H, H) → tanh → dropout → Linear(H, n) (audEERING's head)."""

    def __init__(self, hidden: int, n_outputs: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.dense(self.dropout(x)))
        return self.out_proj(self.dropout(x))


def _encoder_classes(model_type: str):
    if model_type == "wav2vec2":
        from transformers import Wav2Vec2Config, Wav2Vec2Model
        return Wav2Vec2Config, Wav2Vec2Model, "wav2vec2"
    if model_type == "wavlm":
        from transformers import WavLMConfig, WavLMModel
        return WavLMConfig, WavLMModel, "wavlm"
    raise ValueError(f"unsupported encoder model_type {model_type!r} (wav2vec2 or wavlm)")


class TeacherModel(nn.Module):
    """Encoder + mean pooling + regression head (+ optional categorical head).

    ``forward(signal)`` takes the raw 16 kHz waveform ``(B, T)`` and returns
    ``(dims, class_logits)``: ``(B, len(dimensions))`` in the head's label order and
    ``(B, len(classes))`` logits (``None`` without a categorical head).

    Args:
        config: a ``Wav2Vec2Config`` or ``WavLMConfig``.
        dimensions: labels of the regression outputs, in output order.
        classes: labels of the categorical head (empty for none).
        normalise: z-normalise the waveform first.
    """

    def __init__(self, config: Any, dimensions: tuple[str, ...] = DIMENSIONS,
                 classes: tuple[str, ...] = CATEGORIES, normalise: bool = True) -> None:
        super().__init__()
        _, encoder_cls, prefix = _encoder_classes(config.model_type)
        self.config = config
        self.prefix = prefix
        self.dimensions = tuple(dimensions)
        self.classes = tuple(classes)
        self.normalise = normalise
        setattr(self, prefix, encoder_cls(config))
        dropout = float(getattr(config, "final_dropout", 0.1))
        self.classifier = RegressionHead(config.hidden_size, len(self.dimensions), dropout)
        self.categorical = (RegressionHead(config.hidden_size, len(self.classes), dropout)
                            if self.classes else None)

    @property
    def encoder(self) -> nn.Module:
        return getattr(self, self.prefix)

    def pooled(self, signal: torch.Tensor) -> torch.Tensor:
        """Mean over time of the last hidden state, ``(B, H)``."""
        x = normalise_waveform(signal) if self.normalise else signal
        return self.encoder(x).last_hidden_state.mean(dim=1)

    def forward(self, signal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.pooled(signal)
        logits = self.categorical(h) if self.categorical is not None else None
        return self.classifier(h), logits


def teacher_config(hidden: int = 192, layers: int = 3, heads: int = 4,
                   intermediate: int = 384,
                   conv_dim: tuple[int, ...] = (32, 64, 64, 128, 128, 128, 128),
                   dropout: float = 0.1) -> Any:
    """A small ``Wav2Vec2Config`` (trained from scratch; nothing is downloaded).

    The conv feature encoder keeps wav2vec2's kernels and strides (320 samples = 20 ms per
    frame at 16 kHz) with fewer channels; layer-norm feature extractor and stable layer
    norm as in wav2vec2-large-robust; no SpecAugment masking.
    """
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=intermediate, conv_dim=list(conv_dim),
        conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2],
        feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
        num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=8,
        hidden_dropout=dropout, attention_dropout=dropout, activation_dropout=0.0,
        feat_proj_dropout=dropout, final_dropout=dropout, layerdrop=0.0,
        apply_spec_augment=False, mask_time_prob=0.0, mask_feature_prob=0.0,
        vocab_size=4, num_labels=len(DIMENSIONS),
        id2label={i: d for i, d in enumerate(DIMENSIONS)},
        label2id={d: i for i, d in enumerate(DIMENSIONS)},
    )


def save_teacher(model: TeacherModel, folder: str, extra: dict[str, Any] | None = None) -> None:
    """Write ``config.json``, ``model.safetensors`` and ``sertest_head.json`` to ``folder``."""
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    config = model.config
    config.architectures = [{"wav2vec2": "Wav2Vec2", "wavlm": "WavLM"}[model.prefix]
                            + "ForSpeechClassification"]
    config.num_labels = len(model.dimensions)
    config.id2label = {i: d for i, d in enumerate(model.dimensions)}
    config.label2id = {d: i for i, d in enumerate(model.dimensions)}
    config.save_pretrained(folder)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    weights = os.path.join(folder, "model.safetensors")
    save_file(state, weights, metadata={"format": "pt"})
    os.chmod(weights, 0o644)           # save_file creates the file readable by its owner only
    head = {
        "format": "sertest-teacher/1",
        "encoder": model.prefix,
        "pooling": "mean",
        "normalisation": "per-utterance z-score, (x - mean) / sqrt(var + 1e-7)",
        "sampling_rate": 16000,
        "heads": {
            "classifier": {"kind": "regression", "labels": list(model.dimensions)},
            **({"categorical": {"kind": "categorical", "activation": "softmax",
                                "labels": list(model.classes)}} if model.classes else {}),
        },
    }
    if extra:
        head.update(extra)
    with open(os.path.join(folder, HEAD_FILE), "w", encoding="utf-8") as fh:
        json.dump(head, fh, indent=2)
        fh.write("\n")


def read_state_dict(folder: str) -> dict[str, torch.Tensor]:
    """Weights of a folder: ``model.safetensors`` or ``pytorch_model.bin`` (weights_only)."""
    st = os.path.join(folder, "model.safetensors")
    if os.path.isfile(st):
        from safetensors.torch import load_file
        return load_file(st)
    binf = os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(binf):
        return torch.load(binf, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{folder}: no model.safetensors or pytorch_model.bin")


def _rename_legacy(key: str) -> str:
    """Old weight-norm names of the positional conv → the parametrisation names."""
    if key.endswith("pos_conv_embed.conv.weight_g"):
        return key[: -len("weight_g")] + "parametrizations.weight.original0"
    if key.endswith("pos_conv_embed.conv.weight_v"):
        return key[: -len("weight_v")] + "parametrizations.weight.original1"
    return key


def load_teacher(folder: str) -> TeacherModel:
    """Build a :class:`TeacherModel` from a local folder (ours or audEERING's layout).

    Raises:
        FileNotFoundError: no config.json or weights.
        ValueError: the weights do not fit the config (missing or unexpected keys).
    """
    cfg_path = os.path.join(folder, "config.json")
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f"{folder}: no config.json")
    with open(cfg_path, encoding="utf-8") as fh:
        raw = json.load(fh)
    model_type = raw.get("model_type", "wav2vec2")
    config_cls, _, prefix = _encoder_classes(model_type)
    config = config_cls.from_dict(raw)
    head: dict[str, Any] = {}
    head_path = os.path.join(folder, HEAD_FILE)
    if os.path.isfile(head_path):
        with open(head_path, encoding="utf-8") as fh:
            head = json.load(fh)
    state = {_rename_legacy(k): v for k, v in read_state_dict(folder).items()}
    heads = head.get("heads", {})
    if "classifier" in heads:
        dims = tuple(heads["classifier"]["labels"])
    else:
        id2label = getattr(config, "id2label", None) or {}
        dims = tuple(str(id2label[k]) for k in sorted(id2label, key=int)) if id2label else DIMENSIONS
    if "categorical" in heads:
        classes = tuple(heads["categorical"]["labels"])
    elif "categorical.out_proj.weight" in state:
        n = state["categorical.out_proj.weight"].shape[0]
        classes = CATEGORIES if n == len(CATEGORIES) else tuple(f"class-{i}" for i in range(n))
    else:
        classes = ()
    if not any(k.startswith(prefix + ".") for k in state):
        # A bare encoder checkpoint (keys without prefix) plus head keys.
        state = {(k if k.startswith(("classifier.", "categorical.")) else f"{prefix}.{k}"): v
                 for k, v in state.items()}
    model = TeacherModel(config, dimensions=dims, classes=classes)
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.endswith("masked_spec_embed")}
    missing = [k for k in own if k not in state and not k.endswith("masked_spec_embed")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(
            f"{folder}: weights do not fit config.json; missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}")
    model.load_state_dict(state, strict=False)
    model.eval()
    return model
