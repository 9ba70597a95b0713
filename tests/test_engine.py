"""The engine end to end: plan, predict once, cache, judge, results.json, CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest import audit
from sertest.cli import main
from sertest.engine.cache import PredictionCache
from sertest.results import SCHEMA, Results


def test_one_entry_per_test_model_dimension(tiny_data, onnx_model, tmp_path):
    res = audit([onnx_model], str(tiny_data), "smoke", out=str(tmp_path / "out"), cache=False)
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["schema"] == SCHEMA
    names = [m["name"] for m in doc["models"]]
    assert names == ["m", "random-gaussian", "constant"]
    keys = {(t["test"], t["model"], t["dimension"]) for t in doc["tests"]}
    # 3 dimensions per model, plus one model_health entry per model
    assert len(keys) == len(doc["tests"]) == 3 * 3 + 3
    assert {k for k in keys if k[0] == "model_health"} == {
        ("model_health", "m", "all"), ("model_health", "random-gaussian", "all"),
        ("model_health", "constant", "all")}
    for t in doc["tests"]:
        assert t["verdict"] in ("pass", "fail", "inconclusive", "error", "skipped", "gated")
        for m in t["measurements"]:
            assert {"metric", "value", "ci", "threshold", "verdict"} <= set(m)
    for s in doc["summary"]["models"].values():
        assert 0 <= s["score"] <= 1
    # the tiny model's first output is 3*RMS, which the fixture's arousal label follows
    ccc = [m for m in res.select("correctness_regression", "m", "arousal")[0]["measurements"]
           if m["metric"] == "pcc"][0]
    assert ccc["value"] > 0.9


def test_results_are_byte_identical_across_jobs_and_cache(tiny_data, onnx_model, tmp_path):
    cache_dir = str(tmp_path / "c")
    outs = []
    for i, (jobs, cache) in enumerate([(1, cache_dir), (3, cache_dir), (2, False)]):
        out = tmp_path / f"o{i}"
        audit([onnx_model], str(tiny_data), "smoke", out=str(out), jobs=jobs, cache=cache)
        outs.append((out / "results.json").read_bytes())
    assert outs[0] == outs[1] == outs[2]
    timings = json.loads((tmp_path / "o1" / "timings.json").read_text())
    # the model, the two baselines and the signal statistics
    assert timings["computed"] == 0 and timings["cached"] == timings["predictions"] == 40 * 4


def test_warm_run_recomputes_nothing_and_cache_key_tracks_seed(tiny_data, onnx_model, tmp_path):
    cache_dir = str(tmp_path / "c")
    cold = audit([onnx_model], str(tiny_data), "smoke", cache=cache_dir)
    assert cold.timings["computed"] == cold.timings["predictions"]
    other_seed = audit([onnx_model], str(tiny_data), "smoke", cache=cache_dir, seed=5)
    # the ONNX model is deterministic (shared across seeds); the random baseline is not
    assert other_seed.timings["computed"] == 40
    n = len(PredictionCache(os.path.join(cache_dir, "predictions.sqlite")))
    # the model, two seeds of the random baseline, the constant and the signal statistics
    assert n == 40 * 5


def test_bad_item_is_reported_and_others_unchanged(tiny_data, onnx_model, tmp_path):
    clean = audit([onnx_model], str(tiny_data), "smoke", cache=False)
    df = pd.read_csv(tiny_data)
    (tiny_data.parent / "broken.wav").write_bytes(b"RIFF1234WAVEfmt garbage")
    sf.write(tiny_data.parent / "zeros.wav", np.zeros(1000, dtype="float32"), 16000)
    extra = pd.DataFrame([
        dict(id="zz-broken", file="broken.wav", speaker="s9", arousal=0.5, dominance=0.5, valence=0.5),
        dict(id="zz-missing", file="nope.wav", speaker="s9", arousal=0.5, dominance=0.5, valence=0.5),
        dict(id="zz-zeros", file="zeros.wav", speaker="s9", arousal=0.5, dominance=0.5, valence=0.5)])
    bad = tiny_data.parent / "with-bad.csv"
    pd.concat([df, extra]).to_csv(bad, index=False)
    res = audit([onnx_model], str(bad), "smoke", cache=False)
    errs = {e["id"]: e for e in res.doc["items"]["errors"]}
    assert set(errs) == {"zz-broken", "zz-missing", "zz-zeros"}
    assert "not found" in errs["zz-missing"]["error"] and "silent" in errs["zz-zeros"]["error"]
    strip = lambda r: [dict(t, measurements=[{k: v for k, v in m.items() if k not in ("ci",)} for m in t["measurements"]]) for t in r.tests]  # noqa: E731
    # identical measurements for the valid items (CIs differ only via the extra speaker cluster)
    assert [m["value"] for t in strip(clean) for m in t["measurements"]] == \
           [m["value"] for t in strip(res) for m in t["measurements"]]


def test_crashing_check_is_an_error_result_not_fatal(tiny_data, onnx_model, monkeypatch):
    from sertest.checks.correctness import Regression

    def boom(self, ctx, model, target):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(Regression, "measure", boom)
    res = audit([onnx_model], str(tiny_data), "smoke", cache=False)
    checked = [t for t in res.tests if t["test"] != "model_health"]
    assert {t["verdict"] for t in checked} == {"error"}
    assert "kaboom" in checked[0]["error"]
    assert res.exit_code() == 1


def test_results_round_trip(tiny_data, tmp_path):
    audit(["random:gaussian"], str(tiny_data), "smoke", out=str(tmp_path / "o"), cache=False)
    r = Results.load(str(tmp_path / "o"))
    assert r.result("correctness_regression").verdict in ("fail", "inconclusive")
    assert r.candidates() == ["random-gaussian"]


def test_cli_exit_codes(tiny_data, onnx_model, tmp_path, capsys):
    code = main(["run", "--model", "random:gaussian", "--data", str(tiny_data), "--suite", "smoke",
                 "--out", str(tmp_path / "o"), "--no-cache"])
    assert code == 1  # a random model fails regression correctness
    assert (tmp_path / "o" / "results.json").exists()
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("name: lenient\ntests:\n  - test: correctness_regression\n"
                       "    thresholds: {ccc: '> -2', pcc: '> -2', mae: '< 2'}\n")
    assert main(["run", "--model", onnx_model, "--data", str(tiny_data), "--suite", str(lenient),
                 "--out", str(tmp_path / "o2"), "--no-cache", "--no-baselines"]) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("file,arousal\na.wav,0.2\nb.wav,oops\n")
    assert main(["run", "--model", "random:gaussian", "--data", str(bad), "--no-cache",
                 "--out", str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err
    assert "line 3, column 'arousal'" in err and "bad.csv" in err
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("name: x\ntestz: []\n")
    assert main(["run", "--model", "random:gaussian", "--data", str(tiny_data), "--suite", "smoke",
                 "--suite", str(unknown), "--out", str(tmp_path / "o4")]) == 2
    assert "'testz'" in capsys.readouterr().err


def test_cli_list_and_version(capsys):
    assert main(["list", "tests"]) == 0
    assert "correctness_regression" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0


def test_dask_local_cluster_gives_identical_results(tiny_data, onnx_model, tmp_path):
    pytest.importorskip("distributed")
    local = audit([onnx_model], str(tiny_data), "smoke", cache=False, jobs=1)
    dask = audit([onnx_model], str(tiny_data), "smoke", cache=False, jobs=2, executor="dask")
    assert local.to_json() == dask.to_json()
    assert dask.timings["computed"] == local.timings["computed"] == 40 * 4


def test_dask_keeps_a_bounded_window_of_tasks_in_flight(tiny_data, onnx_model, monkeypatch):
    """At most IN_FLIGHT_PER_THREAD tasks per worker thread are submitted and unfinished at
    any time, however many items the audit has; the results are those of a local run."""
    distributed = pytest.importorskip("distributed")
    from sertest.engine import dask_executor

    monkeypatch.setattr(dask_executor, "IN_FLIGHT_PER_THREAD", 1)
    submitted, most = [], [0]
    real_submit = distributed.Client.submit

    def submit(self, *args, **kwargs):
        most[0] = max(most[0], sum(not f.done() for f in submitted))
        fut = real_submit(self, *args, **kwargs)
        submitted.append(fut)
        return fut

    monkeypatch.setattr(distributed.Client, "submit", submit)
    local = audit([onnx_model], str(tiny_data), "smoke", cache=False, jobs=1)
    dask = audit([onnx_model], str(tiny_data), "smoke", cache=False, jobs=2, executor="dask")
    assert local.to_json() == dask.to_json()
    # 40 items in tasks of 2 (8 tasks per thread), 2 threads: 20 tasks, 2 in flight at most
    assert len(submitted) == 20
    assert most[0] <= 2 - 1  # counted before each submit: the one being submitted not yet


def test_where_restricts_a_test_to_matching_items(tiny_data, tmp_path):
    suite = {"name": "w", "bootstrap": {"n_boot": 0}, "tests": [
        {"test": "correctness_regression", "where": {"speaker": ["s0", "s1"]}},
        {"test": "correctness_regression", "name": "all-items"},
        {"test": "correctness_regression", "name": "no-column", "where": {"recording": [None]}},
        {"test": "correctness_regression", "name": "none", "where": {"recording": ["headset"]}}]}
    res = audit(["random:gaussian"], str(tiny_data), suite, cache=False, baselines=False)
    n = {t["test"]: t["measurements"][0]["n"] if t["measurements"] else 0
         for t in res.tests if t["dimension"] == "arousal"}
    assert n == {"correctness_regression": 16, "all-items": 40, "no-column": 40, "none": 0}


def test_efficiency_profile_measures_the_model_alone(tiny_data, onnx_model):
    from sertest.efficiency import process_memory_mb

    res = audit([onnx_model], str(tiny_data), "smoke", cache=False, profile=True)
    prof = res.timings["efficiency"]["m"]
    assert prof["parameters"] == 5 and prof["file_size"] > 0
    # a fresh process: its peak is the model's, not this (much larger) test process's
    assert 0 < prof["peak_ram_mb"] < process_memory_mb("VmHWM")
    assert 0 < prof["real_time_factor"] < 1


def test_label_free_mode_with_a_reference_model(tiny_data, onnx_model, tmp_path):
    """--reference: the reference model's clean predictions are the truth; it is not scored."""
    df = pd.read_csv(tiny_data).drop(columns=["arousal", "dominance", "valence"])
    unlabelled = tiny_data.parent / "unlabelled.csv"
    df.to_csv(unlabelled, index=False)
    res = audit(["random:gaussian"], str(unlabelled), "smoke", reference=onnx_model,
                out=str(tmp_path / "o"), cache=False, baselines=False)
    assert res.doc["reference"] == "m"
    assert [m["role"] for m in res.doc["models"]] == ["candidate", "reference"]
    assert set(res.doc["summary"]["models"]) == {"random-gaussian"}
    assert {t["model"] for t in res.tests} == {"random-gaussian"}
    assert all(t["verdict"] != "skipped" for t in res.tests)  # truth came from the reference
    assert (tmp_path / "o" / "summary.md").exists() and (tmp_path / "o" / "report.html").exists()
    same = audit([onnx_model], str(unlabelled), "smoke", reference=onnx_model, cache=False,
                 baselines=False)
    ccc = same.result("correctness_regression", dimension="arousal").measurements()[0]
    assert ccc["metric"] == "ccc" and ccc["value"] == pytest.approx(1.0)


def _counting_model(concurrent: bool, pause_s: float = 0.02):
    """A callable model that records how many of its calls overlapped."""
    import threading
    import time

    from sertest.models.callable import CallableModel

    state = {"inside": 0, "most": 0}
    lock = threading.Lock()

    def f(signals, sampling_rate):
        with lock:
            state["inside"] += 1
            state["most"] = max(state["most"], state["inside"])
        time.sleep(pause_s)
        with lock:
            state["inside"] -= 1
        return np.tile([0.5, 0.5, 0.5], (len(signals), 1))

    model = CallableModel(f, "tests:counting", name="counting",
                          labels=["arousal", "dominance", "valence"])
    model.concurrent = concurrent
    return model, state


def test_models_not_declared_concurrent_take_turns(tiny_data):
    serial, state = _counting_model(concurrent=False)
    assert not serial.concurrent  # user callables are not assumed thread-safe
    audit([serial], str(tiny_data), "smoke", cache=False, jobs=4, baselines=False, renderers=())
    assert state["most"] == 1
    # the same model declared concurrent is called from several worker threads at once
    parallel, state = _counting_model(concurrent=True)
    res = audit([parallel], str(tiny_data), "smoke", cache=False, jobs=4, baselines=False,
                renderers=())
    assert state["most"] > 1
    assert res.timings["computed"] == 40 * 2  # the model and the signal statistics


def test_cache_key_tracks_perturbation_version_and_batch_size():
    from sertest.engine.cache import prediction_key

    base = dict(model_fingerprint="m", audio_hash="a", condition_key='{"name":"opus"}',
                sampling_rate=16000)
    k = prediction_key(**base, condition_version=2, max_batch=16)
    assert k == prediction_key(**base, condition_version=2, max_batch=16)
    assert k != prediction_key(**base, condition_version=1, max_batch=16)
    assert k != prediction_key(**base, condition_version=2, max_batch=8)
    # the most samples a call takes splits a batch of long signals: it enters too
    assert k != prediction_key(**base, condition_version=2, max_batch=16, call_samples=1 << 19)
    assert prediction_key(**base, call_samples=1 << 19) != prediction_key(**base,
                                                                           call_samples=1 << 21)


def test_a_changed_perturbation_is_recomputed_not_read_from_the_cache(tiny_data, onnx_model,
                                                                    tmp_path, monkeypatch):
    from sertest.perturb.noise import WhiteNoise

    suite = {"name": "s", "tests": [{"test": "robustness_background_noise",
                                     "params": {"noises": {"white": {"name": "white_noise", "snr_db": 20.0}}}}]}
    cache_dir = str(tmp_path / "c")
    cold = audit([onnx_model], str(tiny_data), suite, cache=cache_dir, baselines=False)
    warm = audit([onnx_model], str(tiny_data), suite, cache=cache_dir, baselines=False)
    assert cold.timings["computed"] > 0 and warm.timings["computed"] == 0
    monkeypatch.setattr(WhiteNoise, "version", WhiteNoise.version + 1)
    bumped = audit([onnx_model], str(tiny_data), suite, cache=cache_dir, baselines=False)
    assert bumped.timings["computed"] == 40  # the white-noise predictions, nothing clean


def test_cli_cache_info_and_clear(tiny_data, onnx_model, tmp_path, capsys):
    cache_dir = str(tmp_path / "c")
    assert main(["cache", "info", "--cache", cache_dir]) == 0
    assert "no cache yet" in capsys.readouterr().out
    audit([onnx_model], str(tiny_data), "smoke", cache=cache_dir, baselines=False)
    assert main(["cache", "info", "--cache", cache_dir]) == 0
    assert "80 predictions" in capsys.readouterr().out  # the model and the signal statistics
    assert main(["cache", "clear", "--cache", cache_dir]) == 0
    assert not os.path.exists(os.path.join(cache_dir, "predictions.sqlite"))
    warm = audit([onnx_model], str(tiny_data), "smoke", cache=cache_dir, baselines=False)
    assert warm.timings["computed"] == 80  # nothing left to reuse
