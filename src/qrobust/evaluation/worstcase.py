"""Per-sample worst case: a model's robust accuracy over every attack and threat model that reached it.

RobustBench's and AutoAttack's protocol: a sample counts as robust at (norm, epsilon) only if the
deployed model classifies its clean input correctly and every adversarial input made for it at that
budget, by any attack under any threat model (white-box, straight-through, black-box, transfer from
another model), too. Attacks run on nested seeded subsets, so the row's n is the union of the samples
any set covered; a sample outside a smaller set was simply not attacked by it. Each broken sample
names the attacks that broke it, so the report can say which attack the figure rests on.

The same per-sample minimum gives the distance to the decision boundary: every unbounded output of a
minimisation attack that fools the deployed model (its own, or one made on another model) bounds that
sample's distance from above, so the smallest one is the best bound the study has. A sample no attack
moved across the boundary is censored: its distance lies beyond every size tried, which the censored
median counts (Kaplan-Meier style, with no size reached it is infinite), instead of leaving the sample out.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from qrobust.attacks.threats import NORMS, ThreatModel
from qrobust.evaluation.results import Result, paired
from qrobust.pipeline.model_id import ModelId

ATTACK = "worst_case"


@dataclass
class _Budget:
    """What the sets at one (target, norm, epsilon) did to each sample of the evaluation subset."""

    covered: np.ndarray  # (N,) bool: some set attacked the sample
    broken_by: list[list[str]]  # per sample, the sets (attack/threat_model/source) that fooled the target
    sizes: dict[str, np.ndarray]  # norm -> (N,) size of the first example that fooled the target
    attacks: set[str] = field(default_factory=set)
    covered_by: dict[str, np.ndarray] = field(default_factory=dict)  # threat model -> (N,) bool: its sets covered it


@dataclass
class _Distance:
    """The smallest verified adversarial perturbation of each sample, in one norm, on one target."""

    covered: np.ndarray  # (N,) bool: some minimisation attack's unbounded output exists for the sample
    nearest: np.ndarray  # (N,) the smallest size of an output that fooled the target (inf: none did)
    found_by: list[str]  # per sample, the set that gave it


def _threat(name: str) -> str:
    """The threat model in a set's name, ``attack/threat_model`` (``transfer`` for a set made on another model)."""
    return name.rpartition("/")[2]


def censored_median(sizes: np.ndarray) -> float:
    """Median of distances where inf means "beyond every size tried": inf when half or more are censored."""
    return float(np.median(sizes)) if sizes.size else math.nan


class WorstCase:
    """Collects every set's per-sample outcome on every target (``add``), then gives one row per
    (target, norm, epsilon) with the per-sample worst case (``rows``) and who found it (``attribution``)."""

    def __init__(self, clean_correct: dict[ModelId, np.ndarray]) -> None:
        self.clean = clean_correct
        self.budgets: dict[tuple[ModelId, str, float], _Budget] = {}
        self.distances: dict[tuple[ModelId, str], _Distance] = {}
        # Per (target, norm, set name): each sample's verified distance from that set alone (inf: not
        # fooled; nan: not covered), so two models can be compared under the same attack.
        self.by_set: dict[tuple[ModelId, str, str], np.ndarray] = {}

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
        n = len(self.clean[target])
        if not math.isfinite(epsilon):
            # A minimisation attack's unbounded output: a bound on each fooled sample's boundary distance.
            distance = self.distances.setdefault(
                (target, norm), _Distance(np.zeros(n, dtype=bool), np.full(n, np.inf), [""] * n)
            )
            distance.covered[index] = True
            fooled = ~correct & self.clean[target][index]
            own = self.by_set.setdefault((target, norm, name), np.full(n, np.nan))
            own[index] = np.where(fooled, np.asarray(sizes[norm], dtype=np.float64), np.inf)
            for position in np.flatnonzero(fooled):
                i, size = index[position], float(sizes[norm][position])
                if size < distance.nearest[i]:
                    distance.nearest[i], distance.found_by[i] = size, name
            return
        budget = self.budgets.setdefault(
            (target, norm, epsilon),
            _Budget(
                np.zeros(n, dtype=bool),
                [[] for _ in range(n)],
                {k: np.full(n, np.nan, dtype=np.float32) for k in NORMS},
            ),
        )
        budget.covered[index] = True
        budget.covered_by.setdefault(_threat(name), np.zeros(n, dtype=bool))[index] = True
        budget.attacks.add(name)
        for position, i in enumerate(index):
            if not correct[position]:
                if not budget.broken_by[i]:
                    for k in NORMS:
                        budget.sizes[k][i] = sizes[k][position]
                budget.broken_by[i].append(name)

    def robust(self, target: ModelId, norm: str, epsilon: float) -> np.ndarray:
        """(N,) bool: the target gets the sample right clean and no set at this budget fooled it."""
        budget = self.budgets[(target, norm, epsilon)]
        broken = np.array([bool(b) for b in budget.broken_by], dtype=bool)
        return self.clean[target] & ~broken

    def rows(self) -> list[Result]:
        """One worst-case row per (target, norm, epsilon), over the samples some set covered, a quantized
        target's paired with its float parent's worst case; then per (target, norm) the nearest verified
        boundary distance at epsilon inf (``{norm}_*_success``)."""
        out = []
        for (target, norm, epsilon), budget in sorted(self.budgets.items(), key=lambda kv: (str(kv[0][0]), kv[0][1:])):
            rows = np.flatnonzero(budget.covered)
            clean = self.clean[target][rows]
            broken = np.array([bool(budget.broken_by[i]) for i in rows], dtype=bool)
            row = Result.score(
                correct=clean & ~broken,
                clean=clean,
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
            parent = self.budgets.get((target.parent, norm, epsilon))
            if target.quantizer is not None and parent is not None:
                # Quantization's effect on the worst case, paired on the samples both worst cases cover.
                both = budget.covered & parent.covered
                row = paired(
                    row,
                    target.parent,
                    self.robust(target.parent, norm, epsilon)[both],
                    self.robust(target, norm, epsilon)[both],
                )
            out.append(row)
        for (target, norm), distance in sorted(self.distances.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
            rows = np.flatnonzero(distance.covered)
            clean = self.clean[target][rows]
            found = np.isfinite(distance.nearest[rows])
            nearest = np.where(found, distance.nearest[rows], np.nan).astype(np.float32)
            out.append(
                Result.score(
                    correct=clean & ~found,
                    clean=clean,
                    attackable=clean,
                    sizes={k: nearest if k == norm else np.full(len(rows), np.nan, np.float32) for k in NORMS},
                    attack=ATTACK,
                    norm=norm,
                    epsilon=math.inf,
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

    def boundary(self) -> dict[str, dict[str, object]]:
        """Per ``target/norm``: the nearest verified distance per sample summarised over the samples the
        target gets right clean: how many an attack moved across, the median of those, the censored median
        over all of them, and which sets found the nearest examples."""
        out: dict[str, dict[str, object]] = {}
        for (target, norm), distance in sorted(self.distances.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
            rows = np.flatnonzero(distance.covered & self.clean[target])
            nearest = distance.nearest[rows]
            found = np.isfinite(nearest)
            out[f"{target}/{norm}"] = {
                "attackable": int(rows.size),
                "found": int(found.sum()),
                "median_found": censored_median(nearest[found]),
                "median_censored": censored_median(nearest),
                "found_by": dict(sorted(Counter(distance.found_by[i] for i in rows[found]).items())),
            }
        return out

    def by_threat(self) -> dict[str, dict[str, dict[str, int]]]:
        """Per ``target/norm/eps`` and threat model (``transfer``: sets made on another model), the worst case
        over that threat model's sets alone: the samples they covered (n), those the target gets right clean,
        and those none of them broke (robust accuracy is robust / n, as in the worst-case rows)."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for (target, norm, epsilon), budget in sorted(self.budgets.items(), key=lambda kv: (str(kv[0][0]), kv[0][1:])):
            per_threat = {}
            for threat, covered in sorted(budget.covered_by.items()):
                rows = np.flatnonzero(covered & self.clean[target])
                robust = sum(all(_threat(name) != threat for name in budget.broken_by[i]) for i in rows)
                per_threat[threat] = {"n": int(covered.sum()), "attackable": int(rows.size), "robust": int(robust)}
            out[f"{target}/{norm}/eps={epsilon:g}"] = per_threat
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
