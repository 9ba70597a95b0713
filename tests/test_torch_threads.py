"""Torch and Hugging Face models run as ONNX sessions do: calls concurrent, one intra-op
thread per call, so outputs do not depend on ``--jobs`` or the core count."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sertest import audit  # noqa: E402
from sertest.models import load_model  # noqa: E402

#: a module whose forward records, per call, the calling thread's intra-op threads and how
#: many calls overlapped (it sleeps so that overlapping calls can be seen)
NET = textwrap.dedent('''
    import threading, time
    import torch

    SEEN = {"threads": set(), "inside": 0, "most": 0}
    _LOCK = threading.Lock()

    class Net(torch.nn.Module):
        labels = ["arousal", "dominance", "valence"]

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(1, 8, 400, stride=160)
            self.head = torch.nn.Linear(8, 3)

        def forward(self, x):
            with _LOCK:
                SEEN["inside"] += 1
                SEEN["most"] = max(SEEN["most"], SEEN["inside"])
                SEEN["threads"].add(torch.get_num_threads())
            time.sleep(0.01)
            h = torch.relu(self.conv(x[:, None, :])).mean(dim=2)
            with _LOCK:
                SEEN["inside"] -= 1
            return torch.sigmoid(self.head(h))

    def build():
        torch.manual_seed(0)
        return Net()
''')


@pytest.fixture()
def torch_net(tmp_path):
    src = tmp_path / "threads_net.py"
    src.write_text(NET)
    weights = tmp_path / "net.pt"
    import importlib.util

    spec = importlib.util.spec_from_file_location("threads_net_build", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.save(mod.build().state_dict(), weights)
    return f"torch:{src}:build={weights}"


def _seen(model):
    import sys

    return sys.modules[type(model.module).__module__].SEEN


def test_torch_models_run_concurrently_one_thread_per_call(tiny_data, torch_net):
    model = load_model(torch_net)
    assert model.concurrent
    seen = _seen(model)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the audit's own thread may use more; calls use one
        seen["threads"].clear()
        res = audit([model], str(tiny_data), "smoke", cache=False, jobs=2, baselines=False,
                    renderers=())
        assert seen["threads"] == {1}
        assert seen["most"] > 1  # two worker threads called the model at the same time
        assert res.timings["computed"] > 0
    finally:
        torch.set_num_threads(before)


def test_torch_outputs_do_not_depend_on_jobs(tiny_data, torch_net):
    def run(jobs):
        res = audit([load_model(torch_net)], str(tiny_data), "smoke", cache=False, jobs=jobs,
                    baselines=False, renderers=())
        return res.doc["tests"]

    one, two = run(1), run(2)
    assert one == two


def test_a_fixed_threads_option_wins_over_the_engine(torch_net):
    model = load_model(torch_net, threads=1)
    model.use_threads(3)
    seen = _seen(model)
    seen["threads"].clear()
    x = np.random.default_rng(0).standard_normal((2, 8000)).astype(np.float32)
    model.predict_batch(x)
    assert seen["threads"] == {1}
    free = load_model(torch_net)
    free.use_threads(1)
    seen = _seen(free)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        seen["threads"].clear()
        free.predict_batch(x)
        assert seen["threads"] == {1}
    finally:
        torch.set_num_threads(before)


def test_hf_adapters_are_concurrent():
    from sertest.models.hf import HFModel
    from sertest.models.hf_auto import AutoAudioModel

    assert HFModel.concurrent and AutoAudioModel.concurrent
