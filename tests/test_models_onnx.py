"""ONNX and audonnx adapters, the model registry and the random baselines."""

from __future__ import annotations

import os

import numpy as np
import pytest
import yaml

from sertest.errors import ModelError, UsageError
from sertest.models import load_model, parse_spec
from tests.helpers import make_onnx_model


def _rms3(x):
    return 3 * np.sqrt(np.mean(np.square(x.astype(np.float64))))


def test_dynamic_batch_onnx_predicts_per_signal(onnx_model):
    m = load_model(onnx_model)
    assert m.dimensions == ("arousal", "dominance", "valence") and m.batchable
    rng = np.random.default_rng(0)
    sigs = [0.1 * rng.standard_normal(n).astype("float32") for n in (1600, 1600, 800)]
    y = m.predict(sigs)
    assert y.shape == (3, 3)
    for s, row in zip(sigs, y):
        assert row[0] == pytest.approx(_rms3(s), rel=1e-4)
    # batching never changes a prediction
    assert np.allclose(m.predict(sigs[:1]), y[:1], atol=1e-6)


def test_static_batch_graph_runs_one_by_one(tmp_path):
    path = make_onnx_model(str(tmp_path / "s.onnx"), static_batch=True)
    m = load_model(path)
    assert not m.batchable
    sigs = [np.full(1000, v, dtype="float32") for v in (0.1, 0.2)]
    assert m.predict(sigs)[:, 0] == pytest.approx([0.3, 0.6], rel=1e-5)


def test_channel_axis_input(tmp_path):
    m = load_model(make_onnx_model(str(tmp_path / "c.onnx"), rank=3))
    assert m.predict([np.full(100, 0.1, dtype="float32")])[0, 0] == pytest.approx(0.3, rel=1e-5)


def test_labels_from_cli_option_and_sidecar(tmp_path):
    path = make_onnx_model(str(tmp_path / "n.onnx"), metadata=False, labels=("a", "b", "c"))
    with pytest.raises(UsageError, match="--labels"):
        load_model(path)
    m = load_model(path, labels="valence,arousal,dominance")
    assert m.dimensions == ("arousal", "dominance", "valence")
    y = m.predict([np.full(100, 0.1, dtype="float32")])
    assert y[0, 2] == pytest.approx(0.3, rel=1e-5)  # valence is the first column of the graph
    (tmp_path / "n.yaml").write_text(yaml.safe_dump({"labels": {"logits": ["arousal", "dominance", "valence"]}}))
    assert load_model(path).dimensions == ("arousal", "dominance", "valence")
    with pytest.raises(UsageError, match="does not have"):
        load_model(path, labels="nope=arousal")


def test_audonnx_folder(tmp_path):
    folder = tmp_path / "w2v2"
    folder.mkdir()
    make_onnx_model(str(folder / "model.onnx"), metadata=False)
    doc = {"$audonnx.core.model.Model==0.3.2": {
        "path": "model.onnx", "labels": {"logits": ["arousal", "dominance", "valence"]},
        "transform": None}}
    (folder / "model.yaml").write_text(yaml.safe_dump(doc))
    m = load_model(str(folder))
    assert m.info().format == "audonnx" and m.name == "w2v2"
    assert m.info().file_size == sum(f.stat().st_size for f in folder.iterdir())
    doc["$audonnx.core.model.Model==0.3.2"]["transform"] = {"$audonnx.core.function.Function": {}}
    (folder / "model.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(UsageError, match="transforms are not supported"):
        load_model(str(folder))


def test_audonnx_library_reads_our_static_batch_export(tmp_path):
    audonnx = pytest.importorskip("audonnx")
    path = make_onnx_model(str(tmp_path / "a.onnx"), static_batch=True)
    ref = audonnx.Model(path, labels=["arousal", "dominance", "valence"])
    x = np.full((1, 500), 0.2, dtype="float32")
    ours = load_model(path).predict([x[0]])
    assert np.allclose(ref(x, 16000), ours, atol=1e-6)


def test_classifier_output_and_emotion_target(tmp_path):
    path = make_onnx_model(str(tmp_path / "c.onnx"), output_name="probs",
                           labels=("anger", "happiness", "neutral", "sadness"))
    m = load_model(path)
    assert m.classes == ("anger", "happiness", "neutral", "sadness")
    assert m.targets == ("emotion",)


def test_info_counts_parameters_and_size(onnx_model):
    info = load_model(onnx_model).info()
    assert info.parameters == 1 + 1 + 3  # axes(1) + one_axis(1) + three scalars
    assert info.file_size == os.path.getsize(onnx_model)


def test_wrong_output_width_is_a_clear_error(tmp_path):
    path = make_onnx_model(str(tmp_path / "w.onnx"), metadata=False, labels=("a", "b"))
    m = load_model(path, labels="arousal,dominance,valence")
    with pytest.raises(ModelError, match="label 'valence' is number 3"):
        m.predict([np.ones(100, dtype="float32")])


@pytest.mark.parametrize("spec,needle", [
    ("audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim", "local folder"),
    ("missing.onnx", "no such file"),
    ("random:uniform", "unknown baseline"),
])
def test_bad_specs_are_refused_clearly(spec, needle):
    with pytest.raises(UsageError, match=needle):
        load_model(spec)


def test_named_spec(onnx_model):
    assert parse_spec(f"student={onnx_model}")[:2] == ("student", "onnx")
    assert load_model(f"student={onnx_model}").name == "student"


def test_random_baselines_are_seeded_per_item():
    g = load_model("random:gaussian")
    sig = [np.ones(10, dtype="float32")] * 3
    rngs = lambda s: [np.random.default_rng([s, i]) for i in range(3)]  # noqa: E731
    a, b = g.predict(sig, rngs(1)), g.predict(sig, rngs(1))
    assert np.array_equal(a, b) and not np.array_equal(a, g.predict(sig, rngs(2)))
    assert a.min() >= 0 and a.max() <= 1
    big = g.predict([np.ones(1, dtype="float32")] * 4000, [np.random.default_rng([9, i]) for i in range(4000)])
    assert big.mean() == pytest.approx(0.5, abs=0.01)
    assert big.std() == pytest.approx(0.1563, abs=0.01)  # sd of N(0.5, 1/6) truncated to [0, 1]
    c = load_model("random:categorical")
    p = c.predict([np.ones(1, dtype="float32")] * 4000, [np.random.default_rng([9, i]) for i in range(4000)])
    assert set(p.sum(1)) == {1.0}
    assert np.allclose(p.mean(0), 0.25, atol=0.03)


def _threads(model) -> int:
    """The intra-op threads of the model's ONNX Runtime session, as onnxruntime reports them."""
    return model.session.get_session_options().intra_op_num_threads


def test_session_threads_follow_the_engine_unless_fixed(tmp_path, monkeypatch):
    monkeypatch.delenv("SERTEST_THREADS", raising=False)
    path = make_onnx_model(os.fspath(tmp_path / "m.onnx"))
    m = load_model(path)
    assert _threads(m) == 0  # onnxruntime's default (0) until the engine says
    x = [np.random.default_rng(0).standard_normal(8000).astype(np.float32)]
    before = m.predict(x)
    m.use_threads(1)  # what the engine asks: one thread per call, calls in parallel
    assert _threads(m) == 1
    np.testing.assert_array_equal(m.predict(x), before)
    m.use_threads(3)
    assert _threads(m) == 3
    monkeypatch.setenv("SERTEST_THREADS", "2")
    fixed = load_model(path)
    fixed.use_threads(1)
    assert _threads(fixed) == 2  # the user's choice wins


def test_equal_length_signals_are_stacked_at_most_max_batch_at_a_time():
    from sertest.models.base import Model

    class Recorder(Model):
        dimensions = ("arousal",)

        def __init__(self):
            self.calls = []

        def predict_batch(self, signals):
            self.calls.append(signals.shape)
            return signals.mean(axis=1, keepdims=True)

    m = Recorder()
    rng = np.random.default_rng(0)
    sigs = [rng.standard_normal(100).astype(np.float32) for _ in range(40)]
    sigs.insert(7, rng.standard_normal(50).astype(np.float32))  # another length
    out = m.predict(sigs)
    assert sorted(m.calls) == [(1, 50), (8, 100), (16, 100), (16, 100)]
    np.testing.assert_allclose(out[:, 0], [s.mean() for s in sigs], rtol=1e-6)


def test_the_graph_is_parsed_once_per_file_version(tmp_path, monkeypatch):
    """Loading, fingerprinting and describing a model read the ONNX file once (a graph with
    its weights inside is read whole); a new version of the file is read again."""
    import onnx

    calls = []
    real = onnx.load

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(onnx, "load", counting)
    path = make_onnx_model(os.fspath(tmp_path / "m.onnx"))
    m = load_model(path)
    m.fingerprint()
    info = m.info()
    assert len(calls) == 1 and info.parameters is not None and m.batch_coupled == []
    os.utime(path, ns=(1, 1))  # another version of the file (its time changed)
    load_model(path).info()
    assert len(calls) == 2


def test_a_model_path_may_be_a_pathlib_path_and_anything_else_is_a_usage_error(tmp_path):
    import pathlib

    from sertest.errors import UsageError

    path = pathlib.Path(make_onnx_model(str(tmp_path / "m.onnx")))
    assert load_model(path).fingerprint() == load_model(str(path)).fingerprint()
    with pytest.raises(UsageError, match="not int"):
        load_model(3)
