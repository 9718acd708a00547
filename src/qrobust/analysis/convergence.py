"""Have the minimisation attacks converged? A boundary distance is only as good as the search behind it:
an attack stopped early reports the distance it had reached, not the boundary's. The check, per
white-box minimisation set of the suite: run the attack again at twice its steps on the set's first
samples and compare the censored median of the verified distance (the unbounded output's size where it
fools the deployed runtime; inf where it does not). The rule: converged when doubling the steps moves
that median by less than ``TOLERANCE``. A median that is inf (half or more samples never fooled) is not
converged: the attack has not found the boundary for most samples.

Decision-based minimisation attacks (boundary, hop_skip_jump) are not checked here: they query the
runtime only, and their doubled runs alone would take longer on 2 cores than the study's budget allows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from qrobust.attacks.catalogue import ATTACKS, steps_bounded
from qrobust.attacks.runner import craft, perturbation_norms
from qrobust.attacks.sets import AdversarialSet
from qrobust.attacks.victims import Victim
from qrobust.evaluation.worstcase import censored_median

TOLERANCE = 0.05  # the relative change of the median distance that doubling the steps may cause

Predict = Callable[[np.ndarray], np.ndarray]


def verified_distances(
    predict: Predict, x_unbounded: np.ndarray, x: np.ndarray, y: np.ndarray, norm: str
) -> np.ndarray:
    """Per sample the runtime gets right clean: the size of the unbounded output in ``norm`` where it
    fools the runtime, inf where it does not (censored: the boundary lies beyond what the attack found)."""
    right = predict(x) == y
    fooled = predict(x_unbounded) != y
    size = perturbation_norms(x_unbounded[None], x)[norm][0].astype(np.float64)
    return np.where(fooled, size, math.inf)[right]


@dataclass(frozen=True)
class Convergence:
    """One set's check: the median verified distance at the suite's steps and at twice as many."""

    attack: str
    threat_model: str
    source: str
    norm: str
    steps: int
    n: int  # samples the runtime gets right clean, of the set's first ones
    median: float  # censored: inf when the attack fooled the runtime on half the samples or fewer
    median_doubled: float
    found: int  # samples an unbounded output fooled the runtime on, at the steps
    found_doubled: int  # and at twice the steps

    @property
    def change(self) -> float:
        """Relative change of the median when the steps double (nan when the median is inf)."""
        if not (math.isfinite(self.median) and math.isfinite(self.median_doubled)) or self.median == 0:
            return math.nan
        return (self.median_doubled - self.median) / self.median

    @property
    def converged(self) -> bool:
        return math.isfinite(self.change) and abs(self.change) < TOLERANCE

    def record(self) -> dict[str, Any]:
        """As written to JSON, where inf and nan become null: ``found`` tells "beyond" from "nothing measured"."""
        return {
            "attack": self.attack,
            "threat_model": self.threat_model,
            "source": self.source,
            "norm": self.norm,
            "steps": self.steps,
            "n": self.n,
            "median": self.median,
            "median_doubled": self.median_doubled,
            "found": self.found,
            "found_doubled": self.found_doubled,
            "change": self.change,
            "converged": self.converged,
            "rule": f"|median at 2s steps / median at s steps - 1| < {TOLERANCE:g}, s = the attack's steps",
        }


def check_convergence(
    adv: AdversarialSet,
    x_eval: np.ndarray,
    victim: Victim,
    predict: Predict,
    options: Mapping[str, Any],
    *,
    samples: int,
    batch_size: int,
    seed: int,
) -> Convergence:
    """Re-run the set's attack on ``victim`` (the view it was made through) at twice its steps on the
    set's first ``samples`` samples; both medians are verified on ``predict``, the deployed runtime."""
    if not steps_bounded(adv.attack, options):
        raise ValueError(f"{adv.attack}: not a gradient minimisation attack with a steps option")
    x, y = x_eval[adv.index[:samples]], adv.labels[:samples]
    norm = ATTACKS.get(adv.attack).norm.value
    at_steps = adv.x_adv[adv.epsilons.index(math.inf), :samples]
    steps = int(options["steps"])
    doubled = craft(
        victim, adv.attack, {**options, "steps": 2 * steps}, (), x, y,
        batch_size=batch_size, seed=seed, key="attack.attacks",
    )  # fmt: skip
    before = verified_distances(predict, at_steps, x, y, norm)
    after = verified_distances(predict, doubled.x_adv[-1], x, y, norm)
    return Convergence(
        attack=adv.attack,
        threat_model=adv.threat_model.value,
        source=str(adv.source),
        norm=norm,
        steps=steps,
        n=len(before),
        median=censored_median(before),
        median_doubled=censored_median(after),
        found=int(np.isfinite(before).sum()),
        found_doubled=int(np.isfinite(after).sum()),
    )
