"""Property tests for every registered perturbation (sertest/perturb/*)."""

from __future__ import annotations

import json
import random
from functools import partial

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.signal import butter, correlate, csd, freqz, lfilter, sosfiltfilt, welch

from sertest.errors import DataError, UsageError
from sertest.perturb import from_spec, registry
from sertest.perturb.codecs import amr_nb_codec, codec_alignment
from sertest.perturb.filters import tilt_fir
from sertest.perturb.measure import measured_snr_db
from sertest.perturb.noise import AdditiveNoise
from sertest.perturb.small_changes import SMALL_CHANGES
from sertest.seeding import derive_rng

SLOW = {"amr_nb", "gsm", "opus", "mp3", "low_quality_phone", "room", "pitch_shift", "music",
        "babble", "environmental_noise"}
RATES = [8000, 16000, 22050, 44100, 48000]
CODECS = [{"name": "amr_nb"}, {"name": "amr_nb", "bitrate": 12200}, {"name": "gsm"},
          {"name": "opus"}, {"name": "mp3"}, {"name": "g711"}, {"name": "g711", "law": "a"},
          {"name": "low_quality_phone"}]


def quick(n: int):
    return settings(max_examples=n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=float) ** 2)))


def speechlike(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """Voiced-speech-like test signal: jittered glottal pulses through three random
    formants, syllable-rate AM, a −45 dB noise floor, random peak 0.2–0.9."""
    n = max(1, int(sr * seconds))
    t = np.arange(n) / sr
    f0 = rng.uniform(90, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    x = (np.diff(np.floor(np.cumsum(f0 / sr)), prepend=0.0) > 0).astype(float)
    for fc, bw in zip(rng.uniform([400, 900, 2000], [900, 2000, 3300]), (100, 120, 180)):
        r = np.exp(-np.pi * bw / sr)
        x = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * min(fc, 0.45 * sr) / sr), r * r], x)
    x *= 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 6.3))
    x /= np.max(np.abs(x)) or 1.0
    x += 10 ** (-45 / 20) * rng.standard_normal(n)
    return (rng.uniform(0.2, 0.9) * x / np.max(np.abs(x))).astype(np.float32)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A small speech bank (6 FLAC files at mixed rates), a noise folder and an IR file."""
    root = tmp_path_factory.mktemp("perturb_assets")
    bank, noises = root / "bank", root / "noises"
    bank.mkdir()
    noises.mkdir()
    rng = np.random.default_rng(7)
    for i in range(6):
        sr = (16000, 22050, 8000)[i % 3]
        sf.write(bank / f"talker{i}.flac", speechlike(rng, sr, rng.uniform(0.7, 2.0)), sr)
    for i in range(3):
        sf.write(noises / f"noise{i}.wav", (0.1 * rng.standard_normal(12000)).astype(np.float32),
                 16000)
    ir = np.zeros(4000)
    ir[37] = 1.0
    ir[38:] += 0.3 * rng.standard_normal(3962) * np.exp(-np.arange(3962) / 500.0)
    sf.write(root / "ir.wav", ir.astype(np.float32), 16000)
    delta = np.zeros(100)
    delta[37] = 0.5
    sf.write(root / "delta.wav", delta.astype(np.float32), 16000)
    return {"bank": str(bank), "noises": str(noises), "ir": str(root / "ir.wav"),
            "delta": str(root / "delta.wav"), "root": root}


def make(name: str, assets: dict, **params):
    extra = {"babble": {"source": assets["bank"]}, "noise_file": {"folder": assets["noises"]},
             "impulse_response": {"path": assets["ir"]}}.get(name, {})
    return registry()[name](**{**extra, **params})


NAMES = sorted(registry())
STOCHASTIC = [n for n in NAMES if registry()[n].stochastic]
ADDITIVE = [n for n in NAMES if issubclass(registry()[n], AdditiveNoise)]


def test_registry_holds_every_family():
    expected = {"white_noise", "coloured_noise", "babble", "environmental_noise", "music",
                "cough_like", "noise_file", "high_pass", "low_pass", "band_pass",
                "spectral_tilt", "gain", "clip", "compress_dynamic_range", "amr_nb", "gsm",
                "opus", "mp3", "g711", "low_quality_phone", "room", "impulse_response",
                "pitch_shift", *SMALL_CHANGES}
    assert expected <= set(NAMES)
    assert len(SMALL_CHANGES) == 10
    for name in NAMES:
        cls = registry()[name]
        assert cls.name == name and name == name.lower() and " " not in name
        assert cls.description and "\n" not in cls.description
        assert isinstance(cls.length_preserving, bool) and isinstance(cls.stochastic, bool)
        # a list-valued default is drawn per call, so such a perturbation must be stochastic
        if any(isinstance(v, list) and k not in getattr(cls, "list_params", ())
               for k, v in cls.defaults.items()):
            assert cls.stochastic, name


def check_contract(name: str, assets: dict, seed: int, sr: int, seconds: float) -> None:
    p = make(name, assets)
    x = speechlike(np.random.default_rng(seed), sr, seconds)
    x_before = x.copy()
    y1 = p(x, sr, derive_rng(seed, "item", p.key))
    y2 = p(x, sr, derive_rng(seed, "item", p.key))
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(x, x_before)  # input untouched
    assert y1.dtype == np.float32 and y1.ndim == 1
    assert np.all(np.isfinite(y1))
    if p.length_preserving:
        assert y1.shape == x.shape
    else:
        assert y1.size > 0


@pytest.mark.parametrize("name", [n for n in NAMES if n not in SLOW])
@quick(8)
@given(seed=st.integers(0, 2**31 - 1), sr=st.sampled_from(RATES), seconds=st.floats(0.1, 1.2))
def test_same_seed_same_output_and_contract(name, assets, seed, sr, seconds):
    check_contract(name, assets, seed, sr, seconds)


@pytest.mark.parametrize("name", sorted(SLOW))
@quick(3)
@given(seed=st.integers(0, 2**31 - 1), sr=st.sampled_from(RATES), seconds=st.floats(0.1, 1.2))
def test_same_seed_same_output_and_contract_slow(name, assets, seed, sr, seconds):
    check_contract(name, assets, seed, sr, seconds)


@pytest.mark.parametrize("name", STOCHASTIC)
@quick(2)
@given(seed=st.integers(0, 2**31 - 1))
def test_different_seeds_different_output(name, assets, seed):
    p = make(name, assets)
    sr = 16000
    x = speechlike(np.random.default_rng(seed), sr, 0.5)
    outputs = [p(x, sr, derive_rng(seed + k, "item")) for k in range(8)]
    distinct = {o.tobytes() for o in outputs}
    if issubclass(type(p), AdditiveNoise):
        assert len(distinct) == len(outputs)  # fresh noise on every seed
    else:
        assert len(distinct) >= 2  # a value drawn from a short list may repeat


@pytest.mark.parametrize("name", NAMES)
def test_spec_round_trip(name, assets):
    p = make(name, assets)
    spec = p.spec()
    text = json.dumps(spec)
    assert from_spec(json.loads(text)) == p
    assert from_spec(spec).key == p.key
    assert set(spec) == {"name", *type(p).defaults}


@pytest.mark.parametrize("name", NAMES)
def test_unknown_parameter_is_named(name):
    with pytest.raises(UsageError, match="frobnicate_hz"):
        registry()[name](frobnicate_hz=3)


@pytest.mark.parametrize("name", NAMES)
def test_global_random_state_neither_used_nor_changed(name, assets):
    p = make(name, assets)
    sr = 16000
    x = speechlike(np.random.default_rng(3), sr, 0.4)
    saved_np, saved_py = np.random.get_state(), random.getstate()
    try:
        outputs = []
        for global_seed in (1, 2):
            np.random.seed(global_seed)
            random.seed(global_seed)
            before_np, before_py = np.random.get_state(), random.getstate()
            outputs.append(p(x, sr, derive_rng(11, "item")))
            after_np = np.random.get_state()
            assert random.getstate() == before_py
            assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
                       for a, b in zip(before_np, after_np))
        np.testing.assert_array_equal(outputs[0], outputs[1])
    finally:
        np.random.set_state(saved_np)
        random.setstate(saved_py)


# -- additive noise: the SNR rule -------------------------------------------------------------
@pytest.mark.parametrize("name", ADDITIVE)
@quick(5)
@given(seed=st.integers(0, 2**31 - 1), snr=st.sampled_from([-5.0, 0.0, 5.0, 10.0, 20.0, 35.0]),
       sr=st.sampled_from([8000, 16000, 44100]))
def test_measured_snr_equals_requested(name, assets, seed, snr, sr):
    p = make(name, assets, snr_db=snr)
    x = speechlike(np.random.default_rng(seed), sr, 0.8)
    speech, noise = p.components(x, sr, derive_rng(seed, "snr"))
    y = p(x, sr, derive_rng(seed, "snr"))
    np.testing.assert_allclose(speech + noise, y, atol=1e-6)
    assert abs(measured_snr_db(speech, noise) - snr) < 0.5
    # the speech component is the clean input times one gain, and the output keeps the
    # clean RMS unless it had to be peak-limited
    gain = float(np.dot(speech, x) / np.dot(x, x))
    np.testing.assert_allclose(speech, gain * x, atol=1e-6)
    assert np.max(np.abs(y)) <= 1.0 + 1e-6
    if np.max(np.abs(y)) < 1.0 - 1e-4:  # not peak-limited: the clean RMS is restored
        assert np.isclose(_rms(y), _rms(x), rtol=1e-3)
    # black box: project the output on the input and call the rest noise.  The chance
    # correlation of noise and speech biases this estimate by up to ~0.8 dB at -5 dB SNR,
    # so it is checked only from 5 dB up (measured worst case there: 0.27 dB).
    if snr >= 5.0:
        g = float(np.dot(y, x) / np.dot(x, x))
        assert abs(measured_snr_db(g * x, y - g * x) - snr) < 0.5


def test_additive_noise_on_silence_is_silence(assets):
    for name in ADDITIVE:
        y = make(name, assets)(np.zeros(1600, np.float32), 16000, derive_rng(0))
        assert not np.any(y), name


def test_noise_folders_missing_or_empty_are_named(tmp_path):
    empty = tmp_path / "empty_noise_folder"
    empty.mkdir()
    x = speechlike(np.random.default_rng(0), 16000, 0.3)
    with pytest.raises(DataError, match="empty_noise_folder"):
        from_spec({"name": "noise_file", "folder": str(empty)})(x, 16000, derive_rng(0))
    with pytest.raises(DataError, match="no_such_folder"):
        from_spec({"name": "babble", "source": str(tmp_path / "no_such_folder")})(
            x, 16000, derive_rng(0))
    with pytest.raises(UsageError, match="folder"):
        from_spec({"name": "noise_file"})
    from sertest.perturb.noise import CORPUS_AUDIO

    if not CORPUS_AUDIO.is_dir() or not any(CORPUS_AUDIO.iterdir()):
        with pytest.raises(DataError, match="corpus"):
            from_spec("babble")(x, 16000, derive_rng(0))


@pytest.mark.parametrize("whole_file_s", [60.0, 0.5])  # decoded whole / read by segments
def test_noise_file_mixes_a_looped_excerpt_of_a_file(tmp_path, monkeypatch, whole_file_s):
    from sertest.perturb.noise import AudioBank

    monkeypatch.setattr(AudioBank, "whole_file_s", whole_file_s)
    folder = tmp_path / f"noise_{int(whole_file_s)}"
    folder.mkdir()
    sr = 16000
    source = np.random.default_rng(9).standard_normal(int(1.3 * sr)).astype(np.float32)
    sf.write(folder / "n.wav", 0.1 * source, sr, subtype="FLOAT")
    x = speechlike(np.random.default_rng(1), sr, 2.0)  # longer than the file: it loops
    p = from_spec({"name": "noise_file", "folder": str(folder), "snr_db": 10.0})
    for seed in range(3):
        speech, noise = p.components(x, sr, derive_rng(seed))
        assert abs(measured_snr_db(speech, noise) - 10.0) < 0.5
        circ = np.fft.irfft(np.fft.rfft(noise[: source.size]) * np.conj(np.fft.rfft(source)),
                            source.size)
        start = (-int(np.argmax(circ))) % source.size
        expected = source[(start + np.arange(x.size)) % source.size]
        scale = np.dot(noise, expected) / np.dot(expected, expected)
        np.testing.assert_allclose(noise, scale * expected, atol=1e-5 * np.max(np.abs(noise)))


def test_babble_never_uses_the_input_itself(tmp_path):
    sr = 16000
    rng = np.random.default_rng(5)
    x = speechlike(rng, sr, 0.6)
    only = tmp_path / "only"
    only.mkdir()
    sf.write(only / "self.wav", x, sr, subtype="FLOAT")
    with pytest.raises(DataError, match="only the input"):
        from_spec({"name": "babble", "source": str(only)})(x, sr, derive_rng(0))
    two = tmp_path / "two"  # folders are listed once per process: use a new one
    two.mkdir()
    sf.write(two / "self.wav", x, sr, subtype="FLOAT")
    sf.write(two / "other.wav", speechlike(rng, sr, 0.9), sr, subtype="FLOAT")
    p = from_spec({"name": "babble", "source": str(two), "n_talkers": 3})
    spectrum_x = np.fft.rfft(x.astype(float))
    for seed in range(5):
        _, noise = p.components(x, sr, derive_rng(seed))
        # a looped excerpt of the input would be a circular shift of it: circular corr = 1
        circ = np.fft.irfft(np.fft.rfft(noise) * np.conj(spectrum_x), x.size)
        assert np.max(np.abs(circ)) / (np.linalg.norm(noise) * np.linalg.norm(x)) < 0.9


# -- codecs -----------------------------------------------------------------------------------
def _lag_and_corr(y: np.ndarray, ref: np.ndarray, max_lag: int) -> tuple[int, float, float]:
    """(lag of the largest |normalised cross-correlation| within ±max_lag, its value, the
    value at lag 0); a positive lag means ``y`` is late."""
    y, ref = y.astype(float), ref.astype(float)
    full = correlate(y, ref, "full", method="fft") / (np.linalg.norm(y) * np.linalg.norm(ref))
    lags = np.arange(full.size) - (ref.size - 1)
    win = np.abs(lags) <= max_lag
    k = int(np.argmax(np.abs(full[win])))
    return int(lags[win][k]), float(full[win][k]), float(full[lags == 0][0])


def assert_aligned_same_polarity(y: np.ndarray, x: np.ndarray, sr: int, codec_rate: int = 8000):
    """``y`` correlates positively at lag 0 with ``x`` band-limited to 3.4 kHz, and the best
    lag within ±20 ms is 0 up to one sample at the codec rate -- or lag 0 is within 3 % of
    it (CELP codecs rebuild the waveform only approximately, so a pitch-periodic signal can
    have a near-equal neighbouring peak a few samples away)."""
    band = sosfiltfilt(butter(8, min(3400, 0.45 * sr), fs=sr, output="sos"), x)
    lag, best, at_zero = _lag_and_corr(y, band, max_lag=int(0.02 * sr))
    assert at_zero > 0.5, (lag, best, at_zero)
    assert abs(lag) <= max(1, sr // codec_rate) or at_zero >= 0.97 * abs(best), (lag, best, at_zero)


@quick(4)
@given(seed=st.integers(0, 2**31 - 1), sr=st.sampled_from([8000, 16000, 44100]),
       bitrate=st.sampled_from([4750, 7400, 12200]))
def test_amr_polarity_and_delay_compensated(seed, sr, bitrate):
    x = speechlike(np.random.default_rng(seed), sr, 1.0)
    y = from_spec({"name": "amr_nb", "bitrate": bitrate})(x, sr, derive_rng(0))
    assert_aligned_same_polarity(y, x, sr)
    with pytest.raises(AssertionError):  # the check does see a polarity error
        assert_aligned_same_polarity(-y, x, sr)
    # and there was a delay to compensate: opencore AMR-NB is about 5 ms late
    delay_s, _ = codec_alignment(("amr_nb", bitrate), partial(amr_nb_codec, bitrate=bitrate), 8000)
    assert 0.004 < delay_s < 0.006


@pytest.mark.parametrize("spec", CODECS, ids=lambda s: json.dumps(s, sort_keys=True))
@quick(2)
@given(seed=st.integers(0, 2**31 - 1), sr=st.sampled_from([8000, 16000, 22050, 48000]))
def test_codecs_change_but_keep_the_signal(spec, seed, sr):
    x = speechlike(np.random.default_rng(seed), sr, 0.8)
    y = from_spec(spec)(x, sr, derive_rng(seed))
    assert y.shape == x.shape
    assert np.max(np.abs(y - x)) > 1e-3  # something happened
    assert_aligned_same_polarity(y, x, sr, sr if spec["name"] == "opus" else 8000)


def test_codec_handles_input_above_full_scale():
    sr = 16000
    x = 3.0 * speechlike(np.random.default_rng(1), sr, 0.5)
    y = from_spec({"name": "g711"})(x, sr, derive_rng(0))
    band = sosfiltfilt(butter(8, 3400, fs=sr, output="sos"), x)
    assert np.max(np.abs(y)) > 1.5  # scaled back, not clipped at 1
    assert _lag_and_corr(y, band, 5)[2] > 0.9


# -- filters ----------------------------------------------------------------------------------
CATALOGUE_TILT = {"down": [(100, 0.0), (4000, -6.0), (6000, -12.0)],
                  "up": [(500, -18.0), (2000, -6.0), (4000, 0.0), (7900, 6.0)]}


@pytest.mark.parametrize("direction", ["down", "up"])
def test_spectral_tilt_magnitudes_match_catalogue(direction):
    sr = 16000
    freqs = np.array([f for f, _ in CATALOGUE_TILT[direction]], dtype=float)
    target = np.array([g for _, g in CATALOGUE_TILT[direction]])
    _, h = freqz(tilt_fir(direction, sr), worN=freqs, fs=sr)
    assert np.all(np.abs(20 * np.log10(np.abs(h)) - target) < 1.5)
    # black box on white noise: transfer magnitude relative to 4 kHz, and alignment
    x = (0.1 * np.random.default_rng(0).standard_normal(4 * sr)).astype(np.float32)
    y = from_spec({"name": "spectral_tilt", "direction": direction})(x, sr, derive_rng(0))
    f, pxy = csd(x, y, fs=sr, nperseg=2048)
    _, pxx = welch(x, fs=sr, nperseg=2048)
    h_db = 20 * np.log10(np.abs(pxy / pxx))
    at = lambda hz: h_db[np.argmin(np.abs(f - hz))]  # noqa: E731
    at_4k = dict(CATALOGUE_TILT[direction])[4000]
    for hz, gain in CATALOGUE_TILT[direction]:
        assert abs((at(hz) - at(4000)) - (gain - at_4k)) < 1.5
    assert _lag_and_corr(y, x, 50)[0] == 0
    assert np.isclose(_rms(y), _rms(x), rtol=1e-3)


@pytest.mark.parametrize("name,key", [("high_pass", "cutoff_hz"), ("low_pass", "cutoff_hz"),
                                      ("band_pass", "high_hz")])
def test_cutoff_above_nyquist_is_a_usage_error(name, key):
    p = from_spec({"name": name, key: 5000.0})
    x = speechlike(np.random.default_rng(0), 8000, 0.2)
    with pytest.raises(UsageError, match=key):
        p(x, 8000, derive_rng(0))
    assert p(x, 16000, derive_rng(0)).shape == x.shape


@quick(5)
@given(cutoff=st.floats(200, 3000), order=st.integers(1, 8))
def test_butterworth_attenuates_the_stopband(cutoff, order):
    sr = 16000
    x = np.random.default_rng(1).standard_normal(2 * sr).astype(np.float32)
    f, pxx = welch(x, fs=sr, nperseg=1024)
    for name, stop in (("low_pass", f > 3 * cutoff), ("high_pass", f < cutoff / 3)):
        y = from_spec({"name": name, "cutoff_hz": cutoff, "order": order})(x, sr, derive_rng(0))
        _, pyy = welch(y, fs=sr, nperseg=1024)
        if stop.sum() >= 2:
            # beyond a factor 3 in frequency a Butterworth of order N loses >= ~9.5 N dB;
            # Welch leakage limits what can be measured to about 30 dB
            atten = 10 * np.log10(np.mean(pyy[stop][1:]) / np.mean(pxx[stop][1:]))
            assert atten < -min(6.0 * order, 25.0)


@quick(8)
@given(seed=st.integers(0, 2**31 - 1), ratio=st.floats(0.0005, 0.2))
def test_clip_clips_the_requested_fraction(seed, ratio):
    x = np.random.default_rng(seed).standard_normal(20000).astype(np.float32)
    y = from_spec({"name": "clip", "ratio": ratio})(x, 16000, derive_rng(0))
    changed = int(np.sum(y != x))
    assert changed == int(np.floor(ratio * x.size))
    assert np.max(np.abs(y)) == pytest.approx(np.max(np.abs(y[y != x])), rel=1e-6)


def test_compressor_reduces_loud_parts_only():
    sr = 16000
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 440 * t)
    x = np.concatenate([10 ** (-40 / 20) * tone, 10 ** (-6 / 20) * tone]).astype(np.float32)
    y = from_spec({"name": "compress_dynamic_range"})(x, sr, derive_rng(0))
    quiet_db = 20 * np.log10(np.max(np.abs(y[2000:14000])))
    loud_db = 20 * np.log10(np.max(np.abs(y[sr + 4000:sr + 14000])))
    assert abs(quiet_db - (-40.0)) < 0.1
    # −6 dBFS is 14 dB over the −20 dB threshold; ratio 0.8 removes 11.2 dB of it
    assert abs(loud_db - (-6.0 - 0.8 * 14.0)) < 1.0


def test_gain_is_exact():
    x = speechlike(np.random.default_rng(2), 16000, 0.3)
    y = from_spec({"name": "gain", "gain_db": 6.0})(x, 16000, derive_rng(0))
    np.testing.assert_allclose(y, x * 10 ** (6 / 20), rtol=1e-6)


# -- rooms, impulse responses, pitch -------------------------------------------------------------
@pytest.mark.parametrize("preset", ["booth", "office", "meeting", "lecture", "left_3m", "right_1m"])
def test_room_is_aligned_same_length_peak_normalised(preset):
    sr = 16000
    x = (0.2 * np.random.default_rng(4).standard_normal(sr)).astype(np.float32)
    y = from_spec({"name": "room", "preset": preset})(x, sr, derive_rng(0))
    assert y.shape == x.shape
    assert np.max(np.abs(y)) == pytest.approx(1.0, abs=1e-6)
    assert _lag_and_corr(y, x, 400)[0] == 0
    assert _lag_and_corr(y, x, 400)[1] < 0.999  # reverberation changed it


def test_every_room_preset_fits_its_room():
    from sertest.perturb.rooms import PRESETS

    assert {"booth", "office", "meeting", "lecture", "centre_1m", "right_3m"} <= set(PRESETS)
    for preset in PRESETS:
        from_spec({"name": "room", "preset": preset})  # geometry is checked on construction


def test_room_geometry_errors_name_the_parameter():
    with pytest.raises(UsageError, match="distance_m"):
        from_spec({"name": "room", "preset": "booth", "distance_m": 5.0})
    with pytest.raises(UsageError, match="preset"):
        from_spec({"name": "room", "preset": "cathedral"})


def test_longer_rt60_gives_more_reverberation():
    sr = 16000
    x = np.zeros(sr, np.float32)
    x[100] = 1.0
    energies = []
    for rt60 in (0.2, 0.8):
        y = from_spec({"name": "room", "preset": None, "rt60_s": rt60})(x, sr, derive_rng(0))
        energies.append(float(np.sum(y[100 + int(0.05 * sr):] ** 2) / np.sum(y**2)))
    assert energies[1] > energies[0]


def test_impulse_response_alignment(assets):
    sr = 16000
    x = speechlike(np.random.default_rng(8), sr, 0.5)
    aligned = from_spec({"name": "impulse_response", "path": assets["delta"]})(x, sr, derive_rng(0))
    np.testing.assert_allclose(aligned, x / np.max(np.abs(x)), atol=1e-6)
    raw = from_spec({"name": "impulse_response", "path": assets["delta"], "align": "none",
                     "level": "rms"})(x, sr, derive_rng(0))
    shifted = np.concatenate([np.zeros(37), x[:-37].astype(float)])
    np.testing.assert_allclose(raw, shifted * _rms(x) / _rms(shifted), atol=1e-6)
    with pytest.raises(DataError, match="missing.wav"):
        from_spec({"name": "impulse_response", "path": str(assets["root"] / "missing.wav")})(
            x, sr, derive_rng(0))


@pytest.mark.parametrize("semitones", [-12.0, 12.0])
def test_pitch_shift_moves_the_frequency(semitones):
    sr = 16000
    t = np.arange(sr) / sr
    x = (0.5 * np.sin(2 * np.pi * 400 * t)).astype(np.float32)
    y = from_spec({"name": "pitch_shift", "semitones": semitones})(x, sr, derive_rng(0))
    f, pyy = welch(y, fs=sr, nperseg=4096)
    assert f[np.argmax(pyy)] == pytest.approx(400 * 2 ** (semitones / 12), rel=0.03)


# -- small changes ------------------------------------------------------------------------------
def test_small_changes_use_the_catalogue_lists():
    reg = registry()
    assert reg["additive_tone"].defaults == {"freq_range_hz": [5000, 7000],
                                             "peak_snr_db": [40, 45, 50]}
    for name in ("append_zeros", "prepend_zeros", "crop_beginning", "crop_end"):
        assert reg[name].defaults == {"samples": [100, 500, 1000]}
        assert reg[name].length_preserving is False
    assert reg["clip_small"].defaults == {"ratio": [0.001, 0.002, 0.003]}
    assert reg["gain_small"].defaults == {"gain_db": [-2, -1, 1, 2]}
    assert reg["high_pass_small"].defaults == {"cutoff_hz": [50, 100, 150], "order": 1}
    assert reg["low_pass_small"].defaults == {"cutoff_hz": [7500, 7000, 6500], "order": 1}
    assert reg["white_noise_small"].defaults == {"snr_db": [35, 40, 45]}
    assert all(reg[n].stochastic for n in SMALL_CHANGES)


@quick(6)
@given(seed=st.integers(0, 2**31 - 1), sr=st.sampled_from(RATES))
def test_small_change_lengths_and_drawn_values(seed, sr):
    x = speechlike(np.random.default_rng(seed), sr, 0.3)
    for name in ("append_zeros", "prepend_zeros", "crop_beginning", "crop_end"):
        p = from_spec(name)
        y, drawn = p.perturb(x, sr, derive_rng(seed, name))
        k = drawn["samples"]
        assert np.array_equal(y, p(x, sr, derive_rng(seed, name)))  # as calling it
        assert k in (100, 500, 1000)
        if name == "append_zeros":
            assert y.size == x.size + k and not np.any(y[x.size:])
        elif name == "prepend_zeros":
            assert y.size == x.size + k and np.array_equal(y[k:], x)
        elif name == "crop_beginning":
            assert np.array_equal(y, x[min(k, x.size // 2):])
        else:
            assert np.array_equal(y, x[: x.size - min(k, x.size // 2)])
    tone = from_spec("additive_tone")
    y, drawn = tone.perturb(x, sr, derive_rng(seed, "tone"))
    assert 5000 <= drawn["freq_hz"] <= 7000 and drawn["peak_snr_db"] in (40, 45, 50)
    added = y.astype(float) - x
    ratio_db = 20 * np.log10(np.max(np.abs(x)) / np.max(np.abs(added)))
    assert abs(ratio_db - drawn["peak_snr_db"]) < 0.2
    gain = from_spec("gain_small")
    y, drawn = gain.perturb(x, sr, derive_rng(seed, "gain"))
    np.testing.assert_allclose(y, x * 10 ** (drawn["gain_db"] / 20), rtol=1e-6)
    assert not hasattr(gain, "last_parameters")  # nothing drawn is kept on the shared instance


@pytest.mark.parametrize("sr,coded", [(16000, 16000), (8000, 8000), (22050, 48000)])
def test_opus_codes_at_the_input_rate_when_libopus_takes_it(sr, coded, monkeypatch):
    from sertest.perturb import codecs

    monkeypatch.setattr(codecs, "_ALIGN", {})  # alignment is measured per (codec, rate)
    x = speechlike(np.random.default_rng(0), sr, 0.5)
    from_spec({"name": "opus", "bitrate": 16000})(x, sr, derive_rng(0))
    assert set(codecs._ALIGN) == {("opus", 16000, coded)}


def test_the_decoded_audio_bank_stays_under_its_bound_and_outputs_do_not_depend_on_it(
        tmp_path, monkeypatch):
    """The bank keeps at most ``AudioBank.cache_mb`` of decoded files (least recently used
    out first); a file decoded again gives the same samples, so the mixture is the same
    whatever was evicted."""
    from sertest.perturb.noise import AudioBank

    folder = tmp_path / "bank_bound"
    folder.mkdir()
    sr = 16000
    rng = np.random.default_rng(3)
    for i in range(12):  # 12 files of 1 s: 64 KB each as float32
        sf.write(folder / f"n{i}.wav", 0.1 * rng.standard_normal(sr).astype(np.float32), sr,
                 subtype="FLOAT")
    x = speechlike(np.random.default_rng(1), sr, 1.0)
    spec = {"name": "babble", "source": str(folder), "n_talkers": 6}
    monkeypatch.setattr(AudioBank, "_decoded", type(AudioBank._decoded)())
    monkeypatch.setattr(AudioBank, "_decoded_bytes", 0)
    monkeypatch.setattr(AudioBank, "cache_mb", 1.0)  # room for all 12
    roomy = [from_spec(spec)(x, sr, derive_rng(seed)) for seed in range(4)]
    assert AudioBank._decoded_bytes > 0.25 * 2**20
    monkeypatch.setattr(AudioBank, "_decoded", type(AudioBank._decoded)())
    monkeypatch.setattr(AudioBank, "_decoded_bytes", 0)
    monkeypatch.setattr(AudioBank, "cache_mb", 0.15)  # room for two
    tight = [from_spec(spec)(x, sr, derive_rng(seed)) for seed in range(4)]
    assert AudioBank._decoded_bytes <= 0.15 * 2**20
    assert sum(a.nbytes for a in AudioBank._decoded.values()) == AudioBank._decoded_bytes
    for a, b in zip(roomy, tight):
        np.testing.assert_array_equal(a, b)
