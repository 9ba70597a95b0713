"""replicates.npz: every cell's replicates in one float32 array (fast to write), and the
one-array-per-cell files of earlier versions still read."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sertest.results import read_replicates, write_replicates

cells = st.dictionaries(
    # any group label, trailing NULs included (numpy text alone would drop them)
    st.text(st.characters(blacklist_categories=("Cs",)),
            min_size=1, max_size=12).map(lambda s: "m|t|arousal|ccc|" + s),
    st.lists(st.floats(-1, 1, width=32), min_size=0, max_size=7).map(np.array),
    max_size=6)


@settings(max_examples=60, deadline=None)
@given(cells)
def test_round_trip_as_float32(tmp_path_factory, replicates):
    path = tmp_path_factory.mktemp("r") / "replicates.npz"
    write_replicates(str(path), replicates)
    back = read_replicates(str(path))
    assert sorted(back) == sorted(replicates)
    for k, v in replicates.items():
        assert back[k].dtype == np.float64
        np.testing.assert_array_equal(back[k], v.astype(np.float32).astype(np.float64))


def test_keys_ending_in_nul_are_kept_apart(tmp_path):
    reps = {"m|t|arousal|ccc|a": np.float32([0.25]), "m|t|arousal|ccc|a\x00": np.float32([0.5])}
    write_replicates(str(tmp_path / "r.npz"), reps)
    back = read_replicates(str(tmp_path / "r.npz"))
    assert sorted(back) == sorted(reps) and back["m|t|arousal|ccc|a\x00"][0] == 0.5


def test_nan_replicates_and_lengths_survive(tmp_path):
    reps = {"a": np.array([np.nan, 0.5]), "b": np.array([0.1, 0.2, np.nan, 0.4])}
    write_replicates(str(tmp_path / "r.npz"), reps)
    back = read_replicates(str(tmp_path / "r.npz"))
    assert back["a"].size == 2 and np.isnan(back["a"][0]) and back["a"][1] == 0.5
    assert back["b"].size == 4 and np.isnan(back["b"][2])


def test_files_of_earlier_versions_are_read(tmp_path):
    """Before: one compressed array ``r<i>`` per key, keys in ``__keys__``."""
    keys = ["m|t|arousal|ccc|", "m|t|valence|ccc|female"]
    with open(tmp_path / "old.npz", "wb") as fh:
        np.savez_compressed(fh, __keys__=np.asarray(keys), r0=np.float32([0.25, 0.5]),
                            r1=np.float32([0.75]))
    back = read_replicates(str(tmp_path / "old.npz"))
    assert back == {keys[0]: back[keys[0]], keys[1]: back[keys[1]]}
    np.testing.assert_array_equal(back[keys[0]], [0.25, 0.5])
    np.testing.assert_array_equal(back[keys[1]], [0.75])


def test_missing_file_is_no_replicates(tmp_path):
    assert read_replicates(str(tmp_path / "none.npz")) == {}
