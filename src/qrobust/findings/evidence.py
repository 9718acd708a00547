"""Verdicts on the literature's claims, computed from this run's result rows by one written rule per claim.

Every claim is reduced to comparisons between two robust (or clean) accuracies, each a rate with its n
and its 95% Wilson interval from the result rows. A comparison *separates* when the two intervals do not
overlap; only separated comparisons count as evidence. Each claim's rule turns its comparisons into a
verdict, and the rule's text travels with the verdict into ``findings.json`` and the report, beside the
numbers. Claims that rest on mechanisms measured inside the models (quantization shift, gradient
misalignment, amplification, boundary distances, transfer retention) read the analysis stage's records
and the defense study's metrics: proportions with Wilson intervals against one half, and differences
of medians with bootstrap intervals against zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import Result, wilson_interval
from qrobust.pipeline.model_id import ModelId


class Verdict(Enum):
    HOLDS = "holds"
    FAILS = "does not hold"
    INCONCLUSIVE = "inconclusive"


class Outcome(Enum):
    SUPPORTS = "supports"
    CONTRADICTS = "contradicts"
    UNDECIDED = "undecided"  # the intervals overlap, or the rows are missing


@dataclass(frozen=True)
class Rate:
    """A robust or clean accuracy as the result rows give it."""

    label: str
    value: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, label: str, row: Result) -> Rate:
        return cls(label, row.robust_accuracy, row.robust_accuracy_low, row.robust_accuracy_high, row.samples)

    @classmethod
    def success(cls, label: str, row: Result) -> Rate:
        """The attack's success rate, over the samples it could flip (for transfer: both models right)."""
        return cls(label, row.success_rate, row.success_rate_low, row.success_rate_high, row.n_attackable)

    def __str__(self) -> str:
        return f"{self.label} {100 * self.value:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}] n={self.n}"


@dataclass(frozen=True)
class Interval:
    """A difference (in its own unit) with its 95% interval: the bootstrap ones of the analysis."""

    label: str
    value: float
    low: float
    high: float
    n: str

    def __str__(self) -> str:
        return f"{self.label} {self.value:+.3f} [{self.low:+.3f}, {self.high:+.3f}] n={self.n}"


def proportion(label: str, count: Mapping[str, Any]) -> Rate:
    """A proportion the analysis recorded as {rate, k, n}, with its Wilson interval."""
    k, n = int(count["k"]), int(count["n"])
    low, high = wilson_interval(k, n)
    return Rate(label, k / n if n else math.nan, low, high, n)


def above(a: Rate, b: Rate) -> bool:
    """``a`` is above ``b`` with non-overlapping 95% intervals."""
    return a.low > b.high


@dataclass(frozen=True)
class Evidence:
    """One check behind a verdict: what was compared, the numbers, and how it came out."""

    label: str
    outcome: Outcome
    rates: tuple[Rate | Interval, ...]

    def __str__(self) -> str:
        return f"{self.label}: {'; '.join(map(str, self.rates))} -> {self.outcome.value}"


def claimed_above(label: str, a: Rate, b: Rate) -> Evidence:
    """The claim says ``a`` lies above ``b``."""
    outcome = Outcome.SUPPORTS if above(a, b) else Outcome.CONTRADICTS if above(b, a) else Outcome.UNDECIDED
    return Evidence(label, outcome, (a, b))


def claimed_majority(label: str, share: Rate) -> Evidence:
    """The claim says ``share`` (a per-sample proportion) is above one half."""
    return claimed_above(label, share, Rate("one half", 0.5, 0.5, 0.5, share.n))


def claimed_positive(label: str, what: str, d: Mapping[str, Any]) -> Evidence | None:
    """The claim says the difference ``d`` (the analysis's bootstrap record) is above zero; None when
    either side had no samples."""
    if not d or d["n_a"] == 0 or d["n_b"] == 0:
        return None
    gap = Interval(what, d["difference"], d["low"], d["high"], f"{d['n_b']}/{d['n_a']}")
    outcome = Outcome.SUPPORTS if d["low"] > 0 else Outcome.CONTRADICTS if d["high"] < 0 else Outcome.UNDECIDED
    return Evidence(label, outcome, (gap,))


AGGREGATE_RULE = (
    "holds when at least one check separates (95% intervals disjoint) in the claimed direction and none against "
    "it; does not hold in the reverse case; inconclusive when no check separates or checks separate both ways"
)


def decide(evidence: Sequence[Evidence]) -> Verdict:
    outcomes = {e.outcome for e in evidence}
    if Outcome.SUPPORTS in outcomes and Outcome.CONTRADICTS not in outcomes:
        return Verdict.HOLDS
    if Outcome.CONTRADICTS in outcomes and Outcome.SUPPORTS not in outcomes:
        return Verdict.FAILS
    return Verdict.INCONCLUSIVE


@dataclass(frozen=True)
class Finding:
    key: str
    claim: str
    source: str
    rule: str
    verdict: Verdict
    evidence: tuple[Evidence, ...]

    def count(self, outcome: Outcome) -> int:
        return sum(e.outcome is outcome for e in self.evidence)

    def record(self) -> dict[str, object]:
        return {
            "claim": self.claim,
            "source": self.source,
            "verdict": self.verdict.value,
            "rule": f"{self.rule}; {AGGREGATE_RULE}",
            "check_rule": self.rule,
            "checks": len(self.evidence),
            "supporting": self.count(Outcome.SUPPORTS),
            "contradicting": self.count(Outcome.CONTRADICTS),
            "evidence": [str(e) for e in self.evidence],
        }


class Rows:
    """The result rows indexed the way the claims ask for them."""

    def __init__(self, rows: Iterable[Result]) -> None:
        self._by_key: dict[tuple[object, ...], Result] = {}
        for r in rows:
            self._by_key[(r.attack, r.threat_model, r.epsilon, r.source, r.target, r.defense, r.adaptive)] = r

    def own(self, attack: str, threat: ThreatModel, eps: float, model: ModelId) -> Result | None:
        """The attack made on ``model`` under ``threat``, scored on ``model`` itself, undefended."""
        return self._by_key.get((attack, threat.value, eps, str(model), str(model), "none", False))

    def transfer(self, attack: str, eps: float, source: ModelId, target: ModelId) -> Result | None:
        return self._by_key.get((attack, ThreatModel.TRANSFER.value, eps, str(source), str(target), "none", False))

    def clean(self, model: ModelId, defense: str = "none") -> Result | None:
        return self._by_key.get(("none", ThreatModel.CLEAN.value, 0.0, str(model), str(model), defense, False))

    def defended(self, defense: str, target: str, eps: float) -> Result | None:
        """The defended system's worst case over the non-adaptive and the adaptive attack."""
        return next(
            (
                r
                for (_, threat, e, _, t, d, _), r in self._by_key.items()
                if (d, t, e, threat) == (defense, target, eps, ThreatModel.WORST_CASE.value)
            ),
            None,
        )

    def targets(self, defense: str) -> list[str]:
        return sorted({t for (_, _, _, _, t, d, _) in self._by_key if d == defense})

    def epsilons(self, attack: str, threat: ThreatModel) -> list[float]:
        return sorted({e for (a, t, e, *_) in self._by_key if a == attack and t == threat.value and math.isfinite(e)})


@dataclass(frozen=True)
class Scope:
    """What the claims are judged on: the attack, the study's models, and the defense study."""

    attack: str
    floats: tuple[ModelId, ...]
    quantizers: tuple[str, ...]
    defense_epsilons: tuple[float, ...]
    preprocessors: tuple[str, ...]  # defense names of the preprocessing defenses
    ensembles: tuple[str, ...]
    dq_recipe: str | None  # the Defensive Quantization recipe's name, if the defense study trains it
    analysis: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # float model -> analyse's record
    recipes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # train-based defense -> its metrics


Claim = Callable[[Rows, Scope], tuple[Evidence, ...]]


def model_pairs(scope: Scope) -> list[tuple[ModelId, ModelId]]:
    return [(f, f.quantized(q)) for f in scope.floats for q in scope.quantizers]


@dataclass(frozen=True)
class ClaimEntry:
    key: str
    claim: str
    source: str
    rule: str
    checks: Claim
