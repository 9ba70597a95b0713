"""Thresholds and verdicts, kept apart from measuring.

A threshold is written as a short expression in suites: ``"> 0.5"``, ``"< 0.1"``,
``"abs < 0.075"`` or ``"abs > 0.7"``.  A measurement is judged against it:

* ``pass`` if the value passes and, when a confidence interval is known, the whole interval
  passes too;
* ``fail`` if the value fails and the whole interval fails;
* ``inconclusive`` if the interval straddles the threshold (the data cannot tell);
* ``skipped`` if the value is NaN (e.g. a bin with too few samples).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import UsageError

PASS, FAIL, INCONCLUSIVE, ERROR, SKIPPED = "pass", "fail", "inconclusive", "error", "skipped"
INFO = "info"  # a measurement shown without a threshold
VERDICTS = (PASS, FAIL, INCONCLUSIVE, ERROR, SKIPPED)

_EXPR = re.compile(r"^\s*(abs\s*)?(>=|<=|>|<)\s*([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Threshold:
    """``value OP limit``, optionally on the absolute value."""

    op: str  # ">", "<", ">=", "<="
    limit: float
    absolute: bool = False

    @classmethod
    def parse(cls, text: "str | float | Threshold", where: str = "threshold") -> "Threshold":
        if isinstance(text, Threshold):
            return text
        m = _EXPR.match(str(text))
        if not m:
            raise UsageError(f"{where}: cannot read threshold {text!r}; write e.g. '> 0.5', "
                             "'< 0.1' or 'abs < 0.075'")
        return cls(op=m.group(2), limit=float(m.group(3)), absolute=bool(m.group(1)))

    @property
    def text(self) -> str:
        return f"{'abs ' if self.absolute else ''}{self.op} {self.limit:g}"

    def passes(self, value: float) -> bool:
        v = abs(value) if self.absolute else value
        return {">": v > self.limit, "<": v < self.limit, ">=": v >= self.limit,
                "<=": v <= self.limit}[self.op]

    def judge(self, value: float | None, ci: tuple[float, float] | None = None) -> str:
        """The verdict for a measured ``value`` with an optional confidence interval."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return SKIPPED
        point = self.passes(value)
        if ci is None or any(c is None or math.isnan(c) for c in ci):
            return PASS if point else FAIL
        lo, hi = ci
        if self.absolute:
            # |x| < t holds on the whole interval iff -t < lo and hi < t; fails on the whole
            # interval iff lo > t or hi < -t (for '>' the reverse).
            inside = -self.limit < lo and hi < self.limit
            outside = lo > self.limit or hi < -self.limit
            if self.op in ("<", "<="):
                all_pass, all_fail = inside, outside
            else:
                all_pass, all_fail = outside, inside
        else:
            all_pass = self.passes(lo) and self.passes(hi)
            all_fail = not self.passes(lo) and not self.passes(hi)
        if point and all_pass:
            return PASS
        if not point and all_fail:
            return FAIL
        return INCONCLUSIVE

    def to_dict(self) -> dict:
        return {"op": self.op, "value": self.limit, "absolute": self.absolute, "text": self.text}


def combine(verdicts: list[str]) -> str:
    """A test's verdict from its measurements': any fail fails; then inconclusive; then pass."""
    judged = [v for v in verdicts if v not in (SKIPPED, INFO)]
    if not judged:
        return SKIPPED
    if ERROR in judged:
        return ERROR
    if FAIL in judged:
        return FAIL
    if INCONCLUSIVE in judged:
        return INCONCLUSIVE
    return PASS


def score(verdicts: list[str]) -> float | None:
    """Share of judged measurements that pass; an inconclusive one counts one half."""
    judged = [v for v in verdicts if v in (PASS, FAIL, INCONCLUSIVE)]
    if not judged:
        return None
    return (sum(v == PASS for v in judged) + 0.5 * sum(v == INCONCLUSIVE for v in judged)) / len(judged)
