"""examples/adapters/: each recipe audits through sertest; refusals name the form that works."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sertest import audit  # noqa: E402
from sertest.cli import main  # noqa: E402
from sertest.data import load_corpus  # noqa: E402
from sertest.errors import UsageError  # noqa: E402
from sertest.models import load_model  # noqa: E402

ADAPTERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples", "adapters")
CLASSES_SUITE = {"name": "classes", "bootstrap": {"n_boot": 50},
                 "tests": [{"test": "correctness_classification"}]}


@pytest.fixture(scope="module")
def small_corpus():
    """6 items of each emotion class from the bundled corpus (24 items)."""
    ds = load_corpus()
    ids = [i for c in ("anger", "happiness", "neutral", "sadness")
           for i in list(ds.table.index[ds.table["emotion"] == c])[:6]]
    return ds.subset(ids)


def _classification(res, model):
    [entry] = [t for t in res.doc["tests"] if t["test"] == "correctness_classification"
               and t["model"] == model]
    return entry


def test_speechbrain_style_recipe(small_corpus):
    spec = f"sb=callable:{ADAPTERS}/speechbrain_style.py:predict"
    model = load_model(spec)
    assert model.classes == ("neutral", "anger", "happiness", "sadness")
    x = np.random.default_rng(0).standard_normal((3, 16000)).astype("float32") * 0.1
    probs = model.predict_batch(x)
    assert probs.shape == (3, 4) and np.allclose(probs.sum(axis=1), 1.0)
    res = audit([spec], small_corpus, CLASSES_SUITE, cache=False, baselines=False)
    entry = _classification(res, "sb")
    assert entry["verdict"] not in ("skipped", "error"), entry
    [n] = [m["n"] for m in entry["measurements"] if m["metric"] == "uar"]
    assert 12 <= n <= 24         # the primary renditions of the 24 items (not their pairs)
    assert not res.doc["items"]["errors"] and "class_mismatch" not in res.doc["models"][0]


def test_funasr_style_recipe_through_the_cli(small_corpus, tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    table = small_corpus.table.reset_index()[["id", "file", "speaker", "emotion"]]
    table.to_csv(manifest, index=False)
    out = tmp_path / "out"
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: classes\nbootstrap: {n_boot: 50}\n"
                     "tests:\n  - test: correctness_classification\n")
    code = main(["run", "--model", f"e2v=callable:{ADAPTERS}/funasr_style.py:predict",
                 "--data", str(manifest), "--allow-outside-root", "--suite", str(suite),
                 "--no-cache", "--no-baselines", "--out", str(out), "--format", ""])
    assert code in (0, 1), capsys.readouterr().err
    doc = json.loads((out / "results.json").read_text())
    info = doc["models"][0]["info"]
    assert info["classes"] == ["anger", "disgust", "fear", "happiness", "neutral", "other",
                               "sadness", "surprise", "unknown"]
    entry = _classification(type("R", (), {"doc": doc}), "e2v")
    assert entry["verdict"] not in ("skipped", "error"), entry
    # the model's nine classes cover the data's four: nothing to map
    assert "class_mismatch" not in doc["models"][0]


def test_torch_factory_recipe(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("dimensional_factory",
                                                  f"{ADAPTERS}/dimensional_factory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    weights = tmp_path / "weights.pt"
    torch.save(module.build().state_dict(), weights)
    model_spec = f"mine=torch:{ADAPTERS}/dimensional_factory.py:build={weights}"
    ds = load_corpus()
    ds = ds.subset(list(ds.ids)[:20])
    res = audit([model_spec], ds, "smoke", cache=False, baselines=False)
    dims = {t["dimension"]: t["verdict"] for t in res.doc["tests"]
            if t["test"] == "correctness_regression"}
    assert set(dims) == {"arousal", "dominance", "valence"}
    assert "error" not in dims.values() and "skipped" not in dims.values()


# -- messages that lead somewhere -----------------------------------------------------------
def test_missing_module_shows_the_file_form(tmp_path):
    with pytest.raises(UsageError) as info:
        load_model("callable:my_ser_model:predict")
    msg = str(info.value)
    assert "no module named 'my_ser_model'" in msg
    assert "--model callable:path/to/my_ser_model.py:predict" in msg


def test_torch_factory_errors_name_torch(tmp_path):
    for spec in ("torch:my_nets:build=w.pt", f"torch:{tmp_path}/nets.py:build=w.pt",
                 "torch:nonsense"):
        with pytest.raises(UsageError) as info:
            load_model(spec)
        assert "--model torch:" in str(info.value) and "callable:" not in str(info.value), spec
    src = tmp_path / "nets.py"
    src.write_text("def build():\n    return 3\n")
    with pytest.raises(Exception) as info:
        load_model(f"torch:{src}:build")
    assert f"--model torch:{src}:build" in str(info.value)
    assert "not a torch.nn.Module" in str(info.value)
    with pytest.raises(UsageError, match="its functions and classes: build"):
        load_model(f"torch:{src}:factory")


def test_specs_without_a_kind_suggest_the_one_that_works(tmp_path):
    src = tmp_path / "model.py"
    src.write_text("def predict(signals, sampling_rate):\n    return {}\n")
    with pytest.raises(UsageError, match=rf"--model callable:{src}:function"):
        load_model(str(src))
    with pytest.raises(UsageError, match=r"prefix it: --model callable:mypkg\.ser:predict"):
        load_model("mypkg.ser:predict")
    folder = tmp_path / "weights"
    folder.mkdir()
    with pytest.raises(UsageError, match="callable:path/to/file.py:function"):
        load_model(str(folder))
