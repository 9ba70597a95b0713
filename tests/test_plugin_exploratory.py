"""The pytest plugin shows issue 18's three tests: worst-case search, metamorphic
expectations and slice discovery, each as one pytest item per model and dimension.

Model: ``tests.helpers.make_onnx_model`` (arousal = 3 x RMS, valence = peak level), so a
+6 dB gain doubles both: "arousal must not decrease" holds, the planted expectation
"valence unchanged" breaks on every item (a failing item naming the expectation).  Slices:
a ``channel`` column whose level ``b`` items carry labels 0.3 off the model (a planted
slice, 12 of 36 items), which slice discovery must report as a failure.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest import audit
from tests.helpers import make_onnx_model

pytest_plugins = ["pytester"]

SUITE = """\
name: exploratory-mini
targets: [arousal, valence]
bootstrap: {n_boot: 50}
tests:
  - test: robustness_search
    targets: [arousal]
    params: {axis: snr, max_items: 12, budget: 120}
  - test: robustness_metamorphic
    params:
      max_items: 36
      expectations:
        louder_6db:
          perturbation: {name: gain, gain_db: 6}
          expect: {arousal: not_decrease, valence: unchanged, by: 0.05}
  - test: fairness_slices
    targets: [arousal]
    params: {depth: 1, min_size: 10, fdr: 0.05, features: false}
"""


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin-exploratory")
    rng = np.random.default_rng(11)
    (root / "audio").mkdir()
    rows = []
    for i in range(36):
        t = np.arange(8000) / 16000
        x = (rng.uniform(0.03, 0.2) * np.sin(2 * np.pi * rng.uniform(100, 300) * t)
             ).astype("float32")
        sf.write(root / "audio" / f"a{i}.wav", x, 16000, subtype="FLOAT")
        x64 = x.astype(np.float64)
        channel = "b" if i % 3 == 0 else "a"
        rows.append(dict(id=f"i{i:02d}", file=f"audio/a{i}.wav", speaker=f"s{i % 9}",
                         channel=channel,
                         arousal=3 * math.sqrt(np.mean(x64 ** 2)) + (0.3 if channel == "b" else 0),
                         dominance=50 * np.mean(x64) + 0.5, valence=np.max(np.abs(x64))))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    out = {"model": make_onnx_model(str(root / "good.onnx")),
           "data": str(root / "manifest.csv"), "cache": str(root / "cache")}
    # one audit in this process first (imports every module an audit needs, see
    # tests/test_pytest_plugin.py) and the premise: the planted slice is there to find
    import yaml

    res = audit([out["model"]], out["data"], yaml.safe_load(SUITE), out=str(root / "warm"),
                cache=out["cache"], baselines=False)
    assert res.result("fairness_slices", None, "arousal").verdict == "fail"
    return out


def test_plugin_reports_search_metamorphic_and_slices(pytester, assets):
    pytester.makefile(".yaml", exploratory=SUITE)
    res = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-rfs", "-k", "not model_health",
        f"--sertest-model={assets['model']}", f"--sertest-data={assets['data']}",
        f"--sertest-cache={assets['cache']}", "exploratory.yaml", "-v")
    text = res.stdout.str()
    # one item per test, model and dimension, each with its verdict as the outcome
    for item in ("robustness_search[good-arousal]", "robustness_metamorphic[good-arousal]",
                 "robustness_metamorphic[good-valence]", "fairness_slices[good-arousal]"):
        assert item in text, item
    res.stdout.fnmatch_lines([
        "*robustness_metamorphic?good-arousal? PASSED*",
        "*robustness_metamorphic?good-valence? FAILED*",
        "*fairness_slices?good-arousal? FAILED*"])
    # the failures name what broke: the expectation and the discovered slices
    assert "holds" in text and "louder_6db" in text
    assert "discovered_slices" in text
    # the search's item shows its median breakdown in the sertest summary
    assert "median_breakdown" in text
    assert res.ret == 1
