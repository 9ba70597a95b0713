"""Predictions gathered during an audit, by model, condition and item."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..perturb.base import Perturbation
from ..vocabulary import CLEAN


def condition_key(condition: Perturbation | None) -> str:
    """``"clean"`` for unperturbed audio, else the perturbation's canonical spec string."""
    return CLEAN if condition is None else condition.key


class PredictionStore:
    """Rows of model outputs keyed by (model, condition key, item id).

    ``clipped`` maps the (model, condition key, item id) of the rows whose regression
    outputs lay further than ``RANGE_TOLERANCE`` outside the model's declared range to the
    names of the clipped outputs (see :func:`sertest.engine.execute.clip_row`); the
    model-health check and the ``clipped`` flags count them.
    """

    def __init__(self, outputs: dict[str, tuple[str, ...]]) -> None:
        self.outputs = outputs
        self._rows: dict[tuple[str, str], _Rows] = {}
        self._frames: dict[tuple[str, str], pd.DataFrame] = {}
        self.clipped: dict[tuple[str, str, str], frozenset[str]] = {}

    def add(self, model: str, cond_key: str, item_id: str, row: np.ndarray,
            clipped: frozenset[str] | set[str] | tuple = ()) -> None:
        """Store a row; ``clipped``: the names of its outputs that were clipped into range."""
        row = np.asarray(row, dtype=np.float64).ravel()
        rows = self._rows.get((model, cond_key))
        if rows is None:
            width = len(self.outputs[model]) if model in self.outputs else row.size
            rows = self._rows[(model, cond_key)] = _Rows(width)
        if row.size != rows.width:
            raise ValueError(f"model {model!r}, condition {cond_key!r}, item {item_id!r}: a row "
                             f"of {row.size} values, expected {rows.width} (one per output)")
        rows.put(item_id, row)
        self._frames.pop((model, cond_key), None)
        if clipped:
            self.clipped[(model, cond_key, item_id)] = frozenset(clipped)
        else:
            self.clipped.pop((model, cond_key, item_id), None)

    def has(self, model: str, cond_key: str, item_id: str) -> bool:
        rows = self._rows.get((model, cond_key))
        return rows is not None and item_id in rows.index

    def frame(self, model: str, condition: Perturbation | str | None, ids=None) -> pd.DataFrame:
        """Predictions as a table (index: item id; columns: the model's outputs)."""
        key = condition if isinstance(condition, str) else condition_key(condition)
        if (model, key) not in self._frames:
            rows = self._rows.get((model, key))
            if rows is not None and rows.index:
                order = sorted(rows.index)
                data = rows.data[[rows.index[i] for i in order]]
            else:
                order, data = [], np.empty((0, len(self.outputs[model])))
            self._frames[(model, key)] = (pd.DataFrame(
                data, index=pd.Index(order, name="id"), columns=list(self.outputs[model])),
                order)
        df, order = self._frames[(model, key)]
        if ids is not None:  # the rows of ``ids``, in the frame's (sorted) order
            want = ids if isinstance(ids, (set, frozenset, dict)) else set(ids)
            keep = np.fromiter((i in want for i in order), dtype=bool, count=len(order))
            df = df.iloc[np.flatnonzero(keep)]
        return df

    def count(self) -> int:
        return sum(len(v.index) for v in self._rows.values())

    def keys(self) -> list[tuple[str, str]]:
        """The (model, condition key) pairs that hold predictions, sorted."""
        return sorted(self._rows)


class _Rows:
    """One (model, condition)'s rows in one growing float64 matrix, a row per item: the
    store holds no Python object per prediction (an audit of 20 x the bundled corpus stores
    about 70,000 rows; one small array each cost about 0.5 KB of memory)."""

    __slots__ = ("index", "data", "width")

    def __init__(self, width: int) -> None:
        self.width = width
        self.index: dict[str, int] = {}  # item id -> row of ``data``
        self.data = np.empty((8, width))

    def put(self, item_id: str, row: np.ndarray) -> None:
        i = self.index.get(item_id)
        if i is None:
            i = len(self.index)
            if i == len(self.data):  # grow by half: amortised O(1) per row
                grown = np.empty((i + i // 2 + 8, self.width))
                grown[:i] = self.data[:i]
                self.data = grown
            self.index[item_id] = i
        self.data[i] = row
