"""The literature's claims: each one's text, its paper and its rule; ``judge`` gives every verdict."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from qrobust.evaluation.results import Result
from qrobust.findings.evidence import Claim, Finding, Rows, Scope, decide
from qrobust.findings.rules import (
    _amplification,
    _boundary,
    _crossing,
    _defensive_quantization,
    _ensemble,
    _masking,
    _noise,
    _preprocessors,
    _train_defenses_boundary,
    _transfer,
    _transfer_mechanism,
    _transfer_persists,
    _vanishing,
)


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
