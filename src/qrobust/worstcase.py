"""Per-sample worst case: a model's robust accuracy over every attack and threat model that reached it.

RobustBench's and AutoAttack's protocol: a sample counts as robust at (norm, epsilon) only if the
deployed model classifies its clean input correctly and every adversarial input made for it at that
budget, by any attack under any threat model (white-box, straight-through, black-box, transfer from
another model), too. Attacks run on nested seeded subsets, so the row's n is the union of the samples
any set covered; a sample outside a smaller set was simply not attacked by it. Each broken sample
names the attacks that broke it, so the report can say which attack the figure rests on.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from qrobust.model_id import ModelId
from qrobust.results import NORMS, Result, ThreatModel

ATTACK = "worst_case"


@dataclass
class _Budget:
    """What the sets at one (target, norm, epsilon) did to each sample of the evaluation subset."""

    covered: np.ndarray  # (N,) bool: some set attacked the sample
    broken_by: list[list[str]]  # per sample, the sets (attack/threat_model/source) that fooled the target
    sizes: dict[str, np.ndarray]  # norm -> (N,) size of the first example that fooled the target
    attacks: set[str] = field(default_factory=set)


class WorstCase:
    """Collects every set's per-sample outcome on every target (``add``), then gives one row per
    (target, norm, epsilon) with the per-sample worst case (``rows``) and who found it (``attribution``)."""

    def __init__(self, clean_correct: dict[ModelId, np.ndarray]) -> None:
        self.clean = clean_correct
        self.budgets: dict[tuple[ModelId, str, float], _Budget] = {}

    def add(
        self,
        target: ModelId,
        name: str,
        norm: str,
        epsilon: float,
        index: np.ndarray,
        correct: np.ndarray,
        sizes: dict[str, np.ndarray],
    ) -> None:
        """One set at one epsilon scored on ``target``: ``correct`` (len(index),) after the attack."""
        if not math.isfinite(epsilon):
            return  # a minimisation attack's unbounded output answers another question (the distance)
        n = len(self.clean[target])
        budget = self.budgets.setdefault(
            (target, norm, epsilon),
            _Budget(
                np.zeros(n, dtype=bool),
                [[] for _ in range(n)],
                {k: np.full(n, np.nan, dtype=np.float32) for k in NORMS},
            ),
        )
        budget.covered[index] = True
        budget.attacks.add(name)
        for position, i in enumerate(index):
            if not correct[position]:
                if not budget.broken_by[i]:
                    for k in NORMS:
                        budget.sizes[k][i] = sizes[k][position]
                budget.broken_by[i].append(name)

    def rows(self) -> list[Result]:
        """One worst-case row per (target, norm, epsilon), over the samples some set covered."""
        out = []
        for (target, norm, epsilon), budget in sorted(self.budgets.items(), key=lambda kv: (str(kv[0][0]), kv[0][1:])):
            rows = np.flatnonzero(budget.covered)
            clean = self.clean[target][rows]
            broken = np.array([bool(budget.broken_by[i]) for i in rows], dtype=bool)
            out.append(
                Result.score(
                    correct=clean & ~broken,
                    attackable=clean,
                    sizes={k: np.nan_to_num(v[rows], nan=0.0) for k, v in budget.sizes.items()},
                    attack=ATTACK,
                    norm=norm,
                    epsilon=epsilon,
                    threat_model=ThreatModel.WORST_CASE.value,
                    source_threat_model=ThreatModel.WORST_CASE.value,
                    source=str(target),
                    target=str(target),
                    target_arch=target.arch,
                    target_precision=target.precision,
                    defense="none",
                )
            )
        return out

    def attribution(self) -> dict[str, dict[str, object]]:
        """Per ``target/norm/eps``: the sets that reached it, and for each set how many samples it broke
        among those the target got right clean, and how many only it broke."""
        out: dict[str, dict[str, object]] = {}
        for (target, norm, epsilon), budget in sorted(self.budgets.items(), key=lambda kv: (str(kv[0][0]), kv[0][1:])):
            rows = [i for i in np.flatnonzero(budget.covered) if self.clean[target][i]]
            broke = Counter(name for i in rows for name in budget.broken_by[i])
            only = Counter(budget.broken_by[i][0] for i in rows if len(budget.broken_by[i]) == 1)
            out[f"{target}/{norm}/eps={epsilon:g}"] = {
                "sets": len(budget.attacks),
                "attackable": len(rows),
                "broken": sum(bool(budget.broken_by[i]) for i in rows),
                "broken_by": dict(sorted(broke.items(), key=lambda kv: (-kv[1], kv[0]))),
                "only_by": dict(sorted(only.items(), key=lambda kv: (-kv[1], kv[0]))),
            }
        return out
