import math
from typing import Any

import numpy as np
import pytest
import torch
from foolbox.attacks.base import MinimizationAttack

from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.factory import create_attack
from qrobust.attacks.runner import attack_subset, craft, perturbation_norms, starting_points
from qrobust.attacks.threats import Kind, Norm
from qrobust.attacks.victims import CPU_CHUNK_ROWS, Victim, attack_copy, module_victim, runtime_victim
from qrobust.deploy.runtime import OrtRuntime, predict_logits
from qrobust.models import ARCHITECTURES, create_model
from qrobust.pipeline.errors import ConfigError
from qrobust.settings.attack import AttackConfig
from tests.conftest import SPEC, Noisy, accuracy

# Budgets that move a stripe image to another class (stripes differ by about 6 in L2); random noise
# needs more than an attack to do the same.
LARGE = {Norm.LINF: 0.3, Norm.L2: 6.0, Norm.L1: 60.0}
# The stripes are wide, so the tiny model shrugs off what black-box search and random noise can do at
# those budgets; these need more room (noise: about the whole range).
LARGER = {Kind.SCORE: {Norm.LINF: 0.5}, Kind.DECISION: {Norm.L2: 14.0}, Kind.NOISE: {Norm.LINF: 1.0, Norm.L2: 25.0}}
# Few steps keep the suite fast on the tiny model; every attack still has to work with them.
FAST: dict[str, dict[str, Any]] = {
    "bim": {"steps": 5},
    "linf_pgd": {"steps": 5, "rel_stepsize": 0.25},  # Foolbox's step (eps / 30) moves too little in 5 steps
    "l2_pgd": {"steps": 5},
    "mi_fgsm": {"steps": 5},
    "cw_l2": {"steps": 20, "binary_search_steps": 2, "initial_const": 1.0},
    "ead": {"steps": 20, "binary_search_steps": 2, "initial_const": 1.0},
    "deepfool_l2": {"steps": 10},
    "deepfool_linf": {"steps": 10},
    "fmn_l2": {"steps": 20, "binary_search_steps": 3},
    "boundary": {"steps": 20},
    "hop_skip_jump": {"steps": 2, "initial_gradient_eval_steps": 20, "max_gradient_eval_steps": 100},
    "salt_and_pepper": {"steps": 20},
    "gen_attack": {"steps": 20},
    "square": {"queries": 100},
    "apgd_ce": {"steps": 10},
    "apgd_dlr": {"steps": 10},
    "apgd_t": {"steps": 10, "targets": 2},
    "l2_apgd_ce": {"steps": 10},
    "l2_apgd_dlr": {"steps": 10},
    "l2_apgd_t": {"steps": 10, "targets": 2},
    "autoattack": {"steps": 10, "targets": 2, "queries": 100},
    "diva": {"steps": 10, "rel_stepsize": 0.25},
}


def victim_for(name: str, model: torch.nn.Module, onnx_path) -> Victim:
    """Gradient attacks see the torch model; the others only a real ONNX Runtime session. A differential
    attack's float reference here is the model with its weights moved by 10% noise, as a quantized copy moves
    them (test_diva.py pairs a real quantized model with its float parent)."""
    kind = ATTACKS.get(name).kind
    if kind is Kind.GRADIENT:
        return module_victim(model, torch.device("cpu"))
    if kind is Kind.DIFFERENTIAL:
        victim = module_victim(model, torch.device("cpu"))
        victim.reference = attack_copy(nearby(model), torch.device("cpu"))
        return victim
    return runtime_victim(OrtRuntime(onnx_path), labels_only=kind is Kind.DECISION)


def nearby(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with each weight moved by seeded Gaussian noise of a tenth of its tensor's spread."""
    import copy

    generator = torch.Generator().manual_seed(1)
    moved = copy.deepcopy(model).eval()
    with torch.no_grad():
        for p in moved.parameters():
            p += 0.1 * p.std() * torch.randn(p.shape, generator=generator) if p.numel() > 1 else 0.0
    return moved


def large_epsilon(name: str) -> float:
    entry = ATTACKS.get(name)
    return LARGER.get(entry.kind, {}).get(entry.norm, LARGE[entry.norm])


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_stays_in_bounds_and_lowers_accuracy(name: str, trained_lenet, lenet_onnx, tiny_data) -> None:
    x, y = tiny_data["test"][0][:48], tiny_data["test"][1][:48]
    entry = ATTACKS.get(name)
    epsilons = (large_epsilon(name) / 20, large_epsilon(name))
    victim = victim_for(name, trained_lenet, lenet_onnx)
    crafted = craft(victim, name, FAST.get(name, {}), epsilons, x, y, batch_size=24, seed=0)
    minimizes = isinstance(create_attack(name, FAST.get(name, {}), reference=victim.reference), MinimizationAttack)
    assert entry.minimises is minimizes, "the catalogue's fact disagrees with the attack Foolbox builds"
    expected = (*epsilons, math.inf) if minimizes else epsilons
    assert crafted.epsilons == expected and crafted.x_adv.shape == (len(expected), *x.shape)
    assert crafted.x_adv.dtype == np.float32 and crafted.x_adv.min() >= 0.0 and crafted.x_adv.max() <= 1.0
    sizes = perturbation_norms(crafted.x_adv, x)[entry.norm.value]
    for eps, row in zip(epsilons, sizes, strict=False):
        assert row.max() <= eps * 1.0001 + 1e-6
    # Samples the model gets wrong are not attacked: they stay clean.
    untouched = crafted.x_adv[:, ~crafted.attacked]
    assert np.array_equal(untouched, np.broadcast_to(x[~crafted.attacked], untouched.shape))
    runtime = OrtRuntime(lenet_onnx)
    clean = accuracy(runtime.predict(x), y)
    robust = accuracy(runtime.predict(crafted.x_adv[len(epsilons) - 1]), y)
    # A random baseline is weaker than an attack by design; it still has to hurt at full range.
    assert robust < clean - (0.2 if entry.kind is Kind.NOISE else 0.3), (name, clean, robust)
    assert crafted.queries_per_sample > 0


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_is_reproducible(name: str, trained_lenet, lenet_onnx, tiny_data) -> None:
    x, y = tiny_data["test"][0][:8], tiny_data["test"][1][:8]
    eps = (large_epsilon(name) / 2,)
    runs = [
        craft(victim_for(name, trained_lenet, lenet_onnx), name, FAST.get(name, {}), eps, x, y, batch_size=8, seed=3)
        for _ in range(2)
    ]
    assert np.array_equal(runs[0].x_adv, runs[1].x_adv) and runs[0].queries_per_sample == runs[1].queries_per_sample


def test_black_box_attacks_query_the_runtime_within_budget(lenet_onnx, tiny_data) -> None:
    x, y = tiny_data["test"][0][:16], tiny_data["test"][1][:16]
    victim = runtime_victim(OrtRuntime(lenet_onnx), labels_only=False)
    crafted = craft(victim, "square", {"queries": 50}, (0.02,), x, y, batch_size=16, seed=0)
    # The Square budget, plus Foolbox's success check once per epsilon.
    assert 1 <= crafted.queries_per_sample <= 50 + 1


def test_decision_victim_sees_labels_only(lenet_onnx, tiny_data) -> None:
    x = tiny_data["test"][0][:8]
    runtime = OrtRuntime(lenet_onnx)
    scores = runtime_victim(runtime, labels_only=True).logits(x)
    assert set(np.unique(scores)) == {0.0, 1.0} and np.array_equal(scores.argmax(1), runtime.predict(x))
    victim = runtime_victim(runtime, labels_only=False)  # log-probabilities: the logits shifted per sample
    scores, logits = victim.logits(x), runtime.logits(x)
    assert np.allclose(np.exp(scores).sum(1), 1.0, atol=1e-5) and victim.queries == 8
    assert np.allclose(scores - scores[:, :1], logits - logits[:, :1], atol=1e-4)


class _Loud:
    """A runtime whose logits are the LeNet's times 1,000 (LeNet trained quantization-aware at 2 bits has
    logits in the hundreds)."""

    def __init__(self, runtime: OrtRuntime) -> None:
        self.runtime = runtime

    def logits(self, x: np.ndarray) -> np.ndarray:
        return 1000.0 * self.runtime.logits(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.runtime.predict(x)


def test_a_score_based_attack_survives_logits_in_the_thousands(lenet_onnx, tiny_data) -> None:
    """GenAttack exponentiates its scores: on raw logits this large its fitness was NaN and the stage failed."""
    x, y = tiny_data["test"][0][:8], tiny_data["test"][1][:8]
    victim = runtime_victim(_Loud(OrtRuntime(lenet_onnx)), labels_only=False)
    crafted = craft(victim, "gen_attack", FAST.get("gen_attack", {}), (0.1,), x, y, batch_size=8, seed=0)
    assert np.isfinite(crafted.x_adv).all()


@pytest.mark.parametrize("name", ["boundary", "hop_skip_jump"])
def test_decision_attacks_walk_towards_the_boundary(name: str, lenet_onnx, tiny_data) -> None:
    """Their unclipped output must be closer than the adversarial starting points they walk from (a
    large budget alone passes with zero steps: the starting points are already adversarial)."""
    x, y = tiny_data["test"][0][:16], tiny_data["test"][1][:16]
    runtime = OrtRuntime(lenet_onnx)
    start, _ = starting_points(runtime_victim(runtime, labels_only=True), x, y, seed=0)
    options = {"boundary": {"steps": 200}, "hop_skip_jump": {**FAST["hop_skip_jump"], "steps": 5}}[name]
    crafted = craft(runtime_victim(runtime, labels_only=True), name, options, (14.0,), x, y, batch_size=16, seed=0)
    found = crafted.attacked & (runtime.predict(crafted.x_adv[-1]) != y)
    assert found.all(), found
    walked = perturbation_norms(crafted.x_adv[-1], x)["l2"][found]
    # Measured on this fixture: medians 3.57 (Boundary) and 3.61 (HopSkipJump) from 3.74.
    assert np.median(walked) < 0.98 * np.median(perturbation_norms(start, x)["l2"][found])


def test_starting_points_are_adversarial(lenet_onnx, tiny_data) -> None:
    x, y = tiny_data["test"][0][:32], tiny_data["test"][1][:32]
    victim = runtime_victim(OrtRuntime(lenet_onnx), labels_only=True)
    start, startable = starting_points(victim, x, y, seed=0)
    assert startable.all() and (victim.predict(start) != y).all() and start.min() >= 0.0 and start.max() <= 1.0


class _OneClass:
    """A deployed model that answers class 3 for every input, as a collapsed 2-bit model does."""

    def logits(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), 10), dtype=np.float32)
        out[:, 3] = 1.0
        return out


@pytest.mark.parametrize("name", ["boundary", "hop_skip_jump"])
def test_a_model_that_answers_one_class_leaves_its_class_unattacked(name: str, tiny_data) -> None:
    """No input of the batch is classified otherwise, so a decision attack has no adversarial start for a
    sample of that class: the sample stays clean (the attack did not fool the model there) and nothing fails."""
    x, y = tiny_data["test"][0][:40], tiny_data["test"][1][:40]
    victim = runtime_victim(_OneClass(), labels_only=True)
    _, startable = starting_points(victim, x, y, seed=0)
    assert np.array_equal(startable, y != 3)  # a sample of class 3 meets no other class in the batch
    crafted = craft(victim, name, FAST[name], (2.0,), x, y, batch_size=40, seed=0)
    assert np.array_equal(crafted.attacked, y == 3) and crafted.attacked.any()
    assert np.array_equal(crafted.x_adv, np.broadcast_to(x, crafted.x_adv.shape))


def test_straight_through_gradients_beat_the_masked_ones(trained_lenet, lenet_onnx, tiny_data, tmp_path) -> None:
    """White-box through the exact twin is gradient masking; the straight-through twin (BPDA) is not."""
    from qrobust.deploy.backends import load_runtime, load_twin
    from qrobust.quantization.quantizers import FloatModel, create_quantizer
    from qrobust.quantization.twins import GradMode
    from tests.conftest import SPEC

    create_quantizer("ort_int8", {}).quantize(
        FloatModel(trained_lenet, lenet_onnx, "lenet", SPEC), tiny_data["calib"][0], tmp_path
    )
    x, y = tiny_data["test"][0][:48], tiny_data["test"][1][:48]
    runtime = load_runtime(tmp_path)
    robust = {}
    for mode in GradMode:
        victim = module_victim(load_twin(tmp_path, mode), torch.device("cpu"))
        crafted = craft(victim, "linf_pgd", {"steps": 10}, (0.3,), x, y, batch_size=48, seed=0)
        robust[mode] = accuracy(runtime.predict(crafted.x_adv[0]), y)
    assert robust[GradMode.STE] < robust[GradMode.EXACT] - 0.3, robust


def test_unknown_attack_and_option_are_refused(trained_lenet, tiny_data) -> None:
    x, y = tiny_data["test"][0][:4], tiny_data["test"][1][:4]
    victim = module_victim(trained_lenet, torch.device("cpu"))
    with pytest.raises(ConfigError, match="valid attack names: " + ", ".join(ATTACKS.names())):
        craft(victim, "squares", {}, (0.1,), x, y, batch_size=4, seed=0)
    with pytest.raises(ConfigError, match=r"unknown options \['step'\]"):
        craft(victim, "linf_pgd", {"step": 3}, (0.1,), x, y, batch_size=4, seed=0)
    with pytest.raises(ConfigError, match="queries: expected a positive integer, got 0"):
        craft(victim, "square", {"queries": 0}, (0.1,), x, y, batch_size=4, seed=0)


def test_departures_name_every_setting_off_the_defaults_that_the_attack_uses() -> None:
    """What a report prints beside a cut-down attack: AutoAttack's defaults are its standard version, and
    Square's budget is not named when Square does not run."""
    from qrobust.attacks.catalogue import departures

    assert departures("autoattack", {}) == ""
    assert departures("autoattack", {"steps": 20, "fab": False, "queries": 500}) == (
        "steps 20 (default 100), queries 500 (default 5000), no fab"
    )
    assert departures("autoattack", {"square": False, "queries": 500, "p_init": 0.05}) == "no square"
    assert departures("square", {"queries": 300}) == "queries 300 (default 1000)"


@pytest.mark.parametrize("name", ATTACKS.names())
def test_threat_models_must_fit_the_attack(name: str) -> None:
    kind = ATTACKS.get(name).kind
    wrong = "black_runtime" if kind in (Kind.GRADIENT, Kind.DIFFERENTIAL) else "white_qnn_ste"
    body = {"threat_models": [wrong], "epsilons": [0.1], "samples": 10}
    with pytest.raises(ConfigError, match=f"{wrong!r} is not possible for a {kind.value} attack; allowed: "):
        AttackConfig.from_params(name, body, 28 * 28)
    body["threat_models"] = [t.value for t in kind.threat_models]
    assert AttackConfig.from_params(name, body, 28 * 28).threat_models == kind.threat_models


def test_attack_subsets_are_seeded_and_nested() -> None:
    small, large = attack_subset(1000, 100, seed=0), attack_subset(1000, 300, seed=0)
    assert np.array_equal(small, attack_subset(1000, 100, seed=0)) and set(small) <= set(large)
    assert len(large) == 300 and np.array_equal(large, np.sort(large)) and len(attack_subset(50, 300, 0)) == 50


def test_perturbation_norms() -> None:
    x = np.zeros((1, 1, 2, 2), dtype=np.float32)
    adv = np.array([[[[0.3, 0.0], [-0.4, 0.0]]]], dtype=np.float32)[None]
    norms = perturbation_norms(adv, x)
    assert norms["l0"][0, 0] == 2 and np.isclose(norms["l1"][0, 0], 0.7)
    assert np.isclose(norms["l2"][0, 0], 0.5) and np.isclose(norms["linf"][0, 0], 0.4)


@pytest.mark.parametrize("name", ["fgsm", "linf_pgd", "bim", "mi_fgsm", "l2_pgd"])
def test_whole_grid_in_one_batch_matches_one_epsilon_at_a_time(name: str, trained_lenet, tiny_data) -> None:
    """The grid runs as one batch, one epsilon per input; each epsilon's slice is an attack at that
    epsilon: inside its own ball, and as strong as the attack run on that epsilon alone."""
    from qrobust.attacks.runner import per_sample_epsilon

    x, y = tiny_data["test"][0][:48], tiny_data["test"][1][:48]
    entry = ATTACKS.get(name)
    assert per_sample_epsilon(create_attack(name, FAST.get(name, {}))) is not None
    big = LARGE[entry.norm]
    grid = (big / 8, big / 2, big)
    together = craft(module_victim(trained_lenet, torch.device("cpu")), name, FAST.get(name, {}), grid, x, y,
                     batch_size=64, seed=0)  # fmt: skip
    sizes = perturbation_norms(together.x_adv, x)[entry.norm.value]
    for k, eps in enumerate(grid):
        assert sizes[k].max() <= eps * (1 + 1e-4) + 1e-6
        alone = craft(module_victim(trained_lenet, torch.device("cpu")), name, FAST.get(name, {}), (eps,), x, y,
                      batch_size=64, seed=0)  # fmt: skip
        if entry.norm is Norm.LINF and name in ("fgsm", "bim"):  # no random start: the same examples, but for
            # a pixel whose gradient is near zero: passes of other sizes round it differently, flipping its sign
            assert np.mean(np.abs(together.x_adv[k] - alone.x_adv[0]) > 1e-6) < 1e-3
        right = [accuracy(predict_logits(trained_lenet, s).argmax(1), y) for s in (together.x_adv[k], alone.x_adv[0])]
        assert abs(right[0] - right[1]) <= 0.15
    robust = [accuracy(predict_logits(trained_lenet, together.x_adv[k]).argmax(1), y) for k in range(len(grid))]
    assert robust == sorted(robust, reverse=True) and robust[-1] < robust[0]


def test_attacks_without_a_per_sample_epsilon_keep_foolbox_loop() -> None:
    from qrobust.attacks.runner import per_sample_epsilon

    for name in ("deepfool_l2", "cw_l2", "apgd_ce", "square", "boundary"):
        assert per_sample_epsilon(create_attack(name, {})) is None


def test_attack_victims_compute_no_weight_gradients_and_leave_the_model_alone(trained_lenet, tiny_data) -> None:
    x, y = tiny_data["test"][0][:48], tiny_data["test"][1][:48]
    before = [None if p.grad is None else p.grad.clone() for p in trained_lenet.parameters()]
    for name in ("linf_pgd", "deepfool_l2"):
        craft(module_victim(trained_lenet, torch.device("cpu")), name, FAST[name], (0.1,), x, y, batch_size=24, seed=0)
    for p, grad in zip(trained_lenet.parameters(), before, strict=True):
        assert p.requires_grad and (p.grad is None if grad is None else torch.equal(p.grad, grad))


def test_a_module_victim_computes_what_its_module_does(trained_lenet, tiny_data) -> None:
    """The victim runs a frozen channels-last copy (oneDNN's faster layout): the same logits and input
    gradients as the caller's model to float tolerance, and the caller's model is left as it was."""
    x = torch.from_numpy(tiny_data["test"][0][:16])
    y = torch.from_numpy(tiny_data["test"][1][:16])
    victim = module_victim(trained_lenet, torch.device("cpu"))

    def logits_and_gradient(model: Any) -> tuple[torch.Tensor, torch.Tensor]:
        xg = x.clone().requires_grad_(True)
        logits = model(xg)
        (gradient,) = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y), xg)
        return logits.detach(), gradient

    ours, theirs = logits_and_gradient(victim.model._model), logits_and_gradient(trained_lenet)
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours[1], theirs[1], rtol=1e-4, atol=1e-6)
    conv = next(m for m in trained_lenet.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous() and conv.weight.requires_grad


@pytest.mark.parametrize("arch", ARCHITECTURES.names())
def test_the_attacked_copy_of_every_architecture_computes_the_same_function(arch: str) -> None:
    """``attack_copy`` folds batch norms into their convolutions and moves ReLUs after max pools: the
    same logits and input gradients as the model (float tolerance), which itself keeps its layers."""
    torch.manual_seed(0)
    model = create_model(arch, SPEC)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # statistics unlike the defaults
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    layers = [type(m) for m in model.modules()]
    attacked = attack_copy(model, torch.device("cpu"))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in attacked.modules())
    assert [type(m) for m in model.modules()] == layers
    x = torch.rand(8, 1, SPEC.size, SPEC.size)
    y = torch.arange(8) % SPEC.num_classes
    results = []
    for m in (model, attacked):
        xg = x.clone().requires_grad_(True)
        logits = m(xg)
        results.append((logits.detach(), torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y), xg)[0]))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHITECTURES.names())
def test_a_victim_run_in_chunks_gives_the_bits_of_one_batch(arch: str) -> None:
    """On CPU a victim runs ``CPU_CHUNK_ROWS`` inputs at a time (faster: they stay in cache); every op of
    the attacked copy is per sample, so a batch of whole chunks gives the same bits as one pass. A batch
    with a remainder agrees to float rounding: its last rows go through a kernel's tail either way."""
    torch.manual_seed(0)
    victim = module_victim(create_model(arch, SPEC).eval(), torch.device("cpu"))
    counting = victim.module
    assert counting.rows == CPU_CHUNK_ROWS
    for n, exact in ((CPU_CHUNK_ROWS * 3, True), (CPU_CHUNK_ROWS * 2 + 7, False)):
        x = torch.rand(n, 1, SPEC.size, SPEC.size)
        y = torch.arange(n) % SPEC.num_classes
        results = []
        for rows in (CPU_CHUNK_ROWS, None):
            counting.rows = rows
            xg = x.clone().requires_grad_(True)
            logits = counting(xg)
            gradient = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y), xg)[0]
            results.append((logits.detach(), gradient))
        chunked, whole = results
        if exact:
            assert torch.equal(chunked[0], whole[0]) and torch.equal(chunked[1], whole[1])
        else:
            torch.testing.assert_close(chunked[0], whole[0], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(chunked[1], whole[1], rtol=1e-3, atol=1e-9)


def test_a_victim_that_draws_randomness_runs_in_one_batch(trained_lenet) -> None:
    """Cutting the batch would change which random numbers each input gets."""
    assert module_victim(Noisy(trained_lenet, sigma=0.1), torch.device("cpu")).module.rows is None
    assert module_victim(trained_lenet, torch.device("cpu")).module.rows == CPU_CHUNK_ROWS
