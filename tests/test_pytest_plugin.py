"""The pytest plugin end to end: inner pytest sessions (pytester) on small real ONNX models.

Models: ``good`` (tests.helpers.make_onnx_model: arousal = 3 x RMS, dominance = 50 x mean +
0.5, valence = peak, which the synthetic labels follow exactly), ``flat`` (planted defect:
a constant output) and ``worse`` (arousal = 2 x RMS + 0.08: still above the suite's
thresholds, but a clear regression against ``good``).  Inner sessions run in-process (with
``-n 2`` the controller runs in-process and its two workers in subprocesses).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from sertest import audit
from sertest.models import load_model
from sertest.pytest_baseline import (Baseline, CompareRule, Delta, direction, dumps,
                                     measurement_key, rule_for, worsening)
from sertest.pytest_plugin import looks_like_suite
from tests.helpers import make_onnx_model

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "model-ci"
SUITE = """\
name: mini
bootstrap: {n_boot: 50}
tests:
  - test: correctness_regression
    thresholds: {ccc: "> 0.5", pcc: "> 0.5", mae: "< 0.1"}
"""
AROUSAL_SUITE = SUITE.replace("name: mini", "name: mini-arousal\ntargets: [arousal]")
SUITE_DOC = {"name": "mini", "bootstrap": {"n_boot": 50},
             "tests": [{"test": "correctness_regression"}]}
XDIST = [pytest.param(False, id="serial"), pytest.param(True, id="xdist")]


# -- assets ---------------------------------------------------------------------------------
def _affine_rms_model(path: Path, scale: float, offset: float) -> str:
    """arousal = scale x RMS + offset (scale 0: a constant output, the planted defect)."""
    inp = helper.make_tensor_value_info("signal", TensorProto.FLOAT, ["batch", "time"])
    out = helper.make_tensor_value_info("arousal_out", TensorProto.FLOAT, ["batch", 1])
    nodes = [helper.make_node("Mul", ["signal", "signal"], ["sq"]),
             helper.make_node("ReduceMean", ["sq", "axes"], ["ms"], keepdims=1),
             helper.make_node("Sqrt", ["ms"], ["rms"]),
             helper.make_node("Mul", ["rms", "scale"], ["scaled"]),
             helper.make_node("Add", ["scaled", "offset"], ["arousal_out"])]
    inits = [helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
             helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]),
             helper.make_tensor("offset", TensorProto.FLOAT, [], [offset])]
    graph = helper.make_graph(nodes, "affine_rms", [inp], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "labels", json.dumps({"arousal_out": ["arousal"]})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("plugin-assets")
    rng = np.random.default_rng(7)
    (root / "audio").mkdir()
    rows = []
    for i in range(24):
        n = 4000  # 0.25 s at 16 kHz
        t = np.arange(n) / 16000
        x = (rng.uniform(0.03, 0.3) * np.sin(2 * np.pi * rng.uniform(100, 300) * t)
             + rng.uniform(-0.004, 0.004) + 0.004 * rng.standard_normal(n)).astype("float32")
        sf.write(root / "audio" / f"a{i}.wav", x, 16000, subtype="FLOAT")
        x64 = x.astype(np.float64)
        rows.append(dict(id=f"i{i:02d}", file=f"audio/a{i}.wav", speaker=f"s{i % 6}",
                         arousal=3 * math.sqrt(np.mean(x64 ** 2)),
                         dominance=50 * np.mean(x64) + 0.5, valence=np.max(np.abs(x64))))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    out = {"good": make_onnx_model(str(root / "good.onnx")),
           "flat": _affine_rms_model(root / "flat.onnx", 0.0, 0.5),
           "worse": _affine_rms_model(root / "worse.onnx", 2.0, 0.08),
           "data": str(root / "manifest.csv"), "cache": str(root / "cache")}
    # One audit in this process first: it checks the premise (the labels follow the good
    # model, not the defective one) and imports every module an audit needs, so that the
    # in-process inner sessions never re-import C extensions (pytester drops the modules
    # an inner session imported).
    res = audit([out["good"], out["flat"], out["worse"]], out["data"], SUITE_DOC,
                out=str(root / "warm"), cache=out["cache"])
    assert res.result("correctness_regression", "good", "arousal").passed
    assert res.result("correctness_regression", "flat", "arousal").verdict == "fail"
    ccc = next(m for m in res.result("correctness_regression", "worse").measurements()
               if m["metric"] == "ccc")
    out["worse_ccc_ci"] = tuple(ccc["ci"])  # same data, seed, n_boot and name as inner runs
    return out


#: leaves out the per-model model_health items, so counts below are the suite's tests alone
NO_HEALTH = ("-k", "not model_health")


def _run(pytester: pytest.Pytester, *args: str, xdist: bool = False,
         health: bool = False) -> pytest.RunResult:
    args = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-rfs",
            *(() if health else NO_HEALTH), *args)
    if xdist:  # the controller runs in-process, the two workers are subprocesses
        args = ("-n", "2", *args)
    return pytester.runpytest_inprocess(*args)


def _common(assets: dict[str, str]) -> list[str]:
    # --opt=value: pytest takes separate values that are existing paths into its rootdir guess
    return [f"--sertest-data={assets['data']}", f"--sertest-cache={assets['cache']}"]


def _suites(pytester: pytest.Pytester) -> None:
    """The test suites, inside the inner session's rootdir (so .sertest/ lands there)."""
    pytester.makefile(".yaml", mini=SUITE, **{"mini-arousal": AROUSAL_SUITE})


def _copy_example(pytester: pytest.Pytester) -> None:
    for name in ("pyproject.toml", "model-ci.yaml", "test_model_behaviour.py"):
        shutil.copy(EXAMPLE / name, pytester.path / name)


def _cases(path: Path) -> list[ET.Element]:
    return list(ET.parse(path).getroot().iter("testcase"))


def _props(case: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in case.iter("property")}


# -- inert without a model ------------------------------------------------------------------
def test_plugin_is_inert_without_a_model(pytester: pytest.Pytester):
    pytester.makefile(".yaml", suite=SUITE, workflow="name: ci\non: [push]\njobs: {}\n")
    pytester.makepyfile(test_plain="""
        def test_plain():
            assert True

        def test_uses_model(ser_model):
            raise AssertionError("must be skipped without a model")
    """)
    result = _run(pytester)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*no model configured*"])
    result.stdout.no_fnmatch_line("*suite.yaml*")
    result.stdout.no_fnmatch_line("*== sertest ==*")
    # a suite named explicitly without a model is an error that says what is missing
    named = _run(pytester, "suite.yaml")
    assert named.ret != 0
    named.stdout.fnmatch_lines(["*is a sertest suite, but no model is configured*"])
    # importing the plugin stays cheap: no numpy, pandas, onnxruntime, yaml
    code = ("import sys, sertest.pytest_plugin; "
            "print([m for m in ('numpy', 'pandas', 'onnxruntime', 'yaml', 'sertest.engine') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_suite_files_are_recognised_by_content(tmp_path):
    cases = {"suite.yaml": SUITE, "short.yml": "tests: [correctness_regression]\n",
             "workflow.yaml": "name: ci\non: [push]\njobs: {}\n",
             "tests-but-more.yaml": "tests: [a]\nservices: {}\n",
             "list.yaml": "- tests\n- b\n", "bad.yaml": "tests: [unclosed\n",
             "tests-of-numbers.yaml": "tests: [1, 2]\n"}
    found = set()
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        if looks_like_suite(tmp_path / name):
            found.add(name)
    assert found == {"suite.yaml", "short.yml"}


# -- the example project ----------------------------------------------------------------------
@pytest.mark.parametrize("xdist", XDIST)
def test_example_project_passes_sound_model_and_fails_defect(pytester, assets, xdist):
    _copy_example(pytester)
    common = _common(assets)
    good = _run(pytester, f"--sertest-model={assets['good']}", *common, xdist=xdist)
    good.assert_outcomes(passed=3)  # 1 suite item (arousal) + 2 hand-written tests
    good.stdout.fnmatch_lines(["*== sertest ==*", "passed*correctness_regression*good*arousal*pass*"])
    assert (pytester.path / "sertest-results" / "results.json").is_file()  # out from toml

    flat = _run(pytester, f"--sertest-model={assets['flat']}", *common, xdist=xdist)
    assert flat.ret == 1
    flat.assert_outcomes(passed=1, failed=2)
    text = flat.stdout.str()
    assert "correctness_regression for model 'flat' on arousal" in text
    ccc_line = next(line for line in text.splitlines() if line.strip().startswith("ccc = "))
    value = float(ccc_line.split("=")[1].split(",")[0])
    assert value < 0.5 and "threshold > 0.5 -> fail" in ccc_line
    assert "FAILED test_model_behaviour.py::test_arousal_correctness_holds" in text


# -- JUnit ------------------------------------------------------------------------------------
@pytest.mark.parametrize("xdist", XDIST)
def test_junit_has_one_case_per_test_model_dimension(pytester, assets, xdist):
    _suites(pytester)
    junit = pytester.path / "junit.xml"
    res = _run(pytester, f"--sertest-model={assets['good']}", f"--sertest-model={assets['flat']}",
               *_common(assets), "mini.yaml", f"--junitxml={junit}", xdist=xdist)
    expected = {("correctness_regression", load_model(spec).name, dim)
                for spec in (assets["good"], assets["flat"])
                for dim in load_model(spec).dimensions}
    assert len(expected) == 4
    cases = _cases(junit)
    got = [(_props(c)["sertest.test"], _props(c)["sertest.model"], _props(c)["sertest.dimension"])
           for c in cases]
    assert sorted(got) == sorted(expected)  # one case each, no random baselines
    failed = {_props(c)["sertest.model"] for c in cases if c.find("failure") is not None}
    assert failed == {"flat"} and res.ret == 1
    for c in cases:
        p = _props(c)
        assert p["sertest.verdict"] in ("pass", "fail")
        assert 0 <= float(p["mae"]) < 1
        if p["sertest.model"] == "good":
            assert float(p["ccc"]) > 0.9


# -- baselines ----------------------------------------------------------------------------------
@pytest.mark.parametrize("xdist", XDIST)
def test_baseline_update_then_compare_fail_catches_regression(pytester, assets, xdist):
    _suites(pytester)
    common = [*_common(assets), "mini-arousal.yaml"]
    baseline = pytester.path / ".sertest" / "baseline.json"
    upd = _run(pytester, f"--sertest-model=cand={assets['good']}", *common,
               "--sertest-update-baseline", xdist=xdist)
    upd.assert_outcomes(passed=1)
    upd.stdout.fnmatch_lines([f"baseline updated: {baseline}"])
    doc = json.loads(baseline.read_text())
    stored = doc["suites"]["mini-arousal"]["measurements"]
    key = measurement_key("correctness_regression", "cand", "arousal", "ccc")
    assert stored[key]["direction"] == "higher" and stored[key]["value"] > 0.9
    lines = [ln for ln in baseline.read_text().splitlines() if '"value"' in ln]
    assert len(lines) == len(stored)  # one measurement per line
    assert sum(k.startswith("correctness_regression |") for k in stored) == 3

    rules = ["--sertest-compare-fail", "ccc:-0.02", "--sertest-compare-fail", "mae:0.01"]
    reg = _run(pytester, f"--sertest-model=cand={assets['worse']}", *common, *rules,
               xdist=xdist)
    assert reg.ret == 1
    reg.assert_outcomes(failed=1)
    text = reg.stdout.str()
    assert "regressed against the baseline" in text
    row = next(ln.split() for ln in text.splitlines() if ln.strip().startswith("ccc "))
    base_v, new_v, delta = float(row[1]), float(row[2]), float(row[3])
    assert base_v == pytest.approx(stored[key]["value"], abs=1e-3)
    assert new_v < base_v - 0.02 and delta == pytest.approx(new_v - base_v, abs=2e-3)
    assert "-0.02 (ccc:-0.02)" in text
    # the suite's own thresholds still pass: the failure is the regression alone
    reg.stdout.fnmatch_lines(["failed*correctness_regression*cand*arousal*pass*"])

    if not xdist:  # within a generous tolerance the same model passes
        ok = _run(pytester, f"--sertest-model=cand={assets['worse']}", *common,
                  "--sertest-compare-fail", "*:-0.9")
        ok.assert_outcomes(passed=1)


def test_improvements_never_fail(pytester, assets):
    _suites(pytester)
    common = [*_common(assets), "mini-arousal.yaml"]
    _run(pytester, f"--sertest-model={assets['worse']}", *common,
         "--sertest-update-baseline").assert_outcomes(passed=1)
    # a better model under a zero tolerance (renamed file: the single stored model is used)
    better = _run(pytester, f"--sertest-model={assets['good']}", *common,
                  "--sertest-compare-fail", "*:0", "--junitxml=j.xml")
    better.assert_outcomes(passed=1)
    props = _props(_cases(pytester.path / "j.xml")[0])
    assert props["sertest.baseline"] == "compared" and props["sertest.regressions"] == "0"
    assert float(props["ccc.delta"]) > 0 and float(props["mae.delta"]) < 0


# -- settings ----------------------------------------------------------------------------------
def test_settings_from_ini_and_tool_sertest(pytester, assets):
    pytester.makefile(".yaml", s=AROUSAL_SUITE)
    pytester.makeini(f"""
        [pytest]
        sertest_model = one={assets['good']}
            two={assets['flat']}
        sertest_suite = s.yaml
        sertest_data = {assets['data']}
        sertest_cache = {assets['cache']}
        sertest_seed = 3
    """)
    res = _run(pytester, "--collect-only", "-q", health=True)
    res.stdout.fnmatch_lines(["*s.yaml::correctness_regression[[]one-arousal[]]",
                              "*s.yaml::correctness_regression[[]two-arousal[]]",
                              "*s.yaml::model_health[[]one-all[]]",
                              "*s.yaml::model_health[[]two-all[]]"])
    hand_only = _run(pytester, "--collect-only", "-q", "-m", "not sertest")
    hand_only.stdout.no_fnmatch_line("*s.yaml::*")
    header = _run(pytester, "--collect-only", "--sertest-seed", "5",
                  f"--sertest-model={assets['good']}")
    header.stdout.fnmatch_lines(["sertest: models *good.onnx; suite *s.yaml;*seed 5"])

    tool = pytester.path / "tool"
    tool.mkdir()
    (tool / "s.yaml").write_text(AROUSAL_SUITE)
    (tool / "pyproject.toml").write_text(
        f'[tool.sertest]\nmodel = "{assets["good"]}"\nsuite = "s.yaml"\n'
        f'data = "{assets["data"]}"\ncompare-fail = ["ccc:-0.1"]\n')
    os.remove(pytester.path / "tox.ini")
    res = pytester.runpytest_inprocess("--collect-only", "-q", str(tool),
                                       "--rootdir", str(tool))
    res.stdout.fnmatch_lines(["*correctness_regression[[]good-arousal[]]*"])
    (tool / "pyproject.toml").write_text('[tool.sertest]\nmodell = "x.onnx"\n')
    bad = pytester.runpytest_inprocess("--collect-only", str(tool), "--rootdir", str(tool))
    assert bad.ret != 0
    assert "unknown key 'modell'" in bad.stderr.str() + bad.stdout.str()


def test_an_audit_that_cannot_run_fails_every_item_with_the_reason(pytester, assets):
    _suites(pytester)
    missing = pytester.path / "no-such-manifest.csv"
    res = _run(pytester, f"--sertest-model={assets['good']}", f"--sertest-data={missing}",
               "mini.yaml")
    res.assert_outcomes(failed=3)
    res.stdout.fnmatch_lines(["*sertest audit could not run*", f"DataError: --data '{missing}'*"])


def test_inconclusive_skips_and_a_crashing_check_fails_with_its_traceback(pytester, assets):
    lo, hi = assets["worse_ccc_ci"]
    assert lo < hi
    pytester.makeconftest("""
        from sertest.checks import Check, register

        @register
        class Crashing(Check):
            id = "planted_crash"
            topic = "correctness"
            description = "a check that always raises"
            kinds = ("regression",)
            metrics = {"x": "> 0"}

            def measure(self, ctx, model, target):
                raise RuntimeError("planted crash in measure")
    """)
    # a CCC threshold inside the confidence interval: the data cannot tell
    pytester.makefile(".yaml", s=f"""name: s
targets: [arousal]
bootstrap: {{n_boot: 50}}
tests:
  - test: correctness_regression
    thresholds: {{ccc: "> {(lo + hi) / 2!r}", pcc: null, mae: null}}
  - planted_crash
""")
    # a subprocess: the planted check must not stay in this process's registry
    res = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-rfs", *NO_HEALTH, f"--sertest-model={assets['worse']}",
        *_common(assets), "--sertest-no-baselines", "s.yaml")
    res.assert_outcomes(skipped=1, failed=1)
    res.stdout.fnmatch_lines([
        "planted_crash for model 'worse' on arousal (suite s, data manifest) crashed: "
        "RuntimeError: planted crash in measure",
        "Traceback (most recent call last):",
        "*conftest.py*in measure",
        "SKIPPED [[]1[]] s.yaml:5: sertest inconclusive: correctness_regression [[]worse-arousal[]]: "
        "ccc = *, CI [[]*[]], n=24; threshold > * -> inconclusive"])


# -- xdist: one audit per session -------------------------------------------------------------
def test_audit_runs_once_across_xdist_workers(pytester, assets):
    _suites(pytester)
    log = pytester.path / "calls.log"
    pytester.makepyfile(probe=f"""
        import os
        import numpy as np

        def level(signals, sampling_rate):
            with open({str(log)!r}, "a") as fh:
                fh.write(f"{{os.getpid()}}\\n")
            return 3 * np.sqrt(np.mean(np.square(signals, dtype=np.float64), axis=1))[:, None]

        level.labels = ["arousal"]
    """)
    pytester.makepyfile(test_hand="""
        def test_audit(ser_audit):
            assert ser_audit.result("correctness_regression").passed
    """)
    res = _run(pytester, f"--sertest-model=callable:{pytester.path / 'probe.py'}:level",
               f"--sertest-data={assets['data']}", "--sertest-cache=none",
               "--sertest-no-baselines", "mini-arousal.yaml", "test_hand.py",
               "--dist", "each", xdist=True)
    res.assert_outcomes(passed=4)  # 2 tests on each of the 2 workers
    pids = set(log.read_text().split())
    assert len(pids) == 1, f"the audit ran in {len(pids)} processes"


# -- baseline logic (pure) ------------------------------------------------------------------
def test_compare_rules_parse_and_pick_the_most_specific():
    rules = [CompareRule.parse(t) for t in ("*:-0.01", "ccc:-0.02", "mae:5%",
                                            "robustness_*/unchanged:-0.1")]
    assert rule_for(rules, "correctness_regression", "ccc").text == "ccc:-0.02"
    assert rule_for(rules, "correctness_regression", "pcc").text == "*:-0.01"
    assert rule_for(rules, "robustness_small_changes", "unchanged").text == \
        "robustness_*/unchanged:-0.1"
    assert rules[2].tolerance(0.2) == pytest.approx(0.01)
    from sertest.errors import UsageError

    for bad in ("ccc", "ccc:abc", ":0.1", "ccc:nan"):
        with pytest.raises(UsageError, match="METRIC:TOLERANCE"):
            CompareRule.parse(bad)


def test_direction_follows_the_threshold():
    assert direction({"op": ">", "value": 0.5, "absolute": False}) == "higher"
    assert direction({"op": "<", "value": 0.1, "absolute": False}) == "lower"
    assert direction({"op": "<", "value": 0.075, "absolute": True}) == "abs-lower"
    assert direction(None) is None
    assert worsening(0.8, 0.7, "higher") == pytest.approx(0.1)
    assert worsening(0.05, 0.07, "lower") == pytest.approx(0.02)
    assert worsening(-0.01, 0.03, "abs-lower") == pytest.approx(0.02)


finite = st.floats(-2, 2, allow_nan=False)


@given(base=finite, new=finite, way=st.sampled_from(["higher", "lower", "abs-higher",
                                                     "abs-lower"]),
       tol=st.floats(0, 1))
@settings(max_examples=200, deadline=None)
def test_only_worsening_beyond_tolerance_regresses(base, new, way, tol):
    d = Delta("m", None, base, new, way, CompareRule.parse(f"m:{tol}"), tol)
    assert d.regressed == (worsening(base, new, way) > tol + 1e-9)
    if worsening(base, new, way) <= 0:  # an improvement (or no change) never fails
        assert not d.regressed


def test_baseline_file_round_trips_and_is_line_per_measurement(tmp_path):
    doc = {"schema": "sertest/baseline@1", "suites": {"s": {
        "seed": 0, "dataset": {"name": "d", "items": 3}, "models": {"m": "fp"},
        "measurements": {measurement_key("t", "m", "arousal", "ccc", g): {
            "value": v, "ci": [v - 0.1, v + 0.1], "n": 3, "threshold": "> 0.5",
            "direction": "higher", "verdict": "pass"} for g, v in ((None, 0.7), ("female", 0.6))}}}}
    text = dumps(doc)
    assert json.loads(text) == doc
    lines = text.splitlines()
    assert sum('"value"' in ln for ln in lines) == 2
    path = tmp_path / "b.json"
    path.write_text(text)
    assert Baseline.load(str(path)).doc == doc
    path.write_text("{not json")
    from sertest.errors import UsageError

    with pytest.raises(UsageError, match="b.json"):
        Baseline.load(str(path))


# -- gated results, model health, failing first -------------------------------------------------
def test_gated_result_skips_with_the_reason_and_model_health_is_an_item(pytester, assets):
    """The flat model is not competent on arousal (CCC 0), so its robustness result is
    gated: skipped with the reason, never passed; each model gets a model_health item."""
    pytester.makefile(".yaml", g="""name: g
targets: [arousal]
bootstrap: {n_boot: 50}
tests:
  - test: correctness_regression
    thresholds: {ccc: "> 0.5", pcc: null, mae: null}
  - test: robustness_small_changes
    params: {changes: [gain_small]}
""")
    junit = pytester.path / "j.xml"
    res = _run(pytester, f"--sertest-model={assets['flat']}", *_common(assets), "g.yaml",
               f"--junitxml={junit}", health=True)
    outcomes = res.parseoutcomes()
    assert outcomes.get("failed") == 1 and outcomes.get("skipped") == 1
    assert outcomes.get("passed", 0) == 1  # model_health: the model answered every item
    res.stdout.fnmatch_lines([
        "SKIPPED [[]1[]] g.yaml:*: sertest gated: robustness_small_changes [[]flat-arousal[]]: "
        "not competent on arousal: correctness_regression ccc * (judged *"])
    cases = {_props(c)["sertest.test"]: c for c in _cases(junit)}
    assert set(cases) == {"correctness_regression", "robustness_small_changes", "model_health"}
    gated = cases["robustness_small_changes"]
    assert gated.find("skipped") is not None and gated.find("failure") is None
    assert _props(gated)["sertest.verdict"] == "gated"
    assert _props(gated)["sertest.judged_verdict"] in ("pass", "fail", "inconclusive")
    assert _props(cases["model_health"])["sertest.dimension"] == "all"
    # the sertest summary table lists the failure first, then the gated result
    table = res.stdout.str().split("== sertest ==")[1].splitlines()
    rows = [line.split()[:5] for line in table if line.startswith(("failed", "passed", "skipped"))]
    assert rows[0] == ["failed", "correctness_regression", "flat", "arousal", "fail"]
    assert rows[1] == ["skipped", "robustness_small_changes", "flat", "arousal", "gated"]
    assert rows[2][:2] == ["passed", "model_health"]


def test_strict_makes_an_inconclusive_test_fail(pytester, assets):
    """'> -0.2' on the random baseline's CCC straddles its interval: skipped, or failed with
    --sertest-strict."""
    pytester.makefile(".yaml", incon="name: incon\nbootstrap: {n_boot: 200}\ntests:\n"
                      "  - test: correctness_regression\n    targets: [arousal]\n"
                      "    thresholds: {ccc: '> -0.2', pcc: null, mae: null}\n")
    common = ["--sertest-model=random:gaussian", "--sertest-no-baselines", *_common(assets),
              "incon.yaml"]
    lax = _run(pytester, *common)
    lax.assert_outcomes(skipped=1)
    strict = _run(pytester, *common, "--sertest-strict")
    strict.assert_outcomes(failed=1)
    assert "inconclusive" in strict.stdout.str() or "cannot tell" in strict.stdout.str()


# -- the plugin over the library API --------------------------------------------------------
def test_items_are_the_cells_the_engine_evaluates(assets):
    """The plugin's items and the audit's entries come from one Suite.cells: the same
    (test, model, dimension) triples in the same order."""
    from sertest.suite import load_suite

    models = [load_model(assets[k]) for k in ("good", "flat", "worse")]
    cells = [(c.name, m, t) for c, m, t in load_suite(SUITE_DOC).cells(models)]
    warm = Path(assets["data"]).parent / "warm" / "results.json"
    doc = json.loads(warm.read_text())
    names = {m.name for m in models}
    entries = [(e["test"], e["model"], e["dimension"]) for e in doc["tests"]
               if e["model"] in names and e["test"] != "model_health"]
    assert entries == cells and len(cells) == 3 + 1 + 1  # good: 3 dimensions; flat, worse: 1
    by_name = {"good": models[0]}  # a mapping name -> model gives the same cells
    assert [(c.name, m, t) for c, m, t in load_suite(SUITE_DOC).cells(by_name)] == cells[:3]


def test_a_compare_fail_rule_naming_no_metric_is_a_usage_error(pytester, assets):
    _suites(pytester)
    common = [f"--sertest-model={assets['good']}", "mini.yaml", "--collect-only", "-q"]
    bad = _run(pytester, *common, "--sertest-compare-fail", "fraction_unchanged:-5%")
    assert bad.ret == pytest.ExitCode.INTERRUPTED  # a collection error: nothing runs
    text = bad.stdout.str()
    assert ("--sertest-compare-fail 'fraction_unchanged:-5%': no test emits a metric "
            "matching 'fraction_unchanged'; did you mean 'unchanged'") in text
    assert "(the collected suites emit: ccc, clipped_share, item_failure_share, mae, pcc)" in text
    # a known metric that this suite does not emit gates nothing: a warning, items collected
    idle = _run(pytester, *common, "--sertest-compare-fail", "ccc:-0.02",
                "--sertest-compare-fail", "robustness_*/unchanged:-0.05")
    assert idle.ret == 0
    idle.stdout.fnmatch_lines([
        "*mini.yaml::correctness_regression[[]good-arousal[]]",
        "*SertestRuleWarning: --sertest-compare-fail 'robustness_*/unchanged:-0.05' gates "
        "nothing: no test of the collected suites is named 'robustness_*'*"])
    assert "'ccc:-0.02' gates nothing" not in idle.stdout.str()
    # the help suggests metrics that exist
    helptext = _run(pytester, "--help").stdout.str()
    assert "unchanged:-5%" in helptext and "fraction_unchanged" not in helptext


def test_check_rules_suggests_the_metric_and_the_test():
    from sertest.errors import UsageError
    from sertest.pytest_plugin.baseline import check_rules, parse_rules

    emitted = {("correctness_regression", m) for m in ("ccc", "pcc", "mae")} | {
        ("robustness_small_changes", "unchanged"), ("model_health", "item_failure_share")}
    known = {"ccc", "pcc", "mae", "unchanged", "ccc_change", "item_failure_share", "uar"}
    ok = parse_rules(["*:-0.01", "ccc:-0.02", "robustness_*/unchanged:-0.1",
                      "item_failure_share:0.01", "correctness_regression/*:-0.05"])
    assert check_rules(ok, emitted, known) == []
    with pytest.raises(UsageError, match=r"'cccc:-0\.02'.*; did you mean 'ccc'\? \("):
        check_rules(parse_rules(["cccc:-0.02"]), emitted, known)
    with pytest.raises(UsageError, match=r"did you mean 'ccc_change'"):  # known, not emitted
        check_rules(parse_rules(["ccc_chnage:-0.02"]), emitted, known)
    with pytest.raises(UsageError, match=r"no test emits a metric matching 'fraction_\*'"):
        check_rules(parse_rules(["fraction_*:-0.1"]), emitted, known)
    notes = check_rules(parse_rules(["uar:-0.02", "robustness_smal_changes/unchanged:-0.1"]),
                        emitted, known)
    assert notes[0].endswith("no test of the collected suites emits a metric matching 'uar' "
                             "(they emit: ccc, item_failure_share, mae, pcc, unchanged)")
    assert "did you mean 'robustness_small_changes'?" in notes[1]


def test_model_specs_resolve_with_registered_adapter_kinds(tmp_path, monkeypatch):
    from sertest import models
    from sertest.pytest_plugin import resolve_model_spec

    (tmp_path / "m.onnx").write_bytes(b"")
    (tmp_path / "params.json").write_text("{}")
    monkeypatch.setitem(models.ADAPTERS, "rms", "rms_adapter:load_rms")
    at = str(tmp_path)
    assert resolve_model_spec("m.onnx", tmp_path) == os.path.join(at, "m.onnx")
    assert resolve_model_spec("w2s=m.onnx", tmp_path) == "w2s=" + os.path.join(at, "m.onnx")
    assert resolve_model_spec("onnx:m.onnx", tmp_path) == "onnx:" + os.path.join(at, "m.onnx")
    assert resolve_model_spec("x=rms:params.json", tmp_path) == \
        "x=rms:" + os.path.join(at, "params.json")
    for kept in ("random:gaussian", "callable:pkg.mod:fn", "hf:org/name", "org/name@main",
                 "rms:/abs/params.json"):
        assert resolve_model_spec(kept, tmp_path) == kept
    monkeypatch.delitem(models.ADAPTERS, "rms")  # an unregistered kind is a file name
    assert resolve_model_spec("rms:params.json", tmp_path) == os.path.join(at, "rms:params.json")


RMS_ADAPTER = '''
"""An adapter of its own: arousal = scale x RMS + offset, both read from a JSON file."""
import json
import os

import numpy as np

from sertest.models import Model
from sertest.models.base import file_digest


class RmsModel(Model):
    dimensions = ("arousal",)

    def __init__(self, path, name=None):
        with open(path) as fh:
            params = json.load(fh)
        self.path, self.scale, self.offset = path, params["scale"], params["offset"]
        self.name = name or os.path.splitext(os.path.basename(path))[0]

    def predict_batch(self, signals):
        rms = np.sqrt(np.mean(np.square(signals, dtype=np.float64), axis=1))
        return (self.scale * rms + self.offset)[:, None].astype(np.float32)

    def fingerprint(self):
        return "rms:" + file_digest(self.path)


def load_rms(target, name=None, **_):
    return RmsModel(target, name)
'''


def test_an_adapter_registered_with_register_adapter_is_usable(pytester, assets):
    """``register_adapter`` in a conftest makes ``--sertest-model KIND:TARGET`` work, with
    the target relative to the invocation directory."""
    _suites(pytester)
    pytester.makepyfile(rms_adapter=RMS_ADAPTER)
    pytester.makeconftest("""
        from sertest.models import register_adapter

        register_adapter("rms", "rms_adapter:load_rms")
    """)
    (pytester.path / "loud.json").write_text(json.dumps({"scale": 3.0, "offset": 0.0}))
    # a subprocess: the registered kind must not stay in this process's registry
    res = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-rfs", "--sertest-model=rms:loud.json", *_common(assets),
        "--sertest-no-baselines", "mini-arousal.yaml", "--junitxml=j.xml")
    res.assert_outcomes(passed=2)  # correctness_regression and model_health
    props = {_props(c)["sertest.test"]: _props(c) for c in _cases(pytester.path / "j.xml")}
    assert props["correctness_regression"]["sertest.model"] == "loud"
    assert float(props["correctness_regression"]["ccc"]) > 0.99  # the labels are 3 x RMS
    res.stdout.fnmatch_lines([f"sertest: models rms:{pytester.path / 'loud.json'};*"])
