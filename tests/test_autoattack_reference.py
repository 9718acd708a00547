"""The study's robustness figures against standard AutoAttack from outside the project (torchattacks' port of
the authors' code: APGD-CE, APGD-T and FAB-T with 9 targets and 100 iterations, Square at 5,000 queries) on
the same samples. A figure above AutoAttack's would flatter the model it describes.

The models are small LeNets trained here on a few thousand real Fashion-MNIST images, a standard one and one
adversarially trained with the study's own recipe options; the attacks run with the options params.yaml
gives the default study. ``benchmarks/autoattack_gap.py`` makes the same comparison on the study's own
models and 500 samples.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.runner import craft
from qrobust.attacks.threats import Kind, Norm, ThreatModel
from qrobust.attacks.victims import module_victim
from qrobust.data.readers import read_idx_release
from qrobust.findings.headline import study_budget
from qrobust.models import InputSpec, create_model
from qrobust.pipeline.device import seed_everything
from qrobust.pipeline.model_id import ModelId
from qrobust.settings.study import load_study
from qrobust.training.loop import TrainConfig, fit
from qrobust.training.recipes import create_recipe
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

STUDY = load_study(str(ROOT / "params.yaml"))
SPEC = InputSpec(channels=1, size=28, num_classes=10, mean=(0.286,), std=(0.353,))
TRAIN, SAMPLES = 6000, 100


@pytest.fixture(scope="module")
def fashion() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    train, test = read_idx_release(STUDY.prepare.root.parent, STUDY.prepare.root.name)
    scale = np.float32(1 / 255)
    return train.x[:TRAIN] * scale, train.y[:TRAIN], test.x[:SAMPLES] * scale, test.y[:SAMPLES]


def _trained(recipe: str, fashion) -> torch.nn.Module:
    x, y, _, _ = fashion
    seed_everything(0)
    model = create_model("lenet", SPEC)
    config = TrainConfig(epochs=3, batch_size=64, lr=0.003, weight_decay=0.0, seed=0, device="cpu")
    fit(model, create_recipe(recipe, dict(STUDY.train.recipe_options.get(recipe, {}))), x, y, config)
    return model.eval()


def _autoattack(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    """Standard AutoAttack's robust samples (clean right and not fooled)."""
    import torchattacks

    victim = module_victim(model, torch.device("cpu"))
    attack = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=10, seed=0)
    adv = attack(torch.from_numpy(x), torch.from_numpy(y)).detach().numpy()
    return (victim.predict(x) == y) & (victim.predict(adv) == y)


def test_the_headline_worst_case_is_no_weaker_than_standard_autoattack(fashion) -> None:
    """The headline worst case of a float model: per sample over the suite's fixed-budget Linf attacks on it
    (white-box and query-based, as params.yaml runs them; the study's worst case adds the rest of the suite,
    so it can only be lower), at the headline epsilon."""
    _, _, x, y = fashion
    model = _trained("standard", fashion)
    victim = module_victim(model, torch.device("cpu"))
    _, eps = study_budget(STUDY)
    robust = victim.predict(x) == y
    ran = []
    for attack in STUDY.attack.attacks:
        entry = ATTACKS.get(attack.name)
        if entry.norm is not Norm.LINF or entry.minimises or entry.kind not in (Kind.GRADIENT, Kind.SCORE):
            continue
        if not {ThreatModel.WHITE_FLOAT, ThreatModel.BLACK_RUNTIME} & set(attack.threat_models):
            continue
        crafted = craft(victim, attack.name, attack.options, [eps], x, y, batch_size=250, seed=STUDY.attack.seed)
        robust &= victim.predict(crafted.x_adv[0]) == y
        ran.append(attack.name)
    assert {"linf_pgd", "autoattack"} <= set(ran), ran
    reference = _autoattack(model, x, y, eps)
    assert robust.sum() <= reference.sum(), (ran, int(robust.sum()), int(reference.sum()))


def test_the_defense_study_on_an_adversarially_trained_model_is_no_weaker_than_standard_autoattack(fashion) -> None:
    """The defense study's adaptive path on an adversarially trained model (defend.attack, then
    defend.composite on the samples it left, with defend.composite_options) at each defense epsilon."""
    from qrobust.defenses.study import DefenseStudy

    _, _, x, y = fashion
    model = _trained("adversarial", fashion)
    victim = module_victim(model, torch.device("cpu"))
    attack = STUDY.attack.get(STUDY.defend.attack)
    study = DefenseStudy(
        settings=STUDY.defend,
        attack=dataclasses.replace(attack, samples_by_threat={ThreatModel.WHITE_FLOAT: SAMPLES}),
        composite=STUDY.defend.composite_attack(STUDY.attack),
        randomised_composite=STUDY.defend.composite_attack(STUDY.attack, randomised=True),
        boundary=STUDY.attack.get(STUDY.defend.boundary_attack),
        spec=SPEC,
        device=torch.device("cpu"),
        batch_size=STUDY.attack.batch_size,
        x_eval=x,
        y_eval=y,
    )
    assert np.array_equal(study.x, x)
    sets = study.adaptive_sets(model, victim.predict, ModelId("lenet", "adversarial"), ThreatModel.WHITE_FLOAT)
    robust = study.robust(victim.predict, sets[-1])
    for e, eps in enumerate(study.settings.epsilons):
        reference = _autoattack(model, x, y, eps)
        assert 0 < reference.sum() < (victim.predict(x) == y).sum(), eps  # neither trivial nor hopeless
        assert robust[e].sum() <= reference.sum(), (eps, int(robust[e].sum()), int(reference.sum()))
