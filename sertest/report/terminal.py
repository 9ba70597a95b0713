"""A readable plain-text summary for the terminal."""

from __future__ import annotations

from ..results import Results

_MARK = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCL", "error": "ERROR",
         "skipped": "skip"}


def fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def summary_text(results: Results, verbose: bool = False) -> str:
    doc = results.doc
    lines = [f"sertest {doc['sertest_version']} | suite {doc['suite']['name']} | "
             f"data {doc['dataset']['name']} ({doc['dataset']['items']} items) | seed {doc['seed']}"]
    errs = doc["items"]["errors"]
    if errs:
        lines.append(f"{len(errs)} item error(s), e.g. {errs[0]['id']}: {errs[0]['error']}")
    lines.append("")
    names = [m["name"] for m in doc["models"]]
    width = max(8, *(len(n) for n in names))
    lines.append(f"{'model':<{width}}  {'role':<9}  score  " + "  ".join(
        f"{t[:11]:>11}" for t in ("correctness", "fairness", "robustness")) + "  pass/fail/inc/err/skip")
    for m in doc["models"]:
        if m["name"] not in doc["summary"]["models"]:  # a reference model is not scored
            continue
        s = doc["summary"]["models"][m["name"]]
        c = s["counts"]
        lines.append(f"{m['name']:<{width}}  {m['role']:<9}  {fmt(s['score']):>5}  " + "  ".join(
            f"{fmt(s['topics'].get(t)):>11}" for t in ("correctness", "fairness", "robustness"))
            + f"  {c['pass']}/{c['fail']}/{c['inconclusive']}/{c['error']}/{c['skipped']}")
    lines.append("")
    cands = set(results.candidates())
    for t in doc["tests"]:
        if t["model"] not in cands and not verbose:
            continue
        head = f"[{_MARK.get(t['verdict'], t['verdict']):>7}] {t['test']} {t['model']} {t['dimension']}"
        if t.get("error"):
            lines.append(f"{head}: {t['error']}")
            continue
        if t.get("reason"):
            lines.append(f"{head}: {t['reason']}")
            continue
        shown = [m for m in t["measurements"] if m["verdict"] in ("fail", "inconclusive")] \
            if not verbose else t["measurements"]
        brief = ", ".join(
            f"{m['metric']}{'[' + m['group'] + ']' if m['group'] else ''}={fmt(m['value'])}"
            f" ({m['threshold']['text'] if m['threshold'] else ''})" for m in shown[:4])
        lines.append(head + (f": {brief}" if brief else ""))
    return "\n".join(lines)
