"""The judge: thresholds and verdicts, kept apart from measuring.  Nothing else judges.

A threshold is written as a short expression in suites: ``"> 0.5"``, ``"< 0.1"``,
``"abs < 0.075"`` or ``"abs > 0.7"``.  A test entry's measurements (cells) are judged
together by :func:`judge_entry`:

* ``pass`` if the value passes and its (marginal, 95 %) confidence interval lies wholly on
  the passing side.  A test passes when every cell passes: an intersection of claims,
  which each marginal interval already controls (intersection-union test);
* ``fail`` if the value fails and its **simultaneous** interval - one that covers all m
  judged cells of the test at once with 95 % confidence (max-|t| bootstrap band, see
  :mod:`sertest.stats.inference`) - lies wholly on the failing side.  So a sound model
  fails a test of 30 cells in at most about 5 % of data sets, not in 1 - 0.95^30 = 79 %;
* ``inconclusive`` otherwise (the data cannot tell), ``skipped`` if the value is NaN;
* a value known only to lie between two bounds (a censored dose-response breakdown) passes
  or fails if both bounds do;
* a value whose bootstrap ran but gave no interval (the metric undefined in too many
  resamples) is ``inconclusive``: a point value alone never decides.

Every judged cell gets a power analysis (standard error, minimum detectable effect at
80 % power; for ``abs <`` thresholds whether a sound model could pass at all and how many
items that would need).  Breakdown cells (one bin or class of a group) pass only
together, so each is planned for the power that gives all m of them 80 % together
(0.8^(1/m)).  An inconclusive breakdown cell that is underpowered cannot decide a test: the
verdict rests on the other cells and says so in a flag.  Primary cells (a group's mean error or CCC gap, a
condition's change) are never left out, so a pass always rests on cells that could have
caught the defect the test guards against; an underpowered primary cell leaves the test
inconclusive, "underpowered: needs about N items per group".

After all tests are judged, :func:`judge_audit` applies two rules across models:

* **competence gate** - fairness and robustness entries of a dimension on which a model is
  not competent (its clean CCC, or UAR, fails correctness) get the verdict ``gated``:
  equal quality across groups or conditions means nothing at chance level;
* **informativeness** - a test that a baseline (random or constant predictor) passes on
  this data is flagged ``uninformative`` for every model.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import UsageError

# verdict names (and SECONDARY, the role of a supporting cell) live in the vocabulary leaf
from ..vocabulary import (ERROR, FAIL, GATED, INCONCLUSIVE, INFO, PASS, SECONDARY, SKIPPED,
                          VERDICTS)

_EXPR = re.compile(r"^\s*(abs\s*)?(>=|<=|>|<)\s*([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Threshold:
    """``value OP limit``, optionally on the absolute value.

    >>> t = Threshold.parse('> 0.5')
    >>> t.text, t.passes(0.6)
    ('> 0.5', True)
    >>> t.judge(0.6, (0.55, 0.65)), t.judge(0.6, (0.45, 0.7)), t.judge(0.4, (0.3, 0.45))
    ('pass', 'inconclusive', 'fail')
    >>> Threshold.parse('abs < 0.075').passes(-0.05)
    True
    """

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
        limit, absolute = float(m.group(3)), bool(m.group(1))
        if not math.isfinite(limit):
            raise UsageError(f"{where}: threshold {text!r} has no finite limit; write a number "
                             "such as '> 0.5'")
        if absolute and limit <= 0:
            # |x| < 0 never holds and |x| > -0.5 always does: such a threshold judges nothing
            raise UsageError(f"{where}: threshold {text!r} compares an absolute value with "
                             f"{limit:g}, which no absolute value is below (or every one "
                             "reaches), so it judges nothing; an absolute limit must be "
                             "positive, e.g. 'abs < 0.075'")
        return cls(op=m.group(2), limit=limit, absolute=absolute)

    @property
    def text(self) -> str:
        return f"{'abs ' if self.absolute else ''}{self.op} {self.limit:g}"

    def passes(self, value: float) -> bool:
        v = abs(value) if self.absolute else value
        return {">": v > self.limit, "<": v < self.limit, ">=": v >= self.limit,
                "<=": v <= self.limit}[self.op]

    def judge(self, value: float | None, ci: tuple[float, float] | None = None) -> str:
        """The verdict of one lone cell from its value and marginal interval (a test of one
        cell, where the simultaneous interval is the marginal one).  Audits judge whole
        entries with :func:`judge_entry`."""
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


def judge_interval(threshold: Threshold, lo: float, hi: float) -> str:
    """Verdict for a value known only to lie between ``lo`` and ``hi`` (may be infinite).

    >>> judge_interval(Threshold.parse('> 10'), 20, float('inf'))
    'pass'
    >>> judge_interval(Threshold.parse('> 10'), 5, 20)
    'inconclusive'
    """
    a, b = threshold.passes(lo), threshold.passes(hi)
    if a and b:
        return PASS
    if not a and not b:
        return FAIL
    return INCONCLUSIVE


def _all_pass(th: Threshold, lo: float, hi: float) -> bool:
    return judge_interval(th, lo, hi) == PASS and _no_gap(th, lo, hi)


def _no_gap(th: Threshold, lo: float, hi: float) -> bool:
    """For ``abs`` thresholds an interval can straddle -limit..limit with both ends failing."""
    if not th.absolute:
        return True
    inside = -th.limit < lo and hi < th.limit
    return inside if th.op in ("<", "<=") else (lo > th.limit or hi < -th.limit)


def _all_fail(th: Threshold, lo: float, hi: float) -> bool:
    if th.absolute:
        inside = -th.limit < lo and hi < th.limit
        outside = lo > th.limit or hi < -th.limit
        return outside if th.op in ("<", "<=") else inside
    return not th.passes(lo) and not th.passes(hi)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def describe(m) -> str:
    """One line naming a judged measurement: ``female: ccc_difference -0.12 [-0.2, -0.05],
    threshold abs < 0.075``."""
    where = f"{m.group}: " if m.group else ""
    text = f"{where}{m.metric} {_fmt(m.value)}" if m.value == m.value else f"{where}{m.metric}"
    ci = m.ci_simultaneous if (m.verdict == FAIL and m.ci_simultaneous) else m.ci
    if ci:
        text += f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    if m.threshold is not None:
        text += f", threshold {m.threshold.text}"
    if m.verdict == FAIL and m.ci_simultaneous:
        text += " (simultaneous interval)"
    return text


def _se(m, z: float) -> float:
    """Standard error of a cell: from its replicates, at least the interval's width / 2z."""
    from ..stats import standard_error

    se = standard_error(m.replicates) if m.replicates is not None else math.nan
    if m.ci is not None and all(c is not None and math.isfinite(c) for c in m.ci):
        width = (m.ci[1] - m.ci[0]) / (2.0 * z)
        se = width if not math.isfinite(se) else max(se, width)
    return se


def judge_entry(measurements: list, threshold_for, confidence: float = 0.95) -> dict:
    """Judge one test entry's measurements in place; return the entry-level fields.

    Args:
        measurements: :class:`~sertest.checks.base.Measurement` objects of one test,
            model and target.  A measurement with a preset ``verdict`` is left alone.
        threshold_for: metric id -> :class:`Threshold` or ``None`` (the suite's).
        confidence: coverage of the marginal intervals and of the simultaneous band.

    Returns:
        ``{"verdict", "failed_because"?, "multiplicity"?, "flags"}``.
    """
    import numpy as np

    from ..stats import POWER, power_analysis, simultaneous_critical_value, z_value
    from ..stats.bootstrap import MAX_NAN_FRACTION

    z = z_value(0.5 + confidence / 2.0)
    judged = []
    for m in measurements:
        if m.verdict is not None:
            continue
        th = m.threshold or threshold_for(m.metric)
        m.threshold = th
        if th is None:
            m.verdict = INFO
            continue
        bounds = m.extra.get("known_between") if m.extra else None
        if bounds is not None:
            m.verdict = judge_interval(th, float(bounds[0]), float(bounds[1]))
            continue
        if m.value is None or not math.isfinite(m.value):
            m.verdict = SKIPPED
            continue
        if m.ci is None and m.replicates is not None:
            # the bootstrap ran but its interval is undefined (too many resamples where the
            # metric is undefined): the point value alone must not decide
            m.verdict = INCONCLUSIVE
            m.extra.setdefault("reason", "no confidence interval: undefined in more than "
                               f"{MAX_NAN_FRACTION:.0%} of bootstrap resamples")
            continue
        judged.append(m)
    # simultaneous band over the judged cells that have intervals
    with_ci = [m for m in judged if m.ci is not None]
    ses = [_se(m, z) for m in with_ci]
    reps = None
    lengths = {len(m.replicates) for m in with_ci if m.replicates is not None}
    if with_ci and len(lengths) == 1 and all(m.replicates is not None for m in with_ci):
        reps = np.stack([m.replicates for m in with_ci], axis=1)
    k = len(with_ci)
    crit = simultaneous_critical_value(np.array([m.value for m in with_ci]), reps, confidence) \
        if k > 1 else z
    # breakdown cells (bins, classes) pass only together: each is planned for the power that
    # gives all of them together 80 % (0.8 ** (1 / m)), primary cells for 80 % each
    n_breakdown = sum(_breakdown(m) for m in with_ci)
    family_power = POWER ** (1.0 / n_breakdown) if n_breakdown else POWER
    for m, se in zip(with_ci, ses):
        if k > 1 and math.isfinite(se):
            m.ci_simultaneous = (m.value - crit * se, m.value + crit * se)
        else:
            m.ci_simultaneous = tuple(m.ci)
        if math.isfinite(se):
            th = m.threshold
            m.power = power_analysis(se, m.n, th.limit, th.absolute, th.op, confidence,
                                     power=family_power if _breakdown(m) else POWER)
    for m in judged:
        th = m.threshold
        point = th.passes(m.value)
        if m.ci is None:
            m.verdict = PASS if point else FAIL
            continue
        lo, hi = m.ci
        slo, shi = m.ci_simultaneous
        if point and _all_pass(th, lo, hi):
            m.verdict = PASS
        elif not point and _all_fail(th, slo, shi):
            m.verdict = FAIL
        else:
            m.verdict = INCONCLUSIVE
    return _entry_fields(measurements, k, reps is not None, confidence)


def _breakdown(m) -> bool:
    """A breakdown cell: one bin or class of a group (not the group's own summary), or a
    secondary cell (:data:`SECONDARY`)."""
    if not m.extra:
        return False
    return bool(m.extra.get("bin") or m.extra.get("class")
                or m.extra.get("role") == SECONDARY)


def _exempt(m) -> bool:
    """Whether an inconclusive cell may be left out of a pass: an underpowered breakdown
    cell (one bin or class of a group), which the data cannot resolve - its value, however
    far out, is noise of that size.  A test's primary cells (a group's mean error or CCC
    gap, a condition's change) never are: a pass must rest on data that could have caught
    what it guards against, so an underpowered primary cell leaves the test inconclusive.
    An exempt cell still fails the test when its simultaneous interval lies outside."""
    if m.verdict != INCONCLUSIVE or m.power is None or not m.power.get("underpowered"):
        return False
    return _breakdown(m)


def _entry_fields(measurements: list, k: int, max_t: bool, confidence: float) -> dict:
    verdicts = [m.verdict for m in measurements]
    out: dict = {"flags": []}
    if k > 1:
        out["multiplicity"] = {
            "comparisons": k, "family_confidence": confidence,
            "method": ("fail: simultaneous max-|t| bootstrap band over the cells" if max_t
                       else "fail: Bonferroni-adjusted intervals over the cells")
            + "; pass: every cell's own interval (intersection-union test)"}
    fails = [m for m in measurements if m.verdict == FAIL]
    weak = [m for m in measurements if _exempt(m)]
    unsure = [m for m in measurements if m.verdict == INCONCLUSIVE and m not in weak]
    passes = [m for m in measurements if m.verdict == PASS]
    weak_primary = [m for m in unsure if m.power is not None and m.power.get("underpowered")]
    if weak or weak_primary:
        low = weak_primary + weak
        needs = sorted(m.power.get("needs_n") for m in low if m.power.get("needs_n"))
        need = ""
        if needs:
            median = needs[len(needs) // 2]
            need = f"; needs about {median} items per group" + (
                f" (up to {needs[-1]} for the hardest cell)" if needs[-1] > median else "")
        judged = len(weak) + len(unsure) + len(passes) + len(fails)
        text = (f"underpowered: {len(low)} of {judged} judged cells cannot reach a verdict on "
                f"this data{need}")
        if weak and not weak_primary and (passes or fails or unsure):
            text += (f"; {len(weak)} breakdown or secondary cell(s) left out, the verdict "
                     "rests on the others")
        out["flags"].append({"kind": "underpowered", "text": text})
    if fails:
        worst = fails[0]
        out["verdict"] = FAIL
        out["failed_because"] = describe(worst)
    elif unsure:
        out["verdict"] = INCONCLUSIVE
        first = weak_primary[0] if weak_primary else unsure[0]
        out["failed_because"] = ("cannot tell (underpowered): " if weak_primary
                                 else "cannot tell: ") + describe(first)
    elif passes:
        out["verdict"] = PASS
    elif weak:
        out["verdict"] = INCONCLUSIVE
        out["failed_because"] = out["flags"][-1]["text"]
    else:
        out["verdict"] = combine(verdicts)
    return out


def competence_checks() -> dict[str, tuple[str, str]]:
    """Task kind (``regression``, ``classification``) -> (test id, metric) of the clean
    correctness test whose whole-set verdict decides whether a model is competent on a
    target: the registered check that declares ``competence = METRIC`` for that kind.

    >>> competence_checks()["regression"]
    ('correctness_regression', 'ccc')
    """
    from .registry import registry

    out: dict[str, tuple[str, str]] = {}
    for check_id, cls in registry().items():
        metric = vars(cls).get("competence")  # declared by the class itself, not inherited
        for kind in cls.kinds if metric else ():
            if kind in out:
                raise TypeError(f"checks {out[kind][0]!r} and {check_id!r} both declare the "
                                f"competence metric of {kind}")
            out[kind] = (check_id, metric)
    return out


def __getattr__(name: str):
    """``COMPETENCE`` (older name): :func:`competence_checks`, built from the registry."""
    if name == "COMPETENCE":
        return competence_checks()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def competence_table(tests: list[dict]) -> dict[tuple[str, str], tuple[bool, str]]:
    """(model, dimension) -> (competent, reason): whether the model's clean CCC (UAR for
    ``emotion``) is not below the suite's threshold (pass or inconclusive), and the one-line
    reason when it is.  Dimensions the suite did not measure are absent."""
    out: dict[tuple[str, str], tuple[bool, str]] = {}
    gates = competence_checks()
    for t in tests:
        gate = gates.get("classification" if t["dimension"] == "emotion" else "regression")
        if gate is None:
            continue
        check, metric = gate
        if check not in (t.get("check"), t.get("test")):
            continue
        for m in t.get("measurements", []):
            if m["metric"] == metric and m["group"] is None and m["verdict"] != SKIPPED:
                thr = (m.get("threshold") or {}).get("text", "")
                value = _fmt(m["value"]) if m.get("value") is not None else "n/a"
                out[(t["model"], t["dimension"])] = (
                    m["verdict"] in (PASS, INCONCLUSIVE),
                    f"not competent on {t['dimension']}: {t['test']} {metric} {value} "
                    f"fails {thr}".rstrip())
                break
    return out


def judge_audit(tests: list[dict], roles: dict[str, str] | None = None) -> None:
    """Rules across entries, applied in place after every entry is judged.

    * competence gate: a fairness/robustness entry of a dimension on which the model's clean
      CCC (UAR) fails gets verdict ``gated`` (``judged_verdict`` keeps the judge's) and a
      ``reason``;
    * informativeness: an entry of a test that a baseline (role ``baseline``) passes -
      ungated, on the same dimension - is flagged ``uninformative`` for every model.
    """
    roles = roles or {}
    competent = competence_table(tests)
    for t in tests:
        if t["topic"] == "correctness" or t["verdict"] in (ERROR, SKIPPED):
            continue
        ok, why = competent.get((t["model"], t["dimension"]), (True, ""))
        if not ok:
            t["judged_verdict"] = t["verdict"]
            t["verdict"] = GATED
            t["reason"] = why
    passed_by: dict[tuple[str, str], list[str]] = {}
    for t in tests:
        if (roles.get(t["model"]) == "baseline" and t["verdict"] == PASS
                and t.get("check") != "model_health"):
            passed_by.setdefault((t["test"], t["dimension"]), []).append(t["model"])
    for t in tests:
        who = passed_by.get((t["test"], t["dimension"]))
        if who:
            t.setdefault("flags", []).append({"kind": "uninformative", "text": (
                f"uninformative: the baseline {', '.join(who)} also passes this test on "
                "this data")})


def combine(verdicts: list[str]) -> str:
    """A test's verdict from its measurements': any fail fails; then inconclusive; then pass.

    >>> combine(['pass', 'inconclusive', 'info'])
    'inconclusive'
    >>> combine(['pass', 'fail'])
    'fail'
    >>> combine(['info'])
    'skipped'
    """
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
    """Share of judged measurements that pass; an inconclusive one counts one half.

    >>> score(['pass', 'pass', 'inconclusive', 'fail'])
    0.625
    >>> score(['info']) is None
    True
    """
    judged = [v for v in verdicts if v in (PASS, FAIL, INCONCLUSIVE)]
    if not judged:
        return None
    return (sum(v == PASS for v in judged) + 0.5 * sum(v == INCONCLUSIVE for v in judged)) / len(judged)
