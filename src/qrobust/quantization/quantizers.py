"""Post-training quantizers behind one registry; params pick which run and with what options.

A quantizer turns a float model (its torch module and its ONNX export) plus calibration images, drawn
from the training data and never from test data, into an artefact folder: the deployed model files and
``artefact.json`` naming its backend. From there on ``qrobust.deploy.backends`` opens, twins and measures it.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from qrobust.deploy.backends import ARTEFACT, BACKENDS, FLOAT_BITS
from qrobust.deploy.runtime import batches
from qrobust.models import InputSpec
from qrobust.pipeline.io import save_json
from qrobust.quantization.catalogue import QUANTIZERS, CalibrationMethod, parse_options


@dataclass(frozen=True)
class FloatModel:
    module: nn.Module
    onnx: Path
    arch: str
    spec: InputSpec


class Quantizer(Protocol):
    backend: str  # its entry in qrobust.deploy.backends.BACKENDS
    weight_bits: int  # nominal; the artefact's metrics measure what was stored
    activation_bits: int

    def quantize(self, model: FloatModel, calib_x: np.ndarray, out: Path) -> None: ...


def _write_artefact(out: Path, quantizer: Quantizer, model: FloatModel) -> None:
    save_json(
        out / ARTEFACT,
        {
            "backend": quantizer.backend,
            "file": BACKENDS.get(quantizer.backend).files[0],
            "arch": model.arch,
            "spec": {
                "channels": model.spec.channels,
                "size": model.spec.size,
                "num_classes": model.spec.num_classes,
                "mean": list(model.spec.mean),
                "std": list(model.spec.std),
            },
            "nominal_weight_bits": quantizer.weight_bits,
            "activation_bits": quantizer.activation_bits,
        },
    )


class _CalibrationReader:
    """Feeds calibration batches to ONNX Runtime's calibrator (its CalibrationDataReader protocol)."""

    def __init__(self, input_name: str, x: np.ndarray, batch_size: int) -> None:
        self._batches = batches(x, batch_size)
        self.input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}


@dataclass(frozen=True)
class OrtStaticQDQ:
    """ONNX Runtime static post-training quantization in QDQ format (uint8 activations).

    ``reduce_range`` quantizes 8-bit weights to 7 bits, which ONNX Runtime documents for x86 CPUs
    without VNNI, where u8s8 kernels can saturate. 4-bit weights (QInt4) need opset 21 or ONNX
    Runtime's com.microsoft QDQ ops, which its quantizer picks by itself.
    """

    weight_bits: int = 8
    per_channel: bool = True
    calibrate_method: CalibrationMethod = CalibrationMethod.MINMAX
    reduce_range: bool = True
    activation_bits: int = 8
    backend: str = "onnxruntime"

    def quantize(self, model: FloatModel, calib_x: np.ndarray, out: Path) -> None:
        from onnxruntime.quantization import CalibrationMethod as OrtMethod
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        method = {
            CalibrationMethod.MINMAX: OrtMethod.MinMax,
            CalibrationMethod.ENTROPY: OrtMethod.Entropy,
            CalibrationMethod.PERCENTILE: OrtMethod.Percentile,
        }[self.calibrate_method]
        # Widths without an ONNX type are quantized at 8 bits, then narrowed (quantization.restrict).
        native = self.weight_bits in (4, 8, 16) and self.activation_bits in (8, 16)
        weight_type = {16: QuantType.QInt16, 4: QuantType.QInt4}.get(self.weight_bits, QuantType.QInt8)
        activation_type = {16: QuantType.QUInt16}.get(self.activation_bits, QuantType.QUInt8)
        if not native:
            weight_type, activation_type = QuantType.QInt8, QuantType.QUInt8
        with tempfile.TemporaryDirectory() as scratch:
            # Shape inference and BatchNorm folding first, as ONNX Runtime's quantization guide asks.
            prepared = Path(scratch) / "preprocessed.onnx"
            quant_pre_process(str(model.onnx), str(prepared))
            quantize_static(
                str(prepared),
                str(out / "model.onnx"),
                _CalibrationReader("input", calib_x, 250),
                quant_format=QuantFormat.QDQ,
                per_channel=self.per_channel,
                reduce_range=self.reduce_range and self.weight_bits == 8 and native,
                activation_type=activation_type,
                weight_type=weight_type,
                calibrate_method=method,
                calibration_providers=["CPUExecutionProvider"],
            )
            if not native:
                import onnx
                from onnx import numpy_helper

                from qrobust.quantization.restrict import restrict

                floats = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(prepared)).graph.initializer}
                quantized = onnx.load(str(out / "model.onnx"))
                restrict(quantized, floats, self.weight_bits, self.activation_bits)
                onnx.save(quantized, str(out / "model.onnx"))
        _write_artefact(out, self, model)


@dataclass(frozen=True)
class IncStaticInt8:
    """Intel Neural Compressor int8 static quantization through its PyTorch API (PT2E path).

    The model is captured with INC's ``export`` (torch.export), calibrated, converted to a graph of
    quantize/dequantize ops, and saved as a torch.export program.
    """

    weight_bits: int = 8
    activation_bits: int = 8
    backend: str = "inc_pt2e"

    def quantize(self, model: FloatModel, calib_x: np.ndarray, out: Path) -> None:
        from neural_compressor.torch.export import export
        from neural_compressor.torch.quantization import StaticQuantConfig, convert, prepare

        example = (torch.from_numpy(calib_x[:8]),)
        batch = torch.export.Dim("batch", min=1)
        exported = export(copy.deepcopy(model.module).eval(), example_inputs=example, dynamic_shapes=({0: batch},))
        prepared = prepare(exported, StaticQuantConfig())
        with torch.no_grad():
            for chunk in batches(calib_x, 250):
                prepared(torch.from_numpy(chunk))
        converted = convert(prepared)
        program = torch.export.export(converted, example, dynamic_shapes=({0: batch},))
        for node in program.graph.nodes:
            # Provenance metadata holds object ids (graph_id, module ids) and absolute source paths;
            # dropping it makes the same model and calibration data give the same bytes.
            for key in ("from_node", "stack_trace", "nn_module_stack", "source_fn_stack"):
                node.meta.pop(key, None)
        torch.export.save(program, out / "model.pt2")
        _write_artefact(out, self, model)


@dataclass(frozen=True)
class IncWeightOnly:
    """Intel Neural Compressor 4-bit weight-only round-to-nearest quantization, in groups along the input.

    INC's weight-only path replaces Linear layers only; convolutions stay float. The artefact
    records what share of the weights was actually quantized.
    """

    group_size: int = 32
    weight_bits: int = 4
    activation_bits: int = FLOAT_BITS
    backend: str = "inc_woq"

    def quantize(self, model: FloatModel, calib_x: np.ndarray, out: Path) -> None:
        from neural_compressor.torch.quantization import RTNConfig, convert, prepare

        config = RTNConfig(bits=self.weight_bits, group_size=self.group_size, use_layer_wise=False)
        quantized = convert(prepare(copy.deepcopy(model.module).eval(), config))
        quantized.save(str(out))
        _write_artefact(out, self, model)


# Each quantizer of the catalogue, and what its entry fixes beside the options params give.
_MAKERS: dict[str, tuple[type, dict[str, Any]]] = {
    "ort_int8": (OrtStaticQDQ, {"weight_bits": 8}),
    "ort_w4a8": (OrtStaticQDQ, {"weight_bits": 4}),
    "ort_w16a16": (OrtStaticQDQ, {"weight_bits": 16, "activation_bits": 16}),
    **{f"ort_w{b}a{b}": (OrtStaticQDQ, {"weight_bits": b, "activation_bits": b}) for b in (2, 3, 4, 5, 6)},
    "inc_int8": (IncStaticInt8, {}),
    "inc_w4": (IncWeightOnly, {}),
}


def create_quantizer(name: str, options: Mapping[str, Any]) -> Quantizer:
    """The quantizer ``name`` with ``options`` checked by the catalogue (the one door)."""
    cls, fixed = _MAKERS[QUANTIZERS.get(name, key="quantize.quantizers").name]
    return cls(**fixed, **parse_options(name, options))  # type: ignore[no-any-return]
