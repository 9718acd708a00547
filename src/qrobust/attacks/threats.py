"""Closed sets of the attack domain: threat models, norms, and what an attack needs from the model (torch-free)."""

from __future__ import annotations

from enum import Enum


class ThreatModel(Enum):
    """What the attacker had: the value of ``threat_model`` in every result row."""

    CLEAN = "clean"  # no attack: clean inputs through the defense and the deployed runtime
    WHITE_FLOAT = "white_float"  # gradients of a float model, scored on that model's runtime
    WHITE_QNN_EXACT = "white_qnn_exact"  # gradients through a quantized model's twin, rounding as deployed (masked)
    WHITE_QNN_STE = "white_qnn_ste"  # gradients through the twin with straight-through rounding (BPDA)
    BLACK_RUNTIME = "black_runtime"  # labels or scores of the deployed runtime itself, no gradients
    TRANSFER = "transfer"  # adversarial set made on one model, scored on another
    WORST_CASE = "worst_case"  # per sample, every set above that reached the model (qrobust.evaluation.worstcase)


NORMS = ("l0", "l1", "l2", "linf")  # every set records its perturbations in each


class Norm(Enum):
    L0 = "l0"
    L1 = "l1"
    L2 = "l2"
    LINF = "linf"


class Kind(Enum):
    """What an attack needs from the model, which fixes the threat models it can run under."""

    GRADIENT = "gradient"  # input gradients: a float model or a quantized model's twin
    DECISION = "decision"  # the predicted label only
    SCORE = "score"  # the logits, no gradients
    NOISE = "noise"  # nothing: a random perturbation, the baseline every attack must beat
    # Input gradients of a quantized model's twin and of its float parent together (DIVA): an input the
    # deployed quantized model gets wrong while the float model, the one validated and monitored, gets it right.
    DIFFERENTIAL = "differential"

    @property
    def threat_models(self) -> tuple[ThreatModel, ...]:
        if self is Kind.GRADIENT:
            return (ThreatModel.WHITE_FLOAT, ThreatModel.WHITE_QNN_EXACT, ThreatModel.WHITE_QNN_STE)
        if self is Kind.DIFFERENTIAL:
            return (ThreatModel.WHITE_QNN_STE, ThreatModel.WHITE_QNN_EXACT)
        return (ThreatModel.BLACK_RUNTIME,)
