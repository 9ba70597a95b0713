"""Slice discovery (``fairness_slices``): planted weak slice found, clean oracle left alone.

The planted-defect equivalent of :mod:`sertest.validate`: on the bundled corpus (968 items,
no audio decoded) an oracle predicts each label plus item-seeded Gaussian noise
(sd 0.1); a planted model adds a shift of 0.15 for one language x sex cell (German female
voices, 50 items).  Slice discovery must list that cell first and fail the test; for the
clean oracle it must discover no slice at FDR 0.05 (checked on several seeds: the family
of ~700 overlapping slices is controlled as a whole).  One end-to-end audit on decoded
audio checks the acoustic features (level bins from the engine's signal statistics).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest import audit
from sertest.checks.base import Context
from sertest.checks.slices import FairnessSlices, benjamini_hochberg, quantile_bins
from sertest.checks.verdict import judge_entry
from sertest.data import load_dataset
from sertest.engine.store import PredictionStore
from sertest.errors import UsageError
from sertest.models.callable import CallableModel
from sertest.seeding import derive_rng

DIMS = ("arousal", "dominance", "valence")


class _Outputs:
    """What the context reads of a model: its outputs (the predictions are in the store)."""

    targets = DIMS
    classes = ()


@pytest.fixture(scope="module")
def corpus():
    return load_dataset(None)


def _context(dataset, shift_cell: dict | None, seed: int, sigma: float = 0.1) -> Context:
    table = dataset.table
    rng = derive_rng(seed, "test-slices", "oracle")
    store = PredictionStore({"m": DIMS})
    pred = table[list(DIMS)].to_numpy(float) + sigma * rng.standard_normal((len(table), 3))
    if shift_cell:
        mask = np.ones(len(table), bool)
        for col, value in shift_cell.items():
            mask &= (table[col] == value).to_numpy()
        pred[mask] += 0.15
    for item_id, row in zip(table.index, pred):
        store.add("m", "clean", item_id, row)
    return Context(dataset, store, {"m": _Outputs()}, seed=seed, n_boot=0)


def _run(ctx, **params):
    check = FairnessSlices({"features": [], **params})
    outcome = check.measure(ctx, "m", "arousal")
    fields = judge_entry(outcome.measurements, check.threshold_for)
    return outcome, fields


def test_planted_language_sex_cell_is_the_top_slice(corpus):
    outcome, fields = _run(_context(corpus, {"language": "de", "sex": "female"}, seed=0))
    count, top = outcome.measurements[0], outcome.measurements[1]
    assert count.metric == "discovered_slices" and count.value >= 1 and count.verdict == "fail"
    assert fields["verdict"] == "fail"
    names = {top.group, *top.extra.get("same_items_as", [])}
    assert "language=de & sex=female" in names and top.n == 50  # accent=de is the same items
    assert 0.08 < top.value < 0.2 and top.ci[0] > 0  # mean |error| rises by about 0.1
    assert top.extra["q_value"] <= 0.05 and top.extra["speakers"] == 2
    assert top.verdict == "info"
    assert all(m.n >= 30 for m in outcome.measurements[1:])  # never below min_size


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_clean_oracle_reports_no_slice(corpus, seed):
    outcome, fields = _run(_context(corpus, None, seed=seed))
    count = outcome.measurements[0]
    assert count.value == 0 and fields["verdict"] == "pass"
    assert count.extra["tested"] > 300  # depth 2 over the manifest's columns
    assert all(not m.extra["discovered"] for m in outcome.measurements[1:])
    assert any("no slice" in n for n in outcome.notes)


def test_min_size_bounds_every_listed_slice(corpus):
    outcome, _ = _run(_context(corpus, {"language": "de", "sex": "female"}, seed=0),
                      min_size=60)
    assert all(m.n >= 60 for m in outcome.measurements[1:])
    assert not [m for m in outcome.measurements if "de & sex=female" in (m.group or "")]


def test_benjamini_hochberg_matches_scipy():
    from scipy.stats import false_discovery_control

    p = derive_rng(0, "bh").uniform(size=50) ** 3
    assert np.allclose(benjamini_hochberg(p), false_discovery_control(p))


def test_quantile_bins_label_ranges():
    b = quantile_bins(pd.Series([100.0, 110, 120, 200, 210, 220, np.nan]), 2, "Hz")
    assert b.iloc[0] == "100-160 Hz" and b.iloc[5] == "160-220 Hz" and b.isna().iloc[6]
    # a negative edge anywhere: every label of the column reads "a to b"
    b = quantile_bins(pd.Series([-5.17, -3.0, -0.5, 0.5, 2.0, 5.0]), 2, "st")
    assert list(b) == ["-5.17 to 0 st"] * 3 + ["0 to 5 st"] * 3


@pytest.mark.parametrize("params, words", [({"depth": 3}, "depth=3"),
                                           ({"fdr": 1.5}, "fdr=1.5"),
                                           ({"features": ["snr"]}, "choose from")])
def test_bad_parameters_are_named(params, words):
    with pytest.raises(UsageError, match=words):
        FairnessSlices(params)


def test_acoustic_level_slice_found_end_to_end(tiny_data):
    """A model whose error grows with the level: the loudest third is discovered from the
    engine's signal statistics (rms_dbfs), with no column naming it."""
    table = pd.read_csv(tiny_data)
    root = tiny_data.parent
    rms = {}
    for _, r in table.iterrows():
        x, _ = sf.read(root / r["file"])
        rms[r["id"]] = float(np.sqrt(np.mean(x ** 2)))
    # more items, so a third of them clears min_size
    rows = [dict(r, id=f"{r['id']}_{k}") for k in range(3) for r in table.to_dict("records")]
    pd.DataFrame(rows).to_csv(root / "big.csv", index=False)
    loud = np.quantile(list(rms.values()), 2 / 3)

    def f(signals, sampling_rate):
        level = np.sqrt(np.mean(np.square(signals.astype(np.float64)), axis=1))
        a = np.where(level > loud, 0.95, 0.5)  # loud items: far off their labels
        return {"arousal": a, "dominance": np.full(len(a), 0.5), "valence": np.full(len(a), 0.5)}

    model = CallableModel(f, "test:loud", name="loud", labels=list(DIMS))
    suite = {"name": "s", "bootstrap": {"n_boot": 0}, "targets": ["arousal"], "tests": [
        {"test": "fairness_slices", "params": {"features": ["rms_dbfs", "duration_s"],
                                               "columns": ["sex"], "min_size": 20}}]}
    res = audit([model], str(root / "big.csv"), suite, cache=False, baselines=False, jobs=1)
    (entry,) = res.select("fairness_slices", "loud", "arousal")
    assert entry["verdict"] == "fail"
    top = entry["measurements"][1]
    assert top["group"].startswith("rms_dbfs=") and top["group"].endswith(" dB")
    assert "&" not in top["group"] and top["extra"]["discovered"]


def test_bundled_discovery_suite_loads():
    from sertest.suite import load_suite

    ids = [c.id for c, _ in load_suite("discovery").checks]
    assert "fairness_slices" in ids and "robustness_search" in ids
