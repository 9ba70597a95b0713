"""A table of audio items with optional labels and group columns.

The table is indexed by ``id`` (string) and has the columns ``file`` (absolute path),
``start`` and ``end`` (segment bounds in seconds; NaN for whole files), plus any of:

* labels: ``arousal``, ``dominance``, ``valence`` (floats, about [0, 1]); ``emotion``
  (category name);
* groups: ``speaker``, ``sex``, ``language``, ``accent``, ``sentiment`` or any other
  column the suite declares;
* ``pair`` and ``recording`` for paired renditions of the same utterance.

Audio is not read here; the engine decodes each file once per audit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..audio import AUDIO_EXTENSIONS
from ..errors import DataError
from ..models.base import DIMENSIONS

NUMERIC_COLUMNS = ("start", "end") + DIMENSIONS
RESERVED = ("file", "start", "end")
#: columns that stay strings even when every value looks like a number (ids, groups)
CATEGORICAL_COLUMNS = ("speaker", "sex", "language", "accent", "sentiment", "emotion", "pair",
                       "recording", "text", "voice", "engine")


@dataclass
class Dataset:
    """Audio items and their metadata.

    Attributes:
        table: one row per item, indexed by ``id``.
        root: folder relative paths were resolved against.
        name: display name.
        source: the manifest, database or folder it came from.
    """

    table: pd.DataFrame
    root: str
    name: str = "dataset"
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def ids(self) -> list[str]:
        return list(self.table.index)

    def has(self, column: str) -> bool:
        """True if the column exists and holds at least one value."""
        return column in self.table.columns and bool(self.table[column].notna().any())

    def column(self, column: str) -> pd.Series:
        return self.table[column]

    def subset(self, ids) -> "Dataset":
        return Dataset(self.table.loc[list(ids)], self.root, self.name, self.source, self.meta)

    def describe(self) -> dict:
        """Counts shown in results and reports."""
        info = {"name": self.name, "source": self.source, "items": len(self)}
        for col in ("speaker", "sex", "language", "accent", "sentiment", "emotion"):
            if self.has(col):
                info[col] = {str(k): int(v) for k, v in
                             self.table[col].value_counts().sort_index().items()}
        info["labels"] = [c for c in DIMENSIONS + ("emotion",) if self.has(c)]
        return info

    # -- constructors --------------------------------------------------------------
    @classmethod
    def from_manifest(cls, path: str, *, name: str | None = None,
                      allow_outside_root: bool = False) -> "Dataset":
        """Read a CSV or Parquet manifest; relative paths are relative to the manifest.

        Raises:
            DataError: naming the file, line and column of the first problem found.
        """
        path = os.path.abspath(path)
        if not os.path.isfile(path):
            raise DataError(f"{path}: manifest not found")
        ext = os.path.splitext(path)[1].lower()
        try:
            if ext == ".parquet":
                df = pd.read_parquet(path)
            elif ext in (".csv", ".tsv", ".txt"):
                df = pd.read_csv(path, sep="\t" if ext == ".tsv" else ",", dtype=str,
                                 keep_default_na=False, na_values=[""])
            else:
                raise DataError(f"{path}: unknown manifest type {ext!r}; use .csv, .tsv or .parquet")
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - pandas parser errors
            raise DataError(f"{path}: cannot parse manifest: {exc}") from exc
        root = os.path.dirname(path)
        table = _validate(df, path, root, allow_outside_root, line_offset=2 if ext != ".parquet" else 0)
        return cls(table, root, name or os.path.splitext(os.path.basename(path))[0], path)

    @classmethod
    def from_folder(cls, folder: str, *, name: str | None = None) -> "Dataset":
        """All audio files under ``folder`` (recursively), label-free."""
        folder = os.path.abspath(folder)
        files = sorted(
            os.path.relpath(os.path.join(r, f), folder)
            for r, _, fs in os.walk(folder) for f in fs
            if os.path.splitext(f)[1].lower() in AUDIO_EXTENSIONS)
        if not files:
            raise DataError(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")
        df = pd.DataFrame({"id": files, "file": files})
        table = _validate(df, folder, folder, False, line_offset=0)
        return cls(table, folder, name or os.path.basename(folder), folder)

    @classmethod
    def from_audformat(cls, folder: str, *, table: str | None = None,
                       name: str | None = None) -> "Dataset":
        """An audformat database folder (``db.yaml``); see :mod:`sertest.data.audformat`."""
        from .audformat import read_audformat

        df, db_name = read_audformat(folder, table)
        root = os.path.abspath(folder)
        validated = _validate(df, os.path.join(root, "db.yaml"), root, False, line_offset=0)
        return cls(validated, root, name or db_name, root)


def load_dataset(source: str | None = None, **kwargs) -> Dataset:
    """A dataset from a manifest, an audformat folder, a folder of audio, or the bundled corpus."""
    if source is None:
        from .corpus import load_corpus

        return load_corpus()
    if os.path.isdir(source):
        if os.path.exists(os.path.join(source, "db.yaml")):
            return Dataset.from_audformat(source, table=kwargs.get("table"))
        manifest = [f for f in ("manifest.csv", "manifest.parquet") if
                    os.path.exists(os.path.join(source, f))]
        if manifest:
            return Dataset.from_manifest(os.path.join(source, manifest[0]),
                                         allow_outside_root=kwargs.get("allow_outside_root", False))
        return Dataset.from_folder(source)
    if os.path.isfile(source):
        return Dataset.from_manifest(source, allow_outside_root=kwargs.get("allow_outside_root", False))
    raise DataError(f"--data {source!r}: no such manifest or folder")


def _where(path: str, row_pos: int, line_offset: int) -> str:
    if line_offset:
        return f"{path}, line {row_pos + line_offset}"
    return f"{path}, row {row_pos}"


def _validate(df: pd.DataFrame, path: str, root: str, allow_outside_root: bool,
              line_offset: int) -> pd.DataFrame:
    df = df.copy()
    df.columns = [str(c).strip() for c in df.columns]
    if "file" not in df.columns:
        alt = [c for c in ("path", "filename", "audio") if c in df.columns]
        if alt:
            df = df.rename(columns={alt[0]: "file"})
        else:
            raise DataError(f"{path}: missing column 'file' (the audio path); columns are "
                            f"{list(df.columns)}")
    dup_cols = [c for c in set(df.columns) if list(df.columns).count(c) > 1]
    if dup_cols:
        raise DataError(f"{path}: duplicate column(s) {sorted(dup_cols)}")
    if len(df) == 0:
        raise DataError(f"{path}: manifest has no rows")
    root_real = os.path.realpath(root)
    files = []
    for pos, value in enumerate(df["file"].tolist()):
        if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
            raise DataError(f"{_where(path, pos, line_offset)}, column 'file': empty path")
        value = str(value).strip()
        if "\x00" in value:
            raise DataError(f"{_where(path, pos, line_offset)}, column 'file': path contains a "
                            "NUL character")
        full = value if os.path.isabs(value) else os.path.join(root, value)
        full = os.path.normpath(full)
        if not allow_outside_root:
            real = os.path.realpath(full)
            if os.path.commonpath([real, root_real]) != root_real:
                raise DataError(
                    f"{_where(path, pos, line_offset)}, column 'file': {value!r} is outside the "
                    f"data root {root}; pass --allow-outside-root to permit it")
        files.append(full)
    df["file"] = files
    for col in NUMERIC_COLUMNS:
        if col not in df.columns:
            continue
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{_where(path, pos, line_offset)}, column {col!r}: "
                            f"{raw.iloc[pos]!r} is not a number")
        inf = np.isinf(num.to_numpy(dtype=float, na_value=np.nan))
        if inf.any():
            pos = int(np.flatnonzero(inf)[0])
            raise DataError(f"{_where(path, pos, line_offset)}, column {col!r}: infinite value")
        df[col] = num.astype(float)
    for col in ("start", "end"):
        if col not in df.columns:
            df[col] = np.nan
    neg = (df["start"] < 0) | (df["end"] < 0)
    if neg.any():
        pos = int(np.flatnonzero(neg.to_numpy())[0])
        raise DataError(f"{_where(path, pos, line_offset)}: negative start/end time")
    order = df["end"].notna() & (df["end"] <= df["start"].fillna(0))
    if order.any():
        pos = int(np.flatnonzero(order.to_numpy())[0])
        raise DataError(f"{_where(path, pos, line_offset)}, column 'end': end "
                        f"{df['end'].iloc[pos]} s is not after start")
    if "id" in df.columns:
        ids = df["id"].astype(str).str.strip()
        empty = (ids == "") | df["id"].isna()
        if empty.any():
            pos = int(np.flatnonzero(empty.to_numpy())[0])
            raise DataError(f"{_where(path, pos, line_offset)}, column 'id': empty id")
    else:
        rel = [os.path.relpath(f, root) for f in df["file"]]
        seg = df["start"].notna() | df["end"].notna()
        ids = pd.Series([f"{r}[{s}:{e}]" if g else r for r, s, e, g in
                         zip(rel, df["start"], df["end"], seg)], index=df.index)
    dup = ids.duplicated(keep="first")
    if dup.any():
        pos = int(np.flatnonzero(dup.to_numpy())[0])
        first = int(np.flatnonzero((ids == ids.iloc[pos]).to_numpy())[0])
        raise DataError(f"{_where(path, pos, line_offset)}, column 'id': duplicate id "
                        f"{ids.iloc[pos]!r} (first at {_where(path, first, line_offset)})")
    df.index = pd.Index(ids.tolist(), name="id")
    df = df.drop(columns=["id"], errors="ignore")
    for col in df.columns:
        if col in NUMERIC_COLUMNS or col == "file":
            continue
        df[col] = df[col].map(lambda v: v.strip() if isinstance(v, str) else v)
        if col not in CATEGORICAL_COLUMNS and df[col].notna().any():
            num = pd.to_numeric(df[col], errors="coerce")
            if (num.notna() == df[col].notna()).all():
                df[col] = num.astype(float)  # e.g. prosody parameters, F0, SNR
    if "emotion" in df.columns:
        df["emotion"] = df["emotion"].map(lambda v: v.lower() if isinstance(v, str) else v)
    if "sex" in df.columns:
        df["sex"] = df["sex"].map(_normalise_sex)
    return df


def _normalise_sex(v):
    if not isinstance(v, str):
        return v
    s = v.strip().lower()
    return {"f": "female", "w": "female", "woman": "female", "m": "male", "man": "male"}.get(s, s)
