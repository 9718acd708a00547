"""Gorsline et al. 2021, "On the Adversarial Robustness of Quantized Neural Networks": its claim, the primary
hypothesis beside its text."""

from __future__ import annotations

from qrobust.findings.evidence import ClaimEntry, Condition, Hypothesis, Scope
from qrobust.findings.sources import condition, matched, matched_detail, matched_test
from qrobust.findings.tests import combined, either
from qrobust.settings.findings import Threshold

CROSSING_HYPOTHESIS = Hypothesis(
    "robust accuracy of the quantized runtime minus its float model's under the same attacks on the same "
    "samples, at the smallest epsilon of the grid and the largest at which the float model keeps twice the "
    "smallest effect: of one sign at one end and of the other at the other (either order)",
    direction=1,
    test="intersection-union of two paired tests per order, Bonferroni over the two orders",
    asserts_effect=True,
)


def _crossing(scope: Scope, t: Threshold) -> list[Condition]:
    """Per pair: the smallest epsilon of the grid, and the largest at which the float model still keeps
    twice the smallest effect in robust accuracy (beyond it both curves sit at zero and no crossing of that
    size can show; the choice reads the float side only, never the difference)."""
    out = []
    for _, quant in scope.quantized():
        records = scope.pairs.get(str(quant), {}).get("worst_case", {})
        tags = sorted(float(k.split("=")[1]) for k in records if k.startswith("linf/"))
        usable = [
            e for e in tags if records[f"linf/eps={e:g}"]["reference"] >= 2 * t.delta * records[f"linf/eps={e:g}"]["n"]
        ]
        if len(usable) < 2:
            continue
        small, large = matched(scope, quant, usable[0]), matched(scope, quant, usable[-1])
        up_down = combined([matched_test(small, 1, t.delta), matched_test(large, -1, t.delta)], t.delta)
        down_up = combined([matched_test(small, -1, t.delta), matched_test(large, 1, t.delta)], t.delta)
        detail = (
            f"eps {usable[0]:g}: {matched_detail(small)[0]}",
            f"eps {usable[-1]:g}: {matched_detail(large)[0]}",
        )
        out.append(condition(scope, quant, either([up_down, down_up], t.delta), *detail))
    return out


CROSSING = ClaimEntry(
    "gorsline2021_crossing",
    "Quantization raises or lowers robustness depending on attack strength: float and quantized curves cross.",
    "Gorsline et al. 2021",
    CROSSING_HYPOTHESIS,
    _crossing,
)
