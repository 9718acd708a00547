"""What an attack sees of a model: a Foolbox model, the conversions to and from its tensors, and a
count of the inputs it was asked to score (the query count of black-box attacks).

``module_victim`` wraps a differentiable torch module (a float model or a quantized model's twin);
``runtime_victim`` wraps a deployed runtime (an ONNX Runtime session or an INC module) as a Foolbox
``NumPyModel``, with no gradients, and with labels only for decision-based attacks.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from qrobust.attacks.threats import ThreatModel
from qrobust.deploy.runtime import Runtime, batched
from qrobust.models import InputSpec, create_model
from qrobust.pipeline.layout import model_dir
from qrobust.pipeline.model_id import ModelId
from qrobust.quantization.twins import GradMode

BOUNDS = (0.0, 1.0)
TWIN_MODES = {ThreatModel.WHITE_QNN_EXACT: GradMode.EXACT, ThreatModel.WHITE_QNN_STE: GradMode.STE}


class Victim:
    def __init__(self, model: Any, *, torch_device: torch.device | None, module: nn.Module | None = None) -> None:
        self.model = model  # a Foolbox model
        self.module = module  # the torch module the Foolbox model runs, for a white-box victim
        self.reference: nn.Module | None = None  # a quantized victim's float parent, for a differential attack
        self.queries = 0
        self._device = torch_device

    def tensor(self, x: np.ndarray) -> Any:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return x if self._device is None else torch.from_numpy(x).to(self._device)

    def labels(self, y: np.ndarray) -> Any:
        y = np.asarray(y, dtype=np.int64)
        return y if self._device is None else torch.from_numpy(y).to(self._device)

    @staticmethod
    def numpy(t: Any) -> np.ndarray:
        return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)

    def logits(self, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
        return batched(lambda b: self.numpy(self.model(self.tensor(b))), x, batch_size)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x).argmax(1)


# Rows a CPU forward pass of a white-box victim takes at a time. Measured on 2 cores at the attacks' batch
# of 500 (forward plus input gradient; forward alone): DS-CNN 1.7x / 2.0x faster in chunks of 100, ResNet-8
# 1.3x / 1.4x, their straight-through twins 1.3x / 2.3x and 1.3x / 1.6x, LeNet the same: the activations
# of 100 images stay in cache through the element-wise passes. Every op in eval mode is per sample: whole
# chunks give the bits of one pass; the last few rows of a batch go through a kernel's tail loop either way,
# and may round differently in the last bit (tests/test_attacks.py checks both).
CPU_CHUNK_ROWS = 100


class _Counting(nn.Module):
    """Counts the inputs the attack asks about; runs them ``rows`` at a time when ``rows`` is set."""

    def __init__(self, module: nn.Module, victim: Victim | None = None, rows: int | None = None) -> None:
        super().__init__()
        self.module = module
        self.victim = victim
        self.rows = rows

    def forward(self, x: torch.Tensor) -> Any:
        if self.victim is not None:
            self.victim.queries += len(x)
        if self.rows is None or len(x) <= self.rows:
            return self.module(x)
        parts = [self.module(part) for part in x.split(self.rows)]
        if isinstance(parts[0], tuple):  # a detector's (logits, score)
            return tuple(torch.cat(column) for column in zip(*parts, strict=True))
        return torch.cat(parts)


def draws_randomness(module: nn.Module) -> bool:
    """Whether ``module`` or a submodule declares ``randomised = True`` (a fresh random draw every call)."""
    return any(getattr(m, "randomised", False) for m in module.modules())


def module_victim(module: nn.Module, device: torch.device) -> Victim:
    """A white-box victim: Foolbox's PyTorchModel on an explicit device (it would pick cuda:0 by itself),
    around ``attack_copy(module)``. On CPU it runs ``CPU_CHUNK_ROWS`` inputs at a time, unless the module
    draws randomness: its draws would then depend on how the batch is cut."""
    import foolbox

    rows = CPU_CHUNK_ROWS if device.type == "cpu" and not draws_randomness(module) else None
    counting = _Counting(attack_copy(module, device), rows=rows).eval()
    victim = Victim(foolbox.PyTorchModel(counting, bounds=BOUNDS, device=device), torch_device=device, module=counting)
    counting.victim = victim
    return victim


def attack_copy(module: nn.Module, device: torch.device) -> nn.Module:
    """The copy of ``module`` an attack differentiates: the same function, computed faster.

    Foolbox differentiates with ``loss.backward()``, which would also compute (and accumulate) every
    weight's gradient at each step; frozen weights leave backward the input gradient alone: the same
    input gradient for less work. Frozen on a copy, so the caller's model stays trainable.
    Channels-last weights take oneDNN's faster convolution path on CPU (forward plus backward at the
    study's batch: ResNet-8 1.56x, DS-CNN 1.41x, LeNet 1.18x); a one-channel image has the same memory in
    either layout, so inputs and gradients are unchanged tensors. Batch norms are folded into the
    convolutions before them (another 1.25x on ResNet-8, 1.6x on DS-CNN; the logits move by about 3e-6).
    A ReLU before a max pool runs after it instead (they commute exactly, gradients included), on a
    quarter of the values (LeNet's forward plus backward 1.15x).
    """
    frozen = pool_before_relu(fold_batch_norms(copy.deepcopy(module).eval())).to(device).requires_grad_(False)
    return frozen.to(memory_format=torch.channels_last)


def fold_batch_norms(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm2d that directly follows a Conv2d inside an ``nn.Sequential``, both
    in eval mode, folded into that convolution (torch's ``fuse_conv_bn_eval``) and replaced by an
    identity: the same function up to float rounding, one pass over the activations fewer forward and
    backward. Edits ``module`` in place; a batch norm anywhere else is left as it is."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for parent in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        children = list(parent.named_children())
        for (name, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
            if type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and not conv.training and not bn.training:
                setattr(parent, name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
    return module


def pool_before_relu(module: nn.Module) -> nn.Module:
    """``module`` with every ReLU directly followed by a MaxPool2d inside an ``nn.Sequential`` swapped
    with it. max(relu(a), relu(b)) = relu(max(a, b)) for every a, b, and both orders route the gradient
    to the same input (the window's first maximum if it is positive, none otherwise), so the output and
    the input gradient are the same bits, for a ReLU over a quarter of the values. Edits in place."""
    for parent in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        children = list(parent.named_children())
        for (name, relu), (pool_name, pool) in zip(children, children[1:], strict=False):
            if type(relu) is nn.ReLU and type(pool) is nn.MaxPool2d and pool.padding == 0:
                setattr(parent, name, pool)
                setattr(parent, pool_name, relu)
    return module


def runtime_victim(runtime: Runtime, *, labels_only: bool) -> Victim:
    """A black-box victim on the deployed runtime. With ``labels_only`` it returns one-hot logits,
    so a decision-based attack cannot use scores even by accident. Otherwise it returns log-probabilities:
    what a deployed classifier's scores are, with the logits' ranking and margins (a shift per sample), and
    never above 0, so that an attack exponentiating them cannot overflow (Foolbox's GenAttack fitness gave
    NaN on the logits, in the hundreds, of LeNet trained quantization-aware at 2 bits)."""
    import foolbox

    victim: Victim

    def call(x: np.ndarray) -> np.ndarray:
        victim.queries += len(x)
        logits = runtime.logits(x)
        if labels_only:
            return np.eye(logits.shape[1], dtype=np.float32)[logits.argmax(1)]
        shifted = logits - logits.max(1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))

    victim = Victim(foolbox.models.NumPyModel(call, bounds=BOUNDS, data_format="channels_first"), torch_device=None)
    return victim


def sources(threat: ThreatModel, deployed: Sequence[ModelId], *, noise: bool) -> list[ModelId]:
    """Of the ``deployed`` models (``Study.models()``), those an attack is made on under ``threat``: float
    models for white_float, every quantized model (through its twin) for white_qnn_*, every deployed runtime
    for black_runtime, and only the float runtimes for noise, which never queries the model and so is the
    same draw for all."""
    if threat is ThreatModel.WHITE_FLOAT or (threat is ThreatModel.BLACK_RUNTIME and noise):
        return [m for m in deployed if m.quantizer is None]
    if threat is ThreatModel.BLACK_RUNTIME:
        return list(deployed)
    return [m for m in deployed if m.quantizer is not None]


def open_module(threat: ThreatModel, source: ModelId, spec: InputSpec, *, defended: bool = False) -> nn.Module:
    """The differentiable torch model a white-box attacker of ``source`` gets under ``threat``: the
    float model for white_float, the quantized model's twin in the threat model's gradient mode."""
    from qrobust.deploy.backends import load_twin

    folder = model_dir(source, defended=defended)
    if threat is ThreatModel.WHITE_FLOAT:
        module = create_model(source.arch, spec)
        module.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
        return module.eval()
    if threat in TWIN_MODES:
        return load_twin(folder, TWIN_MODES[threat])
    raise ValueError(
        f"{threat.value} gives no gradients; white-box threat models: white_float, {', '.join(t.value for t in TWIN_MODES)}"
    )


def open_runtime(source: ModelId, *, defended: bool = False) -> Any:
    """The deployed runtime of ``source``: the float ONNX Runtime session or the quantized artefact's runtime."""
    from qrobust.deploy.backends import load_runtime
    from qrobust.deploy.runtime import OrtRuntime

    folder = model_dir(source, defended=defended)
    return OrtRuntime(folder / "model.onnx") if source.quantizer is None else load_runtime(folder)


def open_victim(
    threat: ThreatModel,
    source: ModelId,
    spec: InputSpec,
    device: torch.device,
    *,
    labels_only: bool,
    with_parent: bool = False,
) -> Victim:
    """Open the model ``source`` as ``threat`` lets the attacker see it, from its artefact folder; with
    ``with_parent`` (a differential attack), its float parent too, as ``victim.reference``."""
    if threat is ThreatModel.BLACK_RUNTIME:
        return runtime_victim(open_runtime(source), labels_only=labels_only)
    victim = module_victim(open_module(threat, source, spec), device)
    if with_parent:
        victim.reference = attack_copy(open_module(ThreatModel.WHITE_FLOAT, source.parent, spec), device)
    return victim


def float_activations(source: ModelId) -> bool:
    """A weight-only quantized model keeps float activations: its exact and ste twins are one model."""
    from qrobust.deploy.backends import FLOAT_BITS, open_artefact

    artefact, _ = open_artefact(model_dir(source))
    return int(artefact.info["activation_bits"]) >= FLOAT_BITS
