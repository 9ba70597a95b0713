"""A table of audio items with optional labels and group columns.

The table is indexed by ``id`` (string) and has the columns ``file`` (absolute path),
``start`` and ``end`` (segment bounds in seconds; NaN for whole files), plus any of:

* labels: ``arousal``, ``dominance``, ``valence`` (floats, about [0, 1]); ``emotion``
  (category name);
* groups: ``speaker``, ``sex``, ``language``, ``accent``, ``sentiment`` or any other
  column the suite declares;
* ``pair`` and ``recording`` for paired renditions of the same utterance.

Labels are brought to these conventions on loading (:mod:`sertest.data.labels`): declared
label ranges map dimensions to [0, 1], a label map renames emotion classes, ``gender`` is
taken as ``sex``.  Audio is not read here; the engine decodes each file once per audit.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..audio import AUDIO_EXTENSIONS
from ..errors import DataError, UsageError
from ..vocabulary import DIMENSIONS
from .corpus import corpus_path
from .labels import (DIRECTIVE, apply_label_map, apply_label_range, merge_ranges,
                     normalise_sex, parse_label_map, parse_label_range, read_directives,
                     sex_from_gender)

log = logging.getLogger("sertest")
#: ``--data FOLDER::TABLE`` chooses a table of an audformat database
TABLE_SEP = "::"

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
        """The item ids in table order (a new list; read once per index object: the checks
        ask thousands of times and iterating a string index costs about 0.5 ms)."""
        index = self.table.index
        seen = self.__dict__.get("_ids_of")
        if seen is None or seen[0] is not index:  # an Index never changes in place
            seen = self.__dict__["_ids_of"] = (index, list(index))
        return list(seen[1])

    def has(self, column: str) -> bool:
        """True if the column exists and holds at least one value."""
        return column in self.table.columns and bool(self.table[column].notna().any())

    def column(self, column: str) -> pd.Series:
        return self.table[column]

    @property
    def refused(self) -> dict[str, str]:
        """Items kept in the table but never read (a path outside the data root, a file
        name that is not UTF-8): id -> reason.  The engine reports each as an item error."""
        return self.table.attrs.get("refused", {})

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
        for key in ("table", "label_range", "label_map", "notes"):
            if self.meta.get(key):
                info[key] = self.meta[key]
        return info

    def relabelled(self, *, label_range=None, label_map=None) -> "Dataset":
        """A copy with ``label_range``/``label_map`` (see :mod:`sertest.data.labels`)
        applied to this table as it is (e.g. a Dataset built in code)."""
        table = self.table.copy()
        meta = {**self.meta, "notes": list(self.meta.get("notes") or [])}
        _apply_labels(table, meta, self.source or self.name, {}, label_range, label_map)
        return Dataset(table, self.root, self.name, self.source, meta)

    # -- constructors --------------------------------------------------------------
    @classmethod
    def from_manifest(cls, path: str, *, name: str | None = None,
                      allow_outside_root: bool = False, label_range=None,
                      label_map=None) -> "Dataset":
        """Read a CSV or Parquet manifest; relative paths are relative to the manifest.

        ``label_range`` (e.g. ``"1:7"`` or ``"arousal=1:7,valence=1:5"``) and ``label_map``
        (e.g. ``"angry=anger"``) override the manifest's ``# sertest:`` lines; see
        :mod:`sertest.data.labels`.

        Raises:
            DataError: naming the file, line and column of the first problem found.
        """
        path = os.path.abspath(path)
        if not os.path.isfile(path):
            raise DataError(f"{path}: manifest not found; --data takes a CSV/TSV/Parquet "
                            "manifest, an audformat folder (db.yaml) or a folder of audio")
        ext = os.path.splitext(path)[1].lower()
        directives, skip = {}, 0
        try:
            if ext == ".parquet":
                df = pd.read_parquet(path)
            elif ext in (".csv", ".tsv", ".txt"):
                directives, skip = read_directives(path)
                df = pd.read_csv(path, sep="\t" if ext == ".tsv" else ",", dtype=str,
                                 keep_default_na=False, na_values=[""], skiprows=skip)
            else:
                raise DataError(f"{path}: unknown manifest type {ext!r}; use .csv, .tsv or .parquet")
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - pandas parser errors
            raise DataError(f"{path}: cannot parse manifest: {exc}") from exc
        root = os.path.dirname(path)
        notes: list[str] = []
        table = _validate(df, path, root, allow_outside_root,
                          line_offset=2 + skip if ext != ".parquet" else 0, notes=notes)
        declared = {}
        if directives.get("label_range"):
            where = f"{path}: '{DIRECTIVE} label_range'"
            declared = {d: (r, "manifest") for d, r in
                        parse_label_range(directives["label_range"], where).items()}
        meta: dict = {"notes": notes}
        mapping, origin = parse_label_map(label_map), "--label-map"
        if not mapping and directives.get("label_map"):
            mapping = parse_label_map(directives["label_map"], f"{path}: '{DIRECTIVE} label_map'")
            origin = "manifest label_map"
        _apply_labels(table, meta, path, declared, label_range, mapping, map_origin=origin)
        return cls(table, root, name or os.path.splitext(os.path.basename(path))[0], path,
                   meta)

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
        shown, bad = _printable_names(files, folder)
        df = pd.DataFrame({"id": shown, "file": shown})
        df.attrs["sertest_refused_rows"] = bad
        table = _validate(df, folder, folder, False, line_offset=0)
        return cls(table, folder, name or os.path.basename(folder), folder)

    @classmethod
    def from_audformat(cls, folder: str, *, table: str | None = None,
                       name: str | None = None, label_range=None,
                       label_map=None) -> "Dataset":
        """An audformat database folder (``db.yaml``); see :mod:`sertest.data.audformat`.

        ``table``: the table (split) to audit; needed when the database has tables with
        different items.  Float schemes with a minimum and maximum declare the label range.
        """
        from .audformat import read_audformat

        read = read_audformat(folder, table)
        root = os.path.abspath(folder)
        where = os.path.join(root, "db.yaml")
        notes: list[str] = []
        validated = _validate(read.frame, where, root, False, line_offset=0, notes=notes)
        meta: dict = {"notes": notes, "table": read.table}
        _apply_labels(validated, meta, f"{where}, table {read.table!r}", read.ranges,
                      label_range, label_map)
        return cls(validated, root, name or f"{read.name}{TABLE_SEP}{read.table}", root, meta)


def load_corpus() -> Dataset:
    """The bundled corpus (:func:`sertest.data.corpus.corpus_path`) as a :class:`Dataset`.

    >>> corpus = load_corpus()
    >>> corpus.name, corpus.has("speaker"), corpus.has("arousal")
    ('sertest-corpus', True, True)
    """
    return Dataset.from_manifest(corpus_path(), name="sertest-corpus")


def load_dataset(source: str | None = None, **kwargs) -> Dataset:
    """A dataset from a manifest, an audformat folder, a folder of audio, or the bundled corpus.

    ``FOLDER::TABLE`` (or ``table=``) chooses the table of an audformat database.  Keyword
    options: ``allow_outside_root``, ``table``, ``label_range``, ``label_map`` (see
    :mod:`sertest.data.labels`).

    >>> ds = load_dataset()  # no source: the bundled corpus
    >>> few = ds.subset(ds.ids[:3])
    >>> len(few), few.ids == ds.ids[:3]
    (3, True)
    """
    table = kwargs.get("table")
    labels = {k: kwargs.get(k) for k in ("label_range", "label_map")}
    if source is not None and TABLE_SEP in source and not os.path.exists(source):
        source, _, chosen = source.rpartition(TABLE_SEP)
        if not os.path.exists(os.path.join(source, "db.yaml")):
            raise DataError(f"--data {source}{TABLE_SEP}{chosen}: {TABLE_SEP}TABLE chooses a "
                            f"table of an audformat database, but {source!r} has no db.yaml")
        if table is not None and table != chosen:
            raise UsageError(f"--data names table {chosen!r} but table={table!r} was given; "
                             "choose one")
        table = chosen
    if source is None:
        ds = load_corpus()
        return ds.relabelled(**labels) if any(labels.values()) else ds
    if os.path.isdir(source):
        if os.path.exists(os.path.join(source, "db.yaml")):
            return Dataset.from_audformat(source, table=table, **labels)
        manifest = [f for f in ("manifest.csv", "manifest.parquet") if
                    os.path.exists(os.path.join(source, f))]
        if manifest:
            return Dataset.from_manifest(os.path.join(source, manifest[0]),
                                         allow_outside_root=kwargs.get("allow_outside_root", False),
                                         **labels)
        ds = Dataset.from_folder(source)
        return ds.relabelled(**labels) if any(labels.values()) else ds
    if os.path.isfile(source):
        return Dataset.from_manifest(source, allow_outside_root=kwargs.get("allow_outside_root", False),
                                     **labels)
    raise DataError(f"--data {source!r}: no such manifest or folder; give a CSV/TSV/Parquet "
                    f"manifest, an audformat folder (db.yaml, optionally FOLDER{TABLE_SEP}TABLE) "
                    "or a folder of audio files")


def _apply_labels(table: pd.DataFrame, meta: dict, where: str, declared: dict,
                  label_range, label_map, map_origin: str = "--label-map") -> None:
    """Rescale declared label ranges and rename classes in ``table`` (in place); record
    what was applied, and the notes, in ``meta``."""
    ranges = merge_ranges(declared, parse_label_range(label_range))
    applied = apply_label_range(table, ranges, where)
    mapping, notes = apply_label_map(table, parse_label_map(label_map), map_origin)
    if applied:
        meta["label_range"] = applied
    if mapping:
        meta["label_map"] = mapping
    meta.setdefault("notes", [])
    meta["notes"] = list(meta["notes"]) + notes
    for note in meta["notes"]:
        log.warning("%s: %s", where, note)


def _printable_names(files: list[str], folder: str) -> tuple[list[str], dict[int, str]]:
    """File names as valid UTF-8 text (undecodable bytes escaped, e.g. ``caf\\xe9.wav``),
    and the positions of the names that are not UTF-8 with the reason they are refused:
    libsndfile cannot open such a path, and no report could show it."""
    shown, bad = [], {}
    for pos, rel in enumerate(files):
        try:
            rel.encode("utf-8")
            shown.append(rel)
        except UnicodeEncodeError:
            text = os.fsencode(rel).decode("utf-8", "backslashreplace")
            shown.append(text)
            bad[pos] = (f"{os.path.join(folder, text)}: the file name is not valid UTF-8; "
                        "refused (rename it to UTF-8, e.g. convmv -f latin1 -t utf-8 --notest)")
    return shown, bad


def _where(path: str, row_pos: int, line_offset: int) -> str:
    if line_offset:
        return f"{path}, line {row_pos + line_offset}"
    return f"{path}, row {row_pos}"


def _validate(df: pd.DataFrame, path: str, root: str, allow_outside_root: bool,
              line_offset: int, notes: list[str] | None = None) -> pd.DataFrame:
    notes = [] if notes is None else notes
    df = df.copy()
    df.columns = [str(c).strip() for c in df.columns]
    df = sex_from_gender(df, notes)
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
    # rows refused per item (outside the root, undecodable names): pos -> reason; they stay
    # in the table and the engine reports each as an item error (stage decode)
    refused: dict[int, str] = dict(df.attrs.get("sertest_refused_rows", {}))
    for pos, value in enumerate(df["file"].tolist()):
        if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
            raise DataError(f"{_where(path, pos, line_offset)}, column 'file': empty path")
        value = str(value).strip()
        if "\x00" in value:
            raise DataError(f"{_where(path, pos, line_offset)}, column 'file': path contains a "
                            "NUL character")
        full = value if os.path.isabs(value) else os.path.join(root, value)
        full = os.path.normpath(full)
        if not allow_outside_root and pos not in refused:
            real = os.path.realpath(full)
            if os.path.commonpath([real, root_real]) != root_real:
                via = f" (a symlink to {real})" if real != full else ""
                refused[pos] = (f"{_where(path, pos, line_offset)}, column 'file': {value!r}"
                                f"{via} is outside the data root {root}; refused (pass "
                                "--allow-outside-root to permit it)")
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
    df.attrs.pop("sertest_refused_rows", None)
    if refused and len(refused) == len(df):
        raise DataError(f"every one of the {len(df)} item(s) is refused, e.g. "
                        f"{refused[min(refused)]}")
    df.attrs["refused"] = {str(ids.iloc[pos]): reason for pos, reason in sorted(refused.items())}
    if refused:
        log.warning("%d of %d item(s) refused (each is an item error in results.json; the "
                    "others are audited):\n  %s", len(refused), len(df),
                    "\n  ".join(df.attrs["refused"].values()))
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
        df["sex"] = normalise_sex(df["sex"], notes)
    return df
