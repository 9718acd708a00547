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

Replicates (models trained at another seed, train.seeds) form families of their own: a replicate's sets are
scored on the models of its seed only, and no replicate's set reaches a model of the study's seed, so each
model's worst case, transfer included, is the same whatever replicates the study adds.
"""

from __future__ import annotations

import functools

import numpy as np

from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.sets import AdversarialSet
from qrobust.attacks.threats import Kind
from qrobust.attacks.victims import open_runtime, sources
from qrobust.data.splits import eval_split
from qrobust.evaluation.evasion import study_evasion
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


def families(models: tuple[ModelId, ...]) -> dict[int | None, tuple[ModelId, ...]]:
    """The deployed models by training seed (None: the study's), in the study's order."""
    out: dict[int | None, list[ModelId]] = {}
    for m in models:
        out.setdefault(m.seed, []).append(m)
    return {seed: tuple(found) for seed, found in out.items()}


@functools.cache
def _inputs(seed: int | None) -> tuple[np.ndarray, np.ndarray, tuple[AdversarialSet, ...], Distinct]:
    """The evaluation split, every adversarial set made on the models of ``seed``'s family, and the distinct
    inputs of all those sets (once per process)."""
    study = load_study()
    x, y = eval_split()
    deployed = families(study.models())[seed]
    sets = []
    for attack in study.attack.attacks:
        entry = ATTACKS.get(attack.name)
        noise = entry.kind is Kind.NOISE
        reached = [m for m in study.reached_by(entry.norm) if m in deployed]
        for threat in attack.threat_models:
            for source in sources(threat, reached, noise=noise):
                path = adversarial_set(attack.name, threat.value, source)
                adv = AdversarialSet.load(path)
                if adv.index.max() >= len(y) or not np.array_equal(adv.labels, y[adv.index]):
                    raise ConfigError(
                        f"{path}: its labels differ from {PREPARED / 'eval.npz'}; re-run attack@{attack.name}"
                    )
                sets.append(adv)
    return x, y, tuple(sets), stacked_inputs(sets, x)


def answers(model: str) -> Labels:
    """One target's deployed runtime on the clean samples and on every set of its family; runs in a worker
    process too."""
    target = ModelId.parse(model)
    x, _, _, stack = _inputs(target.seed)
    return target_labels(open_runtime(target), x, stack)


def main() -> None:
    study = load_study()
    models = study.models()
    test_accuracy = {f"test_accuracy/{m}": load_json(model_dir(m) / "metrics.json")["test_accuracy"] for m in models}
    labels = run_jobs(answers, [str(m) for m in models], workers=worker_count(resolve_device(study.attack.device)))
    given = dict(zip(models, labels, strict=True))
    outcomes: dict[str, np.ndarray] = {}
    rows, robust, by_threat, boundary, paired_records, evasion, n_sets = [], {}, {}, {}, {}, {}, 0
    for seed, family in families(models).items():
        _, y, sets, _ = _inputs(seed)
        check_sources(family, sets)
        found, worst = score_labels({m: given[m] for m in family}, sets, y, outcomes)
        rows += found
        robust.update(worst.attribution())
        by_threat.update(worst.by_threat())
        boundary.update(worst.boundary())
        paired_records.update(pairs(worst, list(family)))
        evasion.update(study_evasion(study, outcomes, worst.clean, family))
        n_sets += len(sets)
    write_results(REPORTS / "results.csv", rows)
    save_json(REPORTS / "worst_case.json", {"robust": robust, "by_threat": by_threat, "boundary": boundary})
    save_json(REPORTS / "pairs.json", paired_records)
    save_json(REPORTS / "evasion.json", evasion)
    save_npz(REPORTS / "outcomes.npz", outcomes)
    save_json(REPORTS / "metrics.json", {**test_accuracy, **flat_metrics(rows)})
    print(f"{len(rows)} result rows: {n_sets} adversarial sets on {len(models)} targets, each within its seed")


if __name__ == "__main__":
    run_stage("evaluate", main)
