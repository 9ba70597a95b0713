"""Reading an audformat database folder into a Dataset."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

audformat = pytest.importorskip("audformat")

from sertest import audit  # noqa: E402
from sertest.cli import main  # noqa: E402
from sertest.data import load_dataset  # noqa: E402
from sertest.errors import DataError  # noqa: E402


def _db(root):
    files = [f"audio/{i}.wav" for i in range(6)]
    (root / "audio").mkdir(parents=True)
    for i, f in enumerate(files):
        sf.write(root / f, (0.05 * (i + 1) * np.sin(np.arange(8000) / 5)).astype("float32"), 16000)
    db = audformat.Database("tiny-emo")
    db.schemes["arousal"] = audformat.Scheme("float", minimum=0, maximum=1)
    db["speaker"] = audformat.MiscTable(pd.Index(["s1", "s2"], name="speaker", dtype="string"))
    db.schemes["gender"] = audformat.Scheme("str", labels=["female", "male"])
    db["speaker"]["gender"] = audformat.Column(scheme_id="gender")
    db["speaker"]["gender"].set(["female", "male"])
    db.schemes["speaker"] = audformat.Scheme("str", labels="speaker")
    index = audformat.filewise_index(files)
    db["files"] = audformat.Table(index)
    db["files"]["speaker"] = audformat.Column(scheme_id="speaker")
    db["files"]["speaker"].set(["s1", "s2"] * 3)
    db["emotion"] = audformat.Table(index)
    db["emotion"]["arousal"] = audformat.Column(scheme_id="arousal")
    db["emotion"]["arousal"].set([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    db.save(str(root))
    return root


def test_audformat_database_joins_tables_and_misc_speaker_sex(tmp_path):
    root = _db(tmp_path / "db")
    ds = load_dataset(str(root))
    assert len(ds) == 6 and ds.name == "tiny-emo::emotion"
    assert set(ds.table.columns) >= {"file", "speaker", "sex", "arousal"}
    assert list(ds.table["sex"]) == ["female", "male"] * 3
    assert list(ds.table["arousal"]) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    res = audit(["random:gaussian"], str(root), "smoke", cache=False, baselines=False)
    assert res.doc["dataset"]["sex"] == {"female": 3, "male": 3}
    assert not res.doc["items"]["errors"]


def _split_db(root, *, arousal_scheme=(0, 1), gender_values=None):
    """Three splits with different items (train 6, dev 3, test 5), as corpora ship them."""
    files = [f"audio/{i}.wav" for i in range(14)]
    (root / "audio").mkdir(parents=True)
    for i, f in enumerate(files):
        sf.write(root / f, (0.02 * (i + 1) * np.sin(np.arange(8000) / 7)).astype("float32"), 16000)
    db = audformat.Database("splits")
    lo, hi = arousal_scheme
    db.schemes["arousal"] = audformat.Scheme("float", minimum=lo, maximum=hi)
    db.schemes["gender"] = audformat.Scheme("str")
    for name, part in (("emotion.train", files[:6]), ("emotion.dev", files[6:9]),
                       ("emotion.test", files[9:])):
        db[name] = audformat.Table(audformat.filewise_index(part))
        db[name]["arousal"] = audformat.Column(scheme_id="arousal")
        db[name]["arousal"].set(list(np.linspace(lo, hi, len(part))))
        if gender_values is not None:
            db[name]["gender"] = audformat.Column(scheme_id="gender")
            db[name]["gender"].set((gender_values * len(part))[:len(part)])
    db.save(str(root))
    return root


def test_several_splits_without_a_choice_is_an_error_listing_them(tmp_path):
    root = _split_db(tmp_path / "db")
    with pytest.raises(DataError) as info:
        load_dataset(str(root))
    msg = str(info.value)
    assert "'emotion.dev' (3 filewise items: arousal)" in msg
    assert "'emotion.test' (5 filewise items: arousal)" in msg and "'emotion.train' (6" in msg
    assert f"--data {root}::TABLE" in msg
    with pytest.raises(DataError, match=r"no table 'emotion.val'; choose one of .*'emotion.dev'"):
        load_dataset(f"{root}::emotion.val")


def test_the_chosen_table_is_audited_and_named(tmp_path, capsys):
    root = _split_db(tmp_path / "db")
    ds = load_dataset(f"{root}::emotion.test")
    assert len(ds) == 5 and ds.name == "splits::emotion.test"
    assert load_dataset(str(root), table="emotion.dev").ids == [f"audio/{i}.wav" for i in (6, 7, 8)]
    out = tmp_path / "out"
    code = main(["run", "--model", "random:gaussian", "--data", f"{root}::emotion.test",
                 "--suite", "smoke", "--no-cache", "--no-baselines", "--out", str(out),
                 "--format", ""])
    assert code in (0, 1)
    assert "data splits::emotion.test (5 items)" in capsys.readouterr().out
    doc = json.loads((out / "results.json").read_text())
    assert doc["dataset"]["table"] == "emotion.test" and doc["dataset"]["items"] == 5
    from sertest.report.gallery import AuditItems   # reports read the same table again

    items = AuditItems({"dataset": ds.describe()})
    assert list(items.table().index) == ds.ids


def test_scheme_bounds_declare_the_label_range(tmp_path):
    root = _split_db(tmp_path / "db", arousal_scheme=(1, 7), gender_values=["F", "male"])
    ds = load_dataset(f"{root}::emotion.train")
    assert list(ds.table["arousal"]) == pytest.approx(np.linspace(0, 1, 6))
    assert ds.describe()["label_range"]["arousal"] == {
        "min": 1.0, "max": 7.0, "from": "audformat scheme 'arousal'"}
    assert list(ds.table["sex"]) == ["female", "male"] * 3      # gender taken as sex
    ds = load_dataset(f"{root}::emotion.train", label_range="0:10")   # the option wins
    assert ds.table["arousal"].max() == pytest.approx(0.7)
