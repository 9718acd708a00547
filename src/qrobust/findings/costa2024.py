"""Costa & Pinto 2024, on the adversarial robustness of quantized (TinyML) models: its claims, each rule beside
its text."""

from __future__ import annotations

from typing import Any

from qrobust.findings.evidence import (
    ClaimEntry,
    Evidence,
    Outcome,
    Rate,
    Rows,
    Scope,
    above,
    claimed_above,
    claimed_majority,
    claimed_positive,
    proportion,
)
from qrobust.findings.records import epsilon_keys, measured, white_row
from qrobust.pipeline.model_id import ModelId


def _vanishing(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    evidence = []
    for float_model, quant, f, m in measured(scope):
        if "zero_gradient/exact" not in m or "zero_gradient" not in f:
            continue
        evidence.append(
            claimed_above(
                f"{quant}: samples whose input gradient is all zero, exact-rounding twin vs {float_model}",
                proportion("quantized (exact)", m["zero_gradient/exact"]),
                proportion("float", f["zero_gradient"]),
            )
        )
    return tuple(evidence)


VANISHING_GRADIENTS = ClaimEntry(
    "costa2024_vanishing_gradients",
    "Quantization makes estimated gradients vanish or explode.",
    "Costa & Pinto 2024",
    "per quantized model: the share of samples whose input gradient through the exact-rounding twin is all zero "
    "above the float model's",
    _vanishing,
)


def _boundary(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    checks = (
        claimed_positive(
            f"{quant} vs {float_model}: distance to the decision boundary",
            "median L2 distance, quantized minus float",
            m.get("boundary_distance_l2", {}),
        )
        for float_model, quant, _, m in measured(scope)
    )
    return tuple(e for e in checks if e is not None)


BOUNDARY_DISTANCE = ClaimEntry(
    "costa2024_boundary_distance",
    "Quantization increases the distance to the decision boundary.",
    "Costa & Pinto 2024",
    "per float / quantized pair: the median L2 distance of the boundary attack's unbounded outputs that fool "
    "each deployed runtime, quantized minus float, with a 95% bootstrap interval above zero supports, below "
    "zero contradicts (for this check, separating means the interval excludes zero)",
    _boundary,
)


def _recipe_records(scope: Scope, what: str) -> list[tuple[str, str, Any]]:
    """(recipe, metric key, value) for every defense-study metric of a train-based recipe whose key
    holds ``/<what>``."""
    return [
        (name, key, v) for name, metrics in scope.recipes.items() for key, v in metrics.items() if f"/{what}" in key
    ]


def _train_defenses_boundary(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    checks = (
        claimed_positive(
            f"{key.split('/')[0]} vs the standard model of the same precision: distance to the decision boundary",
            f"median L2 distance, {name} minus standard",
            d,
        )
        for name, key, d in _recipe_records(scope, "boundary_distance_l2")
    )
    return tuple(e for e in checks if e is not None)


TRAIN_DEFENSES_BOUNDARY = ClaimEntry(
    "costa2024_train_defenses_boundary",
    "Train-based defenses raise the distance to the decision boundary and keep it after quantization.",
    "Costa & Pinto 2024",
    "per train-based recipe of the defense study and precision (float and each quantizer): the median L2 distance "
    "at which the boundary attack (through the attacker's view) fools the recipe model's runtime, minus the "
    "standard model's at the same precision, with a 95% bootstrap interval above zero supports, below zero "
    "contradicts",
    _train_defenses_boundary,
)


def _transfer_persists(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    records = [
        (quant, key, m[key])
        for _, quant, _, m in measured(scope)
        for key in (f"transfer_retention/{tag}" for tag in epsilon_keys(m, "transfer_retention/"))
    ]
    records += [
        (key.split("/")[0], key.split("/", 1)[1], v) for _, key, v in _recipe_records(scope, "transfer_retention")
    ]
    return tuple(
        claimed_majority(
            f"{target} {key.split('/')[-1]}: its float model's adversarial examples that still fool it",
            proportion("still fool the quantized model", count),
        )
        for target, key, count in records
        if count["n"]
    )


TRANSFER_PERSISTS = ClaimEntry(
    "costa2024_transfer_persists",
    "Float-to-quantized transfer persists, defended models included.",
    "Costa & Pinto 2024",
    "per float / quantized pair (the study's models, and the defense study's recipe models with their adaptive "
    "examples) and epsilon: of the float model's adversarial examples that fool it, on samples both models "
    "classify correctly, the share that also fool the quantized runtime above one half supports, below one "
    "half contradicts",
    _transfer_persists,
)


def _noise(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    """Per pair, random noise: the quantized model flips fewer predictions than the float one at the
    smallest size and more at the largest supports; the reverse at either end contradicts."""
    evidence = []
    for float_model, quant, f, m in measured(scope):
        tags = [t for t in epsilon_keys(m, "flip/noise/") if f"flip/noise/{t}" in f]
        if len(tags) < 2:
            continue
        small, large = tags[0], tags[-1]
        qs, fs = (
            proportion(f"quantized {small}", m[f"flip/noise/{small}"]),
            proportion(f"float {small}", f[f"flip/noise/{small}"]),
        )
        ql, fl = (
            proportion(f"quantized {large}", m[f"flip/noise/{large}"]),
            proportion(f"float {large}", f[f"flip/noise/{large}"]),
        )
        if above(qs, fs) or above(fl, ql):
            outcome = Outcome.CONTRADICTS
        elif above(fs, qs) and above(ql, fl):
            outcome = Outcome.SUPPORTS
        else:
            outcome = Outcome.UNDECIDED
        evidence.append(
            Evidence(f"{quant} vs {float_model}: prediction flips under random noise", outcome, (qs, fs, ql, fl))
        )
    return tuple(evidence)


NOISE = ClaimEntry(
    "costa2024_noise",
    "Quantization attenuates small noise and amplifies large noise.",
    "Costa & Pinto 2024",
    "per float / quantized pair, random noise of the analysis sizes: fewer prediction flips than the float model "
    "at the smallest size and more at the largest supports; more at the smallest or fewer at the largest "
    "contradicts",
    _noise,
)


def _preprocessors(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    """Per preprocessing defense and deployed model, worst case: supports when the defended system
    is above the undefended model at the smallest epsilon and not at the largest; contradicts when it is
    still above at the largest, or below at the smallest."""
    if len(scope.defense_epsilons) < 2:
        return ()
    small, large = min(scope.defense_epsilons), max(scope.defense_epsilons)
    evidence = []
    for name in scope.preprocessors:
        for target in rows.targets(name):
            model = ModelId.parse(target)
            pairs = []
            for eps in (small, large):
                defended = rows.defended(name, target, eps)
                bare = white_row(rows, scope.attack, eps, model)
                if defended is not None and bare is not None:
                    pairs.append((Rate.of(f"defended eps {eps:g}", defended), Rate.of(f"undefended eps {eps:g}", bare)))
            if len(pairs) < 2:
                continue
            (d_small, b_small), (d_large, b_large) = pairs
            if above(d_large, b_large) or above(b_small, d_small):
                outcome = Outcome.CONTRADICTS
            elif above(d_small, b_small):
                outcome = Outcome.SUPPORTS
            else:
                outcome = Outcome.UNDECIDED
            evidence.append(Evidence(f"{name} on {target}", outcome, (d_small, b_small, d_large, b_large)))
    return tuple(evidence)


PREPROCESSING = ClaimEntry(
    "costa2024_preprocessing",
    "Input-preprocessing defenses work at small epsilon and fail at large epsilon.",
    "Costa & Pinto 2024",
    "per preprocessing defense and deployed model, worst case over the non-adaptive and adaptive attacks: above the undefended model at the smallest "
    "defense epsilon and not at the largest supports; above at the largest or below at the smallest "
    "contradicts",
    _preprocessors,
)
