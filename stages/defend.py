"""defend@<defense> and defend_recipe@<recipe>: the defense study for one defense (qrobust.defense_study).

Writes reports/defenses/<name>.csv (result rows), reports/defenses/<name>.json (metrics) and its timing.
"""

from __future__ import annotations

import argparse
import time

from qrobust.core.data import DATASETS, load_split
from qrobust.core.defenses import DefenseKind, create_defense
from qrobust.core.errors import ConfigError, run_stage
from qrobust.core.io import save_json
from qrobust.core.layout import PREPARED, REPORTS
from qrobust.core.quantizers import calibration_subset
from qrobust.core.results import write_results
from qrobust.core.settings import load_study
from qrobust.core.training import RECIPES, resolve_device
from qrobust.defense_study import DefenseStudy, run_defense, run_recipe
from qrobust.models import input_spec
from qrobust.provenance import save_timing


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
        run_recipe(study, name, RECIPES.get(name)(dict(options)))
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
