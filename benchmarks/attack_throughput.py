"""Attack throughput: Linf PGD adversarial examples per second on each architecture, through
qrobust's attack runner on the float model and on each quantized model's twin (exact and ste),
against a bare Foolbox loop (PyTorchModel + LinfPGD, nothing else) on the same float model.

Run after `make repro` (or inside build/smoke after `make smoke`):
`python benchmarks/attack_throughput.py [--samples 200] [--steps 10]`. One epsilon, one pass, on
the samples the float model gets right (the runner attacks only those, so both loops get the same
work); the runner's figure includes what the bare loop skips: the clean pass, query counting, and
the bounds and epsilon check.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from qrobust.attacks import craft
from qrobust.backends import load_twin
from qrobust.data import DATASETS, load_split
from qrobust.layout import FLOAT_MODELS, PREPARED, QUANT_MODELS
from qrobust.models import create_model, input_spec
from qrobust.settings import load_study
from qrobust.twins import GradMode
from qrobust.victims import module_victim

EPSILON = 0.05


def bare_foolbox(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, steps: int, batch: int) -> float:
    import foolbox

    fmodel = foolbox.PyTorchModel(model.eval(), bounds=(0.0, 1.0), device=torch.device("cpu"))
    attack = foolbox.attacks.LinfPGD(steps=steps, rel_stepsize=0.25, random_start=True)
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        attack(fmodel, torch.from_numpy(x[i : i + batch]), torch.from_numpy(y[i : i + batch]), epsilons=[EPSILON])
    return len(x) / (time.perf_counter() - start)


def runner(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, steps: int, batch: int) -> float:
    victim = module_victim(model, torch.device("cpu"))
    options = {"steps": steps, "rel_stepsize": 0.25, "random_start": True}
    start = time.perf_counter()
    craft(victim, "linf_pgd", options, (EPSILON,), x, y, batch_size=batch, seed=0)
    return len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=250)
    args = parser.parse_args()
    spec = input_spec(DATASETS.get(load_study().prepare.dataset))
    x, y = load_split(PREPARED / "eval.npz")
    x_all, y_all = x[: args.samples], y[: args.samples]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; Linf PGD, {args.steps} steps, eps {EPSILON}")
    print(f"{'model':34s} {'attacked as':22s} {'adv. examples / s':>18s}")
    for float_dir in sorted(p for p in FLOAT_MODELS.iterdir() if p.is_dir()):
        x, y = x_all, y_all
        model = create_model(float_dir.name.split("-", 1)[0], spec)
        model.load_state_dict(torch.load(float_dir / "model.pt", weights_only=True))
        with torch.no_grad():
            right = model.eval()(torch.from_numpy(x)).argmax(1).numpy() == y
        x, y = x[right], y[right]
        print(
            f"{float_dir.name:34s} {'bare Foolbox loop':22s} {bare_foolbox(model, x, y, args.steps, args.batch_size):18.1f}"
        )
        print(f"{float_dir.name:34s} {'runner, float':22s} {runner(model, x, y, args.steps, args.batch_size):18.1f}")
        for folder in sorted(q for q in QUANT_MODELS.glob(f"{float_dir.name}.*") if q.is_dir()):
            for mode in GradMode:
                rate = runner(load_twin(folder, mode), x, y, args.steps, args.batch_size)
                print(f"{folder.name:34s} {'runner, twin ' + mode.value:22s} {rate:18.1f}")


if __name__ == "__main__":
    main()
