"""The signal statistics' spectral estimate: :func:`welch_psd` is scipy's Welch estimate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import welch

from sertest.engine.signal_stats import SignalStats, band_edge_hz, welch_psd

hyp = settings(deadline=None, max_examples=60)


@hyp
@given(n=st.integers(8, 3000), nperseg=st.integers(2, 600), rows=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1), offset=st.floats(-1.0, 1.0),
       rate=st.sampled_from([8000, 16000, 22050]))
def test_welch_psd_is_scipys_welch_estimate(n, nperseg, rows, seed, offset, rate):
    nperseg = min(nperseg, n)
    x = np.random.default_rng(seed).standard_normal((rows, n)) * 0.1 + offset
    freqs, psd = welch_psd(x, rate, nperseg=nperseg)
    f_ref, p_ref = welch(x, fs=rate, nperseg=nperseg, axis=-1)
    assert psd.shape == p_ref.shape == (rows, nperseg // 2 + 1)
    np.testing.assert_array_equal(freqs, f_ref)
    np.testing.assert_allclose(psd, p_ref, rtol=1e-9, atol=1e-12 * p_ref.max())


def test_welch_psd_refuses_a_signal_shorter_than_a_segment():
    with pytest.raises(ValueError, match="nperseg=512"):
        welch_psd(np.zeros(100), 16000)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_band_edges_of_the_bundled_corpus_are_those_of_scipys_welch(rate):
    """The edge is a threshold on the spectrum, so a rounding change could move it in
    principle; on real speech it does not (every item of a slice of the corpus)."""
    from sertest import audio
    from sertest.data import load_dataset
    from sertest.engine.signal_stats import EDGE_FLOOR_DB

    ds = load_dataset(None)
    for item_id in ds.ids[::25]:
        x = audio.load(ds.table.loc[item_id, "file"], rate).astype(np.float64)
        f, p = welch(x, fs=rate, nperseg=min(512, x.size))
        ref = f[np.nonzero(p > p.max() * 10.0 ** (-EDGE_FLOOR_DB / 10.0))[0][-1]]
        assert band_edge_hz(x, rate) == ref, item_id


def test_signal_stats_rows_do_not_depend_on_the_batch():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 8000)) * np.array([[0.01], [0.1], [0.5], [1.2]])).astype(np.float32)
    stats = SignalStats(16000)
    together = stats.predict_batch(x)
    alone = np.vstack([stats.predict_batch(row[None]) for row in x])
    np.testing.assert_array_equal(together, alone)
    assert together[3, 0] > 0 and together[0, 0] == 0  # only the loud row clips
