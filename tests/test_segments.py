"""Opt-in segmentation of long recordings (sertest.engine.segments).

Generated files of speech-like noise and a real tiny ONNX model (tests/helpers.py, built and
saved here) are audited with ``segment=``: a long item's prediction must be the
duration-weighted mean of its windows predicted one by one (each window decoded on its own,
perturbed with the item's parameters drawn once), the samples held at once must be bounded
by the window, not the file, short items must be audited exactly as without segmentation
(same cache keys, same predictions), and a bad option value is a usage error.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest import audio
from sertest.api import audit
from sertest.cli import main
from sertest.data import load_dataset
from sertest.engine import segments, units
from sertest.engine.cache import PredictionCache
from sertest.engine.execute import execute
from sertest.engine.render import condition_rng
from sertest.engine.signal_stats import SignalStats
from sertest.engine.store import CLEAN, condition_key
from sertest.errors import UsageError
from sertest.models import load_model
from sertest.models.callable import CallableModel
from sertest.perturb import from_spec
from sertest.seeding import derive_rng
from tests.helpers import make_onnx_model
from tests.test_long_recordings import speech_like

SR = 16000
LONG_S = 95  # 30 s windows: 0-30, 30-60, 60-95 (the 5 s tail joins the last window)
CONDITIONS = [{"name": "gain", "gain_db": [-6, 6]}, {"name": "white_noise", "snr_db": 20},
              {"name": "gain", "gain_db": 3}]


def _manifest(root, long_s: float, silent_s: float = 0.0) -> str:
    rng = derive_rng(0, "segments-test")
    rows = []
    for i in range(3):
        sf.write(root / f"short{i}.wav", speech_like(rng.uniform(1, 3), rng), SR,
                 subtype="PCM_16")
        rows.append(dict(id=f"short{i}", file=f"short{i}.wav", arousal=0.5, dominance=0.5,
                         valence=0.5))
    x = speech_like(long_s, rng)
    if silent_s:  # digital silence from 30 s on
        x[30 * SR:int((30 + silent_s) * SR)] = 0
    sf.write(root / "long.wav", x, SR, subtype="PCM_16")
    rows.insert(1, dict(id="long", file="long.wav", arousal=0.5, dominance=0.5, valence=0.5))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return str(root / "manifest.csv")


def _plan(dataset, specs=CONDITIONS):
    conditions = {CLEAN: None}
    for spec in specs:
        cond = from_spec(spec)
        conditions[condition_key(cond)] = cond
    return conditions, {ck: set(dataset.ids) for ck in conditions}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("segments")
    return load_dataset(_manifest(root, LONG_S)), make_onnx_model(str(root / "m.onnx"))


def _by_hand(path: str, model, cond, ck: str, seed: int, windows) -> np.ndarray:
    """The documented rule, one window at a time: decode the window, perturb it with the
    item's parameters (drawn once) and the window's own generator, predict it alone, then
    the duration-weighted mean."""
    params = cond.draw(condition_rng(seed, "long", ck)) if cond is not None else None
    rows, weights = [], []
    for k, (a, b) in enumerate(windows):
        x, sr = audio.read(path, a / SR, b / SR)
        assert len(x) == b - a
        if cond is not None:
            x = cond.apply(x.copy(), sr, derive_rng(seed, "long", ck, "window", k), params)
        rows.append(model.predict([np.asarray(x, np.float32)])[0])
        weights.append((b - a) / SR)
    w = np.asarray(weights)
    return (np.asarray(rows) * w[:, None]).sum(axis=0) / w.sum()


def test_a_segmented_prediction_is_the_duration_weighted_mean_of_its_windows(data):
    dataset, onnx = data
    model = load_model(onnx)
    conditions, needed = _plan(dataset)
    store, errors, stats = execute(dataset, {"m": model}, conditions, needed, seed=3, jobs=1,
                                   segment="30")
    assert errors == []
    windows = segments.window_bounds(0, LONG_S * SR, SR, segments.Segmentation(30, 30))
    assert windows == [(0, 30 * SR), (30 * SR, 60 * SR), (60 * SR, LONG_S * SR)]
    assert stats.segmented == {"long": 3}
    path = dataset.table.loc["long", "file"]
    for ck, cond in conditions.items():
        got = store.frame("m", ck).loc["long"].to_numpy()
        np.testing.assert_allclose(got, _by_hand(path, model, cond, ck, 3, windows),
                                   rtol=1e-5, atol=1e-7)
    # ... and not the whole utterance's prediction (the rule is observable)
    whole = model.predict([audio.load(path, SR)])[0]
    clean = store.frame("m", CLEAN).loc["long"].to_numpy()
    assert not np.allclose(clean[2], whole[2])  # the peak column: a mean of window peaks
    # overlapping windows: 30 s every 20 s
    store2, errors2, stats2 = execute(dataset, {"m": model}, conditions, needed, seed=3,
                                      jobs=1, segment="30:20")
    assert errors2 == [] and stats2.segmented == {"long": 5}
    windows2 = segments.window_bounds(0, LONG_S * SR, SR, segments.Segmentation(30, 20))
    assert windows2 == [(a * SR, b * SR) for a, b in
                        [(0, 30), (20, 50), (40, 70), (60, 90), (80, LONG_S)]]
    np.testing.assert_allclose(store2.frame("m", CLEAN).loc["long"].to_numpy(),
                               _by_hand(path, model, None, CLEAN, 3, windows2), rtol=1e-5)


def test_short_items_are_audited_exactly_as_without_segmentation(data, tmp_path):
    dataset, onnx = data
    model = load_model(onnx)
    conditions, needed = _plan(dataset)
    cache = PredictionCache(str(tmp_path / "cache.sqlite"))
    whole, errors, _ = execute(dataset, {"m": model}, conditions, needed, cache=cache, jobs=1)
    assert errors == []
    seg, errors, stats = execute(dataset, {"m": model}, conditions, needed, cache=cache,
                                 jobs=1, segment="30")
    assert errors == []
    shorts = [i for i in dataset.ids if i != "long"]
    # the short items' keys are unchanged (served from the cache), the long item's are new
    assert stats.cached == len(shorts) * len(conditions)
    assert stats.computed == len(conditions)
    for ck in conditions:
        pd.testing.assert_frame_equal(seg.frame("m", ck).loc[shorts],
                                      whole.frame("m", ck).loc[shorts])
    # a window longer than the file: nothing is segmented, every key is the whole one's
    _, _, stats = execute(dataset, {"m": model}, conditions, needed, cache=cache, jobs=1,
                          segment="120")
    assert stats.segmented == {} and stats.cached == len(dataset) * len(conditions)
    cache.close()


def test_held_samples_are_bounded_by_the_window_not_the_file(tmp_path):
    long_s = 600
    dataset = load_dataset(_manifest(tmp_path, long_s))
    model = load_model(make_onnx_model(str(tmp_path / "m.onnx")))
    conditions, needed = _plan(dataset, CONDITIONS + [{"name": "white_noise", "snr_db": 5}])
    lengths: list[int] = []

    def lengths_of(signals, sampling_rate):
        lengths.extend(len(s) for s in signals)
        return np.tile([0.5, 0.5, 0.5], (len(signals), 1))

    spy = CallableModel(lengths_of, "tests:segments", name="lengths",
                        labels=["arousal", "dominance", "valence"])
    units.HELD.reset()
    _, errors, stats = execute(dataset, {"m": model, "lengths": spy}, conditions, needed,
                               jobs=2, segment="30")
    assert errors == [] and stats.segmented == {"long": 20}
    window = 30 * SR
    # the decoded window and one perturbed copy per condition (one condition group),
    # beside the short items of the other worker; whole, it was >= 2 x 600 s
    assert units.HELD.peak <= len(conditions) * window + 5 * 3 * SR * len(conditions)
    assert units.HELD.peak < 0.5 * long_s * SR
    assert units.HELD.current == 0
    # no model ever heard more than one window
    assert max(lengths) == window
    assert lengths.count(window) == 20 * len(conditions)


def test_segmented_audits_are_deterministic(data):
    dataset, onnx = data
    conditions, needed = _plan(dataset)
    runs = [execute(dataset, {"m": load_model(onnx)}, conditions, needed, seed=7, jobs=jobs,
                    segment="25:20")[0] for jobs in (1, 2, 2)]
    for ck in conditions:
        for other in runs[1:]:
            pd.testing.assert_frame_equal(runs[0].frame("m", ck), other.frame("m", ck))


def test_silent_windows_are_skipped_and_signal_stats_cover_the_item(tmp_path):
    dataset = load_dataset(_manifest(tmp_path, 90, silent_s=30))  # 30-60 s silent
    model = load_model(make_onnx_model(str(tmp_path / "m.onnx")))
    stats_model = SignalStats(SR)
    conditions, needed = _plan(dataset, [])
    store, errors, stats = execute(dataset, {"m": model, "signal-stats": stats_model},
                                   conditions, needed, jobs=1, segment="30",
                                   clean_only={"signal-stats"})
    assert errors == [] and stats.segmented == {"long": 3}
    path = dataset.table.loc["long", "file"]
    heard = [(0, 30 * SR), (60 * SR, 90 * SR)]
    np.testing.assert_allclose(store.frame("m", CLEAN).loc["long"].to_numpy(),
                               _by_hand(path, model, None, CLEAN, 0, heard), rtol=1e-5)
    row = store.frame("signal-stats", CLEAN).loc["long"]
    assert row["duration_s"] == pytest.approx(90.0)
    whole = stats_model.predict([audio.load(path, SR)])[0]
    assert row["peak_dbfs"] == pytest.approx(whole[1], abs=1e-6)  # the peak of the windows
    # the RMS from the mean power of the heard windows (the silent third is not heard)
    assert row["rms_dbfs"] == pytest.approx(whole[2] + 10 * np.log10(3 / 2), abs=0.05)


def test_results_record_the_segmentation_only_when_an_item_was_segmented(data, tmp_path):
    dataset, onnx = data
    kw = dict(suite="smoke", cache=False, baselines=False, renderers=(), profile=False,
              progress=False, jobs=1)
    res = audit([onnx], dataset, segment="30:30", **kw)
    seg = res.doc["dataset"]["segmentation"]
    assert seg == {"window_s": 30.0, "hop_s": 30.0, "aggregation": "duration-weighted mean",
                   "items": {"long": 3}}
    short = dataset.subset([i for i in dataset.ids if i != "long"])
    a = audit([onnx], short, segment="30", **kw).doc
    b = audit([onnx], short, **kw).doc
    assert "segmentation" not in a["dataset"]
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.mark.parametrize("value", ["abc", "0", "30:45", "30:0", "-5", "inf", "30:x"])
def test_a_bad_segment_is_a_usage_error(data, value, capsys, tmp_path):
    dataset, onnx = data
    conditions, needed = _plan(dataset, [])
    with pytest.raises(UsageError, match="--segment"):
        execute(dataset, {"m": load_model(onnx)}, conditions, needed, segment=value)
    code = main(["run", "--model", onnx, "--data", str(dataset.source), "--suite", "smoke",
                 "--no-cache", "--format", "", "--out", str(tmp_path / "out"),
                 f"--segment={value}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--segment" in err and "WINDOW:HOP" in err


def test_search_takes_the_segment_option_too(data, capsys, tmp_path):
    dataset, onnx = data
    code = main(["search", "--model", onnx, "--data", str(dataset.source), "--no-cache",
                 "--out", str(tmp_path / "out"), "--segment", "30:60"])
    assert code == 2
    assert "--segment '30:60'" in capsys.readouterr().err


def test_segmentation_runs_on_the_local_executor_only(data):
    dataset, onnx = data
    conditions, needed = _plan(dataset, [])
    with pytest.raises(UsageError, match="local executor"):
        execute(dataset, {"m": load_model(onnx)}, conditions, needed, segment="30",
                executor="dask")
