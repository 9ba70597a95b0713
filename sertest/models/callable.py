"""Any Python function as a model: ``callable:package.module:function``.

The function is called as ``function(signals, sampling_rate)`` with ``signals`` a float32
array ``(batch, samples)`` at ``sampling_rate`` Hz, and returns either

- an array ``(batch, n)`` whose columns are named by the ``labels`` option or by a
  ``labels`` attribute of the function, or
- a dict ``{name: array (batch,)}``; the names are the labels (unless the option or the
  attribute says otherwise).

If the function returns a dict and no labels are given, it is called once at load time on
one second of low-level noise to learn the names.  ``package.module`` may also be a path
to a ``.py`` file.  Code is imported only because the user named it on the command line.

This module also holds :func:`plan_columns`, the label → column plan shared with the
torch adapter.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import logging
import os
import sys
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ModelError, UsageError
from ..seeding import derive_rng
from .base import CATEGORIES, DIMENSIONS, VOLATILE, Model, ModelInfo, file_digest


def parse_labels(value: Any) -> list[str] | None:
    """``"a,b,c"`` or a sequence → list of labels; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    if isinstance(value, dict):
        raise UsageError("labels: give one comma-separated list for this model kind, not a "
                         "mapping of output names")
    return [str(s) for s in value]


def plan_columns(labels: Sequence[str], where: str
                 ) -> tuple[list[int], tuple[str, ...], tuple[str, ...]]:
    """Decide which output columns are regression dimensions and which are classes.

    Dimensions are the labels among arousal/dominance/valence, put in that canonical
    order.  The other labels are the classes of a categorical head if at least one of them
    is an emotion category (or if there are no dimensions at all); otherwise they are
    ignored (e.g. an embedding column).

    Returns:
        (column indices, dimensions, classes): the model's outputs are
        ``output[:, indices]`` = dimensions followed by classes.

    Raises:
        UsageError: duplicate labels, or nothing usable.
    """
    labels = [str(x) for x in labels]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise UsageError(f"{where}: duplicate output labels {dup}")
    order = {d: i for i, d in enumerate(DIMENSIONS)}
    dims = sorted((lab for lab in labels if lab in order), key=order.__getitem__)
    rest = [lab for lab in labels if lab not in order]
    if rest and (set(rest) & set(CATEGORIES) or not dims):
        classes = rest
    else:
        classes = []
    if not dims and len(classes) < 2:
        raise UsageError(
            f"{where}: outputs labelled {labels} contain no regression dimension "
            f"({', '.join(DIMENSIONS)}) and no categorical head; pass --labels")
    indices = [labels.index(x) for x in dims] + [labels.index(x) for x in classes]
    return indices, tuple(dims), tuple(classes)


def resolve_function(target: str, kind: str = "callable") -> tuple[Callable[..., Any], str]:
    """Import ``module:function`` or ``path/to/file.py:function``.

    ``kind``: the spec prefix the user wrote (``callable`` or ``torch``), named in errors.

    Returns:
        (function, path of its source file or "").
    """
    where = f"--model {kind}:{target}"
    forms = (f"'{kind}:package.module:function' (an importable module) or "
             f"'{kind}:path/to/file.py:function'")
    module_name, sep, func_name = target.rpartition(":")
    if not sep or not module_name or not func_name:
        raise UsageError(f"{where}: expected {forms}")
    try:
        if module_name.endswith(".py"):
            if not os.path.isfile(module_name):
                raise UsageError(f"{where}: no such file {module_name!r} (relative paths start "
                                 f"at the current folder, {os.getcwd()})")
            mod_id = "sertest_user_" + hashlib.sha1(
                os.path.abspath(module_name).encode()).hexdigest()[:12]
            spec = importlib.util.spec_from_file_location(mod_id, module_name)
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            sys.modules[mod_id] = module
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(module_name)
    except UsageError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise UsageError(
                f"{where}: no module named {exc.name!r} on the Python path. For a function in "
                f"a file, give the file's path: --model {kind}:path/to/"
                f"{module_name.rpartition('.')[2]}.py:{func_name}; for a module, install its "
                "package or add its folder to PYTHONPATH") from exc
        raise UsageError(f"{where}: importing {module_name!r} needs the missing package "
                         f"{exc.name!r}; install it (pip install ...) in this environment"
                         ) from exc
    except Exception as exc:  # noqa: BLE001 - user code may raise anything on import
        raise UsageError(f"{where}: cannot import {module_name!r}: "
                         f"{type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in func_name.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n, v in vars(module).items()
                            if callable(v) and not n.startswith("_"))[:12]
            raise UsageError(f"{where}: {module_name!r} has no attribute {func_name!r}; its "
                             f"functions and classes: {', '.join(public) or 'none'}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"{where}: {func_name!r} is not callable; name a function, e.g. "
                         f"{kind}:{module_name}:predict")
    try:
        source = inspect.getsourcefile(obj) or ""
    except TypeError:
        source = ""
    return obj, source


class CallableModel(Model):
    """Wraps ``f(signals, sampling_rate)``; see the module docstring."""

    def __init__(self, func: Callable[..., Any], target: str, *, name: str | None = None,
                 labels: Sequence[str] | None = None, sampling_rate: int = 16000,
                 source: str = "") -> None:
        self.func = func
        self.target = target
        self.name = name or target.rpartition(":")[2]
        self.sampling_rate = int(sampling_rate)
        self._source = source
        self._dict_output: bool | None = None
        if labels is None:
            attr = getattr(func, "labels", None)
            labels = parse_labels(attr) if attr is not None else None
        if labels is None:
            labels = self._probe_labels()
        self.labels = list(labels)
        self._indices, self.dimensions, self.classes = plan_columns(
            self.labels, f"--model callable:{target}")

    def _probe_labels(self) -> list[str]:
        rng = derive_rng(0, "callable-probe")
        probe = (1e-3 * rng.standard_normal((1, self.sampling_rate))).astype(np.float32)
        out = self._call(probe)
        if isinstance(out, dict):
            return [str(k) for k in out]
        raise UsageError(
            f"--model callable:{self.target}: the function returns an array, so its columns "
            "need names: pass --labels 'arousal,dominance,valence' or set a 'labels' "
            "attribute on the function")

    def _call(self, signals: np.ndarray) -> Any:
        try:
            return self.func(signals, self.sampling_rate)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - sys.exit() in user code too
            # (a SystemExit at load time would otherwise end `sertest run` with its code;
            # KeyboardInterrupt is left to the engine, which tells it from a real Ctrl-C)
            raise ModelError(f"model {self.name!r} ({self.target}) failed on a batch of shape "
                             f"{tuple(signals.shape)}: {type(exc).__name__}: {exc}") from exc

    def predict_batch(self, signals: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(signals, dtype=np.float32)
        out = self._call(x)
        n = x.shape[0]
        if isinstance(out, dict):
            missing = [lab for lab in self.labels if lab not in out]
            if missing:
                raise ModelError(f"model {self.name!r}: returned keys {sorted(out)}, missing "
                                 f"{missing}")
            table = np.stack([np.asarray(out[lab], dtype=np.float64).reshape(n)
                              for lab in self.labels], axis=1)
        else:
            table = np.asarray(out, dtype=np.float64)
            if table.ndim == 1 and len(self.labels) == 1:
                table = table[:, None]
            if table.ndim != 2 or table.shape != (n, len(self.labels)):
                raise ModelError(
                    f"model {self.name!r}: returned shape {tuple(table.shape)}, expected "
                    f"({n}, {len(self.labels)}) for labels {self.labels}")
        return table[:, self._indices]

    def fingerprint(self) -> str:
        """The function's source file, the files its module declares and the string its
        module's ``sertest_fingerprint()`` returns (see :func:`declared_state`), plus the
        labels and rate.  Anything that cannot be read makes the fingerprint volatile: the
        predictions are then not cached across runs (one warning)."""
        if not hasattr(self, "_fingerprint"):
            digest = file_digest(self._source)[:16] if self._source and os.path.isfile(
                self._source) else "nosource"
            tail = f"{','.join(self.labels)}:{self.sampling_rate}"
            try:
                declared = declared_state(self.func, self._source)
            except Exception as exc:  # noqa: BLE001 - user code and user files
                logging.getLogger("sertest").warning(
                    "model %r (%s): %s; its predictions are not cached across runs",
                    self.name, self.target, exc)
                self._fingerprint = f"{VOLATILE}callable:{self.target}:{digest}:{tail}"
            else:
                self._fingerprint = (f"callable:{self.target}:{digest}:"
                                     + (f"{declared}:" if declared else "") + tail)
        return self._fingerprint

    def info(self) -> ModelInfo:
        params = getattr(self.func, "parameters", None)
        return ModelInfo(name=self.name, format="callable", sampling_rate=self.sampling_rate,
                         dimensions=self.dimensions, classes=self.classes,
                         parameters=params if isinstance(params, int) else None,
                         file_size=None, path=self._source or None,
                         extra={"target": self.target, "labels": list(self.labels)})


def declared_state(func: Callable[..., Any], source: str = "") -> str:
    """What a callable's module declares its outputs depend on, besides its source file:

    * ``SERTEST_FILES = ["weights.npz", "vocab/"]``: files (or folders, all files under
      them) the function loads; relative paths start at the module's folder.  Their
      content's SHA-256 enters the fingerprint, so a changed weight file is never served
      from the prediction cache;
    * ``def sertest_fingerprint() -> str``: any string that changes with the model (e.g. a
      digest of weights fetched elsewhere, a version).

    Returns ``""`` when the module declares neither.

    Raises:
        UsageError: a declared file is missing, ``SERTEST_FILES`` is not a list of paths,
            or ``sertest_fingerprint`` fails or returns no string.
    """
    module = sys.modules.get(getattr(func, "__module__", "") or "")
    if module is None:
        return ""
    parts = []
    files = getattr(module, "SERTEST_FILES", None)
    if files is not None:
        if isinstance(files, (str, os.PathLike)) or not all(
                isinstance(f, (str, os.PathLike)) for f in files):
            raise UsageError(f"{module.__name__}.SERTEST_FILES must be a list of paths, "
                             f"got {files!r}")
        base = os.path.dirname(os.path.abspath(source)) if source else os.getcwd()
        for f in files:
            path = os.path.join(base, os.fspath(f))
            if not os.path.exists(path):
                raise UsageError(f"{module.__name__}.SERTEST_FILES names {os.fspath(f)!r}, "
                                 f"but {path} does not exist")
            parts.append(f"{os.fspath(f)}={file_digest(path)[:32]}")
    fp = getattr(module, "sertest_fingerprint", None)
    if fp is not None:
        try:
            value = fp()
        except Exception as exc:  # noqa: BLE001 - user code
            raise UsageError(f"{module.__name__}.sertest_fingerprint() failed: "
                             f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(value, str) or not value:
            raise UsageError(f"{module.__name__}.sertest_fingerprint() must return a "
                             f"non-empty string, got {value!r}")
        parts.append("fp=" + hashlib.sha256(value.encode("utf-8", "surrogateescape")
                                            ).hexdigest()[:32])
    if not parts:
        return ""
    return hashlib.sha256("|".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:32]


def load_callable(target: str, name: str | None = None, labels: Any = None,
                  sampling_rate: int = 16000, **_: Any) -> Model:
    """Load ``module:function`` (see the module docstring)."""
    func, source = resolve_function(target)
    return CallableModel(func, target, name=name, labels=parse_labels(labels),
                         sampling_rate=sampling_rate, source=source)
