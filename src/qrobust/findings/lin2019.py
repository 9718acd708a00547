"""Lin et al. 2019, "Defensive Quantization: When Efficiency Meets Robustness": its claims, each primary
hypothesis beside its text."""

from __future__ import annotations

from qrobust.findings.evidence import ClaimEntry, Condition, Hypothesis, Scope
from qrobust.findings.sources import condition, count, measured, paired_record, tag
from qrobust.findings.tests import binomial
from qrobust.pipeline.model_id import ModelId
from qrobust.settings.findings import Threshold

AMPLIFICATION_HYPOTHESIS = Hypothesis(
    "share of samples whose logits change relatively more (||f(x') - f(x)|| / ||f(x)||) on the quantized model "
    "than on the float model under the float model's adversarial perturbation at the headline epsilon, among "
    "the samples whose two changes differ by more than 10%",
    direction=1,
    test="exact binomial",
    asserts_effect=True,
)


def _amplification(scope: Scope, t: Threshold) -> list[Condition]:
    out = []
    for _, quant, _, m in measured(scope):
        k, n = count(m, f"output_change/quantized_above_float/{tag(scope.headline)}")
        test = binomial(k, n, t.boundary, AMPLIFICATION_HYPOTHESIS.direction, t.delta)
        out.append(condition(scope, quant, test, f"{k} of {n} samples change more on {quant}"))
    return out


AMPLIFICATION = ClaimEntry(
    "lin2019_amplification",
    "Vanilla quantization amplifies adversarial noise.",
    "Lin et al. 2019",
    AMPLIFICATION_HYPOTHESIS,
    _amplification,
)

DQ_HYPOTHESIS = Hypothesis(
    "robust accuracy of the Lipschitz-regularised (DQ) quantized model minus its full-precision counterpart's, "
    "both under the defense study's attacks (transferred sets, the attack through the model, the composite) "
    "on the same samples, per defense epsilon",
    direction=1,
    test="paired: exact McNemar",
    asserts_effect=True,
)


def _defensive_quantization(scope: Scope, t: Threshold) -> list[Condition]:
    if scope.dq_recipe is None:
        return []
    metrics = scope.defenses.get(scope.dq_recipe, {})
    out = []
    for key in sorted(k for k in metrics if "/vs_float/" in k):
        target, eps = key.split("/")[0], float(key.split("=")[1])
        record = metrics[key]
        test = paired_record(record, 0, DQ_HYPOTHESIS.direction, t.delta, t.boundary)
        detail = (f"quantized minus float {record.get('difference')} (discordant {record.get('only_reference')} / "
                  f"{record.get('only_other')} of {record.get('n')})",)  # fmt: skip
        out.append(condition(scope, ModelId.parse(target), test, *detail, extra=(f"at eps {eps:g}",)))
    return out


DEFENSIVE_QUANTIZATION = ClaimEntry(
    "lin2019_defensive_quantization",
    "Defensive Quantization makes quantized models more robust than their full-precision counterparts.",
    "Lin et al. 2019",
    DQ_HYPOTHESIS,
    _defensive_quantization,
)
