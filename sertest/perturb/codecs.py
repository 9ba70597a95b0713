"""Real speech/audio codecs, encoded and decoded in memory, plus the low-quality-phone chain.

Every codec resamples to its own rate with soxr, round-trips through the real encoder and
decoder (PyAV / FFmpeg for AMR-NB, Opus, MP3 and G.711; libsndfile for GSM 06.10 because
PyAV has no GSM encoder), and resamples back.  The output is **aligned and as long as the
input**: the codec's delay and polarity are measured once per (codec, bitrate, rate) by
cross-correlation on a fixed speech-like reference signal and then compensated (e.g.
opencore AMR-NB delays by 5 ms at 8 kHz).  Inputs whose peak exceeds 1.0 are scaled into
range for the 16-bit encoders and scaled back afterwards.  Codecs are deterministic.
"""

from __future__ import annotations

import functools
import io
import threading
from typing import Any, Callable

import numpy as np
from scipy.signal import fftconvolve, lfilter

from ..errors import UsageError
from .base import Perturbation, db_to_amplitude, register
from .filters import butterworth, compress_dynamic_range
from .measure import (check_below_nyquist, check_choice, check_number, peak, peak_limit,
                      peak_normalise, restore_rms)
from .noise import coloured

AMR_NB_BITRATES = (4750, 5150, 5900, 6700, 7400, 7950, 10200, 12200)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_MAX_LAG_S = 0.06
_PEAK_IN = 0.999

Codec = Callable[[np.ndarray, int], np.ndarray]


# -- plumbing -------------------------------------------------------------------------------------
def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """soxr (HQ) resampling; identity if the rates are equal."""
    if rate_in == rate_out:
        return np.asarray(x, dtype=np.float32)
    import soxr

    return np.asarray(soxr.resample(np.asarray(x, dtype=np.float32), rate_in, rate_out),
                      dtype=np.float32)


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad ``x`` to ``n`` samples."""
    if x.size >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - x.size, dtype=x.dtype)])


def pyav_roundtrip(x: np.ndarray, rate: int, encoder: str, decoder: str,
                   bitrate: int | None = None) -> np.ndarray:
    """Encode float ``x`` (mono, [-1, 1]) with the PyAV ``encoder`` and decode it again.

    No container: packets go straight from encoder to decoder.  Returns float32 at the
    decoder's output rate (resampled to ``rate`` if the decoder uses another, e.g. Opus).
    The output includes the codec's delay (see :func:`codec_alignment`).
    """
    import av

    enc = av.CodecContext.create(encoder, "w")
    enc.sample_rate = rate
    enc.layout = "mono"
    enc.format = "s16"
    if bitrate:
        enc.bit_rate = int(bitrate)
    try:
        enc.open()
    except Exception as exc:  # noqa: BLE001 -- FFmpeg errors come in several types
        raise UsageError(f"codec {encoder} at {rate} Hz, bitrate {bitrate}: {exc}") from exc
    dec = av.CodecContext.create(decoder, "r")
    dec.sample_rate = rate
    dec.layout = "mono"
    if enc.extradata:
        dec.extradata = enc.extradata
    dec.open()
    frame_size = enc.frame_size or 1024
    pcm = np.clip(np.round(np.asarray(x, dtype=np.float64) * 32767.0), -32768, 32767)
    pcm = fit_length(pcm.astype(np.int16), int(np.ceil(max(x.size, 1) / frame_size)) * frame_size)
    chunks: list[np.ndarray] = []
    out_rate = [rate]

    def drain(packets: Any) -> None:
        for packet in packets:
            for frame in dec.decode(packet):
                a = frame.to_ndarray()
                a = a.reshape(-1) if a.shape[0] == 1 else a[0]
                if a.dtype == np.int16:
                    a = a.astype(np.float32) / 32768.0
                chunks.append(a.astype(np.float32))
                out_rate[0] = frame.sample_rate

    for start in range(0, pcm.size, frame_size):
        frame = av.AudioFrame.from_ndarray(pcm[None, start:start + frame_size],
                                           format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        drain(enc.encode(frame))
    drain(enc.encode(None))
    drain([None])
    y = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return resample(y, out_rate[0], rate)


def gsm_roundtrip(x: np.ndarray, rate: int) -> np.ndarray:
    """GSM 06.10 full-rate (13 kbit/s, 8 kHz) via libsndfile, in a WAV in memory."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(x, dtype=np.float32), rate, format="WAV", subtype="GSM610")
    buffer.seek(0)
    y, _ = sf.read(buffer, dtype="float32")
    return y


def reference_signal(rate: int, seconds: float = 1.0) -> np.ndarray:
    """A fixed speech-like signal (glottal pulses 90–150 Hz through three formants, AM at
    3 Hz, peak 0.5) used to measure codec delay and polarity.  No randomness."""
    n = int(rate * seconds)
    t = np.arange(n) / rate
    f0 = 120.0 + 30.0 * np.sin(2 * np.pi * 1.5 * t)
    phase = np.cumsum(f0 / rate)
    x = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(float)
    for fc, bw in ((700.0, 130.0), (1220.0, 70.0), (2600.0, 160.0)):
        if fc < 0.45 * rate:
            r = np.exp(-np.pi * bw / rate)
            x = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / rate), r * r], x)
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


_ALIGN: dict[tuple[Any, ...], tuple[float, float]] = {}
_ALIGN_LOCK = threading.Lock()


def codec_alignment(key: tuple[Any, ...], codec: Codec, rate: int) -> tuple[float, float]:
    """``(delay_s, polarity)`` of ``codec`` at ``rate``, measured once per ``key``.

    Cross-correlates the codec's output for :func:`reference_signal` with its input over lags
    within ±60 ms; the lag of the largest |correlation|, refined to a fraction of a sample by
    parabolic interpolation, is the delay (in seconds); the sign there is the polarity.
    """
    with _ALIGN_LOCK:
        if key in _ALIGN:
            return _ALIGN[key]
    x = reference_signal(rate)
    max_lag = int(_MAX_LAG_S * rate)
    y = fit_length(codec(np.concatenate([x, np.zeros(2 * max_lag, np.float32)]), rate),
                   x.size + 2 * max_lag).astype(np.float64)
    corr = fftconvolve(y, x[::-1].astype(np.float64), mode="full")  # index x.size-1 = lag 0
    lags = np.arange(corr.size) - (x.size - 1)
    window = np.flatnonzero(np.abs(lags) <= max_lag)
    best = int(window[np.argmax(np.abs(corr[window]))])
    polarity = float(np.sign(corr[best]) or 1.0)
    frac = 0.0
    if 0 < best < corr.size - 1:
        left, mid, right = polarity * corr[best - 1:best + 2]
        curvature = left - 2.0 * mid + right
        if curvature < 0:
            frac = float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    result = ((lags[best] + frac) / rate, polarity)
    with _ALIGN_LOCK:
        _ALIGN[key] = result
    return result


def aligned_roundtrip(signal: np.ndarray, sampling_rate: int, codec_rate: int, codec: Codec,
                      key: tuple[Any, ...]) -> np.ndarray:
    """Resample to ``codec_rate``, run ``codec``, resample back, then undo the codec's delay
    (rounded to a sample at ``sampling_rate``) and polarity; same length as ``signal``."""
    n = signal.size
    if n == 0:
        return signal.copy()
    scale = _PEAK_IN / peak(signal) if peak(signal) > _PEAK_IN else 1.0
    xc = resample(signal * scale, sampling_rate, codec_rate)
    # the delay is measured per coding rate (e.g. LAME's is a fixed number of samples)
    delay_s, polarity = codec_alignment((*key, codec_rate), codec, codec_rate)
    pad = int(np.ceil((_MAX_LAG_S + max(delay_s, 0.0)) * codec_rate))
    yc = codec(np.concatenate([xc, np.zeros(pad, np.float32)]), codec_rate)
    y = resample(yc, codec_rate, sampling_rate)
    delay = int(round(delay_s * sampling_rate))
    y = y[delay:] if delay >= 0 else np.concatenate([np.zeros(-delay, np.float32), y])
    return (polarity * fit_length(y, n) / scale).astype(np.float32)


# -- perturbations ----------------------------------------------------------------------------
def amr_nb(signal: np.ndarray, sampling_rate: int, bitrate: int) -> np.ndarray:
    """AMR-NB (opencore) round trip at ``bitrate`` bit/s, 8 kHz, aligned (see module doc)."""
    codec = functools.partial(amr_nb_codec, bitrate=int(bitrate))
    return aligned_roundtrip(signal, sampling_rate, 8000, codec, ("amr_nb", int(bitrate)))


def amr_nb_codec(x: np.ndarray, rate: int, bitrate: int) -> np.ndarray:
    """The bare AMR-NB (opencore) round trip of float ``x`` (mono, [-1, 1]) at ``rate`` Hz
    (8000, the codec's rate) and ``bitrate`` bit/s, float32 at ``rate``: neither delay nor
    polarity compensated (:func:`amr_nb` does both with :func:`codec_alignment`; the codec is
    about 5 ms late).

    >>> y = amr_nb_codec(np.zeros(8000, np.float32), 8000, 7400)
    >>> y.dtype, abs(len(y) - 8000) <= 320  # within two 20-ms frames of the input
    (dtype('float32'), True)
    """
    return pyav_roundtrip(x, rate, "libopencore_amrnb", "amrnb", bitrate)


@register
class AmrNb(Perturbation):
    """AMR-NB narrow-band speech codec (8 kHz) at ``bitrate`` bit/s (one of 4750, 5150, 5900,
    6700, 7400, 7950, 10200, 12200) via PyAV/opencore; delay and polarity compensated."""

    name = "amr_nb"
    description = "AMR-NB codec round trip at bitrate (bit/s), 8 kHz, aligned"
    defaults = {"bitrate": 7400}

    def validate(self) -> None:
        check_choice(self, "bitrate", AMR_NB_BITRATES)

    def apply(self, signal, sampling_rate, rng, params):
        return amr_nb(signal, sampling_rate, int(params["bitrate"]))


@register
class Gsm(Perturbation):
    """GSM 06.10 full-rate codec (13 kbit/s, 8 kHz) via libsndfile in memory."""

    name = "gsm"
    description = "GSM 06.10 full-rate codec round trip (13 kbit/s, 8 kHz)"
    defaults: dict[str, Any] = {}

    def apply(self, signal, sampling_rate, rng, params):
        return aligned_roundtrip(signal, sampling_rate, 8000, gsm_roundtrip, ("gsm",))


@register
class Opus(Perturbation):
    """Opus (libopus) at ``bitrate`` bit/s (6000–510000), coded at the input rate if
    libopus takes it (8, 12, 16, 24 or 48 kHz, as a 16 kHz VoIP client does), else at
    48 kHz.  Coding 16 kHz speech at 16 kHz instead of 48 kHz costs a third less and
    spares two resamplings; it limits the coded band to 8 kHz, above which a 16 kHz signal
    has nothing anyway."""

    name = "opus"
    version = 2  # 2: coded at the input rate when libopus takes it (1: always 48 kHz)
    description = "Opus codec round trip at bitrate (bit/s), coded at the input rate (libopus rates) or 48 kHz"
    defaults = {"bitrate": 12000}

    def validate(self) -> None:
        check_number(self, "bitrate", low=6000, high=510000, integer=True)

    def apply(self, signal, sampling_rate, rng, params):
        bitrate = int(params["bitrate"])
        codec = functools.partial(_opus_codec, bitrate=bitrate)
        rate = sampling_rate if sampling_rate in OPUS_RATES else 48000
        return aligned_roundtrip(signal, sampling_rate, rate, codec, ("opus", bitrate))


def _opus_codec(x: np.ndarray, rate: int, bitrate: int) -> np.ndarray:
    return pyav_roundtrip(x, rate, "libopus", "libopus", bitrate)


@register
class Mp3(Perturbation):
    """MP3 (LAME via PyAV) at ``bitrate`` bit/s (8000–320000; LAME rounds to a legal rate
    for the coding rate), coded at the input rate if LAME supports it, else the next
    higher supported rate (up to 48 kHz)."""

    name = "mp3"
    description = "MP3 (LAME) round trip at bitrate (bit/s)"
    defaults = {"bitrate": 32000}

    def validate(self) -> None:
        check_number(self, "bitrate", low=8000, high=320000, integer=True)

    def apply(self, signal, sampling_rate, rng, params):
        bitrate = int(params["bitrate"])
        rate = next((r for r in MP3_RATES if r >= sampling_rate), MP3_RATES[-1])
        codec = functools.partial(_mp3_codec, bitrate=bitrate)
        return aligned_roundtrip(signal, sampling_rate, rate, codec, ("mp3", bitrate))


def _mp3_codec(x: np.ndarray, rate: int, bitrate: int) -> np.ndarray:
    return pyav_roundtrip(x, rate, "libmp3lame", "mp3float", bitrate)


@register
class G711(Perturbation):
    """G.711 telephone companding (``law`` mu|a, 8 kHz, 64 kbit/s) via PyAV."""

    name = "g711"
    description = "G.711 mu-law|A-law round trip (8 kHz, 64 kbit/s)"
    defaults = {"law": "mu"}

    def validate(self) -> None:
        check_choice(self, "law", ("mu", "a"))

    def apply(self, signal, sampling_rate, rng, params):
        codec_name = "pcm_mulaw" if params["law"] == "mu" else "pcm_alaw"
        codec = functools.partial(_pcm_codec, codec_name=codec_name)
        return aligned_roundtrip(signal, sampling_rate, 8000, codec, ("g711", codec_name))


def _pcm_codec(x: np.ndarray, rate: int, codec_name: str) -> np.ndarray:
    return pyav_roundtrip(x, rate, codec_name, codec_name)


@register
class LowQualityPhone(Perturbation):
    """The ser-tests low-quality-phone chain (stochastic: the pink noise).

    1. peak-normalise to 0 dBFS;
    2. compress (``threshold_db`` −20 dBFS, ``ratio`` 0.8, attack 0.01 s, release 0.02 s,
       4 dB knee) and clip to [−1, 1];
    3. AMR-NB at ``bitrate`` bit/s (8 kHz), back to the input rate (aligned);
    4. peak-normalise;
    5. add pink noise of RMS ``noise_gain_db`` dBFS (−25) high-passed at ``noise_highpass_hz``
       (3000 Hz, Butterworth order 2); the sum is halved ((x + n)/2);
    6. restore the input's RMS, then peak-limit to 1.0.
    """

    name = "low_quality_phone"
    description = "peak-norm, compression, AMR-NB at bitrate (bit/s), +HP pink noise (-25 dB)"
    #: the chain runs these perturbations' code: a version bump of any changes this key
    uses = ("compress_dynamic_range", "amr_nb", "coloured_noise", "high_pass")
    defaults = {"bitrate": 7400, "threshold_db": -20.0, "ratio": 0.8, "attack_s": 0.01,
                "release_s": 0.02, "noise_gain_db": -25.0, "noise_highpass_hz": 3000.0}
    stochastic = True

    def validate(self) -> None:
        check_choice(self, "bitrate", AMR_NB_BITRATES)
        check_number(self, "threshold_db", low=-120.0, high=0.0)
        check_number(self, "ratio", low=0.0, high=1.0)
        check_number(self, "attack_s", low=0.0, high=10.0, strict_low=True)
        check_number(self, "release_s", low=0.0, high=10.0, strict_low=True)
        check_number(self, "noise_gain_db", low=-200.0, high=20.0)
        check_number(self, "noise_highpass_hz", low=0.0, strict_low=True)

    def apply(self, signal, sampling_rate, rng, params):
        check_below_nyquist(self, "noise_highpass_hz", float(params["noise_highpass_hz"]),
                            sampling_rate)
        x = peak_normalise(signal.astype(np.float64))
        x = compress_dynamic_range(x, sampling_rate, float(params["threshold_db"]),
                                   float(params["ratio"]), float(params["attack_s"]),
                                   float(params["release_s"]), clip=True)
        x = amr_nb(x.astype(np.float32), sampling_rate, int(params["bitrate"])).astype(np.float64)
        x = peak_normalise(x)
        pink = coloured(signal.size, sampling_rate, "pink", rng)
        pink_rms = float(np.sqrt(np.mean(pink**2))) if pink.size else 0.0
        if pink_rms > 0:
            pink *= db_to_amplitude(float(params["noise_gain_db"])) / pink_rms
        noise = butterworth(pink.astype(np.float32), sampling_rate, "highpass", 2,
                            float(params["noise_highpass_hz"])).astype(np.float64)
        y = restore_rms((x + noise) / 2.0, signal)
        return peak_limit(y).astype(np.float32)
