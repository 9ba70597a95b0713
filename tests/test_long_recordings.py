"""Long recordings are audited whole with memory bounded in samples (sertest.engine.units).

A 10-minute file of speech-like noise sits in a manifest beside short ones; a real ONNX
model (tests/helpers.py) predicts it under several conditions.  The assertions are on
behaviour: every prediction is made, the long item's prediction is the whole utterance's,
the samples held at once (:data:`sertest.engine.units.HELD`) stay near one decoded signal
plus one perturbed copy, whatever the number of conditions, and no model call receives more
than :data:`~sertest.engine.units.CALL_SAMPLES` samples, or the model's own bound (unless one
signal is longer).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest import audio
from sertest.data import load_dataset
from sertest.engine import units
from sertest.engine.execute import execute
from sertest.engine.store import CLEAN, condition_key
from sertest.models import load_model
from sertest.models.callable import CallableModel
from sertest.perturb import from_spec
from sertest.seeding import derive_rng
from tests.helpers import make_onnx_model

SR = 16000
LONG_S = 600  # 10 minutes


def speech_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Noise shaped by a 4 Hz syllable-rate envelope with pauses (speech-like levels)."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    envelope = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)), 0, None) ** 2
    envelope *= (np.sin(2 * np.pi * 0.2 * t) > -0.5)  # a pause every 5 s
    x = 0.2 * envelope * rng.standard_normal(n)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def long_manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    rng = derive_rng(0, "long-recordings-test")
    rows = []
    for i in range(6):
        sf.write(root / f"short{i}.wav", speech_like(rng.uniform(1, 3), rng), SR,
                 subtype="PCM_16")
        rows.append(dict(id=f"short{i}", file=f"short{i}.wav", arousal=0.5, dominance=0.5,
                         valence=0.5))
    sf.write(root / "long.wav", speech_like(LONG_S, rng), SR, subtype="PCM_16")
    rows.insert(3, dict(id="long", file="long.wav", arousal=0.5, dominance=0.5, valence=0.5))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


CONDITIONS = [{"name": "white_noise", "snr_db": 20}, {"name": "gain", "gain_db": -6},
              {"name": "white_noise", "snr_db": 5}, {"name": "gain", "gain_db": 6}]


def _plan(dataset):
    conditions = {CLEAN: None}
    for spec in CONDITIONS:
        cond = from_spec(spec)
        conditions[condition_key(cond)] = cond
    needed = {ck: set(dataset.ids) for ck in conditions}
    return conditions, needed


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_long_item_is_audited_whole_holding_one_perturbed_copy(long_manifest, tmp_path, jobs):
    dataset = load_dataset(str(long_manifest))
    model = load_model(make_onnx_model(os.fspath(tmp_path / "m.onnx")))
    conditions, needed = _plan(dataset)
    units.HELD.reset()
    store, errors, stats = execute(dataset, {"m": model}, conditions, needed, jobs=jobs)
    assert errors == []
    assert stats.computed == len(dataset) * len(conditions)
    long_samples = LONG_S * SR
    # whole-item processing would hold the decoded signal and all 4 perturbed copies
    # (5 x long); bounded, it holds the decoded signal and one copy, plus short items
    assert units.HELD.peak >= 2 * long_samples
    assert units.HELD.peak < 2.5 * long_samples
    assert units.HELD.current == 0
    # the default policy predicts the whole utterance (no segmentation)
    whole = audio.load(dataset.table.loc["long", "file"], SR)
    clean = store.frame("m", CLEAN).loc["long"].to_numpy()
    np.testing.assert_allclose(clean, model.predict([whole])[0], rtol=1e-6)


def test_model_calls_are_bounded_in_samples(long_manifest):
    dataset = load_dataset(str(long_manifest))
    calls: list[list[int]] = []

    def f(signals, sampling_rate):
        calls.append([len(s) for s in signals])
        return np.tile([0.5, 0.5, 0.5], (len(signals), 1))

    model = CallableModel(f, "tests:long", name="lengths",
                          labels=["arousal", "dominance", "valence"])
    conditions, needed = _plan(dataset)
    _, errors, _ = execute(dataset, {"lengths": model}, conditions, needed, jobs=1)
    assert errors == []
    long_calls = [c for c in calls if max(c) >= LONG_S * SR]
    assert len(long_calls) == len(conditions)  # one long signal per call
    assert all(len(c) == 1 for c in long_calls)
    short_calls = [c for c in calls if max(c) < LONG_S * SR]
    # a short item's conditions still go in one call (their batching is unchanged)
    assert all(len(c) == len(conditions) for c in short_calls)
    assert all(sum(c) <= units.CALL_SAMPLES for c in short_calls)


def test_onnx_models_take_calls_of_half_the_engine_default(tmp_path):
    """An ONNX model's calls hold at most 2**18 samples (its ``call_samples``: onnxruntime
    gains nothing from larger calls, and its arena holds the whole call's activations);
    other models keep the engine's ``CALL_SAMPLES`` (2**19; the torch teacher pays for
    smaller calls).  Eight signals of 4 s: two calls of four for the ONNX model, with the
    outputs of one call of eight; one call for a callable model.  The bound enters the
    cache key."""
    from sertest.engine.cache import model_prediction_key

    model = load_model(make_onnx_model(os.fspath(tmp_path / "m.onnx")))
    assert units.model_call_samples(model) == 1 << 18 < units.CALL_SAMPLES == 1 << 19
    rng = np.random.default_rng(0)
    signals = [(0.1 * rng.standard_normal(4 * SR)).astype(np.float32) for _ in range(8)]
    calls = []
    whole = model.predict_batch(np.stack(signals))
    inner = model.predict_batch
    model.predict_batch = lambda x: (calls.append(x.shape[0]), inner(x))[1]
    rows = units.predict_bounded(model, signals)
    assert calls == [4, 4]
    np.testing.assert_allclose(rows, whole, rtol=0, atol=1e-6)

    sizes = []

    def f(signals, sampling_rate):
        sizes.append(len(signals))
        return np.tile([0.5, 0.5, 0.5], (len(signals), 1))

    plain = CallableModel(f, "tests:plain", name="plain",
                          labels=["arousal", "dominance", "valence"])
    units.predict_bounded(plain, signals)
    assert sizes == [8]
    key = model_prediction_key(model, "hash", CLEAN, None, 0, "a")
    model.call_samples = units.CALL_SAMPLES
    assert model_prediction_key(model, "hash", CLEAN, None, 0, "a") != key


def test_condition_groups_bound_the_samples_of_a_group():
    needs = {SR: {f"c{i}": ["m"] for i in range(10)}}
    unit = units.Unit("a", "a.wav", None, None, "h", needs)
    short = units.condition_groups(unit, {SR: 3 * SR})
    assert short == [needs]  # a short item: every condition at once
    long = units.condition_groups(unit, {SR: units.UNIT_SAMPLES // 3})
    assert [len(g[SR]) for g in long] == [3, 3, 3, 1]
    assert [ck for g in long for ck in g[SR]] == list(needs[SR])  # order kept
    huge = units.condition_groups(unit, {SR: 2 * units.UNIT_SAMPLES})
    assert [len(g[SR]) for g in huge] == [1] * 10


def test_planning_reads_each_duration_once_for_the_in_flight_bound(long_manifest, tmp_path,
                                                                   monkeypatch):
    """The executor's in-flight bound counts a unit's samples from the duration its file's
    header gave while planning (read beside the content hash, in the hashing threads), not
    from a second header read per unit in the scheduling thread; a file libsndfile cannot
    read is estimated from its size, as before."""
    from sertest.engine.execute import _plan_units
    from sertest.engine.segments import parse_segment

    dataset = load_dataset(str(long_manifest))
    conditions, needed = _plan(dataset)
    model = load_model(make_onnx_model(tmp_path / "m.onnx"))
    units_, _ = _plan_units(dataset, {model.name: model}, conditions, needed, 0, 2, set(), [],
                            False)
    by_id = {u.item_id: u for u in units_}
    assert by_id["long"].file_seconds == pytest.approx(LONG_S, abs=1 / SR)
    for u in units_:
        assert u.file_seconds == sf.info(u.file).duration
        u.needs = {SR: {CLEAN: [model.name]}}

    def no_header(path):  # a second read of the header would fail the test
        raise AssertionError(f"header of {path} read again")

    monkeypatch.setattr(sf, "info", no_header)
    assert units.unit_samples(by_id["long"]) == LONG_S * SR
    assert units.unit_samples(by_id["short0"]) == int(by_id["short0"].file_seconds * SR)

    monkeypatch.undo()  # with windows too, planning reads each header once
    reads = []
    real_info = sf.info
    monkeypatch.setattr(sf, "info", lambda path: reads.append(path) or real_info(path))
    segmented, _ = _plan_units(dataset, {model.name: model}, conditions, needed, 0, 2, set(),
                               [], False, parse_segment("30"))
    assert sorted(reads) == sorted(u.file for u in segmented)
    assert {u.item_id for u in segmented if u.segment is not None} == {"long"}

    raw = tmp_path / "noheader.bin"  # not a libsndfile format: 16-bit mono as a guess
    raw.write_bytes(b"\0" * 32000)
    monkeypatch.undo()
    unknown = units.Unit("x", str(raw), None, None, "h", file_seconds=float("nan"),
                         needs={SR: {CLEAN: ["m"]}})
    assert units.unit_samples(unknown) == 16000
