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

from qrobust.core.model_id import FLOAT, ModelId
from qrobust.core.results import Result, ThreatModel, wilson_interval
from qrobust.worstcase import ATTACK as WORST_CASE


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


# ---- looking rows up ------------------------------------------------------------------------------


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


def _white(rows: Rows, attack: str, eps: float, model: ModelId) -> Result | None:
    """The strongest white-box row the suite has on ``model``: white_float on a float model, the
    straight-through twin on a quantized one."""
    threat = ThreatModel.WHITE_FLOAT if model.quantizer is None else ThreatModel.WHITE_QNN_STE
    return rows.own(attack, threat, eps, model)


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


def _pairs(scope: Scope) -> list[tuple[ModelId, ModelId]]:
    return [(f, f.quantized(q)) for f in scope.floats for q in scope.quantizers]


def _masking(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    evidence = []
    for float_model, quant in _pairs(scope):
        for eps in rows.epsilons(scope.attack, ThreatModel.WHITE_QNN_EXACT):
            exact = rows.own(scope.attack, ThreatModel.WHITE_QNN_EXACT, eps, quant)
            ste = rows.own(scope.attack, ThreatModel.WHITE_QNN_STE, eps, quant)
            white = rows.own(scope.attack, ThreatModel.WHITE_FLOAT, eps, float_model)
            if exact is None or ste is None or white is None:
                continue
            evidence.append(
                claimed_above(
                    f"{quant} eps {eps:g}: exact-rounding gradients above straight-through (masking)",
                    Rate.of("exact", exact),
                    Rate.of("ste", ste),
                )
            )
            evidence.append(_no_defense(rows, scope.attack, eps, float_model, quant, (white, ste)))
    return tuple(evidence)


def _no_defense(
    rows: Rows, attack: str, eps: float, float_model: ModelId, quant: ModelId, matched: tuple[Result, Result]
) -> Evidence:
    """Whether ``quant`` is more robust than its float model: only a quantized model separated above it
    contradicts the claim; overlap is neutral.

    Where evaluate wrote a per-sample worst case for both, a defense must show in the worst case and under
    the same attack (``matched``: the float model's white-box set against the quantized model's
    straight-through one). Either alone can mislead: ``attack`` through a twin can be masked, which the
    worst case exposes; and the float model's worst case can hold attacks run on float models only (in the
    default study BIM, MI-FGSM and Linf DeepFool), so the two worst cases can differ by attack strength alone.
    """
    label = f"{quant} eps {eps:g}: float model at least as robust as its quantized model"
    same = (Rate.of(f"float {attack}", matched[0]), Rate.of(f"quantized ste {attack}", matched[1]))
    worst = [rows.own(WORST_CASE, ThreatModel.WORST_CASE, eps, m) for m in (float_model, quant)]
    if worst[0] is None or worst[1] is None:
        return claimed_above(f"{label} ({attack})", *same)
    worst_pair = (Rate.of("float worst case", worst[0]), Rate.of("quantized worst case", worst[1]))
    if above(*worst_pair) or above(*same):
        outcome = Outcome.SUPPORTS
    elif above(worst_pair[1], worst_pair[0]) and above(same[1], same[0]):
        outcome = Outcome.CONTRADICTS
    else:
        outcome = Outcome.UNDECIDED
    return Evidence(f"{label} (worst case and {attack})", outcome, (*worst_pair, *same))


def _transfer(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    """Success rates, not robust accuracies: transfer counts only samples both models classify correctly
    (Bernhard et al. 2019), so a quantized model's lower clean accuracy does not pass for transfer."""
    evidence = []
    for float_model, quant in _pairs(scope):
        for eps in rows.epsilons(scope.attack, ThreatModel.WHITE_FLOAT):
            moved = rows.transfer(scope.attack, eps, float_model, quant)
            white = rows.own(scope.attack, ThreatModel.WHITE_FLOAT, eps, float_model)
            if moved is None or white is None or not moved.n_attackable or not white.n_attackable:
                continue
            evidence.append(
                claimed_above(
                    f"{float_model} white-box sets at eps {eps:g}: success on {float_model} above success on {quant}",
                    Rate.success("on float", white),
                    Rate.success("transferred", moved),
                )
            )
    return tuple(evidence)


def _measured(scope: Scope) -> list[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]]:
    """(float model, quantized model, float record, quantized record) for every analysed pair."""
    out = []
    for float_model, quant in _pairs(scope):
        record = scope.analysis.get(str(float_model))
        if record is not None and str(quant) in record:
            out.append((str(float_model), str(quant), record["float"], record[str(quant)]))
    return out


def _epsilon_keys(record: Mapping[str, Any], prefix: str) -> list[str]:
    """The ``eps=<e>`` tags a record has under ``prefix``, smallest epsilon first."""
    tags = {k[len(prefix) :] for k in record if k.startswith(prefix)}
    return sorted(tags, key=lambda t: float(t.split("=")[1]))


def _transfer_mechanism(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    """Value shift: per sample, the float model's adversarial example moves more activation values across
    a bin edge than same-size noise (share of samples above one half). Misalignment: the examples transfer
    more where the float and straight-through gradients agree (above the median cosine) than where they do not."""
    evidence = []
    for _, quant, _, m in _measured(scope):
        for tag in _epsilon_keys(m, "bin_shift/adversarial_above_noise/"):
            shift = proportion("adversarial shifts more bins than noise", m[f"bin_shift/adversarial_above_noise/{tag}"])
            evidence.append(claimed_majority(f"{quant} {tag}: quantization shift", shift))
        for tag in _epsilon_keys(m, "transfer_success/aligned/"):
            aligned = proportion("aligned half", m[f"transfer_success/aligned/{tag}"])
            misaligned = proportion("misaligned half", m[f"transfer_success/misaligned/{tag}"])
            if aligned.n and misaligned.n:
                evidence.append(
                    claimed_above(f"{quant} {tag}: transfer follows gradient agreement", aligned, misaligned)
                )
    return tuple(evidence)


def _vanishing(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    evidence = []
    for float_model, quant, f, m in _measured(scope):
        if "zero_gradient/exact" not in m or "zero_gradient" not in f:
            continue
        evidence.append(
            claimed_above(
                f"{quant}: samples whose input gradient is all zero, exact-rounding twin vs {float_model}",
                proportion("quantized (exact)", m["zero_gradient/exact"]),
                proportion("float", f["zero_gradient"]),
            )
        )
    return tuple(evidence)


def _boundary(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    checks = (
        claimed_positive(
            f"{quant} vs {float_model}: distance to the decision boundary",
            "median L2 distance, quantized minus float",
            m.get("boundary_distance_l2", {}),
        )
        for float_model, quant, _, m in _measured(scope)
    )
    return tuple(e for e in checks if e is not None)


def _amplification(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    evidence = []
    for float_model, quant, _, m in _measured(scope):
        for tag in _epsilon_keys(m, "output_change/quantized_above_float/"):
            share = proportion("quantized above float", m[f"output_change/quantized_above_float/{tag}"])
            evidence.append(
                claimed_majority(
                    f"{quant} vs {float_model} {tag}: relative change of the logits under the float model's "
                    "adversarial perturbation",
                    share,
                )
            )
    return tuple(evidence)


def _recipe_records(scope: Scope, what: str) -> list[tuple[str, str, Any]]:
    """(recipe, metric key, value) for every defense-study metric of a train-based recipe whose key
    holds ``/<what>``."""
    return [
        (name, key, v) for name, metrics in scope.recipes.items() for key, v in metrics.items() if f"/{what}" in key
    ]


def _train_defenses_boundary(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    checks = (
        claimed_positive(
            f"{key.split('/')[0]} vs the standard model of the same precision: distance to the decision boundary",
            f"median L2 distance, {name} minus standard",
            d,
        )
        for name, key, d in _recipe_records(scope, "boundary_distance_l2")
    )
    return tuple(e for e in checks if e is not None)


def _transfer_persists(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    records = [
        (quant, key, m[key])
        for _, quant, _, m in _measured(scope)
        for key in (f"transfer_retention/{tag}" for tag in _epsilon_keys(m, "transfer_retention/"))
    ]
    records += [
        (key.split("/")[0], key.split("/", 1)[1], v) for _, key, v in _recipe_records(scope, "transfer_retention")
    ]
    return tuple(
        claimed_majority(
            f"{target} {key.split('/')[-1]}: its float model's adversarial examples that still fool it",
            proportion("still fool the quantized model", count),
        )
        for target, key, count in records
        if count["n"]
    )


def _noise(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    """Per pair, random noise: the quantized model flips fewer predictions than the float one at the
    smallest size and more at the largest supports; the reverse at either end contradicts."""
    evidence = []
    for float_model, quant, f, m in _measured(scope):
        tags = [t for t in _epsilon_keys(m, "flip/noise/") if f"flip/noise/{t}" in f]
        if len(tags) < 2:
            continue
        small, large = tags[0], tags[-1]
        qs, fs = (
            proportion(f"quantized {small}", m[f"flip/noise/{small}"]),
            proportion(f"float {small}", f[f"flip/noise/{small}"]),
        )
        ql, fl = (
            proportion(f"quantized {large}", m[f"flip/noise/{large}"]),
            proportion(f"float {large}", f[f"flip/noise/{large}"]),
        )
        if above(qs, fs) or above(fl, ql):
            outcome = Outcome.CONTRADICTS
        elif above(fs, qs) and above(ql, fl):
            outcome = Outcome.SUPPORTS
        else:
            outcome = Outcome.UNDECIDED
        evidence.append(
            Evidence(f"{quant} vs {float_model}: prediction flips under random noise", outcome, (qs, fs, ql, fl))
        )
    return tuple(evidence)


def _ensemble(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    evidence = []
    for name in scope.ensembles:
        for target in rows.targets(name):
            members = [ModelId.parse(target).parent.at(p) for p in (FLOAT, *scope.quantizers)]
            for eps in scope.defense_epsilons:
                worst = rows.defended(name, target, eps)
                own = [r for m in members if (r := _white(rows, scope.attack, eps, m)) is not None]
                if worst is None or not own:
                    continue
                best = max(own, key=lambda r: r.robust_accuracy)
                evidence.append(
                    claimed_above(
                        f"{target} eps {eps:g}: ensemble (worst case) above its most robust member {best.target}",
                        Rate.of("ensemble", worst),
                        Rate.of("member", best),
                    )
                )
    return tuple(evidence)


def _crossing(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    """Per float / quantized pair: supports when the quantized curve lies above the float one at some
    epsilon and below it at another (both separated); contradicts when every epsilon separates the
    same way; undecided otherwise."""
    evidence = []
    for float_model, quant in _pairs(scope):
        rates = []
        for eps in rows.epsilons(scope.attack, ThreatModel.WHITE_QNN_STE):
            q, f = _white(rows, scope.attack, eps, quant), _white(rows, scope.attack, eps, float_model)
            if q is not None and f is not None:
                rates += [Rate.of(f"quantized eps {eps:g}", q), Rate.of(f"float eps {eps:g}", f)]
        if len(rates) < 4:
            continue
        pairs = list(zip(rates[::2], rates[1::2], strict=True))
        ups = [q.label.split()[-1] for q, f in pairs if above(q, f)]
        downs = [q.label.split()[-1] for q, f in pairs if above(f, q)]
        if ups and downs:
            outcome = Outcome.SUPPORTS
        elif len(ups) == len(pairs) or len(downs) == len(pairs):
            outcome = Outcome.CONTRADICTS
        else:
            outcome = Outcome.UNDECIDED
        where = f"quantized above at eps {ups or 'none'}, float above at eps {downs or 'none'}".replace("'", "")
        evidence.append(Evidence(f"{quant} vs {float_model} over epsilon ({where})", outcome, tuple(rates)))
    return tuple(evidence)


def _preprocessors(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    """Per preprocessing defense and deployed model, worst case: supports when the defended system
    is above the undefended model at the smallest epsilon and not at the largest; contradicts when it is
    still above at the largest, or below at the smallest."""
    if len(scope.defense_epsilons) < 2:
        return ()
    small, large = min(scope.defense_epsilons), max(scope.defense_epsilons)
    evidence = []
    for name in scope.preprocessors:
        for target in rows.targets(name):
            model = ModelId.parse(target)
            pairs = []
            for eps in (small, large):
                defended = rows.defended(name, target, eps)
                bare = _white(rows, scope.attack, eps, model)
                if defended is not None and bare is not None:
                    pairs.append((Rate.of(f"defended eps {eps:g}", defended), Rate.of(f"undefended eps {eps:g}", bare)))
            if len(pairs) < 2:
                continue
            (d_small, b_small), (d_large, b_large) = pairs
            if above(d_large, b_large) or above(b_small, d_small):
                outcome = Outcome.CONTRADICTS
            elif above(d_small, b_small):
                outcome = Outcome.SUPPORTS
            else:
                outcome = Outcome.UNDECIDED
            evidence.append(Evidence(f"{name} on {target}", outcome, (d_small, b_small, d_large, b_large)))
    return tuple(evidence)


def _defensive_quantization(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    if scope.dq_recipe is None:
        return ()
    evidence = []
    for target in rows.targets(scope.dq_recipe):
        model = ModelId.parse(target)
        if model.quantizer is None:
            continue
        standard = ModelId(model.arch, "standard", model.quantizer)
        for eps in scope.defense_epsilons:
            dq = rows.defended(scope.dq_recipe, target, eps)
            base = _white(rows, scope.attack, eps, standard)
            if dq is not None and base is not None:
                evidence.append(
                    claimed_above(
                        f"{target} eps {eps:g}: DQ-trained quantized model above the standard one (worst case)",
                        Rate.of("dq", dq),
                        Rate.of("standard", base),
                    )
                )
        dq_clean, base_clean = rows.clean(model, scope.dq_recipe), rows.clean(standard)
        if dq_clean is not None and base_clean is not None:
            evidence.append(
                claimed_above(
                    f"{target}: clean accuracy of the DQ-trained quantized model above the standard one",
                    Rate.of("dq clean", dq_clean),
                    Rate.of("standard clean", base_clean),
                )
            )
    return tuple(evidence)


@dataclass(frozen=True)
class ClaimEntry:
    key: str
    claim: str
    source: str
    rule: str
    checks: Claim


CLAIMS = (
    ClaimEntry(
        "bernhard2019_masking",
        "Quantization is no defense: the apparent white-box robustness of low-bit models is gradient masking.",
        "Bernhard et al. 2019",
        "per quantized model and epsilon: robust accuracy under the exact-rounding attack above that under the "
        "straight-through one (masking); and the float model's robust accuracy against its quantized model's, in "
        "the per-sample worst case and under the same attack (white-box on the float model, straight-through on "
        "the quantized one): a quantized model separated above its float model in both would be a defense",
        _masking,
    ),
    ClaimEntry(
        "bernhard2019_transfer",
        "Attacks transfer poorly from float to quantized models.",
        "Bernhard et al. 2019",
        "per pair and epsilon: the success rate of the float model's white-box sets on the float model above their "
        "success rate on the quantized model (samples both classify correctly); the mechanism (value shift, gradient "
        "misalignment) is not judged here",
        _transfer,
    ),
    ClaimEntry(
        "bernhard2019_transfer_mechanism",
        "Poor transfer comes from quantization value shift and gradient misalignment.",
        "Bernhard et al. 2019",
        "per quantized model and epsilon: the share of samples whose float adversarial example moves more quantized "
        "activation values across a bin edge than noise of the same L2 size, above one half (value shift); and the "
        "transfer success on samples whose float and straight-through gradients agree (cosine above the median) "
        "above that on the rest (misalignment)",
        _transfer_mechanism,
    ),
    ClaimEntry(
        "bernhard2019_ensemble",
        "An ensemble of float and quantized models is more robust than its members.",
        "Bernhard et al. 2019",
        "per ensemble and defense epsilon: its worst-case robust accuracy (non-adaptive or adaptive through its combiner) above "
        "that of its most robust member under the member's own white-box attack",
        _ensemble,
    ),
    ClaimEntry(
        "gorsline2021_crossing",
        "Quantization raises or lowers robustness depending on attack strength: float and quantized curves cross.",
        "Gorsline et al. 2021",
        "per float / quantized pair: the quantized curve (straight-through) above the float one (white-box) at one "
        "epsilon and below it at another supports; one side at every epsilon contradicts",
        _crossing,
    ),
    ClaimEntry(
        "lin2019_amplification",
        "Vanilla quantization amplifies adversarial noise layer by layer.",
        "Lin et al. 2019",
        "per quantized model and epsilon: the share of samples whose logits change relatively more (||f(x') - f(x)|| "
        "/ ||f(x)||) on the quantized model (exact twin) than on the float model, under the float model's adversarial "
        "perturbation, above one half supports, below one half contradicts; the per-layer ratios are in the analysis",
        _amplification,
    ),
    ClaimEntry(
        "lin2019_defensive_quantization",
        "Defensive Quantization keeps quantized models robust and can raise clean accuracy.",
        "Lin et al. 2019",
        "per quantized DQ model and defense epsilon: its worst-case robust accuracy (non-adaptive or adaptive) above the "
        "standard quantized model's under straight-through; and its clean accuracy above the standard quantized "
        "model's (a separated drop contradicts)",
        _defensive_quantization,
    ),
    ClaimEntry(
        "costa2024_boundary_distance",
        "Quantization increases the distance to the decision boundary.",
        "Costa & Pinto 2024",
        "per float / quantized pair: the median L2 distance of the boundary attack's unbounded outputs that fool "
        "each deployed runtime, quantized minus float, with a 95% bootstrap interval above zero supports, below "
        "zero contradicts (for this check, separating means the interval excludes zero)",
        _boundary,
    ),
    ClaimEntry(
        "costa2024_vanishing_gradients",
        "Quantization makes estimated gradients vanish or explode.",
        "Costa & Pinto 2024",
        "per quantized model: the share of samples whose input gradient through the exact-rounding twin is all zero "
        "above the float model's",
        _vanishing,
    ),
    ClaimEntry(
        "costa2024_noise",
        "Quantization attenuates small noise and amplifies large noise.",
        "Costa & Pinto 2024",
        "per float / quantized pair, random noise of the analysis sizes: fewer prediction flips than the float model "
        "at the smallest size and more at the largest supports; more at the smallest or fewer at the largest "
        "contradicts",
        _noise,
    ),
    ClaimEntry(
        "costa2024_preprocessing",
        "Input-preprocessing defenses work at small epsilon and fail at large epsilon.",
        "Costa & Pinto 2024",
        "per preprocessing defense and deployed model, worst case over the non-adaptive and adaptive attacks: above the undefended model at the smallest "
        "defense epsilon and not at the largest supports; above at the largest or below at the smallest "
        "contradicts",
        _preprocessors,
    ),
    ClaimEntry(
        "costa2024_train_defenses_boundary",
        "Train-based defenses raise the distance to the decision boundary and keep it after quantization.",
        "Costa & Pinto 2024",
        "per train-based recipe of the defense study and precision (float and each quantizer): the median L2 distance "
        "at which the boundary attack (through the attacker's view) fools the recipe model's runtime, minus the "
        "standard model's at the same precision, with a 95% bootstrap interval above zero supports, below zero "
        "contradicts",
        _train_defenses_boundary,
    ),
    ClaimEntry(
        "costa2024_transfer_persists",
        "Float-to-quantized transfer persists, defended models included.",
        "Costa & Pinto 2024",
        "per float / quantized pair (the study's models, and the defense study's recipe models with their adaptive "
        "examples) and epsilon: of the float model's adversarial examples that fool it, on samples both models "
        "classify correctly, the share that also fool the quantized runtime above one half supports, below one "
        "half contradicts",
        _transfer_persists,
    ),
)


def judge(rows: Iterable[Result], scope: Scope) -> list[Finding]:
    indexed = Rows(rows)
    findings = []
    for entry in CLAIMS:
        evidence = entry.checks(indexed, scope)
        findings.append(Finding(entry.key, entry.claim, entry.source, entry.rule, decide(evidence), evidence))
    return findings
