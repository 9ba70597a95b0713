"""Recipe: a FunASR-style emotion model (``generate``, e.g. emotion2vec) as a sertest model.

FunASR's emotion2vec models are used through ``AutoModel``::

    from funasr import AutoModel
    model = AutoModel(model="iic/emotion2vec_plus_base")
    results = model.generate(signal, granularity="utterance", extract_embedding=False)

``signal``: a 1-D float array at 16 kHz (or a list of them, or file paths); ``results``:
one dict per input, ``{"key": ..., "labels": [...], "scores": [...]}``, the labels
bilingual like ``"生气/angry"``.

sertest calls ``predict(signals, sampling_rate)`` with a float32 array (batch, samples) and
wants named scores per class.  This file is that function: it calls ``generate`` on each
signal, reads the English part of each label, renames it to sertest's class names (anger,
happiness, neutral, sadness, ...) and returns one column per class.  To audit the real model,
replace the body of :func:`load_model` with the ``AutoModel`` call above; here it builds a
tiny random-initialised stand-in with the same interface, so the recipe runs offline.

All nine classes are returned: sertest scores the classes the data has (the other items are
left out, with a note) and counts a prediction of any other class as a miss.

Run::

    sertest run --model e2v=callable:examples/adapters/funasr_style.py:predict \
        --suite quick --out e2v-audit
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from sertest.seeding import derive_rng

#: emotion2vec's class names, in its output order
LABELS = ["生气/angry", "厌恶/disgusted", "恐惧/fearful", "开心/happy", "中立/neutral",
          "其他/other", "难过/sad", "吃惊/surprised", "<unk>"]
#: English label -> sertest's class name
TO_SERTEST = {"angry": "anger", "disgusted": "disgust", "fearful": "fear",
              "happy": "happiness", "neutral": "neutral", "other": "other", "sad": "sadness",
              "surprised": "surprise", "<unk>": "unknown"}


def sertest_name(label: str) -> str:
    """``"生气/angry"`` -> ``"anger"``."""
    return TO_SERTEST[label.rpartition("/")[2]]


class TinyEmotion2vec(torch.nn.Module):
    """A stand-in with FunASR's ``generate`` interface (log-mel-like frame energies,
    a linear layer over their mean and spread, softmax)."""

    def __init__(self) -> None:
        super().__init__()
        self.bands = torch.nn.Conv1d(1, 12, kernel_size=400, stride=320)   # 25 ms / 20 ms
        self.head = torch.nn.Linear(24, len(LABELS))
        rng = derive_rng(0, "examples/adapters/funasr_style")
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.from_numpy(0.1 * rng.standard_normal(tuple(p.shape))).float())

    def generate(self, inputs, granularity: str = "utterance",
                 extract_embedding: bool = False) -> list[dict]:
        if granularity != "utterance":
            raise ValueError("this stand-in supports granularity='utterance' only")
        if isinstance(inputs, np.ndarray) and inputs.ndim == 1:
            inputs = [inputs]
        results = []
        for i, signal in enumerate(inputs):
            x = torch.as_tensor(np.asarray(signal, dtype=np.float32))[None, None, :]
            e = torch.log1p(self.bands(x).pow(2))[0]                     # (12, frames)
            feats = torch.cat([e.mean(-1), e.std(-1, unbiased=False)])
            scores = torch.softmax(self.head(feats), dim=-1)
            results.append({"key": f"utt{i}", "labels": list(LABELS),
                            "scores": scores.tolist()})
        return results


_lock = threading.Lock()
_model: TinyEmotion2vec | None = None


def load_model() -> TinyEmotion2vec:
    """The model, loaded once (replace with ``AutoModel(model=...)`` for the real one)."""
    global _model
    with _lock:
        if _model is None:
            _model = TinyEmotion2vec().eval()
        return _model


def predict(signals: np.ndarray, sampling_rate: int) -> dict[str, np.ndarray]:
    """One score column per class, named as sertest names the classes."""
    if sampling_rate != 16000:
        raise ValueError(f"emotion2vec takes 16 kHz audio, got {sampling_rate} Hz")
    model = load_model()
    with torch.inference_mode():
        results = model.generate(list(signals), granularity="utterance",
                                 extract_embedding=False)
    columns = {name: np.zeros(len(signals)) for name in predict.labels}
    for row, result in enumerate(results):
        for label, score in zip(result["labels"], result["scores"]):
            columns[sertest_name(label)][row] = score
    return columns


#: the output names, so sertest need not probe the function to learn them
predict.labels = [sertest_name(label) for label in LABELS]
