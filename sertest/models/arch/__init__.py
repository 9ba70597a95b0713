"""Reference architectures (PyTorch) of the example SER models.

All take a raw 16 kHz mono waveform batch ``(batch, samples)`` and return ``(batch, 3)``
(arousal, dominance, valence), so their ONNX exports need no feature extraction outside
the graph:

- :mod:`.frontend`: log-mel front end built from fixed convolutions (exportable to ONNX).
- :mod:`.wav2small`: Wav2Small (VGG7 on a 4 ms log-mel, attention pooling, Gram features).
- :mod:`.mobilenet`: MobileNet-V4-conv-small and MobileNet-V3-small on a 25 ms log-mel.
- :mod:`.teacher`: a small wav2vec2-family teacher (Hugging Face ``transformers``), with an
  A/D/V regression head and a 4-class emotion head.

Importing this package imports torch; the core sertest install does not need it.
"""

from __future__ import annotations

import json
from typing import Sequence

import torch

from .frontend import LogMel, STFTPower, mel_filterbank, normalise_waveform
from .mobilenet import MobileNetV3Small, MobileNetV4ConvSmall, build_mobilenet
from .wav2small import Wav2Small, count_parameters, wav2small_card, wav2small_paper

DIMENSION_LABELS = ("arousal", "dominance", "valence")


def export_onnx(model: torch.nn.Module, path: str, labels: Sequence[str] = DIMENSION_LABELS,
                output: str = "logits", opset: int = 17,
                metadata: dict[str, str] | None = None) -> None:
    """Export a waveform model to ONNX for :mod:`sertest.models.onnx`.

    The graph has one input ``signal`` (float32, ``(batch, time)``, both axes dynamic, 16 kHz
    samples) and one output ``output`` ``(batch, len(labels))``; the metadata property
    ``labels`` holds ``{"<output>": [labels...]}`` as JSON.  Uses the TorchScript-based
    exporter (``dynamo=False``), which honours ``dynamic_axes`` and folds BatchNorm into the
    preceding convolutions in eval mode.
    """
    import onnx

    model = model.eval()
    gen = torch.Generator().manual_seed(0)
    dummy = torch.randn(2, 16000, generator=gen)
    with torch.no_grad():
        torch.onnx.export(model, (dummy,), path, input_names=["signal"], output_names=[output],
                          dynamic_axes={"signal": {0: "batch", 1: "time"},
                                        output: {0: "batch"}},
                          opset_version=opset, dynamo=False, do_constant_folding=True)
    proto = onnx.load(path)
    props = {"labels": json.dumps({output: list(labels)}), "sampling_rate": "16000"}
    props.update(metadata or {})
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, path)


__all__ = [
    "DIMENSION_LABELS", "LogMel", "MobileNetV3Small", "MobileNetV4ConvSmall", "STFTPower",
    "Wav2Small", "build_mobilenet", "count_parameters", "export_onnx", "mel_filterbank",
    "normalise_waveform", "wav2small_card", "wav2small_paper",
]
