"""Structured measurement slices (issue 15): ``Measurement.slice`` names what a number was
measured on (group, condition, bin, class, ...); ``group`` is its one display label; documents
of ``results@1``/``@2`` are given the slice by :func:`sertest.results.migrate`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sertest import audit
from sertest.checks.base import FACETS, Measurement, slice_label
from sertest.results import READABLE, SCHEMA, Results, older_slice


def test_measurement_writes_its_slice_and_the_label_made_from_it():
    m = Measurement("bin_share_difference", 0.1, slice={"bin": "0.25-0.5", "group": "female"})
    d = m.to_dict()
    assert d["slice"] == {"group": "female", "bin": "0.25-0.5"}
    assert list(d["slice"]) == ["group", "bin"]  # facet order, not the order given
    assert d["group"] == m.group == "female / 0.25-0.5"
    whole = Measurement("ccc", 0.5).to_dict()
    assert whole["slice"] == {} and whole["group"] is None


def test_an_unknown_facet_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="speaker.*known: group, context"):
        slice_label({"speaker": "s1"})
    assert set(FACETS) >= {"group", "condition", "bin", "class"}


def _doc(schema: str, measurements: list[dict], topic: str = "fairness") -> dict:
    return {"schema": schema, "sertest_version": "0", "seed": 0,
            "models": [{"name": "m", "role": "candidate"}],
            "tests": [{"test": "t", "check": "t", "topic": topic, "model": "m",
                       "dimension": "valence", "verdict": "pass",
                       "measurements": measurements}]}


@pytest.mark.parametrize("schema", [s for s in READABLE if s != SCHEMA])
def test_older_documents_get_slices_from_their_labels(schema):
    fair = [{"metric": "ccc_difference", "group": "female", "value": 0.1,
             "extra": {"group": "female"}},
            {"metric": "bin_share_difference", "group": "female / (-inf, 0.25]", "value": 0.1},
            {"metric": "class_share_difference", "group": "male / anger", "value": 0.0},
            {"metric": "ccc", "group": None, "value": 0.5}]
    res = Results(_doc(schema, fair))
    got = [m["slice"] for m in res.tests[0]["measurements"]]
    assert got == [{"group": "female"}, {"group": "female", "bin": "(-inf, 0.25]"},
                   {"group": "male", "class": "anger"}, {}]
    assert res.doc["schema"] == schema  # what was read; the slices are added beside it
    for m in res.tests[0]["measurements"]:  # the label made from the slice is the old one
        assert slice_label(m["slice"]) == m["group"]


@pytest.mark.parametrize("metric, label, facet", [
    ("ccc_difference", "babble", "condition"), ("unchanged", "mp3_32k", "condition"),
    ("recall_per_class", "anger", "class"), ("proportion_in_range", "neutral", "category"),
    ("holds", "louder", "expectation"), ("slice_error_difference", "sex=female", "subset"),
    ("breakdown_snr_db", "down", "side")])
def test_older_labels_of_other_tests_name_one_facet(metric, label, facet):
    assert older_slice({"metric": metric, "group": label}, {"topic": "robustness"}) == \
        {facet: label}


def test_a_current_document_is_left_as_written():
    doc = _doc(SCHEMA, [{"metric": "ccc", "group": "x", "slice": {"condition": "x"},
                         "value": 0.5}])
    assert Results(doc).tests[0]["measurements"][0]["slice"] == {"condition": "x"}


def test_audit_writes_structured_slices_with_labels_and_replicate_keys(tiny_data, onnx_model,
                                                                       tmp_path):
    suite = {"name": "slices", "bootstrap": {"n_boot": 50}, "tests": [
        {"test": "fairness_sex", "params": {"min_samples": 3}},
        {"test": "robustness_small_changes"}]}
    res = audit([onnx_model], str(tiny_data), suite, out=str(tmp_path / "out"), cache=False,
                baselines=False)
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["schema"] == SCHEMA == "sertest/results@3"
    seen: dict[str, set] = {}
    for t in doc["tests"]:
        for m in t["measurements"]:
            assert slice_label(m["slice"]) == m["group"], (t["test"], m)
            seen.setdefault(t["check"], set()).add(tuple(m["slice"]))
    assert seen["fairness_sex"] >= {("group",), ("group", "bin")}
    assert seen["robustness_small_changes"] == {("condition",)}
    fair = [m for t in doc["tests"] if t["check"] == "fairness_sex" for m in t["measurements"]]
    assert {m["slice"]["group"] for m in fair} == {"female", "male"}
    # replicates are keyed model|test|dimension|metric|group, group = the slice's label
    dim, cell = next((t["dimension"], m) for t in doc["tests"] if t["check"] == "fairness_sex"
                     for m in t["measurements"] if "bin" in m["slice"] and m["value"] is not None)
    key = f"m|fairness_sex|{dim}|{cell['metric']}|{cell['group']}"
    assert key in res.replicates and np.isfinite(res.replicates[key]).all()
