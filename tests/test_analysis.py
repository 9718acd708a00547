"""Each analysis measurement on a small constructed case whose answer is known in advance."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from qrobust.analysis.mechanisms import (
    bin_shift,
    bootstrap_median_difference,
    boundary_distances,
    cosines,
    flip_rate,
    input_gradients,
    layer_conditioning,
    layer_outputs,
    loss_trace,
    plateaued,
    quartiles,
    relative_change,
    same_size_noise,
    sample_change,
)
from qrobust.quantization.twins import GradMode, fake_quantize


class FakeQuant(nn.Module):
    """Per-tensor fake quantization to ``levels`` bins of [0, 1], rounding as the twins do."""

    def __init__(self, mode: GradMode, levels: int = 4) -> None:
        super().__init__()
        self.mode, self.levels = mode, levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, zero = torch.tensor(1.0 / self.levels), torch.tensor(0.0)
        return fake_quantize(x, scale, zero, 0, self.levels, None, self.mode)


def linear(weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


def data(n: int = 64, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.1, 0.9, (n, 1, 1, d)).astype(np.float32), rng.integers(0, 2, n)


def test_a_twin_identical_to_its_float_model_is_perfectly_aligned() -> None:
    x, y = data()
    model = nn.Sequential(nn.Flatten(), linear([[1.0, -2.0, 0.5, 0.0], [0.0, 1.0, -1.0, 2.0]]))
    same = input_gradients(model, x, y)
    assert np.allclose(cosines(same, input_gradients(model, x, y)), 1.0)
    flipped = nn.Sequential(nn.Flatten(), linear([[-1.0, 2.0, -0.5, 0.0], [0.0, -1.0, 1.0, -2.0]]))
    assert np.allclose(cosines(same, input_gradients(flipped, x, y)), -1.0)


def test_a_hard_step_gives_zero_gradients_and_straight_through_does_not() -> None:
    x, y = data()
    head = linear([[1.0, -1.0, 1.0, -1.0], [-1.0, 1.0, -1.0, 1.0]])
    exact = input_gradients(nn.Sequential(FakeQuant(GradMode.EXACT), nn.Flatten(), head), x, y)
    ste = input_gradients(nn.Sequential(FakeQuant(GradMode.STE), nn.Flatten(), head), x, y)
    assert (exact == 0).all() and (ste != 0).all()
    assert (cosines(ste, exact) == 0).all()  # no direction to agree with


def test_bin_shift_counts_values_that_change_bin() -> None:
    twin = nn.Sequential(FakeQuant(GradMode.EXACT), nn.Flatten())
    x = np.full((8, 1, 1, 4), 0.1, dtype=np.float32)  # level 0 of 4 (bins 0.25 wide)
    assert bin_shift(twin, x, x) == [0.0]
    moved = x.copy()
    moved[..., :1] = 0.4  # one value in four crosses into level 2
    assert bin_shift(twin, x, moved) == [0.25]


def test_flip_rate_and_same_size_noise() -> None:
    x = np.zeros((10, 1, 1, 4), dtype=np.float32) + 0.5
    adv = x.copy()
    adv[:, 0, 0, 0] += 0.3
    noise = same_size_noise(x, adv, seed=0)
    sizes = np.linalg.norm((noise - x).reshape(10, -1), axis=1)
    assert np.allclose(sizes, 0.3, atol=1e-6)  # no value reaches the [0, 1] clip from 0.5
    predict = lambda v: (v.reshape(len(v), -1)[:, 0] > 0.6).astype(int)  # noqa: E731
    assert flip_rate(predict, x, adv) == 1.0 and flip_rate(predict, x, x) == 0.0


def test_amplification_of_a_linear_layer_is_its_gain_on_the_perturbation() -> None:
    """f(x) = W x with W = diag(2, 0.5): a perturbation along the first axis is amplified four times
    relative to one along the second, in ratio to ||W x||."""
    model = nn.Sequential(nn.Flatten(), linear([[2.0, 0.0], [0.0, 0.5]]))
    x = np.array([[[[1.0, 1.0]]]], dtype=np.float32)
    along_first, along_second = x + np.array([0.1, 0.0], np.float32), x + np.array([0.0, 0.1], np.float32)
    clean = layer_outputs(model, x)
    wx = np.hypot(2.0, 0.5)
    first = relative_change(list(clean.values()), list(layer_outputs(model, along_first).values()))
    second = relative_change(list(clean.values()), list(layer_outputs(model, along_second).values()))
    assert first == pytest.approx([0.2 / wx]) and second == pytest.approx([0.05 / wx])


def test_sample_change_is_per_sample_and_skips_zero_outputs() -> None:
    clean = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    other = np.array([[3.0, 4.5], [1.0, 0.0], [1.0, 2.0]])
    change = sample_change(clean, other)
    assert change[0] == pytest.approx(0.1) and np.isnan(change[1]) and change[2] == pytest.approx(2.0)


def test_loss_trace_climbs_a_linear_model_until_the_budget_binds() -> None:
    """Two classes, logit gap 2 * sum(x) = 4: each sign step of 2.5 eps / 8 raises the loss until the
    Linf ball binds after 4 steps; a margin far beyond the ball leaves every sample correct."""
    x = np.full((6, 1, 1, 4), 0.5, dtype=np.float32)
    y = np.zeros(6, dtype=np.int64)
    model = nn.Sequential(nn.Flatten(), linear([[2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]]))
    losses, fooled = loss_trace(model, model, x, y, epsilon=0.1, steps=8)
    assert losses.shape == (9, 6) and not fooled.any()
    mean = losses.mean(axis=1)
    assert (np.diff(mean[:4]) > 0).all() and np.allclose(mean[4:], mean[4])  # the ball binds at step 4 (3.2 steps)
    assert not plateaued(losses, fooled).any()  # it still improved after the quarter mark (step 2)


def test_loss_trace_through_a_hard_step_plateaus_at_once() -> None:
    x, y = data(16)
    head = linear([[1.0, -1.0, 1.0, -1.0], [-1.0, 1.0, -1.0, 1.0]])
    exact = nn.Sequential(FakeQuant(GradMode.EXACT), nn.Flatten(), head)
    losses, fooled = loss_trace(exact, exact, x, y, epsilon=0.05, steps=8)
    assert np.allclose(losses, losses[0]) and plateaued(losses, fooled).all()
    # Straight through the same step, the attack moves and the loss it scores on the exact model rises.
    ste = nn.Sequential(FakeQuant(GradMode.STE), nn.Flatten(), head)
    losses, fooled = loss_trace(ste, exact, x, y, epsilon=0.3, steps=8)
    assert losses[-1].mean() > losses[0].mean()


def test_loss_trace_scores_the_same_whether_or_not_the_scored_model_is_the_attacked_one() -> None:
    """One forward pass serves the gradient and the score when the attacker differentiates the scored
    model itself: the trace equals scoring a separate copy after every step."""
    x, y = data(32)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    shared = loss_trace(model, model, x, y, epsilon=0.2, steps=6)
    separate = loss_trace(model, copy.deepcopy(model), x, y, epsilon=0.2, steps=6)
    assert np.array_equal(shared[0], separate[0]) and np.array_equal(shared[1], separate[1])
    assert shared[0].shape == (7, 32) and (shared[0][-1] > shared[0][0]).mean() > 0.9


def test_loss_trace_stops_computing_once_no_sample_can_move() -> None:
    """A model with no input gradient: the first step moves nothing, so every later step repeats it; the
    trace records it without running the model again."""
    x, y = data(8)
    calls = []
    exact = nn.Sequential(FakeQuant(GradMode.EXACT), nn.Flatten(), linear([[1.0, -1.0, 1.0, -1.0], [0.0] * 4]))
    exact.register_forward_hook(lambda *_: calls.append(1))
    losses, _ = loss_trace(exact, exact, x, y, epsilon=0.1, steps=10)
    assert losses.shape == (11, 8) and (losses == losses[0]).all() and len(calls) == 1


def test_layer_conditioning_of_an_orthogonal_and_a_scaled_layer() -> None:
    model = nn.Sequential(linear([[0.0, 1.0], [1.0, 0.0]]), linear([[3.0, 0.0], [0.0, 1.0]]))
    measured = layer_conditioning(model)
    assert measured["0"] == pytest.approx({"orthogonality_gap": 0.0, "spectral_norm": 1.0})
    assert measured["1"] == pytest.approx({"orthogonality_gap": 64.0, "spectral_norm": 3.0})  # (9 - 1)^2


def test_quartiles() -> None:
    assert quartiles(np.arange(5.0)) == {"q1": 1.0, "median": 2.0, "q3": 3.0}


@pytest.fixture(scope="module")
def deployed(trained_lenet, lenet_onnx, tiny_data, tmp_path_factory) -> list:
    from qrobust.analysis.mechanisms import Deployed
    from qrobust.deploy.backends import load_runtime, load_twin
    from qrobust.quantization.quantizers import FloatModel, create_quantizer
    from tests.conftest import SPEC

    out = []
    for name in ("ort_int8", "inc_w4"):  # quantized activations, and weights only
        folder = tmp_path_factory.mktemp(name)
        create_quantizer(name, {}).quantize(
            FloatModel(trained_lenet, lenet_onnx, "lenet", SPEC), tiny_data["calib"][0], folder
        )
        twins = {mode: load_twin(folder, mode) for mode in GradMode}
        out.append(Deployed(name, load_runtime(folder).predict, twins[GradMode.EXACT], twins[GradMode.STE]))
    return out


def test_analyse_on_real_twins(trained_lenet, lenet_onnx, deployed, tiny_data) -> None:
    from qrobust.analysis.mechanisms import activation_levels, analyse
    from qrobust.deploy.runtime import OrtRuntime

    x, y = tiny_data["test"][0][:40], tiny_data["test"][1][:40]
    int8, weight_only = deployed
    levels = activation_levels(int8.exact, x)
    assert len(levels) >= 5 and all(len(level) == len(x) for level in levels)  # every quantized activation
    assert activation_levels(weight_only.exact, x) == []
    assert bin_shift(int8.exact, x, x) == [0.0] * len(levels)

    x_adv = np.stack([np.clip(x + 0.1 * np.sign(np.random.default_rng(0).standard_normal(x.shape)), 0, 1)] * 2)
    x_adv[:, :5] = x[:5]  # samples the attack left alone do not count
    measured = analyse(
        trained_lenet, OrtRuntime(lenet_onnx).predict, deployed, x, y, x_adv.astype(np.float32), (0.1, 0.2), 0
    )
    m = measured["ort_int8"]
    assert m["zero_gradient/exact"]["rate"] == 1.0 and m["zero_gradient/ste"]["rate"] == 0.0
    assert m["grad_cosine/ste"]["median"] > 0.8 and m["grad_cosine/exact"]["median"] == 0.0
    assert m["flip/noise/eps=0.1"]["n"] == 35 and m["quantized_activations"] == len(levels)
    assert 0.0 < m["bin_shift/adversarial/eps=0.1"]["act0"] < 1.0
    w = measured["inc_w4"]
    assert w["quantized_activations"] == 0 and "bin_shift/adversarial_above_noise/eps=0.1" not in w
    assert w["grad_cosine/ste"]["median"] > 0.95  # weight-only rounding barely turns the gradient
    for q in (m, w):  # counted on the moved samples whose two changes differ by 10%, and on the float successes
        assert q["output_change/quantized_above_float/eps=0.1"]["n"] <= 35
        assert q["output_change/adversarial/eps=0.1"]["quantized"]["median"] > 0
        assert q["transfer_retention/eps=0.1"]["n"] <= 35
    assert m["output_change/quantized_above_float/eps=0.1"]["n"] > 0  # int8 activations move some by over 10%


def test_a_twin_identical_to_its_float_model_changes_its_output_no_more_and_keeps_every_transfer(
    trained_lenet, lenet_onnx, tiny_data
) -> None:
    from qrobust.analysis.mechanisms import Deployed, analyse
    from qrobust.deploy.runtime import OrtRuntime

    x, y = tiny_data["test"][0][:40], tiny_data["test"][1][:40]
    predict = OrtRuntime(lenet_onnx).predict
    same = Deployed("same", predict, trained_lenet, trained_lenet)
    x_adv = (1.0 - x)[None]  # inverted images: most are misclassified
    m = analyse(trained_lenet, predict, [same], x, y, x_adv.astype(np.float32), (0.2,), 0)["same"]
    assert m["output_change/quantized_above_float/eps=0.2"]["k"] == 0  # never above itself
    retention = m["transfer_retention/eps=0.2"]
    assert retention["n"] > 0 and retention["rate"] == 1.0
    assert m["grad_cosine/ste"]["median"] == pytest.approx(1.0)


def test_loss_plateaus_flag_the_exact_twin_and_not_the_float_model(trained_lenet, deployed, tiny_data) -> None:
    from qrobust.analysis.mechanisms import loss_plateaus

    x, y = tiny_data["test"][0][:60], tiny_data["test"][1][:60]
    traced = loss_plateaus(trained_lenet, deployed[:1], x, y, epsilon=0.02, steps=8)
    exact, ste, floating = (
        traced["ort_int8"]["loss_plateau/exact"], traced["ort_int8"]["loss_plateau/ste"], traced["float"]["loss_plateau"],
    )  # fmt: skip
    assert exact["rate"] == 1.0 and exact["n"] > 0  # zero gradients: the loss never moves
    assert floating["rate"] < 0.5 and ste["rate"] < 0.5


def test_bootstrap_median_difference_of_known_samples() -> None:
    exact = bootstrap_median_difference(np.ones(30), np.full(40, 3.0), seed=0)
    assert exact == {"difference": 2.0, "low": 2.0, "high": 2.0, "n_a": 30, "n_b": 40}
    rng = np.random.default_rng(0)
    same = bootstrap_median_difference(rng.normal(1, 0.1, 200), rng.normal(1, 0.1, 200), seed=0)
    assert same["low"] < 0 < same["high"]
    shifted = bootstrap_median_difference(rng.normal(1, 0.1, 200), rng.normal(1.5, 0.1, 200), seed=0)
    assert 0.4 < shifted["low"] < shifted["difference"] < shifted["high"] < 0.6
    assert np.isnan(bootstrap_median_difference(np.array([]), np.ones(3), seed=0)["difference"])


def test_boundary_distances_count_only_fooling_outputs() -> None:
    x = np.zeros((4, 1, 1, 2), np.float32)
    predict = lambda v: np.array([0, 1, 1, 0])  # noqa: E731
    assert boundary_distances(predict, x, np.array([0, 0, 1, 1]), np.array([1.0, 2.0, 3.0, 4.0])).tolist() == [2.0, 4.0]
    # A sample wrong before any attack (left unmoved, size 0) has no distance to report.
    assert boundary_distances(predict, x, np.array([0, 0, 1, 1]), np.array([1.0, 0.0, 3.0, 4.0])).tolist() == [4.0]
