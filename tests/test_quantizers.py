import subprocess
import sys

import numpy as np
import pytest

from qrobust.errors import ConfigError
from qrobust.quantizers import QUANTIZERS, calibration_subset, create_quantizer
from qrobust.runtime import OrtRuntime
from tests.conftest import accuracy


@pytest.fixture(scope="module", params=QUANTIZERS.names())
def quantized(request, lenet_onnx, tiny_data, tmp_path_factory):
    name = request.param
    quantizer = create_quantizer(name, {})
    out = tmp_path_factory.mktemp(name) / "model.onnx"
    quantizer.quantize(lenet_onnx, tiny_data["calib"][0], out)
    return name, out


def test_quantized_model_stays_close_to_float(quantized, lenet_onnx, tiny_data) -> None:
    _, path = quantized
    x, y = tiny_data["test"]
    float_pred, quant_pred = OrtRuntime(lenet_onnx).predict(x), OrtRuntime(path).predict(x)
    assert accuracy(quant_pred, y) >= accuracy(float_pred, y) - 0.05
    assert accuracy(quant_pred, float_pred) >= 0.95
    assert path.stat().st_size < lenet_onnx.stat().st_size / 2


def test_artefact_reloads_in_a_fresh_process(quantized, tiny_data, tmp_path) -> None:
    _, path = quantized
    x = tiny_data["test"][0]
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, numpy as np; from qrobust.runtime import OrtRuntime; "
        "np.save(sys.argv[3], OrtRuntime(sys.argv[1]).logits(np.load(sys.argv[2])))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(path), str(tmp_path / "x.npy"), str(tmp_path / "out.npy")], check=True
    )
    assert np.array_equal(np.load(tmp_path / "out.npy"), OrtRuntime(path).logits(x))


@pytest.mark.parametrize("name", QUANTIZERS.names())
def test_unknown_option_lists_allowed_keys(name: str) -> None:
    with pytest.raises(ConfigError, match="allowed keys"):
        create_quantizer(name, {"bits": 3})


def test_unknown_quantizer_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="valid quantizer names: " + ", ".join(QUANTIZERS.names())):
        create_quantizer("tflite_int8", {})


def test_calibration_subset_is_seeded() -> None:
    x = np.arange(100, dtype=np.float32).reshape(100, 1)
    a, b = calibration_subset(x, 10, 0), calibration_subset(x, 10, 0)
    assert np.array_equal(a, b) and len(a) == 10 and len(calibration_subset(x, 1000, 0)) == 100
