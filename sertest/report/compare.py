"""``sertest compare``: a baseline audit against one or more candidate audits.

``compare(result_dirs, out)`` reads each folder's ``results.json`` (the first is the
baseline), matches models by name, or by role when each audit has exactly one candidate
model, and writes ``compare.html`` (same look as the report, every measurement) and
``compare.md`` (under :data:`MD_LIMIT` characters, to fit a pull-request comment: most
important changes first, the rest left to compare.html).  :func:`regressions` lists the
candidates' verdicts that got worse and measurements that got clearly worse;
``sertest compare --fail-on regression`` exits 1 when there is one.

For every test × dimension × metric × group it shows the baseline value, each candidate's
value, the difference Δ = candidate − baseline and whether that is better or worse given the
threshold's direction (``> t``: higher is better; ``< t``: lower; ``abs < t``: closer to 0;
``abs > t``: further from 0).  A change is called *clear* when the two confidence intervals
do not overlap; otherwise the CIs overlap and the difference may be noise.  Verdict changes (e.g. pass → fail) are
highlighted, and differences in suite, data or seed are stated, since they make the audits
not like-for-like.

**Paired significance.**  Audits write each cell's bootstrap replicates to
``replicates.npz``; the resamples depend on the seed, the test and the items, never on the
model, so two audits with the same seed and data resampled the same items for both models.
The difference of their replicates is then a paired bootstrap of Δ, and each Δ gets a
two-sided p-value (:func:`sertest.stats.paired_p_value`, as sacrebleu's paired bootstrap)
and a Benjamini-Hochberg q-value over all cells of that model comparison; *clear* then
means q < 0.05.  Where the pairing does not hold (other seed, data or item count) or
replicates are missing, no p-value is given and *clear* falls back to non-overlapping CIs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from markupsafe import Markup

from ..errors import UsageError
from ..results import TOPICS, Results, same_data
from . import display, svg
from .numbers import finite

#: how good a verdict is, for "improved" / "regressed"
_RANK = {"error": 0, "fail": 1, "inconclusive": 2, "pass": 3}


@dataclass
class Run:
    folder: str
    results: Results
    label: str

    @property
    def doc(self) -> dict:
        return self.results.doc


@dataclass
class Cell:
    """One candidate's value of a row, compared with the baseline's."""

    value: Any = None
    ci: Any = None
    verdict: str | None = None
    delta: float | None = None
    direction: str = "n/a"  # better | worse | same | n/a
    clear: bool | None = None  # significant (paired) or, without replicates, CIs apart
    verdict_change: str | None = None  # improved | regressed | None
    missing: bool = False
    p_value: float | None = None  # paired bootstrap p-value of delta (both audits' replicates)
    q_value: float | None = None  # Benjamini-Hochberg adjusted over the comparison's cells


@dataclass
class Row:
    test: str
    topic: str
    dimension: str
    metric: str
    group: str | None
    threshold: str
    base_value: Any
    base_ci: Any
    base_verdict: str | None
    cells: list[Cell]
    base_missing: bool = False


@dataclass
class ModelComparison:
    """One baseline model against its match in each candidate run."""

    name: str
    is_ref: bool
    matches: list[str | None]  # matching model name per candidate run
    how: list[str]  # "name" | "role" | "none"
    rows: list[Row] = field(default_factory=list)
    entries: list[dict] = field(default_factory=list)  # test-level verdict changes
    scores: list[dict] = field(default_factory=list)  # topic -> (base, [cand])
    unmeasured: list[str] = field(default_factory=list)  # measured in no audit (e.g. sparse bins)


def _audited(doc: dict) -> list[dict]:
    return [m for m in doc.get("models", []) if m.get("role") in ("candidate", "baseline")]


def match_models(base: dict, cand: dict) -> dict[str, tuple[str, str]]:
    """Baseline model name -> (candidate model name, how) for one candidate document."""
    bnames = {m["name"]: m for m in _audited(base)}
    cnames = {m["name"]: m for m in _audited(cand)}
    out = {n: (n, "name") for n in bnames if n in cnames}
    bc = [m["name"] for m in _audited(base) if not display.is_baseline(m)]
    cc = [m["name"] for m in _audited(cand) if not display.is_baseline(m)]
    if len(bc) == 1 and len(cc) == 1 and bc[0] not in out and cc[0] not in out.values():
        out[bc[0]] = (cc[0], "role")
    return out


def direction(threshold: dict | None, b: float | None, c: float | None) -> str:
    """Whether a candidate's value ``c`` is ``better``, ``worse`` or the ``same`` as the
    baseline's ``b`` under a measurement's threshold (``{"op", "absolute"}`` of
    results.json: ``>``/``>=`` want higher values, ``<``/``<=`` lower ones, ``absolute``
    compares magnitudes); ``n/a`` without both values or, when they differ, a threshold.
    Values in the metric's own unit; differences under 1e-12 are the same.

    >>> direction({"op": ">"}, 0.4, 0.6), direction({"op": "<"}, 0.4, 0.6)
    ('better', 'worse')
    >>> direction({"op": "<", "absolute": True}, -0.2, 0.1), direction(None, 0.05, 0.1)
    ('better', 'n/a')
    """
    if b is None or c is None:
        return "n/a"
    if abs(c - b) < 1e-12:
        return "same"
    if not threshold:
        return "n/a"
    op = threshold.get("op", ">")
    higher = op in (">", ">=")
    if threshold.get("absolute"):
        gain = abs(c) - abs(b)
    else:
        gain = c - b
    if abs(gain) < 1e-12:
        return "same"
    return "better" if (gain > 0) == higher else "worse"


def _clear(a: Any, b: Any) -> bool | None:
    if not a or not b or None in (a[0], a[1], b[0], b[1]):
        return None
    return a[1] < b[0] or b[1] < a[0]


def _verdict_change(b: str | None, c: str | None) -> str | None:
    if b is None or c is None or b == c or b not in _RANK or c not in _RANK:
        return None
    return "improved" if _RANK[c] > _RANK[b] else "regressed"


def _entries(doc: dict, model: str) -> dict[tuple[str, str], dict]:
    return {(t["test"], t["dimension"]): t for t in doc.get("tests", []) if t["model"] == model}


ALPHA = 0.05  # false discovery rate of "clear" differences


def _paired(base: Run, cand: Run) -> bool:
    """Whether the two audits resampled the same items (same seed and data)."""
    return (base.doc.get("seed") == cand.doc.get("seed")
            and same_data(base.doc, cand.doc)
            and (base.doc.get("suite") or {}).get("n_boot")
            == (cand.doc.get("suite") or {}).get("n_boot"))


def _p_value(base: Run, cand: Run, bmodel: str, cmodel: str, test: str, dim: str,
             metric: str, group: Any, bmeas: dict | None, cmeas: dict | None) -> float | None:
    """Paired bootstrap p-value of the candidate's value minus the baseline's."""
    from ..stats import paired_p_value

    if bmeas is None or cmeas is None or bmeas.get("n") != cmeas.get("n"):
        return None
    bv, cv = finite(bmeas.get("value")), finite(cmeas.get("value"))
    if bv is None or cv is None:
        return None
    cell = f"{test}|{dim}|{metric}|{'' if group is None else group}"
    rb = base.results.replicates.get(f"{bmodel}|{cell}")
    rc = cand.results.replicates.get(f"{cmodel}|{cell}")
    if rb is None or rc is None or len(rb) != len(rc):
        return None
    p = paired_p_value(rc - rb, cv - bv)
    return p if p == p else None


def _adjust(comps_rows: list[Row]) -> None:
    """Benjamini-Hochberg q-values over the cells with a p-value, per candidate run."""
    import numpy as np
    from scipy.stats import false_discovery_control

    k = max((len(r.cells) for r in comps_rows), default=0)
    for j in range(k):
        cells = [r.cells[j] for r in comps_rows if j < len(r.cells)
                 and r.cells[j].p_value is not None]
        if not cells:
            continue
        q = false_discovery_control(np.array([c.p_value for c in cells]), method="bh")
        for c, qv in zip(cells, q):
            c.q_value = float(qv)
            c.clear = bool(qv < ALPHA) if c.direction in ("better", "worse") else False


def build(runs: list[Run]) -> list[ModelComparison]:
    base = runs[0]
    out = []
    matches = [match_models(base.doc, r.doc) for r in runs[1:]]
    for bm in sorted(_audited(base.doc), key=display.is_baseline):
        name = bm["name"]
        mc = ModelComparison(name, display.is_baseline(bm),
                             [m.get(name, (None, "none"))[0] for m in matches],
                             [m.get(name, (None, "none"))[1] for m in matches])
        if not any(mc.matches):
            out.append(mc)
            continue
        bent = _entries(base.doc, name)
        cents = [_entries(r.doc, c) if c else {} for r, c in zip(runs[1:], mc.matches)]
        keys = list(bent)
        for ce in cents:
            keys += [k for k in ce if k not in keys]
        for key in keys:
            be = bent.get(key)
            ces = [ce.get(key) for ce in cents]
            head = be or next(e for e in ces if e)
            mc.entries.append({"test": key[0], "dimension": key[1], "topic": head.get("topic", ""),
                               "base": be["verdict"] if be else None,
                               "cands": [e["verdict"] if e else None for e in ces],
                               "changes": [_verdict_change(be["verdict"] if be else None,
                                                           e["verdict"] if e else None) for e in ces]})
            mkeys: list[tuple[str, Any]] = []
            for e in [be] + ces:
                for m in (e or {}).get("measurements", []):
                    k = (m["metric"], m.get("group"))
                    if k not in mkeys:
                        mkeys.append(k)
            for metric, group in mkeys:
                bmeas = _find(be, metric, group)
                cms = [_find(e, metric, group) for e in ces]
                if all(m is None or m.get("value") is None for m in [bmeas] + cms):
                    mc.unmeasured.append(f"{key[0]} · {key[1]} · {metric}"
                                         + (f" [{group}]" if group is not None else ""))
                    continue
                thr = (bmeas or {}).get("threshold")
                cells = []
                for run, cname, e in zip(runs[1:], mc.matches, ces):
                    cm = _find(e, metric, group)
                    if cm is None:
                        cells.append(Cell(missing=True))
                        continue
                    t = cm.get("threshold") or thr
                    thr = thr or t
                    bv, cv = finite((bmeas or {}).get("value")), finite(cm.get("value"))
                    p = _p_value(base, run, name, cname, key[0], key[1], metric, group, bmeas,
                                 cm) if cname and _paired(base, run) else None
                    cells.append(Cell(cm.get("value"), cm.get("ci"), cm.get("verdict"),
                                      None if bv is None or cv is None else cv - bv,
                                      direction(t, bv, cv), _clear((bmeas or {}).get("ci"), cm.get("ci")),
                                      _verdict_change((bmeas or {}).get("verdict"), cm.get("verdict")),
                                      p_value=p))
                mc.rows.append(Row(key[0], head.get("topic", ""), key[1], metric,
                                   None if group is None else str(group), display.threshold_text(thr),
                                   (bmeas or {}).get("value"), (bmeas or {}).get("ci"),
                                   (bmeas or {}).get("verdict"), cells, base_missing=bmeas is None))
        _adjust(mc.rows)
        bs = (base.doc.get("summary") or {}).get("models", {}).get(name, {})
        css = [((r.doc.get("summary") or {}).get("models", {}).get(c, {}) if c else {})
               for r, c in zip(runs[1:], mc.matches)]
        topics = [t for t in TOPICS if t in (bs.get("topics") or {}) or any(t in (c.get("topics") or {}) for c in css)]
        mc.scores.append({"label": "overall", "base": bs.get("score"), "cands": [c.get("score") for c in css]})
        for t in topics:
            mc.scores.append({"label": t, "base": (bs.get("topics") or {}).get(t),
                              "cands": [(c.get("topics") or {}).get(t) for c in css]})
        out.append(mc)
    return out


def _find(entry: dict | None, metric: str, group: Any) -> dict | None:
    for m in (entry or {}).get("measurements", []):
        if m["metric"] == metric and m.get("group") == group:
            return m
    return None


def caveats(runs: list[Run]) -> list[str]:
    """Differences that make the audits not like-for-like."""
    out = []
    b = runs[0].doc
    for r in runs[1:]:
        d = r.doc
        if (b.get("suite") or {}).get("sha256") != (d.get("suite") or {}).get("sha256"):
            out.append(f"{r.label} used a different suite file ({(d.get('suite') or {}).get('name')}) "
                       f"than the baseline ({(b.get('suite') or {}).get('name')}).")
        bt, dt = (b.get("suite") or {}).get("tests") or [], (d.get("suite") or {}).get("tests") or []
        if bt != dt:
            only_b, only_d = sorted(set(bt) - set(dt)), sorted(set(dt) - set(bt))
            out.append(f"{r.label} ran other tests than the baseline"
                       + (f" (not in {r.label}: {', '.join(only_b)})" if only_b else "")
                       + (f" (only in {r.label}: {', '.join(only_d)})" if only_d else "")
                       + "; scores average different tests.")
        bd, dd = b.get("dataset") or {}, d.get("dataset") or {}
        if not same_data(b, d):
            def what(ds: dict) -> str:
                fp = str(ds.get("fingerprint") or "")
                return (f"{ds.get('name')}, {ds.get('items')} items"
                        + (f", audio {fp[:15]}…" if fp else ""))
            out.append(f"{r.label} ran on different data ({what(dd)}) than the baseline "
                       f"({what(bd)}); labels, label mapping and windows count too.")
        if b.get("seed") != d.get("seed"):
            out.append(f"{r.label} used seed {d.get('seed')}, the baseline seed {b.get('seed')}.")
    return out


def load_run(folder: str) -> Run:
    """One run to compare: ``folder``'s results.json (or that file), labelled by the folder's
    name.

    Raises:
        UsageError: naming ``folder`` when it holds no results.json, or the file when it is
            not a results document.
    """
    path = folder if folder.endswith(".json") else os.path.join(folder, "results.json")
    if not os.path.exists(path):
        raise UsageError(f"{folder}: no results.json here; give folders written by 'sertest run'")
    try:
        res = Results.load(path)
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from exc
    label = os.path.basename(os.path.normpath(os.path.dirname(path))) or path
    return Run(folder, res, label)


def compare(result_dirs: Sequence[str], out: str) -> list[str]:
    """Write ``compare.html`` and ``compare.md`` into ``out``; returns their paths."""
    return run_compare(result_dirs, out).paths


@dataclass
class CompareResult:
    """What ``sertest compare`` wrote and the candidates' regressions (:func:`regressions`)."""

    paths: list[str]
    regressions: list[str]

    def exit_code(self, fail_on: str = "never") -> int:
        """1 with ``fail_on="regression"`` when a candidate regressed, else 0."""
        return 1 if fail_on == "regression" and self.regressions else 0


def run_compare(result_dirs: Sequence[str], out: str) -> CompareResult:
    """:func:`compare`, also returning the candidates' regressions (for an exit policy)."""
    if len(result_dirs) < 2:
        raise UsageError("sertest compare needs a baseline results folder and at least one "
                         "candidate folder")
    runs = [load_run(d) for d in result_dirs]
    labels = [r.label for r in runs]
    for i, r in enumerate(runs):  # unique labels
        if labels.count(r.label) > 1:
            r.label = f"{r.label} ({i + 1})" if i else f"{r.label} (baseline)"
    comps = build(runs)
    notes = caveats(runs)
    from .publish import OutputFolder

    texts = (("compare.html", render_html(runs, comps, notes)),
             ("compare.md", render_markdown(runs, comps, notes)))
    with OutputFolder(out) as folder:  # both files appear at once (report/publish.py)
        for name, text in texts:
            with open(folder.path(name), "w", encoding="utf-8") as fh:
                fh.write(text)
        folder.commit()
    return CompareResult([os.path.join(out, name) for name, _ in texts], regressions(comps))


# ----------------------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------------------

def render_html(runs: list[Run], comps: list[ModelComparison], notes: list[str]) -> str:
    import base64
    import hashlib

    from .html import _asset, _env, slug, squeeze

    css, js = _asset("report.css"), _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    csp = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
           "img-src data:; media-src data:; base-uri 'none'; form-action 'none'")
    tests: list[tuple[str, str]] = []
    for mc in comps:
        for r in mc.rows:
            if (r.test, r.topic) not in tests:
                tests.append((r.test, r.topic))
    order = {t: i for i, t in enumerate(TOPICS)}
    tests.sort(key=lambda t: order.get(t[1], 9))
    from .._version import __version__

    return squeeze(_env().get_template("compare.html.j2").render(
        runs=runs, comps=comps, notes=notes, tests=tests, css=Markup(css), js=Markup(js), csp=csp,
        slug=slug, renderer_version=__version__, summary=summary_counts(comps), fmt=svg.fmt))


def summary_counts(comps: list[ModelComparison]) -> list[dict]:
    """Per model and candidate: how many verdicts improved/regressed, metrics better/worse."""
    out = []
    for mc in comps:
        for k, cand in enumerate(mc.matches):
            if not cand:
                continue
            changes = [e["changes"][k] for e in mc.entries]
            dirs = [r.cells[k].direction for r in mc.rows if not r.cells[k].missing]
            clear = [r.cells[k] for r in mc.rows if not r.cells[k].missing and r.cells[k].clear]
            out.append({"model": mc.name, "cand": cand, "k": k, "is_ref": mc.is_ref,
                        "improved": changes.count("improved"), "regressed": changes.count("regressed"),
                        "better": dirs.count("better"), "worse": dirs.count("worse"),
                        "clear_better": sum(c.direction == "better" for c in clear),
                        "clear_worse": sum(c.direction == "worse" for c in clear)})
    return out


def _md(text: Any) -> str:
    s = str(text)
    for ch in ("\\", "|", "<", ">", "*", "_", "`", "[", "]"):
        s = s.replace(ch, "\\" + ch)
    return s.replace("\r", " ").replace("\n", " ")


_ARROW = {"better": "▲ better", "worse": "▼ worse", "same": "= same", "n/a": ""}


#: compare.md must fit a pull-request comment (GitHub: 65,536 characters)
MD_LIMIT = 60_000
#: characters kept free for the closing lines of compare.md
_MD_RESERVE = 1_500


def importance(cell: Cell) -> tuple:
    """Sort key of a candidate's change, most important first: verdicts that regressed, clear
    changes for the worse (smallest q, then largest |Δ|), verdicts that improved, clear changes
    for the better, then the rest."""
    if cell.missing:
        return (9, 1.0, 0.0)
    clear = bool(cell.clear) and cell.direction in ("better", "worse")
    tier = (0 if cell.verdict_change == "regressed" else
            1 if clear and cell.direction == "worse" else
            2 if cell.verdict_change == "improved" else
            3 if clear else
            4 if cell.direction == "worse" else
            5 if cell.direction == "better" else 6)
    q = cell.q_value if cell.q_value is not None else (cell.p_value if cell.p_value is not None else 1.0)
    return (tier, q, -abs(cell.delta or 0.0))


def regressions(comps: list[ModelComparison]) -> list[str]:
    """The candidates' regressions, one line each: a test verdict that got worse, or a
    measurement that got clearly worse (paired bootstrap q < :data:`ALPHA` where both audits
    resampled the same items; otherwise non-overlapping confidence intervals).  Random and
    constant baselines are never counted: their changes are noise."""
    out = []
    for mc in comps:
        if mc.is_ref:
            continue
        for k, cand in enumerate(mc.matches):
            if not cand:
                continue
            for e in mc.entries:
                if e["changes"][k] == "regressed":
                    out.append(f"{mc.name} -> {cand}: {e['test']} {e['dimension']} verdict "
                               f"{e['base']} -> {e['cands'][k]}")
            for r in mc.rows:
                c = r.cells[k]
                if not c.missing and c.direction == "worse" and c.clear:
                    how = (f"q={c.q_value:.3g}" if c.q_value is not None else "CIs apart")
                    grp = f" [{r.group}]" if r.group is not None else ""
                    out.append(f"{mc.name} -> {cand}: {r.test} {r.dimension} {r.metric}{grp} "
                               f"{svg.fmt(r.base_value)} -> {svg.fmt(c.value)} ({how})")
    return out


def _md_row(r: Row) -> str:
    f = svg.fmt
    cells = []
    for c in r.cells:
        if c.missing:
            cells.append("–")
            continue
        d = f"{'+' if c.delta and c.delta > 0 else ''}{f(c.delta)}" if c.delta is not None else "n/a"
        tag = _ARROW[c.direction] + ("" if c.clear or c.direction in ("same", "n/a") else
                                     " (not significant)" if c.p_value is not None
                                     else " (CIs overlap)")
        if c.p_value is not None:
            tag += f" p={c.p_value:.3g} q={c.q_value:.3g}"
        if c.verdict_change:
            tag += f" **verdict {c.verdict_change}**"
        cells.append(f"{f(c.value)} ({d}) {tag}".strip())
    return (f"| {_md(r.test)} | {_md(r.dimension)} | {_md(r.metric)} | "
            f"{_md(r.group) if r.group is not None else 'all'} | {_md(r.threshold)} | "
            f"{f(r.base_value)} | " + " | ".join(cells) + " |")


def render_markdown(runs: list[Run], comps: list[ModelComparison], notes: list[str],
                    limit: int = MD_LIMIT) -> str:
    """compare.md: scores and verdict changes per model, then the measurements, most important
    change first (:func:`importance`), candidates before baselines, within ``limit``
    characters (a pull-request comment); what does not fit is counted and left to
    compare.html."""
    f = svg.fmt
    lines = [f"## sertest comparison: {_md(runs[0].label)} (baseline) vs "
             + ", ".join(_md(r.label) for r in runs[1:]), "",
             "p: paired bootstrap p-value of Δ (both audits resampled the same items); q: "
             f"Benjamini-Hochberg over the model's cells; a difference is clear at q < {ALPHA:g} "
             "(without replicates: when the CIs do not overlap). Most important changes first; "
             "every measurement is in compare.html.", ""]
    found = regressions(comps)
    lines += [f"**{len(found)} regression(s)** of the candidate model(s)"
              + (": " + "; ".join(_md(x) for x in found[:5]) + (" …" if len(found) > 5 else "")
                 if found else "."), ""]
    for n in notes:
        lines.append(f"> ⚠️ {_md(n)}")
    if notes:
        lines.append("")
    heads: list[list[str]] = []
    tables: list[tuple[list[str], list[str]]] = []  # (table head, rows) per model, in order
    for mc in comps:
        head: list[str] = []
        if not any(mc.matches):
            heads.append([f"**{_md(mc.name)}**: no matching model in the candidate audits.", ""])
            tables.append(([], []))
            continue
        head.append(f"### {_md(mc.name)}" + (" (baseline)" if mc.is_ref else ""))
        head.append("")
        head += ["| score | baseline | " + " | ".join(
            f"{_md(r.label)}: {_md(c or '–')}" for r, c in zip(runs[1:], mc.matches)) + " |",
            "|---|---|" + "---|" * len(runs[1:])]
        for sc in mc.scores:
            cells = []
            for c in sc["cands"]:
                d = None if c is None or sc["base"] is None else c - sc["base"]
                cells.append(f"{f(c)} ({'+' if d and d > 0 else ''}{f(d)})" if d is not None else f(c))
            head.append(f"| {sc['label']} | {f(sc['base'])} | " + " | ".join(cells) + " |")
        head.append("")
        changed = [e for e in mc.entries if any(e["changes"])]
        if changed:
            head += ["| test | dimension | baseline | " + " | ".join(_md(r.label) for r in runs[1:]) + " |",
                     "|---|---|---|" + "---|" * len(runs[1:])]
            changed.sort(key=lambda e: 0 if "regressed" in e["changes"] else 1)
            for e in changed:
                head.append(f"| {_md(e['test'])} | {_md(e['dimension'])} | {e['base'] or '–'} | " + " | ".join(
                    f"{'**' + v + '** (' + ch + ')' if ch else (v or '–')}"
                    for v, ch in zip(e["cands"], e["changes"])) + " |")
            head.append("")
        else:
            head += ["No verdict changed.", ""]
        heads.append(head)
        rows = sorted(mc.rows, key=lambda r: min((importance(c) for c in r.cells),
                                                 default=(9, 1.0, 0.0)))
        table_head = ["| test | dimension | metric | group | threshold | baseline | "
                      + " | ".join(f"{_md(r.label)} (Δ)" for r in runs[1:]) + " |",
                      "|---|---|---|---|---|---|" + "---|" * len(runs[1:])]
        tables.append((table_head, [_md_row(r) for r in rows]
                       + ([f"\n{len(mc.unmeasured)} measurement(s) could be measured in no audit "
                           "(e.g. bins with too few items)."] if mc.unmeasured else [])))
    # the heads (scores, verdict changes) of every model first in the budget, then the rows:
    # candidates' before the baselines'
    used = sum(len(x) + 1 for x in lines) + sum(len(x) + 1 for h in heads for x in h)
    budget = limit - _MD_RESERVE - used
    out = list(lines)
    left_out = 0
    for (head, (table_head, rows)) in zip(heads, tables):
        out += head
        if not rows:
            continue
        cost = sum(len(x) + 1 for x in table_head)
        kept = []
        for row in rows:
            if budget - cost - len(row) - 1 < 0:
                break
            kept.append(row)
            cost += len(row) + 1
        if kept:
            out += table_head + kept
            budget -= cost
        left_out += len(rows) - len(kept)
        if len(kept) < len(rows):
            if out[-1]:  # one blank line between a table and the note, none doubled
                out.append("")
            out.append(f"… {len(rows) - len(kept)} more measurement row(s) of {_md(head[0][4:])} "
                       "are in compare.html (left out to fit a pull-request comment).")
        out.append("")
    if left_out:
        out.append(f"{left_out} measurement row(s) in all are only in compare.html.")
    text = "\n".join(out) + "\n"
    if len(text) > limit:  # headings alone over the limit (hundreds of models): cut hard
        cut = text[:limit - 200].rsplit("\n", 1)[0].rstrip("\n")
        text = cut + "\n\n… cut to fit a pull-request comment; see compare.html.\n"
    return text
