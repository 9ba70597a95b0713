"""What every renderer shows of a test entry, read from the results document alone.

The judge (:mod:`sertest.checks.verdict` and the checks) decides verdicts; this module only
*reads* them and puts them in the order and words the renderers share:

* :func:`verdict`: the verdict to show.  ``gated`` when the entry says so, and also for
  documents written before the ``gated`` verdict existed: a fairness or robustness entry of a
  dimension on which ``summary.models[M].competent`` says the model is not competent is shown
  as gated (never as pass), with its judged verdict kept beside it;
* :data:`ORDER`: entries failing first (error, fail, inconclusive, gated, pass, skipped) and
  :func:`sort_measurements`: inside an entry, failing measurements first, then inconclusive;
* :func:`because`: the one line that says why an entry failed (its ``failed_because``, else
  built from the first failing measurement: group, metric, value, interval, threshold);
* :func:`flags`, :func:`flag_tags`, :func:`multiplicity_text`, :func:`power_text`,
  :func:`item_failures_text`: the notes an entry carries, as short text;
* :func:`counts`: verdict counts per model as shown (a gated entry is counted as gated,
  never as pass).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from . import numbers

#: entry verdicts in display order: failing first
ORDER = ("error", "fail", "inconclusive", "gated", "pass", "skipped")
RANK = {v: i for i, v in enumerate(ORDER)}
#: measurement verdicts: failing first, then inconclusive, then the rest in document order
MEASURE_RANK = {"error": 0, "fail": 0, "inconclusive": 1}
#: flag kinds in the order they are listed, with a short tag for one-line outputs
FLAG_TAGS = {"item_failures": "item-failures", "underpowered": "underpowered",
             "confound": "confound", "uninformative": "uninformative", "clipped": "clipped",
             "n_changed": "n-changed"}
#: topics the competence gate applies to
GATED_TOPICS = ("fairness", "robustness")


#: the one number formatter (renderers call ``display.num``); see :mod:`.numbers`
num = numbers.num


# -- verdicts ------------------------------------------------------------------------------

def competent(doc: dict, model: str, dimension: str) -> bool | None:
    """``summary.models[model].competent[dimension]`` (``None`` when not recorded)."""
    s = ((doc.get("summary") or {}).get("models") or {}).get(model) or {}
    return (s.get("competent") or {}).get(dimension)


def verdict(doc: dict, entry: dict) -> str:
    """The verdict to show for ``entry`` (see the module docstring for ``gated``)."""
    v = entry.get("verdict") or "skipped"
    if v in ("pass", "fail", "inconclusive") and entry.get("topic") in GATED_TOPICS \
            and competent(doc, entry.get("model"), entry.get("dimension")) is False:
        return "gated"
    return v


def judged_verdict(doc: dict, entry: dict) -> str | None:
    """What the measurements of a gated entry said (``None`` for an entry not gated)."""
    if verdict(doc, entry) != "gated":
        return None
    if entry.get("judged_verdict"):
        return str(entry["judged_verdict"])
    v = entry.get("verdict")
    return None if v == "gated" else v


def gate_reason(doc: dict, model: str, dimension: str) -> str:
    """``not competent on arousal: correctness_regression ccc 0.12 fails > 0.5`` (for
    documents whose gated entries carry no ``reason``: schema 1)."""
    from ..results import competence_table

    ok, why = competence_table(doc.get("tests", [])).get((model, dimension), (None, ""))
    return why or f"not competent on {dimension}: its clean correctness fails the threshold"


def reason(doc: dict, entry: dict) -> str:
    """The one-line reason of a gated, skipped or error entry ('' if it has none)."""
    v = verdict(doc, entry)
    if v == "gated":
        text = entry.get("reason") or gate_reason(doc, entry.get("model"), entry.get("dimension"))
        jv = judged_verdict(doc, entry)
        return text + (f" (judged {jv})" if jv else "")
    if v == "error":
        return str(entry.get("error") or entry.get("reason") or "the test crashed")
    return str(entry.get("reason") or "")


def sort_entries(doc: dict, entries: Iterable[dict]) -> list[dict]:
    """Entries failing first (:data:`ORDER`), otherwise in document order."""
    return sorted(entries, key=lambda e: RANK.get(verdict(doc, e), len(ORDER)))


def worst(verdicts: Iterable[str]) -> str:
    """The verdict listed first in :data:`ORDER` (``skipped`` for none)."""
    vs = list(verdicts)
    return min(vs, key=lambda v: RANK.get(v, len(ORDER))) if vs else "skipped"


def sort_measurements(measurements: Iterable[dict]) -> list[dict]:
    """Measurements failing first, then inconclusive, then the rest (document order)."""
    return sorted(measurements, key=lambda m: MEASURE_RANK.get(m.get("verdict"), 2))


def counts(doc: dict, model: str) -> dict[str, int]:
    """How many entries of ``model`` show each verdict (gated counted apart from pass)."""
    out = {v: 0 for v in ORDER}
    for t in doc.get("tests", []):
        if t.get("model") == model:
            v = verdict(doc, t)
            out[v] = out.get(v, 0) + 1
    return out


# -- one-line texts ----------------------------------------------------------------------------

_LONG_NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d{4,}(?:[eE][-+]?\d+)?")


def threshold_text(threshold: dict | None) -> str:
    """A threshold as shown to readers: its text with calibrated limits rounded to three
    significant digits (``abs < 0.514379`` -> ``abs < 0.514``; results.json keeps the full
    precision); '' without a threshold."""
    text = str((threshold or {}).get("text") or "")
    return _LONG_NUMBER.sub(lambda m: f"{float(m.group(0)):.3g}", text)


def cell_name(m: dict) -> str:
    """A measurement's name in one-line texts: its metric, then its slice's label (the
    document's ``group``) in brackets.

    >>> cell_name({"metric": "ccc_difference", "group": "female / 0.25-0.5"})
    'ccc_difference[female / 0.25-0.5]'
    >>> cell_name({"metric": "ccc", "group": None})
    'ccc'
    """
    return m["metric"] + (f"[{m['group']}]" if m.get("group") is not None else "")


def measurement_text(m: dict) -> str:
    """``female: ccc_difference 0.151 [0.112, 0.19], threshold abs < 0.05``."""
    ci = m.get("ci")
    ci_text = f" [{num(ci[0])}, {num(ci[1])}]" if ci and len(ci) == 2 else ""
    thr = threshold_text(m.get("threshold"))
    group = f"{m['group']}: " if m.get("group") is not None else ""
    return f"{group}{m.get('metric')} {num(m.get('value'))}{ci_text}" + \
        (f", threshold {thr}" if thr else "")


def not_passing(entry: dict) -> list[dict]:
    """The entry's fail and inconclusive measurements, failing first."""
    return [m for m in sort_measurements(entry.get("measurements") or [])
            if m.get("verdict") in ("fail", "inconclusive")]


def deciding(entry: dict) -> dict | None:
    """The measurement that decides a failing entry: the one its ``failed_because`` names,
    else the first failing measurement (else the first inconclusive one); ``None`` if none."""
    bad = not_passing(entry)
    text = str(entry.get("failed_because") or "")
    if text.startswith("cannot tell: "):
        text = text[len("cannot tell: "):]
    if text:
        for m in bad:
            where = f"{m['group']}: " if m.get("group") is not None else ""
            if text.startswith(f"{where}{m.get('metric')} "):
                return m
    return bad[0] if bad else None


def others(entry: dict) -> list[dict]:
    """The not-passing measurements besides :func:`deciding`'s, failing first."""
    first = deciding(entry)
    return [m for m in not_passing(entry) if m is not first]


def failed_because(entry: dict) -> str:
    """The entry's ``failed_because``, else the deciding measurement's text ('' if none)."""
    if entry.get("failed_because"):  # the judge's text, its long numbers rounded for reading
        return _LONG_NUMBER.sub(lambda m: f"{float(m.group(0)):.3g}", str(entry["failed_because"]))
    m = deciding(entry)
    return measurement_text(m) if m is not None else ""


def because(doc: dict, entry: dict) -> str:
    """One line for any entry: ``failed because ...``, ``inconclusive: ...``,
    ``gated: ...``, ``error: ...``, ``skipped: ...``; '' for a pass."""
    v = verdict(doc, entry)
    if v in ("fail", "inconclusive"):
        fb = failed_because(entry)
        if not fb:
            return v
        return f"failed because {fb}" if v == "fail" else f"inconclusive: {fb}"
    if v in ("gated", "error", "skipped"):
        r = reason(doc, entry)
        return f"{v}: {r}" if r else v
    return ""


def flags(entry: dict) -> list[tuple[str, str]]:
    """The entry's flags as ``(kind, text)``, in document order (malformed ones as text)."""
    out = []
    for f in entry.get("flags") or []:
        if isinstance(f, dict):
            kind = str(f.get("kind") or "note")
            out.append((kind, str(f.get("text") or kind)))
        else:
            out.append(("note", str(f)))
    return out


def flag_tags(entry: dict) -> str:
    """``[underpowered] [confound]``: one short tag per flag kind ('' without flags)."""
    kinds: list[str] = []
    for kind, _ in flags(entry):
        tag = FLAG_TAGS.get(kind, kind)
        if tag not in kinds:
            kinds.append(tag)
    return " ".join(f"[{k}]" for k in kinds)


def flag_texts(entry: dict) -> list[str]:
    """``underpowered: needs about 300 items per group`` for each flag."""
    out = []
    for kind, text in flags(entry):
        out.append(text if text.lower().startswith(kind.replace("_", " ").lower()) or
                   text.lower().startswith(kind.lower()) else f"{kind}: {text}")
    return out


def multiplicity_text(entry: dict, method: bool = False) -> str:
    """``verdict over 30 comparisons, simultaneous 95 %`` ('' when not recorded); with
    ``method``, the method in parentheses."""
    mult = entry.get("multiplicity")
    if not isinstance(mult, dict) or not mult.get("comparisons"):
        return ""
    text = f"verdict over {mult['comparisons']} comparisons"
    conf = mult.get("family_confidence")
    if isinstance(conf, (int, float)):
        text += f", simultaneous {conf * 100:g} %"
    if method and mult.get("method"):
        text += f" ({mult['method']})"
    return text


def power_text(m: dict) -> str:
    """``mde 0.042; underpowered, needs about 300 items`` ('' without ``power``)."""
    p = m.get("power")
    if not isinstance(p, dict):
        return ""
    bits = []
    if p.get("mde") is not None:
        bits.append(f"mde {num(p['mde'], 3)}")
    if p.get("underpowered"):
        need = p.get("needs_n")
        bits.append("underpowered" + (f", needs about {need} items" if need else ""))
    elif p.get("needs_n"):
        bits.append(f"needs about {p['needs_n']} items")
    return "; ".join(bits)


def item_failures_text(entry: dict, first: int = 3) -> str:
    """``4 of 120 needed items failed, e.g. i01 (white_noise): RuntimeError ...``."""
    f = entry.get("item_failures")
    if not isinstance(f, dict) or not f.get("count"):
        return ""
    text = f"{f['count']}" + (f" of {f['needed']}" if f.get("needed") is not None else "") + \
        " needed item(s) failed"
    shown = []
    for e in (f.get("first") or [])[:first]:
        if isinstance(e, dict):
            cond = f" ({e['condition']})" if e.get("condition") not in (None, "", "clean") else ""
            shown.append(f"{e.get('id')}{cond}: {e.get('error')}")
        else:
            shown.append(str(e))
    return text + (", e.g. " + "; ".join(shown) if shown else "")


def notes(entry: dict) -> list[str]:
    """Everything an entry carries besides its verdict, one short text each: flags,
    multiplicity, item failures."""
    out = flag_texts(entry)
    mt = multiplicity_text(entry)
    if mt:
        out.append(mt)
    it = item_failures_text(entry)
    if it and not any(k == "item_failures" for k, _ in flags(entry)):
        out.append(it)
    return out


def is_baseline(model: dict | None) -> bool:
    """A random or constant baseline (a yardstick, never judged as a candidate): the role
    ``baseline``, or a ``random`` model audited as a candidate."""
    model = model or {}
    return model.get("role") == "baseline" or (model.get("info") or {}).get("format") == "random"


def label_free_text(doc: dict) -> str:
    """One sentence saying that an audit is label-free ('' when it is not): correctness is
    agreement with the reference model named in ``doc["reference"]``."""
    ref = doc.get("reference")
    if not ref:
        return ""
    return (f"Label-free audit: the truth is the clean prediction of the reference model "
            f"{ref}, so correctness means agreement with that model, not with human labels.")
