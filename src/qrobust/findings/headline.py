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

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import Result
from qrobust.findings.replicates import Spread, interval_se, spread
from qrobust.pipeline.model_id import ModelId

if TYPE_CHECKING:
    from qrobust.settings.study import Study

HEADLINE_RULE = (
    "the per-sample worst case at the headline epsilon: a sample counts as robust only if the deployed model "
    "classifies it correctly clean and under every attack of the headline norm, every threat model that "
    "reached it (white-box, straight-through, black-box and transfer sets); undefended models"
)


def headline_budget(norm: str, grid: Sequence[float]) -> tuple[str, float]:
    """The middle of an epsilon grid (the lower middle of an even one, where models still differ)."""
    finite = sorted(e for e in grid if math.isfinite(e))
    return norm, finite[(len(finite) - 1) // 2]


def study_budget(study: Study) -> tuple[str, float]:
    """The headline budget of a study: the middle of the grid of the attack its white-box figure draws
    (report.curves.white_float; the defense study's attack when it draws none)."""
    from qrobust.attacks.catalogue import ATTACKS

    curve = study.report.curves.get(ThreatModel.WHITE_FLOAT, study.defend.attack)
    return headline_budget(ATTACKS.get(curve).norm.value, study.attack.get(curve).epsilons)


@dataclass(frozen=True)
class Headline:
    model: str
    clean: Result
    strongest: Result | None  # the per-sample worst case; None when no attack of the headline norm reached it
    reference: Result | None = None  # the reference attack on the model itself (the suite's PGD), on its own
    own_n: int = 0  # the most samples any attack made on the model itself covered at this budget
    # Attacks made on the float parent itself at this budget but never on this quantized model itself: its
    # worst case met them by transfer only, so 'vs float' compares attacks of unequal strength.
    float_only: tuple[str, ...] = ()

    @property
    def upper_bound(self) -> bool:
        """Some of the worst case's samples met only sets made on other models (transfer): for those it
        bounds robustness from above, and a comparison with a model attacked directly on all of them leans
        towards this one."""
        return self.strongest is not None and self.own_n < self.strongest.n


def headlines(rows: Iterable[Result], norm: str, epsilon: float, reference: str | None = None) -> list[Headline]:
    """Per undefended model (in the rows' order), its clean row, its worst-case row at (norm, epsilon)
    and the lowest row of the ``reference`` attack made on the model itself. Rows written before the
    worst case existed have none: then the strongest single set counts (ties to the attack, then the
    source, first in name order)."""
    plain = [r for r in rows if r.defense == "none"]
    clean = {r.target: r for r in plain if r.threat_model == ThreatModel.CLEAN.value}
    attacked: dict[str, list[Result]] = {}
    for r in plain:
        if r.norm == norm and r.epsilon == epsilon and r.threat_model != ThreatModel.CLEAN.value:
            attacked.setdefault(r.target, []).append(r)

    def worst(model: str) -> Result | None:
        found = attacked.get(model, [])
        case = [r for r in found if r.threat_model == ThreatModel.WORST_CASE.value]
        return (
            case[0]
            if case
            else min(found, key=lambda r: (r.robust_accuracy, r.attack, r.source, r.threat_model), default=None)
        )

    def own(model: str) -> Result | None:
        mine = [r for r in attacked.get(model, []) if r.attack == reference and r.source == model]
        return min(mine, key=lambda r: (r.robust_accuracy, r.threat_model), default=None)

    def made_on(model: str) -> list[Result]:
        """The rows of sets made on ``model`` itself (no transfer, no worst case)."""
        return [
            r for r in attacked.get(model, []) if r.source == model and r.threat_model != ThreatModel.WORST_CASE.value
        ]

    def own_n(model: str) -> int:
        return max((r.n for r in made_on(model)), default=0)

    def float_only(model: str) -> tuple[str, ...]:
        parent = str(ModelId.parse(model).parent)
        if parent == model:
            return ()
        return tuple(sorted({r.attack for r in made_on(parent)} - {r.attack for r in made_on(model)}))

    return [
        Headline(model, row, worst(model), own(model), own_n(model), float_only(model)) for model, row in clean.items()
    ]


def seed_spread(found: Sequence[Headline]) -> dict[str, Spread]:
    """Per model of the study's seed with replicates: its worst-case robust accuracy across seeds (each
    seed's figure, their sd, and the interval with training randomness; ``qrobust.findings.replicates``)."""
    worst = {h.model: h.strongest for h in found if h.strongest is not None}
    family: dict[str, list[Result]] = {}
    for model, row in worst.items():
        family.setdefault(str(ModelId.parse(model).unseeded), []).append(row)
    out = {}
    for model, rows in family.items():
        if len(rows) > 1 and model in worst:
            errors = [interval_se(r.robust_accuracy_low, r.robust_accuracy_high) for r in rows]
            out[model] = spread([r.robust_accuracy for r in rows], errors, min(r.n for r in rows))
    return out


def headline_metrics(
    found: Sequence[Headline], norm: str, epsilon: float, verdicts: Mapping[str, str]
) -> dict[str, dict[str, float | str]]:
    """The DVC metrics file: ``clean.<model>``, ``robust_<norm>_<eps>.<model>`` (nan, written as null,
    where no attack reached the model) and ``verdict.<claim>``; the models of the study's seed (the report
    gives the replicates' spread)."""
    found = [h for h in found if ModelId.parse(h.model).seed is None]
    return {
        "clean": {h.model: round(h.clean.robust_accuracy, 4) for h in found},
        f"robust_{norm}_{epsilon:g}": {
            h.model: round(h.strongest.robust_accuracy, 4) if h.strongest else math.nan for h in found
        },
        "verdict": dict(verdicts),
    }
