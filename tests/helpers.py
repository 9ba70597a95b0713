"""Builders for small real ONNX graphs (no torch needed)."""

from __future__ import annotations

import json

import onnx
from onnx import TensorProto, helper


def make_onnx_model(path: str, *, static_batch: bool = False, labels=("arousal", "dominance", "valence"),
                    metadata: bool = True, output_name: str = "logits", rank: int = 2) -> str:
    """A waveform model: features = [RMS*3, mean*50+0.5, max|x|] -> sigmoid-ish outputs.

    Output column 0 grows with the signal's RMS level, so it is a real function of the audio.
    Shape of the input: (batch, time) with dynamic or static (1) batch; rank 3 adds a channel.
    """
    batch = 1 if static_batch else "batch"
    shape = [batch, "time"] if rank == 2 else [batch, 1, "time"]
    inp = helper.make_tensor_value_info("signal", TensorProto.FLOAT, shape)
    out = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, len(labels)])
    nodes = []
    if rank == 3:
        nodes.append(helper.make_node("Squeeze", ["signal", "one_axis"], ["x"]))
        src = "x"
    else:
        src = "signal"
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    one_axis = helper.make_tensor("one_axis", TensorProto.INT64, [1], [1])
    nodes += [
        helper.make_node("Mul", [src, src], ["sq"]),
        helper.make_node("ReduceMean", ["sq", "axes"], ["ms"], keepdims=1),
        helper.make_node("Sqrt", ["ms"], ["rms"]),
        helper.make_node("ReduceMean", [src, "axes"], ["mean"], keepdims=1),
        helper.make_node("Abs", [src], ["absx"]),
        helper.make_node("ReduceMax", ["absx", "axes"], ["peak"], keepdims=1),
        helper.make_node("Mul", ["rms", "three"], ["f0"]),
        helper.make_node("Mul", ["mean", "fifty"], ["m50"]),
        helper.make_node("Add", ["m50", "half"], ["f1"]),
    ]
    feats = ["f0", "f1", "peak"]
    cols = [feats[i % 3] for i in range(len(labels))]
    nodes.append(helper.make_node("Concat", cols, [output_name], axis=1))
    inits = [axes, one_axis,
             helper.make_tensor("three", TensorProto.FLOAT, [], [3.0]),
             helper.make_tensor("fifty", TensorProto.FLOAT, [], [50.0]),
             helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])]
    graph = helper.make_graph(nodes, "tiny", [inp], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    if metadata:
        entry = model.metadata_props.add()
        entry.key = "labels"
        entry.value = json.dumps({output_name: list(labels)})
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path
