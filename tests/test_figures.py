"""The figure contract (``sertest.figures``), the metric declarations
(``sertest.checks.metric_info``) and the competence declarations, end to end.

One real audit of the bundled corpus runs every registered check on small subsets with a
random models (``random:gaussian`` for arousal, dominance and valence,
``random:categorical`` for emotion): every plot it
writes must name a known kind and keep that kind's fields, the report must draw every one of
them (no data previews), every metric it emits must be declared, and the same document with
its kinds removed (a ``sertest/results@2`` document) must still be drawn the same way.
"""

from __future__ import annotations

import copy
import importlib

import pytest

from sertest import audit, figures
from sertest.checks import metric_info, verdict
from sertest.checks.base import Check
from sertest.checks.health import ModelHealth
from sertest.checks.registry import registry
from sertest.report import plots as plots_mod
from sertest.report.html import metric_help

EXPECTATIONS = {
    "louder_6db": {"perturbation": {"name": "gain", "gain_db": 6},
                   "expect": {"arousal": "not_decrease", "valence": "unchanged", "by": 0.05}},
    "faint_noise": {"perturbation": {"name": "white_noise", "snr_db": 30}, "expect": "unchanged"},
}

#: every registered check, small (test id -> params)
SUITE = {"name": "figures", "bootstrap": {"n_boot": 20}, "tests": [
    {"test": "correctness_regression"},
    {"test": "correctness_classification"},
    {"test": "correctness_consistency"},
    {"test": "correctness_distribution"},
    # the bundled corpus' speakers share one mean label: let the speaker tests run anyway
    {"test": "correctness_speaker_average",
     "params": {"speaker_difference_p": 1.1, "min_per_class": 1, "min_samples": 4}},
    {"test": "correctness_speaker_ranking", "params": {"speaker_difference_p": 1.1}},
    {"test": "fairness_sex", "params": {"samples": 100}},
    {"test": "fairness_group", "params": {"samples": 100, "columns": ["sex", "language"],
                                          "calibrate": {"simulations": 20}}},
    {"test": "fairness_language", "params": {"samples": 100}},
    {"test": "fairness_slices", "params": {"depth": 1, "min_size": 10, "top": 3}},
    {"test": "robustness_small_changes", "params": {"max_items": 12}},
    {"test": "robustness_dose_noise", "params": {"max_items": 8, "levels": [30, 10]}},
    {"test": "robustness_metamorphic", "params": {"max_items": 12,
                                                  "expectations": EXPECTATIONS}},
    {"test": "robustness_search", "params": {"axis": "snr", "max_items": 4, "budget": 40}},
    {"test": "robustness_search", "name": "robustness_search_pair",
     "params": {"axes": ["snr", "bitrate"], "max_items": 3, "budget": 60}},
]}


@pytest.fixture(scope="module")
def doc():
    res = audit(["random:gaussian", "random:categorical"], None, SUITE, cache=False,
                baselines=False, jobs=1)
    return res.doc


def _entries(doc):
    return [t for t in doc["tests"] if t.get("plots")]


def _figures(plots):
    """(name, figure) of every figure of one entry's plots."""
    if "kind" in plots:
        return [("plots", plots)]
    return list(plots.items())


# -- the contract --------------------------------------------------------------------------

def test_every_plot_of_an_audit_has_a_known_kind(doc):
    seen = set()
    for t in _entries(doc):
        assert figures.problems(t["plots"]) == [], (t["test"], t["dimension"])
        for name, fig in _figures(t["plots"]):
            assert next(iter(fig)) == "kind", (t["test"], name)  # written first
            seen.add(fig["kind"])
    errors = [(t["test"], t["dimension"], t.get("error")) for t in doc["tests"]
              if t["verdict"] == "error"]
    assert not errors
    # every kind of the contract is emitted by some check of this audit
    assert seen == set(figures.KINDS), sorted(set(figures.KINDS) ^ seen)


def test_constructors_refuse_incomplete_or_unknown_figures():
    with pytest.raises(ValueError, match=r"figure 'scatter': missing prediction"):
        figures.figure("scatter", truth=[0.1])
    with pytest.raises(ValueError, match=r"unknown figure kind 'wave'; known: bars"):
        figures.figure("wave", x=[1])
    with pytest.raises(ValueError, match=r"unknown colour .*fields: labels, values, metric"):
        figures.bars(labels=["a"], values=[1.0], colour="red")
    with pytest.raises(ValueError, match=r"figure 'scatter': truth must be a list, not a str"):
        figures.scatter(truth="0.1 0.5", prediction=[0.2, 0.4])
    with pytest.raises(ValueError, match=r"figure 'shares': groups must be a mapping"):
        figures.shares(groups=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"member 'anger' lacks prediction"):
        figures.ranks_per_class({"anger": {"names": ["s1"], "truth": [0.2]}})
    with pytest.raises(ValueError, match=r"may not be named 'kind'"):
        figures.categories({"kind": {"edges": [0, 1], "prediction": [1]}})
    assert figures.problems({"ranks": {"truth": [], "prediction": []}}) == [
        "plot 'ranks' has no kind"]
    assert figures.problems({"kind": "scatter", "truth": [], "prediction": []}) == [
        "plots: kind 'scatter' is not a whole test's plots"]


# -- the renderer ----------------------------------------------------------------------------

def _views(t):
    thresholds = {m["metric"]: m["threshold"] for m in t["measurements"] if m.get("threshold")}
    return plots_mod.render_plots(t["plots"], dimension=t["dimension"], thresholds=thresholds,
                                  measurements=t["measurements"])


def test_the_renderer_draws_every_figure_by_its_kind(doc, monkeypatch):
    def no_guessing(name, data):
        raise AssertionError(f"guessed the kind of {name!r} in a results@3 document")

    monkeypatch.setattr(plots_mod, "legacy_kind", no_guessing)
    for t in _entries(doc):
        views = _views(t)
        assert views, (t["test"], t["dimension"])
        bad = [(v.title, v.note) for v in views if v.kind == "unknown" or v.raw is not None]
        assert not bad, (t["test"], t["dimension"], bad)


def test_search_metamorphic_and_slices_get_their_own_drawings(doc):
    by_test = {}
    for t in _entries(doc):
        by_test.setdefault(t["test"], t)
    search = _views(by_test["robustness_search"])
    assert search[0].title.startswith("breakdown point per item along snr")
    assert "model calls of a budget of 40" in search[0].note
    pair = _views(by_test["robustness_search_pair"])
    assert pair[0].title.startswith("severity of each item's mildest breaking pair")
    assert "snr (dB) × bitrate" in pair[0].note
    meta = _views(by_test["robustness_metamorphic"])
    kinds = [v.kind for v in meta]
    assert kinds[0] == "bars" and "expectation holds" in meta[0].title
    assert "louder_6db" in str(meta[0].svg) and "faint_noise" in str(meta[0].svg)
    table = next(v for v in meta if v.kind == "table")
    assert [row for row, _ in table.table] == ["louder_6db", "faint_noise"]
    slices = _views(by_test["fairness_slices"])
    table = next(v for v in slices if v.kind == "table")
    assert table.columns[:4] == ["n", "speakers", "effect", "interval"]
    listed = by_test["fairness_slices"]["plots"]["slices"]
    assert [row for row, _ in table.table] == [r["slice"] for r in listed]
    assert all(cells[3].startswith("[") for _, cells in table.table)


def test_an_unknown_kind_is_shown_as_data_with_a_note():
    views = plots_mod.render_plots({"wave": {"kind": "wave", "x": [1, 2]}})
    assert len(views) == 1 and views[0].kind == "unknown" and "x" in views[0].raw
    views = plots_mod.render_plots({"kind": "hologram", "x": 1})
    assert "no drawing for figure kind 'hologram'" in views[0].note


def _strip_kinds(plots):
    """The plots as a results@2 document held them: no kind on named figures."""
    plots = copy.deepcopy(plots)
    if plots.get("kind") in figures.COMPOSITE_KINDS:
        return plots  # composites carried their kind before results@3 too
    for fig in plots.values():
        fig.pop("kind", None)
    return plots


def test_a_results2_document_still_renders_the_same_drawings(doc):
    for t in _entries(doc):
        old = dict(t, plots=_strip_kinds(t["plots"]))
        new_views, old_views = _views(t), _views(old)
        assert [v.kind for v in old_views] == [v.kind for v in new_views], t["test"]
        assert all(v.kind != "unknown" for v in old_views), t["test"]


def test_a_results2_document_renders_as_html(doc):
    from sertest.report import html
    from sertest.results import Results

    old = copy.deepcopy(doc)
    old["schema"] = "sertest/results@2"
    for t in old["tests"]:
        if t.get("plots"):
            t["plots"] = _strip_kinds(t["plots"])
    page = html.render(Results(old))
    assert "no drawing for this kind of plot" not in page
    assert "could not draw" not in page


# -- metric declarations ---------------------------------------------------------------------

def _declared_by_checks() -> set[str]:
    names = {m for cls in registry().values() for m in cls.metrics}
    return names | set(ModelHealth.metrics)


def test_every_emitted_metric_is_declared(doc):
    emitted = {m["metric"] for t in doc["tests"] for m in t["measurements"]}
    assert emitted - set(metric_info.METRICS) == set()
    assert emitted - _declared_by_checks() == set(), "a check emits a metric it does not list"
    for metric in emitted:
        assert metric_help(metric) == metric_info.METRICS[metric].help != ""


def test_every_declaration_names_a_metric_a_check_emits():
    declared = set(metric_info.METRICS)
    assert declared - _declared_by_checks() == set(), "declared, but no check emits it"
    assert _declared_by_checks() - declared == set(), "a check's metric has no declaration"
    for info in metric_info.METRICS.values():
        assert info.better in ("higher", "lower", "closer to 0", "further from 0",
                               "more severe", "none"), info.name
        assert info.unit and info.measures


# -- competence declarations -----------------------------------------------------------------

def test_competence_is_declared_by_the_correctness_checks():
    assert verdict.competence_checks() == {
        "regression": ("correctness_regression", "ccc"),
        "classification": ("correctness_classification", "uar")}
    assert verdict.COMPETENCE == verdict.competence_checks()  # the older name


def test_two_competence_declarations_for_one_kind_are_refused(monkeypatch):
    registry_mod = importlib.import_module("sertest.checks.registry")

    class Rival(Check):
        id = "rival_regression"
        kinds = ("regression",)
        metrics = {"pcc": "> 0.5"}
        competence = "pcc"

    registry()  # the built-in checks first
    monkeypatch.setitem(registry_mod._REGISTRY, Rival.id, Rival)
    with pytest.raises(TypeError, match="'correctness_regression' and 'rival_regression'|"
                                        "'rival_regression' and 'correctness_regression'"):
        verdict.competence_checks()


def test_a_subclass_does_not_inherit_the_competence_declaration(monkeypatch):
    registry_mod = importlib.import_module("sertest.checks.registry")

    class Variant(registry()["correctness_regression"]):
        id = "correctness_regression_variant"

    monkeypatch.setitem(registry_mod._REGISTRY, Variant.id, Variant)
    assert verdict.competence_checks()["regression"] == ("correctness_regression", "ccc")
