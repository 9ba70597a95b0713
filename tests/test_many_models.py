"""Many models in one audit: perturbed audio is computed once and shared by every model.

The unit of work is one item with all its conditions and all its models
(:class:`sertest.engine.units.Unit`): each (item, condition) is perturbed once per model
sampling rate, whatever the number of models.  A real perturbation (``gain``, subclassed
only to count) appends one line per call to a file, so the count holds whatever thread made
the call; the models are small real ONNX graphs built here.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from sertest.data import load_dataset
from sertest.engine.execute import execute
from sertest.engine.store import CLEAN
from sertest.models import load_model
from sertest.perturb.filters import Gain
from tests.helpers import make_onnx_model


class CountedGain(Gain):
    """``gain`` that appends one line (its sampling rate and length) per perturbation to
    ``log`` (a file: appends from several threads do not interleave)."""

    name = "counted_gain"
    defaults = {"gain_db": -6.0, "log": ""}

    def apply(self, signal, sampling_rate, rng, params):
        with open(params["log"], "a", encoding="ascii") as fh:
            fh.write(f"{sampling_rate} {len(signal)}\n")
        return super().apply(signal, sampling_rate, rng, params)


def _models(tmp_path, n: int, rates=(16000,)) -> dict:
    """``n`` different real ONNX models (output columns in different orders), cycling over
    ``rates``."""
    orders = [("arousal", "dominance", "valence"), ("valence", "arousal", "dominance"),
              ("dominance", "valence", "arousal")]
    out = {}
    for k in range(n):
        path = make_onnx_model(os.fspath(tmp_path / f"m{k}.onnx"), labels=orders[k % 3])
        rate = rates[k % len(rates)]
        out[f"m{k}"] = load_model(f"m{k}={path}", sampling_rate=rate)
    return out


def _run(tiny_data, tmp_path, models, executor="local"):
    data = load_dataset(str(tiny_data))
    log = tmp_path / "calls.log"  # one path: it is part of the conditions' keys
    log.write_text("")
    conds = {CLEAN: None}
    for db in (-6.0, -3.0, 3.0):
        c = CountedGain(gain_db=db, log=os.fspath(log))
        conds[c.key] = c
    needed = {ck: set(data.ids) for ck in conds}
    store, errors, stats = execute(data, models, conds, needed, seed=0, jobs=2,
                                   executor=executor, progress=False)
    assert not errors
    calls = log.read_text().splitlines()
    return data, conds, store, stats, calls


@pytest.mark.parametrize("executor", ["local", "batched"])
def test_each_item_and_condition_is_perturbed_once_whatever_the_number_of_models(
        tiny_data, tmp_path, executor):
    one = _models(tmp_path, 1)
    five = _models(tmp_path, 5)
    data, conds, store1, _, calls1 = _run(tiny_data, tmp_path, one, executor)
    _, _, store5, stats5, calls5 = _run(tiny_data, tmp_path, five, executor)
    perturbed = len(data) * (len(conds) - 1)
    assert len(calls1) == perturbed
    assert len(calls5) == perturbed  # not 5 x: the five models share every perturbed signal
    assert stats5.computed == 5 * len(data) * len(conds)
    # sharing changes no prediction: m0 predicts the same alone and beside four others
    for ck in conds:
        a, b = store1.frame("m0", ck), store5.frame("m0", ck)
        assert len(a) == len(data)
        np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_models_at_two_sampling_rates_perturb_once_per_rate(tiny_data, tmp_path):
    """A condition is applied to the signal a model hears, at its rate: one perturbation per
    (item, condition, rate), shared by the models of that rate."""
    models = _models(tmp_path, 4, rates=(16000, 8000))
    data, conds, store, _, calls = _run(tiny_data, tmp_path, models)
    per_rate = len(data) * (len(conds) - 1)
    rates = [int(line.split()[0]) for line in calls]
    assert rates.count(16000) == per_rate and rates.count(8000) == per_rate
    assert len(store.frame("m1", CLEAN)) == len(data)  # an 8 kHz model predicted everything
