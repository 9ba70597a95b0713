"""``report.html``: one self-contained audit report (inline CSS, JS, SVG and audio).

The page reads only the results document (and ``timings.json`` if present) plus, for the
listening gallery, the dataset's audio files.  It needs no network: no CDN, no web fonts,
and a Content-Security-Policy that allows only the page's own script (by hash), inline
styles and ``data:`` images and audio.  Every string from the results goes through
Jinja2 autoescaping (templates) or :func:`markupsafe.escape` (SVG built in Python).

Layout: header and bottom line per candidate; the candidates' results that did not pass,
failing first (error, fail, inconclusive, gated) with the line that says why and their
flags; "how to read" box; overview (scores, verdict counts, competence gate, efficiency,
test matrix, dataset); one section per test with, per dimension, the problems (failing
first), the flags and the measurements (value, CI bar against the threshold, the measured
verdict, power; metrics and groups with a failing measurement first) and plots per model;
the listening gallery; item errors; reproducibility facts.

Verdicts are read from the document (:mod:`sertest.report.display`): a gated result is shown
as gated wherever a verdict appears and counted apart from passes; nothing here judges.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment, FileSystemLoader, Undefined
from markupsafe import Markup

from .._version import __version__
from ..checks import metric_info
from ..results import TOPICS, Results
from . import display, gallery, svg
from ..validate.shipped import shipped_validity, validity_line
from .plots import PlotView, render_plots

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")

VERDICT_ORDER = display.ORDER
VERDICT_ICON = {"pass": "✓", "fail": "✗", "inconclusive": "?", "error": "!", "skipped": "–",
                "gated": "⊘", "info": "i"}


def metric_help(metric: str) -> str:
    """A one-line explanation of a metric id (empty if unknown), from the metric
    declarations (:mod:`sertest.checks.metric_info`)."""
    return metric_info.metric_help(metric)


# ----------------------------------------------------------------------------------------
# view model
# ----------------------------------------------------------------------------------------

@dataclass
class ModelView:
    name: str
    role: str
    is_ref: bool
    role_label: str
    info: dict
    summary: dict
    timing: dict
    competent: dict
    comparator: "ModelView | None" = None  # the random baseline on the same outputs
    counts: dict = field(default_factory=dict)  # entries per shown verdict (gated apart)
    error_share: float | None = None  # share of the dataset's items with an item error

    @property
    def uplift(self) -> float | None:
        """Overall score minus the comparator's (the random baseline on the same outputs)."""
        s = self.summary.get("score")
        if self.comparator is None or s is None or self.comparator.summary.get("score") is None:
            return None
        return s - self.comparator.summary["score"]


@dataclass
class MeasureRow:
    model: str
    is_ref: bool
    group: str | None
    first_of_group: bool
    value: Any
    ci: Any
    n: Any
    verdict: str
    threshold_text: str
    bar: Markup
    few: bool
    note: str = ""
    power: str = ""  # mde / underpowered / needs n, compact
    gated: bool = False  # the entry is gated: this measured verdict is not scored


@dataclass
class MetricBlock:
    metric: str
    help: str
    threshold_text: str
    axis: Markup
    rows: list[MeasureRow]
    grouped: bool
    skipped: list[str] = field(default_factory=list)  # groups not measurable for any model
    skip_reason: str = ""
    multiplicity: str = ""  # "verdict over 30 comparisons, simultaneous 95 %" (candidates')


@dataclass
class PlotCard:
    model: str
    is_ref: bool
    verdict: str
    views: list[PlotView]
    more: list[PlotView]  # secondary plots, shown folded


#: a dimension with more measurement rows than this shows the candidates' problems and folds
#: the full table (compact: one row per group, one column per model)
LONG_TABLE = 6
#: rows of the candidates' problems drawn with CI bars in a long dimension (the worst first);
#: the rest are in the folded full table
PROBLEM_ROWS = 5


@dataclass
class DimView:
    dimension: str
    anchor: str
    verdicts: list[tuple[str, bool, str]]  # model, is_ref, verdict
    blocks: list[MetricBlock]
    cards: list[PlotCard]
    problems: list[dict]
    notes: list[tuple[str, str]]
    #: per entry: model, is_ref, flags [(kind, text)], multiplicity text
    marks: list[dict] = field(default_factory=list)
    #: how this test fared against planted defects and an oracle on this very suite and
    #: data (``make validity``, :mod:`sertest.validate.shipped`); ``None`` elsewhere
    validity: str | None = None

    @property
    def n_rows(self) -> int:
        return sum(len(b.rows) for b in self.blocks)

    @property
    def cand_worst(self) -> str:
        """The worst verdict of the candidates (``skipped`` when none ran here)."""
        return display.worst([v for _, r, v in self.verdicts if not r])

    @property
    def folded(self) -> bool:
        """Shown folded: no candidate failed, was inconclusive, gated or crashed here."""
        return self.cand_worst in ("pass", "skipped")

    @property
    def long(self) -> bool:
        return self.n_rows > LONG_TABLE

    @property
    def bad_blocks(self) -> list[MetricBlock]:
        """The blocks restricted to candidates' fail/inconclusive/error rows, at most
        :data:`PROBLEM_ROWS` of them (failing before inconclusive, blocks in order)."""
        out = []
        bad = [(b, r) for b in self.blocks for r in b.rows
               if not r.is_ref and r.verdict in ("fail", "inconclusive", "error")]
        keep = {id(r) for _, r in sorted(bad, key=lambda br: display.MEASURE_RANK.get(
            br[1].verdict, 2))[:PROBLEM_ROWS]}
        for b in self.blocks:
            rows = [r for r in b.rows if id(r) in keep]
            if rows:
                fixed = []
                last = object()
                for r in rows:
                    fixed.append(MeasureRow(**{**r.__dict__, "first_of_group": r.group != last}))
                    last = r.group
                out.append(MetricBlock(b.metric, b.help, b.threshold_text, b.axis, fixed, b.grouped,
                                       multiplicity=b.multiplicity))
        return out

    @property
    def pivot(self) -> dict:
        """The full table with one row per metric and group and one column per model (the
        compact form of a long table): ``{models: [(name, is_ref)], blocks: [(block,
        [(group, [row or None per model])])]}``."""
        models: list[tuple[str, bool]] = []
        for b in self.blocks:
            for r in b.rows:
                if (r.model, r.is_ref) not in models:
                    models.append((r.model, r.is_ref))
        out = []
        for b in self.blocks:
            groups: dict[Any, dict[str, MeasureRow]] = {}
            for r in b.rows:
                groups.setdefault(r.group, {})[r.model] = r
            out.append((b, [(g, [cells.get(m) for m, _ in models]) for g, cells in groups.items()]))
        return {"models": models, "blocks": out}

    @property
    def bad_rows(self) -> int:
        """The candidates' rows that did not pass (all, also those not drawn)."""
        return sum(1 for b in self.blocks for r in b.rows
                   if not r.is_ref and r.verdict in ("fail", "inconclusive", "error"))


@dataclass
class TestSection:
    name: str
    anchor: str
    topic: str
    check: str
    description: str
    dims: list[DimView]
    verdicts: list[tuple[str, bool, str]]  # model, is_ref, worst verdict over dimensions
    all_pass: bool


@dataclass
class View:
    doc: dict
    title: str
    models: list[ModelView]
    audited: list[ModelView]
    topics: list[str]
    sections: list[TestSection]
    matrix: list[dict]
    callouts: list[dict]
    dataset: dict
    errors: list[dict]
    errors_total: int
    error_stages: dict
    clips: list
    clip_notes: list[str]
    timings: dict
    nav: list[dict] = field(default_factory=list)
    matrix_cols: list = field(default_factory=list)
    matrix_dims: list = field(default_factory=list)
    #: candidates' entries that did not pass, failing first (error, fail, inconclusive, gated)
    failing: list[dict] = field(default_factory=list)
    #: the reference model whose clean predictions are the truth (label-free audit), or None
    label_free: str | None = None


def slug(text: str, prefix: str = "s") -> str:
    """A safe, unique HTML id for any text (ASCII letters, digits and dashes plus a hash)."""
    base = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:40]
    digest = hashlib.blake2b(str(text).encode("utf-8"), digest_size=3).hexdigest()
    return f"{prefix}-{base}-{digest}" if base else f"{prefix}-{digest}"


def _worst(verdicts: list[str]) -> str:
    return display.worst(verdicts)


def _metric_domain(rows: list[dict]) -> tuple[float, float]:
    """A shared axis for one metric's CI bars: the values, the CIs and the threshold, with
    room on the threshold's far side so the passing region stays visible."""
    vals, inc = [], []
    for m in rows:
        vals.append(m.get("value"))
        vals += list(m.get("ci") or [])
        inc += svg.threshold_lines(m.get("threshold"))
    metric = rows[0]["metric"] if rows else ""
    if metric in ("ccc", "pcc", "spearman"):
        inc += [0.0, 1.0]
    lo, hi = svg.domain(vals, pad=0.08, include=inc)
    span = hi - lo
    for t in inc:
        if hi - t < 0.08 * span:
            hi = t + 0.08 * span
        if t - lo < 0.08 * span:
            lo = t - 0.08 * span
    return lo, hi


def _models(results: Results) -> list[ModelView]:
    doc = results.doc
    summ = doc.get("summary", {}).get("models", {})
    tmods = (results.timings or {}).get("models", {})
    out = []
    for m in doc.get("models", []):
        ref = display.is_baseline(m)
        role = m.get("role", "candidate")
        label = {"baseline": "baseline", "reference": "reference (truth)",
                 "feature": "feature extractor"}.get(role, "candidate")
        if ref and role == "candidate":
            label = "random model"
        s = summ.get(m["name"], {})
        out.append(ModelView(m["name"], role, ref, label, m.get("info") or {}, s,
                             tmods.get(m["name"], {}),
                             {d: ok for d, ok in (s.get("competent") or {}).items() if d != "all"},
                             counts=display.counts(doc, m["name"]),
                             error_share=_error_share(doc, m["name"])))
    order = {"candidate": 0, "baseline": 1, "reference": 2, "feature": 3}
    out.sort(key=lambda mv: (mv.is_ref, order.get(mv.role, 4)))
    return out


def _error_share(doc: dict, model: str) -> float | None:
    """Share of the dataset's items with at least one item error for ``model`` (decode and
    perturbation errors count for every model); None without an item count."""
    total = (doc.get("dataset") or {}).get("items")
    if not isinstance(total, int) or total <= 0:
        return None
    ids = {str(e.get("id")) for e in (doc.get("items") or {}).get("errors", [])
           if e.get("model") in (None, "", model)}
    return min(1.0, len(ids) / total)


def build_view(results: Results) -> View:
    """Everything the template shows, computed from the results document."""
    doc = results.doc
    models = _models(results)
    audited = [m for m in models if m.role in ("candidate", "baseline")]
    ref_of = {m.name: m.is_ref for m in models}
    rank = {m.name: i for i, m in enumerate(models)}
    tests = doc.get("tests", [])

    # order of tests and dimensions as they appear in the document
    test_order: list[str] = []
    dims_of: dict[str, list[str]] = {}
    for t in tests:
        if t["test"] not in dims_of:
            test_order.append(t["test"])
            dims_of[t["test"]] = []
        if t["dimension"] not in dims_of[t["test"]]:
            dims_of[t["test"]].append(t["dimension"])
    topics_present = [tp for tp in TOPICS if any(t.get("topic") == tp for t in tests)]
    topics_present += sorted({t.get("topic", "other") for t in tests} - set(topics_present))
    topic_rank = {tp: i for i, tp in enumerate(topics_present)}
    first_topic = {name: next(t.get("topic", "other") for t in tests if t["test"] == name)
                   for name in test_order}
    test_order.sort(key=lambda n: topic_rank.get(first_topic[n], 99))

    validity = shipped_validity(doc.get("suite"), doc.get("dataset"))
    sections: list[TestSection] = []
    matrix: list[dict] = []
    gallery_candidates: list[tuple[dict, dict, str]] = []
    worst_views: list[tuple[PlotView, dict]] = []
    for name in test_order:
        entries = [t for t in tests if t["test"] == name]
        head = entries[0]
        sec_anchor = slug(name, "t")
        dviews = []
        cells: dict[tuple[str, str], tuple[str, str]] = {}
        for dim in dims_of[name]:
            des = sorted([e for e in entries if e["dimension"] == dim],
                         key=lambda e: rank.get(e["model"], 99))
            anchor = slug(f"{name}/{dim}", "d")
            dviews.append(_dim_view(name, dim, anchor, des, ref_of, gallery_candidates,
                                    worst_views, doc))
            if validity:
                dviews[-1].validity = validity_line(validity, name, dim)
            cells.update({(e["model"], dim): (display.verdict(doc, e), anchor) for e in des})
        # failing and inconclusive cells first; passing ones follow, folded
        dviews.sort(key=lambda d: display.RANK.get(d.cand_worst, len(display.ORDER)))
        _drop_repeated_plots(dviews)
        per_model = []
        for m in audited:
            vs = [display.verdict(doc, e) for e in entries if e["model"] == m.name]
            if vs:
                per_model.append((m.name, m.is_ref, _worst(vs)))
        matrix.append({"test": name, "topic": head.get("topic", "other"), "anchor": sec_anchor,
                       "cells": cells})
        cand_verdicts = [v for _, r, v in per_model if not r]
        sections.append(TestSection(
            name, sec_anchor, head.get("topic", "other"), head.get("check", name),
            head.get("description", ""), dviews, per_model,
            bool(cand_verdicts) and all(v in ("pass", "skipped") for v in cand_verdicts)))

    # within a topic, tests whose candidates did not pass come first (failing first)
    sections.sort(key=lambda sec: (topic_rank.get(sec.topic, 99), display.RANK.get(
        display.worst([v for _, r, v in sec.verdicts if not r]), len(display.ORDER))))
    clips, clip_notes = gallery.build(doc, gallery_candidates, data_root=results.data_root)
    by_key = {(c.test, c.model, c.dimension, c.item_id, c.condition): f"clip-{i}"
              for i, c in enumerate(clips) if c.clean_uri}
    for view, entry in worst_views:
        for row in view.rows:
            row["clip"] = by_key.get((entry["test"], entry["model"], entry["dimension"], row["id"],
                                      row["condition"]))

    errs = (doc.get("items") or {}).get("errors", [])
    stages: dict[str, int] = {}
    for e in errs:
        stages[e.get("stage", "?")] = stages.get(e.get("stage", "?"), 0) + 1
    ds = doc.get("dataset") or {}
    view = View(
        doc=doc,
        title=f"{doc.get('suite', {}).get('name', 'suite')} on {ds.get('name', 'data')}",
        models=models, audited=audited, topics=topics_present, sections=sections,
        matrix=matrix, callouts=_callouts(doc, audited, sections, errs),
        dataset=_dataset(ds, doc), errors=errs[:200], errors_total=len(errs), error_stages=stages,
        clips=clips, clip_notes=clip_notes, timings=results.timings or {},
        label_free=doc.get("reference") or None)
    view.failing = _failing(doc, ref_of)
    view.nav = _nav(view)
    _comparators(audited, tests)
    dim_order: list[str] = []
    for t in tests:
        if t["dimension"] not in dim_order:
            dim_order.append(t["dimension"])
    view.matrix_cols = [(m.name, m.is_ref, [d for d in dim_order if any(
        t["model"] == m.name and t["dimension"] == d for t in tests)]) for m in audited]
    view.matrix_cols = [c for c in view.matrix_cols if c[2]]
    view.matrix_dims = [f"{d[:3]} = {d}" for d in dim_order]
    return view


def _dim_view(test: str, dim: str, anchor: str, entries: list[dict], ref_of: dict,
              gallery_candidates: list, worst_views: list, doc: dict | None = None) -> DimView:
    doc = doc if doc is not None else {}
    # measurements grouped by metric, rows ordered by group then model; metrics and groups
    # where a candidate's measurement fails come first, then inconclusive ones
    by_metric: dict[str, list[tuple[dict, dict]]] = {}
    for e in entries:
        for m in e.get("measurements", []):
            by_metric.setdefault(m["metric"], []).append((e, m))

    def cand_rank(pairs: list[tuple[dict, dict]]) -> int:
        return min([display.MEASURE_RANK.get(m.get("verdict"), 2) for e, m in pairs
                    if not ref_of.get(e["model"], False)] + [2])

    mult = {e["model"]: display.multiplicity_text(e, method=True) for e in entries}
    gated = {e["model"] for e in entries if display.verdict(doc, e) == "gated"}
    blocks = []
    for metric, pairs in sorted(by_metric.items(), key=lambda kv: cand_rank(kv[1])):
        groups: list[Any] = []
        for _, m in pairs:
            if m.get("group") not in groups:
                groups.append(m.get("group"))
        groups.sort(key=lambda g: cand_rank([(e, m) for e, m in pairs if m.get("group") == g]))
        # groups that no model could measure (e.g. sparse bins) are listed, not drawn
        unmeasured = [g for g in groups if all(m.get("verdict") == "skipped" and m.get("value") is None
                                               for _, m in pairs if m.get("group") == g)]
        reasons = {str((m.get("extra") or {}).get("reason")) for _, m in pairs
                   if m.get("group") in unmeasured and (m.get("extra") or {}).get("reason")}
        shown = [(e, m) for e, m in pairs if m.get("group") not in unmeasured]
        dom = _metric_domain([m for _, m in shown] or [m for _, m in pairs])
        texts = {display.threshold_text(m.get("threshold")) or None for _, m in pairs}
        uniform = len(texts) == 1
        rows = []
        for g in groups:
            if g in unmeasured:
                continue
            first = True
            for e, m in shown:
                if m.get("group") != g:
                    continue
                thr = m.get("threshold")
                verdict = m.get("verdict") or "info"
                rows.append(MeasureRow(
                    e["model"], ref_of.get(e["model"], False), None if g is None else str(g),
                    first, m.get("value"), m.get("ci"), m.get("n"), verdict,
                    display.threshold_text(thr), svg.ci_bar(m.get("value"), m.get("ci"), thr,
                                                            verdict, dom),
                    isinstance(m.get("n"), int) and m["n"] < 20, _measure_note(m),
                    display.power_text(m), e["model"] in gated))
                first = False
        thr_text = next(iter(texts)) if uniform else "varies (see rows)"
        block_mult = sorted({mult[e["model"]] for e, _ in pairs
                             if mult.get(e["model"]) and not ref_of.get(e["model"], False)})
        blocks.append(MetricBlock(metric, metric_help(metric), thr_text or "none (shown for information)",
                                  svg.ci_axis(dom, pairs[0][1].get("threshold")), rows,
                                  any(g is not None for g in groups),
                                  [str(g) for g in unmeasured], "; ".join(sorted(reasons)),
                                  multiplicity="; ".join(block_mult)))
    cards, problems, notes, marks = [], [], [], []
    for e in display.sort_entries(doc, entries):
        shown_v = display.verdict(doc, e)
        is_ref = ref_of.get(e["model"], False)
        if shown_v == "error":
            text = e.get("error") or e.get("reason") or "the test crashed"
            failures = display.item_failures_text(e)
            problems.append({"model": e["model"], "is_ref": is_ref, "verdict": "error",
                             "text": text + (f"; {failures}" if failures and failures not in text else ""),
                             "traceback": e.get("traceback")})
        elif shown_v == "gated":
            problems.append({"model": e["model"], "is_ref": is_ref, "verdict": "gated",
                             "text": display.reason(doc, e) + ": measured, not scored; equal "
                             "quality across groups or conditions means little at chance level",
                             "traceback": None})
        elif shown_v in ("fail", "inconclusive") and not is_ref:
            problems.append({"model": e["model"], "is_ref": is_ref, "verdict": shown_v,
                             "text": display.because(doc, e), "traceback": None})
        elif shown_v == "skipped" and (e.get("reason") or not e.get("measurements")):
            problems.append({"model": e["model"], "is_ref": is_ref,
                             "verdict": "skipped", "text": e.get("reason", "nothing to judge"),
                             "traceback": None})
        if display.flags(e):
            # (the candidates' multiplicity is written in the head of each metric's table; the
            # baselines' is the same method, not repeated per baseline)
            marks.append({"model": e["model"], "is_ref": is_ref, "verdict": shown_v,
                          "flags": list(zip([k for k, _ in display.flags(e)],
                                            display.flag_texts(e))),
                          "multiplicity": ""})
    for e in entries:
        for n in e.get("notes") or []:
            notes.append((e["model"], str(n)))
        # random baselines' plots show noise (about noise): their numbers stay in the tables,
        # their plots are left out to keep the page light
        if e.get("plots") and not ref_of.get(e["model"], False):
            thresholds = {m["metric"]: m["threshold"] for m in e.get("measurements", [])
                          if m.get("threshold")}
            views = render_plots(e["plots"], dimension=dim, thresholds=thresholds,
                                 measurements=e.get("measurements"))
            for v in views:
                if v.kind == "worst":
                    worst_views.append((v, e))
                    if not ref_of.get(e["model"], False):
                        gallery_candidates.extend((e, r, anchor) for r in v.rows)
            cards.append(PlotCard(e["model"], ref_of.get(e["model"], False), display.verdict(doc, e),
                                  [v for v in views if v.group != "distributions"],
                                  [v for v in views if v.group == "distributions"]))
    verdicts = [(e["model"], ref_of.get(e["model"], False), display.verdict(doc, e)) for e in entries]
    return DimView(dim, anchor, verdicts, blocks, cards, problems, notes, marks)


def _drop_repeated_plots(dviews: list[DimView]) -> None:
    """Draw a plot once per test: a plot identical to one drawn for another dimension of the
    same test and model (e.g. the group sizes, the same on every dimension) is left out."""
    seen: set[tuple[str, str]] = set()
    for d in dviews:
        for card in d.cards:
            for attr in ("views", "more"):
                kept = []
                for v in getattr(card, attr):
                    key = (card.model, str(v.svg)) if v.svg else None
                    if key is not None and key in seen:
                        continue
                    if key is not None:
                        seen.add(key)
                    kept.append(v)
                setattr(card, attr, kept)


def _failing(doc: dict, ref_of: dict) -> list[dict]:
    """The candidates' entries that did not pass, failing first, each with its one-line
    reason, its flags and the anchor of its dimension."""
    out = []
    cands = [t for t in doc.get("tests", []) if not ref_of.get(t["model"], False)]
    for t in display.sort_entries(doc, cands):
        v = display.verdict(doc, t)
        if v not in ("error", "fail", "inconclusive", "gated"):
            continue
        out.append({"test": t["test"], "model": t["model"], "dimension": t["dimension"],
                    "verdict": v, "because": display.because(doc, t),
                    "flags": [(k, txt) for (k, _), txt in zip(display.flags(t), display.flag_texts(t))],
                    "anchor": slug(f"{t['test']}/{t['dimension']}", "d")})
    return out


def _measure_note(m: dict) -> str:
    """Why a value is missing or special, from the measurement's ``extra``."""
    extra = m.get("extra") or {}
    bits = []
    if extra.get("censored") == "never":
        bits.append("never crossed within the sweep")
    elif extra.get("censored") == "at_first":
        bits.append("crossed already at the mildest level")
    elif extra.get("censored"):
        bits.append(f"censored: {extra['censored']}")
    if extra.get("reason") and (m.get("value") is None or m.get("verdict") == "skipped"):
        bits.append(str(extra["reason"]))
    return "; ".join(bits)


def _comparators(audited: list[ModelView], tests: list[dict]) -> None:
    """For each candidate, the best-scoring random model tested on the same dimensions
    (a random classifier is no yardstick for a dimensional model)."""
    dims = {m.name: {t["dimension"] for t in tests if t["model"] == m.name} for m in audited}
    for m in audited:
        if m.is_ref:
            continue
        refs = [r for r in audited if r.is_ref and r.summary.get("score") is not None
                and dims[r.name] & dims[m.name]]
        m.comparator = max(refs, key=lambda r: (len(dims[r.name] & dims[m.name]),
                                               r.summary["score"])) if refs else None


def _callouts(doc: dict, audited: list[ModelView], sections: list[TestSection],
              errs: list) -> list[dict]:
    """Plain statements a reader must not miss (gate, chance level, crashes, lost items)."""
    out = []
    _comparators(audited, doc.get("tests", []))
    for m in audited:
        if m.is_ref:
            continue
        gated = [d for d, ok in (m.competent or {}).items() if ok is False]
        if gated:
            out.append({"level": "warn", "text": (
                f"{m.name} is not competent on {', '.join(gated)}: its clean accuracy fails the "
                "correctness threshold, so its fairness and robustness results on "
                f"{'it' if len(gated) == 1 else 'them'} are gated: shown as measured, never "
                "counted as passes, and scored 0 (competence gate).")})
        s = m.summary.get("score")
        ref = m.comparator
        if ref is not None and s is not None and s <= ref.summary["score"]:
            out.append({"level": "bad", "text": (
                f"{m.name} scores {s:.0%}, no better than the random baseline "
                f"{ref.name} ({ref.summary['score']:.0%}) on the same outputs.")})
        n_err = (m.counts or m.summary.get("counts") or {}).get("error", 0)
        if n_err:
            out.append({"level": "bad", "text": f"{n_err} test(s) of {m.name} crashed (verdict "
                                                "error); their results are missing, not passed."})
    if errs:
        out.append({"level": "warn", "text": (
            f"{len(errs)} item error(s): some audio could not be decoded, perturbed or predicted; "
            "those items are left out of the measurements."), "link": "#item-errors"})
    if doc.get("reference"):
        out.append({"level": "info", "text": (
            f"Label-free mode: the truth is the clean prediction of the reference model "
            f"{doc['reference']}, so correctness means agreement with it.")})
    return out


def _dataset(ds: dict, doc: dict | None = None) -> dict:
    groups = []
    for col in ("speaker", "sex", "language", "accent", "sentiment", "emotion"):
        counts = ds.get(col)
        if not isinstance(counts, dict) or not counts:
            continue
        vals = sorted(counts.items(), key=lambda kv: -kv[1])
        if len(vals) > 8:
            sizes = [v for _, v in vals]
            text = (f"{len(vals)} values, {min(sizes)}–{max(sizes)} items each")
        else:
            text = ", ".join(f"{k} {v}" for k, v in vals)
        groups.append((col, len(vals), text))
    return {"name": ds.get("name", ""), "source": ds.get("source", ""), "n_items": ds.get("items"),
            "labels": ds.get("labels", []), "groups": groups,
            "fingerprint": ds.get("fingerprint"), "use": item_use(doc or {})}


#: the checks whose main cell (group ``None``) counts the items correctness scores
_SCORED_BY = ("correctness_regression", "correctness_classification")


def item_use(doc: dict) -> str | None:
    """Why correctness scores fewer items than the dataset has, from the document alone, e.g.
    "Correctness scores 888 of the 968 items, one rendition per utterance (fairness draws its
    groups from these); the other 80 are further renditions of paired utterances (recording
    boundary 40, mobile 40), which robustness_recording_condition compares with the
    reference rendition."  ``None`` when correctness scores every item (or did not run).

    The scored count is the largest ``n`` of a main correctness cell; items that failed to
    decode are named apart; the renditions per recording are the ``n`` of the
    ``robustness_recording_condition`` cells (pairs compared per recording condition).
    """
    total = (doc.get("dataset") or {}).get("items")
    tests = doc.get("tests") or []
    scored = [m.get("n") for t in tests if t.get("check") in _SCORED_BY
              for m in t.get("measurements") or [] if m.get("group") is None]
    scored = [n for n in scored if isinstance(n, int)]
    if not isinstance(total, int) or not scored:
        return None
    n_scored = max(scored)
    failed = len({e.get("id") for e in (doc.get("items") or {}).get("errors") or []
                  if e.get("stage") == "decode"})
    rest = total - failed - n_scored
    if rest <= 0:
        return None
    per_recording: dict[str, int] = {}
    for t in tests:
        if t.get("check") == "robustness_recording_condition":
            for m in t.get("measurements") or []:
                if m.get("metric") == "unchanged" and isinstance(m.get("n"), int):
                    g = str(m.get("group"))
                    per_recording[g] = max(per_recording.get(g, 0), m["n"])
    head = (f"Correctness scores {n_scored:,} of the {total:,} items"
            + (f" ({failed:,} could not be decoded)" if failed else "")
            + ", one rendition per utterance"
            + (" (fairness draws its groups from these)"
               if any(t.get("topic") == "fairness" for t in tests) else "") + "; ")
    if per_recording and sum(per_recording.values()) == rest:
        recs = ", ".join(f"{g} {n:,}" for g, n in sorted(per_recording.items()))
        return (head + f"the other {rest:,} are further renditions of paired utterances "
                f"(recording {recs}), which robustness_recording_condition compares with the "
                "reference rendition.")
    return (head + f"the other {rest:,} are further renditions of paired utterances (rows "
            "sharing a pair id, scored once) or items without a label.")


def _nav(view: View) -> list[dict]:
    nav = [{"href": "#overview", "text": "Overview", "level": 0}]
    if view.failing:
        nav.append({"href": "#failing", "text": f"Not passed ({len(view.failing)})", "level": 1})
    nav += [{"href": "#how-to-read", "text": "How to read", "level": 1},
           {"href": "#scores", "text": "Scores", "level": 1},
           {"href": "#efficiency", "text": "Efficiency", "level": 1},
           {"href": "#matrix", "text": "All tests at a glance", "level": 1},
           {"href": "#dataset", "text": "Dataset", "level": 1}]
    for topic in view.topics:
        secs = [s for s in view.sections if s.topic == topic]
        if not secs:
            continue
        nav.append({"href": "#" + slug(topic, "topic"), "text": topic.capitalize(), "level": 0})
        for s in secs:
            nav.append({"href": "#" + s.anchor, "text": s.name, "level": 1,
                        "verdicts": [(m, v) for m, r, v in s.verdicts if not r]})
    nav.append({"href": "#gallery", "text": "Listening gallery", "level": 0})
    nav.append({"href": "#item-errors", "text": f"Item errors ({view.errors_total})", "level": 0})
    nav.append({"href": "#reproduce", "text": "Reproducibility", "level": 0})
    return nav


# ----------------------------------------------------------------------------------------
# formatting filters
# ----------------------------------------------------------------------------------------

def pct(v) -> str:
    if v is None:
        return "n/a"
    return f"{float(v) * 100:.0f} %"


def pct_fine(v) -> str:
    """A share as a percentage that never rounds a non-zero share to 0 (``0.3 %``)."""
    if v is None:
        return "n/a"
    v = float(v) * 100
    if v == 0:
        return "0 %"
    return f"{v:.1f} %" if v < 10 else f"{v:.0f} %"


def human_count(v) -> str:
    if v is None:
        return "n/a"
    v = float(v)
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= div:
            return f"{v / div:.3g} {unit}"
    return f"{v:.0f}"


def human_bytes(v) -> str:
    if v is None:
        return "n/a"
    v = float(v)
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if v >= div:
            return f"{v / div:.3g} {unit}"
    return f"{v:.0f} B"


def ci_text(ci) -> str:
    """``[0.41, 0.52]``; an open side is written as infinity; ``–`` without an interval."""
    if not ci or len(ci) != 2 or (ci[0] is None and ci[1] is None):
        return "–"
    lo = "(−∞" if ci[0] is None else f"[{svg.fmt(ci[0])}"
    hi = "∞)" if ci[1] is None else f"{svg.fmt(ci[1])}]"
    return f"{lo}, {hi}"


def rtf_text(rtf) -> str:
    """Real-time factor (model seconds per audio second) with two significant digits."""
    if rtf is None or float(rtf) <= 0:
        return "n/a"
    return f"{float(rtf):.2g}"


def speed_text(rtf) -> str:
    """``3,700× real time`` (faster) or ``0.5× real time`` (slower) from a real-time factor."""
    if rtf is None or float(rtf) <= 0:
        return "n/a"
    x = 1 / float(rtf)
    return f"{x:,.0f}× real time" if x >= 10 else f"{x:.2g}× real time"


def secs_text(v) -> str:
    """A duration: ``850 ms``, ``3.2 s``, ``4 min 10 s``."""
    if v is None:
        return "n/a"
    v = float(v)
    if v < 1:
        return f"{v * 1000:.0f} ms"
    if v < 120:
        return f"{v:.3g} s"
    return f"{int(v // 60)} min {v % 60:.0f} s"


def _lenient(fn):
    """A filter that reads a missing value (Jinja2 Undefined) as None."""
    def wrapped(value, *args, **kwargs):
        return fn(None if isinstance(value, Undefined) else value, *args, **kwargs)
    return wrapped


@functools.lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    filters = dict(fmt=svg.fmt, pct=pct, pct_fine=pct_fine, human_count=human_count, human_bytes=human_bytes,
                   ci_text=ci_text, rtf=rtf_text, speed=speed_text, secs=secs_text, slug=slug,
                   meter=svg.meter)
    env.filters.update({k: _lenient(f) for k, f in filters.items()})
    env.globals.update(icon=VERDICT_ICON)
    return env


def _asset(name: str) -> str:
    with open(os.path.join(TEMPLATES, name), encoding="utf-8") as fh:
        return fh.read()


def render(results: Results) -> str:
    """The report as one HTML string."""
    view = build_view(results)
    css, js = _asset("report.css"), _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    csp = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
           "img-src data:; media-src data:; base-uri 'none'; form-action 'none'")
    thr = {"op": ">", "value": 0.5, "absolute": False, "text": "> 0.5"}
    examples = {v: svg.ci_bar(x, ci, thr, v, (0.0, 1.0), width=150, height=18, label=f"example: {v}")
                for v, x, ci in (("pass", 0.71, (0.62, 0.79)), ("inconclusive", 0.55, (0.43, 0.66)),
                                 ("fail", 0.31, (0.2, 0.42)))}
    return squeeze(_env().get_template("report.html.j2").render(
        v=view, css=Markup(css), js=Markup(js), csp=csp, renderer_version=__version__,
        examples=examples, problem_rows=PROBLEM_ROWS))


_KEEP = re.compile(r"(<(pre|script|style|textarea)[\s>].*?</\2>)", re.S | re.I)
_INDENT = re.compile(r"\n[ \t]*(?:\n[ \t]*)*")


def squeeze(html: str) -> str:
    """The page without the templates' indentation and blank lines (a line break stays, so
    the text reads the same); ``<pre>``, ``<script>``, ``<style>`` and ``<textarea>`` are
    kept byte for byte (the script's hash is in the Content-Security-Policy)."""
    parts = _KEEP.split(html)
    out = []
    i = 0
    while i < len(parts):
        out.append(_INDENT.sub("\n", parts[i]))
        if i + 1 < len(parts):
            out.append(parts[i + 1])  # the kept element itself
        i += 3
    return "".join(out)
