"""Worst-case search (``robustness_search``, ``sertest search``): a planted breakdown.

Each item is a pure tone of its own frequency.  The planted model estimates the SNR of
its input from the tone's share of the power (the noise is white, so this is exact up to
the noise in one FFT bin) and outputs arousal 0.8 above an item-specific SNR and 0.2
below it, the threshold growing with the tone's frequency: 0..20 dB.  The search must find
each item's planted breakdown within one grid step (0.5 dB) plus the estimator's error
(stated tolerance: 1 dB), within the stated budget, deterministically.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest import audit
from sertest.checks.search import (AXES, RobustnessSearch, calls_per_item, search_breakdowns,
                                    search_pairs)
from sertest.data import load_dataset
from sertest.engine.audit import on_demand
from sertest.engine.cache import PredictionCache
from sertest.errors import UsageError
from sertest.models.callable import CallableModel

SR = 16000
N = 12
TOLERANCE_DB = 1.0


def _freq(i):
    return 200.0 + 50.0 * i  # whole cycles in 1 s: the tone sits in one FFT bin


def _planted_snr(freq):
    return (freq - 200.0) / 550.0 * 20.0  # 0 dB .. 20 dB


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("search-data")
    rows = []
    t = np.arange(SR) / SR
    for i in range(N):
        x = 0.1 * np.sin(2 * np.pi * _freq(i) * t)
        sf.write(root / f"t{i}.wav", x.astype("float32"), SR, subtype="FLOAT")
        rows.append(dict(id=f"i{i:02d}", file=f"t{i}.wav", speaker=f"s{i % 4}",
                         arousal=0.8, dominance=0.5, valence=0.5))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def planted(signals, sampling_rate):
    x = signals.astype(np.float64)
    spec = np.abs(np.fft.rfft(x, axis=1)) ** 2
    k = np.argmax(spec, axis=1)
    tone = spec[np.arange(len(x)), k]
    total = spec.sum(axis=1)
    snr = 10 * np.log10(tone / np.maximum(total - tone, 1e-20))
    freq = k * sampling_rate / x.shape[1]
    a = np.where(snr >= _planted_snr(freq), 0.8, 0.2)
    return {"arousal": a, "dominance": np.full(len(a), 0.5), "valence": np.full(len(a), 0.5)}


def _model():
    return CallableModel(planted, "test:planted", name="planted",
                         labels=["arousal", "dominance", "valence"])


def test_bisection_finds_each_planted_breakdown_within_tolerance(data):
    ds = load_dataset(str(data))
    res = search_breakdowns(_model(), ds, "snr", target="arousal", seed=0,
                            predictor=on_demand(ds, seed=0))
    assert len(res.items) == N and not res.errors
    for b, i in zip(res.items, range(N)):
        want = _planted_snr(_freq(i))
        assert b.breakdown is not None and abs(b.breakdown - want) <= TOLERANCE_DB, (b, want)
        assert b.held - b.breakdown == pytest.approx(0.5)  # bracketed to one grid step
        assert b.clean_value == 0.8 and b.broken_value == 0.2
    # the stated cost: at most calls_per_item predictions per item
    assert res.calls <= N * calls_per_item(AXES["snr"]) == N * 9


def test_budget_samples_items_and_search_is_deterministic_and_cached(data, tmp_path):
    ds = load_dataset(str(data))
    cache = PredictionCache.open(str(tmp_path / "c"))
    a = search_breakdowns(_model(), ds, "snr", target="arousal", seed=3, budget=45,
                          predictor=on_demand(ds, seed=3, cache=cache))
    assert len(a.items) == 5 and a.sampled_from == N and a.calls <= 45
    hits = cache.hits
    b = search_breakdowns(_model(), ds, "snr", target="arousal", seed=3, budget=45,
                          predictor=on_demand(ds, seed=3, cache=cache))
    cache.close()
    assert [(x.item_id, x.breakdown) for x in a.items] == \
        [(x.item_id, x.breakdown) for x in b.items]
    assert cache.hits - hits == b.calls  # every prediction of the re-run came from the cache
    with pytest.raises(UsageError, match="budget=3"):
        search_breakdowns(_model(), ds, "snr", target="arousal", budget=3,
                          predictor=on_demand(ds))


def test_censored_items_hold_over_the_whole_range(data):
    ds = load_dataset(str(data))
    flat = CallableModel(lambda s, r: {"arousal": np.full(len(s), 0.5)}, "test:flat",
                         name="flat", labels=["arousal"])
    res = search_breakdowns(flat, ds, "snr", target="arousal", ids=["i00", "i01"],
                            predictor=on_demand(ds))
    assert all(b.censored and b.held == -10.0 for b in res.items)
    assert res.calls == 2 * 2  # clean + the most severe setting only


def test_robustness_search_in_an_audit_reports_median_and_earliest_items(data, tmp_path):
    suite = {"name": "s", "bootstrap": {"n_boot": 200}, "targets": ["arousal"],
             "tests": [{"test": "robustness_search",
                        "params": {"axis": "snr", "max_items": N, "budget": 200}}]}
    res = audit([_model()], str(data), suite, cache=str(tmp_path / "c"), baselines=False,
                jobs=1, out=str(tmp_path / "out"))
    (entry,) = res.select("robustness_search", "planted", "arousal")
    cells = {m["metric"]: m for m in entry["measurements"]}
    med = cells["median_breakdown"]
    # the median of the severities (lower SNR = more severe) of the planted points
    severity = [-_planted_snr(_freq(i)) for i in range(N)]
    want = -np.quantile(severity, 0.5, method="inverted_cdf")
    assert abs(med["value"] - want) <= TOLERANCE_DB
    assert med["ci"][0] <= med["value"] <= med["ci"][1]
    assert med["threshold"]["text"] == "< 10" and med["extra"]["model_calls"] <= 200
    assert cells["broken_share"]["value"] == 1.0
    worst = entry["plots"]["worst"]
    # the earliest-breaking item breaks at the mildest setting: the highest SNR
    assert worst[0]["id"] == f"i{N - 1:02d}" and worst[0]["condition"]["name"] == "white_noise"
    assert worst[0]["delta"] == pytest.approx(-0.6)
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert any(t["test"] == "robustness_search" for t in doc["tests"])


def test_bad_axis_and_budget_are_named():
    with pytest.raises(UsageError, match="axis='tilt'"):
        RobustnessSearch({"axis": "tilt"})
    with pytest.raises(UsageError, match="budget=5"):
        RobustnessSearch({"budget": 5})
    assert RobustnessSearch({"axis": "rt60"}).thresholds["median_breakdown"].text == "> 0.5"


def test_cli_search_writes_results_and_prints_the_median(data, tmp_path, capsys):
    from sertest.cli import main

    model_file = tmp_path / "planted_model.py"
    model_file.write_text("from tests.test_search import planted\n")
    code = main(["search", "-m", f"callable:{model_file}:planted", "-d", str(data),
                 "--axis", "snr", "--max-items", "6", "--budget", "60", "--target", "arousal",
                 "--no-cache", "-o", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "median breakdown" in out and " dB " in out and code in (0, 1)
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    (t,) = [t for t in doc["tests"] if t["test"] == "robustness_search"]
    assert t["measurements"][0]["extra"]["model_calls"] <= 60


# -- two axes: SNR and Opus bit rate ------------------------------------------------------------
# The planted model breaks only when BOTH the tone's SNR is below the item's planted value
# (0..20 dB, as above) AND the Opus link has gone narrowband (no power above 4.5 kHz: libopus
# switches at a bit rate between 9.5 and 8.1 kbit/s on this grid).  The SNR is estimated from
# the tone's power against the noise density in 1-3.5 kHz (below the narrowband cut), which
# Opus at 8-9 kbit/s biases by up to ~3 dB: hence the looser SNR tolerance.  The search must
# return, per item, a pair that moved from which neither axis can be eased by one grid step
# without the prediction holding (the stated grid tolerance), within the stated cost.
PAIR_SNR_TOLERANCE_DB = 3.5


def planted_pair(signals, sampling_rate):
    x = signals.astype(np.float64)
    spec = np.abs(np.fft.rfft(x, axis=1)) ** 2
    f = np.fft.rfftfreq(x.shape[1], 1 / sampling_rate)
    low = spec[:, (f > 1000) & (f < 3500)].mean(axis=1)
    high = spec[:, (f > 4500) & (f < 7500)].mean(axis=1)
    k = np.argmax(spec[:, f < 1000], axis=1)
    tone = np.array([spec[r, max(j - 3, 0):j + 4].sum() for r, j in enumerate(k)])
    snr = 10 * np.log10(tone / np.maximum(low * spec.shape[1], 1e-30))
    narrowband = 10 * np.log10(high / np.maximum(low, 1e-30)) < -15
    freq = k * sampling_rate / x.shape[1]
    return {"arousal": np.where((snr < _planted_snr(freq)) & narrowband, 0.2, 0.8)}


def test_pair_search_finds_a_breaking_pair_on_the_planted_corner(data):
    from sertest.checks.search import pair_calls_per_item, pair_perturbation, predict_conditions

    ds = load_dataset(str(data))
    model = CallableModel(planted_pair, "test:planted-pair", name="pair", labels=["arousal"])
    predictor = on_demand(ds, seed=0)
    res = search_pairs(model, ds, ("snr", "bitrate"), target="arousal", seed=0,
                       predictor=predictor)
    snr, rate = AXES["snr"], AXES["bitrate"]
    per_item = pair_calls_per_item(snr, rate) + 1
    assert per_item == 37 and res.calls <= N * per_item and not res.errors
    assert len(res.items) == N and all(not b.censored for b in res.items)
    eased = {}
    for b, i in zip(res.items, range(N)):
        a, r = b.levels
        assert b.broken_value == 0.2 and b.clean_value == 0.8
        assert abs(a - _planted_snr(_freq(i))) <= PAIR_SNR_TOLERANCE_DB, (b, i)
        assert 8100 <= r <= 9500  # libopus' narrowband switch on this grid
        ia, ir = b.index
        if ia > 0:
            eased[(b.item_id, "snr")] = pair_perturbation(snr, rate, snr.grid[ia - 1], r)
        if ir > 0:
            eased[(b.item_id, "bitrate")] = pair_perturbation(snr, rate, a, rate.grid[ir - 1])
    # one grid step milder on either axis: the prediction holds (checked with fresh calls)
    for (item, which), p in eased.items():
        got = predict_conditions(model, "arousal", predictor, type(res)(res.axes, "arousal", 0.05),
                                 {item: p})
        assert got[item] == 0.8, (item, which, p.spec())
    # deterministic for a seed
    again = search_pairs(model, ds, ("snr", "bitrate"), target="arousal", seed=0,
                         predictor=on_demand(ds, seed=0), ids=["i03", "i07"])
    assert [(b.item_id, b.index) for b in again.items] == \
        [(b.item_id, b.index) for b in res.items if b.item_id in ("i03", "i07")]


def test_pair_search_reports_nothing_broken_for_a_model_that_never_moves(data, tmp_path):
    flat = CallableModel(lambda s, r: {"arousal": np.full(len(s), 0.5)}, "test:flat",
                         name="flat", labels=["arousal"])
    suite = {"name": "s", "bootstrap": {"n_boot": 50}, "targets": ["arousal"],
             "tests": [{"test": "robustness_search",
                        "params": {"axes": ["snr", "bitrate"], "max_items": 4,
                                   "budget": 200}}]}
    res = audit([flat], str(data), suite, cache=False, baselines=False, jobs=1,
                out=str(tmp_path / "out"))
    (entry,) = res.select("robustness_search", "flat", "arousal")
    cells = {m["metric"]: m for m in entry["measurements"]}
    assert cells["broken_share"]["value"] == 0.0
    med = cells["median_pair_severity"]
    assert med["extra"]["censored"] == "never" and med["threshold"]["text"] == "> 0.5"
    # clean + the most severe corner only, per item
    assert med["extra"]["model_calls"] == 4 * 2
    assert entry["plots"]["worst"] == [] and entry["plots"]["kind"] == "search_pair"


def test_pair_search_options_are_named():
    with pytest.raises(UsageError, match="axes=\\['snr', 'snr'\\]"):
        RobustnessSearch({"axes": ["snr", "snr"]})
    with pytest.raises(UsageError, match="axes=\\['snr', 'tilt'\\]"):
        RobustnessSearch({"axes": ["snr", "tilt"]})
    with pytest.raises(UsageError, match="budget=20"):
        RobustnessSearch({"axes": ["snr", "bitrate"], "budget": 20})


def test_chain_cache_version_covers_its_parts():
    from sertest.perturb import from_spec

    p = from_spec({"name": "chain", "steps": [{"name": "white_noise", "snr_db": 10},
                                              {"name": "opus", "bitrate": 9500}]})
    opus = from_spec({"name": "opus"})
    assert p.stochastic and f"opus={opus.cache_version}" in p.cache_version
    with pytest.raises(UsageError, match="steps\\[1\\]"):
        from_spec({"name": "chain", "steps": [{"name": "gain"}, {"name": "opus", "bitrate": 1}]})


def test_without_a_cache_file_predictions_stay_in_memory_only_for_on_demand_checks(
        data, tmp_path, monkeypatch):
    """``--no-cache`` keeps the audit's predictions in memory only when a check predicts
    while measuring (the search's steps and targets look predictions up there); otherwise
    nothing would read them again, and they cost about 300 bytes a prediction (40 MB for
    the 7-model ``default`` audit)."""
    opened = []
    real_open = PredictionCache.open

    def spy(cache):
        opened.append(real_open(cache))
        return opened[-1]

    monkeypatch.setattr(PredictionCache, "open", spy)
    plain = {"name": "p", "bootstrap": {"n_boot": 50}, "targets": ["arousal"],
             "tests": [{"test": "correctness_regression"}]}
    audit([_model()], str(data), plain, cache=False, baselines=False, jobs=1)
    assert opened[-1].keep_in_memory is False and len(opened[-1]) == 0

    search = {"name": "s", "bootstrap": {"n_boot": 50}, "targets": ["arousal"],
              "tests": [{"test": "robustness_search",
                         "params": {"axis": "snr", "max_items": N, "budget": 200}}]}
    in_memory = audit([_model()], str(data), search, cache=False, baselines=False, jobs=1)
    cache = opened[-1]
    assert cache.keep_in_memory is True and len(cache) >= N
    on_disk = audit([_model()], str(data), search, cache=str(tmp_path / "c"), baselines=False,
                    jobs=1)
    assert (in_memory.select("robustness_search", "planted", "arousal")[0]["measurements"]
            == on_disk.select("robustness_search", "planted", "arousal")[0]["measurements"])
