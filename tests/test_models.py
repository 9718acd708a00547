import numpy as np
import pytest
import torch

from qrobust.deploy.runtime import OrtRuntime, export_onnx, verify_export
from qrobust.models import ARCHITECTURES, count_macs, create_model, parameter_count
from qrobust.pipeline.device import seed_everything
from qrobust.pipeline.errors import ConfigError
from qrobust.training.loop import TrainConfig, fit
from qrobust.training.recipes import Standard
from tests.conftest import ROOT, SPEC, accuracy, make_images


def test_unknown_architecture_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="valid architecture names: " + ", ".join(ARCHITECTURES.names())):
        create_model("vgg16", SPEC)


@pytest.mark.parametrize("arch", ARCHITECTURES.names())
def test_architecture_logits_weights_and_onnx_export(arch: str, tmp_path) -> None:
    model = create_model(arch, SPEC).eval()
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    assert 10_000 < parameter_count(model) < 300_000 and count_macs(model, SPEC) > parameter_count(model)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    twin = create_model(arch, SPEC).eval()
    twin.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    assert torch.equal(model(x), twin(x))
    export_onnx(model, x[:2], tmp_path / "model.onnx")
    check = verify_export(
        model, OrtRuntime(tmp_path / "model.onnx"), np.random.default_rng(0).random((16, 1, 28, 28), dtype=np.float32)
    )
    assert check["onnx_top1_agreement"] == 1.0
    # The same weights give the same bytes from any checkout: no path or source line is recorded.
    exported = (tmp_path / "model.onnx").read_bytes()
    assert str(ROOT).encode() not in exported and b"site-packages" not in exported
    export_onnx(model, x[:2], tmp_path / "again.onnx")
    assert (tmp_path / "again.onnx").read_bytes() == exported


@pytest.mark.parametrize("arch", ARCHITECTURES.names())
def test_training_is_deterministic_and_learns(arch: str) -> None:
    x, y = make_images(256, 0)
    config = TrainConfig(epochs=2, batch_size=32, lr=0.003, weight_decay=0.0, seed=0, device="cpu")
    states = []
    for _ in range(2):
        seed_everything(0)
        model = create_model(arch, SPEC)
        losses = fit(model, Standard(), x, y, config)
        states.append(model.state_dict())
    assert losses[-1] < losses[0]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_trained_fixture_is_accurate(trained_lenet, tiny_data) -> None:
    from qrobust.deploy.runtime import predict_logits

    x, y = tiny_data["test"]
    assert accuracy(predict_logits(trained_lenet, x).argmax(1), y) > 0.9


class _Shifted(OrtRuntime):
    """A runtime whose logits are the model's plus ``shift`` (float32 rounding, or a broken export)."""

    def __init__(self, model: torch.nn.Module, shift: float) -> None:
        self.model, self.shift, self.path = model, shift, "shifted.onnx"

    def logits(self, x: np.ndarray) -> np.ndarray:
        from qrobust.deploy.runtime import predict_logits

        return predict_logits(self.model, x) + self.shift


def test_the_export_check_scales_its_tolerance_with_the_logits() -> None:
    from qrobust.deploy.runtime import VerificationError

    small = create_model("lenet", SPEC).eval()
    large = torch.nn.Sequential(small, torch.nn.Flatten(), _Times(500.0)).eval()  # logits in the hundreds
    x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    verify_export(large, _Shifted(large, 2e-3), x)  # rounding at that size passes
    with pytest.raises(VerificationError, match="ONNX Runtime disagrees with torch"):
        verify_export(small, _Shifted(small, 2e-3), x)  # the same error on logits below 1 does not
    with pytest.raises(VerificationError, match="ONNX Runtime disagrees with torch"):
        verify_export(large, _Shifted(large, 1.0), x)


class _Times(torch.nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor
