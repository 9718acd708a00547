"""The shrinking-batch DeepFool gives Foolbox's output, for less work."""

import foolbox
import pytest
import torch

from qrobust.attacks.deepfool import L2DeepFool, LinfDeepFool
from qrobust.attacks.victims import module_victim

PAIRS = [(L2DeepFool, foolbox.attacks.L2DeepFoolAttack), (LinfDeepFool, foolbox.attacks.LinfDeepFoolAttack)]


def run(attack, victim, x, y):
    victim.queries = 0
    _, clipped, _ = attack(
        victim.model, victim.tensor(x), foolbox.criteria.Misclassification(victim.labels(y)), epsilons=None
    )
    return clipped, victim.queries


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=["l2", "linf"])
@pytest.mark.parametrize("loss", ["logits", "crossentropy"])
def test_same_output_as_foolbox_with_fewer_model_inputs(trained_lenet, tiny_data, ours, theirs, loss) -> None:
    x, y = tiny_data["test"][0][:64], tiny_data["test"][1][:64]
    victim = module_victim(trained_lenet, torch.device("cpu"))
    options = {"steps": 30, "candidates": 4, "overshoot": 0.02, "loss": loss}
    expected, their_inputs = run(theirs(**options), victim, x, y)
    got, our_inputs = run(ours(**options), victim, x, y)
    # The same examples up to float rounding (a batch of another size may sum in another order).
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    fooled = victim.predict(victim.numpy(got)) != y
    assert fooled.mean() > 0.9, "DeepFool should fool almost every sample of the tiny model"
    # Fooled samples leave the batch, and one forward pass serves every candidate.
    assert our_inputs < their_inputs / 2, (our_inputs, their_inputs)


def test_refuses_a_targeted_criterion(trained_lenet, tiny_data) -> None:
    x, y = tiny_data["test"][0][:4], tiny_data["test"][1][:4]
    victim = module_victim(trained_lenet, torch.device("cpu"))
    criterion = foolbox.criteria.TargetedMisclassification(victim.labels((y + 1) % 10))
    with pytest.raises(ValueError, match="untargeted"):
        L2DeepFool()(victim.model, victim.tensor(x), criterion, epsilons=None)
