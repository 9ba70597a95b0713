"""What a published results document may hold: finite numbers and no paths of this machine.

* :func:`make_finite` - JSON has no infinity or NaN.  A metric made infinite by a label of
  ``1e308``, an interval bound that overflowed, a plot point of such an item: each becomes
  ``null``, and the document's ``non_finite`` entry says where and what it was, so
  ``json.dumps(doc, allow_nan=False)`` always succeeds.  Numpy scalars become Python numbers.
* :func:`make_relative` - absolute paths of the machine that ran the audit are written
  relative to the data root (the manifest's folder, or the audio folder) or to the model's
  folder (a model keeps its file name; its fingerprint holds the digest), and the home
  folder as ``~``.  The absolute roots are returned so that the caller can keep them apart
  (``timings.json`` ``paths``: the report finds the audio again through them).

Both work in place and are idempotent: a document read back from ``results.json`` is left
as it is.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from typing import Any

#: places listed in ``non_finite.places`` (the count covers all)
MAX_PLACES = 50
NON_FINITE_REASON = ("not a finite number (infinite or NaN, e.g. from a label of 1e308 or an "
                     "overflowing metric); JSON has no such value, so it is written as null")
_MANIFEST_EXTENSIONS = (".csv", ".tsv", ".parquet", ".yaml", ".yml", ".json")


# -- finite numbers --------------------------------------------------------------------
def make_finite(doc: dict[str, Any], record: bool = True) -> int:
    """Replace every non-finite number in ``doc`` by ``None`` (in place); with ``record``
    list the places in ``doc["non_finite"]``.  Returns how many were replaced."""
    places: list[dict[str, str]] = []
    count = _finite(doc, "", places)
    if count and record:
        entry = doc.get("non_finite") if isinstance(doc.get("non_finite"), dict) else None
        if entry is None:
            entry = doc["non_finite"] = {"count": 0, "reason": NON_FINITE_REASON, "places": []}
        entry["count"] = int(entry.get("count") or 0) + count
        entry["places"] = (list(entry.get("places") or []) + places)[:MAX_PLACES]
    return count


def _number(x: Any) -> Any:
    """``x`` as a plain Python number if it is a number (bools stay bools)."""
    if x is None or type(x) in (bool, int, float, str):
        return x
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, numbers.Real):
        return float(x)
    return x


def _finite(node: Any, where: str, places: list) -> int:
    if isinstance(node, dict):
        slots = [(k, f"{where}.{k}" if where else str(k)) for k in list(node)]
    elif isinstance(node, list):
        slots = [(i, f"{where}[{i}]") for i in range(len(node))]
    else:
        return 0
    count = 0
    for key, here in slots:
        v = node[key]
        if isinstance(v, tuple) and isinstance(node, list):
            v = node[key] = list(v)
        if isinstance(v, (dict, list)):
            count += _finite(v, here, places)
            continue
        v2 = _number(v)
        if isinstance(v2, float) and not math.isfinite(v2):
            node[key] = None
            count += 1
            if len(places) < MAX_PLACES:
                places.append({"at": here, "was": repr(v2)})
        elif v2 is not v:
            node[key] = v2
    return count


# -- relative paths --------------------------------------------------------------------
def roots_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The absolute folders a document's paths are relative to: ``data_root`` (the folder
    of the manifest, or the audio folder) and ``models`` (name -> the model's path)."""
    out: dict[str, Any] = {}
    dataset = doc.get("dataset")
    source = dataset.get("source") if isinstance(dataset, dict) else None
    if isinstance(source, str) and os.path.isabs(source):
        is_file = os.path.isfile(source) or (not os.path.isdir(source) and
                                             source.lower().endswith(_MANIFEST_EXTENSIONS))
        out["data_root"] = os.path.dirname(source) if is_file else source
    models = {}
    for m in doc.get("models") or []:
        info = m.get("info") if isinstance(m, dict) else None
        path = info.get("path") if isinstance(info, dict) else None
        if isinstance(path, str) and os.path.isabs(path):
            models[str(m.get("name"))] = path
    if models:
        out["models"] = models
    return out


def make_relative(doc: dict[str, Any]) -> dict[str, Any]:
    """Rewrite absolute paths in every string of ``doc`` (in place); returns
    :func:`roots_of` the document before (empty when there was nothing to rewrite)."""
    roots = roots_of(doc)
    rules: list[tuple[str, str]] = []
    if roots.get("data_root"):
        rules.append((roots["data_root"], ""))
    for path in (roots.get("models") or {}).values():
        rules.append((os.path.dirname(path), ""))
    home = os.path.expanduser("~")
    if home and os.path.isabs(home):
        rules.append((home, "~"))
    expanded = []
    for prefix, repl in rules:
        if "\x00" in prefix:  # not a path this machine can have (a hostile document)
            continue
        try:
            variants = {os.path.normpath(prefix), os.path.realpath(prefix)}
        except (OSError, ValueError):
            variants = {os.path.normpath(prefix)}
        for p in variants:
            if len(p.strip("/\\")) > 0 and not re.fullmatch(r"[A-Za-z]:[\\/]?", p):
                expanded.append((p.rstrip("/\\"), repl))
    if not expanded:
        return {}
    expanded.sort(key=lambda r: -len(r[0]))
    replacement = {p: r for p, r in reversed(expanded)}  # the longest prefix's rule wins
    pattern = re.compile(r"(?<![\w.~-])(" + "|".join(re.escape(p) for p, _ in expanded)
                         + r")(?:([\\/])|(?![\w.-]))")

    def sub(m: re.Match) -> str:
        repl = replacement[m.group(1)]
        if m.group(2):
            return repl + m.group(2) if repl else ""
        return repl or "."

    _rewrite(doc, lambda s: pattern.sub(sub, s) if ("/" in s or "\\" in s) else s)
    return roots


def _rewrite(node: Any, fn) -> None:
    if isinstance(node, dict):
        changed = False
        new = {}
        for k, v in node.items():
            k2 = fn(k) if isinstance(k, str) else k
            changed |= k2 != k
            if isinstance(v, str):
                v = fn(v)
            else:
                _rewrite(v, fn)
            new[k2] = v
        if changed:
            node.clear()
        node.update(new)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, str):
                node[i] = fn(v)
            else:
                _rewrite(v, fn)
