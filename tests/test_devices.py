"""Devices (``--device``), length-bucketed batches and the ``batched`` executors, on the CPU.

The GPU path itself is exercised by ``benchmarks/gpu_bench.py`` where a GPU exists; here
every test runs on a CPU-only machine: ``cpu`` changes nothing, ``auto`` falls back with one
log line, ``cuda`` is refused saying what would work, and batches built from several items
(equal lengths, or padded with an attention mask) give the one-at-a-time outputs within
1e-5 (float32 on the CPU).
"""

from __future__ import annotations

import doctest
import json
import logging
import os

import numpy as np
import pytest

from sertest.engine import batching
from sertest.errors import UsageError
from sertest.models import device as device_mod
from sertest.models import load_model
from tests.helpers import make_onnx_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

#: padded (masked) or differently stacked batches vs one at a time, float32 on the CPU
TOLERANCE = 1e-5
NO_GPU = not torch.cuda.is_available()
_CONV = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
             conv_dim=(8, 8), conv_kernel=(10, 8), conv_stride=(5, 4),
             num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
             classifier_proj_size=8)


def save_wav2vec2(folder, *, norm: str = "layer", seed: int = 0) -> str:
    """A tiny random wav2vec2 regression model (arousal, dominance, valence) with its
    feature extractor. ``norm="layer"``: the large-model layout, which masks padding;
    ``"group"``: the base-model layout, which cannot."""
    folder = os.fspath(folder)
    torch.manual_seed(seed)
    names = ("arousal", "dominance", "valence")
    config = transformers.Wav2Vec2Config(
        **_CONV, feat_extract_norm=norm, do_stable_layer_norm=norm == "layer",
        num_labels=3, id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
        problem_type="regression")
    return _save(folder, config, mask=norm == "layer")


def _save(folder, config, mask: bool = True) -> str:
    model = transformers.AutoModelForAudioClassification.from_config(config).eval()
    with torch.no_grad():   # spread the outputs (a random head is otherwise near-constant)
        for name, p in model.named_parameters():
            if name.startswith(("classifier.", "projector.")):
                p.mul_(30.0)
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(
        do_normalize=True, return_attention_mask=mask).save_pretrained(folder)
    return folder


_REGRESSION = dict(num_labels=3, id2label={0: "arousal", 1: "dominance", 2: "valence"},
                   label2id={"arousal": 0, "dominance": 1, "valence": 2},
                   problem_type="regression")


def _config(kind: str):
    t = transformers
    layer = dict(feat_extract_norm="layer", do_stable_layer_norm=True)
    return {
        "hubert": lambda: t.HubertConfig(**_CONV, **layer, **_REGRESSION),
        "wavlm": lambda: t.WavLMConfig(**_CONV, **layer, num_buckets=8, max_bucket_distance=20,
                                       **_REGRESSION),
        "unispeech-sat": lambda: t.UniSpeechSatConfig(**_CONV, **layer, **_REGRESSION),
        "sew": lambda: t.SEWConfig(**_CONV, feat_extract_norm="layer", **_REGRESSION),
        "data2vec-audio": lambda: t.Data2VecAudioConfig(
            **{**_CONV, "num_conv_pos_embeddings": 2}, conv_pos_kernel_size=3,
            num_conv_pos_embeddings_layers=1, **_REGRESSION),
        "wav2vec2-conformer": lambda: t.Wav2Vec2ConformerConfig(
            **_CONV, feat_extract_norm="layer", **_REGRESSION),
    }[kind]()


def _signals(lengths, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(lengths):
        t = np.arange(n) / 16000
        out.append(((0.05 + 0.05 * i) * np.sin(2 * np.pi * (110 + 30 * i) * t)
                    + 0.01 * rng.standard_normal(n)).astype(np.float32))
    return out


class _Level(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.labels = ["arousal", "dominance", "valence"]

    def forward(self, x):
        rms = x.pow(2).mean(dim=1, keepdim=True).sqrt()
        return torch.cat([rms * 3, rms * 2, rms], dim=1)


def _torchscript(path) -> str:
    torch.jit.save(torch.jit.script(_Level()), os.fspath(path))
    return os.fspath(path)


# -- --device -------------------------------------------------------------------------------

def test_pure_functions_run_their_examples():
    for module in (device_mod, batching):
        failed, tried = doctest.testmod(module)
        assert tried and not failed, module.__name__


@pytest.mark.parametrize("bad", ["gpu", "cpu:1", "auto:0", "cuda:x", "cuda:-1"])
def test_unknown_device_names_the_choices(bad):
    with pytest.raises(UsageError, match=r"use cpu, auto, cuda or cuda:N"):
        device_mod.parse_device(bad)


@pytest.mark.skipif(not NO_GPU, reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_refused_saying_what_works(tmp_path):
    onnx_path = make_onnx_model(os.fspath(tmp_path / "m.onnx"))
    hf = save_wav2vec2(tmp_path / "hf")
    script = _torchscript(tmp_path / "m.pt")
    for spec, runtime in ((onnx_path, "onnxruntime"), (hf, "torch"), (script, "torch")):
        with pytest.raises(UsageError) as err:
            load_model(spec, device="cuda:0")
        text = str(err.value)
        assert runtime in text and "--device cpu" in text and "--device auto" in text
    with pytest.raises(UsageError, match="install onnxruntime-gpu"):
        load_model(onnx_path, device="cuda")
    with pytest.raises(UsageError, match="random models run on the CPU only"):
        load_model("random:gaussian", device="cuda")


@pytest.mark.skipif(not NO_GPU, reason="this machine has a CUDA GPU")
def test_auto_falls_back_to_the_cpu_with_one_log_line(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(device_mod, "_LOGGED", set())
    onnx_path = make_onnx_model(os.fspath(tmp_path / "m.onnx"))
    hf = save_wav2vec2(tmp_path / "hf")
    with caplog.at_level(logging.WARNING, logger="sertest"):
        models = [load_model(onnx_path, device="auto"), load_model(onnx_path, device="auto"),
                  load_model(hf, device="auto"), load_model(hf, device="auto"),
                  load_model("random:constant", device="auto")]
    assert [m.device for m in models] == ["cpu"] * 5
    lines = [r.getMessage() for r in caplog.records if "--device auto" in r.getMessage()]
    assert len(lines) == 2, lines               # one per runtime (ONNX, torch), not per model
    assert any("ONNX models run on the CPU" in x for x in lines)
    assert any("torch models run on the CPU" in x for x in lines)


def test_cpu_and_auto_without_gpu_predict_exactly_as_before(tmp_path):
    hf = save_wav2vec2(tmp_path / "hf")
    onnx_path = make_onnx_model(os.fspath(tmp_path / "m.onnx"))
    sigs = _signals([8000, 8000, 9000])
    for spec in (hf, onnx_path, _torchscript(tmp_path / "m.pt")):
        plain = load_model(spec).predict(sigs)
        on_cpu = load_model(spec, device="cpu").predict(sigs)
        assert np.array_equal(plain, on_cpu)
        if NO_GPU:
            assert np.array_equal(plain, load_model(spec, device="auto").predict(sigs))


def test_the_cache_key_does_not_name_the_device(tmp_path):
    """Predictions on a device equal the CPU's within float32 rounding, so they share
    the cache (see sertest/models/device.py): the fingerprint is the same."""
    hf = save_wav2vec2(tmp_path / "hf")
    assert load_model(hf).fingerprint() == load_model(hf, device="auto").fingerprint()


# -- length buckets -------------------------------------------------------------------------

def test_buckets_cover_every_signal_once_within_their_bounds():
    rng = np.random.default_rng(3)
    for trial in range(200):
        lengths = rng.integers(1, 400, size=rng.integers(0, 60)).tolist()
        if trial % 3 == 0 and lengths:
            lengths = [lengths[0]] * len(lengths)   # many equal lengths
        cap, samples = int(rng.integers(1, 9)), int(rng.integers(50, 3000))
        spread = float(rng.choice([0.0, 0.1, 0.5]))
        buckets = batching.length_buckets(lengths, max_signals=cap, max_samples=samples,
                                          spread=spread)
        assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
        for b in buckets:
            sizes = [lengths[i] for i in b]
            assert len(b) <= cap
            assert len(b) == 1 or max(sizes) * len(b) <= samples
            assert max(sizes) <= min(sizes) * (1 + spread)
            if spread == 0:
                assert len(set(sizes)) == 1
        assert buckets == batching.length_buckets(lengths, max_signals=cap,
                                                  max_samples=samples, spread=spread)


# -- padding with an attention mask ---------------------------------------------------------

def test_masked_padding_gives_one_at_a_time_outputs(tmp_path):
    model = load_model(save_wav2vec2(tmp_path / "hf", norm="layer"))
    assert model.pads_with_mask
    lengths = [8000, 8400, 8800, 9600, 10000]        # within the default spread of 25 %
    sigs = _signals(lengths)
    alone = np.vstack([model.predict([s]) for s in sigs])
    padded = model.predict_padded(sigs)
    assert padded.shape == (5, 3) and padded.dtype == np.float64
    assert np.max(np.abs(padded - alone)) <= TOLERANCE
    assert np.std(alone[:, 0]) > 1000 * TOLERANCE     # outputs differ between the signals


@pytest.mark.parametrize("kind", ["hubert", "wavlm", "unispeech-sat", "sew", "data2vec-audio",
                                  "wav2vec2-conformer"])
def test_only_model_types_shown_to_mask_padding_are_padded(tmp_path, kind, monkeypatch):
    """The listed types give one-at-a-time outputs under masked padding; the others leak
    padding into their outputs (which is why they are batched at equal lengths only)."""
    from sertest.models import hf_auto

    torch.manual_seed(0)
    model = load_model(_save(os.fspath(tmp_path / kind), _config(kind)))
    sigs = _signals([8000, 8400, 8800, 9600, 10000])
    alone = np.vstack([model.predict([s]) for s in sigs])
    assert np.std(alone[:, 0]) > 1000 * TOLERANCE
    masked = kind in hf_auto.MASKED_PADDING
    assert model.pads_with_mask == masked
    if not masked:  # what padding would do to it
        monkeypatch.setattr(hf_auto, "MASKED_PADDING", (kind,))
    error = np.max(np.abs(model.predict_padded(sigs) - alone))
    assert error <= TOLERANCE if masked else error > 100 * TOLERANCE


def test_padding_without_a_mask_would_change_outputs(tmp_path):
    """Why a group-norm model is batched at equal lengths only: padding shifts its
    outputs far beyond the tolerance (the feature encoder normalises over time)."""
    model = load_model(save_wav2vec2(tmp_path / "hf", norm="group"))
    assert not model.pads_with_mask
    with pytest.raises(NotImplementedError, match="cannot mask padding"):
        model.predict_padded(_signals([8000, 9000]))
    short = _signals([8000])[0]
    padded = np.concatenate([short, np.zeros(2000, np.float32)])
    assert np.max(np.abs(model.predict([short]) - model.predict([padded]))) > 100 * TOLERANCE


# -- the batched executors ------------------------------------------------------------------

#: clean audio of every item and a few conditions on 10 items: small, and enough lengths
SUITE = {"name": "devices", "tests": [
    {"test": "correctness_regression"},
    {"test": "robustness_small_changes", "params": {"max_items": 10}}]}


def _predictions(tiny_data, specs, executor, jobs=2):
    from sertest.engine.execute import execute
    from sertest.engine.plan import plan_audit

    plan = plan_audit(specs, str(tiny_data), SUITE, seed=0, baselines=True)
    store, errors, stats = execute(plan.dataset, plan.models, plan.conditions, plan.needed,
                                   seed=0, cache=None, jobs=jobs, progress=False,
                                   executor=executor)
    rows = {key: {item: row.to_numpy() for item, row in store.frame(*key).iterrows()}
            for key in store.keys()}
    return rows, errors, stats


def _compare(a, b):
    assert a.keys() == b.keys()
    worst = 0.0
    for key in a:
        assert a[key].keys() == b[key].keys(), key
        for item in a[key]:
            worst = max(worst, float(np.max(np.abs(a[key][item] - b[key][item]))))
    return worst


@pytest.mark.parametrize("executor", ["batched", "batched-processes"])
def test_batched_executor_matches_local_within_tolerance(tiny_data, tmp_path, executor):
    onnx_path = make_onnx_model(os.fspath(tmp_path / "m.onnx"))
    hf = save_wav2vec2(tmp_path / "hf", norm="layer")
    group = save_wav2vec2(tmp_path / "hfg", norm="group", seed=1)
    specs = [f"w2v={hf}", f"w2vg={group}", f"onnx={onnx_path}"]
    local, local_err, _ = _predictions(tiny_data, specs, "local")
    batched, batched_err, stats = _predictions(tiny_data, specs, executor)
    assert [e.to_dict() for e in local_err] == [e.to_dict() for e in batched_err]
    assert sum(len(v) for v in local.values()) > 100
    assert _compare(local, batched) <= TOLERANCE
    # random baselines draw per item and condition: exactly the same
    for key in local:
        if key[0].startswith("random"):
            for item in local[key]:
                assert np.array_equal(local[key][item], batched[key][item])
    assert stats.audio_seconds["w2v"] > 0 and stats.model_seconds["w2v"] > 0


def test_batched_calls_pool_several_items(tiny_data, tmp_path, monkeypatch):
    """The masked model's calls hold signals of several items (fewer, larger calls)."""
    from sertest.models.hf_auto import AutoAudioModel

    calls = []
    real = AutoAudioModel.predict_padded

    def counting(self, signals):
        calls.append(len(signals))
        return real(self, signals)

    monkeypatch.setattr(AutoAudioModel, "predict_padded", counting)
    hf = save_wav2vec2(tmp_path / "hf", norm="layer")
    _predictions(tiny_data, [f"w2v={hf}"], "batched")
    assert calls and max(calls) > 1


def test_a_failing_signal_costs_only_its_own_prediction(tiny_data, tmp_path):
    """A bucket whose call fails is retried per unit and one by one."""
    here = os.path.dirname(__file__)
    spec = f"bad=callable:{os.path.join(here, 'faulty_models.py')}:raises_on_long"
    local, local_err, _ = _predictions(tiny_data, [spec], "local")
    batched, batched_err, _ = _predictions(tiny_data, [spec], "batched")
    assert local_err and [e.to_dict() for e in local_err] == [e.to_dict() for e in batched_err]
    assert _compare(local, batched) == 0.0


# -- the command line -------------------------------------------------------------------------

@pytest.mark.skipif(not NO_GPU, reason="this machine has a CUDA GPU")
def test_cli_cuda_without_gpu_is_a_usage_error(tiny_data, tmp_path, capsys):
    from sertest.cli import main

    onnx_path = make_onnx_model(os.fspath(tmp_path / "m.onnx"))
    code = main(["run", "--model", onnx_path, "--data", str(tiny_data), "--device", "cuda",
                 "--out", str(tmp_path / "out"), "--no-progress", "--no-profile"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "--device cpu" in err


def test_cli_device_auto_without_gpu_audits_as_cpu(tiny_data, tmp_path):
    from sertest.cli import main

    onnx_path = make_onnx_model(os.fspath(tmp_path / "m.onnx"))
    docs = {}
    for device in ("cpu", "auto"):
        out = tmp_path / device
        assert main(["run", "--model", onnx_path, "--data", str(tiny_data), "--device", device,
                     "--out", str(out), "--no-progress", "--no-profile", "--no-cache",
                     "--format", "markdown", "--n-boot", "50"]) in (0, 1)
        docs[device] = json.loads((out / "results.json").read_text())
    if NO_GPU:
        strip = lambda d: [(t["test"], t.get("model"), t.get("dimension"), t["verdict"],  # noqa
                            [m.get("value") for m in t["measurements"]]) for t in d["tests"]]
        assert strip(docs["cpu"]) == strip(docs["auto"])


def test_long_items_run_alone_with_memory_bounded_in_samples(tiny_data, tmp_path,
                                                            monkeypatch):
    """An item whose signals exceed UNIT_SAMPLES leaves the windows and runs condition by
    condition (run_unit), as under ``local``; the outcomes are the same."""
    from sertest.engine import units
    from sertest.engine.batched_executor import BatchedExecutor

    monkeypatch.setattr(units, "UNIT_SAMPLES", 200_000)   # items over ~1 s x conditions
    hf = save_wav2vec2(tmp_path / "hf", norm="layer")
    specs = [f"w2v={hf}"]
    local, local_err, _ = _predictions(tiny_data, specs, "local")
    seen = []
    real = BatchedExecutor._windows
    monkeypatch.setattr(BatchedExecutor, "_windows",
                        lambda self, u: seen.extend(real(self, u)) or seen)
    batched, batched_err, _ = _predictions(tiny_data, specs, "batched")
    assert any(long for long, _ in seen) and any(not long for long, _ in seen)
    assert [e.to_dict() for e in local_err] == [e.to_dict() for e in batched_err]
    assert _compare(local, batched) <= TOLERANCE
