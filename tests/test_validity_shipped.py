"""The validity measurements shipped for the bundled suite and corpus (issue 12).

`make validity` writes docs/validity.{md,json} and copies the compact summary to
sertest/validity/default.json; an audit of that suite on that data shows, beside each test,
how the test fared against planted defects and an oracle.  The shipped file must describe the
suite and the corpus as they are now: change either, and `make validity` must run again.
"""

from __future__ import annotations

import json
import os

import pytest

from sertest.data.dataset import load_dataset
from sertest.suite import load_suite
from sertest.validate import shipped
from sertest.validate.shipped import shipped_validity, validity_line

SUMMARY = {"suite": "s", "suite_sha256": "abc", "dataset": {"name": "d", "items": 10},
           "settings": {"resamples": 20, "share": 0.8, "seed": 0, "carrier": "oracle"},
           "tests": {"fairness_sex": {"arousal": {
               "oracle": {"pass": 0.95, "fail": 0.0, "inconclusive": 0.05},
               "defects": {"level_shift_sex": 1.0}}}}}


def test_a_summary_applies_only_to_its_suite_and_data(tmp_path, monkeypatch):
    (tmp_path / "s.json").write_text(json.dumps(SUMMARY))
    (tmp_path / "broken.json").write_text("{not json")
    monkeypatch.setattr(shipped, "FOLDER", str(tmp_path))
    assert shipped_validity({"sha256": "abc"}, {"name": "d", "items": 10}) == SUMMARY
    assert shipped_validity({"sha256": "abd"}, {"name": "d", "items": 10}) is None
    assert shipped_validity({"sha256": "abc"}, {"name": "d", "items": 11}) is None
    assert shipped_validity({"sha256": "abc"}, {"name": "e", "items": 10}) is None
    assert shipped_validity(None, {"name": "d", "items": 10}) is None


def test_the_line_names_the_oracle_and_each_defect():
    line = validity_line(SUMMARY, "fairness_sex", "arousal")
    assert "20 resamples of 80 % of the speakers" in line
    assert "oracle) passes 95 %, fails 0 %" in line
    assert "level_shift_sex at the threshold's size caught in 100 %" in line
    assert validity_line(SUMMARY, "fairness_sex", "valence") is None
    assert validity_line(SUMMARY, "fairness_pitch", "arousal") is None


def test_the_shipped_summary_describes_the_current_default_suite_and_corpus():
    path = os.path.join(shipped.FOLDER, "default.json")
    if not os.path.isfile(path):
        pytest.fail(f"{path} is missing: run `make validity`")
    with open(path, encoding="utf-8") as fh:
        found = json.load(fh)
    suite = load_suite("default")
    corpus = load_dataset(None)
    assert found["suite_sha256"] == suite.sha256, (
        "the default suite changed since `make validity` ran: run it again")
    assert found["dataset"]["items"] == len(corpus), (
        "the bundled corpus changed since `make validity` ran: run it again")
    assert found["settings"]["resamples"] >= 20
    # every judged test of the suite has figures (tests that skip on the corpus have none)
    assert {"fairness_sex", "fairness_pitch", "robustness_background_noise"} <= set(found["tests"])


def test_reports_show_the_line_for_the_suite_and_data_it_was_measured_on(tmp_path, monkeypatch):
    import sertest
    from sertest.report import html, markdown

    data = sertest.load_dataset()
    few = data.subset(data.ids[:12])
    suite = tmp_path / "example.yaml"  # a suite file: its SHA-256 identifies it
    suite.write_text("name: example\nbootstrap: {n_boot: 50}\n"
                     "tests:\n  - test: correctness_regression\n")
    res = sertest.audit(["random:constant"], few, str(suite), baselines=False, cache=False,
                        progress=False)
    doc = res.doc
    summary = {"suite": "example", "suite_sha256": doc["suite"]["sha256"],
               "dataset": {"name": doc["dataset"]["name"], "items": doc["dataset"]["items"]},
               "settings": {"resamples": 20, "share": 0.8},
               "tests": {"correctness_regression": {"arousal": {
                   "oracle": {"pass": 0.9, "fail": 0.05, "inconclusive": 0.05}}}}}
    (tmp_path / "validity").mkdir()
    (tmp_path / "validity" / "example.json").write_text(json.dumps(summary))
    monkeypatch.setattr(shipped, "FOLDER", str(tmp_path / "validity"))
    page = html.render(res)
    assert "a sound model (oracle) passes 90 %, fails 5 %" in page
    md = markdown.render(res)
    assert "What these verdicts are worth on this data" in md and "passes 90 %" in md
    # another data set (one item fewer): nothing is claimed
    res.doc["dataset"]["items"] -= 1
    assert "a sound model (oracle)" not in html.render(res)
    assert "What these verdicts are worth" not in markdown.render(res)
