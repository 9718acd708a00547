"""DIVA (Hao et al., MLSys 2022, "A Tale of Two Models"): a differential evasion attack on a quantized model.

The attacker wants an input the quantized model on the device gets wrong while its float original, the model
used for validation and monitoring, still gets it right. Projected sign-gradient ascent on

    L(x) = softmax(f(x))_y - c * softmax(q(x))_y

within the Linf ball: it raises the float model's confidence in the true class while lowering the quantized
model's. ``f`` is the float model (a torch module given at construction) and ``q`` the model Foolbox hands
``run``: the quantized model's straight-through twin (white-box), or for the semi-black-box variant, a
surrogate pair (another training run's float model and its own quantized twin).

Written here because no library has it: Foolbox's attacks drive one model and its own loss. The reference
code (WeiHao97/DIVA) is TensorFlow notebooks. Each sample keeps the last iterate that evades (quantized wrong,
float right) and otherwise its final iterate, so a success found early is not lost to a later step.
"""

from __future__ import annotations

from typing import Any

import eagerpy as ep
import torch
from foolbox.attacks.base import FixedEpsilonAttack, get_criterion, raise_if_kwargs, verify_input_bounds
from foolbox.criteria import Misclassification
from foolbox.distances import linf
from foolbox.models import Model
from torch import nn


class DIVA(FixedEpsilonAttack):
    """DIVA's white-box attack, Linf.

    Args:
        reference: the float model whose prediction must stay right (in eval mode; not modified).
        c: the weight of the quantized model's term (the paper's trade-off; 1 in its code).
        steps: ascent steps.
        rel_stepsize: the step as a share of epsilon.
        random_start: start from a uniform draw in the ball (seeded by the caller's torch generator).
    """

    distance = linf

    def __init__(
        self, reference: nn.Module, *, c: float = 1.0, steps: int = 20, rel_stepsize: float = 0.1,
        random_start: bool = True, log_scores: bool = True,
    ) -> None:  # fmt: skip
        self.log_scores = log_scores
        if c <= 0:
            raise ValueError(f"c: expected a number > 0, got {c}")
        if steps < 1:
            raise ValueError(f"steps: expected an integer >= 1, got {steps}")
        if not 0 < rel_stepsize <= 1:
            raise ValueError(f"rel_stepsize: expected a number in (0, 1], got {rel_stepsize}")
        self.reference, self.c, self.steps, self.rel_stepsize, self.random_start = (
            reference,
            c,
            steps,
            rel_stepsize,
            random_start,
        )

    def run(self, model: Model, inputs: Any, criterion: Any, *, epsilon: float, **kwargs: Any) -> Any:
        raise_if_kwargs(kwargs)
        x_ep, restore_type = ep.astensor_(inputs)
        verify_input_bounds(x_ep, model)
        criterion = get_criterion(criterion)
        if not isinstance(criterion, Misclassification):
            raise ValueError(
                f"DIVA is untargeted: expected a Misclassification criterion, got {type(criterion).__name__}"
            )
        x = x_ep.raw.detach()
        labels = criterion.labels.raw
        low, high = model.bounds

        def quantized(xt: torch.Tensor) -> torch.Tensor:
            return model(ep.astensor(xt)).raw

        x_adv = x.clone()
        if self.random_start:
            x_adv = (x_adv + torch.empty_like(x).uniform_(-epsilon, epsilon)).clamp(low, high)
        best, found = x_adv.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
        # One forward of both models per iterate: the logits that give a step's gradient also say whether the
        # previous step's iterate evades (the start is not checked), and a last forward checks the last one.
        for step in range(self.steps + 1):
            last = step == self.steps
            x_adv.requires_grad_(not last)
            with torch.set_grad_enabled(not last):
                float_logits, quantized_logits = self.reference(x_adv), quantized(x_adv)
            if step > 0:
                with torch.no_grad():
                    evades = evasive(float_logits, quantized_logits, labels)
                    take = evades | ~found  # the latest evasive iterate; the latest one until one evades
                    best[take] = x_adv.detach()[take]
                    found |= evades
            if last:
                break
            loss = self.objective(float_logits, quantized_logits, labels)
            (grad,) = torch.autograd.grad(loss.sum(), x_adv)
            with torch.no_grad():
                x_adv = x_adv + self.rel_stepsize * epsilon * grad.sign()
                x_adv = torch.min(torch.max(x_adv, x - epsilon), x + epsilon).clamp(low, high)
        return restore_type(ep.astensor(best.detach()))

    def objective(
        self, float_logits: torch.Tensor, quantized_logits: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """Per sample: the float model's score of the true class minus c times the quantized model's, as
        log-probabilities (``log_scores``) or probabilities (the paper's)."""
        truth = labels[:, None]
        scores = torch.log_softmax if self.log_scores else torch.softmax
        float_p = scores(float_logits, 1).gather(1, truth)[:, 0]
        quantized_p = scores(quantized_logits, 1).gather(1, truth)[:, 0]
        return float_p - self.c * quantized_p


def evasive(float_logits: torch.Tensor, quantized_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per sample: the quantized model gets it wrong while the float model gets it right."""
    return (quantized_logits.argmax(1) != labels) & (float_logits.argmax(1) == labels)
