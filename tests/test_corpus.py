"""Consistency tests of the bundled corpus (sertest/data/corpus) and its generator.

The committed manifest must describe the committed audio, cover the groups the fairness
checks need, keep prosody independent of lexical sentiment, and carry nominal labels that
are recomputable from the prosody parameters and visible in the acoustics.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import math
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "sertest" / "data" / "corpus"
SCRIPT = ROOT / "scripts" / "make_corpus.py"

COLUMNS = [
    "id", "file", "speaker", "sex", "language", "accent", "text", "sentiment", "emotion",
    "arousal", "dominance", "valence", "pitch_shift", "rate", "level", "pair", "recording",
    "engine", "voice",
]
EXTRA_COLUMNS = ["pitch_range"]  # needed to recompute valence (documented in DATASHEET.md)
LABELS = ("arousal", "dominance", "valence")
ISO639_1 = {"en", "de", "fr", "es", "it", "pt", "nl", "pl", "sv", "da", "fi", "cs"}
EN_ACCENTS = {"us", "gb", "scottish", "caribbean", "nyc"}
SIZE_BUDGET = 24_500_000  # bytes, as `du -sb` counts them (888 clean items since issue 12)
REAL_BUDGET = 1_000_000


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable")
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable")
    return float(np.corrcoef(ra, rb)[0, 1])


@functools.lru_cache(maxsize=1)
def _load_script():
    """scripts/make_corpus.py as a module (loaded once)."""
    spec = importlib.util.spec_from_file_location("make_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_corpus"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def manifest() -> tuple[list[str], list[dict[str, str]]]:
    path = CORPUS / "manifest.csv"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run scripts/make_corpus.py --out sertest/data/corpus")
    return _read_csv(path)


@pytest.fixture(scope="module")
def rows(manifest) -> list[dict[str, str]]:
    return manifest[1]


@pytest.fixture(scope="module")
def clean(rows) -> list[dict[str, str]]:
    """One rendition per utterance: no recording condition, or the headset one."""
    return [r for r in rows if r["recording"] in ("", "headset")]


@pytest.fixture(scope="module")
def audio(rows) -> dict[str, np.ndarray]:
    """Decoded float64 samples of every item, checked for 16 kHz mono on the way."""
    out = {}
    for r in rows:
        path = CORPUS / r["file"]
        x, sr = sf.read(path, dtype="float64", always_2d=True)
        assert sr == 16000, f"{path}: {sr} Hz"
        assert x.shape[1] == 1, f"{path}: {x.shape[1]} channels"
        assert sf.info(path).subtype == "PCM_16", f"{path}: {sf.info(path).subtype}"
        out[r["id"]] = x[:, 0]
    return out


# ------------------------------------------------------------------------------ structure

def test_columns_in_specified_order(manifest):
    columns, _ = manifest
    assert columns[: len(COLUMNS)] == COLUMNS
    assert columns[len(COLUMNS):] == EXTRA_COLUMNS


def test_ids_unique_and_files_relative_and_present(rows):
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    for r in rows:
        assert not Path(r["file"]).is_absolute() and ".." not in Path(r["file"]).parts, r["file"]
        assert (CORPUS / r["file"]).is_file(), f"row {r['id']}: {r['file']} missing"
    files = [r["file"] for r in rows]
    assert len(files) == len(set(files))


def test_no_stray_audio_files(rows):
    listed = {(CORPUS / r["file"]).resolve() for r in rows}
    on_disk = {p.resolve() for p in (CORPUS / "audio").rglob("*") if p.is_file()}
    assert on_disk == listed


def test_audio_decodes_and_is_plausible(rows, audio):
    for r in rows:
        x = audio[r["id"]]
        dur = len(x) / 16000
        assert 0.4 <= dur <= 4.0, f"{r['id']}: {dur:.2f} s"
        peak = float(np.max(np.abs(x)))
        assert 0.005 < peak < 0.999, f"{r['id']}: peak {peak}"


def test_trimmed_silence(clean, audio):
    """Leading/trailing silence is trimmed: at most 0.1 s below -50 dB re the loudest 10 ms."""
    for r in clean:
        x = audio[r["id"]]
        frames = np.sqrt(np.mean(x[: len(x) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
        active = np.flatnonzero(frames > frames.max() * 10 ** (-50 / 20))
        assert active[0] <= 10 and active[-1] >= len(frames) - 11, r["id"]


# --------------------------------------------------------------------------- column values

def test_column_values(rows):
    for r in rows:
        where = f"row {r['id']}"
        assert r["sex"] in {"female", "male"}, where
        assert r["language"] in ISO639_1, where
        if r["language"] == "en":
            assert r["accent"] in EN_ACCENTS, where
        else:
            assert r["accent"] == r["language"], where
        assert r["sentiment"] in {"positive", "negative", "neutral"}, where
        assert r["emotion"] in {"anger", "happiness", "neutral", "sadness"}, where
        assert r["recording"] in {"", "headset", "boundary", "mobile"}, where
        assert (r["pair"] == "") == (r["recording"] == ""), where
        assert r["engine"] in {"espeak-ng", "flite"}, where
        assert r["text"].strip() and r["voice"].strip(), where
        for k in LABELS:
            assert len(r[k].split(".")[1]) == 3, f"{where}: {k}={r[k]} not 3 decimals"
            assert 0.0 <= float(r[k]) <= 1.0, f"{where}: {k}={r[k]}"
        for k in ("pitch_shift", "rate", "level", "pitch_range"):
            assert math.isfinite(float(r[k])), where
        assert 0.5 < float(r["rate"]) < 2.0 and 0.2 < float(r["pitch_range"]) <= 2.0, where


def test_speaker_is_one_fixed_voice(rows):
    attrs = defaultdict(set)
    for r in rows:
        attrs[r["speaker"]].add((r["sex"], r["language"], r["accent"], r["engine"], r["voice"]))
    assert all(len(v) == 1 for v in attrs.values()), {k: v for k, v in attrs.items() if len(v) > 1}


def test_coverage_of_groups(clean):
    speakers = {r["speaker"]: r for r in clean}
    assert len(speakers) >= 16
    by_sex = Counter(r["sex"] for r in speakers.values())
    assert by_sex["female"] >= 6 and by_sex["male"] >= 6, by_sex
    assert max(by_sex.values()) / min(by_sex.values()) <= 1.5, by_sex
    en_accents = {r["accent"] for r in clean if r["language"] == "en"}
    assert len(en_accents) >= 3, en_accents
    others = {r["language"] for r in clean} - {"en"}
    assert len(others) >= 4, others
    per_speaker = Counter(r["speaker"] for r in clean)
    assert min(per_speaker.values()) >= 10, per_speaker
    per_language = Counter(r["language"] for r in clean)
    assert min(per_language.values()) >= 40, per_language
    for lang in per_language:  # speaker-independent splits need both sexes in every language
        assert {r["sex"] for r in speakers.values() if r["language"] == lang} == {"female", "male"}, lang
    assert set(Counter(r["engine"] for r in clean)) == {"espeak-ng", "flite"}
    # 400-800 items until issue 12 asked for enough to let a sound model pass (888 clean)
    assert 400 <= len(clean) and len(clean) + sum(r["recording"] in ("boundary", "mobile") for r in clean) <= 1000


def test_emotions_and_sentiments_balanced_and_independent(clean):
    emo = Counter(r["emotion"] for r in clean)
    sen = Counter(r["sentiment"] for r in clean)
    assert set(emo) == {"anger", "happiness", "neutral", "sadness"}
    assert set(sen) == {"positive", "negative", "neutral"}
    assert max(emo.values()) - min(emo.values()) <= 0.05 * len(clean), emo
    assert max(sen.values()) - min(sen.values()) <= 0.05 * len(clean), sen
    cells = Counter((r["sentiment"], r["emotion"]) for r in clean)
    for s in sen:
        for e in emo:
            expected = sen[s] * emo[e] / len(clean)
            assert abs(cells[(s, e)] - expected) <= 0.15 * expected, (s, e, cells[(s, e)], expected)
    # within every speaker each sentiment carries every emotion
    per = defaultdict(set)
    for r in clean:
        per[(r["speaker"], r["sentiment"])].add(r["emotion"])
    assert all(len(v) == 4 for v in per.values())


def test_same_texts_across_speakers_of_a_language(clean):
    """Text is crossed with speaker: every sentence is read by at least two voices."""
    readers = defaultdict(set)
    for r in clean:
        readers[(r["language"], r["text"])].add(r["speaker"])
    assert min(len(v) for v in readers.values()) >= 2


# --------------------------------------------------------------------------------- labels

def _formula(p: float, r: float, l: float, g: float) -> tuple[float, float, float]:
    """Independent restatement of the label formula in DATASHEET.md."""
    lr = math.log2(r) / 0.4
    raw = (0.45 * l / 8 + 0.35 * lr + 0.20 * p / 4,
           0.75 * l / 8 + 0.25 * lr,
           0.70 * math.log2(g) + 0.30 * p / 4)
    return tuple(min(1.0, max(0.0, 0.5 + 0.4 * x)) for x in raw)


def test_labels_follow_documented_formula(rows):
    for r in rows:
        want = _formula(float(r["pitch_shift"]), float(r["rate"]), float(r["level"]),
                        float(r["pitch_range"]))
        got = tuple(float(r[k]) for k in LABELS)
        assert np.allclose(got, want, atol=0.0015), f"row {r['id']}: {got} vs {want}"


def test_labels_vary_continuously_within_emotions(clean):
    for e in ("anger", "happiness", "neutral", "sadness"):
        for k in LABELS:
            vals = {r[k] for r in clean if r["emotion"] == e}
            assert len(vals) >= 20, (e, k, len(vals))
    mean = {e: np.mean([float(r["arousal"]) for r in clean if r["emotion"] == e])
            for e in ("anger", "happiness", "neutral", "sadness")}
    assert mean["anger"] > mean["happiness"] > mean["neutral"] > mean["sadness"]
    val = {e: np.mean([float(r["valence"]) for r in clean if r["emotion"] == e])
           for e in ("anger", "happiness", "sadness")}
    assert val["happiness"] > val["anger"] > val["sadness"]


def test_arousal_is_visible_in_the_acoustics(clean, audio):
    """Arousal and dominance track the measured RMS level; rate tracks measured speaking rate."""
    level = np.array([10 * np.log10(np.mean(audio[r["id"]] ** 2)) for r in clean])
    logdur = np.array([math.log(len(audio[r["id"]]) / 16000) for r in clean])
    groups = defaultdict(list)
    for i, r in enumerate(clean):
        groups[(r["language"], r["text"])].append(i)
    speed = np.empty(len(clean))
    for idx in groups.values():
        speed[idx] = -(logdur[idx] - logdur[idx].mean())  # text-normalised speaking rate
    col = {k: np.array([float(r[k]) for r in clean]) for k in (*LABELS, "rate", "level")}
    assert _spearman(col["level"], level) > 0.95
    assert _spearman(col["arousal"], level) > 0.8
    assert _spearman(col["dominance"], level) > 0.9
    assert _spearman(col["rate"], speed) > 0.6
    assert _spearman(col["arousal"], speed) > 0.5
    for e in ("anger", "happiness", "neutral", "sadness"):  # also within each emotion
        m = np.array([r["emotion"] == e for r in clean])
        assert _spearman(col["arousal"][m], level[m]) > 0.4, e


def test_pitch_shift_is_visible_in_the_acoustics(clean, audio):
    """Speaker-normalised F0 (autocorrelation estimate) rises with pitch_shift."""
    def f0(x: np.ndarray) -> float:
        frames = x[: len(x) // 640 * 640].reshape(-1, 640)
        frames = frames[np.sqrt(np.mean(frames ** 2, axis=1)) > 0.3 * np.sqrt(np.mean(x ** 2))]
        lags = np.arange(16000 // 450, 16000 // 60)
        est = []
        for fr in frames:
            ac = np.correlate(fr, fr, "full")[len(fr) - 1:]
            est.append(16000 / lags[np.argmax(ac[lags])])
        return float(np.median(est))

    subset = [r for r in clean if r["speaker"] in sorted({r["speaker"] for r in clean})[::3]]
    by_spk = defaultdict(list)
    for r in subset:
        by_spk[r["speaker"]].append((float(r["pitch_shift"]), 12 * math.log2(f0(audio[r["id"]]))))
    shifts, rel = [], []
    for vals in by_spk.values():
        med = np.median([v[1] for v in vals])
        shifts += [v[0] for v in vals]
        rel += [v[1] - med for v in vals]
    assert _spearman(np.array(shifts), np.array(rel)) > 0.7


# ---------------------------------------------------------------------------------- pairs

def test_pairs_complete_and_consistent(rows, audio):
    pairs = defaultdict(list)
    for r in rows:
        if r["pair"]:
            pairs[r["pair"]].append(r)
    assert 30 <= len(pairs) <= 60, len(pairs)
    same = ["speaker", "text", "sentiment", "emotion", *LABELS, "pitch_shift", "rate",
            "level", "pitch_range", "engine", "voice"]
    for pid, members in pairs.items():
        assert sorted(m["recording"] for m in members) == ["boundary", "headset", "mobile"], pid
        for k in same:
            assert len({m[k] for m in members}) == 1, f"pair {pid}: {k} differs"
        rec = {m["recording"]: audio[m["id"]] for m in members}
        h, b, m = rec["headset"], rec["boundary"], rec["mobile"]
        assert len(b) > len(h) and len(m) == len(h), pid
        n = len(h)
        assert abs(np.corrcoef(h, m)[0, 1]) < 0.999, f"pair {pid}: mobile is unchanged"
        spec_h = np.abs(np.fft.rfft(h, n)) ** 2
        spec_m = np.abs(np.fft.rfft(m, n)) ** 2
        f = np.fft.rfftfreq(n, 1 / 16000)
        low_h, low_m = spec_h[f < 200].sum() / spec_h.sum(), spec_m[f < 200].sum() / spec_m.sum()
        assert low_m < 0.2 * low_h + 1e-6, f"pair {pid}: mobile not band-limited"
        hi_m = spec_m[f > 4500].sum() / spec_m.sum()
        assert hi_m < 0.05, f"pair {pid}: mobile has {hi_m:.2f} energy above 4.5 kHz"
        energy_ratio = 10 * np.log10(np.sum(b ** 2) / np.sum(h ** 2))
        assert abs(energy_ratio) < 0.5, pid
    emo = Counter(ms[0]["emotion"] for ms in pairs.values())
    assert len(emo) == 4 and max(emo.values()) - min(emo.values()) <= 2, emo


def test_clean_set_has_no_duplicate_utterances(clean):
    keys = Counter((r["speaker"], r["text"]) for r in clean)
    assert max(keys.values()) == 1


# ------------------------------------------------------------------------ size, docs, real

def _du_sb(path: Path) -> int:
    """Apparent size in bytes of ``path`` and everything below it, like `du -sb`."""
    return path.stat().st_size + sum(p.lstat().st_size for p in path.rglob("*"))


def test_size_budget():
    size = _du_sb(CORPUS)
    assert size <= SIZE_BUDGET, f"{CORPUS}: {size} bytes > {SIZE_BUDGET}"


def test_datasheet_documents_the_corpus(rows):
    text = (CORPUS / "DATASHEET.md").read_text(encoding="utf-8")
    for needle in ("scripts/make_corpus.py --out sertest/data/corpus", "apt-get install",
                   "What it is NOT", "arousal   = clip(", "valence   = clip(", "Licences",
                   f"**{len(rows)} items**"):
        assert needle in text, needle


def test_real_subset(tmp_path):
    real = CORPUS / "real"
    if not real.exists():
        pytest.skip("optional real-speech subset not present")
    columns, real_rows = _read_csv(real / "manifest.csv")
    assert columns == ["id", "file", "speaker", "sex", "language"]
    assert real_rows and len({r["id"] for r in real_rows}) == len(real_rows)
    for r in real_rows:
        x, sr = sf.read(real / r["file"], always_2d=True)
        assert sr == 16000 and x.shape[1] == 1 and len(x) > 8000, r["id"]
        assert r["sex"] in {"female", "male"} and r["language"] in ISO639_1, r["id"]
    assert "BSD" in (real / "LICENSE").read_text(encoding="utf-8")
    assert _du_sb(real) < REAL_BUDGET


# -------------------------------------------------------------------- generator (script)

@settings(max_examples=200, deadline=None)
@given(p=st.floats(-6, 7), r=st.floats(0.6, 1.6), l=st.floats(-12, 10), g=st.floats(0.3, 2.0),
       dl=st.floats(0.1, 5))
def test_label_formula_properties(p, r, l, g, dl):
    mod = _load_script()
    a, d, v = mod.nominal_labels(p, r, l, g)
    assert all(0.0 <= x <= 1.0 for x in (a, d, v))
    a2, d2, v2 = mod.nominal_labels(p, r, min(10.0, l + dl), g)
    assert a2 >= a and d2 >= d and v2 == v  # louder: never less aroused/dominant; valence unaffected
    a3, d3, v3 = mod.nominal_labels(p, r, l, min(2.0, g * 1.2))
    assert (a3, d3) == (a, d) and v3 >= v  # wider pitch range: only valence rises


@settings(max_examples=50, deadline=None)
@given(lead=st.integers(0, 8000), tail=st.integers(0, 8000), seed=st.integers(0, 2**31 - 1))
def test_trim_silence_keeps_the_utterance(lead, tail, seed):
    mod = _load_script()
    rng = np.random.default_rng(seed)
    tone = 0.3 * np.sin(2 * np.pi * 200 * np.arange(8000) / 16000)
    x = np.concatenate([1e-5 * rng.standard_normal(lead), tone, 1e-5 * rng.standard_normal(tail)])
    y = mod.trim_silence(x)
    assert 8000 - 400 <= len(y) <= 8000 + 2 * (640 + 320)  # pad 40 ms + one 20-ms frame per side
    assert np.sum(y ** 2) >= 0.95 * np.sum(tone ** 2)


def test_plan_matches_committed_manifest(rows):
    """The script's plan (no audio) reproduces every committed row except the rendered level."""
    mod = _load_script()
    plan = mod.build_plan()
    assert [it.id for it in plan] == [r["id"] for r in rows]
    for it, r in zip(plan, rows):
        planned = mod.manifest_row(it)
        for k in ("file", "speaker", "sex", "language", "accent", "text", "sentiment", "emotion",
                  "pitch_shift", "rate", "pair", "recording", "engine", "voice", "pitch_range"):
            assert planned[k] == r[k], f"row {r['id']}: {k} {planned[k]!r} != {r[k]!r}"


@pytest.mark.skipif(shutil.which("espeak-ng") is None,
                    reason="espeak-ng is not on PATH (apt-get install espeak-ng)")
def test_generator_is_deterministic_on_a_subset(rows, tmp_path):
    engines = {"espeak-ng"} | ({"flite"} if shutil.which("flite") else set())
    pick = [next(r for r in rows if r["engine"] == "espeak-ng" and not r["pair"])["id"]]
    if "flite" in engines:
        pick.append(next(r for r in rows if r["engine"] == "flite" and not r["pair"])["id"])
    pick += [next(r for r in rows if r["recording"] == rec and r["engine"] == "espeak-ng")["id"]
             for rec in ("boundary", "mobile")]
    outs = []
    for n in (1, 2):
        out = tmp_path / f"run{n}"
        res = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--only", ",".join(pick),
                              "--no-real"], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        outs.append(out)
    cols1, rows1 = _read_csv(outs[0] / "manifest.csv")
    assert (outs[0] / "manifest.csv").read_bytes() == (outs[1] / "manifest.csv").read_bytes()
    assert [r["id"] for r in rows1] == [r["id"] for r in rows if r["id"] in set(pick)]
    committed = {r["id"]: r for r in rows}
    for r in rows1:
        a, _ = sf.read(outs[0] / r["file"], dtype="int16")
        b, _ = sf.read(outs[1] / r["file"], dtype="int16")
        assert np.array_equal(a, b), r["id"]
        # same plan, labels and parameters as the committed corpus (level up to rendering)
        for k in COLUMNS + EXTRA_COLUMNS:
            if k in ("level", *LABELS):
                assert abs(float(r[k]) - float(committed[r["id"]][k])) < 0.05, (r["id"], k)
            else:
                assert r[k] == committed[r["id"]][k], (r["id"], k)


def test_generator_rejects_bad_options(tmp_path):
    res = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "x"), "--only",
                          "no-such-item", "--no-real"], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "no-such-item" in res.stderr
