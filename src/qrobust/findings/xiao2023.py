"""Xiao et al. 2023, "Benchmarking the Robustness of Quantized Models" (RobustMQ): its claim about bit width,
the primary hypothesis beside its text, judged per width of the bit-width sweep (quantize.sweep)."""

from __future__ import annotations

from qrobust.findings.evidence import ClaimEntry, Condition, Hypothesis, Scope
from qrobust.findings.sources import headline_conditions
from qrobust.settings.findings import Threshold

LOW_BITS_HYPOTHESIS = Hypothesis(
    "robust accuracy of the model at each width of the bit-width sweep (and the backend's native 8-bit model) "
    "minus its float model's at the headline epsilon, per-sample worst case under the same attacks on the same "
    "samples: lower widths are claimed more robust, so the difference is claimed positive and largest at the "
    "lowest width",
    direction=1,
    test="paired: Tango's score test on the discordant samples",
    asserts_effect=True,
)


def _low_bits(scope: Scope, t: Threshold) -> list[Condition]:
    return headline_conditions(scope, scope.sweep, LOW_BITS_HYPOTHESIS.direction, t)


LOW_BITS = ClaimEntry(
    "xiao2023_low_bits",
    "Lower bit widths are more resilient to adversarial attacks: robust accuracy falls as the bit width rises.",
    "Xiao et al. 2023 (RobustMQ)",
    LOW_BITS_HYPOTHESIS,
    _low_bits,
)
