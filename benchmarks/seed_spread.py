"""How much a headline figure moves with the training seed, for any architectures and seeds, outside the
study (which replicates train.seed_archs at train.seeds): more seeds than the study can afford, or an arch
it does not replicate.

    python benchmarks/seed_spread.py [--archs lenet resnet8 dscnn] [--seeds 0 1 2] [--samples 500]

Each arch is trained at each seed with the study's recipe and fit (params.yaml), and its float model is
scored on the study's evaluation samples: clean accuracy, and robust accuracy at the headline epsilon under
the suite's linf_pgd and then its autoattack on what PGD left (the two attacks that break most samples of
the headline worst case). Prints each seed's figures, their mean and the between-seed sd beside the
binomial sd of one figure: where the between-seed sd is the larger, one training run's interval is too
narrow. No study outputs are needed; about 2 minutes per seed on 2 cores for all three archs.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    from qrobust.attacks.runner import attack_subset, craft
    from qrobust.attacks.victims import module_victim
    from qrobust.data.datasets import DATASETS
    from qrobust.data.splits import load_split
    from qrobust.findings.headline import study_budget
    from qrobust.models import create_model, input_spec
    from qrobust.pipeline.device import seed_everything
    from qrobust.settings.study import load_study
    from qrobust.training.loop import fit
    from qrobust.training.recipes import create_recipe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["lenet", "resnet8", "dscnn"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=500)
    args = parser.parse_args()
    study = load_study(str(ROOT / "params.yaml"))
    prepared = ROOT / "data" / "prepared"
    x_train, y_train = load_split(prepared / "train.npz")
    x_eval, y_eval = load_split(prepared / "eval.npz")
    index = attack_subset(len(y_eval), args.samples, study.attack.seed)
    x, y = x_eval[index], y_eval[index]
    spec = input_spec(DATASETS.get(study.prepare.dataset))
    _, eps = study_budget(study)
    attacks = [study.attack.get("linf_pgd"), study.attack.get("autoattack")]
    print(f"| arch | seed | clean | robust at linf {eps:g} (PGD, then AutoAttack) | seconds |")
    print("|---|---|---|---|---|")
    for arch in args.archs:
        clean_rates, robust_rates = [], []
        for seed in args.seeds:
            start = time.perf_counter()
            seed_everything(seed)
            model = create_model(arch, spec)
            recipe = create_recipe("standard", study.train.recipe_options.get("standard", {}))
            fit(model, recipe, x_train, y_train, dataclasses.replace(study.train.fit, seed=seed, device="cpu"))
            victim = module_victim(model.cpu().eval(), torch.device("cpu"))
            robust = victim.predict(x) == y
            clean_rates.append(float(robust.mean()))
            for config in attacks:
                rows = np.flatnonzero(robust)
                crafted = craft(victim, config.name, config.options, [eps], x[rows], y[rows], batch_size=250, seed=0)
                robust[rows] &= victim.predict(crafted.x_adv[0]) == y[rows]
            robust_rates.append(float(robust.mean()))
            print(
                f"| {arch} | {seed} | {100 * clean_rates[-1]:.1f}% | {100 * robust_rates[-1]:.1f}% | "
                f"{time.perf_counter() - start:.0f} |",
                flush=True,
            )
        for name, rates in (("clean", clean_rates), ("robust", robust_rates)):
            mean = float(np.mean(rates))
            between = float(np.std(rates, ddof=1)) if len(rates) > 1 else math.nan
            binomial = math.sqrt(mean * (1 - mean) / len(y))
            print(
                f"| {arch} | {name}: mean {100 * mean:.1f}% | between-seed sd {100 * between:.1f} points | "
                f"binomial sd {100 * binomial:.1f} points | |",
                flush=True,
            )


if __name__ == "__main__":
    from qrobust.pipeline.process import run_stage

    run_stage("seed_spread", main)  # the stages' process settings: seed 0 trains the study's own model
