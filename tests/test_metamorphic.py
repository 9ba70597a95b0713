"""Metamorphic expectations (``robustness_metamorphic``), end to end through ``sertest.audit``.

The models are Python functions of the real decoded audio: ``loud`` predicts arousal from
the RMS level (louder -> higher arousal), ``inverted`` the opposite (louder -> lower), and
``flat`` a constant.  A +6 dB gain must then keep ``arousal: not_decrease`` for ``loud``
and ``flat``, and break it for ``inverted`` on every item.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest import audit
from sertest.checks.metamorphic import holds, parse_expectations
from sertest.errors import UsageError
from sertest.models.callable import CallableModel
from sertest.suite import load_suite

SR = 16000


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("meta-data")
    rng = np.random.default_rng(3)
    rows = []
    for i in range(24):
        n = int(SR * rng.uniform(0.4, 0.7))
        t = np.arange(n) / SR
        x = rng.uniform(0.05, 0.1) * np.sin(2 * np.pi * rng.uniform(120, 260) * t)
        sf.write(root / f"x{i}.wav", x.astype("float32"), SR, subtype="FLOAT")
        rows.append(dict(id=f"i{i:02d}", file=f"x{i}.wav", speaker=f"s{i % 6}",
                         arousal=0.5, valence=0.5, dominance=0.5))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def _rms(signals):
    return np.sqrt(np.mean(np.square(signals.astype(np.float64)), axis=1))


def _model(name, fn):
    def f(signals, sampling_rate):
        a = fn(_rms(signals))
        return {"arousal": a, "dominance": np.full(len(a), 0.5), "valence": np.full(len(a), 0.5)}
    return CallableModel(f, f"test:{name}", name=name, labels=["arousal", "dominance", "valence"])


MODELS = {"loud": lambda r: np.clip(4 * r, 0, 1), "inverted": lambda r: np.clip(1 - 4 * r, 0, 1),
          "flat": lambda r: np.full(len(r), 0.4)}

SUITE = {"name": "meta", "bootstrap": {"n_boot": 200}, "targets": ["arousal", "valence"],
         "tests": [{"test": "robustness_metamorphic", "params": {"expectations": {
             "louder_6db": {"perturbation": {"name": "gain", "gain_db": 6},
                            "expect": {"arousal": "not_decrease", "by": 0.02}},
             "softer_6db": {"perturbation": {"name": "gain", "gain_db": -6},
                            "expect": {"arousal": "decrease", "valence": "unchanged"}}}},
                    "thresholds": {"holds": "> 0.8"}}]}


@pytest.fixture(scope="module")
def result(data):
    models = [_model(n, f) for n, f in MODELS.items()]
    return audit(models, str(data), SUITE, cache=False, baselines=False, jobs=1)


def _cell(res, model, target, group, metric="holds"):
    (entry,) = res.select("robustness_metamorphic", model, target)
    (m,) = [m for m in entry["measurements"] if m["metric"] == metric and m["group"] == group]
    return entry, m


def test_directional_expectation_holds_for_level_model_and_breaks_for_inverted(result):
    entry, m = _cell(result, "loud", "arousal", "louder_6db")
    assert m["value"] == 1.0 and m["n"] == 24 and m["extra"]["relation"] == "not_decrease"
    assert m["ci"][0] < 1.0  # 24 items: Wilson keeps the interval open
    _, d = _cell(result, "loud", "arousal", "softer_6db")
    assert d["value"] == 1.0  # -6 dB lowers 4 x RMS by at least 0.05 on every item
    assert entry["verdict"] == "pass"
    entry, m = _cell(result, "inverted", "arousal", "louder_6db")
    assert m["value"] == 0.0 and m["verdict"] == "fail" and entry["verdict"] == "fail"
    _, mc = _cell(result, "inverted", "arousal", "louder_6db", "mean_change")
    assert mc["value"] < -0.05 and mc["ci"][1] < 0 and mc["verdict"] == "info"
    worst = entry["plots"]["worst"]
    assert worst and worst[0]["delta"] <= min(w["delta"] for w in worst)
    assert worst[0]["condition"] == {"name": "gain", "gain_db": 6}


def test_flat_model_never_moves_so_decrease_fails_and_unchanged_holds(result):
    _, m = _cell(result, "flat", "arousal", "louder_6db")
    assert m["value"] == 1.0
    _, m = _cell(result, "flat", "arousal", "softer_6db")  # 'decrease' needs a move of 0.05
    assert m["value"] == 0.0 and m["verdict"] == "fail"
    entry, m = _cell(result, "flat", "valence", "softer_6db")
    assert m["value"] == 1.0 and [x["group"] for x in entry["measurements"]] == ["softer_6db"] * 2


def test_target_without_expectation_is_skipped(result):
    assert not result.select("robustness_metamorphic", "loud", "dominance")  # not audited
    (entry,) = result.select("robustness_metamorphic", "loud", "valence")
    assert {m["group"] for m in entry["measurements"]} == {"softer_6db"}


def test_holds_relations_at_the_slack_boundary():
    d = np.array([-0.05, -0.01, 0.0, 0.05])
    assert holds(d, "increase", 0.05).tolist() == [False, False, False, True]
    assert holds(d, "decrease", 0.05).tolist() == [True, False, False, False]
    assert holds(d, "not_increase", 0.05).tolist() == [True, True, True, False]
    assert holds(d, "unchanged", 0.0).tolist() == [False, False, False, False]


@pytest.mark.parametrize("expect, words", [
    ("louder", "not an expectation"),
    ({"arousal": "up"}, "unknown relation 'up'"),
    ({"loudness": "increase"}, "unknown target 'loudness'"),
    ({"emotion": "increase"}, "only 'emotion: unchanged'"),
    ({"arousal": "increase", "by": -1}, "by=-1"),
])
def test_bad_expectations_name_the_entry(expect, words):
    with pytest.raises(UsageError, match="expectations\\[x\\]") as err:
        parse_expectations({"x": {"perturbation": "gain", "expect": expect}}, 0.05, "test 't':")
    assert words in str(err.value)


def test_bundled_metamorphic_suite_loads_and_names_its_expectations():
    suite = load_suite("metamorphic")
    (check, _), = [(c, t) for c, t in suite.checks if c.id == "robustness_metamorphic"]
    labels = [e.label for e in check.expectations]
    assert "louder_6db" in labels and len(labels) >= 3
    with pytest.raises(UsageError, match="expectations is required"):
        load_suite({"tests": [{"test": "robustness_metamorphic"}]})
