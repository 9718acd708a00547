import pytest
import torch
from torch import nn
from torch.nn import functional as F

from qrobust.attacks.runner import craft
from qrobust.attacks.victims import module_victim
from qrobust.deploy.runtime import predict_logits
from qrobust.models import create_model
from qrobust.pipeline.device import seed_everything
from qrobust.pipeline.errors import ConfigError
from qrobust.training.catalogue import RECIPES
from qrobust.training.lipschitz import orthogonality_gap
from qrobust.training.loop import TrainConfig, fit
from qrobust.training.recipes import create_recipe, linf_ascent
from tests.conftest import SPEC, accuracy

CONFIG = TrainConfig(epochs=2, batch_size=64, lr=0.003, weight_decay=0.0, seed=0, device="cpu")


def train(recipe: str, options: dict, data) -> torch.nn.Module:
    seed_everything(0)
    model = create_model("lenet", SPEC)
    x, y = data["train"]
    fit(model, create_recipe(recipe, options), x, y, CONFIG)
    return model.eval()


@pytest.fixture(scope="module")
def standard(tiny_data) -> torch.nn.Module:
    return train("standard", {}, tiny_data)


@pytest.mark.parametrize("name", RECIPES.names())
def test_every_recipe_trains_a_working_model(name: str, tiny_data) -> None:
    model = train(name, {}, tiny_data)
    x, y = tiny_data["test"]
    assert accuracy(predict_logits(model, x).argmax(1), y) > 0.8


def test_defensive_quantization_lowers_the_orthogonality_gap(standard, tiny_data) -> None:
    dq = train("dq", {"beta": 0.01}, tiny_data)
    assert orthogonality_gap(dq) < 0.5 * orthogonality_gap(standard)


def test_adversarial_training_and_trades_raise_robust_accuracy(standard, tiny_data) -> None:
    x, y = tiny_data["test"][0][:100], tiny_data["test"][1][:100]

    def robust(model: torch.nn.Module) -> float:
        crafted = craft(
            module_victim(model, torch.device("cpu")), "linf_pgd", {"steps": 5}, (0.35,), x, y, batch_size=100, seed=0
        )
        return accuracy(predict_logits(model, crafted.x_adv[0]).argmax(1), y)

    baseline = robust(standard)
    for name in ("adversarial", "trades"):
        assert robust(train(name, {"epsilon": 0.35}, tiny_data)) > baseline + 0.1, (name, baseline)


def test_distillation_student_learns_its_teachers_soft_labels(standard, tiny_data) -> None:
    """At temperature T the student's softmax matches the teacher's soft labels (Papernot et al. 2016)
    far more closely than a model trained on hard labels does."""
    from qrobust.training.recipes import Distillation

    seed_everything(0)
    x, y = tiny_data["train"]
    recipe = Distillation(20.0).prepare(create_model("lenet", SPEC), x, y, CONFIG)
    xt, yt = tiny_data["test"]
    assert recipe.teacher is not None and accuracy(predict_logits(recipe.teacher, xt).argmax(1), yt) > 0.8
    student = train("distillation", {"temperature": 20.0}, tiny_data)

    def soft(model: torch.nn.Module) -> torch.Tensor:
        return torch.softmax(torch.from_numpy(predict_logits(model, xt)) / 20.0, dim=1)

    def kl_to_teacher(model: torch.nn.Module) -> float:
        p = soft(recipe.teacher)
        return float((p * (p.log() - soft(model).log())).sum(1).mean())

    assert kl_to_teacher(student) < 0.25 * kl_to_teacher(standard), (kl_to_teacher(student), kl_to_teacher(standard))

    # The training signal is the teacher's soft labels alone: the hard labels do not enter the loss, and
    # the teacher itself scores the soft labels' entropy (the minimum of a cross-entropy against them).
    xb, yb = torch.from_numpy(xt[:64]), torch.from_numpy(yt[:64])
    with torch.no_grad():
        assert recipe.loss(student, xb, yb).item() == pytest.approx(recipe.loss(student, xb, (yb + 1) % 10).item())
        p = soft(recipe.teacher)[:64]
        entropy = float(-(p * p.log()).sum(1).mean())
        assert recipe.loss(recipe.teacher, xb, yb).item() == pytest.approx(entropy, rel=1e-4)


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("distillation", {"temperature": -1.0}, r"train.recipe_options.distillation.temperature: .*got -1.0"),
        ("dq", {"beta": -0.1}, r"train.recipe_options.dq.beta: .*got -0.1"),
        ("trades", {"beta": -1}, r"train.recipe_options.trades.beta"),
        ("adversarial", {"epsilon": 0.0}, r"train.recipe_options.adversarial.epsilon: .*got 0.0"),
        ("adversarial", {"eps": 0.1}, r"unknown options \['eps'\]; allowed options: \['epsilon', 'steps'\]"),
    ],
)
def test_bad_recipe_options_fail_before_training(name: str, options: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        create_recipe(name, options)


def test_unknown_recipe_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="valid training recipe names: " + ", ".join(RECIPES.names())):
        RECIPES.get("mixup", key="train.recipes")


def test_inner_attacks_run_in_eval_mode_and_leave_the_mode_as_it_was() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(64, 3))
    x, y = torch.rand(8, 1, 6, 6), torch.randint(0, 3, (8,))
    before = model[1].running_mean.clone(), model[1].num_batches_tracked.clone()

    def attack() -> torch.Tensor:
        loss = lambda logits: F.cross_entropy(logits, y)  # noqa: E731
        return linf_ascent(model, x, loss, epsilon=0.1, steps=3, step_size=0.05, start=torch.zeros_like(x))

    x_adv = attack()  # in train mode, as a recipe calls it
    assert model.training and 0 < (x_adv - x).abs().max() <= 0.1 + 1e-6
    # The attack's queries use BatchNorm's running statistics and do not move them (nor its counter).
    assert torch.equal(model[1].running_mean, before[0]) and torch.equal(model[1].num_batches_tracked, before[1])
    model.eval()
    attack()
    assert not model.training
