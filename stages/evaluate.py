"""evaluate: every adversarial set x every deployed model -> reports/results.csv + metrics, and per
model the per-sample worst case over every set that reached it and the nearest verified boundary
distance (rows of results.csv; reports/worst_case.json says which sets broke how many samples and found
the nearest examples, and gives the censored median distance); and reports/pairs.json, each quantized
model against its float parent under the same attacks on the same samples (qrobust.evaluation.pairs);
and reports/outcomes.npz, every row's per-sample outcome, which a paired comparison of two revisions reads.

Targets are the float ONNX models (ONNX Runtime sessions) and every quantized artefact's deployed runtime
(an ONNX Runtime session or the INC-converted torch module), each opened from its files, with no
defense in front (the defense study, stages/defend.py, scores the defended systems). Each target's
runtime is a job (qrobust.pipeline.workers): it answers on every set, and the rows are scored from the answers.
"""

from __future__ import annotations

import functools

import numpy as np

from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.sets import AdversarialSet
from qrobust.attacks.threats import Kind
from qrobust.attacks.victims import open_runtime, sources
from qrobust.data.splits import eval_split
from qrobust.evaluation.pairs import pairs
from qrobust.evaluation.results import write_results
from qrobust.evaluation.scoring import (
    Distinct,
    Labels,
    check_sources,
    flat_metrics,
    score_labels,
    stacked_inputs,
    target_labels,
)
from qrobust.pipeline.device import resolve_device
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.io import load_json, save_json, save_npz
from qrobust.pipeline.layout import PREPARED, REPORTS, adversarial_set, model_dir
from qrobust.pipeline.model_id import ModelId
from qrobust.pipeline.process import run_stage
from qrobust.pipeline.workers import run_jobs, worker_count
from qrobust.settings.study import load_study


@functools.cache
def _inputs() -> tuple[np.ndarray, np.ndarray, tuple[AdversarialSet, ...], Distinct]:
    """The evaluation split, every adversarial set of the study, and the distinct inputs of all the sets
    (once per process)."""
    study = load_study()
    x, y = eval_split()
    sets = []
    for attack in study.attack.attacks:
        noise = ATTACKS.get(attack.name).kind is Kind.NOISE
        for threat in attack.threat_models:
            for source in sources(threat, study.train.model_ids(), study.quantize.quantizers, noise=noise):
                path = adversarial_set(attack.name, threat.value, source)
                adv = AdversarialSet.load(path)
                if adv.index.max() >= len(y) or not np.array_equal(adv.labels, y[adv.index]):
                    raise ConfigError(
                        f"{path}: its labels differ from {PREPARED / 'eval.npz'}; re-run attack@{attack.name}"
                    )
                sets.append(adv)
    return x, y, tuple(sets), stacked_inputs(sets, x)


def answers(model: str) -> Labels:
    """One target's deployed runtime on the clean samples and on every set; runs in a worker process too."""
    x, _, _, stack = _inputs()
    return target_labels(open_runtime(ModelId.parse(model)), x, stack)


def main() -> None:
    study = load_study()
    models = study.models()
    test_accuracy = {f"test_accuracy/{m}": load_json(model_dir(m) / "metrics.json")["test_accuracy"] for m in models}
    _, y, sets, _ = _inputs()
    check_sources(models, sets)
    labels = run_jobs(answers, [str(m) for m in models], workers=worker_count(resolve_device(study.attack.device)))
    outcomes: dict[str, np.ndarray] = {}
    rows, worst = score_labels(dict(zip(models, labels, strict=True)), sets, y, outcomes)
    write_results(REPORTS / "results.csv", rows)
    save_json(REPORTS / "worst_case.json", {"robust": worst.attribution(), "boundary": worst.boundary()})
    save_json(REPORTS / "pairs.json", pairs(worst, list(models)))
    save_npz(REPORTS / "outcomes.npz", outcomes)
    save_json(REPORTS / "metrics.json", {**test_accuracy, **flat_metrics(rows)})
    print(f"{len(rows)} result rows: {len(sets)} adversarial sets x {len(models)} targets")


if __name__ == "__main__":
    run_stage("evaluate", main)
