"""Lin et al. 2019, "Defensive Quantization: When Efficiency Meets Robustness": its claims, each rule beside
its text."""

from __future__ import annotations

from qrobust.findings.evidence import (
    ClaimEntry,
    Evidence,
    Rate,
    Rows,
    Scope,
    claimed_above,
    claimed_majority,
    proportion,
)
from qrobust.findings.records import epsilon_keys, measured, white_row
from qrobust.pipeline.model_id import ModelId


def _amplification(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    evidence = []
    for float_model, quant, _, m in measured(scope):
        for tag in epsilon_keys(m, "output_change/quantized_above_float/"):
            share = proportion("quantized above float", m[f"output_change/quantized_above_float/{tag}"])
            evidence.append(
                claimed_majority(
                    f"{quant} vs {float_model} {tag}: relative change of the logits under the float model's "
                    "adversarial perturbation",
                    share,
                )
            )
    return tuple(evidence)


AMPLIFICATION = ClaimEntry(
    "lin2019_amplification",
    "Vanilla quantization amplifies adversarial noise layer by layer.",
    "Lin et al. 2019",
    "per quantized model and epsilon: the share of samples whose logits change relatively more (||f(x') - f(x)|| "
    "/ ||f(x)||) on the quantized model (exact twin) than on the float model, under the float model's adversarial "
    "perturbation, above one half supports, below one half contradicts; the per-layer ratios are in the analysis",
    _amplification,
)


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
            base = white_row(rows, scope.attack, eps, standard)
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


DEFENSIVE_QUANTIZATION = ClaimEntry(
    "lin2019_defensive_quantization",
    "Defensive Quantization keeps quantized models robust and can raise clean accuracy.",
    "Lin et al. 2019",
    "per quantized DQ model and defense epsilon: its worst-case robust accuracy (non-adaptive or adaptive) above the "
    "standard quantized model's under straight-through; and its clean accuracy above the standard quantized "
    "model's (a separated drop contradicts)",
    _defensive_quantization,
)
