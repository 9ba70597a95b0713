"""A model's memory does not grow with every new input length.

Audio reaches a model in as many shapes as there are item lengths.  onnxruntime keeps a
memory pattern per input shape (with the arena shrinking that several open sessions turn
on, each new shape then held its own blocks) and torch's oneDNN keeps up to 1,024 kernels
built per shape; both grew through a whole audit (benchmarks/README.md, "Many models in one
audit", points 3 and 4).  Measured here as the growth of the process's resident memory over
calls of distinct lengths, after a first call.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sertest.efficiency import process_memory_mb
from sertest.models import load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "examples", "models")


def test_onnx_sessions_do_not_grow_with_new_input_lengths():
    # two sessions open: each call shrinks its arena (sertest/models/onnx.py), the setting
    # under which the memory patterns grew by about 1.5 MB a length here (145 MB over these
    # 100 calls with patterns on, 20 MB without)
    a = load_model(os.path.join(MODELS, "wav2small.onnx"))
    b = load_model(os.path.join(MODELS, "mobilenetv4.onnx"))
    assert not a.session.get_session_options().enable_mem_pattern
    rng = np.random.default_rng(0)
    for m in (a, b):
        m.predict_batch(0.1 * rng.standard_normal((2, 16000)).astype(np.float32))
    before = process_memory_mb("VmRSS")
    for i in range(100):  # 0.5 s to 1.5 s, every length new
        a.predict_batch(0.1 * rng.standard_normal((2, 8000 + 160 * i)).astype(np.float32))
    grown = process_memory_mb("VmRSS") - before
    assert grown < 70, f"{grown:.1f} MB over 100 new input lengths"
    a.close()
    b.close()


#: a fresh interpreter (oneDNN reads its cache capacity once, at its first kernel): a small
#: convolutional front end run on 200 distinct lengths; prints the growth in MB
TORCH_GROWTH = textwrap.dedent('''
    import sertest.models.torch_adapter  # sets the oneDNN default unless the user did
    import torch
    from sertest.efficiency import process_memory_mb
    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = torch.nn.Sequential(torch.nn.Conv1d(1, 64, 10, 5), torch.nn.GELU(),
                              torch.nn.Conv1d(64, 64, 3, 2), torch.nn.GELU(),
                              torch.nn.Conv1d(64, 64, 3, 2)).eval()
    with torch.inference_mode():
        net(torch.zeros(2, 1, 4000))
        before = process_memory_mb("VmRSS")
        for i in range(200):
            net(torch.randn(2, 1, 4000 + 37 * i))
    print(process_memory_mb("VmRSS") - before)
''')


def _torch_growth(capacity: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    if capacity is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = capacity
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", TORCH_GROWTH], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return float(out.stdout.split()[-1])


def test_torch_kernel_cache_is_bounded_unless_the_user_sets_it():
    pytest.importorskip("torch")
    bounded = _torch_growth(None)           # sertest's default: 32 kernels
    unbounded = _torch_growth("1024")       # the user's setting wins (oneDNN's own default)
    # measured: 21 MB against 139 MB
    assert bounded < 60, f"{bounded:.1f} MB over 200 new input lengths"
    assert unbounded > 2 * bounded, (bounded, unbounded)


def test_a_dynamically_quantised_model_predicts_each_signal_on_its_own():
    """Dynamic quantisation scales a call's whole input by its range, so an int8 model's
    prediction of a clean signal moved when a loud perturbed copy shared its call; such
    graphs now get one signal per call (and batched float graphs stay batched)."""
    import onnxruntime as ort

    from sertest.engine.units import predict_bounded

    int8 = load_model(os.path.join(MODELS, "wav2small-int8.onnx"))
    fp32 = load_model(os.path.join(MODELS, "wav2small.onnx"))
    assert int8.batch_coupled == ["DynamicQuantizeLinear"] and not int8.batchable
    assert fp32.batch_coupled == [] and fp32.batchable
    assert int8.info().extra["batch_coupled"] == ["DynamicQuantizeLinear"]
    rng = np.random.default_rng(3)
    clean = (0.05 * rng.standard_normal(32000)).astype(np.float32)
    loud = np.clip(20 * clean, -1, 1).astype(np.float32)
    # the graph itself couples the signals of one call ...
    session = ort.InferenceSession(int8.path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    together = session.run(None, {name: np.stack([clean, loud])})[0][0]
    alone = session.run(None, {name: clean[None]})[0][0]
    assert not np.array_equal(together, alone)
    # ... and the engine's calls do not
    rows = predict_bounded(int8, [clean, loud])
    assert np.array_equal(rows[0], predict_bounded(int8, [clean])[0])
    int8.close()
    fp32.close()


def test_the_mmap_threshold_keeps_model_sized_blocks_on_the_heap_and_larger_ones_mapped():
    """``bound_heap`` fixes glibc's mmap threshold at ``MMAP_THRESHOLD`` (16 MiB): a block
    of 8 MiB (an onnxruntime arena chunk, a torch activation) comes from the heap, where
    its pages stay for the next one (at the former 4 MiB each was a fresh mapping that
    faulted its pages in again: the 7-model audit's prediction stage spent 58 s of system
    time on page faults), while a 48 MiB block (a Wav2Small call's arena) is mapped and goes
    back to the system when freed, also the second time (glibc's default would have raised
    the threshold past it after the first free).  Fresh interpreter; glibc's ``mallinfo2``
    (2.33 and later) tells mapped from heap bytes."""
    code = textwrap.dedent("""
        import ctypes
        import numpy as np
        from sertest.efficiency import process_memory_mb
        from sertest.engine.executors import MMAP_THRESHOLD, bound_heap
        class Info(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                "uordblks", "fordblks", "keepcost")]
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallinfo2.restype = Info
        except (OSError, AttributeError):  # not glibc, or before 2.33
            print("skip"); raise SystemExit
        mapped = lambda: libc.mallinfo2().hblkhd / 2**20
        bound_heap()
        out = [MMAP_THRESHOLD]
        for mib in (8, 48, 8, 48):
            before = mapped()
            block = np.ones(mib * 2**20 // 8)
            held, grown = process_memory_mb("VmRSS"), mapped() - before
            del block
            out += [grown, held - process_memory_mb("VmRSS")]
        print(*out)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    if out.stdout.strip() == "skip":
        pytest.skip("glibc without mallinfo2")
    threshold, *rounds = out.stdout.split()
    assert int(threshold) == 16 * 2**20
    (m8, _, m48, d48, m8b, _, m48b, d48b) = map(float, rounds)
    assert m8 < 1 and m8b < 1, rounds  # 8 MiB: from the heap
    assert m48 >= 48 and m48b >= 48, rounds  # 48 MiB: mapped ...
    assert d48 > 40 and d48b > 40, rounds  # ... and given back when freed, both times


def test_the_local_executor_returns_freed_heap_pages_between_units():
    """Blocks under the mmap threshold freed by a worker thread stay resident in its glibc
    arena until ``malloc_trim``; :class:`~sertest.engine.executors.HeapTrim` (called by the
    local executor after each finished unit, at most every 2 s) gives them back.  Fresh
    interpreter: a thread allocates 300 MB in 64 KB blocks and frees all but every 50th,
    which pins the arena's pages in between."""
    code = textwrap.dedent("""
        import threading, time
        from sertest.efficiency import process_memory_mb
        from sertest.engine.executors import HeapTrim, bound_heap
        bound_heap()
        def churn():
            blocks = [bytearray(64 * 1024) for _ in range(4800)]
            churn.kept = blocks[::50]
        t = threading.Thread(target=churn); t.start(); t.join()
        held = process_memory_mb("VmRSS")
        trim = HeapTrim(interval_s=3600.0)
        trim()  # within the interval: nothing happens
        unchanged = process_memory_mb("VmRSS")
        trim.interval_s = 0.0
        trim()
        print(held, unchanged, process_memory_mb("VmRSS"), trim.calls)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    held, unchanged, trimmed, calls = out.stdout.split()
    held, unchanged, trimmed = float(held), float(unchanged), float(trimmed)
    assert calls == "1"
    assert unchanged > held - 20, (held, unchanged)  # the interval is respected
    assert held - trimmed > 150, (held, trimmed)  # most of the 300 MB goes back


def test_the_audit_returns_freed_heap_pages_between_its_stages(tiny_data, onnx_model,
                                                                monkeypatch):
    """After the prediction stage and after the checks, the freed blocks of the stage go
    back to the system (``trim_heap``) before the next stage allocates: the 7-model
    ``default`` audit's writers no longer stood on the checks' freed memory
    (benchmarks/README.md, "Many models in one audit")."""
    import importlib

    audit_module = importlib.import_module("sertest.engine.audit")  # not the function
    execute_module = importlib.import_module("sertest.engine.execute")
    from sertest import audit
    from sertest.engine.executors import trim_heap

    assert trim_heap() is True  # glibc here
    calls: list[str] = []
    monkeypatch.setattr(execute_module, "trim_heap", lambda: calls.append("execute"))
    monkeypatch.setattr(audit_module, "trim_heap", lambda: calls.append("checks"))
    real_evaluate = audit_module.evaluate

    def evaluate(*args, **kwargs):
        calls.append("evaluate")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(audit_module, "evaluate", evaluate)
    audit([onnx_model], str(tiny_data), "smoke", cache=False, baselines=False)
    assert calls[0] == "execute" and calls[-2:] == ["evaluate", "checks"], calls
