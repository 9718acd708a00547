"""How far a model's layers are from orthogonal: the penalty of Defensive Quantization (Lin et al. 2019),
which keeps each layer's Lipschitz constant near 1, and the per-model gap the analysis reports."""

from __future__ import annotations

import torch
from torch import nn


def orthogonality_gap(model: nn.Module) -> float:
    """sum over conv and linear layers of ||W W^T - I||_F^2 (Lin, Gan, Han 2019), W as (out, rest)."""
    with torch.no_grad():
        return float(sum(gram_gap(m.weight) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)))


def gram_gap(weight: torch.Tensor) -> torch.Tensor:
    # Lin et al. write ||W^T W - I||^2; for a wide W (fewer outputs than inputs) W^T W has rank below
    # its size and can never be the identity, so the Gram matrix of the smaller side is used: the
    # rows (or columns) are pushed towards an orthonormal set, which bounds the layer's Lipschitz constant.
    w = weight.reshape(weight.shape[0], -1)
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    return ((gram - torch.eye(len(gram), device=w.device)) ** 2).sum()
