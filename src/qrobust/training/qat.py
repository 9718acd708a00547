"""Quantization-aware training (Jacob et al. 2018): the loss of the model run as it will be deployed at a low
bit width, rounding included, with straight-through gradients; several widths at once, one drawn per batch (as
Any-Precision networks, Yu et al. 2021, train one set of weights for several widths).

Two things make it train at 2 and 3 bits (LeNet on Fashion-MNIST, widths [2, 3, 4], deployed: 81% / 80% /
86% against post-training quantization's 10% / 75% / 88%):
- it fine-tunes: ``prepare`` first trains the float model with the standard loss for the same epochs, as Jacob
  et al. start from a trained float model (from scratch, 2-bit training diverged: loss in the thousands);
- each weight is clipped to ``clip`` standard deviations of its output channel before every step
  (statistics-aware weight binning, Choi et al. 2018). The deployed grid's scale is the channel's largest
  weight, so one outlier would send a 2-bit channel's other weights to zero; without the clip they did
  (91% zeros) and training diverged again. The clip changes the weights themselves, so the exported model is
  the one trained (the last optimizer step, at a near-zero learning rate, moves them a hair past it).

The deployed grid is quantization.restrict's: weights symmetric per output channel on [-(2^(b-1) - 1),
2^(b-1) - 1], activations on 2^b levels over a calibrated range. Here each activation the QDQ graph quantizes
(``held``: the normalised input, every ReLU's output, the logits) is held to 2^b levels between running minima
and maxima (an exponential average of the batches', the calibration's stand-in); torch's own
QAT (torch.ao.quantization) is not used because its fake quantizers have one fixed width each, where a draw
per batch needs the width to change between batches on the same modules.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from qrobust.quantization.restrict import activation_range, weight_range
from qrobust.training.catalogue import TrainConfig
from qrobust.training.standard import Standard

FLOAT = 0  # a width of 0 in ``bits``: the batch runs at full precision


def straight_through(x: torch.Tensor, rounded: torch.Tensor) -> torch.Tensor:
    """``rounded`` forward, the identity's gradient backward (Bengio et al. 2013)."""
    return x + (rounded - x).detach()


def fake_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """``weight`` on the symmetric per-output-channel grid of ``bits``-bit weights."""
    _, top = weight_range(bits)
    scale = weight.detach().abs().flatten(1).amax(1).clamp_min(1e-12) / top
    shape = (-1, *[1] * (weight.dim() - 1))
    rounded = torch.clamp(torch.round(weight / scale.view(shape)), -top, top) * scale.view(shape)
    return straight_through(weight, rounded)


def fake_activation(x: torch.Tensor, low: float, high: float, bits: int) -> torch.Tensor:
    """``x`` on 2^bits levels over [low, high] (zero on the grid, as an integer zero point puts it)."""
    _, levels = activation_range(bits)
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max(high - low, 1e-12) / levels
    zero = round(-low / scale)
    rounded = (torch.clamp(torch.round(x / scale) + zero, 0, levels) - zero) * scale
    # The clipped straight-through estimator: no gradient where the grid saturates (as torch's FakeQuantize).
    inside = (x >= -zero * scale) & (x <= (levels - zero) * scale)
    return torch.where(inside, straight_through(x, rounded), rounded.detach())


def clip_weights(model: nn.Module, clip: float) -> None:
    """Each convolution's and linear layer's weights held within ``clip`` standard deviations of their output
    channel, in place (see the module)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                w = m.weight
                bound = clip * w.flatten(1).std(1).view(-1, *[1] * (w.dim() - 1))
                w.copy_(torch.maximum(torch.minimum(w, bound), -bound))


@dataclass(frozen=True)
class QuantizationAware:
    """Cross-entropy of the model at a width drawn per batch from ``bits`` (0: float); see the module."""

    bits: tuple[int, ...] = (2, 3, 4)
    momentum: float = 0.9
    clip: float = 2.0
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict, compare=False, repr=False)

    def prepare(self, model: nn.Module, x: np.ndarray, y: np.ndarray, config: TrainConfig) -> QuantizationAware:
        """The float model first, trained with the standard loss (see the module)."""
        from qrobust.training.loop import fit  # the loop's recipes import this module

        fit(model, Standard(), x, y, config)
        model.train()
        return self

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        clip_weights(model, self.clip)
        bits = self.bits[int(torch.randint(len(self.bits), ()))]
        if bits == FLOAT:
            return F.cross_entropy(model(x), y)
        weights = {
            f"{name}.weight": fake_weight(m.weight, bits)
            for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d | nn.Linear)
        }
        with self._activations(model, bits):
            logits = torch.func.functional_call(model, weights, (x,), strict=False)
        return F.cross_entropy(logits, y)

    def _held(self, name: str, x: torch.Tensor, bits: int) -> torch.Tensor:
        """``x`` fake-quantized over the running range of activation ``name``, updated from this batch."""
        low, high = float(x.detach().min()), float(x.detach().max())
        if name in self.ranges:
            old_low, old_high = self.ranges[name]
            low = self.momentum * old_low + (1 - self.momentum) * low
            high = self.momentum * old_high + (1 - self.momentum) * high
        self.ranges[name] = (low, high)
        return fake_activation(x, low, high, bits)

    @contextmanager
    def _activations(self, model: nn.Module, bits: int) -> Any:
        """Every tensor the deployed QDQ graph quantizes leaves its module fake-quantized (see ``held``)."""
        hooks = [
            m.register_forward_hook(lambda _, __, out, name=name: self._held(name, out, bits))
            for name, m in held(model)
        ]
        try:
            yield
        finally:
            for hook in hooks:
                hook.remove()


def held(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules whose outputs ONNX Runtime's QDQ graph quantizes, as read off a deployed LeNet: the
    normalised input (the first convolution's input), each ReLU's output (a convolution or linear layer
    followed by a ReLU is quantized after it, the two fused), and a convolution or linear layer's output where
    no ReLU follows (the logits). Max pooling and flattening keep their input's grid."""
    names = {id(m): name for name, m in model.named_modules()}
    out = []
    for parent in (m for m in model.modules() if isinstance(m, nn.Sequential)):
        children = list(parent.children())
        for child, after in zip(children, [*children[1:], None], strict=True):
            linear = isinstance(child, nn.Conv2d | nn.Linear) and not isinstance(after, nn.ReLU)
            if linear or isinstance(child, nn.ReLU) or type(child).__name__ == "Normalize":
                out.append((names[id(child)], child))
    return out
