"""Writers of a validation: ``validity.json`` (everything) and ``validity.md`` (the tables)."""

from __future__ import annotations

import json
import os
from typing import Any

#: issue 12's targets: defects at the threshold's size detected in >= 95 % of resamples by
#: the test they target; the oracle flagged in <= 5 %.
DETECTION_TARGET = 0.95
FALSE_ALARM_TARGET = 0.05


def write_report(validation, out: str, name: str = "validity") -> list[str]:
    """Write ``<name>.json``, ``<name>.md`` and the compact ``<name>-summary.json`` (what an
    audit report shows beside each test, :func:`summary`) into ``out``; returns their paths."""
    os.makedirs(out, exist_ok=True)
    doc = _portable({**validation.doc, "timings": validation.timings})
    paths = [os.path.join(out, f"{name}.json"), os.path.join(out, f"{name}.md"),
             os.path.join(out, f"{name}-summary.json")]
    with open(paths[0], "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, sort_keys=False)
        fh.write("\n")
    with open(paths[1], "w", encoding="utf-8") as fh:
        fh.write(markdown(doc))
    with open(paths[2], "w", encoding="utf-8") as fh:
        json.dump(summary(doc), fh, indent=1, sort_keys=True)
        fh.write("\n")
    return paths


def _portable(value: Any) -> Any:
    """``value`` with absolute paths inside the working folder made relative to it (and
    other absolute paths cut to their file name): a published table names no machine."""
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value) and os.path.exists(value):
        cwd = os.getcwd()
        if value == cwd or value.startswith(cwd.rstrip(os.sep) + os.sep):
            return os.path.relpath(value, cwd)
        return os.path.basename(value)
    return value


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """Per test and dimension, what a reader of an audit needs beside the verdict: how often
    the oracle passed, failed and was inconclusive, and how often each planted defect at the
    size the test's threshold names was caught (not green).

    ``{"suite", "suite_sha256", "dataset": {name, items}, "settings": {resamples, share, seed,
    carrier, quick},
    "tests": {test: {dimension: {"oracle": {"pass", "fail", "inconclusive"},
    "defects": {defect: not_green}}}}}`` (rates in [0, 1]).
    """
    s = doc["settings"]
    tests: dict[str, dict[str, Any]] = {}
    for r in doc["rows"]:
        if r["kind"] == "oracle" and not _not_applicable(r):
            cell = tests.setdefault(r["test"], {}).setdefault(r["dimension"], {})
            cell["oracle"] = {"pass": r["passed"], "fail": r["detection"],
                              "inconclusive": r["inconclusive"]}
        elif (r["kind"] == "defect" and r["targeted"] and r["reference"]
              and not _not_applicable(r) and r.get("not_green") is not None):
            cell = tests.setdefault(r["test"], {}).setdefault(r["dimension"], {})
            cell.setdefault("defects", {})[r["defect"]] = r["not_green"]
    ds = doc.get("dataset", {})
    return {"suite": doc["suite"]["name"], "suite_sha256": doc["suite"].get("sha256"),
            "dataset": {"name": ds.get("name"), "items": ds.get("items", ds.get("n"))},
            "settings": {k: s.get(k) for k in ("resamples", "share", "seed", "carrier",
                                                "quick")},
            "tests": tests}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    text = _pct(row["detection"])
    more = [f"{_pct(row[k])} {short}" for k, short in (
        ("inconclusive", "inc."), ("gated", "gated"), ("skipped", "skipped")) if row.get(k)]
    return text + (f" ({', '.join(more)})" if more else "")


def _rate(row: dict[str, Any], kind: str) -> float:
    return sum(row["counts"].get(k, 0) for k in kind) / row["resamples"] if row else 0.0


def targets(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The rows issue 12's targets judge: ``detection`` (each defect at its reference size,
    on the tests it targets) and ``false_alarms`` (the oracle on every test).  ``met`` is
    ``None`` for a row whose test skipped in every resample (it does not apply to the data)."""
    rows = doc["rows"]
    clean = {(r["test"], r["dimension"]): r for r in rows if r["kind"] == "clean"}
    det = []
    for r in rows:
        if r["kind"] == "defect" and r["targeted"] and r["reference"]:
            c = clean.get((r["test"], r["dimension"]))
            det.append({**r, "clean_fail": c["detection"] if c else None,
                        "met": None if _not_applicable(r) else (
                            r.get("not_green") is not None
                            and r["not_green"] >= DETECTION_TARGET)})
    alarms = []
    for r in rows:
        if r["kind"] == "oracle":
            c = clean.get((r["test"], r["dimension"]))
            alarms.append({**r, "clean_fail": c["detection"] if c else None,
                           "met": None if _not_applicable(r) else (
                               r["detection"] is not None
                               and r["detection"] <= FALSE_ALARM_TARGET)})
    return {"detection": det, "false_alarms": alarms}


def _not_applicable(row: dict[str, Any]) -> bool:
    return row["resamples"] > 0 and row["counts"].get("skipped", 0) == row["resamples"]


def _met(value: bool | None) -> str:
    return "n/a (skipped)" if value is None else ("yes" if value else "**no**")


def _met_line(what: str, rows: list[dict[str, Any]]) -> str:
    judged = [r for r in rows if r["met"] is not None]
    text = f"{what}: {sum(r['met'] for r in judged)} of {len(judged)} met"
    if len(judged) < len(rows):
        text += (f" ({len(rows) - len(judged)} more not applicable: the test skips on this "
                 "data)")
    return text + "."


def markdown(doc: dict[str, Any]) -> str:
    s = doc["settings"]
    rows = doc["rows"]
    model = doc["model"]["name"]
    ds = doc.get("dataset", {})
    sizes = s.get("resample_sizes") or []
    tm = doc.get("timings", {})
    lines = [f"# Validity of the `{doc['suite']['name']}` suite: planted defects", ""]
    lines += [
        f"Model `{model}` on `{ds.get('name', 'data')}` ({ds.get('items', ds.get('n', '?'))} "
        f"items); {s['resamples']} resamples of {100 * s['share']:.0f} % of the speakers "
        f"({min(sizes) if sizes else '?'}–{max(sizes) if sizes else '?'} items each), seed "
        f"{s['seed']}, {s['n_boot']} bootstrap resamples, confidence {s['confidence']:g}"
        + (", quick (largest magnitude and at-threshold sizes only)" if s.get("quick") else "")
        + (f"; {tm['wall_seconds']:.0f} s." if tm.get("wall_seconds") else "."), "",
        "How to read: every defect is planted in "
        + ("the oracle's predictions" if s.get("carrier") == "oracle"
           else "the real model's own predictions")
        + " (per item and condition; see `sertest/validate/defects.py`), the suite is run on "
        "each resample "
        "of the data, and a cell of the grids below gives the share of resamples whose entry "
        "is **fail or error**; the shares *inconclusive* and *gated* (the model is not "
        "competent on the dimension, so the test is not judged) follow in brackets (the "
        "targets count a defect as caught when it is *not green*: any of these).  The "
        "**clean** model is "
        "the real model unchanged: a defect's detection means something only where the clean "
        "model passes.  The **oracle** predicts the truth plus Gaussian noise "
        f"(SD {s['oracle']['sigma']:g}; emotion: {100 * s['oracle']['confusion']:.0f} % "
        "confused classes), the same under every condition: any fail is a false alarm.", ""]

    t = targets(doc)
    lines += ["## Targets", "",
              f"**Detection**: each defect at the size its targeted test's threshold names "
              f"(constant and shuffled: in full) must not come out green - the test fails, "
              f"errs, is inconclusive or gated - in ≥ {100 * DETECTION_TARGET:.0f} % of "
              "resamples (*not green*; *failed* gives the share that failed outright).  A "
              "defect exactly at a threshold lies on the boundary itself: a test cannot "
              "*fail* it reliably, but it must never *pass* it.  "
              f"**False alarms**: the oracle should fail in ≤ {100 * FALSE_ALARM_TARGET:.0f} % "
              "of resamples; *passed* shows that a sound model can pass.  Detection means "
              "little where the clean model fails too.", ""]
    if t["detection"]:
        lines += [_met_line("Detection", t["detection"]), "",
                  "| defect | test | dimension | magnitude | not green | failed | "
                  "inconclusive | gated | clean model fails | met |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(t["detection"], key=lambda r: (r["defect"], r["test"], r["dimension"])):
            mag = r["magnitude_value"]
            lines.append(f"| {r['defect']} | {r['test']} | {r['dimension']} | "
                         f"{'–' if mag is None else f'{mag:.3g}'} | {_pct(r.get('not_green'))} | "
                         f"{_pct(r['detection'])} | "
                         f"{_pct(r['inconclusive'])} | {_pct(r.get('gated'))} | "
                         f"{_pct(r['clean_fail'])} | {_met(r['met'])} |")
        lines.append("")
    else:
        lines += ["No defect has a reference size on this suite (no targeted test names one).",
                  ""]
    if t["false_alarms"]:
        lines += [_met_line("False alarms", t["false_alarms"]), "",
                  "| test | dimension | oracle failed | oracle inconclusive | oracle passed | "
                  "clean model fails | met |", "|---|---|---|---|---|---|---|"]
        for r in t["false_alarms"]:
            lines.append(f"| {r['test']} | {r['dimension']} | {_pct(r['detection'])} | "
                         f"{_pct(r['inconclusive'])} | {_pct(r.get('passed'))} | "
                         f"{_pct(r['clean_fail'])} | {_met(r['met'])} |")
        lines.append("")

    # -- per defect: targeted tests x magnitudes ------------------------------------------------
    by_key = {(r["test"], r["dimension"], r["model"]): r for r in rows}
    tests = list(dict.fromkeys((r["test"], r["dimension"]) for r in rows))
    models = doc["models"]
    lines += ["## Detection by defect and magnitude", "",
              "Targeted tests first (marked ◆); a test that is not targeted but trips "
              "anyway is shown when it detects the largest magnitude in at least 50 % of "
              "resamples more often than it fails the clean model.", ""]
    for d in doc["defects"]:
        lines += [f"### {d['id']}", "", d["description"] + f" (magnitude: {d['unit']}).", ""]
        if d.get("not_planted"):
            lines += [f"Not planted: {d['not_planted']}.", ""]
            continue
        variants = [m for m in models if m["defect"] == d["id"]]
        if not variants:
            continue
        largest = next((m for m in reversed(variants) if not m["label"].startswith("threshold")),
                       variants[-1])
        header = ["test", "dimension", "clean", "oracle"] + [
            m["label"].replace("threshold:", "at threshold of ") for m in variants]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        shown = []
        for test, dim in tests:
            some = by_key.get((test, dim, variants[0]["name"]))
            if some is None:
                continue
            targeted = some["targeted"]
            big = by_key.get((test, dim, largest["name"]))
            clean = by_key.get((test, dim, model))
            if not targeted and not (big and clean and big["detection"] >= 0.5
                                     and big["detection"] > clean["detection"]):
                continue
            shown.append((not targeted, test, dim))
        for untargeted, test, dim in sorted(shown, key=lambda x: x[0]):
            cells = [("◆ " if not untargeted else "") + test, dim,
                     _cell(by_key.get((test, dim, model))),
                     _cell(by_key.get((test, dim, "oracle")))]
            for m in variants:
                r = by_key.get((test, dim, m["name"]))
                if r is not None and m.get("test") and m["test"] != test:
                    cells.append("")
                    continue
                cells.append(_cell(r))
            lines.append("| " + " | ".join(cells) + " |")
        if not shown:
            lines.append("| (no targeted test in this suite) |" + " |" * (len(header) - 1))
        lines.append("")

    # -- at-threshold sizes ------------------------------------------------------------------------
    if doc.get("thresholds"):
        lines += ["## Sizes named by thresholds", "",
                  "| defect | test | target | metric | judged limit | planted magnitude |",
                  "|---|---|---|---|---|---|"]
        for th in doc["thresholds"]:
            for tg in th["targets"]:
                mag = tg.get("magnitude")
                lines.append(f"| {th['defect']} | {th['test']} | {tg['target']} | "
                             f"{tg['metric']} | {tg['limit']:g} | "
                             f"{tg.get('error') or (f'{mag:.4g}' if mag is not None else '–')} |")
        lines.append("")

    # -- every test x every model (largest magnitude) --------------------------------------------
    big = [m for m in models if m["kind"] != "defect"] + [
        m for d in doc["defects"] for m in [x for x in models if x["defect"] == d["id"]
                                             and not x["label"].startswith("threshold")][-1:]]
    lines += ["## Every test against every defect (largest magnitude)", "",
              "| test | dimension | " + " | ".join(
                  "clean" if m["kind"] == "clean" else m["name"] for m in big) + " |",
              "|---|---|" + "---|" * len(big)]
    for test, dim in tests:
        cells = []
        for m in big:
            r = by_key.get((test, dim, m["name"]))
            mark = "◆ " if r is not None and r["targeted"] else ""
            cells.append(mark + _cell(r))
        lines.append(f"| {test} | {dim} | " + " | ".join(cells) + " |")
    lines.append("")

    lines += ["## Defects", "", "| defect | description | magnitude | grid | targets |",
              "|---|---|---|---|---|"]
    for d in doc["defects"]:
        lines.append(f"| {d['id']} | {d['description']} | {d['unit']} | "
                     f"{', '.join(f'{g:g}' for g in d['grid'])} | "
                     f"{', '.join(d['targets']) or '–'} |")
    lines.append("")
    if tm:
        lines += [f"Timings: {tm.get('wall_seconds', 0):.0f} s in all; predicting "
                  f"{tm.get('predict_seconds', 0):.0f} s ({tm.get('computed', 0)} predictions "
                  f"computed, {tm.get('cached', 0)} from the cache), planting "
                  f"{tm.get('plant_seconds', 0):.0f} s, judging "
                  f"{tm.get('evaluate_seconds', 0):.0f} s.", ""]
    return "\n".join(lines)
