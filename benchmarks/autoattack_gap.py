"""How far the study's robustness figures sit from standard AutoAttack on the same samples.

    python benchmarks/autoattack_gap.py [--models lenet-standard lenet-adversarial] [--samples 500]

After `make repro`. For each float model (a standard one of the study, or a recipe model of the defense
study) and each defense epsilon, on the seeded samples the study attacks it on:

- the study's figure: for a standard model its per-sample worst case over every attack the suite made
  (reports/outcomes.npz, as evaluate recorded it); for a recipe model the defense study's path on the
  undefended float model (defend.attack, then defend.composite on what it left), re-run here;
- standard AutoAttack from torchattacks (APGD-CE, APGD-T, FAB-T with 9 targets and 100 iterations,
  Square with 5,000 queries), run here;

and prints both robust accuracies, the gap in points, and the samples only AutoAttack broke. A positive
gap means the study's figure is too kind by that much.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    import torchattacks

    from qrobust.attacks.runner import attack_subset, craft
    from qrobust.attacks.threats import ThreatModel
    from qrobust.attacks.victims import module_victim, open_module
    from qrobust.data.datasets import DATASETS
    from qrobust.data.splits import eval_split
    from qrobust.evaluation.scoring import outcome_key
    from qrobust.evaluation.worstcase import ATTACK as WORST_CASE
    from qrobust.models import input_spec
    from qrobust.pipeline.io import load_npz
    from qrobust.pipeline.model_id import ModelId
    from qrobust.settings.study import load_study

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["lenet-standard", "lenet-adversarial"])
    parser.add_argument("--samples", type=int, default=500)
    args = parser.parse_args()
    study = load_study(str(ROOT / "params.yaml"))
    spec = input_spec(DATASETS.get(study.prepare.dataset))
    x_all, y_all = eval_split()
    index = attack_subset(len(y_all), args.samples, study.attack.seed)
    x, y = x_all[index], y_all[index]
    outcomes = load_npz(ROOT / "reports" / "outcomes.npz")
    print("| model | eps | clean | study | standard AutoAttack | gap (points) | only AutoAttack broke | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        model = ModelId.parse(name)
        module = open_module(ThreatModel.WHITE_FLOAT, model, spec, defended=model.recipe != "standard").eval()
        victim = module_victim(module, torch.device("cpu"))
        clean = victim.predict(x) == y
        for eps in study.defend.epsilons:
            start = time.perf_counter()
            if model.recipe == "standard":
                key = f"{outcome_key(WORST_CASE, ThreatModel.WORST_CASE.value, eps, model, model)}|linf"
                robust_at = dict(zip(outcomes[f"index|{key}"].tolist(), outcomes[key].tolist(), strict=True))
                study_robust = np.array([robust_at.get(int(i), False) for i in index])
            else:
                study_robust = clean.copy()
                for config in (study.attack.get(study.defend.attack), study.defend.composite_attack(study.attack)):
                    crafted = craft(victim, config.name, config.options, [eps], x, y, batch_size=250, seed=0)
                    study_robust &= victim.predict(crafted.x_adv[0]) == y
            attack = torchattacks.AutoAttack(module, norm="Linf", eps=eps, version="standard", n_classes=10, seed=0)
            adv = attack(torch.from_numpy(x), torch.from_numpy(y))
            reference = clean & (victim.predict(adv.detach().numpy()) == y)
            gap = 100 * (study_robust.mean() - reference.mean())
            print(
                f"| {model} | {eps:g} | {100 * clean.mean():.1f}% | {100 * study_robust.mean():.1f}% | "
                f"{100 * reference.mean():.1f}% | {gap:+.1f} | {int((study_robust & ~reference).sum())} | "
                f"{time.perf_counter() - start:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
