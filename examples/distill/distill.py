"""Reproducible teacher → student distillation of the sertest reference models.

Steps (run one with its name, or ``all``):

1. ``teacher``  train a small wav2vec2 teacher from scratch on the bundled corpus's nominal
   labels (A/D/V + 4 emotions), speaker-independent split (20 % of speakers held out);
   saved as a local Hugging Face folder ``<out>/teacher``.
2. ``label``    label every corpus item, seeded augmented copies of the training items and
   the label-free real recordings with the teacher (loaded back from its folder).
3. ``students`` train Wav2Small (~67 K parameters), MobileNet-V4-conv-small and
   MobileNet-V3-small on the teacher's outputs only, with the CCC loss.
4. ``export``   ONNX export: input ``signal`` (batch, time) raw 16 kHz waveform, both axes
   dynamic; output ``logits`` labelled through the metadata property ``labels``.
5. ``quantize`` Wav2Small → 8-bit weights (``quant_pre_process`` + ``quantize_dynamic`` with
   ``QUInt8`` weights; the log-mel front end and the Gram product stay float).
6. ``check``    ONNX vs torch max |diff| on the held-out items; int8 vs float; every file
   loaded through ``sertest.models.load_model``.
7. ``cards``    write ``<out>/README.md`` (model cards) and ``<out>/metrics.json``.

Everything is seeded (``--seed``); two threads, deterministic kernels.  Run from the
repository root::

    nice -n 10 .venv/bin/python examples/distill/distill.py all

Intermediate files go to ``--work`` (default: a ``sertest-distill`` folder in the system
temp directory).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings

# Idle OpenMP threads sleep instead of spinning: on a shared machine, spinning threads
# waiting for a descheduled peer made training ~10x slower.  Must precede `import torch`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from data import (CATEGORIES, DIMENSIONS, SR, augment, load_corpus,  # noqa: E402
                  speaker_split)
from sertest.seeding import derive_rng  # noqa: E402
from train import ccc, predict, setup_torch, train_student, train_teacher  # noqa: E402

STUDENTS = ("wav2small", "mobilenetv4", "mobilenetv3")

#: Training settings, part of the recipe: changing them changes the cards' figures.
RECIPE = {
    "teacher": dict(hidden=128, layers=3, heads=4, intermediate=256,
                    conv_dim=(16, 32, 32, 64, 64, 96, 128), epochs=45, batch_size=16,
                    lr=1e-3, max_seconds=2.0),
    "augmented_copies": 2,
    "wav2small": dict(epochs=15, batch_size=16, lr=4e-3, max_seconds=1.5),
    "mobilenetv4": dict(epochs=20, batch_size=16, lr=1e-3, max_seconds=2.0),
    "mobilenetv3": dict(epochs=15, batch_size=16, lr=2e-3, max_seconds=2.0),
}


# ----------------------------------------------------------------------------- helpers

class Context:
    """Paths, seed and the loaded corpus, shared by the steps."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.seed = args.seed
        self.out = os.path.abspath(args.out)
        self.work = os.path.abspath(args.work)
        self.corpus_root = os.path.abspath(args.corpus)
        self.quick = args.quick
        os.makedirs(self.out, exist_ok=True)
        os.makedirs(self.work, exist_ok=True)
        self._corpus = None

    def log(self, msg: str) -> None:
        print(msg, flush=True)

    @property
    def corpus(self):
        if self._corpus is None:
            self._corpus = load_corpus(self.corpus_root)
        return self._corpus

    def split(self) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
        table = self.corpus.table
        train_spk, test_spk = speaker_split(table, self.seed)
        train_idx = np.flatnonzero(table["speaker"].isin(train_spk).to_numpy())
        test_idx = np.flatnonzero(table["speaker"].isin(test_spk).to_numpy())
        return train_idx, test_idx, train_spk, test_spk

    def recipe(self, key: str) -> dict:
        r = dict(RECIPE[key])
        if self.quick:
            r["epochs"] = 2
        return r

    @property
    def metrics_path(self) -> str:
        return os.path.join(self.work, "metrics.json")

    def metrics(self) -> dict:
        if os.path.isfile(self.metrics_path):
            with open(self.metrics_path, encoding="utf-8") as fh:
                return json.load(fh)
        return {}

    def update_metrics(self, **parts) -> None:
        m = self.metrics()
        for k, v in parts.items():
            if isinstance(v, dict) and isinstance(m.get(k), dict):
                m[k].update(v)
            else:
                m[k] = v
        with open(self.metrics_path, "w", encoding="utf-8") as fh:
            json.dump(m, fh, indent=2, sort_keys=True)


def ccc_table(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    return {d: round(ccc(pred[:, i], ref[:, i]), 4) for i, d in enumerate(DIMENSIONS)}


def build_student(name: str) -> torch.nn.Module:
    from sertest.models.arch import build_mobilenet, wav2small_paper
    if name == "wav2small":
        return wav2small_paper()
    return build_mobilenet({"mobilenetv4": "mobilenetv4_conv_small",
                            "mobilenetv3": "mobilenetv3_small_100"}[name])


def distillation_set(ctx: Context, train_idx: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
    """Training audio for the students: the training items, ``augmented_copies`` seeded
    augmented copies of each, and the real recordings.  Deterministic given the seed."""
    corpus = ctx.corpus
    copies = RECIPE["augmented_copies"]
    signals, names = [], []
    for i in train_idx:
        item = corpus.table["id"][i]
        signals.append(corpus.signals[i])
        names.append(item)
        for k in range(copies):
            y, desc = augment(corpus.signals[i], derive_rng(ctx.seed, "augment", item, k))
            signals.append(y)
            names.append(f"{item}#{k} ({desc})")
    for j, x in enumerate(corpus.real):
        signals.append(x)
        names.append(f"real-{j}")
    return signals, names


# ----------------------------------------------------------------------------- steps

def step_teacher(ctx: Context) -> None:
    from sertest.models.arch.teacher import TeacherModel, save_teacher, teacher_config
    r = ctx.recipe("teacher")
    train_idx, test_idx, train_spk, test_spk = ctx.split()
    corpus = ctx.corpus
    ctx.log(f"teacher: {len(train_idx)} training items ({len(train_spk)} speakers), "
            f"{len(test_idx)} held-out items ({len(test_spk)} speakers: {', '.join(test_spk)})")
    torch.manual_seed(ctx.seed)
    cfg = teacher_config(hidden=r["hidden"], layers=r["layers"], heads=r["heads"],
                         intermediate=r["intermediate"], conv_dim=tuple(r["conv_dim"]))
    cfg.feat_extract_norm = "group"
    model = TeacherModel(cfg)
    t0 = time.time()
    train_teacher(model, [corpus.signals[i] for i in train_idx], corpus.targets[train_idx],
                  corpus.emotion_index[train_idx], epochs=r["epochs"],
                  batch_size=r["batch_size"], lr=r["lr"], seed=ctx.seed,
                  max_seconds=r["max_seconds"], log=ctx.log)
    seconds = time.time() - t0
    model.eval()
    dims = predict(lambda x: model(x)[0], [corpus.signals[i] for i in test_idx])
    probs = predict(lambda x: torch.softmax(model(x)[1], 1), [corpus.signals[i] for i in test_idx])
    truth = corpus.emotion_index[test_idx]
    guess = probs.argmax(1)
    recalls = [float(np.mean(guess[truth == c] == c)) for c in range(len(CATEGORIES))
               if np.any(truth == c)]
    params = sum(p.numel() for p in model.parameters())
    folder = os.path.join(ctx.out, "teacher")
    save_teacher(model, folder, extra={
        "training": {"data": "sertest bundled synthetic corpus, nominal labels",
                     "train_speakers": train_spk, "held_out_speakers": test_spk,
                     "seed": ctx.seed, "epochs": r["epochs"]}})
    res = {"parameters": int(params), "ccc_nominal": ccc_table(dims, corpus.targets[test_idx]),
           "emotion_uar": round(float(np.mean(recalls)), 4),
           "emotion_accuracy": round(float(np.mean(guess == truth)), 4),
           "train_seconds": round(seconds, 1), "recipe": r}
    ctx.update_metrics(split={"seed": ctx.seed, "train_speakers": train_spk,
                              "held_out_speakers": test_spk, "n_train": int(len(train_idx)),
                              "n_held_out": int(len(test_idx))}, teacher=res)
    ctx.log(f"teacher: CCC vs nominal {res['ccc_nominal']}, emotion UAR "
            f"{res['emotion_uar']}, {params} parameters, {seconds:.0f} s")


def step_label(ctx: Context) -> None:
    from sertest.models.arch.teacher import load_teacher
    model = load_teacher(os.path.join(ctx.out, "teacher"))
    train_idx, test_idx, _, _ = ctx.split()
    t0 = time.time()
    signals, names = distillation_set(ctx, train_idx)
    train_y = predict(lambda x: model(x)[0], signals)
    test_y = predict(lambda x: model(x)[0], [ctx.corpus.signals[i] for i in test_idx])
    np.savez(os.path.join(ctx.work, "labels.npz"), train=train_y, test=test_y,
             names=np.array(names))
    ctx.update_metrics(labels={"n_distillation_signals": len(signals),
                               "distillation_seconds_of_audio":
                                   round(sum(x.size for x in signals) / SR, 1),
                               "label_seconds": round(time.time() - t0, 1)})
    ctx.log(f"label: {len(signals)} training signals "
            f"({sum(x.size for x in signals) / SR:.0f} s of audio), {len(test_y)} held-out "
            f"items in {time.time() - t0:.0f} s")


def step_students(ctx: Context, only: list[str] | None = None) -> None:
    from sertest.models.arch.wav2small import count_parameters
    labels = np.load(os.path.join(ctx.work, "labels.npz"))
    train_idx, test_idx, _, _ = ctx.split()
    signals, _ = distillation_set(ctx, train_idx)
    test_signals = [ctx.corpus.signals[i] for i in test_idx]
    for name in only or STUDENTS:
        r = ctx.recipe(name)
        torch.manual_seed(ctx.seed)
        model = build_student(name)
        t0 = time.time()
        train_student(model, signals, labels["train"], name=name, epochs=r["epochs"],
                      batch_size=r["batch_size"], lr=r["lr"], seed=ctx.seed,
                      max_seconds=r["max_seconds"], log=ctx.log)
        seconds = time.time() - t0
        torch.save(model.state_dict(), os.path.join(ctx.work, f"{name}.pt"))
        pred = predict(model, test_signals)
        trainable, frozen = count_parameters(model)
        res = {"parameters": trainable + frozen, "trainable": trainable, "frozen": frozen,
               "ccc_teacher": ccc_table(pred, labels["test"]),
               "ccc_nominal": ccc_table(pred, ctx.corpus.targets[test_idx]),
               "train_seconds": round(seconds, 1), "recipe": r}
        ctx.update_metrics(students={name: res})
        ctx.log(f"{name}: CCC vs teacher {res['ccc_teacher']}, vs nominal "
                f"{res['ccc_nominal']}, {trainable}+{frozen} parameters, {seconds:.0f} s")


def load_student(ctx: Context, name: str) -> torch.nn.Module:
    model = build_student(name)
    state = torch.load(os.path.join(ctx.work, f"{name}.pt"), map_location="cpu",
                       weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def step_export(ctx: Context) -> None:
    from sertest.models.arch import export_onnx
    metrics = ctx.metrics()
    for name in STUDENTS:
        model = load_student(ctx, name)
        path = os.path.join(ctx.out, f"{name}.onnx")
        st = metrics.get("students", {}).get(name, {})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(model, path, metadata={
                "name": name, "description": f"sertest reference student {name}: raw 16 kHz "
                "waveform -> arousal, dominance, valence (distilled from the sertest teacher "
                "on synthetic TTS speech; a test fixture, not a production model)",
                "parameters": str(st.get("parameters", "")), "seed": str(ctx.seed)})
        ctx.log(f"export: {path} ({os.path.getsize(path)} bytes)")


def step_quantize(ctx: Context) -> None:
    quantize_wav2small(ctx, os.path.join(ctx.out, "wav2small.onnx"),
                       os.path.join(ctx.out, "wav2small-int8.onnx"), "wav2small-int8")


def quantize_wav2small(ctx: Context, src: str, dst: str, name: str) -> None:
    """8-bit weights for the Wav2Small ONNX file ``src`` -> ``dst`` (metadata name ``name``)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process
    pre = os.path.join(ctx.work, os.path.basename(src).replace(".onnx", "-pre.onnx"))
    quant_pre_process(src, pre)
    graph = onnx.load(pre).graph
    # Keep the log-mel front end (DFT convolutions, mel MatMul) and the activation ×
    # activation Gram product in float: quantising them costs accuracy for ~20 KB.
    exclude = [n.name for n in graph.node if n.name.startswith("/frontend/") or
               (n.op_type == "MatMul" and not n.name.startswith("/adv"))]
    quantize_dynamic(pre, dst, weight_type=QuantType.QUInt8, per_channel=True,
                     op_types_to_quantize=["Conv", "MatMul", "Gemm"], nodes_to_exclude=exclude)
    proto = onnx.load(dst)
    _float16_frontend(proto)
    for p in proto.metadata_props:
        if p.key == "name":
            p.value = name
    entry = proto.metadata_props.add()
    entry.key, entry.value = "quantization", ("onnxruntime quantize_dynamic, QUInt8 weights, "
                                              "per channel; front end stored as float16")
    onnx.checker.check_model(proto)
    onnx.save(proto, dst)
    ctx.log(f"quantize: {dst} ({os.path.getsize(dst)} bytes)")


def _float16_frontend(proto, prefix: str = "/frontend/") -> None:
    """Store the front end's float weights (DFT kernels, mel matrix) as float16 with a Cast
    back to float32: halves their ~73 KB at a relative error of about 5e-4."""
    from onnx import TensorProto, helper, numpy_helper
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    casts = []
    for node in graph.node:
        if not (node.name.startswith(prefix) and node.op_type in ("Conv", "MatMul")):
            continue
        for name in node.input:
            init = inits.pop(name, None)
            if init is None or init.data_type != TensorProto.FLOAT:
                continue
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16),
                                           name + "_fp16")
            graph.initializer.remove(init)
            graph.initializer.append(half)
            casts.append(helper.make_node("Cast", [half.name], [name], to=TensorProto.FLOAT,
                                          name=name + "_cast"))
    for node in reversed(casts):
        graph.node.insert(0, node)


def step_check(ctx: Context) -> None:
    import onnxruntime as ort
    from sertest.models import load_model
    labels = np.load(os.path.join(ctx.work, "labels.npz"))
    _, test_idx, _, _ = ctx.split()
    test_signals = [ctx.corpus.signals[i] for i in test_idx]
    results: dict[str, dict] = {}
    for name in STUDENTS:
        model = load_student(ctx, name)
        path = os.path.join(ctx.out, f"{name}.onnx")
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        torch_pred = predict(model, test_signals)
        onnx_pred = np.concatenate([sess.run(None, {"signal": x[None, :].astype(np.float32)})[0]
                                    for x in test_signals]).astype(np.float64)
        rng = derive_rng(ctx.seed, "check-batch", name)
        batch = rng.standard_normal((3, int(1.7 * SR))).astype(np.float32) * 0.1
        with torch.inference_mode():
            tb = model(torch.from_numpy(batch)).numpy()
        ob = sess.run(None, {"signal": batch})[0]
        results[name] = {"onnx_vs_torch_max_abs": float(np.abs(onnx_pred - torch_pred).max()),
                         "onnx_vs_torch_batch3_max_abs": float(np.abs(ob - tb).max()),
                         "onnx_bytes": os.path.getsize(path),
                         "ccc_teacher_onnx": ccc_table(onnx_pred, labels["test"])}
        if name == "wav2small":
            q_path = os.path.join(ctx.out, "wav2small-int8.onnx")
            qs = ort.InferenceSession(q_path, providers=["CPUExecutionProvider"])
            q_pred = np.concatenate([qs.run(None, {"signal": x[None, :].astype(np.float32)})[0]
                                     for x in test_signals]).astype(np.float64)
            results["wav2small-int8"] = {
                "int8_vs_float_max_abs": float(np.abs(q_pred - onnx_pred).max()),
                "onnx_bytes": os.path.getsize(q_path),
                "ccc_teacher_onnx": ccc_table(q_pred, labels["test"]),
                "ccc_nominal": ccc_table(q_pred, ctx.corpus.targets[test_idx])}
    for fname in ("wav2small.onnx", "wav2small-int8.onnx", "mobilenetv4.onnx",
                  "mobilenetv3.onnx", "teacher"):
        m = load_model(os.path.join(ctx.out, fname))
        y = m.predict([test_signals[0]])
        if not np.all(np.isfinite(y)):
            raise RuntimeError(f"{fname}: non-finite predictions through load_model")
        info = m.info()
        key = fname.replace(".onnx", "")
        results.setdefault(key, {}).update({"load_model_outputs": list(m.outputs),
                                            "info_parameters": info.parameters,
                                            "file_size": info.file_size})
    ctx.update_metrics(check=results)
    for k, v in results.items():
        ctx.log(f"check {k}: " + ", ".join(f"{a}={b}" for a, b in v.items()
                                            if not isinstance(b, (dict, list))))


def step_cards(ctx: Context) -> None:
    from cards import write_cards
    metrics = ctx.metrics()
    metrics["environment"] = {"python": platform.python_version(), "torch": torch.__version__,
                              "threads": torch.get_num_threads()}
    with open(os.path.join(ctx.out, "metrics.json"), "w", encoding="utf-8") as fh:
        json.dump(metrics, fh, indent=2, sort_keys=True)
        fh.write("\n")
    write_cards(metrics, os.path.join(ctx.out, "README.md"))
    robust_metrics = os.path.join(ctx.out, "metrics-robust.json")
    if os.path.isfile(robust_metrics):      # keep the robust student's card at the end
        from robust import write_robust
        with open(robust_metrics, encoding="utf-8") as fh:
            write_robust(ctx.out, json.load(fh))
    ctx.log(f"cards: {os.path.join(ctx.out, 'README.md')}")


STEPS = {"teacher": step_teacher, "label": step_label, "students": step_students,
         "export": step_export, "quantize": step_quantize, "check": step_check,
         "cards": step_cards}
#: steps outside ``all``: the robust student (from the teacher in ``--out``; see robust.py)
#: (``robust-export`` re-exports a variant it trained, ``--variant``, default the chosen
#: one) and its card alone (``robust-card --audit DIR`` adds a sertest audit's figures)
EXTRA_STEPS = ("robust", "robust-export", "robust-card")


def step_robust_card(ctx: Context, audit: str | None) -> None:
    from robust import VARIANTS, merge_variants, read_audit, write_robust
    path = os.path.join(ctx.out, "metrics-robust.json")
    if not os.path.isfile(path):
        raise SystemExit(f"{path} does not exist: run `distill.py robust` first")
    with open(path, encoding="utf-8") as fh:
        metrics = json.load(fh)
    merge_variants(ctx.work, metrics["models"], metrics["recipe"], ctx.seed)
    for name in VARIANTS:           # variants trained by a separate run (--variant NAME)
        res = metrics["models"].get(f"wav2small-robust-{name}")
        if res:
            metrics["timing"][f"train_{name}"] = res["train_seconds"]
    if audit is not None:
        metrics["audit"] = read_audit(audit)
    write_robust(ctx.out, metrics)
    ctx.log(f"robust-card: {os.path.join(ctx.out, 'README.md')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=["all", *STEPS, *EXTRA_STEPS],
                    help="pipeline step, or all of them (the robust steps are not in all)")
    ap.add_argument("--corpus", default=os.path.join(ROOT, "sertest", "data", "corpus"),
                    help="corpus folder with manifest.csv (default: the bundled corpus)")
    ap.add_argument("--out", default=os.path.join(ROOT, "examples", "models"),
                    help="artefact folder (default: examples/models)")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "sertest-distill"),
                    help="folder for intermediate files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", action="append", choices=STUDENTS,
                    help="with 'students': train only these (repeatable)")
    ap.add_argument("--quick", action="store_true",
                    help="2 epochs per model: a smoke test of the pipeline, not the recipe")
    ap.add_argument("--variant", choices=["all", "both", "perturbed", "clean", "consistent"],
                    default="all",
                    help="with 'robust': targets for the perturbed audio -- the teacher's "
                    "output for it (perturbed), for the clean item (clean), clean targets "
                    "with a paired consistency term fine-tuned from perturbed (consistent), "
                    "or train all of them ('both' is an old name of 'all')")
    ap.add_argument("--audit", metavar="DIR", action="append",
                    help="with 'robust'/'robust-card': the --out folder of a sertest run of "
                    "wav2small and wav2small-robust (repeat it for one audit per model); its "
                    "robustness figures go on the card")
    args = ap.parse_args(argv)
    setup_torch(args.threads)
    ctx = Context(args)
    if args.step == "all" and os.path.isfile(ctx.metrics_path):
        os.remove(ctx.metrics_path)          # no stale figures from an earlier run
    steps = [s for s in STEPS if s != "cards"] if args.step == "all" else [args.step]
    timing = {}
    t_all = time.time()
    for s in steps:
        t0 = time.time()
        ctx.log(f"== {s}")
        if s == "students":
            step_students(ctx, args.only)
        elif s == "robust":
            from robust import step_robust
            step_robust(ctx, args.variant, args.audit, quantize=quantize_wav2small)
        elif s == "robust-export":
            from robust import EXPORTED, step_robust_export
            step_robust_export(ctx, EXPORTED if args.variant in ("all", "both") else args.variant,
                               quantize=quantize_wav2small)
        elif s == "robust-card":
            step_robust_card(ctx, args.audit)
        else:
            STEPS[s](ctx)
        timing[s] = round(time.time() - t0, 1)
    if args.step == "all":
        timing["total"] = round(time.time() - t_all, 1)
        ctx.update_metrics(timing=timing)
        step_cards(ctx)
    ctx.log(f"done: {timing}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
