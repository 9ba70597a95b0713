"""``summary.md``: GitHub-flavoured Markdown for CI job summaries and pull-request comments.

Test rows are listed failing first (error, fail, inconclusive, gated, pass, skipped); a
failing row says why in one line ("failed because ...") and then names the other
measurements that did not pass, failing ones first.  An exploratory entry's details also
name what it found (:func:`found_text`, read from its figure): the top discovered slice
(``fairness_slices``) or the earliest-breaking item (``robustness_search``).  The notes
column carries the entry's flags, the multiplicity of its verdict, the power of the
measurements it names and, for exploratory entries, the entry's own notes.
"""

from __future__ import annotations

import unicodedata

from ..results import Results
from ..validate.shipped import shipped_validity, validity_line
from . import display
from .numbers import finite, num

_ICON = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "⚠️ inconclusive",
         "error": "💥 error", "skipped": "➖ skipped", "gated": "🚧 gated"}
#: measurements named in a failing row's details besides the deciding one
ALSO = 2
#: the figure kinds (:mod:`sertest.figures`) of exploratory entries: their details name what
#: they found and their notes column shows the entry's notes
EXPLORATORY_KINDS = ("slices", "search", "search_pair", "metamorphic")


#: joins "@" to what follows without a mention: GitHub does not notify ``@org/team``
#: written as ``@\u2060org/team``, and the text still reads the same
_NO_MENTION = "@\u2060"


def _esc(text) -> str:
    """Escape text for a Markdown table cell that may be posted as a pull-request comment:
    no HTML, no pipes, no line breaks, no ``@`` mentions, no control characters.

    Control and format characters (C0, C1, bidirectional overrides, zero-width ones) are
    shown as ``\\uXXXX``; a tab or line break becomes a space; every Markdown and HTML
    metacharacter is backslash-escaped, so a model, test or file name is shown as text."""
    out = []
    for ch in str(text):
        if ch in "\t\r\n":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    s = "".join(out)
    for ch in ("\\", "|", "<", ">", "*", "_", "`", "[", "]", "&", "~", "#", "!"):
        s = s.replace(ch, "\\" + ch)
    return s.replace("@", _NO_MENTION)


def _num(v) -> str:
    """A number for a cell (``n/a`` for none; anything else escaped as text)."""
    return _esc(v) if isinstance(v, str) else num(v, 3, fixed=True)


def _measure(m: dict) -> str:
    return (f"{m['metric']}{' ' + str(m['group']) if m.get('group') is not None else ''} = "
            f"{_num(m.get('value'))}" + (f" ({display.threshold_text(m['threshold'])})" if m.get("threshold") else ""))


def _kind(t: dict) -> str | None:
    """The kind of an entry's composite figure (``search``, ``slices``, ...), or None."""
    plots = t.get("plots")
    return str(plots.get("kind")) if isinstance(plots, dict) and "kind" in plots else None


def _top_slice(plots: dict) -> str:
    rows = [r for r in plots.get("slices") or [] if isinstance(r, dict) and r.get("discovered")]
    if not rows:
        return ""
    r = rows[0]  # listed largest standardised effect first (checks/slices.py)
    return (f"top slice: {r.get('slice')} ({num(r.get('n'))} items, error "
            f"{'+' if (finite(r.get('effect')) or 0) > 0 else ''}{num(r.get('effect'), 3)} "
            f"[{num(r.get('lo'), 3)}, {num(r.get('hi'), 3)}], q {num(r.get('q'), 2)})")


def _earliest_break(plots: dict, kind: str) -> str:
    rows = [r for r in plots.get("worst") or [] if isinstance(r, dict) and r.get("id") is not None]
    if not rows:
        return ""
    r = rows[0]  # listed earliest-breaking first (checks/search.py)
    cond = r.get("condition") if isinstance(r.get("condition"), dict) else {}
    where = str(r.get("label") or "")
    if kind == "search" and cond.get("name"):
        where = f"{cond['name']} {where}".strip()
    if kind == "search":
        held = finite(r.get("held_at"))
        how = (f"held at {num(held, 3)}" + (f" {plots['unit']}" if plots.get("unit") else "")
               if held is not None else "already at the mildest setting searched")
    else:
        how = f"severity {num(r.get('severity'), 3)}" if r.get("severity") is not None else ""
    before = r.get("baseline_value", r.get("baseline_label"))
    after = r.get("condition_value", r.get("condition_label"))
    moved = (f"{plots.get('target', 'prediction')} {num(before, 3)} → {num(after, 3)}"
             if before is not None and after is not None else "")
    inside = "; ".join(b for b in (how, moved) if b)
    return f"earliest to break: {r['id']} at {where}" + (f" ({inside})" if inside else "")


def found_text(t: dict) -> str:
    """What an exploratory entry found, read from its figure ('' if nothing): the top
    discovered slice of a ``slices`` figure (its items, the error difference inside minus
    outside with its interval, in error units, and its q value), or the earliest-breaking
    item of a ``search`` / ``search_pair`` figure (the setting that broke it, the milder
    one that held or the pair's severity, and its prediction before and after)."""
    kind = _kind(t)
    if kind == "slices":
        return _top_slice(t["plots"])
    if kind in ("search", "search_pair"):
        return _earliest_break(t["plots"], kind)
    return ""


def details(doc: dict, t: dict) -> str:
    """The details cell of one entry (plain text, escaped by the caller)."""
    text = _verdict_details(doc, t)
    found = found_text(t) if display.verdict(doc, t) in ("fail", "inconclusive", "pass") else ""
    return f"{text}; {found}" if found and text else (found or text)


def _verdict_details(doc: dict, t: dict) -> str:
    v = display.verdict(doc, t)
    if v in ("fail", "inconclusive"):
        text = display.because(doc, t)
        rest = display.others(t)  # besides the measurement "because" names
        if rest:
            text += "; also " + "; ".join(_measure(m) for m in rest[:ALSO])
            if len(rest) > ALSO:
                text += f"; +{len(rest) - ALSO} more not passing"
        return text
    if v in ("error", "gated", "skipped"):
        text = display.reason(doc, t) or v
        failures = display.item_failures_text(t)
        return text + (f"; {failures}" if failures and failures not in text else "")
    shown = t.get("measurements") or []
    judged = [m for m in shown if m.get("threshold")] or shown
    text = "; ".join(_measure(m) for m in judged[:3])
    return text + (f"; +{len(judged) - 3} more" if len(judged) > 3 else "")


def note_text(doc: dict, t: dict) -> str:
    """Flags, multiplicity and power of the named measurements and, for an exploratory
    entry (:data:`EXPLORATORY_KINDS`), the entry's own notes; compact ('' if none)."""
    out = display.notes(t)
    if _kind(t) in EXPLORATORY_KINDS:
        out += [str(n) for n in t.get("notes") or []]
    if display.verdict(doc, t) in ("fail", "inconclusive"):
        first = display.deciding(t)
        named = ([first] if first is not None else []) + display.others(t)[:ALSO]
        for m in named:
            p = display.power_text(m)
            if p:
                out.append(f"{m['metric']}{' ' + str(m['group']) if m.get('group') is not None else ''}: {p}")
    return "; ".join(out)


def render(results: Results) -> str:
    doc = results.doc
    out = [f"## sertest audit: {_esc(doc['suite']['name'])} on {_esc(doc['dataset']['name'])}", ""]
    if display.label_free_text(doc):
        out += [f"> **{_esc(display.label_free_text(doc))}**", ""]
    out.append(f"{_esc(doc['dataset']['items'])} items, seed {_esc(doc['seed'])}, "
               f"sertest {_esc(doc['sertest_version'])}")
    out.append("")
    out.append("| model | role | score | correctness | fairness | robustness | pass | fail | "
               "inconclusive | gated | error |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for m in doc["models"]:
        if m["name"] not in doc["summary"]["models"]:  # a reference model is not scored
            continue
        s = doc["summary"]["models"][m["name"]]
        c = display.counts(doc, m["name"])
        out.append(f"| {_esc(m['name'])} | {_esc(m['role'])} | {_num(s['score'])} | "
                   + " | ".join(_num(s["topics"].get(t)) for t in ("correctness", "fairness", "robustness"))
                   + f" | {c['pass']} | {c['fail']} | {c['inconclusive']} | {c['gated']} | {c['error']} |")
    out.append("")
    cands = set(results.candidates())
    rows = display.sort_entries(doc, [t for t in doc["tests"] if t["model"] in cands])
    if rows:
        out += ["| test | model | dimension | verdict | details | notes |", "|---|---|---|---|---|---|"]
        for t in rows:
            v = display.verdict(doc, t)
            out.append(f"| {_esc(t['test'])} | {_esc(t['model'])} | {_esc(t['dimension'])} | "
                       f"{_ICON.get(v) or _esc(v)} | {_esc(details(doc, t))} | "
                       f"{_esc(note_text(doc, t))} |")
        out.append("")
    validity = shipped_validity(doc.get("suite"), doc.get("dataset"))
    if validity and rows:
        lines = []
        for test, dim in dict.fromkeys((t["test"], t["dimension"]) for t in rows):
            line = validity_line(validity, test, dim)
            if line:
                lines.append(f"| {_esc(test)} | {_esc(dim)} | "
                             f"{_esc(line.split(': ', 1)[1])} |")
        if lines:
            s = validity.get("settings") or {}
            out.append("<details><summary>What these verdicts are worth on this data: planted "
                       f"defects and an oracle ({_esc(s.get('resamples'))} resamples, sertest "
                       "validate)</summary>\n")
            out += ["| test | dimension | validation |", "|---|---|---|"] + lines
            out.append("\n</details>\n")
    errs = doc["items"]["errors"]
    if errs:
        out.append(f"<details><summary>{len(errs)} item error(s)</summary>\n")
        out += ["| item | stage | error |", "|---|---|---|"]
        for e in errs[:50]:
            out.append(f"| {_esc(e['id'])} | {_esc(e['stage'])} | {_esc(e['error'])} |")
        out.append("\n</details>\n")
    return "\n".join(out) + "\n"
