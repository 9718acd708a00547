"""A train-based defense in the defense study: the standard model's sets transferred to the recipe model
and the attack on it, its boundary distance against the standard model's, and what its quantized copies retain."""

from __future__ import annotations

import time

import numpy as np

from qrobust.analysis.mechanisms import bootstrap_median_difference, verified_distances
from qrobust.attacks.victims import open_module, open_runtime
from qrobust.defenses.study import DefenseStudy, threat_of
from qrobust.evaluation.results import sign_counts
from qrobust.pipeline.model_id import FLOAT, ModelId
from qrobust.settings.defend import DefendSettings
from qrobust.training.recipes import Recipe
from qrobust.training.recipes import attacker_view as recipe_view


def run_recipe(study: DefenseStudy, name: str, recipe: Recipe) -> None:
    """A train-based defense: the baseline's sets transferred to the recipe model, and the attack on it.
    Beside the rows, per precision the recipe model's boundary distance against the standard model's
    (difference of medians with a bootstrap interval, on the samples of the suite's boundary-attack set),
    and per quantized recipe model how many of the float recipe model's adaptive examples still fool it."""
    s = study.settings
    for arch in s.archs:
        base, defended = ModelId(arch, DefendSettings.BASELINE), ModelId(arch, name)
        float_set, float_runtime = None, None
        for precision in study.precisions():
            start = time.perf_counter()
            target = defended.at(precision)
            view = recipe_view(recipe, open_module(threat_of(precision), target, study.spec, defended=True))
            non_adaptive = [study.suite_set(base.at(precision))]
            runtime = open_runtime(target, defended=True)
            adaptive = study.adaptive_sets(view, runtime.predict, target, threat_of(precision))
            standard = base.at(precision)
            bare = open_runtime(standard).predict
            # The standard model faces the same attacks: its own set, then the composite through it.
            bare_view = open_module(threat_of(precision), standard, study.spec)
            bare_sets = [study.composite_set(bare_view, non_adaptive[0], bare, 1)]
            study.score(name, runtime.predict, target, non_adaptive, adaptive, bare=bare, bare_sets=bare_sets)
            if float_set is None or float_runtime is None:
                float_set, float_runtime = adaptive[0], runtime
            else:
                study.retention(float_set, float_runtime.predict, runtime.predict, target)
                study.pair_precisions(defended.at(FLOAT), target)
            # The standard model's distances are the suite's (the same attack, view and samples every recipe
            # would otherwise repeat); the recipe model's are made on the same samples.
            reference = study.suite_boundary(standard)
            ours = verified_distances(bare, reference.x_adv[0], reference.labels, reference.sizes["l2"][0])
            theirs = study.boundary_distances(view, runtime.predict, reference.index)
            finite = [d[np.isfinite(d)] for d in (ours, theirs)]
            study.metrics[f"{target}/boundary_distance_l2"] = bootstrap_median_difference(*finite, s.seed)
            study.metrics[f"{target}/boundary_signs_l2"] = sign_counts(ours, theirs)
            print(f"{name} on {target}: {time.perf_counter() - start:.1f}s")
