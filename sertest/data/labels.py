"""Labels as people have them: declared scales, class-name maps and ``gender`` for ``sex``.

sertest's models and metrics work on arousal, dominance and valence in [0, 1] and on the
model's own class names.  Corpora differ: MSP-Podcast rates on 1-7, IEMOCAP on 1-5, class
names are ``angry``/``happy`` in one corpus and ``anger``/``happiness`` in a model.  This
module brings a data table to sertest's conventions when the data is loaded, so every
check sees the same, converted labels.

**Label range.**  A declared range ``MIN:MAX`` of a dimension maps its labels linearly to
[0, 1]: ``(label - MIN) / (MAX - MIN)``.  It is declared by

* the option ``--label-range 1:7`` (every dimension) or ``--label-range
  arousal=1:7,valence=1:5`` (per dimension);
* a line ``# sertest: label_range=1:7`` (same syntax after ``=``) at the top of a CSV/TSV
  manifest, before the header line;
* the ``minimum``/``maximum`` of an audformat float scheme of the column.

The option overrides the data's declaration, dimension by dimension.  A label outside its
declared range is an error naming the column and item.  Labels outside [0, 1] with no
declared range are an error naming the column and the range seen, and suggesting
``--label-range``: a silent 1-7 scale gave MAEs of 3.7 that looked like a bad model.

**Label map.**  ``--label-map angry=anger,happy=happiness`` (or a YAML/JSON file holding a
mapping, or a manifest line ``# sertest: label_map=angry=anger``) renames the data's
``emotion`` classes to the model's.  Data classes the map does not name are kept and
listed in a note.

**Sex.**  A ``gender`` column is taken as ``sex`` (a ``sex`` column wins if both exist);
values are normalised: f, female, woman, w -> ``female``; m, male, man -> ``male`` (any
case); other values are kept and listed in a note.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, UsageError
from ..vocabulary import DIMENSIONS

#: key of a range that applies to every dimension present
ALL = "*"
#: the prefix of a directive line at the top of a CSV/TSV manifest
DIRECTIVE = "# sertest:"
DIRECTIVE_KEYS = ("label_range", "label_map")
FEMALE = ("f", "female", "woman", "w")
MALE = ("m", "male", "man")
_TOLERANCE = 1e-9


# -- parsing ---------------------------------------------------------------------------------
def parse_label_range(value: Any, where: str = "--label-range") -> dict[str, tuple[float, float]]:
    """``"1:7"`` -> ``{"*": (1, 7)}``; ``"arousal=1:7,valence=1:5"`` -> per dimension.

    Also accepts a mapping ``{dimension: "1:7" | [1, 7] | {"min": 1, "max": 7}}`` (the form
    results.json records) and ``None`` (no range).

    Raises:
        UsageError: naming ``where`` and saying what would work.
    """
    if value is None or value == "" or value == {}:
        return {}
    example = "e.g. 1:7 for every dimension, or arousal=1:7,valence=1:5"
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if len(parts) == 1 and "=" not in parts[0]:
            items = [(ALL, parts[0])]
        else:
            items = []
            for part in parts:
                dim, sep, rng = part.partition("=")
                if not sep:
                    raise UsageError(f"{where} {value!r}: {part!r} names no dimension; {example}")
                items.append((dim.strip(), rng.strip()))
    else:
        raise UsageError(f"{where} {value!r}: give MIN:MAX, {example}")
    out: dict[str, tuple[float, float]] = {}
    for dim, rng in items:
        dim = str(dim).strip().lower()
        if dim != ALL and dim not in DIMENSIONS:
            raise UsageError(f"{where}: {dim!r} is not a dimension; use {', '.join(DIMENSIONS)} "
                             f"({example})")
        if dim in out:
            raise UsageError(f"{where}: {dim!r} is given twice")
        out[dim] = _bounds(rng, f"{where} {dim}" if dim != ALL else where, example)
    return out


def _bounds(rng: Any, where: str, example: str) -> tuple[float, float]:
    if isinstance(rng, dict):
        lo, hi = rng.get("min"), rng.get("max")
    elif isinstance(rng, (list, tuple)) and len(rng) == 2:
        lo, hi = rng
    elif isinstance(rng, str) and rng.count(":") == 1:
        lo, hi = rng.split(":")
    else:
        raise UsageError(f"{where} {rng!r}: give MIN:MAX, {example}")
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise UsageError(f"{where} {rng!r}: MIN and MAX must be numbers, {example}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        raise UsageError(f"{where} {rng!r}: MAX must be a finite number above MIN, {example}")
    return lo, hi


def parse_label_map(value: Any, where: str = "--label-map") -> dict[str, str]:
    """``"angry=anger,happy=happiness"``, a ``.yaml``/``.yml``/``.json`` file holding such a
    mapping, or a mapping -> ``{data class: model class}`` (data names lower-cased, as the
    ``emotion`` column is).

    Raises:
        UsageError: naming ``where`` and saying what would work.
    """
    if value is None or value == "" or value == {}:
        return {}
    example = "e.g. angry=anger,happy=happiness, or a YAML/JSON file {angry: anger}"
    if isinstance(value, str) and os.path.isfile(value):
        value = _read_map_file(value, where)
    if isinstance(value, str):
        items = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            src, sep, dst = part.partition("=")
            if not sep:
                hint = (" (no such file either)" if part.endswith((".yaml", ".yml", ".json"))
                        else "")
                raise UsageError(f"{where} {value!r}: {part!r} is not DATA=MODEL{hint}; {example}")
            items.append((src, dst))
    elif isinstance(value, dict):
        items = list(value.items())
    else:
        raise UsageError(f"{where} {value!r}: {example}")
    out: dict[str, str] = {}
    for src, dst in items:
        src, dst = str(src).strip().lower(), str(dst).strip()
        if not src or not dst:
            raise UsageError(f"{where}: empty class name in {src!r}={dst!r}; {example}")
        if src in out and out[src] != dst:
            raise UsageError(f"{where}: {src!r} is mapped twice ({out[src]!r} and {dst!r})")
        out[src] = dst
    return out


def _read_map_file(path: str, where: str) -> Any:
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        if ext == ".json":
            doc = json.loads(text)
        elif ext in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text)
        else:
            raise UsageError(f"{where} {path!r}: a label-map file must be .yaml, .yml or .json")
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - JSON/YAML/decoding errors
        raise UsageError(f"{where} {path!r}: cannot read it: {exc}") from exc
    if not isinstance(doc, dict):
        raise UsageError(f"{where} {path!r}: must hold a mapping of data class to model class, "
                         "e.g. {angry: anger, happy: happiness}")
    return doc


def read_directives(path: str) -> tuple[dict[str, str], int]:
    """The ``# sertest: KEY=VALUE`` lines at the top of a CSV/TSV manifest.

    Returns:
        ({key: value}, number of directive lines to skip before the header).

    Raises:
        DataError: an unknown key or a line without ``=``, naming the line.
    """
    found: dict[str, str] = {}
    n = 0
    with open(path, "rb") as fh:
        for raw in fh:
            line = raw.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
            if not line.lower().startswith(DIRECTIVE):
                break
            n += 1
            key, sep, val = line[len(DIRECTIVE):].partition("=")
            key = key.strip().lower().replace("-", "_")
            if not sep or key not in DIRECTIVE_KEYS:
                raise DataError(f"{path}, line {n}: expected '{DIRECTIVE} KEY=VALUE' with KEY "
                                f"one of {', '.join(DIRECTIVE_KEYS)}, e.g. "
                                f"'{DIRECTIVE} label_range=1:7'")
            if key in found:
                raise DataError(f"{path}, line {n}: {key} is declared twice")
            found[key] = val.strip()
    return found, n


# -- applying --------------------------------------------------------------------------------
def merge_ranges(declared: dict[str, tuple[tuple[float, float], str]],
                 option: dict[str, tuple[float, float]], origin: str = "--label-range"
                 ) -> dict[str, tuple[tuple[float, float], str]]:
    """The data's declared ranges overridden by the option's, dimension by dimension.

    ``declared`` and the result: ``{dimension or "*": ((min, max), where it was declared)}``.
    """
    out = dict(declared)
    if ALL in option:
        out = {ALL: (option[ALL], origin)}
    for dim, rng in option.items():
        if dim != ALL:
            out[dim] = (rng, origin)
    return out


def apply_label_range(table: pd.DataFrame, ranges: dict[str, tuple[tuple[float, float], str]],
                      where: str) -> dict[str, dict]:
    """Rescale the dimensions with a declared range to [0, 1] in place; check the others.

    Returns:
        ``{dimension: {"min", "max", "from"}}`` for the dimensions rescaled.

    Raises:
        DataError: a range names a dimension the data lacks, a label lies outside its
            declared range, or labels without a declared range lie outside [0, 1].
    """
    present = [d for d in DIMENSIONS if d in table.columns and table[d].notna().any()]
    per_dim: dict[str, tuple[tuple[float, float], str]] = {}
    if ALL in ranges:
        if not present:
            rng, origin = ranges[ALL]
            raise DataError(f"{where}: {origin} {_fmt(rng)} was given, but the data has no "
                            f"{', '.join(DIMENSIONS)} labels to rescale; drop the option")
        per_dim.update({d: ranges[ALL] for d in present})
    for dim, value in ranges.items():
        if dim == ALL:
            continue
        if dim not in present:
            raise DataError(f"{where}: {value[1]} names {dim!r}, but the data has no {dim} "
                            f"labels (it has: {', '.join(present) or 'none'})")
        per_dim[dim] = value
    applied: dict[str, dict] = {}
    for dim in present:
        values = table[dim].to_numpy(dtype=float, na_value=np.nan)
        if dim in per_dim:
            (lo, hi), origin = per_dim[dim]
            tol = _TOLERANCE * (hi - lo)
            bad = (values < lo - tol) | (values > hi + tol)
            if bad.any():
                pos = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{where}, item {table.index[pos]!r}, column {dim!r}: {values[pos]:g} lies "
                    f"outside the declared range {_fmt((lo, hi))} ({origin}); "
                    f"{int(bad.sum())} of {int(np.isfinite(values).sum())} labels do. "
                    f"Declare the scale the labels use, e.g. --label-range "
                    f"{dim}={_suggest(values)}")
            table[dim] = (values - lo) / (hi - lo)
            applied[dim] = {"min": lo, "max": hi, "from": origin}
        else:
            seen = values[np.isfinite(values)]
            lo, hi = float(seen.min()), float(seen.max())
            if lo < -_TOLERANCE or hi > 1 + _TOLERANCE:
                raise DataError(
                    f"{where}, column {dim!r}: labels range from {lo:g} to {hi:g}, outside "
                    f"[0, 1], the scale sertest's models and metrics use. Declare the data's "
                    f"scale and sertest maps it to [0, 1]: --label-range {_suggest(values)} "
                    f"(or {dim}={_suggest(values)} for this column alone), or a line "
                    f"'{DIRECTIVE} label_range={_suggest(values)}' at the top of the manifest")
    return applied


def _fmt(rng: tuple[float, float]) -> str:
    return f"{rng[0]:g}:{rng[1]:g}"


def _suggest(values: np.ndarray) -> str:
    """A likely scale for the labels seen: whole-number bounds around them."""
    seen = values[np.isfinite(values)]
    lo, hi = math.floor(float(seen.min())), math.ceil(float(seen.max()))
    return f"{lo}:{hi if hi > lo else lo + 1}"


def apply_label_map(table: pd.DataFrame, mapping: dict[str, str], origin: str = "--label-map"
                    ) -> tuple[dict[str, str], list[str]]:
    """Rename the ``emotion`` classes in place.

    Returns:
        (the map as applied, notes naming unmapped data classes and unused map entries).
    """
    notes: list[str] = []
    if not mapping:
        return {}, notes
    if "emotion" not in table.columns or not table["emotion"].notna().any():
        notes.append(f"{origin} was given, but the data has no emotion labels: nothing mapped")
        return dict(mapping), notes
    seen = sorted({str(v) for v in table["emotion"].dropna()})
    unused = sorted(set(mapping) - set(seen))
    table["emotion"] = table["emotion"].map(
        lambda v: mapping.get(v, v) if isinstance(v, str) else v)
    unmapped = [c for c in seen if c not in mapping and c not in mapping.values()]
    if unmapped:
        notes.append(f"{origin}: data classes not mapped, kept as they are: {unmapped}")
    if unused:
        notes.append(f"{origin}: classes not in the data (check the spelling): {unused}; the "
                     f"data's classes are {seen}")
    return dict(mapping), notes


def sex_from_gender(df: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Take a ``gender`` column as ``sex`` (``sex`` wins when both exist, with a note)."""
    cols = [str(c) for c in df.columns]
    if "gender" not in cols:
        return df
    if "sex" in cols:
        notes.append("the data has both 'sex' and 'gender' columns: 'sex' is used for the sex "
                     "groups, 'gender' is kept as an ordinary column")
        return df
    return df.rename(columns={"gender": "sex"})


def normalise_sex(values: pd.Series, notes: list[str]) -> pd.Series:
    """f/female/woman/w -> female, m/male/man -> male (any case); others kept, listed."""
    def one(v):
        if not isinstance(v, str):
            return v
        s = v.strip().lower()
        if s in FEMALE:
            return "female"
        if s in MALE:
            return "male"
        return s

    out = values.map(one)
    other = sorted({str(v) for v in out.dropna() if v not in ("female", "male") and v != ""})
    if other:
        notes.append(f"sex: values other than female/male kept as they are: {other}")
    return out


def header_lines(described: dict) -> list[str]:
    """Lines for a run header from :meth:`Dataset.describe`: table, rescaling, map, notes."""
    lines = []
    if described.get("table"):
        lines.append(f"data table: {described['table']}")
    for dim, rng in (described.get("label_range") or {}).items():
        lines.append(f"{dim} labels mapped from {rng['min']:g}:{rng['max']:g} to [0, 1] "
                     f"({rng['from']})")
    if described.get("label_map"):
        pairs = ", ".join(f"{k} -> {v}" for k, v in described["label_map"].items())
        lines.append(f"emotion classes mapped: {pairs}")
    lines += [f"note: {n}" for n in described.get("notes") or []]
    return lines
