"""Cross-evaluation: every adversarial set scored on every target's deployed runtime, per defense.

A set scored on the model it was made on carries the threat model it was made under; scored on
any other target it is a transfer row. Either way the prediction comes from the deployed runtime
(never from a twin), behind the defense of the row.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from qrobust.defenses import Defense
from qrobust.io import load_npz
from qrobust.results import NORMS, Result, ThreatModel


class Runtime(Protocol):
    def predict(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Target:
    name: str
    arch: str
    precision: str  # "float" or the quantizer's name
    runtime: Runtime


@dataclass(frozen=True)
class AdversarialSet:
    attack: str
    norm: str
    threat_model: ThreatModel  # how the set was made on its source
    source: str  # the deployed model the set was made on (or on whose twin)
    index: np.ndarray  # (N,) positions in the evaluation subset
    labels: np.ndarray  # (N,) their labels
    epsilons: tuple[float, ...]
    x_adv: np.ndarray  # (len(epsilons), N, C, H, W)
    sizes: Mapping[str, np.ndarray]  # norm -> (len(epsilons), N) perturbation sizes
    queries_per_sample: float

    @classmethod
    def load(cls, path: Path) -> AdversarialSet:
        data = load_npz(path)
        return cls(
            attack=str(data["attack"]),
            norm=str(data["norm"]),
            threat_model=ThreatModel(str(data["threat_model"])),
            source=str(data["source"]),
            index=data["index"],
            labels=data["y"],
            epsilons=tuple(data["epsilons"].tolist()),
            x_adv=data["x_adv"],
            sizes={norm: data[f"norm_{norm}"] for norm in NORMS},
            queries_per_sample=float(data["queries_per_sample"]),
        )


def cross_evaluate(
    targets: Sequence[Target],
    sets: Sequence[AdversarialSet],
    x: np.ndarray,
    y: np.ndarray,
    defenses: Mapping[str, Defense],
    defended_attacks: Collection[str],
) -> list[Result]:
    """Clean rows (every target x defense), then one row per (set, epsilon, target, defense).

    Every set is scored without a defense; sets of ``defended_attacks`` also behind every defense.
    """
    by_name = {t.name: t for t in targets}
    clean_correct = {
        (t.name, d): t.runtime.predict(defense(x)) == y for t in targets for d, defense in defenses.items()
    }
    zeros = {norm: np.zeros(len(y), dtype=np.float32) for norm in NORMS}
    rows = [
        Result.score(
            correct=clean_correct[(t.name, d)],
            attackable=np.zeros(len(y), dtype=bool),
            sizes=zeros,
            attack="none",
            norm="none",
            epsilon=0.0,
            threat_model=ThreatModel.CLEAN.value,
            source_threat_model=ThreatModel.CLEAN.value,
            source=t.name,
            target=t.name,
            target_arch=t.arch,
            target_precision=t.precision,
            defense=d,
        )
        for t in targets
        for d in defenses
    ]
    for adv in sets:
        if adv.source not in by_name:
            raise ValueError(f"adversarial set from {adv.source!r} has no matching target; targets: {sorted(by_name)}")
    for d, defense in defenses.items():
        scored = [adv for adv in sets if d == "none" or adv.attack in defended_attacks]
        if not scored:
            continue
        # One runtime call per target over every set: per-call overhead (INC's eager graph) dominates otherwise.
        stack = defense(np.concatenate([adv.x_adv.reshape(-1, *adv.x_adv.shape[2:]) for adv in scored]))
        bounds = np.cumsum([0, *(adv.x_adv.shape[0] * adv.x_adv.shape[1] for adv in scored)])
        for t in targets:
            predicted = t.runtime.predict(stack)
            for adv, lo, hi in zip(scored, bounds[:-1], bounds[1:], strict=True):
                rows += _score_set(adv, t, d, predicted[lo:hi].reshape(len(adv.epsilons), -1), y, clean_correct)
    return rows


def _score_set(
    adv: AdversarialSet,
    t: Target,
    defense: str,
    predicted: np.ndarray,
    y: np.ndarray,
    clean_correct: Mapping[tuple[str, str], np.ndarray],
) -> list[Result]:
    own = t.name == adv.source
    target_correct = clean_correct[(t.name, defense)][adv.index]
    # Transfer counts only samples both models got right (Bernhard et al. 2019).
    attackable = target_correct if own else target_correct & clean_correct[(adv.source, "none")][adv.index]
    labels = y[adv.index]
    return [
        Result.score(
            correct=predicted[e] == labels,
            attackable=attackable,
            sizes={norm: adv.sizes[norm][e] for norm in NORMS},
            queries_per_sample=adv.queries_per_sample if own else math.nan,
            attack=adv.attack,
            norm=adv.norm,
            epsilon=float(eps),
            threat_model=(adv.threat_model if own else ThreatModel.TRANSFER).value,
            source_threat_model=adv.threat_model.value,
            source=adv.source,
            target=t.name,
            target_arch=t.arch,
            target_precision=t.precision,
            defense=defense,
        )
        for e, eps in enumerate(adv.epsilons)
    ]


def flat_metrics(rows: Sequence[Result]) -> dict[str, float]:
    """Flat JSON for `dvc metrics`: clean accuracy per target and defense; robust accuracy of every
    model under its own attacks (white-box or black-box), and of each quantized model against sets
    made white-box on its float parent (transfer); the distance to the decision boundary."""
    metrics: dict[str, float] = {}
    for r in rows:
        parent = r.target.split(".", 1)[0]
        if r.threat_model == ThreatModel.CLEAN.value:
            metrics[f"clean_accuracy/{r.target}/{r.defense}"] = round(r.robust_accuracy, 4)
            continue
        own = r.source == r.target
        from_parent = r.source == parent and r.source_threat_model == ThreatModel.WHITE_FLOAT.value
        if not (own or from_parent):
            continue
        if math.isinf(r.epsilon):
            distance = getattr(r, f"{r.norm}_median_success")
            if own and r.defense == "none" and not math.isnan(distance):
                metrics[f"boundary_distance/{r.norm}/{r.attack}/{r.target}"] = round(distance, 4)
            continue
        metrics[f"robust_accuracy/{r.threat_model}/{r.attack}/eps={r.epsilon:g}/{r.target}/{r.defense}"] = round(
            r.robust_accuracy, 4
        )
    return metrics
