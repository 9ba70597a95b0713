"""``sertest search --axes A,B``: the two-axis search from the command line.

The planted model of ``tests.test_search.planted_pair`` breaks only when the tone's SNR is
below the item's planted value AND the Opus link has gone narrowband; the command must run
the two-axis search (a ``chain`` of noise then Opus at each item's mildest breaking pair),
within the stated budget, and print the median breaking-pair severity.  Bad ``--axes`` are
a usage error naming the option.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest.checks.search import AXES, pair_calls_per_item
from sertest.cli import main
from tests.test_search import _freq

SR = 16000


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("search-cli")
    t = np.arange(SR) / SR
    rows = []
    for i in (2, 6, 10):
        sf.write(root / f"t{i}.wav", (0.1 * np.sin(2 * np.pi * _freq(i) * t)).astype("float32"),
                 SR, subtype="FLOAT")
        rows.append(dict(id=f"i{i:02d}", file=f"t{i}.wav", speaker=f"s{i}", arousal=0.8))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def test_cli_axes_runs_the_two_axis_search(data, tmp_path, capsys):
    model_file = tmp_path / "planted_pair_model.py"
    model_file.write_text("from tests.test_search import planted_pair\n")
    per_item = pair_calls_per_item(AXES["snr"], AXES["bitrate"]) + 1
    code = main(["search", "-m", f"callable:{model_file}:planted_pair", "-d", str(data),
                 "--axes", "snr,bitrate", "--max-items", "3", "--budget", str(3 * per_item),
                 "--target", "arousal", "--no-cache", "-o", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code in (0, 1) and "median breaking-pair severity" in out
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    (t,) = [t for t in doc["tests"] if t["test"] == "robustness_search"]
    cells = {m["metric"]: m for m in t["measurements"]}
    sev = cells["median_pair_severity"]
    assert sev["extra"]["axes"] == ["snr", "bitrate"]
    assert sev["extra"]["model_calls"] <= 3 * per_item
    assert 0 < sev["value"] <= 1 and cells["broken_share"]["value"] == 1.0
    # every counterexample is noise, then the Opus link, at a narrowband bit rate
    for w in t["plots"]["worst"]:
        first, second = w["condition"]["steps"]
        assert first["name"] == "white_noise" and second["name"] == "opus"
        assert second["bitrate"] <= 9500  # the planted model needs the narrowband link
    assert f"{sev['value']:.3g}" in out


@pytest.mark.parametrize("axes", ["snr", "snr,snr", "snr,tilt", "snr,bitrate,rt60"])
def test_cli_bad_axes_name_the_option(data, tmp_path, capsys, axes):
    code = main(["search", "-m", "random:gaussian", "-d", str(data), "--axes", axes,
                 "--no-cache", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "--axes" in err and "snr,bitrate" in err
