"""The analysis of one float model of the study and its quantized models, as independent jobs (the
analyse@ stages run them over the machine's cores): the mechanism measurements of ``analysis.mechanisms``
on white-box examples and same-size noise, the loss plateaus, the boundary distances float vs quantized,
and the convergence check of every white-box minimisation set made on them."""

from __future__ import annotations

import math

import numpy as np
import torch

from qrobust.analysis.convergence import Convergence, check_convergence
from qrobust.analysis.mechanisms import (
    Deployed,
    analyse,
    bootstrap_median_difference,
    boundary_distances,
    loss_plateaus,
)
from qrobust.attacks.catalogue import steps_bounded
from qrobust.attacks.runner import attack_subset, craft
from qrobust.attacks.sets import AdversarialSet
from qrobust.attacks.threats import ThreatModel
from qrobust.attacks.victims import module_victim, open_module, open_runtime, open_victim
from qrobust.data.datasets import DATASETS
from qrobust.data.splits import eval_split
from qrobust.deploy.backends import load_twin
from qrobust.models import input_spec
from qrobust.pipeline.device import resolve_device
from qrobust.pipeline.layout import adversarial_set, model_dir
from qrobust.pipeline.model_id import ModelId
from qrobust.quantization.twins import GradMode
from qrobust.settings.study import Study, load_study


def measure(model: ModelId) -> dict[str, dict]:
    """Every measurement of ``qrobust.analysis.mechanisms`` on ``model`` and its quantized models, the loss plateaus
    and the boundary distances, float vs quantized."""
    study = load_study()
    settings = study.analysis
    x_all, y_all = eval_split()
    index = attack_subset(len(x_all), settings.samples, settings.seed)
    x, y = x_all[index], y_all[index]
    spec = input_spec(DATASETS.get(study.prepare.dataset))
    module = open_module(ThreatModel.WHITE_FLOAT, model, spec)
    # Channels-last weights for the analysis' own gradients too (module_victim converts its copy alike).
    module.to(memory_format=torch.channels_last)
    crafted = craft(
        module_victim(module, resolve_device(study.attack.device)), settings.attack,
        study.attack.get(settings.attack).options, settings.epsilons, x, y,
        batch_size=study.attack.batch_size, seed=settings.seed, key="attack.attacks",
    )  # fmt: skip
    # Each deployed runtime opened once: the analysis and the boundary distances score on it.
    # The bit-width sweep's models are scored and attacked, not analysed (their figure is robust accuracy).
    analysed = [model.quantized(q) for q in study.quantize.of(model, sweep=False)]
    predicts = {m: open_runtime(m).predict for m in (model, *analysed)}
    quantized = []
    for name in study.quantize.of(model, sweep=False):
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
    return measured


def convergence_checks(study: Study, model: ModelId) -> list[tuple[str, ThreatModel, ModelId]]:
    """Every white-box minimisation set made on ``model`` or its quantized models that the check can double:
    (attack, threat model, source). None on a replicate (train.seeds): convergence is a property of the
    attack's settings on the architecture, checked on the model of the study's seed."""
    checks = []
    if model.seed is not None:
        return checks
    for config in study.attack.attacks:
        if steps_bounded(config.name, config.options):
            for threat in config.threat_models:
                sources = (
                    [model]
                    if threat is ThreatModel.WHITE_FLOAT
                    else [model.quantized(q) for q in study.quantize.of(model, sweep=False)]
                )
                checks += [(config.name, threat, source) for source in sources]
    return checks


def converge(name: str, threat: ThreatModel, source: ModelId) -> Convergence:
    """The convergence check of one white-box minimisation set, scored on the deployed runtime of its source."""
    study = load_study()
    spec = input_spec(DATASETS.get(study.prepare.dataset))
    victim = open_victim(threat, source, spec, resolve_device(study.attack.device), labels_only=False)
    return check_convergence(
        AdversarialSet.load(adversarial_set(name, threat.value, source)),
        eval_split()[0],
        victim,
        open_runtime(source).predict,
        study.attack.get(name).options,
        samples=study.analysis.convergence_samples,
        batch_size=study.attack.batch_size,
        seed=study.attack.seed,
    )


def part(job: tuple[str, ...]) -> dict:
    """One job of the stage, in whichever worker process takes it: the measurements, or one convergence check."""
    kind, *args = job
    if kind == "measure":
        return measure(ModelId.parse(args[0]))
    name, threat, source = args
    return converge(name, ThreatModel(threat), ModelId.parse(source)).record()
