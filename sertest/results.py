"""The results document (``results.json``) and what every renderer reads from it.

Schema ``sertest/results@3`` (documented in docs/results-schema.md):

* ``schema``, ``sertest_version``, ``seed``, ``suite``, ``dataset``, ``reference``;
* ``models``: ``[{name, role (candidate|baseline|reference), fingerprint, info}]``;
* ``tests``: one entry per test x model x dimension: ``{test, check, topic, model,
  dimension, description, verdict, measurements: [{metric, group, slice, value, ci, n,
  threshold, verdict}], plots?, notes?, error?, reason?}``: ``slice`` maps facets
  (``group``, ``condition``, ``bin``, ``class``, ... see ``checks.base.FACETS``) to values
  and ``group`` is its display label (``checks.base.slice_label``);
* ``items``: ``{total, errors: [{id, file, stage, error, condition, model}]}``;
* ``summary``: ``{models: {NAME: {score, topics: {topic: score}, counts: {verdict: n}}}}``.

* ``non_finite`` (only when a number was NaN or infinite): ``{count, reason, places}``.

Wall-clock figures never enter results.json (they go to ``timings.json``), so the same
seed gives a byte-identical document.  A :class:`Results` holds finite numbers only and
paths relative to the data root or the model's folder (:mod:`sertest.published`).  It is
data: the report layer writes its folder (:func:`sertest.report.write_results`).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Iterable

from . import json_text
from .checks.verdict import (ERROR, FAIL, GATED, INCONCLUSIVE, PASS, SKIPPED, competence_table,
                             score)
from .errors import DataError
from .published import make_finite, make_relative
from .vocabulary import TOPICS

SCHEMA = "sertest/results@3"
#: older schemas that can still be read (rendered, compared; :func:`migrate` adds what
#: they lack)
READABLE = (SCHEMA, "sertest/results@2", "sertest/results@1")
#: metrics of older documents whose ``group`` names one facet (see :func:`older_slice`);
#: the other labelled measurements of those documents are per condition
_OLDER_FACET = {"relative_difference_per_class": "class", "class_proportion_mae": "class",
                "spearman": "class", "recall_per_class": "class", "precision_per_class": "class",
                "proportion_in_range": "category", "holds": "expectation",
                "mean_change": "expectation", "slice_error_difference": "subset"}
log = logging.getLogger("sertest")
#: the command line of this process, as the front end ran it (set by sertest.cli); kept in
#: timings.json (it names output folders, so it never enters the byte-identical results.json)
COMMAND: str | None = None


def command_line(argv: Iterable[str]) -> str:
    """``argv`` as one shell-quoted line, paths inside the working folder made relative to it
    and other absolute paths shortened to ``…/NAME`` (no machine's paths are published)."""
    import shlex

    cwd = os.getcwd()
    out = []
    for arg in argv:
        prefix, sep, value = arg.partition("=") if arg.startswith("-") or "=" in arg else ("", "", arg)
        target = value if sep else arg
        if os.path.isabs(target):
            target = (os.path.relpath(target, cwd) if target.startswith(cwd.rstrip(os.sep) + os.sep)
                      else "…/" + os.path.basename(target.rstrip(os.sep)))
        out.append(f"{prefix}{sep}{target}" if sep else target)
    return shlex.join(out)



def data_identity(doc: dict[str, Any], by_content: bool = True) -> tuple:
    """What makes two audits' data the same, for pairing and comparing them.

    With ``dataset.fingerprint`` (the audio audited, by content) in the document: the
    fingerprint with what changes the labels or the windows audited (``label_range``,
    ``label_map``, ``table``, ``segmentation``'s window and hop); a document without one
    (written before the fingerprint existed) falls back to name, item count and source.

    >>> a = {"dataset": {"name": "corpus", "items": 2, "source": "/a", "fingerprint": "sha256:1"}}
    >>> b = {"dataset": {"name": "copy", "items": 2, "source": "/b", "fingerprint": "sha256:1"}}
    >>> data_identity(a) == data_identity(b)   # the same audio in another folder
    True
    >>> data_identity(a) == data_identity({"dataset": {**a["dataset"], "label_map": {"x": "y"}}})
    False
    """
    ds = doc.get("dataset") or {}
    if not ds.get("fingerprint") or not by_content:
        return ("by name", ds.get("name"), ds.get("items"), ds.get("source"))
    seg = ds.get("segmentation") or {}
    return ("by content", ds["fingerprint"], json.dumps(ds.get("label_range"), sort_keys=True),
            json.dumps(ds.get("label_map"), sort_keys=True), ds.get("table"),
            seg.get("window_s"), seg.get("hop_s"))


def same_data(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two audits ran on the same data: by :func:`data_identity` when both documents
    carry a fingerprint, else (one written before fingerprints) by name, items and source."""
    both = all((d.get("dataset") or {}).get("fingerprint") for d in (a, b))
    return data_identity(a, both) == data_identity(b, both)


def summarise(doc: dict[str, Any]) -> dict[str, Any]:
    """Per model: overall score (mean of topic scores), topic scores, verdict counts.

    A test entry scores the share of its judged measurements that pass (inconclusive counts
    one half); a topic scores the mean of its entries; the overall score is the mean of the
    topics, so no topic dominates by the number of its cells.

    Competence gate: fairness and robustness entries of a dimension on which the model is not
    competent (its clean CCC, or UAR for emotion, fails the suite's threshold) score 0 and are
    counted as ``gated``: equal quality across groups or conditions means nothing when the
    quality is that of chance (the ser-tests pooled rate let a random model look 100 % fair).
    """
    out: dict[str, Any] = {}
    table = competence_table(doc["tests"])
    for model in [m["name"] for m in doc["models"] if m["role"] in ("candidate", "baseline")]:
        entries = [t for t in doc["tests"] if t["model"] == model]
        counts = {v: 0 for v in (PASS, FAIL, INCONCLUSIVE, ERROR, SKIPPED, GATED)}
        flags: dict[str, int] = {}
        gate = {d: table[(model, d)][0] if (model, d) in table else None
                for d in {t["dimension"] for t in entries} if d != "all"}
        topic_scores: dict[str, list[float]] = {}
        for t in entries:
            verdict = t["verdict"]
            # the judge gates (judge_audit); a results@1 document is gated here, by its rule
            gated = verdict == GATED or (t["topic"] != "correctness"
                                         and verdict not in (ERROR, SKIPPED)
                                         and gate.get(t["dimension"]) is False)
            if gated:
                verdict = GATED
            counts[verdict] = counts.get(verdict, 0) + 1
            for f in t.get("flags", []):
                flags[f["kind"]] = flags.get(f["kind"], 0) + 1
            if verdict == ERROR:
                s = 0.0
            else:
                s = score([m["verdict"] for m in t.get("measurements", [])])
            if s is not None and gated:
                s = 0.0
            if s is not None and t.get("check") != "model_health":  # health sets the exit code
                topic_scores.setdefault(t["topic"], []).append(s)
        topics = {k: round(sum(v) / len(v), 4) for k, v in sorted(topic_scores.items())}
        overall = round(sum(topics.values()) / len(topics), 4) if topics else None
        out[model] = {"score": overall, "topics": topics, "counts": counts,
                      "competent": {d: gate[d] for d in sorted(gate)}, "flags": flags}
    return {"models": out}


def older_slice(measurement: dict[str, Any], entry: dict[str, Any]) -> dict[str, str]:
    """The structured ``slice`` of a measurement of a ``results@1`` or ``@2`` document,
    derived from its ``group`` label (the one place an old label is taken apart).

    Fairness cells carried their facets in ``extra`` (``group``, ``context``, ``bin``,
    ``class``); without them the label ``GROUP[ / CONTEXT] / BIN-or-CLASS`` is split (a
    last part with a digit is a bin, e.g. ``(-inf, 0.25]``, else a class).
    Other tests' labels name one facet, known from the metric.

    >>> older_slice({"metric": "ccc_difference", "group": "babble"}, {"topic": "robustness"})
    {'condition': 'babble'}
    >>> older_slice({"metric": "bin_share_difference", "group": "female / 0.25-0.5"},
    ...             {"topic": "fairness"})
    {'group': 'female', 'bin': '0.25-0.5'}
    >>> older_slice({"metric": "breakdown_snr_db", "group": "down"}, {"topic": "robustness"})
    {'side': 'down'}
    >>> older_slice({"metric": "ccc", "group": None}, {"topic": "correctness"})
    {}
    """
    label = measurement.get("group")
    if label is None:
        return {}
    label = str(label)
    extra = measurement.get("extra") or {}
    if "group" in extra:
        return {f: str(extra[f]) for f in ("group", "context", "class", "bin") if f in extra}
    if entry.get("topic") == "fairness":
        parts = label.split(" / ")
        cell = dict(zip(("group", "context"), parts[:-1] if len(parts) > 1 else parts))
        if len(parts) > 1:
            cell["bin" if any(ch.isdigit() for ch in parts[-1]) else "class"] = parts[-1]
        return cell
    metric = str(measurement.get("metric", ""))
    facet = _OLDER_FACET.get(metric, "side" if metric.startswith("breakdown_") else "condition")
    return {facet: label}


def migrate(doc: dict[str, Any]) -> dict[str, Any]:
    """Give the measurements of an older document (``results@1``, ``@2``) the ``slice``
    field of ``results@3`` (:func:`older_slice`), in place; its ``schema`` stays what was
    read.  A current document is returned untouched."""
    if doc.get("schema") == SCHEMA:
        return doc
    for entry in doc.get("tests") or []:
        for m in entry.get("measurements") or []:
            if isinstance(m, dict) and "slice" not in m:
                m["slice"] = older_slice(m, entry)
    return doc


class Results:
    """A results document with helpers for front ends (CLI, pytest plugin, reports)."""

    def __init__(self, doc: dict[str, Any], timings: dict[str, Any] | None = None,
                 path: str | None = None, replicates: dict[str, Any] | None = None) -> None:
        if not isinstance(doc, dict) or doc.get("schema") not in READABLE:
            schema = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
            raise ValueError(f"not a sertest results document (schema {schema!r}, "
                             f"expected {SCHEMA!r})")
        missing = [k for k in ("models", "tests") if not isinstance(doc.get(k), list)]
        if missing:
            raise ValueError(f"not a complete sertest results document (no {missing[0]!r} list)")
        # what is published holds finite numbers only and no absolute paths of this machine;
        # the roots the paths are relative to stay in timings.json (see sertest/published.py)
        make_finite(doc)
        self.doc = migrate(doc)
        self.timings = dict(timings or {})
        if COMMAND and "command" not in self.timings:
            self.timings["command"] = COMMAND
        make_finite(self.timings, record=False)
        roots = make_relative(doc)
        if roots:
            self.timings["paths"] = roots
        self.path = path
        #: renderers that raised when the folder was last written
        #: (:func:`sertest.report.write_results`): [(name, "Type: message", traceback)]
        self.render_failures: list[tuple[str, str, str]] = []
        #: bootstrap replicates per cell ("model|test|dimension|metric|group" -> array, the
        #: group being the slice's display label, empty for the whole set),
        #: written to replicates.npz; every model saw the same resamples, so differences of
        #: two models' replicates are paired bootstraps of their difference
        self.replicates = replicates or {}

    # -- access -------------------------------------------------------------------
    @property
    def tests(self) -> list[dict[str, Any]]:
        return self.doc["tests"]

    @property
    def models(self) -> list[dict[str, Any]]:
        return self.doc["models"]

    def candidates(self) -> list[str]:
        return [m["name"] for m in self.models if m["role"] == "candidate"]

    def select(self, test: str | None = None, model: str | None = None,
               dimension: str | None = None) -> list[dict[str, Any]]:
        return [t for t in self.tests if (test is None or t["test"] == test)
                and (model is None or t["model"] == model)
                and (dimension is None or t["dimension"] == dimension)]

    def result(self, test: str, model: str | None = None, dimension: str | None = None
               ) -> "TestView":
        """The entries of one test (for the first candidate model unless named)."""
        model = model or (self.candidates() or [None])[0]
        entries = self.select(test, model, dimension)
        if not entries:
            raise KeyError(f"no results for test {test!r}, model {model!r}, dimension {dimension!r}")
        return TestView(entries)

    @property
    def failed(self) -> bool:
        """True if any entry of a candidate model is ``fail`` or ``error`` (a crashed check,
        or predictions the model failed to produce; ``model_health`` included)."""
        cands = set(self.candidates())
        return any(t["verdict"] in (FAIL, ERROR) for t in self.tests if t["model"] in cands)

    def exit_code(self, strict: bool = False) -> int:
        """0 when no candidate entry is ``fail`` or ``error`` (with ``strict``, none is
        ``inconclusive`` either); else 1.  Skipped and gated entries and the baselines'
        entries never set it (usage and data errors, 2, are raised before any result)."""
        if self.failed:
            return 1
        if strict:
            cands = set(self.candidates())
            if any(t["verdict"] == INCONCLUSIVE for t in self.tests if t["model"] in cands):
                return 1
        return 0

    # -- I/O ------------------------------------------------------------------------
    def to_json(self) -> str:
        """Indented JSON with arrays of numbers (plot data) and objects of scalars (a
        measurement's ``slice``, ``power``) kept on one line each (:mod:`sertest.json_text`)."""
        return json_text.dumps(self.doc) + "\n"

    @property
    def data_root(self) -> str | None:
        """The absolute folder the document's data paths are relative to, where known."""
        return (self.timings.get("paths") or {}).get("data_root")

    @classmethod
    def load(cls, path: str) -> "Results":
        """Read results.json (or the folder holding it) and timings.json beside it."""
        if os.path.isdir(path):
            path = os.path.join(path, "results.json")
        hint = "give a folder written by 'sertest run' (or its results.json), or run the audit again"
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except FileNotFoundError:
            raise DataError(f"{path}: no such file; {hint}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read the results document ({exc}); {hint}") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON (truncated or damaged: {exc.msg} at line "
                            f"{exc.lineno}, column {exc.colno}); {hint}") from None
        except (ValueError, RecursionError) as exc:  # absurd numbers or nesting
            raise DataError(f"{path}: cannot read the results document ({type(exc).__name__}: "
                            f"{str(exc)[:200]}); {hint}") from None
        folder = os.path.dirname(path)
        timings: dict[str, Any] = {}
        try:
            with open(os.path.join(folder, "timings.json"), encoding="utf-8") as fh:
                timings = json.load(fh)
            if not isinstance(timings, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            timings = {}
        except (OSError, ValueError) as exc:  # wall-clock figures only: go on without them
            log.warning("%s: ignored (%s)", os.path.join(folder, "timings.json"), exc)
            timings = {}
        try:
            replicates = read_replicates(os.path.join(folder, REPLICATES))
        except Exception as exc:  # noqa: BLE001 - a damaged npz: compare works without it
            log.warning("%s: ignored, cannot be read (%s)", os.path.join(folder, REPLICATES), exc)
            replicates = {}
        try:
            return cls(doc, timings, path, replicates)
        except ValueError as exc:
            raise DataError(f"{path}: {exc}; {hint}") from None


class TestView:
    """One test's entries (one per dimension) with convenience properties."""

    __test__ = False  # not a pytest class

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries

    @property
    def verdict(self) -> str:
        vs = [e["verdict"] for e in self.entries]
        for v in (ERROR, FAIL, INCONCLUSIVE, PASS):
            if v in vs:
                return v
        return SKIPPED

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def measurements(self) -> list[dict[str, Any]]:
        return [dict(m, dimension=e["dimension"]) for e in self.entries for m in e["measurements"]]

    def __repr__(self) -> str:
        return f"TestView({self.entries[0]['test']!r}, verdict={self.verdict!r})"


REPLICATES = "replicates.npz"


def write_replicates(path: str, replicates: dict[str, Any]) -> None:
    """Replicates in one .npz: ``__keys__`` (sorted), ``__lengths__`` and ``__values__``,
    the keys' replicates as float32, one after the other in key order.

    The keys are compressed, the values stored as they are: bootstrap replicates hardly
    compress, and compressing them cost most of the results' writing time (a 7-model
    ``default`` audit's 14,465 cells of 500 replicates: 1.9-2.2 s as one compressed array
    per cell, 1.7 s as one compressed array; now 0.15-0.25 s for 29 MB of values).  Files written
    before (one array ``r<i>`` per key) are still read.  ``path`` is inside a staging
    folder, published with the rest."""
    import zipfile

    import numpy as np

    keys = sorted(replicates)
    rows = [np.asarray(replicates[k], dtype=np.float32).ravel() for k in keys]
    members = [("__keys__", np.asarray(keys, dtype=object).astype(str), zipfile.ZIP_DEFLATED),
               ("__lengths__", np.array([r.size for r in rows], dtype=np.int64),
                zipfile.ZIP_DEFLATED),
               ("__values__", np.concatenate(rows) if rows else np.empty(0, np.float32),
                zipfile.ZIP_STORED)]
    if any(k.endswith("\0") for k in keys):  # numpy text drops trailing NULs: keep the keys
        text = json.dumps(keys).encode("ascii")  # exactly, as JSON, beside __keys__
        members.append(("__keys_json__", np.frombuffer(text, dtype=np.uint8),
                        zipfile.ZIP_DEFLATED))
    with zipfile.ZipFile(path, "w") as archive:  # the layout of numpy.savez
        for name, array, compression in members:
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compression
            with archive.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, array, allow_pickle=False)


def read_replicates(path: str) -> dict[str, Any]:
    """The replicates written beside a results.json ({} if there are none)."""
    if not os.path.exists(path):
        return {}
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        if "__keys_json__" in data.files:  # keys numpy text could not hold exactly
            keys = json.loads(data["__keys_json__"].tobytes().decode("ascii"))
        else:
            keys = [str(k) for k in data["__keys__"]]
        if "__values__" in data.files:
            values = data["__values__"].astype(np.float64)
            ends = np.cumsum(data["__lengths__"])
            return {k: values[end - n:end] for k, n, end in
                    zip(keys, data["__lengths__"].tolist(), ends.tolist())}
        return {k: data[f"r{i}"].astype(np.float64) for i, k in enumerate(keys)}
