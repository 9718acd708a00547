"""Headline metrics: the few numbers `dvc exp show` and `dvc metrics diff` show by default.

Per model of the attack suite, its clean accuracy and the robust accuracy the strongest attack left at the
headline budget; per claim of the findings, its verdict. The full tables stay in CSV and JSON files (and
DVC plots) that ``dvc metrics show <file>`` reads on request.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qrobust.results import Result, ThreatModel

if TYPE_CHECKING:
    from qrobust.settings import Study

HEADLINE_RULE = (
    "the lowest robust accuracy any attack of the headline norm left at the headline epsilon, over every "
    "threat model that reached the model (white-box, straight-through, black-box and transfer sets); "
    "undefended models, deployed runtimes"
)


def headline_budget(norm: str, grid: Sequence[float]) -> tuple[str, float]:
    """The middle of an epsilon grid (the lower middle of an even one, where models still differ)."""
    finite = sorted(e for e in grid if math.isfinite(e))
    return norm, finite[(len(finite) - 1) // 2]


def study_budget(study: Study) -> tuple[str, float]:
    """The headline budget of a study: the middle of the grid of the attack its white-box figure draws
    (report.curves.white_float; the defense study's attack when it draws none)."""
    from qrobust.attacks import ATTACKS

    curve = study.report.curves.get(ThreatModel.WHITE_FLOAT, study.defend.attack)
    return headline_budget(ATTACKS.get(curve).norm.value, study.attack.get(curve).epsilons)


@dataclass(frozen=True)
class Headline:
    model: str
    clean: Result
    strongest: Result | None  # None when no attack of the headline norm reached this epsilon


def headlines(rows: Iterable[Result], norm: str, epsilon: float) -> list[Headline]:
    """Per undefended model (in the rows' order), its clean row and its strongest attack's row at
    (norm, epsilon); ties go to the attack, then the source, first in name order, so the pick is stable."""
    plain = [r for r in rows if r.defense == "none"]
    clean = {r.target: r for r in plain if r.threat_model == ThreatModel.CLEAN.value}
    attacked: dict[str, list[Result]] = {}
    for r in plain:
        if r.norm == norm and r.epsilon == epsilon and r.threat_model != ThreatModel.CLEAN.value:
            attacked.setdefault(r.target, []).append(r)
    return [
        Headline(
            model,
            row,
            min(attacked[model], key=lambda r: (r.robust_accuracy, r.attack, r.source, r.threat_model))
            if model in attacked
            else None,
        )
        for model, row in clean.items()
    ]


def headline_metrics(
    found: Sequence[Headline], norm: str, epsilon: float, verdicts: Mapping[str, str]
) -> dict[str, dict[str, float | str]]:
    """The DVC metrics file: ``clean.<model>``, ``robust_<norm>_<eps>.<model>`` (nan, written as null,
    where no attack reached the model) and ``verdict.<claim>``."""
    return {
        "clean": {h.model: round(h.clean.robust_accuracy, 4) for h in found},
        f"robust_{norm}_{epsilon:g}": {
            h.model: round(h.strongest.robust_accuracy, 4) if h.strongest else math.nan for h in found
        },
        "verdict": dict(verdicts),
    }
