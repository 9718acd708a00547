"""The check behind `quantize.options.ort_int8.reduce_range`: each standard float model of the study
quantized by ONNX Runtime with 7-bit weights (reduce_range true) and with 8-bit ones, scored on the
validation split (never the test split). Run after `make repro`; prints one line per model.

The choice matters on CPUs without VNNI, where ONNX Runtime's u8s8 products saturate at 8-bit weights.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from qrobust.data.datasets import DATASETS
from qrobust.data.splits import calibration_subset, load_split
from qrobust.deploy.backends import load_runtime
from qrobust.deploy.runtime import OrtRuntime
from qrobust.models import create_model, input_spec
from qrobust.pipeline.layout import PREPARED, model_dir
from qrobust.pipeline.model_id import ModelId
from qrobust.quantization.quantizers import FloatModel, create_quantizer
from qrobust.settings.defend import DefendSettings
from qrobust.settings.study import load_study


def main() -> None:
    study = load_study()
    spec = input_spec(DATASETS.get(study.prepare.dataset))
    calib = calibration_subset(load_split(PREPARED / "calib.npz")[0], study.quantize.calib_samples, study.quantize.seed)
    x_val, y_val = load_split(PREPARED / "val.npz")
    for arch in study.train.archs:
        parent = ModelId(arch, DefendSettings.BASELINE)
        folder = model_dir(parent)
        module = create_model(arch, spec)
        module.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
        float_model = FloatModel(module.eval(), folder / "model.onnx", arch, spec)
        reference = float((OrtRuntime(folder / "model.onnx").predict(x_val) == y_val).mean())
        line = [f"{parent}: float {100 * reference:.2f}%"]
        for reduce_range, label in ((True, "7-bit weights"), (False, "8-bit weights")):
            options = dict(study.quantize.options.get("ort_int8", {}), reduce_range=reduce_range)
            with tempfile.TemporaryDirectory() as folder_name:
                out = Path(folder_name)
                create_quantizer("ort_int8", options).quantize(float_model, calib, out)
                accuracy = float((load_runtime(out).predict(x_val) == y_val).mean())
            line.append(f"{label} {100 * accuracy:.2f}% ({100 * (reference - accuracy):+.2f} points)")
        print("; ".join(line), flush=True)


if __name__ == "__main__":
    main()
