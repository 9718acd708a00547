"""defend@<defense> and defend_recipe@<recipe>: the defense study for one defense.

For each arch in defend.archs and each precision (the float model, then each of defend.quantizers):

- the deployed system: the test-time defense in front of the <arch>-standard runtime (preprocessor,
  detector), the ensemble of its float and quantized runtimes, or the recipe model's own runtime;
- non-adaptive: the suite's defend.attack sets made on the undefended standard model (white_float on
  the float model, white_qnn_ste on a quantized one; each member's set for an ensemble), scored on it;
- adaptive: the same attack run again, through the defense (BPDA through non-differentiable steps, EOT
  over randomised ones, every branch of a detector, the ensemble's combined twin) or on the recipe
  model itself (its float model, its straight-through twin).

Writes reports/defenses/<name>.csv (result rows), reports/defenses/<name>.json (metrics) and its timing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from qrobust.attacks import ATTACKS, attack_subset, craft, perturbation_norms
from qrobust.data import DATASETS, load_split
from qrobust.defenses import REJECTED, Defense, Kind, create_defense, strongest
from qrobust.errors import ConfigError, run_stage
from qrobust.evaluation import AdversarialSet, clean_row, set_rows
from qrobust.io import save_json
from qrobust.layout import PREPARED, REPORTS, adversarial_dir, timing_path
from qrobust.models import InputSpec, input_spec
from qrobust.quantizers import calibration_subset
from qrobust.results import Result, ThreatModel, write_results
from qrobust.settings import (
    AttackSettings,
    DefendSettings,
    PrepareSettings,
    TrainSettings,
    load_validated,
    model_id,
)
from qrobust.training import RECIPES, attacker_view, resolve_device
from qrobust.victims import module_victim, open_module, open_runtime

Predict = Callable[[np.ndarray], np.ndarray]


class Study:
    """What every defense of the study shares: the attack, its samples, the non-adaptive sets."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.settings = DefendSettings.from_params(params)
        attacks = AttackSettings.from_params(params)
        self.attack = attacks.get(self.settings.attack)
        self.batch_size, self.seed = attacks.batch_size, self.settings.seed
        self.device = resolve_device(attacks.device)
        self.spec: InputSpec = input_spec(DATASETS.get(PrepareSettings.from_params(params).dataset))
        self.train = TrainSettings.from_params(params)
        x_all, y_all = load_split(PREPARED / "eval.npz")
        self.index = attack_subset(len(x_all), self.attack.samples, self.seed)
        self.x, self.y = x_all[self.index], y_all[self.index]
        self.rows: list[Result] = []
        self.metrics: dict[str, float] = {}

    def precisions(self) -> list[str]:
        return ["float", *self.settings.quantizers]

    @staticmethod
    def threat(precision: str) -> ThreatModel:
        return ThreatModel.WHITE_FLOAT if precision == "float" else ThreatModel.WHITE_QNN_STE

    @staticmethod
    def member(model: str, precision: str) -> str:
        return model if precision == "float" else f"{model}.{precision}"

    def suite_set(self, source: str, precision: str) -> AdversarialSet:
        """The non-adaptive set: made by the attack suite on ``source`` without any defense."""
        path = adversarial_dir(self.attack.name) / self.threat(precision).value / f"{source}.npz"
        adv = AdversarialSet.load(path)
        if not np.array_equal(adv.index, self.index):
            raise ConfigError(f"{path}: made on other samples than attack.attacks.{self.attack.name}; re-run its stage")
        return adv.at(self.settings.epsilons)

    def adaptive_set(
        self, view: Any, target: str, threat: ThreatModel, non_adaptive: Sequence[AdversarialSet]
    ) -> AdversarialSet:
        """The attack run again on ``view``, the attacker's differentiable model of the defended system;
        per sample, the attacker keeps whichever of that and the non-adaptive sets ``view`` rates stronger."""
        crafted = craft(
            module_victim(view, self.device), self.attack.name, self.attack.options, self.settings.epsilons,
            self.x, self.y, batch_size=self.batch_size, seed=self.seed, key="attack.attacks",
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
        target: str,
        arch: str,
        precision: str,
        non_adaptive: Sequence[AdversarialSet],
        adaptive: AdversarialSet,
    ) -> None:
        """Clean accuracy and both attacks on the deployed system. A detector's refusal of an
        adversarial input counts as robust; its refusal of a clean input counts as an error."""
        clean = predict(self.x) == self.y
        self.rows.append(clean_row(clean, target=target, arch=arch, precision=precision, defense=name))
        self.metrics[f"{target}/clean"] = round(float(clean.mean()), 4)
        for label, sets in (("non_adaptive", non_adaptive), ("adaptive", [adaptive])):
            robust = []
            for adv in sets:
                predicted = predict(adv.x_adv.reshape(-1, *adv.x_adv.shape[2:])).reshape(len(adv.epsilons), -1)
                correct = (predicted == self.y) | (predicted == REJECTED)
                robust.append(correct.mean(axis=1))
                self.rows += set_rows(
                    adv, correct, clean, target=target, arch=arch, precision=precision,
                    defense=name, adaptive=label == "adaptive",
                )  # fmt: skip
            # An ensemble is attacked by transfer from each member: the strongest attack counts.
            for eps, value in zip(self.settings.epsilons, np.min(robust, axis=0), strict=True):
                self.metrics[f"{target}/{label}/eps={eps:g}"] = round(float(value), 4)


def test_time(study: Study, defense: Defense) -> None:
    s = study.settings
    calib = None
    if defense.kind is Kind.DETECTOR:
        x_calib, _ = load_split(PREPARED / "calib.npz")
        calib = calibration_subset(x_calib, s.calib_samples, s.seed)
    for arch in s.archs:
        base = model_id(arch, DefendSettings.BASELINE)
        if defense.kind is Kind.ENSEMBLE:
            members = [study.member(base, p) for p in defense.members]
            system = defense.deploy([open_runtime(m) for m in members], s.seed)
            modules = [
                open_module(study.threat(p), m, study.spec) for m, p in zip(members, defense.members, strict=True)
            ]
            target = f"{base}.{defense.name}"
            non_adaptive = [study.suite_set(m, p) for m, p in zip(members, defense.members, strict=True)]
            # The combined twin is straight-through for every quantized member.
            view = defense.attacker_view(modules, s.seed + 1, s.eot_samples)
            adaptive = study.adaptive_set(view, target, ThreatModel.WHITE_QNN_STE, non_adaptive)
            study.score(defense.name, system.predict, target, arch, "+".join(defense.members), non_adaptive, adaptive)
            continue
        for precision in study.precisions():
            start = time.perf_counter()
            target = study.member(base, precision)
            system = defense.deploy([open_runtime(target)], s.seed, calib)
            if defense.kind is Kind.DETECTOR:
                study.metrics[f"{target}/threshold"] = round(system.threshold, 6)
                study.metrics[f"{target}/calib_false_positive_rate"] = round(system.calib_fpr, 4)
            view = defense.attacker_view(
                [open_module(study.threat(precision), target, study.spec)], s.seed + 1, s.eot_samples
            )
            non_adaptive = [study.suite_set(target, precision)]
            adaptive = study.adaptive_set(view, target, study.threat(precision), non_adaptive)
            study.score(defense.name, system.predict, target, arch, precision, non_adaptive, adaptive)
            print(f"{defense.name} on {target}: {time.perf_counter() - start:.1f}s")


def train_based(study: Study, recipe_name: str) -> None:
    s = study.settings
    recipe = RECIPES.get(recipe_name)(dict(study.train.recipe_options.get(recipe_name, {})))
    for arch in s.archs:
        base, defended = model_id(arch, DefendSettings.BASELINE), model_id(arch, recipe_name)
        for precision in study.precisions():
            start = time.perf_counter()
            target = study.member(defended, precision)
            module = open_module(study.threat(precision), target, study.spec, defended=True)
            non_adaptive = [study.suite_set(study.member(base, precision), precision)]
            adaptive = study.adaptive_set(attacker_view(recipe, module), target, study.threat(precision), non_adaptive)
            runtime = open_runtime(target, defended=True)
            study.score(recipe_name, runtime.predict, target, arch, precision, non_adaptive, adaptive)
            print(f"{recipe_name} on {target}: {time.perf_counter() - start:.1f}s")


def main(defense: str | None, recipe: str | None) -> None:
    params = load_validated()
    study = Study(params)
    s = study.settings
    if defense is not None:
        if defense not in s.defenses:
            raise ConfigError(f"defend: {defense!r} is not in defend.defenses; defenses: {', '.join(s.defenses)}")
        name = defense
    else:
        if recipe not in s.recipes:
            raise ConfigError(f"defend: {recipe!r} is not in defend.recipes {list(s.recipes)}")
        name = str(recipe)
    start = time.perf_counter()
    if defense is not None:
        test_time(study, create_defense(defense, s.defenses[defense]))
    else:
        train_based(study, name)
    write_results(REPORTS / "defenses" / f"{name}.csv", study.rows)
    save_json(REPORTS / "defenses" / f"{name}.json", {"defense": {name: study.metrics}})
    save_json(timing_path("defend", name), {"seconds": round(time.perf_counter() - start, 1)})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--defense", help="a test-time defense named in defend.defenses")
    group.add_argument("--recipe", help="a train-based recipe named in defend.recipes")
    args = parser.parse_args()
    run_stage("defend", main, args.defense, args.recipe)
