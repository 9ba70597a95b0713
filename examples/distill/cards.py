"""Model cards (``examples/models/README.md``) rendered from the pipeline's metrics."""

from __future__ import annotations

from typing import Any

DIMS = ("arousal", "dominance", "valence")

COMMAND = "nice -n 10 .venv/bin/python examples/distill/distill.py all"


def _ccc_row(label: str, values: dict[str, float] | None) -> str:
    if not values:
        return f"| {label} | – | – | – |"
    return f"| {label} | " + " | ".join(f"{values[d]:.3f}" for d in DIMS) + " |"


def _kb(n: Any) -> str:
    return f"{n / 1024:.1f} KiB ({n:,} bytes)" if isinstance(n, int) else "–"


def _num(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else "–"


def write_cards(m: dict[str, Any], path: str) -> None:
    """Write the cards for the teacher and the students from ``metrics.json`` content."""
    split = m.get("split", {})
    teacher = m.get("teacher", {})
    students = m.get("students", {})
    check = m.get("check", {})
    timing = m.get("timing", {})
    env = m.get("environment", {})
    lines: list[str] = []
    add = lines.append
    add("# Reference models (test fixtures)")
    add("")
    add("Small speech-emotion models trained **only on sertest's bundled synthetic corpus** "
        "(`sertest/data/corpus`: espeak-ng / flite TTS voices whose *nominal* arousal, "
        "dominance and valence labels are computed from the prosody parameters used to "
        "render them). They exist so that sertest's adapters, audits and reports can be "
        "demonstrated and tested offline. **They are not emotion recognisers for real "
        "speech**: do not use them to judge people.")
    add("")
    add("All models take the raw 16 kHz mono waveform and z-normalise it per utterance, so "
        "they are blind to the overall level by construction. The corpus's nominal arousal "
        "and dominance partly encode the level (see its DATASHEET), which caps what any of "
        "these models can reach against the nominal labels, dominance most.")
    add("")
    add("| file | model | parameters | size |")
    add("|---|---|---|---|")
    add(f"| `teacher/` | wav2vec2-style teacher (Hugging Face folder) | "
        f"{_num(teacher.get('parameters'))} | {_kb(check.get('teacher', {}).get('file_size'))} |")
    names = {"wav2small": "Wav2Small (32 ch, 26 mels)", "mobilenetv4": "MobileNet-V4-conv-small",
             "mobilenetv3": "MobileNet-V3-small"}
    for key, title in names.items():
        add(f"| `{key}.onnx` | {title} | {_num(students.get(key, {}).get('parameters'))} | "
            f"{_kb(check.get(key, {}).get('onnx_bytes'))} |")
    add(f"| `wav2small-int8.onnx` | Wav2Small, 8-bit weights | "
        f"{_num(students.get('wav2small', {}).get('parameters'))} | "
        f"{_kb(check.get('wav2small-int8', {}).get('onnx_bytes'))} |")
    add("")
    add("Load any of them with `sertest.models.load_model(path)` or `sertest run --model "
        "examples/models/wav2small.onnx ...`. ONNX files: input `signal` (batch, time), "
        "float32, both axes dynamic; output `logits` (batch, 3), labelled through the ONNX "
        "metadata property `labels` = `{\"logits\": [\"arousal\", \"dominance\", \"valence\"]}`.")
    add("")
    add("## Training data and evaluation protocol")
    add("")
    add(f"- Data: the bundled corpus, {split.get('n_train', '–')} items from "
        f"{len(split.get('train_speakers', []))} speakers for training; "
        f"{split.get('n_held_out', '–')} items from {len(split.get('held_out_speakers', []))} "
        f"held-out speakers ({', '.join(split.get('held_out_speakers', []))}) for evaluation "
        f"(speaker-independent split, seed {split.get('seed', '–')}).")
    add("- Teacher: trained from scratch on the nominal labels (CCC loss on A/D/V + "
        "cross-entropy on the 4 emotion profiles).")
    add(f"- Students: trained on the teacher's A/D/V outputs only (CCC loss, as in the "
        f"Wav2Small paper), on the training items, "
        f"{m.get('labels', {}).get('n_distillation_signals', '–')} signals in all "
        f"({m.get('labels', {}).get('distillation_seconds_of_audio', '–')} s): the "
        "training items, seeded augmented copies (noise, speed ±5–10 %, low-pass, "
        "synthetic reverberation) and the corpus's 10 label-free real recordings.")
    add("- CCC = concordance correlation coefficient on the held-out items (full "
        "utterances).")
    add("")
    add("## Teacher (`teacher/`)")
    add("")
    conv = "-".join(str(c) for c in teacher.get("recipe", {}).get("conv_dim", []))
    add("audEERING's layout: a `transformers` `Wav2Vec2Model` (conv feature encoder with "
        f"channels {conv}, 20 ms frames; "
        f"{teacher.get('recipe', {}).get('layers', '–')} transformer layers, hidden size "
        f"{teacher.get('recipe', {}).get('hidden', '–')}), mean pooling over time, regression "
        "head `classifier` (Linear-tanh-Linear) → arousal, dominance, valence, and a second "
        "head `categorical` → anger, happiness, neutral, sadness (softmax). Files: "
        "`config.json`, `model.safetensors`, `sertest_head.json`. Loads with "
        "`sertest.models.load_model('examples/models/teacher')` (the `hf` adapter).")
    add("")
    add("| teacher vs nominal labels (held-out) | arousal | dominance | valence |")
    add("|---|---|---|---|")
    add(_ccc_row("CCC", teacher.get("ccc_nominal")))
    add("")
    add(f"Emotion (4 classes, held-out): unweighted average recall "
        f"{teacher.get('emotion_uar', '–')}, accuracy {teacher.get('emotion_accuracy', '–')} "
        f"(chance 0.25).")
    add("")
    for key, title in names.items():
        st = students.get(key, {})
        ck = check.get(key, {})
        add(f"## {title} (`{key}.onnx`)")
        add("")
        if key == "wav2small":
            add("Wav2Small as on the audEERING model card — waveform z-normalisation, STFT as "
                "frozen DFT convolutions, 26-band log-mel, VGG7 (3×3 conv, no bias, BN, ReLU; "
                "max-pool after layer 3), attention pooling over time, Gram-matrix features, "
                "Linear → 3 — widened to about the paper's size: 32 channels instead of 13 and "
                "an 8 ms window / 4 ms hop (n_fft 128, hop 64) instead of 4 ms / 2 ms, "
                f"giving {_num(st.get('trainable'))} trainable + {_num(st.get('frozen'))} "
                "frozen DFT parameters (the card's own 13-channel layout has 10,806 + 4,224; "
                "`sertest.models.arch.wav2small_card()` builds it).")
        elif key == "mobilenetv4":
            add("MobileNet-V4-conv-small built from the MNv4-Conv-S block table (Qin et al. "
                "2024), one input channel, 3 outputs, on a 64-band log-mel image (25 ms Hann "
                "window, 10 ms hop) computed inside the graph.")
        else:
            add("MobileNet-V3-small built from Table 2 of Howard et al. 2019, one input "
                "channel, 3 outputs, on the same 64-band log-mel image.")
        add("")
        add(f"- Parameters: {_num(st.get('parameters'))} "
            f"({_num(st.get('trainable'))} trainable, {_num(st.get('frozen'))} frozen "
            "front end); ONNX initializers (BatchNorm folded): "
            f"{_num(ck.get('info_parameters'))}.")
        add(f"- File size: {_kb(ck.get('onnx_bytes'))}.")
        add(f"- ONNX vs torch, held-out items one at a time: max |diff| "
            f"{ck.get('onnx_vs_torch_max_abs', float('nan')):.2e}; batch of 3 × 1.7 s: "
            f"{ck.get('onnx_vs_torch_batch3_max_abs', float('nan')):.2e}.")
        add(f"- Training: {st.get('recipe', {}).get('epochs', '–')} epochs, "
            f"{st.get('train_seconds', '–')} s.")
        add("")
        add("| held-out CCC | arousal | dominance | valence |")
        add("|---|---|---|---|")
        add(_ccc_row("vs teacher (torch)", st.get("ccc_teacher")))
        add(_ccc_row("vs teacher (ONNX)", ck.get("ccc_teacher_onnx")))
        add(_ccc_row("vs nominal labels", st.get("ccc_nominal")))
        add("")
    q = check.get("wav2small-int8", {})
    add("## Wav2Small, 8-bit (`wav2small-int8.onnx`)")
    add("")
    add("`onnxruntime.quantization.quant_pre_process`, then `quantize_dynamic` with "
        "`weight_type=QuantType.QUInt8`, per-channel, on the Conv/MatMul/Gemm weights of the "
        "VGG, the attention pooling and the head. The log-mel front end (DFT convolutions, "
        "mel matrix) and the activation × activation Gram product are not quantised; the "
        "front end's constants are stored as float16 with a Cast to float32 (this halves "
        "their 73 KB and keeps the file under 150 KB). Signed `QInt8` weights would turn "
        "Conv into a u8×s8 `ConvInteger`, which has no CPU kernel in onnxruntime.")
    add("")
    add(f"- File size: {_kb(q.get('onnx_bytes'))}; int8 vs float ONNX, held-out items: max "
        f"|diff| {q.get('int8_vs_float_max_abs', float('nan')):.2e}.")
    add("")
    add("| held-out CCC | arousal | dominance | valence |")
    add("|---|---|---|---|")
    add(_ccc_row("vs teacher", q.get("ccc_teacher_onnx")))
    add(_ccc_row("vs nominal labels", q.get("ccc_nominal")))
    add("")
    add("## Rebuilding")
    add("")
    add("From the repository root (two CPU threads; about "
        f"{timing.get('total', float('nan')) / 60:.0f} min on the machine that made these "
        "files, which was shared with other jobs):")
    add("")
    add("```")
    add(COMMAND)
    add("```")
    add("")
    add("Steps can be run one at a time (`teacher`, `label`, `students`, `export`, "
        "`quantize`, `check`, `cards`); see `examples/distill/README.md`. Every random draw "
        "is seeded (`--seed`, default 0), torch runs with deterministic algorithms and a fixed "
        "thread count, so a re-run on the same software versions reproduces these files; "
        "across machines or library versions, floating-point differences can change the "
        "figures above by a few hundredths of CCC (stated tolerance: ±0.03 CCC, ±10 % file "
        "size).")
    add("")
    order = ["teacher", "label", "students", "export", "quantize", "check", "total"]
    steps = sorted(timing, key=lambda k: order.index(k) if k in order else len(order))
    add(f"Step times (s): {', '.join(f'{k} {timing[k]}' for k in steps)}. "
        f"Software: Python {env.get('python', '–')}, torch {env.get('torch', '–')}.")
    add("")
    add("All figures are also in `metrics.json` next to this file.")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


ROBUST_COMMAND = "nice -n 10 .venv/bin/python examples/distill/distill.py robust"


def _fig(values: dict[str, float] | None, d: str, fmt: str = "{:.3f}") -> str:
    return fmt.format(values[d]) if values and d in values else "–"


def robust_section(m: dict[str, Any]) -> list[str]:
    """The card of ``wav2small-robust.onnx`` (and its int8 version) from
    ``metrics-robust.json`` content (written by ``distill.py robust``)."""
    split = m.get("split", {})
    r = m.get("recipe", {})
    models = m.get("models", {})
    check = m.get("check", {})
    chosen = m.get("exported_variant", "–")
    exported = models.get(f"wav2small-robust-{chosen}", {})
    ft = exported.get("fine_tuning", {})
    ck = check.get("wav2small-robust", {})
    q = check.get("wav2small-robust-int8", {})
    timing = m.get("timing", {})
    lines: list[str] = []
    add = lines.append
    add("## Wav2Small-robust (`wav2small-robust.onnx`, `wav2small-robust-int8.onnx`)")
    add("")
    add("The Wav2Small architecture and optimiser settings above, distilled from the "
        "**committed teacher** (`teacher/`, not retrained) on clean **and perturbed** audio. "
        "The perturbations come from sertest's own registry but with parameters the "
        "`default` suite never uses (other SNRs, noise colours, codec bit rates, room "
        "sizes, RT60s and distances, filter cut-offs; see "
        "`examples/distill/robust_augment.py`, whose docstring lists both sides, and "
        "`tests/test_robust_student.py`, which checks that no training draw equals an audit "
        "condition's parameter). Their random streams start with the key "
        f"`{m.get('augmentation_stream', '–')}`, which no audit stream uses.")
    add("")
    add(f"- Targets: `{chosen}` — " + {
        "clean": "each perturbed rendition is labelled with the teacher's output for the "
                 "clean item (the student learns to undo the perturbation).",
        "consistent": "the `perturbed` variant (below) fine-tuned on (clean, perturbed) "
                      "pairs of the same item cropped at the same offset, both labelled "
                      "with the teacher's output for the clean item, with a consistency "
                      "term on the difference of the pair's predictions "
                      "(`examples/distill/robust.py`, `train_consistent`).",
    }.get(chosen, "the teacher labels each perturbed rendition itself."))
    add(f"- Held-out speakers: the teacher's own ({', '.join(split.get('held_out_speakers', []))}"
        f"; {split.get('n_held_out', '–')} items of the current corpus). Training: "
        f"{split.get('n_train', '–')} items of {len(split.get('train_speakers', []))} "
        f"speakers, including the {len(split.get('new_voices_in_training', []))} voices added "
        "to the corpus after the teacher was trained (the teacher labels them; none is "
        "evaluated); the corpus's `boundary`/`mobile` renditions are not used.")
    add(f"- Training audio: each item clean plus {r.get('copies', '–')} perturbed renditions "
        f"(one perturbation, or two from different families), and the real recordings: "
        f"{m.get('n_training_signals', '–')} signals, "
        f"{m.get('training_seconds_of_audio', '–')} s. Perturbations drawn: "
        + ", ".join(f"{k} {v}" for k, v in m.get("perturbation_counts", {}).items()) + ".")
    add(f"- Recipe: {r.get('epochs', '–')} epochs, batch {r.get('batch_size', '–')}, "
        f"learning rate {r.get('lr', '–')} (one cycle), {r.get('max_seconds', '–')} s crops, "
        "CCC loss."
        + ("" if chosen != "consistent" else
           f" Fine-tuning (`consistent`): {ft.get('epochs', '–')} epochs from the "
           f"`perturbed` weights, batch {ft.get('batch_size', '–')} pairs, learning rate "
           f"{ft.get('lr', '–')} (one cycle), loss CCC(clean) + CCC(perturbed) + "
           f"{ft.get('weight', '–')} · mean((f(perturbed) − f(clean))²) / 0.05²."))
    add(f"- Parameters: {_num(exported.get('parameters'))} ({_num(exported.get('trainable'))} "
        f"trainable, {_num(exported.get('frozen'))} frozen front end); ONNX initializers: "
        f"{_num(ck.get('info_parameters'))}. File sizes: {_kb(ck.get('onnx_bytes'))}; int8 "
        f"{_kb(q.get('onnx_bytes'))}.")
    add(f"- ONNX vs torch, held-out items: max |diff| "
        f"{ck.get('onnx_vs_torch_max_abs', float('nan')):.2e}; int8 vs float: "
        f"{q.get('int8_vs_float_max_abs', float('nan')):.2e}.")
    threads = m.get("environment", {}).get("threads", "–")
    add(f"- Time on {threads} CPU thread(s) of a 2-core machine shared with other jobs "
        f"(wall clock): rendering {timing.get('render', '–')} s, teacher "
        f"labels {timing.get('label', '–')} s, "
        + ", ".join(f"training ({k[6:]} targets) {v} s" for k, v in timing.items()
                    if k.startswith("train_"))
        + f"; whole step {timing.get('total', '–')} s.")
    add("")
    add("Held-out speakers (the same items for every row). *clean*: CCC against the "
        "teacher on clean audio. *perturbed*: on "
        f"{r.get('validation_copies', '–')} renditions of each held-out item drawn from the "
        "training distribution (not the audit's), CCC against the teacher's output for the "
        "clean item, and the share of predictions within 0.05 of the model's own clean "
        "prediction.")
    add("")
    add("| model | CCC clean A | D | V | CCC perturbed A | D | V | unchanged A | D | V |")
    add("|---|---|---|---|---|---|---|---|---|---|")
    for name, res in models.items():
        label = f"`{name}`" + (" (exported)" if name == f"wav2small-robust-{chosen}" else "")
        cells = ([_fig(res.get("ccc_teacher_clean"), d) for d in DIMS]
                 + [_fig(res.get("ccc_teacher_perturbed"), d) for d in DIMS]
                 + [_fig(res.get("unchanged_perturbed"), d, "{:.2f}") for d in DIMS])
        add(f"| {label} | " + " | ".join(cells) + " |")
    add("")
    add("| exported files, held-out CCC vs teacher (clean) | arousal | dominance | valence |")
    add("|---|---|---|---|")
    add(_ccc_row("`wav2small-robust.onnx`", ck.get("ccc_teacher_onnx")))
    add(_ccc_row("`wav2small-robust-int8.onnx`", q.get("ccc_teacher_onnx")))
    add("")
    audit = m.get("audit")
    add("### Robustness on the `default` suite")
    add("")
    if not audit:
        add("Not measured yet: run the audit below and `distill.py robust-card --audit DIR`.")
    else:
        if audit.get("stale"):
            add("**Stale**: these figures are from an audit of an earlier build of the "
                "model; re-run the audit.")
            add("")
        add(f"`sertest run` on the bundled corpus, suite `{audit.get('suite')}`, seed "
            f"{audit.get('seed')}:")
        add("")
        add("| model | robustness topic | correctness | fairness | overall score |")
        add("|---|---|---|---|---|")
        for name, a in audit.get("models", {}).items():
            t = a.get("topics", {})
            add(f"| `{name}` | {t.get('robustness', '–')} | {t.get('correctness', '–')} | "
                f"{t.get('fairness', '–')} | {a.get('score', '–')} |")
        add("")
        names = list(audit.get("models", {}))
        base_a = audit["models"].get("wav2small", {}).get("topics", {}).get("robustness")
        rob_a = audit["models"].get("wav2small-robust", {}).get("topics", {}).get("robustness")
        base_c = models.get("wav2small", {}).get("ccc_teacher_clean")
        rob_c = exported.get("ccc_teacher_clean")
        if None not in (base_a, rob_a) and base_c and rob_c:
            gain = rob_a - base_a
            loss = max(base_c[d] - rob_c[d] for d in DIMS)
            met = gain >= 0.15 and loss <= 0.03
            add(f"Issue target (robustness topic at least 0.15 higher, clean CCC against the "
                f"teacher at most 0.03 lower on every dimension): **{'met' if met else 'not met'}**"
                f" — robustness topic {gain:+.3f}, largest clean-CCC loss {loss:+.3f}.")
            other = {t: audit["models"]["wav2small-robust"]["topics"].get(t, 0.0)
                     - audit["models"]["wav2small"]["topics"].get(t, 0.0)
                     for t in ("correctness", "fairness")}
            add("The target does not cover the other topics: "
                + ", ".join(f"{t} {d:+.3f}" for t, d in other.items())
                + ". The audit judges correctness and fairness against the corpus's "
                "nominal labels, where the student's figures differ from its agreement "
                "with the teacher: on the held-out speakers, CCC against the nominal "
                "labels (arousal / dominance / valence) is "
                + " / ".join(_fig(exported.get("ccc_nominal"), d) for d in DIMS)
                + " against wav2small's "
                + " / ".join(_fig(models.get("wav2small", {}).get("ccc_nominal"), d)
                             for d in DIMS) + ".")
            add("")
        tests = sorted({t for a in audit["models"].values() for t in a.get("robustness_tests", {})})
        if tests:
            add("Robustness verdicts per test (arousal, dominance, valence): pass / fail / "
                "inconclusive / other.")
            add("")
            add("| test | " + " | ".join(f"`{n}`" for n in names) + " |")
            add("|---|" + "---|" * len(names))
            for t in tests:
                cells = []
                for n in names:
                    c = audit["models"][n].get("robustness_tests", {}).get(t, {})
                    other = sum(v for k, v in c.items() if k not in ("pass", "fail",
                                                                     "inconclusive"))
                    cells.append(f"{c.get('pass', 0)} / {c.get('fail', 0)} / "
                                 f"{c.get('inconclusive', 0)} / {other}")
                add(f"| {t} | " + " | ".join(cells) + " |")
            add("")
        add("The per-measurement changes with paired significance are in "
            "`reports/robust-students/` (`sertest compare`).")
        add("")
    add("Produced with:")
    add("")
    add("```")
    add(ROBUST_COMMAND)
    add(".venv/bin/sertest run --model wav2small=examples/models/wav2small.onnx \\")
    add("    --model wav2small-robust=examples/models/wav2small-robust.onnx --suite default \\")
    add("    --out /tmp/robust_audit --no-progress")
    add(ROBUST_COMMAND.replace(" robust", " robust-card --audit /tmp/robust_audit", 1))
    add("```")
    add("")
    add("All figures are also in `metrics-robust.json` next to this file.")
    return lines
