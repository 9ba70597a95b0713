"""A readable plain-text summary for the terminal.

Entries are listed failing first (error, fail, inconclusive, gated, pass, skipped), each with
its flags as short tags and the one line that says why it did not pass.
"""

from __future__ import annotations

from ..results import Results
from . import display
from .numbers import num

_MARK = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCL", "error": "ERROR",
         "skipped": "skip", "gated": "GATED"}
#: measurements named on a failing entry's line (the rest are counted)
SHOWN = 3


def fmt(value) -> str:
    """A value of the summary: three decimals (:func:`.numbers.num`)."""
    return num(value, 3, fixed=True)


def _brief(m: dict) -> str:
    thr = display.threshold_text(m.get("threshold"))
    return f"{display.cell_name(m)}={fmt(m.get('value'))}" + (f" ({thr})" if thr else "")


def entry_lines(doc: dict, t: dict, verbose: bool = False) -> list[str]:
    """The line (and, verbose, the indented detail lines) of one test entry."""
    v = display.verdict(doc, t)
    tags = display.flag_tags(t)
    head = f"[{_MARK.get(v, v):>7}] {t['test']} {t['model']} {t['dimension']}" + \
        (f" {tags}" if tags else "")
    lines = []
    ms = display.sort_measurements(t.get("measurements") or [])
    if v in ("fail", "inconclusive"):
        text = display.because(doc, t)
        rest = display.others(t)  # besides the measurement "because" names
        if rest:
            text += "; also " + ", ".join(_brief(m) for m in rest[:SHOWN - 1])
            if len(rest) > SHOWN - 1:
                text += f" (+{len(rest) - SHOWN + 1} more not passing)"
        lines.append(f"{head}: {text}")
    elif v in ("error", "gated", "skipped"):
        lines.append(f"{head}: {display.reason(doc, t)}" if display.reason(doc, t) else head)
        failures = display.item_failures_text(t)
        if failures:
            lines.append(f"          {failures}")
    else:
        shown = ms if verbose else []
        brief = ", ".join(_brief(m) for m in shown[:4])
        lines.append(head + (f": {brief}" if brief else ""))
    if verbose:
        for note in display.notes(t):
            lines.append(f"          {note}")
        for m in ms:
            p = display.power_text(m)
            if p and m.get("verdict") in ("fail", "inconclusive"):
                lines.append(f"          {_brief(m)}: {p}")
    return lines


def summary_text(results: Results, verbose: bool = False) -> str:
    doc = results.doc
    lines = [f"sertest {doc['sertest_version']} | suite {doc['suite']['name']} | "
             f"data {doc['dataset']['name']} ({doc['dataset']['items']} items) | seed {doc['seed']}"]
    if display.label_free_text(doc):
        lines.append(display.label_free_text(doc).upper().split(":")[0] + ":"
                     + display.label_free_text(doc).split(":", 1)[1])
    errs = doc["items"]["errors"]
    if errs:
        lines.append(f"{len(errs)} item error(s), e.g. {errs[0]['id']}: {errs[0]['error']}")
    lines.append("")
    names = [m["name"] for m in doc["models"]]
    width = max(8, *(len(n) for n in names))
    lines.append(f"{'model':<{width}}  {'role':<9}  score  " + "  ".join(
        f"{t[:11]:>11}" for t in ("correctness", "fairness", "robustness"))
        + "  pass/fail/inc/gated/err/skip")
    for m in doc["models"]:
        if m["name"] not in doc["summary"]["models"]:  # a reference model is not scored
            continue
        s = doc["summary"]["models"][m["name"]]
        c = display.counts(doc, m["name"])
        lines.append(f"{m['name']:<{width}}  {m['role']:<9}  {fmt(s['score']):>5}  " + "  ".join(
            f"{fmt(s['topics'].get(t)):>11}" for t in ("correctness", "fairness", "robustness"))
            + f"  {c['pass']}/{c['fail']}/{c['inconclusive']}/{c['gated']}/{c['error']}"
              f"/{c['skipped']}")
    lines.append("")
    cands = set(results.candidates())
    shown = [t for t in doc["tests"] if t["model"] in cands or verbose]
    for t in display.sort_entries(doc, shown):
        lines += entry_lines(doc, t, verbose)
    return "\n".join(lines)
