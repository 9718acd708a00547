"""Differentiable torch twins of quantized artefacts.

A twin is rebuilt from the artefact's own quantization parameters (scales, zero points, quantized
weights), never re-derived from the float model, so white-box attacks can target the quantized model
as deployed. Rounding has two gradient modes:

- ``exact``: rounding has zero gradient, as the real integer graph does. Gradient attacks through it
  see (almost) no signal: this is the gradient masking Bernhard et al. (2019) describe.
- ``ste``: straight-through estimator (Bengio et al. 2013), i.e. BPDA (Athalye et al. 2018): the
  forward pass rounds, the backward pass treats rounding as identity inside the clamp range.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from qrobust.deploy.runtime import batched


class GradMode(Enum):
    EXACT = "exact"
    STE = "ste"


_RECORDED: list[torch.Tensor] | None = None  # set by ``record_activation_levels``


@contextmanager
def record_activation_levels() -> Iterator[list[torch.Tensor]]:
    """Collect, in graph order, the integer levels (less the zero point: proportional to the dequantized
    value) of every per-tensor quantizer a twin runs while the block is open: the quantized activations
    (weights are quantized per channel, or folded when the twin is built)."""
    global _RECORDED
    recorded: list[torch.Tensor] = []
    previous, _RECORDED = _RECORDED, recorded
    try:
        yield recorded
    finally:
        _RECORDED = previous


def quantize_levels(scaled: torch.Tensor, zero_point: Any, qmin: int, qmax: int) -> torch.Tensor:
    """clamp(round(scaled) + zero_point): the integer level of each value, as a float tensor, in the
    order ONNX QuantizeLinear and torch's decomposed quantize ops compute it, differentiated as it is
    (zero almost everywhere: the exact twins' gradient)."""
    levels = torch.clamp(torch.round(scaled) + zero_point, qmin, qmax)  # round half to even, as both do
    if _RECORDED is not None and (not isinstance(zero_point, torch.Tensor) or zero_point.numel() == 1):
        _RECORDED.append((levels - zero_point).detach())
    return levels


def dequantize_levels(
    scaled: torch.Tensor, zero_point: Any, qmin: int, qmax: int, scale: Any, mode: GradMode
) -> torch.Tensor:
    """``(quantize_levels(scaled, ...) - zero_point) * scale``: the fake-quantized value, with the chosen
    rounding gradient.

    ``exact`` differentiates the composition as it is. ``ste`` passes the gradient (times the scale)
    straight through wherever the quantizer does not saturate, i.e. wherever round(q) lands inside
    [qmin, qmax]; values that round onto the boundary (a background pixel at the calibrated minimum)
    keep their gradient, which torch.clamp's backward would drop.

    Written out because fake quantization is most of a twin's cost (a ResNet-8 twin's forward pass took
    twice its float model's). Levels and zero points are whole numbers that float32 holds exactly, so
    ``clamp(round(s) + zp, qmin, qmax) - zp`` equals ``clamp(round(s), qmin - zp, qmax - zp)``: one pass
    and one new tensor fewer. A straight-through pass is one autograd node (``_ScaledStraightThrough``)
    where ``levels.detach() + (q - q.detach()) * inside`` would take four and keep their tensors alive:
    the same values and gradient bits (tests/test_twins.py holds the composed reference)."""
    straight = mode is GradMode.STE and torch.is_grad_enabled() and scaled.requires_grad
    if torch.is_grad_enabled() and scaled.requires_grad and not straight:
        return (quantize_levels(scaled, zero_point, qmin, qmax) - zero_point) * scale
    if isinstance(zero_point, torch.Tensor) and zero_point.numel() == 1:
        zero_point = float(zero_point)
    with torch.no_grad():
        shifted = torch.round(scaled).clamp_(qmin - zero_point, qmax - zero_point)
        if _RECORDED is not None and not isinstance(zero_point, torch.Tensor):
            _RECORDED.append(shifted.clone())
        if not straight:
            return shifted.mul_(scale)
        q = scaled + zero_point
        # As 0/1 floats: multiplying by a bool mask converts it on every backward pass (0.9 ms a time
        # on a LeNet activation at batch 500), the same values.
        inside = (q >= qmin - 0.5).logical_and_(q <= qmax + 0.5).to(scaled.dtype)
    return _ScaledStraightThrough.apply(scaled, shifted.mul_(scale), inside, scale)


class _ScaledStraightThrough(torch.autograd.Function):
    """The fake-quantized value forward; backward, the gradient times the scale, then times the in-range
    mask (the order in which the composed ops' backward multiplies)."""

    @staticmethod
    def forward(ctx: Any, scaled: torch.Tensor, out: torch.Tensor, inside: torch.Tensor, scale: Any) -> torch.Tensor:
        ctx.save_for_backward(inside)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        (inside,) = ctx.saved_tensors
        return (grad * ctx.scale).mul_(inside), None, None, None


def fake_quantize(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    qmin: int,
    qmax: int,
    axis: int | None,
    mode: GradMode,
) -> torch.Tensor:
    """QuantizeLinear followed by DequantizeLinear, in float, with the chosen rounding gradient."""
    if axis is not None and scale.ndim == 1 and scale.numel() > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero_point = scale.view(shape), zero_point.view(shape)
    return dequantize_levels(x / scale, zero_point, qmin, qmax, scale, mode)


# Integer ranges of the quantized element types an artefact may use.
ONNX_RANGES = {
    "uint8": (0, 255),
    "int8": (-128, 127),
    "uint4": (0, 15),
    "int4": (-8, 7),
    "int16": (-32768, 32767),
    "uint16": (0, 65535),
}


Op = Callable[[list[Any], Mapping[str, Any], GradMode], list[torch.Tensor]]
ONNX_OPS: dict[str, Op] = {}


def onnx_op(*names: str) -> Callable[[Op], Op]:
    def add(fn: Op) -> Op:
        for name in names:
            ONNX_OPS[name] = fn
        return fn

    return add


@onnx_op("QuantizeLinear")
def _quantize(inputs: list[Any], attrs: Mapping[str, Any], mode: GradMode) -> list[torch.Tensor]:
    # Kept as a pair with the DequantizeLinear that follows: the twin carries dequantized floats, and
    # the element type rides along in ``_QTensor`` so DequantizeLinear can finish the round trip.
    x, scale, zero_point = inputs[0], inputs[1], inputs[2]
    qmin, qmax = ONNX_RANGES[attrs["_dtype"]]
    axis = attrs.get("axis", 1) if scale.numel() > 1 else None
    return [fake_quantize(x, scale, zero_point.to(x.dtype), qmin, qmax, axis, mode)]


@onnx_op("DequantizeLinear")
def _dequantize(inputs: list[Any], attrs: Mapping[str, Any], mode: GradMode) -> list[torch.Tensor]:
    # Inputs here are already dequantized by the preceding fake QuantizeLinear, or were folded at
    # build time when they are constant (weights and biases).
    return [inputs[0]]


@onnx_op("Conv")
def _conv(inputs: list[Any], attrs: Mapping[str, Any], mode: GradMode) -> list[torch.Tensor]:
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    pads = attrs.get("pads", [0, 0, 0, 0])
    if pads[0] != pads[2] or pads[1] != pads[3]:
        x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
        pads = [0, 0, 0, 0]
    return [
        F.conv2d(
            x,
            w,
            b,
            stride=attrs.get("strides", [1, 1]),
            padding=(pads[0], pads[1]),
            dilation=attrs.get("dilations", [1, 1]),
            groups=attrs.get("group", 1),
        )
    ]


@onnx_op("Gemm")
def _gemm(inputs: list[Any], attrs: Mapping[str, Any], mode: GradMode) -> list[torch.Tensor]:
    a, b = inputs[0], inputs[1]
    a = a.t() if attrs.get("transA", 0) else a
    b = b.t() if attrs.get("transB", 0) else b
    out = attrs.get("alpha", 1.0) * (a @ b)
    if len(inputs) > 2 and inputs[2] is not None:
        out = out + attrs.get("beta", 1.0) * inputs[2]
    return [out]


@onnx_op("MatMul")
def _matmul(inputs: list[Any], attrs: Mapping[str, Any], mode: GradMode) -> list[torch.Tensor]:
    return [inputs[0] @ inputs[1]]


@onnx_op("MaxPool")
def _maxpool(inputs: list[Any], attrs: Mapping[str, Any], mode: GradMode) -> list[torch.Tensor]:
    pads = attrs.get("pads", [0, 0, 0, 0])
    return [
        F.max_pool2d(
            inputs[0],
            attrs["kernel_shape"],
            attrs.get("strides", attrs["kernel_shape"]),
            padding=(pads[0], pads[1]),
            ceil_mode=bool(attrs.get("ceil_mode", 0)),
        )
    ]


@onnx_op("AveragePool")
def _avgpool(inputs: list[Any], attrs: Mapping[str, Any], mode: GradMode) -> list[torch.Tensor]:
    pads = attrs.get("pads", [0, 0, 0, 0])
    return [
        F.avg_pool2d(
            inputs[0],
            attrs["kernel_shape"],
            attrs.get("strides", attrs["kernel_shape"]),
            padding=(pads[0], pads[1]),
            count_include_pad=bool(attrs.get("count_include_pad", 0)),
        )
    ]


@onnx_op("GlobalAveragePool")
def _gap(inputs: list[Any], attrs: Mapping[str, Any], mode: GradMode) -> list[torch.Tensor]:
    return [inputs[0].mean(dim=(2, 3), keepdim=True)]


@onnx_op("ReduceMean")
def _reduce_mean(inputs: list[Any], attrs: Mapping[str, Any], mode: GradMode) -> list[torch.Tensor]:
    axes = inputs[1].tolist() if len(inputs) > 1 else attrs["axes"]
    return [inputs[0].mean(dim=tuple(int(a) for a in axes), keepdim=bool(attrs.get("keepdims", 1)))]


@onnx_op("Reshape")
def _reshape(inputs: list[Any], attrs: Mapping[str, Any], mode: GradMode) -> list[torch.Tensor]:
    x, shape = inputs[0], [int(s) for s in inputs[1].tolist()]
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [x.reshape(shape)]


@onnx_op("Flatten")
def _flatten(inputs: list[Any], attrs: Mapping[str, Any], mode: GradMode) -> list[torch.Tensor]:
    return [torch.flatten(inputs[0], attrs.get("axis", 1))]


@onnx_op("Relu")
def _relu(inputs: list[Any], attrs: Mapping[str, Any], mode: GradMode) -> list[torch.Tensor]:
    return [F.relu(inputs[0])]


@onnx_op("Add", "Sub", "Mul", "Div")
def _binary(inputs: list[Any], attrs: Mapping[str, Any], mode: GradMode) -> list[torch.Tensor]:
    fn = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}[attrs["_op"]]
    return [fn(inputs[0], inputs[1])]


@onnx_op("Clip")
def _clip(inputs: list[Any], attrs: Mapping[str, Any], mode: GradMode) -> list[torch.Tensor]:
    # A narrowed activation's range (quantization.restrict): its gradient is zero outside, as the graph's.
    low = inputs[1] if len(inputs) > 1 else attrs.get("min")
    high = inputs[2] if len(inputs) > 2 else attrs.get("max")
    return [torch.clamp(inputs[0], low, high)]


@onnx_op("Identity")
def _identity(inputs: list[Any], attrs: Mapping[str, Any], mode: GradMode) -> list[torch.Tensor]:
    return [inputs[0]]


class OnnxQdqTwin(nn.Module):
    """A torch interpreter over a QDQ ONNX graph.

    Hand-written rather than onnx2torch: that converter (1.5.15) handles neither QuantizeLinear nor
    DequantizeLinear, expects weights as initializers (QDQ feeds them through DequantizeLinear) and
    stops at opset-21 Flatten. Constant subgraphs (weight and bias dequantization) are folded once at
    build time from the artefact's integer weights and scales; activation QuantizeLinear nodes become
    fake quantization with the chosen rounding gradient.
    """

    def __init__(self, path: str | Path, mode: GradMode = GradMode.STE) -> None:
        import onnx
        from onnx import numpy_helper

        super().__init__()
        self.mode = mode
        model = onnx.load(str(path))
        graph = model.graph
        dtype_names = {v: k for k, v in onnx.TensorProto.DataType.items()}
        values: dict[str, Any] = {}
        elem_type: dict[str, str] = {}
        for init in graph.initializer:
            array = numpy_helper.to_array(init)
            elem_type[init.name] = dtype_names[init.data_type].lower()
            values[init.name] = torch.from_numpy(np.array(array, dtype=np.float32))
        self.input_name = graph.input[0].name
        self.output_name = graph.output[0].name
        self.program: list[tuple[str, list[str], list[str], dict[str, Any]]] = []
        constant = set(values)
        unsupported = sorted({n.op_type for n in graph.node if n.op_type not in ONNX_OPS and n.op_type != "Constant"})
        if unsupported:
            raise NotImplementedError(f"{path}: ops {unsupported} have no twin; supported: {sorted(ONNX_OPS)}")
        for node in graph.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            attrs["_op"] = node.op_type
            if node.op_type == "Constant":
                values[node.output[0]] = torch.from_numpy(
                    np.array(numpy_helper.to_array(attrs["value"]), dtype=np.float32)
                )
                constant.add(node.output[0])
                continue
            if node.op_type == "QuantizeLinear":
                zp = node.input[2] if len(node.input) > 2 else ""
                attrs["_dtype"] = elem_type.get(zp, "uint8")
            if node.op_type == "DequantizeLinear" and node.input[0] in elem_type and node.input[0] in constant:
                # Constant weights/biases: dequantize the stored integers with the stored scales now.
                q, scale = values[node.input[0]], values[node.input[1]]
                zp = values[node.input[2]] if len(node.input) > 2 and node.input[2] else torch.zeros_like(scale)
                axis = attrs.get("axis", 1)
                if scale.numel() > 1:
                    shape = [1] * q.ndim
                    shape[axis] = -1
                    scale, zp = scale.view(shape), zp.view(shape)
                values[node.output[0]] = (q - zp) * scale
                constant.add(node.output[0])
                continue
            if all(i in constant for i in node.input if i):
                with torch.no_grad():
                    outs = ONNX_OPS[node.op_type]([values[i] if i else None for i in node.input], attrs, mode)
                for name, out in zip(node.output, outs, strict=False):
                    values[name], _ = out, constant.add(name)
                continue
            self.program.append((node.op_type, list(node.input), list(node.output), attrs))
        used = {i for _, inputs, _, _ in self.program for i in inputs}
        for index, name in enumerate(sorted(n for n in constant if n in used)):
            self.register_buffer(f"c{index}", values[name])
        self._constant_names = {
            name: f"c{index}" for index, name in enumerate(sorted(n for n in constant if n in used))
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, Any] = {name: getattr(self, buf) for name, buf in self._constant_names.items()}
        env[self.input_name] = x
        for op, inputs, outputs, attrs in self.program:
            results = ONNX_OPS[op]([env[i] if i else None for i in inputs], attrs, self.mode)
            env.update(zip(outputs, results, strict=False))
        return env[self.output_name]


def _fx_fake_quantize(mode: GradMode, per_channel: bool) -> Callable[..., torch.Tensor]:
    def fake(x: torch.Tensor, scale: Any, zero_point: Any, *args: Any) -> torch.Tensor:
        # torch's decomposed quantize ops multiply by the inverse scale; do the same to round alike.
        if per_channel:
            axis, qmin, qmax = args[0], args[1], args[2]
            shape = [1] * x.ndim
            shape[axis] = -1
            inv, zp = (1.0 / scale).view(shape), zero_point.view(shape).to(x.dtype)
            s = scale.view(shape)
        else:
            qmin, qmax = args[0], args[1]
            inv, zp, s = 1.0 / scale, zero_point, scale
        return dequantize_levels(x * inv, zp, qmin, qmax, s, mode)

    return fake


def _passthrough(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return x


def fx_qdq_twin(module: nn.Module, mode: GradMode) -> nn.Module:
    """Twin of an INC/PT2E converted graph: its quantize ops become fake quantization with the chosen
    rounding gradient (same scales and zero points), and the dequantize ops after them pass through.
    The real graph's quantize ops return integer tensors, so no gradient reaches the input at all."""
    twin = copy.deepcopy(module)
    graph = twin.graph
    replaced = set()
    for node in graph.nodes:
        target = str(node.target)
        if node.op != "call_function" or not target.startswith("quantized_decomposed."):
            continue
        if ".quantize_per_" in target:
            node.target = _fx_fake_quantize(mode, per_channel="per_channel" in target)
            node.kwargs = {}
            replaced.add(node)
        elif ".dequantize_per_" in target and node.args[0] in replaced:
            node.target = _passthrough
    twin.recompile()
    return twin


def verify_twin(twin: nn.Module, runtime: Any, x: np.ndarray, *, min_agreement: float, label: str) -> dict[str, float]:
    """Top-1 agreement and max |logit difference| of a twin against its deployed runtime, plus the share
    of exactly-zero input-gradient entries (a gradient-masking indicator); fails below ``min_agreement``."""
    from qrobust.pipeline.errors import VerificationError

    reference = runtime.logits(x)
    with torch.no_grad():
        logits = batched(lambda b: twin(torch.from_numpy(b)), x, 500)
    agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
    max_diff = float(np.abs(logits - reference).max())
    if agreement < min_agreement:
        raise VerificationError(
            f"{label}: top-1 agreement with the deployed runtime {agreement:.4f} < quantize.twin_min_agreement "
            f"{min_agreement} (max |logit difference| {max_diff:.4g}, n={len(x)})"
        )
    probe = torch.from_numpy(x[:100]).requires_grad_(True)
    loss = F.cross_entropy(twin(probe), torch.from_numpy(reference[:100].argmax(1)))
    (grad,) = torch.autograd.grad(loss, probe, allow_unused=True)
    zero_share = 1.0 if grad is None else float((grad == 0).float().mean())
    return {"top1_agreement": agreement, "max_abs_logit_diff": max_diff, "zero_gradient_share": zero_share}
