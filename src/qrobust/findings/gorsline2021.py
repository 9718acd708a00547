"""Gorsline et al. 2021, "On the Adversarial Robustness of Quantized Neural Networks": its claim, the rule
beside its text."""

from __future__ import annotations

from qrobust.attacks.threats import ThreatModel
from qrobust.findings.evidence import (
    ClaimEntry,
    Evidence,
    Outcome,
    Rate,
    Rows,
    Scope,
    above,
    model_pairs,
)
from qrobust.findings.records import white_row


def _crossing(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    """Per float / quantized pair: supports when the quantized curve lies above the float one at some
    epsilon and below it at another (both separated); contradicts when every epsilon separates the
    same way; undecided otherwise."""
    evidence = []
    for float_model, quant in model_pairs(scope):
        rates = []
        for eps in rows.epsilons(scope.attack, ThreatModel.WHITE_QNN_STE):
            q, f = white_row(rows, scope.attack, eps, quant), white_row(rows, scope.attack, eps, float_model)
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


CROSSING = ClaimEntry(
    "gorsline2021_crossing",
    "Quantization raises or lowers robustness depending on attack strength: float and quantized curves cross.",
    "Gorsline et al. 2021",
    "per float / quantized pair: the quantized curve (straight-through) above the float one (white-box) at one "
    "epsilon and below it at another supports; one side at every epsilon contradicts",
    _crossing,
)
