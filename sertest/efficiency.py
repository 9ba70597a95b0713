"""Efficiency profile of a model: parameters, file size, peak RAM, real-time factor.

The axis on which the Wav2Small paper compares its students.  Peak RAM and speed are
measured in a fresh subprocess, so neither the audit's own memory nor other models
distort them:

* ``peak_ram_mb``: peak resident memory (MB) of loading the model and running it on
  ``seconds`` of audio, above a bare Python process that has imported numpy and sertest
  (so the model's runtime library — onnxruntime, torch — counts, as it would on a device);
* ``real_time_factor``: seconds of compute per second of audio, one call on ``seconds`` of
  audio after one warm-up call, single-threaded (``SERTEST_THREADS=1``).

Wall-clock figures go to ``timings.json``, never to ``results.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def process_memory_mb(key: str) -> float:
    """A memory figure of this process from /proc/self/status (``VmRSS``, ``VmHWM``), in
    MB (2**20 bytes); NaN where the figure is not listed.

    ``VmHWM`` (peak resident set) starts afresh with the new address space of an exec;
    ``getrusage().ru_maxrss`` does not (Linux keeps it across execve, so a subprocess
    forked from a large parent would report the parent's peak).

    >>> process_memory_mb("VmHWM") >= process_memory_mb("VmRSS") > 0  # peak >= current
    True
    """
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _measure(spec: str, options: dict[str, Any], seconds: float) -> dict[str, Any]:
    import time

    import numpy as np

    from .models import load_model

    before = process_memory_mb("VmRSS")
    t = time.perf_counter()
    model = load_model(spec, **options)
    load_s = time.perf_counter() - t
    rng = np.random.default_rng(0)
    x = (0.05 * rng.standard_normal(int(seconds * model.sampling_rate))).astype(np.float32)
    rngs = [np.random.default_rng(0)] if model.stochastic else None
    model.predict([x[: model.sampling_rate]], rngs)
    t = time.perf_counter()
    model.predict([x], rngs)
    rtf = (time.perf_counter() - t) / seconds
    peak = process_memory_mb("VmHWM")
    return {"peak_ram_mb": round(peak - before, 1), "real_time_factor": round(rtf, 5),
            "load_seconds": round(load_s, 3), "profiled_seconds": seconds}


def profile(spec: str, options: dict[str, Any] | None = None, seconds: float = 10.0,
            timeout: float = 300.0) -> dict[str, Any]:
    """Profile the model ``spec`` in a subprocess; returns the figures or ``{"error": ...}``."""
    env = dict(os.environ, SERTEST_THREADS="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "sertest.efficiency", spec, json.dumps(options or {}), str(seconds)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"profiling did not finish within {timeout:g} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"profiling failed: {tail[0]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:  # pragma: no cover - exercised through profile()
    spec, options, seconds = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(_measure(spec, options, seconds)))


if __name__ == "__main__":  # pragma: no cover
    main()
