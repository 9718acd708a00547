"""Hao et al. 2022, "A Tale of Two Models: Constructing Evasive Attacks on Edge Models" (DIVA): its claim, the
primary hypothesis beside its text, judged on evaluate's evasive success (reports/evasion.json)."""

from __future__ import annotations

from qrobust.findings.evidence import ClaimEntry, Condition, Hypothesis, Scope
from qrobust.findings.sources import condition, paired_record
from qrobust.pipeline.model_id import ModelId
from qrobust.settings.findings import Threshold

EVASION_HYPOTHESIS = Hypothesis(
    "share of the samples both the quantized runtime and its float parent's classify right that end evasive (the "
    "quantized runtime wrong, the float runtime right) under the differential attack minus under PGD made through "
    "the same straight-through twin, on the same samples, per epsilon",
    direction=1,
    test="paired: Tango's score test on the discordant samples",
    asserts_effect=True,
)


def _evasion(scope: Scope, t: Threshold) -> list[Condition]:
    out = []
    for key, record in sorted(scope.evasion.items()):
        attack, _, model, eps = key.split("/")
        quant = ModelId.parse(model)
        baseline = next(name for name in record if name not in ("n", "difference", attack))
        test = paired_record(record["difference"], int(record["n"]), EVASION_HYPOTHESIS.direction, t.delta, t.boundary)
        detail = (
            f"{attack} {record[attack]['evasive']}, {baseline} {record[baseline]['evasive']} evasive of {record['n']}",
        )
        out.append(condition(scope, quant, test, *detail, extra=(f"at {eps}",)))
    return out


EVASION = ClaimEntry(
    "hao2022_evasion",
    "A differential attack goes unnoticed by the float model more often than PGD.",
    "Hao et al. 2022 (DIVA)",
    EVASION_HYPOTHESIS,
    _evasion,
)
