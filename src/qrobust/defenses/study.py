"""The defense study: each defense's deployed system attacked non-adaptively and adaptively.

For each arch in defend.archs and each precision (the float model, then each of defend.quantizers):

- the deployed system: the test-time defense in front of the <arch>-standard runtime (preprocessor,
  detector), the ensemble of its float and quantized runtimes, or the recipe model's own runtime;
- non-adaptive: the suite's defend.attack sets made on the undefended standard model (white_float on
  the float model, white_qnn_ste on a quantized one; each member's set for an ensemble), scored on it;
- adaptive: the same attack run again, through the defense (BPDA through non-differentiable steps, EOT
  over randomised ones, every branch of a detector, the ensemble's combined twin) or on the recipe
  model itself (its float model, its straight-through twin); then defend.composite (AutoAttack's
  sequence) through the same view on the samples that attack left, as AutoAttack runs its members.

``stages/defend.py`` reads params, calls ``run_defense`` or ``run_recipe`` and writes what they return.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from qrobust.analysis.mechanisms import verified_distances
from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.runner import attack_subset, craft, perturbation_norms
from qrobust.attacks.sets import AdversarialSet
from qrobust.attacks.threats import NORMS, ThreatModel
from qrobust.attacks.victims import module_victim, open_module
from qrobust.data.datasets import DATASETS
from qrobust.data.splits import eval_split
from qrobust.defenses.catalogue import REJECTED
from qrobust.defenses.detector_attack import detector_aware_pgd
from qrobust.evaluation.results import Result, paired, paired_difference, write_results
from qrobust.evaluation.scoring import clean_row, set_rows
from qrobust.evaluation.worstcase import ATTACK as WORST_CASE_ATTACK
from qrobust.models import InputSpec, input_spec
from qrobust.pipeline.device import resolve_device
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.io import save_json
from qrobust.pipeline.layout import REPORTS, adversarial_set
from qrobust.pipeline.model_id import FLOAT, ModelId
from qrobust.pipeline.provenance import save_timing
from qrobust.settings.attack import AttackConfig
from qrobust.settings.defend import DefendSettings
from qrobust.settings.study import Study

Predict = Callable[[np.ndarray], np.ndarray]

if TYPE_CHECKING:
    from qrobust.defenses.views import DetectionScore

DETECTOR_AWARE = "detector_aware_pgd"  # the detector-aware attack's name in the rows


def threat_of(precision: str) -> ThreatModel:
    """How the attack suite attacks a model of this precision: white-box on float, straight-through on a QNN."""
    return ThreatModel.WHITE_FLOAT if precision == FLOAT else ThreatModel.WHITE_QNN_STE


@dataclass
class DefenseStudy:
    """What every defense of the study shares (the attack, its samples, the non-adaptive sets), and
    the rows and metrics scored so far."""

    settings: DefendSettings
    attack: AttackConfig
    composite: AttackConfig  # defend.composite: run after the adaptive attack on the samples it left
    randomised_composite: AttackConfig  # the same with defend.randomised_composite_options, through EOT views
    boundary: AttackConfig  # defend.boundary_attack: the minimisation attack behind the recipes' boundary distances
    spec: InputSpec
    device: torch.device
    batch_size: int
    x_eval: np.ndarray
    y_eval: np.ndarray
    rows: list[Result] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, np.ndarray] = field(default_factory=dict)  # deterministic target -> worst case per sample

    def __post_init__(self) -> None:
        # The boundary attack's suite sets on the standard models are the recipes' reference distances.
        ran = {t.value for t in self.boundary.threat_models}
        if not {threat_of(p).value for p in self.precisions()} <= ran:
            raise ConfigError(
                f"defend.boundary_attack: {self.boundary.name!r} must run under white_float and white_qnn_ste "
                f"(attack.attacks.{self.boundary.name}.threat_models: {sorted(ran)})"
            )
        self.index = attack_subset(
            len(self.x_eval), self.attack.samples_for(ThreatModel.WHITE_FLOAT), self.settings.seed
        )
        self.x, self.y = self.x_eval[self.index], self.y_eval[self.index]

    @classmethod
    def of(cls, study: Study) -> DefenseStudy:
        """The defense study of params.yaml on the evaluation subset."""
        attacks = study.attack
        x_eval, y_eval = eval_split()
        return cls(
            settings=study.defend,
            attack=attacks.get(study.defend.attack),
            composite=study.defend.composite_attack(attacks),
            randomised_composite=study.defend.composite_attack(attacks, randomised=True),
            boundary=attacks.get(study.defend.boundary_attack),
            spec=input_spec(DATASETS.get(study.prepare.dataset)),
            device=resolve_device(attacks.device),
            batch_size=attacks.batch_size,
            x_eval=x_eval,
            y_eval=y_eval,
        )

    def save(self, name: str, seconds: float) -> None:
        """reports/defenses/<name>.csv (rows) and .json (metrics), and the stage's timing."""
        write_results(REPORTS / "defenses" / f"{name}.csv", self.rows)
        save_json(REPORTS / "defenses" / f"{name}.json", {"defense": {name: self.metrics}})
        save_timing("defend", name, {"seconds": round(seconds, 1)})

    def precisions(self) -> list[str]:
        return [FLOAT, *self.settings.quantizers]

    @staticmethod
    def suite_path(attack: str, source: ModelId) -> Path:
        """Where the attack suite wrote ``attack``'s set on ``source``, under the threat model of its precision."""
        return adversarial_set(attack, threat_of(source.precision).value, source)

    def suite_set(self, source: ModelId) -> AdversarialSet:
        """The non-adaptive set: made by the attack suite on ``source`` without any defense. A sweep width
        among a defense's members (random precision) was attacked on fewer samples (attack.sweep_samples, a
        subset of these): the suite's attack is then made here on the defense study's samples, through the
        same twin with the same options and seed, as the suite would have made it."""
        path = self.suite_path(self.attack.name, source)
        adv = AdversarialSet.load(path)
        if len(adv.index) < len(self.index) and np.isin(adv.index, self.index).all():
            threat = threat_of(source.precision)
            return self.adaptive_set(open_module(threat, source, self.spec), source, threat)
        if not np.array_equal(adv.index, self.index):
            raise ConfigError(f"{path}: made on other samples than attack.attacks.{self.attack.name}; re-run its stage")
        return adv.at(self.settings.epsilons)

    def suite_boundary(self, source: ModelId) -> AdversarialSet:
        """The boundary attack's unbounded outputs, made by the attack suite on ``source`` (the standard
        model) under the threat model of its precision."""
        return AdversarialSet.load(self.suite_path(self.boundary.name, source)).at([math.inf])

    def adaptive_set(self, view: Any, target: ModelId, threat: ThreatModel) -> AdversarialSet:
        """The attack run again on ``view``, the attacker's differentiable model of the defended system."""
        crafted = craft(
            module_victim(view, self.device), self.attack.name, self.attack.options, self.settings.epsilons,
            self.x, self.y, batch_size=self.batch_size, seed=self.settings.seed, key="attack.attacks",
        )  # fmt: skip
        return AdversarialSet(
            attack=self.attack.name,
            norm=ATTACKS.get(self.attack.name).norm.value,
            threat_model=threat,
            source=target,
            index=self.index,
            labels=self.y,
            epsilons=crafted.epsilons,
            x_adv=crafted.x_adv,
            sizes=perturbation_norms(crafted.x_adv, self.x),
            queries_per_sample=crafted.queries_per_sample,
        )

    def composite_set(
        self, view: Any, after: AdversarialSet, predict: Predict, draws: int, *, randomised: bool = False
    ) -> AdversarialSet:
        """defend.composite through ``view``, run as AutoAttack runs its members: per epsilon only on the
        samples the deployed system gets right clean and under ``after`` (the plain adaptive set) in every
        draw; elsewhere ``after``'s example stands. Its row is thus the sequence adaptive attack, then the
        composite, and never above the adaptive attack alone in a deterministic system. ``randomised``
        takes defend.randomised_composite_options (for a randomised defense, and for the bare model it is
        compared with, so both sides face the same attack)."""
        composite = self.randomised_composite if randomised else self.composite
        clean = np.all([predict(self.x) == self.y for _ in range(draws)], axis=0)
        left = self.right(self.labels(predict, after, draws)).all(axis=0) & clean  # (epsilons, N)
        victim = module_victim(view, self.device)
        x_adv, queries = after.x_adv.copy(), 0.0
        for e, eps in enumerate(self.settings.epsilons):
            rows = np.flatnonzero(left[e])
            if rows.size:
                crafted = craft(
                    victim, composite.name, composite.options, [eps], self.x[rows], self.y[rows],
                    batch_size=self.batch_size, seed=self.settings.seed, key="attack.attacks",
                )  # fmt: skip
                x_adv[e, rows] = crafted.x_adv[0]
                queries += crafted.queries_per_sample * int(crafted.attacked.sum())
        return replace(
            after,
            attack=composite.name,
            x_adv=x_adv,
            sizes=perturbation_norms(x_adv, self.x),
            queries_per_sample=after.queries_per_sample + queries / len(self.x),
        )

    def adaptive_sets(
        self,
        view: Any,
        predict: Predict,
        target: ModelId,
        threat: ThreatModel,
        draws: int = 1,
        *,
        randomised: bool = False,
    ) -> list[AdversarialSet]:
        """The plain adaptive set, then the composite after it."""
        plain = self.adaptive_set(view, target, threat)
        return [plain, self.composite_set(view, plain, predict, draws, randomised=randomised)]

    def detector_aware_set(
        self, score: DetectionScore, threshold: float, target: ModelId, threat: ThreatModel
    ) -> AdversarialSet:
        """The detector-aware attack on the detector's score and its classifier, at defend.attack's norm,
        steps and step size, over the defense epsilons."""
        options = self.attack.options
        norm = ATTACKS.get(self.attack.name).norm.value
        x_adv = detector_aware_pgd(
            score, self.x, self.y, self.settings.epsilons, threshold,
            norm=norm, steps=int(options["steps"]), rel_stepsize=float(options["rel_stepsize"]),
            seed=self.settings.seed, batch_size=self.batch_size, device=self.device,
        )  # fmt: skip
        return AdversarialSet(
            attack=DETECTOR_AWARE,
            norm=norm,
            threat_model=threat,
            source=target,
            index=self.index,
            labels=self.y,
            epsilons=tuple(self.settings.epsilons),
            x_adv=x_adv,
            sizes=perturbation_norms(x_adv, self.x),
            queries_per_sample=float(int(options["steps"]) + 1),
        )

    def labels(self, predict: Predict, adv: AdversarialSet, draws: int = 1) -> np.ndarray:
        """(draws, epsilons, N): the deployed system's answers, queried ``draws`` times, on ``adv``."""
        flat = adv.x_adv.reshape(-1, *adv.x_adv.shape[2:])
        return np.stack([predict(flat).reshape(len(adv.epsilons), -1) for _ in range(draws)])

    def right(self, labels: np.ndarray) -> np.ndarray:
        """The true class or (a detector) a refusal."""
        return (labels == self.y) | (labels == REJECTED)

    def robust(self, predict: Predict, adv: AdversarialSet) -> np.ndarray:
        """(epsilons, N): the samples a deterministic system gets right clean and under ``adv``."""
        return self.right(self.labels(predict, adv)[0]) & (predict(self.x) == self.y)

    def score(
        self,
        name: str,
        predict: Predict,
        target: ModelId,
        non_adaptive: Sequence[AdversarialSet],
        adaptive: Sequence[AdversarialSet],
        *,
        precision: str | None = None,
        draws: int = 1,
        bare: Predict | None = None,
        bare_sets: Sequence[AdversarialSet] = (),
        detector: bool = False,
    ) -> None:
        """Clean accuracy and three figures per epsilon on the deployed system: the non-adaptive sets,
        each adaptive set alone, and per sample the worst case over all (a sample is robust only if no
        set fooled it). Robust accuracy is the standard one: a sample counts if the system gets its clean
        input right and, on the adversarial input, the right class or a detector's refusal (Carlini and
        Wagner 2017; Tramer et al. 2020); a refusal of a clean input is an error, so a detector that
        refuses everything scores 0. A randomised system is queried ``draws`` times per input, each time
        with fresh randomness: its rows give the mean over the draws and the worst case over them.

        The adaptive and worst-case rows carry their paired difference from the non-adaptive figure
        (for an ensemble, the strongest member's set). ``bare`` (the model without the defense) gives the
        defense's paired effect in the metrics: the worst case against the bare model on its own
        non-adaptive set and ``bare_sets`` (the composite through the bare model: the same attacks on both
        sides); for a ``detector``, the rejection rate of clean inputs and, per set, the share of
        the adversarial inputs that fool the bare model which it rejects."""
        keys = {"target": target, "precision": precision, "defense": name}
        answers = np.stack([predict(self.x) for _ in range(draws)])  # (draws, N)
        clean = answers == self.y
        self.rows.append(clean_row(clean, **keys))
        self.metrics[f"{target}/clean"] = round(float(clean.mean()), 4)
        if detector:
            self.metrics[f"{target}/clean_rejection_rate"] = round(float((answers == REJECTED).mean()), 4)
        sets = [*non_adaptive, *adaptive]
        labels = [self.labels(predict, adv, draws) for adv in sets]
        for adv, given in zip(non_adaptive, labels, strict=False):
            self.rows += set_rows(adv, self.right(given), clean, clean, **keys)
        every = np.stack([self.right(given) & clean[:, None] for given in labels])  # (sets, draws, epsilons, N)
        # The non-adaptive figure (an ensemble is attacked by transfer from each member): the strongest set.
        reference = min(every[: len(non_adaptive)], key=lambda r: float(r.mean()))
        worst = every.all(axis=0)
        undefended = None
        if bare is not None:
            undefended = np.all([self.robust(bare, adv) for adv in (non_adaptive[0], *bare_sets)], axis=0)
        if draws == 1:
            self.outcomes[str(target)] = worst[0]  # (epsilons, N): pairs precisions of one model
        # The plain adaptive attack is "adaptive"; a further one (a detector's) is named after its attack.
        names = ["non_adaptive"] * len(non_adaptive) + [
            "adaptive" if i == 0 else f"adaptive_{adv.attack}" for i, adv in enumerate(adaptive)
        ]
        for e, eps in enumerate(self.settings.epsilons):
            scored = [
                (
                    names[i],
                    every[i][:, e],
                    set_rows(adv.at([eps]), self.right(labels[i][:, e : e + 1]), clean, clean, **keys)[0],
                )
                for i, adv in enumerate(sets)
                if i >= len(non_adaptive)
            ]
            scored.append(
                ("worst_case", worst[:, e], self._worst_row(sets, every[:, 0, e], worst[:, e], clean, e, keys))
            )
            for label, outcome, row in scored:
                row = paired(replace(row, adaptive=True), "non-adaptive", reference[:, e], outcome)
                self.rows.append(row)
                self.metrics[f"{target}/{label}/eps={eps:g}"] = round(row.robust_accuracy, 4)
                if draws > 1:
                    self.metrics[f"{target}/{label}_every_draw/eps={eps:g}"] = round(row.robust_accuracy_every_draw, 4)
            self.metrics[f"{target}/non_adaptive/eps={eps:g}"] = round(float(reference[:, e].mean()), 4)
            self.metrics[f"{target}/gap/eps={eps:g}"] = _rounded(paired_difference(worst[:, e], reference[:, e]))
            if undefended is not None:
                effect = paired_difference(np.broadcast_to(undefended[e], worst[:, e].shape), worst[:, e])
                self.metrics[f"{target}/vs_undefended/eps={eps:g}"] = _rounded(effect)
            if detector and bare is not None:
                for i, adv in enumerate(sets):
                    fools = (self.labels(bare, adv)[0, e] != self.y) & clean[0]
                    caught = (labels[i][0, e] == REJECTED)[fools]
                    self.metrics[f"{target}/detection_rate/{names[i]}/eps={eps:g}"] = {
                        "rate": round(float(caught.mean()), 4) if caught.size else None,
                        "n": int(caught.size),
                    }

    def _worst_row(
        self,
        sets: Sequence[AdversarialSet],
        first_draw: np.ndarray,
        worst: np.ndarray,
        clean: np.ndarray,
        e: int,
        keys: dict[str, Any],
    ) -> Result:
        """The worst-case row at epsilon index ``e``: per sample, the perturbation sizes of the first set
        that fooled the system in the first draw (the adaptive set's where none did)."""
        chosen = np.argmin(np.concatenate([first_draw, np.zeros((1, first_draw.shape[1]), dtype=bool)]), axis=0)
        chosen = np.minimum(chosen, len(sets) - 1)
        n = np.arange(first_draw.shape[1])
        sizes = {norm: np.stack([a.sizes[norm][e] for a in sets])[chosen, n] for norm in NORMS}
        target = keys["target"]
        return Result.score_draws(
            correct=worst,
            clean=clean,
            attackable=clean,
            sizes=sizes,
            attack=WORST_CASE_ATTACK,
            norm=sets[-1].norm,
            epsilon=float(self.settings.epsilons[e]),
            threat_model=ThreatModel.WORST_CASE.value,
            source_threat_model=ThreatModel.WORST_CASE.value,
            source=str(target),
            target=str(target),
            target_arch=target.arch,
            target_precision=keys["precision"] or target.precision,
            defense=keys["defense"],
        )

    def boundary_distances(self, view: Any, predict: Predict, index: np.ndarray) -> np.ndarray:
        """Per sample at ``index`` the verified L2 distance of the boundary attack's unbounded output, made
        on ``view`` (the attacker's model), on ``predict`` (the deployed runtime): inf where it does not
        fool it (``verified_distances``)."""
        x, y = self.x_eval[index], self.y_eval[index]
        crafted = craft(
            module_victim(view, self.device), self.boundary.name, self.boundary.options, (), x, y,
            batch_size=self.batch_size, seed=self.settings.seed, key="attack.attacks",
        )  # fmt: skip
        return verified_distances(predict, crafted.x_adv[-1], y, perturbation_norms(crafted.x_adv, x)["l2"][-1])

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

    def pair_precisions(self, float_target: ModelId, target: ModelId) -> None:
        """``target`` (a quantized copy) against ``float_target`` under the same attacks on the same samples:
        the paired difference of their worst cases, with the discordant counts a paired test reads."""
        reference, other = self.outcomes.get(str(float_target)), self.outcomes.get(str(target))
        if reference is None or other is None:
            return
        for e, eps in enumerate(self.settings.epsilons):
            self.metrics[f"{target}/vs_float/eps={eps:g}"] = _rounded(paired_difference(reference[e], other[e]))


def _rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) if math.isfinite(v) else None for k, v in d.items()}
