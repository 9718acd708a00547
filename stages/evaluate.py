"""evaluate: every adversarial set x every deployed model -> reports/results.csv + metrics, and per
model the per-sample worst case over every set that reached it and the nearest verified boundary
distance (rows of results.csv; reports/worst_case.json says which sets broke how many samples and found
the nearest examples, and gives the censored median distance).

Targets are the float ONNX models (ONNX Runtime sessions) and every quantized artefact's deployed runtime
(an ONNX Runtime session or the INC-converted torch module), each opened from its files, with no
defense in front (the defense study, stages/defend.py, scores the defended systems).
"""

from __future__ import annotations

import numpy as np

from qrobust.core.attacks import ATTACKS, Kind
from qrobust.core.data import load_split
from qrobust.core.errors import ConfigError, run_stage
from qrobust.core.io import load_json, save_json
from qrobust.core.layout import PREPARED, REPORTS, adversarial_set, model_dir
from qrobust.core.results import write_results
from qrobust.core.settings import load_study
from qrobust.core.victims import open_runtime, sources
from qrobust.evaluation import AdversarialSet, Target, cross_evaluate, flat_metrics


def main() -> None:
    study = load_study()
    train, quantize = study.train, study.quantize
    x, y = load_split(PREPARED / "eval.npz")

    targets, test_accuracy = [], {}
    for model in study.models():
        targets.append(Target(model, open_runtime(model)))
        test_accuracy[f"test_accuracy/{model}"] = load_json(model_dir(model) / "metrics.json")["test_accuracy"]

    sets = []
    for attack in study.attack.attacks:
        noise = ATTACKS.get(attack.name).kind is Kind.NOISE
        for threat in attack.threat_models:
            for source in sources(threat, train.model_ids(), quantize.quantizers, noise=noise):
                path = adversarial_set(attack.name, threat.value, source)
                adv = AdversarialSet.load(path)
                if adv.index.max() >= len(y) or not np.array_equal(adv.labels, y[adv.index]):
                    raise ConfigError(
                        f"{path}: its labels differ from {PREPARED / 'eval.npz'}; re-run attack@{attack.name}"
                    )
                sets.append(adv)

    rows, worst = cross_evaluate(targets, sets, x, y)
    write_results(REPORTS / "results.csv", rows)
    save_json(REPORTS / "worst_case.json", {"robust": worst.attribution(), "boundary": worst.boundary()})
    save_json(REPORTS / "metrics.json", {**test_accuracy, **flat_metrics(rows)})
    print(f"{len(rows)} result rows: {len(sets)} adversarial sets x {len(targets)} targets")


if __name__ == "__main__":
    run_stage("evaluate", main)
