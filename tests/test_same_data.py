"""Two audits are compared as "the same data" by the audio they read (``dataset.fingerprint``),
not by the data's name or folder: a copy of the corpus elsewhere pairs, one changed file
does not (``sertest.results.same_data``, ``sertest compare``'s caveats and pairing)."""

from __future__ import annotations

import shutil

import numpy as np
import soundfile as sf

from sertest import audit
from sertest.report.compare import caveats, load_run
from sertest.results import same_data

RUN = dict(cache=False, baselines=False, progress=False, jobs=1, n_boot=50)


def _audit(manifest, out):
    audit(["random:gaussian"], str(manifest), "smoke", out=str(out), **RUN)
    return load_run(str(out))


def test_a_copy_of_the_data_elsewhere_is_the_same_data_and_a_changed_file_is_not(tiny_data, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_data.parent, copy)
    changed = tmp_path / "changed"
    shutil.copytree(tiny_data.parent, changed)
    x, sr = sf.read(changed / "a3.wav", dtype="float32")
    sf.write(changed / "a3.wav", (x * 0.5).astype(np.float32), sr)

    base = _audit(tiny_data, tmp_path / "o_base")
    same = _audit(copy / "manifest.csv", tmp_path / "o_same")
    other = _audit(changed / "manifest.csv", tmp_path / "o_other")
    # name, item count and (published, relative) source alone call all three the same data
    keys = {tuple(r.doc["dataset"].get(k) for k in ("name", "items", "source"))
            for r in (base, same, other)}
    assert len(keys) == 1
    assert same_data(base.doc, same.doc)
    assert not same_data(base.doc, other.doc)
    assert not any("different data" in n for n in caveats([base, same]))
    note = [n for n in caveats([base, other]) if "different data" in n]
    assert note and "audio sha256:" in note[0]


def test_labels_and_windows_count_and_old_documents_fall_back_to_the_name():
    ds = {"name": "corpus", "items": 3, "source": "/a", "fingerprint": "sha256:ab"}
    a = {"dataset": ds}
    assert not same_data(a, {"dataset": {**ds, "label_range": {"arousal": {"min": 1, "max": 7}}}})
    assert not same_data(a, {"dataset": {**ds, "segmentation": {"window_s": 30, "hop_s": 30}}})
    old = {"dataset": {k: v for k, v in ds.items() if k != "fingerprint"}}
    assert same_data(a, old)                   # no fingerprint on one side: by name
    assert not same_data(a, {"dataset": {**old["dataset"], "items": 4}})
