"""GPU benchmark: audit throughput against pure batched inference of the same signals.

    .venv/bin/python benchmarks/gpu_bench.py [--size large|tiny] [--device cuda|auto|cpu]
        [--items 200] [--executor batched,batched-processes] [--out FILE]

The model is a wav2vec2-large-sized regression model (24 layers, hidden size 1024, 16
heads, ~315 M parameters, layer-norm feature encoder that masks padding) built from a
config with random weights: nothing is downloaded.  ``--size tiny`` builds a 2-layer model
of hidden size 32 so the script runs on a CPU in a minute (a smoke test of the path, not a
measurement).  The data are ``--items`` generated speech-like WAV files of 2-6 s (seeded),
the suite is ``quick`` (clean audio plus its robustness conditions).

(a) audit: the engine's prediction stage (``sertest.engine.execute``: decode, perturb,
    length-bucketed model calls on the device, no cache) with each ``--executor``;
    throughput = audio seconds predicted per wall second.
(p) pure batched inference: exactly the signals the audit predicted (prepared beforehand,
    untimed), cut into the same length buckets over the whole set, one model call per
    bucket in a tight loop after one warm-up call.
ratio = throughput(a) / throughput(p); target >= 0.7 on a GPU (the CPU's decoding and
perturbing keep the GPU fed).  Figures go to ``--out`` (JSON) with the machine named.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sertest.seeding import derive_rng  # noqa: E402

SIZES = {
    # wav2vec2-large (lv60 layout): the usual SER teacher backbone
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096),
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, conv_dim=(32,) * 7, num_conv_pos_embeddings=16,
                 num_conv_pos_embedding_groups=4, classifier_proj_size=16),
}


def build_model(folder: str, size: str) -> str:
    """Save a randomly initialised wav2vec2 regression model of ``size`` into ``folder``."""
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    names = ("arousal", "dominance", "valence")
    config = transformers.Wav2Vec2Config(
        **SIZES[size], feat_extract_norm="layer", do_stable_layer_norm=True,
        num_labels=3, id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)}, problem_type="regression")
    model = transformers.AutoModelForAudioClassification.from_config(config).eval()
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True
                                          ).save_pretrained(folder)
    return folder


def make_data(folder: str, items: int) -> str:
    """``items`` voiced, speech-like WAV files of 2-6 s at 16 kHz and a manifest."""
    import pandas as pd

    rows = []
    for i in range(items):
        rng = derive_rng(0, "gpu-bench", i)
        n = int(16000 * rng.uniform(2.0, 6.0))
        t = np.arange(n) / 16000
        f0 = rng.uniform(90, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 4) * t) ** 2
        level = rng.uniform(0.02, 0.3)
        x = level * envelope * voiced / 3 + 0.003 * rng.standard_normal(n)
        sf.write(os.path.join(folder, f"u{i:05d}.wav"), x.astype(np.float32), 16000)
        rows.append(dict(id=f"u{i:05d}", file=f"u{i:05d}.wav", speaker=f"s{i % 20}",
                         sex="female" if i % 2 else "male", arousal=round(level / 0.3, 3),
                         dominance=rng.uniform(), valence=rng.uniform()))
    pd.DataFrame(rows).to_csv(os.path.join(folder, "manifest.csv"), index=False)
    return os.path.join(folder, "manifest.csv")


def machine(device: str) -> str:
    import torch

    gpu = (torch.cuda.get_device_name(int(device.split(":")[1]))
           if device.startswith("cuda") else "no GPU used")
    return f"{gpu}; {os.cpu_count()} CPU cores; {platform.platform()}"


def audit_stage(plan, name: str, executor: str, jobs: int) -> dict:
    from sertest.engine.execute import execute

    t = time.perf_counter()
    _, errors, stats = execute(plan.dataset, plan.models, plan.conditions, plan.needed,
                               seed=0, cache=None, jobs=jobs, progress=False,
                               executor=executor)
    wall = time.perf_counter() - t
    audio = stats.audio_seconds[name]         # this model's (not the signal statistics')
    return {"executor": executor, "wall_s": round(wall, 3), "audio_s": round(audio, 1),
            "errors": len(errors),
            "model_s": round(stats.model_seconds[name], 3),
            "throughput_audio_s_per_s": round(audio / wall, 2)}


def pure_inference(plan, model, max_samples: int, spread: float) -> dict:
    """Every signal the audit predicts, prepared untimed, then predicted in a tight loop."""
    from sertest.engine.batching import length_buckets, padding_share, predict_bucket
    from sertest.engine.execute import _plan_units  # the audit's own units
    from sertest.engine.units import one_thread_per_call, prepare_unit

    units, keys = _plan_units(plan.dataset, plan.models, plan.conditions, plan.needed, 0, 1,
                              plan.features, [], False)
    by_id = {u.item_id: u for u in units}
    for (name, ck, item_id) in keys:   # as execute() fills them on an empty cache
        sr = plan.models[name].sampling_rate
        by_id[item_id].needs.setdefault(sr, {}).setdefault(ck, []).append(name)
    signals = []
    for u in units:
        p = prepare_unit(u, plan.conditions, 0)
        for sig in p.signals.get(model.sampling_rate, {}).values():
            if not isinstance(sig, Exception):
                signals.append(np.asarray(sig, dtype=np.float32))
    lengths = [len(s) for s in signals]
    buckets = length_buckets(lengths, max_signals=model.max_batch, max_samples=max_samples,
                             spread=spread if model.pads_with_mask else 0.0)
    one_thread_per_call({model.name: model})   # as the executors call it (CPU threads)
    predict_bucket(model, [signals[i] for i in buckets[-1]])   # warm-up (CUDA, kernels)
    t = time.perf_counter()
    for b in buckets:
        predict_bucket(model, [signals[i] for i in b])
    wall = time.perf_counter() - t
    audio = sum(lengths) / model.sampling_rate
    return {"wall_s": round(wall, 3), "audio_s": round(audio, 1), "signals": len(signals),
            "calls": len(buckets), "padding_share": padding_share(lengths, buckets),
            "throughput_audio_s_per_s": round(audio / wall, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="large")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--items", type=int, default=None,
                    help="generated items (default 200 for large, 12 for tiny)")
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--executor", default="batched,batched-processes")
    ap.add_argument("--jobs", type=int, default=None, help="preparing workers (default: cores)")
    ap.add_argument("--batch", type=int, default=32, help="most signals per model call")
    ap.add_argument("--out", default=None, help="JSON file for the figures")
    args = ap.parse_args(argv)

    from sertest.engine.batched_executor import BatchedExecutor
    from sertest.engine.plan import plan_audit
    from sertest.models import load_model

    items = args.items or (200 if args.size == "large" else 12)
    jobs = args.jobs or os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        folder = build_model(os.path.join(tmp, "model"), args.size)
        os.makedirs(os.path.join(tmp, "data"))
        manifest = make_data(os.path.join(tmp, "data"), items)
        model = load_model(f"w2v2-{args.size}={folder}", device=args.device)
        model.max_batch = args.batch
        print(f"model {model.name}: {model.info().parameters / 1e6:.3g} M parameters on "
              f"{model.device}; {items} items; built in {time.perf_counter() - t:.1f} s",
              flush=True)
        plan = plan_audit([model], manifest, args.suite, seed=0, baselines=False)
        figures = {"machine": machine(model.device), "device": model.device,
                   "size": args.size, "parameters": model.info().parameters, "items": items,
                   "suite": args.suite, "jobs": jobs, "max_batch": model.max_batch,
                   "audit": []}
        pure = pure_inference(plan, model, BatchedExecutor.max_samples,
                              BatchedExecutor.spread)
        figures["pure"] = pure
        print(f"(p) pure batched inference: {pure['signals']} signals, {pure['audio_s']} s "
              f"of audio in {pure['wall_s']} s ({pure['throughput_audio_s_per_s']} audio s/s, "
              f"{pure['calls']} calls, padding {100 * pure['padding_share']:.1f} %)",
              flush=True)
        for name in [e.strip() for e in args.executor.split(",") if e.strip()]:
            a = audit_stage(plan, model.name, name, jobs)
            a["ratio"] = round(a["throughput_audio_s_per_s"]
                               / pure["throughput_audio_s_per_s"], 3)
            figures["audit"].append(a)
            print(f"(a) audit, --executor {name}: {a['audio_s']} s of audio in {a['wall_s']} s "
                  f"({a['throughput_audio_s_per_s']} audio s/s); ratio a/p = {a['ratio']} "
                  f"(target >= 0.7 on a GPU)", flush=True)
        print(f"machine: {figures['machine']}")
        if args.out:
            with open(args.out, "w", encoding="utf-8") as fh:
                json.dump(figures, fh, indent=2)
            print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
