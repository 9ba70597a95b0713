"""Fairness tests, their vectorised kernels, balancing, calibration and the F0 feature."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from sertest import audit, metrics
from sertest.checks import registry
from sertest.checks.calibration import (CalibrationSpec, parse_calibration, simulate_limits,
                                        truncated_gaussian)
from sertest.checks.fairness import (BIN_NAMES, Layout, balance_groups, bootstrap_weights,
                                     compute_cells, distribution_cells, quality_cells)
from sertest.errors import UsageError
from sertest.features import NO_F0, F0Estimator
from sertest.models.base import CATEGORIES
from sertest.report.plots import detect
from tests.test_checks_correctness import dims_frame, labelled_table, make_ctx, run


def layout_of(sizes, t, p, regression=True, labels=(), clusters=None) -> Layout:
    bounds, start = [], 0
    for n in sizes:
        bounds.append((start, start + n))
        start += n
    k = 4 if regression else len(labels)
    return Layout([f"g{i}" for i in range(len(sizes))], bounds, [str(i) for i in range(start)],
                  regression, k, list(labels), np.asarray(p), None if t is None else np.asarray(t),
                  clusters)


def deltas(out, metric):
    return {m.group: m for m in out.measurements if m.metric == metric}


# -- the catalogue -------------------------------------------------------------------------------
def test_every_catalogue_fairness_test_and_threshold_exists():
    reg = registry()
    expected = {
        "fairness_sex": {"ccc_difference": "abs < 0.075",
                         "precision_per_bin_difference": "abs < 0.1",
                         "recall_per_bin_difference": "abs < 0.1",
                         "precision_per_class_difference": "abs < 0.075",
                         "recall_per_class_difference": "abs < 0.175",
                         "uar_difference": "abs < 0.075"},
        "fairness_pitch": {"ccc_difference": "abs < 0.1",
                           "precision_per_bin_difference": "abs < 0.125",
                           "recall_per_bin_difference": "abs < 0.125",
                           "precision_per_class_difference": "abs < 0.1",
                           "recall_per_class_difference": "abs < 0.225",
                           "uar_difference": "abs < 0.075"},
        "fairness_accent": {"mean_difference": "abs < 0.075",
                            "relative_difference_per_bin": "abs < 0.225",
                            "relative_difference_per_class": "abs < 0.225"},
        "fairness_language": {"mean_difference": "abs < 0.03",
                              "relative_difference_per_bin": "abs < 0.1",
                              "relative_difference_per_class": "abs < 0.1"},
        "fairness_linguistic_sentiment": {"mean_shift_difference": "abs < 0.025",
                                          "bin_proportion_shift_difference": "abs < 0.075",
                                          "class_proportion_shift_difference": "abs < 0.075"},
    }
    for test_id, thresholds in expected.items():
        declared = reg[test_id].metrics
        assert {k: declared[k] for k in thresholds} == thresholds
        assert reg[test_id].topic == "fairness"
    assert reg["fairness_pitch"].defaults["f0_groups"] == {
        "low": [0, 145], "medium": [145, 190], "high": [190, 350]}
    assert reg["fairness_language"].defaults["samples"] == 2000
    assert "fairness_group" in reg


# -- planted behaviour ---------------------------------------------------------------------------
def sex_ctx(female_noise: float, male_noise: float, seed: int = 0, **kw):
    table = labelled_table(seed=seed)
    rng = np.random.default_rng(seed + 1)
    noise = np.where(table["sex"] == "female", female_noise, male_noise)
    pred = np.clip(table["arousal"] + rng.normal(0, 1, len(table)) * noise, 0, 1)
    return make_ctx(table, {"m": dims_frame(table, pred)}, **kw), table


def test_model_biased_against_one_sex_fails_fairness_sex():
    ctx, _ = sex_ctx(0.03, 0.6)
    out = run("fairness_sex", ctx, "m", "arousal")
    d = deltas(out, "ccc_difference")
    assert set(d) == {"female", "male"}
    assert d["female"].value > 0.075 and d["male"].value < -0.075
    # a fail is decided on the simultaneous band over the test's cells
    assert d["female"].verdict == "fail" and d["male"].verdict != "pass"
    assert out.entry["verdict"] == "fail" and "ccc_difference" in out.entry["failed_because"]
    assert out.entry["multiplicity"]["comparisons"] > 10
    assert d["female"].ci[0] <= d["female"].value <= d["female"].ci[1]


def test_fair_model_passes_and_equally_bad_model_fails_group_quality():
    fair, _ = sex_ctx(0.03, 0.03)
    out = run("fairness_sex", fair, "m", "arousal")
    assert all(m.verdict != "fail" for m in out.measurements)
    assert {m.verdict for m in out.measurements if m.metric == "ccc_difference"} == {"pass"}
    bad, table = sex_ctx(0.0, 0.0)
    rng = np.random.default_rng(9)
    ctx = make_ctx(table, {"m": dims_frame(table, rng.random(len(table)))})
    out = run("fairness_sex", ctx, "m", "arousal")
    assert {m.verdict for m in out.measurements if m.metric == "ccc_difference"} != {"fail"}
    quality = deltas(out, "ccc")
    assert set(quality) == {"female", "male"}
    assert all(m.verdict == "fail" for m in quality.values())
    assert all(m.extra["role"] == "group quality" for m in quality.values())


def test_fairness_sex_emotion_uses_class_metrics():
    table = labelled_table()
    pred = table["emotion"].where(table["sex"] == "female", "neutral")  # males: always neutral
    ctx = make_ctx(table, classes={"m": pred})
    out = run("fairness_sex", ctx, "m", "emotion")
    uar = deltas(out, "uar_difference")
    assert uar["female"].value == pytest.approx(0.375) and uar["female"].verdict == "fail"
    recall = deltas(out, "recall_per_class_difference")
    assert recall["male / neutral"].value == pytest.approx(0.0)
    assert recall["male / anger"].value == pytest.approx(-0.5)


def test_per_bin_cells_with_few_samples_are_skipped_with_a_reason():
    ctx, _ = sex_ctx(0.05, 0.05)
    out = run("fairness_sex", ctx, "m", "arousal", params={"min_samples": 50})
    cells = deltas(out, "recall_per_bin_difference")
    skipped = [m for m in cells.values() if m.verdict == "skipped"]
    assert skipped and all("fewer than 50 items" in m.extra["reason"] for m in skipped)
    assert all(math.isnan(m.value) for m in skipped)
    assert len(cells) == 2 * len(BIN_NAMES)


def test_small_groups_are_skipped_with_reasons():
    ctx, _ = sex_ctx(0.05, 0.05)
    out = run("fairness_group", ctx, "m", "arousal",
              params={"columns": ["sex", "language"], "min_group_size": 61, "calibrate": False})
    assert out.skipped and "need 2" in out.skipped and "min_group_size 61" in out.skipped
    out = run("fairness_group", ctx, "m", "arousal",
              params={"columns": ["sex", "language"], "min_group_size": 50,
                      "calibrate": {"simulations": 20}})
    groups = {m.extra["group"] for m in out.measurements}
    assert groups == {"female & de", "female & en", "male & de", "male & en"}


def test_distribution_method_finds_a_shifted_accent():
    table = labelled_table()
    table["accent"] = table["speaker"].map(lambda s: f"a{int(s[1:]) % 3}")
    rng = np.random.default_rng(2)
    pred = np.clip(rng.normal(0.5, 0.1, len(table)) + 0.25 * (table["accent"] == "a1"), 0, 1)
    ctx = make_ctx(table, {"m": dims_frame(table, pred)})
    out = run("fairness_accent", ctx, "m", "arousal")
    mean = deltas(out, "mean_difference")
    assert mean["a1"].verdict == "fail" and mean["a1"].value > 0.15
    assert mean["a0"].value < 0 and mean["a2"].value < 0
    assert set(deltas(out, "relative_difference_per_bin")) == {
        f"a{i} / {b}" for i in range(3) for b in BIN_NAMES}


def test_linguistic_sentiment_flags_a_language_that_reads_the_words():
    table = labelled_table()
    sentiments = ["negative", "neutral", "positive"]
    table["sentiment"] = [sentiments[i % 3] for i in range(len(table))]
    rng = np.random.default_rng(4)
    sign = table["sentiment"].map({"negative": -1.0, "neutral": 0.0, "positive": 1.0})
    pred = 0.5 + rng.normal(0, 0.05, len(table)) + 0.2 * sign * (table["language"] == "en")
    ctx = make_ctx(table, {"m": dims_frame(table, pred)})
    out = run("fairness_linguistic_sentiment", ctx, "m", "arousal")
    shift = deltas(out, "mean_shift_difference")
    assert shift["en / positive"].value == pytest.approx(0.1, abs=0.03)
    assert shift["en / positive"].verdict == "fail"
    assert shift["de / positive"].value == pytest.approx(-shift["en / positive"].value)
    one = make_ctx(table.assign(language="en"), {"m": dims_frame(table, pred)})
    single = run("fairness_linguistic_sentiment", one, "m", "arousal")
    assert "at least 2 languages" in single.skipped


def test_pitch_groups_by_speaker_mean_f0_column():
    table = labelled_table()
    f0 = {s: hz for s, hz in zip(sorted(table["speaker"].unique()),
                                  [100, 120, 170, 180, 220, 240] * 2)}
    table["f0"] = table["speaker"].map(f0) + np.random.default_rng(0).normal(0, 5, len(table))
    ctx = make_ctx(table, {"m": dims_frame(table, table["arousal"])})
    check = registry()["fairness_pitch"]({"f0_column": "f0", "min_speaker_samples": 10})
    assert check.features(ctx) == []
    out = check.measure(ctx, "m", "arousal")
    assert set(out.plots["group_sizes"]["labels"]) == {"low", "medium", "high"}
    strict = registry()["fairness_pitch"]({"f0_column": "f0"}).measure(ctx, "m", "arousal")
    assert "min_speaker_samples" in strict.skipped  # ser-tests: 25 items per speaker
    assert isinstance(registry()["fairness_pitch"]().features(ctx)[0], F0Estimator)


def test_parameters_are_validated_at_suite_load():
    reg = registry()
    with pytest.raises(UsageError, match="unknown parameter"):
        reg["fairness_sex"]({"colum": "sex"})
    with pytest.raises(UsageError, match="column"):
        reg["fairness_group"]({})
    with pytest.raises(UsageError, match="method"):
        reg["fairness_sex"]({"method": "magic"})
    with pytest.raises(UsageError, match="min_samples"):
        reg["fairness_sex"]({"min_samples": -1})
    with pytest.raises(UsageError, match="quantile"):
        parse_calibration({"quantile": 1.5}, "test")
    with pytest.raises(UsageError, match="unknown key"):
        parse_calibration({"sims": 10}, "test")
    assert parse_calibration(True) == CalibrationSpec()
    assert parse_calibration(False) is None


# -- kernels against sertest.metrics ----------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(5, 40), min_size=2, max_size=4), st.integers(0, 10_000),
       st.integers(0, 8))
def test_quality_kernels_equal_the_metric_functions(sizes, seed, min_samples):
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    t = rng.random(n).round(2)
    p = np.clip(t + rng.normal(0, 0.3, n), 0, 1).round(2)
    lay = layout_of(sizes, t, p)
    cells = quality_cells(lay, np.ones((1, n)), t, p, min_samples)
    keys, ccc = cells["ccc_difference"]
    keys2, prec = cells["precision_per_bin_difference"]
    _, rec = cells["recall_per_bin_difference"]
    all_p = metrics.precision_per_bin(t, p, min_samples=min_samples)
    all_r = metrics.recall_per_bin(t, p, min_samples=min_samples)
    for g, (a, b) in zip(lay.names, lay.bounds):
        ref = metrics.ccc(t[a:b], p[a:b]) - metrics.ccc(t, p)
        assert ccc[0, keys.index((g,))] == pytest.approx(ref, abs=1e-9, nan_ok=True)
        gp = metrics.precision_per_bin(t[a:b], p[a:b], min_samples=min_samples)
        gr = metrics.recall_per_bin(t[a:b], p[a:b], min_samples=min_samples)
        for j, name in enumerate(BIN_NAMES):
            col = keys2.index((g, name))
            assert prec[0, col] == pytest.approx(gp[j] - all_p[j], abs=1e-12, nan_ok=True)
            assert rec[0, col] == pytest.approx(gr[j] - all_r[j], abs=1e-12, nan_ok=True)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(3, 40), min_size=2, max_size=4), st.integers(0, 10_000))
def test_class_and_distribution_kernels_equal_the_metric_functions(sizes, seed):
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    labels = list(CATEGORIES)
    t = rng.integers(0, 4, n)
    p = rng.integers(-1, 4, n)  # -1: a class outside the labels
    lay = layout_of(sizes, t, p, regression=False, labels=labels)
    tl = np.array([labels[i] for i in t], dtype=object)
    pl = np.array([labels[i] if i >= 0 else "other" for i in p], dtype=object)
    q = quality_cells(lay, np.ones((1, n)), t, p, 0)
    d = distribution_cells(lay, np.ones((1, n)), p, 0)
    all_uar = metrics.uar(tl, pl, labels=labels)
    all_prec = metrics.precision_per_class(tl, pl, labels=labels)
    all_share = metrics.class_proportions(pl, labels + ["other"])
    for g, (a, b) in zip(lay.names, lay.bounds):
        keys, uar = q["uar_difference"]
        ref = metrics.uar(tl[a:b], pl[a:b], labels=labels) - all_uar
        assert uar[0, keys.index((g,))] == pytest.approx(ref, abs=1e-12, nan_ok=True)
        gp = metrics.precision_per_class(tl[a:b], pl[a:b], labels=labels)
        share = metrics.class_proportions(pl[a:b], labels + ["other"])
        for c in labels:
            keys, prec = q["precision_per_class_difference"]
            assert prec[0, keys.index((g, c))] == pytest.approx(gp[c] - all_prec[c], abs=1e-12,
                                                                nan_ok=True)
            keys, rel = d["relative_difference_per_class"]
            assert rel[0, keys.index((g, c))] == pytest.approx(share[c] - all_share[c], abs=1e-12)


def test_bootstrap_weights_resample_within_groups_and_clusters():
    sizes = [6, 9]
    clusters = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4])
    lay = layout_of(sizes, None, np.zeros(15), clusters=clusters)
    w = bootstrap_weights(lay, 500, np.random.default_rng(0))
    assert w.shape == (500, 15)
    assert np.all(w[:, :6].sum(axis=1) == 6) and np.all(w[:, 6:].sum(axis=1) == 9)
    assert np.array_equal(w, bootstrap_weights(lay, 500, np.random.default_rng(0)))
    assert (w[:, 0] != w[:, 1]).any()  # two-stage: items of one speaker differ


# -- balancing ---------------------------------------------------------------------------------
def test_balancing_matches_truth_and_is_reproducible():
    rng = np.random.default_rng(0)
    ids = [f"i{i}" for i in range(1000)]
    truth = pd.Series(np.r_[rng.beta(2, 3, 150), rng.beta(3, 2, 850)], index=ids)
    groups = {"small": ids[:150], "big": ids[150:]}
    out = balance_groups(truth, groups, 100, np.random.default_rng(1), regression=True)
    assert {g: len(v) for g, v in out.items()} == {"small": 100, "big": 100}
    assert len(set(out["big"])) == 100 and set(out["big"]) <= set(groups["big"])
    gap = abs(truth[out["small"]].mean() - truth[out["big"]].mean())
    assert gap < 0.01 < 0.1 < abs(truth[groups["small"]].mean() - truth[groups["big"]].mean())
    assert out == balance_groups(truth, groups, 100, np.random.default_rng(1), regression=True)
    classes = pd.Series(rng.choice(["a", "b", "c"], 1000, p=[0.6, 0.3, 0.1]), index=ids)
    cls = balance_groups(classes, groups, None, np.random.default_rng(2), regression=False)
    counts = {g: classes[v].value_counts().sort_index().tolist() for g, v in cls.items()}
    assert counts["small"] == counts["big"]


# -- calibration -------------------------------------------------------------------------------
def test_calibration_reproduces_the_catalogue_ballpark_for_two_groups_of_1000():
    lay = layout_of([1000, 1000], np.zeros(2000), np.zeros(2000))

    def compute(t, p):
        return compute_cells(lay, "quality", np.ones((1, 2000)), t, p, 67)

    res = simulate_limits(compute, 2000, True, 4, CalibrationSpec(300, 1.0),
                          np.random.default_rng(0))
    assert 0.05 < res["ccc_difference"]["limit"] < 0.09  # ser-tests: 0.0741 over 1000 runs
    assert 0.06 < res["precision_per_bin_difference"]["limit"] < 0.11  # ser-tests: 0.0877
    small = layout_of([100, 100], np.zeros(200), np.zeros(200))
    res_small = simulate_limits(lambda t, p: compute_cells(small, "quality", np.ones((1, 200)),
                                                           t, p, 7),
                                200, True, 4, CalibrationSpec(300, 1.0), np.random.default_rng(0))
    assert res_small["ccc_difference"]["limit"] > 2 * res["ccc_difference"]["limit"]


def test_calibration_accent_ballpark_and_truncated_gaussian():
    lay = layout_of([60] * 30, None, np.zeros(1800))
    res = simulate_limits(lambda t, p: compute_cells(lay, "distribution", np.ones((1, 1800)),
                                                     t, p, 4),
                          1800, True, 4, CalibrationSpec(300, 0.99), np.random.default_rng(3),
                          needs_truth=False)
    assert 0.055 < res["mean_difference"]["limit"] < 0.09  # ser-tests: 0.0738
    x = truncated_gaussian(np.random.default_rng(0), (200_000,))
    assert x.min() >= 0 and x.max() <= 1 and abs(x.mean() - 0.5) < 0.002


def test_calibrated_thresholds_replace_the_catalogue_ones():
    ctx, _ = sex_ctx(0.05, 0.05)
    check = registry()["fairness_sex"]({"calibrate": {"simulations": 100}})
    out = check.measure(ctx, "m", "arousal")
    ccc = deltas(out, "ccc_difference")["female"]
    assert ccc.threshold.absolute and ccc.threshold.limit > 0.075  # 120 items per group
    assert out.plots["calibration"]["details"]["ccc_difference"]["simulations"] == 100
    assert any("calibrated" in n for n in out.notes)
    again = check.measure(ctx, "m", "arousal")  # cached, identical
    assert deltas(again, "ccc_difference")["female"].threshold == ccc.threshold


# -- F0 feature -----------------------------------------------------------------------------------
def harmonic(f0: float, seconds: float = 1.0, sr: int = 16000, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    return (0.1 * x + 0.002 * np.random.default_rng(seed).standard_normal(t.size)).astype("float32")


@pytest.mark.parametrize("f0", [70.0, 110.0, 180.0, 260.0, 330.0])
def test_f0_estimator_is_accurate_on_harmonic_signals(f0):
    assert F0Estimator().mean_f0(harmonic(f0)) == pytest.approx(f0, rel=0.01)


def test_f0_estimator_unvoiced_silence_shape_and_fingerprint():
    est = F0Estimator()
    noise = np.random.default_rng(1).standard_normal(16000).astype("float32") * 0.1
    assert est.mean_f0(noise) == NO_F0
    assert est.mean_f0(np.zeros(8000, dtype="float32")) == NO_F0
    out = est.predict([harmonic(120.0), harmonic(200.0, 0.5)])
    assert out.shape == (2, 1) and np.all(np.isfinite(out))
    assert np.array_equal(out, est.predict([harmonic(120.0), harmonic(200.0, 0.5)]))
    assert est.fingerprint() == F0Estimator().fingerprint() != F0Estimator(fmin=60).fingerprint()
    assert est.output_range is None and est.dimensions == ("f0",)


# -- end to end -----------------------------------------------------------------------------------
@pytest.fixture()
def voices(tmp_path):
    """48 short harmonic 'utterances' of 8 speakers (4 low, 4 high pitched), labelled."""
    rng = np.random.default_rng(7)
    root = tmp_path / "voices"
    root.mkdir()
    rows = []
    for s in range(8):
        female = s % 2 == 1
        for i in range(6):
            f0 = (210.0 if female else 110.0) * (1 + 0.03 * rng.standard_normal())
            name = f"s{s}_{i}.wav"
            sf.write(root / name, harmonic(f0, 0.4, seed=s * 10 + i), 16000)
            value = float(rng.uniform(0.1, 0.9))
            rows.append(dict(id=f"s{s}_{i}", file=name, speaker=f"s{s}",
                             sex="female" if female else "male",
                             language="en" if s < 4 else "de", accent=f"acc{s % 3}",
                             sentiment=["negative", "neutral", "positive"][i % 3],
                             emotion=CATEGORIES[i % 4], arousal=value, dominance=value,
                             valence=1 - value))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def test_audit_end_to_end_with_the_random_baseline(voices):
    suite = {"name": "fair", "bootstrap": {"n_boot": 50}, "tests": [
        "correctness_distribution", "correctness_consistency",
        {"test": "correctness_speaker_average", "params": {"min_samples": 3}},
        {"test": "correctness_speaker_ranking", "params": {"min_samples": 3}},
        "fairness_sex",
        {"test": "fairness_pitch", "params": {"min_speaker_samples": 3}},
        {"test": "fairness_accent", "params": {"min_group_size": 10}},
        "fairness_language", "fairness_linguistic_sentiment",
        {"test": "fairness_group", "name": "sex_x_language",
         "params": {"columns": ["sex", "language"], "min_group_size": 5,
                    "calibrate": {"simulations": 30}}},
    ]}
    res = audit(["random:gaussian"], str(voices), suite, cache=False, baselines=False)
    entries = {(t["test"], t["dimension"]): t for t in res.tests if t["test"] != "model_health"}
    assert len(entries) == 10 * 3
    assert not [t for t in res.tests if t["verdict"] == "error"], \
        [(t["test"], t.get("error")) for t in res.tests if t["verdict"] == "error"]
    pitch = entries[("fairness_pitch", "arousal")]
    assert set(pitch["plots"]["group_sizes"]["labels"]) == {"low", "high"}
    for t in res.tests:  # every plot has a shape the HTML report can draw
        for name, data in (t.get("plots") or {}).items():
            assert detect(name, data) != "unknown", (t["test"], name)
    cross = entries[("sex_x_language", "valence")]
    assert {m["extra"]["group"] for m in cross["measurements"]} == {
        "female & de", "female & en", "male & de", "male & en"}
    assert any(m["threshold"] and m["threshold"]["value"] > 0.075
               for m in cross["measurements"] if m["metric"] == "ccc_difference")
    doc = json.loads(res.to_json())  # JSON-safe (no NaN)
    again = audit(["random:gaussian"], str(voices), suite, cache=False, baselines=False)
    assert json.loads(again.to_json())["tests"] == doc["tests"]


# -- labelled data: the error-based cells carry the label-free tests' verdicts (issue 12) -------
def _accent_table():
    table = labelled_table(n_speakers=12, per_speaker=30)
    table["accent"] = table["speaker"].map(lambda s: f"a{int(s[1:]) % 3}")
    return table


def test_labelled_accent_test_judges_the_signed_mean_error_and_keeps_the_catalogue_cells():
    table = _accent_table()
    truth = table["arousal"].to_numpy()
    rng = np.random.default_rng(5)
    sound = truth + rng.normal(0, 0.05, len(table))  # truth + noise independent of accent
    biased = sound + 0.15 * (table["accent"] == "a1").to_numpy()
    ctx = make_ctx(table, {"sound": dims_frame(table, sound),
                           "biased": dims_frame(table, biased)})
    params = {"min_group_size": 20}
    out = run("fairness_accent", ctx, "sound", "arousal", params)
    err = deltas(out, "mean_error_difference")
    assert set(err) == {"a0", "a1", "a2"}
    assert all(m.verdict == "pass" for m in err.values())
    # the label-free cells stay, judged as secondary (they may fail, never block a pass)
    secondary = [m for m in out.measurements if m.metric in (
        "mean_difference", "relative_difference_per_bin")]
    assert secondary and all(m.extra.get("role") == "secondary" for m in secondary)
    assert all(m.extra.get("role") != "secondary" for m in err.values())
    bad = run("fairness_accent", ctx, "biased", "arousal", params)
    shifted = deltas(bad, "mean_error_difference")["a1"]
    assert shifted.value == pytest.approx(0.15, abs=0.02)  # a level shift moves it by itself
    assert shifted.verdict == "fail" and bad.entry["verdict"] == "fail"


def test_without_labels_the_distribution_cells_are_the_primary_cells():
    table = _accent_table().drop(columns=["arousal", "dominance", "valence"])
    rng = np.random.default_rng(6)
    ctx = make_ctx(table, {"m": dims_frame(table, rng.normal(0.5, 0.1, len(table)))})
    out = run("fairness_accent", ctx, "m", "arousal", {"min_group_size": 20})
    assert not deltas(out, "mean_error_difference")
    assert all("role" not in (m.extra or {}) for m in out.measurements
               if m.metric == "mean_difference")


def test_language_and_sentiment_tests_gain_error_cells_that_ignore_the_labels_own_shifts():
    """The label-free shift moves with the labels; the error shift only with the model."""
    table = labelled_table(n_speakers=12, per_speaker=30)
    sentiments = ["negative", "neutral", "positive"]
    table["sentiment"] = [sentiments[i % 3] for i in range(len(table))]
    sign = table["sentiment"].map({"negative": -1.0, "neutral": 0.0, "positive": 1.0})
    en = (table["language"] == "en").to_numpy()
    # in English the *labels* follow the words (true differences, not the model's reading)
    table["arousal"] = np.clip(table["arousal"] + 0.1 * sign * en, 0, 1)
    truth = table["arousal"].to_numpy()
    rng = np.random.default_rng(7)
    sound = truth + rng.normal(0, 0.03, len(table))
    reads = sound + 0.3 * sign.to_numpy() * (~en)  # reads the German words
    ctx = make_ctx(table, {"sound": dims_frame(table, sound), "reads": dims_frame(table, reads)})
    out = run("fairness_linguistic_sentiment", ctx, "sound", "arousal")
    label_free = deltas(out, "mean_shift_difference")["en / positive"]
    error = deltas(out, "mean_error_shift_difference")
    assert label_free.value > 0.04  # the labels' own shift shows in the predictions
    assert abs(error["en / positive"].value) < 0.02  # ... not in the errors
    assert all(m.verdict == "pass" for m in error.values())
    assert label_free.extra.get("role") == "secondary"
    bad = run("fairness_linguistic_sentiment", ctx, "reads", "arousal")
    de_pos = deltas(bad, "mean_error_shift_difference")["de / positive"]
    assert de_pos.value == pytest.approx(0.3 / 2, abs=0.02)  # m (1 - 1/L), L = 2
    assert de_pos.verdict == "fail" and bad.entry["verdict"] == "fail"


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(6, 30), min_size=2, max_size=4), st.integers(0, 10_000),
       st.floats(-0.3, 0.3))
def test_error_cells_are_zero_for_truth_plus_a_constant_and_see_one_groups_shift(
        sizes, seed, shift):
    from sertest.checks.fairness import error_cells

    rng = np.random.default_rng(seed)
    n = sum(sizes)
    t = rng.uniform(0, 1, n)
    lay = layout_of(sizes, t, t + 0.2)  # every item over-predicted by 0.2: no group differs
    (_, values), = error_cells(lay, "distribution", np.ones((1, n))).values()
    assert np.allclose(values, 0.0, atol=1e-12)
    p = t.copy()
    a, b = lay.bounds[0]
    p[a:b] += shift
    lay = layout_of(sizes, t, p)
    (_, values), = error_cells(lay, "distribution", np.ones((1, n))).values()
    assert values[0, 0] == pytest.approx(shift, abs=1e-9)  # g0 against the rest
    # contexts inside groups: the error shift of a constant over- or under-prediction is 0
    contexts = [[("x", a, a + (b - a) // 2), ("y", a + (b - a) // 2, b)] for a, b in lay.bounds]
    lay = Layout(lay.names, lay.bounds, lay.ids, True, 4, [], p, t, None, contexts, ["x", "y"])
    (_, values), = error_cells(lay, "shift", np.ones((1, n))).values()
    finite = values[np.isfinite(values)]
    assert np.allclose(finite, 0.0, atol=1e-9)
