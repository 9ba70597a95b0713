"""``sertest publish``: audits as one static site, checked in headless Chromium; the exit
policy and size limit of ``sertest compare``.

Real audits of tiny ONNX models built here (tests.helpers) on WAVs written here; the browser
is Debian's chromium driven as in tests/test_report.py.
"""

from __future__ import annotations

import json
import os
import tempfile
from html.parser import HTMLParser
from urllib.parse import unquote, urlparse

import pytest

from sertest.cli import main
from sertest.errors import UsageError
from sertest.report import compare as compare_mod
from sertest.report import site as site_mod
from sertest.report import write_results
from sertest.results import Results
from tests.helpers import make_onnx_model
from tests.test_report import Browser, _severe, needs_browser, run_audit, write_manifest

#: a model name that would run script if it reached the page as markup
HOSTILE = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture(scope="module")
def audits():
    """Two audits of the same suite and data (comparable; the second's candidate has a
    hostile name) and a third on other data."""
    with tempfile.TemporaryDirectory(prefix="sertest-site-") as d:
        manifest = write_manifest(os.path.join(d, "data"))
        other = write_manifest(os.path.join(d, "data2"), n=20)
        a = make_onnx_model(os.path.join(d, "a.onnx"))
        b = make_onnx_model(os.path.join(d, "b.onnx"), labels=("valence", "arousal", "dominance"))
        dirs = [os.path.join(d, name) for name in ("first", "second", "elsewhere")]
        run_audit(manifest, dirs[0], a, name="m", synthetic=False, full=False)
        run_audit(manifest, dirs[1], b, name="m2", synthetic=False, full=False)
        _rename(dirs[1], "m2", HOSTILE)  # (--model NAME=SPEC cannot carry an "=")
        run_audit(other, dirs[2], a, name="m", synthetic=False, full=False)
        yield d, dirs


def _rename(folder: str, old: str, new: str) -> None:
    """Rename a model throughout an audit folder (its results, replicates and reports)."""
    res = Results.load(folder)
    doc = res.doc
    for m in doc["models"]:
        m["name"] = new if m["name"] == old else m["name"]
    for t in doc["tests"]:
        t["model"] = new if t["model"] == old else t["model"]
    doc["summary"]["models"] = {new if k == old else k: v
                                for k, v in doc["summary"]["models"].items()}
    reps = {(new + k[len(old):] if k.startswith(old + "|") else k): v
            for k, v in res.replicates.items()}
    write_results(Results(doc, res.timings, replicates=reps), folder)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src") and v:
                self.hrefs.append(v)


def _local_links(page: str) -> list[str]:
    parser = _Links()
    with open(page, encoding="utf-8") as fh:
        parser.feed(fh.read())
    return [h for h in parser.hrefs if not h.startswith(("#", "data:"))]


def test_site_lists_every_audit_and_compares_the_comparable(audits, capsys):
    d, dirs = audits
    site = os.path.join(d, "site")
    assert main(["publish", *dirs, "--out", site]) == 0
    assert "index.html" in capsys.readouterr().out
    facts = json.load(open(os.path.join(site, "site.json"), encoding="utf-8"))
    assert [a["label"] for a in facts["audits"]] == ["first", "second", "elsewhere"]
    # every audited model of every audit is a leaderboard row, candidates before baselines
    want = sum(1 for p in dirs for m in Results.load(p).models
               if m["role"] in ("candidate", "baseline"))
    assert len(facts["leaderboard"]) == want
    first = [r for r in facts["leaderboard"] if r["audit"] == "first"]
    assert [r["baseline"] for r in first] == sorted(r["baseline"] for r in first)
    cand = first[0]
    doc = Results.load(dirs[0]).doc
    assert cand["score"] == doc["summary"]["models"]["m"]["score"]
    assert cand["clean"] and all(len(c["ci"]) == 2 for c in cand["clean"])
    best_ref = max(r["score"] for r in first if r["baseline"])
    assert cand["uplift"] == pytest.approx(cand["score"] - best_ref)
    # only the two audits of the same suite and data are compared
    assert [(c["base"], c["cand"]) for c in facts["comparisons"]] == [("first", "second")]
    # every local link of every page resolves to a file of the site
    pages = [os.path.join(site, "index.html")]
    for page in pages + [os.path.join(site, a["href"]) for a in facts["audits"]]:
        for href in _local_links(page):
            path = os.path.normpath(os.path.join(os.path.dirname(page), unquote(urlparse(href).path)))
            assert os.path.isfile(path), (page, href)
            assert path.startswith(site + os.sep)
    # no absolute path of this machine travels with the site
    for root, _, files in os.walk(site):
        for name in files:
            text = open(os.path.join(root, name), encoding="utf-8").read()
            assert d not in text, os.path.join(root, name)
    # publishing again replaces the site as a whole
    assert main(["publish", dirs[0], "--out", site]) == 0
    assert sorted(os.listdir(os.path.join(site, "audits"))) == ["first"]
    assert not os.path.exists(os.path.join(site, "comparisons"))


def test_site_refuses_what_it_cannot_publish(audits, tmp_path):
    d, dirs = audits
    with pytest.raises(UsageError, match="no results.json"):
        site_mod.publish([str(tmp_path)], str(tmp_path / "site"))
    with pytest.raises(UsageError, match="inside the site folder"):
        site_mod.publish([dirs[0]], d)
    assert main(["publish", str(tmp_path / "missing"), "--out", str(tmp_path / "s")]) == 2


@needs_browser
def test_site_pages_work_offline_and_injection_stays_text(audits):
    d, dirs = audits
    site = os.path.join(d, "site-browser")
    site_mod.publish(dirs, site)
    b = Browser(os.path.join(d, "chrome-profile"))
    try:
        b.open(os.path.join(site, "index.html"))
        assert _severe(b.logs()) == []
        assert b.js("return document.documentElement.classList.contains('js')") is True
        resources = b.js("return performance.getEntriesByType('resource').map(r => r.name)")
        assert [r for r in resources if not r.startswith("data:")] == []
        # the hostile model name is shown as text and never became markup
        assert HOSTILE in b.js("return document.body.innerText")
        assert b.js("return document.querySelectorAll('img, [onerror]').length") == 0
        assert b.js("return typeof window.__pwned") == "undefined"
        rows = b.js("return document.querySelectorAll('#leaderboard tbody tr').length")
        # filters: a model, then a data set, hide the other rows; "all" shows them again
        b.js("const s = document.getElementById('filter-model'); s.value = arguments[0];"
             "s.dispatchEvent(new Event('change'))", HOSTILE)
        shown = b.js("return [...document.querySelectorAll('#leaderboard tbody tr')]"
                     ".filter(r => !r.hidden).map(r => r.dataset.model)")
        assert shown == [HOSTILE]
        assert b.js("return document.getElementById('shown').textContent") == "1"
        b.js("const s = document.getElementById('filter-model'); s.value = '';"
             "s.dispatchEvent(new Event('change'))")
        data = b.js("return [...document.getElementById('filter-data').options].map(o => o.value)")
        b.js("const s = document.getElementById('filter-data'); s.value = arguments[0];"
             "s.dispatchEvent(new Event('change'))", data[1])
        visible = b.js("return [...document.querySelectorAll('#leaderboard tbody tr')]"
                       ".filter(r => !r.hidden).map(r => r.dataset.data)")
        assert visible and set(visible) == {data[1]} and len(visible) < rows
        # every page the index links to opens without errors, offline
        hrefs = b.js("return [...document.querySelectorAll('a[href$=\".html\"]')]"
                     ".map(a => a.href)")
        assert any("comparisons/" in h for h in hrefs) and any("audits/" in h for h in hrefs)
        for href in sorted(set(hrefs)):
            b.open(unquote(urlparse(href).path))
            assert _severe(b.logs()) == [], href
            assert b.js("return typeof window.__pwned") == "undefined"
            assert b.js("return document.querySelectorAll('img, [onerror]').length") == 0
    finally:
        b.close()


def test_compare_fail_on_regression_sets_the_exit_code(audits, capsys):
    d, dirs = audits
    out = os.path.join(d, "cmp")
    # an audit against itself: nothing regressed
    assert main(["compare", dirs[0], dirs[0], "--out", out, "--fail-on", "regression"]) == 0
    assert "0 regression(s): exit 0" in capsys.readouterr().out
    # a worse candidate: its verdicts and clear changes are regressions -> exit 1
    runs = [compare_mod.load_run(dirs[0]), compare_mod.load_run(dirs[1])]
    found = compare_mod.regressions(compare_mod.build(runs))
    code = main(["compare", dirs[0], dirs[1], "--out", out, "--fail-on", "regression"])
    assert code == (1 if found else 0)
    printed = capsys.readouterr().out
    assert f"{len(found)} regression(s)" in printed
    # without --fail-on, compare reports and exits 0
    assert main(["compare", dirs[0], dirs[1], "--out", out]) == 0


def test_compare_md_fits_a_pull_request_comment(audits):
    d, dirs = audits
    runs = [compare_mod.load_run(dirs[0]), compare_mod.load_run(dirs[1])]
    comps = compare_mod.build(runs)
    full = compare_mod.render_markdown(runs, comps, [])
    n_rows = sum(len(mc.rows) for mc in comps)
    limit = len(full) // 2
    short = compare_mod.render_markdown(runs, comps, [], limit=limit)
    assert len(short) <= limit < len(full)
    assert "only in compare.html" in short
    # the most important change comes first: the kept rows are the head of the full order
    body = [line for line in full.splitlines() if line.startswith("| ") and " (Δ) |" not in line]
    kept = [line for line in short.splitlines() if line.startswith("| ") and " (Δ) |" not in line]
    assert set(kept) <= set(body) and len(kept) < len(body)
    assert n_rows > 0
    # no doubled blank lines, whether a table was cut or left out whole
    for text in (full, short, compare_mod.render_markdown(runs, comps, [], limit=3000)):
        assert "\n\n\n" not in text


def test_importance_orders_regressions_first():
    Cell = compare_mod.Cell
    cells = [Cell(direction="better", clear=True, delta=0.3),
             Cell(direction="worse", clear=False, delta=-0.5),
             Cell(direction="worse", clear=True, delta=-0.1, q_value=0.01),
             Cell(direction="same", delta=0.0),
             Cell(direction="better", verdict_change="regressed", delta=0.01)]
    order = sorted(range(len(cells)), key=lambda i: compare_mod.importance(cells[i]))
    assert order == [4, 2, 0, 1, 3]


REPORTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reports")


@needs_browser
@pytest.mark.skipif(not os.path.isfile(os.path.join(REPORTS, "site.json")),
                    reason="the published site is built by 'make reports'")
def test_published_reports_meet_their_size_targets():
    """The site `make reports` publishes: each report's size, compare.md's length, and each
    page in Chromium (no console errors; load times are measured and written to
    build/site-measurements.json, not asserted)."""
    facts = json.load(open(os.path.join(REPORTS, "site.json"), encoding="utf-8"))
    sizes = {a["label"]: os.path.getsize(os.path.join(REPORTS, a["href"])) for a in facts["audits"]}
    if "default-wav2small" in sizes:
        assert sizes["default-wav2small"] <= 1_500_000
    assert all(size <= 5_000_000 for size in sizes.values()), sizes
    for c in facts["comparisons"]:
        assert len(open(os.path.join(REPORTS, c["md"]), encoding="utf-8").read()) < 60_000
    measured = {}
    with tempfile.TemporaryDirectory() as d:
        b = Browser(os.path.join(d, "profile"))
        try:
            pages = ["index.html"] + [a["href"] for a in facts["audits"]] + [
                c["href"] for c in facts["comparisons"]]
            for page in pages:
                b.open(os.path.join(REPORTS, page))
                assert _severe(b.logs()) == [], page
                t = b.js("const n = performance.getEntriesByType('navigation')[0];"
                         "return [n.domContentLoadedEventEnd, n.loadEventEnd]")
                measured[page] = {"bytes": os.path.getsize(os.path.join(REPORTS, page)),
                                  "dom_content_loaded_ms": round(t[0]), "load_ms": round(t[1]),
                                  "svgs": b.js("return document.querySelectorAll('svg').length"),
                                  "nodes": b.js("return document.getElementsByTagName('*').length")}
        finally:
            b.close()
    out = os.path.join(os.path.dirname(REPORTS), "build")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "site-measurements.json"), "w", encoding="utf-8") as fh:
        json.dump(measured, fh, indent=1)
