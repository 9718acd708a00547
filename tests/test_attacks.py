import numpy as np
import pytest
import torch

from qrobust.attacks import ATTACKS, perturbation_norms, run_attack
from qrobust.errors import ConfigError
from qrobust.training import predict_logits
from tests.conftest import accuracy

LARGE_EPSILON = {"l2": 6.0, "linf": 0.3}


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_stays_in_bounds_and_lowers_accuracy(name: str, trained_lenet, tiny_data) -> None:
    x, y = tiny_data["test"][0][:64], tiny_data["test"][1][:64]
    norm = ATTACKS.get(name).norm.value
    epsilons = (LARGE_EPSILON[norm] / 20, LARGE_EPSILON[norm])
    x_adv = run_attack(trained_lenet, name, {}, epsilons, x, y, batch_size=32, seed=0, device=torch.device("cpu"))
    assert x_adv.shape == (2, *x.shape) and x_adv.dtype == np.float32
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    sizes = perturbation_norms(x_adv, x)[norm]
    assert (sizes[0] <= epsilons[0] * 1.0001).all() and (sizes[1] <= epsilons[1] * 1.0001).all()
    clean = accuracy(predict_logits(trained_lenet, x).argmax(1), y)
    robust = accuracy(predict_logits(trained_lenet, x_adv[1]).argmax(1), y)
    assert robust < clean - 0.3


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_is_reproducible(name: str, trained_lenet, tiny_data) -> None:
    x, y = tiny_data["test"][0][:16], tiny_data["test"][1][:16]
    eps = (LARGE_EPSILON[ATTACKS.get(name).norm.value] / 4,)
    runs = [
        run_attack(trained_lenet, name, {}, eps, x, y, batch_size=16, seed=3, device=torch.device("cpu"))
        for _ in range(2)
    ]
    assert np.array_equal(runs[0], runs[1])


def test_unknown_attack_and_option_are_refused(trained_lenet, tiny_data) -> None:
    x, y = tiny_data["test"][0][:4], tiny_data["test"][1][:4]
    with pytest.raises(ConfigError, match="valid attack names: " + ", ".join(ATTACKS.names())):
        run_attack(trained_lenet, "square", {}, (0.1,), x, y, batch_size=4, seed=0, device=torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"unknown options \['step'\]"):
        run_attack(
            trained_lenet, "linf_pgd", {"step": 3}, (0.1,), x, y, batch_size=4, seed=0, device=torch.device("cpu")
        )


def test_perturbation_norms() -> None:
    x = np.zeros((1, 1, 2, 2), dtype=np.float32)
    adv = np.array([[[[0.3, 0.0], [-0.4, 0.0]]]], dtype=np.float32)[None]
    norms = perturbation_norms(adv, x)
    assert norms["l0"][0, 0] == 2 and np.isclose(norms["l1"][0, 0], 0.7)
    assert np.isclose(norms["l2"][0, 0], 0.5) and np.isclose(norms["linf"][0, 0], 0.4)
