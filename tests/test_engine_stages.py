"""The engine's seams: plan -> execute -> assemble, executors behind one interface, cache keys
built by the cache alone, one function that renders a condition, perturbations that return
what they drew."""

from __future__ import annotations

import ast
import pathlib
import threading

import numpy as np
import pytest

from sertest import audio
from sertest.data import load_dataset
from sertest import audit
from sertest.engine.cache import PredictionCache, model_prediction_key, prediction_key
from sertest.engine.execute import execute
from sertest.engine.executors import (Executor, check_executor, executor_names, get_executor,
                                      register_executor)
from sertest.engine.plan import plan_audit
from sertest.engine.render import condition_signal
from sertest.engine.store import CLEAN, condition_key
from sertest.engine.units import CALL_SAMPLES, Unit, infer_unit, prepare_unit
from sertest.errors import UsageError
from sertest.models import load_model
from sertest.perturb import from_spec
from sertest.seeding import derive_rng

ENGINE = pathlib.Path(__file__).resolve().parents[1] / "sertest" / "engine"


# -- perturbations return what they drew ---------------------------------------------------------
def test_perturb_returns_its_drawn_parameters_even_with_threads_sharing_the_instance():
    """One instance serves every worker thread: each call gets its own parameters back."""
    gain = from_spec({"name": "gain_small", "gain_db": [-6, -3, 3, 6]})
    x = (0.1 * np.sin(np.linspace(0, 300, 8000))).astype(np.float32)
    found: dict[int, tuple[np.ndarray, dict]] = {}

    def work(k: int) -> None:
        for _ in range(20):
            found[k] = gain.perturb(x, 16000, derive_rng(0, f"item-{k}"))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    drawn = set()
    for k, (y, params) in found.items():
        np.testing.assert_allclose(y, x * 10 ** (params["gain_db"] / 20), rtol=1e-6)
        assert np.array_equal(y, gain(x, 16000, derive_rng(0, f"item-{k}")))
        drawn.add(params["gain_db"])
    assert len(drawn) > 1  # the items really drew different values
    assert not hasattr(gain, "last_parameters")


# -- one function renders a condition --------------------------------------------------------------
def test_the_engine_perturbs_through_condition_signal(tiny_data):
    """What prepare_unit hands the models is condition_signal of the decoded item (what the
    report's gallery replays)."""
    data = load_dataset(str(tiny_data))
    item = data.ids[3]
    row = data.table.loc[item]
    path = str(pathlib.Path(tiny_data).parent / row["file"]) if not pathlib.Path(
        row["file"]).is_absolute() else row["file"]
    noisy = from_spec({"name": "white_noise", "snr_db": [5, 10, 20]})
    ck = condition_key(noisy)
    unit = Unit(item, path, None, None, "h", needs={8000: {CLEAN: ["m"], ck: ["m"]}})
    prepared = prepare_unit(unit, {CLEAN: None, ck: noisy}, seed=7)
    signal, sr = audio.read(path)
    x = audio.resample(signal, sr, 8000)
    np.testing.assert_array_equal(prepared.signals[8000][CLEAN], x)
    expected = condition_signal(x, 8000, noisy, seed=7, item_id=item)
    np.testing.assert_array_equal(prepared.signals[8000][ck], expected)
    assert not np.array_equal(expected, condition_signal(x, 8000, noisy, 8, item))


# -- the cache alone builds keys ------------------------------------------------------------------
def test_model_prediction_key_lets_seed_and_item_in_only_when_something_draws(onnx_model):
    model = load_model(onnx_model)
    gain = from_spec({"name": "gain", "gain_db": -3.0})
    drawn = from_spec({"name": "gain", "gain_db": [-3.0, 3.0]})
    k = model_prediction_key(model, "hash", gain.key, gain, seed=1, item_id="a")
    assert k == model_prediction_key(model, "hash", gain.key, gain, seed=2, item_id="b")
    assert k == prediction_key(model.fingerprint(), "hash", gain.key, model.sampling_rate,
                               condition_version=gain.cache_version,
                               max_batch=model.max_batch if model.batchable else 1,
                               call_samples=CALL_SAMPLES // 2)  # an ONNX model's own bound
    k1 = model_prediction_key(model, "hash", drawn.key, drawn, seed=1, item_id="a")
    assert k1 != model_prediction_key(model, "hash", drawn.key, drawn, seed=2, item_id="a")
    assert k1 != model_prediction_key(model, "hash", drawn.key, drawn, seed=1, item_id="b")
    assert model_prediction_key(model, "hash", CLEAN, None, 1, "a") == \
        model_prediction_key(model, "hash", CLEAN, None, 2, "b")


def test_the_engine_builds_no_cache_key_itself():
    """Only cache.py calls prediction_key; the engine asks model_prediction_key."""
    for path in ENGINE.glob("*.py"):
        if path.name == "cache.py":
            continue
        calls = [n for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "prediction_key"]
        assert not calls, f"{path.name} builds a prediction key itself"


# -- executors behind one interface -----------------------------------------------------------------
class _Backwards(Executor):
    """A test executor: the units one after another, last first, in this thread."""

    name = "backwards"
    ran: list[str] = []

    def run(self, units, models, conditions, *, seed, timeout, hung):
        for unit in reversed(units):
            type(self).ran.append(unit.item_id)
            yield infer_unit(prepare_unit(unit, conditions, seed), models, seed, timeout, hung)


def test_a_registered_executor_gives_the_local_executors_predictions(tiny_data, onnx_model,
                                                                    monkeypatch):
    from sertest.engine import executors

    monkeypatch.setattr(executors, "_REGISTRY", dict(executors._REGISTRY))  # undone after
    register_executor("backwards", _Backwards)
    assert executor_names()[:2] == ["local", "dask"] and "backwards" in executor_names()
    data = load_dataset(str(tiny_data))
    model = load_model(onnx_model)
    noisy = from_spec({"name": "white_noise", "snr_db": [10, 20]})
    conds = {CLEAN: None, noisy.key: noisy}
    needed = {ck: set(data.ids[:6]) for ck in conds}
    local, err_l, _ = execute(data, {"m": model}, conds, needed, seed=3, jobs=2,
                              progress=False)
    _Backwards.ran = []
    back, err_b, stats = execute(data, {"m": model}, conds, needed, seed=3,
                                 executor="backwards", progress=False,
                                 cache=PredictionCache(None))
    assert _Backwards.ran == sorted(data.ids[:6], key=data.ids.index)[::-1]
    assert stats.computed == 12 and err_l == err_b == []
    for ck in conds:
        assert local.frame("m", ck).equals(back.frame("m", ck))


def test_an_unknown_executor_is_refused_naming_the_choices(tiny_data, onnx_model):
    with pytest.raises(UsageError, match=r"--executor 'spark': use local or dask"):
        check_executor("spark")
    with pytest.raises(UsageError, match="use local or dask"):
        audit([onnx_model], str(tiny_data), "smoke", executor="spark", cache=False)
    assert get_executor("local", jobs=3).jobs == 3 and get_executor("local").in_process


# -- plan -> execute -> assemble --------------------------------------------------------------------
def test_the_plan_names_roles_conditions_and_items_before_any_audio_is_read(tiny_data,
                                                                            onnx_model):
    plan = plan_audit([onnx_model], str(tiny_data), "smoke")
    assert [plan.roles[n] for n in plan.audited] == ["candidate", "baseline", "baseline"]
    assert plan.features == {plan.signal_stats.name}
    assert plan.conditions[CLEAN] is None and plan.needed[CLEAN] == set(plan.dataset.ids)
    assert not plan.errors


def test_engine_modules_import_each_other_without_cycles():
    """Every import between engine modules, lazy ones (inside functions) included."""
    graph: dict[str, set[str]] = {}
    for path in ENGINE.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                deps.add(node.module.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.level == 1:
                deps.update(a.name for a in node.names)
        graph[path.stem] = {d for d in deps if (ENGINE / f"{d}.py").exists()}
    graph.pop("__init__", None)

    def visit(mod: str, stack: list[str]) -> None:
        assert mod not in stack, " -> ".join(stack + [mod])
        for dep in sorted(graph.get(mod, ())):
            visit(dep, stack + [mod])

    for mod in graph:
        visit(mod, [])


def test_units_with_equal_needs_share_one_needs_object():
    """``_share_needs``: equal needs become one object (a task's units then carry it once
    when pickled together), different needs stay apart, and the needs read the same."""
    import pickle

    from sertest.engine.execute import _share_needs

    def needs(*cks):
        return {16000: {ck: ["m1", "m2"] for ck in cks}}

    units = [Unit(f"i{j}", f"f{j}.wav", None, None, "h", needs("clean", "gain")) for j in range(4)]
    units.append(Unit("odd", "odd.wav", None, None, "h", needs("clean")))
    units.append(Unit("done", "done.wav", None, None, "h"))  # nothing left to compute
    before = [pickle.loads(pickle.dumps(u.needs)) for u in units]
    _share_needs(units)
    assert all(u.needs is units[0].needs for u in units[:4])
    assert units[4].needs is not units[0].needs and units[5].needs == {}
    assert [u.needs for u in units] == before
    one = len(pickle.dumps(units[:4]))
    assert one < len(pickle.dumps([Unit(u.item_id, u.file, None, None, "h", needs("clean", "gain"))
                                   for u in units[:4]]))
