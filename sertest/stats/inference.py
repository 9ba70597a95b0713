r"""Inference on bootstrap replicates: standard errors, simultaneous intervals, power, p-values.

**Simultaneous intervals** (:func:`simultaneous_critical_value`).  A test judges many cells
(groups x bins, conditions); a "fail" needs only one cell outside its threshold, so with
m independent 95 % intervals a sound model would fail 1 - 0.95^m of the time (79 % for
m = 30).  A fail is therefore decided on intervals that hold *simultaneously* for all m
cells with 95 % confidence: :math:`\hat\theta_j \pm c\,\mathrm{se}_j` where c is the 95 %
quantile over resamples r of :math:`\max_j |\theta^*_{rj} - \hat\theta_j| / \mathrm{se}_j`
(the max-|t| band; Bonferroni's :math:`z_{1-\alpha/2m}` where cells have no joint
replicates).  A "pass" needs every cell inside, an intersection of claims, which each
marginal 95 % interval already controls at 5 % (intersection-union test): no adjustment.

**Power** (:func:`power_analysis`).  For a judged value with standard error se, the
smallest effect an interval of confidence :math:`1-\alpha` resolves with power
:math:`1-\beta` is :math:`\mathrm{MDE} = (z_{1-\alpha/2} + z_{1-\beta})\,\mathrm{se}`.  For a
difference judged ``abs < t`` (ideal 0), a model with no difference at all passes with
probability :math:`P(|Z| < t/\mathrm{se} - z_{1-\alpha/2})`; it reaches 80 % only if
:math:`t \ge (z_{1-\alpha/2} + z_{0.9})\,\mathrm{se}`.  Below that the cell is
*underpowered*: no sound model could reliably pass it, and since se shrinks as
:math:`1/\sqrt{n}` it would need about :math:`n\,((z_{1-\alpha/2}+z_{0.9})\,\mathrm{se}/t)^2`
items.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.stats import norm

POWER = 0.8  # the power a measurement is planned for


@functools.lru_cache(maxsize=256)
def z_value(p: float) -> float:
    """The standard normal quantile :math:`z_p` (memoised: the judge asks for a few values
    thousands of times).

    >>> round(z_value(0.975), 3)
    1.96
    """
    return float(norm.ppf(p))


def standard_error(values: np.ndarray) -> float:
    """Bootstrap standard error: the standard deviation of the finite replicates (NaN if
    fewer than 2).

    >>> standard_error(np.array([1.0, 2.0, 3.0]))
    1.0
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.std(v, ddof=1)) if v.size >= 2 else math.nan


def simultaneous_critical_value(points: np.ndarray, reps: np.ndarray | None,
                                confidence: float) -> float:
    """Critical value c of simultaneous intervals ``point_j +- c * se_j`` over m cells.

    Args:
        points: (m,) measured values.
        reps: (R, m) joint bootstrap replicates (same resample in a row), or ``None`` for
            Bonferroni's normal quantile.
        confidence: family-wise coverage.

    >>> round(simultaneous_critical_value(np.zeros(1), None, 0.95), 2)
    1.96
    >>> round(simultaneous_critical_value(np.zeros(10), None, 0.95), 2)
    2.81
    """
    m = len(points)
    alpha = 1.0 - confidence
    bonferroni = z_value(1.0 - alpha / (2.0 * max(m, 1)))
    if reps is None or m == 0:
        return bonferroni
    reps = np.asarray(reps, dtype=float)
    se = np.array([standard_error(reps[:, j]) for j in range(m)])
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.abs(reps - np.asarray(points, float)[None, :]) / se[None, :]
    t[:, ~(se > 0)] = 0.0
    t = np.where(np.isfinite(t), t, np.nan)
    usable = ~np.isnan(t).all(axis=1)
    if usable.sum() < 20:
        return bonferroni
    row_max = np.nanmax(t[usable], axis=1)
    return float(np.quantile(row_max, confidence))


def power_analysis(se: float, n: int | None, limit: float, absolute: bool, op: str,
                   confidence: float, power: float = POWER) -> dict:
    """Minimum detectable effect and whether a sound model could pass.

    Args:
        se: standard error of the measured value.
        n: items the value rests on (per group for group cells).
        limit, absolute, op: the threshold (``abs < 0.1`` -> 0.1, True, "<").
        confidence: confidence of the verdict's interval.
        power: the planned power.

    Returns:
        ``{"se", "mde", "underpowered", "needs_n"}``; ``underpowered`` and ``needs_n`` are
        defined for ``abs <`` thresholds (ideal value 0), else ``False`` / ``None``.

    >>> p = power_analysis(0.05, 100, 0.1, True, "<", 0.95)
    >>> p["underpowered"], p["needs_n"]
    (True, 263)
    """
    z = z_value(0.5 + confidence / 2.0)
    out = {"se": float(se), "mde": float((z + z_value(power)) * se),
           "underpowered": False, "needs_n": None}
    if absolute and op in ("<", "<=") and limit > 0 and math.isfinite(se):
        k = z + z_value(0.5 + power / 2.0)
        out["underpowered"] = bool(k * se > limit)
        if n:
            out["needs_n"] = int(math.ceil(n * (k * se / limit) ** 2))
    return out


def paired_p_value(diff_reps: np.ndarray, observed: float) -> float:
    r"""Two-sided paired bootstrap p-value of an observed difference.

    The replicates of the difference (both systems on the same resample) are centred on
    the observed value to mimic the null of no difference:
    :math:`p = (1 + \#\{r: |d^*_r - \hat d| \ge |\hat d|\}) / (R + 1)`.

    >>> reps = np.random.default_rng(0).normal(0.3, 0.05, 999)
    >>> paired_p_value(reps, 0.3) < 0.01
    True
    """
    d = np.asarray(diff_reps, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0 or not math.isfinite(observed):
        return math.nan
    extreme = np.abs(d - observed) >= abs(observed) - 1e-12
    return float((1 + extreme.sum()) / (d.size + 1))
