"""Reports: the HTML page in headless Chromium, injection safety, JUnit XML and comparisons.

The browser tests drive Debian's ``chromium`` through ``chromedriver``'s W3C HTTP API with
``urllib`` (no selenium), with DNS mapped to nowhere so the page cannot reach any network.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from sertest import audit
from sertest.report import compare as compare_mod
from sertest.report import html as html_mod
from sertest.report import junit as junit_mod
from sertest.report import write_results
from sertest.report.plots import worst_rows
from sertest.results import Results, summarise
from tests.helpers import make_onnx_model

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="headless browser tests need Debian's chromium and chromedriver "
           "(apt-get install chromium chromium-driver)")

PAYLOADS = ("<script>window.__pwned=1;document.title='pwned'</script>",
            '"><img src=x onerror="window.__pwned=2">',
            "' onmouseover='window.__pwned=3' x='")
#: file names cannot hold "/", so they get the payloads without a closing tag
FILE_PAYLOADS = ('"><img src=x onerror=window.__pwned=4>', "' onmouseover='window.__pwned=5' x='")


# ----------------------------------------------------------------------------------------
# data and audits
# ----------------------------------------------------------------------------------------

def write_manifest(root, n: int = 24, hostile: bool = False) -> str:
    """``n`` 16 kHz WAVs whose level drives 'arousal', plus one corrupt file (an item error)."""
    rng = np.random.default_rng(7)
    os.makedirs(root, exist_ok=True)
    rows = []
    for i in range(n):
        level = rng.uniform(0.02, 0.3)
        t = np.arange(int(16000 * rng.uniform(0.5, 1.0))) / 16000
        x = level * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.01 * rng.standard_normal(t.size)
        stem = f"{FILE_PAYLOADS[i % 2]}{i}" if hostile and i < 4 else f"a{i}"
        sf.write(os.path.join(root, f"{stem}.wav"), x.astype("float32"), 16000)
        rows.append(dict(id=f"{PAYLOADS[i % 3]}{i}" if hostile and i < 6 else f"i{i:02d}",
                         file=f"{stem}.wav",
                         speaker=PAYLOADS[i % 3] if hostile and i % 4 == 0 else f"s{i % 4}",
                         sex="female" if i % 2 else "male",
                         emotion=PAYLOADS[i % 3] if hostile and i % 5 == 0 else
                         ("anger", "happiness", "neutral", "sadness")[i % 4],
                         arousal=round(level / 0.3, 3), dominance=round(rng.uniform(), 3),
                         valence=round(rng.uniform(), 3)))
    bad = FILE_PAYLOADS[0] + "broken" if hostile else "broken"
    with open(os.path.join(root, f"{bad}.wav"), "wb") as fh:
        fh.write(b"RIFF not really a wav")
    rows.append(dict(id=(PAYLOADS[0] if hostile else "") + "broken", file=f"{bad}.wav",
                     speaker="s0", sex="male", emotion="anger", arousal=0.5, dominance=0.5,
                     valence=0.5))
    path = os.path.join(root, "manifest.csv")
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def synthetic_entries(doc: dict, candidate: str, baseline: str, text: str = "") -> list[dict]:
    """Entries of every plot kind the report draws (as fairness/robustness tests write them),
    about real items of the audit, plus an unknown and a malformed plot, an error and a skip."""
    rng = np.random.default_rng(3)
    ids = [e for e in doc["_ids"]][:6]
    thr = {"op": ">", "value": 0.8, "absolute": False, "text": "> 0.8"}
    abs_thr = {"op": "<", "value": 0.075, "absolute": True, "text": "abs < 0.075"}
    noise = {"name": "white_noise", "snr_db": 10.0}
    clean = rng.uniform(0, 1, 60)

    def m(metric, value, ci, verdict, threshold, group=None, n=60):
        return {"metric": metric, "group": group, "value": value, "ci": ci, "n": n,
                "threshold": threshold, "verdict": verdict}

    out = []
    for model, shift in ((candidate, 0.05), (baseline, 0.25)):
        pert = np.clip(clean + rng.normal(0, shift, 60), 0, 1)
        out.append({
            "test": "robustness_synthetic" + text, "check": "robustness_synthetic", "topic": "robustness",
            "model": model, "dimension": "arousal", "description": "Predictions under white noise " + text,
            "verdict": "fail" if model == baseline else "inconclusive",
            "measurements": [m("fraction_unchanged", 0.78 if model == candidate else 0.2, [0.7, 0.86] if model == candidate else [0.12, 0.3],
                               "inconclusive" if model == candidate else "fail", thr, group="white_noise 10 dB" + text),
                             m("ccc_change", -0.02, [-0.05, 0.01], "pass", abs_thr, group="white_noise 10 dB")],
            "plots": {"change": {"clean": clean.round(4).tolist(), "perturbed": pert.round(4).tolist()},
                      "worst": [{"id": i, "condition": noise, "clean": 0.5, "perturbed": 0.5 + 0.3 - 0.05 * k}
                                for k, i in enumerate(ids[:3])],
                      "dose_response": {"parameter": "snr_db", "unit": "dB", "metric": "ccc_change",
                                        "levels": [40, 30, 20, 10, 5, 0],
                                        "values": [0.0, -0.01, -0.03, -0.08, -0.15, -0.3],
                                        "ci": [[-0.01, 0.01], [-0.03, 0.0], [-0.06, 0.0], [-0.12, -0.04],
                                               [-0.2, -0.1], [-0.38, -0.22]],
                                        "threshold": -0.075, "breakdown": 10},
                      "small_changes": {"labels": ["gain_small", "crop_end", "append_zeros" + text],
                                        "values": [0.97, 0.91, 0.74], "metric": "fraction_unchanged"},
                      "confusion": {"labels": ["anger", "happiness", "neutral", "sadness" + text],
                                    "matrix": [[9, 2, 1, 0], [1, 7, 3, 1], [0, 2, 10, 2], [1, 0, 2, 8]]},
                      "mystery": {"kind": "hologram", "payload": text or "<b>not drawn</b>"},
                      "scatter_broken": {"truth": [0.1, 0.2], "prediction": "oops"}},
            "notes": ["noise drawn per item from the audit seed " + text]})
        out.append({
            "test": "fairness_synthetic", "check": "fairness_synthetic", "topic": "fairness", "model": model,
            "dimension": "arousal", "description": "CCC per sex minus CCC of all",
            "verdict": "pass",
            "measurements": [m("ccc_difference", 0.01, [-0.03, 0.05], "pass", abs_thr, group="female"),
                             m("ccc_difference", -0.02, [-0.06, 0.02], "pass", abs_thr, group="male" + text)],
            "plots": {"groups": {"groups": {"all": clean.tolist(), "female": clean[:30].tolist(),
                                            "male" + text: clean[30:].tolist()}, "reference": "all"},
                      "class_shares": {"groups": {"female": {"anger": 0.3, "neutral": 0.7},
                                                  "male" + text: {"anger": 0.5, "neutral" + text: 0.5}}},
                      "speaker_average": {"speaker": [f"s{k}" for k in range(6)] + [text or "s6"],
                                          "truth": rng.uniform(0, 1, 7).round(3).tolist(),
                                          "prediction": rng.uniform(0, 1, 7).round(3).tolist()},
                      "rank": {"truth": clean.tolist(), "prediction": pert.tolist()}}})
    out.append({"test": "fairness_crash", "check": "fairness_crash", "topic": "fairness",
                "model": candidate, "dimension": "arousal", "description": "CCC per pitch group",
                "verdict": "error", "error": "RuntimeError: pitch tracker failed " + text,
                "traceback": "Traceback (most recent call last):\n  ...\nRuntimeError: " + text,
                "measurements": []})
    out.append({"test": "fairness_crash", "check": "fairness_crash", "topic": "fairness",
                "model": baseline, "dimension": "arousal", "description": "CCC per pitch group",
                "verdict": "skipped", "reason": "too few speakers per pitch group " + text,
                "measurements": []})
    return out


#: a small suite over all three topics (tests a colleague has not written yet are left out)
SUITE_TESTS = [
    {"test": "correctness_regression"},
    {"test": "correctness_distribution"},
    {"test": "fairness_sex", "params": {"samples": 200}},
    {"test": "robustness_small_changes", "params": {"changes": ["gain_small", "clip_small", "crop_end"]}},
    {"test": "robustness_dose_noise", "params": {"levels": [30, 10, 0]}},
]


def suite(full: bool) -> dict:
    from sertest.checks import registry

    known = registry()
    tests = [t for t in SUITE_TESTS if t["test"] in known] if full else SUITE_TESTS[:1]
    return {"name": "report-test", "description": "report test suite",
            "bootstrap": {"n_boot": 50, "confidence": 0.95}, "tests": tests}


def run_audit(manifest: str, out: str, onnx: str, extra: str = "", name: str = "m",
              synthetic: bool = True, full: bool = True) -> Results:
    """A real audit (ONNX model + random baseline) extended with synthetic entries."""
    res = audit([f"{name}={onnx}"], manifest, suite(full), out=None, cache=False, progress=False)
    doc = res.doc
    if synthetic:
        from sertest.data import load_dataset

        doc["_ids"] = load_dataset(manifest).ids
        doc["tests"] += synthetic_entries(doc, name, "random-gaussian", extra)
        del doc["_ids"]
        doc["summary"] = summarise(doc)
    write_results(res, out, renderers=("html", "junit", "markdown"))
    return res


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="sertest-report-") as d:
        yield d


@pytest.fixture(scope="module")
def onnx_path(workdir):
    return make_onnx_model(os.path.join(workdir, "m.onnx"))


@pytest.fixture(scope="module")
def report_dir(workdir, onnx_path):
    manifest = write_manifest(os.path.join(workdir, "data"))
    out = os.path.join(workdir, "audit")
    run_audit(manifest, out, onnx_path)
    return out


@pytest.fixture(scope="module")
def hostile_dir(workdir, onnx_path):
    manifest = write_manifest(os.path.join(workdir, "hostile"), hostile=True)
    out = os.path.join(workdir, "hostile-audit")
    run_audit(manifest, out, onnx_path, extra=PAYLOADS[0] + PAYLOADS[1] + PAYLOADS[2],
              name="<script>window.__pwned++</script>", full=False)
    return out


# ----------------------------------------------------------------------------------------
# a minimal chromedriver client
# ----------------------------------------------------------------------------------------

class Browser:
    """Headless Chromium driven over chromedriver's W3C HTTP API."""

    def __init__(self, profile: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self._call("GET", "/status")["value"].get("ready"):
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.1)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000",
                "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9"]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}}}
        self.session = self._call("POST", "/session", caps)["value"]["sessionId"]

    def _call(self, method: str, path: str, body=None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read().decode())

    def cmd(self, method: str, path: str, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)["value"]

    def open(self, path: str) -> None:
        self.cmd("POST", "/url", {"url": "file://" + os.path.abspath(path)})
        deadline = time.monotonic() + 20
        while self.js("return document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise RuntimeError("page did not finish loading")
            time.sleep(0.05)

    def js(self, script: str, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def logs(self) -> list[dict]:
        return self.cmd("POST", "/se/log", {"type": "browser"})

    def screenshot(self, css: str | None = None) -> bytes:
        """The viewport, or only the first element matching ``css``, as PNG bytes."""
        if css is None:
            return base64.b64decode(self.cmd("GET", "/screenshot"))
        element = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        return base64.b64decode(self.cmd("GET", f"/element/{next(iter(element.values()))}/screenshot"))

    def close(self) -> None:
        try:
            self.cmd("DELETE", "")
        finally:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def browser(workdir):
    b = Browser(os.path.join(workdir, "chrome-profile"))
    yield b
    b.close()


def png_colours(data: bytes) -> int:
    """Distinct colours in an 8-bit RGB(A) PNG (sampled every 4th row and 2nd pixel)."""
    width, height, rows = png_rows(data, keep=lambda y: y % 4 == 0)
    colours = set()
    for line in rows.values():
        colours.update(tuple(line[x]) for x in range(0, width, 2))
    return len(colours)


def png_rows(data: bytes, keep=lambda y: True) -> tuple[int, int, dict[int, list[tuple]]]:
    """Decode an 8-bit RGB(A) PNG with zlib alone (no imaging library): width, height and
    the RGB pixels of the rows ``keep`` selects, as {row: [(r, g, b), ...]}."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, chunk = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and colour in (2, 6)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    rows: dict[int, list[tuple]] = {}
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if keep(y):
            rows[y] = [tuple(line[i:i + 3]) for i in range(0, stride, bpp)]
        prev = line
    return width, height, rows


def _severe(logs: list[dict]) -> list[str]:
    return [entry["message"] for entry in logs if entry.get("level") == "SEVERE"]


# ----------------------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------------------

@needs_browser
def test_report_renders_offline_without_errors(report_dir, browser, workdir):
    doc = Results.load(report_dir).doc
    browser.open(os.path.join(report_dir, "report.html"))
    assert _severe(browser.logs()) == []
    # the page's own script ran: the Content-Security-Policy hash matches it
    assert browser.js("return document.documentElement.classList.contains('js')") is True
    # self-contained: nothing but data: URIs was requested
    resources = browser.js("return performance.getEntriesByType('resource').map(r => r.name)")
    assert [r for r in resources if not r.startswith("data:")] == []
    for anchor in ("overview", "how-to-read", "scores", "efficiency", "matrix", "dataset",
                   "gallery", "item-errors", "reproduce"):
        assert browser.js("return !!document.getElementById(arguments[0])", anchor), anchor
    tests = {t["test"] for t in doc["tests"]}
    cells = {(t["test"], t["dimension"]) for t in doc["tests"]}
    assert browser.js("return document.querySelectorAll('section.test').length") == len(tests)
    assert browser.js("return document.querySelectorAll('.dim').length") == len(cells)
    # every test links from the table of contents and the matrix
    for name in tests:
        assert browser.js("return [...document.querySelectorAll('nav.toc a')].some("
                          "a => a.textContent.trim() === arguments[0])", name)
    # known plot kinds are drawn; the unknown and the malformed one show their data instead
    n_svg = browser.js("return document.querySelectorAll('svg.chart:not(.cibar):not(.ciaxis)').length")
    assert n_svg >= 20
    for cls in ("scatter", "hist", "heat", "speakers", "ranks", "change", "dose", "dist", "props", "bars"):
        assert browser.js("return document.querySelectorAll('svg.' + arguments[0]).length", cls) > 0, cls
    # the candidate's plot of an unknown kind and its malformed one show their data; the random
    # baseline's robustness plots are left out of the page (noise about noise)
    assert browser.js("return document.querySelectorAll('pre.raw').length") == 2
    # the gallery embeds clean/perturbed audio the browser can decode
    # as Opus (a tenth of WAV); only the first pair also carries a WAV source, the fallback for
    # browsers without Opus
    srcs = browser.js("return [...document.querySelectorAll('#gallery ~ .card audio')].map("
                      "a => [...a.querySelectorAll('source')].map(s => [s.type, s.src.slice(0, 22)]))")
    assert srcs and all(s[0] == ["audio/ogg; codecs=opus", "data:audio/ogg;base64,"] for s in srcs)
    assert [len(s) for s in srcs] == [2, 2] + [1] * (len(srcs) - 2)
    assert srcs[0][1] == ["audio/wav", "data:audio/wav;base64,"]
    assert browser.js("return document.createElement('audio').canPlayType("
                      "'audio/ogg; codecs=opus')") != ""
    for k in (0, 2):  # this browser plays the Opus source, with and without a fallback beside it
        duration, current = browser.js(
            "const a = document.querySelectorAll('#gallery ~ .card audio')[arguments[0]];"
            "a.preload = 'auto'; a.load(); return new Promise(r => { a.onloadedmetadata = () => "
            "r([a.duration, a.currentSrc.slice(0, 14)]); setTimeout(() => r([-1, '']), 5000); })", k)
        assert 0.3 < duration <= 4.05 and current == "data:audio/ogg"
    # the no-Opus note stays hidden where Opus plays
    assert browser.js("return getComputedStyle(document.querySelector('.no-opus-note')).display") == "none"
    # item errors are listed (the corrupt file), and baselines can be hidden
    assert browser.js("return document.querySelectorAll('#item-errors + .card tbody tr').length") == \
        len(doc["items"]["errors"]) >= 1
    browser.js("document.getElementById('hide-ref').click()")
    assert browser.js("return [...document.querySelectorAll('td.ref')].every("
                      "td => getComputedStyle(td).display === 'none')")
    browser.js("document.getElementById('hide-ref').click()")
    png = browser.screenshot()
    keep = os.environ.get("SERTEST_REPORT_SCREENSHOT")  # e.g. /tmp/report.png, to look at it
    with open(keep or os.path.join(workdir, "report.png"), "wb") as fh:
        fh.write(png)
    assert png_colours(png) > 60
    assert _severe(browser.logs()) == []


@needs_browser
def test_injected_markup_is_shown_as_text_and_never_runs(hostile_dir, browser):
    doc = Results.load(hostile_dir).doc
    browser.open(os.path.join(hostile_dir, "report.html"))
    browser.js("document.querySelectorAll('[onmouseover]').forEach(e => e.dispatchEvent("
               "new MouseEvent('mouseover')))")
    assert browser.js("return typeof window.__pwned") == "undefined"
    assert browser.js("return document.title").startswith("sertest audit")
    # no element or attribute came from the payloads: the markup is intact
    assert browser.js("return document.querySelectorAll('script').length") == 1
    assert browser.js("return document.querySelectorAll('[onerror], [onmouseover], img').length") == 0
    tests = {t["test"] for t in doc["tests"]}
    assert browser.js("return document.querySelectorAll('section.test').length") == len(tests)
    assert browser.js("return document.querySelectorAll('.dim').length") == \
        len({(t["test"], t["dimension"]) for t in doc["tests"]})
    assert browser.js("return document.querySelectorAll('main > h2').length") == 3
    # the payloads are visible as text (escaped, not dropped)
    text = browser.js("return document.body.innerText")
    for payload in PAYLOADS:
        assert payload in text
    assert _severe(browser.logs()) == []


def test_gallery_keeps_its_size_cap_and_degrades_to_a_note(report_dir):
    from sertest.report import gallery
    from sertest.report.html import build_view

    res = Results.load(report_dir)
    view = build_view(res)
    embedded = [c for c in view.clips if c.clean_uri]
    assert 1 <= len(embedded) <= gallery.MAX_ITEMS
    assert sum(len(c.clean_uri) + len(c.perturbed_uri) + len(c.clean_wav or "")
               + len(c.perturbed_wav or "") for c in embedded) <= gallery.BUDGET_BYTES
    # the gallery spans items and conditions: none is heard twice
    assert len({c.item_id for c in view.clips}) == len(view.clips)
    assert len({c.condition for c in view.clips}) == len(view.clips)
    assert [c.clean_wav is not None for c in embedded] == [True] + [False] * (len(embedded) - 1)
    # the perturbed side is what the model heard: not identical to the clean side
    assert all(c.clean_uri != c.perturbed_uri for c in embedded)
    # one audit, one page: the embedded Opus audio is byte-reproducible (the Ogg muxer's
    # stream serial number is random unless it is bit-exact)
    again = build_view(res)
    assert [(c.clean_uri, c.perturbed_uri) for c in again.clips] == \
        [(c.clean_uri, c.perturbed_uri) for c in view.clips]
    # a tiny budget embeds fewer pairs and says so
    candidates = [(e, r, "a") for e in res.tests
                  for r in worst_rows((e.get("plots") or {}).get("worst") or [])]
    clips, notes = gallery.build(res.doc, candidates, budget=len(embedded[0].clean_uri) * 2 + 10,
                                 data_root=res.data_root)
    assert sum(1 for c in clips if c.clean_uri) == 1
    assert any("size" in n or "budget" in n or "MB" in n for n in notes)
    # the dataset is gone: the page still renders, with a note instead of audio
    moved = json.loads(res.to_json())
    moved["dataset"]["source"] = os.path.join(report_dir, "no-such-manifest.csv")
    page = html_mod.render(Results(moved, res.timings))
    assert "<audio" not in page and "Audio could not be embedded" in page


def test_junit_has_one_case_per_test_model_dimension(report_dir):
    from junitparser import Error, Failure, JUnitXml, Properties, Skipped

    doc = Results.load(report_dir).doc
    xml = JUnitXml.fromfile(os.path.join(report_dir, "junit.xml"))
    cases = {(c.classname, c.name): c for s in xml for c in s}
    assert len(cases) == len(doc["tests"]) == sum(1 for s in xml for _ in s)
    roles = {m["name"]: "baseline" if m["info"]["format"] == "random" else m["role"]
             for m in doc["models"]}
    for t in doc["tests"]:
        case = cases[(f"sertest.{t['topic']}.{t['test']}", f"{t['model']}.{t['dimension']}")]
        kinds = {type(r) for r in case.result}
        if roles[t["model"]] == "baseline":
            assert kinds == {Skipped}
        elif t["verdict"] == "fail":
            assert kinds == {Failure}
            bad = [m for m in t["measurements"] if m["verdict"] == "fail"][0]
            msg = case.result[0].message
            assert bad["metric"] in msg and bad["threshold"]["text"] in msg
            assert f"{bad['value']:.4g}" in msg
        elif t["verdict"] == "error":
            assert kinds == {Error} and t["error"] in case.result[0].message
        elif t["verdict"] in ("skipped", "inconclusive", "gated"):
            assert kinds == {Skipped}
            if t["verdict"] == "gated":  # never a pass: skipped, with the reason
                assert case.result[0].message.startswith(f"gated: {t['reason']}")
        else:
            assert kinds == set()
        props = {p.name: p.value for p in case.child(Properties)}
        assert props["verdict"] == t["verdict"]
        for m in t["measurements"]:
            key = m["metric"] + (f"[{m['group']}]" if m["group"] is not None else "")
            assert props[key] == "n/a" if m["value"] is None else float(props[key]) == m["value"]
            assert props[key + ".verdict"] == m["verdict"]
            for bound, suffix in zip(m["ci"] or [], (".ci_low", ".ci_high")):
                assert (key + suffix not in props) if bound is None else float(props[key + suffix]) == bound
    totals = xml if hasattr(xml, "failures") else None
    assert totals is None or totals.failures == sum(
        1 for t in doc["tests"] if t["verdict"] == "fail" and roles[t["model"]] != "baseline")


@needs_browser
def test_compare_cli_shows_each_tests_change(workdir, report_dir, browser, capsys):
    from sertest.cli import main

    # a second real audit: another model (outputs in another order), matched by role
    other = make_onnx_model(os.path.join(workdir, "m2.onnx"), labels=("valence", "arousal", "dominance"))
    cand_dir = os.path.join(workdir, "audit-2")
    run_audit(os.path.join(workdir, "data", "manifest.csv"), cand_dir, other, name="m2",
              synthetic=False, full=False)
    out = os.path.join(workdir, "cmp")
    assert main(["compare", report_dir, cand_dir, "--out", out]) == 0
    assert "compare.html" in capsys.readouterr().out
    base, cand = Results.load(report_dir).doc, Results.load(cand_dir).doc
    md = open(os.path.join(out, "compare.md"), encoding="utf-8").read()
    assert "### m\n" in md and "### random-gaussian (baseline)" in md
    md = md.split("### random-gaussian")[0]  # the candidate's section
    page = open(os.path.join(out, "compare.html"), encoding="utf-8").read()
    for t in cand["tests"]:
        if t["model"] != "m2":
            continue
        b = next(e for e in base["tests"] if e["model"] == "m" and e["test"] == t["test"]
                 and e["dimension"] == t["dimension"])
        for bm, cm in zip(b["measurements"], t["measurements"]):
            delta = cm["value"] - bm["value"]
            row = [line for line in md.splitlines() if line.startswith(
                f"| {t['test'].replace('_', chr(92) + '_')} | {t['dimension']} | "
                f"{bm['metric'].replace('_', chr(92) + '_')} |")]
            assert len(row) == 1, (t["test"], t["dimension"], bm["metric"])
            assert f"{'+' if delta > 0 else ''}{delta:.3f}" in row[0]
            want = compare_mod.direction(bm["threshold"], bm["value"], cm["value"])
            assert {"better": "▲ better", "worse": "▼ worse", "same": "= same",
                    "n/a": ""}[want] in row[0]
    changed = [(e["test"], e["dimension"]) for e in cand["tests"] if e["model"] == "m2" and any(
        b["verdict"] != e["verdict"] for b in base["tests"] if b["model"] == "m"
        and (b["test"], b["dimension"]) == (e["test"], e["dimension"]))]
    assert page.count('class="vc-') >= len(changed)
    browser.open(os.path.join(out, "compare.html"))
    assert _severe(browser.logs()) == []
    assert browser.js("return document.documentElement.classList.contains('js')") is True


def test_compare_direction_follows_the_threshold():
    gt = {"op": ">", "value": 0.5, "absolute": False}
    lt = {"op": "<", "value": 0.1, "absolute": False}
    ab = {"op": "<", "value": 0.075, "absolute": True}
    assert compare_mod.direction(gt, 0.4, 0.6) == "better"
    assert compare_mod.direction(lt, 0.4, 0.6) == "worse"
    assert compare_mod.direction(ab, -0.2, 0.1) == "better"
    assert compare_mod.direction(ab, 0.05, -0.1) == "worse"
    assert compare_mod.direction(None, 0.05, 0.1) == "n/a"
    assert compare_mod.direction(gt, 0.5, 0.5) == "same"


def test_unknown_and_broken_plots_never_break_rendering():
    from sertest.report.plots import render_plots

    weird = {"a": None, "b": [1, "x", None], "c": {"matrix": "nope"}, "d": {"levels": [1], "values": ["x"]},
             "e": {"clean": [0.1, None], "perturbed": [0.2]}, "f": {"groups": {"x": []}},
             "g": {"truth": [], "prediction": []}, "h": {"kind": "confusion", "matrix": [[1, 2], [3]]},
             "worst": [{"id": "<i>", "condition": "{not json"}, 5]}
    views = render_plots(weird, dimension="arousal")
    assert len(views) >= len(weird)
    for v in views:
        assert v.svg is not None or v.rows is not None or v.raw is not None


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.handlers: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.handlers += [k for k, _ in attrs if k.startswith("on")]


@settings(max_examples=25, deadline=None)
@given(before=_TEXT, after=_TEXT, quote=st.sampled_from(['"', "'", "", "</title>", "]]>"]))
def test_any_text_in_results_is_escaped_in_html_and_valid_in_junit(before, after, quote):
    """Whatever the strings in results.json, the page gains no element or event handler and
    the JUnit file stays well-formed XML."""
    import xml.etree.ElementTree as ET

    text = f"{before}{quote}<zz onmouseover=1>{after}\x01"
    page = html_mod.render(Results(_tiny_doc(text)))
    parser = _Tags()
    parser.feed(page)
    assert "zz" not in parser.tags and parser.handlers == []
    xml = junit_mod.render(Results(_tiny_doc(text)))
    root = ET.fromstring(xml.split("\n", 1)[1])
    assert len(root.findall(".//testcase")) == 1


def _tiny_doc(text: str) -> dict:
    thr = {"op": ">", "value": 0.5, "absolute": False, "text": "> 0.5"}
    doc = {"schema": "sertest/results@1", "sertest_version": "0", "seed": 0,
           "suite": {"name": text, "description": text, "path": text, "sha256": "0", "n_boot": 10,
                     "confidence": 0.95, "tests": [text]},
           "dataset": {"name": text, "source": "/nonexistent/" + text, "items": 3, "labels": ["arousal"],
                       "speaker": {text: 3}},
           "reference": None,
           "models": [{"name": text, "role": "candidate", "fingerprint": text,
                       "info": {"format": "onnx", "sampling_rate": 16000, "dimensions": ["arousal"],
                                "classes": [], "parameters": 1, "file_size": 1, "path": text, "extra": {}}}],
           "tests": [{"test": text, "check": text, "topic": "robustness", "model": text,
                      "dimension": "arousal", "description": text, "verdict": "fail",
                      "measurements": [{"metric": text, "group": text, "value": 0.1, "ci": [0.0, 0.2],
                                        "n": 3, "threshold": thr, "verdict": "fail"}],
                      "plots": {text: {"truth": [0.1, 0.5], "prediction": [0.2, 0.4]},
                                "worst": [{"id": text, "condition": {"name": "gain", "gain_db": -6.0},
                                           "clean": 0.1, "perturbed": 0.3}],
                                "speakers": {"speaker": [text], "truth": [0.2], "prediction": [0.5]},
                                "confusion": {"labels": [text, "b"], "matrix": [[1, 0], [0, 1]]}},
                      "notes": [text]}],
           "items": {"total": 3, "errors": [{"id": text, "file": text, "stage": "decode",
                                             "error": text, "condition": None, "model": None}]}}
    doc["summary"] = summarise(doc)
    return doc


@needs_browser
def test_binned_2d_histogram_draws_each_cell_where_it_belongs(browser, workdir):
    from sertest.checks.robustness import CLEAN_EDGES, DELTA_EDGES
    from sertest.report import svg

    counts = np.zeros((len(CLEAN_EDGES) - 1, len(DELTA_EDGES) - 1))
    counts[5, 12] = 10  # the densest cell
    counts[15, 3] = 1  # a faint one
    counts[:, 0] = 1  # and the bottom row: 20 more cells
    chart = svg.hist2d(counts.tolist(), CLEAN_EDGES, DELTA_EDGES, tolerance=None)
    assert chart.count("<rect") < 10  # one masked rect, not a rect per cell
    css = (Path(svg.__file__).parent / "templates" / "report.css").read_text()
    page = Path(workdir) / "hist2d.html"
    page.write_text(f"<!doctype html><html><head><style>{css}</style></head><body>"
                    f"<div style='width:600px'>{chart}</div></body></html>")
    browser.open(str(page))
    box = browser.js("const s = document.querySelector('svg').getBoundingClientRect();"
                     "const r = document.querySelector('rect.h2').getBoundingClientRect();"
                     "return [r.x - s.x, r.y - s.y, r.width, r.height]")
    width, height, rows = png_rows(browser.screenshot("svg"))
    nx, ny = counts.shape

    def pixel(i, j):  # the centre of cell (x bin i, y bin j)
        x = int(box[0] + (i + 0.5) / nx * box[2])
        y = int(box[1] + (1 - (j + 0.5) / ny) * box[3])
        return rows[y][x]

    hot, faint, empty = pixel(5, 12), pixel(15, 3), pixel(10, 20)
    assert hot[2] > 150 and hot[0] < 60, hot  # the stylesheet's blue at full strength
    assert faint[2] > faint[0] + 20 and faint[0] > 120, faint  # the same blue, light
    assert abs(empty[0] - empty[2]) < 12, empty  # background: no blue cast


@needs_browser
def test_page_shows_gated_flags_and_failures_first(browser, workdir):
    """A synthetic results@2 document (tests/test_report_display.py): gated results are
    shown as gated wherever a verdict appears, flags as badges with their text, and the
    list of what did not pass starts with the crash and the failures."""
    from tests.test_report_display import make_doc

    out = Path(workdir) / "display"
    out.mkdir(exist_ok=True)
    (out / "report.html").write_text(html_mod.render(Results(make_doc())), encoding="utf-8")
    browser.open(str(out / "report.html"))
    assert _severe(browser.logs()) == []
    rows = browser.js("return [...document.querySelectorAll('table.failing tbody tr')].map("
                      "r => [r.cells[0].textContent.trim(), r.cells[1].textContent.trim(), "
                      "r.cells[3].textContent.trim(), r.cells[4].innerText])")
    assert [(v, t, d) for v, t, d, _ in rows] == [
        ("! error", "model_health", "all"), ("✗ fail", "correctness_regression", "valence"),
        ("✗ fail", "fairness_sex", "arousal"), ("⊘ gated", "fairness_sex", "valence"),
        ("⊘ gated", "robustness_noise", "valence")]
    assert rows[2][3].startswith("failed because female: ccc_difference 0.151")
    assert "confound: group female is one speaker" in rows[2][3]
    assert "not competent on valence" in rows[3][3]
    # every verdict shown for the gated valence results says gated, none says pass
    dims = browser.js("return [...document.querySelectorAll('.dim')].map(d => "
                      "[d.id, d.querySelector('.dim-head h4').textContent, "
                      "[...d.querySelectorAll('.dim-head .badge')].map(b => b.textContent.trim())])")
    valence = {(i.split('-')[1], tuple(b)) for i, h, b in dims if h.endswith("valence")}
    assert {b for _, b in valence} >= {("⊘ cand: gated",)}
    assert not any("cand: pass" in x for _, b in valence for x in b)
    cells = browser.js("return [...document.querySelectorAll('a.vbox.v-gated')].map(a => "
                       "[a.title, getComputedStyle(a).borderTopStyle])")
    assert sorted(t for t, _ in cells) == ["cand, valence: gated"] * 2
    assert all(style == "dashed" for _, style in cells)
    card = browser.js("return [...document.querySelectorAll('.model-card:not(.ref) .badge.count')].map("
                      "b => b.textContent.replace(/\\s+/g, ' ').trim())")
    assert card == ["✓ 2 pass", "✗ 2 fail", "⊘ 2 gated", "! 1 error", "– 1 skipped"]
    # flags: a visible badge per kind, with its text beside it
    flags = browser.js("return [...document.querySelectorAll('.dim .flagline')].filter("
                       "e => e.offsetParent !== null).map(e => e.textContent.trim())")
    assert any(f.startswith("confound") and "group female is one speaker" in f for f in flags)
    assert any(f.startswith("uninformative") for f in flags)
    assert any(f.startswith("item failures") for f in flags)
    # (textContent: sections off screen are not laid out - content-visibility: auto - so
    # innerText leaves them out until they are scrolled to)
    text = browser.js("return document.body.textContent.replace(/\\s+/g, ' ')")
    assert "verdict over 15 comparisons, simultaneous 95 %" in text
    assert "mde 0.09; underpowered, needs about 340 items" in text
    assert "4 of 120 needed item(s) failed, e.g. i07" in text
