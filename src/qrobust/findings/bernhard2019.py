"""Bernhard et al. 2019, "Impact of Low-bitwidth Quantization on the Adversarial Robustness for Embedded
Neural Networks": its claims, each primary hypothesis beside its text."""

from __future__ import annotations

from qrobust.findings.evidence import ClaimEntry, Condition, Hypothesis, Scope
from qrobust.findings.sources import condition, count, headline_conditions, matched, measured, tag
from qrobust.findings.tests import binomial, missing, two_sample
from qrobust.pipeline.model_id import ModelId
from qrobust.settings.findings import Threshold

MASKING_HYPOTHESIS = Hypothesis(
    "robust accuracy of the quantized runtime minus its float model's at the headline epsilon, each under the "
    "same attacks (white-box on the float model and through the straight-through twin, black-box on both "
    "runtimes), per-sample worst case on the same samples",
    direction=-1,
    test="paired: Tango's score test on the discordant samples",
    asserts_effect=False,
)


def _masking(scope: Scope, t: Threshold) -> list[Condition]:
    return headline_conditions(scope, (quant for _, quant in scope.quantized()), MASKING_HYPOTHESIS.direction, t)


MASKING = ClaimEntry(
    "bernhard2019_masking",
    "Quantization is no defense: the apparent robustness of low-bit models is gradient masking.",
    "Bernhard et al. 2019",
    MASKING_HYPOTHESIS,
    _masking,
)

RETENTION = (
    "share of the float model's successful white-box examples (samples both models classify correctly) that "
    "also fool the quantized runtime, at the headline epsilon"
)
TRANSFER_HYPOTHESIS = Hypothesis(RETENTION, direction=-1, test="exact binomial", asserts_effect=True)


def retention_conditions(scope: Scope, t: Threshold, direction: int) -> list[Condition]:
    """The retention of every analysed pair at the headline epsilon (Bernhard's and Costa's claims read it)."""
    out = []
    for _, quant, _, m in measured(scope):
        k, n = count(m, f"transfer_retention/{tag(scope.headline)}")
        test = binomial(k, n, t.boundary, direction, t.delta) if n else missing(t.delta)
        out.append(condition(scope, quant, test, f"{k} of {n} float successes also fool {quant}"))
    return out


TRANSFER = ClaimEntry(
    "bernhard2019_transfer",
    "Attacks transfer poorly from float to quantized models.",
    "Bernhard et al. 2019",
    TRANSFER_HYPOTHESIS,
    lambda scope, t: retention_conditions(scope, t, TRANSFER_HYPOTHESIS.direction),
)

MECHANISM_HYPOTHESIS = Hypothesis(
    "transfer success (share of the float model's examples that fool the quantized runtime) where the float and "
    "straight-through input gradients agree (cosine above the median) minus where they do not, at the headline "
    "epsilon",
    direction=1,
    test="two independent proportions: Agresti-Caffo",
    asserts_effect=True,
)


def _mechanism(scope: Scope, t: Threshold) -> list[Condition]:
    out = []
    eps = tag(scope.headline)
    for _, quant, _, m in measured(scope):
        (ka, na), (km, nm) = count(m, f"transfer_success/aligned/{eps}"), count(m, f"transfer_success/misaligned/{eps}")
        ks, ns = count(m, f"bin_shift/adversarial_above_noise/{eps}")
        test = two_sample(ka, na, km, nm, MECHANISM_HYPOTHESIS.direction, t.delta)
        detail = (
            f"aligned {ka}/{na}, misaligned {km}/{nm}",
            f"value shift (detail): {ks} of {ns} adversarial examples move more activations across a bin edge "
            "than noise of the same L2 size",
        )
        out.append(condition(scope, quant, test, *detail))
    return out


TRANSFER_MECHANISM = ClaimEntry(
    "bernhard2019_transfer_mechanism",
    "Poor transfer comes from gradient misalignment (and quantization value shift).",
    "Bernhard et al. 2019",
    MECHANISM_HYPOTHESIS,
    _mechanism,
)

ENSEMBLE_HYPOTHESIS = Hypothesis(
    "robust accuracy of the float + quantized ensemble (worst case: the members' sets, the attack through its "
    "combiner, the composite) minus its most robust member's matched worst case, per defense epsilon",
    direction=1,
    test="two proportions, unpaired (conservative: the two are scored on the same samples)",
    asserts_effect=True,
)


def _member_robust(scope: Scope, model: ModelId, eps: float) -> tuple[int, int] | None:
    """(robust, n) of one member in its matched worst case: a quantized member's own, a float member's as
    the reference of any of its pairs (the same samples and attacks on the float side)."""
    if model.quantizer is not None:
        record = matched(scope, model, eps)
        return None if record is None else (record["other"], record["n"])
    for float_model, quant in scope.quantized():
        record = matched(scope, quant, eps) if float_model == model else None
        if record:
            return record["reference"], record["n"]
    return None


def _ensemble(scope: Scope, t: Threshold) -> list[Condition]:
    out = []
    for name, members in scope.ensembles.items():
        for (defense, target, eps), row in sorted(scope.defended.items()):
            if defense != name:
                continue
            base = ModelId.parse(target).parent
            rates = [(*robust, str(base.at(m))) for m in members if (robust := _member_robust(scope, base.at(m), eps))]
            if not rates:
                continue
            k, n, best = max(rates, key=lambda r: r[0] / r[1])
            test = two_sample(row.n_correct, row.n, k, n, ENSEMBLE_HYPOTHESIS.direction, t.delta)
            detail = (f"ensemble {row.n_correct}/{row.n}; most robust member {best} {k}/{n}",)
            out.append(Condition(f"{target} at eps {eps:g}", f"eps {eps:g}", test, detail))
    return out


ENSEMBLE = ClaimEntry(
    "bernhard2019_ensemble",
    "An ensemble of float and quantized models is more robust than its members.",
    "Bernhard et al. 2019",
    ENSEMBLE_HYPOTHESIS,
    _ensemble,
)
