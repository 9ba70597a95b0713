"""Additive noise: white, coloured, babble, environmental, music, cough-like, noise files.

**Mixing rule** (all classes here; follows ser-tests / auglib where sensible):

1. A noise track ``n`` as long as the speech ``s`` is rendered onto silence.
2. The noise is scaled so that ``rms(s) / rms(n') = 10 ** (snr_db / 20)``, i.e.
   ``10 log10(rms(s)^2 / rms(n')^2) = snr_db`` exactly; RMS is taken over the whole signal
   (speech pauses included, as in auglib) and over the whole noise track (so a short burst
   at 10 dB SNR is locally much louder than the speech).
3. The mixture ``s + n'`` is scaled by one gain ``g = rms(s) / rms(s + n')`` (the clean RMS is
   restored), and if its peak then exceeds 1.0 the gain is lowered so that the peak is 1.0
   (peak-limiting, never clipping).

Because both components get the same gain ``g``, the measured SNR of the output components
``g s`` and ``g n'`` equals ``snr_db`` up to float32 rounding.  :meth:`AdditiveNoise.components`
returns these two components (their sum is the output).  A silent input is returned
unchanged (0 dB relative to silence is silence).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.fft
from scipy.signal import butter, fftconvolve, sosfilt

from ..errors import DataError, UsageError
from .base import Perturbation, register, rms
from .measure import check_choice, check_number, check_range, peak

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")
CORPUS_AUDIO = Path(__file__).resolve().parents[1] / "data" / "corpus" / "audio"
COLOURS = ("white", "pink", "brown", "blue", "violet")
ENVIRONMENT_KINDS = ("traffic", "fan", "rain", "wind")
_COLOUR_EXPONENT = {"white": 0.0, "pink": -0.5, "brown": -1.0, "blue": 0.5, "violet": 1.0}
_SHAPING_FLOOR_HZ = 20.0


# -- mixing --------------------------------------------------------------------------------
def mix_at_snr(speech: np.ndarray, noise: np.ndarray,
               snr_db: float) -> tuple[np.ndarray, np.ndarray]:
    """The two output components (speech, noise) of the module's mixing rule (float64).

    ``rms(speech)/rms(noise_out) = 10**(snr_db/20)``; the sum has the RMS of ``speech``
    unless that would put its peak above 1.0, in which case both are scaled so the peak is 1.0.
    """
    s = np.asarray(speech, dtype=np.float64)
    n = np.asarray(noise, dtype=np.float64)
    s_rms, n_rms = rms(s), rms(n)
    if s_rms == 0.0 or n_rms == 0.0:
        return s, np.zeros_like(s)
    n = n * (s_rms / n_rms) * 10.0 ** (-float(snr_db) / 20.0)
    mixture = s + n
    m_rms = rms(mixture)
    gain = s_rms / m_rms if m_rms > 0.0 else 1.0
    mixture_peak = peak(mixture) * gain
    if mixture_peak > 1.0:
        gain /= mixture_peak
    return s * gain, n * gain


def coloured(n: int, sampling_rate: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of ``n`` samples whose power spectrum is ``∝ f**(2*exponent)``.

    pink 1/f, brown 1/f², blue f, violet f², white flat (power); the shaping is flat below
    20 Hz and the DC bin is zero, so low colours do not drift.  Unit-free (scale it yourself).
    """
    white = rng.standard_normal(n)
    exponent = _COLOUR_EXPONENT[colour]
    if exponent == 0.0 or n < 2:
        return white
    spectrum = scipy.fft.rfft(white)
    freqs = scipy.fft.rfftfreq(n, 1.0 / sampling_rate)
    shape = np.maximum(freqs, _SHAPING_FLOOR_HZ) ** exponent
    shape[0] = 0.0
    return scipy.fft.irfft(spectrum * shape, n)


def _butter(x: np.ndarray, order: int, cutoff_hz: float | list[float], btype: str,
            sampling_rate: int) -> np.ndarray:
    """Causal Butterworth filter; cutoffs are clamped below 0.45 × sampling rate."""
    nyq_safe = 0.45 * sampling_rate
    wn = np.minimum(np.asarray(cutoff_hz, dtype=float), nyq_safe)
    sos = butter(order, wn, btype=btype, fs=sampling_rate, output="sos")
    return sosfilt(sos, x)


def _smooth_random(n: int, sampling_rate: int, rate_hz: float,
                   rng: np.random.Generator) -> np.ndarray:
    """A slowly varying random curve in [0, 1] (about ``rate_hz`` changes per second)."""
    knots = max(2, int(np.ceil(n / sampling_rate * rate_hz)) + 2)
    values = rng.random(knots)
    return np.interp(np.linspace(0, knots - 1, n), np.arange(knots), values)


# -- base class ------------------------------------------------------------------------------
class AdditiveNoise(Perturbation):
    """Base of the additive-noise perturbations: subclasses implement :meth:`make_noise`."""

    length_preserving = True
    stochastic = True

    def make_noise(self, signal: np.ndarray, sampling_rate: int, rng: np.random.Generator,
                   params: dict[str, Any]) -> np.ndarray:
        """A noise track as long as ``signal`` (any level; the SNR rule sets it)."""
        raise NotImplementedError

    def _components(self, signal: np.ndarray, sampling_rate: int, rng: np.random.Generator,
                    params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        if signal.size == 0 or rms(signal) == 0.0:
            return signal.astype(np.float64), np.zeros(signal.shape, dtype=np.float64)
        noise = self.make_noise(signal, sampling_rate, rng, params)
        return mix_at_snr(signal, noise, float(params["snr_db"]))

    def components(self, signal: np.ndarray, sampling_rate: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(speech_component, noise_component)`` of the output (float64; they sum to it).

        Consumes ``rng`` exactly as :meth:`__call__` does, so the same generator state gives
        the components of the same output.
        """
        x = np.asarray(signal, dtype=np.float32)
        params = self.draw(rng)
        return self._components(x, int(sampling_rate), rng, params)

    def apply(self, signal: np.ndarray, sampling_rate: int, rng: np.random.Generator,
              params: dict[str, Any]) -> np.ndarray:
        s, n = self._components(signal, sampling_rate, rng, params)
        return (s + n).astype(np.float32)

    def validate(self) -> None:
        check_number(self, "snr_db", low=-60.0, high=120.0)


# -- synthetic noises ------------------------------------------------------------------------
@register
class WhiteNoise(AdditiveNoise):
    """Gaussian white noise at ``snr_db`` (RMS rule of the module docstring)."""

    name = "white_noise"
    description = "Gaussian white noise at snr_db (dB, RMS speech/noise)"
    defaults = {"snr_db": 20.0}

    def make_noise(self, signal, sampling_rate, rng, params):
        return rng.standard_normal(signal.shape[0])


@register
class ColouredNoise(AdditiveNoise):
    """Gaussian noise with spectral shaping: ``colour`` pink (1/f power), brown (1/f²),
    blue (f), violet (f²) or white, at ``snr_db`` dB."""

    name = "coloured_noise"
    description = "coloured Gaussian noise (white|pink|brown|blue|violet) at snr_db (dB)"
    defaults = {"colour": "pink", "snr_db": 20.0}

    def validate(self) -> None:
        super().validate()
        check_choice(self, "colour", COLOURS)

    def make_noise(self, signal, sampling_rate, rng, params):
        return coloured(signal.shape[0], sampling_rate, params["colour"], rng)


@register
class EnvironmentalNoise(AdditiveNoise):
    """Procedural environmental noise at ``snr_db`` dB; ``kind`` (one drawn per call if a list):

    - ``traffic``: brown rumble low-passed at 300 Hz plus pink noise (150–2000 Hz) whose level
      swells with a few random vehicle pass-bys (1–3 s wide).
    - ``fan``: mains-like hum (fundamental 50/60/100/120 Hz, 12 harmonics, 1/k amplitudes,
      random phases) over pink air-flow noise low-passed at 1.5 kHz with slow level wander.
    - ``rain``: Poisson crackle (300–900 drops/s, exponential amplitudes, 2 ms high-passed
      grains) over a pink bed high-passed at 500 Hz.
    - ``wind``: pink/brown noise band-passed at 80–1200 Hz with gusty (0.5 Hz) level changes.
    """

    name = "environmental_noise"
    description = "synthetic traffic|fan|rain|wind noise at snr_db (dB)"
    defaults = {"kind": list(ENVIRONMENT_KINDS), "snr_db": 20.0}

    def validate(self) -> None:
        super().validate()
        check_choice(self, "kind", ENVIRONMENT_KINDS)

    def make_noise(self, signal, sampling_rate, rng, params):
        n, sr = signal.shape[0], sampling_rate
        kind = params["kind"]
        t = np.arange(n) / sr
        if kind == "traffic":
            rumble = _butter(coloured(n, sr, "brown", rng), 2, 300.0, "lowpass", sr)
            hiss = _butter(coloured(n, sr, "pink", rng), 2, [150.0, 2000.0], "bandpass", sr)
            envelope = np.full(n, 0.3)
            for _ in range(int(rng.integers(1, 4))):
                centre = rng.uniform(0.0, t[-1] if n > 1 else 0.0)
                width = rng.uniform(1.0, 3.0)
                envelope += rng.uniform(0.5, 1.5) * np.exp(-0.5 * ((t - centre) / (width / 2)) ** 2)
            return rumble / (rms(rumble) or 1.0) + 0.7 * envelope * hiss / (rms(hiss) or 1.0)
        if kind == "fan":
            f0 = float(rng.choice([50.0, 60.0, 100.0, 120.0]))
            hum = np.zeros(n)
            for k in range(1, 13):
                if k * f0 < 0.45 * sr:
                    hum += np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
            air = _butter(coloured(n, sr, "pink", rng), 2, 1500.0, "lowpass", sr)
            wander = 0.8 + 0.4 * _smooth_random(n, sr, 0.3, rng)
            return hum / (rms(hum) or 1.0) + 1.5 * wander * air / (rms(air) or 1.0)
        if kind == "rain":
            rate = rng.uniform(300.0, 900.0)
            count = int(rng.poisson(rate * n / sr))
            drops = np.zeros(n)
            if count:
                np.add.at(drops, rng.integers(0, n, count), rng.exponential(1.0, count))
            grain_len = max(2, int(0.002 * sr))
            grain = rng.standard_normal(grain_len) * np.exp(-np.arange(grain_len) / (grain_len / 4))
            crackle = _butter(fftconvolve(drops, grain)[:n], 2, 1000.0, "highpass", sr)
            bed = _butter(coloured(n, sr, "pink", rng), 2, 500.0, "highpass", sr)
            return crackle / (rms(crackle) or 1.0) + 0.5 * bed / (rms(bed) or 1.0)
        # wind
        base = 0.5 * coloured(n, sr, "pink", rng) + coloured(n, sr, "brown", rng)
        band = _butter(base, 2, [80.0, 1200.0], "bandpass", sr)
        gusts = 0.2 + _smooth_random(n, sr, 0.5, rng) ** 2
        return gusts * band


@register
class Music(AdditiveNoise):
    """Procedural music at ``snr_db`` dB: a random diatonic chord per bar (triad plus bass
    an octave down; harmonic tones with 8 harmonics, 1/k^1.5 amplitudes, 10 ms attack and
    exponential decay) over a beat (kick on every beat, hi-hat on the off-beats) at a tempo
    drawn from 80–140 BPM.
    """

    name = "music"
    description = "synthetic chords with a beat (80-140 BPM) at snr_db (dB)"
    defaults = {"snr_db": 20.0}

    _MAJOR = (0, 2, 4, 5, 7, 9, 11)

    def make_noise(self, signal, sampling_rate, rng, params):
        n, sr = signal.shape[0], sampling_rate
        out = np.zeros(n)
        beat_s = 60.0 / rng.uniform(80.0, 140.0)
        bar = max(1, int(round(4 * beat_s * sr)))
        key = int(rng.integers(45, 58))  # MIDI note of the tonic (A2..A#3)
        offset = int(rng.integers(0, bar))  # the signal starts somewhere inside a bar
        for start in range(-offset, n, bar):
            degree = int(rng.integers(0, 7))
            notes = [key + self._MAJOR[(degree + step) % 7] + 12 * ((degree + step) // 7)
                     for step in (0, 2, 4)]
            notes.append(notes[0] - 12)
            lo, hi = max(start, 0), min(start + bar, n)
            tt = (np.arange(lo, hi) - start) / sr
            env = np.minimum(tt / 0.01, 1.0) * np.exp(-tt / (0.4 * bar / sr))
            for note in notes:
                f = 440.0 * 2.0 ** ((note - 69) / 12.0)
                phase = rng.uniform(0, 2 * np.pi)
                for k in range(1, 9):
                    if k * f < 0.45 * sr:
                        out[lo:hi] += env * np.sin(2 * np.pi * k * f * tt + k * phase) / k**1.5
        beat = max(1, int(round(beat_s * sr)))
        kick_len = min(int(0.15 * sr), beat)
        tk = np.arange(kick_len) / sr
        # kick: a sine gliding from 120 Hz down to 50 Hz, 60 ms decay
        sweep = 50 * tk + 70 * 0.03 * (1 - np.exp(-tk / 0.03))
        kick = np.sin(2 * np.pi * sweep) * np.exp(-tk / 0.06)
        hat_len = min(int(0.04 * sr), beat)
        hat = _butter(rng.standard_normal(hat_len), 2, min(6000.0, 0.4 * sr), "highpass", sr)
        hat *= np.exp(-np.arange(hat_len) / (0.01 * sr))
        drums = np.zeros(n)
        for pos in range(-(offset % beat), n, beat):
            for grain, at, gain in ((kick, pos, 1.0), (hat, pos + beat // 2, 0.15)):
                lo, hi = max(at, 0), min(at + grain.size, n)
                if hi > lo:
                    drums[lo:hi] += gain * grain[lo - at:hi - at]
        out_rms, drums_rms = rms(out), rms(drums)
        return out / (out_rms or 1.0) + 0.6 * drums / (drums_rms or 1.0)


@register
class CoughLike(AdditiveNoise):
    """One cough-like event at a random position, at ``snr_db`` dB (default 10, as the
    catalogue's coughing/sneezing): 1–3 broadband bursts of 80–250 ms (noise through two
    random formant-like resonances at 400–2500 Hz plus a broadband part; 5 ms attack,
    exponential decay), 50–150 ms apart.  The noise RMS is taken over the whole track, so
    the burst is locally much louder than the speech.  Truncated if the signal is shorter.
    """

    name = "cough_like"
    description = ("one synthetic cough- or sneeze-like event (kind) at a random position, "
                   "snr_db (dB, track RMS)")
    defaults = {"snr_db": 10.0, "kind": "cough"}

    def validate(self) -> None:
        super().validate()
        if self.params["kind"] not in ("cough", "sneeze"):
            from ..errors import UsageError

            raise UsageError(f"cough_like: kind must be 'cough' or 'sneeze', "
                             f"got {self.params['kind']!r}")

    def make_noise(self, signal, sampling_rate, rng, params):
        n, sr = signal.shape[0], sampling_rate
        if params.get("kind") == "sneeze":
            return self._sneeze(n, sr, rng)
        parts = []
        for i in range(int(rng.integers(1, 4))):
            if i:
                parts.append(np.zeros(int(rng.uniform(0.05, 0.15) * sr)))
            length = max(8, int(rng.uniform(0.08, 0.25) * sr))
            noise = rng.standard_normal(length)
            burst = 0.5 * _butter(noise, 1, 300.0, "highpass", sr)
            for _ in range(2):
                fc = rng.uniform(400.0, min(2500.0, 0.4 * sr))
                burst += _butter(noise, 2, [fc / 1.3, fc * 1.3], "bandpass", sr)
            t = np.arange(length) / sr
            burst *= np.minimum(t / 0.005, 1.0) * np.exp(-t / (length / sr / 3))
            burst *= rng.uniform(0.5, 1.0) if i else 1.0
            parts.append(burst)
        return self._place(np.concatenate(parts), n, rng)

    @staticmethod
    def _place(event, n, rng):
        event = event[:n]
        start = int(rng.integers(0, n - event.size + 1))
        track = np.zeros(n)
        track[start:start + event.size] = event
        return track

    def _sneeze(self, n, sr, rng):
        """A sneeze: a quiet rising inhalation (0.2-0.4 s, band 300-1500 Hz) followed by
        one sharp, bright burst (0.1-0.2 s, high-passed at 1 kHz, 2 ms attack, fast decay)."""
        inhale_len = max(8, int(rng.uniform(0.2, 0.4) * sr))
        inhale = _butter(rng.standard_normal(inhale_len), 2,
                         [300.0, min(1500.0, 0.45 * sr)], "bandpass", sr)
        inhale *= 0.15 * np.linspace(0.0, 1.0, inhale_len) ** 2
        burst_len = max(8, int(rng.uniform(0.1, 0.2) * sr))
        burst = _butter(rng.standard_normal(burst_len), 2, min(1000.0, 0.4 * sr), "highpass", sr)
        t = np.arange(burst_len) / sr
        burst *= np.minimum(t / 0.002, 1.0) * np.exp(-t / (burst_len / sr / 5))
        return self._place(np.concatenate([inhale, burst]), n, rng)


# -- audio banks (babble, noise files) ----------------------------------------------------------
class AudioBank:
    """The audio files of a folder, decoded lazily to a sampling rate (thread-safe).

    Files up to ``whole_file_s`` seconds are decoded whole, resampled and kept in an LRU
    cache (at most ``cache_mb`` MB per process, shared by all banks); longer files are read
    segment by segment.  Excerpts start at a random position and loop.
    """

    whole_file_s = 60.0
    #: the decoded files kept (MB, all banks of the process): a file of the bundled speech
    #: bank decodes in about 0.5 ms, and the whole bank (968 files, 79 MB as float32) is
    #: what a babble condition over a few hundred items would otherwise keep resident.  The
    #: ``default`` suite's babble condition on the bundled corpus (240 mixtures of 4-7
    #: talkers): 887 decodes with 32 MB, 1,192 with 8 MB (0.53 against 0.95 CPU-s)
    cache_mb = 8.0
    _decoded: "OrderedDict[tuple[str, int], np.ndarray]" = OrderedDict()
    _decoded_bytes = 0
    _lock = threading.Lock()

    def __init__(self, folder: Path, paths: list[Path]) -> None:
        self.folder = folder
        self.paths = paths
        self._info: dict[int, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def info(self, index: int) -> tuple[int, int]:
        """``(frames, sampling_rate)`` of file ``index`` (cached)."""
        if index not in self._info:
            import soundfile as sf

            try:
                meta = sf.info(str(self.paths[index]))
            except Exception as exc:  # noqa: BLE001 -- libsndfile raises several types
                raise DataError(f"cannot read audio file {self.paths[index]}: {exc}") from exc
            self._info[index] = (int(meta.frames), int(meta.samplerate))
        return self._info[index]

    def whole(self, index: int, sampling_rate: int) -> np.ndarray:
        """File ``index`` decoded to mono float32 at ``sampling_rate`` (LRU-cached)."""
        key = (str(self.paths[index]), int(sampling_rate))
        cls = type(self)
        with cls._lock:
            if key in cls._decoded:
                cls._decoded.move_to_end(key)
                return cls._decoded[key]
        audio = _read(self.paths[index], sampling_rate)
        with cls._lock:
            if key not in cls._decoded:
                cls._decoded[key] = audio
                cls._decoded_bytes += audio.nbytes
                while cls._decoded_bytes > cls.cache_mb * 2**20 and len(cls._decoded) > 1:
                    _, old = cls._decoded.popitem(last=False)
                    cls._decoded_bytes -= old.nbytes
            return cls._decoded[key]

    def expected_length(self, index: int, sampling_rate: int) -> int:
        frames, rate = self.info(index)
        return int(round(frames * sampling_rate / rate))

    def excerpt(self, index: int, n: int, sampling_rate: int,
                rng: np.random.Generator) -> np.ndarray:
        """``n`` samples of file ``index`` from a random position, looped (float64)."""
        frames, rate = self.info(index)
        if frames == 0:
            return np.zeros(n)
        if frames <= self.whole_file_s * rate:
            audio = self.whole(index, sampling_rate)
            if audio.size == 0:
                return np.zeros(n)
            start = int(rng.integers(0, audio.size))
            return audio[(start + np.arange(n)) % audio.size].astype(np.float64)
        import soundfile as sf
        import soxr

        need = int(np.ceil(n * rate / sampling_rate)) + 64
        start = int(rng.integers(0, frames))
        pieces, pos = [], start
        with sf.SoundFile(str(self.paths[index])) as f:
            while sum(p.shape[0] for p in pieces) < need:
                f.seek(pos)
                block = f.read(min(need, frames - pos), dtype="float32", always_2d=True)
                pieces.append(block.mean(axis=1))
                pos = 0
        segment = np.concatenate(pieces)[:need]
        if rate != sampling_rate:
            segment = soxr.resample(segment, rate, sampling_rate)
        return np.resize(segment.astype(np.float64), n)


_BANKS: dict[str, AudioBank] = {}
_BANKS_LOCK = threading.Lock()


def _read(path: Path, sampling_rate: int) -> np.ndarray:
    import soundfile as sf
    import soxr

    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read audio file {path}: {exc}") from exc
    audio = audio.mean(axis=1)
    if rate != sampling_rate and audio.size:
        audio = soxr.resample(audio, rate, sampling_rate).astype(np.float32)
    return np.ascontiguousarray(audio, dtype=np.float32)


def audio_bank(folder: str | Path, what: str) -> AudioBank:
    """The :class:`AudioBank` of ``folder`` (listed once per process).

    Raises :class:`DataError` naming the folder if it is missing or holds no audio files
    (``what`` says which parameter or bank it is, for the message).
    """
    path = Path(folder).expanduser().resolve()
    key = str(path)
    with _BANKS_LOCK:
        bank = _BANKS.get(key)
        if bank is None:
            if not path.is_dir():
                raise DataError(f"{what}: folder {path} does not exist")
            files = sorted(p for p in path.rglob("*")
                           if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            if not files:
                raise DataError(f"{what}: folder {path} holds no audio files "
                                f"({', '.join(AUDIO_SUFFIXES)})")
            bank = _BANKS[key] = AudioBank(path, files)
        return bank


def _is_same_recording(bank: AudioBank, index: int, signal: np.ndarray,
                       sampling_rate: int) -> bool:
    """True if bank file ``index`` looks like ``signal`` itself (same length, corr > 0.99)."""
    if abs(bank.expected_length(index, sampling_rate) - signal.size) > 2:
        return False
    other = bank.whole(index, sampling_rate)[: signal.size].astype(np.float64)
    x = signal[: other.size].astype(np.float64)
    denom = np.sqrt(np.sum(x * x) * np.sum(other * other))
    return bool(denom > 0 and np.sum(x * other) / denom > 0.99)


@register
class Babble(AdditiveNoise):
    """Babble: the sum of ``n_talkers`` other speakers at ``snr_db`` dB (default 20).

    ``n_talkers`` defaults to the list [4, 5, 6, 7] (one value drawn per call, as the
    catalogue's IntUni(4, 7)).  Each talker is a random file of the speech bank read from a
    random position and looped, normalised to unit RMS and weighted by a gain drawn
    uniformly from the integers in ``talker_gain_range_db`` (default [-20, -13] dB, the
    catalogue's gain_aux_db).  Files are distinct if the bank is large enough, and a file
    that is the input itself (same length, correlation > 0.99) is never picked.

    ``source``: ``"corpus"`` (the bundled corpus, ``sertest/data/corpus/audio/*.flac``) or a
    folder of audio files (searched recursively), e.g. MUSAN ``speech``.
    """

    name = "babble"
    description = "sum of n_talkers speakers from a speech bank (corpus or folder) at snr_db (dB)"
    defaults = {"n_talkers": [4, 5, 6, 7], "snr_db": 20.0, "source": "corpus",
                "talker_gain_range_db": [-20, -13]}
    list_params: ClassVar[tuple[str, ...]] = ("talker_gain_range_db",)

    def validate(self) -> None:
        super().validate()
        check_number(self, "n_talkers", low=1, high=64, integer=True)
        check_range(self, "talker_gain_range_db", low=-120, high=120, integer=True)
        if not isinstance(self.params["source"], str) or not self.params["source"]:
            raise UsageError(f"perturbation {self.name!r}: parameter source="
                             f"{self.params['source']!r} must be 'corpus' or a folder path")

    def bank(self) -> AudioBank:
        """The speech bank named by ``source`` (listed once per process)."""
        source = self.params["source"]
        if source == "corpus":
            try:
                return audio_bank(CORPUS_AUDIO, "babble source 'corpus'")
            except DataError as exc:
                raise DataError(
                    f"babble: the bundled speech corpus {CORPUS_AUDIO} is missing or empty "
                    f"({exc}); pass source=<folder of speech files> instead") from exc
        return audio_bank(source, "babble parameter source")

    def files(self) -> list[str]:
        return [str(p) for p in self.bank().paths]

    def make_noise(self, signal, sampling_rate, rng, params):
        bank = self.bank()
        n = signal.shape[0]
        k = int(params["n_talkers"])
        lo, hi = params["talker_gain_range_db"]
        chosen: list[int] = []
        for index in rng.permutation(len(bank)):
            if len(chosen) == k:
                break
            if not _is_same_recording(bank, int(index), signal, sampling_rate):
                chosen.append(int(index))
        if not chosen:
            raise DataError(f"babble: the speech bank {bank.folder} holds only the input "
                            f"recording itself")
        while len(chosen) < k:  # a small bank: reuse files (at other read positions)
            chosen.append(chosen[int(rng.integers(len(chosen)))])
        noise = np.zeros(n)
        for index in chosen:
            talker = bank.excerpt(index, n, sampling_rate, rng)
            gain_db = float(rng.integers(int(lo), int(hi) + 1))
            talker_rms = rms(talker)
            if talker_rms > 0:
                noise += talker / talker_rms * 10.0 ** (gain_db / 20.0)
        return noise


@register
class NoiseFile(AdditiveNoise):
    """A random excerpt of a random audio file of ``folder`` (e.g. a MUSAN ``noise`` or
    ``music`` copy; searched recursively), from a random position and looped, at
    ``snr_db`` dB.  Missing or empty folder: :class:`DataError` naming it."""

    name = "noise_file"
    description = "random excerpt (looped) of a random file in folder, at snr_db (dB)"
    defaults = {"folder": "", "snr_db": 20.0}

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.params["folder"], str) or not self.params["folder"]:
            raise UsageError(f"perturbation {self.name!r}: parameter folder must name a folder "
                             f"of noise files (e.g. a MUSAN copy)")

    def files(self) -> list[str]:
        return [str(p) for p in audio_bank(self.params["folder"],
                                           "noise_file parameter folder").paths]

    def make_noise(self, signal, sampling_rate, rng, params):
        bank = audio_bank(params["folder"], "noise_file parameter folder")
        index = int(rng.integers(len(bank)))
        return bank.excerpt(index, signal.shape[0], sampling_rate, rng)
