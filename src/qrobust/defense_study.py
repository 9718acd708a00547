"""The defense study: each defense's deployed system attacked non-adaptively and adaptively.

For each arch in defend.archs and each precision (the float model, then each of defend.quantizers):

- the deployed system: the test-time defense in front of the <arch>-standard runtime (preprocessor,
  detector), the ensemble of its float and quantized runtimes, or the recipe model's own runtime;
- non-adaptive: the suite's defend.attack sets made on the undefended standard model (white_float on
  the float model, white_qnn_ste on a quantized one; each member's set for an ensemble), scored on it;
- adaptive: the same attack run again, through the defense (BPDA through non-differentiable steps, EOT
  over randomised ones, every branch of a detector, the ensemble's combined twin) or on the recipe
  model itself (its float model, its straight-through twin).

``stages/defend.py`` reads params, calls ``run_defense`` or ``run_recipe`` and writes what they return.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from qrobust.analysis import bootstrap_median_difference, boundary_distances
from qrobust.attacks import ATTACKS, attack_subset, craft, perturbation_norms
from qrobust.defenses import REJECTED, Defense, DefenseKind, strongest
from qrobust.errors import ConfigError
from qrobust.evaluation import AdversarialSet, clean_row, set_rows
from qrobust.layout import adversarial_dir
from qrobust.model_id import FLOAT, ModelId
from qrobust.models import InputSpec
from qrobust.results import Result, ThreatModel
from qrobust.settings import AttackConfig, DefendSettings
from qrobust.training import Recipe, attacker_view
from qrobust.victims import module_victim, open_module, open_runtime

Predict = Callable[[np.ndarray], np.ndarray]


def threat_of(precision: str) -> ThreatModel:
    """How the attack suite attacks a model of this precision: white-box on float, straight-through on a QNN."""
    return ThreatModel.WHITE_FLOAT if precision == FLOAT else ThreatModel.WHITE_QNN_STE


@dataclass
class DefenseStudy:
    """What every defense of the study shares (the attack, its samples, the non-adaptive sets), and
    the rows and metrics scored so far."""

    settings: DefendSettings
    attack: AttackConfig
    boundary: AttackConfig  # defend.boundary_attack: the minimisation attack behind the recipes' boundary distances
    spec: InputSpec
    device: torch.device
    batch_size: int
    x_eval: np.ndarray
    y_eval: np.ndarray
    rows: list[Result] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = attack_subset(len(self.x_eval), self.attack.samples, self.settings.seed)
        self.x, self.y = self.x_eval[self.index], self.y_eval[self.index]

    def precisions(self) -> list[str]:
        return [FLOAT, *self.settings.quantizers]

    def suite_set(self, source: ModelId) -> AdversarialSet:
        """The non-adaptive set: made by the attack suite on ``source`` without any defense."""
        path = adversarial_dir(self.attack.name) / threat_of(source.precision).value / f"{source}.npz"
        adv = AdversarialSet.load(path)
        if not np.array_equal(adv.index, self.index):
            raise ConfigError(f"{path}: made on other samples than attack.attacks.{self.attack.name}; re-run its stage")
        return adv.at(self.settings.epsilons)

    def adaptive_set(
        self, view: Any, target: ModelId, threat: ThreatModel, non_adaptive: Sequence[AdversarialSet]
    ) -> AdversarialSet:
        """The attack run again on ``view``, the attacker's differentiable model of the defended system;
        per sample, the attacker keeps whichever of that and the non-adaptive sets ``view`` rates stronger."""
        crafted = craft(
            module_victim(view, self.device), self.attack.name, self.attack.options, self.settings.epsilons,
            self.x, self.y, batch_size=self.batch_size, seed=self.settings.seed, key="attack.attacks",
        )  # fmt: skip
        x_adv = np.stack(
            [
                strongest(view, self.y, [crafted.x_adv[e], *(a.x_adv[e] for a in non_adaptive)], self.device)
                for e in range(len(crafted.epsilons))
            ]
        )
        return AdversarialSet(
            attack=self.attack.name,
            norm=ATTACKS.get(self.attack.name).norm.value,
            threat_model=threat,
            source=target,
            index=self.index,
            labels=self.y,
            epsilons=crafted.epsilons,
            x_adv=x_adv,
            sizes=perturbation_norms(x_adv, self.x),
            queries_per_sample=crafted.queries_per_sample,
        )

    def score(
        self,
        name: str,
        predict: Predict,
        target: ModelId,
        non_adaptive: Sequence[AdversarialSet],
        adaptive: AdversarialSet,
        precision: str | None = None,
    ) -> None:
        """Clean accuracy and both attacks on the deployed system, robust accuracy the standard way: a
        sample counts if the system gets its clean input right and, on the adversarial input, the right
        class or a detector's refusal (Carlini and Wagner 2017; Tramer et al. 2020). A refusal of a clean
        input is an error, so a detector that refuses everything scores 0."""
        clean = predict(self.x) == self.y
        self.rows.append(clean_row(clean, target=target, precision=precision, defense=name))
        self.metrics[f"{target}/clean"] = round(float(clean.mean()), 4)
        for label, sets in (("non_adaptive", non_adaptive), ("adaptive", [adaptive])):
            robust = []
            for adv in sets:
                predicted = predict(adv.x_adv.reshape(-1, *adv.x_adv.shape[2:])).reshape(len(adv.epsilons), -1)
                correct = (predicted == self.y) | (predicted == REJECTED)
                robust.append((correct & clean).mean(axis=1))
                self.rows += set_rows(
                    adv, correct, clean, clean, target=target, precision=precision, defense=name,
                    adaptive=label == "adaptive",
                )  # fmt: skip
            # An ensemble is attacked by transfer from each member: the strongest attack counts.
            for eps, value in zip(self.settings.epsilons, np.min(robust, axis=0), strict=True):
                self.metrics[f"{target}/{label}/eps={eps:g}"] = round(float(value), 4)

    def boundary_distances(self, view: Any, predict: Predict) -> np.ndarray:
        """The L2 sizes of the boundary attack's unbounded outputs, made on ``view`` (the attacker's
        model), that fool ``predict`` (the deployed runtime)."""
        crafted = craft(
            module_victim(view, self.device), self.boundary.name, self.boundary.options, (), self.x, self.y,
            batch_size=self.batch_size, seed=self.settings.seed, key="attack.attacks",
        )  # fmt: skip
        return boundary_distances(
            predict, crafted.x_adv[-1], self.y, perturbation_norms(crafted.x_adv, self.x)["l2"][-1]
        )

    def retention(self, float_set: AdversarialSet, float_predict: Predict, predict: Predict, target: ModelId) -> None:
        """Of the float recipe model's adaptive examples that fool its runtime, the share that also fool
        ``predict`` (its quantized runtime), among samples both classify correctly (Costa & Pinto 2024)."""
        both = (float_predict(self.x) == self.y) & (predict(self.x) == self.y)
        for e, eps in enumerate(float_set.epsilons):
            float_fooled = float_predict(float_set.x_adv[e]) != self.y
            fooled = (predict(float_set.x_adv[e]) != self.y)[both & float_fooled]
            self.metrics[f"{target}/transfer_retention/eps={eps:g}"] = {
                "rate": float(fooled.mean()) if fooled.size else float("nan"),
                "k": int(fooled.sum()),
                "n": int(fooled.size),
            }


def run_defense(study: DefenseStudy, defense: Defense, calib: np.ndarray | None) -> None:
    """A test-time defense in front of each baseline model (or the ensemble of its precisions)."""
    s = study.settings
    for arch in s.archs:
        base = ModelId(arch, DefendSettings.BASELINE)
        if defense.kind is DefenseKind.ENSEMBLE:
            members = [base.at(p) for p in defense.members]
            system = defense.deploy([open_runtime(m) for m in members], s.seed)
            modules = [open_module(threat_of(m.precision), m, study.spec) for m in members]
            non_adaptive = [study.suite_set(m) for m in members]
            # The combined twin is straight-through for every quantized member.
            view = defense.attacker_view(modules, s.seed + 1, s.eot_samples)
            target = base.quantized(defense.name)
            adaptive = study.adaptive_set(view, target, ThreatModel.WHITE_QNN_STE, non_adaptive)
            study.score(defense.name, system.predict, target, non_adaptive, adaptive, "+".join(defense.members))
            continue
        for precision in study.precisions():
            start = time.perf_counter()
            target = base.at(precision)
            system = defense.deploy([open_runtime(target)], s.seed, calib)
            if defense.kind is DefenseKind.DETECTOR:
                study.metrics[f"{target}/threshold"] = round(system.threshold, 6)
                study.metrics[f"{target}/calib_false_positive_rate"] = round(system.calib_fpr, 4)
            view = defense.attacker_view(
                [open_module(threat_of(precision), target, study.spec)], s.seed + 1, s.eot_samples
            )
            non_adaptive = [study.suite_set(target)]
            adaptive = study.adaptive_set(view, target, threat_of(precision), non_adaptive)
            study.score(defense.name, system.predict, target, non_adaptive, adaptive)
            print(f"{defense.name} on {target}: {time.perf_counter() - start:.1f}s")


def run_recipe(study: DefenseStudy, name: str, recipe: Recipe) -> None:
    """A train-based defense: the baseline's sets transferred to the recipe model, and the attack on it.
    Beside the rows, per precision the recipe model's boundary distance against the standard model's
    (difference of medians with a bootstrap interval), and per quantized recipe model how many of the
    float recipe model's adaptive examples still fool it."""
    s = study.settings
    for arch in s.archs:
        base, defended = ModelId(arch, DefendSettings.BASELINE), ModelId(arch, name)
        float_set, float_runtime = None, None
        for precision in study.precisions():
            start = time.perf_counter()
            target = defended.at(precision)
            view = attacker_view(recipe, open_module(threat_of(precision), target, study.spec, defended=True))
            non_adaptive = [study.suite_set(base.at(precision))]
            adaptive = study.adaptive_set(view, target, threat_of(precision), non_adaptive)
            runtime = open_runtime(target, defended=True)
            study.score(name, runtime.predict, target, non_adaptive, adaptive)
            if float_set is None or float_runtime is None:
                float_set, float_runtime = adaptive, runtime
            else:
                study.retention(float_set, float_runtime.predict, runtime.predict, target)
            standard = base.at(precision)
            study.metrics[f"{target}/boundary_distance_l2"] = bootstrap_median_difference(
                study.boundary_distances(
                    open_module(threat_of(precision), standard, study.spec), open_runtime(standard).predict
                ),
                study.boundary_distances(view, runtime.predict),
                s.seed,
            )
            print(f"{name} on {target}: {time.perf_counter() - start:.1f}s")
