"""Hand-written behaviour tests beside the suite, using sertest's pytest fixtures.

``ser_audit`` is the session's audit (computed once, shared with the suite's items),
``ser_model`` the loaded candidate model and ``ser_dataset`` the audited data.
"""

from __future__ import annotations

import math

import numpy as np

from sertest.audio import load


def _seconds(value) -> float | None:
    """A segment bound in seconds, or ``None`` for the whole file."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else float(value)


def _signals(dataset, sampling_rate: int, n: int = 4) -> list[np.ndarray]:
    """The first ``n`` items of the dataset, decoded at the model's rate (Hz)."""
    return [load(row["file"], sampling_rate, _seconds(row.get("start")), _seconds(row.get("end")))
            for _, row in dataset.table.iloc[:n].iterrows()]


def test_arousal_correctness_holds(ser_audit):
    """Clean arousal correctness (CCC, PCC, MAE) does not fail the suite's thresholds."""
    result = ser_audit.result("correctness_regression", dimension="arousal")
    assert result.verdict in ("pass", "inconclusive"), result.measurements()


def test_predictions_are_finite_and_deterministic(ser_model, ser_dataset):
    """The same audio twice gives the same, finite outputs."""
    signals = _signals(ser_dataset, ser_model.sampling_rate)
    first = ser_model.predict(signals)
    second = ser_model.predict(signals)
    assert np.isfinite(first).all()
    np.testing.assert_allclose(first, second, rtol=0, atol=1e-6)
