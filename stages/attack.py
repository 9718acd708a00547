"""attack: float model + evaluation subset -> data/adversarial/<arch>-<recipe>/<attack>.npz.

Each file holds the adversarial examples for every epsilon of the attack's grid, the labels, and
per-sample L0/L1/L2/Linf perturbation sizes; timings go to reports/timing/attack/.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from qrobust.attacks import ATTACKS, perturbation_norms, run_attack
from qrobust.data import DATASETS, load_split
from qrobust.errors import run_stage
from qrobust.io import atomic_dir, load_npz, save_json, save_npz
from qrobust.layout import PREPARED, adversarial_dir, float_dir, timing_path
from qrobust.models import create_model, input_spec
from qrobust.settings import AttackSettings, PrepareSettings, load_validated
from qrobust.training import resolve_device, seed_everything


def main(model_name: str) -> None:
    params = load_validated()
    settings = AttackSettings.from_params(params)
    arch = model_name.split("-", 1)[0]
    dataset = DATASETS.get(PrepareSettings.from_params(params).dataset)
    spec = input_spec(dataset)
    model = create_model(arch, spec)
    model.load_state_dict(torch.load(float_dir(model_name) / "model.pt", weights_only=True))
    model.eval()
    seed_everything(settings.seed)
    device = resolve_device(settings.device)
    x, y = load_split(PREPARED / "eval.npz")
    test_index = load_npz(PREPARED / "eval.npz")["test_index"]

    summary = {}
    with atomic_dir(adversarial_dir(model_name)) as out:
        for attack in settings.attacks:
            start = time.perf_counter()
            x_adv = run_attack(
                model,
                attack.name,
                attack.options,
                attack.epsilons,
                x,
                y,
                batch_size=settings.batch_size,
                seed=settings.seed,
                device=device,
                key="attack.attacks",
            )
            seconds = time.perf_counter() - start
            norms = perturbation_norms(x_adv, x)
            save_npz(
                out / f"{attack.name}.npz",
                {
                    "x_adv": x_adv,
                    "y": y,
                    "test_index": test_index,
                    "epsilons": np.asarray(attack.epsilons, dtype=np.float64),
                    "norm": np.asarray(ATTACKS.get(attack.name).norm.value),
                    **{f"norm_{k}": v for k, v in norms.items()},
                },
            )
            summary[attack.name] = {
                "seconds": round(seconds, 2),
                "examples_per_second": round(x_adv.shape[0] * len(x) / seconds, 1),
            }
            print(f"{model_name} {attack.name}: {x_adv.shape[0]} epsilons x {len(x)} samples in {seconds:.1f}s")
    save_json(timing_path("attack", model_name), {"device": str(device), "attacks": summary})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="float model id, <arch>-<recipe>")
    args = parser.parse_args()
    run_stage("attack", main, args.model)
