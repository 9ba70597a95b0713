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
        self._rows: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self._frames: dict[tuple[str, str], pd.DataFrame] = {}
        self.clipped: dict[tuple[str, str, str], frozenset[str]] = {}

    def add(self, model: str, cond_key: str, item_id: str, row: np.ndarray,
            clipped: frozenset[str] | set[str] | tuple = ()) -> None:
        """Store a row; ``clipped``: the names of its outputs that were clipped into range."""
        self._rows.setdefault((model, cond_key), {})[item_id] = np.asarray(row, dtype=np.float64)
        self._frames.pop((model, cond_key), None)
        if clipped:
            self.clipped[(model, cond_key, item_id)] = frozenset(clipped)
        else:
            self.clipped.pop((model, cond_key, item_id), None)

    def has(self, model: str, cond_key: str, item_id: str) -> bool:
        return item_id in self._rows.get((model, cond_key), {})

    def frame(self, model: str, condition: Perturbation | str | None, ids=None) -> pd.DataFrame:
        """Predictions as a table (index: item id; columns: the model's outputs)."""
        key = condition if isinstance(condition, str) else condition_key(condition)
        if (model, key) not in self._frames:
            rows = self._rows.get((model, key), {})
            if rows:
                order = sorted(rows)
                data = np.vstack([rows[i] for i in order])
            else:
                order, data = [], np.empty((0, len(self.outputs[model])))
            self._frames[(model, key)] = pd.DataFrame(
                data, index=pd.Index(order, name="id"), columns=list(self.outputs[model]))
        df = self._frames[(model, key)]
        if ids is not None:
            df = df.loc[df.index.intersection(list(ids), sort=False)]
        return df

    def count(self) -> int:
        return sum(len(v) for v in self._rows.values())
