"""Training: a recipe registry (the loss a model is trained with) and one seeded, deterministic loop.

The train-based defenses are recipes. They are written here, not taken from ART: ART's trainers
(AdversarialTrainerMadryPGD, its TRADES trainer) own their training loop and optimizer and need every
model wrapped as an ART classifier, which would bypass the one seeded, deterministic loop every recipe
shares; each defense here is a loss of a few lines on top of that loop.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from qrobust.training.catalogue import TrainConfig, parse_options
from qrobust.training.lipschitz import gram_gap
from qrobust.training.loop import fit
from qrobust.training.qat import QuantizationAware
from qrobust.training.standard import Standard


class Recipe(Protocol):
    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...


def linf_ascent(
    model: nn.Module,
    x: torch.Tensor,
    objective: Callable[[torch.Tensor], torch.Tensor],
    *,
    epsilon: float,
    steps: int,
    step_size: float,
    start: torch.Tensor,
) -> torch.Tensor:
    """Signed-gradient ascent of ``objective(logits)`` within the Linf ball around ``x`` and [0, 1].

    The model attacks in eval mode (BatchNorm on its running statistics, which the attack's queries
    leave alone, as the reference TRADES code does) and goes back to the mode it was in."""
    training = model.training
    model.eval()
    delta = start.clamp(-epsilon, epsilon)
    for _ in range(steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(model((x + delta).clamp(0.0, 1.0))), delta)
        delta = (delta + step_size * grad.sign()).clamp(-epsilon, epsilon).detach()
    model.train(training)
    return (x + delta).clamp(0.0, 1.0).detach()


@dataclass(frozen=True)
class AdversarialTraining:
    """Adversarial training (Madry et al. 2018): cross-entropy on Linf adversarial examples.

    ``steps: 1`` is FGSM from a random start with step 1.25 epsilon (Wong, Rice, Kolter 2020, "Fast is
    better than free"), one extra forward/backward pass a batch; more steps is PGD with step
    2.5 epsilon / steps, as Madry et al.
    """

    epsilon: float = 0.1
    steps: int = 1

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        step = 1.25 * self.epsilon if self.steps == 1 else 2.5 * self.epsilon / self.steps
        start = torch.empty_like(x).uniform_(-self.epsilon, self.epsilon)
        x_adv = linf_ascent(
            model,
            x,
            lambda logits: F.cross_entropy(logits, y),
            epsilon=self.epsilon,
            steps=self.steps,
            step_size=step,
            start=start,
        )
        return F.cross_entropy(model(x_adv), y)


@dataclass(frozen=True)
class Trades:
    """TRADES (Zhang et al. 2019): cross-entropy on clean inputs plus beta times the KL divergence
    between the clean and the adversarial prediction, the adversary maximising that divergence."""

    epsilon: float = 0.1
    steps: int = 5
    beta: float = 6.0

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        clean = model(x)
        target = F.softmax(clean.detach(), dim=1)

        def divergence(logits: torch.Tensor) -> torch.Tensor:
            return F.kl_div(F.log_softmax(logits, dim=1), target, reduction="batchmean")

        x_adv = linf_ascent(
            model,
            x,
            divergence,
            epsilon=self.epsilon,
            steps=self.steps,
            step_size=2.5 * self.epsilon / self.steps,
            start=0.001 * torch.randn_like(x),
        )
        robust = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(clean, dim=1), reduction="batchmean")
        return F.cross_entropy(clean, y) + self.beta * robust


@dataclass(frozen=True)
class DefensiveQuantization:
    """Defensive Quantization (Lin, Gan, Han 2019): cross-entropy plus beta times the orthogonality gap
    of every conv and linear layer, keeping each layer's Lipschitz constant near 1 so that quantization
    error is not amplified from layer to layer."""

    beta: float = 3e-4

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        penalty = sum(gram_gap(m.weight) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear))
        return F.cross_entropy(model(x), y) + self.beta * penalty


@dataclass(frozen=True)
class Distillation:
    """Defensive distillation (Papernot et al. 2016): a teacher trained with its logits divided by
    ``temperature``, then the model trained at the same temperature on the teacher's soft labels; it
    is deployed at temperature 1, so its softmax saturates. ``prepare`` trains the teacher."""

    temperature: float = 20.0
    teacher: nn.Module | None = None

    def prepare(self, model: nn.Module, x: np.ndarray, y: np.ndarray, config: TrainConfig) -> Recipe:
        teacher = copy.deepcopy(model)
        fit(teacher, _Tempered(self.temperature), x, y, config)
        return Distillation(self.temperature, teacher.eval())

    def attacker_view(self, model: nn.Module) -> nn.Module:
        """What an adaptive attack differentiates: the logits divided by the temperature. At T = 1 the
        distilled model's softmax saturates and cross-entropy gradients vanish in float32, which masks
        gradients rather than adding robustness (Carlini and Wagner 2016)."""
        return _Tempered(self.temperature).view(model)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.teacher is None:
            raise RuntimeError("defensive distillation needs its teacher: call prepare() first")
        with torch.no_grad():
            soft = F.softmax(self.teacher(x) / self.temperature, dim=1)
        return -(soft * F.log_softmax(model(x) / self.temperature, dim=1)).sum(1).mean()


@dataclass(frozen=True)
class _Tempered:
    temperature: float

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x) / self.temperature, y)

    def view(self, model: nn.Module) -> nn.Module:
        return _Scaled(model, 1.0 / self.temperature)


class _Scaled(nn.Module):
    def __init__(self, model: nn.Module, scale: float) -> None:
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.scale


def attacker_view(recipe: Recipe, model: nn.Module) -> nn.Module:
    """The model as an adaptive attacker of ``recipe`` differentiates it (the model itself unless the
    recipe is known to mask gradients)."""
    view = getattr(recipe, "attacker_view", None)
    return model if view is None else view(model)


# Each recipe of the catalogue: its class, built from the options the catalogue checked.
_MAKERS: dict[str, type] = {
    "standard": Standard,
    "adversarial": AdversarialTraining,
    "trades": Trades,
    "distillation": Distillation,
    "dq": DefensiveQuantization,
    "qat": QuantizationAware,
}


def create_recipe(name: str, options: Mapping[str, Any]) -> Recipe:
    """The recipe ``name`` with ``train.recipe_options.<name>`` checked by the catalogue (the one door)."""
    return _MAKERS[name](**parse_options(name, options))  # type: ignore[no-any-return]
