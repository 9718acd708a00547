"""analyse: one float model and its quantized models -> reports/analysis/<model>.json (DVC metrics).

Boundary distances come from analysis.boundary_attack's unbounded outputs, made by the attack stage on
every deployed runtime: the difference of medians (quantized minus float) with a bootstrap interval.

The float model is attacked white-box (analysis.attack at analysis.epsilons, options from
attack.attacks) on analysis.samples images of the evaluation subset; every measurement of
``qrobust.analysis`` is taken on those examples and on random noise of the same sizes. The loss-plateau
indicator traces its own PGD (analysis.trace) on the first analysis.trace.samples of them.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping

import numpy as np
import torch

from qrobust.analysis import Deployed, analyse, bootstrap_median_difference, boundary_distances, loss_plateaus
from qrobust.convergence import Convergence, Predict, check_convergence, checkable
from qrobust.core.attacks import attack_subset, craft
from qrobust.core.backends import load_twin
from qrobust.core.data import DATASETS, load_split
from qrobust.core.errors import ConfigError, run_stage
from qrobust.core.io import save_json
from qrobust.core.layout import PREPARED, REPORTS, adversarial_set, model_dir
from qrobust.core.model_id import ModelId
from qrobust.core.results import ThreatModel
from qrobust.core.settings import Study, load_study
from qrobust.core.training import resolve_device
from qrobust.core.twins import GradMode
from qrobust.core.victims import module_victim, open_module, open_runtime, open_victim
from qrobust.evaluation import AdversarialSet
from qrobust.models import InputSpec, input_spec


def main(model_name: str) -> None:
    study = load_study()
    settings = study.analysis
    model = ModelId.parse(model_name)
    if model not in study.train.model_ids():
        raise ConfigError(f"analyse: {model} is not in train.archs x train.recipes")
    x_all, y_all = load_split(PREPARED / "eval.npz")
    index = attack_subset(len(x_all), settings.samples, settings.seed)
    x, y = x_all[index], y_all[index]
    spec = input_spec(DATASETS.get(study.prepare.dataset))
    module = open_module(ThreatModel.WHITE_FLOAT, model, spec)
    # Channels-last weights for the analysis' own gradients too (module_victim converts its copy alike).
    module.to(memory_format=torch.channels_last)
    start = time.perf_counter()
    crafted = craft(
        module_victim(module, resolve_device(study.attack.device)), settings.attack,
        study.attack.get(settings.attack).options, settings.epsilons, x, y,
        batch_size=study.attack.batch_size, seed=settings.seed, key="attack.attacks",
    )  # fmt: skip
    # Each deployed runtime opened once: the analysis, the boundary distances and the convergence check score on it.
    predicts = {m: open_runtime(m).predict for m in (model, *(model.quantized(q) for q in study.quantize.quantizers))}
    quantized = []
    for name in study.quantize.quantizers:
        q = model.quantized(name)
        twins = {mode: load_twin(model_dir(q), mode) for mode in GradMode}
        quantized.append(Deployed(str(q), predicts[q], twins[GradMode.EXACT], twins[GradMode.STE]))
    measured = analyse(
        module.cpu(), predicts[model], quantized, x, y, crafted.x_adv[: len(settings.epsilons)],
        settings.epsilons, settings.seed,
    )  # fmt: skip
    n = settings.trace_samples
    traced = loss_plateaus(module, quantized, x[:n], y[:n], settings.trace_epsilon, settings.trace_steps)
    for name, record in traced.items():
        measured[name].update(record)

    # Boundary distance: the minimisation attack's unbounded outputs on each runtime, float vs quantized.
    def distances(source: ModelId) -> np.ndarray:
        adv = AdversarialSet.load(adversarial_set(settings.boundary_attack, ThreatModel.BLACK_RUNTIME.value, source))
        k = adv.epsilons.index(math.inf)
        return boundary_distances(predicts[source], adv.x_adv[k], adv.labels, adv.sizes["l2"][k])

    float_distances = distances(model)
    for q in quantized:
        measured[q.name]["boundary_distance_l2"] = bootstrap_median_difference(
            float_distances, distances(ModelId.parse(q.name)), settings.seed
        )
    convergence = [check.record() for check in converge(study, model, x_all, spec, predicts)]
    save_json(REPORTS / "analysis" / f"{model}.json", {"analysis": {str(model): measured}, "convergence": convergence})
    print(f"{model}: analysed with {len(quantized)} quantized models in {time.perf_counter() - start:.1f}s")


def converge(
    study: Study, model: ModelId, x_eval: np.ndarray, spec: InputSpec, predicts: Mapping[ModelId, Predict]
) -> list[Convergence]:
    """The convergence check of every white-box minimisation set made on ``model`` or its quantized models,
    scored on ``predicts``, the deployed runtime of each."""
    device = resolve_device(study.attack.device)
    checks = []
    for config in study.attack.attacks:
        if not checkable(config.name, config.options):
            continue
        for threat in config.threat_models:
            sources = (
                [model]
                if threat is ThreatModel.WHITE_FLOAT
                else [model.quantized(q) for q in study.quantize.quantizers]
            )
            for source in sources:
                adv = AdversarialSet.load(adversarial_set(config.name, threat.value, source))
                checks.append(
                    check_convergence(
                        adv,
                        x_eval,
                        open_victim(threat, source, spec, device, labels_only=False),
                        predicts[source],
                        config.options,
                        samples=study.analysis.convergence_samples,
                        batch_size=study.attack.batch_size,
                        seed=study.attack.seed,
                    )  # fmt: skip
                )
    return checks


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="float model id, <arch>-<recipe>")
    run_stage("analyse", main, parser.parse_args().model)
