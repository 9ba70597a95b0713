"""Read an audformat database folder into the flat item table sertest uses.

**Which table.**  ``--data FOLDER::TABLE`` (or ``table=``) names the table (split) audited.
Without it, the database's tables must all hold the same items (e.g. ``files`` and
``emotion`` describing the same files), else the choice is an error listing the tables:
picking the first silently once audited a 3-item dev split.

Columns of every table sharing the chosen table's index are joined; columns whose scheme
labels point to a misc table (e.g. ``speaker`` -> ``gender``/``sex``) get that table's
columns added (``speaker`` keeps its value, ``sex`` comes from the misc table).  A float
scheme with a ``minimum`` and ``maximum`` other than 0 and 1 declares the label range of
its arousal/dominance/valence column (see :mod:`sertest.data.labels`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd

from ..errors import DataError
from ..vocabulary import DIMENSIONS


@dataclass
class AudformatRead:
    """What :func:`read_audformat` found.

    Attributes:
        frame: flat table with a ``file`` column (and ``start``/``end`` in seconds).
        name: the database's name.
        table: the table audited.
        ranges: ``{dimension: ((minimum, maximum), origin)}`` declared by float schemes.
    """

    frame: pd.DataFrame
    name: str
    table: str
    ranges: dict = field(default_factory=dict)


def read_audformat(folder: str, table: str | None = None) -> AudformatRead:
    """Read the database in ``folder``; ``table``: the table to audit (see module doc)."""
    try:
        import audformat
    except ModuleNotFoundError as exc:
        raise DataError(f"{folder}: reading audformat databases needs the package audformat "
                        "(pip install 'sertest[audformat]')") from exc
    try:
        db = audformat.Database.load(folder, load_data=True)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{folder}: cannot load audformat database: {exc}") from exc
    names = list(db.tables)
    if not names:
        raise DataError(f"{folder}: database has no tables with audio items (filewise or "
                        "segmented); add one, or use a CSV manifest")
    if table is None:
        table = _only_candidate(db, names, folder)
    if table not in db.tables:
        kind = " (a misc table, which lists no audio)" if table in db.misc_tables else ""
        raise DataError(f"{folder}: no table {table!r}{kind}; choose one of "
                        f"{_listing(db, names)}, e.g. --data {folder}::{names[0]}")
    base = db[table].get()
    index = base.index
    frames = [base]
    for other in names:
        if other == table:
            continue
        t = db[other]
        try:
            if t.type == db[table].type:
                df = t.get(index=index)
                frames.append(df[[c for c in df.columns if c not in base.columns]])
        except Exception:  # noqa: BLE001 - tables with other indices are skipped
            continue
    flat = pd.concat(frames, axis=1)
    scheme_of = {}
    for name in names:
        for cname, column in db[name].columns.items():
            scheme_of.setdefault(cname, column.scheme_id)
    for col in list(flat.columns):
        scheme_id = scheme_of.get(col)
        if scheme_id and scheme_id in db.schemes:
            labels = db.schemes[scheme_id].labels
            if isinstance(labels, str) and labels in db.misc_tables:
                misc = db.misc_tables[labels].get()
                for mcol in misc.columns:
                    target = "sex" if mcol == "gender" else mcol
                    if target not in flat.columns:
                        flat[target] = flat[col].map(misc[mcol]).astype(object)
    if "gender" in flat.columns and "sex" not in flat.columns:
        flat = flat.rename(columns={"gender": "sex"})
    flat = flat.reset_index()
    if "start" in flat.columns:
        flat["start"] = flat["start"].dt.total_seconds()
        flat["end"] = flat["end"].dt.total_seconds()
    flat["file"] = [f if os.path.isabs(f) else f for f in flat["file"]]
    flat = flat.astype({c: object for c in flat.columns if str(flat[c].dtype) == "category"})
    ranges = {}
    for dim in DIMENSIONS:
        scheme = db.schemes.get(scheme_of.get(dim)) if scheme_of.get(dim) else None
        if dim in flat.columns and scheme is not None and scheme.minimum is not None \
                and scheme.maximum is not None and (scheme.minimum, scheme.maximum) != (0, 1):
            ranges[dim] = ((float(scheme.minimum), float(scheme.maximum)),
                           f"audformat scheme {scheme_of[dim]!r}")
    return AudformatRead(flat, db.name, table, ranges)


def _only_candidate(db, names: list[str], folder: str) -> str:
    """The table to audit when none is named: any, if all tables hold the same items."""
    first = db[names[0]]
    if all(db[n].type == first.type and db[n].index.equals(first.index) for n in names[1:]):
        return names[0]
    raise DataError(f"{folder}: the database has tables with different items: "
                    f"{_listing(db, names)}; choose the one to audit with --data "
                    f"{folder}::TABLE (e.g. --data {folder}::{names[0]})")


def _listing(db, names: list[str]) -> str:
    parts = []
    for n in names:
        t = db[n]
        cols = ", ".join(t.columns) or "no columns"
        parts.append(f"{n!r} ({len(t.index)} {t.type} items: {cols})")
    return "; ".join(parts)
