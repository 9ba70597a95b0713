"""Fairness thresholds calibrated by random-model simulation, for the user's group sizes.

ser-tests derived its fairness thresholds (catalogue §5) by simulation: random models
(truth and prediction drawn from ``random-gaussian``: a normal distribution with mean 0.5
and standard deviation 1/6 truncated to [0, 1]; or uniform classes) were scored 1000 times
on groups of the sizes of *its* data sets, and the threshold was set near the **largest**
absolute difference seen (e.g. 2 groups x 1000 items: max |Delta CCC| = 0.0741 -> 0.075).
Those numbers only hold for those group sizes: with 200 items per group chance alone gives
differences about twice as large, so a fair model fails; with 10 000 items a clearly biased
model passes.

This module repeats the simulation for the groups actually compared in an audit (the same
group sizes after balancing and minimum-size filtering, the same bins, classes and
per-bin minimum counts, the same metric code) and returns, per Delta metric, the chosen
quantile over simulations of the largest |Delta| over all cells.  A random model then
exceeds the calibrated threshold in about ``1 - quantile`` of audits (or 1 in
``simulations`` for the maximum).

Suite option (every fairness test)::

    - test: fairness_sex
      params:
        calibrate: true                     # 1000 simulations, maximum (as ser-tests)
    - test: fairness_accent
      params:
        calibrate: {simulations: 500, quantile: 0.99, truth: data}

``simulations`` (>= 10), ``quantile`` in (0, 1] (1 = maximum, ser-tests' choice) and
``truth``: ``random`` (truth from the random model, ser-tests' method) or ``data`` (the
audit's own truth values, kept fixed; only the prediction is random - this accounts for the
real label distribution, e.g. sparse classes).  ``calibrate: false`` (the default of the
ser-tests tests) keeps the fixed thresholds; ``fairness_group`` calibrates by default.
Calibrated thresholds replace the suite's thresholds for the Delta metrics (each
measurement records the threshold it was judged with); group-quality metrics (``ccc``,
``uar``) are never calibrated.

Cost: all simulations are computed at once as (simulations x items) arrays, in chunks of
about 2 million values; 1000 simulations of 480 items take well under a second.  Draws come
only from the generator passed in (derived from the audit seed and the test), so results are
reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import UsageError

MEAN, SD = 0.5, 1.0 / 6.0  # ser-tests' random-gaussian model
_CHUNK_VALUES = 2_000_000
_KEYS = {"simulations", "quantile", "truth"}


@dataclass(frozen=True)
class CalibrationSpec:
    """How to calibrate: number of simulations, quantile of the maxima, source of truth."""

    simulations: int = 1000
    quantile: float = 1.0
    truth: str = "random"  # "random" | "data"


def parse_calibration(value: Any, where: str = "calibrate") -> CalibrationSpec | None:
    """The ``calibrate`` suite option: false/null, true, or a mapping of the spec's fields.

    Raises:
        UsageError: naming ``where`` and the offending key or value.
    """
    if value is None or value is False:
        return None
    if value is True:
        return CalibrationSpec()
    if not isinstance(value, dict):
        raise UsageError(f"{where}: calibrate must be true, false or a mapping with "
                         f"{sorted(_KEYS)}, got {value!r}")
    unknown = sorted(set(value) - _KEYS)
    if unknown:
        raise UsageError(f"{where}: calibrate: unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    sims = value.get("simulations", 1000)
    if isinstance(sims, bool) or not isinstance(sims, int) or sims < 10:
        raise UsageError(f"{where}: calibrate.simulations must be an integer >= 10, got {sims!r}")
    q = value.get("quantile", 1.0)
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 < float(q) <= 1.0:
        raise UsageError(f"{where}: calibrate.quantile must be in (0, 1], got {q!r}")
    truth = value.get("truth", "random")
    if truth not in ("random", "data"):
        raise UsageError(f"{where}: calibrate.truth must be 'random' or 'data', got {truth!r}")
    return CalibrationSpec(int(sims), float(q), str(truth))


def truncated_gaussian(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Draws of ser-tests' random-gaussian model: N(0.5, (1/6)^2) truncated to [0, 1].

    Rejection sampling (0.27 % of normal draws fall outside and are redrawn), exact.
    """
    x = rng.normal(MEAN, SD, size=shape)
    bad = (x < 0.0) | (x > 1.0)
    while bad.any():
        x[bad] = rng.normal(MEAN, SD, size=int(bad.sum()))
        bad = (x < 0.0) | (x > 1.0)
    return x


def random_values(rng: np.random.Generator, rows: int, n: int, regression: bool, k: int
                  ) -> np.ndarray:
    """``rows`` simulated data sets of ``n`` values: gaussian scores or uniform class codes."""
    if regression:
        return truncated_gaussian(rng, (rows, n))
    return rng.integers(0, k, size=(rows, n))


def largest_abs(values: np.ndarray) -> np.ndarray:
    """Per row, the largest |value| over the cells, ignoring NaN (NaN if all are NaN)."""
    a = np.abs(values)
    valid = np.isfinite(a)
    out = np.where(valid, a, -np.inf).max(axis=1)
    out[~valid.any(axis=1)] = np.nan
    return out


def simulate_maxima(compute: Callable[[np.ndarray | None, np.ndarray], dict], n_items: int,
                    regression: bool, k: int, simulations: int, rng: np.random.Generator, *,
                    truth: np.ndarray | None = None, needs_truth: bool = True
                    ) -> dict[str, np.ndarray]:
    """Largest |Delta| of each simulation, per metric.

    Args:
        compute: ``compute(truth, prediction) -> {metric: (cell keys, values (S, C))}`` for
            S simulated data sets given as (S, n_items) arrays (``truth`` may be (n_items,)
            when fixed, or ``None`` when the metric needs none).
        n_items: items per simulated data set (all groups together).
        regression: gaussian scores (True) or uniform classes over ``k`` (False).
        simulations: number of simulated data sets.
        rng: the generator every draw comes from.
        truth: fixed truth values (calibration on the data's own truth), or ``None`` to draw
            the truth from the random model too.
        needs_truth: whether ``compute`` uses a truth at all.
    """
    rows_per_chunk = max(1, min(simulations, _CHUNK_VALUES // max(1, n_items)))
    maxima: dict[str, list[np.ndarray]] = {}
    done = 0
    while done < simulations:
        rows = min(rows_per_chunk, simulations - done)
        if not needs_truth:
            t = None
        elif truth is not None:
            t = np.asarray(truth)
        else:
            t = random_values(rng, rows, n_items, regression, k)
        p = random_values(rng, rows, n_items, regression, k)
        for metric, (_, values) in compute(t, p).items():
            maxima.setdefault(metric, []).append(largest_abs(np.atleast_2d(values)))
        done += rows
    return {m: np.concatenate(v) for m, v in maxima.items()}


def simulate_limits(compute: Callable[[np.ndarray | None, np.ndarray], dict], n_items: int,
                    regression: bool, k: int, spec: CalibrationSpec, rng: np.random.Generator,
                    *, truth: np.ndarray | None = None, needs_truth: bool = True
                    ) -> dict[str, dict[str, Any]]:
    """Calibrated limit per metric: ``spec.quantile`` of the simulated largest |Delta|.

    Returns ``{metric: {limit, simulations, quantile, truth, median, p99, max}}``; ``limit``
    is NaN when no simulation gave a measurable value (e.g. every bin too sparse).
    """
    maxima = simulate_maxima(compute, n_items, regression, k, spec.simulations, rng,
                             truth=truth if spec.truth == "data" else None,
                             needs_truth=needs_truth)
    out: dict[str, dict[str, Any]] = {}
    for metric, m in maxima.items():
        ok = m[np.isfinite(m)]
        if ok.size == 0:
            out[metric] = {"limit": float("nan"), "simulations": 0,
                           "quantile": spec.quantile, "truth": spec.truth}
            continue
        out[metric] = {"limit": float(np.quantile(ok, spec.quantile)),
                       "simulations": int(ok.size), "quantile": spec.quantile,
                       "truth": spec.truth, "median": float(np.median(ok)),
                       "p99": float(np.quantile(ok, 0.99)), "max": float(ok.max())}
    return out


__all__ = ["CalibrationSpec", "largest_abs", "parse_calibration", "random_values",
           "simulate_limits", "simulate_maxima", "truncated_gaussian"]
