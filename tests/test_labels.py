"""Labels people have: declared label ranges, class-name maps, ``gender`` taken as ``sex``."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest import audit
from sertest.cli import main
from sertest.data import Dataset, load_dataset
from sertest.data.labels import parse_label_map, parse_label_range
from sertest.errors import DataError, UsageError

CLASSES_SUITE = {"name": "classes", "bootstrap": {"n_boot": 50},
                 "tests": [{"test": "correctness_classification"}]}


def _audio(root, n):
    """``n`` short 16 kHz WAV files a0.wav ... whose level grows with the index."""
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(8000) / 16000
    for i in range(n):
        x = (0.02 + 0.02 * i) * np.sin(2 * np.pi * (120 + 10 * i) * t)
        sf.write(root / f"a{i}.wav", x.astype("float32"), 16000)
    return [f"a{i}.wav" for i in range(n)]


def _manifest(root, columns, header: str = "", n=12):
    files = _audio(root, n)
    df = pd.DataFrame({"file": files, "speaker": [f"s{i % 3}" for i in range(n)],
                       **{k: (v * (n // len(v) + 1))[:n] for k, v in columns.items()}})
    path = root / "manifest.csv"
    path.write_text(header + df.to_csv(index=False))
    return path


MSP = {"arousal": [1.0, 2.5, 4.0, 5.5, 7.0, 3.0], "dominance": [0.1, 0.4, 0.9],
       "valence": [1.0, 3.0, 5.0]}


# -- parsing --------------------------------------------------------------------------------
def test_parse_label_range_forms():
    assert parse_label_range("1:7") == {"*": (1.0, 7.0)}
    assert parse_label_range("arousal=1:7, valence=1:5") == {"arousal": (1.0, 7.0),
                                                            "valence": (1.0, 5.0)}
    assert parse_label_range({"arousal": {"min": 1, "max": 7, "from": "x"}}) == {
        "arousal": (1.0, 7.0)}
    assert parse_label_range("-1:1") == {"*": (-1.0, 1.0)}
    assert parse_label_range(None) == {}


@pytest.mark.parametrize("text,needle", [
    ("7:1", "MAX must be a finite number above MIN"),
    ("1-7", "give MIN:MAX"),
    ("pleasure=1:7", "'pleasure' is not a dimension"),
    ("arousal=1:7,1:5", "'1:5' names no dimension"),
    ("a:b", "must be numbers"),
])
def test_bad_label_range_says_what_works(text, needle):
    with pytest.raises(UsageError) as info:
        parse_label_range(text)
    assert needle in str(info.value) and "--label-range" in str(info.value)
    assert "e.g. 1:7" in str(info.value)


def test_parse_label_map_text_and_files(tmp_path):
    assert parse_label_map("Angry=anger, happy=happiness") == {"angry": "anger",
                                                               "happy": "happiness"}
    (tmp_path / "m.yaml").write_text("angry: anger\nhappy: happiness\n")
    (tmp_path / "m.json").write_text(json.dumps({"sad": "sadness"}))
    assert parse_label_map(str(tmp_path / "m.yaml")) == {"angry": "anger", "happy": "happiness"}
    assert parse_label_map(str(tmp_path / "m.json")) == {"sad": "sadness"}
    with pytest.raises(UsageError, match="is not DATA=MODEL"):
        parse_label_map("angry")
    with pytest.raises(UsageError, match="no such file either"):
        parse_label_map(str(tmp_path / "missing.yaml"))
    with pytest.raises(UsageError, match="mapped twice"):
        parse_label_map("angry=anger,angry=happiness")


# -- label range ----------------------------------------------------------------------------
def test_labels_outside_unit_range_without_a_declared_range_are_an_error(tmp_path):
    path = _manifest(tmp_path / "d", MSP)
    with pytest.raises(DataError) as info:
        load_dataset(str(path))
    msg = str(info.value)
    assert str(path) in msg and "column 'arousal'" in msg
    assert "labels range from 1 to 7" in msg and "--label-range 1:7" in msg


def test_declared_range_maps_labels_to_unit_range(tmp_path):
    path = _manifest(tmp_path / "d", MSP)
    ds = load_dataset(str(path), label_range="arousal=1:7,valence=1:5")
    assert list(ds.table["arousal"][:6]) == pytest.approx([0, 0.25, 0.5, 0.75, 1, 1 / 3])
    assert list(ds.table["valence"][:3]) == pytest.approx([0, 0.5, 1])
    assert list(ds.table["dominance"][:3]) == pytest.approx([0.1, 0.4, 0.9])   # untouched
    info = ds.describe()["label_range"]
    assert info == {"arousal": {"min": 1.0, "max": 7.0, "from": "--label-range"},
                    "valence": {"min": 1.0, "max": 5.0, "from": "--label-range"}}


def test_label_outside_its_declared_range_names_item_and_column(tmp_path):
    path = _manifest(tmp_path / "d", MSP)
    with pytest.raises(DataError) as info:
        load_dataset(str(path), label_range="arousal=1:5,valence=1:5")
    msg = str(info.value)
    assert "item 'a3.wav', column 'arousal': 5.5 lies outside the declared range 1:5" in msg
    assert "--label-range arousal=1:7" in msg
    with pytest.raises(DataError, match="names 'arousal', but the data has no arousal"):
        load_dataset(str(_manifest(tmp_path / "e", {"valence": [0.1, 0.2]})),
                     label_range="arousal=1:7")


def test_manifest_declares_its_range_and_the_option_overrides_it(tmp_path):
    path = _manifest(tmp_path / "d", MSP, header="# sertest: label_range=arousal=1:7,valence=1:7\n")
    ds = load_dataset(str(path))
    assert ds.table["arousal"].max() == pytest.approx(1.0)
    assert ds.describe()["label_range"]["arousal"]["from"] == "manifest"
    assert ds.table["valence"].max() == pytest.approx(4 / 6)
    ds = load_dataset(str(path), label_range="valence=1:5")
    assert ds.table["valence"].max() == pytest.approx(1.0)
    assert ds.describe()["label_range"]["valence"]["from"] == "--label-range"
    assert ds.describe()["label_range"]["arousal"]["from"] == "manifest"


def test_directive_lines_keep_line_numbers_right(tmp_path):
    _audio(tmp_path, 2)
    path = tmp_path / "m.csv"
    path.write_text("# sertest: label_range=1:7\nfile,arousal\na0.wav,2\na1.wav,high\n")
    with pytest.raises(DataError, match=r"line 4, column 'arousal': 'high' is not a number"):
        load_dataset(str(path))
    path.write_text("# sertest: label_scale=1:7\nfile,arousal\na0.wav,2\n")
    with pytest.raises(DataError, match=r"line 1: expected '# sertest: KEY=VALUE'"):
        load_dataset(str(path))


def test_cli_records_the_range_in_results_and_run_header(tmp_path, capsys):
    path = _manifest(tmp_path / "d", MSP)
    out = tmp_path / "out"
    code = main(["run", "--model", "random:gaussian", "--data", str(path), "--suite", "smoke",
                 "--no-cache", "--out", str(out), "--format", "", "--no-baselines"])
    assert code == 2
    assert "--label-range 1:7" in capsys.readouterr().err
    code = main(["run", "--model", "random:gaussian", "--data", str(path), "--suite", "smoke",
                 "--no-cache", "--out", str(out), "--format", "", "--no-baselines",
                 "--label-range", "arousal=1:7,valence=1:5"])
    assert code in (0, 1)
    printed = capsys.readouterr().out
    assert "arousal labels mapped from 1:7 to [0, 1] (--label-range)" in printed
    doc = json.loads((out / "results.json").read_text())
    assert doc["dataset"]["label_range"]["valence"] == {"min": 1.0, "max": 5.0,
                                                        "from": "--label-range"}
    # the range brought MAE onto the [0, 1] scale: the 1-7 labels gave MAEs of several units
    maes = [m["value"] for t in doc["tests"] if t["test"] == "correctness_regression"
            for m in t["measurements"] if m["metric"] == "mae"]
    assert maes and max(maes) < 1.0


def test_report_gallery_reloads_data_with_the_recorded_range(tmp_path):
    from sertest.report.gallery import AuditItems

    path = _manifest(tmp_path / "d", MSP)
    ds = load_dataset(str(path), label_range="arousal=1:7,valence=1:5")
    items = AuditItems({"dataset": ds.describe()})
    assert items.table() is not None, items.error


# -- label map ------------------------------------------------------------------------------
EMO = {"emotion": ["angry", "happy", "neutral", "sad"]}


def test_label_map_renames_classes_and_names_the_unmapped(tmp_path, caplog):
    path = _manifest(tmp_path / "d", EMO)
    with caplog.at_level(logging.WARNING, logger="sertest"):
        ds = load_dataset(str(path), label_map="angry=anger,happy=happiness,excited=happiness")
    assert sorted(set(ds.table["emotion"])) == ["anger", "happiness", "neutral", "sad"]
    d = ds.describe()
    assert d["label_map"] == {"angry": "anger", "happy": "happiness", "excited": "happiness"}
    assert any("not mapped, kept as they are: ['neutral', 'sad']" in n for n in d["notes"])
    assert any("not in the data (check the spelling): ['excited']" in n for n in d["notes"])
    assert "['neutral', 'sad']" in caplog.text


def test_label_map_from_manifest_line_and_file(tmp_path):
    path = _manifest(tmp_path / "d", EMO,
                     header="# sertest: label_map=angry=anger,happy=happiness,sad=sadness\n")
    ds = load_dataset(str(path))
    assert sorted(set(ds.table["emotion"])) == ["anger", "happiness", "neutral", "sadness"]
    mapfile = tmp_path / "map.yaml"
    mapfile.write_text("angry: ANG\n")
    ds = load_dataset(str(path), label_map=str(mapfile))      # the option replaces the line
    assert sorted(set(ds.table["emotion"])) == ["ANG", "happy", "neutral", "sad"]


def _class_model(tmp_path):
    """A real callable: class scores from the signal's RMS level (louder -> anger)."""
    src = tmp_path / "levels.py"
    src.write_text(
        "import numpy as np\n"
        "def predict(signals, sampling_rate):\n"
        "    rms = np.sqrt((signals.astype('float64') ** 2).mean(axis=1))\n"
        "    centres = {'sadness': 0.03, 'neutral': 0.07, 'happiness': 0.11, 'anger': 0.16}\n"
        "    return {c: -np.abs(rms - m) for c, m in centres.items()}\n")
    return f"levels=callable:{src}:predict"


def test_model_classes_matching_none_of_the_data_are_said_and_mapped(tmp_path, caplog):
    model = _class_model(tmp_path)
    path = _manifest(tmp_path / "d", {"emotion": ["angry", "happy", "sad"]})
    with caplog.at_level(logging.WARNING, logger="sertest"):
        res = audit([model], str(path), CLASSES_SUITE, cache=False, baselines=False)
    assert res.doc["models"][0]["class_mismatch"] == {
        "model_classes": ["sadness", "neutral", "happiness", "anger"],
        "data_classes": ["angry", "happy", "sad"], "shared": []}
    assert "['angry', 'happy', 'sad'] are not among its classes" in caplog.text
    assert "cannot be scored" in caplog.text and "--label-map angry=" in caplog.text
    [cls] = [t for t in res.doc["tests"] if t["test"] == "correctness_classification"]
    # a missing mapping is an error of the entry, never a skip that the model outscores
    assert cls["verdict"] == "error"
    assert "--label-map" in cls["error"] and "['angry', 'happy', 'sad']" in cls["error"]


def test_partly_shared_classes_are_named_and_a_map_scores_them_all(tmp_path, caplog):
    path = _manifest(tmp_path / "d", EMO)
    model = _class_model(tmp_path)
    with caplog.at_level(logging.WARNING, logger="sertest"):
        res = audit([model], str(path), CLASSES_SUITE, cache=False, baselines=False)
    assert res.doc["models"][0]["class_mismatch"]["shared"] == ["neutral"]
    assert "only the items of ['neutral'] can be scored" in caplog.text
    res = audit([model], str(path), CLASSES_SUITE, cache=False, baselines=False,
                label_map="angry=anger,happy=happiness,sad=sadness")
    assert "class_mismatch" not in res.doc["models"][0]
    [cls] = [t for t in res.doc["tests"] if t["test"] == "correctness_classification"]
    assert cls["verdict"] not in ("skipped", "error")
    uar = [m for m in cls["measurements"] if m["metric"] == "uar"][0]
    assert uar["n"] == 12


def test_label_map_applies_to_a_dataset_built_in_code(tmp_path):
    ds = load_dataset(str(_manifest(tmp_path / "d", EMO)))
    mapped = ds.relabelled(label_map="angry=anger")
    assert "anger" in set(mapped.table["emotion"]) and "anger" not in set(ds.table["emotion"])
    res = audit([_class_model(tmp_path)], ds, CLASSES_SUITE, cache=False, baselines=False,
                label_map="angry=anger,happy=happiness,sad=sadness")
    assert res.doc["dataset"]["label_map"]["sad"] == "sadness"


# -- gender as sex --------------------------------------------------------------------------
def test_gender_column_is_taken_as_sex_with_values_normalised(tmp_path, caplog):
    path = _manifest(tmp_path / "d", {"gender": ["F", "m", "Woman", "MAN", "w", "Diverse"],
                                      "arousal": [0.2, 0.8]})
    with caplog.at_level(logging.WARNING, logger="sertest"):
        ds = load_dataset(str(path))
    assert "gender" not in ds.table.columns
    assert list(ds.table["sex"][:6]) == ["female", "male", "female", "male", "female", "diverse"]
    assert any("other than female/male kept as they are: ['diverse']" in n
               for n in ds.describe()["notes"])
    assert ds.describe()["sex"] == {"diverse": 2, "female": 6, "male": 4}


def test_sex_wins_over_gender_with_a_note(tmp_path):
    path = _manifest(tmp_path / "d", {"sex": ["f", "m"], "gender": ["man", "woman"]})
    ds = load_dataset(str(path))
    assert list(ds.table["sex"][:2]) == ["female", "male"]
    assert list(ds.table["gender"][:2]) == ["man", "woman"]
    assert any("both 'sex' and 'gender'" in n for n in ds.describe()["notes"])


def test_gender_in_a_data_folder_and_in_fairness(tmp_path):
    root = tmp_path / "folder"
    _manifest(root, {"gender": ["female", "male"], "arousal": [0.1, 0.5, 0.9]})
    ds = load_dataset(str(root))           # a folder with manifest.csv
    assert set(ds.table["sex"]) == {"female", "male"}
    res = audit(["random:gaussian"], str(root), {"name": "sex", "bootstrap": {"n_boot": 20},
                                                 "tests": ["fairness_sex"]},
                cache=False, baselines=False)
    groups = {m["group"] for t in res.doc["tests"] if t["test"] == "fairness_sex"
              for m in t["measurements"]}
    assert {"female", "male"} & groups, res.doc["tests"]


def test_dataset_built_in_code_keeps_working(tmp_path):
    _audio(tmp_path, 3)
    table = pd.DataFrame({"file": [str(tmp_path / f"a{i}.wav") for i in range(3)],
                          "start": np.nan, "end": np.nan, "arousal": [0.1, 0.5, 0.9]},
                         index=pd.Index(["x", "y", "z"], name="id"))
    ds = Dataset(table, str(tmp_path))
    assert ds.describe()["labels"] == ["arousal"] and "label_range" not in ds.describe()
    scaled = Dataset(table.assign(arousal=[1.0, 4.0, 7.0]), str(tmp_path)).relabelled(
        label_range="1:7")
    assert list(scaled.table["arousal"]) == pytest.approx([0, 0.5, 1])
