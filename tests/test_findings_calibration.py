"""The verdicts' error rates, measured: every claim judged on 1,000 simulated studies with the default
study's structure (qrobust.findings.simulate) at its boundary (no effect: a false "holds" is counted) and at
the smallest effect that counts (a false "does not hold" is counted, and how often "holds" is found)."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest

from qrobust.findings.claims import CLAIMS, study_scope
from qrobust.findings.evidence import Verdict, judge_claim
from qrobust.findings.simulate import plants
from qrobust.pipeline.params import load_params
from qrobust.settings.findings import CLAIM_KEYS
from qrobust.settings.study import Study
from tests.conftest import ROOT

STUDIES = int(os.environ.get("QROBUST_STUDIES", 1000))
MAX_ERROR = 0.05
MIN_POWER = 0.8


def test_every_claim_has_a_threshold_and_a_plant() -> None:
    study = Study.from_params(load_params(ROOT / "params.yaml"))
    assert tuple(c.key for c in CLAIMS) == CLAIM_KEYS
    assert set(plants(study_scope(study), study.findings.thresholds)) == set(CLAIM_KEYS)


@pytest.mark.slow
@pytest.mark.parametrize("key", CLAIM_KEYS)
def test_false_verdicts_at_most_five_percent_and_the_smallest_effect_found_or_called_underpowered(key: str) -> None:
    study = Study.from_params(load_params(ROOT / "params.yaml"))
    settings = study.findings
    entry = next(c for c in CLAIMS if c.key == key)
    threshold = settings.thresholds[key]
    skeleton = study_scope(study)
    plant = plants(skeleton, settings.thresholds)[key]
    rng = np.random.default_rng(CLAIM_KEYS.index(key))
    false_holds = false_fails = 0
    found: Counter[str] = Counter()
    power: dict[str, list[float]] = {}
    for _ in range(STUDIES):
        null = judge_claim(entry, plant(skeleton, rng, 0.0, threshold), threshold, settings.alpha)
        assert null.judged, f"{key}: the simulated study gives the claim no condition"
        false_holds += any(j.verdict is Verdict.HOLDS for j in null.judged)
        planted = judge_claim(entry, plant(skeleton, rng, threshold.delta, threshold), threshold, settings.alpha)
        false_fails += any(j.verdict is Verdict.FAILS for j in planted.judged)
        for j in planted.judged:
            found[j.condition.label] += j.verdict is Verdict.HOLDS
            power.setdefault(j.condition.label, []).append(j.power)
    assert false_holds / STUDIES <= MAX_ERROR, f"{key}: false 'holds' in {false_holds} of {STUDIES} null studies"
    assert false_fails / STUDIES <= MAX_ERROR, f"{key}: false 'does not hold' in {false_fails} of {STUDIES} studies"
    for label, hits in found.items():
        rate = hits / STUDIES
        # The power a verdict states: its median over the studies (a test whose variance is estimated, as
        # across seeds, states a power that varies with that estimate).
        stated = float(np.median(power[label]))
        # Found at least 80% of the time, or the verdict says it is underpowered (its computed power, at
        # Holm's first level, below 80%); and that power never claims more than the simulation finds.
        assert rate >= MIN_POWER or stated < MIN_POWER, f"{key} {label}: found {rate:.2f}, power {stated:.2f}"
        assert stated <= rate + 0.1, f"{key} {label}: found {rate:.2f}, computed power {stated:.2f}"


def test_the_placebo_is_judged_apart_and_an_effect_claim_cannot_hold_on_it() -> None:
    study = Study.from_params(load_params(ROOT / "params.yaml"))
    settings = study.findings
    skeleton = study_scope(study)
    assert skeleton.placebos == ("ort_w16a16",)
    rng = np.random.default_rng(1)
    for entry in CLAIMS:
        threshold = settings.thresholds[entry.key]
        finding = judge_claim(entry, plants(skeleton, settings.thresholds)[entry.key](skeleton, rng, 0.0, threshold),
                              threshold, settings.alpha)  # fmt: skip
        assert all("placebo" not in j.condition.group for j in finding.judged)
        assert all(j.condition.placebo for j in finding.placebo)
