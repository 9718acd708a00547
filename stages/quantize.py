"""quantize: float model + calibration split -> models/quant/<arch>-<recipe>.<quantizer>/.

Calibration images come from the calibration split (training data) only. The deployed runtime is
reopened from the artefact folder alone, scored on the test set, and its torch twin (both gradient
modes) is checked against it on the evaluation subset; a twin below the agreement threshold stops the
stage with the figures, and nothing is written.
"""

from __future__ import annotations

import argparse

import torch

from qrobust.data.datasets import DATASETS
from qrobust.data.splits import calibration_subset, load_split
from qrobust.deploy.backends import artefact_bytes, load_runtime, load_twin, weight_census
from qrobust.deploy.runtime import OrtRuntime, latencies
from qrobust.models import create_model, input_spec
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.io import atomic_dir, load_json, save_json
from qrobust.pipeline.layout import PREPARED, model_dir
from qrobust.pipeline.model_id import ModelId
from qrobust.pipeline.process import run_stage
from qrobust.pipeline.provenance import save_timing
from qrobust.quantization.quantizers import FloatModel, create_quantizer
from qrobust.quantization.twins import GradMode, verify_twin
from qrobust.settings.study import load_study


def main(model_name: str, quantizer_name: str) -> None:
    study = load_study()
    settings = study.quantize
    parent = ModelId.parse(model_name)
    if quantizer_name not in settings.of(parent) and quantizer_name not in study.defend.quantizers:
        raise ConfigError(
            f"quantize: {parent} is quantized by {list(settings.of(parent))} (quantize.quantizers, "
            f"quantize.replicate_quantizers for a replicate, quantize.sweep on quantize.sweep_archs), not {quantizer_name!r}"
        )
    quantizer = create_quantizer(quantizer_name, settings.options.get(quantizer_name, {}))
    model_id = parent.quantized(quantizer_name)
    defended = parent in study.defend.model_ids()
    dataset = DATASETS.get(study.prepare.dataset)
    spec = input_spec(dataset)
    float_folder = model_dir(parent, defended=defended)
    module = create_model(parent.arch, spec)
    module.load_state_dict(torch.load(float_folder / "model.pt", weights_only=True))
    float_model = FloatModel(module.eval(), float_folder / "model.onnx", parent.arch, spec)
    x_calib, _ = load_split(PREPARED / "calib.npz")
    x_val, y_val = load_split(PREPARED / "val.npz")
    x_test, y_test = load_split(PREPARED / "test.npz")
    x_eval, _ = load_split(PREPARED / "eval.npz")

    with atomic_dir(model_dir(model_id, defended=defended)) as out:
        quantizer.quantize(float_model, calibration_subset(x_calib, settings.calib_samples, settings.seed), out)
        deployed = load_runtime(out)
        float_pred, test_pred = OrtRuntime(float_model.onnx).predict(x_test), deployed.predict(x_test)
        twins = {
            mode: verify_twin(
                load_twin(out, mode),
                deployed,
                x_eval,
                min_agreement=settings.twin_min_agreement,
                label=f"{model_id} ({mode.value} twin)",
            )
            for mode in GradMode
        }
        metrics = {
            "model": str(model_id),
            "float_model": str(parent),
            "quantizer": quantizer_name,
            "backend": quantizer.backend,
            "nominal_weight_bits": quantizer.weight_bits,
            "activation_bits": quantizer.activation_bits,
            **weight_census(out).metrics(),
            "val_accuracy": float((deployed.predict(x_val) == y_val).mean()),  # what the sign-off reads
            "float_val_accuracy": load_json(float_folder / "metrics.json")["val_accuracy"],
            "val_samples": int(len(y_val)),
            "test_accuracy": float((test_pred == y_test).mean()),  # reported only
            "float_test_accuracy": load_json(float_folder / "metrics.json")["test_accuracy"],
            "top1_agreement_with_float": float((test_pred == float_pred).mean()),
            "test_samples": int(len(y_test)),
            "artefact_bytes": artefact_bytes(out),
            "float_onnx_bytes": float_model.onnx.stat().st_size,
            **{f"twin_{mode.value}_{k}": v for mode, check in twins.items() for k, v in check.items()},
        }
        save_json(out / "metrics.json", metrics)
    save_timing("quantize", metrics["model"], latencies(deployed, x_eval, repeats=10))
    print(
        f"{metrics['model']}: test accuracy {metrics['test_accuracy']:.4f} (float {metrics['float_test_accuracy']:.4f}, "
        f"agreement {metrics['top1_agreement_with_float']:.4f}); {100 * metrics['weights_quantized_share']:.1f}% of "
        f"weights quantized; twin agreement {metrics['twin_exact_top1_agreement']:.4f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="float model id, <arch>-<recipe>")
    parser.add_argument("--quantizer", required=True)
    args = parser.parse_args()
    run_stage("quantize", main, args.model, args.quantizer)
