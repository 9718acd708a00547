"""Training: a recipe registry (the loss a model is trained with) and one seeded, deterministic loop."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from qrobust.registry import Registry


class Recipe(Protocol):
    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...


RECIPES: Registry[Callable[[dict[str, Any]], Recipe]] = Registry("training recipe")


@dataclass(frozen=True)
class Standard:
    """Plain empirical risk minimisation with cross-entropy."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y)


@RECIPES.register("standard")
def _standard(options: dict[str, Any]) -> Recipe:
    return Standard(**options)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    device: str


def seed_everything(seed: int) -> None:
    """Seed every RNG a run touches and ask torch for deterministic kernels where it has them."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def fit(model: nn.Module, recipe: Recipe, x: np.ndarray, y: np.ndarray, config: TrainConfig) -> list[float]:
    """Adam with a cosine schedule; batches drawn from a seeded generator. Returns the mean loss per epoch."""
    device = resolve_device(config.device)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(y) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.15
    )
    generator = torch.Generator().manual_seed(config.seed)
    images, labels = torch.from_numpy(x), torch.from_numpy(y)
    history = []
    for epoch in range(config.epochs):
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        batches = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", disable=None, leave=False)
        for step in batches:
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            xb, yb = images[index].to(device), labels[index].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = recipe.loss(model, xb, yb)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(index)
        history.append(total / len(labels))
    model.eval()
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Float torch logits, model in eval mode, inputs checked to lie in [0, 1]."""
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0, "inputs must lie in [0, 1]"
    model.eval()
    device = next(model.parameters()).device
    out = [model(torch.from_numpy(x[i : i + batch_size]).to(device)).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy()
