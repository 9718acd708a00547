"""A test-time defense in the defense study: deployed in front of each runtime, attacked non-adaptively
(the suite's sets) and adaptively (BPDA/EOT through it, the composite after it, a detector-aware attack on a
detector), scored as deployed."""

from __future__ import annotations

import time

import numpy as np

from qrobust.attacks.threats import ThreatModel
from qrobust.attacks.victims import open_module, open_runtime
from qrobust.defenses.catalogue import Defense, DefenseKind
from qrobust.defenses.study import DefenseStudy, threat_of
from qrobust.defenses.system import attacker_view, deploy, detection_view
from qrobust.defenses.views import view_agreement
from qrobust.pipeline.model_id import ModelId
from qrobust.settings.defend import DefendSettings


def run_defense(study: DefenseStudy, defense: Defense, calib: np.ndarray | None) -> None:
    """A test-time defense in front of each baseline model (or the ensemble of its precisions)."""
    s = study.settings
    draws = s.eval_draws if defense.randomised else 1
    for arch in s.archs:
        base = ModelId(arch, DefendSettings.BASELINE)
        if defense.combines:
            members = [base.at(p) for p in defense.members]
            system = deploy(defense, [open_runtime(m) for m in members], s.seed)
            modules = [open_module(threat_of(m.precision), m, study.spec) for m in members]
            non_adaptive = [study.suite_set(m) for m in members]
            # The combined twin is straight-through for every quantized member.
            view = attacker_view(defense, modules, s.seed + 1, s.eot_samples)
            target = base.quantized(defense.name)
            # Random precision's view is its exact expectation over the draw (attacker_view), a deterministic
            # module: the composite runs with the deterministic options; the scoring still draws ``draws`` times.
            adaptive = study.adaptive_sets(view, system.predict, target, ThreatModel.WHITE_QNN_STE, draws)
            study.score(
                defense.name, system.predict, target, non_adaptive, adaptive,
                precision="+".join(defense.members), draws=draws,
            )  # fmt: skip
            if defense.randomised:
                continue
            # How often the attacker's combiner gives the deployed label: clean, then every adversarial input.
            inputs = np.concatenate(
                [study.x, *(a.x_adv.reshape(-1, *study.x.shape[1:]) for a in [*non_adaptive, *adaptive])]
            )
            study.metrics[f"{target}/view_agreement"] = {
                "clean": round(view_agreement(view, system.predict, study.x, study.device), 4),
                "all": round(view_agreement(view, system.predict, inputs, study.device), 4),
                "n": len(inputs),
            }
            continue
        for precision in study.precisions():
            start = time.perf_counter()
            target = base.at(precision)
            runtime = open_runtime(target)
            system = deploy(defense, [runtime], s.seed, calib)
            if defense.kind is DefenseKind.DETECTOR:
                study.metrics[f"{target}/threshold"] = round(system.threshold, 6)
                study.metrics[f"{target}/threshold_false_positive_rate"] = round(system.threshold_fpr, 4)
            module = open_module(threat_of(precision), target, study.spec)
            view = attacker_view(defense, [module], s.seed + 1, s.eot_samples)
            non_adaptive = [study.suite_set(target)]
            randomised = defense.randomised
            adaptive = study.adaptive_sets(
                view, system.predict, target, threat_of(precision), draws, randomised=randomised
            )
            detector = defense.kind is DefenseKind.DETECTOR
            if detector:
                # The detector-aware attack, on the detection score as well as the classifier.
                score = detection_view(defense, module, s.seed + 1)
                adaptive.append(study.detector_aware_set(score, system.threshold, target, threat_of(precision)))
            # The bare model faces the same attacks: its own set, then the composite through it, with the
            # options the defended system faced.
            bare_sets = [study.composite_set(module, non_adaptive[0], runtime.predict, 1, randomised=randomised)]
            study.score(
                defense.name, system.predict, target, non_adaptive, adaptive,
                draws=draws, bare=runtime.predict, bare_sets=bare_sets, detector=detector,
            )  # fmt: skip
            print(f"{defense.name} on {target}: {time.perf_counter() - start:.1f}s")
