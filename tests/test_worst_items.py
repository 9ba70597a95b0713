"""The robustness tests' worst items and the store's row selection, read by position for
speed (issue 17): the same rows as reading each item by label."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from sertest.checks.conditions import Condition, PairResult, worst_items
from sertest.engine.store import PredictionStore
from sertest.perturb import from_spec


def _reference_regression(res: PairResult, n_worst: int) -> list[tuple]:
    """By label, one item at a time: largest |change| first, ties by id as text."""
    order = sorted(res.delta.index, key=lambda i: (-abs(float(res.delta.loc[i])), str(i)))
    return [(i, round(float(res.delta.loc[i]), 4), round(float(res.base.loc[i]), 4),
             round(float(res.other.loc[i]), 4)) for i in order[:n_worst]]


def _reference_emotion(res: PairResult, n_worst: int, scores) -> list[tuple]:
    changed = res.delta[res.delta > 0].index
    drop = {i: 1.0 for i in changed}
    if scores is not None:
        s_base, s_other = scores
        for i in changed:
            c = res.base.loc[i]
            if i in s_base.index and i in s_other.index and c in s_base.columns:
                drop[i] = float(s_base.loc[i, c] - s_other.loc[i, c])
    order = sorted(changed, key=lambda i: (-drop[i], str(i)))[:n_worst]
    return [(i, round(drop[i], 4), res.base.loc[i], res.other.loc[i]) for i in order]


COND = Condition("noise", from_spec({"name": "white_noise", "snr_db": 10}))


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 25), n_worst=st.integers(1, 6), seed=st.integers(0, 2**32 - 1),
       shuffled=st.booleans())
def test_regression_worst_items_are_the_largest_changes(n, n_worst, seed, shuffled):
    rng = np.random.default_rng(seed)
    ids = [f"it{int(k)}" for k in rng.permutation(1000)[:n]]
    base = pd.Series(np.round(rng.random(n), 1), index=ids)  # ties are frequent
    other = pd.Series(np.round(rng.random(n), 1), index=ids)
    res = PairResult(base=base, other=other, delta=other - base)
    if shuffled:  # indexed otherwise than the change: read by label
        res.base = base.iloc[::-1]
    got = worst_items(res, n_worst, COND, emotion=False)
    assert [(r["id"], r["delta"], r["baseline_value"], r["condition_value"]) for r in got] \
        == _reference_regression(res, n_worst)
    assert all(r["condition"] == COND.spec() and r["label"] == "noise" for r in got)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 20), n_worst=st.integers(1, 5), seed=st.integers(0, 2**32 - 1),
       with_scores=st.booleans())
def test_emotion_worst_items_are_the_largest_drops_of_the_baseline_class(
        n, n_worst, seed, with_scores):
    rng = np.random.default_rng(seed)
    classes = ["angry", "happy", "neutral", "sad"]
    ids = [f"u{k}" for k in range(n)]
    base = pd.Series(rng.choice(classes, n), index=ids, dtype=object)
    other = pd.Series(rng.choice(classes, n), index=ids, dtype=object)
    res = PairResult(base=base, other=other, delta=(base != other).astype(float))
    scores = None
    if with_scores:  # some items without scores, one class the scores lack
        kept = ids[: max(1, n - 2)]
        cols = classes[:3]
        s_base = pd.DataFrame(np.round(rng.random((len(kept), 3)), 2), index=kept, columns=cols)
        s_other = pd.DataFrame(np.round(rng.random((len(kept), 3)), 2), index=kept,
                               columns=cols)
        scores = (s_base, s_other)
    got = worst_items(res, n_worst, COND, emotion=True, scores=scores)
    assert [(r["id"], r["delta"], r["baseline_label"], r["condition_label"]) for r in got] \
        == _reference_emotion(res, n_worst, scores)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 30), seed=st.integers(0, 99), as_type=st.sampled_from(
    ["list", "index", "set", "tuple"]))
def test_store_frame_rows_of_ids_in_the_frames_order(n, seed, as_type):
    rng = np.random.default_rng(seed)
    store = PredictionStore({"m": ("arousal", "valence")})
    ids = [f"id{k:03d}" for k in rng.permutation(40)[:n]]
    for i in ids:
        store.add("m", "clean", i, rng.random(2))
    whole = store.frame("m", None)
    ask = [i for i in rng.permutation(ids + ["missing-1", "missing-2"]).tolist()
           if rng.random() < 0.6]
    wanted = {"list": ask, "index": pd.Index(ask), "set": set(ask), "tuple": tuple(ask)}[as_type]
    got = store.frame("m", None, wanted)
    by_label = whole.loc[whole.index.intersection(ask, sort=False)]
    pd.testing.assert_frame_equal(got, by_label)
    got.iloc[:, 0] = -1.0  # the caller's copy: the store keeps its rows
    pd.testing.assert_frame_equal(store.frame("m", None), whole)


def test_the_checks_run_on_one_blas_thread(monkeypatch):
    """``evaluate`` limits BLAS to one thread while the checks run (a second one only
    spins on their small products) and gives the threads back after."""
    from threadpoolctl import threadpool_info

    from sertest.engine import evaluate as ev

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    seen = []
    monkeypatch.setattr(ev, "_evaluate", lambda *a: seen.append(blas_threads()) or [])
    before = blas_threads()
    assert before, "numpy has a BLAS"
    assert ev.evaluate(None, None, {}) == []
    assert seen == [[1] * len(before)]
    assert blas_threads() == before


def test_the_shared_weights_are_freed_after_the_checks(monkeypatch):
    from sertest.engine import evaluate as ev
    from sertest.stats import weight_memo
    from sertest.stats.bootstrap import weight_blocks

    def checks(*a):
        list(weight_blocks(50, 20, np.random.default_rng(0)))
        assert weight_memo.MEMO.nbytes > 0
        return []

    monkeypatch.setattr(ev, "_evaluate", checks)
    ev.evaluate(None, None, {})
    assert weight_memo.MEMO.nbytes == 0 and len(weight_memo.MEMO) == 0
