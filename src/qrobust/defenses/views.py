"""What an adaptive attacker differentiates: a preprocessed model (BPDA, EOT), an ensemble's combiner, a detector's score."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from qrobust.defenses.preprocessors import Preprocessor, bpda, seeded_generator
from qrobust.deploy.runtime import batched


class MeanLogProbability(nn.Module):
    """The mean over views of the input of each view's log-softmax, each view repeated ``draws`` times.

    The combined model an adaptive attack runs on. Its cross-entropy is, up to a normaliser, the mean
    of the views' cross-entropies, so a gradient attack climbs the expected loss: EOT over fresh random
    draws (Athalye, Engstrom, Ilyas, Kwok 2018), a detector's squeezed branches (an input that fools every
    branch alike is not flagged). The mean of probabilities instead weights
    each draw by its probability, and measured weaker against random resize-and-pad.
    """

    def __init__(self, views: Sequence[Callable[[torch.Tensor], torch.Tensor]], draws: int = 1) -> None:
        super().__init__()
        self.views, self.draws = list(views), draws
        # Registered so .to(device) and .eval() reach the underlying models.
        self.members = nn.ModuleList(v for v in self.views if isinstance(v, nn.Module))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = [F.log_softmax(view(x), dim=1) for view in self.views for _ in range(self.draws)]
        return torch.stack(logp).mean(dim=0)


class LogMeanProbability(nn.Module):
    """log of the mean softmax of the members: the deployed mean-softmax combiner, as an attacker
    differentiates it (its top-1 is the deployed label)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([F.log_softmax(m(x), dim=1) for m in self.members])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))


class SoftVote(nn.Module):
    """A differentiable surrogate of the deployed majority vote (``EnsembleRuntime``): log of each
    member's softmax at ``temperature`` (which tends to its one-hot vote as the temperature falls),
    summed, plus the deployed tie-break (the mean softmax over the number of members). The vote itself
    has zero gradient almost everywhere; ``defenses.view_agreement`` measures how often the top-1s agree."""

    def __init__(self, members: Sequence[nn.Module], temperature: float) -> None:
        super().__init__()
        self.members, self.temperature = nn.ModuleList(members), temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = [m(x) for m in self.members]
        votes = torch.stack([F.softmax(z / self.temperature, dim=1) for z in logits]).sum(dim=0)
        tie_break = torch.stack([F.softmax(z, dim=1) for z in logits]).mean(dim=0) / len(logits)
        return torch.log(votes + tie_break)


class Preprocessed(nn.Module):
    """model(preprocess(x)) for the attacker: BPDA where the step has no gradient."""

    def __init__(self, model: nn.Module, pre: Preprocessor, seed: int) -> None:
        super().__init__()
        self.model, self.pre, self.generator = model, pre, seeded_generator(seed)
        self.randomised = pre.randomised  # read by victims.draws_randomness

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(bpda(self.pre, x, self.generator))


class DetectionScore(nn.Module):
    """The squeeze detector as an attacker differentiates it: ``(logits, score)``, the model's logits and
    the largest L1 distance between its softmax on the input and on each squeezed copy (BPDA through
    rounding), the score ``SqueezeDetector`` thresholds."""

    def __init__(self, model: nn.Module, squeezers: Sequence[Preprocessor], seed: int) -> None:
        super().__init__()
        self.model = model
        self.branches = nn.ModuleList(Preprocessed(model, s, seed) for s in squeezers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        p = F.softmax(logits, dim=1)
        distances = [(p - F.softmax(branch(x), dim=1)).abs().sum(dim=1) for branch in self.branches]
        return logits, torch.stack(distances).max(dim=0).values


def view_agreement(
    view: nn.Module, predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, device: torch.device | str = "cpu"
) -> float:
    """The share of inputs ``x`` on which the attacker's view and the deployed system give the same label."""
    with torch.no_grad():
        logits = batched(lambda b: view(torch.from_numpy(np.ascontiguousarray(b)).to(device)), x, 250)
    return float((logits.argmax(1) == predict(x)).mean())
