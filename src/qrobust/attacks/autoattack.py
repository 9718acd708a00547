"""AutoAttack (Croce & Hein 2020) on Linf: APGD-CE, APGD-T, FAB-T, then Square, each on the points the ones
before left robust. Its defaults are the standard version's settings."""

from __future__ import annotations

from typing import Any

import eagerpy as ep
import torch
from foolbox.attacks.base import FixedEpsilonAttack, get_criterion, raise_if_kwargs
from foolbox.criteria import Misclassification
from foolbox.distances import linf
from foolbox.models import Model

from qrobust.attacks.apgd import LinfAPGD, _hit
from qrobust.attacks.fab import LinfFABTargeted
from qrobust.attacks.square import LinfSquareAttack


class LinfAutoAttack(FixedEpsilonAttack):
    """AutoAttack's sequence (Croce & Hein 2020), Linf: APGD-CE, then APGD-T (targeted DLR), FAB-T, then the
    Square attack, each run only on the samples every earlier member left classified correctly.

    Square queries the model's forward pass only: on a quantized model's straight-through twin that is
    the deployed rounding (twins agree with their runtimes on at least quantize.twin_min_agreement).

    Args:
        steps: APGD and FAB iterations per run (the standard version: 100).
        targets: target classes of APGD-T and FAB-T (the standard version: 9).
        queries: Square's query budget per sample (the standard version: 5,000).
        p_init: the share of the image Square's first windows cover (the standard version: 0.8).
        eot_samples: gradients averaged per APGD step against a randomised model; above 1 (AutoAttack's
            version for randomised defenses) FAB-T and Square, which see one draw per query, do not run.
        apgd_ce, fab, square: run that member (AutoAttack's ``attacks_to_run``); APGD-T always runs.
            Leaving APGD-CE out fits a caller that has just run a cross-entropy attack on the same samples.
    """

    distance = linf

    def __init__(
        self,
        *,
        steps: int = 100,
        targets: int = 9,
        queries: int = 5000,
        p_init: float = 0.8,
        eot_samples: int = 1,
        apgd_ce: bool = True,
        fab: bool = True,
        square: bool = True,
    ) -> None:
        members: list[tuple[str, FixedEpsilonAttack]] = []
        if apgd_ce:
            members.append(("apgd_ce", LinfAPGD(steps=steps, loss="ce", eot_samples=eot_samples)))
        members.append(("apgd_t", LinfAPGD(steps=steps, loss="dlr", targets=targets, eot_samples=eot_samples)))
        if fab and eot_samples == 1:
            members.append(("fab_t", LinfFABTargeted(steps=steps, targets=targets)))
        if square and eot_samples == 1:
            members.append(("square", LinfSquareAttack(queries=queries, p_init=p_init)))
        self.members = tuple(members)
        self.found_by: dict[str, int] = {}  # samples each member fooled first, over every call

    def run(self, model: Model, inputs: Any, criterion: Any, *, epsilon: float, **kwargs: Any) -> Any:
        raise_if_kwargs(kwargs)
        x, restore_type = ep.astensor_(inputs)
        criterion = get_criterion(criterion)
        if not isinstance(criterion, Misclassification):
            raise ValueError(f"expected a Misclassification criterion, got {type(criterion).__name__}")
        best = x.raw.clone()
        labels = criterion.labels.raw
        alive = ~_hit(model(x).raw, labels, 1.0)
        for name, member in self.members:
            rows = torch.nonzero(alive).flatten()
            if rows.numel() == 0:
                break
            sub_x, sub = ep.astensor(x.raw[rows]), Misclassification(ep.astensor(labels[rows]))
            adv = member.distance.clip_perturbation(sub_x, member.run(model, sub_x, sub, epsilon=epsilon), epsilon)
            hit = _hit(model(adv).raw, labels[rows], 1.0)
            self.found_by[name] = self.found_by.get(name, 0) + int(hit.sum())
            best[rows[hit]] = adv.raw[hit]
            alive[rows[hit]] = False
        return restore_type(ep.astensor(best))
