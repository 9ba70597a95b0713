"""What every output shows of a results document: gated entries never as passes, failing
entries and measurements first with the line that says why, flags, multiplicity and power,
item failures, and the model_health entry (dimension "all").

The documents are built here by hand, with the fields of ``sertest/results@2`` (issue 12):
renderers read them and must not judge anything themselves.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sertest.pytest_plugin import failure_text, headline, skip_reason
from sertest.report import display, html, junit, markdown, svg, terminal
from sertest.report.plots import render_plots
from sertest.results import SCHEMA, Results

GT = {"op": ">", "value": 0.5, "absolute": False, "text": "> 0.5"}
ABS = {"op": "<", "value": 0.05, "absolute": True, "text": "abs < 0.05"}
LT = {"op": "<", "value": 0.05, "absolute": False, "text": "< 0.05"}


def _m(metric, value, verdict, threshold=GT, group=None, ci=None, n=60, power=None):
    out = {"metric": metric, "group": group, "value": value,
           "ci": ci or [value - 0.02, value + 0.02], "n": n, "threshold": threshold,
           "verdict": verdict}
    if power is not None:
        out["power"] = power
    return out


def _entry(test, topic, model, dim, verdict, measurements, **extra):
    return {"test": test, "check": test, "topic": topic, "model": model, "dimension": dim,
            "description": f"{test} description", "verdict": verdict,
            "measurements": measurements, **extra}


def make_doc() -> dict:
    """A candidate ``cand`` competent on arousal but not on valence, and a random baseline."""
    groups = [f"g{i:02d}" for i in range(13)]
    fair = [_m("ccc_difference", 0.01, "pass", ABS, group=g) for g in groups]
    fair.append(_m("ccc_difference", 0.151, "fail", ABS, group="female", ci=[0.112, 0.19],
                   power={"se": 0.02, "mde": 0.041, "underpowered": False, "needs_n": None}))
    fair.append(_m("ccc_difference", 0.04, "inconclusive", ABS, group="male", ci=[0.01, 0.07],
                   power={"se": 0.03, "mde": 0.09, "underpowered": True, "needs_n": 340}))
    tests = [
        _entry("correctness_regression", "correctness", "cand", "arousal", "pass",
               [_m("ccc", 0.81, "pass"), _m("mae", 0.02, "pass", LT)]),
        _entry("correctness_regression", "correctness", "cand", "valence", "fail",
               [_m("ccc", 0.12, "fail"), _m("mae", 0.2, "fail", LT)],
               failed_because="ccc 0.12 [0.1, 0.14], threshold > 0.5"),
        _entry("fairness_sex", "fairness", "cand", "arousal", "fail", fair,
               flags=[{"kind": "confound", "text": "confound: group female is one speaker"}],
               multiplicity={"comparisons": 15, "method": "max-|t| band",
                             "family_confidence": 0.95}),
        # new documents: the judge wrote "gated"
        _entry("fairness_sex", "fairness", "cand", "valence", "gated",
               [_m("ccc_difference", 0.0, "pass", ABS, group="female")],
               judged_verdict="pass",
               reason="not competent on valence: correctness_regression ccc 0.12 fails > 0.5"),
        # older documents: a pass that only the summary says is gated
        _entry("robustness_noise", "robustness", "cand", "valence", "pass",
               [_m("unchanged", 0.99, "pass", group="white_noise 20 dB")]),
        _entry("robustness_noise", "robustness", "cand", "arousal", "pass",
               [_m("unchanged", 0.97, "pass", group="white_noise 20 dB")],
               flags=[{"kind": "uninformative",
                       "text": "uninformative: the baseline rnd also passes this test on this data"},
                      {"kind": "clipped", "text": "clipped: 3 predictions outside [0, 1]"}]),
        _entry("model_health", "correctness", "cand", "all", "error",
               [_m("item_failure_share", 0.0833, "fail", LT, n=120),
                {"metric": "clipped_share", "group": None, "value": 0.025, "ci": None, "n": 120,
                 "threshold": None, "verdict": "info"}],
               error="the model failed 4 of 120 predictions this audit needs",
               item_failures={"count": 4, "needed": 120, "first": [
                   {"id": "i07", "condition": "white_noise 20 dB", "error": "RuntimeError: boom"},
                   {"id": "i09", "condition": None, "error": "ValueError: NaN output"}]},
               flags=[{"kind": "item_failures", "text": "item failures: 4 of 120 items"}]),
        _entry("fairness_pitch", "fairness", "cand", "arousal", "skipped", [],
               reason="too few speakers per pitch group"),
        _entry("robustness_noise", "robustness", "rnd", "arousal", "pass",
               [_m("unchanged", 0.9, "pass", group="white_noise 20 dB")]),
    ]
    doc = {"schema": SCHEMA, "sertest_version": "0", "seed": 0,
           "suite": {"name": "display", "description": "", "path": None, "sha256": None,
                     "n_boot": 50, "confidence": 0.95, "tests": sorted({t["test"] for t in tests})},
           "dataset": {"name": "synthetic", "source": "/nonexistent/manifest.csv", "items": 120,
                       "labels": ["arousal", "valence"]},
           "reference": None,
           "models": [{"name": "cand", "role": "candidate", "fingerprint": "x",
                       "info": {"format": "onnx", "dimensions": ["arousal", "valence"]}},
                      {"name": "rnd", "role": "baseline", "fingerprint": "y",
                       "info": {"format": "random", "dimensions": ["arousal"]}}],
           "tests": tests, "items": {"total": 120, "errors": []}}
    doc["summary"] = {"models": {
        "cand": {"score": 0.4, "topics": {"correctness": 0.5, "fairness": 0.3, "robustness": 0.4},
                 # as an older summary wrote them: the gated pass also counted as a pass
                 "counts": {"pass": 4, "fail": 2, "inconclusive": 0, "error": 1, "skipped": 1,
                            "gated": 2},
                 "competent": {"all": None, "arousal": True, "valence": False}},
        "rnd": {"score": 0.5, "topics": {"robustness": 1.0},
                "counts": {"pass": 1, "fail": 0, "inconclusive": 0, "error": 0, "skipped": 0},
                "competent": {"arousal": None}}}}
    return doc


@pytest.fixture
def doc() -> dict:
    return make_doc()


def _cells(row: str) -> list[str]:
    """The cells of a Markdown table row (escaped pipes stay inside their cell)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]


def _row(md: str, test: str, dim: str) -> str:
    esc = test.replace("_", "\\_")
    rows = [line for line in md.splitlines() if line.startswith(f"| {esc} | cand | {dim} |")]
    assert len(rows) == 1, (test, dim)
    return rows[0]


# -- the shared reading ------------------------------------------------------------------------

def test_gated_is_read_from_the_verdict_and_from_an_older_summary(doc):
    by = {(t["test"], t["dimension"], t["model"]): t for t in doc["tests"]}
    assert display.verdict(doc, by["fairness_sex", "valence", "cand"]) == "gated"
    old = by["robustness_noise", "valence", "cand"]
    assert old["verdict"] == "pass" and display.verdict(doc, old) == "gated"
    assert display.judged_verdict(doc, old) == "pass"
    assert "not competent on valence" in display.reason(doc, old)
    assert "ccc 0.12 fails > 0.5" in display.reason(doc, old)
    # competent dimension, correctness topic, errors: as written
    assert display.verdict(doc, by["robustness_noise", "arousal", "cand"]) == "pass"
    assert display.verdict(doc, by["correctness_regression", "valence", "cand"]) == "fail"
    counts = display.counts(doc, "cand")
    assert counts["pass"] == 2 and counts["gated"] == 2 and counts["fail"] == 2
    order = [display.verdict(doc, t) for t in display.sort_entries(doc, doc["tests"])]
    assert order == sorted(order, key=display.ORDER.index)


def test_the_deciding_measurement_is_the_one_the_judge_names():
    a = _m("ccc", 0.45, "inconclusive", group="a")
    b = _m("ccc", 0.48, "inconclusive", group="b")
    c = _m("mae", 0.2, "fail", LT)
    entry = _entry("t", "fairness", "m", "arousal", "inconclusive", [a, b],
                   failed_because="cannot tell: b: ccc 0.48 [0.46, 0.5], threshold > 0.5")
    assert display.deciding(entry) is b and display.others(entry) == [a]
    entry.pop("failed_because")
    assert display.deciding(entry) is a and display.others(entry) == [b]
    # without the judge's line: the first failing measurement, then the inconclusive ones
    mixed = _entry("t", "correctness", "m", "arousal", "fail", [a, c, b])
    assert display.deciding(mixed) is c and display.others(mixed) == [a, b]
    assert display.because({}, mixed) == "failed because mae 0.2 [0.18, 0.22], threshold < 0.05"


# -- summary.md --------------------------------------------------------------------------------

def test_markdown_names_the_failing_measurement_before_passing_ones(doc):
    md = markdown.render(Results(doc))
    row = _row(md, "fairness_sex", "arousal")
    # the failing group is named (not hidden behind "+13 more"), first, with value, CI, threshold
    assert "failed because female: ccc\\_difference 0.151 \\[0.112, 0.19\\], threshold abs \\< 0.05" in row
    assert row.index("female") < row.index("male") and "g00" not in row
    # flags, multiplicity and power are in the notes column
    notes = _cells(row)[-1]
    assert "confound: group female is one speaker" in notes
    assert "verdict over 15 comparisons, simultaneous 95 %" in notes
    assert "mde 0.041" in notes and "underpowered, needs about 340 items" in notes
    # rows failing first: error, fail, ..., gated, pass, skipped
    verdicts = [_cells(line)[3] for line in md.splitlines()
                if line.startswith("| ") and " | cand | " in line and "|---" not in line]
    ranks = [display.ORDER.index(v.split()[-1]) for v in verdicts]
    assert ranks == sorted(ranks) and len(verdicts) == 8


def test_markdown_never_counts_gated_as_pass(doc):
    md = markdown.render(Results(doc))
    head = next(line for line in md.splitlines() if line.startswith("| model |"))
    cand = next(line for line in md.splitlines() if line.startswith("| cand |"))
    cells = dict(zip(_cells(head), _cells(cand)))
    assert cells["pass"] == "2" and cells["gated"] == "2"
    for test, dim in (("fairness_sex", "valence"), ("robustness_noise", "valence")):
        row = _row(md, test, dim)
        assert "gated" in row and "✅" not in row and "not competent on valence" in row
    assert "uninformative: the baseline rnd also passes" in _row(md, "robustness_noise", "arousal")


def test_markdown_error_entry_shows_item_failures_and_dimension_all(doc):
    row = _row(markdown.render(Results(doc)), "model_health", "all")
    assert "💥 error" in row
    assert "4 of 120 needed item(s) failed" in row and "i07 (white\\_noise 20 dB): RuntimeError: boom" in row


# -- terminal --------------------------------------------------------------------------------------

def test_terminal_lists_failing_first_with_flags_and_reasons(doc):
    text = terminal.summary_text(Results(doc))
    lines = [line for line in text.splitlines() if line.startswith("[")]
    marks = [line[1:8].strip() for line in lines]
    assert marks == ["ERROR", "FAIL", "FAIL", "GATED", "GATED", "PASS", "PASS", "skip"]
    assert lines[0].startswith("[  ERROR] model_health cand all [item-failures]: ")
    fair = next(line for line in lines if "fairness_sex cand arousal" in line)
    assert "[confound]" in fair and "failed because female: ccc_difference 0.151" in fair
    assert "also ccc_difference[male]" in fair
    assert any("4 of 120 needed item(s) failed, e.g. i07" in line for line in text.splitlines())
    gated = [line for line in lines if "GATED" in line]
    assert all("not competent on valence" in line for line in gated)
    assert "[uninformative] [clipped]" in next(line for line in lines
                                               if "robustness_noise cand arousal" in line)
    table = next(line for line in text.splitlines() if line.startswith("cand "))
    assert table.endswith("2/2/0/2/1/1")  # pass/fail/inc/gated/err/skip
    verbose = terminal.summary_text(Results(doc), verbose=True)
    assert "verdict over 15 comparisons, simultaneous 95 %" in verbose
    assert "robustness_noise rnd arousal" in verbose


# -- junit.xml ---------------------------------------------------------------------------------------

def _cases(doc) -> dict[tuple[str, str], ET.Element]:
    root = ET.fromstring(junit.render(Results(doc)).split("\n", 1)[1])
    return {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}, root


def test_junit_gated_is_skipped_never_passed(doc):
    cases, root = _cases(doc)
    for cls in ("sertest.fairness.fairness_sex", "sertest.robustness.robustness_noise"):
        case = cases[(cls, "cand.valence")]
        skipped = case.find("skipped")
        assert skipped is not None, cls
        assert skipped.get("message").startswith("gated: not competent on valence")
        assert case.find("failure") is None and case.find("error") is None
    old = cases[("sertest.robustness.robustness_noise", "cand.valence")]
    props = {p.get("name"): p.get("value") for p in old.iter("property")}
    assert props["verdict"] == "pass" and props["shown_verdict"] == "gated"
    suite = next(s for s in root.iter("testsuite") if s.get("name").endswith("cand"))
    # 8 cases: 1 error, 2 failures, 2 gated + 1 skipped as <skipped>, 2 passes
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures"), suite.get("skipped")) \
        == ("8", "1", "2", "3")
    names = [c.get("classname") + "/" + c.get("name") for c in suite.iter("testcase")]
    assert names[0] == "sertest.correctness.model_health/cand.all"


def test_junit_failure_says_why_first_and_carries_flags(doc):
    cases, _ = _cases(doc)
    case = cases[("sertest.fairness.fairness_sex", "cand.arousal")]
    msg = case.find("failure").get("message")
    assert msg.startswith("failed because female: ccc_difference 0.151 [0.112, 0.19], "
                          "threshold abs < 0.05")
    assert msg.endswith("[confound]")
    assert case.find("failure").text.splitlines()[0].startswith("ccc_difference[female] = 0.151")
    out = case.find("system-out").text
    assert "confound: group female is one speaker" in out
    assert "verdict over 15 comparisons, simultaneous 95 %" in out
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["flags"] == "confound" and props["ccc_difference[male].needs_n"] == "340"
    # the judge's own line is used when the entry has one
    own = cases[("sertest.correctness.correctness_regression", "cand.valence")]
    assert own.find("failure").get("message").startswith(
        "failed because ccc 0.12 [0.1, 0.14], threshold > 0.5")
    err = cases[("sertest.correctness.model_health", "cand.all")].find("error").get("message")
    assert "4 of 120 needed item(s) failed" in err and "i07" in err and "[item-failures]" in err
    passed = cases[("sertest.robustness.robustness_noise", "cand.arousal")]
    assert [c.tag for c in passed] == ["properties", "system-out"]
    assert "uninformative" in passed.find("system-out").text


# -- HTML (structure; the browser test is in test_report.py) --------------------------------------

def test_html_view_shows_gated_flags_power_and_failing_first(doc):
    view = html.build_view(Results(doc))
    cand = next(m for m in view.audited if m.name == "cand")
    assert cand.counts["pass"] == 2 and cand.counts["gated"] == 2
    # the "not passed" list: failing first, with the line that says why and the flags
    assert [f["verdict"] for f in view.failing] == ["error", "fail", "fail", "gated", "gated"]
    fair = next(f for f in view.failing if f["test"] == "fairness_sex" and f["dimension"] == "arousal")
    assert fair["because"].startswith("failed because female:")
    assert ("confound", "confound: group female is one speaker") in fair["flags"]
    cells = {r["test"]: r["cells"] for r in view.matrix}
    assert cells["robustness_noise"][("cand", "valence")][0] == "gated"
    assert cells["fairness_sex"][("cand", "valence")][0] == "gated"
    sec = next(s for s in view.sections if s.name == "robustness_noise")
    assert not sec.all_pass  # a gated result is no pass
    dim = next(d for d in next(s for s in view.sections if s.name == "fairness_sex").dims
               if d.dimension == "arousal")
    rows = dim.blocks[0].rows
    assert [r.group for r in rows[:2]] == ["female", "male"]  # failing, then inconclusive
    assert rows[1].power == "mde 0.09; underpowered, needs about 340 items"
    assert dim.blocks[0].multiplicity == "verdict over 15 comparisons, simultaneous 95 % (max-|t| band)"
    assert dim.problems[0]["text"].startswith("failed because female")
    # a gated entry's measurements keep their measured verdict, marked as not scored
    gdim = next(d for d in next(s for s in view.sections if s.name == "fairness_sex").dims
                if d.dimension == "valence")
    assert [(r.verdict, r.gated) for b in gdim.blocks for r in b.rows] == [("pass", True)]
    assert gdim.problems[0]["verdict"] == "gated" and not any(r.gated for r in rows)
    health = next(s for s in view.sections if s.name == "model_health").dims[0]
    assert health.dimension == "all"
    assert "4 of 120 needed item(s) failed" in health.problems[0]["text"]
    page = html.render(Results(doc))
    assert page.count('class="badge v-gated"') >= 4
    assert 'class="flag f-confound"' in page and 'class="flag f-uninformative"' in page
    assert "verdict over 15 comparisons, simultaneous 95 %" in page
    assert re.search(r'class="vbox v-gated" title="cand, valence: gated"', page)


# -- plots never judge --------------------------------------------------------------------------------

def test_forest_plot_colours_rows_by_the_measured_verdict_only():
    thr = {"op": ">", "value": 0.8, "absolute": False, "text": "> 0.8"}
    # values that clear the threshold, but the judge said fail and inconclusive
    chart = svg.dots_ci(["a", "b"], [0.95, 0.97], [[0.9, 0.99], [0.92, 1.0]], threshold=thr,
                        verdicts=["fail", "inconclusive"])
    assert '<g class="v-fail">' in chart and '<g class="v-inconclusive">' in chart
    assert "v-pass" not in chart
    neutral = svg.dots_ci(["a"], [0.1], [[0.05, 0.15]], threshold=thr)
    assert '<g class="v-info">' in neutral and "v-fail" not in neutral
    # the robustness layout takes each condition's verdict from the entry's measurements
    plots = {"kind": "robustness", "unchanged": {"labels": ["noise", "gain"], "values": [0.99, 0.3],
                                                 "ci": [[0.97, 1.0], [0.2, 0.4]]}}
    ms = [{"metric": "unchanged", "group": "noise", "verdict": "inconclusive"},
          {"metric": "unchanged", "group": "gain", "verdict": "pass"}]
    view = render_plots(plots, thresholds={"unchanged": thr}, measurements=ms)[0]
    assert view.svg.index("v-inconclusive") < view.svg.index("v-pass")
    assert "v-fail" not in view.svg


def test_renderers_do_not_import_the_judge():
    here = Path(svg.__file__).parent
    for path in sorted(here.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for banned in ("checks.verdict import", ".judge(", ".passes(", "Threshold("):
            assert banned not in text, f"{path.name} uses {banned!r}: renderers must not judge"


# -- pytest plugin texts ------------------------------------------------------------------------------

def test_plugin_texts_show_gated_flags_and_the_failing_measurement_first(doc):
    by = {(t["test"], t["dimension"], t["model"]): t for t in doc["tests"]}
    gated = skip_reason(doc, by["robustness_noise", "valence", "cand"], "robustness_noise [cand-valence]")
    assert gated.startswith("sertest gated: robustness_noise [cand-valence]: not competent on valence")
    assert "(judged pass)" in gated
    text = failure_text(doc, by["fairness_sex", "arousal", "cand"], "fairness_sex for model 'cand'")
    lines = text.splitlines()
    assert lines[0] == ("fairness_sex for model 'cand' failed because female: ccc_difference 0.151 "
                        "[0.112, 0.19], threshold abs < 0.05:")
    assert lines[1].startswith("  ccc_difference [female] = 0.151") and lines[1].endswith("-> fail")
    assert lines[2].startswith("  ccc_difference [male]") and lines[2].endswith("-> inconclusive")
    assert len(lines) == 5  # no passing group listed; then the flag and the multiplicity
    assert "note: confound: group female is one speaker" in text
    crash = failure_text(doc, by["model_health", "all", "cand"], "model_health for model 'cand'")
    assert "crashed: the model failed 4 of 120" in crash and "i07 (white_noise 20 dB)" in crash
    assert headline(by["robustness_noise", "arousal", "cand"], [], doc).endswith(
        "[uninformative] [clipped]")
    assert headline(by["fairness_sex", "valence", "cand"], [], doc).startswith(
        "not competent on valence")
    skipped = skip_reason(doc, by["fairness_pitch", "arousal", "cand"], "w")
    assert skipped == "sertest skipped: w: too few speakers per pitch group"


def test_documents_without_the_new_fields_render_as_before(doc):
    """No flags, multiplicity, power or gate: nothing extra is printed, nothing breaks."""
    bare = copy.deepcopy(doc)
    for t in bare["tests"]:
        for k in ("flags", "multiplicity", "item_failures", "failed_because", "judged_verdict"):
            t.pop(k, None)
        for m in t["measurements"]:
            m.pop("power", None)
        if t["verdict"] == "gated":
            t["verdict"], t["reason"] = "pass", None
    for s in bare["summary"]["models"].values():
        s.pop("competent", None)
    md = markdown.render(Results(bare))
    assert "gated" not in md.split("| test |")[1]
    text = terminal.summary_text(Results(bare))
    assert "GATED" not in text and "[confound]" not in text
    row = _row(md, "fairness_sex", "arousal")
    assert _cells(row)[-1] == ""  # empty notes column
    assert "failed because female" in row
    html.render(Results(bare))
    junit.render(Results(bare))
