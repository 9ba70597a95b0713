"""Any transformers audio-classification folder: tiny random models the tests save themselves.

Each architecture is built from a config with hidden size 16 and one layer, saved with
``save_pretrained`` next to its feature extractor, and loaded back through ``--model FOLDER``.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sertest.errors import ModelError, UsageError  # noqa: E402
from sertest.models import load_model  # noqa: E402

CLASSES = ("anger", "happiness", "neutral", "sadness")
_CONV = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
             conv_dim=(8, 8), conv_kernel=(10, 8), conv_stride=(5, 4),
             num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
             classifier_proj_size=8)


def _labels(names):
    return dict(num_labels=len(names), id2label=dict(enumerate(names)),
                label2id={n: i for i, n in enumerate(names)})


def tiny_config(kind: str, names=CLASSES, **extra):
    """A config of ~4-7 k parameters for ``kind``."""
    t = transformers
    kw = {**_labels(names), **extra}
    if kind == "wav2vec2":
        return t.Wav2Vec2Config(**_CONV, **kw)
    if kind == "hubert":
        return t.HubertConfig(**_CONV, **kw)
    if kind == "wavlm":
        return t.WavLMConfig(**_CONV, num_buckets=8, max_bucket_distance=20, **kw)
    if kind == "data2vec-audio":
        return t.Data2VecAudioConfig(**{**_CONV, "num_conv_pos_embeddings": 2},
                                     conv_pos_kernel_size=3, num_conv_pos_embeddings_layers=1,
                                     **kw)
    if kind == "whisper":
        # 1 s windows: 100 mel frames of 10 ms, halved by the encoder's second convolution
        return t.WhisperConfig(d_model=16, encoder_layers=1, encoder_attention_heads=2,
                               decoder_layers=1, decoder_attention_heads=2, encoder_ffn_dim=32,
                               decoder_ffn_dim=32, num_mel_bins=16, max_source_positions=50,
                               max_target_positions=8, vocab_size=16, classifier_proj_size=8,
                               pad_token_id=0, bos_token_id=1, eos_token_id=2,
                               decoder_start_token_id=1, **kw)
    if kind == "ast":
        return t.ASTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, num_mel_bins=16, max_length=64, **kw)
    raise ValueError(kind)


def tiny_feature_extractor(kind: str, **extra):
    t = transformers
    if kind == "whisper":
        return t.WhisperFeatureExtractor(feature_size=16, chunk_length=1, sampling_rate=16000,
                                         hop_length=160, **extra)
    if kind == "ast":
        return t.ASTFeatureExtractor(num_mel_bins=16, max_length=64, **extra)
    return t.Wav2Vec2FeatureExtractor(**{"do_normalize": True, "return_attention_mask": True,
                                         **extra})


def save_tiny(folder, kind: str = "wav2vec2", names=CLASSES, seed: int = 0,
              fe_options: dict | None = None, **config_extra) -> str:
    """Build a random-initialised audio-classification model, save it with its feature
    extractor into ``folder`` and return the folder."""
    folder = os.fspath(folder)
    torch.manual_seed(seed)
    model = transformers.AutoModelForAudioClassification.from_config(
        tiny_config(kind, names, **config_extra)).eval()
    with torch.no_grad():          # spread the logits: a random head is otherwise near-uniform
        for pname, p in model.named_parameters():
            if pname.startswith("classifier."):
                p.mul_(8.0)
    model.save_pretrained(folder)
    tiny_feature_extractor(kind, **(fe_options or {})).save_pretrained(folder)
    return folder


def _signals(seed: int, n: int, samples: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000
    return np.stack([(0.05 + 0.1 * i) * np.sin(2 * np.pi * (120 + 40 * i) * t)
                     + 0.01 * rng.standard_normal(samples) for i in range(n)]).astype(np.float32)


KINDS = ["wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper", "ast"]
ARCH = {"wav2vec2": "Wav2Vec2ForSequenceClassification",
        "hubert": "HubertForSequenceClassification",
        "wavlm": "WavLMForSequenceClassification",
        "data2vec-audio": "Data2VecAudioForSequenceClassification",
        "whisper": "WhisperForAudioClassification", "ast": "ASTForAudioClassification"}


@pytest.mark.parametrize("kind", KINDS)
def test_audio_classification_folder_loads_and_predicts(tmp_path, kind):
    folder = save_tiny(tmp_path / kind, kind)
    model = load_model(folder)
    info = model.info()
    assert info.format == "hf" and info.extra["architecture"] == ARCH[kind]
    assert info.extra["layout"].startswith("transformers")
    assert model.dimensions == () and model.classes == CLASSES
    assert model.sampling_rate == 16000
    x = _signals(1, 3, 8000)
    got = model.predict(list(x))
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-9)   # softmax probabilities kept
    assert (got > 0).all()
    # the same computation written out: the folder's feature extractor, then the model
    fe = transformers.AutoFeatureExtractor.from_pretrained(folder)
    net = transformers.AutoModelForAudioClassification.from_pretrained(folder).eval()
    with torch.inference_mode():
        logits = net(**{k: v for k, v in fe(list(x), sampling_rate=16000,
                                                return_tensors="pt").items()
                        if k != "attention_mask" or kind != "whisper"}).logits
    np.testing.assert_allclose(got, torch.softmax(logits.double(), 1).numpy(), atol=1e-6)
    assert np.abs(np.log(got[0]) - np.log(got[2])).max() > 1e-6   # it hears the input
    assert info.parameters == sum(p.numel() for p in net.parameters())


def test_preprocessor_config_decides_normalisation_and_rate(tmp_path):
    """Same weights, two feature extractors: do_normalize and sampling_rate are read from
    preprocessor_config.json (the old adapter z-normalised every model at 16 kHz)."""
    norm = save_tiny(tmp_path / "norm", fe_options={"do_normalize": True})
    raw = save_tiny(tmp_path / "raw", fe_options={"do_normalize": False, "sampling_rate": 8000})
    m_norm, m_raw = load_model(norm), load_model(raw)
    assert (m_norm.sampling_rate, m_raw.sampling_rate) == (16000, 8000)
    assert m_raw.info().extra["feature_extractor"]["do_normalize"] is False
    x = _signals(2, 2, 6000) * 0.3 + 0.05                    # offset and small scale
    net = transformers.AutoModelForAudioClassification.from_pretrained(norm).eval()
    z = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-7)
    with torch.inference_mode():
        p_norm = torch.softmax(net(torch.from_numpy(z)).logits.double(), 1).numpy()
        p_raw = torch.softmax(net(torch.from_numpy(x)).logits.double(), 1).numpy()
    np.testing.assert_allclose(m_norm.predict(list(x)), p_norm, atol=1e-6)
    np.testing.assert_allclose(m_raw.predict(list(x)), p_raw, atol=1e-6)
    assert np.abs(p_norm - p_raw).max() > 1e-4                # 50x the tolerance above
    assert m_norm.fingerprint() != m_raw.fingerprint()


def test_regression_folder_gives_dimensions_case_insensitively(tmp_path):
    folder = save_tiny(tmp_path / "adv", "wavlm", names=("Valence", "AROUSAL", "dominance"),
                       problem_type="regression")
    model = load_model(folder)
    assert model.dimensions == ("arousal", "dominance", "valence") and model.classes == ()
    assert model.info().extra["head"] == "regression"
    x = _signals(3, 2, 7000)
    net = transformers.AutoModelForAudioClassification.from_pretrained(folder).eval()
    z = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-7)
    with torch.inference_mode():
        logits = net(torch.from_numpy(z)).logits.double().numpy()
    np.testing.assert_allclose(model.predict(list(x)), logits[:, [1, 2, 0]], atol=1e-5)


def test_regression_with_other_names_is_refused(tmp_path):
    folder = save_tiny(tmp_path / "pleasure", names=("pleasure", "arousal"),
                       problem_type="regression")
    with pytest.raises(UsageError, match=r"\['pleasure'\].*rename them in config.json id2label"):
        load_model(folder)


def test_generic_label_names_need_labels(tmp_path):
    folder = save_tiny(tmp_path / "generic", names=("LABEL_0", "LABEL_1", "LABEL_2"))
    with pytest.raises(UsageError, match="generic names.*--labels"):
        load_model(folder)
    model = load_model(folder, labels="anger,neutral,sadness")
    assert model.classes == ("anger", "neutral", "sadness")
    with pytest.raises(UsageError, match="2 names for 3 outputs"):
        load_model(folder, labels="anger,neutral")


def test_remote_code_is_never_run(tmp_path):
    folder = save_tiny(tmp_path / "remote")
    cfg = json.loads((tmp_path / "remote" / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForAudioClassification": "modeling_x.XForEmotion"}
    (tmp_path / "remote" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "remote" / "modeling_x.py").write_text("raise SystemExit('ran remote code')\n")
    with pytest.raises(UsageError, match="trust_remote_code stays off.*callable:"):
        load_model(folder)


def test_unsupported_model_type_says_what_works(tmp_path):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert",
                                                    "architectures": ["BertModel"]}))
    with pytest.raises(UsageError, match=r"unsupported model_type 'bert'.*wav2vec2.*callable:"):
        load_model(str(folder))


def test_encoder_without_head_is_refused(tmp_path):
    """A base encoder would get a freshly initialised (random) head: refused."""
    folder = tmp_path / "base"
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(tiny_config("wav2vec2")).save_pretrained(str(folder))
    tiny_feature_extractor("wav2vec2").save_pretrained(str(folder))
    with pytest.raises(ModelError, match="missing.*classifier.*random head"):
        load_model(str(folder))


def test_frame_level_and_ctc_heads_are_refused(tmp_path):
    folder = save_tiny(tmp_path / "ctc")
    cfg = json.loads((tmp_path / "ctc" / "config.json").read_text())
    cfg["architectures"] = ["Wav2Vec2ForCTC"]
    (tmp_path / "ctc" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UsageError, match="Wav2Vec2ForCTC gives no utterance-level"):
        load_model(folder)


def test_missing_preprocessor_config_is_refused(tmp_path):
    folder = save_tiny(tmp_path / "nofe")
    os.remove(os.path.join(folder, "preprocessor_config.json"))
    with pytest.raises(ModelError, match="no preprocessor_config.json.*save_pretrained"):
        load_model(folder)


def test_fingerprint_covers_weights_config_and_preprocessor_by_content(tmp_path):
    a = save_tiny(tmp_path / "a", seed=0)
    copy = shutil.copytree(a, tmp_path / "elsewhere" / "a")
    fp = load_model(a).fingerprint()
    assert load_model(os.fspath(copy)).fingerprint() == fp       # content, not path
    assert load_model(save_tiny(tmp_path / "b", seed=1)).fingerprint() != fp  # weights
    fe_path = tmp_path / "a" / "preprocessor_config.json"
    fe = json.loads(fe_path.read_text())
    fe["padding_value"] = 0.5
    fe_path.write_text(json.dumps(fe))
    assert load_model(a).fingerprint() != fp                     # preprocessor config
    files = load_model(a).info().extra["files"]
    assert files == ["config.json", "preprocessor_config.json", "model.safetensors"]


def test_teacher_and_audeering_layouts_still_dispatch(tmp_path):
    from sertest.models.arch.teacher import TeacherModel, save_teacher, teacher_config
    from sertest.models.hf import HFModel, detect_layout

    cfg = teacher_config(hidden=16, layers=1, heads=2, intermediate=32,
                         conv_dim=(8, 8, 8, 8, 8, 8, 8))
    cfg.num_conv_pos_embeddings, cfg.num_conv_pos_embedding_groups = 8, 2
    torch.manual_seed(0)
    folder = os.fspath(tmp_path / "teacher")
    save_teacher(TeacherModel(cfg).eval(), folder)
    assert detect_layout(folder) == "teacher"
    model = load_model(folder)
    assert isinstance(model, HFModel) and model.info().extra["layout"] == "teacher"
    os.remove(os.path.join(folder, "sertest_head.json"))       # audEERING: architectures only
    assert detect_layout(folder) == "teacher"
    assert load_model(folder).info().extra["layout"] == "audEERING"
    assert detect_layout(save_tiny(tmp_path / "auto")) == "auto"


def _corpus_manifest(tmp_path, per_emotion: int = 3):
    """A manifest of a few bundled-corpus items (both sexes, every emotion), copied."""
    import pandas as pd

    from sertest import load_dataset

    table = load_dataset(None).table
    table = table[table["recording"] == "headset"]
    rows = table.groupby(["emotion", "sex"], sort=True).head(per_emotion // 2 + 1)
    root = tmp_path / "data"
    root.mkdir()
    out = rows.reset_index()
    for i, f in enumerate(out["file"]):
        name = f"{i:02d}{os.path.splitext(f)[1]}"
        shutil.copy(f, root / name)
        out.loc[i, "file"] = name
    out = out.drop(columns=["start", "end"])
    out.to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def test_cli_run_audits_every_architecture_and_a_regression_model(tmp_path):
    """``sertest run --model FOLDER`` with the quick suite on a few corpus items."""
    from sertest.cli import main

    manifest = _corpus_manifest(tmp_path)
    specs = [f"{k}={save_tiny(tmp_path / 'models' / k, k)}" for k in KINDS]
    specs.append("adv=" + save_tiny(tmp_path / "models" / "adv", "wav2vec2",
                                    names=("arousal", "dominance", "valence"),
                                    problem_type="regression"))
    argv = ["run", "--data", str(manifest), "--suite", "quick", "--out", str(tmp_path / "out"),
            "--no-cache", "--no-profile", "--no-progress", "--format", "html", "-j", "2",
            "--no-baselines", "--n-boot", "50"]
    for s in specs:
        argv += ["--model", s]
    assert main(argv) in (0, 1)                  # random models may fail tests; never 2/3
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    models = {m["name"]: m for m in doc["models"]}
    for k in KINDS:
        assert models[k]["info"]["extra"]["architecture"] == ARCH[k]
        assert models[k]["fingerprint"].startswith("hf-auto/")
        judged = [t for t in doc["tests"] if t["model"] == k and t["check"] ==
                  "correctness_classification"]
        assert judged and all(t["verdict"] != "error" for t in judged), judged
    assert models["adv"]["info"]["dimensions"] == ["arousal", "dominance", "valence"]
    adv = [t for t in doc["tests"] if t["model"] == "adv"
           and t["check"] == "correctness_regression"]
    assert {t["dimension"] for t in adv} == {"arousal", "dominance", "valence"}
    assert all(t["verdict"] != "error" for t in adv)
    assert doc["items"]["errors"] == []
