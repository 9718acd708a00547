"""Widths ONNX has no integer type for (2, 3, 5, 6 bits): an 8-bit QDQ graph with its integer ranges narrowed.

ONNX Runtime's QDQ quantizer has 4-, 8- and 16-bit types only. A narrower width is stored the way its
``reduce_range`` stores 7-bit weights: in the 8-bit types, with the values held to the narrower grid.

- Weights: symmetric per output channel on [-(2^(b-1) - 1), 2^(b-1) - 1], from the float weights of the
  graph ONNX Runtime quantized (after its BatchNorm folding), not from the 8-bit ones: no double rounding.
- Activations: each QuantizeLinear's calibrated range (what its 8-bit scale and zero point span) spread over
  2^b levels, and a Clip in front of it at that range. QuantizeLinear clamps only at its type's bounds, so
  without the Clip a value beyond the calibrated range would reach a level above 2^b - 1 and the model would
  not be b-bit; ONNX Runtime keeps such a Clip (it fuses one away only when the quantizer's own range makes
  it redundant), and the twins run it.
- Biases: int32 at input scale x weight scale, as ONNX Runtime stores them, requantized from the float
  biases for the new scales.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

_CONSUMERS = ("Conv", "Gemm", "MatMul")


def weight_range(bits: int) -> tuple[int, int]:
    """The symmetric signed grid of ``bits``-bit weights (ONNX Runtime's int8 weights use -127..127)."""
    top = 2 ** (bits - 1) - 1
    return -top, top


def activation_range(bits: int) -> tuple[int, int]:
    return 0, 2**bits - 1


def restrict(model: onnx.ModelProto, floats: Mapping[str, np.ndarray], weight_bits: int, activation_bits: int) -> None:
    """Narrow an 8-bit QDQ ``model`` (int8 weights, uint8 activations, from ONNX Runtime's static quantizer)
    in place to ``weight_bits`` and ``activation_bits``; ``floats`` holds the float initializers of the graph
    it was quantized from (the weights and biases by their float names)."""
    graph = model.graph
    init = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(init[name])

    def store(name: str, value: np.ndarray) -> None:
        init[name].CopyFrom(numpy_helper.from_array(value, name))

    if activation_bits < 8:
        _narrow_activations(graph, init, array, store, activation_bits)
    for node in graph.node:
        if node.op_type not in _CONSUMERS or len(node.input) < 2:
            continue
        weight = producer.get(node.input[1])
        if weight is None or weight.op_type != "DequantizeLinear" or weight.input[0] not in init:
            continue
        if weight_bits < 8:
            _narrow_weight(weight, floats, array, store, weight_bits)
        if len(node.input) > 2 and node.input[2]:
            _requantize_bias(node, producer, floats, array, store)


def _float_name(quantized: str) -> str:
    return quantized.removesuffix("_quantized")


def _narrow_weight(dq: onnx.NodeProto, floats: Mapping[str, np.ndarray], array, store, bits: int) -> None:
    w = floats[_float_name(dq.input[0])].astype(np.float64)
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    reduce = tuple(d for d in range(w.ndim) if d != axis)
    absmax = np.abs(w).max(axis=reduce) if reduce else np.abs(w)
    low, high = weight_range(bits)
    scale = np.where(absmax > 0, absmax / high, 1.0)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scale.reshape(shape)), low, high)
    store(dq.input[0], q.astype(np.int8))
    store(dq.input[1], scale.astype(np.float32).reshape(array(dq.input[1]).shape))


def _requantize_bias(node: onnx.NodeProto, producer, floats: Mapping[str, np.ndarray], array, store) -> None:
    bias_dq = producer.get(node.input[2])
    x_dq = producer.get(node.input[0])
    w_dq = producer.get(node.input[1])
    if bias_dq is None or bias_dq.op_type != "DequantizeLinear" or x_dq is None or x_dq.op_type != "DequantizeLinear":
        return
    scale = (array(x_dq.input[1]).astype(np.float64) * array(w_dq.input[1]).astype(np.float64)).reshape(-1)
    b = floats[_float_name(bias_dq.input[0])].astype(np.float64)
    scale = np.broadcast_to(scale, b.shape)
    info = np.iinfo(np.int32)
    store(bias_dq.input[0], np.clip(np.rint(b / scale), info.min, info.max).astype(np.int32))
    store(bias_dq.input[1], scale.astype(np.float32))


def _narrow_activations(graph: onnx.GraphProto, init, array, store, bits: int) -> None:
    """Each activation QuantizeLinear's range on 2^bits levels, with a Clip at that range in front."""
    low, high = activation_range(bits)
    done: set[str] = set()
    clipped_of: dict[str, str] = {}
    nodes = list(graph.node)
    del graph.node[:]
    for node in nodes:
        if node.op_type == "QuantizeLinear" and node.input[0] not in init:
            scale_name, zp_name = node.input[1], node.input[2]
            if scale_name not in done:
                s, zp = float(array(scale_name)), int(array(zp_name))
                lo, hi = (0 - zp) * s, (255 - zp) * s  # the calibrated range the 8-bit grid spans
                new_s = (hi - lo) / high if hi > lo else s
                new_zp = int(np.clip(np.rint(-lo / new_s), low, high))
                store(scale_name, np.asarray(new_s, dtype=np.float32))
                store(zp_name, np.asarray(new_zp, dtype=np.uint8))
                done.add(scale_name)
            if node.input[0] not in clipped_of:
                s, zp = float(array(scale_name)), int(array(zp_name))
                bounds = (f"{node.input[0]}_clip_min", f"{node.input[0]}_clip_max")
                for name, value in zip(bounds, ((low - zp) * s, (high - zp) * s), strict=True):
                    graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
                    init[name] = graph.initializer[-1]
                clipped = f"{node.input[0]}_clipped"
                graph.node.append(helper.make_node("Clip", [node.input[0], *bounds], [clipped], name=f"{clipped}_Clip"))
                clipped_of[node.input[0]] = clipped
            node.input[0] = clipped_of[node.input[0]]
        graph.node.append(node)
