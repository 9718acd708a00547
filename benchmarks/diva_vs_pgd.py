"""Differential evasion: DIVA's objective and its settings against PGD, on a finished study's models.

    python benchmarks/diva_vs_pgd.py [--root .] [--models lenet-standard.ort_w4a8] [--epsilons 0.02 0.05]
        [--samples 200] [--steps 20]

For each quantized model, attacks its straight-through twin on the first ``--samples`` of the evaluation
subset with linf_pgd and with DIVA (log-probabilities and probabilities, c 1 and 3), each at ``--steps`` steps of
0.1 eps, and prints, on the samples both the quantized runtime and its float parent's runtime get right clean,
the share the quantized runtime gets wrong after the attack and the share that is evasive (quantized wrong,
float right), with seconds. What chose attack.attacks.diva in params.yaml. Nothing is written to the study.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    import torch

    from qrobust.attacks.runner import craft
    from qrobust.attacks.threats import ThreatModel
    from qrobust.attacks.victims import attack_copy, module_victim, open_module, open_runtime
    from qrobust.data.datasets import DATASETS
    from qrobust.data.splits import eval_split
    from qrobust.models import input_spec
    from qrobust.pipeline.model_id import ModelId
    from qrobust.settings.study import load_study

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--models", nargs="+", default=["lenet-standard.ort_w4a8", "resnet8-standard.ort_w4a8"])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[0.02, 0.05])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    os.chdir(args.root)
    study = load_study()
    spec = input_spec(DATASETS.get(study.prepare.dataset))
    x, y = eval_split()
    x, y = x[: args.samples], y[: args.samples]
    device = torch.device("cpu")
    variants = [("linf_pgd", {})] + [("diva", {"c": c, "log_scores": log}) for log in (True, False) for c in (1.0, 3.0)]
    print("model | eps | attack | options | n | quantized wrong | evasive | seconds")
    for name in args.models:
        quantized = ModelId.parse(name)
        twin = open_module(ThreatModel.WHITE_QNN_STE, quantized, spec)
        parent = open_module(ThreatModel.WHITE_FLOAT, quantized.parent, spec)
        runtime, float_runtime = open_runtime(quantized), open_runtime(quantized.parent)
        both = (runtime.predict(x) == y) & (float_runtime.predict(x) == y)
        for eps in args.epsilons:
            for attack, extra in variants:
                victim = module_victim(twin, device)
                victim.reference = attack_copy(parent, device)
                options = {"steps": args.steps, "rel_stepsize": 0.1, **extra}
                start = time.perf_counter()
                adv = craft(victim, attack, options, (eps,), x, y, batch_size=250, seed=0).x_adv[0]
                seconds = time.perf_counter() - start
                wrong = runtime.predict(adv) != y
                evasive = wrong & (float_runtime.predict(adv) == y)
                print(
                    f"{name} | {eps:g} | {attack} | {extra or '-'} | {int(both.sum())} | "
                    f"{100 * wrong[both].mean():.1f}% | {100 * evasive[both].mean():.1f}% | {seconds:.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
