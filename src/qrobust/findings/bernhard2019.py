"""Bernhard et al. 2019, "Impact of Low-bitwidth Quantization on the Adversarial Robustness for Embedded
Neural Networks": its claims, each rule beside its text."""

from __future__ import annotations

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import Result
from qrobust.evaluation.worstcase import ATTACK as WORST_CASE
from qrobust.findings.evidence import (
    ClaimEntry,
    Evidence,
    Outcome,
    Rate,
    Rows,
    Scope,
    above,
    claimed_above,
    claimed_majority,
    model_pairs,
    proportion,
)
from qrobust.findings.records import epsilon_keys, measured, white_row
from qrobust.pipeline.model_id import FLOAT, ModelId


def _masking(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    evidence = []
    for float_model, quant in model_pairs(scope):
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


MASKING = ClaimEntry(
    "bernhard2019_masking",
    "Quantization is no defense: the apparent white-box robustness of low-bit models is gradient masking.",
    "Bernhard et al. 2019",
    "per quantized model and epsilon: robust accuracy under the exact-rounding attack above that under the "
    "straight-through one (masking); and the float model's robust accuracy against its quantized model's, in "
    "the per-sample worst case and under the same attack (white-box on the float model, straight-through on "
    "the quantized one): a quantized model separated above its float model in both would be a defense",
    _masking,
)


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
    for float_model, quant in model_pairs(scope):
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


TRANSFER = ClaimEntry(
    "bernhard2019_transfer",
    "Attacks transfer poorly from float to quantized models.",
    "Bernhard et al. 2019",
    "per pair and epsilon: the success rate of the float model's white-box sets on the float model above their "
    "success rate on the quantized model (samples both classify correctly); the mechanism (value shift, gradient "
    "misalignment) is not judged here",
    _transfer,
)


def _transfer_mechanism(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    """Value shift: per sample, the float model's adversarial example moves more activation values across
    a bin edge than same-size noise (share of samples above one half). Misalignment: the examples transfer
    more where the float and straight-through gradients agree (above the median cosine) than where they do not."""
    evidence = []
    for _, quant, _, m in measured(scope):
        for tag in epsilon_keys(m, "bin_shift/adversarial_above_noise/"):
            shift = proportion("adversarial shifts more bins than noise", m[f"bin_shift/adversarial_above_noise/{tag}"])
            evidence.append(claimed_majority(f"{quant} {tag}: quantization shift", shift))
        for tag in epsilon_keys(m, "transfer_success/aligned/"):
            aligned = proportion("aligned half", m[f"transfer_success/aligned/{tag}"])
            misaligned = proportion("misaligned half", m[f"transfer_success/misaligned/{tag}"])
            if aligned.n and misaligned.n:
                evidence.append(
                    claimed_above(f"{quant} {tag}: transfer follows gradient agreement", aligned, misaligned)
                )
    return tuple(evidence)


TRANSFER_MECHANISM = ClaimEntry(
    "bernhard2019_transfer_mechanism",
    "Poor transfer comes from quantization value shift and gradient misalignment.",
    "Bernhard et al. 2019",
    "per quantized model and epsilon: the share of samples whose float adversarial example moves more quantized "
    "activation values across a bin edge than noise of the same L2 size, above one half (value shift); and the "
    "transfer success on samples whose float and straight-through gradients agree (cosine above the median) "
    "above that on the rest (misalignment)",
    _transfer_mechanism,
)


def _ensemble(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    evidence = []
    for name in scope.ensembles:
        for target in rows.targets(name):
            members = [ModelId.parse(target).parent.at(p) for p in (FLOAT, *scope.quantizers)]
            for eps in scope.defense_epsilons:
                worst = rows.defended(name, target, eps)
                own = [r for m in members if (r := white_row(rows, scope.attack, eps, m)) is not None]
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


ENSEMBLE = ClaimEntry(
    "bernhard2019_ensemble",
    "An ensemble of float and quantized models is more robust than its members.",
    "Bernhard et al. 2019",
    "per ensemble and defense epsilon: its worst-case robust accuracy (non-adaptive or adaptive through its combiner) above "
    "that of its most robust member under the member's own white-box attack",
    _ensemble,
)
