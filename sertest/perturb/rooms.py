"""Reverberation: simulated shoebox rooms (pyroomacoustics) and user impulse responses.

Both convolve with an impulse response (FFT), drop the samples before the direct sound so
the output is time-aligned with the input, keep the input length (no reverberant tail,
like auglib ``FFTConvolve(keep_tail=False)``), and set the level as ser-tests does: the peak
is normalised to 1.0 (``level="peak"``, ``NormalizeByPeak``) or, with ``level="rms"``, the
input RMS is restored.  Both are deterministic; impulse responses are cached in-process.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.signal import fftconvolve

from ..errors import DataError, UsageError
from .base import Perturbation, register
from .measure import check_choice, check_number, peak_normalise, restore_rms

SPEED_OF_SOUND = 343.0
LEVELS = ("peak", "rms")

#: Approximations of the ser-tests reference rooms (AIR 1.4.2, Jeub et al. 2009): room size
#: (m), RT60 (s) and the catalogue's distance (booth_0_3 = 1.5 m, office_0_2 = 2 m,
#: meeting_0_3 = 1.9 m, lecture_0_1 = 2.25 m).  Simulated, not the measured responses.
#: MARDY (York; about 9.3 x 4.6 x 2.6 m, RT60 about 0.45 s) positions: loudspeaker 1/2/3 m in
#: front of the microphone, centre or 30 degrees to the left/right.
PRESETS: dict[str, dict[str, Any]] = {
    name: {"room_dim_m": dims, "rt60_s": rt60, "distance_m": distance, "azimuth_deg": 0.0}
    for name, dims, rt60, distance in (
        ("booth", [3.0, 1.8, 2.2], 0.12, 1.5),
        ("office", [5.0, 6.4, 2.9], 0.43, 2.0),
        ("meeting", [8.0, 5.0, 3.1], 0.23, 1.9),
        ("lecture", [10.8, 10.9, 3.15], 0.78, 2.25),
    )
}
for _d in (1, 2, 3):
    for _side, _az in (("centre", 0.0), ("left", 30.0), ("right", -30.0)):
        PRESETS[f"{_side}_{_d}m"] = {"room_dim_m": [9.3, 4.6, 2.6], "rt60_s": 0.45,
                                     "distance_m": float(_d), "azimuth_deg": _az}
_FALLBACK = {"room_dim_m": [5.0, 4.0, 3.0], "rt60_s": 0.4, "distance_m": 1.5, "azimuth_deg": 0.0}
_WALL_MARGIN_M = 0.2

_IR_CACHE: dict[tuple[Any, ...], tuple[np.ndarray, int]] = {}
_IR_LOCK = threading.Lock()
_IR_CACHE_MAX = 64


def _cached(key: tuple[Any, ...], make: Any) -> tuple[np.ndarray, int]:
    with _IR_LOCK:
        if key in _IR_CACHE:
            return _IR_CACHE[key]
    value = make()
    with _IR_LOCK:
        if len(_IR_CACHE) >= _IR_CACHE_MAX:
            _IR_CACHE.pop(next(iter(_IR_CACHE)))
        _IR_CACHE[key] = value
    return value


def convolve_aligned(signal: np.ndarray, ir: np.ndarray, delay: int, level: str) -> np.ndarray:
    """``(signal * ir)[delay : delay + len(signal)]`` with the level rule (float32)."""
    n = signal.size
    if n == 0:
        return signal.copy()
    y = fftconvolve(signal.astype(np.float64), ir.astype(np.float64), mode="full")[delay:delay + n]
    y = np.concatenate([y, np.zeros(n - y.size)]) if y.size < n else y
    y = peak_normalise(y) if level == "peak" else restore_rms(y, signal)
    return y.astype(np.float32)


def geometry(room_dim_m: list[float], distance_m: float,
             azimuth_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Microphone and source positions (m), both at 0.42 × the room height (at most 1.5 m).

    The source is ``distance_m`` from the microphone at ``azimuth_deg`` (0 = along x); the
    pair's midpoint sits at (0.47, 0.43) of the floor plan -- deliberately off-centre so that
    opposite walls do not send coinciding reflections that would outweigh the direct sound.
    """
    dims = np.asarray(room_dim_m, dtype=float)
    az = np.deg2rad(azimuth_deg)
    offset = distance_m * np.array([np.cos(az), np.sin(az), 0.0])
    height = min(1.5, 0.42 * dims[2])
    mic = np.array([0.47 * dims[0], 0.43 * dims[1], height]) - offset / 2.0
    return mic, mic + offset


def simulate_ir(room_dim_m: tuple[float, ...], rt60_s: float, distance_m: float,
                azimuth_deg: float, max_order: int, sampling_rate: int) -> tuple[np.ndarray, int]:
    """Image-source impulse response and its direct-path delay in samples (cached).

    Wall absorption and the reflection order come from Sabine's formula
    (``pyroomacoustics.inverse_sabine``); the order is capped at ``max_order`` for speed (the
    late tail then decays faster than ``rt60_s``).  No air absorption, no randomised images.
    """
    key = ("room", tuple(room_dim_m), rt60_s, distance_m, azimuth_deg, max_order, sampling_rate)

    def make() -> tuple[np.ndarray, int]:
        import pyroomacoustics as pra

        absorption, order = pra.inverse_sabine(rt60_s, list(room_dim_m))
        room = pra.ShoeBox(list(room_dim_m), fs=sampling_rate, materials=pra.Material(absorption),
                           max_order=int(min(order, max_order)), air_absorption=False,
                           use_rand_ism=False)
        mic, source = geometry(list(room_dim_m), distance_m, azimuth_deg)
        room.add_source(source)
        room.add_microphone(mic)
        room.compute_rir()
        ir = np.asarray(room.rir[0][0], dtype=np.float64)
        # pyroomacoustics centres a fractional-delay filter of frac_delay_length taps on
        # each image's arrival time, so the direct sound peaks at distance/c + taps // 2.
        delay = int(round(distance_m / SPEED_OF_SOUND * sampling_rate
                          + pra.constants.get("frac_delay_length") // 2))
        ir.setflags(write=False)
        return ir, delay

    return _cached(key, make)


@register
class Room(Perturbation):
    """Simulated shoebox room (image-source method, pyroomacoustics; positions: :func:`geometry`).

    ``preset``: ``booth``/``office``/``meeting``/``lecture`` (approximations of the
    catalogue's AIR rooms) or ``centre_1m`` … ``right_3m`` (MARDY-like positions), see
    :data:`PRESETS`; ``null`` uses a 5 x 4 x 3 m room, RT60 0.4 s, 1.5 m.  ``room_dim_m``
    ([x, y, z] m), ``rt60_s`` (s), ``distance_m`` (m) and ``azimuth_deg`` (degrees) override
    the preset when not null.  ``max_order`` caps the reflection order.  The output is aligned
    to the direct sound, as long as the input, and peak-normalised (``level`` "peak") or
    RMS-restored (``level`` "rms").
    """

    name = "room"
    description = "simulated shoebox room (preset or room_dim_m, rt60_s s, distance_m m), aligned"
    defaults = {"preset": "office", "room_dim_m": None, "rt60_s": None, "distance_m": None,
                "azimuth_deg": None, "max_order": 40, "level": "peak"}
    list_params: ClassVar[tuple[str, ...]] = ("room_dim_m",)

    def validate(self) -> None:
        preset = self.params["preset"]
        if preset is not None:
            check_choice(self, "preset", tuple(PRESETS))
        dims = self.params["room_dim_m"]
        if dims is not None and (not isinstance(dims, list) or len(dims) != 3 or not all(
                isinstance(d, (int, float)) and not isinstance(d, bool) and 1.0 <= d <= 100.0
                for d in dims)):
            raise UsageError(f"perturbation {self.name!r}: parameter room_dim_m={dims!r} must be "
                             f"null or [x, y, z] in metres, each 1..100")
        check_number(self, "rt60_s", low=0.05, high=5.0, allow_none=True)
        check_number(self, "distance_m", low=0.1, high=50.0, allow_none=True)
        check_number(self, "azimuth_deg", low=-180.0, high=180.0, allow_none=True)
        check_number(self, "max_order", low=0, high=200, integer=True)
        check_choice(self, "level", LEVELS)
        drawn = ("preset", "rt60_s", "distance_m", "azimuth_deg")
        if not any(isinstance(self.params[k], list) for k in drawn):
            self.resolve(self.params)  # a fixed geometry can be checked now

    def resolve(self, params: dict[str, Any]) -> dict[str, Any]:
        """Room size, RT60, distance and azimuth after applying the preset and overrides."""
        base = PRESETS[params["preset"]] if params["preset"] is not None else _FALLBACK
        out = {k: (params[k] if params[k] is not None else base[k]) for k in base}
        mic, source = geometry(out["room_dim_m"], out["distance_m"], out["azimuth_deg"])
        dims = np.asarray(out["room_dim_m"], dtype=float)
        for point in (mic, source):
            if np.any(point < _WALL_MARGIN_M) or np.any(point > dims - _WALL_MARGIN_M):
                raise UsageError(
                    f"perturbation {self.name!r}: parameter distance_m={out['distance_m']} "
                    f"(azimuth_deg={out['azimuth_deg']}) does not fit in room_dim_m="
                    f"{out['room_dim_m']} with {_WALL_MARGIN_M} m from the walls")
        return out

    def apply(self, signal, sampling_rate, rng, params):
        geo = self.resolve(params)
        ir, delay = simulate_ir(tuple(float(d) for d in geo["room_dim_m"]), float(geo["rt60_s"]),
                                float(geo["distance_m"]), float(geo["azimuth_deg"]),
                                int(params["max_order"]), sampling_rate)
        return convolve_aligned(signal, ir, delay, params["level"])


def load_ir(path: str, channel: int, sampling_rate: int) -> np.ndarray:
    """Impulse response ``channel`` of audio file ``path`` at ``sampling_rate`` (cached by
    path, modification time, channel and rate)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"impulse_response: parameter path: file {file} does not exist")
    key = ("ir", str(file.resolve()), file.stat().st_mtime_ns, channel, sampling_rate)

    def make() -> tuple[np.ndarray, int]:
        import soundfile as sf
        import soxr

        try:
            audio, rate = sf.read(str(file), dtype="float64", always_2d=True)
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"impulse_response: cannot read {file}: {exc}") from exc
        if channel >= audio.shape[1]:
            raise UsageError(f"perturbation 'impulse_response': parameter channel={channel} but "
                             f"{file} has {audio.shape[1]} channel(s)")
        ir = audio[:, channel]
        if rate != sampling_rate and ir.size:
            ir = soxr.resample(ir, rate, sampling_rate)
        if not np.any(ir):
            raise DataError(f"impulse_response: {file} channel {channel} is silent")
        ir = np.ascontiguousarray(ir)
        ir.setflags(write=False)
        return ir, 0

    return _cached(key, make)[0]


@register
class ImpulseResponse(Perturbation):
    """Convolve with the impulse response in audio file ``path`` (``channel``; resampled to
    the signal's rate), e.g. MARDY ``ir_1_C.wav`` channel 0 or an AIR response.

    ``align``: ``"peak"`` drops the samples before the IR's largest magnitude (the direct
    sound), so the output is time-aligned; ``"none"`` keeps the IR's own delay, exactly like
    ser-tests' ``FFTConvolve(keep_tail=False)``.  Same length as the input; ``level`` as for
    ``room``.  (audiomentations ApplyImpulseResponse is not used: it picks the file with the
    global ``random``, rescales the peak to 0.5 and cannot align.)
    """

    name = "impulse_response"
    description = "FFT convolution with a user impulse response file (path), aligned, same length"
    defaults = {"path": "", "channel": 0, "align": "peak", "level": "peak"}

    def validate(self) -> None:
        if not isinstance(self.params["path"], str) or not self.params["path"]:
            raise UsageError(f"perturbation {self.name!r}: parameter path must name an impulse "
                             f"response audio file")
        check_number(self, "channel", low=0, integer=True)
        check_choice(self, "align", ("peak", "none"))
        check_choice(self, "level", LEVELS)

    def files(self) -> list[str]:
        return [str(Path(self.params["path"]).expanduser())]

    def apply(self, signal, sampling_rate, rng, params):
        ir = load_ir(params["path"], int(params["channel"]), sampling_rate)
        delay = int(np.argmax(np.abs(ir))) if params["align"] == "peak" else 0
        return convolve_aligned(signal, ir, delay, params["level"])
