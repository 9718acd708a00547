"""Every architecture goes the whole way somewhere in the tests: trained, exported, quantized by each
backend that quantizes activations, its twin checked against the deployed runtime, and attacked through
the straight-through twin. LeNet does it on the shared fixture and the smoke study's archs in the
end-to-end run; the rest here (ResNet-8's residual adds, DS-CNN's depthwise convolutions, and the global
pooling of both, none of which LeNet exercises)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qrobust.attacks.runner import craft
from qrobust.attacks.victims import module_victim
from qrobust.deploy.backends import load_runtime, load_twin, weight_census
from qrobust.deploy.runtime import OrtRuntime, export_onnx
from qrobust.models import ARCHITECTURES, create_model
from qrobust.pipeline.device import seed_everything
from qrobust.quantization.quantizers import FloatModel, create_quantizer
from qrobust.quantization.twins import GradMode, verify_twin
from qrobust.tools.study import study_params
from qrobust.training.loop import TrainConfig, fit
from qrobust.training.recipes import Standard
from tests.conftest import ROOT, SPEC, accuracy
from tests.test_quantizers import LOGIT_TOLERANCE

# The architectures neither the LeNet fixture nor the end-to-end smoke study (which quantizes, twins and
# attacks its archs with every quantizer) takes through the whole way.
ARCHS = [
    name
    for name in ARCHITECTURES.names()
    if name != "lenet" and name not in study_params(ROOT, "smoke")["train"]["archs"]
]
QUANTIZERS = ["ort_int8", "inc_int8"]  # one per backend with quantized activations


@pytest.fixture(scope="module", params=ARCHS)
def float_model(request, tiny_data, tmp_path_factory) -> FloatModel:
    seed_everything(0)
    model = create_model(request.param, SPEC)
    x, y = tiny_data["train"]
    fit(model, Standard(), x, y, TrainConfig(epochs=3, batch_size=64, lr=0.003, weight_decay=0.0, seed=0, device="cpu"))
    onnx = tmp_path_factory.mktemp(request.param) / "model.onnx"
    export_onnx(model.eval(), torch.from_numpy(tiny_data["test"][0][:2]), onnx)
    return FloatModel(model.eval(), onnx, request.param, SPEC)


@pytest.mark.parametrize("quantizer_name", QUANTIZERS)
def test_quantize_twin_and_attack(float_model, quantizer_name, tiny_data, tmp_path) -> None:
    x, y = tiny_data["test"]
    float_accuracy = accuracy(OrtRuntime(float_model.onnx).predict(x), y)
    assert float_accuracy >= 0.8, f"{float_model.arch} did not learn the tiny task ({float_accuracy})"  # chance: 0.1

    create_quantizer(quantizer_name, {}).quantize(float_model, tiny_data["calib"][0], tmp_path)
    runtime = load_runtime(tmp_path)
    assert accuracy(runtime.predict(x), y) >= float_accuracy - 0.03
    assert weight_census(tmp_path).quantized_share == 1.0

    for mode in GradMode:
        check = verify_twin(load_twin(tmp_path, mode), runtime, x, min_agreement=0.99, label=float_model.arch)
        assert check["max_abs_logit_diff"] <= LOGIT_TOLERANCE, (mode, check)

    x_attack, y_attack = x[:48], y[:48]
    victim = module_victim(load_twin(tmp_path, GradMode.STE), torch.device("cpu"))
    crafted = craft(victim, "linf_pgd", {"steps": 10}, (0.3,), x_attack, y_attack, batch_size=48, seed=0)
    robust = accuracy(runtime.predict(crafted.x_adv[0]), y_attack)
    assert robust < accuracy(runtime.predict(x_attack), y_attack) - 0.5, robust
    assert np.abs(crafted.x_adv[0] - x_attack).max() <= 0.3 + 1e-6
