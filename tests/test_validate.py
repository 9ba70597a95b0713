"""sertest validate: planted defects, the oracle, resampling and the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sertest import audio
from sertest.cli import main
from sertest.data import load_dataset
from sertest.errors import UsageError
from sertest.models.base import DIMENSIONS, Model
from sertest.perturb import from_spec
from sertest.validate import DEFECTS, resample_ids, validate
from sertest.validate.defects import (Setup, band_severity, codec_severity, move_class,
                                      noise_severity)
from sertest.validate.oracle import oracle_frame

#: one fairness, one correctness and one cheap robustness test, arousal only
SUITE = {
    "name": "validate-test",
    "targets": ["arousal"],
    "bootstrap": {"n_boot": 200, "confidence": 0.95},
    "tests": [
        {"test": "correctness_regression"},
        {"test": "fairness_sex"},
        {"test": "robustness_spectral_tilt", "params": {"max_items": 40}},
    ],
}


class LookupModel(Model):
    """A competent, fair and robust stand-in that costs nothing to run: it recognises an item
    by its audio (the clean signal of the same length that correlates best with it) and
    predicts the item's labels plus a little item-fixed noise."""

    concurrent = True
    dimensions = DIMENSIONS

    def __init__(self, dataset, noise: float = 0.05) -> None:
        self.name = "lookup"
        self.sampling_rate = 16000
        self._by_len: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        rng = np.random.default_rng(7)
        for item, row in dataset.table.iterrows():
            x = audio.load(row["file"], self.sampling_rate).astype(np.float64)
            y = np.clip(row[list(DIMENSIONS)].to_numpy(float)
                        + noise * rng.standard_normal(3), 0, 1)
            self._by_len.setdefault(len(x), []).append((x / (np.linalg.norm(x) + 1e-12), y))

    def predict_batch(self, signals):
        out = np.full((len(signals), 3), 0.5)
        for k, s in enumerate(signals):
            cands = self._by_len.get(len(s))
            if cands:
                s = np.asarray(s, np.float64)
                best = max(cands, key=lambda c: float(c[0] @ s))
                out[k] = best[1]
        return out

    def fingerprint(self) -> str:
        return "lookup-test-model:v1"


@pytest.fixture(scope="module")
def corpus():
    return load_dataset(None)


@pytest.fixture(scope="module")
def lookup(corpus):
    return LookupModel(corpus)


@pytest.fixture(scope="module")
def validation(corpus, lookup, tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    out = str(tmp_path_factory.mktemp("out"))
    v = validate(lookup, corpus, SUITE, resamples=4, seed=3,
                 defects=["level_shift_sex", "constant", "band_sensitivity"],
                 magnitudes={"level_shift_sex": [0.3], "constant": [1.0],
                             "band_sensitivity": [0.2]},
                 cache=cache, jobs=2, progress=False, out=out)
    return v, cache, out


# -- end to end -----------------------------------------------------------------------------
def test_level_shift_for_one_sex_is_caught_by_fairness_sex(validation):
    v, _, _ = validation
    planted = v.row("fairness_sex", "arousal", "level_shift_sex@0.3")
    clean = v.row("fairness_sex", "arousal", "lookup")
    assert planted["targeted"] and planted["resamples"] == 4
    assert planted["detection"] >= 0.75
    assert clean["detection"] <= 0.25  # the stand-in is fair: the defect made the difference
    # a level shift for one group leaves robustness alone
    assert v.row("robustness_spectral_tilt", "arousal", "level_shift_sex@0.3")["detection"] \
        == v.row("robustness_spectral_tilt", "arousal", "lookup")["detection"]


def test_constant_is_caught_by_correctness_and_sensitivity_by_its_robustness_test(validation):
    v, _, _ = validation
    const = v.row("correctness_regression", "arousal", "constant@1")
    assert const["targeted"] and const["reference"] and const["detection"] == 1.0
    assert v.row("correctness_regression", "arousal", "lookup")["detection"] == 0.0
    band = v.row("robustness_spectral_tilt", "arousal", "band_sensitivity@0.2")
    assert band["targeted"] and band["detection"] == 1.0
    assert v.row("robustness_spectral_tilt", "arousal", "lookup")["detection"] == 0.0
    # a constant model is perfectly robust: its predictions do not move
    assert v.row("robustness_spectral_tilt", "arousal", "constant@1")["detection"] == 0.0


def test_oracle_and_threshold_sizes_are_reported(validation):
    v, _, out = validation
    oracle = [r for r in v.rows if r["kind"] == "oracle"]
    assert {r["test"] for r in oracle} == {"correctness_regression", "fairness_sex",
                                           "robustness_spectral_tilt"}
    for r in oracle:
        assert sum(r["counts"].values()) == r["resamples"] == 4 == len(r["verdicts"])
        assert 0.0 <= r["detection"] <= 1.0
    # the oracle knows the truth and ignores the audio: correctness and robustness pass
    assert v.row("correctness_regression", "arousal", "oracle")["detection"] == 0.0
    assert v.row("robustness_spectral_tilt", "arousal", "oracle")["detection"] == 0.0
    # fairness_sex judges mean_error_difference "abs < t": the defect is planted at size t
    names = {m["name"]: m for m in v.doc["models"]}
    at = names.get("level_shift_sex@threshold:fairness_sex")
    assert at is not None
    limit = next(tg["limit"] for th in v.doc["thresholds"] if th["defect"] == "level_shift_sex"
                 for tg in th["targets"] if tg["target"] == "arousal")
    assert at["magnitude"]["arousal"] == pytest.approx(abs(limit))
    doc = json.load(open(f"{out}/validity.json"))
    assert doc["schema"] == "sertest/validity@1" and doc["rows"] == v.rows
    md = open(f"{out}/validity.md").read()
    assert "False alarms" in md and "level_shift_sex" in md and "| fairness_sex | arousal |" in md
    # the compact summary an audit report shows beside each test
    brief = json.load(open(f"{out}/validity-summary.json"))
    sex = brief["tests"]["fairness_sex"]["arousal"]
    oracle_row = v.row("fairness_sex", "arousal", "oracle")
    assert sex["oracle"]["pass"] == oracle_row["passed"]
    assert sex["oracle"]["fail"] == oracle_row["detection"]
    assert sex["defects"]["level_shift_sex"] == v.row(
        "fairness_sex", "arousal", "level_shift_sex@threshold:fairness_sex")["not_green"]
    assert brief["settings"]["resamples"] == 4 and brief["suite"] == v.doc["suite"]["name"]


def test_same_seed_same_table(validation, corpus, lookup):
    """Neither the number of prediction threads nor of judging processes changes a verdict."""
    v, cache, _ = validation
    again = validate(lookup, corpus, SUITE, resamples=4, seed=3,
                     defects=["level_shift_sex", "constant", "band_sensitivity"],
                     magnitudes={"level_shift_sex": [0.3], "constant": [1.0],
                                 "band_sensitivity": [0.2]},
                     cache=cache, jobs=1, workers=2, progress=False)
    assert again.rows == v.rows
    assert again.doc["models"] == v.doc["models"]


# -- parts ----------------------------------------------------------------------------------
def test_resamples_are_speaker_sets_and_seeded(corpus):
    a = resample_ids(corpus, 5, 0.8, seed=0)
    assert a == resample_ids(corpus, 5, 0.8, seed=0)
    assert a != resample_ids(corpus, 5, 0.8, seed=1)
    spk = corpus.table["speaker"]
    n_spk = spk.nunique()
    for ids in a:
        chosen = set(spk[ids])
        assert len(chosen) == round(0.8 * n_spk)
        # whole speakers: every item of a chosen speaker is in
        assert set(spk.index[spk.isin(chosen)]) == set(ids)
    assert len({tuple(ids) for ids in a}) > 1


def _setup(n=40, classes=()):
    rng = np.random.default_rng(0)
    ids = [f"i{k:02d}" for k in range(n)]
    table = pd.DataFrame({"sex": ["female", "male"] * (n // 2),
                          "language": ["en"] * (n // 2) + ["de"] * (n // 2),
                          "sentiment": ["positive", "negative", "neutral", "neutral"] * (n // 4),
                          "arousal": rng.random(n), "valence": rng.random(n)},
                         index=pd.Index(ids, name="id"))
    cols = ["arousal", "valence"] + list(classes)
    clean = pd.DataFrame(rng.uniform(0.2, 0.8, (n, len(cols))), index=table.index, columns=cols)
    return Setup(table=table, seed=0, dimensions=("arousal", "valence"), classes=tuple(classes),
                 output_range=(0.0, 1.0), clean=clean)


def _plant(defect, setup, frame, m, ck="clean", cond=None):
    d = DEFECTS[defect]
    return d.plant(setup, d.prepare(setup), ck, cond, frame, {t: m for t in setup.targets})


def test_level_shift_moves_exactly_one_group_and_clips():
    s = _setup()
    out = _plant("level_shift_sex", s, s.clean, 0.1)
    female = s.table["sex"] == "female"
    np.testing.assert_allclose(out.loc[female, "arousal"],
                               np.clip(s.clean.loc[female, "arousal"] + 0.1, 0, 1))
    pd.testing.assert_frame_equal(out[~female], s.clean[~female])
    assert _plant("level_shift_sex", s, s.clean, 0.9)["arousal"].max() <= 1.0


def test_sensitivity_scales_with_severity_and_spares_clean_audio():
    s = _setup()
    white = lambda snr: from_spec({"name": "white_noise", "snr_db": snr})  # noqa: E731
    assert noise_severity(None) == 0 and noise_severity(white(20)) == pytest.approx(1.0)
    assert noise_severity(white(0)) == pytest.approx(10.0)
    assert codec_severity(from_spec({"name": "opus", "bitrate": 6000})) == pytest.approx(2.0)
    assert band_severity(from_spec("spectral_tilt")) == 1.0
    assert band_severity(from_spec("gain")) == 0.0
    pd.testing.assert_frame_equal(_plant("noise_sensitivity", s, s.clean, 0.1), s.clean)
    frame = s.clean.copy()
    p = white(20.0)
    small = _plant("noise_sensitivity", s, frame, 0.02, p.key, p) - frame
    big = _plant("noise_sensitivity", s, frame, 0.04, p.key, p) - frame
    assert 0.005 < small["arousal"].abs().mean() < 0.04
    # the same items move the same way at a larger magnitude (up to clipping)
    assert (np.sign(small["arousal"]) == np.sign(big["arousal"])).all()
    # an item's draw does not depend on the other items
    part = _plant("noise_sensitivity", s, frame.iloc[5:9], 0.02, p.key, p) - frame.iloc[5:9]
    pd.testing.assert_frame_equal(part, small.iloc[5:9])


def test_shuffled_keeps_each_items_change_and_constant_collapses():
    s = _setup()
    perturbed = s.clean + 0.01
    out = _plant("shuffled", s, perturbed, 1.0, "x")
    clean_out = _plant("shuffled", s, s.clean, 1.0)
    np.testing.assert_allclose((out - clean_out).to_numpy(), 0.01, atol=1e-12)
    assert not np.allclose(clean_out.to_numpy(), s.clean.to_numpy())
    assert sorted(clean_out["arousal"]) == pytest.approx(sorted(s.clean["arousal"]))
    const = _plant("constant", s, s.clean, 1.0)
    assert const["arousal"].nunique() == 1


def test_lexical_sentiment_in_the_largest_language_only():
    s = _setup()
    out = _plant("lexical_sentiment", s, s.clean, 0.05) - s.clean
    t = s.table
    lang = sorted(t["language"].unique())[0]  # both have 20 items: ties go to sorted order
    pos = (t["language"] == lang) & (t["sentiment"] == "positive")
    neg = (t["language"] == lang) & (t["sentiment"] == "negative")
    assert np.allclose(out.loc[pos, "arousal"], 0.05)
    assert np.allclose(out.loc[neg, "arousal"], -0.05)
    assert np.allclose(out.loc[~(pos | neg)], 0.0)


def test_emotion_defects_move_classes():
    s = _setup(classes=("anger", "happiness", "neutral", "sadness"))
    scores = np.array([[0.1, 0.7, 0.1, 0.1], [0.5, 0.2, 0.2, 0.1]])
    moved = move_class(scores, np.array([True, False]), np.array([3, 0]))
    assert moved[0].argmax() == 3 and moved[1].argmax() == 0
    assert sorted(moved[0]) == sorted(scores[0])
    out = _plant("level_shift_sex", s, s.clean, 1.0)
    cls = list(s.classes)
    female = (s.table["sex"] == "female").to_numpy()
    before = s.clean[cls].to_numpy().argmax(1)
    after = out[cls].to_numpy().argmax(1)
    assert (after[female] == (before[female] + 1) % 4).all()
    assert (after[~female] == before[~female]).all()


def test_oracle_is_truth_plus_noise_and_independent_of_the_item_set():
    s = _setup(classes=("anger", "happiness"))
    s.table["emotion"] = ["anger", "happiness"] * 20
    full = oracle_frame(s, s.table.index, sigma=0.1, confusion=0.0)
    err = full["arousal"] - s.table["arousal"]
    assert 0.03 < err.abs().mean() < 0.15
    assert (full[["anger", "happiness"]].idxmax(axis=1) == s.table["emotion"]).all()
    part = oracle_frame(s, s.table.index[3:7], sigma=0.1, confusion=0.0)
    pd.testing.assert_frame_equal(part, full.iloc[3:7])


def test_bad_options_are_usage_errors(corpus, lookup):
    with pytest.raises(UsageError, match="resamples"):
        validate(lookup, corpus, SUITE, resamples=0)
    with pytest.raises(UsageError, match="unknown defect"):
        validate(lookup, corpus, SUITE, defects="level_shift_sex,nope")
    with pytest.raises(UsageError, match="share"):
        validate(lookup, corpus, SUITE, share=1.5)
    with pytest.raises(UsageError, match="magnitudes"):
        validate(lookup, corpus, SUITE, magnitudes=[-0.1])


def test_cli_refuses_bad_options(capsys):
    assert main(["validate", "--model", "random:gaussian", "--resamples", "0"]) == 2
    assert "--resamples" in capsys.readouterr().err
    assert main(["validate", "--model", "random:gaussian", "--defects", "nope"]) == 2
    assert "unknown defect" in capsys.readouterr().err
    assert main(["validate", "--model", "random:gaussian", "--magnitudes", "a,b"]) == 2
    assert "--magnitudes" in capsys.readouterr().err


def test_cli_writes_the_table(tmp_path, capsys):
    out = tmp_path / "validity"
    code = main(["validate", "--model", "random:gaussian", "--suite", "smoke", "--resamples",
                 "2", "--defects", "constant", "--quick", "--out", str(out), "--no-progress",
                 "--cache", str(tmp_path / "cache")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "oracle false alarms" in printed and "validity.md" in printed
    doc = json.loads((out / "validity.json").read_text())
    assert {m["name"] for m in doc["models"]} == {"random-gaussian", "oracle", "constant@1"}
    assert {r["resamples"] for r in doc["rows"]} == {2}
    # a random model is not correct: the smoke suite fails it, and passes the oracle
    assert all(r["detection"] == 1.0 for r in doc["rows"] if r["model"] == "random-gaussian")
    assert all(r["detection"] == 0.0 for r in doc["rows"] if r["model"] == "oracle")


def test_defects_planted_on_the_oracle_measure_the_suite_alone(corpus, tmp_path):
    """A random model is not competent, so fairness is gated for it and for defects planted
    on its predictions; planted on the oracle, the same level shift is caught."""
    suite = {"name": "sex", "targets": ["arousal"], "bootstrap": {"n_boot": 200},
             "tests": [{"test": "correctness_regression"}, {"test": "fairness_sex"}]}
    kw = dict(resamples=3, defects=["level_shift_sex"], magnitudes=[0.3],
              cache=str(tmp_path / "cache"), progress=False)
    on_model = validate("random:gaussian", corpus, suite, **kw)
    on_oracle = validate("random:gaussian", corpus, suite, carrier="oracle", **kw)
    assert on_model.doc["settings"]["carrier"] == "model"
    assert on_model.row("fairness_sex", "arousal", "level_shift_sex@0.3")["gated"] == 1.0
    assert on_oracle.row("fairness_sex", "arousal", "level_shift_sex@0.3")["detection"] == 1.0
    assert on_oracle.row("fairness_sex", "arousal", "oracle")["detection"] == 0.0
    # the clean column is the real model either way
    assert on_oracle.row("correctness_regression", "arousal", "random-gaussian")["detection"] \
        == on_model.row("correctness_regression", "arousal", "random-gaussian")["detection"]
    with pytest.raises(UsageError, match="carrier"):
        validate("random:gaussian", corpus, suite, carrier="teacher", **kw)
