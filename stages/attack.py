"""attack@<name>: one attack, under each threat model params give it, on every model it applies to.

Writes data/adversarial/<name>/<threat_model>/<source>.npz: the adversarial examples for every
epsilon of the grid (and the unclipped output of a minimisation attack at epsilon inf), the seeded
subset they came from, which samples were attacked, per-sample L0/L1/L2/Linf sizes and the query
count. Timings go to reports/timing/attack/<name>.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from qrobust.attacks import ATTACKS, Kind, attack_subset, craft, perturbation_norms
from qrobust.data import DATASETS, load_split
from qrobust.errors import run_stage
from qrobust.io import atomic_dir, load_npz, save_npz
from qrobust.layout import PREPARED, adversarial_dir, set_file
from qrobust.models import input_spec
from qrobust.provenance import save_timing
from qrobust.results import ThreatModel
from qrobust.settings import load_study
from qrobust.training import resolve_device
from qrobust.victims import float_activations, open_victim, sources


def main(name: str) -> None:
    study = load_study()
    settings = study.attack
    config = settings.get(name)
    entry = ATTACKS.get(name)
    models = study.train.model_ids()
    quantizers = study.quantize.quantizers
    spec = input_spec(DATASETS.get(study.prepare.dataset))
    device = resolve_device(settings.device)
    x_all, y_all = load_split(PREPARED / "eval.npz")

    summary: dict[str, dict[str, float]] = {}
    with atomic_dir(adversarial_dir(name)) as out:
        for threat in config.threat_models:
            index = attack_subset(len(x_all), config.samples_for(threat), settings.seed)
            x, y = x_all[index], y_all[index]
            for source in sources(threat, models, quantizers, noise=entry.kind is Kind.NOISE):
                start = time.perf_counter()
                exact = out / set_file(ThreatModel.WHITE_QNN_EXACT.value, source)
                weight_only = threat is ThreatModel.WHITE_QNN_STE and float_activations(source) and exact.exists()
                reused = load_npz(exact) if weight_only else None
                if reused is not None and np.array_equal(reused["index"], index):
                    # Weight-only: no activation rounding, so the ste twin is the exact twin; same set.
                    record = reused
                else:
                    victim = open_victim(threat, source, spec, device, labels_only=entry.kind is Kind.DECISION)
                    crafted = craft(
                        victim, name, config.options, config.epsilons, x, y,
                        batch_size=settings.batch_size, seed=settings.seed, key="attack.attacks",
                    )  # fmt: skip
                    sizes = perturbation_norms(crafted.x_adv, x)
                    record = {
                        "attack": np.asarray(name),
                        "norm": np.asarray(entry.norm.value),
                        "source": np.asarray(str(source)),
                        "index": index,
                        "y": y,
                        "epsilons": np.asarray(crafted.epsilons, dtype=np.float64),
                        "x_adv": crafted.x_adv,
                        "attacked": crafted.attacked,
                        "queries_per_sample": np.asarray(crafted.queries_per_sample),
                        **{f"norm_{k}": v for k, v in sizes.items()},
                    }
                record["threat_model"] = np.asarray(threat.value)
                save_npz(out / set_file(threat.value, source), record)
                seconds = time.perf_counter() - start
                summary[f"{threat.value}/{source}"] = {
                    "seconds": round(seconds, 2),
                    "queries_per_sample": round(float(record["queries_per_sample"]), 1),
                }
                print(f"{name} {threat.value} {source}: {len(x)} samples in {seconds:.1f}s")
    save_timing("attack", name, {"device": str(device), "sets": summary})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--attack", required=True, help="an attack named in params attack.attacks")
    args = parser.parse_args()
    run_stage("attack", main, args.attack)
