"""Post-training quantizers behind one registry; params pick which run and with what options.

A quantizer turns a float model (its torch module and its ONNX export) plus calibration images, drawn
from the training data and never from test data, into an artefact folder: the deployed model file and
``artefact.json`` naming its backend. ``load_runtime`` opens the deployed runtime from that folder
alone (in any process); ``load_twin`` builds the differentiable torch twin from the same files.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from qrobust.config import boolean, check_options, choice, positive_int
from qrobust.errors import ConfigError
from qrobust.io import load_json, save_json
from qrobust.models import InputSpec, create_model
from qrobust.registry import Registry
from qrobust.runtime import OrtRuntime, TorchRuntime
from qrobust.twins import GradMode, OnnxQdqTwin, fx_qdq_twin, fx_quantized_weights

ARTEFACT = "artefact.json"
FLOAT_BITS = 32  # activation_bits of a weight-only quantizer: activations stay float32


class Backend(Enum):
    ONNXRUNTIME = "onnxruntime"  # a QDQ .onnx run by an ONNX Runtime CPU session
    INC_PT2E = "inc_pt2e"  # an INC-converted torch.export program (quantize/dequantize FX graph)
    INC_WOQ = "inc_woq"  # an INC weight-only module (INCWeightOnlyLinear layers)


@dataclass(frozen=True)
class FloatModel:
    module: nn.Module
    onnx: Path
    arch: str
    spec: InputSpec


class Quantizer(Protocol):
    backend: Backend
    weight_bits: int
    activation_bits: int

    def quantize(self, model: FloatModel, calib_x: np.ndarray, out: Path) -> None: ...


QUANTIZERS: Registry[Callable[[Mapping[str, Any], str], Quantizer]] = Registry("quantizer")


class CalibrationMethod(Enum):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class WeightOnlyAlgorithm(Enum):
    RTN = "rtn"
    GPTQ = "gptq"


def _write_artefact(out: Path, quantizer: Quantizer, model: FloatModel, file: str) -> None:
    save_json(
        out / ARTEFACT,
        {
            "backend": quantizer.backend.value,
            "file": file,
            "arch": model.arch,
            "spec": {
                "channels": model.spec.channels,
                "size": model.spec.size,
                "num_classes": model.spec.num_classes,
                "mean": list(model.spec.mean),
                "std": list(model.spec.std),
            },
            "weight_bits": quantizer.weight_bits,
            "activation_bits": quantizer.activation_bits,
        },
    )


def _batches(x: np.ndarray, size: int) -> Iterator[np.ndarray]:
    return (x[i : i + size] for i in range(0, len(x), size))


class _CalibrationReader:
    """Feeds calibration batches to ONNX Runtime's calibrator (its CalibrationDataReader protocol)."""

    def __init__(self, input_name: str, x: np.ndarray, batch_size: int) -> None:
        self._batches = _batches(x, batch_size)
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
    backend: Backend = Backend.ONNXRUNTIME

    def quantize(self, model: FloatModel, calib_x: np.ndarray, out: Path) -> None:
        from onnxruntime.quantization import CalibrationMethod as OrtMethod
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        method = {
            CalibrationMethod.MINMAX: OrtMethod.MinMax,
            CalibrationMethod.ENTROPY: OrtMethod.Entropy,
            CalibrationMethod.PERCENTILE: OrtMethod.Percentile,
        }[self.calibrate_method]
        weight_type = {8: QuantType.QInt8, 4: QuantType.QInt4}[self.weight_bits]
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
                reduce_range=self.reduce_range and self.weight_bits == 8,
                activation_type=QuantType.QUInt8,
                weight_type=weight_type,
                calibrate_method=method,
                calibration_providers=["CPUExecutionProvider"],
            )
        _write_artefact(out, self, model, "model.onnx")


def _ort_options(key: str, options: Mapping[str, Any]) -> dict[str, Any]:
    check_options(options, {"per_channel", "calibrate_method", "reduce_range"}, key)
    return {
        "per_channel": boolean(options.get("per_channel", True), f"{key}.per_channel"),
        "calibrate_method": choice(
            options.get("calibrate_method", "minmax"), f"{key}.calibrate_method", CalibrationMethod
        ),
        "reduce_range": boolean(options.get("reduce_range", True), f"{key}.reduce_range"),
    }


@QUANTIZERS.register("ort_int8")
def _ort_int8(options: Mapping[str, Any], key: str) -> Quantizer:
    return OrtStaticQDQ(weight_bits=8, **_ort_options(key, options))


@QUANTIZERS.register("ort_w4a8")
def _ort_w4a8(options: Mapping[str, Any], key: str) -> Quantizer:
    return OrtStaticQDQ(weight_bits=4, **_ort_options(key, options))


@dataclass(frozen=True)
class IncStaticInt8:
    """Intel Neural Compressor int8 static quantization through its PyTorch API (PT2E path).

    The model is captured with INC's ``export`` (torch.export), calibrated, converted to a graph of
    quantize/dequantize ops, and saved as a torch.export program.
    """

    weight_bits: int = 8
    activation_bits: int = 8
    backend: Backend = Backend.INC_PT2E

    def quantize(self, model: FloatModel, calib_x: np.ndarray, out: Path) -> None:
        from neural_compressor.torch.export import export
        from neural_compressor.torch.quantization import StaticQuantConfig, convert, prepare

        example = (torch.from_numpy(calib_x[:8]),)
        batch = torch.export.Dim("batch", min=1)
        exported = export(copy.deepcopy(model.module).eval(), example_inputs=example, dynamic_shapes=({0: batch},))
        prepared = prepare(exported, StaticQuantConfig())
        with torch.no_grad():
            for chunk in _batches(calib_x, 250):
                prepared(torch.from_numpy(chunk))
        converted = convert(prepared)
        program = torch.export.export(converted, example, dynamic_shapes=({0: batch},))
        for node in program.graph.nodes:
            # Provenance metadata holds object ids (graph_id, module ids) and absolute source paths;
            # dropping it makes the same model and calibration data give the same bytes.
            for key in ("from_node", "stack_trace", "nn_module_stack", "source_fn_stack"):
                node.meta.pop(key, None)
        torch.export.save(program, out / "model.pt2")
        _write_artefact(out, self, model, "model.pt2")


@QUANTIZERS.register("inc_int8")
def _inc_int8(options: Mapping[str, Any], key: str) -> Quantizer:
    check_options(options, set(), key)
    return IncStaticInt8()


@dataclass(frozen=True)
class IncWeightOnly:
    """Intel Neural Compressor 4-bit weight-only round-to-nearest quantization, in groups along the input.

    INC's weight-only path replaces Linear layers only; convolutions stay float. The artefact
    records what share of the weights was actually quantized.
    """

    group_size: int = 32
    weight_bits: int = 4
    activation_bits: int = FLOAT_BITS
    backend: Backend = Backend.INC_WOQ

    def quantize(self, model: FloatModel, calib_x: np.ndarray, out: Path) -> None:
        from neural_compressor.torch.quantization import RTNConfig, convert, prepare

        config = RTNConfig(bits=self.weight_bits, group_size=self.group_size, use_layer_wise=False)
        quantized = convert(prepare(copy.deepcopy(model.module).eval(), config))
        quantized.save(str(out))
        _write_artefact(out, self, model, "quantized_weight.pt")


@QUANTIZERS.register("inc_w4")
def _inc_w4(options: Mapping[str, Any], key: str) -> Quantizer:
    check_options(options, {"algorithm", "group_size", "bits"}, key)
    bits = options.get("bits", 4)
    if bits != 4:
        raise ConfigError(f"{key}.bits: expected 4 (this quantizer is 4-bit weight-only), got {bits!r}")
    algorithm = choice(options.get("algorithm", "rtn"), f"{key}.algorithm", WeightOnlyAlgorithm)
    if algorithm is WeightOnlyAlgorithm.GPTQ:
        # Measured with neural-compressor 3.10: its GPTQ (Frantar et al. 2023) quantizes transformer
        # blocks only; on these CNNs it finds none and fails inside convert with an IndexError.
        raise ConfigError(
            f"{key}.algorithm: 'gptq' is not available for these architectures: INC 3.10's GPTQ runs only on "
            "stacks of transformer blocks; use 'rtn'"
        )
    return IncWeightOnly(group_size=positive_int(options.get("group_size", 32), f"{key}.group_size"))


def create_quantizer(name: str, options: Mapping[str, Any]) -> Quantizer:
    return QUANTIZERS.get(name, key="quantize.quantizers")(options, f"quantize.options.{name}")


def calibration_subset(x: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A seeded subset of the calibration split (all of it when ``size`` exceeds it)."""
    positive_int(size, "quantize.calib_samples")
    if size >= len(x):
        return x
    return x[np.sort(np.random.default_rng(seed).permutation(len(x))[:size])]


# --- opening an artefact folder ------------------------------------------------------------------


def read_artefact(folder: Path) -> dict[str, Any]:
    return load_json(folder / ARTEFACT)


def _spec(info: Mapping[str, Any]) -> InputSpec:
    s = info["spec"]
    return InputSpec(s["channels"], s["size"], s["num_classes"], tuple(s["mean"]), tuple(s["std"]))


def _load_woq(folder: Path, info: Mapping[str, Any]) -> nn.Module:
    from neural_compressor.torch.quantization import load

    # INC rebuilds the quantized layers on this skeleton but loads only their tensors; the float
    # layers (convolutions) come from the same state dict, loaded here over the skeleton's random init.
    skeleton = create_model(info["arch"], _spec(info)).eval()
    module = load(str(folder), original_model=skeleton)
    module.load_state_dict(torch.load(folder / info["file"], weights_only=True))
    return module.eval()


def _load_pt2e(path: Path) -> nn.Module:
    # The program's quantize/dequantize ops live in torch's quantized_decomposed library, which a
    # fresh process registers only on import.
    import torch.ao.quantization.fx._decomposed  # noqa: F401

    return torch.export.load(path).module()


def load_runtime(folder: Path) -> OrtRuntime | TorchRuntime:
    """The deployed runtime, opened from the artefact folder alone."""
    info = read_artefact(folder)
    backend = Backend(info["backend"])
    if backend is Backend.ONNXRUNTIME:
        return OrtRuntime(folder / info["file"])
    if backend is Backend.INC_PT2E:
        return TorchRuntime(_load_pt2e(folder / info["file"]), folder / info["file"])
    return TorchRuntime(_load_woq(folder, info), folder / info["file"])


def load_twin(folder: Path, mode: GradMode) -> nn.Module:
    """A differentiable torch twin rebuilt from the artefact's own scales, zero points and integer weights."""
    info = read_artefact(folder)
    backend = Backend(info["backend"])
    if backend is Backend.ONNXRUNTIME:
        return OnnxQdqTwin(folder / info["file"], mode).eval()
    if backend is Backend.INC_PT2E:
        return fx_qdq_twin(_load_pt2e(folder / info["file"]), mode).eval()
    return woq_twin(_load_woq(folder, info)).eval()


def woq_twin(module: nn.Module) -> nn.Module:
    """Weight-only twin: every INC weight-only Linear replaced by a float Linear holding its
    dequantized weights (INC's ``recover``). Activations are float, so exact and ste coincide."""
    twin = copy.deepcopy(module)
    for name, child in list(twin.named_modules()):
        if hasattr(child, "recover") and hasattr(child, "qweight"):
            linear = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
            with torch.no_grad():
                linear.weight.copy_(child.recover().float())
                if child.bias is not None:
                    linear.bias.copy_(child.bias.float())
            parent_name, _, attr = name.rpartition(".")
            setattr(twin.get_submodule(parent_name) if parent_name else twin, attr, linear)
    return twin


def weight_census(folder: Path) -> tuple[int, int]:
    """(quantized weight elements, all weight elements) of conv/linear layers in the artefact."""
    info = read_artefact(folder)
    backend = Backend(info["backend"])
    if backend is Backend.ONNXRUNTIME:
        import onnx

        graph = onnx.load(str(folder / info["file"])).graph
        producer = {out: node for node in graph.node for out in node.output}
        initializers = {t.name: t for t in graph.initializer}
        quantized = total = 0
        for node in graph.node:
            if node.op_type not in ("Conv", "Gemm", "MatMul", "ConvTranspose"):
                continue
            weight = node.input[1]
            source = producer.get(weight)
            if source is not None and source.op_type == "DequantizeLinear":
                weight = source.input[0]
            if weight in initializers:
                size = int(np.prod(initializers[weight].dims))
                total += size
                quantized += size if initializers[weight].data_type != onnx.TensorProto.FLOAT else 0
        return quantized, total
    if backend is Backend.INC_PT2E:
        return fx_quantized_weights(_load_pt2e(folder / info["file"]))
    module = _load_woq(folder, info)
    quantized = total = 0
    for child in module.modules():
        if hasattr(child, "recover") and hasattr(child, "qweight"):
            quantized += child.in_features * child.out_features
            total += child.in_features * child.out_features
        elif isinstance(child, nn.Conv2d | nn.Linear):
            total += child.weight.numel()
    return quantized, total
