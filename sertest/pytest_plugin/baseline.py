"""Metric baselines for the pytest plugin: store an audit's measurements, gate regressions.

``--sertest-update-baseline`` writes the measurements of the audited (candidate) models to a
JSON file (default ``.sertest/baseline.json``), meant to be committed.  Later runs compare
each measurement with its stored value; ``--sertest-compare-fail METRIC:TOLERANCE`` (in the
manner of pytest-benchmark's ``--benchmark-compare-fail``) says how much a metric may get
*worse* before the test fails.  Which way is worse comes from the threshold stored with the
measurement: ``> 0.5`` (CCC, share unchanged) means higher is better, ``< 0.1`` (MAE)
means lower is better, ``abs < 0.075`` (a fairness gap) means a smaller magnitude is better.
Improvements never fail, and a measurement without a threshold is never gated.  A rule
whose metric no registered test declares is refused (:func:`check_rules`, with the metric
names it was probably meant to be), so a misspelt rule cannot silently gate nothing.

A gated measurement whose ``n`` (items it rests on) differs from the stored one fails the
gate whatever its value, with both n's in the report (``n 480 -> 473``): the numbers rest on
different items (typically the model failed some predictions), so a gain could come from
losing items.  Re-store the baseline (``--sertest-update-baseline``) if the change is meant.

File format ``sertest/baseline@1`` (sorted keys, one measurement per line, so that
``git diff`` shows which numbers moved)::

    {
     "schema": "sertest/baseline@1",
     "suites": {
      "quick": {
       "dataset": {"items": 560, "name": "sertest-corpus"},
       "measurements": {
        "correctness_regression | wav2small | arousal | ccc": {"ci": [0.7, 0.8], "n": 560, ...},
        ...
       },
       "models": {"wav2small": "onnx:3f2a..."},
       "seed": 0,
       "sertest_version": "0.1.0",
       "suite_sha256": "..."
      }
     }
    }

A measurement key is ``test | model | dimension | metric`` plus `` | group`` when the
measurement is about a group, condition, bin or class.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import UsageError
from ..report import write_text

SCHEMA = "sertest/baseline@1"
DEFAULT_PATH = os.path.join(".sertest", "baseline.json")
_EPS = 1e-9  # tolerance slack for values rounded to 6 significant digits


# -- keys and directions ---------------------------------------------------------------
def measurement_key(test: str, model: str, dimension: str, metric: str,
                    group: str | None = None) -> str:
    """The baseline key of one measurement."""
    parts = [test, model, dimension, metric] + ([str(group)] if group is not None else [])
    return " | ".join(parts)


def direction(threshold: dict[str, Any] | None) -> str | None:
    """Which way is better for a measurement judged by ``threshold`` (results-schema dict).

    Returns ``higher``, ``lower``, ``abs-higher``, ``abs-lower`` or ``None`` (no threshold:
    not gated).
    """
    if not threshold or threshold.get("op") not in (">", ">=", "<", "<="):
        return None
    way = "higher" if threshold["op"].startswith(">") else "lower"
    return f"abs-{way}" if threshold.get("absolute") else way


def worsening(base: float, new: float, way: str) -> float:
    """How much worse ``new`` is than ``base`` (positive = worse, negative = better)."""
    if way == "higher":
        return base - new
    if way == "lower":
        return new - base
    if way == "abs-higher":
        return abs(base) - abs(new)
    if way == "abs-lower":
        return abs(new) - abs(base)
    raise ValueError(f"unknown direction {way!r}")


# -- --sertest-compare-fail -------------------------------------------------------------
@dataclass(frozen=True)
class CompareRule:
    """``PATTERN:TOLERANCE``: how much a metric may worsen against the baseline.

    ``PATTERN`` is a metric id (``ccc``), a glob (``unchanged_*``, ``*``) or ``TEST/METRIC``
    (``robustness_small_changes/unchanged``); globs are allowed in both parts.
    ``TOLERANCE`` is an absolute amount (``-0.02``) or a percentage of the baseline's
    magnitude (``-5%``).  Its sign is optional and ignored: the amount always applies in the
    worsening direction of the metric (a decrease of CCC, an increase of MAE).
    """

    pattern: str
    amount: float
    percent: bool
    text: str

    @classmethod
    def parse(cls, text: str, where: str = "--sertest-compare-fail") -> "CompareRule":
        pattern, sep, amount = str(text).strip().rpartition(":")
        pattern = pattern.strip()
        amount = amount.strip()
        percent = amount.endswith("%")
        try:
            value = float(amount[:-1] if percent else amount)
        except ValueError:
            value = math.nan
        if not sep or not pattern or not math.isfinite(value):
            raise UsageError(f"{where} {text!r}: expected METRIC:TOLERANCE, e.g. 'ccc:-0.02', "
                             "'mae:0.01', 'unchanged:-5%' or '*:-0.01'")
        return cls(pattern=pattern, amount=abs(value), percent=percent, text=str(text).strip())

    def matches(self, test: str, metric: str) -> bool:
        if "/" in self.pattern:
            test_pat, _, metric_pat = self.pattern.partition("/")
            return fnmatch.fnmatchcase(test, test_pat) and fnmatch.fnmatchcase(metric, metric_pat)
        return fnmatch.fnmatchcase(metric, self.pattern)

    @property
    def specificity(self) -> tuple[int, int]:
        """Rules naming a test beat rules for any test; then more literal characters win."""
        literal = sum(ch not in "*?[]" for ch in self.pattern)
        return ("/" in self.pattern, literal)

    def tolerance(self, base: float) -> float:
        return self.amount * abs(base) / 100.0 if self.percent else self.amount


def parse_rules(texts: Iterable[str], where: str = "--sertest-compare-fail") -> list[CompareRule]:
    return [CompareRule.parse(t, where) for t in texts]


def rule_for(rules: list[CompareRule], test: str, metric: str) -> CompareRule | None:
    """The most specific rule matching ``test``/``metric`` (the last given on a tie)."""
    best = None
    for rule in rules:
        if rule.matches(test, metric) and (best is None or rule.specificity >= best.specificity):
            best = rule
    return best


def check_rules(rules: list[CompareRule], emitted: set[tuple[str, str]], known: Iterable[str],
                where: str = "--sertest-compare-fail") -> list[str]:
    """Check compare-fail rules against the metrics the audit can emit.

    Args:
        rules: the parsed rules.
        emitted: (test name, metric id) pairs of the collected suites: the metrics declared
            by the test of each test x model x dimension cell (and by ``model_health``).
        known: the metric ids any registered test declares.
        where: the option or file the rules come from (for the messages).

    Returns:
        A note per rule that matches a known metric but none the collected suites emit: it
        gates nothing in this session (say, a rule kept for a robustness test the suite
        does not run yet).

    Raises:
        UsageError: a rule whose metric matches no metric id at all (a misspelling), with
            the closest metric ids (:func:`difflib.get_close_matches`), the collected
            suites' first.

    >>> emitted = {("correctness_regression", "ccc"), ("correctness_regression", "mae")}
    >>> check_rules(parse_rules(["ccc:-0.02", "*:-0.1"]), emitted, ["ccc", "mae", "unchanged"])
    []
    >>> check_rules(parse_rules(["unchanged:-0.05"]), emitted, ["ccc", "mae", "unchanged"])
    ... # doctest: +ELLIPSIS
    ["--sertest-compare-fail 'unchanged:-0.05' gates nothing: no test ... (they emit: ccc, mae)"]
    >>> check_rules(parse_rules(["fraction_unchanged:-5%"]), emitted, ["ccc", "unchanged"])
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    sertest.errors.UsageError: --sertest-compare-fail ...; did you mean 'unchanged'? (...)
    """
    emitted_metrics = sorted({metric for _, metric in emitted})
    emitted_tests = sorted({test for test, _ in emitted})
    every = sorted(set(known) | set(emitted_metrics))
    shown = ", ".join(emitted_metrics) or "nothing"
    notes = []
    for rule in rules:
        test_pat, _, metric_pat = rule.pattern.rpartition("/")
        if not any(fnmatch.fnmatchcase(m, metric_pat) for m in every):
            close = (difflib.get_close_matches(metric_pat, emitted_metrics, n=3, cutoff=0.6)
                     or difflib.get_close_matches(metric_pat, every, n=3, cutoff=0.6))
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise UsageError(f"{where} {rule.text!r}: no test emits a metric matching "
                             f"{metric_pat!r}{hint} (the collected suites emit: {shown})")
        if any(rule.matches(test, metric) for test, metric in emitted):
            continue
        if test_pat and not any(fnmatch.fnmatchcase(t, test_pat) for t in emitted_tests):
            close = difflib.get_close_matches(test_pat, emitted_tests, n=3, cutoff=0.6)
            hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
            notes.append(f"{where} {rule.text!r} gates nothing: no test of the collected "
                         f"suites is named {test_pat!r}{hint}")
        else:
            notes.append(f"{where} {rule.text!r} gates nothing: no test of the collected "
                         f"suites emits a metric matching {metric_pat!r} (they emit: {shown})")
    return notes


# -- comparison -------------------------------------------------------------------------
@dataclass
class Delta:
    """One measurement compared with its baseline value."""

    metric: str
    group: str | None
    baseline: float
    new: float
    way: str
    rule: CompareRule | None
    tolerance: float | None
    base_n: int | None = None
    new_n: int | None = None
    #: stored in the baseline but not measured now (the model failed its items, a cell
    #: became too sparse, the test was skipped): a gated measurement that vanished fails
    vanished: bool = False

    @property
    def delta(self) -> float:
        return self.new - self.baseline

    @property
    def n_changed(self) -> bool:
        """The measurement rests on a different number of items than the stored one."""
        return self.base_n is not None and self.new_n is not None and self.base_n != self.new_n

    @property
    def worse_by(self) -> float:
        return worsening(self.baseline, self.new, self.way)

    @property
    def regressed(self) -> bool:
        """Gated and worse beyond the tolerance, or gated and measured on a different n
        (not comparable: fails the gate, see the module docstring)."""
        if self.vanished:
            return self.tolerance is not None
        return self.tolerance is not None and (self.worse_by > self.tolerance + _EPS
                                               or self.n_changed)

    @property
    def n_text(self) -> str:
        if self.n_changed:
            return f"n {self.base_n} -> {self.new_n}"
        return "" if self.new_n is None else f"n {self.new_n}"

    @property
    def allowed_text(self) -> str:
        """The tolerance with the sign of the worsening direction (``-0.02`` for CCC)."""
        if self.rule is None or self.tolerance is None:
            return "not gated"
        sign = "-" if self.way in ("higher", "abs-higher") else "+"
        what = "|x| " if self.way.startswith("abs") else ""
        text = f"{what}{sign}{self.tolerance:.4g} ({self.rule.text})"
        if self.vanished:
            text += "; not measured in this run: the baseline's measurement vanished"
        if self.n_changed:
            text += f"; n changed {self.base_n} -> {self.new_n}: not comparable"
        return text

    @property
    def label(self) -> str:
        from ..report.display import cell_name

        return cell_name({"metric": self.metric, "group": self.group})


class Baseline:
    """A baseline file: per suite, the stored measurements of the candidate models."""

    def __init__(self, path: str, doc: dict[str, Any] | None = None) -> None:
        self.path = path
        self.doc = doc or {"schema": SCHEMA, "suites": {}}

    @classmethod
    def load(cls, path: str) -> "Baseline | None":
        """The baseline at ``path``, or ``None`` if there is no such file."""
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except (OSError, ValueError) as exc:
            raise UsageError(f"baseline {path}: cannot read it ({exc}); fix or delete it, or "
                             "re-create it with --sertest-update-baseline") from exc
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA \
                or not isinstance(doc.get("suites"), dict):
            raise UsageError(f"baseline {path}: not a {SCHEMA} document; re-create it with "
                             "--sertest-update-baseline")
        return cls(path, doc)

    # -- writing ------------------------------------------------------------------------
    def store(self, results) -> int:
        """Replace the entry of ``results``' suite with its candidates' measurements.

        Returns the number of measurements stored.
        """
        doc = results.doc
        cands = set(results.candidates())
        measurements: dict[str, Any] = {}
        for t in doc["tests"]:
            if t["model"] not in cands:
                continue
            for m in t.get("measurements", []):
                key = measurement_key(t["test"], t["model"], t["dimension"], m["metric"],
                                      m.get("group"))
                thr = m.get("threshold")
                measurements[key] = {"value": m.get("value"), "ci": m.get("ci"), "n": m.get("n"),
                                     "threshold": thr.get("text") if thr else None,
                                     "direction": direction(thr), "verdict": m.get("verdict")}
        self.doc["suites"][doc["suite"]["name"]] = {
            "sertest_version": doc.get("sertest_version"),
            "seed": doc.get("seed"),
            "suite_sha256": doc["suite"].get("sha256"),
            "dataset": {"name": doc["dataset"].get("name"), "items": doc["dataset"].get("items")},
            "models": {m["name"]: m.get("fingerprint") for m in doc["models"]
                       if m["name"] in cands},
            "measurements": measurements,
        }
        return len(measurements)

    def write(self) -> None:
        """Write atomically, in the diff-friendly layout described in the module docstring."""
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        write_text(self.path, dumps(self.doc))

    # -- reading --------------------------------------------------------------------------
    def suite(self, name: str) -> dict[str, Any] | None:
        return self.doc["suites"].get(name)

    def model_for(self, suite: dict[str, Any], model: str, n_candidates: int) -> str | None:
        """The baseline model to compare ``model`` with: the same name, or the only model
        stored when a single candidate is audited (a retrained model under a new file name)."""
        stored = list(suite.get("models", {}))
        if model in stored:
            return model
        if len(stored) == 1 and n_candidates == 1:
            return stored[0]
        return None

    @staticmethod
    def incompatibility(suite: dict[str, Any], results) -> str | None:
        """Why the stored numbers cannot be compared with ``results`` (``None`` if they can)."""
        doc = results.doc
        base_data = suite.get("dataset", {})
        if base_data.get("name") != doc["dataset"].get("name") \
                or base_data.get("items") != doc["dataset"].get("items"):
            return (f"baseline was measured on dataset {base_data.get('name')!r} "
                    f"({base_data.get('items')} items), this run on {doc['dataset'].get('name')!r} "
                    f"({doc['dataset'].get('items')} items)")
        if suite.get("seed") != doc.get("seed"):
            return f"baseline was measured with seed {suite.get('seed')}, this run with {doc.get('seed')}"
        return None

    def compare(self, entry: dict[str, Any], suite: dict[str, Any], base_model: str,
                rules: list[CompareRule]) -> list[Delta]:
        """Compare one results entry with the stored measurements of ``base_model``."""
        stored = suite.get("measurements", {})
        out = []
        for m in entry.get("measurements", []):
            key = measurement_key(entry["test"], base_model, entry["dimension"], m["metric"],
                                  m.get("group"))
            old = stored.get(key)
            if old is None or old.get("value") is None or m.get("value") is None:
                continue
            way = old.get("direction") or direction(m.get("threshold"))
            if way is None:
                continue
            rule = rule_for(rules, entry["test"], m["metric"])
            tol = rule.tolerance(float(old["value"])) if rule else None
            out.append(Delta(m["metric"], m.get("group"), float(old["value"]), float(m["value"]),
                             way, rule, tol, base_n=_int_or_none(old.get("n")),
                             new_n=_int_or_none(m.get("n"))))
        measured = {measurement_key(entry["test"], base_model, entry["dimension"], m["metric"],
                                    m.get("group"))
                    for m in entry.get("measurements", []) if m.get("value") is not None}
        prefix = measurement_key(entry["test"], base_model, entry["dimension"], "")
        for key, old in sorted(stored.items()):
            if not key.startswith(prefix) or key in measured or old.get("value") is None:
                continue
            parts = key[len(prefix):].split(" | ", 1)
            way = old.get("direction") or direction(old.get("threshold"))
            if way is None:
                continue
            rule = rule_for(rules, entry["test"], parts[0])
            tol = rule.tolerance(float(old["value"])) if rule else None
            out.append(Delta(parts[0], parts[1] if len(parts) > 1 else None,
                             float(old["value"]), math.nan, way, rule, tol,
                             base_n=_int_or_none(old.get("n")), vanished=True))
        return out


def _int_or_none(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def format_regressions(deltas: list[Delta]) -> str:
    """A table of the measurements that got worse beyond their tolerance or whose n changed
    (column ``n``: ``480 -> 473`` when it did)."""
    rows = [("metric", "baseline", "new", "delta", "n", "allowed")]
    rows += [(d.label, f"{d.baseline:.4g}", "missing" if d.vanished else f"{d.new:.4g}",
              "n/a" if d.vanished else f"{d.delta:+.4g}",
              (f"{d.base_n} -> {d.new_n}" if d.n_changed else
               ("" if d.new_n is None else str(d.new_n))), d.allowed_text)
             for d in deltas if d.regressed]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in rows)


def dumps(doc: dict[str, Any]) -> str:
    """JSON with sorted keys, indented, and each measurement on a single line."""
    return _render(doc, 0, inline_under=None) + "\n"


def _render(obj: Any, depth: int, inline_under: str | None) -> str:
    if isinstance(obj, dict) and inline_under != "measurements-item":
        if not obj:
            return "{}"
        pad = " " * (depth + 1)
        items = []
        for k in sorted(obj):
            child_mode = "measurements-item" if inline_under == "measurements" else (
                "measurements" if k == "measurements" else None)
            items.append(f"{pad}{json.dumps(k)}: {_render(obj[k], depth + 1, child_mode)}")
        return "{\n" + ",\n".join(items) + "\n" + " " * depth + "}"
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False)


__all__ = ["Baseline", "CompareRule", "DEFAULT_PATH", "Delta", "SCHEMA", "check_rules",
           "direction", "dumps", "format_regressions", "measurement_key", "parse_rules", "rule_for",
           "worsening"]
