"""Robustness tests and dose-response sweeps, end to end through ``sertest.audit``.

Models are tiny real ONNX graphs (tests/helpers.py): the output fed by 3 x RMS reacts to
level changes (gain) but not to additive noise (the mixing rule restores the RMS); the
output fed by the peak reacts to noise; the output fed by the mean (about 0.5) reacts to
neither.  The synthetic data's labels are those features of the clean signals, so every
model is exact on clean audio and the planted sensitivities decide the verdicts.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from sertest import audit, metrics
from sertest.checks.base import Measurement
from sertest.checks.dose import DoseNoise, DosePitch, crossing
from sertest.checks.robustness import difference_replicates, unchanged_mask, wilson_interval
from sertest.stats import percentile_interval
from sertest.errors import UsageError
from sertest.suite import load_suite
from tests.helpers import make_onnx_model

SR = 16000
N_ITEMS = 30


def _signal(rng, level):
    n = int(SR * rng.uniform(0.5, 0.9))
    t = np.arange(n) / SR
    x = level * np.sin(2 * np.pi * rng.uniform(120, 260) * t) + 0.002 * rng.standard_normal(n)
    return x.astype("float32")


def _features(x):
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 3 * rms, float(np.max(np.abs(x)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """30 labelled items (6 speakers): arousal = 3 x RMS, valence = peak, emotion from RMS."""
    root = tmp_path_factory.mktemp("robust-data")
    rng = np.random.default_rng(7)
    rows = []
    for i in range(N_ITEMS):
        x = _signal(rng, rng.uniform(0.05, 0.35))
        sf.write(root / f"x{i}.wav", x, SR, subtype="FLOAT")
        a, v = _features(x)
        rows.append(dict(id=f"i{i:02d}", file=f"x{i}.wav", speaker=f"s{i % 6}", arousal=a,
                         dominance=rng.uniform(), valence=v,
                         emotion="anger" if a > 0.5 else "happiness"))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust-models")
    return {
        # arousal = 3 RMS (level-sensitive), valence = peak (noise-sensitive)
        "level": make_onnx_model(os.fspath(root / "level.onnx")),
        # arousal = mean * 50 + 0.5 (insensitive to level and noise)
        "flat": make_onnx_model(os.fspath(root / "flat.onnx"),
                                labels=("valence", "arousal", "dominance")),
        # emotion: anger = 3 RMS, happiness = about 0.5 -> anger iff 3 RMS > 0.5
        "cat": make_onnx_model(os.fspath(root / "cat.onnx"),
                               labels=("anger", "happiness", "neutral", "sadness")),
    }


def _run(models, data, tests, targets=None, **kw):
    suite = {"name": "t", "bootstrap": {"n_boot": 200}, "tests": tests}
    if targets:
        suite["targets"] = targets
    return audit(models, str(data / "manifest.csv"), suite, cache=False, baselines=False,
                 jobs=1, **kw)


def _meas(res, test, model, target, metric=None, group=None):
    (entry,) = res.select(test, model, target)
    ms = [m for m in entry["measurements"]
          if (metric is None or m["metric"] == metric) and (group is None or m["group"] == group)]
    return entry, ms


# -- small changes / background noise ------------------------------------------------------------
def test_gain_small_change_fails_level_model_and_passes_flat_model(data, models):
    tests = [{"test": "robustness_small_changes", "params": {"changes": ["gain_small"]}},
             {"test": "robustness_small_changes", "name": "lenient",
              "params": {"changes": ["gain_small"]}, "thresholds": {"unchanged": "> 0.85"}}]
    res = _run([models["level"], models["flat"]], data, tests, targets=["arousal"])
    for name in ("robustness_small_changes", "lenient"):
        entry, (m,) = _meas(res, name, "level", "arousal", "unchanged")
        assert m["group"] == "gain_small" and m["n"] == N_ITEMS
        assert m["value"] < 0.85 and entry["verdict"] == "fail"
    entry, (m,) = _meas(res, "lenient", "flat", "arousal", "unchanged")
    assert m["value"] == 1.0 and entry["verdict"] == "pass"
    # 30 unchanged items cannot show "> 95 % unchanged": Wilson keeps the interval open
    entry, (m,) = _meas(res, "robustness_small_changes", "flat", "arousal", "unchanged")
    assert m["value"] == 1.0 and m["ci"][0] < 0.95 and entry["verdict"] == "inconclusive"
    # the gallery lists the item whose prediction moved most, with its condition spec
    worst = res.select("robustness_small_changes", "level", "arousal")[0]["plots"]["worst"]
    assert worst and worst[0]["condition"]["name"] == "gain_small"
    assert abs(worst[0]["delta"]) >= max(abs(w["delta"]) for w in worst) - 1e-12
    assert abs(worst[0]["delta"]) > 0.05


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(0.5, 10, 0.95)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    lo, hi = wilson_interval(1.0, 30, 0.95)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(30 / (30 + 1.959964**2), abs=1e-6)


def test_noise_moves_peak_output_not_rms_output(data, models):
    tests = [{"test": "robustness_background_noise",
              "params": {"noises": {"white": "white_noise", "pink": {"name": "coloured_noise"}},
                         "snr_db": 0}}]
    res = _run([models["level"]], data, tests, targets=["arousal", "valence"])
    _, ms = _meas(res, "robustness_background_noise", "level", "valence")
    by = {(m["metric"], m["group"]): m for m in ms}
    assert set(by) == {(k, g) for k in ("ccc_change", "unchanged") for g in ("white", "pink")}
    for g in ("white", "pink"):
        assert by[("ccc_change", g)]["value"] < -0.05 and by[("ccc_change", g)]["verdict"] == "fail"
        lo, hi = by[("ccc_change", g)]["ci"]
        assert lo <= by[("ccc_change", g)]["value"] <= hi
        assert by[("unchanged", g)]["value"] < 0.5
    entry, ms = _meas(res, "robustness_background_noise", "level", "arousal", "unchanged")
    assert all(m["value"] > 0.9 for m in ms)  # RMS restored by the mixing rule
    plots = entry["plots"]
    cond = plots["conditions"][0]
    h2 = np.asarray(cond["hist2d"])
    assert h2.shape == (len(plots["edges"]["baseline"]) - 1, len(plots["edges"]["delta"]) - 1)
    assert h2.sum() == cond["n"] == sum(cond["hist"]["condition"]) == N_ITEMS
    edges = np.asarray(plots["edges"]["delta"])
    centres = (edges[1:] + edges[:-1]) / 2
    assert h2[:, np.abs(centres) < plots["tolerance"]].sum() == N_ITEMS  # RMS output: no change
    # noise raises the peak output: most of its mass sits above the +tolerance band
    (valence,) = res.select("robustness_background_noise", "level", "valence")
    h2 = np.asarray(valence["plots"]["conditions"][0]["hist2d"])
    assert h2[:, centres > plots["tolerance"]].sum() > N_ITEMS / 2
    assert plots["unchanged"]["labels"] == ["white", "pink"]


def test_default_background_noises_all_run(data, models):
    tests = [{"test": "robustness_background_noise", "params": {"max_items": 6}}]
    res = _run([models["level"]], data, tests, targets=["arousal"])
    assert not res.doc["items"]["errors"]
    _, ms = _meas(res, "robustness_background_noise", "level", "arousal", "unchanged")
    assert {m["group"] for m in ms} == {"babble", "coughing", "environmental", "music",
                                        "sneezing", "white"}
    assert all(m["n"] == 6 for m in ms)


# -- emotion -----------------------------------------------------------------------------------
def test_emotion_change_in_uar_and_confusion_matrix(data, models):
    tests = [{"test": "robustness_codecs", "params": {"codecs": {"louder": {"name": "gain",
                                                                             "gain_db": 6}}}}]
    res = _run([models["cat"]], data, tests)
    entry, ms = _meas(res, "robustness_codecs", "cat", "emotion")
    by = {m["metric"]: m for m in ms}
    assert set(by) == {"uar_change", "unchanged"}
    assert by["uar_change"]["value"] < -0.05  # louder -> more "anger"
    cm = np.asarray(entry["plots"]["conditions"][0]["confusion"]["matrix"])
    assert cm.sum() == N_ITEMS
    assert by["unchanged"]["value"] == pytest.approx(np.trace(cm) / cm.sum())
    assert cm[1, 0] > 0  # labels sorted by class order: happiness -> anger happens
    worst = entry["plots"]["worst"]
    assert worst and all(w["baseline_label"] != w["condition_label"] for w in worst)


# -- paired recordings ------------------------------------------------------------------------
def test_recording_condition_skips_without_pairs_and_runs_with_pairs(data, models, tmp_path):
    tests = [{"test": "robustness_recording_condition"}]
    res = _run([models["level"]], data, tests, targets=["arousal"])
    (entry,) = res.select("robustness_recording_condition", "level", "arousal")
    assert entry["verdict"] == "skipped" and "'pair'" in entry["reason"]

    man = pd.read_csv(data / "manifest.csv")
    rows = []
    for r in man.itertuples():
        x, _ = sf.read(data / r.file, dtype="float32")
        for rec, y in (("headset", x), ("boundary", x.copy()), ("mobile", 0.5 * x)):
            f = tmp_path / f"{r.id}-{rec}.wav"
            sf.write(f, y, SR, subtype="FLOAT")
            rows.append(dict(id=f"{r.id}-{rec}", file=f.name, speaker=r.speaker, pair=r.id,
                             recording=rec))
    pd.DataFrame(rows).to_csv(tmp_path / "paired.csv", index=False)
    res = audit([models["level"]], str(tmp_path / "paired.csv"),
                {"name": "t", "bootstrap": {"n_boot": 100}, "targets": ["arousal"],
                 "tests": tests}, cache=False, baselines=False, jobs=1)
    entry, ms = _meas(res, "robustness_recording_condition", "level", "arousal", "unchanged")
    by = {m["group"]: m for m in ms}
    assert set(by) == {"boundary", "mobile"}
    assert by["boundary"]["value"] == 1.0 and by["boundary"]["n"] == N_ITEMS
    assert by["mobile"]["value"] < 0.5  # half the level -> 3 RMS halves
    assert entry["verdict"] == "fail"
    worst = [w for w in entry["plots"]["worst"] if w["recording"] == "mobile"]
    assert worst[0]["id"].endswith("-mobile") and worst[0]["reference_id"].endswith("-headset")


def test_simulated_recording_condition_compares_with_reference_room(data, models):
    tests = [{"test": "robustness_simulated_recording_condition",
              "params": {"rooms": ["office"], "positions": ["left_3m"], "max_items": 8,
                         "level": "rms"}}]
    res = _run([models["level"]], data, tests, targets=["arousal", "valence"])
    assert not res.doc["items"]["errors"]
    entry, ms = _meas(res, "robustness_simulated_recording_condition", "level", "arousal")
    assert {(m["metric"], m["group"]) for m in ms} == {("unchanged_room", "office"),
                                                       ("unchanged_position", "left_3m")}
    assert all(m["value"] == 1.0 and m["n"] == 8 for m in ms)  # RMS kept: 3 RMS unchanged
    conds = {c["label"]: c for c in entry["plots"]["conditions"]}
    assert conds["office"]["baseline"]["preset"] == "booth"
    assert conds["left_3m"]["baseline"]["preset"] == "centre_1m"
    assert conds["left_3m"]["condition"]["level"] == "rms"
    # the peak output does see the reverberation
    _, ms = _meas(res, "robustness_simulated_recording_condition", "level", "valence")
    assert min(m["value"] for m in ms) < 1.0


# -- label-free mode ----------------------------------------------------------------------------
def test_label_free_mode_measures_fidelity_to_reference(data, models, tmp_path):
    man = pd.read_csv(data / "manifest.csv")[["id", "file", "speaker"]]
    man.to_csv(data / "nolabels.csv", index=False)
    ref = "teacher=" + make_onnx_model(os.fspath(tmp_path / "teacher.onnx"))
    tests = [{"test": "robustness_background_noise",
              "params": {"noises": {"white": "white_noise"}, "snr_db": 0}}]
    res = audit([models["level"], models["flat"]], str(data / "nolabels.csv"),
                {"name": "t", "bootstrap": {"n_boot": 100}, "targets": ["valence"],
                 "tests": tests}, cache=False, baselines=False, jobs=1, reference=ref)
    _, ms = _meas(res, "robustness_background_noise", "level", "valence", "fidelity")
    (fid,) = ms  # the same graph as the teacher: identical predictions under noise
    assert fid["group"] == "white" and fid["value"] == pytest.approx(1.0)
    assert fid["verdict"] == "info"
    _, (change,) = _meas(res, "robustness_background_noise", "level", "valence", "ccc_change")
    assert change["value"] < -0.05  # truth = the teacher's clean predictions
    _, (fid_flat,) = _meas(res, "robustness_background_noise", "flat", "valence", "fidelity")
    assert fid_flat["value"] < 0.9  # valence of "flat" is 3 RMS, the teacher's is the peak


# -- dose-response ------------------------------------------------------------------------------
def test_noise_sweep_finds_breakdown_between_levels(data, models, tmp_path):
    levels = [40, 20, 10, 0, -10]
    tests = [{"test": "robustness_dose_noise", "params": {"levels": levels}}]
    res = _run([models["level"]], data, tests, targets=["valence", "arousal"],
               out=str(tmp_path / "out"), renderers=())
    assert (tmp_path / "out" / "results.json").is_file()  # strict JSON (NaN-free plots)
    entry, ms = _meas(res, "robustness_dose_noise", "level", "valence", "ccc_change")
    curve = {m["extra"]["level"]: m["value"] for m in ms}
    assert set(curve) == set(levels) and all(m["verdict"] == "info" for m in ms)
    _, (bp,) = _meas(res, "robustness_dose_noise", "level", "valence", "breakdown_snr_db")
    first_fail = next(v for v in sorted(levels, reverse=True) if curve[v] <= -0.05)
    last_pass = min(v for v in levels if v > first_fail)
    assert all(curve[v] > -0.05 for v in levels if v > first_fail)
    assert first_fail < bp["value"] < last_pass
    # linear interpolation hits the limit exactly
    m0, m1 = curve[last_pass], curve[first_fail]
    frac = (bp["value"] - last_pass) / (first_fail - last_pass)
    assert m0 + frac * (m1 - m0) == pytest.approx(-0.05, abs=1e-4)  # JSON keeps 6 digits
    assert entry["plots"]["breakdown"]["all"]["value"] == pytest.approx(bp["value"])
    # the RMS output is untouched by noise: never breaks down -> NaN, a note, and a pass
    entry, (bp,) = _meas(res, "robustness_dose_noise", "level", "arousal", "breakdown_snr_db")
    assert bp["value"] is None and bp["extra"]["censored"] == "never"
    assert bp["verdict"] == "pass" and any("never reached" in n for n in entry["notes"])


def test_crossing_cases():
    assert crossing([(40, 0.0), (20, -0.02), (10, -0.08)], -0.05) == (pytest.approx(15.0),
                                                                      "crossed")
    assert crossing([(40, -0.1), (20, -0.2)], -0.05) == (40.0, "at_first")
    x, status = crossing([(40, 0.0), (20, float("nan")), (0, -0.01)], -0.05)
    assert math.isnan(x) and status == "never"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=2, max_size=8),
       st.floats(-0.5, 0.5, allow_nan=False))
def test_crossing_is_bracketed_and_hits_limit(values, limit):
    pts = [(float(i), v) for i, v in enumerate(values)]
    x, status = crossing(pts, limit)
    fails = [i for i, v in enumerate(values) if not v > limit]
    if not fails:
        assert status == "never"
    elif fails[0] == 0:
        assert (x, status) == (0.0, "at_first")
    else:
        i = fails[0]
        assert status == "crossed" and i - 1 <= x <= i
        v0, v1 = values[i - 1], values[i]
        assert v0 + (x - (i - 1)) * (v1 - v0) == pytest.approx(limit, abs=1e-9)


def _m(metric, value, ci):
    return Measurement(metric, value, ci=ci, n=10)


def test_pitch_breakdown_per_side_with_ci_and_censoring():
    check = DosePitch({"levels": [-4, -2, 2, 4]})
    assert check.sides() == {"down": [-2, -4], "up": [2, 4]}
    per = {-2: {"ccc_change": _m("ccc_change", -0.01, (-0.03, 0.0))},
           -4: {"ccc_change": _m("ccc_change", -0.09, (-0.12, -0.07))},
           2: {"ccc_change": _m("ccc_change", -0.02, (-0.04, 0.0))},
           4: {"ccc_change": _m("ccc_change", -0.03, (-0.045, -0.01))}}
    down = check.breakdown_point("down", [-2, -4], per, "ccc_change", -0.05, 0.0)
    assert -4 < down.value < -2 and down.ci[0] <= down.value <= down.ci[1]
    assert down.value == pytest.approx(-3.0)
    assert down.ci == (pytest.approx(-2 - 0.1 / 0.07), pytest.approx(-2 - 0.04 / 0.09))
    up = check.breakdown_point("up", [2, 4], per, "ccc_change", -0.05, 0.0)
    assert math.isnan(up.value) and up.extra["censored"] == "never"
    assert up.extra["known_between"] == [4, math.inf] and up.ci == (4, math.inf)
    from sertest.checks.verdict import judge_entry

    assert judge_entry([up], check.threshold_for)["verdict"] == "pass"  # held beyond 2 st


def test_noise_breakdown_at_first_level_fails():
    check = DoseNoise({"levels": [30, 10]})
    per = {30: {"ccc_change": _m("ccc_change", -0.2, (-0.3, -0.1))},
           10: {"ccc_change": _m("ccc_change", -0.4, (-0.5, -0.3))}}
    m = check.breakdown_point(None, [30, 10], per, "ccc_change", -0.05, 0.0)
    assert m.value == 30 and m.extra["censored"] == "at_first" and m.ci == (30, math.inf)
    assert check.threshold_for("breakdown_snr_db").judge(m.value, m.ci) == "fail"


# -- helpers and parameters -------------------------------------------------------------------
def test_unchanged_mask_rounds_first():
    base = np.array([0.52, 0.5, 0.123, 0.3])
    other = np.array([0.569, 0.5449, 0.17, 0.3449])
    # 0.569 -> 0.57 (0.05: changed); 0.5449 -> 0.54; 0.17 - 0.12 = 0.05; 0.34 - 0.30
    assert unchanged_mask(base, other, 0.05, 2).tolist() == [False, True, False, True]
    assert unchanged_mask(base, other, 0.05, None).tolist() == [True, True, True, True]


@settings(max_examples=200, deadline=None)
@given(st.integers(-300, 300), st.integers(-300, 300), st.integers(1, 20))
def test_unchanged_mask_is_exact_on_hundredths(a, b, tol):
    got = unchanged_mask(np.array([a / 100]), np.array([b / 100]), tol / 100, 2)
    assert bool(got[0]) == (abs(a - b) < tol)


@pytest.mark.parametrize("metric, kind", [(metrics.ccc, "float"), (metrics.uar, "label")])
def test_difference_replicates_match_generic_bootstrap(metric, kind):
    rng = np.random.default_rng(3)
    n = 60
    if kind == "float":
        t = rng.random(n)
        b, o = t + 0.1 * rng.standard_normal(n), t + 0.3 * rng.standard_normal(n)
    else:
        labels = np.array(["a", "b", "c"], dtype=object)
        t = labels[rng.integers(0, 3, n)]
        b = np.where(rng.random(n) < 0.8, t, labels[rng.integers(0, 3, n)])
        o = np.where(rng.random(n) < 0.5, t, labels[rng.integers(0, 3, n)])
    groups = np.array([f"s{i % 7}" for i in range(n)], dtype=object)
    fast = percentile_interval(difference_replicates(
        metric, t, b, o, n_boot=300, rng=np.random.default_rng(11), groups=groups), 0.9)
    slow = metrics.bootstrap_ci(lambda a, c, d: metric(a, d) - metric(a, c), t, b, o,
                                n_boot=300, confidence=0.9, rng=np.random.default_rng(11),
                                groups=groups)
    assert fast == pytest.approx(slow, abs=1e-9)
    point = metric(t, o) - metric(t, b)
    assert fast[0] <= point <= fast[1]


@pytest.mark.parametrize("test, params, needle", [
    ("robustness_background_noise", {"noises": {"x": {"name": "nope"}}}, "noises"),
    ("robustness_small_changes", {"changes": "gain"}, "changes"),
    ("robustness_dose_noise", {"levels": []}, "levels"),
    ("robustness_dose_codec", {"perturbation": "gsm"}, "no default levels"),
    ("robustness_dose_noise", {"perturbation": "gain"}, "snr_db"),
    ("robustness_dose_pitch", {"levels": [0, 2]}, "clean audio"),
    ("robustness_spectral_tilt", {"tolerance": 0}, "tolerance"),
])
def test_bad_parameters_fail_when_the_suite_loads(test, params, needle):
    with pytest.raises(UsageError, match=needle):
        load_suite({"name": "t", "tests": [{"test": test, "params": params}]})


def test_default_conditions_match_the_catalogue():
    suite = load_suite({"name": "t", "tests": [
        "robustness_small_changes", "robustness_simulated_recording_condition",
        "robustness_spectral_tilt", "robustness_dose_codec"]})
    small, sim, tilt, codec = (c for c, _ in suite.checks)
    assert len(small.conditions) == 10
    assert [c.label for c in sim.conditions if c.suffix == "_room"] == ["lecture", "meeting",
                                                                       "office"]
    assert len([c for c in sim.conditions if c.suffix == "_position"]) == 8
    assert tilt.thresholds["uar_change"].limit == -0.02
    assert tilt.thresholds["ccc_change"].limit == -0.05
    assert codec.levels == [32000, 24000, 16000, 12000, 8000, 6000]
