"""The study's robustness figures are no weaker than standard AutoAttack on the same samples.

An adversarially trained model (the study's own recipe, on the tiny task) is attacked as the default study
attacks it, with params.yaml's settings: the headline path (every Linf attack the suite makes on a float
model, per-sample worst case) and the defense study's path (its attack, then the composite on the samples
it left). Standard AutoAttack from torchattacks (its own APGD-CE, APGD-T, FAB-T and Square: 100
iterations, 9 targets, 5,000 queries; Croce & Hein 2020's standard version) runs on the same samples as
the reference. Neither path may leave more samples robust than the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchattacks

from qrobust.architectures import create_model
from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.runner import craft
from qrobust.attacks.threats import Norm
from qrobust.attacks.victims import module_victim
from qrobust.pipeline.device import seed_everything
from qrobust.pipeline.params import load_params
from qrobust.settings.study import Study
from qrobust.training.loop import TrainConfig, fit
from qrobust.training.recipes import create_recipe
from tests.conftest import ROOT, SPEC

SAMPLES = 100


@pytest.fixture(scope="module")
def robust_model(tiny_data: dict[str, tuple[np.ndarray, np.ndarray]]) -> torch.nn.Module:
    """The study's adversarial-training recipe (its options from params.yaml) on the tiny task."""
    study = Study.from_params(load_params(ROOT / "params.yaml"))
    seed_everything(0)
    model = create_model("lenet", SPEC)
    x, y = tiny_data["train"]
    recipe = create_recipe("adversarial", study.train.recipe_options["adversarial"])
    fit(model, recipe, x, y, TrainConfig(epochs=4, batch_size=64, lr=0.003, weight_decay=0.0, seed=0, device="cpu"))
    return model.eval()


def standard_autoattack(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    attack = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=10, seed=0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    adv = attack(xt, yt)
    with torch.no_grad():
        return (model(adv).argmax(1) == yt).numpy() & (model(xt).argmax(1) == yt).numpy()


def robust_after(model: torch.nn.Module, name: str, options, eps: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    victim = module_victim(model, torch.device("cpu"))
    crafted = craft(victim, name, options, [eps], x, y, batch_size=SAMPLES, seed=0, key="attack.attacks")
    return victim.predict(crafted.x_adv[0]) == y


@pytest.mark.slow
def test_headline_and_defense_study_are_no_weaker_than_standard_autoattack(robust_model, tiny_data) -> None:
    study = Study.from_params(load_params(ROOT / "params.yaml"))
    x, y = (a[:SAMPLES] for a in tiny_data["test"])
    victim = module_victim(robust_model, torch.device("cpu"))
    clean = victim.predict(x) == y
    for eps in study.defend.epsilons:
        reference = standard_autoattack(robust_model, x, y, eps)
        assert 0 < reference.sum() < clean.sum(), "the scene must leave some samples robust and break others"
        # The headline path: every Linf attack the suite makes on a float model, per-sample worst case.
        headline = clean.copy()
        for attack in study.attack.attacks:
            if ATTACKS.get(attack.name).norm is Norm.LINF and attack.threat_models and eps in attack.epsilons:
                if "white_float" in {t.value for t in attack.threat_models}:
                    headline &= robust_after(robust_model, attack.name, attack.options, eps, x, y)
        # The defense study's path: its attack, then the composite on what it left (per sample, both must fail).
        first = study.attack.get(study.defend.attack)
        composite = study.defend.composite_attack(study.attack)
        defended = clean & robust_after(robust_model, first.name, first.options, eps, x, y)
        defended &= robust_after(robust_model, composite.name, composite.options, eps, x, y)
        assert headline.sum() <= reference.sum(), (eps, int(headline.sum()), int(reference.sum()))
        assert defended.sum() <= reference.sum(), (eps, int(defended.sum()), int(reference.sum()))
