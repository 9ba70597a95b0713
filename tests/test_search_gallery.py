"""The listening gallery replays the worst-case search's minimal counterexamples.

A planted model (``tests.test_search.planted``: arousal 0.8 above an item-specific SNR,
0.2 below it) is searched along SNR in a real audit; the report's gallery must hold, for
the earliest-breaking items (capped), the clean clip and the clip at the item's breakdown
point, the perturbed clip's parameters must equal the reported breakdown, and replaying it
(the engine's ``condition_signal``, the audit seed) must give the audio that broke the model:
the planted model says 0.8 on the clean clip, 0.2 on the perturbed one and 0.8 one grid step
milder.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest import audit
from sertest.engine.render import condition_signal
from sertest.models.callable import CallableModel
from sertest.perturb import from_spec
from sertest.report import gallery, html
from sertest.report.plots import worst_rows
from tests.test_search import _freq, _planted_snr, planted

SR = 16000
N = 8


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("search-gallery")
    t = np.arange(SR) / SR
    rows = []
    for i in range(N):
        x = 0.1 * np.sin(2 * np.pi * _freq(i) * t)
        sf.write(root / f"t{i}.wav", x.astype("float32"), SR, subtype="FLOAT")
        rows.append(dict(id=f"i{i:02d}", file=f"t{i}.wav", speaker=f"s{i % 4}",
                         arousal=0.8, dominance=0.5, valence=0.5))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    model = CallableModel(planted, "test:planted", name="planted",
                          labels=["arousal", "dominance", "valence"])
    suite = {"name": "s", "bootstrap": {"n_boot": 100}, "targets": ["arousal"],
             "tests": [{"test": "robustness_search",
                        "params": {"axis": "snr", "max_items": N, "budget": 200}}]}
    res = audit([model], str(root / "manifest.csv"), suite, cache=False, baselines=False,
                jobs=1, out=str(root / "out"))
    (entry,) = res.select("robustness_search", "planted", "arousal")
    return res, entry


def _planted_arousal(signal):
    return float(planted(np.asarray(signal)[None, :], SR)["arousal"][0])


def test_gallery_holds_clean_and_breakdown_clips_of_the_earliest_breaking_items(searched):
    res, entry = searched
    worst = entry["plots"]["worst"]
    assert len(worst) >= 3  # more broke than the gallery may show per search
    clips, notes = gallery.build(res.doc, [], data_root=res.data_root)
    shown = [c for c in clips if c.counterexample]
    assert len(shown) == gallery.COUNTEREXAMPLES_PER_SEARCH
    assert any("counterexample" in n for n in notes)
    for clip, listed in zip(shown, worst):
        # earliest-breaking first, as the search listed them
        assert clip.item_id == listed["id"] and clip.test == "robustness_search"
        assert clip.clean_uri and clip.perturbed_uri  # both sides embedded
        # the perturbed clip's parameters are the reported breakdown point
        assert clip.spec == listed["condition"]
        assert clip.spec["name"] == "white_noise"
        assert clip.spec["snr_db"] == listed["condition"]["snr_db"]
        assert clip.held_at == pytest.approx(clip.spec["snr_db"] + 0.5)  # one grid step milder
        i = int(clip.item_id[1:])
        assert abs(clip.spec["snr_db"] - _planted_snr(_freq(i))) <= 1.0
    # the earliest-breaking item is the one planted to break at the highest SNR
    assert shown[0].item_id == f"i{N - 1:02d}"


def test_replayed_counterexample_is_the_audio_that_broke_the_model(searched):
    res, entry = searched
    (found, *_) = gallery.counterexamples(res.doc)
    _, row, _ = found
    clean, broken, sr = gallery.replay(res.doc, row, model="planted", data_root=res.data_root)
    assert sr == SR and len(clean) == len(broken) == SR
    assert _planted_arousal(clean) == 0.8  # held on clean audio
    assert _planted_arousal(broken) == 0.2  # moved at the breakdown point
    # one grid step milder (the setting that held) the planted model still holds
    held = from_spec({**row["spec"], "snr_db": row["raw"]["held_at"]})
    milder = condition_signal(clean, sr, held, int(res.doc.get("seed", 0)), row["id"])
    assert _planted_arousal(milder) == 0.8
    # the replay is the engine's: same perturbation, same generator (audit seed, item, key)
    again = condition_signal(clean, sr, from_spec(row["spec"]), int(res.doc.get("seed", 0)),
                             row["id"])
    np.testing.assert_array_equal(again, broken)
    # the listed change is what the model reported at that setting
    assert row["change"] == pytest.approx(-0.6)


def test_counterexamples_are_capped_and_taken_in_turns_across_searches(searched):
    res, entry = searched
    twin = {**entry, "model": "twin"}  # a second model's search
    doc = {**res.doc, "tests": list(res.doc["tests"]) + [twin],
           "models": list(res.doc["models"]) + [{"name": "twin"}]}
    found = gallery.counterexamples(doc, per_search=2, most=3)
    first, second = (w["id"] for w in entry["plots"]["worst"][:2])
    assert [(e["model"], r["id"]) for e, r, _ in found] == [
        ("planted", first), ("twin", first), ("planted", second)]
    # the same clip (item, model, setting) is not repeated for another dimension
    same = {**entry, "dimension": "valence"}
    assert len(gallery.counterexamples({**res.doc, "tests": [entry, same]}, most=9)) == 2
    # a random baseline's search is never replayed
    doc["models"] = [{**m, "role": "baseline"} for m in doc["models"]]
    assert gallery.counterexamples(doc) == []


def test_report_page_links_the_worst_table_to_the_counterexample(searched):
    res, entry = searched
    page = html.render(res)
    first = worst_rows(entry["plots"]["worst"])[0]
    assert 'id="clip-0"' in page and first["id"] in page
    assert "worst-case search counterexamples" in page
