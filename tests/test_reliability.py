"""Bad audio, faulty models, hostile data, interrupted runs, no network, fuzzing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sertest import audit, audio
from sertest.data import Dataset
from sertest.errors import AudioError, DataError, SertestError, UsageError
from sertest.suite import load_suite

BAD = os.path.join(os.path.dirname(__file__), "data", "bad")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _with_labels(src: str, dst_dir, keep=None) -> str:
    """Copy the bad-audio manifest with labels so correctness tests run on it."""
    df = pd.read_csv(os.path.join(src, "manifest.csv"), dtype=str, keep_default_na=False)
    if keep is not None:
        df = df[df["expect"].isin(keep)]
    rng = np.random.default_rng(0)
    df["arousal"] = rng.uniform(0, 1, len(df)).round(3)
    df["dominance"] = 0.5
    df["valence"] = 0.5
    df["file"] = [os.path.join(src, f) for f in df["file"]]
    path = os.path.join(dst_dir, "m.csv")
    df.to_csv(path, index=False)
    return path


def test_bad_audio_corpus_each_input_gets_what_the_table_says(tmp_path):
    manifest = _with_labels(BAD, tmp_path)
    res = audit(["callable:tests.faulty_models:good"], manifest, "smoke", cache=False,
                baselines=False, allow_outside_root=True)
    expect = pd.read_csv(os.path.join(BAD, "manifest.csv"), dtype=str,
                         keep_default_na=False).set_index("id")["expect"]
    errors = {e["id"]: e for e in res.doc["items"]["errors"]}
    warnings = {w["id"] for w in res.doc["items"]["warnings"]}
    for item_id, what in expect.items():
        if what == "error":
            assert item_id in errors, item_id
            assert errors[item_id]["stage"] == "decode" and errors[item_id]["error"]
        else:
            assert item_id not in errors, errors.get(item_id)
        assert (item_id in warnings) == (what == "warning"), item_id
    assert "clipped" in res.doc["items"]["warnings"][0]["warning"]


def test_valid_results_identical_with_or_without_bad_items(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with_bad = _with_labels(BAD, tmp_path / "a")
    only_good = _with_labels(BAD, tmp_path / "b")
    df = pd.read_csv(with_bad, dtype=str, keep_default_na=False)
    df[df["expect"] != "error"].to_csv(only_good, index=False)
    kw = dict(suite="smoke", cache=False, baselines=False, allow_outside_root=True, n_boot=0)
    r1 = audit(["callable:tests.faulty_models:good"], with_bad, **kw)
    r2 = audit(["callable:tests.faulty_models:good"], only_good, **kw)
    assert r1.doc["tests"] == r2.doc["tests"]


def test_fail_fast_stops_at_first_bad_item(tmp_path):
    manifest = _with_labels(BAD, tmp_path)
    with pytest.raises(SertestError, match="item"):
        audit(["callable:tests.faulty_models:good"], manifest, "smoke", cache=False,
              allow_outside_root=True, fail_fast=True)


def test_very_long_file_streams(tmp_path):
    sr = 16000
    x = (0.1 * np.sin(2 * np.pi * 150 * np.arange(sr * 600) / sr)).astype("float32")
    sf.write(tmp_path / "long.flac", x, sr)
    pd.DataFrame([{"file": "long.flac", "arousal": 0.3}]).to_csv(tmp_path / "m.csv", index=False)
    res = audit(["callable:tests.faulty_models:good"], str(tmp_path / "m.csv"), "smoke",
                cache=False, baselines=False)
    assert not res.doc["items"]["errors"]
    assert res.doc["dataset"]["items"] == 1


@pytest.mark.parametrize("model,stage_error", [
    ("nan_on_short", "not finite"),
    ("inf_always", "not finite"),
    ("raises_on_long", "planted failure on long input"),
    ("wrong_width", "returned shape"),
    ("wrong_count", "returned shape"),
])
def test_faulty_models_give_clear_item_errors(tiny_data, model, stage_error):
    res = audit([f"callable:tests.faulty_models:{model}"], str(tiny_data), "smoke", cache=False,
                baselines=False)
    errs = res.doc["items"]["errors"]
    assert errs, "a faulty model must never pass silently"
    assert all(e["stage"] == "model" and e["model"] == model for e in errs)
    assert any(stage_error in e["error"] for e in errs), errs[0]
    # never a silent wrong number: every reported value rests on valid predictions only,
    # and every test that needed a failed prediction is an error (never a skip or a pass)
    for t in res.tests:
        if t["test"] == "model_health":
            assert t["measurements"][0]["value"] == len(errs) / 40
            continue
        assert t["verdict"] == "error" and t["item_failures"]["count"] == len({e["id"] for e in errs})
        for m in t["measurements"]:
            assert m["n"] is None or m["n"] <= 40 - len({e["id"] for e in errs})


def test_hanging_model_is_timed_out_and_skipped(tiny_data):
    res = audit(["callable:tests.faulty_models:hangs"], str(tiny_data), "smoke", cache=False,
                baselines=False, timeout=1.5, jobs=1)
    msgs = [e["error"] for e in res.doc["items"]["errors"]]
    assert any("within 1.5 s" in m for m in msgs)
    assert any("timed out on an earlier batch" in m for m in msgs)


def test_sigkill_then_resume_gives_identical_results(tiny_data, tmp_path):
    cache = tmp_path / "cache"
    base = [sys.executable, "-m", "sertest.cli", "run", "--model",
            "callable:tests.faulty_models:slow", "--data", str(tiny_data), "--jobs", "1",
            "--suite", "smoke",
            "--no-progress", "--no-profile", "--format", ""]
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(base + ["--out", str(tmp_path / "killed"), "--cache", str(cache)],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = cache / "predictions.sqlite"
    deadline = time.time() + 60
    rows = 0
    while time.time() < deadline:
        time.sleep(0.2)
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    rows = conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
            except sqlite3.OperationalError:
                rows = 0
            if rows >= 10:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 10 <= rows < 80, "the kill must land mid-audit"
    assert not (tmp_path / "killed" / "results.json").exists()
    resumed = subprocess.run(base + ["--out", str(tmp_path / "resumed"), "--cache", str(cache)],
                             env=env, cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode in (0, 1), resumed.stderr
    fresh = subprocess.run(base + ["--out", str(tmp_path / "fresh"), "--no-cache"],
                           env=env, cwd=REPO, capture_output=True, text=True)
    assert fresh.returncode in (0, 1), fresh.stderr
    assert (tmp_path / "resumed" / "results.json").read_bytes() == \
        (tmp_path / "fresh" / "results.json").read_bytes()
    timings = json.loads((tmp_path / "resumed" / "timings.json").read_text())
    assert 0 < timings["cached"] < timings["predictions"]


def test_no_network_access_anywhere(tiny_data, onnx_model, tmp_path, monkeypatch):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise OSError("network access attempted during an audit")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    res = audit([onnx_model], str(tiny_data), "smoke", out=str(tmp_path / "o"), cache=False)
    assert res.tests and not calls
    assert not res.doc["items"]["errors"]


def test_manifest_paths_cannot_escape_the_root_via_symlink(tmp_path):
    outside = tmp_path / "outside.wav"
    sf.write(outside, np.ones(100, dtype="float32") * 0.1, 16000)
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link.wav")
    pd.DataFrame([{"file": "link.wav"}]).to_csv(root / "m.csv", index=False)
    with pytest.raises(DataError, match="outside the data root"):
        Dataset.from_manifest(str(root / "m.csv"))


def test_suite_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n"
                    "tests: [correctness_regression]\n")
    with pytest.raises(UsageError, match="invalid YAML"):
        load_suite(str(evil))


@pytest.mark.parametrize("doc,needle", [
    ({"tests": [{"test": "correctness_regression", "thresholdz": {}}]}, "'thresholdz'"),
    ({"tests": [{"test": "no_such_test"}]}, "unknown test 'no_such_test'"),
    ({"tests": [{"test": "correctness_regression", "thresholds": {"cccc": "> 1"}}]}, "cccc"),
    ({"tests": [{"test": "correctness_regression", "thresholds": {"ccc": "bigger 1"}}]}, "cannot read threshold"),
    ({"tests": [{"test": "correctness_regression", "params": {"x": 1}}]}, "unknown parameter"),
    ({"tests": []}, "non-empty list"),
    ({"name": "x", "tests": ["correctness_regression"], "bootstrap": {"n_boot": "many"}}, "n_boot"),
])
def test_suite_errors_name_the_key(tmp_path, doc, needle):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(UsageError) as info:
        load_suite(str(path))
    assert needle in str(info.value)


# -- fuzzing (bounded so it runs in CI) ----------------------------------------------

_cells = st.one_of(st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(-5, 5), st.none())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(columns=st.lists(st.sampled_from(["id", "file", "start", "end", "arousal", "emotion",
                                         "speaker", "x"]), min_size=1, max_size=6, unique=True),
       cells=st.lists(st.lists(_cells, min_size=6, max_size=6), min_size=0, max_size=6))
def test_fuzz_manifest_parser_raises_only_data_errors(tmp_path_factory, columns, cells):
    folder = tmp_path_factory.mktemp("fz")
    rows = [dict(zip(columns, r)) for r in cells]
    pd.DataFrame(rows, columns=columns).to_csv(folder / "m.csv", index=False)
    try:
        ds = Dataset.from_manifest(str(folder / "m.csv"))
    except DataError:
        return
    assert ds.table.index.is_unique and "file" in ds.table.columns


@settings(max_examples=150, deadline=None)
@given(doc=st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                                  st.sampled_from(["correctness_regression", "> 0.5", "ccc"])),
                        lambda c: st.one_of(st.lists(c, max_size=3),
                                            st.dictionaries(st.sampled_from(
                                                ["name", "tests", "test", "thresholds", "params",
                                                 "bootstrap", "targets", "n_boot", "ccc", "zzz"]),
                                                c, max_size=4)), max_leaves=12))
def test_fuzz_suite_loader_raises_only_usage_errors(doc):
    try:
        load_suite(doc if isinstance(doc, dict) else {"tests": doc})
    except UsageError:
        pass


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600), prefix=st.sampled_from([b"", b"RIFF", b"fLaC", b"OggS", b"ID3"]),
       ext=st.sampled_from([".wav", ".flac", ".ogg", ".mp3", ".bin"]))
def test_fuzz_audio_loader_raises_only_audio_errors(tmp_path_factory, data, prefix, ext):
    path = tmp_path_factory.mktemp("au") / f"x{ext}"
    path.write_bytes(prefix + data)
    try:
        x, sr = audio.read(str(path))
    except AudioError:
        return
    assert x.dtype == np.float32 and x.ndim == 1 and np.isfinite(x).all() and sr > 0
