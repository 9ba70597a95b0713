"""ONNX models that take the raw waveform, and audonnx model folders.

The graph must have one float input holding the signal: shape ``(batch, time)``,
``(1, time)`` (static batch, as in audonnx exports), ``(batch, 1, time)`` or ``(time,)``.
A dynamic batch axis lets sertest stack equal-length signals into one call, unless the graph
quantises its activations dynamically (:data:`BATCH_COUPLED_OPS`): then each signal gets a
call of its own, so its prediction never depends on what it was batched with.

Output labels name the columns of each output and come from, in order of precedence:

1. the ``labels`` option (CLI ``--labels``): ``"arousal,dominance,valence"`` for the first
   output, or ``"logits=arousal,dominance,valence;probs=anger,happiness,neutral,sadness"``;
2. a sidecar YAML in audonnx's format next to the file (``model.yaml`` with a ``labels``
   mapping, or ``labels.yaml``, or ``<file>.yaml``);
3. the ONNX metadata property ``labels`` holding JSON ``{"output": ["label", ...]}``.

Outputs whose labels are regression dimensions (arousal, dominance, valence) become
dimensions; an output whose labels include the emotion categories becomes the categorical
head. Other outputs (e.g. ``hidden_states``) are ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import weakref
from typing import Any

import numpy as np
import yaml

from ..errors import ModelError, UsageError
from .base import (CATEGORIES, DIMENSIONS, VOLATILE, Model, ModelInfo, file_digest,
                   path_size)


#: the ONNX models of this process with an open session (see :meth:`OnnxModel.predict_batch`)
_OPEN: "weakref.WeakSet[OnnxModel]" = weakref.WeakSet()


def _run_options(shrink: bool):
    """``None``, or with ``shrink`` run options that hand the session's unused CPU arena
    memory back after the call.  onnxruntime's arena otherwise keeps the peak of the largest
    call for the session's lifetime (measured: 130 to 190 MB per reference model after a
    16-signal batch of 4 s), so an audit of several models would hold every model's peak at
    once; with one session open the arena is reused as is (shrinking costs up to about 10 %
    more CPU per call)."""
    if not shrink:
        return None
    import onnxruntime as ort

    opts = ort.RunOptions()
    opts.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return opts


class OnnxModel(Model):
    """An onnxruntime session around a raw-waveform ONNX graph.

    Threads: ``threads`` (or the environment variable ``SERTEST_THREADS``) fixes the
    session's intra-op threads; otherwise onnxruntime's default (one per core) until the
    engine sets one per call with :meth:`use_threads` and runs calls in parallel threads.
    That also keeps results independent of ``--jobs`` and of the core count: onnxruntime's
    float kernels can differ in the last bit between thread counts (measured: 6e-8 on
    Wav2Small), and an int8 model's dynamic quantisation can amplify that into a visible
    change.  Idle pool threads sleep instead of spinning, so they do not slow down decoding
    and perturbing on the same cores.
    """

    #: ONNX Runtime's ``InferenceSession.run`` is thread-safe
    concurrent = True
    #: most samples per call, 2**18 (16.4 s at 16 kHz: 4 signals of 4 s), half the engine's
    #: default: onnxruntime's CPU kernels gain nothing from larger calls (one thread, 16
    #: signals of 3 s, least CPU-seconds of three rounds at 8 / 4 a call: Wav2Small 0.208 /
    #: 0.204, MobileNet-V4 0.044 / 0.040, V3 0.032 / 0.032), while the session's arena holds
    #: the whole call's activations (Wav2Small: 61 MB for 8 x 4 s, 26 MB for 4 x 4 s); two
    #: Wav2Small calls at once were the 7-model audit's highest memory (benchmarks/README.md,
    #: "Many models in one audit", point 8)
    call_samples = 1 << 18

    def __init__(self, path: str, *, name: str | None = None,
                 labels: dict[str, list[str]] | None = None, sampling_rate: int = 16000,
                 threads: int | None = None, fmt: str = "onnx", size_path: str | None = None
                 ) -> None:
        self.path = os.path.abspath(path)
        self.name = name or os.path.splitext(os.path.basename(path))[0]
        self.sampling_rate = int(sampling_rate)
        self._format = fmt
        self._size_path = size_path or path
        self._threads = threads
        self._init_args = dict(path=path, name=name, labels=labels, sampling_rate=sampling_rate,
                               threads=threads, fmt=fmt, size_path=size_path)
        self._session_threads: int | None = None
        self.session = self._open_session(threads or _env_threads())
        inputs = [i for i in self.session.get_inputs() if "float" in i.type]
        if len(inputs) != 1:
            raise ModelError(
                f"{path}: expected exactly one float input (the signal), found "
                f"{[(i.name, i.type) for i in self.session.get_inputs()]}")
        self._input = inputs[0]
        shape = list(self._input.shape)
        if len(shape) not in (1, 2, 3):
            raise ModelError(f"{path}: input {self._input.name!r} has shape {shape}; expected "
                             "(time,), (batch, time) or (batch, 1, time)")
        if isinstance(shape[-1], int) and shape[-1] > 1:
            raise ModelError(f"{path}: input {self._input.name!r} has a fixed time axis of "
                             f"{shape[-1]} samples; sertest needs a dynamic time axis")
        self._rank = len(shape)
        #: operators that make a signal's output depend on the rest of its batch
        self.batch_coupled = batch_coupled_ops(path)
        self.batchable = (self._rank > 1 and not isinstance(shape[0], int)
                          and not self.batch_coupled)
        meta = self.session.get_modelmeta().custom_metadata_map
        if labels is None:
            labels = _sidecar_labels(path)
        if labels is None and "labels" in meta:
            try:
                labels = json.loads(meta["labels"])
            except json.JSONDecodeError as exc:
                raise ModelError(f"{path}: ONNX metadata 'labels' is not JSON: {exc}") from exc
        if labels is None:
            raise UsageError(
                f"{path}: cannot tell what the outputs mean. Give labels with --labels "
                "'arousal,dominance,valence', a sidecar model.yaml (audonnx format) or ONNX "
                "metadata 'labels'")
        self.labels = _normalise_labels(labels, [o.name for o in self.session.get_outputs()], path)
        self._plan_outputs()
        self._meta = dict(meta)

    def _open_session(self, threads: int | None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # idle pool threads sleep: spinning ones steal the cores that decode and perturb
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # no memory pattern: onnxruntime keeps one per input shape for the session's
        # lifetime, and audio comes in as many shapes as there are item lengths; with the
        # arena shrinking between calls (several sessions open, `_run_options`) each new
        # shape then held its own blocks - Wav2Small grew by about 6.5 MB a call, to 5.3 GB
        # after 800 calls of distinct lengths, against a flat 140-190 MB without patterns
        # (benchmarks/README.md, "Many models in one audit")
        opts.enable_mem_pattern = False
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(self.path, sess_options=opts,
                                           providers=self._providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises many types
            raise ModelError(f"cannot load ONNX model {self.path}: {exc}") from exc
        self._session_threads = int(threads) if threads else None
        _OPEN.add(self)
        return session

    def use_threads(self, threads: int) -> None:
        if self._threads or _env_threads():
            return  # fixed by the user
        want = max(1, int(threads))
        if want != self._session_threads:
            self.session = self._open_session(want)

    def __getstate__(self):
        # sessions cannot be pickled: ship the arguments, re-open on the other side
        return {"init_args": self._init_args, "labels": self.labels, "device": self.device}

    def __setstate__(self, state):
        args = dict(state["init_args"], labels=state["labels"])
        self.__init__(**args)
        if state.get("device", "cpu") != "cpu":
            self.to_device(state["device"])

    #: onnxruntime execution providers of the session (see :meth:`to_device`)
    _providers: list = ["CPUExecutionProvider"]

    def to_device(self, device: str) -> None:
        """Re-open the session on ``device``: onnxruntime's CUDA execution provider for
        ``cuda:N`` (see :func:`sertest.models.device.onnx_providers`).

        Raises:
            UsageError: the CUDA provider is missing, or could not be started (onnxruntime
                then falls back to the CPU silently; sertest does not).
        """
        from .device import onnx_providers, parse_device

        where = f"--model {self.name}"
        placed, providers = onnx_providers(device, where)
        if placed == self.device:
            return
        self._providers = providers
        self.session = self._open_session(self._session_threads)
        if placed != "cpu" and self.session.get_providers()[0] != "CUDAExecutionProvider":
            self._providers = ["CPUExecutionProvider"]
            self.session = self._open_session(self._session_threads)
            why = (f"onnxruntime could not start its CUDA execution provider (session "
                   f"providers: {self.session.get_providers()}; check the CUDA and cuDNN "
                   "libraries onnxruntime-gpu needs)")
            if parse_device(device) != "auto":
                raise UsageError(f"{where}: --device {device}: {why}; or use --device cpu")
            logging.getLogger("sertest").warning("%s: --device auto: %s; on the CPU", where, why)
            placed = "cpu"
        self.device = placed

    def _plan_outputs(self) -> None:
        dims: list[tuple[str, int, str]] = []
        classes: list[tuple[str, int, str]] = []
        for out_name, labs in self.labels.items():
            if set(labs) & set(DIMENSIONS):
                dims += [(out_name, i, lab) for i, lab in enumerate(labs) if lab in DIMENSIONS]
            elif set(labs) & set(CATEGORIES) or out_name in ("emotion", "categories", "probs"):
                if classes:
                    raise ModelError(f"{self.path}: more than one categorical output")
                classes += [(out_name, i, lab) for i, lab in enumerate(labs)]
        if not dims and not classes:
            raise ModelError(
                f"{self.path}: no output is labelled with {list(DIMENSIONS)} or emotion "
                f"categories; labels are {self.labels}")
        order = {d: i for i, d in enumerate(DIMENSIONS)}
        dims.sort(key=lambda t: order[t[2]])
        self._columns = dims + classes
        self.dimensions = tuple(t[2] for t in dims)
        self.classes = tuple(t[2] for t in classes)
        self._needed = sorted({t[0] for t in self._columns})

    def predict_batch(self, signals: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(signals, dtype=np.float32)
        if self._rank == 1:
            x = x[0]
        elif self._rank == 3:
            x = x[:, None, :]
        try:
            # several sessions open: each gives its arena's peak back after every call
            results = self.session.run(self._needed, {self._input.name: x},
                                       _run_options(len(_OPEN) > 1))
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"model {self.name!r} failed on a batch of shape "
                             f"{tuple(signals.shape)}: {exc}") from exc
        by_name = {}
        for out_name, value in zip(self._needed, results):
            v = np.asarray(value, dtype=np.float64)
            v = v.reshape(signals.shape[0], -1) if v.size else v
            by_name[out_name] = v
        cols = []
        for out_name, idx, lab in self._columns:
            v = by_name[out_name]
            if v.shape[1] <= idx:
                raise ModelError(f"model {self.name!r}: output {out_name!r} has {v.shape[1]} "
                                 f"columns, but label {lab!r} is number {idx + 1}")
            cols.append(v[:, idx])
        return np.stack(cols, axis=1)

    def fingerprint(self) -> str:
        """SHA-256 of every file the session loads: the graph, its external data files
        (``weights.bin`` ...; see :func:`external_data_files`) and, for an audonnx folder,
        every file of the folder; plus the labels."""
        if not hasattr(self, "_fingerprint"):
            labels = json.dumps(self.labels, sort_keys=True)
            try:
                if self._format == "audonnx" and os.path.isdir(self._size_path):
                    files = [self._size_path]  # the folder: model.yaml, graph, weights
                else:
                    files = [self.path] + external_data_files(self.path)
                digest = file_digest(self.path)[:32] if files == [self.path] else \
                    hashlib.sha256("|".join(f"{os.path.basename(f)}={file_digest(f)}"
                                            for f in files).encode("utf-8", "surrogateescape")
                                   ).hexdigest()[:32]
                self._fingerprint = f"onnx:{digest}:{labels}"
            except (ModelError, OSError) as exc:
                # weights we cannot digest must never be served from the cache
                logging.getLogger("sertest").warning(
                    "model %r: cannot digest its files (%s): its predictions are not cached "
                    "across runs", self.name, exc)
                self._fingerprint = f"{VOLATILE}onnx:{self.path}:{labels}"
        return self._fingerprint

    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self.name, format=self._format, sampling_rate=self.sampling_rate,
            dimensions=self.dimensions, classes=self.classes,
            parameters=onnx_parameter_count(self.path), file_size=path_size(self._size_path),
            path=self.path,
            extra={"input": self._input.name, "dynamic_batch": self.batchable,
                   "outputs": {k: list(v) for k, v in self.labels.items()},
                   **({"batch_coupled": self.batch_coupled} if self.batch_coupled else {})})


def _env_threads() -> int | None:
    value = os.environ.get("SERTEST_THREADS")
    return int(value) if value else None


#: operators whose output for one signal depends on the other signals of the same call:
#: dynamic quantisation (``onnxruntime.quantization.quantize_dynamic``) scales the whole
#: input tensor by its own range, so a clean signal batched with a loud perturbed copy of
#: itself was quantised more coarsely (the reference Wav2Small-int8: up to 0.0027 apart
#: between one call of 16 signals and 16 calls of one)
BATCH_COUPLED_OPS = frozenset({"DynamicQuantizeLinear", "DynamicQuantizeMatMul",
                               "DynamicQuantizeLSTM"})


def batch_coupled_ops(path: str) -> list[str]:
    """The operators of :data:`BATCH_COUPLED_OPS` in ONNX file ``path`` (sorted, each once;
    subgraphs and functions included); ``[]`` also when ``onnx`` cannot read the file (the
    session loaded it, so it is a graph: then it is run batched as before)."""
    try:
        return list(_graph_facts(path).coupled)
    except ModelError:
        return []


def external_data_files(path: str) -> list[str]:
    """The external data files (absolute paths, sorted, each once) the tensors of ONNX file
    ``path`` point to: initialisers, sparse initialisers and tensor attributes of every
    node, subgraphs and functions included.  Locations are relative to the model's folder.

    Raises:
        ModelError: the file cannot be parsed by ``onnx`` (the fingerprint must not
            silently miss weights).
    """
    return list(_graph_facts(path).external_files)


def onnx_parameter_count(path: str) -> int | None:
    """Number of elements in the graph's initializers (weights), or None if onnx is absent."""
    try:
        return _graph_facts(path).parameters
    except ModelError:
        return None


@dataclasses.dataclass(frozen=True)
class _GraphFacts:
    external_files: tuple[str, ...]
    parameters: int
    coupled: tuple[str, ...]


def _graph_facts(path: str) -> _GraphFacts:
    """What sertest reads from an ONNX graph, from one parse of the file (a graph with its
    weights inside is read whole: done once per file version, not once per question)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the graph: {exc}") from exc
    return _read_graph_facts(os.path.abspath(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _read_graph_facts(path: str, mtime_ns: int, size: int) -> _GraphFacts:
    try:
        import onnx

        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types
        raise ModelError(f"{path}: cannot read the graph to find its external data files: "
                         f"{exc}") from exc
    folder = os.path.dirname(path)
    files: set[str] = set()
    coupled: set[str] = set()

    def tensor(t) -> None:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            location = {e.key: e.value for e in t.external_data}.get("location")
            if location:
                files.add(os.path.normpath(os.path.join(folder, location)))

    def nodes(ns) -> None:
        for node in ns:
            if node.op_type in BATCH_COUPLED_OPS:
                coupled.add(node.op_type)
            for attr in node.attribute:
                if attr.HasField("t"):
                    tensor(attr.t)
                for t in attr.tensors:
                    tensor(t)
                if attr.HasField("g"):
                    graph(attr.g)
                for sub in attr.graphs:
                    graph(sub)

    def graph(g) -> None:
        for t in g.initializer:
            tensor(t)
        for sp in g.sparse_initializer:
            tensor(sp.values)
            tensor(sp.indices)
        nodes(g.node)

    graph(model.graph)
    for f in model.functions:
        nodes(f.node)
    parameters = sum(math.prod(init.dims) for init in model.graph.initializer)
    return _GraphFacts(tuple(sorted(files)), int(parameters), tuple(sorted(coupled)))


def _normalise_labels(labels: Any, outputs: list[str], path: str) -> dict[str, list[str]]:
    if isinstance(labels, str):
        if "=" in labels:
            parsed = {}
            for part in labels.split(";"):
                out_name, _, labs = part.partition("=")
                parsed[out_name.strip()] = [s.strip() for s in labs.split(",") if s.strip()]
            labels = parsed
        else:
            labels = [s.strip() for s in labels.split(",") if s.strip()]
    if isinstance(labels, (list, tuple)):
        labels = {outputs[0]: list(labels)}
    if not isinstance(labels, dict):
        raise UsageError(f"{path}: labels must be a list or a mapping of output name to list")
    unknown = [k for k in labels if k not in outputs]
    if unknown:
        raise UsageError(f"{path}: labels name output(s) {unknown} that the model does not have; "
                         f"outputs are {outputs}")
    return {str(k): [str(x) for x in v] for k, v in labels.items() if v}


def _sidecar_labels(path: str) -> dict[str, list[str]] | None:
    folder = os.path.dirname(os.path.abspath(path))
    stem = os.path.splitext(path)[0]
    for candidate in (stem + ".yaml", os.path.join(folder, "model.yaml"),
                      os.path.join(folder, "labels.yaml")):
        if not os.path.isfile(candidate):
            continue
        with open(candidate, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
        labels = _labels_from_audonnx_doc(doc)
        if labels is not None:
            return labels
    return None


def _labels_from_audonnx_doc(doc: Any) -> Any:
    if isinstance(doc, dict) and len(doc) == 1 and str(next(iter(doc))).startswith("$audonnx"):
        doc = next(iter(doc.values()))
    if isinstance(doc, dict) and "labels" in doc:
        return doc["labels"]
    if isinstance(doc, (list, dict)) and doc and not (isinstance(doc, dict) and "path" in doc):
        return doc
    return None


def load_onnx(target: str, name: str | None = None, labels: Any = None,
              sampling_rate: int = 16000, threads: int | None = None, **_: Any) -> Model:
    """Load an ONNX file (see module docstring)."""
    if not os.path.isfile(target):
        raise UsageError(f"--model {target!r}: no such ONNX file")
    return OnnxModel(target, name=name, labels=labels, sampling_rate=sampling_rate,
                     threads=threads)


def load_audonnx(target: str, name: str | None = None, labels: Any = None,
                 sampling_rate: int = 16000, threads: int | None = None, **_: Any) -> Model:
    """Load an audonnx model folder: ``model.yaml`` (``$audonnx...`` header) or legacy
    ``model.onnx`` with ``labels.yaml``.  Serialised transforms are refused: they would
    execute code named by a file."""
    folder = target
    yaml_path = os.path.join(folder, "model.yaml")
    onnx_file = os.path.join(folder, "model.onnx")
    file_labels = None
    if os.path.isfile(yaml_path):
        with open(yaml_path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
        if isinstance(doc, dict) and len(doc) == 1 and str(next(iter(doc))).startswith("$audonnx"):
            body = next(iter(doc.values())) or {}
            if body.get("transform"):
                raise UsageError(
                    f"{yaml_path}: audonnx transforms are not supported (they are serialised "
                    "Python objects); export a model that takes the raw waveform")
            onnx_file = os.path.join(folder, body.get("path", "model.onnx"))
            file_labels = body.get("labels")
    labels_yaml = os.path.join(folder, "labels.yaml")
    if file_labels is None and os.path.isfile(labels_yaml):
        with open(labels_yaml, encoding="utf-8") as fh:
            file_labels = yaml.safe_load(fh)
    if not os.path.isfile(onnx_file):
        raise UsageError(f"--model {target!r}: audonnx folder has no {os.path.basename(onnx_file)}")
    return OnnxModel(onnx_file, name=name or os.path.basename(os.path.normpath(folder)),
                     labels=labels if labels is not None else file_labels,
                     sampling_rate=sampling_rate, threads=threads, fmt="audonnx",
                     size_path=folder)
