"""defend_recipe@<recipe>: the defense study for one train-based defense (qrobust.defenses.train_based):
the standard model's sets transferred to the recipe model of each defend.arch and precision, and the
attack on it.

Writes reports/defenses/<recipe>.csv (result rows), reports/defenses/<recipe>.json (metrics) and its timing.
"""

from __future__ import annotations

import argparse
import time

from qrobust.defenses.study import DefenseStudy
from qrobust.defenses.train_based import run_recipe
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.process import run_stage
from qrobust.settings.study import load_study
from qrobust.training.recipes import create_recipe


def main(name: str) -> None:
    params = load_study()
    if name not in params.defend.recipes:
        raise ConfigError(f"defend: {name!r} is not in defend.recipes; recipes: {', '.join(params.defend.recipes)}")
    study = DefenseStudy.of(params)
    start = time.perf_counter()
    run_recipe(study, name, create_recipe(name, params.train.recipe_options.get(name, {})))
    study.save(name, time.perf_counter() - start)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipe", required=True, help="a train-based recipe named in defend.recipes")
    run_stage("defend", main, parser.parse_args().recipe)
