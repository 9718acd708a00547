"""FAB-T (Croce & Hein 2020, "Minimally distorted adversarial examples with a fast adaptive boundary
attack"), Linf, targeted at each of the runner-up classes in turn: the third member of AutoAttack's
standard version.

torchattacks' ``FAB`` (a port of the authors' code) does the work; this module only adapts it to
Foolbox's ``FixedEpsilonAttack`` interface, so it runs through the same entry point, epsilon grid and
seeding as every other attack. torchattacks needs a differentiable torch module: a Foolbox model's
forward pass (a float model, or a quantized model's straight-through twin) is wrapped as one.
"""

from __future__ import annotations

from typing import Any

import eagerpy as ep
import torch
import torchattacks
from foolbox.attacks.base import FixedEpsilonAttack, get_criterion, raise_if_kwargs, verify_input_bounds
from foolbox.criteria import Misclassification
from foolbox.distances import linf
from foolbox.models import Model
from torch import nn


class _Forward(nn.Module):
    """A Foolbox model's forward pass as the torch module torchattacks drives."""

    def __init__(self, model: Model, device: torch.device) -> None:
        super().__init__()
        self.model = model
        # torchattacks reads its device from the module's first parameter.
        self.anchor = nn.Parameter(torch.zeros(0, device=device), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(ep.astensor(x)).raw


class LinfFABTargeted(FixedEpsilonAttack):
    """FAB, targeted in turn at the ``targets`` classes ranked highest after the true one, on each input
    the earlier targets left; its output is clipped to the epsilon ball like every fixed-budget attack.

    Args:
        steps: FAB iterations per target (AutoAttack's standard version: 100).
        targets: runner-up classes tried (AutoAttack's standard version: 9, every other class).
        seed: FAB's random restarts draw from this seed (torchattacks reseeds torch's generator with it).
    """

    distance = linf

    def __init__(self, *, steps: int = 100, targets: int = 9, seed: int = 0) -> None:
        if steps < 1 or targets < 1:
            raise ValueError(f"steps and targets: expected positive integers, got {steps} and {targets}")
        self.steps, self.targets, self.seed = steps, targets, seed

    def run(self, model: Model, inputs: Any, criterion: Any, *, epsilon: float, **kwargs: Any) -> Any:
        raise_if_kwargs(kwargs)
        x_ep, restore_type = ep.astensor_(inputs)
        verify_input_bounds(x_ep, model)
        criterion = get_criterion(criterion)
        if not isinstance(criterion, Misclassification):
            raise ValueError(f"expected a Misclassification criterion, got {type(criterion).__name__}")
        x, labels = x_ep.raw.detach(), criterion.labels.raw
        forward = _Forward(model, x.device)
        with torch.no_grad():
            classes = int(forward(x[:1]).shape[1])
        fab = torchattacks.FAB(
            forward,
            norm="Linf",
            eps=epsilon,
            steps=self.steps,
            n_restarts=1,
            multi_targeted=True,
            n_classes=min(self.targets, classes - 1) + 1,
            seed=self.seed,
        )
        adv = fab(x, labels)
        return restore_type(ep.astensor(torch.clamp(torch.minimum(torch.maximum(adv, x - epsilon), x + epsilon), 0, 1)))
