"""PyTorch models: a TorchScript file, or an ``nn.Module`` factory plus a state dict.

Specs::

    model.pt                                   TorchScript (torch.jit.save)
    torch:package.module:factory=weights.pt    factory() -> nn.Module, then the state dict
    torch:path/to/file.py:factory=weights.pt   same, factory from a .py file

The module is called on a float32 tensor ``(batch, samples)`` at ``sampling_rate`` Hz and
may return a tensor ``(batch, n)``, a tuple/list of tensors (their columns are joined) or a
dict of tensors (keys give default labels).  Column labels come from, in order: the
``labels`` option; a ``labels`` attribute of the module (kept by ``torch.jit.script``);
a ``labels.json`` extra file in a TorchScript archive; the keys of a dict output.

State dicts are read with ``torch.load(..., weights_only=True)`` (no pickled code).  The
factory's code is imported only because the user named it explicitly in the spec.
Inference runs in eval mode under ``torch.inference_mode()``.  Threads
(:class:`TorchThreads`): torch models are :attr:`~sertest.models.base.Model.concurrent`, so
the engine runs one intra-op thread per call and several calls at once, as for ONNX
sessions; the ``threads`` option fixes the threads of every call instead.  Memory:
importing this module caps oneDNN's kernel cache at 32 kernels
(``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, unless set already), since a model hears as many
input shapes as there are item lengths.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

import numpy as np

# Idle OpenMP threads sleep rather than spin (only effective if torch is not imported yet):
# spinning threads made torch ~10x slower on an oversubscribed machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# oneDNN keeps the kernels it built for each input shape, up to 1,024 by default, and audio
# comes in as many shapes as there are item lengths: the reference teacher grew from 380 MB
# to 720 MB over 300 calls of distinct lengths (about 1.1 MB a shape, still climbing), and
# stays flat with 32 (read at oneDNN's first kernel, so it works while no torch convolution
# has run; outputs bit-identical; benchmarks/README.md, "Many models in one audit").
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "32")

import torch  # noqa: E402

from ..errors import ModelError, UsageError
from .base import Model, ModelInfo, file_digest, path_size
from .callable import parse_labels, plan_columns, resolve_function

LABELS_FILE = "labels.json"


def _as_columns(out: Any, n: int) -> tuple[torch.Tensor, list[str] | None]:
    """Model output → ``(n, columns)`` tensor, plus default labels for dict outputs."""
    if isinstance(out, torch.Tensor):
        return out.reshape(n, -1), None
    if isinstance(out, (tuple, list)):
        parts = [o.reshape(n, -1) for o in out if isinstance(o, torch.Tensor)]
        return torch.cat(parts, dim=1), None
    if isinstance(out, dict):
        parts, labels = [], []
        for key, value in out.items():
            v = value.reshape(n, -1)
            parts.append(v)
            labels += [str(key)] if v.shape[1] == 1 else [f"{key}-{i}" for i in range(v.shape[1])]
        return torch.cat(parts, dim=1), labels
    raise ModelError(f"torch model returned {type(out).__name__}; expected a tensor, a tuple "
                     "of tensors or a dict of tensors")


def _labels_attribute(module: Any) -> list[str] | None:
    value = getattr(module, "labels", None)
    if value is None:
        return None
    if isinstance(value, dict):
        out: list[str] = []
        for v in value.values():
            out += [str(x) for x in v]
        return out
    if isinstance(value, (list, tuple, str)):
        return parse_labels(value)
    return None


class TorchThreads:
    """Mixin of the torch adapters: calls run concurrently, each on a fixed number of threads.

    A module in eval mode under ``torch.inference_mode()`` keeps no state between calls, so
    :meth:`~sertest.models.base.Model.predict` may run in several threads at once
    (``concurrent``).  The engine asks for one intra-op thread per call
    (:meth:`use_threads`) and runs one call per worker thread: the cores are used without
    oversubscribing them, and the outputs never depend on ``--jobs`` or the core count
    (torch's reductions differ in the last bit between thread counts).  torch's intra-op
    setting belongs to each calling thread, so every call first sets its own thread's
    (:meth:`_call_threads`).  A ``threads`` option given at loading wins over the engine's.
    """

    concurrent = True
    _threads: int | None = None
    _engine_threads: int | None = None

    def use_threads(self, threads: int) -> None:
        if not self._threads:
            self._engine_threads = max(1, int(threads))

    def _call_threads(self) -> None:
        """Set the calling thread's intra-op threads to this model's (a no-op if unset)."""
        n = self._threads or self._engine_threads
        if n and torch.get_num_threads() != n:
            torch.set_num_threads(n)


class TorchModel(TorchThreads, Model):
    """An ``nn.Module`` or ``torch.jit.ScriptModule`` behind the :class:`Model` protocol."""

    def __init__(self, module: Any, *, name: str, labels: list[str] | None,
                 sampling_rate: int, files: list[str], kind: str, threads: int | None = None,
                 spec: str = "", size_files: list[str] | None = None) -> None:
        self.module = module.eval()
        self.name = name
        self.sampling_rate = int(sampling_rate)
        self._files = [os.path.abspath(f) for f in files]
        self._size_files = [os.path.abspath(f) for f in (files if size_files is None
                                                          else size_files)]
        self._kind = kind
        self._spec = spec
        self._threads = int(threads) if threads else None
        if self._threads:
            torch.set_num_threads(self._threads)
        if labels is None:
            labels = _labels_attribute(module)
        if labels is None:
            labels = self._probe_dict_labels()
        self.labels = list(labels)
        self._indices, self.dimensions, self.classes = plan_columns(self.labels,
                                                                    f"--model {spec}")

    def _probe_dict_labels(self) -> list[str]:
        probe = torch.zeros(1, self.sampling_rate)
        with torch.inference_mode():
            out = self.module(probe)
        _, labels = _as_columns(out, 1)
        if labels is None:
            raise UsageError(
                f"--model {self._spec}: cannot tell what the outputs mean; pass --labels "
                "'arousal,dominance,valence', give the module a 'labels' attribute, or store "
                f"a {LABELS_FILE} extra file in the TorchScript archive")
        return labels

    def predict_batch(self, signals: np.ndarray) -> np.ndarray:
        self._call_threads()
        x = torch.from_numpy(np.ascontiguousarray(signals, dtype=np.float32)).to(self.device)
        try:
            with torch.inference_mode():
                out = self.module(x)
            table, _ = _as_columns(out, x.shape[0])
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"model {self.name!r} failed on a batch of shape "
                             f"{tuple(signals.shape)}: {type(exc).__name__}: {exc}") from exc
        table = table.detach().to("cpu", torch.float64).numpy()
        if table.shape[1] != len(self.labels):
            raise ModelError(f"model {self.name!r}: output has {table.shape[1]} columns but "
                             f"{len(self.labels)} labels {self.labels}")
        return table[:, self._indices]

    def to_device(self, device: str) -> None:
        """Move the module to ``device`` (see :mod:`sertest.models.device`)."""
        from .device import move_module

        self.device = move_module(self.module, device, f"--model {self.name}")

    def fingerprint(self) -> str:
        if not hasattr(self, "_fingerprint"):
            digests = ",".join(file_digest(f)[:32] for f in self._files)
            self._fingerprint = f"torch:{self._kind}:{self._spec}:{digests}:{','.join(self.labels)}"
        return self._fingerprint

    def info(self) -> ModelInfo:
        params = sum(int(p.numel()) for p in self.module.parameters())
        return ModelInfo(
            name=self.name, format="torch", sampling_rate=self.sampling_rate,
            dimensions=self.dimensions, classes=self.classes, parameters=params,
            file_size=sum(path_size(f) for f in self._size_files) if self._size_files else None,
            path=self._files[0] if self._files else None,
            extra={"kind": self._kind, "labels": list(self.labels),
                   **({"threads": self._threads} if self._threads else {})})


def _load_torchscript(path: str) -> tuple[Any, list[str] | None]:
    extra = {LABELS_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)   # torch.jit is deprecated
            module = torch.jit.load(path, map_location="cpu", _extra_files=extra)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(
            f"{path}: not a TorchScript file ({type(exc).__name__}: {exc}). For a state dict "
            "use --model torch:package.module:factory=weights.pt") from exc
    labels = None
    if extra.get(LABELS_FILE):
        try:
            labels = parse_labels(json.loads(extra[LABELS_FILE]))
        except (json.JSONDecodeError, UsageError) as exc:
            raise ModelError(f"{path}: extra file {LABELS_FILE} is not a JSON list: {exc}") from exc
    return module, labels


def _load_factory(target: str, weights: str | None) -> tuple[Any, list[str], list[str]]:
    spec, sep, weights_in_spec = target.partition("=")
    weights = weights_in_spec if sep else weights
    factory, source = resolve_function(spec, kind="torch")
    try:
        module = factory()
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"--model torch:{target}: factory {spec!r} failed: "
                         f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"--model torch:{target}: factory {spec!r} returned "
                         f"{type(module).__name__}, not a torch.nn.Module; for a plain function "
                         f"f(signals, sampling_rate) use --model callable:{spec}")
    files = [source] if source else []
    if weights:
        if not os.path.isfile(weights):
            raise UsageError(f"--model torch:{target}: no such weights file {weights!r}")
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"{weights}: cannot read a state dict with weights_only=True: "
                             f"{type(exc).__name__}: {exc}") from exc
        if isinstance(state, dict) and "state_dict" in state and isinstance(
                state["state_dict"], dict):
            state = state["state_dict"]
        try:
            module.load_state_dict(state, strict=True)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"{weights}: does not fit the module built by {spec!r}: {exc}"
                             ) from exc
        return module, [weights] + files, [weights]
    return module, files, []


def load_torch(target: str, name: str | None = None, labels: Any = None,
               sampling_rate: int = 16000, weights: str | None = None,
               threads: int | None = None, **_: Any) -> Model:
    """Load a TorchScript file or ``module:factory[=weights.pt]`` (see module docstring)."""
    label_list = parse_labels(labels)
    if os.path.isfile(target):
        module, file_labels = _load_torchscript(target)
        return TorchModel(module, name=name or os.path.splitext(os.path.basename(target))[0],
                          labels=label_list or file_labels, sampling_rate=sampling_rate,
                          files=[target], kind="torchscript", threads=threads, spec=target)
    if ":" not in target.partition("=")[0]:
        raise UsageError(f"--model torch:{target}: no such TorchScript file, and not a "
                         "'torch:package.module:factory=weights.pt' or "
                         "'torch:path/to/file.py:factory=weights.pt' spec")
    module, files, size_files = _load_factory(target, weights)
    factory_name = target.partition("=")[0].rpartition(":")[2]
    return TorchModel(module, name=name or factory_name, labels=label_list,
                      sampling_rate=sampling_rate, files=files, kind="factory",
                      threads=threads, spec=f"torch:{target}", size_files=size_files)
