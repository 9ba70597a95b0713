"""Correctness tests on hand-built datasets and prediction stores with planted behaviour."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sertest import metrics
from sertest.checks import registry
from sertest.checks.base import Context
from sertest.checks.correctness import (EXPECTED_RANGES, primary_ids, spearman_ci,
                                        weighted_spearman)
from sertest.data.dataset import Dataset
from sertest.engine.store import CLEAN, PredictionStore
from sertest.errors import UsageError
from sertest.models.base import CATEGORIES, DIMENSIONS
from sertest.models.random import RandomCategorical, RandomGaussian


# -- building contexts by hand ------------------------------------------------------------------
def make_ctx(table: pd.DataFrame, dims: dict[str, pd.DataFrame] | None = None,
             classes: dict[str, pd.Series] | None = None, n_boot: int = 200,
             seed: int = 0) -> Context:
    """A Context over ``table`` (index = item ids) with clean predictions.

    ``dims``: model -> frame with arousal/dominance/valence columns; ``classes``: model ->
    series of predicted class names (stored as one-hot rows over CATEGORIES).
    """
    table = table.copy()
    table["file"] = [f"/nonexistent/{i}.wav" for i in table.index]
    table["start"] = np.nan
    table["end"] = np.nan
    table.index.name = "id"
    models = {}
    for name in dims or {}:
        models[name] = RandomGaussian(name)
    for name in classes or {}:
        models[name] = RandomCategorical(name)
    store = PredictionStore({m: models[m].outputs for m in models})
    for name, frame in (dims or {}).items():
        for item, row in frame[list(DIMENSIONS)].iterrows():
            store.add(name, CLEAN, item, row.to_numpy(float))
    for name, labels in (classes or {}).items():
        for item, label in labels.items():
            onehot = np.zeros(len(CATEGORIES))
            onehot[CATEGORIES.index(label)] = 1.0
            store.add(name, CLEAN, item, onehot)
    return Context(Dataset(table, "/nonexistent"), store, models, seed=seed, n_boot=n_boot)


def labelled_table(n_speakers: int = 12, per_speaker: int = 20, seed: int = 0) -> pd.DataFrame:
    """Speakers with distinct average arousal, balanced emotions, sex and language."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_speakers):
        centre = 0.2 + 0.6 * s / max(1, n_speakers - 1)
        for i in range(per_speaker):
            value = float(np.clip(centre + rng.normal(0, 0.1), 0, 1))
            rows.append(dict(id=f"s{s:02d}_{i:03d}", speaker=f"s{s:02d}",
                             sex="female" if s % 2 else "male",
                             language="en" if s < n_speakers // 2 else "de",
                             emotion=CATEGORIES[i % 4], arousal=value,
                             dominance=value, valence=1 - value))
    return pd.DataFrame(rows).set_index("id")


def dims_frame(table: pd.DataFrame, values) -> pd.DataFrame:
    values = np.asarray(values, dtype=float)
    return pd.DataFrame({d: values for d in DIMENSIONS}, index=table.index)


def run(test_id: str, ctx: Context, model: str, target: str, params=None, thresholds=None):
    """Measure and judge one entry with the real judge; ``out.entry`` holds its fields."""
    from sertest.checks.verdict import judge_entry

    check = registry()[test_id](params, thresholds)
    out = check.measure(ctx, model, target)
    out.entry = judge_entry(out.measurements, check.threshold_for, ctx.confidence)
    return out


def verdicts(out, metric=None) -> dict:
    return {m.group: m.verdict for m in out.measurements if metric in (None, m.metric)}


def values(out, metric=None) -> dict:
    return {m.group: m.value for m in out.measurements if metric in (None, m.metric)}


# -- tests ---------------------------------------------------------------------------------------
def test_every_catalogue_correctness_test_and_threshold_exists():
    reg = registry()
    expected = {
        "correctness_regression": {"ccc": "> 0.5", "pcc": "> 0.5", "mae": "< 0.1"},
        "correctness_distribution": {"jsd": "< 0.2", "relative_difference_per_class": "abs < 0.15"},
        "correctness_consistency": {"proportion_in_range": "> 0.75"},
        "correctness_speaker_average": {"mae": "< 0.1", "mae_skill": "> 0",
                                        "class_proportion_mae": "< 0.1"},
        "correctness_speaker_ranking": {"spearman": "> 0.7"},
        "correctness_classification": {"uar": "> 0.5", "uap": "> 0.5",
                                       "recall_per_class": "> 0.5",
                                       "precision_per_class": "> 0.5"},
    }
    for test_id, thresholds in expected.items():
        assert reg[test_id].metrics == thresholds
        assert reg[test_id].topic == "correctness"


def test_distribution_uses_ten_real_bins_and_keeps_values_above_0_9():
    table = labelled_table()
    table["arousal"] = 0.95
    ctx = make_ctx(table, {"same": dims_frame(table, 0.95), "other": dims_frame(table, 0.85)})
    # ser-tests' np.arange(0, 1, 0.1) edges dropped everything above 0.9 (NaN here)
    same = run("correctness_distribution", ctx, "same", "arousal")
    assert values(same)[None] == pytest.approx(0.0, abs=1e-12)
    other = run("correctness_distribution", ctx, "other", "arousal")
    assert values(other)[None] == pytest.approx(1.0)  # disjoint bins (0.8, 0.9] vs (0.9, 1]
    assert verdicts(other)[None] == "fail" and verdicts(same)[None] == "pass"
    assert len(other.plots["histogram"]["truth"]) == 20


def test_distribution_emotion_per_class_share_differences():
    table = labelled_table()
    pred = pd.Series("anger", index=table.index)
    ctx = make_ctx(table, classes={"angry": pred})
    out = run("correctness_distribution", ctx, "angry", "emotion")
    v = values(out, "relative_difference_per_class")
    assert v["anger"] == pytest.approx(0.75)
    assert v["sadness"] == pytest.approx(-0.25)
    assert verdicts(out)["anger"] == "fail"


def test_consistency_uses_code_neutral_range_and_skips_unmapped_categories():
    table = labelled_table()
    pred = np.where(table["emotion"] == "sadness", 0.2,
                    np.where(table["emotion"] == "anger", 0.8, 0.65))
    ctx = make_ctx(table, {"m": dims_frame(table, pred)})
    out = run("correctness_consistency", ctx, "m", "arousal")
    v = values(out, "proportion_in_range")
    # happiness has no expected arousal range in ser-tests
    assert set(v) == {"sadness", "neutral", "anger"}
    assert v == {"sadness": 1.0, "neutral": 1.0, "anger": 1.0}  # 0.65 is inside [0.3, 0.7]
    # with the documented (not coded) neutral range [0.3, 0.6] the neutral items fall out
    docs = run("correctness_consistency", ctx, "m", "arousal",
               params={"ranges": {"neutral": [0.3, 0.6]}})
    assert values(docs)["neutral"] == 0.0
    assert verdicts(docs)["neutral"] == "fail"
    assert "happiness" in EXPECTED_RANGES["valence"]["high"]


def test_consistency_needs_a_category_column_and_validates_ranges():
    table = labelled_table().drop(columns="emotion")
    ctx = make_ctx(table, {"m": dims_frame(table, 0.5)})
    assert "no 'emotion' column" in run("correctness_consistency", ctx, "m", "arousal").skipped
    with pytest.raises(UsageError, match="ranges.low"):
        registry()["correctness_consistency"]({"ranges": {"low": [None, None]}})


def test_speaker_average_recovers_a_planted_offset_and_skips_small_speakers():
    table = labelled_table()
    means = table.groupby("speaker")["arousal"].transform("mean")
    offset = np.where(table["sex"] == "female", 0.25, -0.1)  # per-speaker bias
    ctx = make_ctx(table, {"m": dims_frame(table, means + offset)})
    out = run("correctness_speaker_average", ctx, "m", "arousal")
    assert values(out, "mae")[None] == pytest.approx(0.175)
    assert verdicts(out, "mae")[None] == "fail"
    assert values(out, "mae_skill")[None] < 0  # worse than the median speaker for all
    assert out.entry["verdict"] == "fail"
    plot = out.plots["speaker_averages"]
    flagged = {s for s, f in zip(plot["speaker"], plot["flagged"]) if f}
    assert flagged == set(table.loc[table["sex"] == "female", "speaker"])  # errors > 0.2
    small = run("correctness_speaker_average", ctx, "m", "arousal", params={"min_samples": 21})
    assert "0 speakers" in small.skipped


def test_speaker_average_emotion_class_proportions():
    table = labelled_table()  # 5 of each class per speaker
    pred = table["emotion"].copy()
    pred[table["speaker"] == "s00"] = "anger"  # one speaker always predicted angry
    ctx = make_ctx(table, classes={"m": pred})
    out = run("correctness_speaker_average", ctx, "m", "emotion", params={"min_per_class": 5})
    v = values(out, "class_proportion_mae")
    assert v["anger"] == pytest.approx(0.75 / 12)
    assert v["happiness"] == pytest.approx(0.25 / 12)
    too_strict = run("correctness_speaker_average", ctx, "m", "emotion")  # ser-tests: 8 per class
    assert too_strict.skipped and "min_per_class" in too_strict.skipped


def test_speaker_ranking_is_signed_a_reversed_ranking_fails():
    table = labelled_table()
    truth = table["arousal"]
    ctx = make_ctx(table, {"same": dims_frame(table, truth),
                           "reversed": dims_frame(table, 1 - truth)})
    good = run("correctness_speaker_ranking", ctx, "same", "arousal")
    bad = run("correctness_speaker_ranking", ctx, "reversed", "arousal")
    assert values(good)[None] == pytest.approx(1.0)
    assert values(bad)[None] == pytest.approx(-1.0)
    assert verdicts(good)[None] == "pass"
    assert verdicts(bad)[None] == "fail"  # ser-tests' |rho| > 0.7 would have passed it
    ranks = bad.plots["ranks"]
    assert np.corrcoef(ranks["truth"], ranks["prediction"])[0, 1] == pytest.approx(-1.0)


def test_speaker_ranking_needs_enough_speakers():
    table = labelled_table(n_speakers=3)
    ctx = make_ctx(table, {"m": dims_frame(table, table["arousal"])})
    out = run("correctness_speaker_ranking", ctx, "m", "arousal")
    assert out.skipped and "min_samples" in out.skipped


def test_speaker_ranking_skips_when_speakers_do_not_differ_in_truth():
    table = labelled_table()
    rng = np.random.default_rng(3)
    table["arousal"] = rng.uniform(0, 1, len(table))  # same distribution for every speaker
    ctx = make_ctx(table, {"m": dims_frame(table, table["arousal"])})
    out = run("correctness_speaker_ranking", ctx, "m", "arousal")
    assert out.skipped and "ANOVA" in out.skipped
    forced = run("correctness_speaker_ranking", ctx, "m", "arousal",
                 params={"speaker_difference_p": None})
    assert not forced.skipped and values(forced)[None] is not None


def test_classification_metrics_confusion_matrix_and_never_predicted_class():
    table = labelled_table()
    pred = table["emotion"].replace({"sadness": "neutral"})  # sadness is never predicted
    ctx = make_ctx(table, classes={"m": pred})
    out = run("correctness_classification", ctx, "m", "emotion")
    recall = values(out, "recall_per_class")
    precision = values(out, "precision_per_class")
    assert recall == {"anger": 1.0, "happiness": 1.0, "neutral": 1.0, "sadness": 0.0}
    assert precision["neutral"] == pytest.approx(0.5)
    assert math.isnan(precision["sadness"])
    assert verdicts(out, "precision_per_class")["sadness"] == "skipped"
    assert verdicts(out, "recall_per_class")["sadness"] == "fail"
    assert values(out, "uar")[None] == pytest.approx(0.75)
    assert values(out, "uap")[None] == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    cm = out.plots["confusion_matrix"]
    assert np.asarray(cm["matrix"]).sum() == len(table)
    matrix = np.asarray(cm["matrix"])
    assert matrix[cm["rows"].index("sadness"), cm["columns"].index("neutral")] == 60


def test_bootstrap_cis_bracket_the_value_and_are_reproducible():
    table = labelled_table()
    rng = np.random.default_rng(5)
    pred = np.clip(table["arousal"] + rng.normal(0, 0.1, len(table)), 0, 1)
    ctx = make_ctx(table, {"m": dims_frame(table, pred)})
    a = run("correctness_regression", ctx, "m", "arousal")
    fresh = make_ctx(table, {"m": dims_frame(table, pred)})
    b = run("correctness_regression", fresh, "m", "arousal")
    for ma, mb in zip(a.measurements, b.measurements):
        assert ma.ci == mb.ci
        assert ma.ci[0] <= ma.value <= ma.ci[1]


def test_paired_renditions_are_scored_once():
    table = labelled_table(n_speakers=2, per_speaker=4)
    extra = table.iloc[:2].copy()
    extra.index = [f"{i}_mobile" for i in extra.index]
    table["pair"] = ""
    table.loc[table.index[:2], "pair"] = ["p1", "p2"]
    extra["pair"] = ["p1", "p2"]
    full = pd.concat([table, extra])
    ctx = make_ctx(full, {"m": dims_frame(full, 0.5)})
    ids = primary_ids(ctx)
    assert len(ids) == len(table) and not any(i.endswith("_mobile") for i in ids)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=3, max_size=15), st.integers(0, 10_000))
def test_weighted_spearman_equals_spearman_on_repeated_items(xs, seed):
    rng = np.random.default_rng(seed)
    x = np.asarray(xs, dtype=float)
    y = rng.random(x.size).round(1)
    w = rng.integers(0, 3, size=(4, x.size))
    got = weighted_spearman(w, x, y)
    for r in range(4):
        idx = np.repeat(np.arange(x.size), w[r])
        ref = metrics.spearman(x[idx], y[idx]) if idx.size else math.nan
        if math.isnan(ref):
            assert math.isnan(got[r])
        else:
            assert got[r] == pytest.approx(ref, abs=1e-9)


def test_spearman_ci_is_none_without_bootstrap_and_brackets_rho():
    table = labelled_table()
    x = np.linspace(0, 1, 30)
    y = x + np.random.default_rng(0).normal(0, 0.2, 30)
    ctx = make_ctx(table, {"m": dims_frame(table, 0.5)}, n_boot=300)
    (lo, hi), reps = spearman_ci(ctx, x, y, "k")
    assert lo <= metrics.spearman(x, y) <= hi
    assert reps.shape == (300,)
    assert spearman_ci(make_ctx(table, {"m": dims_frame(table, 0.5)}, n_boot=0), x, y, "k") \
        == (None, None)


def test_plot_data_has_shapes_the_report_draws():
    from sertest.report.plots import detect

    table = labelled_table()
    rng = np.random.default_rng(1)
    pred = np.clip(table["arousal"] + rng.normal(0, 0.1, len(table)), 0, 1)
    ctx = make_ctx(table, {"m": dims_frame(table, pred)}, classes={"c": table["emotion"]})
    seen = set()
    for test_id in ("correctness_regression", "correctness_distribution",
                    "correctness_consistency", "correctness_speaker_average",
                    "correctness_speaker_ranking", "correctness_classification"):
        for model, target in (("m", "arousal"), ("c", "emotion")):
            if not registry()[test_id]().supports(target):
                continue
            out = run(test_id, ctx, model, target, params={"min_per_class": 5}
                      if test_id == "correctness_speaker_average" else None)
            for name, data in out.plots.items():
                kind = detect(name, data)
                assert kind != "unknown", (test_id, target, name)
                seen.add(kind)
    assert {"scatter", "histogram", "confusion", "speakers", "ranks", "shares", "categories"} <= seen
