"""DIVA, the differential evasion attack: through a quantized model's straight-through twin and its float
parent together, it finds inputs the deployed quantized model gets wrong while the float model still gets
them right ("evasive"), more often than PGD on the twin alone, which fools both."""

from __future__ import annotations

import pytest
import torch

from qrobust.attacks.factory import create_attack
from qrobust.attacks.runner import craft
from qrobust.attacks.victims import attack_copy, module_victim
from qrobust.deploy.runtime import OrtRuntime
from qrobust.pipeline.errors import ConfigError
from tests.conftest import SPEC

# On these stripe images PGD made through the 3-bit twin at eps 0.3 fools the quantized model on 85% of the
# samples and the float model with it (2% evasive); DIVA evades on about 29% (measured at 20 steps of 0.1 eps).
# At 0.15-0.2 PGD's examples transfer poorly to the float model and are evasive by themselves.
EPSILON = 0.3
QUANTIZER = "ort_w3a3"


@pytest.fixture(scope="module")
def low_bit(trained_lenet, lenet_onnx, tiny_data, tmp_path_factory):
    """LeNet at 3 bits (weights and activations): its runtime and straight-through twin."""
    from qrobust.deploy.backends import load_runtime, load_twin
    from qrobust.quantization.quantizers import FloatModel, create_quantizer
    from qrobust.quantization.twins import GradMode

    folder = tmp_path_factory.mktemp(QUANTIZER)
    create_quantizer(QUANTIZER, {}).quantize(
        FloatModel(trained_lenet, lenet_onnx, "lenet", SPEC), tiny_data["calib"][0], folder
    )
    return load_runtime(folder), load_twin(folder, GradMode.STE)


def evasive_share(name: str, options: dict, trained_lenet, lenet_onnx, low_bit, tiny_data, reference=None) -> float:
    """The share of the samples both runtimes get right clean that the attack makes evasive, as deployed."""
    runtime, twin = low_bit
    x, y = tiny_data["test"][0][:96], tiny_data["test"][1][:96]
    float_runtime = OrtRuntime(lenet_onnx)
    both = (runtime.predict(x) == y) & (float_runtime.predict(x) == y)
    victim = module_victim(twin, torch.device("cpu"))
    victim.reference = attack_copy(reference if reference is not None else trained_lenet, torch.device("cpu"))
    adv = craft(victim, name, options, (EPSILON,), x, y, batch_size=48, seed=0).x_adv[0]
    evades = (runtime.predict(adv) != y) & (float_runtime.predict(adv) == y)
    return float(evades[both].mean())


def test_diva_evades_the_float_model_more_often_than_pgd(trained_lenet, lenet_onnx, low_bit, tiny_data) -> None:
    diva = evasive_share("diva", {"steps": 20, "rel_stepsize": 0.1}, trained_lenet, lenet_onnx, low_bit, tiny_data)
    pgd = evasive_share("linf_pgd", {"steps": 20, "rel_stepsize": 0.1}, trained_lenet, lenet_onnx, low_bit, tiny_data)
    assert diva > pgd + 0.15, (diva, pgd)


def test_a_differential_attack_needs_the_float_model_and_a_positive_c(trained_lenet) -> None:
    with pytest.raises(ValueError, match="diva: a differential attack needs the float model"):
        create_attack("diva", {})
    with pytest.raises(ConfigError, match=r"attack.attacks.diva.c: expected a number in \(0.0, inf\], got -1.0"):
        create_attack("diva", {"c": -1.0}, reference=trained_lenet)


@pytest.mark.parametrize("log_scores", [True, False])
def test_the_objective_rewards_the_float_model_right_and_the_quantized_model_wrong(log_scores: bool) -> None:
    """The sabotage "a differential attack that ignores the float term" (the objective -c log p_quant alone,
    which is PGD's) makes the first comparison an equality and fails here."""
    from qrobust.attacks.diva import DIVA

    attack = DIVA(torch.nn.Identity(), log_scores=log_scores)
    labels = torch.tensor([0, 1])
    sure, unsure = 4.0 * torch.eye(3)[labels], torch.zeros(2, 3)
    assert (attack.objective(sure, unsure, labels) > attack.objective(unsure, unsure, labels)).all()
    assert (attack.objective(unsure, sure, labels) < attack.objective(unsure, unsure, labels)).all()
