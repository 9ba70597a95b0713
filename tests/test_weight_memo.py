"""Resample weights drawn once per generator state and reused (sertest.stats.weight_memo):
a hit must be indistinguishable from drawing again, and the memo bounded in bytes.  Also the
vectorised (weighted) forms added with it: equal to the metric on the resampled items."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sertest import metrics
from sertest.checks.correctness import _share, share_difference, weighted_spearman
from sertest.stats import bootstrap, weight_memo
from sertest.stats.bootstrap import replicates, two_stage_weights, weight_blocks
from sertest.stats.weight_memo import WeightMemo


@pytest.fixture
def fresh_memo(monkeypatch):
    memo = WeightMemo()
    monkeypatch.setattr(bootstrap, "MEMO", memo)
    return memo


def _blocks(n, n_boot, rng, clusters=None, max_cells=None):
    return [(s, w.copy()) for s, w in weight_blocks(n, n_boot, rng, clusters, max_cells)]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), n_boot=st.integers(1, 20), seed=st.integers(0, 2**32 - 1),
       n_clusters=st.one_of(st.none(), st.integers(1, 5)), max_cells=st.integers(1, 200))
def test_a_hit_draws_the_same_weights_and_leaves_the_generator_where_drawing_would(
        n, n_boot, seed, n_clusters, max_cells):
    clusters = None if n_clusters is None else [f"s{i % n_clusters}" for i in range(n)]
    memo = WeightMemo()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bootstrap, "MEMO", memo)
        a = np.random.default_rng(seed)
        first = _blocks(n, n_boot, a, clusters, max_cells)
        b = np.random.default_rng(seed)
        again = _blocks(n, n_boot, b, clusters, max_cells)
        assert memo.hits == 1
    none = np.random.default_rng(seed)  # the same draw with a memo that keeps nothing
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bootstrap, "MEMO", WeightMemo(max_bytes=0))
        plain = _blocks(n, n_boot, none, clusters, max_cells)
    for x, y, z in zip(first, again, plain):
        assert x[0] == y[0] == z[0]
        np.testing.assert_array_equal(x[1], y[1])
        np.testing.assert_array_equal(x[1], z[1])
    # the next numbers of every generator are the same: the state after a hit is right
    assert a.random() == b.random() == none.random()


def test_other_inputs_are_other_draws(fresh_memo):
    rng = lambda: np.random.default_rng(7)  # noqa: E731
    _blocks(10, 6, rng())
    _blocks(11, 6, rng())  # other items
    _blocks(10, 7, rng())  # other number of resamples
    _blocks(10, 6, rng(), clusters=list("aabbccddee"))  # clusters
    _blocks(10, 6, rng(), clusters=list("aabbbcddee"))  # other clusters
    _blocks(10, 6, np.random.default_rng(8))  # another generator
    _blocks(10, 6, rng(), max_cells=20)  # other blocks
    assert fresh_memo.hits == 0 and fresh_memo.misses == 7
    _blocks(10, 6, rng(), clusters=list("xxyyzzwwvv"))  # the same clusters, named otherwise
    assert fresh_memo.hits == 1  # the same draw: the codes are what is drawn


def test_shared_weights_are_read_only(fresh_memo):
    (_, w), *_ = weight_blocks(5, 4, np.random.default_rng(0))
    with pytest.raises(ValueError):
        w[0, 0] = 3.0
    strata = [np.arange(3), np.arange(3, 6)]
    ws = two_stage_weights(np.array(list("aabbcc")), strata, 4, np.random.default_rng(0))
    with pytest.raises(ValueError):
        ws[0, 0] = 3.0


def test_two_stage_hit_equals_a_new_draw(fresh_memo):
    clusters = np.array(["a", "a", "b", "c", "c", "c", "d"], dtype=object)
    strata = [np.array([0, 1, 2]), np.array([3, 4, 5, 6])]
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    first = two_stage_weights(clusters, strata, 9, a)
    second = two_stage_weights(clusters, strata, 9, b)
    assert fresh_memo.hits == 1 and second is first
    c = np.random.default_rng(3)
    fresh_memo.clear()
    np.testing.assert_array_equal(two_stage_weights(clusters, strata, 9, c), first)
    assert a.random() == b.random() == c.random()
    # other strata are another draw
    two_stage_weights(clusters, [np.arange(7)], 9, np.random.default_rng(3))
    assert fresh_memo.hits == 1


def test_the_memo_is_bounded_in_bytes():
    memo = WeightMemo(max_bytes=4000)
    for i in range(10):
        memo.put(("k", i), ((0, np.zeros((10, 10))),), {})  # 800 bytes each
    assert memo.nbytes <= 4000 and len(memo) == 5
    assert memo.get(("k", 0)) is None and memo.get(("k", 9)) is not None
    memo.put(("big",), ((0, np.zeros((30, 10))),), {})  # 2400 bytes > a quarter: not kept
    assert memo.get(("big",)) is None and len(memo) == 5


def test_generator_key_tells_states_apart():
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    assert weight_memo.generator_key(a) == weight_memo.generator_key(b)
    a.random()
    assert weight_memo.generator_key(a) != weight_memo.generator_key(b)
    assert weight_memo.generator_key(np.random.Generator(np.random.MT19937(1))) != \
        weight_memo.generator_key(b)


def test_array_digest_reads_the_values_of_object_arrays():
    x = np.array(["spk1", "spk2"], dtype=object)
    y = np.array(["spk" + "1", "spk2"], dtype=object)
    assert weight_memo.array_digest(x) == weight_memo.array_digest(y)
    assert weight_memo.array_digest(x) != weight_memo.array_digest(x[::-1])


# -- the weighted forms: a row of draw counts = the metric on the items drawn ------------------
def _per_row(metric, w, *arrays):
    out = []
    for row in w:
        chosen = np.repeat(np.arange(len(arrays[0])), row.astype(np.int64))
        out.append(metric(*(a[chosen] for a in arrays)) if chosen.size else np.nan)
    return np.array(out)


values = st.lists(st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0.0, 0.1, 0.5, 1.0])),
                  min_size=3, max_size=25)


@settings(max_examples=80, deadline=None)
@given(t=values, seed=st.integers(0, 2**32 - 1), bins=st.integers(1, 12))
def test_weighted_jensen_shannon_equals_the_resampled_items(t, seed, bins):
    rng = np.random.default_rng(seed)
    x = np.array(t)
    y = np.clip(x + rng.normal(0, 0.2, x.size), -1, 2)
    jsd = functools.partial(metrics.jensen_shannon_distance, bins=bins)
    w = rng.integers(0, 3, size=(15, x.size)).astype(float)
    w[0] = 0.0  # a row that draws nothing: NaN
    f = bootstrap.weighted_form(jsd, (x, y))
    assert f is not None
    got = f(w)
    want = _per_row(jsd, w, x, y)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, equal_nan=True)


def test_weighted_jensen_shannon_is_what_replicates_use():
    x = np.linspace(0, 1, 40)
    y = x[::-1].copy()
    vec = replicates(metrics.jensen_shannon_distance, x, y, n_boot=50,
                     rng=np.random.default_rng(0))
    loop = replicates(lambda a, b: metrics.jensen_shannon_distance(a, b), x, y, n_boot=50,
                      rng=np.random.default_rng(0))
    np.testing.assert_array_equal(vec, loop)  # same numbers, bit for bit


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 30), seed=st.integers(0, 2**32 - 1))
def test_weighted_share_forms_equal_the_resampled_items(n, seed):
    rng = np.random.default_rng(seed)
    a = (rng.random(n) < 0.4).astype(float)
    b = (rng.random(n) < 0.6).astype(float)
    w = rng.integers(0, 3, size=(12, n)).astype(float)
    w[w.sum(axis=1) == 0, 0] = 1.0
    np.testing.assert_array_equal(bootstrap.weighted_form(share_difference, (a, b))(w),
                                  _per_row(share_difference, w, a, b))
    np.testing.assert_array_equal(bootstrap.weighted_form(_share, (np.zeros(n), b))(w),
                                  _per_row(_share, w, np.zeros(n), b))


@settings(max_examples=60, deadline=None)
@given(xs=st.lists(st.integers(0, 6), min_size=3, max_size=30), seed=st.integers(0, 99))
def test_weighted_spearman_tie_blocks_sum_like_the_indicator_product(xs, seed):
    """The tie blocks' weights come from sums over sorted columns (was a dense indicator
    product, items x blocks): the same ranks."""
    rng = np.random.default_rng(seed)
    x = np.array(xs, dtype=float)
    y = rng.integers(0, 4, x.size).astype(float)
    w = rng.integers(0, 3, size=(8, x.size)).astype(float)

    def ranks_by_product(v):
        _, block = np.unique(v, return_inverse=True)
        onehot = (block[:, None] == np.arange(block.max() + 1)[None, :]).astype(float)
        per_block = w @ onehot
        before = np.cumsum(per_block, axis=1) - per_block
        return (before + (per_block + 1.0) / 2.0)[:, block]

    rx, ry = ranks_by_product(x), ranks_by_product(y)
    sw = np.maximum(w.sum(axis=1, keepdims=True), 1e-300)
    dx = rx - (w * rx).sum(axis=1, keepdims=True) / sw
    dy = ry - (w * ry).sum(axis=1, keepdims=True) / sw
    sxx, syy, sxy = (w * dx * dx).sum(axis=1), (w * dy * dy).sum(axis=1), (w * dx * dy).sum(axis=1)
    want = np.full(w.shape[0], np.nan)
    ok = (sxx > 1e-12) & (syy > 1e-12)
    want[ok] = np.clip(sxy[ok] / np.sqrt(sxx[ok] * syy[ok]), -1, 1)
    np.testing.assert_array_equal(weighted_spearman(w, x, y), want)
