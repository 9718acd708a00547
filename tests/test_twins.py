import onnx
import pytest
import torch
from onnx import TensorProto, helper

from qrobust.twins import ONNX_OPS, GradMode, OnnxQdqTwin, fake_quantize, quantize_levels


def test_quantize_levels_round_and_saturate() -> None:
    scaled = torch.tensor([-3.6, -0.4, 0.5, 1.5, 250.2, 300.0])
    assert quantize_levels(scaled, 2, 0, 255, GradMode.EXACT).tolist() == [0.0, 2.0, 2.0, 4.0, 252.0, 255.0]


@pytest.mark.parametrize("mode", list(GradMode))
def test_gradient_passes_only_straight_through_and_only_where_not_saturated(mode: GradMode) -> None:
    # -0.4 rounds onto the lower bound 0 (a background pixel at the calibrated minimum): not saturated.
    scaled = torch.tensor([-0.4, 10.3, -7.0, 300.0], requires_grad=True)
    levels = quantize_levels(scaled, 0, 0, 255, mode)
    assert levels.tolist() == [0.0, 10.0, 0.0, 255.0]  # the gradient mode leaves the values alone
    levels.sum().backward()
    expected = [0.0, 0.0, 0.0, 0.0] if mode is GradMode.EXACT else [1.0, 1.0, 0.0, 0.0]
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
