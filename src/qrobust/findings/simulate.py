"""Simulated studies for measuring the verdicts' error rates: the records each claim reads (evaluate's
pairs, the analysis counts, the defense study's metrics and rows), drawn per sample for the default
study's structure (its models, quantizers, placebo, epsilons, defenses and sample sizes), with the claim's
effect planted at a chosen size in every condition.

Samples are shared the way the study shares them: every quantized copy of a float model is scored on that
model's samples, and each copy's outcome is the float outcome with some samples flipped, so conditions of
one architecture are correlated as in the study. ``effect`` is the claim's effect beyond its boundary
(``qrobust.findings.evidence``): 0 at the boundary (where a false "holds" is measured) and the threshold's
``delta`` (where a false "does not hold" and the power are measured).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from qrobust.evaluation.pairs import discordant
from qrobust.findings.evidence import Scope
from qrobust.pipeline.model_id import ModelId
from qrobust.settings.findings import Threshold

# The default study's sample sizes (params.yaml): headline and defense sets, the boundary attack's
# subset, the analysis subset, and per float model the share of analysis samples whose white-box
# example succeeds at the headline epsilon (retention's n; measured in the default study).
N_HEADLINE, N_BOUNDARY, N_ANALYSIS = 500, 200, 300
FLOAT_SUCCESS = (0.2, 0.5, 0.6)
ROBUST = {0.01: 0.6, 0.02: 0.35, 0.05: 0.05, 0.1: 0.01}  # float robust accuracy per epsilon
DISCORDANCE = 0.05  # share of samples a quantized copy flips away from its float model's outcome


@dataclass(frozen=True)
class Row:
    """The fields of a worst-case row the claims read."""

    n: int
    n_correct: int


def _paired(rng: np.random.Generator, reference: np.ndarray, theta: float) -> np.ndarray:
    """Outcomes on ``reference``'s samples whose mean exceeds the reference's by ``theta`` in expectation:
    a reference success flips with probability DISCORDANCE, a failure with the rate that gives theta."""
    p = float(reference.mean()) if reference.size else 0.0
    loss = DISCORDANCE if theta < 1 - p else 0.0
    gain = float(np.clip((theta + loss * p) / max(1 - p, 1e-9), 0.0, 1.0))
    loss = float(np.clip((gain * (1 - p) - theta) / max(p, 1e-9), 0.0, 1.0))
    u = rng.random(reference.size)
    return np.where(reference, u >= loss, u < gain)


def _share(rng: np.random.Generator, n: int, p: float) -> dict[str, int]:
    return {"k": int((rng.random(n) < min(max(p, 0.0), 1.0)).sum()), "n": n}


def _signs(rng: np.random.Generator, n: int, theta: float) -> dict[str, int]:
    """Farther / nearer counts with P(farther) - P(nearer) = theta, a tenth of the samples tied."""
    farther = (0.9 + theta) / 2
    u = rng.random(n)
    return {"n": n, "farther": int((u < farther).sum()), "nearer": int(((u >= farther) & (u < 0.9)).sum())}


Plant = Callable[[Scope, np.random.Generator, float, Threshold], Scope]


def _worst_case(tags: Mapping[float, Callable[[float], float]]) -> Plant:
    """pairs.json's matched worst case at the given epsilons, the difference (quantized - float) a
    function of the effect."""

    def plant(scope: Scope, rng: np.random.Generator, effect: float, t: Threshold) -> Scope:
        pairs: dict[str, Any] = {}
        for f in scope.floats:
            for eps, theta in tags.items():
                reference = rng.random(N_HEADLINE) < ROBUST[eps]
                for q in scope.quantizers:
                    other = _paired(rng, reference, theta(effect))
                    record = {**discordant(reference, other), "attacks": ["simulated"]}
                    entry = pairs.setdefault(str(f.quantized(q)), {"worst_case": {}, "boundary": {}})
                    entry["worst_case"][f"linf/eps={eps:g}"] = record
        return replace(scope, pairs=pairs)

    return plant


def _analysis(fill: Callable[[np.random.Generator, float, int], dict[str, Any]]) -> Plant:
    """Analysis records per float model and quantized copy: ``fill(rng, effect, arch index)``."""

    def plant(scope: Scope, rng: np.random.Generator, effect: float, t: Threshold) -> Scope:
        analysis = {}
        for i, f in enumerate(scope.floats):
            record: dict[str, Any] = {"float": {}}
            for q in scope.quantizers:
                record[str(f.quantized(q))] = fill(rng, effect, i)
            analysis[str(f)] = record
        return replace(scope, analysis=analysis)

    return plant


def plants(scope: Scope, thresholds: Mapping[str, Threshold]) -> dict[str, Plant]:
    """Per claim, how its records are drawn for a given effect."""
    eps = scope.headline
    tag = f"eps={eps:g}"
    grid = sorted(ROBUST)

    def retention(direction: int, boundary: float) -> Callable[[np.random.Generator, float, int], dict[str, Any]]:
        def fill(rng: np.random.Generator, effect: float, i: int) -> dict[str, Any]:
            n = int(N_ANALYSIS * FLOAT_SUCCESS[i % len(FLOAT_SUCCESS)])
            return {f"transfer_retention/{tag}": _share(rng, n, boundary + direction * effect)}

        return fill

    def binomial(key: str, boundary: float) -> Callable[[np.random.Generator, float, int], dict[str, Any]]:
        return lambda rng, effect, i: {key: _share(rng, N_ANALYSIS, boundary + effect)}

    def mechanism(rng: np.random.Generator, effect: float, i: int) -> dict[str, Any]:
        half = int(N_ANALYSIS * FLOAT_SUCCESS[i % len(FLOAT_SUCCESS)] / 2)
        base = 0.6
        return {
            f"transfer_success/aligned/{tag}": _share(rng, half, base + effect / 2),
            f"transfer_success/misaligned/{tag}": _share(rng, half, base - effect / 2),
        }

    def noise(rng: np.random.Generator, effect: float, i: int) -> dict[str, Any]:
        # Float flips (in the float record) and quantized flips: fewer on the quantized model at the small
        # size, more at the large one, each by ``effect``.
        return {
            "flip/noise/eps=0.01": _share(rng, N_ANALYSIS, 0.1 - effect),
            "flip/noise/eps=0.1": _share(rng, N_ANALYSIS, 0.4 + effect),
        }

    def noise_plant(scope: Scope, rng: np.random.Generator, effect: float, t: Threshold) -> Scope:
        scope = _analysis(noise)(scope, rng, effect, t)
        analysis = {}
        for f, record in scope.analysis.items():
            float_record = {
                "flip/noise/eps=0.01": _share(rng, N_ANALYSIS, 0.1),
                "flip/noise/eps=0.1": _share(rng, N_ANALYSIS, 0.4),
            }
            analysis[f] = {**record, "float": float_record}
        return replace(scope, analysis=analysis)

    def boundary(scope: Scope, rng: np.random.Generator, effect: float, t: Threshold) -> Scope:
        pairs = {
            str(f.quantized(q)): {"worst_case": {}, "boundary": {"l2/deepfool_l2": {
                **_signs(rng, N_BOUNDARY, effect), "median_float": 1.0, "median_quantized": 1.0}}}
            for f in scope.floats
            for q in scope.quantizers
        }  # fmt: skip
        return replace(scope, pairs=pairs)

    masking, crossing = thresholds["bernhard2019_masking"], thresholds["gorsline2021_crossing"]
    return {
        # quantized - float = boundary - effect (the claim: below the boundary)
        "bernhard2019_masking": _worst_case({eps: lambda e: masking.boundary - e}),
        "bernhard2019_transfer": _analysis(retention(-1, thresholds["bernhard2019_transfer"].boundary)),
        "bernhard2019_transfer_mechanism": _analysis(mechanism),
        "bernhard2019_ensemble": _ensemble_plant,
        # up at the smallest epsilon, down at the largest, each by the effect
        "gorsline2021_crossing": _worst_case({grid[0]: lambda e: crossing.boundary + e, grid[1]: lambda e: -e}),
        "lin2019_amplification": _analysis(
            binomial(f"output_change/quantized_above_float/{tag}", thresholds["lin2019_amplification"].boundary)
        ),
        "lin2019_defensive_quantization": _defense_plant("vs_float", recipe=True),
        "costa2024_boundary_distance": boundary,
        "costa2024_gradients": _analysis(
            binomial("grad_norm/vanish_or_explode", thresholds["costa2024_gradients"].boundary)
        ),
        "costa2024_noise": noise_plant,
        "costa2024_preprocessing": _defense_plant("vs_undefended", recipe=False),
        "costa2024_train_defenses_boundary": _recipe_boundary_plant,
        "costa2024_transfer_persists": _analysis(retention(1, thresholds["costa2024_transfer_persists"].boundary)),
        # each width of the sweep minus float = boundary + effect (the claim: above the boundary)
        "xiao2023_low_bits": _sweep_plant(eps, thresholds["xiao2023_low_bits"].boundary),
        "hao2022_evasion": _evasion_plant(thresholds["hao2022_evasion"].boundary),
    }


def _sweep_plant(eps: float, boundary: float) -> Plant:
    """pairs.json's matched worst case of every model of the bit-width sweep at the headline epsilon, each
    width's difference from its float model boundary + effect; the widths share their float model's samples."""

    def plant(scope: Scope, rng: np.random.Generator, effect: float, t: Threshold) -> Scope:
        pairs: dict[str, Any] = {}
        references = {}
        for quant in scope.sweep:
            reference = references.setdefault(quant.parent, rng.random(N_HEADLINE) < ROBUST[eps])
            other = _paired(rng, reference, boundary + effect)
            pairs[str(quant)] = {
                "worst_case": {f"linf/eps={eps:g}": {**discordant(reference, other), "attacks": ["simulated"]}},
                "boundary": {},
            }
        return replace(scope, pairs=pairs)

    return plant


# The differential attack's sets (attack.attacks.diva): 100 samples, of which both runtimes get about 85% right
# clean, and PGD's evasive share on them (measured in the default study: a few percent).
N_EVASION, PGD_EVASIVE = 85, 0.05


def _evasion_plant(boundary: float) -> Plant:
    """evaluate's evasion records for every quantized model at two epsilons: PGD's evasive outcomes, and the
    differential attack's on the same samples, more evasive by boundary + effect."""

    def plant(scope: Scope, rng: np.random.Generator, effect: float, t: Threshold) -> Scope:
        from qrobust.evaluation.results import paired_difference

        evasion = {}
        for _, quant in scope.quantized():
            for eps in (0.02, 0.05):
                pgd = rng.random(N_EVASION) < PGD_EVASIVE
                diva = _paired(rng, pgd, boundary + effect)
                evasion[f"diva/white_qnn_ste/{quant}/eps={eps:g}"] = {
                    "n": N_EVASION,
                    "diva": {"evasive": int(diva.sum())},
                    "linf_pgd": {"evasive": int(pgd.sum())},
                    "difference": paired_difference(pgd, diva),
                }
        return replace(scope, evasion=evasion)

    return plant


def _ensemble_plant(scope: Scope, rng: np.random.Generator, effect: float, t: Threshold) -> Scope:
    """The ensemble's worst case against its members' matched worst cases, on the same samples."""
    pairs, defended = {}, {}
    for f in scope.floats:
        for eps in scope.defense_epsilons:
            reference = rng.random(N_HEADLINE) < ROBUST.get(eps, 0.3)
            for q in scope.quantizers:
                other = _paired(rng, reference, 0.0)
                entry = pairs.setdefault(str(f.quantized(q)), {"worst_case": {}, "boundary": {}})
                entry["worst_case"][f"linf/eps={eps:g}"] = {**discordant(reference, other), "attacks": ["simulated"]}
            best = reference.mean()
            for name in scope.ensembles:
                ensemble = rng.random(N_HEADLINE) < min(best + effect, 1.0)
                defended[(name, str(f.quantized(name)), eps)] = Row(N_HEADLINE, int(ensemble.sum()))
    return replace(scope, pairs=pairs, defended=defended)


def _defense_plant(kind: str, *, recipe: bool) -> Plant:
    """The defense study's paired records: DQ quantized vs its float model (``vs_float``), or each
    preprocessing defense vs the undefended model (``vs_undefended``: works at the small epsilon by the
    effect, and gains delta minus the effect at the large one)."""

    def plant(scope: Scope, rng: np.random.Generator, effect: float, t: Threshold) -> Scope:
        defenses: dict[str, dict[str, Any]] = {}
        defended = {}
        small, large = min(scope.defense_epsilons), max(scope.defense_epsilons)
        names = [scope.dq_recipe] if recipe and scope.dq_recipe else list(scope.preprocessors)
        for name in names:
            metrics: dict[str, Any] = {}
            for f in scope.floats[:1]:
                base = ModelId(f.arch, name) if recipe else f
                targets = (
                    [base.quantized(q) for q in ("ort_int8", "ort_w4a8")]
                    if recipe
                    else [base, *(base.quantized(q) for q in ("ort_int8", "ort_w4a8"))]
                )
                for target in targets:
                    for eps in scope.defense_epsilons:
                        theta = effect if (recipe or eps == small) else t.delta - effect
                        if not recipe and eps not in (small, large):
                            continue
                        reference = rng.random(N_HEADLINE) < ROBUST.get(eps, 0.3)
                        other = _paired(rng, reference, theta)
                        c = discordant(reference, other)
                        d = (c["only_other"] - c["only_reference"]) / c["n"]
                        metrics[f"{target}/{kind}/eps={eps:g}"] = {
                            "difference": d, "low": d - 0.05, "high": d + 0.05, "mcnemar_p": None,
                            "n": c["n"], "only_reference": c["only_reference"], "only_other": c["only_other"],
                        }  # fmt: skip
                        defended[(name, str(target), eps)] = Row(N_HEADLINE, int(other.sum()))
            defenses[name] = metrics
        return replace(scope, defenses=defenses, defended=defended)

    return plant


def _recipe_boundary_plant(scope: Scope, rng: np.random.Generator, effect: float, t: Threshold) -> Scope:
    defenses = {}
    for name in scope.recipes:
        base = ModelId(scope.floats[0].arch, name)
        defenses[name] = {
            f"{target}/boundary_signs_l2": _signs(rng, N_BOUNDARY, effect)
            for target in (base, base.quantized("ort_int8"), base.quantized("ort_w4a8"))
        }
    return replace(scope, defenses=defenses)
