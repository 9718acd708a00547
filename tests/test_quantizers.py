import subprocess
import sys

import numpy as np
import pytest
import torch

from qrobust.errors import ConfigError
from qrobust.quantizers import (
    FLOAT_BITS,
    QUANTIZERS,
    FloatModel,
    calibration_subset,
    create_quantizer,
    load_runtime,
    load_twin,
    weight_census,
)
from qrobust.runtime import OrtRuntime
from qrobust.twins import GradMode, verify_twin
from tests.conftest import SPEC, accuracy

# Every registered quantizer with its defaults, plus the options worth covering on their own.
CASES = [(name, {}) for name in QUANTIZERS.names()] + [
    ("inc_w4", {"group_size": 16}),
    ("ort_int8", {"per_channel": False, "calibrate_method": "percentile"}),
]
MAX_DROP = {8: 0.03, 4: 0.10}  # accuracy points an int8 / 4-bit model may lose on the tiny task


@pytest.fixture(
    scope="module", params=CASES, ids=[f"{n}{'-' + '-'.join(map(str, o.values())) if o else ''}" for n, o in CASES]
)
def artefact(request, trained_lenet, lenet_onnx, tiny_data, tmp_path_factory):
    name, options = request.param
    quantizer = create_quantizer(name, options)
    out = tmp_path_factory.mktemp(name)
    quantizer.quantize(FloatModel(trained_lenet, lenet_onnx, "lenet", SPEC), tiny_data["calib"][0], out)
    return quantizer, out


def test_quantized_model_stays_close_to_float(artefact, lenet_onnx, tiny_data) -> None:
    quantizer, folder = artefact
    x, y = tiny_data["test"]
    float_pred, quant_pred = OrtRuntime(lenet_onnx).predict(x), load_runtime(folder).predict(x)
    assert accuracy(quant_pred, y) >= accuracy(float_pred, y) - MAX_DROP[quantizer.weight_bits]
    assert accuracy(quant_pred, float_pred) >= 0.9


def test_artefact_reloads_in_a_fresh_process(artefact, tiny_data, tmp_path) -> None:
    _, folder = artefact
    x = tiny_data["test"][0]
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, numpy as np; from pathlib import Path; from qrobust.quantizers import load_runtime; "
        "np.save(sys.argv[3], load_runtime(Path(sys.argv[1])).logits(np.load(sys.argv[2])))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(folder), str(tmp_path / "x.npy"), str(tmp_path / "out.npy")], check=True
    )
    assert np.array_equal(np.load(tmp_path / "out.npy"), load_runtime(folder).logits(x))


# The largest |logit difference| a twin may show against its deployed runtime: a value on a rounding
# tie may land one level apart (measured up to 0.23 on this fixture, 0.0 on the smoke study), nothing more.
LOGIT_TOLERANCE = 0.5


@pytest.mark.parametrize("mode", list(GradMode))
def test_twin_agrees_with_deployed_runtime(artefact, tiny_data, mode: GradMode) -> None:
    _, folder = artefact
    check = verify_twin(
        load_twin(folder, mode), load_runtime(folder), tiny_data["test"][0], min_agreement=0.995, label="t"
    )
    assert check["top1_agreement"] >= 0.995
    assert check["max_abs_logit_diff"] <= LOGIT_TOLERANCE, check


def _input_gradient(twin: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> torch.Tensor:
    probe = torch.from_numpy(x).requires_grad_(True)
    torch.nn.functional.cross_entropy(twin(probe), torch.from_numpy(y)).backward()
    return probe.grad if probe.grad is not None else torch.zeros_like(probe)


def test_gradient_modes(artefact, tiny_data) -> None:
    quantizer, folder = artefact
    x, y = tiny_data["test"][0][:32], tiny_data["test"][1][:32]
    exact = _input_gradient(load_twin(folder, GradMode.EXACT), x, y)
    ste = _input_gradient(load_twin(folder, GradMode.STE), x, y)
    if quantizer.activation_bits < FLOAT_BITS:
        # Activations are rounded: exact rounding passes no gradient, straight-through does.
        assert (exact == 0).float().mean() > 0.99
        assert (ste != 0).float().mean() > 0.3
        assert not torch.equal(exact, ste)
    else:
        # Weight-only quantization rounds constants, never the input path: the two modes coincide.
        assert torch.equal(exact, ste) and (exact != 0).float().mean() > 0.3


def test_weight_census(artefact) -> None:
    quantizer, folder = artefact
    quantized, total = weight_census(folder)
    conv_weights = 16 * 1 * 25 + 32 * 16 * 25
    assert total == conv_weights + 800 * 128 + 128 * 10
    # INC's weight-only path quantizes Linear layers only; convolutions stay float.
    expected = total - conv_weights if quantizer.activation_bits == FLOAT_BITS else total
    assert quantized == expected


def test_twin_below_threshold_fails_with_figures(artefact, tiny_data) -> None:
    from qrobust.errors import VerificationError
    from qrobust.models import create_model

    _, folder = artefact
    untrained = create_model("lenet", SPEC).eval()
    with pytest.raises(VerificationError, match=r"top-1 agreement .* < quantize.twin_min_agreement 0.995 \(max"):
        verify_twin(untrained, load_runtime(folder), tiny_data["test"][0], min_agreement=0.995, label="x")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("inc_w4", {"bits": 3}, r"inc_w4.bits: expected 4 .* got 3"),
        ("inc_w4", {"algorithm": "awq"}, r"algorithm: unknown value 'awq'; valid values: rtn, gptq"),
        ("inc_w4", {"algorithm": "gptq"}, r"algorithm: 'gptq' is not available .* transformer blocks"),
        ("ort_int8", {"bits": 3}, r"unknown options \['bits'\]; allowed options"),
        ("ort_w4a8", {"calibrate_method": "mse"}, "valid values: minmax, entropy, percentile"),
        ("inc_int8", {"per_channel": True}, r"unknown options \['per_channel'\]"),
    ],
)
def test_bad_options_are_refused(name: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_quantizer(name, options)


def test_unknown_quantizer_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="valid quantizer names: " + ", ".join(QUANTIZERS.names())):
        create_quantizer("tflite_int8", {})


def test_calibration_subset_is_seeded() -> None:
    x = np.arange(100, dtype=np.float32).reshape(100, 1)
    a, b = calibration_subset(x, 10, 0), calibration_subset(x, 10, 0)
    assert np.array_equal(a, b) and len(a) == 10 and len(calibration_subset(x, 1000, 0)) == 100
