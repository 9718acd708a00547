"""Auto-PGD (Croce & Hein 2020), Linf and L2, with the cross-entropy or DLR loss, untargeted or
targeted, as Foolbox attacks; and the AutoAttack sequence (APGD-CE, APGD-T, Square) built on them.

Written here because Foolbox 3 lacks APGD and AutoAttack. The reference code (fra31/auto-attack) is
not released on PyPI, and the packaged ports (torchattacks' APGD, ART's AutoProjectedGradientDescent)
each drive their own model wrapper, seeding and batching: none can be handed a Foolbox model and
criterion, so none would run through ``attacks.craft`` with its subset, epsilon grid, query count and
bounds check, on the float model and on the straight-through twins alike.

The schedule follows the paper: step 2 eps, momentum 0.75, checkpoints at 0, 22%, then growing by
max(p_j - p_{j-1} - 0.03, 0.06) of the budget; at a checkpoint the step halves and the iterate restarts
from the best point when fewer than 75% of the steps since the last one raised the loss, or when
neither the step nor the best loss changed. EOT (Athalye et al. 2018) averages ``eot_samples``
gradients per step against a randomised model, as AutoAttack's ``rand`` version does.

A sample leaves the batch once the criterion holds for it: every sample's trajectory is independent
of the others' (models run in eval mode), so this saves the work without changing any result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import eagerpy as ep
import torch
from foolbox.attacks.base import FixedEpsilonAttack, get_criterion, raise_if_kwargs, verify_input_bounds
from foolbox.criteria import Misclassification, TargetedMisclassification
from foolbox.distances import l2, linf
from foolbox.models import Model

MOMENTUM = 0.75  # alpha of the paper
RHO = 0.75  # share of steps since the last checkpoint that must raise the loss


def checkpoints(steps: int) -> list[int]:
    """Iterations at which APGD may halve its step: the first after 22% of the budget, each later one
    3% sooner than the last, at least 6% apart (the paper's p_j, in whole steps as its code counts them)."""
    first, least, shrink = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    marks, length = [first], first
    while True:
        length = max(length - shrink, least)
        if marks[-1] + length > steps:
            return marks
        marks.append(marks[-1] + length)


def ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, labels, reduction="none")


def dlr_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Difference of logits ratio: -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3); invariant to shift and scale."""
    ordered = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, labels[:, None])[:, 0]
    other = logits.scatter(1, labels[:, None], -torch.inf).max(1).values
    return -(true - other) / (ordered[:, 0] - ordered[:, 2] + 1e-12)


def targeted_dlr_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2): raised, it moves the input towards class t."""
    ordered = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, labels[:, None])[:, 0]
    target = logits.gather(1, targets[:, None])[:, 0]
    return -(true - target) / (ordered[:, 0] - 0.5 * (ordered[:, 2] + ordered[:, 3]) + 1e-12)


class _APGD(FixedEpsilonAttack):
    """Auto-PGD on one norm (subclasses set the step, the projection and the random start).

    Args:
        steps: iterations per restart.
        loss: ``ce`` (cross-entropy) or ``dlr`` (difference of logits ratio).
        restarts: random starts; a sample keeps the first adversarial point any restart finds.
        targets: 0 = untargeted; k > 0 = APGD-T: the targeted DLR loss towards each of the k classes
            ranked highest after the true one on the clean input, one after the other.
        eot_samples: gradients averaged per step (expectation over transformation).
    """

    def __init__(
        self, *, steps: int = 100, loss: str = "ce", restarts: int = 1, targets: int = 0, eot_samples: int = 1
    ) -> None:
        losses = ("ce", "dlr")
        if loss not in losses:
            raise ValueError(f"loss: expected one of {', '.join(losses)}, got {loss!r}")
        for key, value, least in (("steps", steps, 1), ("restarts", restarts, 1), ("eot_samples", eot_samples, 1)):
            if value < least:
                raise ValueError(f"{key}: expected an integer >= {least}, got {value}")
        if targets < 0:
            raise ValueError(f"targets: expected an integer >= 0, got {targets}")
        if targets and loss != "dlr":
            raise ValueError(f"targets: the targeted version uses the dlr loss, got loss {loss!r}")
        self.steps, self.loss, self.restarts, self.targets, self.eot_samples = (
            steps,
            loss,
            restarts,
            targets,
            eot_samples,
        )

    # Norm-specific pieces.
    def _start(self, x: torch.Tensor, epsilon: float) -> torch.Tensor:
        raise NotImplementedError

    def _ascent(self, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _project(self, x_adv: torch.Tensor, x: torch.Tensor, epsilon: float) -> torch.Tensor:
        raise NotImplementedError

    def run(self, model: Model, inputs: Any, criterion: Any, *, epsilon: float, **kwargs: Any) -> Any:
        raise_if_kwargs(kwargs)
        x_ep, restore_type = ep.astensor_(inputs)
        verify_input_bounds(x_ep, model)
        criterion = get_criterion(criterion)
        if not isinstance(x_ep.raw, torch.Tensor):
            raise ValueError(f"APGD needs a differentiable torch model, got inputs of type {type(x_ep.raw).__name__}")
        if isinstance(criterion, TargetedMisclassification):
            if self.targets:
                raise ValueError("targets: APGD-T picks its own target classes; give it a Misclassification criterion")
            labels, sign = criterion.target_classes.raw, -1.0
        elif isinstance(criterion, Misclassification):
            labels, sign = criterion.labels.raw, 1.0
        else:
            raise ValueError(f"expected Misclassification or TargetedMisclassification, got {type(criterion).__name__}")
        x = x_ep.raw.detach()
        low, high = model.bounds

        def forward(xt: torch.Tensor) -> torch.Tensor:
            return model(ep.astensor(xt)).raw

        best = x.clone()
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        with torch.no_grad():
            done |= _hit(forward(x), labels, sign)
        runs: list[torch.Tensor | None] = [None]
        if self.targets:
            with torch.no_grad():
                ranked = forward(x).argsort(dim=1, descending=True)
            # The k-th highest class other than the true one, for k = 1..targets.
            others = torch.stack([r[r != y] for r, y in zip(ranked, labels, strict=True)])
            runs = [others[:, k] for k in range(min(self.targets, others.shape[1]))]
        for target in runs:
            for _ in range(self.restarts):
                rows = torch.nonzero(~done).flatten()
                if rows.numel() == 0:
                    break
                found, point = self._attack(forward, x[rows], labels[rows], sign, epsilon, (low, high), target)
                best[rows] = point
                done[rows] |= found
        return restore_type(ep.astensor(best))

    def _objective(
        self, logits: torch.Tensor, labels: torch.Tensor, sign: float, target: torch.Tensor | None
    ) -> torch.Tensor:
        """Per-sample loss the attack raises (a targeted criterion lowers the loss of its target)."""
        if target is not None:
            return targeted_dlr_loss(logits, labels, target)
        loss = ce_loss if self.loss == "ce" else dlr_loss
        return sign * loss(logits, labels)

    def _attack(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        labels: torch.Tensor,
        sign: float,
        epsilon: float,
        bounds: tuple[float, float],
        target: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One APGD run; returns per sample whether it fooled the model and the point to keep (the
        adversarial one if found, else the one of highest loss)."""
        n = len(x)
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        keep = x.clone()

        def evaluate(xt: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            """Mean loss, mean gradient over the EOT draws, and whether the last draw was fooled."""
            total_loss = torch.zeros(len(rows), device=x.device)
            total_grad = torch.zeros_like(xt)
            for _ in range(self.eot_samples):
                xg = xt.detach().requires_grad_(True)
                logits = forward(xg)
                t = None if target is None else target[rows]
                loss = self._objective(logits, labels[rows], sign, t)
                (grad,) = torch.autograd.grad(loss.sum(), xg)
                total_loss += loss.detach()
                total_grad += grad
            return (
                total_loss / self.eot_samples,
                total_grad / self.eot_samples,
                _hit(logits.detach(), labels[rows], sign),
            )

        rows = torch.arange(n, device=x.device)
        current = self._project(self._start(x, epsilon), x, epsilon).clamp(*bounds)
        loss, grad, hit = evaluate(current, rows)
        best_loss, best_point, best_grad = loss.clone(), current.clone(), grad.clone()
        step = torch.full((n,), 2.0 * epsilon, device=x.device)
        previous = current.clone()
        raised = torch.zeros(n, device=x.device)
        marks = checkpoints(self.steps)
        last_mark, loss_at_mark, step_at_mark = 0, best_loss.clone(), step.clone()

        def record(hit: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
            """Keep the samples just fooled; return the rows still being attacked."""
            nonlocal rows
            found[rows[hit]] = True
            keep[rows[hit]] = point[hit]
            return ~hit

        alive = record(hit, current)
        for i in range(self.steps):
            if not alive.any():
                break
            # Drop fooled samples from every per-row tensor.
            rows, current, previous, grad = rows[alive], current[alive], previous[alive], grad[alive]
            loss, raised = loss[alive], raised[alive]
            xr = x[rows]
            z = self._project(current + step[rows, None, None, None] * self._ascent(grad), xr, epsilon).clamp(*bounds)
            momentum = MOMENTUM if i > 0 else 1.0
            nxt = current + momentum * (z - current) + (1 - momentum) * (current - previous)
            nxt = self._project(nxt, xr, epsilon).clamp(*bounds)
            new_loss, new_grad, hit = evaluate(nxt, rows)
            raised += (new_loss > loss).float()
            better = new_loss > best_loss[rows]
            best_loss[rows[better]] = new_loss[better]
            best_point[rows[better]] = nxt[better]
            best_grad[rows[better]] = new_grad[better]
            previous, current, loss, grad = current, nxt, new_loss, new_grad
            if i + 1 in marks:
                length = i + 1 - last_mark
                stalled = (raised < RHO * length) | (
                    (step_at_mark[rows] == step[rows]) & (loss_at_mark[rows] == best_loss[rows])
                )
                step_at_mark[rows] = step[rows]
                step[rows[stalled]] /= 2.0
                # Restart the halved samples from their best point.
                current = torch.where(stalled[:, None, None, None], best_point[rows], current)
                grad = torch.where(stalled[:, None, None, None], best_grad[rows], grad)
                raised = torch.zeros_like(raised)
                loss_at_mark[rows] = best_loss[rows]
                last_mark = i + 1
            alive = record(hit, nxt)
        keep[~found] = best_point[~found]
        return found, keep


def _hit(logits: torch.Tensor, labels: torch.Tensor, sign: float) -> torch.Tensor:
    """Misclassified (sign 1) or classified as the target (sign -1)."""
    predicted = logits.argmax(1)
    return predicted != labels if sign > 0 else predicted == labels


class LinfAPGD(_APGD):
    distance = linf

    def _start(self, x: torch.Tensor, epsilon: float) -> torch.Tensor:
        return x + epsilon * (2 * torch.rand_like(x) - 1)

    def _ascent(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()

    def _project(self, x_adv: torch.Tensor, x: torch.Tensor, epsilon: float) -> torch.Tensor:
        return x + (x_adv - x).clamp(-epsilon, epsilon)


class L2APGD(_APGD):
    distance = l2

    @staticmethod
    def _norm(t: torch.Tensor) -> torch.Tensor:
        return t.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]

    def _start(self, x: torch.Tensor, epsilon: float) -> torch.Tensor:
        direction = torch.randn_like(x)
        return x + epsilon * direction / self._norm(direction)

    def _ascent(self, grad: torch.Tensor) -> torch.Tensor:
        return grad / self._norm(grad)

    def _project(self, x_adv: torch.Tensor, x: torch.Tensor, epsilon: float) -> torch.Tensor:
        delta = x_adv - x
        return x + delta * (epsilon / self._norm(delta)).clamp(max=1.0)
