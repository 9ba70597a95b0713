"""Model adapters and their registry.

A model spec is a string, optionally prefixed with a display name and an adapter kind::

    wav2small.onnx                      ONNX file (raw waveform in)
    path/to/audonnx-folder              folder with model.yaml (audonnx)
    path/to/hf-folder                   folder with config.json (Hugging Face: any
                                        AutoModelForAudioClassification, teacher, audEERING)
    org/name[@revision]                 Hugging Face hub id, from the local cache (a local
                                        path of that name wins; see models/hub.py)
    model.pt                            TorchScript file
    torch:pkg.module:factory=weights.pt nn.Module factory plus a state dict (weights_only)
    callable:pkg.module:function        any Python callable ``f(signals, sampling_rate)``
    random:gaussian | random:categorical  seeded random baselines
    random:constant                     0.5 for every dimension, whatever it hears
    student=wav2small.onnx              same, displayed as "student"

Adapters are imported lazily, so the core install (ONNX) never imports torch.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from ..errors import UsageError
from .base import CATEGORIES, DIMENSIONS, EMOTION, Model, ModelInfo

#: kind -> "module:function" returning a Model from (target, **options).
ADAPTERS: dict[str, str] = {
    "onnx": "sertest.models.onnx:load_onnx",
    "audonnx": "sertest.models.onnx:load_audonnx",
    "random": "sertest.models.random:load_random",
    "torch": "sertest.models.torch_adapter:load_torch",
    "hf": "sertest.models.hf:load_hf",
    "callable": "sertest.models.callable:load_callable",
}


def register_adapter(kind: str, target: str) -> None:
    """Register an adapter ``kind`` implemented by ``"module:function"``."""
    ADAPTERS[kind] = target


def split_spec(spec: str, root: str = "") -> tuple[str | None, str | None, str]:
    """Split ``[NAME=][KIND:]TARGET`` by its syntax alone into (name, kind, target).

    ``kind`` is a registered adapter kind (:func:`register_adapter`), or ``None`` when the
    spec names none (:func:`parse_spec` then tells it from the file).  A prefix is read as a
    name or a kind only when the text is no existing path, relative to ``root`` (default:
    the working directory).  Nothing is loaded and no file needs to exist.

    >>> split_spec("student=onnx:models/w2s.onnx")
    ('student', 'onnx', 'models/w2s.onnx')
    >>> split_spec("random:gaussian")
    (None, 'random', 'gaussian')
    """
    name = None
    text = spec.strip()
    if "=" in text.split(":", 1)[0] and not os.path.exists(os.path.join(root, text)):
        name, text = text.split("=", 1)
    head, sep, rest = text.partition(":")
    if sep and head in ADAPTERS and not os.path.exists(os.path.join(root, text)):
        return name, head, rest
    return name, None, text


def parse_spec(spec: str) -> tuple[str | None, str, str]:
    """Split ``[NAME=][KIND:]TARGET`` into (name, kind, target), detecting the kind.

    Raises:
        UsageError: for an unknown kind, a missing file or a Hugging Face hub id.

    >>> parse_spec('random:gaussian')
    (None, 'random', 'gaussian')
    >>> parse_spec('baseline=random:constant')
    ('baseline', 'random', 'constant')
    """
    name, kind, target = split_spec(spec)
    if kind is None:
        kind = _detect_kind(target, spec)
    return name, kind, target


def _detect_kind(target: str, spec: str) -> str:
    if os.path.isdir(target):
        if os.path.exists(os.path.join(target, "model.yaml")):
            return "audonnx"
        if os.path.exists(os.path.join(target, "config.json")):
            return "hf"
        if os.path.exists(os.path.join(target, "model.onnx")):
            return "audonnx"
        raise UsageError(
            f"--model {spec!r}: folder has neither model.yaml (audonnx), model.onnx nor "
            "config.json (Hugging Face); for a model that needs its own code, wrap it in a "
            "function f(signals, sampling_rate) and pass --model callable:path/to/file.py:"
            "function (recipes in examples/adapters/)")
    if os.path.isfile(target):
        ext = os.path.splitext(target)[1].lower()
        if ext == ".onnx":
            return "onnx"
        if ext in (".pt", ".pth", ".jit", ".ts"):
            return "torch"
        if ext == ".py":
            raise UsageError(
                f"--model {spec!r}: a Python file; name the function in it: --model "
                f"callable:{target}:function (f(signals, sampling_rate) -> scores) or --model "
                f"torch:{target}:factory=weights.pt (factory() -> nn.Module)")
        raise UsageError(f"--model {spec!r}: cannot tell the model format from extension {ext!r}; "
                         "prefix the spec with onnx:, torch:, hf: or callable:")
    from .hub import parse_hub_id

    if parse_hub_id(target) is not None:
        return "hf"   # a Hugging Face hub id: resolved from the local cache by the hf adapter
    module, sep, func = target.rpartition(":")
    if sep and module and func.isidentifier() and (module.endswith(".py") or all(
            p.isidentifier() for p in module.split("."))):
        raise UsageError(f"--model {spec!r}: no such file or folder; to call a Python "
                         f"function, prefix it: --model callable:{target} (or torch:{target}"
                         "=weights.pt for an nn.Module factory)")
    raise UsageError(f"--model {spec!r}: no such file or folder (nor a Hugging Face hub id "
                     "org/name[@revision]); give a model file (.onnx, .pt), a model folder, or "
                     "callable:path/to/file.py:function for a model with its own code")


def load_model(spec: str | os.PathLike | Model, **options: Any) -> Model:
    """Load a model from a spec string or path (see the module docstring) or pass a Model
    through.

    Options (all optional): ``name``, ``labels`` (output labels, list or comma string),
    ``sampling_rate`` (Hz), ``seed`` (random baselines), ``classes``, ``allow_download``
    (hub ids missing from the local Hugging Face cache; default ``SERTEST_ALLOW_DOWNLOAD``),
    ``device`` (``cpu``, ``auto``, ``cuda[:N]``; :mod:`sertest.models.device`).
    """
    if isinstance(spec, Model):
        return spec
    if isinstance(spec, os.PathLike):  # a pathlib.Path to a model file or folder
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise UsageError(f"--model {spec!r}: a model is a spec string, a path or a loaded "
                         f"Model, not {type(spec).__name__}")
    name, kind, target = parse_spec(spec)
    module_name, func_name = ADAPTERS[kind].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("sertest"):
            raise
        extra = {"torch": "torch", "hf": "hf"}.get(kind, kind)
        what = (f"no such file or folder; read as a Hugging Face hub id, it needs a missing "
                f"package ({exc.name})" if kind == "hf" and not os.path.exists(target) else
                f"the {kind!r} adapter needs a missing package ({exc.name})")
        raise UsageError(
            f"--model {spec!r}: {what}; install it with: pip install 'sertest[{extra}]'"
        ) from exc
    options = {k: v for k, v in options.items() if v is not None}
    if name:
        options["name"] = name
    device = options.pop("device", None)
    model = getattr(module, func_name)(target, **options)
    if device is not None:   # cpu, auto, cuda[:N]: see sertest.models.device
        from .device import place

        place(model, device)
        options["device"] = device
    # remembered so a subprocess (efficiency profile) can load the same model again
    model.spec = spec
    model.spec_options = {k: v for k, v in options.items() if isinstance(v, (str, int, float))}
    return model


__all__ = ["ADAPTERS", "CATEGORIES", "DIMENSIONS", "EMOTION", "Model", "ModelInfo",
           "load_model", "parse_spec", "register_adapter", "split_spec"]
