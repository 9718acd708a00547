"""The standard recipe: plain empirical risk minimisation (quantization-aware training's first phase too)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class Standard:
    """Plain empirical risk minimisation with cross-entropy."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y)
