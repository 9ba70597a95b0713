"""Reading an audformat database folder into a Dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

audformat = pytest.importorskip("audformat")

from sertest import audit  # noqa: E402
from sertest.data import load_dataset  # noqa: E402


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
    assert len(ds) == 6 and ds.name == "tiny-emo"
    assert set(ds.table.columns) >= {"file", "speaker", "sex", "arousal"}
    assert list(ds.table["sex"]) == ["female", "male"] * 3
    assert list(ds.table["arousal"]) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    res = audit(["random:gaussian"], str(root), "smoke", cache=False, baselines=False)
    assert res.doc["dataset"]["sex"] == {"female": 3, "male": 3}
    assert not res.doc["items"]["errors"]
