"""The robust student: its training perturbations never use an audit condition's parameters,
and the committed ``wav2small-robust`` files match their card.

The augmentation sampler lives in ``examples/distill/robust_augment.py``; the audit's
conditions are read from the bundled ``default`` suite itself, so adding a condition to
the suite that a training draw can reproduce makes this test fail.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sertest.checks.dose import DoseCheck
from sertest.checks.robustness import PerturbationCheck
from sertest.perturb import from_spec
from sertest.perturb.base import Perturbation
from sertest.seeding import derive_rng, stable_hash32
from sertest.suite import load_suite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DISTILL = os.path.join(ROOT, "examples", "distill")
MODELS = os.path.join(ROOT, "examples", "models")
sys.path.insert(0, DISTILL)

import robust_augment as ra  # noqa: E402

#: the parameters that define a condition (compared between training and audit, across
#: all perturbations: an SNR is an SNR whichever noise it belongs to).  Not compared: kinds
#: and colours of the synthetic generators (other streams, other SNRs), filter orders,
#: output levels, azimuths, compressor times, the phone chain's fixed noise high-pass.
DEFINING = ("snr_db", "bitrate", "law", "rt60_s", "room_dim_m", "distance_m", "gain_db",
            "cutoff_hz", "low_hz", "high_hz", "samples", "ratio", "noise_gain_db",
            "threshold_db", "peak_snr_db")
#: legal MPEG-2 layer III bit rates (bit/s) at 16 kHz: LAME rounds any other onto one
MP3_LEGAL = {k * 1000 for k in (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def _values(p: Perturbation) -> dict[str, set]:
    """Every value each defining parameter of ``p`` can take in one draw (rooms resolved
    to their size, RT60 and distance)."""
    out: dict[str, set] = {}
    list_params = getattr(p, "list_params", ())
    for key, value in p.params.items():
        if key not in DEFINING:
            continue
        if isinstance(value, list) and key not in list_params:
            out.setdefault(key, set()).update(_hashable(v) for v in value)
        elif value is not None:
            out.setdefault(key, set()).add(_hashable(value))
    if p.name == "room":
        geo = p.resolve(p.params)
        for key in ("rt60_s", "room_dim_m", "distance_m"):
            out.setdefault(key, set()).add(_hashable(geo[key]))
    return out


def audit_perturbations(suite: str = "default") -> list[Perturbation]:
    """The perturbations (conditions and baselines) of the suite's robustness tests."""
    found = []
    for check, _ in load_suite(suite).checks:
        if isinstance(check, PerturbationCheck):
            conditions = list(check.conditions)
        elif isinstance(check, DoseCheck):
            conditions = list(check.conditions.values())
        else:
            continue
        for c in conditions:
            found += [p for p in (c.perturbation, c.baseline) if p is not None]
    return found


def _merge(parts) -> dict[str, set]:
    out: dict[str, set] = {}
    for part in parts:
        for key, values in part.items():
            out.setdefault(key, set()).update(values)
    return out


AUDIT = audit_perturbations()
AUDIT_VALUES = _merge(_values(p) for p in AUDIT)
TRAINING_SPECS = ra.all_training_specs()


def test_audit_conditions_are_found():
    names = {p.name for p in AUDIT}
    # the families the robust student trains against are all audited by the default suite
    assert {"white_noise", "low_quality_phone", "amr_nb", "opus", "mp3", "g711",
            "room"} <= names
    assert {7400, 12000, 32000} <= AUDIT_VALUES["bitrate"]
    assert 20.0 in AUDIT_VALUES["snr_db"] and 0.43 in AUDIT_VALUES["rt60_s"]


def test_no_training_spec_uses_an_audit_parameter_value():
    assert len(TRAINING_SPECS) > 100
    clashes = []
    for spec in TRAINING_SPECS:
        p = from_spec(spec)              # also: every training spec is a valid perturbation
        for key, values in _values(p).items():
            common = values & AUDIT_VALUES.get(key, set())
            if common:
                clashes.append((spec, key, sorted(common)))
    assert not clashes, f"training specs reuse audit parameter values: {clashes[:5]}"


def test_no_training_condition_equals_an_audit_condition():
    audit_keys = {p.key for p in AUDIT}
    assert not audit_keys & {from_spec(s).key for s in TRAINING_SPECS}


def test_mp3_bit_rates_are_not_rounded_onto_audit_rates():
    rates = {s["bitrate"] for s in TRAINING_SPECS if s["name"] == "mp3"}
    assert rates and rates <= MP3_LEGAL


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), item=st.text(min_size=1, max_size=12),
       copy=st.integers(0, 5))
def test_sampler_draws_only_training_specs(seed, item, copy):
    chain = ra.draw_chain(derive_rng(seed, ra.STREAM, item, copy))
    assert 1 <= len(chain) <= 2
    for spec in chain:
        assert spec in TRAINING_SPECS
    families = [next(f for f, opts in ra.FAMILIES.items()
                     if spec["name"] in {o["name"] for o in opts}) for spec in chain]
    assert len(set(families)) == len(families)
    assert families == sorted(families, key=ra.ORDER.index)


def test_training_stream_never_shares_a_key_with_audit_streams():
    import pandas as pd
    table = pd.read_csv(os.path.join(ROOT, "sertest", "data", "corpus", "manifest.csv"),
                        keep_default_na=False)
    # audit streams: derive_rng(seed, item_id, condition) and derive_rng(seed, "model", ...)
    taken = {stable_hash32(str(i)) for i in table["id"]} | {stable_hash32("model")}
    assert stable_hash32(ra.STREAM) not in taken


def test_perturbed_copy_is_reproducible_and_varies_with_the_copy():
    x = (0.1 * derive_rng(1, "signal").standard_normal(16000)).astype(np.float32)
    a, spec_a = ra.perturbed_copy(x, 16000, 0, "item-1", 0)
    b, spec_b = ra.perturbed_copy(x, 16000, 0, "item-1", 0)
    assert spec_a == spec_b and np.array_equal(a, b)
    others = [ra.perturbed_copy(x, 16000, 0, "item-1", k)[1] for k in range(1, 6)]
    assert any(o != spec_a for o in others)


# -- the committed model -------------------------------------------------------------------

ROBUST = os.path.join(MODELS, "wav2small-robust.onnx")
ROBUST_INT8 = os.path.join(MODELS, "wav2small-robust-int8.onnx")
CARD = os.path.join(MODELS, "metrics-robust.json")


@pytest.mark.parametrize("path,key", [(ROBUST, "wav2small-robust"),
                                      (ROBUST_INT8, "wav2small-robust-int8")])
def test_committed_robust_model_matches_its_card(path, key):
    pytest.importorskip("onnxruntime")
    if not os.path.isfile(path):
        pytest.skip(f"{path} not built (make models-robust)")
    from sertest.models import load_model
    with open(CARD, encoding="utf-8") as fh:
        card = json.load(fh)
    model = load_model(path)
    assert list(model.outputs) == ["arousal", "dominance", "valence"]
    x = (0.1 * derive_rng(2, "signal").standard_normal(24000)).astype(np.float32)
    y = np.asarray(model.predict([x]))
    assert y.shape == (1, 3) and np.all(np.isfinite(y))
    info = model.info()
    assert info.file_size == os.path.getsize(path) == card["check"][key]["onnx_bytes"]
    assert info.parameters == card["check"][key]["info_parameters"]
    with open(os.path.join(MODELS, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    exported = card["models"][f"wav2small-robust-{card['exported_variant']}"]
    assert f"{card['check'][key]['onnx_bytes']:,} bytes" in readme
    assert f"Parameters: {exported['parameters']:,}" in readme
    # the teacher's held-out speakers stayed held out
    head = json.load(open(os.path.join(MODELS, "teacher", "sertest_head.json"),
                          encoding="utf-8"))
    held = set(head["training"]["held_out_speakers"])
    assert set(card["split"]["held_out_speakers"]) == held
    assert not held & set(card["split"]["train_speakers"])


# -- the consistent variant's fine-tuning ---------------------------------------------------

def _pairs(n: int = 8, seconds: float = 1.0):
    rng = derive_rng(3, "pairs")
    t = np.arange(int(16000 * seconds)) / 16000
    clean = [(0.1 * (1 + np.sin(2 * np.pi * (2 + k) * t)) * rng.standard_normal(t.size))
             .astype(np.float32) for k in range(n)]
    pert = [(x + 0.05 * rng.standard_normal(x.size)).astype(np.float32) for x in clean]
    targets = rng.uniform(0.2, 0.8, (n, 3))
    return clean, pert, np.arange(n), targets


def _pair_change(model, clean, pert) -> float:
    import torch
    with torch.inference_mode():
        a = model(torch.from_numpy(np.stack(clean)))
        b = model(torch.from_numpy(np.stack(pert)))
    return float((a - b).abs().mean())


def test_consistency_fine_tuning_is_seeded_and_pulls_the_pair_together():
    torch = pytest.importorskip("torch")
    import robust
    from sertest.models.arch import wav2small_paper

    clean, pert, source, targets = _pairs()
    torch.manual_seed(0)
    start = wav2small_paper().state_dict()
    trained = {}
    for key, weight in (("a", 30.0), ("b", 30.0), ("none", 0.0)):
        model = wav2small_paper()
        model.load_state_dict(start)
        robust.train_consistent(model, clean, pert, source, targets, name="test", epochs=4,
                                batch_size=4, lr=1e-2, seed=0, max_seconds=1.0,
                                weight=weight, log=lambda _: None)
        trained[key] = model
    # the same seed, data and start give the same weights
    for (k, v), w in zip(trained["a"].state_dict().items(), trained["b"].state_dict().values()):
        assert torch.equal(v, w), k
    # the consistency term is what brings a pair's predictions together
    assert (_pair_change(trained["a"], clean, pert)
            < _pair_change(trained["none"], clean, pert))


def test_read_audit_merges_one_audit_per_model(tmp_path):
    import robust

    for name, score in (("wav2small", 0.5), ("wav2small-robust", 0.7)):
        folder = tmp_path / name
        folder.mkdir()
        doc = {"suite": {"name": "default"}, "seed": 0, "tests": [],
               "summary": {"models": {name: {"score": score, "topics": {"robustness": score}}}}}
        (folder / "results.json").write_text(json.dumps(doc))
    merged = robust.read_audit([str(tmp_path / "wav2small"), str(tmp_path / "wav2small-robust")])
    assert set(merged["models"]) == {"wav2small", "wav2small-robust"}
    assert merged["models"]["wav2small-robust"]["topics"]["robustness"] == 0.7
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.json").write_text(json.dumps({"suite": {"name": "quick"}, "seed": 0,
                                                     "summary": {"models": {}}}))
    with pytest.raises(SystemExit, match="differ in suite or seed"):
        robust.read_audit([str(tmp_path / "wav2small"), str(other)])
