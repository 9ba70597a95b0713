"""summary.md names what the exploratory tests found: the top discovered slice and the
earliest-breaking item, and shows their entries' notes.

One small real audit (24 decoded one-second tones, a planted model): the model is the
search's planted model of :mod:`tests.test_search` (arousal 0.8 above an item-specific SNR
that grows with the tone's frequency, 0.2 below it), and the manifest's labels are off by
about 0.3 for the items recorded with ``mic=far``, so slice discovery must find ``mic=far``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest import audit
from sertest.models.callable import CallableModel
from sertest.report import markdown
from tests.test_search import _freq, planted

SR = 16000
N = 24


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    root = tmp_path_factory.mktemp("summary-findings")
    t = np.arange(SR) / SR
    rows = []
    for i in range(N):
        x = 0.1 * np.sin(2 * np.pi * _freq(i % 12) * t)
        sf.write(root / f"t{i}.wav", x.astype("float32"), SR, subtype="FLOAT")
        far = i % 2 == 1
        # the model says 0.8 on clean audio: the far items' labels sit about 0.3 below it
        rows.append(dict(id=f"i{i:02d}", file=f"t{i}.wav", speaker=f"s{i % 6}",
                         mic="far" if far else "near",
                         arousal=(0.5 if far else 0.8) - 0.01 * (i % 5),
                         dominance=0.5, valence=0.5))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    model = CallableModel(planted, "test:planted", name="planted",
                          labels=["arousal", "dominance", "valence"])
    suite = {"name": "s", "bootstrap": {"n_boot": 100}, "targets": ["arousal"], "tests": [
        {"test": "fairness_slices",
         "params": {"features": [], "columns": ["mic"], "min_size": 8}},
        {"test": "robustness_search", "params": {"axis": "snr", "max_items": 8, "budget": 200}}]}
    out = root / "out"
    res = audit([model], str(root / "manifest.csv"), suite, cache=False, baselines=False,
                jobs=1, out=str(out))
    return res, out


def _row(md: str, test: str) -> str:
    """The summary table's row of ``test`` (its name as Markdown escapes it)."""
    cell = "| " + test.replace("_", "\\_") + " |"
    (line,) = [ln for ln in md.splitlines() if ln.startswith(cell)]
    return line


def test_summary_names_the_top_discovered_slice(audited):
    res, _ = audited
    (entry,) = res.select("fairness_slices", "planted", "arousal")
    assert entry["verdict"] == "fail"
    top = next(m for m in entry["measurements"] if m["metric"] == "slice_error_difference")
    assert top["slice"] == {"subset": "mic=far"} and top["extra"]["discovered"]
    details = markdown.details(res.doc, entry)
    assert "top slice: mic=far (12 items, error +0.3" in details
    assert details.startswith("failed because discovered_slices 1")
    assert "top slice: mic=far (12 items" in _row(markdown.render(res), "fairness_slices")


def test_summary_names_the_earliest_breaking_item_with_its_setting(audited):
    res, _ = audited
    (entry,) = res.select("robustness_search", "planted", "arousal")
    first = entry["plots"]["worst"][0]
    snr = first["condition"]["snr_db"]
    found = markdown.found_text(entry)
    assert found.startswith(f"earliest to break: {first['id']} at white_noise {snr:g} dB")
    # the planted model drops from 0.8 to 0.2 at its breakdown point
    assert "arousal 0.8 → 0.2" in found
    held = first["held_at"]
    assert (f"held at {held:g} dB" in found) if held is not None else "mildest" in found
    # the item planted to break at the highest SNR among those searched breaks first
    searched = [it["id"] for it in entry["plots"]["items"] if not it["censored"]]
    assert first["id"] == max(searched, key=lambda i: _freq(int(i[1:]) % 12))
    assert found in markdown.details(res.doc, entry)


def test_the_written_summary_file_names_both_findings(audited):
    res, out = audited
    md = (out / "summary.md").read_text(encoding="utf-8")
    assert md == markdown.render(res)
    assert "earliest to break: i" in _row(md, "robustness_search")
    assert r"top slice: mic=far" in _row(md, "fairness_slices")


def test_entry_notes_of_exploratory_entries_reach_the_notes_column():
    entry = {"test": "fairness_slices", "model": "m", "dimension": "arousal",
             "verdict": "pass", "measurements": [],
             "notes": ["no slice of at least 30 items has a significantly larger error"],
             "plots": {"kind": "slices", "target": "arousal", "tested": 12, "fdr": 0.05,
                       "slices": [{"slice": "sex=female", "n": 40, "effect": 0.01,
                                   "lo": -0.02, "hi": 0.04, "q": 0.6, "discovered": False}]}}
    assert "no slice of at least 30 items" in markdown.note_text({}, entry)
    assert markdown.found_text(entry) == ""  # nothing discovered: no top slice is named
    # a fixed-level test's notes stay out of the summary (the HTML report carries them)
    plain = {**entry, "test": "fairness_sex", "plots": {}}
    assert markdown.note_text({}, plain) == ""
