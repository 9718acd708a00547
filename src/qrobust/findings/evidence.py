"""Verdicts on the literature's claims: one primary hypothesis per claim, tested per condition, with the
family-wise error rate of each claim held at ``findings.alpha``.

A claim's hypothesis names its quantity (for example the share of the float model's successful
adversarial examples that also fool the quantized runtime), the direction the paper puts it in, and the
test on shared samples (``qrobust.findings.tests``). ``findings.claims.<key>`` gives the boundary the
paper's words draw and the smallest effect beyond it that counts, with those words as the reason. Each
condition the claim is made under (a quantized model at a bit width, an epsilon, a defense) gets:

- *holds* when Holm's adjusted p-value of "effect <= 0" is at most alpha;
- *does not hold* when Holm's adjusted p-value of "effect >= delta" is: every effect that counts is ruled out;
- *inconclusive* otherwise, and *underpowered* when the test could not find an effect of ``delta`` 80% of
  the time at this n (it names the n that would).

The placebo quantizer (16 bits, numerically the float model) forms a family of its own: its verdicts are
shown as a negative control and never count for the claim. A claim that asserts an effect of
quantization must not hold on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from qrobust.findings.replicates import across_seeds, between_seeds
from qrobust.findings.tests import Test, holm
from qrobust.pipeline.model_id import ModelId
from qrobust.settings.findings import Threshold

POWER_TARGET = 0.8


class Verdict(Enum):
    HOLDS = "holds"
    FAILS = "does not hold"
    INCONCLUSIVE = "inconclusive"
    UNDERPOWERED = "inconclusive: underpowered"
    MIXED = "depends on the condition"
    UNTESTED = "not tested"


@dataclass(frozen=True)
class Condition:
    """One condition a claim is made under, its primary test, and the numbers beside it."""

    label: str
    group: str  # what the condition varies in the paper's terms (bit width, epsilon, defense)
    test: Test
    detail: tuple[str, ...] = ()
    placebo: bool = False
    seed: int | None = None  # a replicate's training seed (None: the study's); replicates share the label
    seeds: int = 1  # after pooling: how many seeds the test reads (qrobust.findings.replicates)
    unit: str = ""  # what replicates share their between-seed variance with: the architecture


@dataclass(frozen=True)
class Judged:
    condition: Condition
    p_holds: float  # Holm-adjusted
    p_fails: float
    power: float
    n_needed: int  # for an underpowered condition: the n at which the power would reach 80%
    verdict: Verdict

    def record(self) -> dict[str, Any]:
        t = self.condition.test
        return {
            "condition": self.condition.label,
            "group": self.condition.group,
            "value": _num(t.value),
            "effect": _num(t.effect),
            "low": _num(t.low),
            "high": _num(t.high),
            "n": t.n,
            "seeds": self.condition.seeds,
            "p_holds": _num(t.p_holds),
            "p_fails": _num(t.p_fails),
            "adjusted_p_holds": _num(self.p_holds),
            "adjusted_p_fails": _num(self.p_fails),
            "power": _num(self.power),
            "n_needed": self.n_needed,
            "verdict": self.verdict.value,
            "detail": list(self.condition.detail),
        }


def _num(v: float) -> float | None:
    return round(float(v), 6) if v == v and abs(v) != float("inf") else None


def judge_family(conditions: Sequence[Condition], alpha: float) -> list[Judged]:
    """Holm over the family, in both directions. Each test's power is taken at Holm's first level,
    alpha / m: never above what Holm gives, so "underpowered" errs towards saying so."""
    m = len(conditions)
    if m == 0:
        return []
    holds = holm([c.test.p_holds for c in conditions])
    fails = holm([c.test.p_fails for c in conditions])
    out = []
    for c, ph, pf in zip(conditions, holds, fails, strict=True):
        power = c.test.power(alpha / m)
        if c.test.n == 0:
            verdict = Verdict.UNTESTED
        elif ph <= alpha:
            verdict = Verdict.HOLDS
        elif pf <= alpha:
            verdict = Verdict.FAILS
        elif power < POWER_TARGET:
            verdict = Verdict.UNDERPOWERED
        else:
            verdict = Verdict.INCONCLUSIVE
        needed = c.test.n_needed(alpha / m) if verdict is Verdict.UNDERPOWERED else 0
        out.append(Judged(c, ph, pf, power, needed, verdict))
    return out


def overall(judged: Sequence[Judged]) -> Verdict:
    """The claim's verdict over its (non-placebo) conditions."""
    verdicts = {j.verdict for j in judged} - {Verdict.UNTESTED}
    if not verdicts:
        return Verdict.UNTESTED
    if verdicts == {Verdict.HOLDS}:
        return Verdict.HOLDS
    if verdicts == {Verdict.FAILS}:
        return Verdict.FAILS
    if Verdict.HOLDS in verdicts or Verdict.FAILS in verdicts:
        return Verdict.MIXED
    return Verdict.UNDERPOWERED if Verdict.UNDERPOWERED in verdicts else Verdict.INCONCLUSIVE


@dataclass(frozen=True)
class Scope:
    """What the claims read: the study's models, the headline budget, and the records of evaluate
    (``pairs``), analyse (``analysis``) and the defense study (``defenses``)."""

    floats: tuple[ModelId, ...]
    quantizers: tuple[str, ...]
    placebos: tuple[str, ...]  # quantizers that are negative controls
    bits: Mapping[str, str]  # quantizer -> its widths, as the report names them
    headline: float  # the headline epsilon (Linf)
    defense_epsilons: tuple[float, ...]
    preprocessors: tuple[str, ...]
    ensembles: Mapping[str, tuple[str, ...]]  # ensemble defense -> its members' precisions
    recipes: tuple[str, ...]
    dq_recipe: str | None
    defended: Mapping[tuple[str, str, float], Any] = field(
        default_factory=dict
    )  # (defense, target, eps) -> worst-case row
    pairs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    analysis: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # float model -> analyse's record
    defenses: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # defense -> its metrics

    replicate_quantizers: tuple[str, ...] = ()  # a replicate's quantizers (train.seeds)
    sweep: tuple[ModelId, ...] = ()  # the bit-width sweep's quantized models, the native 8-bit one included
    evasion: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # evaluate's reports/evasion.json

    def quantized(self) -> list[tuple[ModelId, ModelId]]:
        """(float model, quantized model) of every deployed pair, replicates included."""
        return [
            (f, f.quantized(q))
            for f in self.floats
            for q in self.quantizers
            if f.seed is None or q in self.replicate_quantizers
        ]

    def group(self, model: ModelId) -> str:
        return self.bits.get(model.quantizer or "", "float")

    def is_placebo(self, model: ModelId) -> bool:
        return model.quantizer in self.placebos


@dataclass(frozen=True)
class Hypothesis:
    """A claim's primary hypothesis: what is measured, which way the paper says it goes, the test, and
    whether it asserts an effect of quantization (then it must not hold on the placebo)."""

    quantity: str
    direction: int  # +1: the quantity lies above the boundary; -1: below
    test: str
    asserts_effect: bool


Conditions = Callable[[Scope, Threshold], list[Condition]]


@dataclass(frozen=True)
class ClaimEntry:
    key: str
    claim: str
    source: str
    hypothesis: Hypothesis
    conditions: Conditions


@dataclass(frozen=True)
class Finding:
    entry: ClaimEntry
    threshold: Threshold
    alpha: float
    judged: tuple[Judged, ...]
    placebo: tuple[Judged, ...]

    @property
    def verdict(self) -> Verdict:
        return overall(self.judged)

    def placebo_holds(self) -> bool:
        return any(j.verdict is Verdict.HOLDS for j in self.placebo)

    def record(self) -> dict[str, Any]:
        h, t = self.entry.hypothesis, self.threshold
        return {
            "claim": self.entry.claim,
            "source": self.entry.source,
            "verdict": self.verdict.value,
            "quantity": h.quantity,
            "direction": "above" if h.direction > 0 else "below",
            "boundary": t.boundary,
            "delta": t.delta,
            "reason": t.reason,
            "test": h.test,
            "alpha": self.alpha,
            "asserts_effect": h.asserts_effect,
            "conditions": [j.record() for j in self.judged],
            "placebo": [j.record() for j in self.placebo],
            "counts": {v.value: sum(j.verdict is v for j in self.judged) for v in Verdict if v.value in _PER_CONDITION},
        }


_PER_CONDITION = {
    v.value for v in (Verdict.HOLDS, Verdict.FAILS, Verdict.INCONCLUSIVE, Verdict.UNDERPOWERED, Verdict.UNTESTED)
}


def pool_seeds(conditions: Sequence[Condition], delta: float) -> list[Condition]:
    """A family's conditions with each condition's replicates (the same label at other seeds) read as
    one: ``across_seeds`` with the between-seed variance pooled over the replicated conditions of the same
    architecture (``Condition.unit``). Conditions of an architecture without replicates borrow the
    variance pooled over the whole family; when no condition of the family has two seeds with data, each
    label keeps the exact test of its one measured seed (or its first, when none has data)."""
    groups: dict[str, list[Condition]] = {}
    for c in conditions:
        groups.setdefault(c.label, []).append(c)
    family = between_seeds([[c.test for c in found] for found in groups.values()])
    if not family.measured:
        # No condition has two seeds with data: each label keeps its one measured seed's exact test.
        return [next((c for c in found if c.test.n), found[0]) for found in groups.values()]
    per_unit = {
        unit: between_seeds([[c.test for c in found] for found in groups.values() if found[0].unit == unit])
        for unit in {found[0].unit for found in groups.values()}
    }
    out = []
    for found in groups.values():
        found.sort(key=lambda c: -1 if c.seed is None else c.seed)
        own = per_unit[found[0].unit]
        between = own if own.measured else family
        test = across_seeds([c.test for c in found], between, delta)
        seeds = ", ".join(
            f"{'study seed' if c.seed is None else f'seed {c.seed}'} {_signed(c.test.effect)} (n={c.test.n})"
            for c in found
        )
        sd = f"{100 * math.sqrt(between.variance):.1f} points ({between.df} df)"
        if len(found) > 1:
            note = f"training randomness: effect per seed {seeds}; between-seed sd {sd}, pooled over its arch"
        elif own.measured:
            note = f"one seed: borrows its arch's between-seed sd {sd}"
        else:
            note = f"one seed: its arch has no replicates; borrows the claim's between-seed sd {sd}, from other archs"
        out.append(replace(found[0], test=test, detail=(*found[0].detail, note), seeds=len(found)))
    return out


def _signed(effect: float) -> str:
    return f"{100 * effect:+.1f}" if math.isfinite(effect) else "n/a"


def judge_claim(entry: ClaimEntry, scope: Scope, threshold: Threshold, alpha: float) -> Finding:
    """Each family's conditions with their replicates pooled across seeds, then judged under Holm."""
    conditions = entry.conditions(scope, threshold)
    real = pool_seeds([c for c in conditions if not c.placebo], threshold.delta)
    control = pool_seeds([c for c in conditions if c.placebo], threshold.delta)
    return Finding(entry, threshold, alpha, tuple(judge_family(real, alpha)), tuple(judge_family(control, alpha)))
