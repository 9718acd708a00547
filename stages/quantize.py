"""quantize: float ONNX model + calibration split -> models/quant/<arch>-<recipe>.<quantizer>/.

Calibration images come from the calibration split (training data) only. The deployed artefact is
reloaded in a fresh ONNX Runtime session and scored on the full test set and the evaluation subset.
"""

from __future__ import annotations

import argparse
import sys

from qrobust.data import load_split
from qrobust.errors import ConfigError
from qrobust.io import atomic_dir, save_json
from qrobust.layout import PREPARED, float_dir, quant_dir, timing_path
from qrobust.quantizers import calibration_subset, create_quantizer
from qrobust.runtime import OrtRuntime, latencies
from qrobust.settings import QuantizeSettings, load_validated


def main(model: str, quantizer_name: str) -> None:
    settings = QuantizeSettings.from_params(load_validated())
    if quantizer_name not in settings.quantizers:
        raise ConfigError(f"quantize: {quantizer_name!r} is not in quantize.quantizers {list(settings.quantizers)}")
    quantizer = create_quantizer(quantizer_name, settings.options.get(quantizer_name, {}))
    x_calib, _ = load_split(PREPARED / "calib.npz")
    x_test, y_test = load_split(PREPARED / "test.npz")
    x_eval, _ = load_split(PREPARED / "eval.npz")
    float_onnx = float_dir(model) / "model.onnx"

    with atomic_dir(quant_dir(model, quantizer_name)) as out:
        quantizer.quantize(
            float_onnx, calibration_subset(x_calib, settings.calib_samples, settings.seed), out / "model.onnx"
        )
        deployed, reference = OrtRuntime(out / "model.onnx"), OrtRuntime(float_onnx)
        test_pred, float_pred = deployed.predict(x_test), reference.predict(x_test)
        metrics = {
            "model": f"{model}.{quantizer_name}",
            "float_model": model,
            "quantizer": quantizer_name,
            "weight_bits": quantizer.weight_bits,
            "activation_bits": quantizer.activation_bits,
            "test_accuracy": float((test_pred == y_test).mean()),
            "float_test_accuracy": float((float_pred == y_test).mean()),
            "top1_agreement_with_float": float((test_pred == float_pred).mean()),
            "test_samples": int(len(y_test)),
            "onnx_bytes": (out / "model.onnx").stat().st_size,
            "float_onnx_bytes": float_onnx.stat().st_size,
        }
        save_json(out / "metrics.json", metrics)
    save_json(timing_path("quantize", metrics["model"]), latencies(deployed, x_eval))
    print(
        f"{metrics['model']}: test accuracy {metrics['test_accuracy']:.4f} "
        f"(float {metrics['float_test_accuracy']:.4f}, agreement {metrics['top1_agreement_with_float']:.4f})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="float model id, <arch>-<recipe>")
    parser.add_argument("--quantizer", required=True)
    args = parser.parse_args()
    try:
        main(args.model, args.quantizer)
    except ConfigError as error:
        sys.exit(f"quantize: {error}")
