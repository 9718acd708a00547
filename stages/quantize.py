"""quantize: float model + calibration split -> models/quant/<arch>-<recipe>/<quantizer>/, for every quantizer
the float model is quantized by (quantize.quantizers, a replicate's, the sweep's, the defense study's).

Calibration images come from the calibration split (training data) only. The deployed runtime is
reopened from the artefact folder alone, scored on the test set, and its torch twin (both gradient
modes) is checked against it on the evaluation subset; a twin below the agreement threshold stops the
stage with the figures, and nothing is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from qrobust.data.datasets import DATASETS
from qrobust.data.splits import calibration_subset, load_split
from qrobust.deploy.backends import artefact_bytes, load_runtime, load_twin, weight_census
from qrobust.deploy.runtime import OrtRuntime, latencies
from qrobust.models import create_model, input_spec
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.io import atomic_dir, load_json, save_json
from qrobust.pipeline.layout import PREPARED, model_dir, quantized_dir
from qrobust.pipeline.model_id import ModelId
from qrobust.pipeline.process import run_stage
from qrobust.pipeline.provenance import save_timing
from qrobust.quantization.quantizers import FloatModel, Quantizer, create_quantizer
from qrobust.quantization.twins import GradMode, verify_twin
from qrobust.settings.study import load_study


def main(model_name: str) -> None:
    study = load_study()
    settings = study.quantize
    parent = ModelId.parse(model_name)
    defended = parent in study.defend.model_ids()
    names = study.defend.quantizers if defended else settings.of(parent)
    if not names:
        raise ConfigError(
            f"quantize: {parent} is quantized by nothing: not in train.archs x train.recipes (with train.seeds), "
            "quantize.sweep_archs x quantize.qat_recipes nor defend.archs x defend.recipes"
        )
    quantizers = {name: create_quantizer(name, settings.options.get(name, {})) for name in names}  # checked first
    spec = input_spec(DATASETS.get(study.prepare.dataset))
    float_folder = model_dir(parent, defended=defended)
    module = create_model(parent.arch, spec)
    module.load_state_dict(torch.load(float_folder / "model.pt", weights_only=True))
    float_model = FloatModel(module.eval(), float_folder / "model.onnx", parent.arch, spec)
    x_calib, _ = load_split(PREPARED / "calib.npz")
    calibration = calibration_subset(x_calib, settings.calib_samples, settings.seed)
    x_val, y_val = load_split(PREPARED / "val.npz")
    x_test, y_test = load_split(PREPARED / "test.npz")
    x_eval, _ = load_split(PREPARED / "eval.npz")
    float_metrics = load_json(float_folder / "metrics.json")
    float_test = OrtRuntime(float_model.onnx).predict(x_test)

    def quantize_one(model_id: ModelId, quantizer: Quantizer, out: Path) -> tuple[dict, object]:
        """One quantized model into ``out``, its runtime reopened from the folder alone and both twins checked
        against it (a twin below quantize.twin_min_agreement stops the stage with the figures)."""
        quantizer.quantize(float_model, calibration, out)
        deployed = load_runtime(out)
        test_pred = deployed.predict(x_test)
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
            "quantizer": model_id.quantizer,
            "backend": quantizer.backend,
            "nominal_weight_bits": quantizer.weight_bits,
            "activation_bits": quantizer.activation_bits,
            **weight_census(out).metrics(),
            "val_accuracy": float((deployed.predict(x_val) == y_val).mean()),  # what the sign-off reads
            "float_val_accuracy": float_metrics["val_accuracy"],
            "val_samples": int(len(y_val)),
            "test_accuracy": float((test_pred == y_test).mean()),  # reported only
            "float_test_accuracy": float_metrics["test_accuracy"],
            "top1_agreement_with_float": float((test_pred == float_test).mean()),
            "test_samples": int(len(y_test)),
            "artefact_bytes": artefact_bytes(out),
            "float_onnx_bytes": float_model.onnx.stat().st_size,
            **{f"twin_{mode.value}_{k}": v for mode, check in twins.items() for k, v in check.items()},
        }
        return metrics, deployed

    # One process and one folder for all of a float model's quantized models: a stage per quantizer cost the
    # study about 4 seconds of DVC's lock handling and 2 of imports each, over 50 of them.
    timing = {}
    with atomic_dir(quantized_dir(parent, defended=defended)) as folder:
        for name, quantizer in quantizers.items():
            (folder / name).mkdir()
            metrics, deployed = quantize_one(parent.quantized(name), quantizer, folder / name)
            save_json(folder / name / "metrics.json", metrics)
            timing[name] = latencies(deployed, x_eval, repeats=10)
            print(
                f"{metrics['model']}: test accuracy {metrics['test_accuracy']:.4f} (float "
                f"{metrics['float_test_accuracy']:.4f}, agreement {metrics['top1_agreement_with_float']:.4f}); "
                f"{100 * metrics['weights_quantized_share']:.1f}% of weights quantized; twin agreement "
                f"{metrics['twin_exact_top1_agreement']:.4f}",
                flush=True,
            )
    save_timing("quantize", str(parent), timing)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="float model id, <arch>-<recipe>[-s<seed>]")
    args = parser.parse_args()
    run_stage("quantize", main, args.model)
