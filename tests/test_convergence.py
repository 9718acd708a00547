"""The boundary distances' convergence check: its rule, its verdict on an attack run to its end and on one
stopped early, and the report's flag."""

import json
import math

import numpy as np
import pytest
import torch

from qrobust.analysis.convergence import TOLERANCE, Convergence, check_convergence, verified_distances
from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.runner import craft, perturbation_norms
from qrobust.attacks.sets import AdversarialSet
from qrobust.attacks.threats import ThreatModel
from qrobust.attacks.victims import module_victim
from qrobust.evaluation.worstcase import WorstCase
from qrobust.pipeline.io import dumps_json
from qrobust.pipeline.model_id import ModelId
from qrobust.report.model_tables import boundary_table, convergence_table

FLOAT = ModelId("lenet", "standard")


def check(median: float, doubled: float) -> Convergence:
    return Convergence("fmn_l2", "white_float", str(FLOAT), "l2", 10, 40, median, doubled, 30, 30)


def as_written(c: Convergence) -> dict:
    """The record as the analyse stage writes it and the report stage reads it (inf and nan as null)."""
    return json.loads(dumps_json(c.record()))


@pytest.mark.parametrize(
    ("median", "doubled", "converged"),
    [
        (1.0, 1.0 + 0.8 * TOLERANCE, True),
        (1.0, 1.0 - 0.8 * TOLERANCE, True),
        (1.0, 1.0 + 1.2 * TOLERANCE, False),
        (1.0, 0.5, False),
        (math.inf, math.inf, False),  # half the samples or more never fooled: no boundary found
        (1.0, math.inf, False),
    ],
)
def test_converged_only_when_doubling_the_steps_barely_moves_the_median(median, doubled, converged) -> None:
    assert check(median, doubled).converged is converged
    record = check(median, doubled).record()
    assert record["converged"] is converged and "0.05" in record["rule"]


def test_verified_distance_counts_only_what_fools_the_runtime() -> None:
    x = np.zeros((4, 1, 2, 2), dtype=np.float32)
    y = np.array([0, 0, 0, 1])
    x_adv = x.copy()
    x_adv[:, 0, 0, 0] = [0.3, 0.6, 0.9, 0.2]

    def predict(images: np.ndarray) -> np.ndarray:
        # Class 1 above 0.5 in the first pixel; the last sample is wrong clean.
        return (images[:, 0, 0, 0] > 0.5).astype(np.int64)

    distances = verified_distances(predict, x_adv, x, y, "l2")
    # Sample 0 did not cross (censored), 1 and 2 did at their sizes; sample 3 is left out.
    np.testing.assert_allclose(distances, [math.inf, 0.6, 0.9], rtol=1e-6)


def minimisation_set(victim, name: str, options: dict, x: np.ndarray, y: np.ndarray) -> AdversarialSet:
    crafted = craft(victim, name, options, (), x, y, batch_size=64, seed=0)
    return AdversarialSet(
        attack=name,
        norm=ATTACKS.get(name).norm.value,
        threat_model=ThreatModel.WHITE_FLOAT,
        source=FLOAT,
        index=np.arange(len(x)),
        labels=y,
        epsilons=crafted.epsilons,
        x_adv=crafted.x_adv,
        sizes=perturbation_norms(crafted.x_adv, x),
        queries_per_sample=crafted.queries_per_sample,
    )


@pytest.mark.parametrize(("name", "steps", "converged"), [("deepfool_l2", 50, True), ("fmn_l2", 2, False)])
def test_an_attack_run_to_its_end_converges_and_one_stopped_early_does_not(
    trained_lenet, tiny_data, name, steps, converged
) -> None:
    x, y = tiny_data["test"][0][:48], tiny_data["test"][1][:48]
    victim = module_victim(trained_lenet, torch.device("cpu"))
    options = {**ATTACKS.get(name).defaults, "steps": steps}
    adv = minimisation_set(victim, name, options, x, y)
    result = check_convergence(adv, x, victim, victim.predict, options, samples=40, batch_size=64, seed=0)
    assert result.n == int((victim.predict(x[:40]) == y[:40]).sum())
    assert result.converged is converged, result


def test_the_report_flags_an_unconverged_boundary_distance_and_states_the_rule() -> None:
    worst = WorstCase({FLOAT: np.ones(3, dtype=bool)})
    sizes = {k: np.full(3, 0.5, dtype=np.float32) for k in ("l0", "l1", "l2", "linf")}
    worst.add(FLOAT, "fmn_l2/white_float", "l2", math.inf, np.arange(3), np.zeros(3, bool), sizes)
    rows = worst.rows()
    # The worst case's own row stands in for a set: flag its (attack, threat model, model).
    late = as_written(check(1.0, 0.7)) | {"attack": "worst_case", "threat_model": "worst_case"}
    flagged = boundary_table(rows, [late]).rows[0][1]
    assert "NOT CONVERGED: median -30% at 20 steps" in flagged
    assert "NOT CONVERGED" not in boundary_table(rows, [late | {"converged": True}]).rows[0][1]
    table = convergence_table([late, as_written(check(math.inf, math.inf))])
    assert [line[-1] for line in table.rows] == ["NOT CONVERGED", "NOT CONVERGED"]
    assert table.rows[1][3].startswith("beyond (30 of 40 found)")
    assert "0.05" in table.note
