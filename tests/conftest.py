"""Shared fixtures: small real audio files and small real ONNX models built on the fly."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.helpers import make_onnx_model


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never touch the user's prediction cache from tests."""
    monkeypatch.setenv("SERTEST_CACHE", str(tmp_path / "cache"))


@pytest.fixture()
def tiny_data(tmp_path):
    """40 labelled 16 kHz WAV items of 5 speakers whose level drives the 'arousal' label."""
    rng = np.random.default_rng(1)
    root = tmp_path / "data"
    root.mkdir()
    rows = []
    for i in range(40):
        n = int(16000 * rng.uniform(0.4, 1.2))
        level = rng.uniform(0.02, 0.3)
        t = np.arange(n) / 16000
        x = level * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.01 * rng.standard_normal(n)
        sf.write(root / f"a{i}.wav", x.astype("float32"), 16000)
        rows.append(dict(id=f"i{i:02d}", file=f"a{i}.wav", speaker=f"s{i % 5}",
                         sex="female" if i % 2 else "male",
                         arousal=round(level / 0.3, 3), dominance=rng.uniform(),
                         valence=rng.uniform()))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


@pytest.fixture()
def onnx_model(tmp_path):
    return make_onnx_model(os.fspath(tmp_path / "m.onnx"))
