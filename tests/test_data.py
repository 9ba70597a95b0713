"""Manifests, folders and audio decoding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sertest import audio
from sertest.data import Dataset, load_dataset
from sertest.errors import AudioError, DataError


def _write(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_manifest_resolves_relative_paths_and_segments(tmp_path):
    sf.write(tmp_path / "a.wav", np.ones(16000, dtype="float32") * 0.1, 16000)
    m = _write(tmp_path / "m.csv", [{"file": "a.wav", "start": 0.25, "end": 0.5, "arousal": 0.3}])
    ds = Dataset.from_manifest(str(m))
    row = ds.table.iloc[0]
    assert row["file"] == str(tmp_path / "a.wav")
    assert ds.ids == ["a.wav[0.25:0.5]"]
    x = audio.load(row["file"], 16000, row["start"], row["end"])
    assert len(x) == 4000


@pytest.mark.parametrize("rows,needle", [
    ([{"file": "a.wav", "arousal": "high"}], "line 2, column 'arousal': 'high' is not a number"),
    ([{"file": "a.wav", "arousal": 0.1}, {"file": "b.wav", "arousal": "x"}], "line 3, column 'arousal'"),
    ([{"id": "x", "file": "a.wav"}, {"id": "x", "file": "b.wav"}], "line 3, column 'id': duplicate id 'x'"),
    ([{"path_to": "a.wav"}], "missing column 'file'"),
    ([{"file": "../../etc/passwd"}], "outside the data root"),
    ([{"file": "a.wav", "start": 1.0, "end": 0.5}], "line 2, column 'end'"),
    ([{"file": ""}], "line 2, column 'file': empty path"),
])
def test_malformed_manifest_names_line_and_column(tmp_path, rows, needle):
    m = _write(tmp_path / "m.csv", rows)
    with pytest.raises(DataError) as info:
        Dataset.from_manifest(str(m))
    assert needle in str(info.value)
    assert str(m) in str(info.value)


def test_outside_root_allowed_on_request(tmp_path):
    m = _write(tmp_path / "m.csv", [{"file": "../elsewhere.wav"}])
    ds = Dataset.from_manifest(str(m), allow_outside_root=True)
    assert ds.table.iloc[0]["file"].endswith("elsewhere.wav")


def test_parquet_manifest(tmp_path):
    sf.write(tmp_path / "a.wav", np.ones(800, dtype="float32") * 0.1, 8000)
    pd.DataFrame([{"file": "a.wav", "valence": 0.2}]).to_parquet(tmp_path / "m.parquet")
    ds = load_dataset(str(tmp_path / "m.parquet"))
    assert ds.table.iloc[0]["valence"] == pytest.approx(0.2)


def test_folder_dataset_is_label_free(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("x.wav", "sub/y.flac"):
        sf.write(tmp_path / name, np.ones(1600, dtype="float32") * 0.1, 16000)
    (tmp_path / "notes.txt").write_text("not audio")
    ds = load_dataset(str(tmp_path))
    assert sorted(ds.ids) == ["sub/y.flac", "x.wav"]
    assert ds.describe()["labels"] == []


@pytest.mark.parametrize("fmt,subtype,ext", [
    ("WAV", "PCM_16", "wav"), ("WAV", "PCM_24", "wav"), ("WAV", "FLOAT", "wav"),
    ("WAV", "PCM_U8", "wav"), ("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"),
    ("MP3", "MPEG_LAYER_III", "mp3"),
])
def test_decodes_formats_mixes_down_and_resamples(tmp_path, fmt, subtype, ext):
    sr = 22050
    t = np.arange(sr) / sr
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.1 * np.sin(2 * np.pi * 220 * t)], 1)
    path = str(tmp_path / f"x.{ext}")
    sf.write(path, stereo.astype("float32"), sr, format=fmt, subtype=subtype)
    x = audio.load(path, 16000)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 16000) <= 1200  # codec padding for lossy formats
    # the mixdown averages the two channels: amplitude about 0.2
    assert 0.12 < np.sqrt(np.mean(x[2000:14000] ** 2)) * np.sqrt(2) < 0.28


def test_wrong_extension_falls_back_to_ffmpeg(tmp_path):
    path = str(tmp_path / "really-flac.mp3")
    sf.write(path, (0.1 * np.ones(1600)).astype("float32"), 16000, format="FLAC")
    x, sr = audio.read(path)
    assert sr == 16000 and len(x) == 1600


@pytest.mark.parametrize("content,needle", [
    (b"", "empty file"), (b"RIFF\x00\x00garbage", "cannot decode"),
])
def test_bad_audio_errors_name_the_file(tmp_path, content, needle):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError) as info:
        audio.read(str(path))
    assert needle in str(info.value) and "bad.wav" in str(info.value)


def test_silent_and_nonfinite_signals_refused(tmp_path):
    sf.write(tmp_path / "z.wav", np.zeros(1600, dtype="float32"), 16000)
    with pytest.raises(AudioError, match="silent"):
        audio.read(str(tmp_path / "z.wav"))
    x = np.ones(10, dtype="float32")
    x[3] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        audio.check_signal(x, "sig")


def test_missing_file_error():
    with pytest.raises(AudioError, match="file not found"):
        audio.read("/nonexistent/x.wav")
