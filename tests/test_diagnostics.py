"""Each gradient-masking indicator on constructed rows: raised when the intervals separate, silent when not."""

from __future__ import annotations

import math

import numpy as np

from qrobust.attacks.threats import NORMS, ThreatModel
from qrobust.evaluation.results import Result
from qrobust.findings.masking import masking_flags
from tests.test_findings import FLOAT_MODEL, QUANT, row


def checks(rows: list[Result], analysis: dict | None = None) -> set[tuple[str, str, str]]:
    return {(f.model, f.threat_model, f.check) for f in masking_flags(rows, ["noise"], analysis or {})}


def test_black_box_beating_white_box_is_flagged() -> None:
    white = row(0.6, ThreatModel.WHITE_QNN_EXACT, 0.1, QUANT)
    assert checks([white, row(0.1, ThreatModel.BLACK_RUNTIME, 0.1, QUANT, attack="square")]) == {
        (str(QUANT), "white_qnn_exact", "black_beats_white")
    }
    assert checks([white, row(0.58, ThreatModel.BLACK_RUNTIME, 0.1, QUANT, attack="square")]) == set()


def test_robust_accuracy_rising_with_epsilon_is_flagged() -> None:
    rising = [row(0.2, ThreatModel.WHITE_QNN_EXACT, 0.05, QUANT), row(0.6, ThreatModel.WHITE_QNN_EXACT, 0.1, QUANT)]
    assert checks(rising) == {(str(QUANT), "white_qnn_exact", "rises_with_epsilon")}
    falling = [
        row(0.6, ThreatModel.WHITE_FLOAT, 0.05, FLOAT_MODEL),
        row(0.2, ThreatModel.WHITE_FLOAT, 0.1, FLOAT_MODEL),
    ]
    assert checks(falling) == set()


def unbounded(fooled: int, n: int = 400) -> Result:
    correct = np.arange(n) >= fooled
    return Result.score(
        correct=correct, clean=np.ones(n, dtype=bool), attackable=np.ones(n, dtype=bool), sizes={k: np.zeros(n) for k in NORMS},
        attack="deepfool", norm="l2", epsilon=math.inf, threat_model="white_float", source_threat_model="white_float",
        source=str(FLOAT_MODEL), target=str(FLOAT_MODEL), target_arch="lenet", target_precision="float", defense="none",
    )  # fmt: skip


def test_unbounded_attack_short_of_total_success_is_flagged() -> None:
    assert checks([unbounded(300)]) == {(str(FLOAT_MODEL), "white_float", "unbounded_short")}
    assert checks([unbounded(400)]) == set()


def test_noise_beating_a_gradient_attack_is_flagged_on_every_target_it_reaches() -> None:
    gradient = row(0.7, ThreatModel.WHITE_QNN_STE, 0.1, QUANT)
    noise = row(0.3, ThreatModel.TRANSFER, 0.1, QUANT, source=FLOAT_MODEL, attack="noise")
    assert checks([gradient, noise]) == {(str(QUANT), "white_qnn_ste", "noise_beats_gradient")}
    assert checks([gradient, row(0.69, ThreatModel.TRANSFER, 0.1, QUANT, source=FLOAT_MODEL, attack="noise")]) == set()


def test_zero_gradients_from_the_analysis_are_flagged() -> None:
    analysis = {str(FLOAT_MODEL): {"samples": 10, str(QUANT): {"zero_gradient/exact": {"rate": 1.0, "k": 10, "n": 10}}}}
    assert checks([], analysis) == {(str(QUANT), "white_qnn_exact", "zero_gradients")}
    analysis[str(FLOAT_MODEL)][str(QUANT)]["zero_gradient/exact"] = {"rate": 0.1, "k": 1, "n": 10}
    assert checks([], analysis) == set()


def test_loss_plateaus_from_the_analysis_are_flagged_per_threat_model() -> None:
    analysis = {
        str(FLOAT_MODEL): {
            "float": {"loss_plateau": {"rate": 0.1, "k": 4, "n": 40}},
            str(QUANT): {
                "loss_plateau/exact": {"rate": 1.0, "k": 40, "n": 40},
                "loss_plateau/ste": {"rate": 0.55, "k": 22, "n": 40},  # above one half, interval not
            },
        }
    }
    assert checks([], analysis) == {(str(QUANT), "white_qnn_exact", "loss_plateau")}
    analysis[str(FLOAT_MODEL)]["float"]["loss_plateau"] = {"rate": 0.9, "k": 36, "n": 40}
    assert (str(FLOAT_MODEL), "white_float", "loss_plateau") in checks([], analysis)
