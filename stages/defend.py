"""defend@<defense> and defend_recipe@<recipe>: the defense study for one defense (qrobust.defenses.study).

Writes reports/defenses/<name>.csv (result rows), reports/defenses/<name>.json (metrics) and its timing.
"""

from __future__ import annotations

import argparse
import time

from qrobust.data.datasets import DATASETS
from qrobust.data.splits import load_split
from qrobust.defenses.catalogue import DefenseKind, create_defense
from qrobust.defenses.study import DefenseStudy, run_defense, run_recipe
from qrobust.evaluation.results import write_results
from qrobust.models import input_spec
from qrobust.pipeline.device import resolve_device
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.io import save_json
from qrobust.pipeline.layout import PREPARED, REPORTS
from qrobust.pipeline.process import run_stage
from qrobust.pipeline.provenance import save_timing
from qrobust.quantization.quantizers import calibration_subset
from qrobust.settings.study import load_study
from qrobust.training.recipes import create_recipe


def main(defense_name: str | None, recipe_name: str | None) -> None:
    params = load_study()
    settings, attacks = params.defend, params.attack
    name = str(defense_name or recipe_name)
    listed = settings.defenses if defense_name else settings.recipes
    if name not in listed:
        kind = "defenses" if defense_name else "recipes"
        raise ConfigError(f"defend: {name!r} is not in defend.{kind}; {kind}: {', '.join(listed)}")
    x_eval, y_eval = load_split(PREPARED / "eval.npz")
    study = DefenseStudy(
        settings=settings,
        attack=attacks.get(settings.attack),
        composite=settings.composite_attack(attacks),
        boundary=attacks.get(settings.boundary_attack),
        spec=input_spec(DATASETS.get(params.prepare.dataset)),
        device=resolve_device(attacks.device),
        batch_size=attacks.batch_size,
        x_eval=x_eval,
        y_eval=y_eval,
    )
    start = time.perf_counter()
    if defense_name:
        defense = create_defense(name, settings.defenses[name])
        calib = None
        if defense.kind is DefenseKind.DETECTOR:
            # The threshold is a choice: it reads the validation split, never the test split.
            val = load_split(PREPARED / "val.npz")[0]
            calib = calibration_subset(val, settings.threshold_samples, settings.seed)
        run_defense(study, defense, calib)
    else:
        options = params.train.recipe_options.get(name, {})
        run_recipe(study, name, create_recipe(name, options))
    write_results(REPORTS / "defenses" / f"{name}.csv", study.rows)
    save_json(REPORTS / "defenses" / f"{name}.json", {"defense": {name: study.metrics}})
    save_timing("defend", name, {"seconds": round(time.perf_counter() - start, 1)})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--defense", help="a test-time defense named in defend.defenses")
    group.add_argument("--recipe", help="a train-based recipe named in defend.recipes")
    args = parser.parse_args()
    run_stage("defend", main, args.defense, args.recipe)
