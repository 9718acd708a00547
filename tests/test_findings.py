"""Every claim's primary hypothesis on constructed records: a scene where it holds, one where it does not,
one where the data are too few; the statistics behind them against scipy and hand-computed values; and
the placebo and Holm's control of a family."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from qrobust.attacks.threats import NORMS, ThreatModel
from qrobust.evaluation.results import Result
from qrobust.findings.claims import CLAIMS
from qrobust.findings.evidence import Condition, Scope, Verdict, judge_claim, judge_family, overall
from qrobust.findings.simulate import Row
from qrobust.findings.tests import benjamini_hochberg, binomial, combined, holm, paired, two_sample
from qrobust.pipeline.model_id import ModelId
from qrobust.settings.findings import Threshold

N = 400
FLOAT_MODEL = ModelId("lenet", "standard")
QUANT = FLOAT_MODEL.quantized("q8")
PLACEBO = FLOAT_MODEL.quantized("q16")
ALPHA = 0.05


def row(
    rate: float,
    threat: ThreatModel,
    eps: float,
    target: ModelId | str,
    *,
    source: ModelId | str | None = None,
    attack: str = "pgd",
    defense: str = "none",
    adaptive: bool = False,
) -> Result:
    correct = np.arange(N) < round(rate * N)
    target = str(target)
    return Result.score(
        correct=correct,
        clean=np.ones(N, dtype=bool),
        attackable=np.ones(N, dtype=bool),
        sizes={norm: np.zeros(N) for norm in NORMS},
        attack=attack,
        norm="linf",
        epsilon=eps,
        threat_model=threat.value,
        source_threat_model=threat.value,
        source=str(source or target),
        target=target,
        target_arch="lenet",
        target_precision="q8",
        defense=defense,
        adaptive=adaptive,
    )


def scope(**records) -> Scope:
    return Scope(
        floats=(FLOAT_MODEL,),
        quantizers=("q8", "q16"),
        placebos=("q16",),
        bits={"q8": "w8a8", "q16": "w16a16, placebo"},
        headline=0.02,
        defense_epsilons=(0.02, 0.1),
        preprocessors=("blur",),
        ensembles={"ensemble": ("float", "q8")},
        recipes=("trades", "dq"),
        dq_recipe="dq",
        **records,
    )


def verdict_of(key: str, data: Scope, boundary: float, delta: float) -> tuple[Verdict, list]:
    entry = next(c for c in CLAIMS if c.key == key)
    finding = judge_claim(entry, data, Threshold(boundary, delta, "test"), ALPHA)
    return finding.verdict, [j.verdict for j in finding.placebo]


def worst(float_robust: int, quant_robust: int, n: int = 500, discordant: int = 20) -> dict:
    """Matched worst-case counts: ``discordant`` samples only the float model keeps, the rest follow."""
    only_float = discordant + max(0, float_robust - quant_robust)
    only_quant = discordant + max(0, quant_robust - float_robust)
    return {"n": n, "reference": float_robust, "other": quant_robust, "only_reference": only_float,
            "only_other": only_quant, "attacks": ["pgd"]}  # fmt: skip


def pairs(records_by_eps: dict[float, dict], boundary: dict | None = None) -> dict:
    entry = {"worst_case": {f"linf/eps={e:g}": r for e, r in records_by_eps.items()}, "boundary": {}}
    if boundary:
        entry["boundary"]["l2/deepfool_l2"] = {**boundary, "median_float": 1.0, "median_quantized": 1.0}
    return {str(QUANT): entry, str(PLACEBO): entry}


@pytest.mark.parametrize(
    ("quant_robust", "expected"),
    [(150, Verdict.HOLDS), (300, Verdict.FAILS), (175, Verdict.FAILS), (162, Verdict.INCONCLUSIVE)],
    ids=["same-as-float", "quantized-30-points-more-robust", "a-clear-5-point-gain", "a-2-point-gain"],
)
def test_masking_no_defense_claim(quant_robust: int, expected: Verdict) -> None:
    data = scope(pairs=pairs({0.02: worst(150, quant_robust)}))
    got, placebo = verdict_of("bernhard2019_masking", data, 0.05, 0.05)
    assert (
        got is expected if expected is not Verdict.INCONCLUSIVE else got in (Verdict.UNDERPOWERED, Verdict.INCONCLUSIVE)
    )
    assert len(placebo) == 1  # the placebo pair is judged, apart


def analysis(quant: dict, float_record: dict | None = None) -> dict:
    return {str(FLOAT_MODEL): {"float": float_record or {}, str(QUANT): quant, str(PLACEBO): quant}}


@pytest.mark.parametrize(
    ("k", "n", "key", "boundary", "expected"),
    [
        (100, 200, "bernhard2019_transfer", 0.75, Verdict.HOLDS),  # half the successes lost: poor transfer
        (196, 200, "bernhard2019_transfer", 0.75, Verdict.FAILS),  # 98% transfer
        (180, 200, "costa2024_transfer_persists", 0.5, Verdict.HOLDS),
        (40, 200, "costa2024_transfer_persists", 0.5, Verdict.FAILS),
        (6, 10, "costa2024_transfer_persists", 0.5, Verdict.UNDERPOWERED),
    ],
)
def test_retention_claims_read_one_quantity_with_their_own_boundaries(k, n, key, boundary, expected) -> None:
    data = scope(analysis=analysis({"transfer_retention/eps=0.02": {"k": k, "n": n}}))
    assert verdict_of(key, data, boundary, 0.15)[0] is expected


def test_poor_transfer_and_persisting_transfer_both_hold_at_sixty_percent_and_say_why() -> None:
    """Not opposites: 'poorly' is retention below 75%, 'persists' above 50%, and 60% is both."""
    data = scope(analysis=analysis({"transfer_retention/eps=0.02": {"k": 360, "n": 600}}))
    assert verdict_of("bernhard2019_transfer", data, 0.75, 0.15)[0] is Verdict.HOLDS
    assert verdict_of("costa2024_transfer_persists", data, 0.5, 0.15)[0] is Verdict.HOLDS


@pytest.mark.parametrize(
    ("key", "record", "boundary", "expected"),
    [
        ("lin2019_amplification", {"output_change/quantized_above_float/eps=0.02": {"k": 240, "n": 300}}, 0.5, Verdict.HOLDS),
        ("lin2019_amplification", {"output_change/quantized_above_float/eps=0.02": {"k": 150, "n": 300}}, 0.5, Verdict.FAILS),
        ("costa2024_gradients", {"grad_norm/vanish_or_explode": {"k": 200, "n": 300}}, 0.1, Verdict.HOLDS),
        ("costa2024_gradients", {"grad_norm/vanish_or_explode": {"k": 3, "n": 300}}, 0.1, Verdict.FAILS),
        ("bernhard2019_transfer_mechanism", {"transfer_success/aligned/eps=0.02": {"k": 140, "n": 150},
                                             "transfer_success/misaligned/eps=0.02": {"k": 60, "n": 150}}, 0.0, Verdict.HOLDS),
        ("bernhard2019_transfer_mechanism", {"transfer_success/aligned/eps=0.02": {"k": 100, "n": 150},
                                             "transfer_success/misaligned/eps=0.02": {"k": 101, "n": 150}}, 0.0, Verdict.FAILS),
    ],
)  # fmt: skip
def test_analysis_claims(key: str, record: dict, boundary: float, expected: Verdict) -> None:
    assert verdict_of(key, scope(analysis=analysis(record)), boundary, 0.15)[0] is expected


@pytest.mark.parametrize(
    ("quant_flips", "expected"),
    [((10, 200), Verdict.HOLDS), ((150, 60), Verdict.FAILS)],
    ids=["fewer-small-more-large", "more-small-fewer-large"],
)
def test_noise_claim_needs_both_ends(quant_flips: tuple[int, int], expected: Verdict) -> None:
    float_record = {"flip/noise/eps=0.01": {"k": 60, "n": 300}, "flip/noise/eps=0.1": {"k": 120, "n": 300}}
    quant = {
        "flip/noise/eps=0.01": {"k": quant_flips[0], "n": 300},
        "flip/noise/eps=0.1": {"k": quant_flips[1], "n": 300},
    }
    assert verdict_of("costa2024_noise", scope(analysis=analysis(quant, float_record)), 0.0, 0.05)[0] is expected


@pytest.mark.parametrize(
    ("small", "large", "expected"),
    [((300, 350), (100, 40), Verdict.HOLDS), ((300, 300), (100, 100), Verdict.FAILS)],
    ids=["up-then-down", "no-difference"],
)
def test_crossing_claim(small: tuple[int, int], large: tuple[int, int], expected: Verdict) -> None:
    data = scope(pairs=pairs({0.01: worst(*small), 0.05: worst(*large)}))
    assert verdict_of("gorsline2021_crossing", data, 0.0, 0.05)[0] is expected


@pytest.mark.parametrize(
    ("farther", "nearer", "expected"), [(150, 30, Verdict.HOLDS), (85, 85, Verdict.FAILS), (6, 3, Verdict.UNDERPOWERED)]
)
def test_boundary_distance_sign_test(farther: int, nearer: int, expected: Verdict) -> None:
    n = max(200, farther + nearer) if expected is not Verdict.UNDERPOWERED else 10
    data = scope(pairs=pairs({}, {"n": n, "farther": farther, "nearer": nearer}))
    assert verdict_of("costa2024_boundary_distance", data, 0.0, 0.2)[0] is expected
    recipe = scope(
        defenses={"trades": {"lenet-trades.q8/boundary_signs_l2": {"n": n, "farther": farther, "nearer": nearer}}}
    )
    assert verdict_of("costa2024_train_defenses_boundary", recipe, 0.0, 0.2)[0] is expected


def paired_record(difference_points: int, n: int = 500) -> dict:
    only_reference = 20
    only_other = only_reference + round(difference_points * n / 100)
    return {"difference": (only_other - only_reference) / n, "low": None, "high": None, "mcnemar_p": None,
            "n": n, "only_reference": only_reference, "only_other": only_other}  # fmt: skip


@pytest.mark.parametrize(("points", "expected"), [(10, Verdict.HOLDS), (0, Verdict.FAILS)])
def test_defensive_quantization_against_its_own_float_model(points: int, expected: Verdict) -> None:
    metrics = {f"lenet-dq.q8/vs_float/eps={e:g}": paired_record(points) for e in (0.02, 0.1)}
    assert verdict_of("lin2019_defensive_quantization", scope(defenses={"dq": metrics}), 0.0, 0.05)[0] is expected


@pytest.mark.parametrize(
    ("small", "large", "expected"), [(10, 0, Verdict.HOLDS), (10, 10, Verdict.FAILS), (0, 0, Verdict.FAILS)]
)
def test_preprocessing_works_small_fails_large(small: int, large: int, expected: Verdict) -> None:
    metrics = {
        "lenet-standard/vs_undefended/eps=0.02": paired_record(small),
        "lenet-standard/vs_undefended/eps=0.1": paired_record(large),
    }
    defended = {("blur", "lenet-standard", e): Row(500, 200) for e in (0.02, 0.1)}
    data = scope(defenses={"blur": metrics}, defended=defended)
    assert verdict_of("costa2024_preprocessing", data, 0.0, 0.05)[0] is expected


@pytest.mark.parametrize(("ensemble", "expected"), [(400, Verdict.HOLDS), (300, Verdict.FAILS)])
def test_ensemble_against_its_most_robust_member_only(ensemble: int, expected: Verdict) -> None:
    defended = {("ensemble", "lenet-standard.ensemble", e): Row(500, ensemble) for e in (0.02, 0.1)}
    # The placebo (not a member) is the most robust model here: it must not count.
    records = {str(QUANT): {"worst_case": {f"linf/eps={e:g}": worst(300, 310) for e in (0.02, 0.1)}},
               str(PLACEBO): {"worst_case": {f"linf/eps={e:g}": worst(300, 450) for e in (0.02, 0.1)}}}  # fmt: skip
    assert verdict_of("bernhard2019_ensemble", scope(pairs=records, defended=defended), 0.0, 0.05)[0] is expected


def test_missing_records_leave_every_claim_untested() -> None:
    empty = scope()
    for entry in CLAIMS:
        assert judge_claim(entry, empty, Threshold(0.0, 0.05, "test"), ALPHA).verdict is Verdict.UNTESTED


def test_holm_controls_a_family_a_lone_condition_would_pass() -> None:
    lone = Condition("one", "g", paired(5, 18, 500, 1, 0.05))  # McNemar p ~ 0.005 one-sided
    assert judge_family([lone], ALPHA)[0].verdict is Verdict.HOLDS
    noise = [Condition(f"c{i}", "g", paired(10, 10, 500, 1, 0.05)) for i in range(19)]
    judged = judge_family([lone, *noise], ALPHA)
    assert judged[0].p_holds == pytest.approx(min(1.0, 20 * lone.test.p_holds))
    assert judged[0].verdict is not Verdict.HOLDS
    assert overall(judged) is not Verdict.HOLDS


def test_holm_and_benjamini_hochberg_match_hand_computed_values() -> None:
    p = [0.01, 0.04, 0.03, 0.2]
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert benjamini_hochberg(p) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.2])


@pytest.mark.parametrize(("k", "n", "boundary"), [(59, 61, 0.75), (30, 100, 0.5), (0, 20, 0.1), (20, 20, 0.9)])
def test_binomial_tails_are_scipys_exact_test(k: int, n: int, boundary: float) -> None:
    above, below = binomial(k, n, boundary, 1, 0.05), binomial(k, n, boundary, -1, 0.05)
    assert above.p_holds == pytest.approx(binomtest(k, n, boundary, alternative="greater").pvalue)
    assert below.p_holds == pytest.approx(binomtest(k, n, boundary, alternative="less").pvalue)


def test_paired_test_is_mcnemar_at_zero_and_its_interval_covers_the_difference() -> None:
    t = paired(10, 30, 500, 1, 0.05)
    assert t.p_holds == pytest.approx(binomtest(30, 40, 0.5, alternative="greater").pvalue)
    assert t.value == pytest.approx(0.04) and t.low < t.value < t.high
    # Against a margin the score test sits near the Wald statistic at large n.
    big = paired(1000, 1600, 20000, 1, 0.01)
    d, se = 0.03, math.sqrt((2600 / 20000 - 0.03**2) / 20000)
    assert big.low == pytest.approx(d - 1.96 * se, abs=0.002) and big.high == pytest.approx(d + 1.96 * se, abs=0.002)


def test_two_sample_and_the_intersection_union_test() -> None:
    strong, weak = two_sample(80, 100, 40, 100, 1, 0.1), two_sample(45, 100, 40, 100, 1, 0.1)
    assert strong.p_holds < 0.001 < weak.p_holds
    both = combined([strong, weak], 0.1)
    assert both.p_holds == max(strong.p_holds, weak.p_holds)
    assert both.power(0.05) == pytest.approx(strong.power(0.05) * weak.power(0.05))


def test_underpowered_names_the_n_that_would_find_the_smallest_effect() -> None:
    (judged,) = judge_family([Condition("small", "g", binomial(6, 10, 0.5, 1, 0.15))], ALPHA)
    assert judged.verdict is Verdict.UNDERPOWERED
    assert judged.n_needed > 10
    at_needed = binomial(0, judged.n_needed, 0.5, 1, 0.15)
    assert at_needed.power(ALPHA) >= 0.8 > binomial(0, judged.n_needed - 20, 0.5, 1, 0.15).power(ALPHA)
