"""Report facts (issue 16): the data fingerprint in results.json and the reproducibility
section, and the dataset section's line on why correctness scores fewer items than the data
holds (paired renditions, decode failures).

Real audits on small real WAV files with a tiny real ONNX model (tests/helpers.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest import audio, audit
from sertest.engine.assemble import data_fingerprint
from sertest.report import html as html_mod
from tests.helpers import make_onnx_model

SR = 16000
N_UTTERANCES = 12
SUITE = {"name": "facts", "bootstrap": {"n_boot": 50}, "targets": ["arousal"],
         "tests": [{"test": "correctness_regression"}, {"test": "robustness_recording_condition"}]}


def write_paired(root, n: int = N_UTTERANCES) -> str:
    """``n`` utterances, each as a headset, boundary and mobile rendition (rows sharing a
    ``pair`` id), plus one unpaired corrupt file (a decode error)."""
    rng = np.random.default_rng(11)
    os.makedirs(root, exist_ok=True)
    rows = []
    for i in range(n):
        t = np.arange(int(SR * rng.uniform(0.4, 0.7))) / SR
        level = rng.uniform(0.05, 0.3)
        x = (level * np.sin(2 * np.pi * rng.uniform(120, 260) * t)).astype("float32")
        for rec, gain in (("headset", 1.0), ("boundary", 0.8), ("mobile", 0.5)):
            name = f"u{i:02d}-{rec}.wav"
            sf.write(os.path.join(root, name), gain * x, SR, subtype="FLOAT")
            rows.append(dict(id=f"u{i:02d}-{rec}", file=name, speaker=f"s{i % 4}",
                             pair=f"u{i:02d}", recording=rec, arousal=round(3 * level / 1.41, 4)))
    with open(os.path.join(root, "broken.wav"), "wb") as fh:
        fh.write(b"RIFF not really a wav")
    rows.append(dict(id="broken", file="broken.wav", speaker="s0", pair="", recording="",
                     arousal=0.5))
    path = os.path.join(root, "manifest.csv")
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_onnx_model(os.fspath(tmp_path_factory.mktemp("facts-model") / "m.onnx"))


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    return write_paired(os.fspath(tmp_path_factory.mktemp("facts-data")))


@pytest.fixture(scope="module")
def audited(paired, model, tmp_path_factory):
    """One audit written with its report (cold cache, one job)."""
    out = os.fspath(tmp_path_factory.mktemp("facts-out"))
    cache = os.fspath(tmp_path_factory.mktemp("facts-cache"))
    res = audit([model], paired, SUITE, out=out, cache=cache, baselines=False, jobs=1,
                renderers=("html",))
    return res, out, cache


def _expected_fingerprint(manifest: str, skip=()) -> str:
    """The documented digest, computed here from the files themselves."""
    root = os.path.dirname(manifest)
    table = pd.read_csv(manifest)
    lines = sorted(f"{r.id}\t{audio.content_hash(os.path.join(root, r.file))}\n"
                   for r in table.itertuples() if r.id not in skip)
    return "sha256:" + hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


class _Text(HTMLParser):
    """The text under the element with a given id (the page's sections are ids)."""

    def __init__(self, anchor: str) -> None:
        super().__init__()
        self.anchor, self.depth, self.parts, self.after = anchor, 0, [], False

    def handle_starttag(self, tag, attrs):
        if dict(attrs).get("id") == self.anchor:
            self.after = True

    def handle_data(self, data):
        if self.after:
            self.parts.append(data)


def _text_after(page: str, anchor: str) -> str:
    p = _Text(anchor)
    p.feed(page)
    return " ".join(" ".join(p.parts).split())


# -- the data fingerprint ---------------------------------------------------------------

def test_fingerprint_is_the_digest_of_ids_and_audio_hashes(audited, paired):
    res, out, _ = audited
    fp = res.doc["dataset"]["fingerprint"]
    assert fp == _expected_fingerprint(paired)
    assert list(res.doc["dataset"])[-1] == "fingerprint"  # appended: other keys keep their order
    with open(os.path.join(out, "results.json"), encoding="utf-8") as fh:
        assert json.load(fh)["dataset"]["fingerprint"] == fp
    # a file that cannot be decoded is still digested (its bytes were read)
    assert [e["id"] for e in res.doc["items"]["errors"]] == ["broken"]
    assert fp != _expected_fingerprint(paired, skip=("broken",))


def test_fingerprint_does_not_depend_on_jobs_cache_or_location(audited, paired, model, tmp_path):
    res, out, cache = audited
    warm = audit([model], paired, SUITE, cache=cache, baselines=False, jobs=2, renderers=())
    assert warm.timings["computed"] == 0 and warm.timings["cached"] > 0  # really warm
    assert warm.doc["dataset"]["fingerprint"] == res.doc["dataset"]["fingerprint"]
    moved = shutil.copytree(os.path.dirname(paired), tmp_path / "elsewhere")
    there = audit([model], str(moved / "manifest.csv"), SUITE, cache=False, baselines=False,
                  jobs=1, renderers=())
    assert there.doc["dataset"]["fingerprint"] == res.doc["dataset"]["fingerprint"]


def test_fingerprint_changes_with_audio_and_ids(audited, paired, model, tmp_path):
    fp = audited[0].doc["dataset"]["fingerprint"]
    changed = shutil.copytree(os.path.dirname(paired), tmp_path / "changed")
    x, _ = sf.read(changed / "u03-mobile.wav", dtype="float32")
    sf.write(changed / "u03-mobile.wav", 0.9 * x, SR, subtype="FLOAT")
    res = audit([model], str(changed / "manifest.csv"), SUITE, cache=False, baselines=False,
                jobs=1, renderers=())
    assert res.doc["dataset"]["fingerprint"] not in (fp, None)
    assert res.doc["dataset"]["fingerprint"] == _expected_fingerprint(str(changed / "manifest.csv"))

    renamed = shutil.copytree(os.path.dirname(paired), tmp_path / "renamed")
    table = pd.read_csv(renamed / "manifest.csv", keep_default_na=False)
    table.loc[table["id"] == "u00-headset", "id"] = "u00-head"
    table.to_csv(renamed / "manifest.csv", index=False)
    res = audit([model], str(renamed / "manifest.csv"), SUITE, cache=False, baselines=False,
                jobs=1, renderers=())
    assert res.doc["dataset"]["fingerprint"] != fp


def test_data_fingerprint_ignores_order_and_separates_fields():
    a = data_fingerprint({"b": "2", "a": "1"})
    assert a == data_fingerprint({"a": "1", "b": "2"}) and a.startswith("sha256:")
    assert len(a) == len("sha256:") + 64
    assert data_fingerprint({"a1": "2"}) != data_fingerprint({"a": "12"})
    assert data_fingerprint({}) == "sha256:" + hashlib.sha256(b"").hexdigest()


# -- the report ---------------------------------------------------------------------------

def test_report_shows_fingerprint_and_why_fewer_items_are_scored(audited):
    res, out, _ = audited
    with open(os.path.join(out, "report.html"), encoding="utf-8") as fh:
        page = fh.read()
    repro = _text_after(page, "reproduce")
    assert "data fingerprint" in repro and res.doc["dataset"]["fingerprint"] in repro
    dataset = _text_after(page, "dataset")
    line = dataset[dataset.index("Correctness scores"):][:400]
    n = N_UTTERANCES
    assert f"Correctness scores {n} of the {3 * n + 1} items (1 could not be decoded)" in line
    assert (f"the other {2 * n} are further renditions of paired utterances "
            f"(recording boundary {n}, mobile {n}), which robustness_recording_condition") in line
    # the counts come from the document: the correctness cell really scored n items
    (entry,) = res.select("correctness_regression", res.doc["models"][0]["name"], "arousal")
    assert {m["n"] for m in entry["measurements"]} == {n}


def _doc(total, scored, recording=None, errors=(), fairness=False):
    tests = [{"test": "correctness_regression", "check": "correctness_regression",
              "topic": "correctness", "model": "m", "dimension": "arousal",
              "measurements": [{"metric": "ccc", "group": None, "n": scored}]}]
    if recording:
        tests.append({"test": "robustness_recording_condition",
                      "check": "robustness_recording_condition", "topic": "robustness",
                      "model": "m", "dimension": "arousal",
                      "measurements": [{"metric": "unchanged", "group": g, "n": k}
                                       for g, k in recording.items()]})
    if fairness:
        tests.append({"test": "fairness_sex", "check": "fairness_sex", "topic": "fairness",
                      "model": "m", "dimension": "arousal", "measurements": []})
    return {"dataset": {"items": total}, "tests": tests,
            "items": {"errors": [{"id": i, "stage": "decode"} for i in errors]}}


def test_item_use_reads_the_counts_from_the_document():
    assert html_mod.item_use(_doc(100, 100)) is None  # every item scored: nothing to explain
    assert html_mod.item_use(_doc(100, 98, errors=["a", "b"])) is None  # the errors say it
    assert html_mod.item_use({"dataset": {"items": 10}, "tests": []}) is None  # no correctness
    text = html_mod.item_use(_doc(968, 888, {"mobile": 40, "boundary": 40}, fairness=True))
    assert text.startswith("Correctness scores 888 of the 968 items, one rendition per "
                           "utterance (fairness draws its groups from these); the other 80 ")
    assert "(recording boundary 40, mobile 40), which robustness_recording_condition" in text
    # renditions that do not account for every unscored item: the general reason
    text = html_mod.item_use(_doc(968, 880, {"mobile": 40, "boundary": 40}))
    assert "the other 88 are further renditions of paired utterances (rows sharing a pair id" \
           in text and "fairness" not in text
    text = html_mod.item_use(_doc(50, 40, errors=["x", "x", "y"]))
    assert "40 of the 50 items (2 could not be decoded)" in text and "the other 8 " in text


def test_published_audit_explains_its_scored_items():
    """The bundled corpus's published audit: 888 scored, 80 boundary/mobile renditions."""
    path = os.path.join(os.path.dirname(__file__), "..", "reports", "audits",
                        "default-wav2small", "results.json")
    if not os.path.exists(path):
        pytest.skip("reports/ not in this checkout")
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    text = html_mod.item_use(doc)
    assert "Correctness scores 888 of the 968 items" in text
    assert "(recording boundary 40, mobile 40)" in text
