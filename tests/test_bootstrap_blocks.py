"""The bootstrap draws its resamples in blocks of bounded size (issue 17: memory bounded
whatever the number of items); the block size must change no number."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sertest import metrics
from sertest.stats import bootstrap
from sertest.stats.bootstrap import cluster_weights, replicates, weight_blocks


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), n_boot=st.integers(1, 30), max_cells=st.integers(1, 400),
       n_clusters=st.one_of(st.none(), st.integers(1, 6)), seed=st.integers(0, 2**32 - 1))
def test_blocks_stack_to_the_whole_matrix(n, n_boot, max_cells, n_clusters, seed):
    clusters = None if n_clusters is None else [f"spk{i % n_clusters}" for i in range(n)]
    whole = cluster_weights(n, n_boot, np.random.default_rng(seed), clusters)
    blocks = list(weight_blocks(n, n_boot, np.random.default_rng(seed), clusters,
                                max_cells=max_cells))
    assert [start for start, _ in blocks] == list(np.cumsum([0] + [len(w) for _, w in blocks])[:-1])
    rows = max(2, min(n_boot, max_cells // n))  # rows per block (two at least)
    assert all(len(w) <= 2 * rows - 1 for _, w in blocks)  # bounded
    assert n_boot == 1 or all(len(w) >= 2 for _, w in blocks)  # never a lone row
    stacked = np.vstack([w for _, w in blocks])
    assert stacked.dtype == np.float64
    np.testing.assert_array_equal(stacked, whole)


def _replicates(cells, *args, **kwargs):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bootstrap, "_MAX_WEIGHT_CELLS", cells)
        return replicates(*args, **kwargs)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 80), seed=st.integers(0, 2**32 - 1), cells=st.integers(1, 3000),
       grouped=st.booleans())
def test_replicates_do_not_depend_on_the_block_size(n, seed, cells, grouped):
    """Bit for bit, NaN where NaN (numpy's einsum sums a lone row in another order,
    hence blocks of two rows at least)."""
    rng = np.random.default_rng(seed)
    truth, pred, other = rng.random(n), rng.random(n), rng.random(n)
    groups = [i % 4 for i in range(n)] if grouped else None
    for metric, minus in ((metrics.ccc, None), (metrics.mae, metrics.mae)):
        kw = dict(n_boot=37, groups=groups)
        if minus is not None:
            kw.update(minus=minus, minus_arrays=(truth, other))
        one = _replicates(10**9, metric, truth, pred,
                          rng=np.random.default_rng(seed + 1), **kw)
        many = _replicates(cells, metric, truth, pred,
                           rng=np.random.default_rng(seed + 1), **kw)
        np.testing.assert_array_equal(one, many)  # bit for bit, NaN where NaN


def test_a_block_stays_small_for_many_items():
    """20 x the bundled corpus: no block of the 500 resamples exceeds twice the cell
    budget, and a lone row in a replicate of 19,360 items is the case that needs care."""
    sizes = [w.shape for _, w in weight_blocks(19_360, 500, np.random.default_rng(0))]
    assert max(r * c for r, c in sizes) <= 2 * bootstrap._MAX_WEIGHT_CELLS
    assert sum(r for r, _ in sizes) == 500
    rng = np.random.default_rng(3)
    truth, pred = rng.random(19_360), rng.random(19_360)
    one = _replicates(10**9, metrics.ccc, truth, pred, n_boot=25, rng=np.random.default_rng(4))
    blocks = _replicates(12 * 19_360, metrics.ccc, truth, pred, n_boot=25,
                         rng=np.random.default_rng(4))  # 12 + 13 rows, not 12 + 12 + 1
    np.testing.assert_array_equal(one, blocks)
