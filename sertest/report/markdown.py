"""``summary.md``: GitHub-flavoured Markdown for CI job summaries and pull-request comments."""

from __future__ import annotations

from ..results import Results

_ICON = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "⚠️ inconclusive",
         "error": "💥 error", "skipped": "➖ skipped"}


def _esc(text) -> str:
    """Escape text for a Markdown table cell (no HTML, no pipes, no line breaks)."""
    s = str(text)
    for ch in ("\\", "|", "<", ">", "*", "_", "`", "[", "]"):
        s = s.replace(ch, "\\" + ch)
    return s.replace("\r", " ").replace("\n", " ")


def _num(v) -> str:
    return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def render(results: Results) -> str:
    doc = results.doc
    out = [f"## sertest audit: {_esc(doc['suite']['name'])} on {_esc(doc['dataset']['name'])}", ""]
    out.append(f"{doc['dataset']['items']} items, seed {doc['seed']}, sertest {doc['sertest_version']}")
    out.append("")
    out.append("| model | role | score | correctness | fairness | robustness | pass | fail | inconclusive | error |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for m in doc["models"]:
        if m["name"] not in doc["summary"]["models"]:  # a reference model is not scored
            continue
        s = doc["summary"]["models"][m["name"]]
        c = s["counts"]
        out.append(f"| {_esc(m['name'])} | {m['role']} | {_num(s['score'])} | "
                   + " | ".join(_num(s["topics"].get(t)) for t in ("correctness", "fairness", "robustness"))
                   + f" | {c['pass']} | {c['fail']} | {c['inconclusive']} | {c['error']} |")
    out.append("")
    cands = set(results.candidates())
    rows = [t for t in doc["tests"] if t["model"] in cands]
    if rows:
        out += ["| test | model | dimension | verdict | details |", "|---|---|---|---|---|"]
        for t in rows:
            if t.get("error") or t.get("reason"):
                detail = t.get("error") or t.get("reason")
            else:
                bad = [m for m in t["measurements"] if m["verdict"] in ("fail", "inconclusive")]
                shown = bad or t["measurements"]
                detail = "; ".join(
                    f"{m['metric']}{' ' + str(m['group']) if m['group'] else ''} = {_num(m['value'])}"
                    + (f" ({m['threshold']['text']})" if m["threshold"] else "") for m in shown[:3])
                if len(shown) > 3:
                    detail += f"; +{len(shown) - 3} more"
            out.append(f"| {_esc(t['test'])} | {_esc(t['model'])} | {t['dimension']} | "
                       f"{_ICON.get(t['verdict'], t['verdict'])} | {_esc(detail)} |")
        out.append("")
    errs = doc["items"]["errors"]
    if errs:
        out.append(f"<details><summary>{len(errs)} item error(s)</summary>\n")
        out += ["| item | stage | error |", "|---|---|---|"]
        for e in errs[:50]:
            out.append(f"| {_esc(e['id'])} | {e['stage']} | {_esc(e['error'])} |")
        out.append("\n</details>\n")
    return "\n".join(out) + "\n"
