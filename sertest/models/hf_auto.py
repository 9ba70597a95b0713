"""Any ``transformers`` audio-classification model saved with ``save_pretrained``.

A folder with ``config.json``, weights (``model.safetensors``, ``pytorch_model.bin`` or
their sharded forms) and ``preprocessor_config.json`` loads through ``AutoConfig``,
``AutoModelForAudioClassification`` and ``AutoFeatureExtractor``: wav2vec2, HuBERT,
WavLM, data2vec-audio, UniSpeech(-SAT), SEW(-D), wav2vec2-conformer/-BERT (waveform in),
Whisper (``WhisperForAudioClassification``, log-mel in) and the Audio Spectrogram
Transformer (AST, filter-bank in).

Input: the feature extractor does what the model was trained with — its
``sampling_rate`` (Hz; sertest resamples to it), ``do_normalize`` (per-utterance
z-score of the waveform), filter banks or log-mel spectrograms, padding or truncation to
its fixed length (Whisper: ``chunk_length`` s, 30 s by default; AST: ``max_length``
frames of 10 ms).  The model's own pooling and head give one row of logits per signal.

Outputs, from ``config.json``:

- ``problem_type: regression`` (or no problem type and every ``id2label`` name one of
  arousal/dominance/valence): the logits are the dimensions, as they are (no activation).
  Names are matched case-insensitively; any other name is refused (rename it in
  ``id2label``).
- otherwise the ``id2label`` names are emotion classes and the outputs their softmax
  probabilities (``multi_label_classification``: per-class sigmoid).  Generic names
  (``LABEL_0``, ...) must be named with ``--labels``.

Code shipped in a model folder (``auto_map`` in ``config.json``) is never run.  Nothing is
downloaded here: every ``from_pretrained`` call reads the local folder only.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np

from ..errors import ModelError, UsageError
from .base import DIMENSIONS, Model, ModelInfo, file_digest
from .torch_adapter import TorchThreads  # imports torch (as hf.py, the only importer, does)

#: bump when the processing around the transformers model changes (enters the fingerprint)
VERSION = 1
#: configs the feature extractor may hold that decide what the model hears
_FE_KEYS = ("feature_extractor_type", "sampling_rate", "do_normalize", "feature_size",
            "padding_value", "return_attention_mask", "chunk_length", "n_fft", "hop_length",
            "num_mel_bins", "max_length", "mean", "std")
_GENERIC_LABEL = re.compile(r"^LABEL_\d+$")
#: model types whose outputs under masked padding equal one-at-a-time outputs (measured:
#: <= 1e-6 with outputs spread over 0.3; data2vec-audio and wav2vec2-conformer leak padding
#: into their outputs, 1e-2 and 4e-2, so they are batched at equal lengths only)
MASKED_PADDING = ("wav2vec2", "hubert", "wavlm", "unispeech-sat", "sew")
CALLABLE_HINT = ("for other models write a callable: --model callable:path/to/file.py:function "
                 "with function(signals, sampling_rate) returning arousal/dominance/valence "
                 "columns or class scores (see README, 'Models')")


def supported_model_types() -> list[str]:
    """``model_type`` values ``AutoModelForAudioClassification`` can build."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES)

    return sorted(MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES)


def weight_files(folder: str) -> list[str]:
    """The weight files ``from_pretrained`` reads, in its order of preference: sharded or
    single safetensors, then sharded or single ``pytorch_model.bin``.

    Raises:
        ModelError: none of them is there.
    """
    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if os.path.isfile(os.path.join(folder, index)):
            with open(os.path.join(folder, index), encoding="utf-8") as fh:
                shards = sorted(set(json.load(fh).get("weight_map", {}).values()))
            return [os.path.join(folder, index)] + [os.path.join(folder, s) for s in shards]
        if os.path.isfile(os.path.join(folder, single)):
            return [os.path.join(folder, single)]
    raise ModelError(f"{folder}: no weights (model.safetensors, pytorch_model.bin or a sharded "
                     "index); save the model with model.save_pretrained(folder)")


def _check_config(folder: str, raw: dict[str, Any]) -> None:
    """Refuse remote code, frame-level heads and unknown model types, saying what works."""
    if raw.get("auto_map"):
        raise UsageError(
            f"{folder}: config.json names custom code (auto_map {sorted(raw['auto_map'])}); "
            "sertest never runs code shipped in a model folder (trust_remote_code stays off). "
            "If you trust it, load it in your own code with trust_remote_code=True and audit "
            "that: --model callable:path/to/file.py:function (see README, 'Models')")
    archs = [str(a) for a in raw.get("architectures") or []]
    frame = [a for a in archs if a.endswith(("ForAudioFrameClassification", "ForXVector",
                                             "ForCTC", "ForPreTraining"))]
    if frame:
        raise UsageError(
            f"{folder}: architecture {frame[0]} gives no utterance-level emotion output; "
            "sertest loads AutoModelForAudioClassification models (one row of logits per "
            f"utterance); {CALLABLE_HINT}")
    model_type = raw.get("model_type")
    types = supported_model_types()
    if model_type not in types:
        raise UsageError(
            f"{folder}: unsupported model_type {model_type!r}: sertest loads "
            f"AutoModelForAudioClassification models ({', '.join(types)}), its own teacher "
            "folders (sertest_head.json) and audEERING's Wav2Vec2ForSpeechClassification "
            f"layout; {CALLABLE_HINT}")


def plan_outputs(config: Any, labels: list[str] | None, where: str
                 ) -> tuple[str, list[int], tuple[str, ...], tuple[str, ...]]:
    """Read what the logits mean from ``config`` (see the module docstring).

    Args:
        config: a transformers config with ``id2label`` and ``problem_type``.
        labels: names for the outputs, used only where ``id2label`` holds generic names.
        where: prefix of error messages.

    Returns:
        (kind, column indices, dimensions, classes); ``kind`` is ``regression``,
        ``single_label`` or ``multi_label``; outputs are ``logits[:, indices]``.
    """
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    n = int(getattr(config, "num_labels", len(id2label)) or len(id2label))
    names = [id2label.get(i, f"LABEL_{i}") for i in range(n)]
    if all(_GENERIC_LABEL.match(x) for x in names):
        if not labels:
            raise UsageError(
                f"{where}: config.json id2label has only generic names {names}; name the "
                f"{n} outputs in order with --labels (e.g. --labels "
                f"'{','.join(['anger', 'happiness', 'neutral', 'sadness'][:n])}'), or set "
                "config.id2label and save the model again")
        if len(labels) != n:
            raise UsageError(f"{where}: --labels gives {len(labels)} names for {n} outputs")
        names = list(labels)
    problem = getattr(config, "problem_type", None)
    lower = [x.strip().lower() for x in names]
    if problem == "regression" or (problem is None and set(lower) <= set(DIMENSIONS)):
        unknown = [x for x, lo in zip(names, lower) if lo not in DIMENSIONS]
        if unknown:
            raise UsageError(
                f"{where}: regression outputs {unknown} are not arousal, dominance or valence "
                "(matched case-insensitively); rename them in config.json id2label, or wrap "
                f"the model: {CALLABLE_HINT}")
        if len(set(lower)) != len(lower):
            raise UsageError(f"{where}: id2label names a dimension twice: {names}")
        dims = tuple(d for d in DIMENSIONS if d in lower)
        return "regression", [lower.index(d) for d in dims], dims, ()
    if len(set(names)) != len(names):
        raise UsageError(f"{where}: id2label names a class twice: {names}")
    if n < 2:
        raise UsageError(f"{where}: a classification head with {n} output cannot give emotion "
                         "classes; set problem_type 'regression' for a dimension")
    kind = "multi_label" if problem == "multi_label_classification" else "single_label"
    return kind, list(range(n)), (), tuple(names)


class _Quiet:
    """Silence transformers' progress bars and warnings while loading (restored after)."""

    def __enter__(self) -> None:
        from transformers.utils import logging as hf_logging

        self._log = hf_logging
        self._level = hf_logging.get_verbosity()
        self._bars = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()

    def __exit__(self, *exc: Any) -> None:
        self._log.set_verbosity(self._level)
        if self._bars:
            self._log.enable_progress_bar()


class AutoAudioModel(TorchThreads, Model):
    """A ``transformers`` audio-classification model behind the :class:`Model` protocol.

    Args:
        folder: a local folder saved with ``save_pretrained`` (model and feature extractor).
        name: display name (default: the folder's name).
        labels: output names where ``id2label`` is generic.
        threads: ``torch.set_num_threads``.
        source: where the folder came from (a hub snapshot's repo, revision and commit),
            recorded in :meth:`info`.
    """

    def __init__(self, folder: str, *, name: str | None = None, labels: list[str] | None = None,
                 threads: int | None = None, source: dict[str, Any] | None = None) -> None:
        import torch
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

        self.path = os.path.abspath(folder)
        self.name = name or os.path.basename(os.path.normpath(folder))
        self.source = source
        where = f"--model {self.name}"
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as fh:
            try:
                raw = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ModelError(f"{folder}/config.json: not valid JSON: {exc}") from exc
        _check_config(folder, raw)
        self._weights = weight_files(folder)
        fe_path = os.path.join(folder, "preprocessor_config.json")
        if not os.path.isfile(fe_path):
            raise ModelError(
                f"{folder}: no preprocessor_config.json, so sertest cannot tell the model's "
                "sampling rate, normalisation or spectrogram settings; save the feature "
                "extractor the model was trained with into the folder "
                "(feature_extractor.save_pretrained(folder), e.g. "
                "Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True))")
        self._files = [os.path.join(folder, "config.json"), fe_path] + self._weights
        self._threads = int(threads) if threads else None
        if self._threads:
            torch.set_num_threads(self._threads)
        try:
            with _Quiet():
                config = AutoConfig.from_pretrained(folder, local_files_only=True,
                                                    trust_remote_code=False)
                model, loading = AutoModelForAudioClassification.from_pretrained(
                    folder, local_files_only=True, trust_remote_code=False,
                    output_loading_info=True)
                self.feature_extractor = AutoFeatureExtractor.from_pretrained(
                    folder, local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise ModelError(f"cannot load Hugging Face folder {folder}: "
                             f"{type(exc).__name__}: {exc}") from exc
        missing = sorted(k for k in loading.get("missing_keys", ())
                         if not k.endswith("masked_spec_embed"))
        mismatched = sorted(str(k) for k in loading.get("mismatched_keys", ()))
        if missing or mismatched:
            raise ModelError(
                f"{folder}: the weights do not fill the {type(model).__name__} that "
                f"config.json describes (missing {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''}, shape mismatch {mismatched[:3]}); "
                "an encoder saved without its classification head would be audited with a "
                "random head. Save the fine-tuned model with save_pretrained, or wrap it: "
                f"{CALLABLE_HINT}")
        self.model = model.float().eval()     # fp16/bf16 checkpoints run in fp32 on CPU
        self.config = config
        self._kind, self._index, self.dimensions, self.classes = plan_outputs(
            config, labels, where)
        self.sampling_rate = int(getattr(self.feature_extractor, "sampling_rate", 0) or 16000)
        import inspect

        self._accepts = set(inspect.signature(self.model.forward).parameters)

    def predict_batch(self, signals: np.ndarray) -> np.ndarray:
        import torch

        self._call_threads()
        try:
            inputs = self.feature_extractor(
                [np.asarray(s, dtype=np.float32) for s in signals],
                sampling_rate=self.sampling_rate, return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items() if k in self._accepts}
            with torch.inference_mode():
                logits = self.model(**inputs).logits
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"model {self.name!r} failed on a batch of shape "
                             f"{tuple(signals.shape)}: {type(exc).__name__}: {exc}") from exc
        return self._columns(logits)

    def _columns(self, logits) -> np.ndarray:
        """Logits ``(batch, labels)`` (any device) -> float64 outputs on the CPU."""
        import torch

        logits = logits.double()
        if self._kind == "single_label":
            logits = torch.softmax(logits, dim=1)
        elif self._kind == "multi_label":
            logits = torch.sigmoid(logits)
        return logits[:, self._index].cpu().numpy()

    @property
    def pads_with_mask(self) -> bool:
        """Signals of different lengths may share a call: the model is of a type whose
        masked padding was shown to leave the outputs unchanged (:data:`MASKED_PADDING`,
        tests/test_devices.py), takes an ``attention_mask``, its feature extractor returns
        one (and normalises each signal over its own samples), and no group norm in the
        convolutional feature encoder spreads the padding over time (wav2vec2-base-style
        ``feat_extract_norm: group`` models were trained without masks).  Other models are
        batched at equal lengths only."""
        return (self.config.model_type in MASKED_PADDING
                and "attention_mask" in self._accepts
                and bool(getattr(self.feature_extractor, "return_attention_mask", False))
                and getattr(self.config, "feat_extract_norm", "layer") != "group")

    def predict_padded(self, signals: list[np.ndarray]) -> np.ndarray:
        """Signals of different lengths in one call: the feature extractor pads them to
        the longest with an attention mask (see :attr:`pads_with_mask`)."""
        import torch

        if not self.pads_with_mask:
            return super().predict_padded(signals)
        self._call_threads()
        try:
            inputs = self.feature_extractor(
                [np.asarray(s, dtype=np.float32) for s in signals],
                sampling_rate=self.sampling_rate, padding="longest",
                return_attention_mask=True, return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items() if k in self._accepts}
            with torch.inference_mode():
                logits = self.model(**inputs).logits
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"model {self.name!r} failed on a padded batch of "
                             f"{len(signals)} signals of {min(map(len, signals))}-"
                             f"{max(map(len, signals))} samples: {type(exc).__name__}: {exc}"
                             ) from exc
        return self._checked(self._columns(logits), len(signals))

    def to_device(self, device: str) -> None:
        """Move the model to ``device`` (see :mod:`sertest.models.device`)."""
        from .device import move_module

        self.device = move_module(self.model, device, f"--model {self.name}")

    def fingerprint(self) -> str:
        """Content of every file loaded (config, feature extractor, weights) and the output
        plan: any change to them is a new model for the prediction cache."""
        if not hasattr(self, "_fingerprint"):
            digests = ",".join(f"{os.path.basename(f)}={file_digest(f)[:32]}"
                               for f in self._files)
            self._fingerprint = (f"hf-auto/{VERSION}:{digests}:{self._kind}:"
                                 f"{','.join(self.outputs)}")
        return self._fingerprint

    def info(self) -> ModelInfo:
        fe = self.feature_extractor.to_dict()
        cfg = self.config
        extra: dict[str, Any] = {
            "layout": "transformers AutoModelForAudioClassification",
            "architecture": type(self.model).__name__, "model_type": cfg.model_type,
            "head": self._kind,
            "feature_extractor": {k: fe[k] for k in _FE_KEYS if k in fe},
            "files": [os.path.relpath(f, self.path) for f in self._files],
        }
        if self.source:
            extra["hub"] = dict(self.source)
        return ModelInfo(
            name=self.name, format="hf", sampling_rate=self.sampling_rate,
            dimensions=self.dimensions, classes=self.classes,
            parameters=sum(int(p.numel()) for p in self.model.parameters()),
            file_size=sum(os.path.getsize(f) for f in self._files), path=self.path,
            extra=extra)
