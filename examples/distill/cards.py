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
