"""Truthful outcomes: a model's failed predictions are errors (never skips), model health,
SystemExit/KeyboardInterrupt inside a model, clipping instead of dropping, exit codes and
the baseline gate at a different n."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest import audit
from sertest.cli import main
from sertest.models.base import Model
from sertest.models.callable import CallableModel
from sertest.results import SCHEMA, Results

FAULTY = "callable:tests.faulty_models:"
LABELS = ["arousal", "dominance", "valence"]


def _entries(res, model, test=None):
    return [t for t in res.tests if t["model"] == model and (test is None or t["test"] == test)]


def _health(res, model):
    (entry,) = _entries(res, model, "model_health")
    return entry, {m["metric"]: m for m in entry["measurements"]}


def test_all_nan_model_errors_every_test_fails_health_and_exits_1(tiny_data, tmp_path):
    res = audit([FAULTY + "all_nan"], str(tiny_data), "smoke", cache=False, n_boot=0)
    tests = [t for t in _entries(res, "all_nan") if t["test"] != "model_health"]
    assert [t["dimension"] for t in tests] == LABELS
    for t in tests:
        assert t["verdict"] == "error", t
        assert t["item_failures"]["count"] == t["item_failures"]["needed"] == 40
        assert len(t["item_failures"]["first"]) == 3
        assert t["item_failures"]["first"][0]["condition"] == "clean"
        assert "not finite" in t["item_failures"]["first"][0]["error"]
        assert t["reason"].startswith("the model failed 40 of the 40 predictions")
        assert "not finite" in t["reason"]
        assert "only 0 items" not in t["reason"]
        assert {f["kind"] for f in t["flags"]} == {"item_failures"}
    health, ms = _health(res, "all_nan")
    assert (health["topic"], health["dimension"], health["verdict"]) == ("correctness", "all", "fail")
    assert ms["item_failure_share"]["value"] == 1.0 and ms["item_failure_share"]["n"] == 40
    assert ms["item_failure_share"]["threshold"]["text"] == "< 0.05"
    assert ms["clipped_share"]["verdict"] == "info"
    # the baseline is healthy and the exit code is the candidate's
    base, base_ms = _health(res, "random-gaussian")
    assert base["verdict"] == "pass" and base_ms["item_failure_share"]["value"] == 0.0
    assert res.exit_code() == 1 and res.failed
    code = main(["run", "--model", FAULTY + "all_nan", "--data", str(tiny_data), "--suite",
                 "smoke", "--out", str(tmp_path / "o"), "--no-cache", "--no-baselines",
                 "--n-boot", "0", "--no-profile"])
    assert code == 1


def test_model_health_measures_the_share_of_failed_predictions(tiny_data):
    """Some failures: the tests needing those items error, and model_health judges the share."""
    res = audit([FAULTY + "nan_on_short"], str(tiny_data), "smoke", cache=False, n_boot=0,
                baselines=False)
    failed = {e["id"] for e in res.doc["items"]["errors"]}
    assert 0 < len(failed) < 40
    health, ms = _health(res, "nan_on_short")
    assert ms["item_failure_share"]["value"] == pytest.approx(len(failed) / 40, abs=1e-6)
    assert health["item_failures"]["count"] == len(failed)
    assert health["verdict"] == ("fail" if len(failed) / 40 >= 0.05 else "pass")
    for t in _entries(res, "nan_on_short", "correctness_regression"):
        assert t["verdict"] == "error" and t["item_failures"]["count"] == len(failed)
        assert t["measurements"] and t["measurements"][0]["n"] == 40 - len(failed)


def test_system_exit_in_a_model_is_its_error_not_the_audits_end(tiny_data, tmp_path):
    res = audit([FAULTY + "exits_zero", FAULTY + "good"], str(tiny_data), "smoke", cache=False,
                n_boot=0, baselines=False)
    for t in _entries(res, "exits_zero"):
        if t["test"] != "model_health":
            assert t["verdict"] == "error" and "SystemExit" in t["reason"]
    assert _health(res, "exits_zero")[0]["verdict"] == "fail"
    # the other model was audited as usual
    assert all(t["verdict"] != "error" for t in _entries(res, "good"))
    assert res.exit_code() == 1
    out = tmp_path / "o"
    code = main(["run", "--model", FAULTY + "exits_zero", "--data", str(tiny_data), "--suite",
                 "smoke", "--out", str(out), "--no-cache", "--no-baselines", "--n-boot", "0",
                 "--no-profile", "--format", ""])
    assert code == 1 and (out / "results.json").exists()


class _Exiting(Model):
    """Not the callable adapter: SystemExit / KeyboardInterrupt straight from predict_batch."""

    dimensions = tuple(LABELS)

    def __init__(self, exc: BaseException, name: str) -> None:
        self.exc = exc
        self.name = name

    def predict_batch(self, signals):
        raise self.exc


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("exc", [SystemExit(0), KeyboardInterrupt(), GeneratorExit()],
                         ids=["SystemExit", "KeyboardInterrupt", "GeneratorExit"])
def test_base_exceptions_raised_by_model_code_are_item_errors(tiny_data, exc, jobs):
    res = audit([_Exiting(exc, "exiting")], str(tiny_data), "smoke", cache=False, n_boot=0,
                baselines=False, jobs=jobs)
    errors = res.doc["items"]["errors"]
    assert len(errors) == 40 and all(e["model"] == "exiting" for e in errors)
    assert type(exc).__name__ in errors[0]["error"]
    assert res.exit_code() == 1


def test_keyboard_interrupt_in_the_timeout_thread_is_the_models_error(tiny_data):
    res = audit([FAULTY + "raises_keyboard_interrupt"], str(tiny_data), "smoke", cache=False,
                n_boot=0, baselines=False, timeout=30, jobs=1)
    assert len(res.doc["items"]["errors"]) == 40
    assert "KeyboardInterrupt" in res.doc["items"]["errors"][0]["error"]


def test_a_real_ctrl_c_still_stops_the_audit(tiny_data):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread only")

    def interrupted(signals, sampling_rate):
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C during inference
        time.sleep(5)
        return np.full((len(signals), 3), 0.5)

    model = CallableModel(interrupted, "tests:interrupted", name="interrupted", labels=LABELS)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        t0 = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            audit([model], str(tiny_data), "smoke", cache=False, n_boot=0, baselines=False,
                  jobs=1)
        assert time.perf_counter() - t0 < 30
        # the engine's watch is gone again
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_slightly_out_of_range_predictions_are_kept_as_predicted(tiny_data):
    res = audit([FAULTY + "slightly_above"], str(tiny_data), "smoke", cache=False, n_boot=0,
                baselines=False)
    assert not res.doc["items"]["errors"]
    _, ms = _health(res, "slightly_above")
    assert ms["clipped_share"]["value"] == 0.0 and ms["item_failure_share"]["value"] == 0.0
    truth = pd.read_csv(tiny_data)["arousal"].to_numpy(float)
    entry = [t for t in _entries(res, "slightly_above", "correctness_regression")
             if t["dimension"] == "arousal"][0]
    mae = [m for m in entry["measurements"] if m["metric"] == "mae"][0]
    assert mae["n"] == 40 and mae["value"] == pytest.approx(np.mean(np.abs(truth - 1.3)), rel=1e-5)
    assert "flags" not in entry


def test_far_out_of_range_predictions_are_clipped_and_counted_never_dropped(tiny_data, tmp_path):
    cache = str(tmp_path / "cache")
    for _ in range(2):  # computed, then read back from the cache: clipped and counted again
        res = audit([FAULTY + "huge"], str(tiny_data), "smoke", cache=cache, n_boot=0,
                    baselines=False)
        assert not res.doc["items"]["errors"]
        health, ms = _health(res, "huge")
        assert health["verdict"] == "pass"
        assert ms["clipped_share"]["value"] == 1.0 and ms["clipped_share"]["extra"]["clipped"] == 40
        truth = pd.read_csv(tiny_data)["arousal"].to_numpy(float)
        entry = [t for t in _entries(res, "huge", "correctness_regression")
                 if t["dimension"] == "arousal"][0]
        assert entry["verdict"] == "fail"
        mae = [m for m in entry["measurements"] if m["metric"] == "mae"][0]
        assert mae["n"] == 40
        assert mae["value"] == pytest.approx(np.mean(np.abs(truth - 1.5)), rel=1e-5)
        flags = {f["kind"]: f["text"] for f in entry["flags"]}
        assert set(flags) == {"clipped"} and flags["clipped"].startswith("40 of 40")
    assert res.timings["cached"] == res.timings["predictions"]


def _two_group_data(tmp_path):
    """20 items of speaker a (0.5 s) and 20 of speaker b (1.0 s), labelled."""
    root = tmp_path / "two"
    root.mkdir()
    rng = np.random.default_rng(3)
    rows = []
    for i in range(40):
        spk = "a" if i < 20 else "b"
        n = 8000 if spk == "a" else 16000
        level = rng.uniform(0.02, 0.3)
        x = level * np.sin(2 * np.pi * 200 * np.arange(n) / 16000) \
            + 0.01 * rng.standard_normal(n)
        sf.write(root / f"{i}.wav", x.astype("float32"), 16000)
        rows.append(dict(id=f"{spk}{i:02d}", file=f"{i}.wav", speaker=spk,
                         arousal=round(level / 0.3, 3), dominance=0.5, valence=0.5))
    pd.DataFrame(rows).to_csv(root / "m.csv", index=False)
    return str(root / "m.csv")


def test_half_failing_model_errors_exactly_the_tests_needing_its_failed_items(tmp_path):
    def fails_short(signals, sampling_rate):
        level = np.sqrt(np.mean(np.square(signals, dtype=np.float64), axis=1)) * 3
        out = np.stack([level, 0.5 + 0 * level, 0.5 + 0 * level], axis=1)
        if signals.shape[1] < 12000:
            out[:] = np.nan
        return out

    model = CallableModel(fails_short, "tests:fails_short", name="half", labels=LABELS)
    suite = {"name": "groups", "bootstrap": {"n_boot": 0}, "tests": [
        {"test": "correctness_regression", "name": "on-a", "where": {"speaker": ["a"]},
         "targets": ["arousal"]},
        {"test": "correctness_regression", "name": "on-b", "where": {"speaker": ["b"]},
         "targets": ["arousal"]}]}
    res = audit([model], _two_group_data(tmp_path), suite, cache=False, baselines=False)
    by_test = {t["test"]: t for t in res.tests}
    assert by_test["on-a"]["verdict"] == "error"
    assert by_test["on-a"]["item_failures"]["count"] == by_test["on-a"]["item_failures"]["needed"] == 20
    assert {f["id"] for f in by_test["on-a"]["item_failures"]["first"]} <= {f"a{i:02d}" for i in range(20)}
    assert by_test["on-b"]["verdict"] != "error" and "item_failures" not in by_test["on-b"]
    assert by_test["on-b"]["measurements"][0]["n"] == 20
    health = by_test["model_health"]
    assert health["verdict"] == "fail"
    assert health["item_failures"] == {"count": 20, "needed": 40,
                                       "first": by_test["on-a"]["item_failures"]["first"]}
    assert [m["value"] for m in health["measurements"]] == [0.5, 0.0]


def test_model_health_threshold_comes_from_the_suite(tmp_path):
    from sertest.errors import UsageError
    from sertest.suite import load_suite

    def fails_short(signals, sampling_rate):
        if signals.shape[1] < 12000:
            return np.full((len(signals), 3), np.nan)
        return np.full((len(signals), 3), 0.5)

    model = CallableModel(fails_short, "tests:fails_short2", name="half", labels=LABELS)
    suite = {"name": "lenient", "bootstrap": {"n_boot": 0},
             "model_health": {"thresholds": {"item_failure_share": "< 0.6"}},
             "tests": [{"test": "correctness_regression", "where": {"speaker": ["b"]}}]}
    res = audit([model], _two_group_data(tmp_path), suite, cache=False, baselines=False)
    health = [t for t in res.tests if t["test"] == "model_health"][0]
    assert health["verdict"] == "pass"
    assert health["measurements"][0]["threshold"]["text"] == "< 0.6"
    with pytest.raises(UsageError, match="model_health"):
        load_suite({"tests": ["correctness_regression"], "model_health": {"limit": 0.1}})
    with pytest.raises(UsageError, match="unknown metric"):
        load_suite({"tests": ["correctness_regression"],
                    "model_health": {"thresholds": {"nope": "< 1"}}})


def _doc(verdicts: dict[str, list[str]]) -> Results:
    return Results({"schema": SCHEMA,
                    "models": [{"name": "cand", "role": "candidate"},
                               {"name": "random-gaussian", "role": "baseline"}],
                    "tests": [{"model": m, "verdict": v} for m, vs in verdicts.items()
                              for v in vs]})


def test_exit_codes_strict_and_baselines():
    assert _doc({"cand": ["pass", "skipped", "gated", "inconclusive"],
                 "random-gaussian": ["fail", "error"]}).exit_code() == 0
    assert _doc({"cand": ["pass", "inconclusive"]}).exit_code(strict=True) == 1
    assert _doc({"cand": ["pass", "skipped", "gated"]}).exit_code(strict=True) == 0
    assert _doc({"cand": ["pass", "error"]}).exit_code() == 1
    assert _doc({"cand": ["fail"]}).exit_code() == 1


def test_cli_strict_fails_on_inconclusive(tiny_data, tmp_path):
    # the random model's CCC interval straddles 0, so "> 0.0" is inconclusive
    suite = tmp_path / "incon.yaml"
    suite.write_text("name: incon\nbootstrap: {n_boot: 200}\ntests:\n"
                     "  - test: correctness_regression\n    targets: [arousal]\n"
                     "    thresholds: {ccc: '> 0.0', pcc: null, mae: null}\n")
    args = ["run", "--model", "random:gaussian", "--data", str(tiny_data), "--suite", str(suite),
            "--no-cache", "--no-baselines", "--no-profile", "--format", ""]
    res = audit(["random:gaussian"], str(tiny_data), str(suite), cache=False, baselines=False)
    verdict = [t for t in res.tests if t["test"] == "correctness_regression"][0]["verdict"]
    assert verdict == "inconclusive"  # seeded: the CCC interval of the random model straddles 0
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b"), "--strict"]) == 1


def test_baseline_gate_fails_when_n_differs():
    from sertest.pytest_baseline import Baseline, format_regressions, parse_rules

    suite = {"measurements": {"correctness_regression | m | arousal | ccc": {
        "value": 0.70, "n": 480, "direction": "higher", "threshold": "> 0.5"}}}
    entry = {"test": "correctness_regression", "model": "m", "dimension": "arousal",
             "measurements": [{"metric": "ccc", "group": None, "value": 0.72, "n": 473,
                               "threshold": {"op": ">", "limit": 0.5, "text": "> 0.5"}}]}
    rules = parse_rules(["ccc:-0.02"])
    (d,) = Baseline("x").compare(entry, suite, "m", rules)
    assert d.n_changed and d.regressed  # better CCC, but on 7 items fewer: not comparable
    table = format_regressions([d])
    assert "480 -> 473" in table and "not comparable" in table
    entry["measurements"][0]["n"] = 480
    (same,) = Baseline("x").compare(entry, suite, "m", rules)
    assert not same.n_changed and not same.regressed
    # an ungated measurement is never failed, n or not
    entry["measurements"][0]["n"] = 473
    (ungated,) = Baseline("x").compare(entry, suite, "m", [])
    assert ungated.n_changed and not ungated.regressed


def test_out_of_range_model_is_clipped_not_an_item_error(tiny_data):
    """dominance + 7: clipped to 1.5 on every item, counted; the other outputs untouched."""
    res = audit([FAULTY + "out_of_range"], str(tiny_data), "smoke", cache=False, n_boot=0,
                baselines=False)
    assert not res.doc["items"]["errors"]
    _, ms = _health(res, "out_of_range")
    assert ms["clipped_share"]["value"] == 1.0
    dom = [t for t in _entries(res, "out_of_range", "correctness_regression")
           if t["dimension"] == "dominance"][0]
    truth = pd.read_csv(tiny_data)["dominance"].to_numpy(float)
    mae = [m for m in dom["measurements"] if m["metric"] == "mae"][0]
    assert mae["n"] == 40 and mae["value"] == pytest.approx(np.mean(np.abs(truth - 1.5)), rel=1e-5)
    arousal = [t for t in _entries(res, "out_of_range", "correctness_regression")
               if t["dimension"] == "arousal"][0]
    assert arousal["verdict"] != "error"
    assert "flags" not in arousal  # its arousal outputs were not clipped
    assert [f["kind"] for f in dom["flags"]] == ["clipped"]
    assert dom["flags"][0]["text"].startswith("40 of 40 dominance predictions")


def test_a_skip_caused_by_a_failing_reference_says_so(tiny_data):
    df = pd.read_csv(tiny_data).drop(columns=["arousal", "dominance", "valence"])
    unlabelled = tiny_data.parent / "unlabelled.csv"
    df.to_csv(unlabelled, index=False)
    res = audit([FAULTY + "good"], str(unlabelled), "smoke", reference=FAULTY + "all_nan",
                cache=False, n_boot=0, baselines=False)
    for t in _entries(res, "good", "correctness_regression"):
        assert t["verdict"] == "skipped"  # the audited model failed nothing
        assert "the reference model 'all_nan' failed 40 of the 40 predictions" in t["reason"]
    assert _health(res, "good")[0]["verdict"] == "pass"
    assert res.exit_code() == 0
