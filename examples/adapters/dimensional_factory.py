"""Recipe: your own PyTorch arousal/dominance/valence model, loaded with ``torch:``.

When the model is an ``nn.Module`` of your own (trained elsewhere, weights in a state dict),
no wrapper function is needed: give sertest a factory that builds the module and the
weights file, and it calls the module on a float32 tensor (batch, samples) at 16 kHz::

    sertest run --model mine=torch:examples/adapters/dimensional_factory.py:build=weights.pt

The module returns a dict of tensors (batch,) named ``arousal``, ``dominance``,
``valence`` on sertest's [0, 1] scale (a sigmoid here); a dict's keys name the outputs.  The
weights are read with ``torch.load(..., weights_only=True)`` (no pickled code).
:func:`build` makes a tiny module (framing convolution, mean pooling, linear layer) so the
recipe runs offline; save its random weights with::

    torch.save(build().state_dict(), "weights.pt")
"""

from __future__ import annotations

import torch


class TinyDimensional(torch.nn.Module):
    """Waveform -> frame features -> mean over time -> arousal, dominance, valence."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = torch.nn.Conv1d(1, 16, kernel_size=400, stride=320)   # 25 ms / 20 ms
        self.out = torch.nn.Linear(16, 3)

    def forward(self, signals: torch.Tensor) -> dict[str, torch.Tensor]:
        x = signals / signals.std(dim=-1, keepdim=True).clamp(min=1e-5)   # z-normalise level
        h = torch.relu(self.frames(x[:, None, :])).mean(-1)
        a, d, v = torch.sigmoid(self.out(h)).unbind(-1)
        return {"arousal": a, "dominance": d, "valence": v}


def build() -> TinyDimensional:
    """The factory sertest calls (no arguments); the state dict is loaded afterwards."""
    return TinyDimensional()
