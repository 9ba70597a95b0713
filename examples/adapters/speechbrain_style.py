"""Recipe: a SpeechBrain-style emotion classifier (``classify_batch``) as a sertest model.

SpeechBrain's emotion models are used through an interface object, e.g.::

    from speechbrain.inference.interfaces import foreign_class
    classifier = foreign_class(
        source="speechbrain/emotion-recognition-wav2vec2-IEMOCAP",
        pymodule_file="custom_interface.py",
        classname="CustomEncoderWav2vec2Classifier")
    out_prob, score, index, text_lab = classifier.classify_batch(wavs, wav_lens)

``wavs``: float tensor (batch, samples) at 16 kHz; ``wav_lens``: each signal's length
relative to the longest (1.0 = full); ``out_prob``: (batch, classes) log-probabilities;
the class names (``neu``, ``ang``, ``hap``, ``sad`` for IEMOCAP) are in
``classifier.hparams.label_encoder.ind2lab``.

sertest calls a function ``predict(signals, sampling_rate)`` (``signals``: float32 numpy
array (batch, samples), at the ``sampling_rate`` the function declares, 16 kHz by default)
and wants named scores per class.  This file is that function.  To audit the real model,
replace the body of :func:`load_classifier` with the ``foreign_class`` call above; here it
builds a tiny random-initialised stand-in with the same interface, so the recipe runs
offline and in sertest's tests.

Run::

    sertest run --model sb=callable:examples/adapters/speechbrain_style.py:predict \
        --suite quick --out sb-audit
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import torch

from sertest.seeding import derive_rng

#: SpeechBrain's IEMOCAP class names -> the names sertest's data and checks use
TO_SERTEST = {"neu": "neutral", "ang": "anger", "hap": "happiness", "sad": "sadness"}


class TinyInterface(torch.nn.Module):
    """A stand-in with SpeechBrain's ``classify_batch`` interface (strided convolution,
    mean pooling over the valid frames, linear layer, log-softmax)."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = torch.nn.Conv1d(1, 8, kernel_size=400, stride=160)   # 25 ms / 10 ms
        self.out = torch.nn.Linear(8, 4)
        self.hparams = SimpleNamespace(label_encoder=SimpleNamespace(
            ind2lab={0: "neu", 1: "ang", 2: "hap", 3: "sad"}))
        rng = derive_rng(0, "examples/adapters/speechbrain_style")
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.from_numpy(0.1 * rng.standard_normal(tuple(p.shape))).float())

    def classify_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None):
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        h = torch.relu(self.frames(wavs[:, None, :]))                   # (batch, 8, frames)
        n = h.shape[-1]
        valid = torch.arange(n)[None, :] < (wav_lens[:, None] * n).ceil()
        pooled = (h * valid[:, None, :]).sum(-1) / valid.sum(-1, keepdim=True).clamp(min=1)
        out_prob = torch.log_softmax(self.out(pooled), dim=-1)
        score, index = out_prob.max(dim=-1)
        text_lab = [self.hparams.label_encoder.ind2lab[int(i)] for i in index]
        return out_prob, score, index, text_lab


_lock = threading.Lock()
_classifier: TinyInterface | None = None


def load_classifier() -> TinyInterface:
    """The classifier, loaded once (replace with ``foreign_class(...)`` for the real one)."""
    global _classifier
    with _lock:
        if _classifier is None:
            _classifier = TinyInterface().eval()
        return _classifier


def predict(signals: np.ndarray, sampling_rate: int) -> dict[str, np.ndarray]:
    """Class probabilities per signal, named as sertest names the classes."""
    if sampling_rate != 16000:
        raise ValueError(f"this classifier takes 16 kHz audio, got {sampling_rate} Hz")
    classifier = load_classifier()
    wavs = torch.from_numpy(np.ascontiguousarray(signals, dtype=np.float32))
    with torch.inference_mode():
        out_prob, _, _, _ = classifier.classify_batch(wavs, torch.ones(wavs.shape[0]))
    prob = out_prob.exp().numpy()
    names = classifier.hparams.label_encoder.ind2lab
    return {TO_SERTEST[names[i]]: prob[:, i] for i in range(prob.shape[1])}


#: the output names, so sertest need not probe the function to learn them
predict.labels = [TO_SERTEST[n] for n in ("neu", "ang", "hap", "sad")]
