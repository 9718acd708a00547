"""evaluate: every adversarial set x every deployed model x every defense -> reports/results.csv + metrics.

Targets are the float ONNX models (ONNX Runtime sessions) and every quantized artefact's deployed runtime
(an ONNX Runtime session or the INC-converted torch module), each opened from its files.
"""

from __future__ import annotations

import numpy as np

from qrobust.data import load_split
from qrobust.defenses import create_defense
from qrobust.errors import ConfigError, run_stage
from qrobust.evaluation import AdversarialSet, Target, cross_evaluate, flat_metrics
from qrobust.io import load_json, load_npz, save_json
from qrobust.layout import PREPARED, REPORTS, adversarial_dir, float_dir, quant_dir
from qrobust.quantizers import load_runtime
from qrobust.results import write_results
from qrobust.runtime import OrtRuntime
from qrobust.settings import EvaluateSettings, QuantizeSettings, TrainSettings, load_validated


def main() -> None:
    params = load_validated()
    settings = EvaluateSettings.from_params(params)
    train, quantize = TrainSettings.from_params(params), QuantizeSettings.from_params(params)
    defenses = {name: create_defense(name, options) for name, options in settings.defenses.items()}
    x, y = load_split(PREPARED / "eval.npz")

    targets, test_accuracy = [], {}
    for model in train.model_ids():
        arch = model.split("-", 1)[0]
        targets.append(Target(model, arch, "float", OrtRuntime(float_dir(model) / "model.onnx")))
        test_accuracy[f"test_accuracy/{model}"] = load_json(float_dir(model) / "metrics.json")["test_accuracy"]
        for q in quantize.quantizers:
            targets.append(Target(f"{model}.{q}", arch, q, load_runtime(quant_dir(model, q))))
            test_accuracy[f"test_accuracy/{model}.{q}"] = load_json(quant_dir(model, q) / "metrics.json")[
                "test_accuracy"
            ]

    sets = []
    for model in train.model_ids():
        for path in sorted(adversarial_dir(model).glob("*.npz")):
            data = load_npz(path)
            if not np.array_equal(data["y"], y):
                raise ConfigError(f"{path}: labels differ from {PREPARED / 'eval.npz'}; re-run the attack stage")
            sets.append(
                AdversarialSet(
                    source=model,
                    attack=path.stem,
                    norm=str(data["norm"]),
                    epsilons=tuple(data["epsilons"].tolist()),
                    x_adv=data["x_adv"],
                    linf=data["norm_linf"],
                    l2=data["norm_l2"],
                )
            )

    rows = cross_evaluate(targets, sets, x, y, defenses)
    write_results(REPORTS / "results.csv", rows)
    save_json(REPORTS / "metrics.json", {**test_accuracy, **flat_metrics(rows)})
    print(f"{len(rows)} result rows: {len(sets)} adversarial sets x {len(targets)} targets x {len(defenses)} defenses")


if __name__ == "__main__":
    run_stage("evaluate", main)
