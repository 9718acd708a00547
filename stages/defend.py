"""defend@<defense>: the defense study for one test-time defense (qrobust.defenses.test_time), on the
standard models of defend.archs: deployed in front of each runtime, attacked non-adaptively and adaptively.

Writes reports/defenses/<defense>.csv (result rows), reports/defenses/<defense>.json (metrics) and its timing.
"""

from __future__ import annotations

import argparse
import time

from qrobust.data.splits import calibration_subset, load_split
from qrobust.defenses.catalogue import DefenseKind, create_defense
from qrobust.defenses.study import DefenseStudy
from qrobust.defenses.test_time import run_defense
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.layout import PREPARED
from qrobust.pipeline.process import run_stage
from qrobust.settings.study import load_study


def main(name: str) -> None:
    params = load_study()
    settings = params.defend
    if name not in settings.defenses:
        raise ConfigError(f"defend: {name!r} is not in defend.defenses; defenses: {', '.join(settings.defenses)}")
    study = DefenseStudy.of(params)
    start = time.perf_counter()
    defense = create_defense(name, settings.defenses[name])
    calib = None
    if defense.kind is DefenseKind.DETECTOR:
        # The threshold is a choice: it reads the validation split, never the test split.
        val = load_split(PREPARED / "val.npz")[0]
        calib = calibration_subset(val, settings.threshold_samples, settings.seed)
    run_defense(study, defense, calib)
    study.save(name, time.perf_counter() - start)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--defense", required=True, help="a test-time defense named in defend.defenses")
    run_stage("defend", main, parser.parse_args().defense)
