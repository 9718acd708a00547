"""Cross-evaluation: every adversarial set scored on every target's deployed runtime.

A set scored on the model it was made on carries the threat model it was made under; scored on
any other target it is a transfer row. Either way the prediction comes from the deployed runtime
(never from a twin). The defense study (stages/defend.py) scores its rows with the same helpers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from qrobust.attacks.sets import AdversarialSet
from qrobust.attacks.threats import NORMS, ThreatModel
from qrobust.evaluation.results import Result, paired
from qrobust.evaluation.worstcase import ATTACK as WORST_CASE
from qrobust.evaluation.worstcase import WorstCase
from qrobust.pipeline.model_id import ModelId


class DeployedSystem(Protocol):
    """What a target is scored on: a runtime (``qrobust.deploy.runtime.Runtime``), or a defended system built on
    runtimes, whose labels may be ``defenses.REJECTED``."""

    def predict(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Target:
    model: ModelId
    runtime: DeployedSystem


def clean_row(correct: np.ndarray, *, target: ModelId, precision: str | None = None, defense: str = "none") -> Result:
    """Accuracy on clean inputs: the reference every adversarial row of the target is read against.
    ``correct`` is (N,), or (draws, N) for a randomised system. ``precision`` defaults to the target's
    own (an ensemble names its members instead)."""
    correct = np.atleast_2d(correct)
    return Result.score_draws(
        correct=correct,
        clean=correct,
        attackable=np.zeros(correct.shape, dtype=bool),
        sizes={norm: np.zeros(correct.shape[1], dtype=np.float32) for norm in NORMS},
        attack="none",
        norm="none",
        epsilon=0.0,
        threat_model=ThreatModel.CLEAN.value,
        source_threat_model=ThreatModel.CLEAN.value,
        source=str(target),
        target=str(target),
        target_arch=target.arch,
        target_precision=precision or target.precision,
        defense=defense,
    )


def set_rows(
    adv: AdversarialSet,
    correct: np.ndarray,
    clean: np.ndarray,
    attackable: np.ndarray,
    *,
    target: ModelId,
    precision: str | None = None,
    defense: str = "none",
    adaptive: bool = False,
) -> list[Result]:
    """One row per epsilon of ``adv`` scored on ``target``: ``correct`` is (epsilons, N) after the
    attack, ``clean`` (N,) the samples the target got right clean, ``attackable`` (N,) those that the
    target and, for transfer, the source got right clean. A randomised system scored over several draws
    gives each with a leading draws axis: (draws, epsilons, N) and (draws, N)."""
    own = target == adv.source
    if correct.ndim == 2:
        correct = correct[None]
    clean, attackable = np.atleast_2d(clean), np.atleast_2d(attackable)
    return [
        Result.score_draws(
            correct=correct[:, e],
            clean=clean,
            attackable=attackable,
            sizes={norm: adv.sizes[norm][e] for norm in NORMS},
            queries_per_sample=adv.queries_per_sample if own else math.nan,
            attack=adv.attack,
            norm=adv.norm,
            epsilon=float(eps),
            threat_model=(adv.threat_model if own else ThreatModel.TRANSFER).value,
            source_threat_model=adv.threat_model.value,
            source=str(adv.source),
            target=str(target),
            target_arch=target.arch,
            target_precision=precision or target.precision,
            defense=defense,
            adaptive=adaptive,
        )
        for e, eps in enumerate(adv.epsilons)
    ]


@dataclass(frozen=True)
class Distinct:
    """A batch with each distinct input once: ``inputs[inverse]`` is the batch. A deterministic runtime
    (a randomised defense draws per call, and is scored row by row in the defense study) need answer
    only ``inputs``. The default study's sets repeat 39% of their inputs: samples an attack left alone
    (wrong clean), a minimisation attack's clipped copies that equal its unclipped output, examples that
    stopped changing at a larger epsilon. Found once per batch (sorting the rows is the slow part), then
    asked of every target."""

    inputs: np.ndarray
    inverse: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> Distinct:
        if len(x) == 0:
            return cls(x, np.zeros(0, dtype=np.intp))
        rows = np.ascontiguousarray(x).reshape(len(x), -1)
        keys = rows.view(np.dtype((np.void, rows.shape[1] * rows.itemsize))).ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        return cls(x[first], inverse.ravel())

    def predict(self, runtime: DeployedSystem) -> np.ndarray:
        return runtime.predict(self.inputs)[self.inverse]


def predict_distinct(runtime: DeployedSystem, x: np.ndarray) -> np.ndarray:
    """``runtime.predict(x)``, each distinct input scored once (``Distinct``)."""
    return Distinct.of(x).predict(runtime)


def _paired_with_parent(model: ModelId, scored: Mapping[ModelId, np.ndarray]) -> bool:
    """A quantized model whose float parent is scored too: its rows carry the paired difference."""
    return model.quantizer is not None and model.parent in scored


def check_sources(models: Sequence[ModelId], sets: Sequence[AdversarialSet]) -> None:
    """Every set was made on one of ``models`` (before any runtime is asked)."""
    for adv in sets:
        if adv.source not in models:
            raise ValueError(
                f"adversarial set from {adv.source} has no matching target; targets: {sorted(map(str, models))}"
            )


def stacked_inputs(sets: Sequence[AdversarialSet], x: np.ndarray) -> Distinct:
    """Every set's examples, epsilon by epsilon, as one batch of distinct inputs: one runtime call per
    target over every set, since per-call overhead (INC's eager graph) dominates otherwise."""
    stack = np.concatenate([adv.x_adv.reshape(-1, *adv.x_adv.shape[2:]) for adv in sets]) if sets else x[:0]
    return Distinct.of(stack)


@dataclass(frozen=True)
class Labels:
    """A deployed runtime's answers: on the clean samples, and on ``stacked_inputs`` of the sets."""

    clean: np.ndarray
    adversarial: np.ndarray


def target_labels(runtime: DeployedSystem, x: np.ndarray, stack: Distinct) -> Labels:
    return Labels(runtime.predict(x), stack.predict(runtime))


def cross_evaluate(
    targets: Sequence[Target], sets: Sequence[AdversarialSet], x: np.ndarray, y: np.ndarray
) -> tuple[list[Result], WorstCase]:
    """Every set on every target, each runtime asked in turn (``score_labels`` scores the answers)."""
    check_sources([t.model for t in targets], sets)
    stack = stacked_inputs(sets, x)
    return score_labels({t.model: target_labels(t.runtime, x, stack) for t in targets}, sets, y)


def outcome_key(attack: str, threat: str, epsilon: float, source: object, target: object) -> str:
    """How ``reports/outcomes.npz`` names a row's per-sample outcome (and, with ``index|``, its samples)."""
    return f"{attack}|{threat}|{epsilon:g}|{source}|{target}"


def set_index_key(attack: str, threat: str, source: object) -> str:
    """The samples of a set, shared by its rows in ``reports/outcomes.npz``."""
    return f"index|{attack}|{threat}|{source}"


def score_labels(
    labels: Mapping[ModelId, Labels],
    sets: Sequence[AdversarialSet],
    y: np.ndarray,
    outcomes: dict[str, np.ndarray] | None = None,
) -> tuple[list[Result], WorstCase]:
    """Clean rows (one per target), one row per (set, epsilon, target), every set on every target, then
    per target the per-sample worst case at each (norm, epsilon); and who broke each sample. ``labels``:
    each target's answers, in the order of the rows."""
    check_sources(list(labels), sets)
    clean_correct = {model: given.clean == y for model, given in labels.items()}
    if outcomes is not None:
        for model, right in clean_correct.items():
            key = outcome_key("none", ThreatModel.CLEAN.value, 0.0, model, model)
            outcomes[key], outcomes[f"index|{key}"] = right, np.arange(len(y), dtype=np.int32)
    rows = []
    for model in labels:
        row = clean_row(clean_correct[model], target=model)
        if _paired_with_parent(model, clean_correct):
            row = paired(row, model.parent, clean_correct[model.parent], clean_correct[model])
        rows.append(row)
    worst = WorstCase(clean_correct)
    bounds = np.cumsum([0, *(adv.x_adv.shape[0] * adv.x_adv.shape[1] for adv in sets)])
    predicted = {model: given.adversarial for model, given in labels.items()}
    for model in labels:
        for adv, lo, hi in zip(sets, bounds[:-1], bounds[1:], strict=True):
            truth, shape = y[adv.index], (len(adv.epsilons), -1)
            clean = clean_correct[model][adv.index]
            # Transfer success counts only samples both models got right (Bernhard et al. 2019).
            attackable = clean if model == adv.source else clean & clean_correct[adv.source][adv.index]
            correct = predicted[model][lo:hi].reshape(shape) == truth
            scored = set_rows(adv, correct, clean, attackable, target=model)
            if _paired_with_parent(model, predicted):
                # The same set and samples on the float parent: the quantization's effect, paired.
                parent = model.parent
                reference = (predicted[parent][lo:hi].reshape(shape) == truth) & clean_correct[parent][adv.index]
                scored = [paired(row, parent, reference[e], correct[e] & clean) for e, row in enumerate(scored)]
            rows += scored
            threat = adv.threat_model if model == adv.source else ThreatModel.TRANSFER
            if outcomes is not None:
                # Per sample, robust (right clean and under the attack): what a paired comparison of two
                # revisions reads (qrobust.tools.compare), with the samples' indices once per set.
                outcomes[set_index_key(adv.attack, adv.threat_model.value, adv.source)] = adv.index.astype(np.int32)
                for e, eps in enumerate(adv.epsilons):
                    outcomes[outcome_key(adv.attack, threat.value, eps, adv.source, model)] = correct[e] & clean
            for e, eps in enumerate(adv.epsilons):
                sizes = {norm: adv.sizes[norm][e] for norm in NORMS}
                worst.add(model, f"{adv.attack}/{threat.value}", adv.norm, eps, adv.index, correct[e], sizes)
    if outcomes is not None:
        for (model, norm, eps), budget in worst.budgets.items():
            key = f"{outcome_key(WORST_CASE, ThreatModel.WORST_CASE.value, eps, model, model)}|{norm}"
            covered = np.flatnonzero(budget.covered)
            outcomes[key], outcomes[f"index|{key}"] = worst.robust(model, norm, eps)[covered], covered.astype(np.int32)
    return rows + worst.rows(), worst


def flat_metrics(rows: Sequence[Result]) -> dict[str, float]:
    """Flat JSON for `dvc metrics`: clean accuracy per target and defense; robust accuracy of every
    model under its own attacks (white-box or black-box), and of each quantized model against sets
    made white-box on its float parent (transfer); the distance to the decision boundary (the censored
    median) and the share of samples it was found for."""
    metrics: dict[str, float] = {}
    for r in rows:
        parent = str(ModelId.parse(r.target).parent)
        if r.threat_model == ThreatModel.CLEAN.value:
            metrics[f"clean_accuracy/{r.target}/{r.defense}"] = round(r.robust_accuracy, 4)
            continue
        own = r.source == r.target
        from_parent = r.source == parent and r.source_threat_model == ThreatModel.WHITE_FLOAT.value
        if not (own or from_parent):
            continue
        if math.isinf(r.epsilon):
            if own and r.defense == "none" and r.n_attackable:
                # Censored: null in JSON when the attack failed on half or more (the median lies beyond
                # every distance it tried); the share it succeeded on is beside it.
                key = f"{r.norm}/{r.attack}/{r.target}"
                metrics[f"boundary_distance/{key}"] = round(r.median_distance_censored, 4)
                metrics[f"boundary_found/{key}"] = round(r.success_rate, 4)
            continue
        metrics[f"robust_accuracy/{r.threat_model}/{r.attack}/eps={r.epsilon:g}/{r.target}/{r.defense}"] = round(
            r.robust_accuracy, 4
        )
    return metrics
