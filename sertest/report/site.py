"""``sertest publish``: several audits as one static site.

``publish(audit_dirs, out)`` reads each audit folder written by ``sertest run`` (its
``results.json``, ``report.html``, ``summary.md`` and ``timings.json``) and writes::

    SITE/index.html                  leaderboard (models x topics, baselines, clean accuracy
                                     with its confidence interval), the audits, the comparisons;
                                     filters by suite, data and model
    SITE/site.json                   the same facts as data
    SITE/audits/NAME/report.html     each audit's report (rendered here if the folder has none)
    SITE/audits/NAME/results.json    ... and its results, summary and timings
    SITE/comparisons/A--B/compare.html, compare.md
                                     the first audit of each suite and data against each later
                                     audit of the same suite and data (``sertest compare``)

Every page is self-contained (inline CSS and script, ``data:`` URIs only) and loads nothing
from the network; links between the pages are relative, so the folder can be served from
anywhere or opened from disk.  Names from the audits (models, folders, suites) go through
Jinja2 autoescaping and become folder names only as slugs.  The site is written at once
(:class:`sertest.report.publish.OutputFolder`); ``timings.json`` loses the absolute roots
the audit ran from (:mod:`sertest.published`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Any, Sequence

from markupsafe import Markup

from ..errors import UsageError
from ..results import TOPICS, Results, data_identity

#: files copied from each audit folder into the site (replicates and junit.xml stay behind)
COPIED = ("report.html", "results.json", "summary.md", "timings.json")
#: the metrics a leaderboard row names as clean accuracy, by preference
HEADLINE = ("ccc", "uar")


@dataclass
class Audit:
    """One audit folder as the site shows it."""

    folder: str
    results: Results
    label: str
    slug: str = ""

    @property
    def doc(self) -> dict:
        return self.results.doc

    @property
    def suite(self) -> str:
        return str((self.doc.get("suite") or {}).get("name") or "suite")

    @property
    def data(self) -> str:
        ds = self.doc.get("dataset") or {}
        return f"{ds.get('name') or 'data'} ({ds.get('items', '?')} items)"

    @property
    def key(self) -> tuple:
        """Audits with the same key ran the same suite on the same data (comparable)."""
        s = self.doc.get("suite") or {}
        return (s.get("name"), s.get("sha256"), data_identity(self.doc))


@dataclass
class Row:
    """One leaderboard row: a model of one audit."""

    audit: Audit
    model: str
    role: str
    is_ref: bool
    score: float | None
    topics: dict[str, float | None]
    uplift: float | None
    comparator: str | None
    headline: list[dict] = field(default_factory=list)  # [{dimension, metric, value, ci}]
    label_free: bool = False


def slug(text: str, taken: set[str]) -> str:
    """A folder name for ``text``: lowercase ASCII letters, digits and dashes, unique in
    ``taken`` (which it joins)."""
    base = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:48] or "audit"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def load(audit_dirs: Sequence[str]) -> list[Audit]:
    """The audits, labelled by their folder names (made unique)."""
    if not audit_dirs:
        raise UsageError("sertest publish needs at least one audit folder (written by "
                         "'sertest run')")
    audits, taken, labels = [], set(), []
    for folder in audit_dirs:
        path = folder if folder.endswith(".json") else os.path.join(folder, "results.json")
        if not os.path.isfile(path):
            raise UsageError(f"{folder}: no results.json here; give folders written by "
                             "'sertest run'")
        results = Results.load(path)
        base = os.path.dirname(os.path.abspath(path))
        label = os.path.basename(base) or "audit"
        if label in labels:
            label = f"{label} ({labels.count(label) + 1})"
        labels.append(label)
        audits.append(Audit(base, results, label, slug(label, taken)))
    return audits


def _headline(doc: dict, model: str) -> list[dict]:
    """The model's clean accuracy per dimension with its interval: the first correctness
    test's CCC (or UAR) over all items."""
    out, seen = [], set()
    for t in doc.get("tests", []):
        if t.get("model") != model or t.get("topic") != "correctness" or t["dimension"] in seen:
            continue
        for metric in HEADLINE:
            m = next((m for m in t.get("measurements", []) if m.get("metric") == metric
                      and m.get("group") is None and m.get("value") is not None), None)
            if m is not None:
                out.append({"dimension": t["dimension"], "metric": metric, "value": m["value"],
                            "ci": m.get("ci"), "verdict": m.get("verdict")})
                seen.add(t["dimension"])
                break
    return out


def leaderboard(audits: list[Audit]) -> list[Row]:
    """One row per audited model (candidates and baselines) of every audit, each audit's
    rows by score (best first), with the uplift over its random baseline."""
    from .html import _comparators, _models

    rows = []
    for a in audits:
        views = [m for m in _models(a.results) if m.role in ("candidate", "baseline")]
        _comparators(views, a.doc.get("tests", []))
        mine = []
        for m in views:
            s = m.summary or {}
            mine.append(Row(a, m.name, m.role_label, m.is_ref, s.get("score"),
                            {t: (s.get("topics") or {}).get(t) for t in TOPICS}, m.uplift,
                            m.comparator.name if m.comparator else None,
                            _headline(a.doc, m.name), bool(a.doc.get("reference"))))
        mine.sort(key=lambda r: (r.is_ref, -(r.score if r.score is not None else -1)))
        rows += mine
    return rows


def comparable(audits: list[Audit]) -> list[tuple[Audit, Audit]]:
    """(baseline, candidate) pairs: the first audit of each suite and data against each
    later one of the same suite and data."""
    groups: dict[tuple, list[Audit]] = {}
    for a in audits:
        groups.setdefault(a.key, []).append(a)
    return [(g[0], b) for g in groups.values() for b in g[1:]]


def _copy(a: Audit, dest: str) -> None:
    os.makedirs(dest)
    for name in COPIED:
        src = os.path.join(a.folder, name)
        if name == "timings.json":
            timings = dict(a.results.timings)
            timings.pop("paths", None)  # this machine's absolute roots stay behind
            if timings:
                with open(os.path.join(dest, name), "w", encoding="utf-8") as fh:
                    json.dump(timings, fh, indent=1, sort_keys=True)
        elif os.path.isfile(src):
            shutil.copyfile(src, os.path.join(dest, name))
    from . import html, markdown

    for module, name in ((html, "report.html"), (markdown, "summary.md")):
        if not os.path.isfile(os.path.join(dest, name)):  # render what the folder lacks
            with open(os.path.join(dest, name), "w", encoding="utf-8") as fh:
                fh.write(module.render(a.results))


def _compare(base: Audit, cand: Audit, dest: str) -> dict:
    from . import compare as cmp

    runs = [cmp.Run(base.folder, base.results, base.label), cmp.Run(cand.folder, cand.results,
                                                                     cand.label)]
    if runs[0].label == runs[1].label:
        runs[1].label += " (2)"
    comps = cmp.build(runs)
    notes = cmp.caveats(runs)
    os.makedirs(dest)
    for name, text in (("compare.html", cmp.render_html(runs, comps, notes)),
                       ("compare.md", cmp.render_markdown(runs, comps, notes))):
        with open(os.path.join(dest, name), "w", encoding="utf-8") as fh:
            fh.write(text)
    found = cmp.regressions(comps)
    return {"base": base.label, "cand": cand.label, "regressions": len(found),
            "href": f"comparisons/{os.path.basename(dest)}/compare.html",
            "md": f"comparisons/{os.path.basename(dest)}/compare.md",
            "suite": base.suite, "data": base.data}


def publish(audit_dirs: Sequence[str], out: str) -> list[str]:
    """Write the site into ``out`` at once; returns the pages written (index first)."""
    from .publish import OutputFolder

    audits = load(audit_dirs)
    site = os.path.abspath(out)
    for a in audits:  # the site replaces its folder: an audit inside it would be lost
        if a.folder == site or a.folder.startswith(site.rstrip(os.sep) + os.sep):
            raise UsageError(f"--out {out}: the audit {a.folder} is inside the site folder, "
                             "which publishing replaces; write the site elsewhere")
    rows = leaderboard(audits)
    pages = []
    with OutputFolder(out) as folder:
        for a in audits:
            _copy(a, folder.path(os.path.join("audits", a.slug)))
            pages.append(os.path.join(out, "audits", a.slug, "report.html"))
        comparisons = []
        taken: set[str] = set()
        for base, cand in comparable(audits):
            name = slug(f"{base.slug}--{cand.slug}", taken)
            comparisons.append(_compare(base, cand, folder.path(os.path.join("comparisons", name))))
            pages.append(os.path.join(out, "comparisons", name, "compare.html"))
        with open(folder.path("index.html"), "w", encoding="utf-8") as fh:
            fh.write(render_index(audits, rows, comparisons))
        with open(folder.path("site.json"), "w", encoding="utf-8") as fh:
            json.dump(site_facts(audits, rows, comparisons), fh, indent=1, allow_nan=False,
                      ensure_ascii=False)
            fh.write("\n")
        folder.commit()
    return [os.path.join(out, "index.html")] + pages


def site_facts(audits: list[Audit], rows: list[Row], comparisons: list[dict]) -> dict:
    from .._version import __version__

    return {"schema": "sertest/site@1", "sertest_version": __version__,
            "audits": [{"label": a.label, "href": f"audits/{a.slug}/report.html",
                        "suite": a.suite, "data": a.data, "seed": a.doc.get("seed"),
                        "reference": a.doc.get("reference")} for a in audits],
            "leaderboard": [{"audit": r.audit.label, "model": r.model, "role": r.role,
                             "baseline": r.is_ref, "score": r.score, "topics": r.topics,
                             "uplift": r.uplift, "comparator": r.comparator,
                             "clean": r.headline} for r in rows],
            "comparisons": comparisons}


def _asset(name: str) -> str:
    from .html import TEMPLATES

    with open(os.path.join(TEMPLATES, name), encoding="utf-8") as fh:
        return fh.read()


def render_index(audits: list[Audit], rows: list[Row], comparisons: list[dict]) -> str:
    """index.html: the leaderboard with filters, the audits and the comparisons."""
    from .._version import __version__
    from .html import _env, squeeze

    css, js = _asset("report.css"), _asset("site.js")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    csp = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    options = {"suite": sorted({a.suite for a in audits}),
               "data": sorted({a.data for a in audits}),
               "model": sorted({r.model for r in rows})}
    return squeeze(_env().get_template("site.html.j2").render(
        audits=audits, rows=rows, comparisons=comparisons, topics=TOPICS, options=options,
        css=Markup(css), js=Markup(js), csp=csp, renderer_version=__version__))
