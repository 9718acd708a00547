"""Cross-evaluation: every adversarial set scored on every target's deployed runtime, per defense."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from qrobust.defenses import Defense
from qrobust.results import Result, ThreatModel


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
    source: str
    attack: str
    norm: str
    epsilons: tuple[float, ...]
    x_adv: np.ndarray  # (len(epsilons), N, C, H, W)
    linf: np.ndarray  # (len(epsilons), N)
    l2: np.ndarray


def cross_evaluate(
    targets: Sequence[Target],
    sets: Sequence[AdversarialSet],
    x: np.ndarray,
    y: np.ndarray,
    defenses: Mapping[str, Defense],
) -> list[Result]:
    """Clean rows first, then one row per (set, epsilon, target, defense)."""
    clean_correct = {
        (t.name, d): t.runtime.predict(defense(x)) == y for t in targets for d, defense in defenses.items()
    }
    zeros = np.zeros(len(y), dtype=np.float32)
    rows = [
        Result.score(
            correct=clean_correct[(t.name, d)],
            attackable=np.zeros(len(y), dtype=bool),
            linf=zeros,
            l2=zeros,
            attack="none",
            norm="none",
            epsilon=0.0,
            threat_model=ThreatModel.CLEAN.value,
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
        if (adv.source, "none") not in clean_correct:
            raise ValueError(
                f"adversarial set from {adv.source!r} has no matching target; targets: {[t.name for t in targets]}"
            )
        source_correct = clean_correct[(adv.source, "none")]
        for e, eps in enumerate(adv.epsilons):
            for t in targets:
                white = t.name == adv.source
                threat = ThreatModel.WHITE_FLOAT if white else ThreatModel.TRANSFER
                for d, defense in defenses.items():
                    attackable = clean_correct[(t.name, d)] if white else clean_correct[(t.name, d)] & source_correct
                    rows.append(
                        Result.score(
                            correct=t.runtime.predict(defense(adv.x_adv[e])) == y,
                            attackable=attackable,
                            linf=adv.linf[e],
                            l2=adv.l2[e],
                            attack=adv.attack,
                            norm=adv.norm,
                            epsilon=float(eps),
                            threat_model=threat.value,
                            source=adv.source,
                            target=t.name,
                            target_arch=t.arch,
                            target_precision=t.precision,
                            defense=d,
                        )
                    )
    return rows


def flat_metrics(rows: Sequence[Result]) -> dict[str, float]:
    """Flat JSON for `dvc metrics`: clean accuracy per target and defense, and robust accuracy of each
    target against attacks made on its own float parent (white-box for float, transfer for quantized)."""
    metrics: dict[str, float] = {}
    for r in rows:
        parent = r.target.split(".", 1)[0]
        if r.threat_model == ThreatModel.CLEAN.value:
            metrics[f"clean_accuracy/{r.target}/{r.defense}"] = round(r.robust_accuracy, 4)
        elif r.source == parent:
            metrics[f"robust_accuracy/{r.attack}/eps={r.epsilon:g}/{r.target}/{r.defense}"] = round(
                r.robust_accuracy, 4
            )
    return metrics
