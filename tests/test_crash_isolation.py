"""Models that end the interpreter (segfault, abort, os._exit, an OOM kill) cost only their
own predictions: isolated workers locally, quarantined items on Dask."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest import audit
from sertest.engine.isolate import MAX_CRASHES, IsolatedModel, exit_text, isolatable
from sertest.models import load_model
from sertest.models.base import Model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POISON = "i3"
FAULTY = "callable:tests.faulty_models:"


@pytest.fixture()
def poison_data(tmp_path):
    """8 quiet 16 kHz tones and one loud one (item i3), which the crashing models of
    tests/faulty_models.py cannot survive."""
    root = tmp_path / "data"
    root.mkdir()
    rows = []
    for i in range(8):
        n = 16000 + 800 * i
        level = 0.95 if f"i{i}" == POISON else 0.05 + 0.03 * i
        x = level * np.sin(2 * np.pi * 200 * np.arange(n) / 16000)
        sf.write(root / f"a{i}.wav", x.astype("float32"), 16000)
        rows.append(dict(id=f"i{i}", file=f"a{i}.wav", speaker=f"s{i % 2}",
                         sex="female" if i % 2 else "male", arousal=round(level, 3),
                         dominance=0.5, valence=0.5))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def _entries(res, model: str) -> list[dict]:
    return [t for t in res.tests if t["model"] == model]


def _errors(res, model: str) -> list[dict]:
    return [e for e in res.doc["items"]["errors"] if e["model"] == model]


def test_exit_text_names_the_signal():
    assert exit_text(-signal.SIGSEGV) == "killed by SIGSEGV"
    assert exit_text(-signal.SIGABRT) == "killed by SIGABRT"
    assert exit_text(-signal.SIGKILL) == "killed by SIGKILL"
    assert exit_text(3) == "exited with code 3"


def test_crashing_models_beside_a_sound_one(poison_data):
    kw = dict(suite="smoke", cache=False, baselines=False, jobs=1, isolate=True)
    crashing = {"segfaults_on_loud": "killed by SIGSEGV", "aborts_on_loud": "killed by SIGABRT",
                "exits_on_loud": "exited with code 3", "oom_killed_on_loud": "killed by SIGKILL"}
    res = audit([FAULTY + "good"] + [FAULTY + m for m in crashing], str(poison_data), **kw)
    alone = audit([FAULTY + "good"], str(poison_data), **kw)
    # the sound model's results are those of an audit without the crashing models
    assert _entries(res, "good") == _entries(alone, "good")
    assert not _errors(res, "good")
    for model, how in crashing.items():
        errs = _errors(res, model)
        # only the poison item, quarantined after one retry; the other items predicted
        assert {e["id"] for e in errs} == {POISON}, errs
        assert all(how in e["error"] and "quarantined" in e["error"] for e in errs), errs
        assert errs[0]["error"].startswith(f"model {model!r} crashed: {how} after 3 of 8 ")
        entry = next(m for m in res.models if m["name"] == model)
        assert entry["crashed"].startswith(f"crashed 2 times (last: {how}")
        assert any(t.get("item_failures") and t["verdict"] == "error"
                   for t in _entries(res, model))
    assert "out of memory" in _errors(res, "oom_killed_on_loud")[0]["error"]
    assert res.exit_code() == 1


def test_a_model_crashing_on_every_call_is_given_up(poison_data, caplog):
    with caplog.at_level(logging.WARNING, logger="sertest"):
        res = audit([FAULTY + "good", FAULTY + "segfaults_always"], str(poison_data), "smoke",
                    cache=False, baselines=False, jobs=1, isolate=True)
    entry = next(m for m in res.models if m["name"] == "segfaults_always")
    assert entry["crashed"].endswith(f"given up after {MAX_CRASHES} crashes")
    errs = _errors(res, "segfaults_always")
    assert any(f"crashed {MAX_CRASHES} times" in e["error"] for e in errs), errs
    assert sum("giving it up" in r.getMessage() for r in caplog.records) == 1
    assert not _errors(res, "good") and res.exit_code() == 1


def test_isolated_results_equal_in_process_results(tiny_data, onnx_model):
    """The same outputs, bit for bit, and the same error texts for a model's exceptions."""
    models = [onnx_model, FAULTY + "raises_on_long"]
    kw = dict(suite="smoke", cache=False, baselines=False, jobs=2)
    assert audit(models, str(tiny_data), isolate=True, **kw).to_json() \
        == audit(models, str(tiny_data), isolate=False, **kw).to_json()


def test_models_that_cannot_run_in_a_worker_stay_in_process(caplog):
    class Handmade(Model):
        dimensions = ("arousal",)

    assert not isolatable(Handmade())  # a Model built in Python: no spec to load it from
    assert not isolatable(load_model("random:gaussian"))
    model = load_model(FAULTY + "good")
    assert isolatable(model)
    model.spec = FAULTY + "slightly_above"  # the worker would load another model
    proxy = IsolatedModel(model)
    try:
        assert "different model" in proxy.start()
    finally:
        proxy.close()


def _cli(*args, env_extra=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "sertest.cli", "run", "--suite", "smoke",
                           "--jobs", "1", "--no-progress", "--no-profile", "--format", "",
                           "--no-baselines", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def _cached(cache_dir) -> int:
    with sqlite3.connect(os.path.join(cache_dir, "predictions.sqlite")) as db:
        return db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]


def test_cli_crash_exit_1_cache_survives_and_a_rerun_continues(poison_data, tmp_path):
    cache = tmp_path / "cache"
    models = ["--model", FAULTY + "good", "--model", FAULTY + "segfaults_on_loud"]
    # without isolation the segfault ends the process, but each finished item is cached
    # (flushed per item), so the next run starts after them
    bare = _cli(*models, "--data", str(poison_data), "--cache", str(cache),
                "--out", str(tmp_path / "bare"), "--no-isolate")
    assert bare.returncode == -signal.SIGSEGV, bare.stderr
    assert _cached(cache) >= 2 * 3  # items i0..i2 of both models (and signal statistics)
    first = _cli(*models, "--data", str(poison_data), "--cache", str(cache),
                 "--out", str(tmp_path / "one"), "--isolate")
    assert first.returncode == 1, first.stderr
    assert "model 'segfaults_on_loud' crashed: killed by SIGSEGV" in first.stderr
    doc = json.loads((tmp_path / "one" / "results.json").read_text())
    errs = doc["items"]["errors"]
    assert [(e["id"], e["model"]) for e in errs] == [(POISON, "segfaults_on_loud")]
    timings = json.loads((tmp_path / "one" / "timings.json").read_text())
    assert timings["cached"] >= 2 * 3 and timings["computed"] > 0
    # a rerun: everything but the quarantined item comes from the cache
    second = _cli(*models, "--data", str(poison_data), "--cache", str(cache),
                  "--out", str(tmp_path / "two"), env_extra={"SERTEST_ISOLATE": "1"})
    assert second.returncode == 1, second.stderr
    again = json.loads((tmp_path / "two" / "timings.json").read_text())
    assert again["computed"] == 0 and again["cached"] == again["predictions"] - 1
    rerun = json.loads((tmp_path / "two" / "results.json").read_text())
    assert [t for t in rerun["tests"] if t["model"] == "good"] \
        == [t for t in doc["tests"] if t["model"] == "good"]
    assert [t["verdict"] for t in rerun["tests"]] == [t["verdict"] for t in doc["tests"]]
    assert "killed by SIGSEGV after 0 of 1 predictions" in rerun["items"]["errors"][0]["error"]


def test_dask_quarantines_a_poison_item_and_loads_file_callables(poison_data, tmp_path):
    user = tmp_path / "my_model.py"
    user.write_text("import numpy as np\n\n"
                    "def level(signals, sampling_rate):\n"
                    "    a = np.minimum(np.sqrt(np.mean(np.square(signals), axis=1)) * 3, 1.0)\n"
                    "    return np.stack([a, 0.5 + 0 * a, 0.5 + 0 * a], axis=1)\n\n"
                    "level.labels = ['arousal', 'dominance', 'valence']\n")
    models = [f"callable:{user}:level", FAULTY + "segfaults_on_loud"]
    kw = dict(suite="smoke", cache=False, baselines=False, jobs=2)
    res = audit(models, str(poison_data), executor="dask", **kw)
    errs = res.doc["items"]["errors"]
    assert [(e["id"], e["model"]) for e in errs] == [(POISON, "segfaults_on_loud")], errs
    assert "died" in errs[0]["error"] and "quarantined" in errs[0]["error"]
    local = audit(models[:1], str(poison_data), **kw)
    assert _entries(res, "level") == _entries(local, "level")
    assert res.exit_code() == 1


def test_a_hanging_isolated_model_is_timed_out_not_counted_as_a_crash(tiny_data):
    res = audit([FAULTY + "hangs"], str(tiny_data), "smoke", cache=False, baselines=False,
                timeout=1.5, jobs=1, isolate=True)
    msgs = [e["error"] for e in res.doc["items"]["errors"]]
    assert any("within 1.5 s" in m for m in msgs)
    assert any("timed out on an earlier batch" in m for m in msgs)
    assert "crashed" not in res.models[0]
