"""The training loop: seeded, deterministic, one recipe's loss per batch."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from qrobust.pipeline.device import resolve_device
from qrobust.training.catalogue import TrainConfig

if TYPE_CHECKING:
    from qrobust.training.recipes import Recipe


def fit(model: nn.Module, recipe: Recipe, x: np.ndarray, y: np.ndarray, config: TrainConfig) -> list[float]:
    """Adam with a cosine schedule; batches drawn from a seeded generator. Returns the mean loss per epoch."""
    device = resolve_device(config.device)
    model.to(device)
    prepare = getattr(recipe, "prepare", None)
    if prepare is not None:  # a recipe with a first phase (distillation's teacher)
        recipe = prepare(model, x, y, config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(y) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.15
    )
    generator = torch.Generator().manual_seed(config.seed)
    images, labels = torch.from_numpy(x), torch.from_numpy(y)
    # channels_last: oneDNN's convolutions train about 1.5x faster in this layout on CPU (measured per
    # step: ResNet-8 135 -> 90 ms, DS-CNN 79 -> 51, LeNet 35 -> 27); the weights go back to the default layout.
    layout = torch.channels_last if images.dim() == 4 else torch.contiguous_format
    model.to(memory_format=layout)
    history = []
    for epoch in range(config.epochs):
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        batches = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", disable=None, leave=False)
        for step in batches:
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            xb, yb = images[index].to(device).contiguous(memory_format=layout), labels[index].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = recipe.loss(model, xb, yb)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(index)
        history.append(total / len(labels))
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    return history
