"""Deployment backends: how a quantized artefact folder is run, twinned and measured.

A quantizer writes an artefact folder (the deployed model files and ``artefact.json`` naming its
backend); everything after that goes through the backend's one entry here: the deployed runtime, the
differentiable twin (from the artefact's own scales, zero points and integer weights), the census of
the weights as stored, and the files that make up the artefact. A new backend is one registered class.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from qrobust.deploy.runtime import OrtRuntime, Runtime, TorchRuntime
from qrobust.models import InputSpec, create_model
from qrobust.pipeline.io import load_json
from qrobust.pipeline.registry import Registry
from qrobust.quantization.twins import GradMode, OnnxQdqTwin, fx_qdq_twin

ARTEFACT = "artefact.json"
FLOAT_BITS = 32  # float32 weights, and activation_bits of a weight-only quantizer


@dataclass(frozen=True)
class WeightTensor:
    """One conv/linear weight as the artefact stores it."""

    elements: int
    stored_bits: int  # what the artefact spends on it: the values plus their scales and zero points
    levels: int | None  # integer levels its quantized values span (max - min + 1); None if kept float


@dataclass(frozen=True)
class WeightCensus:
    """Figures measured from the stored weight tensors, never taken from a quantizer's nominal setting."""

    tensors: tuple[WeightTensor, ...]

    @property
    def elements(self) -> int:
        return sum(t.elements for t in self.tensors)

    @property
    def quantized_share(self) -> float:
        return sum(t.elements for t in self.tensors if t.levels is not None) / self.elements

    @property
    def bits_per_weight(self) -> float:
        return sum(t.stored_bits for t in self.tensors) / self.elements

    @property
    def weight_bits(self) -> float:
        """log2 of the widest integer grid any quantized weight uses (7.01 for 129 levels); 32 if none is."""
        levels = [t.levels for t in self.tensors if t.levels is not None]
        return round(math.log2(max(levels)), 2) if levels else float(FLOAT_BITS)

    def metrics(self) -> dict[str, float]:
        return {
            "weight_bits": self.weight_bits,
            "weights_quantized_share": self.quantized_share,
            "bits_per_weight": self.bits_per_weight,
        }


def _levels(q: np.ndarray | torch.Tensor) -> int:
    return int(q.max()) - int(q.min()) + 1


def _bits(t: torch.Tensor) -> int:
    return t.numel() * t.element_size() * 8


@dataclass(frozen=True)
class Artefact:
    folder: Path
    info: Mapping[str, Any]

    @property
    def file(self) -> Path:
        return self.folder / self.info["file"]

    @property
    def spec(self) -> InputSpec:
        s = self.info["spec"]
        return InputSpec(s["channels"], s["size"], s["num_classes"], tuple(s["mean"]), tuple(s["std"]))


class Backend(Protocol):
    files: tuple[str, ...]  # what the quantizer writes; the first is the deployed model file

    def runtime(self, artefact: Artefact) -> Runtime: ...

    def twin(self, artefact: Artefact, mode: GradMode) -> nn.Module: ...

    def census(self, artefact: Artefact) -> WeightCensus: ...


BACKENDS: Registry[type[Backend]] = Registry("backend")


@BACKENDS.register("onnxruntime")
class OnnxQdq:
    """A QDQ .onnx run by an ONNX Runtime CPU session."""

    files = ("model.onnx",)

    def runtime(self, artefact: Artefact) -> Runtime:
        return OrtRuntime(artefact.file)

    def twin(self, artefact: Artefact, mode: GradMode) -> nn.Module:
        return OnnxQdqTwin(artefact.file, mode)

    def census(self, artefact: Artefact) -> WeightCensus:
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(artefact.file)).graph
        producer = {out: node for node in graph.node for out in node.output}
        stored = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        tensors = []
        for node in graph.node:
            if node.op_type not in ("Conv", "Gemm", "MatMul", "ConvTranspose"):
                continue
            source = producer.get(node.input[1])
            if source is not None and source.op_type == "DequantizeLinear" and source.input[0] in stored:
                # Integer values, scale and zero point as stored; int4 is packed two to a byte.
                values, *params = (stored[name] for name in source.input if name in stored)
                width = 4 if values.dtype.name in ("int4", "uint4") else values.dtype.itemsize * 8
                param_bits = sum(
                    p.size * (4 if p.dtype.name in ("int4", "uint4") else p.dtype.itemsize * 8) for p in params
                )
                tensors.append(
                    WeightTensor(values.size, values.size * width + param_bits, _levels(values.astype(np.int32)))
                )
            elif node.input[1] in stored:
                weight = stored[node.input[1]]
                tensors.append(WeightTensor(weight.size, weight.size * weight.dtype.itemsize * 8, None))
        return WeightCensus(tuple(tensors))


# Programs already unpacked in this process, by file version: unpacking takes seconds, and a stage opens
# the runtime and both twins of one file. Callers must not modify the module (the twins copy it).
_PT2E: dict[tuple[str, int, int], nn.Module] = {}


def _load_pt2e(path: Path) -> nn.Module:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _PT2E:
        _PT2E[key] = fold_weight_quantization(_export_load(path))
    return _PT2E[key]


def _export_load(path: Path) -> torch.fx.GraphModule:
    # The program's quantize/dequantize ops live in torch's quantized_decomposed library, which a
    # fresh process registers only on import.
    import torch.ao.quantization.fx._decomposed  # noqa: F401

    return torch.export.load(path).module()


def fold_weight_quantization(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Compute each weight's quantize -> dequantize pair once, at load, instead of on every call.

    INC's PT2E program stores float32 weights and rounds them to their integer grid in every forward
    pass (and in every twin's, forward and backward). The pair's output is a constant: the same float
    tensor, so every output stays bit for bit the same, for less work per call (measured by
    ``benchmarks/run.py``). ``census`` reads the program as stored, quantize ops and all.
    """
    graph, count = module.graph, 0
    for node in list(graph.nodes):
        target = str(node.target)
        if node.op != "call_function" or not target.startswith("quantized_decomposed.dequantize_per_"):
            continue
        source = node.args[0]
        if not (
            isinstance(source, torch.fx.Node)
            and str(source.target).startswith("quantized_decomposed.quantize_per_")
            and all(a.op == "get_attr" for a in (*source.args, *node.args[1:]) if isinstance(a, torch.fx.Node))
        ):
            continue
        with torch.no_grad():
            weight = source.target(*(_attr(module, a) for a in source.args))
            folded = node.target(weight, *(_attr(module, a) for a in node.args[1:]))
        name = f"folded_weight_{count}"
        count += 1
        module.register_buffer(name, folded)
        with graph.inserting_before(node):
            constant = graph.get_attr(name)
        node.replace_all_uses_with(constant)
    graph.eliminate_dead_code()  # the pairs and the float weights' get_attr nodes, now unused
    module.recompile()
    return module


def _attr(module: nn.Module, a: Any) -> Any:
    if not isinstance(a, torch.fx.Node):
        return a
    owner, _, name = a.target.rpartition(".")
    return getattr(module.get_submodule(owner) if owner else module, name)


@BACKENDS.register("inc_pt2e")
class IncPt2e:
    """An INC-converted torch.export program: a graph of quantize/dequantize ops run by torch eager."""

    files = ("model.pt2",)

    def runtime(self, artefact: Artefact) -> Runtime:
        return TorchRuntime(_load_pt2e(artefact.file), artefact.file)

    def twin(self, artefact: Artefact, mode: GradMode) -> nn.Module:
        return fx_qdq_twin(_load_pt2e(artefact.file), mode)

    def census(self, artefact: Artefact) -> WeightCensus:
        """The program stores float32 weights and quantizes them on every call (quantize_per_channel on
        a weight attribute): the grid is measured by running that op on the stored weight."""
        module = _export_load(artefact.file)  # as stored: the weights' quantize ops not folded yet
        params = dict(module.named_parameters()) | dict(module.named_buffers())
        tensors = []
        for node in module.graph.nodes:
            if node.op != "call_function" or not str(node.target).startswith(("aten.conv", "aten.linear")):
                continue
            source = node.args[1]
            while source.op == "call_function" and str(source.target).startswith("quantized_decomposed.dequantize"):
                source = source.args[0]
            if source.op == "call_function" and str(source.target).startswith("quantized_decomposed.quantize"):
                weight, *args = (params[a.target] if isinstance(a, torch.fx.Node) else a for a in source.args)
                levels = _levels(source.target(weight, *args))
                param_bits = sum(_bits(a) for a in args if isinstance(a, torch.Tensor))
                tensors.append(WeightTensor(weight.numel(), _bits(weight) + param_bits, levels))
            elif source.op == "get_attr":
                weight = params[source.target]
                tensors.append(WeightTensor(weight.numel(), _bits(weight), None))
        return WeightCensus(tuple(tensors))


def _woq_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (name, child)
        for name, child in module.named_modules()
        if hasattr(child, "recover") and hasattr(child, "qweight")
    ]


@BACKENDS.register("inc_woq")
class IncWeightOnlyModule:
    """An INC weight-only module: Linear layers replaced by INCWeightOnlyLinear (packed 4-bit weights)."""

    files = ("quantized_weight.pt", "qconfig.json")

    def _module(self, artefact: Artefact) -> nn.Module:
        from neural_compressor.torch.quantization import load

        # INC rebuilds the quantized layers on this skeleton but loads only their tensors; the float
        # layers (convolutions) come from the same state dict, loaded here over the skeleton's random init.
        skeleton = create_model(artefact.info["arch"], artefact.spec).eval()
        module = load(str(artefact.folder), original_model=skeleton)
        module.load_state_dict(torch.load(artefact.file, weights_only=True))
        return module.eval()

    def runtime(self, artefact: Artefact) -> Runtime:
        return TorchRuntime(self._module(artefact), artefact.file)

    def twin(self, artefact: Artefact, mode: GradMode) -> nn.Module:
        """Every weight-only Linear replaced by a float Linear holding its dequantized weights (INC's
        ``recover``). Activations are float, so exact and ste coincide."""
        twin = self._module(artefact)
        for name, child in _woq_layers(twin):
            linear = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
            with torch.no_grad():
                linear.weight.copy_(child.recover().float())
                if child.bias is not None:
                    linear.bias.copy_(child.bias.float())
            parent_name, _, attr = name.rpartition(".")
            setattr(twin.get_submodule(parent_name) if parent_name else twin, attr, linear)
        return twin

    def census(self, artefact: Artefact) -> WeightCensus:
        """Packed weights, scales and zero points as stored; the grid is measured per group by dividing
        the recovered weights by their group's scale."""
        module = self._module(artefact)
        tensors = []
        layers = _woq_layers(module)
        for _, child in layers:
            stored = sum(
                _bits(child.state_dict()[k]) for k in ("qweight", "scales", "qzeros") if k in child.state_dict()
            )
            weight = child.recover().float()  # (out, in)
            scales = child.scales.float().t().repeat_interleave(child.group_size, dim=1)[:, : weight.shape[1]]
            tensors.append(WeightTensor(weight.numel(), stored, _levels(torch.round(weight / scales))))
        quantized = {id(child) for _, child in layers}
        for child in module.modules():
            if isinstance(child, nn.Conv2d | nn.Linear) and id(child) not in quantized:
                tensors.append(WeightTensor(child.weight.numel(), _bits(child.weight), None))
        return WeightCensus(tuple(tensors))


# --- opening an artefact folder ------------------------------------------------------------------


def open_artefact(folder: Path) -> tuple[Artefact, Backend]:
    artefact = Artefact(folder, load_json(folder / ARTEFACT))
    return artefact, BACKENDS.get(artefact.info["backend"], key=f"{folder / ARTEFACT}: backend")()


def load_runtime(folder: Path) -> Runtime:
    """The deployed runtime, opened from the artefact folder alone."""
    artefact, backend = open_artefact(folder)
    return backend.runtime(artefact)


def load_twin(folder: Path, mode: GradMode) -> nn.Module:
    """A differentiable torch twin rebuilt from the artefact's own scales, zero points and integer weights."""
    artefact, backend = open_artefact(folder)
    return backend.twin(artefact, mode).eval()


def weight_census(folder: Path) -> WeightCensus:
    artefact, backend = open_artefact(folder)
    return backend.census(artefact)


def artefact_bytes(folder: Path) -> int:
    """Bytes of the files the backend deploys (not the bookkeeping JSON beside them)."""
    artefact, backend = open_artefact(folder)
    return sum((folder / name).stat().st_size for name in backend.files)
