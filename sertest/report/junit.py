"""``junit.xml``: one test case per test × model × dimension, for CI dashboards.

* ``classname`` is ``sertest.<topic>.<test>`` and ``name`` is ``<model>.<dimension>``;
  cases are listed failing first (error, fail, inconclusive, gated, pass, skipped);
* a ``fail`` verdict is a ``<failure>`` whose message starts with the one line that says
  why ("failed because ...") and names the failing measurements (metric, group, value, CI
  and threshold), failing first; a crashed test (``error``) is an ``<error>`` with the
  exception message (and the items the model failed), so CI tools count it as broken,
  never as passed;
* ``skipped`` and ``inconclusive`` become ``<skipped>`` with the reason (inconclusive: the
  confidence interval straddles the threshold, so the data cannot tell);
* ``gated`` (a fairness or robustness result of a dimension on which the model is not
  competent) becomes ``<skipped message="gated: REASON"/>``: never a pass;
* random baselines are reference points, not software under test: their cases are
  ``<skipped>`` with their measured verdict in the message, so they never turn CI red;
* flags (``[underpowered]``, ``[confound]`` ...) are appended to the message; their text,
  the verdict's multiplicity and item failures go to ``<system-out>`` with the notes;
* every measurement is kept as ``<properties>``: ``ccc[female]`` = the value, and
  ``ccc[female].ci_low``, ``.ci_high``, ``.n``, ``.threshold``, ``.verdict`` (and
  ``.mde``, ``.needs_n`` when the measurement records its power).

No timestamps or durations are written, so the same results give the same file.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from ..results import Results
from . import display
from .numbers import num

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: Any) -> str:
    """Text safe for XML 1.0 (control characters that XML cannot hold are dropped)."""
    return _INVALID_XML.sub("", str(text))


def describe(m: dict) -> str:
    """``ccc[female] = 0.41 [0.35, 0.47] (threshold > 0.5, n = 120): fail``."""
    name = display.cell_name(m)
    ci = m.get("ci")
    ci_text = f" [{num(ci[0])}, {num(ci[1])}]" if ci and len(ci) == 2 else ""
    thr = (m.get("threshold") or {}).get("text")
    extra = ", ".join(x for x in (f"threshold {thr}" if thr else "",
                                   f"n = {m['n']}" if m.get("n") is not None else "") if x)
    return f"{name} = {num(m.get('value'))}{ci_text}" + (f" ({extra})" if extra else "") + \
        f": {m.get('verdict')}"


def _message(entry: dict, verdicts: tuple[str, ...]) -> str:
    """``because <the deciding measurement>``, then the other measurements with
    ``verdicts`` (failing first)."""
    bad = [m for m in display.sort_measurements(entry.get("measurements", []))
           if m.get("verdict") in verdicts]
    if not bad:
        return entry.get("error") or entry.get("reason") or entry["verdict"]
    own = bool(entry.get("failed_because"))
    text = f"because {entry['failed_because']}" if own else \
        f"because {display.measurement_text(bad[0])}"
    listed = bad if own else bad[1:]
    if listed:
        text += ("; " if own else "; also ") + "; ".join(describe(m) for m in listed[:5])
        text += f"; and {len(listed) - 5} more" if len(listed) > 5 else ""
    return text


def _with_tags(text: str, entry: dict) -> str:
    tags = display.flag_tags(entry)
    return f"{text} {tags}" if tags else text


def render(results: Results) -> str:
    """The JUnit XML document as a string."""
    doc = results.doc
    models = {m["name"]: m for m in doc.get("models", [])}
    suite_name = (doc.get("suite") or {}).get("name", "suite")
    root = ET.Element("testsuites", name=_clean(f"sertest {suite_name}"))
    by_model: dict[str, list[dict]] = {}
    for t in doc.get("tests", []):
        by_model.setdefault(t["model"], []).append(t)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for model, entries in by_model.items():
        ref = display.is_baseline(models.get(model))
        suite = ET.SubElement(root, "testsuite", name=_clean(f"{suite_name}: {model}"))
        props = ET.SubElement(suite, "properties")
        info = models.get(model, {})
        for key, value in (("model", model), ("role", info.get("role", "")),
                           ("fingerprint", info.get("fingerprint", "")), ("seed", doc.get("seed")),
                           ("dataset", (doc.get("dataset") or {}).get("name", "")),
                           ("sertest_version", doc.get("sertest_version", ""))):
            ET.SubElement(props, "property", name=key, value=_clean(value))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for t in display.sort_entries(doc, entries):
            counts["tests"] += 1
            case = ET.SubElement(suite, "testcase",
                                 classname=_clean(f"sertest.{t.get('topic', 'other')}.{t['test']}"),
                                 name=_clean(f"{model}.{t['dimension']}"), time="0")
            cprops = ET.SubElement(case, "properties")
            ET.SubElement(cprops, "property", name="verdict", value=_clean(t["verdict"]))
            shown = display.verdict(doc, t)
            if shown != t["verdict"]:
                ET.SubElement(cprops, "property", name="shown_verdict", value=shown)
            if display.flags(t):
                ET.SubElement(cprops, "property", name="flags",
                              value=_clean(", ".join(k for k, _ in display.flags(t))))
            for m in t.get("measurements", []):
                key = display.cell_name(m)
                ci = m.get("ci") or [None, None]
                value = m.get("value")
                ET.SubElement(cprops, "property", name=_clean(key),
                              value="n/a" if value is None else _clean(value))
                for suffix, value in ((".ci_low", ci[0]), (".ci_high", ci[1]),
                                      (".n", m.get("n")),
                                      (".threshold", (m.get("threshold") or {}).get("text")),
                                      (".verdict", m.get("verdict")),
                                      (".mde", (m.get("power") or {}).get("mde")),
                                      (".needs_n", (m.get("power") or {}).get("needs_n"))):
                    if value is not None:
                        ET.SubElement(cprops, "property", name=_clean(key + suffix),
                                      value=_clean(value))
            verdict = display.verdict(doc, t)
            if ref:
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=_clean(_with_tags(
                    f"random baseline (a reference, not judged in CI); measured verdict "
                    f"{verdict}: {_message(t, ('fail', 'inconclusive'))}", t)))
            elif verdict == "fail":
                counts["failures"] += 1
                msg = _with_tags("failed " + _message(t, ("fail",)) if any(
                    m.get("verdict") == "fail" for m in t.get("measurements", []))
                    else "failed: " + (t.get("failed_because") or "see the measurements"), t)
                el = ET.SubElement(case, "failure", message=_clean(msg), type="fail")
                el.text = _clean("\n".join(describe(m) for m in
                                           display.sort_measurements(t.get("measurements", []))))
            elif verdict == "error":
                counts["errors"] += 1
                msg = t.get("error") or t.get("reason") or "test crashed"
                failures = display.item_failures_text(t)
                if failures and failures not in msg:
                    msg += f"; {failures}"
                el = ET.SubElement(case, "error", message=_clean(_with_tags(msg, t)),
                                   type="error")
                el.text = _clean(t.get("traceback") or msg)
            elif verdict == "inconclusive":
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=_clean(_with_tags(
                    "inconclusive: the confidence interval straddles the threshold, "
                    + _message(t, ("inconclusive",)), t)))
            elif verdict == "gated":
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=_clean(_with_tags(
                    f"gated: {display.reason(doc, t)}", t)))
            elif verdict == "skipped":
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=_clean(_with_tags(
                    t.get("reason") or "skipped", t)))
            out_lines = display.notes(t) + [str(n) for n in t.get("notes") or []]
            if out_lines:
                out = ET.SubElement(case, "system-out")
                out.text = _clean("\n".join(out_lines))
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("time", "0")
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
