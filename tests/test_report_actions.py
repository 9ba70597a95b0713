"""Reports people act on: what did not pass comes first, what passed is folded, scores carry
their uplift over the random baseline and the share of item errors, label-free audits say so
in every output; CLI polish (plurals, thresholds, "did you mean", the report path).

Synthetic documents come from tests/test_report_display.py; the browser checks reuse the
chromedriver client of tests/test_report.py.
"""

from __future__ import annotations

import copy
import os
import re

import pytest

from sertest.cli import main
from sertest.errors import UsageError
from sertest.report import display, html, markdown, terminal
from sertest.results import Results, command_line
from tests.test_report import Browser, _severe, needs_browser, write_manifest
from tests.test_report_display import make_doc


def test_failing_cells_first_and_passing_cells_folded():
    view = html.build_view(Results(make_doc()))
    dims = {s.name: [(d.dimension, d.cand_worst, d.folded) for d in s.dims] for s in view.sections}
    # the failing dimension comes before the passing one; only passing (or unjudged) cells fold
    assert dims["correctness_regression"] == [("valence", "fail", False), ("arousal", "pass", True)]
    assert dims["robustness_noise"] == [("valence", "gated", False), ("arousal", "pass", True)]
    assert dims["fairness_pitch"] == [("arousal", "skipped", True)]
    # within a topic, the tests whose candidate did not pass come first
    correctness = [s.name for s in view.sections if s.topic == "correctness"]
    assert correctness == ["model_health", "correctness_regression"]


def test_score_cards_carry_uplift_and_item_error_share():
    doc = make_doc()
    doc["items"]["errors"] = [{"id": f"i{k}", "file": f"i{k}.wav", "stage": "predict",
                               "error": "boom", "condition": None, "model": "cand"}
                              for k in range(3)] + [
        {"id": "i0", "file": "i0.wav", "stage": "decode", "error": "bad", "condition": None,
         "model": None}]
    view = html.build_view(Results(doc))
    cand = next(m for m in view.audited if m.name == "cand")
    rnd = next(m for m in view.audited if m.name == "rnd")
    assert cand.comparator is rnd and cand.uplift == pytest.approx(0.4 - 0.5)
    assert cand.error_share == pytest.approx(3 / 120)  # i0 counted once
    assert rnd.error_share == pytest.approx(1 / 120)  # decode errors count for every model
    page = html.render(Results(doc))
    assert "-10 points over rnd" in page and "item errors 2.5 %" in page


def test_label_free_audits_say_so_in_every_output():
    doc = make_doc()
    doc["reference"] = "teacher"
    res = Results(doc)
    page = html.render(res)
    hero = page[page.index('<header class="hero"'):page.index("</header>")]
    assert "Label-free audit" in hero and "teacher" in hero
    md = markdown.render(res)
    assert md.splitlines()[2].startswith("> **Label-free audit") and "teacher" in md.splitlines()[2]
    assert terminal.summary_text(res).splitlines()[1].startswith("LABEL-FREE AUDIT: the truth is")
    plain = make_doc()
    assert "Label-free" not in markdown.render(Results(plain))
    assert "LABEL-FREE" not in terminal.summary_text(Results(plain))
    assert display.label_free_text(plain) == ""


def test_calibrated_thresholds_are_rounded_for_display_only():
    doc = make_doc()
    thr = {"op": "<", "value": 0.514379, "absolute": True, "text": "abs < 0.514379"}
    entry = doc["tests"][2]
    for m in entry["measurements"]:
        m["threshold"] = copy.deepcopy(thr)
    entry["failed_because"] = "female: ccc_difference 0.151234 [0.112, 0.19], threshold abs < 0.514379"
    res = Results(doc)
    assert display.threshold_text(thr) == "abs < 0.514"
    for text in (html.render(res), markdown.render(res), terminal.summary_text(res)):
        assert "0.514379" not in text
        assert "abs < 0.514" in text.replace("&lt;", "<").replace("\\<", "<")
    assert "0.514379" in res.to_json()  # results.json keeps the full precision


def test_long_tables_fold_into_one_row_per_group():
    view = html.build_view(Results(make_doc()))
    dim = next(d for s in view.sections if s.name == "fairness_sex" for d in s.dims
               if d.dimension == "arousal")
    assert dim.long and dim.bad_rows == 2
    assert [r.group for b in dim.bad_blocks for r in b.rows] == ["female", "male"]
    pivot = dim.pivot
    assert pivot["models"] == [("cand", False)]
    (block, groups), = pivot["blocks"]
    assert len(groups) == 15 and all(len(cells) == 1 for _, cells in groups)


def test_page_is_squeezed_but_keeps_scripts_and_preformatted_text():
    page = html.render(Results(make_doc()))
    assert not re.search(r"\n[ \t]+<", page.split("<script>")[0].split("<style>")[0])
    js = open(os.path.join(html.TEMPLATES, "report.js"), encoding="utf-8").read()
    assert f"<script>{js}</script>" in page  # byte for byte: its hash is in the CSP


@needs_browser
def test_folded_cells_open_from_links_in_the_browser(tmp_path):
    path = tmp_path / "report.html"
    path.write_text(html.render(Results(make_doc())), encoding="utf-8")
    b = Browser(str(tmp_path / "profile"))
    try:
        b.open(str(path))
        assert _severe(b.logs()) == []
        folded = b.js("return [...document.querySelectorAll('details.dim')].map(d => [d.id, d.open])")
        assert folded and not any(is_open for _, is_open in folded)
        # a link to a folded cell (the matrix, the sidebar) opens it
        target = folded[0][0]
        b.js("location.hash = arguments[0]", target)
        assert b.js("return new Promise(r => setTimeout(() => "
                    "r(document.getElementById(arguments[0]).open), 100))", target) is True
        # the failing cells are open, their tables drawn
        assert b.js("return document.querySelectorAll('div.dim svg.cibar').length") > 0
        # full names in the sidebar: wrapped, never cut, and on hover
        names = b.js("return [...document.querySelectorAll('nav.toc a')].map(a => "
                     "[a.title, a.textContent.trim(), a.scrollWidth <= a.clientWidth + 1])")
        assert all(title == text and fits for title, text, fits in names if title)
    finally:
        b.close()


def test_list_says_plurals_and_thresholds(capsys):
    assert main(["list", "suites"]) == 0
    out = capsys.readouterr().out
    assert not re.search(r"\b1 tests\b", out) and re.search(r"\b1 test\b", out)
    assert main(["list", "tests"]) == 0
    out = capsys.readouterr().out
    assert "None" not in out and "reported without a threshold:" in out
    assert all(len(line) <= 120 for line in out.splitlines() if line.startswith(" " * 46))


def test_did_you_mean_for_suites_tests_metrics_and_options(capsys):
    from sertest.checks import registry
    from sertest.suite import load_suite

    assert main(["run", "--model", "random:gaussian", "--suite", "defualt", "--out", "x"]) == 2
    assert "did you mean 'default'?" in capsys.readouterr().err
    with pytest.raises(UsageError, match="did you mean 'correctness_regression'"):
        load_suite({"name": "s", "tests": [{"test": "correctness_regresion"}]})
    cls = registry()["correctness_regression"]
    with pytest.raises(UsageError, match="did you mean 'ccc'"):
        cls(thresholds={"cccc": "> 0.5"})
    with pytest.raises(SystemExit):
        main(["run", "--model", "m.onnx", "--n-bot", "3"])
    assert "did you mean --n-boot?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["lst"])
    assert "did you mean list?" in capsys.readouterr().err


def test_run_ends_with_the_report_path_and_records_its_command(tmp_path, capsys, monkeypatch):
    manifest = write_manifest(str(tmp_path / "data"), n=12)
    out = tmp_path / "audit"
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--model", "random:gaussian", "--data", manifest, "--suite", "smoke",
                 "--out", str(out), "--no-progress", "--no-cache", "--n-boot", "20"])
    assert code in (0, 1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"report: {out / 'report.html'}"
    timings = Results.load(str(out)).timings
    assert timings["command"].startswith("sertest run --model random:gaussian --data data/")
    assert str(tmp_path) not in timings["command"]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "sertest run --model random:gaussian" in page
    # outside the working folder, a path is shortened to its name
    assert command_line(["sertest", "--data=/elsewhere/x/manifest.csv"]) == \
        "sertest '--data=…/manifest.csv'"


@needs_browser
def test_links_land_on_their_section_in_a_long_report(tmp_path):
    """Sections off screen are not laid out (content-visibility: auto); a jump to any anchor
    of a long page still lands on it (instant scrolling, no smooth scroll aiming at the
    estimated heights)."""
    doc = make_doc()
    fair = next(t for t in doc["tests"] if t["test"] == "fairness_sex" and t["dimension"] == "arousal")
    for k in range(30):  # a long page: 30 more failing fairness tests
        doc["tests"].append({**copy.deepcopy(fair), "test": f"fairness_copy_{k:02d}"})
    path = tmp_path / "long.html"
    path.write_text(html.render(Results(doc)), encoding="utf-8")
    b = Browser(str(tmp_path / "profile"))
    try:
        b.open(str(path))
        ids = b.js("return [...document.querySelectorAll('nav.toc a')].map(a => a.getAttribute('href').slice(1))")
        room = b.js("return document.documentElement.scrollHeight - window.innerHeight")
        for target in ids[::-1] + ids[::3]:
            b.js("location.hash = arguments[0]", target)
            top, y = b.js("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame("
                          "() => r([document.getElementById(arguments[0]).getBoundingClientRect().top,"
                          " window.scrollY]))))", target)
            room = b.js("return document.documentElement.scrollHeight - window.innerHeight")
            assert abs(top - 12) <= 2 or y >= room - 1, (target, top)  # (or the page's end)
        assert _severe(b.logs()) == []
    finally:
        b.close()
