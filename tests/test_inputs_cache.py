"""Issue 14, points 2-5 and 9: inputs that never hang or explode, out-of-root rows refused
per item, a prediction cache that can only help, cache keys that cover every file read,
non-UTF-8 file names.  Everything here is real: FIFOs, symlinks, WAV headers, SQLite
files, ONNX external data."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sqlite3
import struct
import tempfile
import threading

import numpy as np
import onnx
import pandas as pd
import pytest
import soundfile as sf

from sertest import audio, audit
from sertest.data import Dataset, load_dataset
from sertest.engine.cache import TABLE_VERSION, PredictionCache
from sertest.engine.execute import execute
from sertest.engine.store import CLEAN
from sertest.errors import AudioError
from sertest.models import load_model
from sertest.models.base import Model
from sertest.perturb import from_spec
from tests.helpers import make_onnx_model

RUN = dict(suite="smoke", baselines=False, n_boot=0, progress=False)


def _tone(path, seconds=0.8, rate=16000, level=0.2, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = level * np.sin(2 * np.pi * 180 * t) + 0.01 * rng.standard_normal(t.size)
    sf.write(path, x.astype("float32"), rate)
    return path


def _manifest(root, files, labels=True):
    rng = np.random.default_rng(3)
    rows = [dict(id=f"i{k:02d}", file=f, speaker=f"s{k % 3}",
                 arousal=round(float(rng.uniform()), 3), dominance=0.5, valence=0.5)
            for k, f in enumerate(files)]
    path = os.path.join(root, "manifest.csv")
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _audit_in_thread(limit_s, *args, **kwargs):
    """Run audit() in a thread and fail (instead of hanging the suite) after ``limit_s``."""
    box = {}

    def target():
        try:
            box["res"] = audit(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            box["exc"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(limit_s)
    assert not th.is_alive(), f"audit still running after {limit_s} s (hung on an input)"
    if "exc" in box:
        raise box["exc"]
    return box["res"]


# -- 2. inputs that never hang or explode --------------------------------------------------
def _rate_patched_wav(path, rate):
    """A real 16-bit WAV whose header then declares ``rate`` Hz (bytes 24-31 of the fmt chunk)."""
    _tone(path)
    raw = bytearray(open(path, "rb").read())
    assert raw[12:16] == b"fmt "
    block_align = struct.unpack("<H", raw[32:34])[0]
    raw[24:28] = struct.pack("<I", rate)
    raw[28:32] = struct.pack("<I", rate * block_align)
    open(path, "wb").write(bytes(raw))
    return path


def test_fifo_device_symlink_and_1hz_header_are_item_errors_and_the_audit_completes(
        tmp_path, onnx_model):
    root = tmp_path / "data"
    root.mkdir()
    good = [os.path.basename(_tone(root / f"g{k}.wav", seed=k, level=0.05 + 0.05 * k))
            for k in range(6)]
    os.mkfifo(root / "fifo.wav")
    os.symlink("/dev/zero", root / "zero.wav")
    _rate_patched_wav(root / "rate1.wav", 1)
    socket_file = str(root / "sock.wav")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(socket_file)
    try:
        manifest = _manifest(root, good + ["fifo.wav", "zero.wav", "rate1.wav", "sock.wav"])
        out = tmp_path / "out"
        # allow_outside_root: the /dev/zero symlink must be refused for what it is
        res = _audit_in_thread(120, [onnx_model], manifest, out=str(out), cache=False,
                               allow_outside_root=True, **RUN)
    finally:
        sock.close()
    errors = {e["id"]: e for e in res.doc["items"]["errors"]}
    assert set(errors) == {"i06", "i07", "i08", "i09"}
    assert "FIFO" in errors["i06"]["error"] and "not a regular file" in errors["i06"]["error"]
    assert "character device" in errors["i07"]["error"]
    assert "declared sampling rate 1 Hz" in errors["i08"]["error"]
    assert "socket" in errors["i09"]["error"]
    assert all(e["stage"] == "decode" for e in errors.values())
    doc = json.loads((out / "results.json").read_text())
    assert {e["id"] for e in doc["items"]["errors"]} == set(errors)
    assert res.doc["dataset"]["items"] == 10


def test_declared_length_and_rates_beyond_bounds_are_refused_naming_them(tmp_path, monkeypatch):
    path = _tone(tmp_path / "long.wav", seconds=2.0)
    monkeypatch.setattr(audio, "MAX_SAMPLES", 16000)  # a "huge" file against a small bound
    with pytest.raises(AudioError, match=r"declares 32000 frames x 1 channel\(s\) at 16000 Hz"):
        audio.read(str(path))
    x, sr = audio.read(str(path), 0.0, 0.5)  # a segment within the bound still decodes
    assert sr == 16000 and x.size == 8000
    with pytest.raises(AudioError, match="resampled from 16000 Hz to 48000 Hz"):
        audio.resample(x, 16000, 48000, "seg")
    monkeypatch.undo()
    with pytest.raises(AudioError, match="declared sampling rate 1 Hz"):
        audio.resample(np.ones(10, np.float32), 1, 16000, "item")
    with pytest.raises(AudioError, match="declared sampling rate 1000000 Hz"):
        audio.read(str(_rate_patched_wav(tmp_path / "fast.wav", 1_000_000)))


def test_decoding_has_a_time_bound(tmp_path):
    path = _tone(tmp_path / "a.wav", seconds=1.0)
    with pytest.raises(AudioError, match="decoding took longer than 0 s"):
        audio.read(str(path), time_limit=0.0)
    assert audio.read(str(path))[0].size == 16000


def test_content_hash_refuses_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "f.wav"
    os.mkfifo(fifo)
    box = {}
    th = threading.Thread(target=lambda: box.setdefault("e", _raises(audio.content_hash, fifo)),
                          daemon=True)
    th.start()
    th.join(10)
    assert not th.is_alive(), "content_hash blocked on a FIFO"
    assert "FIFO" in str(box["e"])


def _raises(fn, *args):
    try:
        fn(str(args[0]))
    except AudioError as exc:
        return exc
    raise AssertionError("no AudioError")


# -- 3. out-of-root rows are refused per item ----------------------------------------------
def test_out_of_root_rows_are_refused_per_item_and_the_rest_audited(tmp_path, onnx_model,
                                                                    caplog):
    outside = _tone(tmp_path / "outside.wav")
    root = tmp_path / "data"
    root.mkdir()
    good = [os.path.basename(_tone(root / f"g{k}.wav", seed=k, level=0.05 + 0.04 * k))
            for k in range(6)]
    os.symlink(outside, root / "link.wav")
    manifest = _manifest(root, good + ["../outside.wav", "link.wav", str(outside)])
    with caplog.at_level(logging.WARNING, logger="sertest"):
        res = audit([onnx_model], manifest, cache=False, **RUN)
    errors = {e["id"]: e["error"] for e in res.doc["items"]["errors"]}
    assert set(errors) == {"i06", "i07", "i08"}
    assert all("outside the data root" in e and "--allow-outside-root" in e
               for e in errors.values())
    assert "line 9" in errors["i07"] and "a symlink to" in errors["i07"]
    terminal = "\n".join(r.getMessage() for r in caplog.records)
    assert "3 of 9 item(s) refused" in terminal
    assert all(f"line {n}" in terminal for n in (8, 9, 10))  # every row, not only the first
    # the others are audited: their clean predictions exist
    assert res.doc["dataset"]["items"] == 9
    allowed = audit([onnx_model], manifest, cache=False, allow_outside_root=True, **RUN)
    assert allowed.doc["items"]["errors"] == []


# -- 9. non-UTF-8 names -------------------------------------------------------------------
def test_non_utf8_file_name_is_refused_per_item_not_a_crash(tmp_path, onnx_model):
    root = tmp_path / "folder"
    root.mkdir()
    _tone(root / "ok.wav")
    _tone(root / "ok2.wav", seed=2, level=0.1)
    _tone(root / "tmp.wav", seed=1)
    os.rename(os.fsencode(root / "tmp.wav"), os.fsencode(root) + b"/caf\xe9.wav")
    data = load_dataset(str(root))
    assert sorted(data.ids) == ["caf\\xe9.wav", "ok.wav", "ok2.wav"]
    assert "not valid UTF-8" in data.refused["caf\\xe9.wav"]
    model = load_model(onnx_model)
    store, errors, _ = execute(data, {"m": model}, {CLEAN: None}, {CLEAN: set(data.ids)},
                               jobs=1, progress=False)
    assert [(e.item_id, e.stage) for e in errors] == [("caf\\xe9.wav", "decode")]
    assert "rename it to UTF-8" in errors[0].error
    assert store.has("m", CLEAN, "ok.wav") and store.has("m", CLEAN, "ok2.wav")
    json.dumps([e.to_dict() for e in errors]).encode("utf-8")  # serialisable as UTF-8


# -- 4. the cache can only help --------------------------------------------------------------
def _cache_file(folder):
    return os.path.join(folder, "predictions.sqlite")


def _cache_warnings(caplog):
    return [r.getMessage() for r in caplog.records if "prediction cache" in r.getMessage()]


def _checkpoint(path):
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def _break_garbage(path):
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    with open(path, "wb") as fh:
        fh.write(np.random.default_rng(0).bytes(20000))


def _break_truncated(path):
    _checkpoint(path)
    with open(path, "r+b") as fh:
        fh.truncate(3 * 4096 + 100)


def _break_future(path):
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version={TABLE_VERSION + 5}")
    con.commit()
    con.close()


def _break_layout(path):
    con = sqlite3.connect(path)
    con.execute("DROP TABLE predictions")
    con.execute("CREATE TABLE predictions (model TEXT, key TEXT, value BLOB, PRIMARY KEY(key))")
    con.commit()
    con.close()


@pytest.mark.parametrize("breaker, cause", [
    (_break_garbage, "not a database"),
    (_break_truncated, "malformed"),
    (_break_future, "written by a newer sertest"),
    (_break_layout, "another layout"),
])
def test_broken_cache_degrades_with_one_warning(tiny_data, onnx_model, tmp_path, caplog,
                                                breaker, cause):
    cache = str(tmp_path / "c")
    first = audit([onnx_model], str(tiny_data), cache=cache, **RUN)
    assert first.timings["computed"] > 0
    breaker(_cache_file(cache))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sertest"):
        again = audit([onnx_model], str(tiny_data), cache=cache, out=str(tmp_path / "o"), **RUN)
    warnings = _cache_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert cause in warnings[0] and _cache_file(cache) in warnings[0]
    assert "sertest cache clear" in warnings[0]
    assert again.timings["cached"] == 0
    assert os.path.exists(tmp_path / "o" / "results.json")
    assert again.doc["tests"] == first.doc["tests"]


def test_full_disk_stops_storing_with_one_warning_naming_it(tiny_data, onnx_model, tmp_path,
                                                            caplog):
    data = load_dataset(str(tiny_data))
    model = load_model(onnx_model)
    conds = {CLEAN: None, "g": from_spec({"name": "gain", "gain_db": -3.0})}
    cache = PredictionCache(_cache_file(str(tmp_path / "c")), max_mb=0.02)  # SQLITE_FULL
    with caplog.at_level(logging.WARNING, logger="sertest"):
        store, errors, stats = execute(data, {"m": model}, conds,
                                       {ck: set(data.ids) for ck in conds}, cache=cache,
                                       jobs=1, progress=False)
        cache.put_many({"later": np.ones(3)})  # no second warning, no exception
    warnings = _cache_warnings(caplog)
    assert len(warnings) == 1 and "database or disk is full" in warnings[0], warnings
    assert "cannot rollback" not in warnings[0]
    assert errors == [] and stats.computed == 2 * len(data)
    assert store.frame("m", CLEAN).shape[0] == len(data)
    cache.close()


def test_read_only_warm_cache_is_read_and_nothing_is_written(tiny_data, onnx_model, caplog):
    """A real read-only folder and file.  As root, chmod does not stop writes, so the test
    switches its effective uid to nobody (65534) around the read-only run."""
    base = tempfile.mkdtemp(prefix="sertest-ro-")
    try:
        os.chmod(base, 0o755)
        data_dir = os.path.join(base, "data")
        shutil.copytree(os.path.dirname(tiny_data), data_dir)
        model_path = os.path.join(base, "m.onnx")
        shutil.copy(onnx_model, model_path)
        for r, ds, fs in os.walk(base):
            for d in ds:
                os.chmod(os.path.join(r, d), 0o755)
            for f in fs:
                os.chmod(os.path.join(r, f), 0o644)
        data = load_dataset(os.path.join(data_dir, "manifest.csv"))
        model = load_model(model_path)
        needed = {CLEAN: set(data.ids)}
        folder = os.path.join(base, "cache")
        warm = PredictionCache.open(folder)
        first, _, s1 = execute(data, {"m": model}, {CLEAN: None}, needed, cache=warm, jobs=1,
                               progress=False)
        warm.close()
        assert s1.computed == len(data)
        path = _cache_file(folder)
        for f in (path + "-wal", path + "-shm"):
            if os.path.exists(f):
                os.remove(f)
        os.chmod(path, 0o444)
        os.chmod(folder, 0o555)
        as_root = os.geteuid() == 0
        if as_root:
            os.seteuid(65534)
        try:
            with open(os.path.join(folder, "probe"), "w"):
                writable = True
        except OSError:
            writable = False
        try:
            if writable:
                pytest.skip("the file system does not enforce permissions here")
            with caplog.at_level(logging.WARNING, logger="sertest"):
                ro = PredictionCache.open(folder)
                again, errors, s2 = execute(data, {"m": model}, {CLEAN: None}, needed, cache=ro,
                                            jobs=1, progress=False)
                ro.put_many({"new": np.ones(3)})  # refused quietly: one warning in all
                ro.close()
        finally:
            if as_root:
                os.seteuid(0)
        warnings = _cache_warnings(caplog)
        assert len(warnings) == 1 and "read-only" in warnings[0], warnings
        assert errors == [] and s2.cached == len(data) and s2.computed == 0
        pd.testing.assert_frame_equal(first.frame("m", CLEAN), again.frame("m", CLEAN))
        assert sorted(os.listdir(folder)) == ["predictions.sqlite"]
    finally:
        for r, ds, _ in os.walk(base):
            for d in ds:
                os.chmod(os.path.join(r, d), 0o755)
        os.chmod(base, 0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_new_cache_records_its_schema_version(tmp_path):
    cache = PredictionCache(_cache_file(str(tmp_path)))
    cache.put_many({"k": np.arange(3.0)})
    cache.close()
    con = sqlite3.connect(_cache_file(str(tmp_path)))
    assert con.execute("PRAGMA user_version").fetchone()[0] == TABLE_VERSION
    con.close()


# -- 5. complete keys --------------------------------------------------------------------
def _external_onnx(folder, scale):
    """The tiny model with its weights in ``weights.bin`` (ONNX external data)."""
    os.makedirs(folder, exist_ok=True)
    path = make_onnx_model(os.path.join(folder, "tmp.onnx"))
    model = onnx.load(path)
    for init in model.graph.initializer:
        if init.name == "three":  # the arousal column is RMS * three
            init.CopyFrom(onnx.numpy_helper.from_array(np.array(scale, np.float32), "three"))
    os.remove(path)
    target = os.path.join(folder, "ext.onnx")
    if os.path.exists(os.path.join(folder, "weights.bin")):
        os.remove(os.path.join(folder, "weights.bin"))  # onnx appends to an existing file
    onnx.save_model(model, target, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    return target


def test_onnx_external_weights_changed_on_disk_are_not_served_from_the_cache(
        tiny_data, tmp_path):
    folder = str(tmp_path / "model")
    path = _external_onnx(folder, 3.0)
    assert os.path.exists(os.path.join(folder, "weights.bin"))
    cache = str(tmp_path / "c")
    first = audit([path], str(tiny_data), cache=cache, **RUN)
    warm = audit([path], str(tiny_data), cache=cache, **RUN)
    assert warm.timings["computed"] == 0
    graph_bytes = open(path, "rb").read()
    _external_onnx(folder, 1.0)  # new weights.bin, identical graph file
    assert open(path, "rb").read() == graph_bytes
    changed = audit([path], str(tiny_data), cache=cache, **RUN)
    # only the signal statistics (one per item, audio only) come from the cache now
    assert changed.timings["cached"] == 40
    assert changed.timings["computed"] == first.timings["computed"] - 40 > 0
    assert changed.doc["models"][0]["fingerprint"] != first.doc["models"][0]["fingerprint"]


def test_audonnx_folder_fingerprint_covers_every_file(tmp_path):
    folder = tmp_path / "audonnx"
    folder.mkdir()
    make_onnx_model(str(folder / "model.onnx"), metadata=False)
    (folder / "model.yaml").write_text(
        "$audonnx.core.model.Model==0.0.0:\n  path: model.onnx\n  labels:\n"
        "    logits: [arousal, dominance, valence]\n")
    (folder / "extra.bin").write_bytes(b"\x00" * 16)
    fp = load_model(f"audonnx:{folder}").fingerprint()
    (folder / "extra.bin").write_bytes(b"\x01" * 16)
    assert load_model(f"audonnx:{folder}").fingerprint() != fp


def test_callable_declared_files_and_fingerprint_enter_the_key(tmp_path, caplog):
    module = tmp_path / "user_model.py"
    np.save(tmp_path / "w.npy", np.array([2.0]))
    module.write_text(
        "import os\nimport numpy as np\n"
        "HERE = os.path.dirname(__file__)\n"
        "SERTEST_FILES = ['w.npy']\n"
        "VERSION = 'a'\n"
        "def sertest_fingerprint():\n    return VERSION\n"
        "def predict(signals, sampling_rate):\n"
        "    w = np.load(os.path.join(HERE, 'w.npy'))[0]\n"
        "    a = np.sqrt(np.mean(signals.astype(np.float64) ** 2, axis=1)) * w\n"
        "    return {'arousal': a, 'dominance': a * 0 + .5, 'valence': a * 0 + .5}\n")
    spec = f"callable:{module}:predict"
    fp1 = load_model(spec).fingerprint()
    assert not fp1.startswith("volatile:")
    np.save(tmp_path / "w.npy", np.array([3.0]))
    fp2 = load_model(spec).fingerprint()
    assert fp2 != fp1
    m = load_model(spec)
    m.func.__globals__["VERSION"] = "b"  # sertest_fingerprint() now says another thing
    assert m.fingerprint() != fp2
    module.write_text(module.read_text().replace("['w.npy']", "['missing.npy']"))
    with caplog.at_level(logging.WARNING, logger="sertest"):
        fp_missing = load_model(spec).fingerprint()
    assert fp_missing.startswith("volatile:")
    assert any("missing.npy" in r.getMessage() for r in caplog.records)


class _NoFingerprint(Model):
    name = "nofp"
    dimensions = ("arousal", "dominance", "valence")
    concurrent = True

    def predict_batch(self, signals):
        a = np.sqrt(np.mean(np.square(signals, dtype=np.float64), axis=1))
        return np.stack([a, a * 0 + 0.5, a * 0 + 0.5], axis=1)


def test_model_without_fingerprint_is_not_cached_across_runs(tiny_data, tmp_path, caplog):
    cache = str(tmp_path / "c")
    with caplog.at_level(logging.WARNING, logger="sertest"):
        first = audit([_NoFingerprint()], str(tiny_data), cache=cache, **RUN)
        second = audit([_NoFingerprint()], str(tiny_data), cache=cache, **RUN)
    assert first.timings["computed"] > 0
    # only the signal statistics (one per item, audio only) come from the cache
    assert second.timings["cached"] == 40
    assert second.timings["computed"] == first.timings["computed"] - 40 > 0
    assert second.doc["tests"] == first.doc["tests"]
    said = [r for r in caplog.records if "no fingerprint()" in r.getMessage()]
    assert len(said) == 1 and "not cached across runs" in said[0].getMessage()
    con = sqlite3.connect(_cache_file(cache))
    assert con.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 40  # stats only
    con.close()


@pytest.mark.parametrize("kind", ["noise_file", "babble", "impulse_response"])
def test_file_backed_perturbations_key_on_file_content(tmp_path, kind):
    folder = tmp_path / "bank"
    folder.mkdir()
    for k in range(3):
        _tone(folder / f"n{k}.wav", seed=k)
    ir = folder / "n0.wav"
    spec = {"noise_file": {"name": "noise_file", "folder": str(folder)},
            "babble": {"name": "babble", "source": str(folder)},
            "impulse_response": {"name": "impulse_response", "path": str(ir)}}[kind]
    before = from_spec(spec)
    v1 = before.cache_version
    assert v1.startswith("1+files=")
    assert from_spec(spec).cache_version == v1  # stable while the files stay
    _tone(ir, seed=99, level=0.3)  # same name, new content
    after = from_spec(spec)
    assert after.key == before.key  # the condition is the same ...
    assert after.cache_version != v1  # ... but its predictions are not reused


def test_missing_file_bank_does_not_break_planning():
    p = from_spec({"name": "noise_file", "folder": "/nonexistent/bank"})
    assert p.cache_version == "1+files=unreadable"


def test_composite_perturbation_key_covers_the_parts_it_uses(monkeypatch):
    from sertest.perturb.codecs import AmrNb, LowQualityPhone

    phone = from_spec("low_quality_phone")
    v1 = phone.cache_version
    assert "amr_nb=1" in v1 and "compress_dynamic_range=1" in v1
    monkeypatch.setattr(AmrNb, "version", 2)  # a release changes the AMR-NB round trip
    assert LowQualityPhone.code_version() != v1
    assert from_spec("low_quality_phone").cache_version != v1
    assert from_spec("gain").cache_version == "1"  # plain perturbations keep their keys


def test_cache_clear_that_cannot_remove_says_why_and_exits_2(tmp_path, capsys):
    """A cache file that cannot be removed (here: a folder in its place, which no
    permission trick is needed for) is a usage error naming the file, not a traceback."""
    from sertest.cli import main

    (tmp_path / "predictions.sqlite").mkdir()
    assert main(["cache", "clear", "--cache", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cannot clear the cache" in err and "predictions.sqlite" in err
