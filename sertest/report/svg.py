"""Inline SVG charts for the HTML report, drawn in Python (no matplotlib, no JavaScript).

Every function returns :class:`markupsafe.Markup` holding one ``<svg>`` element.  All text
that reaches the SVG (labels, titles, group names) goes through :func:`markupsafe.escape`;
numbers are formatted by us, so nothing from a results document can inject markup.
Colours come from CSS classes of the page (``.c0`` … ``.c6`` for series, ``.v-pass`` …
for verdicts), so the charts follow the page's colour-blind-safe palette (Okabe & Ito).

Coordinates are SVG user units (about CSS pixels at 100 % zoom).
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import zlib
from typing import Iterable, Sequence

import numpy as np
from markupsafe import Markup, escape

#: number of series colours defined by the page's CSS (.c0 … .c6)
N_COLOURS = 7


def fmt(value, digits: int = 3) -> str:
    """A number for display: ``n/a`` for None/NaN, thousands separators, fixed decimals."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "n/a"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 10 ** (-digits)):
        return f"{v:.{max(1, digits - 1)}e}"
    if abs(v) >= 100:
        return f"{v:,.1f}"
    return f"{v:.{digits}f}"


def _n(v: float) -> str:
    """An SVG coordinate (one decimal, no trailing zeros)."""
    s = f"{v:.1f}"
    return s[:-2] if s.endswith(".0") else s


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering ``[lo, hi]`` (about ``n`` of them)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = mag * min((1, 2, 2.5, 5, 10), key=lambda s: abs(s * mag - raw))
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _tick_text(t: float) -> str:
    if abs(t) >= 1000:
        return f"{t:,.0f}"
    s = f"{t:.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def finite(values: Iterable) -> np.ndarray:
    """Values as a float array without None/NaN/inf (non-numbers dropped)."""
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return np.asarray(out, dtype=float)


def paired(a: Sequence, b: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Two aligned sequences as float arrays, keeping only pairs where both are finite."""
    n = min(len(a), len(b))
    xa, xb = [], []
    for i in range(n):
        try:
            fa, fb = float(a[i]), float(b[i])
        except (TypeError, ValueError):
            continue
        if math.isfinite(fa) and math.isfinite(fb):
            xa.append(fa)
            xb.append(fb)
    return np.asarray(xa), np.asarray(xb)


def domain(*arrays, pad: float = 0.04, include: Sequence[float] = ()) -> tuple[float, float]:
    """A padded ``(lo, hi)`` covering all finite values (and ``include``)."""
    vals = [finite(a) for a in arrays] + [finite(include)]
    vals = [v for v in vals if v.size]
    if not vals:
        return 0.0, 1.0
    allv = np.concatenate(vals)
    lo, hi = float(allv.min()), float(allv.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    span = hi - lo
    return lo - pad * span, hi + pad * span


def unit_domain(*arrays) -> tuple[float, float]:
    """``[0, 1]`` widened to the data: labels and predictions of A/D/V live in about [0, 1]."""
    lo, hi = domain(*arrays, pad=0.0, include=(0.0, 1.0))
    return min(lo, 0.0) - 0.02, max(hi, 1.0) + 0.02


class Frame:
    """A plot area with linear x and y scales and the SVG elements drawn so far."""

    def __init__(self, xdom: tuple[float, float], ydom: tuple[float, float], *,
                 width: float = 300, height: float = 220, left: float = 44, right: float = 12,
                 top: float = 12, bottom: float = 38, label: str = "") -> None:
        self.x0, self.x1 = xdom
        self.y0, self.y1 = ydom
        self.w, self.h = width, height
        self.l, self.r, self.t, self.b = left, right, top, bottom
        self.parts: list[str] = []
        self.label = label

    # scales
    def x(self, v: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.l + (v - self.x0) / span * (self.w - self.l - self.r)

    def y(self, v: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.h - self.b - (v - self.y0) / span * (self.h - self.t - self.b)

    def cx(self, v: float) -> float:
        return min(max(self.x(v), self.l), self.w - self.r)

    def cy(self, v: float) -> float:
        return min(max(self.y(v), self.t), self.h - self.b)

    def add(self, s: str) -> None:
        self.parts.append(s)

    def axes(self, xlabel: str = "", ylabel: str = "", *, xticks: Sequence[float] | None = None,
             yticks: Sequence[float] | None = None, xtick_labels: Sequence[str] | None = None,
             ytick_labels: Sequence[str] | None = None, grid: bool = True) -> None:
        """Grid, axis lines, tick labels and axis titles."""
        xt = list(xticks) if xticks is not None else nice_ticks(self.x0, self.x1, 5)
        yt = list(yticks) if yticks is not None else nice_ticks(self.y0, self.y1, 5)
        bottom, left = self.h - self.b, self.l
        g = ['<g class="axes">']
        for i, t in enumerate(xt):
            if not self.x0 - 1e-9 <= t <= self.x1 + 1e-9:
                continue
            px = _n(self.x(t))
            if grid:
                g.append(f'<line class="grid" x1="{px}" x2="{px}" y1="{_n(self.t)}" y2="{_n(bottom)}"/>')
            txt = xtick_labels[i] if xtick_labels is not None else _tick_text(t)
            g.append(f'<text class="tick" x="{px}" y="{_n(bottom + 13)}" text-anchor="middle">'
                     f'{escape(txt)}</text>')
        for i, t in enumerate(yt):
            if not self.y0 - 1e-9 <= t <= self.y1 + 1e-9:
                continue
            py = _n(self.y(t))
            if grid:
                g.append(f'<line class="grid" x1="{_n(left)}" x2="{_n(self.w - self.r)}" y1="{py}" y2="{py}"/>')
            txt = ytick_labels[i] if ytick_labels is not None else _tick_text(t)
            g.append(f'<text class="tick" x="{_n(left - 5)}" y="{py}" dy="3.5" text-anchor="end">'
                     f'{escape(txt)}</text>')
        g.append(f'<line class="axis" x1="{_n(left)}" x2="{_n(self.w - self.r)}" y1="{_n(bottom)}" y2="{_n(bottom)}"/>')
        g.append(f'<line class="axis" x1="{_n(left)}" x2="{_n(left)}" y1="{_n(self.t)}" y2="{_n(bottom)}"/>')
        if xlabel:
            g.append(f'<text class="albl" x="{_n((left + self.w - self.r) / 2)}" y="{_n(self.h - 4)}" '
                     f'text-anchor="middle">{escape(xlabel)}</text>')
        if ylabel:
            cy = (self.t + bottom) / 2
            g.append(f'<text class="albl" transform="translate(11 {_n(cy)}) rotate(-90)" '
                     f'text-anchor="middle">{escape(ylabel)}</text>')
        g.append("</g>")
        self.parts.insert(0, "".join(g))

    def svg(self, extra_class: str = "") -> Markup:
        label = escape(self.label)
        named = (f' role="img" aria-label="{label}"><title>{label}</title>' if self.label
                 else ' aria-hidden="true">')  # an unnamed axis or decoration
        return Markup(
            f'<svg class="chart {escape(extra_class)}" viewBox="0 0 {_n(self.w)} {_n(self.h)}" '
            f'width="{_n(self.w)}" height="{_n(self.h)}"' + named + "".join(self.parts) + "</svg>")


def dots_path(xs: Sequence[float], ys: Sequence[float]) -> str:
    """One path drawing a round dot at each point (stroke-linecap round, zero-length segments).

    Far smaller than one ``<circle>`` per point: a 600-point scatter stays under 10 kB.
    """
    return "".join(f"M{_n(x)} {_n(y)}h0" for x, y in zip(xs, ys))


def legend(items: Sequence[tuple[str, str]], x: float, y: float, *, swatch: str = "rect") -> str:
    """A horizontal legend: ``items`` are ``(css class, text)``."""
    out, cx = [], x
    for cls, text in items:
        if swatch == "line":
            out.append(f'<line class="{cls} sw-line" x1="{_n(cx)}" x2="{_n(cx + 14)}" y1="{_n(y - 4)}" y2="{_n(y - 4)}"/>')
        else:
            out.append(f'<rect class="{cls} sw" x="{_n(cx)}" y="{_n(y - 9)}" width="10" height="10" rx="2"/>')
        out.append(f'<text class="leg" x="{_n(cx + 17)}" y="{_n(y)}">{escape(text)}</text>')
        cx += 17 + 6.2 * len(text) + 14
    return "".join(out)


# ----------------------------------------------------------------------------------------
# measurement: point estimate with a confidence interval against a threshold
# ----------------------------------------------------------------------------------------

def threshold_regions(threshold: dict | None, lo: float, hi: float) -> list[tuple[float, float]]:
    """Intervals of the axis ``[lo, hi]`` on which a value passes the threshold."""
    if not threshold or threshold.get("value") is None:
        return []
    t = float(threshold["value"])
    op = threshold.get("op", ">")
    greater = op in (">", ">=")
    if threshold.get("absolute"):
        if greater:
            regions = [(lo, -t), (t, hi)]
        else:
            regions = [(-t, t)]
    else:
        regions = [(t, hi)] if greater else [(lo, t)]
    return [(max(a, lo), min(b, hi)) for a, b in regions if min(b, hi) > max(a, lo)]


def threshold_lines(threshold: dict | None) -> list[float]:
    if not threshold or threshold.get("value") is None:
        return []
    t = float(threshold["value"])
    return [-t, t] if threshold.get("absolute") and t != 0 else [t]


def ci_bar(value, ci, threshold: dict | None, verdict: str, dom: tuple[float, float], *,
           width: float = 210, height: float = 22, label: str = "") -> Markup:
    """A one-row forest plot: passing region shaded, threshold dashed, CI whiskers, estimate.

    A missing CI bound (an open interval) runs to the edge of the axis without a cap.
    """
    lo, hi = dom
    f = Frame((lo, hi), (0, 1), width=width, height=height, left=6, right=6, top=2, bottom=2)
    mid = height / 2
    parts = []
    for a, b in threshold_regions(threshold, lo, hi):
        parts.append(f'<rect class="passzone" x="{_n(f.x(a))}" y="1" width="{_n(f.x(b) - f.x(a))}" '
                     f'height="{_n(height - 2)}"/>')
    parts.append(f'<path class="ci-base" d="M{_n(f.l)} {_n(mid)}H{_n(width - f.r)}"/>')
    for t in threshold_lines(threshold):
        if lo <= t <= hi:
            parts.append(f'<path class="thr" d="M{_n(f.x(t))} 1V{_n(height - 1)}"/>')
    vclass = f"v-{escape(verdict or 'info')}"
    if ci and len(ci) == 2 and (ci[0] is not None or ci[1] is not None):
        a = f.cx(float(ci[0])) if ci[0] is not None else f.l
        b = f.cx(float(ci[1])) if ci[1] is not None else width - f.r
        d = f"M{_n(a)} {_n(mid)}H{_n(b)}"
        for bound, px in ((ci[0], a), (ci[1], b)):
            if bound is not None:
                d += f"M{_n(px)} {_n(mid - 5)}V{_n(mid + 5)}"
        parts.append(f'<path class="ci" d="{d}"/>')
    if value is not None and math.isfinite(float(value)):
        v = float(value)
        px = f.cx(v)
        if lo <= v <= hi:
            parts.append(f'<circle class="est" cx="{_n(px)}" cy="{_n(mid)}" r="4.5"/>')
        else:  # off the axis: an arrow head at the edge
            d = 1 if v > hi else -1
            parts.append(f'<path class="est" d="M{_n(px)} {_n(mid)}l{-7 * d} -5v10z"/>')
    # the default size comes from the style sheet (td.chart svg.cibar), which keeps the
    # thousands of bars of a long report small; another size is written out
    size = "" if (width, height) == (210, 22) else f' width="{_n(width)}" height="{_n(height)}"'
    return Markup(f'<svg class="chart cibar {vclass}" viewBox="0 0 {_n(width)} {_n(height)}"{size} '
                  f'aria-hidden="true">' + "".join(parts) + "</svg>")


def ci_axis(dom: tuple[float, float], threshold: dict | None, *, width: float = 210) -> Markup:
    """Tick labels matching :func:`ci_bar` rows of the same domain (for a table header)."""
    lo, hi = dom
    f = Frame((lo, hi), (0, 1), width=width, height=16, left=6, right=6, top=0, bottom=0)
    for t in nice_ticks(lo, hi, 4):
        if lo <= t <= hi:
            f.add(f'<line class="axis" x1="{_n(f.x(t))}" x2="{_n(f.x(t))}" y1="12" y2="16"/>'
                  f'<text class="tick" x="{_n(f.x(t))}" y="10" text-anchor="middle">{_tick_text(t)}</text>')
    return f.svg("ciaxis")


# ----------------------------------------------------------------------------------------
# specialised plots
# ----------------------------------------------------------------------------------------

def scatter(truth: Sequence, prediction: Sequence, *, xlabel: str = "truth",
            ylabel: str = "prediction", title: str = "", size: float = 300) -> Markup:
    """Prediction against truth with the identity line (dashed) and a least-squares fit."""
    t, p = paired(truth, prediction)
    dom = unit_domain(t, p)
    f = Frame(dom, dom, width=size, height=size + 10, top=22, label=title or f"{ylabel} against {xlabel}")
    f.axes(xlabel, ylabel)
    f.add(f'<line class="ref" x1="{_n(f.x(dom[0]))}" y1="{_n(f.y(dom[0]))}" '
          f'x2="{_n(f.x(dom[1]))}" y2="{_n(f.y(dom[1]))}"/>')
    f.add(f'<path class="dots c0" d="{dots_path([f.x(v) for v in t], [f.y(v) for v in p])}"/>')
    if t.size >= 3 and np.ptp(t) > 0:
        slope, icpt = np.polyfit(t, p, 1)
        ya, yb = icpt + slope * dom[0], icpt + slope * dom[1]
        f.add(f'<line class="fit" x1="{_n(f.x(dom[0]))}" y1="{_n(f.y(ya))}" x2="{_n(f.x(dom[1]))}" '
              f'y2="{_n(f.y(yb))}"><title>least-squares fit: slope {slope:.2f}</title></line>')
    f.add(f'<text class="note" x="{_n(f.l)}" y="12">n = {t.size}</text>')
    return f.svg("scatter")


def histogram(series: dict[str, Sequence], *, edges: Sequence[float] | None = None,
              xlabel: str = "value", title: str = "", width: float = 330, height: float = 210,
              density: bool = True) -> Markup:
    """Overlaid step histograms of raw values (one colour per series)."""
    data = {k: finite(v) for k, v in series.items()}
    data = {k: v for k, v in data.items() if v.size}
    if edges is None:
        lo, hi = unit_domain(*data.values()) if data else (0.0, 1.0)
        lo, hi = math.floor(lo * 20) / 20, math.ceil(hi * 20) / 20
        edges = np.linspace(lo, hi, int(round((hi - lo) / 0.05)) + 1)
    edges = np.asarray(edges, dtype=float)
    counts = {k: np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)[0].astype(float)
              for k, v in data.items()}
    return binned(counts, edges, xlabel=xlabel, title=title, width=width, height=height,
                  density=density)


def binned(counts: dict[str, Sequence[float]], edges: Sequence[float], *, xlabel: str = "value",
           title: str = "", width: float = 330, height: float = 210, density: bool = True,
           bin_labels: Sequence[str] | None = None, shade: Sequence | None = None,
           reference: str | None = None) -> Markup:
    """Overlaid step histograms of pre-binned counts (``len(edges) == len(counts) + 1``).

    ``shade`` = (low, high) shades an expected range (None = open side); the series named
    ``reference`` (e.g. the combined set) is drawn as a grey outline.
    """
    edges = np.asarray(edges, dtype=float)
    if len(edges) < 2:
        raise ValueError("need at least two bin edges")
    norm = {}
    for k, c in counts.items():
        c = np.nan_to_num(np.asarray([0.0 if v is None else v for v in c], dtype=float))
        if c.size != edges.size - 1:
            raise ValueError(f"series {k!r} has {c.size} counts for {edges.size - 1} bins")
        total = c.sum()
        norm[k] = c / total if density and total > 0 else c
    ymax = max([float(v.max()) for v in norm.values() if v.size] + [1e-9])
    f = Frame((float(edges[0]), float(edges[-1])), (0, ymax * 1.08), width=width, height=height,
              bottom=52 if len(norm) > 1 else 38, label=title or f"distribution of {xlabel}")
    xt = None if bin_labels is None else [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    f.axes(xlabel, "share" if density else "count", xticks=xt, xtick_labels=bin_labels,
           ytick_labels=None)
    if shade is not None and len(shade) == 2:
        lo = f.x0 if shade[0] is None else max(float(shade[0]), f.x0)
        hi = f.x1 if shade[1] is None else min(float(shade[1]), f.x1)
        if hi > lo:
            f.add(f'<rect class="passzone" x="{_n(f.x(lo))}" y="{_n(f.t)}" width="{_n(f.x(hi) - f.x(lo))}" '
                  f'height="{_n(f.h - f.b - f.t)}"><title>expected range</title></rect>')
    k_col = 0
    leg = []
    for k, c in norm.items():
        d = [f"M{_n(f.x(edges[0]))} {_n(f.y(0))}"]
        for j, v in enumerate(c):
            d.append(f"V{_n(f.y(v))}H{_n(f.x(edges[j + 1]))}")
        d.append(f"V{_n(f.y(0))}")
        cls = "ref-step" if k == reference else f"step c{k_col % N_COLOURS}"
        leg.append(("ref-sw" if k == reference else f"c{k_col % N_COLOURS}", k))
        if k != reference:
            k_col += 1
        f.add(f'<path class="{cls}" d="{"".join(d)}"><title>{escape(k)}</title></path>')
    if len(norm) > 1:
        f.add(legend(leg, f.l, height - 22))
    return f.svg("hist")


def ridges(edges: Sequence[float], groups: dict[str, Sequence[float]], *,
           combined: Sequence[float] | None = None, xlabel: str = "prediction",
           title: str = "", shades: dict[str, Sequence] | None = None,
           notes: dict[str, str] | None = None) -> Markup:
    """One small histogram per group (shares), each over the combined set's outline (grey);
    ``shades`` marks an expected range per group (low, high; None = open)."""
    edges = np.asarray(edges, dtype=float)
    rows = [(str(k), np.nan_to_num(np.asarray([0.0 if v is None else v for v in c], dtype=float)))
            for k, c in groups.items()][:30]
    ref = None if combined is None else np.nan_to_num(np.asarray(
        [0.0 if v is None else v for v in combined], dtype=float))

    def share(c):
        return c / c.sum() if c.sum() > 0 else c
    rows = [(k, share(c)) for k, c in rows if c.size == edges.size - 1]
    ref = share(ref) if ref is not None and ref.size == edges.size - 1 else None
    peak = max([float(c.max()) for _, c in rows] + ([float(ref.max())] if ref is not None else []) + [1e-9])
    row_h = 34.0
    label_w = min(120.0, 16 + 6.4 * max([len(k) for k, _ in rows] + [4]))
    f = Frame((float(edges[0]), float(edges[-1])), (0, 1), width=440,
              height=14 + row_h * max(len(rows), 1) + 40, left=label_w, top=14,
              label=title or f"distribution of {xlabel} per group (grey: all)")
    f.axes(xlabel, "", yticks=[], grid=True)
    for i, (k, c) in enumerate(rows):
        base = f.t + (i + 1) * row_h
        shade = (shades or {}).get(k)
        if shade is not None and len(shade) == 2:
            a = f.x0 if shade[0] is None else max(float(shade[0]), f.x0)
            b = f.x1 if shade[1] is None else min(float(shade[1]), f.x1)
            if b > a:
                f.add(f'<rect class="passzone" x="{_n(f.x(a))}" y="{_n(base - row_h + 2)}" '
                      f'width="{_n(f.x(b) - f.x(a))}" height="{_n(row_h - 2)}"><title>expected range</title></rect>')

        def path(vals):
            d = [f"M{_n(f.x(edges[0]))} {_n(base)}"]
            for j, v in enumerate(vals):
                d.append(f"V{_n(base - v / peak * (row_h - 3))}H{_n(f.x(edges[j + 1]))}")
            return "".join(d) + f"V{_n(base)}"
        f.add(f'<path class="step c{i % N_COLOURS}" d="{path(c)}"><title>{escape(k)}</title></path>')
        if ref is not None:
            f.add(f'<path class="ref-step" d="{path(ref)}"/>')
        f.add(f'<line class="grid" x1="{_n(f.l)}" x2="{_n(f.w - f.r)}" y1="{_n(base)}" y2="{_n(base)}"/>'
              f'<text class="tick" x="{_n(label_w - 5)}" y="{_n(base - 4)}" text-anchor="end">'
              f'{escape(_short(k, 18))}</text>')
        if notes and notes.get(k):
            f.add(f'<text class="tick nn" x="{_n(label_w - 5)}" y="{_n(base - 16)}" text-anchor="end">'
                  f'{escape(notes[k])}</text>')
    return f.svg("ridges")


def paired_bars(categories: Sequence, series: dict[str, Sequence], *, ylabel: str = "share",
                title: str = "") -> Markup:
    """Grouped vertical bars: one group per category, one bar per series (e.g. truth, prediction)."""
    cats = [str(c) for c in categories][:24]
    names = list(series)
    vals = {k: [None if v is None else float(v) for v in list(series[k])[:len(cats)]] for k in names}
    ymax = max([v for vs in vals.values() for v in vs if v is not None and math.isfinite(v)] + [1e-9])
    width = max(260.0, 60 + len(cats) * (14 * len(names) + 16))
    f = Frame((0, max(len(cats), 1)), (0, ymax * 1.1), width=min(width, 520), height=220, bottom=64,
              label=title or f"{ylabel} per category")
    f.axes("", ylabel, xticks=[])
    slot = (f.w - f.l - f.r) / max(len(cats), 1)
    bw = min(16.0, (slot - 8) / max(len(names), 1))
    for i, c in enumerate(cats):
        x0 = f.l + i * slot + (slot - bw * len(names)) / 2
        for j, k in enumerate(names):
            v = vals[k][i] if i < len(vals[k]) else None
            if v is None or not math.isfinite(v):
                continue
            f.add(f'<rect class="c{j % N_COLOURS} bar" x="{_n(x0 + j * bw)}" y="{_n(f.y(v))}" '
                  f'width="{_n(bw - 1)}" height="{_n(f.y(0) - f.y(v))}"><title>{escape(c)}, '
                  f'{escape(k)}: {v:.3f}</title></rect>')
        f.add(f'<text class="tick" transform="translate({_n(f.l + (i + 0.5) * slot - 3)} {_n(f.h - f.b + 10)}) '
              f'rotate(40)">{escape(_short(c, 12))}</text>')
    f.add(legend([(f"c{j % N_COLOURS}", k) for j, k in enumerate(names)], f.l, f.h - 6))
    return f.svg("pbars")


def dots_ci(labels: Sequence, values: Sequence, cis: Sequence | None = None, *,
            threshold: dict | None = None, verdicts: Sequence | None = None,
            xlabel: str = "value", title: str = "") -> Markup:
    """A forest plot: one row per label with its estimate and CI, the threshold dashed and
    the region it defines shaded (e.g. fraction unchanged per condition).

    A row is coloured by its entry of ``verdicts`` (the measurement's verdict from the
    results document); without one it is drawn neutral (``info``): the chart never judges.
    """
    rows = []
    for i, lab in enumerate(list(labels)[:40]):
        v = values[i] if i < len(values) else None
        ci = cis[i] if cis is not None and i < len(cis) else None
        vd = verdicts[i] if verdicts is not None and i < len(verdicts) else None
        rows.append((str(lab), None if v is None else float(v), ci, str(vd or "info")))
    thr_lines = threshold_lines(threshold)
    dom = domain([r[1] for r in rows], [r[2][0] for r in rows if r[2]], [r[2][1] for r in rows if r[2]],
                 pad=0.06, include=thr_lines)
    label_w = min(130.0, 16 + 6.4 * max([len(r[0]) for r in rows] + [4]))
    row = 20
    f = Frame(dom, (0, max(len(rows), 1)), width=360, height=12 + row * max(len(rows), 1) + 36,
              left=label_w, top=10, label=title or xlabel)
    f.axes(xlabel, "", yticks=[])
    for a, b in threshold_regions(threshold, *dom):
        f.add(f'<rect class="passzone" x="{_n(f.x(a))}" y="{_n(f.t)}" width="{_n(f.x(b) - f.x(a))}" '
              f'height="{_n(f.h - f.b - f.t)}"/>')
    for t in thr_lines:
        f.add(f'<line class="thr" x1="{_n(f.x(t))}" x2="{_n(f.x(t))}" y1="{_n(f.t)}" y2="{_n(f.h - f.b)}"/>')
    for i, (lab, v, ci, verdict) in enumerate(rows):
        yc = f.t + (i + 0.5) * row
        tip = f"{lab}: {fmt(v)}" + (f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci and None not in ci else "")
        g = [f'<g class="v-{escape(verdict)}"><title>{escape(tip)} ({escape(verdict)})</title>']
        if ci and None not in ci:
            g.append(f'<line class="ci" x1="{_n(f.cx(ci[0]))}" x2="{_n(f.cx(ci[1]))}" y1="{_n(yc)}" y2="{_n(yc)}"/>')
        if v is not None and math.isfinite(v):
            g.append(f'<circle class="est" cx="{_n(f.cx(v))}" cy="{_n(yc)}" r="4"/>')
        g.append("</g>")
        f.add("".join(g))
        f.add(f'<text class="tick" x="{_n(label_w - 5)}" y="{_n(yc + 4)}" text-anchor="end">{escape(_short(lab, 20))}</text>')
    return f.svg("dotsci")


def hist2d(counts: Sequence[Sequence[float]], xedges: Sequence[float], yedges: Sequence[float], *,
           tolerance: float | None = 0.05, xlabel: str = "clean prediction",
           ylabel: str = "perturbed − clean", title: str = "", width: float = 300,
           height: float = 230) -> Markup:
    """A pre-binned 2-D histogram (``counts[i][j]``: x bin i, y bin j) with the ±tolerance
    band shaded and the share of items inside it."""
    h = np.nan_to_num(np.asarray(counts, dtype=float))
    xe, ye = np.asarray(xedges, dtype=float), np.asarray(yedges, dtype=float)
    if h.shape != (xe.size - 1, ye.size - 1):
        raise ValueError(f"counts of shape {h.shape} do not match {xe.size - 1} x {ye.size - 1} bins")
    f = Frame((float(xe[0]), float(xe[-1])), (float(ye[0]), float(ye[-1])), width=width, height=height,
              top=22, label=title or f"{ylabel} against {xlabel}")
    f.axes(xlabel, ylabel)
    if tolerance:
        f.add(f'<rect class="band" x="{_n(f.l)}" y="{_n(f.cy(tolerance))}" width="{_n(f.w - f.l - f.r)}" '
              f'height="{_n(f.cy(-tolerance) - f.cy(tolerance))}"><title>|change| &lt; {tolerance:g}: '
              f'counted as unchanged</title></rect>')
    hmax = h.max() or 1.0
    if np.allclose(np.diff(xe), xe[1] - xe[0]) and np.allclose(np.diff(ye), ye[1] - ye[0]):
        # equal bins: one greyscale pixel per cell, used as the mask of a single rect, so the
        # colour still comes from the stylesheet; ~1 kB instead of one <rect> per cell
        shade = np.where(h > 0, 0.15 + 0.85 * h / hmax, 0.0)
        png = gray_png(np.round(255 * shade.T[::-1]).astype(np.uint8))  # rows: top = high y
        x0, y0 = f.x(xe[0]), f.y(ye[-1])
        w, hh = f.x(xe[-1]) - x0, f.y(ye[0]) - y0
        # an id per content and geometry: a repeated id can only point at an identical mask
        mid = "h2m" + hashlib.sha1(png + f"{x0:.2f},{y0:.2f},{w:.2f},{hh:.2f}".encode()).hexdigest()[:12]
        f.add(f'<mask id="{mid}" maskUnits="userSpaceOnUse" x="{_n(x0)}" y="{_n(y0)}" '
              f'width="{_n(w)}" height="{_n(hh)}"><image x="{_n(x0)}" y="{_n(y0)}" width="{_n(w)}" '
              f'height="{_n(hh)}" preserveAspectRatio="none" style="image-rendering:pixelated" '
              f'href="data:image/png;base64,{base64.b64encode(png).decode()}"/></mask>'
              f'<rect class="h2" x="{_n(x0)}" y="{_n(y0)}" width="{_n(w)}" height="{_n(hh)}" '
              f'mask="url(#{mid})"/>')
    else:
        for i in range(h.shape[0]):
            for j in range(h.shape[1]):
                if h[i, j] <= 0:
                    continue
                x, y = f.x(xe[i]), f.y(ye[j + 1])
                f.add(f'<rect class="h2" x="{_n(x)}" y="{_n(y)}" width="{_n(f.x(xe[i + 1]) - x + 0.3)}" '
                      f'height="{_n(f.y(ye[j]) - y + 0.3)}" style="fill-opacity:{0.15 + 0.85 * h[i, j] / hmax:.2f}"/>')
    f.add(f'<line class="ref" x1="{_n(f.l)}" x2="{_n(f.w - f.r)}" y1="{_n(f.cy(0))}" y2="{_n(f.cy(0))}"/>')
    if h.max() > 0:  # the colour scale: shade against items per cell
        f.add(shade_scale(f.w - f.r - 70, 4, "1", f"{int(hmax)}", "h2", "items per cell", lo=0.15))
    total = h.sum()
    if total and tolerance:
        yc = (ye[:-1] + ye[1:]) / 2
        inside = h[:, np.abs(yc) < tolerance].sum() / total
        f.add(f'<text class="note" x="{_n(f.l)}" y="12">about {inside:.0%} within '
              f'±{tolerance:g}, n = {int(total)}</text>')
    return f.svg("change")


def shade_scale(x: float, y: float, low: str, high: str, css: str, what: str,
                lo: float = 0.06, steps: int = 5) -> str:
    """A small colour scale: ``steps`` swatches from opacity ``lo`` to 1 between the labels
    ``low`` and ``high`` (about 70 px wide, 10 px high); ``what`` names it on hover."""
    parts = [f'<g class="scale"><title>{escape(what)}: {escape(low)} (lightest) to '
             f'{escape(high)} (darkest)</title>'
             f'<text class="tick" x="{_n(x - 3)}" y="{_n(y + 8)}" text-anchor="end">{escape(low)}</text>']
    for k, a in enumerate(np.linspace(lo, 1.0, steps)):
        parts.append(f'<rect class="{css}" x="{_n(x + k * 9)}" y="{_n(y)}" width="8" height="9" '
                     f'style="fill-opacity:{a:.2f}"/>')
    parts.append(f'<text class="tick" x="{_n(x + steps * 9 + 2)}" y="{_n(y + 8)}">{escape(high)}</text></g>')
    return "".join(parts)


def gray_png(pixels: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG of a (rows, columns) uint8 array (top row first)."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    rows, cols = pixels.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + pixels[r].tobytes() for r in range(rows))  # filter 0 per row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def heatmap(matrix: Sequence[Sequence[float]], rows: Sequence[str], cols: Sequence[str], *,
            xlabel: str = "prediction", ylabel: str = "truth", title: str = "",
            normalise_rows: bool = True) -> Markup:
    """A confusion matrix: counts in the cells, shading by the row share (recall per class)."""
    m = np.nan_to_num(np.asarray(matrix, dtype=float))
    nr, nc = m.shape
    cell = max(26.0, min(54.0, 260.0 / max(nr, nc, 1)))
    label_w = min(110.0, 14 + 6.4 * max([len(str(r)) for r in rows] + [3]))
    top_h = min(96.0, 18 + 6.0 * max([len(str(c)) for c in cols] + [3]))
    width, height = max(label_w + nc * cell + 26, 150), top_h + nr * cell + 26
    f = Frame((0, nc), (0, nr), width=width, height=height, left=label_w, right=26, top=top_h,
              bottom=26, label=title or f"confusion matrix: {ylabel} (rows) by {xlabel} (columns)")
    share = m / np.where(m.sum(axis=1, keepdims=True) > 0, m.sum(axis=1, keepdims=True), 1) \
        if normalise_rows else m / max(m.max(), 1e-12)
    for i in range(nr):
        for j in range(nc):
            x, y = label_w + j * cell, top_h + i * cell
            s = float(share[i, j])
            txt_cls = "hm-txt-dark" if s > 0.55 else "hm-txt"
            diag = " diag" if i == j and rows[i] == cols[j] else ""
            val = m[i, j]
            shown = f"{int(val)}" if float(val).is_integer() else f"{val:.2f}"
            f.add(f'<rect class="hm{diag}" x="{_n(x)}" y="{_n(y)}" width="{_n(cell - 1)}" height="{_n(cell - 1)}" '
                  f'style="fill-opacity:{0.06 + 0.94 * s:.2f}"><title>{escape(rows[i])} → '
                  f'{escape(cols[j])}: {escape(shown)} ({s:.0%} of row)</title></rect>')
            f.add(f'<text class="{txt_cls}" x="{_n(x + cell / 2)}" y="{_n(y + cell / 2 + 4)}" '
                  f'text-anchor="middle">{escape(shown)}</text>')
    for i, r in enumerate(rows):
        f.add(f'<text class="tick" x="{_n(label_w - 5)}" y="{_n(top_h + i * cell + cell / 2 + 4)}" '
              f'text-anchor="end">{escape(_short(r, 16))}</text>')
    for j, c in enumerate(cols):
        x = label_w + j * cell + cell / 2
        f.add(f'<text class="tick" transform="translate({_n(x + 3)} {_n(top_h - 5)}) rotate(-50)">'
              f'{escape(_short(c, 14))}</text>')
    f.add(f'<text class="albl" x="{_n(label_w + nc * cell / 2)}" y="10" text-anchor="middle">{escape(xlabel)} →</text>')
    f.add(f'<text class="albl" transform="translate({_n(width - 8)} {_n(top_h + nr * cell / 2)}) rotate(90)" '
          f'text-anchor="middle">← {escape(ylabel)}</text>')
    f.add(shade_scale(label_w + 14, height - 14, "0 %", "100 %" if normalise_rows else
                      f"{m.max():g}", "hm", "share of the row" if normalise_rows else "count"))
    return f.svg("heat")


def _short(text: str, n: int) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def speakers(names: Sequence, truth: Sequence, prediction: Sequence, *, flag: float = 0.2,
             counts: Sequence | None = None, title: str = "", ylabel: str = "mean value") -> Markup:
    """Per-speaker averages: truth (hollow) and prediction (filled) joined; gaps > ``flag`` marked."""
    rows = []
    for i in range(min(len(names), len(truth), len(prediction))):
        try:
            t, p = float(truth[i]), float(prediction[i])
        except (TypeError, ValueError):
            continue
        if math.isfinite(t) and math.isfinite(p):
            rows.append((str(names[i]), t, p, counts[i] if counts is not None and i < len(counts) else None))
    rows.sort(key=lambda r: r[1])
    rows = rows[:80]
    n = max(len(rows), 1)
    step = max(9.0, min(26.0, 520.0 / n))
    width = 60 + n * step
    dom = unit_domain([r[1] for r in rows], [r[2] for r in rows])
    f = Frame((0, n), dom, width=max(width, 260), height=240, top=22, bottom=40 if n > 24 else 62,
              label=title or "per-speaker averages: truth and prediction")
    f.axes("", ylabel, xticks=[], grid=True)
    n_flag = 0
    for i, (name, t, p, c) in enumerate(rows):
        x = f.l + (i + 0.5) * (f.w - f.l - f.r) / n
        bad = abs(p - t) > flag
        n_flag += bad
        cls = "spk-bad" if bad else "spk"
        tip = f"speaker {name}: truth {t:.3f}, prediction {p:.3f}" + (f", {c} items" if c else "")
        f.add(f'<g class="{cls}"><title>{escape(tip)}</title>'
              f'<line x1="{_n(x)}" x2="{_n(x)}" y1="{_n(f.y(t))}" y2="{_n(f.y(p))}"/>'
              f'<circle class="truth-pt" cx="{_n(x)}" cy="{_n(f.y(t))}" r="3.5"/>'
              f'<circle class="pred-pt" cx="{_n(x)}" cy="{_n(f.y(p))}" r="3.5"/></g>')
        if n <= 24:
            f.add(f'<text class="tick" transform="translate({_n(x + 3)} {_n(f.h - f.b + 8)}) rotate(60)">'
                  f'{escape(_short(name, 10))}</text>')
    f.add(f'<text class="note" x="{_n(f.l)}" y="12">{len(rows)} speakers, sorted by truth; '
          f'{n_flag} off by &gt; {flag:g}</text>')
    return f.svg("speakers")


def ranks(truth: Sequence, prediction: Sequence, *, title: str = "", quartile: float = 0.25) -> Markup:
    """Rank of the prediction against rank of the truth (percentiles), with the top and bottom
    quarter boxes: points in the top-right box are correctly found high, bottom-left low."""
    t, p = paired(truth, prediction)
    n = t.size
    if n:
        rt = (np.argsort(np.argsort(t, kind="stable"), kind="stable") + 0.5) / n
        rp = (np.argsort(np.argsort(p, kind="stable"), kind="stable") + 0.5) / n
    else:
        rt = rp = np.array([])
    f = Frame((0, 1), (0, 1), width=300, height=310, top=22, label=title or "rank of prediction against rank of truth")
    f.axes("truth rank (percentile)", "prediction rank (percentile)",
           xticks=[0, 0.25, 0.5, 0.75, 1], yticks=[0, 0.25, 0.5, 0.75, 1])
    q = quartile
    for x0, y0, cls, txt in ((0, 0, "box-low", "bottom"), (1 - q, 1 - q, "box-high", "top")):
        f.add(f'<rect class="{cls}" x="{_n(f.x(x0))}" y="{_n(f.y(y0 + q))}" width="{_n(f.x(q) - f.x(0))}" '
              f'height="{_n(f.y(0) - f.y(q))}"><title>{txt} {q:.0%} in both</title></rect>')
    f.add(f'<line class="ref" x1="{_n(f.x(0))}" y1="{_n(f.y(0))}" x2="{_n(f.x(1))}" y2="{_n(f.y(1))}"/>')
    f.add(f'<path class="dots c0" d="{dots_path([f.x(v) for v in rt], [f.y(v) for v in rp])}"/>')
    if n:
        top_t, top_p = rt > 1 - q, rp > 1 - q
        hits = int((top_t & top_p).sum())
        f.add(f'<text class="note" x="{_n(f.l)}" y="12">top {q:.0%}: '
              f'{hits} of {int(top_t.sum())} found</text>')
    return f.svg("ranks")


def change(clean: Sequence, perturbed: Sequence, *, tolerance: float = 0.05, title: str = "",
           bins: int = 24) -> Markup:
    """Robustness: 2-D histogram of (perturbed − clean) against clean, ±tolerance band shaded."""
    c, p = paired(clean, perturbed)
    d = p - c
    xdom = unit_domain(c)
    lim = max(0.1, float(np.quantile(np.abs(d), 0.99)) * 1.1 if d.size else 0.1)
    xe = np.linspace(xdom[0], xdom[1], bins + 1)
    ye = np.linspace(-lim, lim, bins + 1)
    h = np.histogram2d(c, np.clip(d, -lim, lim), bins=[xe, ye])[0] if d.size else np.zeros((bins, bins))
    return hist2d(h, xe, ye, tolerance=tolerance, title=title)


def _level_position(levels: Sequence[float], value: float) -> float | None:
    """Fractional index of ``value`` among ordered numeric ``levels`` (linear in between)."""
    lv = np.asarray(levels, dtype=float)
    if lv.size == 0 or not math.isfinite(value):
        return None
    idx = np.arange(lv.size, dtype=float)
    if lv.size == 1:
        return 0.0 if value == lv[0] else None
    if lv[0] > lv[-1]:
        lv, idx = lv[::-1], idx[::-1]
    if not np.all(np.diff(lv) > 0) or value < lv[0] or value > lv[-1]:
        return None
    return float(np.interp(value, lv, idx))


def dose_response(levels: Sequence, values: Sequence, *, ci: Sequence | None = None,
                  threshold: float | dict | None = None, breakdown=None,
                  breakdown_ci: Sequence | None = None, labels: Sequence[str] | None = None,
                  xlabel: str = "level", ylabel: str = "value", title: str = "",
                  series: dict | None = None) -> Markup:
    """A metric against perturbation strength (levels in order, mild to severe), with its CI
    band, the limit (dashed) and the breakdown point where the metric crosses it (with its
    interval shaded when known)."""
    all_series = series or {"": {"levels": levels, "values": values, "ci": ci}}
    first = next(iter(all_series.values()))
    lv = list(first.get("levels") or levels or [])
    tick_labels = [str(x) for x in (labels or [_tick_text(v) if isinstance(v, (int, float)) else v for v in lv])]
    n = max(len(tick_labels), 1)
    ys: list = []
    for s in all_series.values():
        ys += list(s.get("values") or []) + [c[0] for c in (s.get("ci") or []) if c] + \
            [c[1] for c in (s.get("ci") or []) if c]
    thr = threshold.get("value") if isinstance(threshold, dict) else threshold
    ydom = domain(ys, pad=0.1, include=[thr] if thr is not None else [])
    f = Frame((-0.3, n - 0.7), ydom, width=360, height=230, bottom=52 if len(all_series) > 1 else 40,
              label=title or f"{ylabel} against {xlabel}")
    step = max(1, int(math.ceil(n / 9)))
    f.axes(xlabel, ylabel, xticks=list(range(0, n, step)),
           xtick_labels=[_short(t, 9) for t in tick_labels[::step]])
    numeric = all(isinstance(v, (int, float)) for v in lv)
    if breakdown is not None and numeric:
        try:
            lo_hi = [None if b is None else _level_position(lv, float(b)) for b in (breakdown_ci or [])]
            if len(lo_hi) == 2:
                a = f.x0 if lo_hi[0] is None and breakdown_ci[0] is None else lo_hi[0]
                b = f.x1 if lo_hi[1] is None and breakdown_ci[1] is None else lo_hi[1]
                if a is not None and b is not None and not (breakdown_ci[0] is None and breakdown_ci[1] is None):
                    a, b = sorted((a, b))
                    f.add(f'<rect class="brk-band" x="{_n(f.cx(a))}" y="{_n(f.t)}" width="{_n(f.cx(b) - f.cx(a))}" '
                          f'height="{_n(f.h - f.b - f.t)}"><title>breakdown interval</title></rect>')
        except (TypeError, ValueError):
            pass
    if thr is not None:
        f.add(f'<line class="thr" x1="{_n(f.l)}" x2="{_n(f.w - f.r)}" y1="{_n(f.cy(thr))}" y2="{_n(f.cy(thr))}">'
              f'<title>limit {float(thr):g}</title></line>')
    for k, (name, s) in enumerate(all_series.items()):
        vv = list(s.get("values") or [])
        cis = list(s.get("ci") or [None] * len(vv))
        pts = [(i, float(y)) for i, y in enumerate(vv) if y is not None and math.isfinite(float(y))]
        band = [(i, c) for i, c in enumerate(cis) if c and c[0] is not None and c[1] is not None]
        cls = f"c{k % N_COLOURS}"
        if len(band) >= 2:
            d = "M" + "L".join(f"{_n(f.x(i))} {_n(f.cy(c[1]))}" for i, c in band)
            d += "L" + "L".join(f"{_n(f.x(i))} {_n(f.cy(c[0]))}" for i, c in reversed(band)) + "Z"
            f.add(f'<path class="cband {cls}" d="{d}"/>')
        if pts:
            f.add(f'<path class="curve {cls}" d="M' + "L".join(f"{_n(f.x(i))} {_n(f.cy(y))}" for i, y in pts) + '"/>')
            for i, y in pts:
                lab = tick_labels[i] if i < len(tick_labels) else str(i)
                f.add(f'<circle class="cpt {cls}" cx="{_n(f.x(i))}" cy="{_n(f.cy(y))}" r="3">'
                      f'<title>{escape(name + ": ") if name else ""}{escape(lab)}: {y:.4g}</title></circle>')
    if breakdown is not None:
        pos = _level_position(lv, float(breakdown)) if numeric else (
            tick_labels.index(str(breakdown)) if str(breakdown) in tick_labels else None)
        if pos is not None:
            px = f.x(pos)
            f.add(f'<line class="brk" x1="{_n(px)}" x2="{_n(px)}" y1="{_n(f.t)}" y2="{_n(f.h - f.b)}"/>'
                  f'<text class="brk-txt" x="{_n(min(px + 3, f.w - 90))}" y="{_n(f.t + 10)}">breakdown '
                  f'{escape(_tick_text(float(breakdown)) if numeric else str(breakdown))}</text>')
    if len(all_series) > 1:
        f.add(legend([(f"c{k % N_COLOURS}", str(nm)) for k, nm in enumerate(all_series)], f.l, f.h - 22,
                     swatch="line"))
    return f.svg("dose")


def distributions(groups: dict[str, Sequence], *, xlabel: str = "prediction", title: str = "",
                  reference: str | None = None) -> Markup:
    """Box plots of each group's values on a shared axis (box: quartiles; whiskers: 5–95 %;
    dot: mean).  ``reference`` (e.g. the combined set) is drawn first and shaded."""
    data = [(str(k), finite(v)) for k, v in groups.items()]
    data = [(k, v) for k, v in data if v.size][:40]
    if reference is not None:
        data.sort(key=lambda kv: kv[0] != reference)
    label_w = min(120.0, 16 + 6.4 * max([len(k) for k, _ in data] + [4]))
    row = 22
    dom = unit_domain(*[v for _, v in data])
    f = Frame(dom, (0, max(len(data), 1)), width=340, height=18 + row * max(len(data), 1) + 34,
              left=label_w, top=10, label=title or f"distribution of {xlabel} per group")
    f.axes(xlabel, "", yticks=[])
    for i, (k, v) in enumerate(data):
        yc = f.t + (i + 0.5) * row
        q05, q25, q50, q75, q95 = np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95])
        mean = float(v.mean())
        cls = "ref-box" if k == reference else f"c{i % N_COLOURS}"
        tip = (f"{k}: n = {v.size}, mean {mean:.3f}, median {q50:.3f}, quartiles {q25:.3f}–{q75:.3f}")
        f.add(f'<g class="box {cls}"><title>{escape(tip)}</title>'
              f'<line class="whisk" x1="{_n(f.x(q05))}" x2="{_n(f.x(q95))}" y1="{_n(yc)}" y2="{_n(yc)}"/>'
              f'<rect x="{_n(f.x(q25))}" y="{_n(yc - 7)}" width="{_n(max(1.0, f.x(q75) - f.x(q25)))}" height="14" rx="2"/>'
              f'<line class="med" x1="{_n(f.x(q50))}" x2="{_n(f.x(q50))}" y1="{_n(yc - 7)}" y2="{_n(yc + 7)}"/>'
              f'<circle class="mean" cx="{_n(f.x(mean))}" cy="{_n(yc)}" r="2.6"/></g>')
        f.add(f'<text class="tick" x="{_n(label_w - 5)}" y="{_n(yc + 4)}" text-anchor="end">'
              f'{escape(_short(k, 18))}</text><text class="tick nn" x="{_n(f.w - f.r)}" y="{_n(yc - 8)}" '
              f'text-anchor="end">n={v.size}</text>')
    return f.svg("dist")


def proportions(groups: dict[str, dict[str, float]], *, title: str = "") -> Markup:
    """Stacked horizontal bars: the share of each class (or bin) per group."""
    names = list(groups)[:40]
    cats: list[str] = []
    for g in names:
        for c in groups[g]:
            if str(c) not in cats:
                cats.append(str(c))
    label_w = min(120.0, 16 + 6.4 * max([len(str(k)) for k in names] + [4]))
    row = 22
    f = Frame((0, 1), (0, max(len(names), 1)), width=340, height=10 + row * max(len(names), 1) + 44,
              left=label_w, top=10, bottom=44, label=title or "class shares per group")
    f.axes("", "", xticks=[0, 0.25, 0.5, 0.75, 1], yticks=[],
           xtick_labels=["0 %", "25 %", "50 %", "75 %", "100 %"])
    for i, g in enumerate(names):
        vals = {str(k): float(v) for k, v in groups[g].items() if v is not None}
        total = sum(vals.values()) or 1.0
        x = 0.0
        yc = f.t + (i + 0.5) * row
        for j, c in enumerate(cats):
            share = vals.get(c, 0.0) / total
            if share <= 0:
                continue
            f.add(f'<rect class="c{j % N_COLOURS} seg" x="{_n(f.x(x))}" y="{_n(yc - 8)}" '
                  f'width="{_n(f.x(x + share) - f.x(x))}" height="16"><title>{escape(g)}: '
                  f'{escape(c)} {share:.1%}</title></rect>')
            x += share
        f.add(f'<text class="tick" x="{_n(label_w - 5)}" y="{_n(yc + 4)}" text-anchor="end">'
              f'{escape(_short(g, 18))}</text>')
    f.add(legend([(f"c{j % N_COLOURS}", c) for j, c in enumerate(cats[:7])], f.l, f.h - 8))
    return f.svg("props")


def bars(labels: Sequence, values: Sequence, *, threshold: dict | None = None, title: str = "",
         xlabel: str = "value") -> Markup:
    """Horizontal bars, one per label (e.g. a metric per class or per small change)."""
    rows = [(str(lab), float(v)) for lab, v in zip(labels, values)
            if v is not None and math.isfinite(float(v))][:40]
    label_w = min(130.0, 16 + 6.4 * max([len(r[0]) for r in rows] + [4]))
    row = 20
    thr_lines = threshold_lines(threshold)
    dom = domain([v for _, v in rows], pad=0.06, include=[0.0] + thr_lines)
    f = Frame(dom, (0, max(len(rows), 1)), width=340, height=10 + row * max(len(rows), 1) + 36,
              left=label_w, top=10, label=title or xlabel)
    f.axes(xlabel, "", yticks=[])
    for a, b in threshold_regions(threshold, *dom):
        f.add(f'<rect class="passzone" x="{_n(f.x(a))}" y="{_n(f.t)}" width="{_n(f.x(b) - f.x(a))}" '
              f'height="{_n(f.h - f.b - f.t)}"/>')
    for i, (lab, v) in enumerate(rows):
        yc = f.t + (i + 0.5) * row
        x0, x1 = sorted((f.x(0), f.x(v)))
        f.add(f'<rect class="c0 bar" x="{_n(x0)}" y="{_n(yc - 6)}" width="{_n(max(x1 - x0, 0.8))}" height="12">'
              f'<title>{escape(lab)}: {v:.4g}</title></rect>'
              f'<text class="tick" x="{_n(label_w - 5)}" y="{_n(yc + 4)}" text-anchor="end">{escape(_short(lab, 20))}</text>')
    for t in thr_lines:
        f.add(f'<line class="thr" x1="{_n(f.x(t))}" x2="{_n(f.x(t))}" y1="{_n(f.t)}" y2="{_n(f.h - f.b)}"/>')
    return f.svg("bars")


def lines(x: Sequence, series: dict[str, Sequence], *, xlabel: str = "x", ylabel: str = "value",
          title: str = "") -> Markup:
    """Generic line chart: one line per series over shared (ordinal) x values."""
    return dose_response(list(x), [], series={k: {"levels": list(x), "values": list(v)}
                                              for k, v in series.items()},
                         xlabel=xlabel, ylabel=ylabel, title=title)


def waveform(signal, *, width: float = 320, height: float = 30, css: str = "") -> Markup:
    """A min/max envelope of a signal (values in [-1, 1]) as a small filled path."""
    x = np.asarray(signal, dtype=float)
    if x.size == 0:
        return Markup("")
    cols = int(width) // 2  # one column per 2 px: the path stays small (preserveAspectRatio none)
    edges = np.linspace(0, x.size, cols + 1).astype(int)
    top, bot = [], []
    for i in range(cols):
        seg = x[edges[i]:max(edges[i + 1], edges[i] + 1)]
        top.append(float(seg.max()) if seg.size else 0.0)
        bot.append(float(seg.min()) if seg.size else 0.0)
    mid = height / 2

    def y(v):
        return f"{mid - max(-1.0, min(1.0, v)) * (mid - 1):.0f}"
    d = "M0 " + y(top[0]) + "".join(f"L{i} {y(v)}" for i, v in enumerate(top)) + \
        "".join(f"L{i} {y(v)}" for i, v in reversed(list(enumerate(bot)))) + "Z"
    return Markup(f'<svg class="wave {escape(css)}" viewBox="0 0 {cols} {_n(height)}" preserveAspectRatio="none" '
                  f'aria-hidden="true"><path d="{d}"/></svg>')


def meter(score: float | None, width: float = 120, height: float = 10) -> Markup:
    """A thin horizontal score bar in [0, 1]."""
    if score is None:
        return Markup("")
    s = min(max(float(score), 0.0), 1.0)
    return Markup(f'<svg class="meter" viewBox="0 0 {_n(width)} {_n(height)}" width="{_n(width)}" '
                  f'height="{_n(height)}" aria-hidden="true"><rect class="meter-bg" width="{_n(width)}" '
                  f'height="{_n(height)}" rx="{_n(height / 2)}"/><rect class="meter-fg" width="{_n(width * s)}" '
                  f'height="{_n(height)}" rx="{_n(height / 2)}"/></svg>')
