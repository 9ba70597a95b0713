"""Reference architectures, their ONNX export, and the torch / hf / callable adapters.

Tiny versions of every architecture are built, exported to a temporary folder and compared
with torch; the committed artefacts in examples/models are smoke-tested when present.
"""

from __future__ import annotations

import json
import os
import textwrap
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
ort = pytest.importorskip("onnxruntime")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sertest.errors import ModelError, UsageError  # noqa: E402
from sertest.models import load_model  # noqa: E402
from sertest.models.arch import (build_mobilenet, export_onnx, wav2small_card,  # noqa: E402
                                 wav2small_paper)
from sertest.models.arch.frontend import (STFTPower, mel_filterbank,  # noqa: E402
                                          normalise_waveform, periodic_hann)
from sertest.models.arch.teacher import (RegressionHead, TeacherModel,  # noqa: E402
                                         save_teacher, teacher_config)
from sertest.models.arch.wav2small import count_parameters  # noqa: E402
from sertest.seeding import derive_rng  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "examples", "models")


def _randomise_batchnorm(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial BN statistics, so that BN folding at export is actually exercised."""
    gen = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            n = mod.running_mean.numel()
            mod.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            mod.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            mod.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            mod.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)
    return model.eval()


def _signals(seed: int, batch: int, samples: int) -> np.ndarray:
    return (0.1 * derive_rng(seed, "signals", batch, samples).standard_normal(
        (batch, samples))).astype(np.float32)


TINY = {
    "wav2small-card": lambda: wav2small_card(),
    "mobilenetv4-tiny": lambda: build_mobilenet("mobilenetv4_conv_small", width=0.25),
    "mobilenetv3-tiny": lambda: build_mobilenet("mobilenetv3_small_100", width=0.25),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each tiny architecture, built with a fixed seed and exported once."""
    folder = tmp_path_factory.mktemp("onnx")
    out = {}
    for i, (name, make) in enumerate(TINY.items()):
        torch.manual_seed(i)
        model = _randomise_batchnorm(make(), i)
        path = str(folder / f"{name}.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(model, path)
        out[name] = (model, path)
    return out


# ----------------------------------------------------------------------------- ONNX export

@pytest.mark.parametrize("name", list(TINY))
def test_onnx_matches_torch_for_dynamic_batch_and_time(exported, name):
    model, path = exported[name]
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["signal"]
    for batch, samples in [(1, 11_200), (3, 24_000)]:
        x = _signals(7, batch, samples)
        with torch.inference_mode():
            expected = model(torch.from_numpy(x)).numpy()
        got = sess.run(None, {"signal": x})[0]
        assert got.shape == (batch, 3)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    # outputs differ between inputs: the comparison is not trivially between constants
    assert np.ptp(got, axis=0).max() > 0


def test_onnx_labels_metadata_drive_the_onnx_adapter(exported):
    _, path = exported["wav2small-card"]
    meta = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).get_modelmeta()
    assert json.loads(meta.custom_metadata_map["labels"]) == {
        "logits": ["arousal", "dominance", "valence"]}
    model = load_model(path)
    assert model.dimensions == ("arousal", "dominance", "valence")
    assert model.batchable
    info = model.info()
    assert info.file_size == os.path.getsize(path)
    assert info.parameters and info.parameters > 0


# ----------------------------------------------------------------------------- Wav2Small layout

def test_wav2small_card_matches_published_layout():
    model = wav2small_card()
    convs = [m for m in model.vgg7.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 7
    assert all(c.out_channels == 13 and c.kernel_size == (3, 3) and c.bias is None
               for c in convs)
    assert convs[0].in_channels == 1
    pools = [i for i, m in enumerate(model.vgg7.body) if isinstance(m, torch.nn.MaxPool2d)]
    assert pools == [3]                       # after the third conv block
    stft = model.frontend.stft
    assert (stft.n_fft, stft.hop) == (64, 32)
    assert model.frontend.mel_weights.shape == (33, 26)
    assert model.adv.in_features == 2 * 13 * 13
    # Expected counts from the card's layer list: conv weights + BN affine, 1x1 attention
    # convs with bias, Linear(338, 3); frozen: two 33x64 DFT kernels.
    c = 13
    trainable_expected = (9 * c + 2 * c) + 6 * (9 * c * c + 2 * c) + 2 * (c * c + c) \
        + (2 * c * c * 3 + 3)
    trainable, frozen = count_parameters(model)
    assert trainable == trainable_expected
    assert frozen == 2 * 33 * 64
    assert abs(trainable - 10_800) < 100 and abs(frozen - 4_200) < 100


def test_wav2small_paper_size_in_range():
    trainable, frozen = count_parameters(wav2small_paper())
    assert 50_000 <= trainable + frozen <= 100_000


def test_normalisation_leaves_the_input_untouched():
    x = torch.from_numpy(_signals(3, 2, 4000)) + 0.3
    before = x.clone()
    y = normalise_waveform(x)
    assert torch.equal(x, before)
    assert torch.allclose(y.mean(1), torch.zeros(2), atol=1e-5)
    assert torch.allclose(y.std(1, unbiased=False), torch.ones(2), atol=1e-3)
    model = wav2small_card().eval()
    with torch.inference_mode():
        model(x)
    assert torch.equal(x, before)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n_fft=st.sampled_from([64, 128, 400]),
       frames=st.integers(1, 6))
def test_stft_conv_equals_windowed_rfft_power(seed, n_fft, frames):
    hop = n_fft // 2
    n = n_fft + hop * (frames - 1)
    x = derive_rng(seed, "stft").standard_normal(n)
    got = STFTPower(n_fft, hop)(torch.from_numpy(x).float()[None]).double().numpy()[0]
    win = periodic_hann(n_fft)
    expected = np.stack([np.abs(np.fft.rfft(x[i * hop:i * hop + n_fft] * win)) ** 2
                         for i in range(frames)], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3 * expected.max())


@pytest.mark.parametrize("n_fft,n_mels", [(64, 26), (128, 26), (400, 64)])
def test_mel_filterbank_matches_librosa(n_fft, n_mels):
    librosa = pytest.importorskip("librosa")
    ours = mel_filterbank(16000, n_fft, n_mels)
    ref = librosa.filters.mel(sr=16000, n_fft=n_fft, n_mels=n_mels).T
    np.testing.assert_allclose(ours, ref, atol=1e-6 * ref.max())


# ----------------------------------------------------------------------------- torch adapter

def test_torch_adapter_torchscript_and_factory_state_dict(tmp_path):
    torch.manual_seed(11)
    model = _randomise_batchnorm(wav2small_card(), 11)
    x = _signals(5, 2, 9_600)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()

    ts_path = str(tmp_path / "w.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, torch.from_numpy(x[:1]))
        torch.jit.save(traced, ts_path, _extra_files={
            "labels.json": json.dumps(["arousal", "dominance", "valence"])})
    ts = load_model(ts_path)
    assert ts.info().format == "torch" and ts.dimensions == ("arousal", "dominance", "valence")
    np.testing.assert_allclose(ts.predict_batch(x), expected, atol=1e-5)
    # the labels option wins over the archive's labels, and reorders columns canonically
    ts2 = load_model(ts_path, labels="valence,arousal,dominance")
    np.testing.assert_allclose(ts2.predict_batch(x), expected[:, [1, 2, 0]], atol=1e-5)

    sd_path = str(tmp_path / "state.pt")
    torch.save(model.state_dict(), sd_path)
    fac = load_model(f"torch:sertest.models.arch.wav2small:wav2small_card={sd_path}")
    np.testing.assert_allclose(fac.predict_batch(x), expected, atol=1e-5)
    info = fac.info()
    assert info.parameters == sum(p.numel() for p in model.parameters())
    assert info.file_size == os.path.getsize(sd_path)
    assert fac.fingerprint() != ts.fingerprint()


class _NotAWeight:
    pass


def test_torch_adapter_refuses_pickled_objects(tmp_path):
    path = str(tmp_path / "evil.pt")
    torch.save({"obj": _NotAWeight()}, path)
    with pytest.raises(ModelError, match="weights_only"):
        load_model(f"torch:sertest.models.arch.wav2small:wav2small_card={path}")


# ----------------------------------------------------------------------------- HF adapter

def _tiny_config():
    cfg = teacher_config(hidden=32, layers=1, heads=2, intermediate=64,
                         conv_dim=(8, 8, 8, 8, 8, 8, 16))
    cfg.num_conv_pos_embeddings = 8
    cfg.num_conv_pos_embedding_groups = 4
    return cfg


def _direct_forward(encoder, head, x: np.ndarray) -> np.ndarray:
    """z-normalise, encode, mean over time, head — written out independently."""
    xt = torch.from_numpy(x).double()
    xt = (xt - xt.mean(1, keepdim=True)) / torch.sqrt(xt.var(1, unbiased=False, keepdim=True)
                                                      + 1e-7)
    with torch.inference_mode():
        h = encoder(xt.float()).last_hidden_state.mean(1)
        return head(h).double().numpy()


def test_hf_adapter_our_layout(tmp_path):
    torch.manual_seed(3)
    teacher = TeacherModel(_tiny_config()).eval()
    folder = str(tmp_path / "teacher")
    save_teacher(teacher, folder)
    x = _signals(9, 2, 8_000)
    model = load_model(folder)
    assert model.info().format == "hf"
    assert model.dimensions == ("arousal", "dominance", "valence")
    assert model.classes == ("anger", "happiness", "neutral", "sadness")
    got = model.predict_batch(x)
    dims = _direct_forward(teacher.wav2vec2, teacher.classifier, x)
    probs = torch.softmax(torch.from_numpy(
        _direct_forward(teacher.wav2vec2, teacher.categorical, x)), 1).numpy()
    np.testing.assert_allclose(got[:, :3], dims, atol=1e-5)
    np.testing.assert_allclose(got[:, 3:], probs, atol=1e-5)
    np.testing.assert_allclose(got[:, 3:].sum(1), 1.0, atol=1e-6)
    assert model.info().parameters == sum(p.numel() for p in teacher.parameters())


def test_hf_adapter_audeering_layout(tmp_path):
    """Wav2Vec2ForSpeechClassification-style: id2label in config, wav2vec2.* and
    classifier.* weights in pytorch_model.bin with old weight_g/weight_v names, no
    sertest_head.json; id2label order deliberately not canonical."""
    from transformers import Wav2Vec2Model
    torch.manual_seed(4)
    cfg = _tiny_config()
    encoder = Wav2Vec2Model(cfg).eval()
    head = RegressionHead(cfg.hidden_size, 3).eval()
    folder = tmp_path / "audeering"
    folder.mkdir()
    cfg.architectures = ["Wav2Vec2ForSpeechClassification"]
    cfg.id2label = {0: "valence", 1: "arousal", 2: "dominance"}
    cfg.label2id = {v: k for k, v in cfg.id2label.items()}
    cfg.save_pretrained(str(folder))
    state = {}
    for k, v in encoder.state_dict().items():
        k = k.replace("parametrizations.weight.original0", "weight_g")
        k = k.replace("parametrizations.weight.original1", "weight_v")
        state[f"wav2vec2.{k}"] = v
    state.update({f"classifier.{k}": v for k, v in head.state_dict().items()})
    torch.save(state, str(folder / "pytorch_model.bin"))
    x = _signals(10, 3, 6_400)
    model = load_model(str(folder))
    assert model.dimensions == ("arousal", "dominance", "valence") and model.classes == ()
    expected = _direct_forward(encoder, head, x)[:, [1, 2, 0]]
    np.testing.assert_allclose(model.predict_batch(x), expected, atol=1e-5)


def test_hub_ids_and_missing_folders_are_refused():
    from sertest.models.hf import load_hf
    with pytest.raises(UsageError, match="local folder"):
        load_model("audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim")
    with pytest.raises(UsageError, match="local folder"):
        load_hf("audeering/wav2small")


# ----------------------------------------------------------------------------- callable adapter

USER_MODULE = textwrap.dedent('''
    import numpy as np

    def adv_array(signals, sampling_rate):
        rms = np.sqrt(np.mean(signals.astype(np.float64) ** 2, axis=1))
        return np.stack([rms, 2 * rms, signals.shape[1] / sampling_rate + 0 * rms], axis=1)

    def adv_dict(signals, sampling_rate):
        a = adv_array(signals, sampling_rate)
        return {"valence": a[:, 2], "arousal": a[:, 0], "dominance": a[:, 1]}

    def labelled(signals, sampling_rate):
        return adv_array(signals, sampling_rate)
    labelled.labels = ["arousal", "dominance", "valence"]

    def wrong_shape(signals, sampling_rate):
        return np.zeros((len(signals), 5))
''')


def test_callable_adapter_array_and_dict(tmp_path, monkeypatch):
    (tmp_path / "sertest_user_models.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    x = _signals(12, 2, 8_000)
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=1))
    expected = np.stack([rms, 2 * rms, np.full(2, 0.5)], axis=1)

    arr = load_model("callable:sertest_user_models:adv_array", labels="arousal,dominance,valence")
    np.testing.assert_allclose(arr.predict_batch(x), expected)
    attr = load_model("callable:sertest_user_models:labelled")
    np.testing.assert_allclose(attr.predict_batch(x), expected)
    dct = load_model("callable:sertest_user_models:adv_dict")
    assert dct.dimensions == ("arousal", "dominance", "valence")
    np.testing.assert_allclose(dct.predict_batch(x), expected)
    by_path = load_model(f"callable:{tmp_path / 'sertest_user_models.py'}:adv_dict")
    np.testing.assert_allclose(by_path.predict_batch(x), expected)
    assert dct.info().format == "callable"

    with pytest.raises(UsageError, match="labels"):
        load_model("callable:sertest_user_models:adv_array")
    bad = load_model("callable:sertest_user_models:wrong_shape",
                     labels="arousal,dominance,valence")
    with pytest.raises(ModelError, match="shape"):
        bad.predict_batch(x)


# ----------------------------------------------------------------------------- artefacts

ARTEFACTS = ["wav2small.onnx", "wav2small-int8.onnx", "mobilenetv4.onnx", "mobilenetv3.onnx",
             "teacher"]


@pytest.mark.parametrize("name", ARTEFACTS)
def test_committed_artefact_loads_and_predicts(name):
    path = os.path.join(MODELS, name)
    if not os.path.exists(path):
        pytest.skip(f"{path} not built (run examples/distill/distill.py all)")
    model = load_model(path)
    assert model.dimensions == ("arousal", "dominance", "valence")
    one_second = _signals(1, 1, 16_000)[0]
    y = model.predict([one_second, 0.5 * one_second])
    assert y.shape == (2, len(model.outputs)) and np.all(np.isfinite(y))
    info = model.info()
    assert info.file_size and info.file_size > 0 and info.parameters
    if name == "wav2small-int8.onnx":
        assert os.path.getsize(path) <= 150 * 1024
    if name.startswith("wav2small"):
        # BatchNorm is folded at export, so count the torch model of the same recipe
        trainable, frozen = count_parameters(wav2small_paper())
        assert 50_000 <= trainable + frozen <= 100_000
        assert 0.5 * (trainable + frozen) < info.parameters < 1.5 * (trainable + frozen)
