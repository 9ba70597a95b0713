"""Where a model computes: ``--device cpu | auto | cuda | cuda:N``.

``cpu`` (the default) changes nothing: every adapter runs as it always did, exactly and
deterministically.  ``cuda[:N]`` moves a torch or Hugging Face model to GPU ``N`` (default
0) and opens an ONNX session with onnxruntime's CUDA execution provider; where that is not
possible (no CUDA build of torch, no GPU, ``onnxruntime-gpu`` not installed) loading stops
with a :class:`~sertest.errors.UsageError` saying what would work.  ``auto`` takes GPU 0
where the model's runtime can use it and otherwise stays on the CPU, saying so in one log
line per runtime.

Precision: on a GPU, TF32 matrix products and convolutions are switched off (torch's
``allow_tf32`` flags, onnxruntime's ``use_tf32``), so a GPU computes in float32 like the
CPU and its predictions differ from the CPU's by float32 rounding only (about 1e-6).  That
is why the prediction cache key does not name the device: a prediction cached on one
device is served to the other (see README, "Devices").
"""

from __future__ import annotations

import logging
import re

from ..errors import UsageError

#: the values ``--device`` accepts, as shown in messages
CHOICES = "cpu, auto, cuda or cuda:N (N = GPU index)"
_PATTERN = re.compile(r"^(cpu|auto|cuda)(?::(\d+))?$")
_LOGGED: set[str] = set()


def parse_device(text: str | None) -> str:
    """Normalise a ``--device`` value: ``cpu``, ``auto`` or ``cuda:N``.

    Raises:
        UsageError: anything else, naming the choices.

    >>> parse_device("cuda")
    'cuda:0'
    >>> parse_device(" CUDA:1 ")
    'cuda:1'
    >>> parse_device(None)
    'cpu'
    """
    value = (text or "cpu").strip().lower()
    match = _PATTERN.match(value)
    if not match or (match.group(2) is not None and match.group(1) != "cuda"):
        raise UsageError(f"--device {text!r}: use {CHOICES}")
    kind, index = match.group(1), match.group(2)
    return f"cuda:{int(index or 0)}" if kind == "cuda" else kind


def _fallback(runtime: str, why: str) -> str:
    if runtime not in _LOGGED:
        _LOGGED.add(runtime)
        logging.getLogger("sertest").warning(
            "--device auto: %s; %s models run on the CPU", why, runtime)
    return "cpu"


def torch_device(requested: str | None, where: str) -> str:
    """The torch device for ``--device requested``: ``cpu`` or ``cuda:N``.

    Args:
        requested: a ``--device`` value.
        where: the model, for messages (e.g. ``--model teacher``).

    Raises:
        UsageError: ``cuda[:N]`` where torch sees no such GPU.
    """
    device = parse_device(requested)
    if device == "cpu":
        return device
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "auto":
        if not count:
            return _fallback("torch", f"torch {torch.__version__} finds no CUDA GPU")
        device = "cuda:0"
    index = int(device.split(":")[1])
    if index >= count:
        found = (f"torch {torch.__version__} finds no CUDA GPU (a CPU-only build, or no "
                 "driver)" if not count else f"torch finds {count} GPU(s), cuda:0"
                 f"..cuda:{count - 1}")
        raise UsageError(f"{where}: --device {requested}: {found}; use --device cpu, or "
                         "--device auto to use a GPU only where one is found")
    # float32 on the GPU as on the CPU: TF32 would change outputs by ~1e-3
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return device


def onnx_providers(requested: str | None, where: str) -> tuple[str, list]:
    """``(device, providers)`` for an onnxruntime session under ``--device requested``.

    ``providers`` is ``["CPUExecutionProvider"]`` on the CPU; on GPU ``N`` it is the CUDA
    execution provider (device ``N``, TF32 off) with the CPU provider behind it for
    operators CUDA lacks.

    Raises:
        UsageError: ``cuda[:N]`` where onnxruntime has no CUDA execution provider.
    """
    device = parse_device(requested)
    if device == "cpu":
        return device, ["CPUExecutionProvider"]
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        why = (f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (available: "
               f"{', '.join(available)})")
        if device == "auto":
            return _fallback("ONNX", why), ["CPUExecutionProvider"]
        raise UsageError(f"{where}: --device {requested}: {why}; install onnxruntime-gpu "
                         "in place of onnxruntime (pip install onnxruntime-gpu), or use "
                         "--device cpu, or --device auto to use a GPU only where one is found")
    if device == "auto":
        device = "cuda:0"
    index = int(device.split(":")[1])
    return device, [("CUDAExecutionProvider", {"device_id": index, "use_tf32": 0}),
                    "CPUExecutionProvider"]


def cpu_only(requested: str | None, where: str, what: str) -> str:
    """The device of a model that computes on the CPU only (random baselines, callables):
    ``cpu`` for ``cpu`` and ``auto``.

    Raises:
        UsageError: ``cuda[:N]``, naming the model and what would work.
    """
    device = parse_device(requested)
    if device.startswith("cuda"):
        raise UsageError(f"{where}: --device {requested}: {what} models run on the CPU only; "
                         "use --device cpu, or --device auto (GPU for the models that can "
                         "use one, CPU for the others)")
    return "cpu"


def place(model, device: str | None):
    """Move a loaded model to ``device`` (a ``--device`` value) and return it.

    Models of adapters without a :meth:`~sertest.models.base.Model.to_device` of their own
    stay on the CPU (``auto``) or are refused (``cuda``).
    """
    if parse_device(device) == "cpu":
        return model
    model.to_device(device)
    return model


def move_module(module, requested: str | None, where: str) -> str:
    """Move a torch ``nn.Module`` (TorchScript too) to the device for ``--device requested``
    and return that device (``cpu`` or ``cuda:N``); see :func:`torch_device`."""
    device = torch_device(requested, where)
    if device != "cpu":
        module.to(device)
    return device
