"""What the plugin writes: failure texts, skip reasons, one-line headlines and the
``sertest`` table of the terminal summary.  The verdicts and their wording come from
:mod:`sertest.report.display` (never re-judged here), imported when first needed.
"""

from __future__ import annotations

import os
from typing import Any

from ..report.numbers import num


def fmt(value: Any) -> str:
    """A value as shown in reports and JUnit properties (4 significant digits,
    :func:`sertest.report.numbers.num`)."""
    return num(value)


def measurement_text(m: dict[str, Any]) -> str:
    """One measurement: metric, group, value, CI, n, threshold and verdict."""
    group = f" [{m['group']}]" if m.get("group") is not None else ""
    ci = f", CI [{fmt(m['ci'][0])}, {fmt(m['ci'][1])}]" if m.get("ci") else ""
    n = f", n={m['n']}" if m.get("n") is not None else ""
    thr = m["threshold"]["text"] if m.get("threshold") else "no threshold"
    return f"{m['metric']}{group} = {fmt(m.get('value'))}{ci}{n}; threshold {thr} -> {m['verdict']}"


def _describe(entry: dict[str, Any], only: tuple[str, ...], sep: str = "\n") -> str:
    from ..report.display import sort_measurements

    shown = [m for m in sort_measurements(entry.get("measurements", []))
             if m.get("verdict") in only]
    prefix = "  " if sep == "\n" else ""
    return sep.join(prefix + measurement_text(m) for m in shown) or f"{prefix}(no measurement)"


def failure_text(doc: dict[str, Any], entry: dict[str, Any], head: str) -> str:
    """The report of a failed or crashed entry: why in one line, the measurements that did
    not pass (failing first), the items the model failed, flags and multiplicity."""
    from ..report import display

    lines = []
    failures = display.item_failures_text(entry)
    if display.verdict(doc, entry) == "error":
        lines.append(f"{head} crashed: {entry.get('error') or entry.get('reason') or ''}".rstrip())
        if failures:
            lines.append(f"  {failures}")
        if entry.get("traceback"):
            lines.append(entry["traceback"].rstrip())
    else:
        fb = display.failed_because(entry)
        lines.append(f"{head} failed" + (f" because {fb}:" if fb else ":"))
        lines.append(_describe(entry, only=("fail", "inconclusive")))
    for note in display.notes(entry):
        if note != failures:
            lines.append(f"  note: {note}")
    return "\n".join(lines)


def skip_reason(doc: dict[str, Any], entry: dict[str, Any], where: str) -> str:
    """The skip reason of an inconclusive, gated or skipped entry, with its flags."""
    from ..report import display

    verdict = display.verdict(doc, entry)
    if verdict == "inconclusive":
        text = f"sertest inconclusive: {where}: " + _describe(entry, only=("inconclusive",), sep="; ")
    elif verdict == "gated":
        text = f"sertest gated: {where}: {display.reason(doc, entry)}"
    else:
        text = f"sertest skipped: {where}: {entry.get('reason') or 'nothing to judge'}"
    extra = display.notes(entry)
    return text + (f" [{'; '.join(extra)}]" if extra else "")


def headline(entry: dict[str, Any], deltas: list, doc: dict[str, Any] | None = None) -> str:
    """One short phrase for the summary table: the regression, else why the entry did not
    pass (else its first judged measurement); flags as tags."""
    from ..report import display

    tags = display.flag_tags(entry)
    return (_headline_text(entry, deltas, doc or {}) + (f" {tags}" if tags else "")).strip()


def _headline_text(entry: dict[str, Any], deltas: list, doc: dict[str, Any]) -> str:
    from ..report import display

    bad = [d for d in deltas if d.regressed]
    if bad:
        d = bad[0]
        return f"{d.label} {fmt(d.baseline)} -> {fmt(d.new)} ({d.delta:+.3g}, allowed {d.allowed_text})"
    verdict = display.verdict(doc, entry)
    if verdict == "error":
        text = (entry.get("error") or entry.get("reason") or "").splitlines()
        failures = display.item_failures_text(entry, first=1)
        return "; ".join(x for x in (text[0][:80] if text else "", failures) if x)
    if verdict == "gated":
        return display.reason(doc, entry)[:100]
    if entry.get("reason"):
        return entry["reason"][:80]
    ms = entry.get("measurements", [])
    order = {"fail": 0, "inconclusive": 1, "pass": 2}
    judged = sorted((m for m in ms if m.get("verdict") in order), key=lambda m: order[m["verdict"]])
    if not judged:
        return ""
    m = judged[0]
    thr = (m.get("threshold") or {}).get("text", "")
    return f"{display.cell_name(m)}={fmt(m.get('value'))}" + (f" ({thr})" if thr else "") \
        + (f", {len(judged) - 1} more" if len(judged) > 1 else "")


def terminal_summary(state, tr) -> None:
    """The ``sertest`` section: one row per item (failing first), then the baseline's
    status (``state``: the session's :class:`~sertest.pytest_plugin.session.SertestState`)."""
    if not state.reports:
        return
    tr.section("sertest")
    from ..report.display import RANK

    rows = [("outcome", "test", "model", "dimension", "verdict", "measurement")]
    statuses: dict[str, int] = {}
    failing_first = sorted(state.reports, key=lambda r: (
        r[1] != "failed", RANK.get(r[2].get("sertest.verdict", ""), len(RANK))))
    for _nodeid, outcome, p in failing_first:
        rows.append((outcome, p.get("sertest.test", "?"), p.get("sertest.model", "?"),
                     p.get("sertest.dimension", "?"), p.get("sertest.verdict", "?"),
                     p.get("sertest.summary", "")))
        st = p.get("sertest.baseline", "")
        if st:
            statuses[st] = statuses.get(st, 0) + 1
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        tr.write_line("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5])
    s = state.settings
    if s.update_baseline:
        fresh = os.path.exists(s.baseline) and os.path.getmtime(s.baseline) >= state.started - 1
        tr.write_line(f"baseline {'updated' if fresh else 'NOT updated'}: {s.baseline}")
    elif statuses.get("absent"):
        tr.write_line(f"no baseline at {s.baseline}; create it with --sertest-update-baseline")
    else:
        n_reg = sum(p.get("sertest.regressions", "0") != "0" for _, _, p in state.reports)
        tr.write_line(f"baseline {s.baseline}: " + ", ".join(
            f"{k} x{v}" for k, v in sorted(statuses.items()))
            + (f"; {n_reg} item(s) regressed" if n_reg else "")
            + ("" if s.compare_fail else "; no --sertest-compare-fail given, nothing gated"))
    if s.out:
        tr.write_line(f"results and reports: {s.out}")
