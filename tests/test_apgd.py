"""APGD, the AutoAttack sequence and the per-sample worst case, on the tiny stripe model."""

import math

import numpy as np
import pytest
import torch

from qrobust.attacks.apgd import LinfAPGD, checkpoints, dlr_loss, targeted_dlr_loss
from qrobust.attacks.autoattack import LinfAutoAttack
from qrobust.attacks.runner import craft
from qrobust.attacks.threats import ThreatModel
from qrobust.attacks.victims import module_victim
from qrobust.evaluation.worstcase import WorstCase
from qrobust.pipeline.model_id import ModelId
from tests.conftest import Noisy

# The tiny model keeps about two thirds of its samples against PGD-10 here: room for a stronger attack to show.
EPSILON = 0.15


def robust(victim, name, options, x, y, epsilon=EPSILON) -> np.ndarray:
    crafted = craft(victim, name, options, (epsilon,), x, y, batch_size=64, seed=0)
    return victim.predict(crafted.x_adv[0]) == y


@pytest.fixture()
def samples(tiny_data):
    return tiny_data["test"][0][:96], tiny_data["test"][1][:96]


def test_checkpoints_follow_the_paper() -> None:
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 of 100 steps.
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_dlr_losses_are_scale_and_shift_invariant() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.5, -1.0], [0.2, 2.0, 1.5, 0.1]])
    labels, targets = torch.tensor([0, 2]), torch.tensor([1, 0])
    for loss in (lambda z: dlr_loss(z, labels), lambda z: targeted_dlr_loss(z, labels, targets)):
        assert torch.allclose(loss(logits), loss(7.0 * logits - 3.0), atol=1e-6)
    # Positive exactly when the true class is not the top one.
    assert (dlr_loss(logits, labels) > 0).tolist() == [False, True]


def test_apgd_is_no_weaker_than_pgd_at_the_same_budget(trained_lenet, samples) -> None:
    x, y = samples
    victim = module_victim(trained_lenet, torch.device("cpu"))
    pgd = robust(victim, "linf_pgd", {"steps": 10, "rel_stepsize": 0.25}, x, y)
    for name, options in (
        ("apgd_ce", {"steps": 20}),
        ("apgd_dlr", {"steps": 20}),
        ("apgd_t", {"steps": 20, "targets": 3}),
    ):
        apgd = robust(victim, name, options, x, y)
        assert apgd.mean() <= pgd.mean(), (name, apgd.mean(), pgd.mean())
    assert 0.1 < pgd.mean() < (victim.predict(x) == y).mean(), "the budget leaves the comparison nothing to show"


def test_autoattack_is_no_weaker_than_its_members(trained_lenet, samples) -> None:
    x, y = samples
    victim = module_victim(trained_lenet, torch.device("cpu"))
    options = {"steps": 10, "targets": 2, "queries": 200}
    composite = robust(victim, "autoattack", options, x, y)
    # Its first member sees the same inputs and random draws: every sample it breaks, the composite breaks.
    first = robust(victim, "apgd_ce", {"steps": 10}, x, y)
    assert not (composite & ~first).any()
    for name, member in (("apgd_t", {"steps": 10, "targets": 2}), ("square", {"queries": 200})):
        assert composite.mean() <= robust(victim, name, member, x, y).mean(), name


def test_autoattack_runs_later_members_only_on_what_is_left(trained_lenet, samples) -> None:
    x, y = samples
    model = trained_lenet
    import foolbox

    attack = LinfAutoAttack(steps=5, targets=1, queries=50)
    fmodel = foolbox.PyTorchModel(model, bounds=(0, 1))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    correct = int((model(xt).argmax(1) == yt).sum())
    torch.manual_seed(0)
    np.random.seed(0)
    _, adv, success = attack(fmodel, xt, foolbox.criteria.Misclassification(yt), epsilons=EPSILON)
    assert sum(attack.found_by.values()) == int((model(adv).argmax(1) != yt).sum()) - (len(y) - correct)
    assert attack.found_by["apgd_ce"] > 0
    assert (adv - xt).abs().max() <= EPSILON + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_eot_averages_gradients_of_a_randomised_model(trained_lenet, samples) -> None:
    """Against a model that adds fresh noise, averaging gradients over draws breaks at least as many samples."""
    x, y = samples

    victim = module_victim(Noisy(trained_lenet, sigma=0.15), torch.device("cpu"))
    one = robust(victim, "apgd_ce", {"steps": 10, "eot_samples": 1}, x, y, 0.1)
    many = robust(victim, "apgd_ce", {"steps": 10, "eot_samples": 8}, x, y, 0.1)
    assert many.mean() <= one.mean() + 0.05


def test_bad_apgd_options_are_refused() -> None:
    with pytest.raises(ValueError, match="loss: expected one of ce, dlr"):
        LinfAPGD(loss="hinge")
    with pytest.raises(ValueError, match="targets: the targeted version uses the dlr loss"):
        LinfAPGD(loss="ce", targets=3)
    with pytest.raises(ValueError, match="steps: expected an integer >= 1"):
        LinfAPGD(steps=0)


FLOAT = ModelId.parse("lenet-standard")
QUANT = FLOAT.quantized("ort_int8")


def test_worst_case_is_the_per_sample_minimum() -> None:
    clean = {FLOAT: np.array([1, 1, 1, 1, 0, 1], dtype=bool), QUANT: np.ones(6, dtype=bool)}
    worst = WorstCase(clean)
    sizes = {k: np.full(4, 0.1, dtype=np.float32) for k in ("l0", "l1", "l2", "linf")}
    # Two sets on nested subsets: a breaks sample 1, b (a larger subset) breaks 1 and 3.
    worst.add(FLOAT, "a/white_float", "linf", 0.1, np.array([0, 1, 2, 4]), np.array([1, 0, 1, 1], bool), sizes)
    sizes6 = {k: np.full(5, 0.2, dtype=np.float32) for k in sizes}
    worst.add(FLOAT, "b/black_runtime", "linf", 0.1, np.array([0, 1, 2, 3, 4]), np.array([1, 0, 1, 0, 0], bool), sizes6)
    # An unbounded output is a boundary distance, not a set at this budget.
    one = {k: v[:1] for k, v in sizes.items()}  # a set's sizes: one per sample it covers
    worst.add(FLOAT, "b/black_runtime", "linf", math.inf, np.array([0]), np.array([0], bool), one)
    (row,) = [r for r in worst.rows() if r.target == str(FLOAT) and r.epsilon == 0.1]
    # Covered: 0..4; sample 4 was wrong clean, so it is not robust even though a set left it "correct".
    assert (row.n, row.n_correct, row.n_attackable, row.n_success) == (5, 2, 4, 2)
    assert row.threat_model == ThreatModel.WORST_CASE.value and row.epsilon == 0.1
    assert row.robust_accuracy <= min(clean[FLOAT][:5].mean(), 3 / 4)
    # The first set that broke a sample gives its size.
    assert row.linf_median_success == pytest.approx(0.15)
    attribution = worst.attribution()[f"{FLOAT}/linf/eps=0.1"]
    assert attribution["broken_by"] == {"b/black_runtime": 2, "a/white_float": 1}
    assert attribution["only_by"] == {"b/black_runtime": 1}


def test_a_quantized_worst_case_is_paired_with_its_float_parent_on_shared_samples() -> None:
    clean = {FLOAT: np.ones(6, dtype=bool), QUANT: np.array([1, 1, 1, 1, 1, 0], dtype=bool)}
    worst = WorstCase(clean)
    sizes = {k: np.full(6, 0.1, dtype=np.float32) for k in ("l0", "l1", "l2", "linf")}
    # The float model is attacked on samples 0..5 and loses 0 and 1; the quantized one on 0..3 loses 0.
    worst.add(FLOAT, "a/white_float", "linf", 0.1, np.arange(6), np.array([0, 0, 1, 1, 1, 1], bool), sizes)
    worst.add(QUANT, "a/white_qnn_ste", "linf", 0.1, np.arange(4), np.array([0, 1, 1, 1], bool), sizes)
    rows = {r.target: r for r in worst.rows()}
    assert rows[str(FLOAT)].paired_reference == "" and math.isnan(rows[str(FLOAT)].paired_difference)
    q = rows[str(QUANT)]
    # Samples 0..3 are the shared ones: float robust on 2 of 4, quantized on 3 of 4.
    assert q.paired_reference == str(FLOAT) and q.paired_difference == pytest.approx(0.25)
    assert q.paired_low < 0.25 < q.paired_high and q.paired_mcnemar_p == pytest.approx(1.0)


def test_boundary_distance_is_the_nearest_verified_example_and_counts_the_censored() -> None:
    clean = {FLOAT: np.array([1, 1, 1, 1, 0], dtype=bool)}
    worst = WorstCase(clean)
    index = np.arange(5)

    def sizes(l2: list[float]) -> dict[str, np.ndarray]:
        return {k: np.asarray(l2, dtype=np.float32) for k in ("l0", "l1", "l2", "linf")}

    # deepfool fools samples 0, 1 and 4; fmn fools 0 (nearer) and 2; nobody fools 3. Sample 4 was wrong clean.
    worst.add(
        FLOAT,
        "deepfool/white_float",
        "l2",
        math.inf,
        index,
        np.array([0, 0, 1, 1, 0], bool),
        sizes([0.5, 0.4, 9, 9, 0]),
    )
    worst.add(
        FLOAT, "fmn/transfer", "l2", math.inf, index, np.array([0, 1, 0, 1, 1], bool), sizes([0.3, 0.1, 0.7, 9, 9])
    )
    (row,) = [r for r in worst.rows() if math.isinf(r.epsilon)]
    # Never below what a set returned and verified, never counting an output that did not fool the model.
    assert (row.n_attackable, row.n_success) == (4, 3)
    assert row.l2_median_success == pytest.approx(0.4)  # median of 0.3, 0.4, 0.7
    summary = worst.boundary()[f"{FLOAT}/l2"]
    assert summary["found"] == 3 and summary["found_by"] == {"deepfool/white_float": 1, "fmn/transfer": 2}
    assert summary["median_censored"] == pytest.approx(0.55)  # 0.3, 0.4, 0.7, inf
    # With half the samples beyond every size tried, the censored median is beyond it too.
    worst.add(FLOAT, "boundary/black_runtime", "l2", math.inf, index, np.ones(5, bool), sizes([0] * 5))
    clean[FLOAT][2] = True
    assert math.isfinite(worst.boundary()[f"{FLOAT}/l2"]["median_censored"])
    worst2 = WorstCase({FLOAT: np.ones(4, dtype=bool)})
    worst2.add(
        FLOAT, "deepfool/white_float", "l2", math.inf, np.arange(4), np.array([0, 1, 1, 1], bool), sizes([0.5, 0, 0, 0])
    )
    assert worst2.boundary()[f"{FLOAT}/l2"]["median_censored"] == math.inf


def test_boundary_table_gives_each_norm_of_the_worst_case_its_own_column() -> None:
    from qrobust.report.model_tables import boundary_table

    worst = WorstCase({FLOAT: np.ones(3, dtype=bool)})
    for norm, size in (("l2", 0.5), ("linf", 0.02)):
        sizes = {k: np.full(3, size, dtype=np.float32) for k in ("l0", "l1", "l2", "linf")}
        worst.add(FLOAT, f"deepfool_{norm}/white_float", norm, math.inf, np.arange(3), np.zeros(3, bool), sizes)
    table = boundary_table(worst.rows())
    assert table.headers[1:] == ("worst_case (l2, worst_case)", "worst_case (linf, worst_case)")
    assert [cell.split()[0] for cell in table.rows[0][1:]] == ["0.5", "0.02"]
