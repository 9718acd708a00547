"""Have the minimisation attacks converged? Each white-box minimisation attack of the study, at its
steps in params.yaml and at twice as many, on every standard float model: the censored median of the
verified distance to the decision boundary (the unbounded output's size in the attack's norm where it
fools the deployed runtime; a sample it does not fool lies beyond every size tried), and the relative
change. Issue 11's rule: converged when doubling the steps moves the median by less than 5%.

Run after `make repro`; prints one line per (model, attack). Decision-based attacks (boundary,
hop_skip_jump) are left out: on 2 cores their doubled runs alone take longer than the study.
"""

from __future__ import annotations

import argparse

import numpy as np

from qrobust.attacks import ATTACKS, Kind, attack_subset, craft, perturbation_norms
from qrobust.data import DATASETS, load_split
from qrobust.layout import PREPARED
from qrobust.model_id import ModelId
from qrobust.models import input_spec
from qrobust.results import ThreatModel
from qrobust.settings import DefendSettings, load_study
from qrobust.training import resolve_device
from qrobust.victims import module_victim, open_module, open_runtime

TOLERANCE = 0.05  # relative change of the median when the steps double


def censored_median(distance: np.ndarray) -> float:
    return float(np.median(distance)) if distance.size else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=100, help="the first this many of each attack's subset")
    args = parser.parse_args()
    study = load_study()
    spec = input_spec(DATASETS.get(study.prepare.dataset))
    device = resolve_device(study.attack.device)
    x_eval, y_eval = load_split(PREPARED / "eval.npz")
    minimisers = [
        a
        for a in study.attack.attacks
        if ATTACKS.get(a.name).kind is Kind.GRADIENT
        and ATTACKS.get(a.name).minimises()
        and ThreatModel.WHITE_FLOAT in a.threat_models
        and "steps" in a.options
    ]
    for arch in study.train.archs:
        model = ModelId(arch, DefendSettings.BASELINE)
        victim = module_victim(open_module(ThreatModel.WHITE_FLOAT, model, spec), device)
        runtime = open_runtime(model)
        for attack in minimisers:
            norm = ATTACKS.get(attack.name).norm.value
            index = attack_subset(len(x_eval), attack.samples_for(ThreatModel.WHITE_FLOAT), study.attack.seed)
            index = index[: args.samples]
            x, y = x_eval[index], y_eval[index]
            right = runtime.predict(x) == y
            medians = []
            for steps in (attack.options["steps"], 2 * attack.options["steps"]):
                options = {**attack.options, "steps": steps}
                crafted = craft(
                    victim,
                    attack.name,
                    options,
                    (),
                    x,
                    y,
                    batch_size=study.attack.batch_size,
                    seed=study.attack.seed,
                    key="attack.attacks",
                )
                unbounded = crafted.x_adv[-1]
                size = perturbation_norms(crafted.x_adv, x)[norm][-1]
                fooled = runtime.predict(unbounded) != y
                distance = np.where(fooled, size, np.inf)[right]
                medians.append(censored_median(distance))
            change = abs(medians[1] - medians[0]) / medians[0] if np.isfinite(medians[0]) else float("nan")
            verdict = "converged" if change < TOLERANCE else "NOT converged"
            print(
                f"{model} {attack.name} ({norm}, n={int(right.sum())}): median {medians[0]:.4g} at "
                f"{attack.options['steps']} steps, {medians[1]:.4g} at {2 * attack.options['steps']}: "
                f"{100 * change:+.1f}% -> {verdict} (rule: under {100 * TOLERANCE:.0f}%)"
            )


if __name__ == "__main__":
    main()
