"""``sertest validate --segment``: long recordings are predicted in windows, as by ``run``.

A real tiny ONNX model (built and saved here) and generated audio with one 95 s item: the
validation's predictions must be the segmented ones (its cache holds them under the
segmented keys), and a bad value is a usage error before anything loads.
"""

from __future__ import annotations

import pytest

from sertest.cli import main
from sertest.data import load_dataset
from sertest.engine.cache import PredictionCache
from sertest.engine.execute import execute
from sertest.engine.store import CLEAN
from sertest.errors import UsageError
from sertest.models import load_model
from sertest.validate import validate
from tests.helpers import make_onnx_model
from tests.test_segments import LONG_S, _manifest


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("validate-segment")
    return load_dataset(_manifest(root, LONG_S)), make_onnx_model(str(root / "m.onnx"))


def test_validate_predicts_long_items_in_windows(data, tmp_path):
    dataset, onnx = data
    cache = str(tmp_path / "cache")
    v = validate(onnx, dataset, "smoke", resamples=2, defects=["constant"], quick=True,
                 cache=cache, progress=False, segment="30")
    assert v.doc["settings"]["segment"] == "30:30"
    model = load_model(onnx)
    needed = {CLEAN: set(dataset.ids)}
    for segment, misses in (("30", 0), (None, 1)):  # whole, the long item is another key
        c = PredictionCache.open(cache)
        try:
            _, errors, stats = execute(dataset, {"m": model}, {CLEAN: None}, needed,
                                           cache=c, jobs=1, progress=False, segment=segment)
        finally:
            c.close()
        assert not errors
        assert stats.predictions - stats.cached == misses, segment


def test_a_bad_segment_is_a_usage_error_before_anything_loads(tmp_path, capsys):
    with pytest.raises(UsageError, match="--segment"):
        validate("no/such/model.onnx", None, "smoke", segment="30:45")
    code = main(["validate", "--model", "random:gaussian", "--suite", "smoke", "--quick",
                 "--out", str(tmp_path / "v"), "--segment", "abc"])
    assert code == 2
    assert "--segment" in capsys.readouterr().err
