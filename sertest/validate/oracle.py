"""The oracle: a model that knows the truth up to a little item-seeded noise.

Dimensions: the label plus Gaussian noise of standard deviation ``sigma`` (0.1 by default),
**not** clipped to the model's declared range: clipping would make the error depend on the
label (an item labelled 0 could only be over-predicted, by 0.04 on average for sigma 0.1),
and so on every group whose labels lie nearer the ends of the scale - a bias the oracle must
not have.  The engine accepts outputs up to 0.5 outside the range without clipping; the
noise is drawn per item from
``derive_rng(seed, "validate", "oracle", item id)``, so it is independent of the item's group
and of the condition, and the oracle predicts the same for an item under every perturbation
(and for the renditions of one utterance, items sharing a ``pair`` value).
An item without a label gets the mean label plus the same noise.

Emotion: the true class (a one-hot score row over the model's classes); a share ``confusion``
of the items (0.1 by default, item-seeded) gets another class, drawn uniformly.  Items whose
label is missing or is not one of the model's classes get a uniformly drawn class.

A sound suite should flag this model almost never: the targets of issue 12 ask for at most
5 % of resamples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..vocabulary import EMOTION
from .defects import Setup, item_draws

DEFAULT_SIGMA = 0.1
DEFAULT_CONFUSION = 0.1


def oracle_frame(setup: Setup, ids, sigma: float = DEFAULT_SIGMA,
                 confusion: float = DEFAULT_CONFUSION) -> pd.DataFrame:
    """The oracle's prediction rows for ``ids`` (columns: the model's outputs)."""
    ids = list(ids)
    table = setup.table.reindex(ids)
    dims, classes = setup.dimensions, setup.classes
    # renditions of one utterance (a shared ``pair``) share their draws: the oracle ignores
    # the channel, so paired recordings get the same prediction
    keys = [f"pair:{p}" if isinstance(p, str) and p else f"item:{i}"
            for i, p in zip(ids, table["pair"] if "pair" in table.columns
                            else [None] * len(ids))]
    z, u = item_draws(setup, "oracle", keys, normals=max(1, len(dims)), uniforms=3)
    out = pd.DataFrame(index=pd.Index(ids, name="id"), columns=list(dims) + list(classes),
                       dtype=float)
    for j, d in enumerate(dims):
        if d in setup.table.columns:
            truth = pd.to_numeric(table[d], errors="coerce").to_numpy(dtype=float)
            fill = float(np.nanmean(pd.to_numeric(setup.table[d], errors="coerce")))
            if np.isnan(fill):
                fill = 0.5
        else:
            truth, fill = np.full(len(ids), np.nan), 0.5
        truth = np.where(np.isnan(truth), fill, truth)
        out[d] = truth + sigma * z[:, j]
    if classes:
        k = len(classes)
        index = {c: i for i, c in enumerate(classes)}
        labels = (table[EMOTION] if EMOTION in table.columns
                  else pd.Series([None] * len(ids), index=ids))
        true = np.array([index.get(str(v), -1) if isinstance(v, str) else -1 for v in labels])
        drawn = np.floor(u[:, 2] * k).astype(int)
        other = true + 1 + np.floor(u[:, 1] * (k - 1)).astype(int)
        cls = np.where(true < 0, drawn, np.where(u[:, 0] < confusion, other % k, true))
        scores = np.zeros((len(ids), k))
        scores[np.arange(len(ids)), cls] = 1.0
        out[list(classes)] = scores
    return out
