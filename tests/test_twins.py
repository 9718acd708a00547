import onnx
import pytest
import torch
from onnx import TensorProto, helper

from qrobust.quantization.twins import (
    ONNX_OPS,
    GradMode,
    OnnxQdqTwin,
    dequantize_levels,
    fake_quantize,
    quantize_levels,
)


def test_quantize_levels_round_and_saturate() -> None:
    scaled = torch.tensor([-3.6, -0.4, 0.5, 1.5, 250.2, 300.0])
    assert quantize_levels(scaled, 2, 0, 255).tolist() == [0.0, 2.0, 2.0, 4.0, 252.0, 255.0]


def composed_fake_quantize(scaled, zero_point, qmin, qmax, scale, mode: GradMode) -> torch.Tensor:
    """The definition the twins' fast path must equal bit for bit: quantize, shift, scale, one op at a
    time; straight through as ``levels.detach() + (s - s.detach()) * inside``."""
    levels = quantize_levels(scaled, zero_point, qmin, qmax)
    if mode is GradMode.STE and scaled.requires_grad:
        q = scaled.detach() + zero_point
        inside = (q >= qmin - 0.5) & (q <= qmax + 0.5)
        levels = levels.detach() + (scaled - scaled.detach()) * inside
    return (levels - zero_point) * scale


@pytest.mark.parametrize("mode", list(GradMode))
def test_gradient_passes_only_straight_through_and_only_where_not_saturated(mode: GradMode) -> None:
    # -0.4 rounds onto the lower bound 0 (a background pixel at the calibrated minimum): not saturated.
    scaled = torch.tensor([-0.4, 10.3, -7.0, 300.0], requires_grad=True)
    levels = dequantize_levels(scaled, 0, 0, 255, 2.0, mode)
    assert levels.tolist() == [0.0, 20.0, 0.0, 510.0]  # the gradient mode leaves the values alone
    levels.sum().backward()
    expected = [0.0, 0.0, 0.0, 0.0] if mode is GradMode.EXACT else [2.0, 2.0, 0.0, 0.0]
    assert scaled.grad.tolist() == expected


def test_per_channel_fake_quantize_uses_each_channel_scale() -> None:
    x = torch.tensor([[[[0.26]], [[0.26]]]])  # N=1, C=2, H=W=1
    out = fake_quantize(x, torch.tensor([0.1, 0.05]), torch.tensor([0.0, 0.0]), -128, 127, 1, GradMode.EXACT)
    assert torch.allclose(out.flatten(), torch.tensor([0.3, 0.25]))


def test_unsupported_onnx_op_is_named(tmp_path) -> None:
    node = helper.make_node("Softsign", ["input"], ["logits"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])],
    )
    onnx.save(helper.make_model(graph), tmp_path / "m.onnx")
    with pytest.raises(NotImplementedError, match=r"\['Softsign'\] have no twin; supported: .*Conv"):
        OnnxQdqTwin(tmp_path / "m.onnx")
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= set(ONNX_OPS)


@pytest.mark.parametrize("mode", list(GradMode))
@pytest.mark.parametrize("per_channel", [False, True])
def test_fake_quantize_gives_the_bits_of_quantize_then_dequantize(mode: GradMode, per_channel: bool) -> None:
    """``dequantize_levels`` (the twins' fast path) against the composed definition: the same values and
    the same input gradients, bit for bit, saturated values included."""
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5) * 3
    if per_channel:
        scale, zero, shape = torch.tensor([0.02, 0.05, 0.011]), torch.tensor([0.0, 7.0, 128.0]), (1, 3, 1, 1)
        scale, zero = scale.view(shape), zero.view(shape)
    else:
        scale, zero = torch.tensor(0.0123), torch.tensor(41.0)
    results = []
    for fn in (dequantize_levels, composed_fake_quantize):
        xg = x.clone().requires_grad_(True)
        out = fn(xg / scale, zero, 0, 255, scale, mode)
        (grad,) = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(), xg)
        with torch.no_grad():
            results.append((out.detach(), grad, fn(x / scale, zero, 0, 255, scale, mode)))
    for ours, theirs in zip(*results, strict=True):
        assert torch.equal(ours, theirs)
    assert (results[0][0] == 255 * scale - zero * scale).any() or (results[0][0] == -zero * scale).any()
