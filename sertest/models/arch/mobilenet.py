"""MobileNet-V4-conv-small and MobileNet-V3-small students on a log-mel "image".

Written from the block tables of the papers (no third-party code):

- Howard et al. 2019, "Searching for MobileNetV3", Table 2 (MobileNetV3-Small):
  stem 3×3/2 16 h-swish; eleven inverted-residual ``bneck`` blocks with optional
  squeeze-and-excite (SE, squeeze to ¼ of the expanded width, hard-sigmoid gate); 1×1
  conv 576 + BN + h-swish; global average pool; 1×1 conv 1024 (no BN) + h-swish; linear.
- Qin et al. 2024, "MobileNetV4 — Universal Models for the Mobile Ecosystem",
  MNv4-Conv-S table: stem 3×3/2 32; two FusedIB blocks; Universal Inverted Bottleneck
  (UIB) blocks of the ExtraDW / IB / ConvNext kinds; 1×1 conv 960; global pool; 1×1 conv
  1280; linear.  All activations ReLU.

Both take a single-channel input (``in_chans=1``): the log-mel front end
(:class:`~sertest.models.arch.frontend.LogMel`: 25 ms Hann window, 10 ms hop, 64 mels,
centred frames, on the z-normalised waveform) is part of the model, so the whole network
maps a raw 16 kHz waveform ``(B, T)`` to ``(B, n_outputs)``.  Global pooling makes any
length of at least one frame work.

``width`` scales every channel count (rounded to a multiple of 8), for tiny test models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .frontend import LogMel

LABELS = ("arousal", "dominance", "valence")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (never below ``divisor`` and
    never more than 10 % below ``value``)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_bn(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1,
            act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    """``Conv2d k×k`` (same padding, no bias) → BatchNorm → optional activation."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups,
                                         bias=False), nn.BatchNorm2d(c_out)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- V3-small

@dataclass(frozen=True)
class BneckSpec:
    """One MobileNetV3 ``bneck`` row: kernel, expanded width, output width, SE, act, stride."""

    kernel: int
    expand: int
    out: int
    se: bool
    hswish: bool
    stride: int


#: Howard et al. 2019, Table 2 (MobileNetV3-Small), the eleven bneck rows.
V3_SMALL_BLOCKS: tuple[BneckSpec, ...] = (
    BneckSpec(3, 16, 16, True, False, 2),
    BneckSpec(3, 72, 24, False, False, 2),
    BneckSpec(3, 88, 24, False, False, 1),
    BneckSpec(5, 96, 40, True, True, 2),
    BneckSpec(5, 240, 40, True, True, 1),
    BneckSpec(5, 240, 40, True, True, 1),
    BneckSpec(5, 120, 48, True, True, 1),
    BneckSpec(5, 144, 48, True, True, 1),
    BneckSpec(5, 288, 96, True, True, 2),
    BneckSpec(5, 576, 96, True, True, 1),
    BneckSpec(5, 576, 96, True, True, 1),
)


class SqueezeExcite(nn.Module):
    """Channel gate: global mean → 1×1 conv (¼ width) → ReLU → 1×1 conv → hard-sigmoid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = make_divisible(channels / 4)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        s = self.expand(torch.relu(self.reduce(s)))
        return x * nn.functional.hardsigmoid(s)


class Bneck(nn.Module):
    """MobileNetV3 inverted residual: [1×1 expand] → k×k depthwise → [SE] → 1×1 project."""

    def __init__(self, c_in: int, spec: BneckSpec, width: float) -> None:
        super().__init__()
        act = nn.Hardswish if spec.hswish else nn.ReLU
        expand = make_divisible(spec.expand * width)
        out = make_divisible(spec.out * width)
        layers: list[nn.Module] = []
        if expand != c_in:
            layers.append(conv_bn(c_in, expand, 1, act=act))
        layers.append(conv_bn(expand, expand, spec.kernel, spec.stride, groups=expand, act=act))
        if spec.se:
            layers.append(SqueezeExcite(expand))
        layers.append(conv_bn(expand, out, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = spec.stride == 1 and c_in == out
        self.out_channels = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV3Small(nn.Module):
    """MobileNetV3-Small on a log-mel image; waveform ``(B, T)`` → ``(B, n_outputs)``.

    The paper's table marks SE on the final 1×1 conv of V3-Small; like the authors'
    released implementation, no SE is used there.
    """

    labels = LABELS

    def __init__(self, n_outputs: int = 3, width: float = 1.0, n_mels: int = 64,
                 sampling_rate: int = 16000, dropout: float = 0.2) -> None:
        super().__init__()
        self.config = dict(arch="mobilenetv3_small", n_outputs=n_outputs, width=width,
                           n_mels=n_mels, sampling_rate=sampling_rate)
        self.frontend = LogMel(sampling_rate, n_fft=400, hop=160, n_mels=n_mels,
                               normalise=True, pad=True)
        self.input_norm = nn.BatchNorm2d(1)
        stem = make_divisible(16 * width)
        blocks: list[nn.Module] = [conv_bn(1, stem, 3, 2, act=nn.Hardswish)]
        c = stem
        for spec in V3_SMALL_BLOCKS:
            block = Bneck(c, spec, width)
            blocks.append(block)
            c = block.out_channels
        last = make_divisible(576 * width)
        blocks.append(conv_bn(c, last, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*blocks)
        head = make_divisible(1024 * width)
        self.head = nn.Sequential(nn.Linear(last, head), nn.Hardswish(), nn.Dropout(dropout))
        self.classifier = nn.Linear(head, n_outputs)
        init_weights(self)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        x = self.features(self.input_norm(self.frontend(signal)))
        return self.classifier(self.head(x.mean(dim=(2, 3))))


# --------------------------------------------------------------------------- V4-conv-small

@dataclass(frozen=True)
class UIBSpec:
    """One UIB row: start-DW kernel (0 = none), middle-DW kernel (0 = none), expanded
    width, output width, stride.  ExtraDW = both, IB = middle only, ConvNext = start only."""

    start_k: int
    mid_k: int
    expand: int
    out: int
    stride: int


#: Qin et al. 2024, MNv4-Conv-S: FusedIB rows as (kernel, expanded, out, stride).
V4_SMALL_FUSED: tuple[tuple[int, int, int, int], ...] = ((3, 32, 32, 2), (3, 96, 64, 2))
#: ... and the UIB rows.
V4_SMALL_UIB: tuple[UIBSpec, ...] = (
    UIBSpec(5, 5, 192, 96, 2),      # ExtraDW
    UIBSpec(0, 3, 192, 96, 1),      # IB ×4
    UIBSpec(0, 3, 192, 96, 1),
    UIBSpec(0, 3, 192, 96, 1),
    UIBSpec(0, 3, 192, 96, 1),
    UIBSpec(3, 0, 384, 96, 1),      # ConvNext
    UIBSpec(3, 3, 576, 128, 2),     # ExtraDW
    UIBSpec(5, 5, 512, 128, 1),     # ExtraDW
    UIBSpec(0, 5, 512, 128, 1),     # IB
    UIBSpec(0, 5, 384, 128, 1),     # IB
    UIBSpec(0, 3, 512, 128, 1),     # IB ×2
    UIBSpec(0, 3, 512, 128, 1),
)


class FusedIB(nn.Module):
    """Fused inverted bottleneck: k×k conv (expand, stride) + BN + ReLU → 1×1 project + BN."""

    def __init__(self, c_in: int, kernel: int, expand: int, out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(c_in, expand, kernel, stride),
                                  conv_bn(expand, out, 1, act=None))
        self.residual = stride == 1 and c_in == out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class UIB(nn.Module):
    """Universal inverted bottleneck: [start DW + BN] → 1×1 expand + BN + ReLU →
    [middle DW + BN + ReLU] → 1×1 project + BN; residual when shapes allow.  The stride
    sits on the middle DW if there is one, else on the start DW."""

    def __init__(self, c_in: int, spec: UIBSpec, width: float) -> None:
        super().__init__()
        expand = make_divisible(spec.expand * width)
        out = make_divisible(spec.out * width)
        layers: list[nn.Module] = []
        if spec.start_k:
            stride = 1 if spec.mid_k else spec.stride
            layers.append(conv_bn(c_in, c_in, spec.start_k, stride, groups=c_in, act=None))
        layers.append(conv_bn(c_in, expand, 1))
        if spec.mid_k:
            layers.append(conv_bn(expand, expand, spec.mid_k, spec.stride, groups=expand))
        layers.append(conv_bn(expand, out, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = spec.stride == 1 and c_in == out
        self.out_channels = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV4ConvSmall(nn.Module):
    """MobileNetV4-Conv-Small on a log-mel image; waveform ``(B, T)`` → ``(B, n_outputs)``."""

    labels = LABELS

    def __init__(self, n_outputs: int = 3, width: float = 1.0, n_mels: int = 64,
                 sampling_rate: int = 16000, dropout: float = 0.2) -> None:
        super().__init__()
        self.config = dict(arch="mobilenetv4_conv_small", n_outputs=n_outputs, width=width,
                           n_mels=n_mels, sampling_rate=sampling_rate)
        self.frontend = LogMel(sampling_rate, n_fft=400, hop=160, n_mels=n_mels,
                               normalise=True, pad=True)
        self.input_norm = nn.BatchNorm2d(1)
        c = make_divisible(32 * width)
        blocks: list[nn.Module] = [conv_bn(1, c, 3, 2)]
        for kernel, expand, out, stride in V4_SMALL_FUSED:
            out_c = make_divisible(out * width)
            blocks.append(FusedIB(c, kernel, make_divisible(expand * width), out_c, stride))
            c = out_c
        for spec in V4_SMALL_UIB:
            block = UIB(c, spec, width)
            blocks.append(block)
            c = block.out_channels
        last = make_divisible(960 * width)
        blocks.append(conv_bn(c, last, 1))
        self.features = nn.Sequential(*blocks)
        head = make_divisible(1280 * width)
        self.head = nn.Sequential(nn.Linear(last, head, bias=False), nn.BatchNorm1d(head),
                                  nn.ReLU(), nn.Dropout(dropout))
        self.classifier = nn.Linear(head, n_outputs)
        init_weights(self)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        x = self.features(self.input_norm(self.frontend(signal)))
        return self.classifier(self.head(x.mean(dim=(2, 3))))


def init_weights(model: nn.Module) -> None:
    """MobileNet-style initialisation: He-normal (fan-out) convolutions, N(0, 0.01) linear
    layers, zero biases, unit BatchNorm — and the last BatchNorm of every residual block
    starts at zero, so each block starts as the identity (this made the deep V4 body train
    from scratch on the small corpus; with PyTorch's default initialisation it stalled)."""
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.Linear):
            nn.init.normal_(mod.weight, 0.0, 0.01)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(mod.weight)
            nn.init.zeros_(mod.bias)
    for mod in model.modules():
        if isinstance(mod, (Bneck, FusedIB, UIB)) and mod.residual:
            last = mod.body[-1]
            nn.init.zeros_(last[1].weight)      # conv_bn(...)[1] is the BatchNorm


def build_mobilenet(name: str, n_outputs: int = 3, width: float = 1.0, in_chans: int = 1,
                    prefer_timm: bool = False) -> nn.Module:
    """Build ``mobilenetv4_conv_small`` or ``mobilenetv3_small_100`` with ``in_chans=1``.

    The built-in implementation is used unless ``prefer_timm`` is set and ``timm`` is
    importable; then ``timm.create_model(name, pretrained=False, in_chans=1,
    num_classes=n_outputs)`` supplies the body and our log-mel front end feeds it.
    """
    if in_chans != 1:
        raise ValueError(f"in_chans={in_chans}: only single-channel log-mel input is supported")
    key = name.lower()
    if prefer_timm:
        try:
            import timm  # type: ignore[import-not-found]
        except ImportError:
            timm = None
        if timm is not None:
            return _TimmWrapper(timm.create_model(key, pretrained=False, in_chans=1,
                                                  num_classes=n_outputs))
    if key in ("mobilenetv4", "mobilenetv4_conv_small", "mnv4", "v4"):
        return MobileNetV4ConvSmall(n_outputs=n_outputs, width=width)
    if key in ("mobilenetv3", "mobilenetv3_small", "mobilenetv3_small_100", "mnv3", "v3"):
        return MobileNetV3Small(n_outputs=n_outputs, width=width)
    raise ValueError(f"unknown MobileNet {name!r}; use mobilenetv4_conv_small or "
                     "mobilenetv3_small_100")


class _TimmWrapper(nn.Module):
    labels = LABELS

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.frontend = LogMel(16000, n_fft=400, hop=160, n_mels=64, normalise=True, pad=True)
        self.body = body

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return self.body(self.frontend(signal))
