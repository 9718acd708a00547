"""train: prepared data -> models/float/<arch>-<recipe>/{model.pt, model.onnx, metrics.json}.

Weights are a plain state dict (loads with ``torch.load(weights_only=True)``); the ONNX export is
checked against torch on the evaluation subset before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from qrobust.data.datasets import DATASETS
from qrobust.data.splits import load_split
from qrobust.deploy.runtime import OrtRuntime, export_onnx, latencies, verify_export
from qrobust.models import count_macs, create_model, input_spec, parameter_count
from qrobust.pipeline.device import seed_everything
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.io import atomic_dir, save_json
from qrobust.pipeline.layout import PREPARED, model_dir
from qrobust.pipeline.model_id import ModelId
from qrobust.pipeline.process import run_stage
from qrobust.pipeline.provenance import save_timing
from qrobust.settings.study import load_study
from qrobust.training.loop import fit
from qrobust.training.recipes import create_recipe


def main(arch: str, recipe: str, seed: int | None) -> None:
    study = load_study()
    settings = study.train
    model_id = ModelId(arch, recipe, None, seed)
    defended = model_id in study.defend.model_ids()
    if model_id not in (*settings.model_ids(), *study.qat_floats()) and not defended:
        raise ConfigError(
            f"train: {model_id} is not in train.archs x train.recipes (with train.seeds), in "
            "quantize.sweep_archs x quantize.qat_recipes nor in defend.archs x defend.recipes"
        )
    fit_config = dataclasses.replace(settings.fit, seed=settings.seed_of(model_id))
    dataset = DATASETS.get(settings.dataset)
    spec = input_spec(dataset)
    seed_everything(fit_config.seed)
    model = create_model(arch, spec)
    trainer = create_recipe(recipe, settings.recipe_options.get(recipe, {}))
    x_train, y_train = load_split(PREPARED / "train.npz")
    x_val, y_val = load_split(PREPARED / "val.npz")
    x_test, y_test = load_split(PREPARED / "test.npz")
    x_eval, _ = load_split(PREPARED / "eval.npz")

    start = time.perf_counter()
    losses = fit(model, trainer, x_train, y_train, fit_config)
    train_seconds = time.perf_counter() - start
    model = model.cpu().eval()

    with atomic_dir(model_dir(model_id, defended=defended)) as out:
        torch.save(model.state_dict(), out / "model.pt")
        export_onnx(model, torch.from_numpy(x_eval[:2]), out / "model.onnx")
        runtime = OrtRuntime(out / "model.onnx")
        check = verify_export(model, runtime, x_eval)
        test_accuracy = float((runtime.predict(x_test) == y_test).mean())
        metrics = {
            "model": str(model_id),
            "arch": arch,
            "recipe": recipe,
            "seed": fit_config.seed,
            "val_accuracy": float((runtime.predict(x_val) == y_val).mean()),  # what the sign-off reads
            "val_samples": int(len(y_val)),
            "test_accuracy": test_accuracy,  # reported only
            "test_samples": int(len(y_test)),
            "train_loss": [round(v, 6) for v in losses],
            "parameters": parameter_count(model),
            "macs": count_macs(model, spec),
            "onnx_bytes": (out / "model.onnx").stat().st_size,
            **check,
        }
        save_json(out / "metrics.json", metrics)
    save_timing(
        "train", metrics["model"], {"train_seconds": round(train_seconds, 1), **latencies(runtime, x_eval, repeats=10)}
    )
    print(f"{metrics['model']}: test accuracy {test_accuracy:.4f} in {train_seconds:.0f}s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--seed", type=int, default=None, help="a replicate's seed (train.seeds); default: the study's")
    args = parser.parse_args()
    run_stage("train", main, args.arch, args.recipe, args.seed)
