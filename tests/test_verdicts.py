"""The judge and the statistics layer: paired resamples, simultaneous bands, power, gating,
informativeness, and paired comparisons between audits."""

from __future__ import annotations

import re
import doctest
import os

import numpy as np
import pytest

from sertest import audit, stats
from sertest.checks.base import Measurement
from sertest.checks.verdict import Threshold, judge_audit, judge_entry
from sertest.report.compare import compare


def _cells(values, se, rng, threshold="abs < 0.1", n_boot=400, n=100):
    """Cells with joint (same-row) normal replicates around their values."""
    th = Threshold.parse(threshold)
    noise = rng.standard_normal((n_boot, len(values))) * se
    out = []
    for j, v in enumerate(values):
        reps = v + noise[:, j]
        out.append(Measurement("d", float(v), slice={"group": f"g{j}"}, n=n, threshold=th,
                               ci=stats.percentile_interval(reps, 0.95), replicates=reps))
    return out


def test_stats_doctests():
    for mod in (stats.bootstrap, stats.inference):
        assert doctest.testmod(mod).failed == 0


def test_simultaneous_band_controls_false_alarms_over_many_cells():
    """30 cells whose true value sits exactly at the threshold: per-cell intervals would
    fail a test in about 1 - 0.975^30 = 53 % of data sets; the band keeps it near 5 %."""
    rng = np.random.default_rng(0)
    fails = marginal_fails = 0
    runs = 200
    for _ in range(runs):
        se = 0.02
        values = 0.1 + rng.standard_normal(30) * se  # truth at the limit 0.1
        cells = _cells(values, se, rng)
        fields = judge_entry(cells, lambda m: None)
        fails += fields["verdict"] == "fail"
        marginal_fails += any(c.ci[0] > 0.1 for c in cells)
        assert fields["multiplicity"]["comparisons"] == 30
    assert marginal_fails / runs > 0.3
    assert fails / runs <= 0.08


def test_pass_needs_every_marginal_interval_inside_and_power_flags_weak_cells():
    rng = np.random.default_rng(1)
    good = _cells(np.zeros(4), 0.01, rng)
    fields = judge_entry(good, lambda m: None)
    assert fields["verdict"] == "pass"
    assert all(not c.power["underpowered"] and c.power["mde"] > 0 for c in good)
    # breakdown cells (one bin of a group) that cannot tell may be left out of a pass...
    weak = _cells(np.zeros(2), 0.05, rng) + _cells(np.zeros(2), 0.01, rng)
    for c in weak[:2]:
        c.extra["bin"] = "(0.75, inf)"
    fields = judge_entry(weak, lambda m: None)
    assert [c.power["underpowered"] for c in weak] == [True, True, False, False]
    assert fields["verdict"] == "pass"  # rests on the two cells that can tell
    flag = next(f for f in fields["flags"] if f["kind"] == "underpowered")
    assert "2 of 4" in flag["text"] and "items per group" in flag["text"]
    assert "left out" in flag["text"]
    # two breakdown cells must pass together with 80 %: each is planned for 0.8 ** 0.5, so
    # (1.96 + z(0.947))^2 * 0.05^2 / 0.1^2 * 100 items = (1.96 + 1.62)^2 * 25 = about 320
    assert 300 < weak[0].power["needs_n"] < 345
    # ... but never a primary cell (a group's mean error, a condition's change): a pass must
    # rest on data that could tell
    primary = _cells(np.zeros(2), 0.05, rng) + _cells(np.zeros(2), 0.01, rng)
    fields = judge_entry(primary, lambda m: None)
    assert fields["verdict"] == "inconclusive"
    assert fields["failed_because"].startswith("cannot tell (underpowered)")
    # an underpowered breakdown cell is noise of its own size: left out even when its value
    # lies beyond the limit, unless its simultaneous interval does too
    beyond = _cells([0.12], 0.05, rng) + _cells(np.zeros(2), 0.01, rng)
    beyond[0].extra["bin"] = "(0.75, inf)"
    assert judge_entry(beyond, lambda m: None)["verdict"] == "pass"
    far = _cells([0.5], 0.05, rng) + _cells(np.zeros(2), 0.01, rng)
    far[0].extra["bin"] = "(0.75, inf)"
    assert judge_entry(far, lambda m: None)["verdict"] == "fail"


def test_failed_because_names_the_failing_cell_not_the_first():
    rng = np.random.default_rng(2)
    cells = _cells([0.0, 0.0, 0.0, 0.4], 0.01, rng)
    fields = judge_entry(cells, lambda m: None)
    assert fields["verdict"] == "fail" and fields["failed_because"].startswith("g3: d 0.4")


def test_a_value_whose_bootstrap_gave_no_interval_never_passes_on_its_point():
    """Replicates mostly undefined (e.g. a bin rarely predicted, a nearly constant model):
    the value passes the threshold, but without an interval it is inconclusive."""
    reps = np.full(200, np.nan)
    reps[:50] = 0.01
    m = Measurement("d", 0.0, n=40, threshold=Threshold.parse("abs < 0.1"),
                    ci=stats.percentile_interval(reps, 0.95), replicates=reps)
    assert m.ci is None
    fields = judge_entry([m], lambda _: None)
    assert m.verdict == "inconclusive" and fields["verdict"] == "inconclusive"
    assert "no confidence interval: undefined in more than 10%" in m.extra["reason"]
    # without a bootstrap at all (n_boot 0) the point value is all there is
    bare = Measurement("d", 0.0, n=40, threshold=Threshold.parse("abs < 0.1"))
    assert judge_entry([bare], lambda _: None)["verdict"] == "pass"


def _incompetent_with_fairness(verdict: str) -> list[dict]:
    """Model ``m`` failing clean CCC on arousal, and its fairness_sex entry."""
    return [
        {"test": "correctness_regression", "check": "correctness_regression",
         "topic": "correctness", "model": "m", "dimension": "arousal", "verdict": "fail",
         "measurements": [{"metric": "ccc", "group": None, "value": 0.1, "verdict": "fail",
                           "threshold": {"text": "> 0.5"}}]},
        {"test": "fairness_sex", "check": "fairness_sex", "topic": "fairness", "model": "m",
         "dimension": "arousal", "verdict": verdict, "measurements": []}]


def test_summary_counts_a_skipped_entry_of_an_incompetent_model_as_skipped():
    from sertest.results import summarise

    tests = [
        *_incompetent_with_fairness("skipped"),
        {"test": "robustness_codecs", "check": "robustness_codecs", "topic": "robustness",
         "model": "m", "dimension": "arousal", "verdict": "pass",  # a results@1 entry
         "measurements": [{"metric": "unchanged", "group": "gsm", "verdict": "pass"}]},
    ]
    doc = {"models": [{"name": "m", "role": "candidate"}], "tests": tests}
    s = summarise(doc)["models"]["m"]
    assert s["counts"]["skipped"] == 1 and s["counts"]["gated"] == 1
    assert s["counts"]["pass"] == 0 and s["competent"] == {"arousal": False}
    assert s["topics"]["robustness"] == 0.0


def test_censored_value_is_judged_from_its_bounds():
    m = Measurement("breakdown_snr_db", float("nan"), extra={"known_between": [-5, -10]},
                    threshold=Threshold.parse("< 10"))
    assert judge_entry([m], lambda _: None)["verdict"] == "pass"


def test_gating_and_uninformative_flags():
    tests = [
        *_incompetent_with_fairness("pass"),
        {"test": "correctness_speaker_average", "check": "correctness_speaker_average",
         "topic": "correctness", "model": "m", "dimension": "arousal", "verdict": "pass",
         "measurements": []},
        {"test": "correctness_speaker_average", "check": "correctness_speaker_average",
         "topic": "correctness", "model": "constant", "dimension": "arousal",
         "verdict": "pass", "measurements": []},
    ]
    judge_audit(tests, {"m": "candidate", "constant": "baseline"})
    assert tests[1]["verdict"] == "gated" and tests[1]["judged_verdict"] == "pass"
    assert "not competent on arousal" in tests[1]["reason"]
    assert tests[0]["verdict"] == "fail"  # correctness is never gated
    assert any(f["kind"] == "uninformative" and "constant" in f["text"]
               for f in tests[2]["flags"])


@pytest.fixture()
def two_copies(tiny_data, onnx_model, tmp_path):
    suite = {"name": "pairs", "bootstrap": {"n_boot": 100}, "tests": [
        "correctness_regression",
        {"test": "fairness_sex", "params": {"min_samples": 2}},
        {"test": "robustness_spectral_tilt"}]}
    out_a, out_b = str(tmp_path / "a"), str(tmp_path / "b")
    res = audit([f"first={onnx_model}", f"second={onnx_model}"], str(tiny_data), suite,
                cache=False, out=out_a, renderers=())
    single = audit([f"other={onnx_model}"], str(tiny_data), suite, cache=False, out=out_b,
                   renderers=())
    return res, single, out_a, out_b


def _strip(entry):
    return [{k: v for k, v in m.items()} for m in entry["measurements"]]


def test_two_copies_of_one_model_get_identical_numbers_and_a_constant_never_passes(two_copies):
    res, single, _, _ = two_copies
    first = {(t["test"], t["dimension"]): t for t in res.tests if t["model"] == "first"}
    second = {(t["test"], t["dimension"]): t for t in res.tests if t["model"] == "second"}
    other = {(t["test"], t["dimension"]): t for t in single.tests if t["model"] == "other"}
    assert first.keys() == second.keys() == other.keys()
    judged = 0
    for key in first:
        assert _strip(first[key]) == _strip(second[key]) == _strip(other[key]), key
        assert first[key]["verdict"] == second[key]["verdict"] == other[key]["verdict"]
        judged += sum(m["ci"] is not None for m in first[key]["measurements"])
    assert judged > 10
    constant = [t for t in res.tests if t["model"] == "constant"]
    assert constant and not any(t["verdict"] == "pass" for t in constant
                                if t["test"] != "model_health")


def test_compare_reports_paired_p_values(tiny_data, onnx_model, tmp_path):
    from sertest.report.compare import build, load_run
    from tests.helpers import make_onnx_model

    worse = make_onnx_model(str(tmp_path / "w.onnx"), labels=("valence", "arousal", "dominance"))
    suite = {"name": "pairs", "bootstrap": {"n_boot": 200}, "tests": ["correctness_regression"]}
    outs = {}
    for label, path in (("base", onnx_model), ("same", onnx_model), ("worse", worse)):
        outs[label] = str(tmp_path / label)
        audit([f"m={path}"], str(tiny_data), suite, cache=False, out=outs[label],
              renderers=(), baselines=False)
    assert os.path.exists(os.path.join(outs["base"], "replicates.npz"))
    runs = [load_run(outs["base"]), load_run(outs["same"]), load_run(outs["worse"])]
    (mc,) = build(runs)
    ccc = next(r for r in mc.rows if r.dimension == "arousal" and r.metric == "ccc")
    same, worse_cell = ccc.cells
    assert same.delta == 0 and same.p_value == 1.0
    assert worse_cell.delta < -0.3 and worse_cell.p_value < 0.01 and worse_cell.clear
    assert worse_cell.q_value >= worse_cell.p_value
    paths = compare([outs["base"], outs["worse"]], str(tmp_path / "cmp"))
    md = open(paths[1], encoding="utf-8").read()
    assert "paired bootstrap p-value" in md and "p=" in md


def test_confounds_one_speaker_group_at_another_bandwidth_are_flagged(tmp_path, onnx_model):
    """One female speaker recorded at 8 kHz, male speakers at 16 kHz: fairness_sex names
    both confounds next to its verdict."""
    import pandas as pd
    import soundfile as sf

    rng = np.random.default_rng(5)
    rows = []
    for i in range(48):
        female = i % 2 == 0
        sr = 8000 if female else 16000
        x = (0.05 + 0.2 * rng.random()) * rng.standard_normal(int(sr * 0.8))
        sf.write(tmp_path / f"x{i}.wav", x.astype("float32"), sr)
        rows.append(dict(id=f"x{i:02d}", file=f"x{i}.wav", sex="female" if female else "male",
                         speaker="f0" if female else f"m{i % 6}", arousal=rng.random(),
                         dominance=rng.random(), valence=rng.random()))
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    suite = {"name": "conf", "bootstrap": {"n_boot": 50},
             "tests": [{"test": "fairness_sex", "params": {"min_samples": 2}}]}
    res = audit([f"m={onnx_model}"], str(tmp_path / "manifest.csv"), suite, cache=False,
                baselines=False)
    (entry,) = [t for t in res.tests if t["test"] == "fairness_sex" and t["dimension"] == "valence"]
    texts = [f["text"] for f in entry.get("flags", []) if f["kind"] == "confound"]
    assert any("'female' is one speaker" in t for t in texts), texts
    assert any("bandwidth" in t and re.search(r"female: median [34]\.\d kHz, 100 % narrowband", t)
               for t in texts), texts


def test_baseline_gate_flags_a_vanished_measurement():
    from sertest.pytest_baseline import Baseline, format_regressions, parse_rules

    suite = {"measurements": {
        "correctness_regression | m | arousal | ccc": {"value": 0.70, "n": 480,
                                                      "direction": "higher"},
        "correctness_regression | m | arousal | mae": {"value": 0.09, "n": 480,
                                                      "direction": "lower"}}}
    entry = {"test": "correctness_regression", "model": "m", "dimension": "arousal",
             "measurements": [{"metric": "ccc", "group": None, "value": 0.70, "n": 480},
                              {"metric": "mae", "group": None, "value": None, "n": 0}]}
    deltas = Baseline("x").compare(entry, suite, "m", parse_rules(["*:-0.02"]))
    gone = [d for d in deltas if d.vanished]
    assert [d.metric for d in gone] == ["mae"] and gone[0].regressed
    assert "missing" in format_regressions(deltas)
    # not gated by any rule: shown, never failed
    (free,) = [d for d in Baseline("x").compare(entry, suite, "m", []) if d.vanished]
    assert not free.regressed


@pytest.mark.parametrize("metric", ["ccc", "pcc"])
@pytest.mark.parametrize("constant", ["prediction", "truth"])
def test_vectorised_bootstrap_of_a_constant_series_equals_the_exact_one(metric, constant):
    """The fast path for a constant series (the constant baseline) matches the metric
    computed on every resample, including rows where both series turn constant."""
    from sertest import metrics

    fn = getattr(metrics, metric)
    rng = np.random.default_rng(4)
    t = np.round(rng.random(6), 1)
    t[:4] = 0.5  # resamples drawing only these items make the truth constant too
    c = np.full(6, 0.5)
    x, y = (t, c) if constant == "prediction" else (c, t)
    fast = stats.replicates(fn, x, y, n_boot=300, rng=np.random.default_rng(9))
    slow = stats.replicates(lambda a, b: fn(a, b), x, y, n_boot=300,
                            rng=np.random.default_rng(9))
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
    np.testing.assert_allclose(fast[~np.isnan(fast)], slow[~np.isnan(slow)])
