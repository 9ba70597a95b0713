"""Slice discovery: where is the model's error significantly worse than elsewhere?

``fairness_slices`` searches the data for *slices* - items sharing a value of one manifest
column or binned acoustic feature, or of two of them (depth 2: ``language=de &
sex=female``) - on which the model's per-item error is larger than on the rest, in the
spirit of SliceFinder (Chung et al., "Automated data slicing for model validation",
ICDE 2019), without being told which column to look at.

Per item the error is ``|prediction - truth|`` (dimensions, prediction units) or
``1[label != truth]`` (emotion).  For every slice S with at least ``min_size`` items (and
at least ``min_size`` outside it):

* **effect** = mean error on S - mean error on the rest (prediction units; for emotion a
  difference in error rate), with Welch's interval at the suite's confidence;
* **effect size** = effect / sqrt((var_S + var_rest) / 2) (SliceFinder's standardised
  effect, Cohen's d with unequal variances);
* **p value** of Welch's one-sided t test of "S is worse".

All tested slices' p values are adjusted together with Benjamini & Hochberg's (1995)
step-up procedure; a slice is *discovered* if its adjusted p value (q value) is at most
``fdr`` and its effect at least ``min_effect``.  The primary measurement
``discovered_slices`` counts them and is judged (default ``< 1``: no discovered slice);
the ``top`` discoveries (largest effect size first, then the undiscovered slices with the
smallest q values if none is discovered) follow as ``slice_error_difference`` cells
without a threshold, each with its n, effect, interval, q value and number of speakers.

Features: categorical manifest columns with 2 to ``max_levels`` values (``columns``:
``null`` = all such columns except ids, file names, texts and labels), numeric manifest
columns cut into ``bins`` quantile bins, and computed acoustic features of the clean audio
(``features``: ``f0`` - mean F0 in Hz, :mod:`sertest.features`; ``rms_dbfs`` - level in
dB re full scale, ``duration_s``, ``bandwidth_hz``, ``peak_dbfs`` - from
:mod:`sertest.engine.signal_stats`), also cut into quantile bins.

Inference treats items as independent (as SliceFinder does): a slice is a statement about
this data.  Items of one speaker are correlated, so each slice reports how many speakers it
holds; a slice of two speakers may be those speakers, not the group they belong to.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from .. import figures
from ..errors import UsageError
from ..features import F0Estimator
from ..vocabulary import DIMENSIONS, EMOTION
from .base import Check, Context, Measurement, Outcome, Request, register
from .conditions import is_number, plain

#: acoustic features a slice may be cut on: name -> (feature model name or None for the
#: engine's signal statistics, output column, unit)
ACOUSTIC = {"f0": ("f0", "Hz"), "rms_dbfs": ("rms_dbfs", "dB"),
            "peak_dbfs": ("peak_dbfs", "dB"), "duration_s": ("duration_s", "s"),
            "bandwidth_hz": ("bandwidth_hz", "Hz")}
SIGNAL_STATS = "signal-stats"
#: manifest columns never used as slice features (identifiers, text, labels, segments)
NOT_FEATURES = {"id", "file", "start", "end", "text", "pair", "speaker", "voice",
                *DIMENSIONS, EMOTION}


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p values (q values): the smallest FDR at which each
    hypothesis would be rejected by the step-up procedure.

    >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5])).round(3).tolist()
    [0.04, 0.04, 0.04, 0.5]
    """
    p = np.asarray(p, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def welch(err_in: np.ndarray, err_out: np.ndarray, confidence: float) -> dict[str, float]:
    """Welch's comparison of mean errors: effect (in - out), its interval, the one-sided p
    value of "in is worse" and the standardised effect size."""
    from scipy.stats import t as student

    n1, n0 = err_in.size, err_out.size
    m1, m0 = float(err_in.mean()), float(err_out.mean())
    v1, v0 = float(err_in.var(ddof=1)), float(err_out.var(ddof=1))
    effect = m1 - m0
    se2 = v1 / n1 + v0 / n0
    pooled = math.sqrt((v1 + v0) / 2.0)
    size = effect / pooled if pooled > 0 else (0.0 if effect == 0 else math.copysign(math.inf, effect))
    if se2 <= 0:
        p = 0.0 if effect > 0 else 1.0
        return {"effect": effect, "lo": effect, "hi": effect, "p": p, "effect_size": size,
                "mean_in": m1, "mean_out": m0}
    se = math.sqrt(se2)
    df = se2 ** 2 / ((v1 / n1) ** 2 / (n1 - 1) + (v0 / n0) ** 2 / (n0 - 1))
    crit = float(student.ppf(0.5 + confidence / 2.0, df))
    p = float(student.sf(effect / se, df))
    return {"effect": effect, "lo": effect - crit * se, "hi": effect + crit * se, "p": p,
            "effect_size": size, "mean_in": m1, "mean_out": m0}


def quantile_bins(values: pd.Series, bins: int, unit: str = "") -> pd.Series:
    """Cut a numeric series into ``bins`` quantile bins labelled by their range
    (``"112-148 Hz"``; ``"-5.17 to -0.5"`` where an edge is negative, so the minus sign
    is not read as the dash); NaN stays NaN.  Fewer distinct values than bins: one level
    each."""
    v = pd.to_numeric(values, errors="coerce")
    finite = v.dropna()
    out = pd.Series(np.nan, index=values.index, dtype=object)
    if finite.nunique() < 2:
        return out
    if finite.nunique() <= bins:
        for x in sorted(finite.unique()):
            out[v == x] = f"{x:.4g}{' ' + unit if unit else ''}"
        return out
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)))
    codes = np.clip(np.searchsorted(edges, v.to_numpy(float), side="right") - 1, 0,
                    len(edges) - 2)
    suffix = f" {unit}" if unit else ""
    dash = " to " if edges[0] < 0 else "-"
    names = [f"{edges[i]:.4g}{dash}{edges[i + 1]:.4g}{suffix}" for i in range(len(edges) - 1)]
    for i, name in enumerate(names):
        out[(codes == i) & v.notna().to_numpy()] = name
    return out


@register
class FairnessSlices(Check):
    """Slice discovery with FDR control; see the module docstring."""

    id = "fairness_slices"
    topic = "fairness"
    description = ("slice discovery: data slices (columns, acoustic features, pairs) with a "
                   "significantly larger error, Benjamini-Hochberg FDR")
    kinds = ("regression", "classification")
    metrics = {"discovered_slices": "< 1", "slice_error_difference": None}
    defaults = {"columns": None, "features": ["f0", "rms_dbfs", "duration_s", "bandwidth_hz"],
                "depth": 2, "min_size": 30, "fdr": 0.05, "min_effect": 0.0, "top": 10,
                "bins": 3, "max_levels": 12}

    def __init__(self, params=None, thresholds=None, name=None) -> None:
        super().__init__(params, thresholds, name)
        p, where = self.params, f"test {self.name!r}: parameter"
        if p["depth"] not in (1, 2):
            raise UsageError(f"{where} depth={p['depth']!r} must be 1 or 2")
        for key, low in (("min_size", 2), ("top", 0), ("bins", 2), ("max_levels", 2)):
            if isinstance(p[key], bool) or not isinstance(p[key], int) or p[key] < low:
                raise UsageError(f"{where} {key}={p[key]!r} must be an integer >= {low}")
        if not is_number(p["fdr"]) or not 0 < p["fdr"] < 1:
            raise UsageError(f"{where} fdr={p['fdr']!r} must be a number in (0, 1)")
        if not is_number(p["min_effect"]) or p["min_effect"] < 0:
            raise UsageError(f"{where} min_effect={p['min_effect']!r} must be a number >= 0 "
                             "(prediction units)")
        if p["columns"] is not None and (not isinstance(p["columns"], list) or not all(
                isinstance(c, str) for c in p["columns"])):
            raise UsageError(f"{where} columns={p['columns']!r} must be null (every suitable "
                             "column) or a list of manifest column names")
        feats = p["features"] or []
        if not isinstance(feats, list) or set(feats) - set(ACOUSTIC):
            raise UsageError(f"{where} features={p['features']!r}: choose from "
                             f"{', '.join(ACOUSTIC)} (or [] for manifest columns only)")
        self._f0 = F0Estimator()

    def features(self, ctx: Context) -> list:
        return [self._f0] if "f0" in (self.params["features"] or []) else []

    def requests(self, ctx: Context) -> list[Request]:
        return [Request(None)]

    # -- slice features ----------------------------------------------------------------
    def slice_features(self, ctx: Context, ids: list[str]) -> tuple[dict[str, pd.Series],
                                                                      list[str]]:
        """Feature name -> level per item (NaN = not in any slice of it), and notes."""
        table = ctx.table.loc[ids]
        notes: list[str] = []
        cols = self.params["columns"]
        if cols is None:
            cols = [c for c in table.columns if c not in NOT_FEATURES]
            explicit = False
        else:
            missing = [c for c in cols if c not in table.columns]
            if missing:
                raise UsageError(f"test {self.name!r}: parameter columns names "
                                 f"{', '.join(missing)}, not in the data; its columns: "
                                 f"{', '.join(table.columns)}")
            explicit = True
        out: dict[str, pd.Series] = {}
        for c in cols:
            col = table[c]
            numeric = pd.to_numeric(col, errors="coerce")
            if col.notna().sum() and numeric.notna().sum() == col.notna().sum() \
                    and numeric.nunique() > self.params["max_levels"]:
                levels = quantile_bins(numeric, self.params["bins"])
            else:
                levels = col.where(col.notna() & (col.astype(str) != ""), np.nan).astype(object)
                levels = levels.map(lambda v: v if v is np.nan or v != v else str(v))
            k = levels.dropna().nunique()
            if k < 2 or k > self.params["max_levels"]:
                if explicit:
                    notes.append(f"column {c!r} has {k} values; slices need 2 to "
                                 f"{self.params['max_levels']} (max_levels)")
                continue
            out[c] = levels
        for f in self.params["features"] or []:
            output, unit = ACOUSTIC[f]
            source = self._f0.name if f == "f0" else SIGNAL_STATS
            if source not in ctx.models:
                notes.append(f"acoustic feature {f!r} not computed in this run")
                continue
            values = ctx.prediction(source, output, None, ids)
            if f == "f0":
                values = values.where(values > 0)  # 0 Hz = no reliable F0
            out[f] = quantile_bins(values.reindex(ids), self.params["bins"], unit)
        return out, notes

    def measure(self, ctx: Context, model: str, target: str) -> Outcome:
        out = Outcome()
        t, p = ctx.paired(model, target)
        if target == EMOTION:
            err = (t.astype(str).to_numpy() != p.astype(str).to_numpy()).astype(float)
        else:
            err = np.abs(p.to_numpy(float) - t.to_numpy(float))
        ids = list(t.index)
        n = len(ids)
        min_size = int(self.params["min_size"])
        if n < 2 * min_size:
            out.skipped = (f"{n} items with truth and prediction: slices need at least "
                           f"{min_size} inside and outside (min_size)")
            return out
        feats, notes = self.slice_features(ctx, ids)
        out.notes.extend(notes)
        masks, aliases = self._slices(feats, min_size, n)
        speakers = (ctx.table.loc[ids, "speaker"].astype(str).to_numpy()
                    if ctx.dataset.has("speaker") else None)
        rows = []
        for desc, depth, mask in masks:
            w = welch(err[mask], err[~mask], ctx.confidence)
            rows.append({"slice": desc, "depth": depth, "n": int(mask.sum()), **w,
                         "speakers": (int(len(set(speakers[mask]))) if speakers is not None
                                      else None)})
        q = benjamini_hochberg(np.array([r["p"] for r in rows]))
        for r, qv in zip(rows, q):
            r["q"] = float(qv)
            r["discovered"] = bool(qv <= self.params["fdr"]
                                   and r["effect"] >= self.params["min_effect"])
        found = sorted((r for r in rows if r["discovered"]),
                       key=lambda r: (-r["effect_size"], r["slice"]))
        rest = sorted((r for r in rows if not r["discovered"]),
                      key=lambda r: (r["q"], -r["effect"], r["slice"]))
        listed = (found or rest)[: int(self.params["top"])]
        out.measurements.append(Measurement(
            "discovered_slices", float(len(found)), n=n,
            extra={"fdr": self.params["fdr"], "min_size": min_size, "tested": len(rows),
                   "features": sorted(feats), "depth": self.params["depth"],
                   "min_effect": self.params["min_effect"],
                   "error": "absolute error" if target != EMOTION else "error rate"}))
        for r in listed:
            out.measurements.append(Measurement(
                "slice_error_difference", r["effect"], slice={"subset": r["slice"]},
                ci=(r["lo"], r["hi"]),
                n=r["n"], extra={"q_value": r["q"], "p_value": r["p"],
                                 "effect_size": r["effect_size"], "slice_error": r["mean_in"],
                                 "rest_error": r["mean_out"], "speakers": r["speakers"],
                                 "depth": r["depth"], "discovered": r["discovered"],
                                 **({"same_items_as": aliases[r["slice"]]}
                                    if r["slice"] in aliases else {})}))
        if not found:
            out.notes.append(f"no slice of at least {min_size} items has a significantly "
                             f"larger error (FDR {self.params['fdr']:g}, {len(rows)} slices "
                             "tested)")
        out.plots = plain(figures.slices(
            target=target, tested=len(rows), fdr=self.params["fdr"],
            slices=[{k: r[k] for k in ("slice", "n", "effect", "lo", "hi", "q", "effect_size",
                                       "speakers", "discovered")} for r in listed]))
        return out

    def _slices(self, feats: dict[str, pd.Series], min_size: int, n: int
                ) -> tuple[list[tuple[str, int, np.ndarray]], dict[str, list[str]]]:
        """(description, depth, mask) of every distinct slice with at least ``min_size``
        items in it and outside it, and the other names of slices found twice."""
        single: dict[str, list[tuple[str, np.ndarray]]] = {}
        for f in sorted(feats):
            v = feats[f]
            single[f] = [(f"{f}={lev}", (v == lev).to_numpy())
                         for lev in sorted(v.dropna().unique(), key=str)]
        ok = lambda m: min_size <= m.sum() <= n - min_size  # noqa: E731
        out = [(d, 1, m) for f in single for d, m in single[f] if ok(m)]
        if self.params["depth"] >= 2:
            for f1, f2 in itertools.combinations(sorted(single), 2):
                for (d1, m1), (d2, m2) in itertools.product(single[f1], single[f2]):
                    m = m1 & m2
                    if ok(m) and m.sum() not in (m1.sum(), m2.sum()):  # not a parent again
                        out.append((f"{d1} & {d2}", 2, m))
        # the same items under two names (language=de and accent=de) are one slice, tested
        # once: the shallower (then alphabetically first) name, the others kept as aliases
        unique: dict[bytes, tuple[str, int, np.ndarray]] = {}
        aliases: dict[str, list[str]] = {}
        for d, depth, m in sorted(out, key=lambda x: (x[1], x[0])):
            key = np.packbits(m).tobytes()
            if key in unique:
                aliases.setdefault(unique[key][0], []).append(d)
            else:
                unique[key] = (d, depth, m)
        return list(unique.values()), aliases
