"""analyse: one float model and its quantized models -> reports/analysis/<model>.json (DVC metrics).

Boundary distances come from analysis.boundary_attack's unbounded outputs, made by the attack stage on
every deployed runtime: the difference of medians (quantized minus float) with a bootstrap interval.

The float model is attacked white-box (analysis.attack at analysis.epsilons, options from
attack.attacks) on analysis.samples images of the evaluation subset; every measurement of
``qrobust.analysis.mechanisms`` is taken on those examples and on random noise of the same sizes. The loss-plateau
indicator traces its own PGD (analysis.trace) on the first analysis.trace.samples of them. These
measurements and each convergence check (qrobust.analysis.convergence) are independent jobs, spread over the
machine's cores (qrobust.pipeline.workers).
"""

from __future__ import annotations

import argparse
import time

from qrobust.analysis.study import convergence_checks, part
from qrobust.pipeline.device import resolve_device
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.io import save_json
from qrobust.pipeline.layout import REPORTS
from qrobust.pipeline.model_id import ModelId
from qrobust.pipeline.process import run_stage
from qrobust.pipeline.workers import run_jobs, worker_count
from qrobust.settings.study import load_study


def main(model_name: str) -> None:
    study = load_study()
    model = ModelId.parse(model_name)
    if model not in study.train.model_ids():
        raise ConfigError(f"analyse: {model} is not in train.archs x train.recipes")
    start = time.perf_counter()
    # The measurements and the convergence checks are independent jobs, spread over the cores.
    checks = [("converge", n, t.value, str(s)) for n, t, s in convergence_checks(study, model)]
    jobs = [("measure", str(model)), *checks]
    measured, *convergence = run_jobs(part, jobs, workers=worker_count(resolve_device(study.attack.device)))
    save_json(REPORTS / "analysis" / f"{model}.json", {"analysis": {str(model): measured}, "convergence": convergence})
    seconds = time.perf_counter() - start
    print(
        f"{model}: analysed with {len(study.quantize.of(model, sweep=False))} quantized models, "
        f"{len(checks)} checks, in {seconds:.1f}s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="float model id, <arch>-<recipe>")
    run_stage("analyse", main, parser.parse_args().model)
