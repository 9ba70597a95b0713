"""Read an audformat database folder into the flat item table sertest uses.

Columns of every table sharing the chosen table's index are joined; columns whose scheme
labels point to a misc table (e.g. ``speaker`` -> ``gender``/``sex``) get that table's
columns added (``speaker`` keeps its value, ``sex`` comes from the misc table).
"""

from __future__ import annotations

import os

import pandas as pd

from ..errors import DataError


def read_audformat(folder: str, table: str | None = None) -> tuple[pd.DataFrame, str]:
    """Return (flat table with a ``file`` column, database name)."""
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
        raise DataError(f"{folder}: database has no tables")
    if table is None:
        table = names[0]
    if table not in db.tables:
        raise DataError(f"{folder}: no table {table!r}; tables are {names}")
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
    return flat, db.name
