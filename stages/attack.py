"""attack@<name>: one attack, under each threat model params give it, on every model it applies to.

Writes data/adversarial/<name>/<threat_model>/<source>.npz: the adversarial examples for every
epsilon of the grid (and the unclipped output of a minimisation attack at epsilon inf), the seeded
subset they came from, which samples were attacked, per-sample L0/L1/L2/Linf sizes and the query
count. Timings go to reports/timing/attack/<name>.json. The sets are independent jobs, spread over the
machine's cores (qrobust.pipeline.workers).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.runner import attack_subset, craft, perturbation_norms
from qrobust.attacks.sets import copy_set, save_set
from qrobust.attacks.threats import Kind, ThreatModel
from qrobust.attacks.victims import float_activations, open_victim, sources
from qrobust.data.datasets import DATASETS
from qrobust.data.splits import eval_split
from qrobust.models import input_spec
from qrobust.pipeline.device import resolve_device
from qrobust.pipeline.io import atomic_dir
from qrobust.pipeline.layout import adversarial_dir, set_file
from qrobust.pipeline.model_id import ModelId
from qrobust.pipeline.process import run_stage
from qrobust.pipeline.provenance import save_timing
from qrobust.pipeline.workers import run_jobs, worker_count
from qrobust.settings.study import load_study


def craft_set(job: tuple[str, str, str, Path]) -> dict[str, float]:
    """Attack ``name`` under one threat model on one source; writes its set into ``out``. Runs in a
    worker process too: everything it needs comes from params.yaml and the artefact folders."""
    name, threat_value, source_name, out = job
    study = load_study()
    settings, threat, source = study.attack, ThreatModel(threat_value), ModelId.parse(source_name)
    config, entry = settings.get(name), ATTACKS.get(name)
    x_all, y_all = eval_split()
    count = settings.samples_on(config, threat, source, swept=study.sweep_only(source))
    index = attack_subset(len(x_all), count, settings.seed)
    x, y = x_all[index], y_all[index]
    start = time.perf_counter()
    spec = input_spec(DATASETS.get(study.prepare.dataset))
    victim = open_victim(
        threat, source, spec, resolve_device(settings.device),
        labels_only=entry.kind is Kind.DECISION, with_parent=entry.kind is Kind.DIFFERENTIAL,
    )  # fmt: skip
    crafted = craft(
        victim, name, config.options, config.epsilons, x, y,
        batch_size=settings.batch_size, seed=settings.seed, key="attack.attacks",
    )  # fmt: skip
    save_set(
        out / set_file(threat.value, source),
        attack=name, norm=entry.norm.value, source=source, threat=threat, index=index, y=y,
        epsilons=crafted.epsilons, x_adv=crafted.x_adv, attacked=crafted.attacked,
        queries_per_sample=crafted.queries_per_sample, sizes=perturbation_norms(crafted.x_adv, x),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    print(f"{name} {threat.value} {source}: {len(x)} samples in {seconds:.1f}s", flush=True)
    return {"seconds": round(seconds, 2), "queries_per_sample": round(float(crafted.queries_per_sample), 1)}


def main(name: str) -> None:
    study = load_study()
    settings = study.attack
    config, entry = settings.get(name), ATTACKS.get(name)
    device = resolve_device(settings.device)
    deployed = study.reached_by(entry.norm)
    sets = [(t, s) for t in config.threat_models for s in sources(t, deployed, noise=entry.kind is Kind.NOISE)]
    # Weight-only: no activation rounding, so the ste twin is the exact twin; the same samples give the same set.
    exact, ste = ThreatModel.WHITE_QNN_EXACT, ThreatModel.WHITE_QNN_STE
    copies = [
        (t, s)
        for t, s in sets
        if t is ste
        and exact in config.threat_models
        and settings.samples_on(config, exact, s, swept=study.sweep_only(s))
        == settings.samples_on(config, ste, s, swept=study.sweep_only(s))
        and float_activations(s)
    ]
    with atomic_dir(adversarial_dir(name)) as out:
        jobs = [(name, t.value, str(s), out) for t, s in sets if (t, s) not in copies]
        timed = run_jobs(craft_set, jobs, workers=worker_count(device))
        timings = {f"{t}/{s}": timing for (_, t, s, _), timing in zip(jobs, timed, strict=True)}
        for threat, source in copies:
            queries = copy_set(out / set_file(exact.value, source), out / set_file(threat.value, source), threat)
            timings[f"{threat.value}/{source}"] = {"seconds": 0.0, "queries_per_sample": round(queries, 1)}
    summary = {f"{t.value}/{s}": timings[f"{t.value}/{s}"] for t, s in sets}
    save_timing("attack", name, {"device": str(device), "sets": summary})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--attack", required=True, help="an attack named in params attack.attacks")
    args = parser.parse_args()
    run_stage("attack", main, args.attack)
