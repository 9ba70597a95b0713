"""Turn a test entry's ``plots`` into drawable views for the HTML report.

Checks write their plots through the figure contract (:mod:`sertest.figures`, listed in
docs/results-schema.md, "Figures"): ``plots`` is one composite figure (``robustness``,
``dose``, ``search``, ``search_pair``, ``metamorphic``, ``slices``) or a mapping of plot
names to figures, and every figure names its ``kind``.  This module draws by that kind
only; a kind it has no drawing for is shown as data with a note.

Migration path: documents of older schemas (``sertest/results@1``, ``@2``, read by
``sertest report`` and ``sertest compare``) carry named plots without a ``kind``.  For those,
and only those, :func:`legacy_kind` guesses the kind from the plot's name and keys, mapping
the shapes the checks wrote then onto today's kinds (and a few older shapes onto drawings
kept for them: ``change``, ``dose_response``, ``lines``, ``table``, ``worst`` lists, ...).
Scalars become a one-line note; anything else is shown as an escaped data preview, so an
unknown or malformed plot never breaks the page.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from .. import figures
from . import svg
from .numbers import finite

MAX_PLOTS_PER_ENTRY = 40
MAX_WORST_ROWS = 12
RAW_PREVIEW_CHARS = 1200
#: drawings that need a whole card row (wide or tall); the rest are laid out two by two
WIDE = ("worst", "unknown", "note", "table")


@dataclass
class PlotView:
    """One drawable thing: an SVG, a worst-items table, a small table, or a data preview."""

    title: str
    kind: str
    svg: Markup | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # worst items
    table: list[tuple[str, list[str]]] | None = None  # (row label, cells)
    columns: list[str] = field(default_factory=list)
    raw: str | None = None
    note: str | None = None
    group: str | None = None  # views of one family (e.g. per condition) share a group

    @property
    def wide(self) -> bool:
        return self.kind in WIDE


def condition_spec(cond: Any) -> dict[str, Any] | None:
    """A perturbation spec dict from a condition given as dict, JSON key or bare name."""
    if isinstance(cond, dict):
        return dict(cond) if cond.get("name") else None
    if isinstance(cond, str):
        s = cond.strip()
        if s.startswith("{"):
            try:
                d = json.loads(s)
            except ValueError:
                return None
            return d if isinstance(d, dict) and d.get("name") else None
        if s and s != "clean":
            return {"name": s}
    return None


def condition_label(cond: Any) -> str:
    """``white_noise (snr_db=20)`` for a spec, the text itself otherwise."""
    spec = condition_spec(cond)
    if spec is None:
        return "clean" if cond in (None, "clean") else str(cond)
    params = ", ".join(f"{k}={_short_value(v)}" for k, v in spec.items() if k != "name")
    return f"{spec['name']} ({params})" if params else str(spec["name"])


def _short_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ", ".join(_short_value(x) for x in v[:6]) + (", …" if len(v) > 6 else "") + "]"
    if isinstance(v, str) and len(v) > 40:
        return "…" + v[-39:]
    return str(v)


def _is_num_list(v: Any) -> bool:
    return isinstance(v, list) and all(x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))
                                       for x in v[:50])


def _is_matrix(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(_is_num_list(r) for r in v[:50])


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def figure_kind(name: str, data: Any) -> str:
    """The kind to draw one named plot as: its ``kind`` key (results@3 on), else the
    migration guess of :func:`legacy_kind` (older documents)."""
    if isinstance(data, dict) and "kind" in data:
        return str(data["kind"])
    return legacy_kind(name, data)


#: older name of :func:`figure_kind`
detect = figure_kind


def legacy_kind(name: str, data: Any) -> str:
    """Migration path for documents of schemas before ``sertest/results@3``, whose plots
    have no ``kind``: the kind guessed from the plot's name and keys (``unknown`` if not
    recognised).  Never used for a figure that names its kind."""
    n = name.lower()
    if _is_scalar(data):
        return "scalar"
    if isinstance(data, list):
        if data and all(isinstance(x, dict) for x in data[:20]):
            if "worst" in n or any("id" in x for x in data[:20]):
                return "worst"
            if all({"group", "n"} <= set(x) for x in data[:20]):
                return "group_sizes"
        return "unknown"
    if not isinstance(data, dict):
        return "unknown"
    keys = set(data)
    if "worst" in n and isinstance(data.get("items"), list):
        return "worst"
    if _is_matrix(data.get("matrix")) or _is_matrix(data.get("counts")):
        return "confusion"
    if "categories" in keys and isinstance(data["categories"], dict):
        return "category"
    if isinstance(data.get("speakers"), list) and data["speakers"] and isinstance(data["speakers"][0], dict):
        return "speaker_shares" if "classes" in keys else "speakers"
    if ("speaker" in keys or "speakers" in keys) and "prediction" in keys:
        return "speakers"
    if "rank" in n and isinstance(data.get("series"), dict):
        return "rank_series"
    if ("levels" in keys and "values" in keys) or ("dose" in n and "series" in keys):
        return "dose_response"
    if {"clean", "perturbed"} <= keys:
        return "change"
    if "groups" in keys and isinstance(data["groups"], dict):
        groups = data["groups"]
        if "edges" in keys or "classes" in keys:
            return "groups"
        return "shares" if groups and all(isinstance(v, dict) for v in groups.values()) \
            else "distributions"
    if "classes" in keys and {"truth", "prediction"} <= keys:
        return "class_shares"
    if {"truth", "prediction"} <= keys:
        if "rank" in n:
            return "ranks"
        if "edges" in keys or "bins" in keys or "hist" in n or "distribution" in n:
            return "histogram"
        return "scatter"
    if "edges" in keys or "bins" in keys:
        return "histogram"
    if "x" in keys and isinstance(data.get("series"), dict):
        return "lines"
    if "series" in keys and isinstance(data["series"], dict) and ("hist" in n or "distribution" in n):
        return "histogram"
    if {"labels", "values"} <= keys:
        return "bars"
    if data and all(_is_scalar(v) for v in data.values()):
        return "table"
    if data and all(isinstance(v, dict) and all(_is_scalar(x) for x in v.values()) for v in data.values()):
        return "table"
    if data and all(isinstance(v, (dict, list)) for v in data.values()):
        members = {str(k): legacy_kind(f"{name} {k}", v) for k, v in list(data.items())[:8]}
        if all(k == "histogram" and isinstance(v, dict) and "prediction" in v and "edges" in v
               for k, v in zip(members.values(), data.values())):
            return "categories"
        if all(k == "speakers" for k in members.values()):
            return "speakers_per_class"
        if all(k == "ranks" for k in members.values()):
            return "ranks_per_class"
        if any(k not in ("unknown", "table") for k in members.values()):
            return "family"
    return "unknown"


#: the kinds drawn for figures of the contract (:data:`sertest.figures.KINDS`)
KINDS = tuple(figures.KINDS)
#: further drawings kept for the plots of older documents (see :func:`legacy_kind`)
LEGACY_KINDS = ("category", "speaker_shares", "rank_series", "dose_response", "change", "groups",
                "group_sizes", "class_shares", "lines", "worst", "table")


def _title(name: str) -> str:
    return name.replace("_", " ")


def _caption(name: str, kind: str, what: str) -> str:
    """``what`` alone when the plot's name only repeats its kind, else ``name: what``."""
    plain = name.lower().replace("-", "_").replace(" ", "_").rstrip("s")
    if plain in (kind, kind.split("_")[0], "plot", "hist", "histogram", "confusion_matrix",
                 "speaker_average", "speaker_proportion", "rank", "rank_vs_rank", "worst_item",
                 "distribution", "group_distribution", "dose", "group", "class_proportion",
                 "category_distribution", "scatter", "change", "calibration"):
        return what
    return f"{_title(name)}: {what}"


def render_plots(plots: Any, *, dimension: str = "value",
                 thresholds: dict[str, dict] | None = None,
                 measurements: list[dict] | None = None) -> list[PlotView]:
    """Views for every plot of one test entry (at most :data:`MAX_PLOTS_PER_ENTRY`).

    ``thresholds`` (metric -> threshold) draw limit lines and the regions they define;
    ``measurements`` (the entry's) give the verdicts that colour per-group estimates.  No
    plot judges a value itself: without a measured verdict a row is drawn neutral.
    """
    thresholds = thresholds or {}
    verdicts = measured_verdicts(measurements)
    if not isinstance(plots, dict):
        return [PlotView("plots", "unknown", raw=_preview(plots),
                         note="plots is not a mapping; shown as data")]
    composite = COMPOSITES.get(str(plots.get("kind")))
    if "kind" in plots and composite is None:
        views = [PlotView("plots", "unknown", raw=_preview(plots),
                          note=f"no drawing for figure kind {plots.get('kind')!r}; its data is "
                               "shown instead")]
    elif composite is not None:
        try:
            views = composite(plots, dimension, thresholds, verdicts)
        except Exception as exc:  # noqa: BLE001 - fall back to drawing the parts one by one
            views = [PlotView("plots", "note", note=f"could not draw the {plots.get('kind')} plots "
                              f"({type(exc).__name__}: {exc}); their parts are shown one by one")]
            views += _generic({k: v for k, v in plots.items() if k != "kind"}, dimension, thresholds,
                              verdicts)
    else:
        views = _generic(plots, dimension, thresholds, verdicts)
    if len(views) > MAX_PLOTS_PER_ENTRY:
        views = views[:MAX_PLOTS_PER_ENTRY] + [PlotView(
            "more plots", "note", note=f"only the first {MAX_PLOTS_PER_ENTRY} plots are drawn")]
    return views


def measured_verdicts(measurements: list[dict] | None) -> dict[tuple[str, str], str]:
    """``(metric, group) -> verdict`` of an entry's measurements (group ``None`` as 'None')."""
    return {(str(m.get("metric")), str(m.get("group"))): str(m.get("verdict") or "info")
            for m in measurements or [] if isinstance(m, dict)}


def _row_verdicts(verdicts: dict, labels: list, metric: Any = None,
                  prefix: str | None = None) -> list[str]:
    """The measured verdict of each label's row: the measurement of ``metric`` (or of any
    metric starting with ``prefix``) whose group is the label; ``info`` when none."""
    out = []
    for lab in labels:
        v = verdicts.get((str(metric), str(lab))) if metric is not None else None
        if v is None and prefix is not None:
            v = next((vd for (m, g), vd in verdicts.items()
                      if m.startswith(prefix) and g == str(lab)), None)
        out.append(v or "info")
    return out


def _generic(plots: dict, dim: str, thresholds: dict, verdicts: dict | None = None) -> list[PlotView]:
    verdicts = verdicts or {}
    views: list[PlotView] = []
    kinds = {str(k): figure_kind(str(k), v) for k, v in plots.items()}
    has_hist = "histogram" in kinds.values()
    facts = [f"{_title(k)}: {svg.fmt(v) if isinstance(v, float) else v}" for k, v in plots.items()
             if kinds[str(k)] == "scalar"]
    for name, data in plots.items():
        if kinds[str(name)] == "scalar":
            continue
        _render_one(str(name), data, dim, thresholds, views, 0, has_hist, verdicts)
    if facts:
        views.append(PlotView("parameters", "note", note="; ".join(facts)))
    return views


def _range(text: Any) -> list | None:
    """``[lo, hi]`` from a range given as a pair or as text like ``"[-inf, 0.45]"``."""
    if isinstance(text, str):
        try:
            text = [float(x) for x in text.strip("[]() ").split(",")]
        except ValueError:
            return None
    if isinstance(text, (list, tuple)) and len(text) == 2:
        return [None if v is None or not math.isfinite(float(v)) else float(v) for v in text]
    return None


def _family_ridges(name: str, data: dict, dim: str) -> PlotView | None:
    """A family of histograms on the same edges (e.g. predictions per emotion category) as
    one ridge plot; None if the members are not such histograms."""
    members = [(str(k), v) for k, v in data.items() if k != "kind"]
    if len(members) < 1 or not all(isinstance(v, dict) and isinstance(v.get("edges"), list)
                                   and isinstance(v.get("prediction"), list) for _, v in members):
        return None
    edges = members[0][1]["edges"]
    if any(v["edges"] != edges or len(v["prediction"]) != len(edges) - 1 for _, v in members):
        return None
    shades, notes = {}, {}
    for k, v in members:
        rng = _range(v.get("expected"))
        if rng is not None:
            shades[k] = rng
        if v.get("n") is not None:
            notes[k] = f"n={v['n']}"
    what = "emotion category" if "categor" in name else "group"
    return PlotView(_caption(name, "category", f"predicted {dim} per {what} (shaded: the "
                             "expected range)"), "category",
                    svg.ridges(edges, {k: v["prediction"] for k, v in members},
                               xlabel=f"predicted {dim}", shades=shades, notes=notes))


def _render_one(name: str, data: Any, dim: str, thresholds: dict, views: list, depth: int,
                has_hist: bool = False, verdicts: dict | None = None) -> None:
    kind = figure_kind(name, data)
    ridge = _family_ridges(name, data, dim) if kind == "family" else None
    if ridge is not None:  # one plot for the family instead of one histogram per member
        views.append(ridge)
        return
    if kind == "family" and depth < 2:
        for sub, value in data.items():
            _render_one(f"{name}: {sub}", value, dim, thresholds, views, depth + 1, has_hist, verdicts)
        return
    try:
        views.extend(_draw(name, kind, data, dim, thresholds, has_hist, verdicts or {}))
    except Exception as exc:  # noqa: BLE001 - a malformed plot must not break the report
        views.append(PlotView(_title(name), "unknown", raw=_preview(data),
                              note=f"could not draw this plot ({type(exc).__name__}: {exc}); "
                                   "its data is shown instead"))


def _draw(name: str, kind: str, d: Any, dim: str, thresholds: dict,
          has_hist: bool = False, verdicts: dict | None = None) -> list[PlotView]:
    if kind == "scatter":
        _need(d, "truth", "prediction")
        out = [PlotView(_caption(name, kind, "prediction against truth (dashed: identity, line: fit)"), kind,
                        svg.scatter(d["truth"], d["prediction"], xlabel=f"true {dim}",
                                    ylabel=f"predicted {dim}"))]
        if not has_hist:
            out.append(PlotView(_caption(name, kind, "distributions of truth and prediction"), "histogram",
                                svg.histogram({"truth": d["truth"], "prediction": d["prediction"]},
                                              xlabel=dim)))
        return out
    if kind == "histogram":
        cap = _caption(name, kind, "distributions of truth and prediction"
                       if {"truth", "prediction"} <= set(d) else "distribution")
        if "edges" in d or "bins" in d:
            edges = d.get("edges", d.get("bins"))
            counts = d.get("counts")
            if counts is None:
                counts = {k: v for k, v in d.items() if _is_num_list(v) and k not in ("edges", "bins")}
            if isinstance(counts, list):
                counts = {"count": counts}
            if isinstance(edges, list) and all(isinstance(e, (int, float)) for e in edges):
                return [PlotView(cap, kind, svg.binned(counts, edges, xlabel=d.get("xlabel", dim)))]
            labels = [str(e) for e in edges]
            return [PlotView(cap, kind, svg.binned(counts, list(range(len(labels) + 1)),
                                                   xlabel=d.get("xlabel", dim), bin_labels=labels))]
        series = d.get("series") if isinstance(d.get("series"), dict) else \
            {k: v for k, v in d.items() if _is_num_list(v)}
        return [PlotView(cap, kind, svg.histogram(series, xlabel=d.get("xlabel", dim)))]
    if kind == "confusion":
        m = d.get("matrix", d.get("counts"))
        labels = d.get("labels") or d.get("classes")
        rows = d.get("rows") or (d.get("truth") if isinstance(d.get("truth"), list) else None) \
            or labels or [str(i) for i in range(len(m))]
        cols = d.get("columns") or (d.get("prediction") if isinstance(d.get("prediction"), list) else None) \
            or labels or [str(i) for i in range(len(m[0]) if m else 0)]
        if len(rows) != len(m) or any(len(r) != len(cols) for r in m):
            raise ValueError(f"matrix of {len(m)} rows does not match {len(rows)} x {len(cols)} labels")
        return [PlotView(_caption(name, kind, "confusion matrix (rows: truth, columns: prediction; "
                                  "shade: share of the row)"), kind,
                         svg.heatmap(m, [str(r) for r in rows], [str(c) for c in cols],
                                     xlabel=d.get("xlabel", "prediction"), ylabel=d.get("ylabel", "truth")))]
    if kind == "class_shares":
        return [PlotView(_caption(name, kind, "class shares: truth and prediction"), kind,
                         svg.paired_bars(d["classes"], {"truth": d["truth"], "prediction": d["prediction"]}))]
    if kind == "category":
        cats = d["categories"]
        shades, notes, hists = {}, {}, {}
        for cat, info in cats.items():
            rng = info.get("range") or [None, None]
            shades[str(cat)] = rng
            lo = "…" if rng[0] is None else f"{rng[0]:g}"
            hi = "…" if rng[1] is None else f"{rng[1]:g}"
            notes[str(cat)] = f"{lo}–{hi}, n={info.get('n')}"
            hists[str(cat)] = info["histogram"]
        return [PlotView(_caption(name, kind, f"predicted {dim} per emotion category (shaded: the "
                                  "range the category implies)"), kind,
                         svg.ridges(d["edges"], hists, xlabel=f"predicted {dim}", shades=shades, notes=notes))]
    if kind == "speakers":
        if isinstance(d.get("speakers"), list) and d["speakers"] and isinstance(d["speakers"][0], dict):
            rows = d["speakers"]
            names = [r.get("speaker") for r in rows]
            truth = [r.get("truth") for r in rows]
            pred = [r.get("prediction") for r in rows]
            counts = [r.get("n") for r in rows]
        else:
            names = d.get("speaker", d.get("speakers"))
            truth, pred, counts = d["truth"], d["prediction"], d.get("n")
        flag = float(d.get("flag", 0.2))
        return [PlotView(_caption(name, kind, f"per-speaker averages (○ truth, ● prediction; "
                                  f"gaps over {flag:g} in vermillion)"), kind,
                         svg.speakers(names, truth, pred, flag=flag, counts=counts, ylabel=f"mean {dim}"))]
    if kind == "speaker_shares":
        out = []
        rows = d["speakers"]
        for j, c in enumerate(d["classes"]):
            out.append(PlotView(f"{_title(name)}: share of {c} per speaker (○ truth, ● prediction)",
                                "speakers", svg.speakers(
                                    [r.get("speaker") for r in rows],
                                    [(r.get("truth") or [None] * (j + 1))[j] for r in rows],
                                    [(r.get("prediction") or [None] * (j + 1))[j] for r in rows],
                                    flag=float(d.get("flag", 0.2)), ylabel=f"share of {c}"), group=name))
        return out
    if kind == "rank_series":
        q = float(d.get("quartile", 0.25))
        return [PlotView(f"{_title(name)}{'' if s == 'all' else ': ' + str(s)}: rank of prediction against "
                         f"rank of truth per speaker (boxes: top and bottom {q:.0%})", "rank",
                         svg.ranks(v.get("truth", []), v.get("prediction", []), quartile=q), group=name)
                for s, v in d["series"].items()]
    if kind == "ranks":
        _need(d, "truth", "prediction")
        return [PlotView(_caption(name, "rank", "rank of prediction against rank of truth per "
                                  "speaker (boxes: top and bottom quarter)"), "rank",
                         svg.ranks(d["truth"], d["prediction"]))]
    if kind == "ranks_per_class":
        return [PlotView(f"{_title(name)}: {c}: rank of prediction against rank of truth per "
                         "speaker (boxes: top and bottom quarter)", "rank",
                         svg.ranks(v.get("truth", []), v.get("prediction", [])), group=name)
                for c, v in _members(d)]
    if kind == "speakers_per_class":
        return [PlotView(f"{_title(name)}: share of {c} per speaker (○ truth, ● prediction; gaps "
                         f"over {float(v.get('flag', 0.2)):g} in vermillion)", "speakers",
                         svg.speakers(v["speaker"], v["truth"], v["prediction"],
                                      flag=float(v.get("flag", 0.2)), counts=v.get("n"),
                                      ylabel=f"share of {c}"), group=name)
                for c, v in _members(d)]
    if kind == "categories":
        ridge = _family_ridges(name, d, dim)
        if ridge is None:
            raise ValueError("the categories' histograms do not share their bin edges")
        return [ridge]
    if kind == "shares":
        return [PlotView(_caption(name, "class_proportion", "class shares per series (truth, "
                                  "prediction) or group"), "proportions",
                         svg.proportions(d["groups"]))]
    if kind == "distributions":
        return [PlotView(_caption(name, "distribution", "distribution of predictions per group "
                                  "(box: quartiles, whiskers: 5–95 %, ○ mean)"), "groups",
                         svg.distributions(d["groups"], xlabel=f"predicted {dim}",
                                           reference=d.get("reference")))]
    if kind == "sizes":
        return [PlotView(_caption(name, "group", "items per group"), "bars",
                         svg.bars(d["labels"], d["values"], xlabel=str(d.get("metric") or "items")))]
    if kind == "change":
        tol = float(d.get("tolerance", 0.05))
        out = [PlotView(_caption(name, kind, "change under the perturbation (band: unchanged)"), kind,
                        svg.change(d["clean"], d["perturbed"], tolerance=tol))]
        c, p = svg.paired(d["clean"], d["perturbed"])
        out.append(PlotView(_caption(name, kind, "clean and perturbed predictions"), "histogram",
                            svg.histogram({"clean": c, "perturbed": p}, xlabel=f"predicted {dim}")))
        return out
    if kind == "dose_response":
        metric = d.get("metric", "value")
        thr = d.get("threshold")
        if thr is None and metric in thresholds:
            thr = thresholds[metric]
        xlabel = d.get("parameter", "level") + (f" ({d['unit']})" if d.get("unit") else "")
        series = d.get("series") if isinstance(d.get("series"), dict) else None
        note = None
        if d.get("breakdown") is not None:
            note = f"breakdown point: {d.get('breakdown')}{' ' + str(d['unit']) if d.get('unit') else ''}"
        elif "breakdown" in d:
            note = "no breakdown within the tested range"
        return [PlotView(_caption(name, kind, f"{metric} against {xlabel}"), kind, svg.dose_response(
            d.get("levels", []), d.get("values", []), ci=d.get("ci"), threshold=thr,
            breakdown=d.get("breakdown"), xlabel=xlabel, ylabel=str(metric), series=series,
            labels=d.get("labels")), note=note)]
    if kind == "groups":
        groups = d["groups"]
        combined = d.get("combined")
        if "edges" in d:
            return [PlotView(_caption(name, kind, "distribution of predictions per group (dashed grey: all)"),
                             kind, svg.ridges(d["edges"], groups, combined=combined, xlabel=f"predicted {dim}"))]
        if "classes" in d:
            classes = [str(c) for c in d["classes"]]
            shares = {}
            if combined is not None:
                shares["all"] = dict(zip(classes, combined))
            shares.update({g: dict(zip(classes, v)) for g, v in groups.items()})
            return [PlotView(_caption(name, kind, "predicted class shares per group"), "proportions",
                             svg.proportions(shares))]
        if groups and all(isinstance(v, dict) for v in groups.values()):
            return [PlotView(_caption(name, kind, "class shares per group"), "proportions",
                             svg.proportions(groups))]
        return [PlotView(_caption(name, kind, "distribution per group (box: quartiles, whiskers: 5–95 %, "
                                  "○ mean)"), kind,
                         svg.distributions(groups, xlabel=d.get("xlabel", f"predicted {dim}"),
                                           reference=d.get("reference")))]
    if kind == "group_sizes":
        return [PlotView(_caption(name, kind, "items per group"), "bars",
                         svg.bars([g.get("group") for g in d], [g.get("n") for g in d], xlabel="items"))]
    if kind == "bars":
        metric = d.get("metric")
        thr = d.get("threshold") or (thresholds.get(metric) if metric else None)
        if not isinstance(thr, dict):
            thr = {"op": ">", "value": thr} if isinstance(thr, (int, float)) else None
        if d.get("ci"):
            return [PlotView(_caption(name, kind, str(metric or "values")), "bars",
                             svg.dots_ci(d["labels"], d["values"], d["ci"], threshold=thr,
                                         verdicts=_row_verdicts(verdicts or {}, list(d["labels"]),
                                                                metric),
                                         xlabel=str(metric or "value")))]
        return [PlotView(_caption(name, kind, str(metric or "values")), kind,
                         svg.bars(d["labels"], d["values"], threshold=thr,
                                  xlabel=str(metric or d.get("xlabel", "value"))))]
    if kind == "lines":
        return [PlotView(_title(name), kind, svg.lines(d["x"], d["series"], xlabel=d.get("xlabel", "x"),
                                                       ylabel=d.get("ylabel", "value")))]
    if kind == "worst":
        items = d.get("items") if isinstance(d, dict) else d
        return [PlotView(_caption(name, kind, "items that changed most"), kind, rows=worst_rows(items))]
    if kind == "table":
        return [_table_view(name, d)]
    return [PlotView(_title(name), "unknown", raw=_preview(d),
                     note="no drawing for this kind of plot; its data is shown instead")]


def _table_view(name: str, d: dict) -> PlotView:
    if all(_is_scalar(v) for v in d.values()):
        return PlotView(_title(name), "table", columns=["value"],
                        table=[(str(k), [_cell(v)]) for k, v in d.items()])
    cols: list[str] = []
    for v in d.values():
        cols += [str(k) for k in v if str(k) not in cols]
    return PlotView(_title(name), "table", columns=cols,
                    table=[(str(k), [_cell(v.get(c)) for c in cols]) for k, v in d.items()])


def _cell(v: Any) -> str:
    return svg.fmt(v) if isinstance(v, float) or v is None else str(v)


# -- composite layouts ----------------------------------------------------------------------------

def _robustness(p: dict, dim: str, thresholds: dict, verdicts: dict | None = None) -> list[PlotView]:
    """Fraction unchanged per condition, then per condition the 2-D change histogram (or the
    clean -> condition confusion matrix), the value histograms, and the worst items."""
    views: list[PlotView] = []
    edges = p.get("edges") or {}
    tol = float(p.get("tolerance", 0.05))
    dots = p.get("unchanged") or {}
    if dots.get("labels"):
        thr = thresholds.get("unchanged") or next(
            (v for k, v in thresholds.items() if k.startswith("unchanged")), None)
        metric = "unchanged" if "unchanged" in thresholds else next(
            (k for k in thresholds if k.startswith("unchanged")), None)
        views.append(PlotView(
            "fraction of predictions unchanged per condition (shaded: the threshold's passing "
            "region; colour: the measured verdict)", "unchanged",
            svg.dots_ci(dots["labels"], dots.get("values", []), dots.get("ci"), threshold=thr,
                        verdicts=_row_verdicts(verdicts or {}, list(dots["labels"]), metric,
                                               prefix="unchanged"),
                        xlabel="fraction unchanged")))
    conditions = [c for c in p.get("conditions") or [] if isinstance(c, dict)]
    drawn = _conditions_to_draw(conditions, verdicts or {})
    if len(drawn) < len(conditions):
        views.append(PlotView("per-condition plots", "note", note=(
            f"Per-condition plots are drawn for {len(drawn)} of {len(conditions)} conditions"
            + (": the worst one that did not pass" if len(drawn) == 1 else
               ": those that did not pass, worst first" if drawn else
               ": none, every condition's measurements passed")
            + "; the plot above shows every condition, results.json holds all the plot data.")))
    for c in drawn:
        label = str(c.get("label", "condition"))
        base = "clean" if not c.get("baseline") else condition_label(c.get("baseline"))
        if c.get("reference_recording"):
            base = f"recording {c['reference_recording']}"
        what = f"{label} (n = {c.get('n', '?')}) against {base}"
        try:
            if c.get("hist2d") is not None:
                views.append(PlotView(what, "change", svg.hist2d(
                    c["hist2d"], edges.get("baseline") or [0, 1], edges.get("delta") or [-0.3, 0.3],
                    tolerance=tol, xlabel=f"{base} prediction",
                    ylabel="change", width=320, height=230), group="conditions"))
            elif c.get("confusion"):
                cm = c["confusion"]
                views.append(PlotView(what + ": labels (rows: before, columns: after)", "confusion",
                                      svg.heatmap(cm["matrix"], cm["labels"], cm["labels"],
                                                  xlabel=label, ylabel=base), group="conditions"))
        except Exception as exc:  # noqa: BLE001
            views.append(PlotView(what, "unknown", raw=_preview(c), note=f"could not draw ({exc})"))
        if isinstance(c.get("hist"), dict) and edges.get("value") and c is drawn[0]:
            # the worst condition's predictions before and after (the others: results.json)
            try:
                h = c["hist"]
                views.append(PlotView(f"{label}: predictions {base} and under the condition", "histogram",
                                      svg.binned({base: h.get("baseline", []), label: h.get("condition", [])},
                                                 edges["value"], xlabel=f"predicted {dim}", height=170),
                                      group="distributions"))
            except Exception:  # noqa: BLE001 - the 2-D histogram already shows the change
                pass
    if p.get("worst"):
        views.append(PlotView("items that changed most", "worst", rows=worst_rows(p["worst"])))
    return views


#: per-condition plots drawn per robustness entry (the conditions that did not pass first)
MAX_CONDITION_PLOTS = 1


def _conditions_to_draw(conditions: list[dict], verdicts: dict) -> list[dict]:
    """The conditions worth a plot of their own: those with a failing, then an inconclusive
    (or unjudged) measurement, in document order within each; conditions whose measurements
    all passed (or were skipped) are left to the per-test plot; at most
    :data:`MAX_CONDITION_PLOTS`."""
    rank = {"error": 0, "fail": 0, "inconclusive": 1, "info": 2}
    keyed = []
    for i, c in enumerate(conditions):
        label = str(c.get("label", "condition"))
        mine = [v for (_, g), v in verdicts.items() if g == label]
        if mine and all(v in ("pass", "skipped") for v in mine):
            continue
        keyed.append((min([rank.get(v, 2) for v in mine] or [2]), i, c))
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [c for _, _, c in keyed[:MAX_CONDITION_PLOTS]]


def _dose(p: dict, dim: str, thresholds: dict, verdicts: dict | None = None) -> list[PlotView]:
    """One curve per metric over the levels; the criterion metric shows its limit and the
    breakdown point (with its interval)."""
    views = []
    levels, labels = p.get("levels") or [], p.get("labels")
    unit = p.get("unit") or ""
    param = f"{p.get('parameter', 'level')}" + (f" ({unit})" if unit else "")
    crit = p.get("criterion")
    breakdowns = p.get("breakdown") or {}
    curves = p.get("curves") or {}
    order = sorted(curves, key=lambda m: m != crit)
    for metric in order:
        cur = curves[metric]
        is_crit = metric == crit
        bd = next(iter(breakdowns.values()), None) if is_crit and len(breakdowns) == 1 else None
        notes = []
        if is_crit:
            for side, b in breakdowns.items():
                where = "" if side == "all" else f" ({side})"
                if b.get("value") is not None:
                    notes.append(f"breakdown{where} at {svg.fmt(b['value'], 2)} {unit}".rstrip())
                elif b.get("censored") == "never":
                    notes.append(f"no breakdown{where} within the sweep: {metric} never reached "
                                 f"{svg.fmt(p.get('limit'), 3)}")
                else:
                    notes.append(f"breakdown{where}: {b.get('censored') or 'not measured'}")
        views.append(PlotView(
            f"{metric} against {param}" + (f" (dashed: limit {svg.fmt(p.get('limit'), 3)})" if is_crit else ""),
            "dose_response", svg.dose_response(
                levels, cur.get("values", []), ci=cur.get("ci"), labels=labels,
                threshold=p.get("limit") if is_crit else None,
                breakdown=(bd or {}).get("value"), breakdown_ci=(bd or {}).get("ci"),
                xlabel=param, ylabel=metric), note="; ".join(notes) or None))
    if p.get("worst"):
        views.append(PlotView("items that changed most", "worst", rows=worst_rows(p["worst"])))
    return views


def _search(p: dict, dim: str, thresholds: dict, verdicts: dict | None = None) -> list[PlotView]:
    """The distribution of the items' breakdown levels along the searched axis (censored
    items counted apart), then the items that broke earliest."""
    items = [it for it in p.get("items") or [] if isinstance(it, dict)]
    broken = [float(it["breakdown"]) for it in items
              if not it.get("censored") and finite(it.get("breakdown")) is not None]
    unit = str(p.get("unit") or "")
    what = f"{p.get('parameter') or p.get('axis') or 'level'}" + (f" ({unit})" if unit else "")
    held = len(items) - len(broken)
    note = (f"{len(broken)} of {len(items)} items broke within the searched range; {held} held "
            f"at every level searched (censored, not drawn); {p.get('calls', '?')} model calls "
            f"of a budget of {p.get('budget', '?')}")
    views = [PlotView(f"breakdown point per item along {p.get('axis', 'the axis')}: {what} at "
                      "which the prediction first moved beyond the tolerance", "histogram",
                      svg.histogram({"items": broken}, edges=_level_edges(broken), xlabel=what,
                                    density=False) if broken else None, note=note)]
    if p.get("worst"):
        views.append(PlotView("items that broke at the mildest level", "worst",
                              rows=worst_rows(p["worst"])))
    return views


def _search_pair(p: dict, dim: str, thresholds: dict, verdicts: dict | None = None) -> list[PlotView]:
    """The distribution of the items' breaking severity on the two-axis grid (censored items
    counted apart), then the items that broke at the mildest pair."""
    items = [it for it in p.get("items") or [] if isinstance(it, dict)]
    sev = [float(it["severity"]) for it in items
           if not it.get("censored") and finite(it.get("severity")) is not None]
    axes = " × ".join(f"{a} ({u})" if u else str(a)
                      for a, u in zip(p.get("axes") or [], p.get("units") or []))
    note = (f"{len(sev)} of {len(items)} items broke on the grid of {axes}; "
            f"{len(items) - len(sev)} held everywhere (censored, not drawn); "
            f"{p.get('calls', '?')} model calls of a budget of {p.get('budget', '?')}")
    views = [PlotView("severity of each item's mildest breaking pair (mean share of each axis' "
                      "range covered; 1 = most severe corner)", "histogram",
                      svg.histogram({"items": sev}, edges=[i / 10 for i in range(11)],
                                    xlabel="severity", density=False) if sev else None,
                      note=note)]
    if p.get("worst"):
        views.append(PlotView("items that broke at the mildest pair", "worst",
                              rows=worst_rows(p["worst"])))
    return views


def _metamorphic(p: dict, dim: str, thresholds: dict, verdicts: dict | None = None) -> list[PlotView]:
    """Per expectation the share of items for which it holds (with its interval and the
    measured verdict), the mean change where measured, and the items breaking it furthest."""
    rows = [r for r in p.get("expectations") or [] if isinstance(r, dict)]
    views: list[PlotView] = []
    if rows:
        labels = [str(r.get("label")) for r in rows]
        views.append(PlotView(
            "share of items for which each expectation holds (shaded: the threshold's passing "
            "region; colour: the measured verdict)", "bars",
            svg.dots_ci(labels, [r.get("holds") for r in rows], [r.get("ci") for r in rows],
                        threshold=thresholds.get("holds"),
                        verdicts=_row_verdicts(verdicts or {}, labels, "holds"),
                        xlabel="share holding")))
        moved = [r for r in rows if finite(r.get("mean_change")) is not None]
        if moved:
            views.append(PlotView(f"mean change of predicted {dim} per expectation", "bars",
                                  svg.bars([str(r.get("label")) for r in moved],
                                           [r["mean_change"] for r in moved],
                                           xlabel="mean change")))
        views.append(PlotView("expectations", "table", columns=["relation", "by", "holds", "n"],
                              table=[(str(r.get("label")), [_cell(r.get("relation")),
                                                            _cell(r.get("by")),
                                                            _cell(r.get("holds")),
                                                            _cell(r.get("n"))]) for r in rows]))
    if p.get("worst"):
        views.append(PlotView("items that break an expectation furthest", "worst",
                              rows=worst_rows(p["worst"])))
    return views


def _slices(p: dict, dim: str, thresholds: dict, verdicts: dict | None = None) -> list[PlotView]:
    """The listed slices' error difference with its interval (coloured by the measured
    verdict), and their table: items, speakers, effect, interval, q value, discovered."""
    rows = [r for r in p.get("slices") or [] if isinstance(r, dict)]
    tested = f"{p.get('tested', '?')} slices tested at a false discovery rate of {p.get('fdr', '?')}"
    if not rows:
        return [PlotView("slices", "note", note=f"no slice listed; {tested}")]
    labels = [str(r.get("slice")) for r in rows]
    cis = [[r.get("lo"), r.get("hi")] for r in rows]
    views = [PlotView("mean error inside each slice minus outside it (line: its interval; colour: "
                      "the measured verdict)", "bars",
                      svg.dots_ci(labels, [r.get("effect") for r in rows], cis,
                                  threshold=thresholds.get("slice_error_difference"),
                                  verdicts=_row_verdicts(verdicts or {}, labels,
                                                         "slice_error_difference"),
                                  xlabel="error difference"), note=tested),
             PlotView("slices with the largest error difference", "table",
                      columns=["n", "speakers", "effect", "interval", "q", "effect size",
                               "discovered"],
                      table=[(str(r.get("slice")), [
                          _cell(r.get("n")), _cell(r.get("speakers")), _cell(r.get("effect")),
                          f"[{_cell(r.get('lo'))}, {_cell(r.get('hi'))}]", _cell(r.get("q")),
                          _cell(r.get("effect_size")), "yes" if r.get("discovered") else "no"])
                          for r in rows])]
    return views


def _level_edges(values: list[float], bins: int = 12) -> list[float]:
    """Equal bins over the range of ``values`` (one bin around a single value)."""
    lo, hi = min(values), max(values)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    step = (hi - lo) / bins
    return [lo + i * step for i in range(bins + 1)]


#: drawings of the composite figures (a test's whole ``plots``) by kind
COMPOSITES = {"robustness": _robustness, "dose": _dose, "search": _search,
              "search_pair": _search_pair, "metamorphic": _metamorphic, "slices": _slices}


def _members(d: dict) -> list[tuple[str, dict]]:
    """The members of a family figure (every key but ``kind``)."""
    return [(str(k), v) for k, v in d.items() if k != "kind" and isinstance(v, dict)]


def _need(d: dict, *keys: str) -> None:
    missing = [k for k in keys if not isinstance(d.get(k), list)]
    if missing:
        raise ValueError(f"missing list(s) {', '.join(missing)}")


def _first(it: dict, *keys: str) -> Any:
    for k in keys:
        if it.get(k) is not None:
            return it[k]
    return None


def worst_rows(items: list) -> list[dict[str, Any]]:
    """Normalised rows of a worst-items list: id, condition label and spec, the value before
    (``clean``/``baseline_value``/``baseline_label``) and after, and the change."""
    rows = []
    for it in (items or [])[:MAX_WORST_ROWS]:
        if not isinstance(it, dict):
            continue
        before = _first(it, "clean", "baseline_value", "baseline_label")
        after = _first(it, "perturbed", "condition_value", "condition_label")
        delta = finite(_first(it, "change", "delta"))
        if delta is None and finite(before) is not None and finite(after) is not None:
            delta = finite(after) - finite(before)
        cond = it.get("condition", it.get("spec"))
        spec = condition_spec(cond)
        label = it.get("label") or (f"recording {it['recording']}" if it.get("recording") else None) \
            or condition_label(cond)
        if spec and it.get("label") and spec["name"].split("_")[0] not in str(label):
            label = f"{spec['name']} {label}"  # "-5 dB" -> "white_noise -5 dB"
        rows.append({"id": str(it.get("id", "")), "condition": str(label), "spec": spec,
                     "clean": before, "perturbed": after, "change": delta, "raw": it})
    return rows




def _preview(data: Any) -> str:
    try:
        text = json.dumps(data, indent=1, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(data)
    if len(text) > RAW_PREVIEW_CHARS:
        text = text[:RAW_PREVIEW_CHARS] + f"\n… ({len(text) - RAW_PREVIEW_CHARS:,} more characters)"
    return text
