"""Every verdict rule on constructed result rows: one scene where the claim holds, one where it does not,
and one where the intervals overlap. Rates come with n = 400, so 95% Wilson intervals are about +-5 points:
rates 20 points apart separate, rates 2 points apart do not."""

from __future__ import annotations

import numpy as np
import pytest

from qrobust.attacks.threats import NORMS, ThreatModel
from qrobust.evaluation.results import Result
from qrobust.findings.claims import CLAIMS, judge
from qrobust.findings.evidence import Outcome, Scope, Verdict, decide
from qrobust.pipeline.model_id import ModelId

N = 400
FLOAT_MODEL = ModelId("lenet", "standard")
QUANT = FLOAT_MODEL.quantized("q8")
SCOPE = Scope(
    attack="pgd",
    floats=(FLOAT_MODEL,),
    quantizers=("q8",),
    defense_epsilons=(0.05, 0.1),
    preprocessors=("blur",),
    ensembles=("ensemble",),
    dq_recipe="dq",
)


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


def verdict(key: str, rows: list[Result]) -> Verdict:
    (finding,) = [f for f in judge(rows, SCOPE) if f.key == key]
    return finding.verdict


def masking_rows(exact: float, ste: float, white: float) -> list[Result]:
    return [
        row(exact, ThreatModel.WHITE_QNN_EXACT, 0.1, QUANT),
        row(ste, ThreatModel.WHITE_QNN_STE, 0.1, QUANT),
        row(white, ThreatModel.WHITE_FLOAT, 0.1, FLOAT_MODEL),
    ]


@pytest.mark.parametrize(
    ("exact", "ste", "white", "expected"),
    [
        (0.8, 0.1, 0.1, Verdict.HOLDS),  # exact far above straight-through; quantized no more robust than float
        (0.5, 0.5, 0.1, Verdict.FAILS),  # no masking, and the quantized model is truly more robust
        (0.52, 0.5, 0.49, Verdict.INCONCLUSIVE),  # nothing separates
    ],
)
def test_masking_claim(exact: float, ste: float, white: float, expected: Verdict) -> None:
    assert verdict("bernhard2019_masking", masking_rows(exact, ste, white)) is expected


def test_masking_claim_judges_robustness_on_the_worst_case_where_there_is_one() -> None:
    """PGD alone makes the quantized model look more robust; the per-sample worst case shows it is not."""
    rows = masking_rows(0.5, 0.5, 0.1)
    assert verdict("bernhard2019_masking", rows) is Verdict.FAILS
    worst = [row(0.1, ThreatModel.WORST_CASE, 0.1, m, attack="worst_case") for m in (FLOAT_MODEL, QUANT)]
    (finding,) = [f for f in judge(rows + worst, SCOPE) if f.key == "bernhard2019_masking"]
    assert finding.verdict is Verdict.INCONCLUSIVE
    assert any("(worst case and pgd)" in str(e) for e in finding.evidence)


@pytest.mark.parametrize(
    ("worst_float", "worst_quant", "expected"),
    [
        (0.1, 0.5, Verdict.INCONCLUSIVE),  # only the worst cases separate: an attack only the float model had
        (0.5, 0.1, Verdict.HOLDS),  # the worst case shows the quantized model no more robust
    ],
)
def test_a_defense_must_show_in_the_worst_case_and_under_the_same_attack(
    worst_float: float, worst_quant: float, expected: Verdict
) -> None:
    """The float model's worst case can hold attacks its quantized model never met (in the default study
    BIM, MI-FGSM and Linf DeepFool run on float models only): quantized above float there, with the same
    attack level, is no defense."""
    rows = masking_rows(0.5, 0.5, 0.5)  # no masking; the same robust accuracy under the same attack
    worst = [
        row(worst_float, ThreatModel.WORST_CASE, 0.1, FLOAT_MODEL, attack="worst_case"),
        row(worst_quant, ThreatModel.WORST_CASE, 0.1, QUANT, attack="worst_case"),
    ]
    (finding,) = [f for f in judge(rows + worst, SCOPE) if f.key == "bernhard2019_masking"]
    assert finding.verdict is expected


def test_a_defense_that_shows_in_the_worst_case_and_under_the_same_attack_contradicts_the_claim() -> None:
    rows = masking_rows(0.5, 0.5, 0.1)
    worst = [
        row(0.1, ThreatModel.WORST_CASE, 0.1, FLOAT_MODEL, attack="worst_case"),
        row(0.5, ThreatModel.WORST_CASE, 0.1, QUANT, attack="worst_case"),
    ]
    assert verdict("bernhard2019_masking", rows + worst) is Verdict.FAILS


@pytest.mark.parametrize(
    ("moved", "white", "expected"),
    [(0.6, 0.1, Verdict.HOLDS), (0.1, 0.4, Verdict.FAILS), (0.12, 0.1, Verdict.INCONCLUSIVE)],
)
def test_transfer_claim(moved: float, white: float, expected: Verdict) -> None:
    rows = [
        row(moved, ThreatModel.TRANSFER, 0.1, QUANT, source=FLOAT_MODEL),
        row(white, ThreatModel.WHITE_FLOAT, 0.1, FLOAT_MODEL),
    ]
    assert verdict("bernhard2019_transfer", rows) is expected


@pytest.mark.parametrize(
    ("ensemble", "members", "expected"),
    [(0.6, (0.2, 0.3), Verdict.HOLDS), (0.1, (0.2, 0.4), Verdict.FAILS), (0.31, (0.2, 0.3), Verdict.INCONCLUSIVE)],
)
def test_ensemble_claim(ensemble: float, members: tuple[float, float], expected: Verdict) -> None:
    target = FLOAT_MODEL.quantized("ensemble")
    rows = [
        # The verdict reads the worst case, never the adaptive set's own (here flattering) row.
        row(ensemble, ThreatModel.WORST_CASE, 0.1, target, attack="worst_case", defense="ensemble", adaptive=True),
        row(0.95, ThreatModel.WHITE_QNN_STE, 0.1, target, defense="ensemble", adaptive=True),
        row(members[0], ThreatModel.WHITE_FLOAT, 0.1, FLOAT_MODEL),
        row(members[1], ThreatModel.WHITE_QNN_STE, 0.1, QUANT),
    ]
    assert verdict("bernhard2019_ensemble", rows) is expected


@pytest.mark.parametrize(
    ("quant", "floats", "expected"),
    [
        ((0.9, 0.1), (0.6, 0.4), Verdict.HOLDS),  # above at small epsilon, below at large: the curves cross
        ((0.9, 0.6), (0.6, 0.3), Verdict.FAILS),  # above at every epsilon
        ((0.61, 0.3), (0.6, 0.3), Verdict.INCONCLUSIVE),
    ],
)
def test_crossing_claim(quant: tuple[float, float], floats: tuple[float, float], expected: Verdict) -> None:
    rows = []
    for eps, q, f in zip((0.02, 0.1), quant, floats, strict=True):
        rows += [row(q, ThreatModel.WHITE_QNN_STE, eps, QUANT), row(f, ThreatModel.WHITE_FLOAT, eps, FLOAT_MODEL)]
    assert verdict("gorsline2021_crossing", rows) is expected


@pytest.mark.parametrize(
    ("dq", "standard", "clean", "expected"),
    [
        (0.5, 0.1, (0.9, 0.9), Verdict.HOLDS),  # more robust, clean accuracy kept
        (0.05, 0.3, (0.9, 0.9), Verdict.FAILS),
        (0.11, 0.1, (0.9, 0.9), Verdict.INCONCLUSIVE),
        (0.5, 0.1, (0.6, 0.9), Verdict.INCONCLUSIVE),  # more robust, but clean accuracy drops: mixed
    ],
)
def test_defensive_quantization_claim(
    dq: float, standard: float, clean: tuple[float, float], expected: Verdict
) -> None:
    target = ModelId("lenet", "dq", "q8")
    rows = [
        row(dq, ThreatModel.WORST_CASE, 0.1, target, attack="worst_case", defense="dq", adaptive=True),
        row(0.95, ThreatModel.WHITE_QNN_STE, 0.1, target, defense="dq", adaptive=True),
        row(standard, ThreatModel.WHITE_QNN_STE, 0.1, QUANT),
        row(clean[0], ThreatModel.CLEAN, 0.0, target, attack="none", defense="dq"),
        row(clean[1], ThreatModel.CLEAN, 0.0, QUANT, attack="none"),
    ]
    assert verdict("lin2019_defensive_quantization", rows) is expected


@pytest.mark.parametrize(
    ("defended", "bare", "expected"),
    [
        ((0.7, 0.05), (0.3, 0.04), Verdict.HOLDS),  # helps at small epsilon, nothing left at large
        ((0.7, 0.5), (0.3, 0.04), Verdict.FAILS),  # still helps at large epsilon
        ((0.31, 0.05), (0.3, 0.04), Verdict.INCONCLUSIVE),  # no separated gain anywhere
    ],
)
def test_preprocessing_claim(defended: tuple[float, float], bare: tuple[float, float], expected: Verdict) -> None:
    rows = []
    for eps, d, b in zip(SCOPE.defense_epsilons, defended, bare, strict=True):
        rows += [
            row(d, ThreatModel.WORST_CASE, eps, FLOAT_MODEL, attack="worst_case", defense="blur", adaptive=True),
            row(0.95, ThreatModel.WHITE_FLOAT, eps, FLOAT_MODEL, defense="blur", adaptive=True),
            row(b, ThreatModel.WHITE_FLOAT, eps, FLOAT_MODEL),
        ]
    assert verdict("costa2024_preprocessing", rows) is expected


def test_missing_rows_leave_every_claim_inconclusive_with_no_checks() -> None:
    findings = judge([], SCOPE)
    assert [f.key for f in findings] == [c.key for c in CLAIMS]
    assert all(f.verdict is Verdict.INCONCLUSIVE and not f.evidence for f in findings)


def test_mixed_evidence_is_inconclusive_and_records_carry_the_numbers() -> None:
    other = FLOAT_MODEL.quantized("q4")
    scope = Scope(**{**SCOPE.__dict__, "quantizers": ("q8", "q4")})
    rows = [
        *masking_rows(0.8, 0.1, 0.1),  # q8: masking
        row(0.1, ThreatModel.WHITE_QNN_EXACT, 0.1, other),  # q4: straight-through far above exact
        row(0.8, ThreatModel.WHITE_QNN_STE, 0.1, other),
    ]
    (finding,) = [f for f in judge(rows, scope) if f.key == "bernhard2019_masking"]
    assert finding.verdict is Verdict.INCONCLUSIVE
    record = finding.record()
    assert record["supporting"] >= 1 and record["contradicting"] >= 1
    assert any("exact 80.0% [" in e and "n=400" in e for e in record["evidence"])
    assert record["rule"].endswith("checks separate both ways")
    assert decide([]) is Verdict.INCONCLUSIVE and Outcome.UNDECIDED.value == "undecided"


def analysed(float_record: dict, quant_record: dict) -> Scope:
    return Scope(
        **{**SCOPE.__dict__, "analysis": {str(FLOAT_MODEL): {"float": float_record, str(QUANT): quant_record}}}
    )


def count(rate: float, n: int = N) -> dict:
    return {"rate": rate, "k": round(rate * n), "n": n}


@pytest.mark.parametrize(
    ("shift", "aligned", "misaligned", "expected"),
    [
        (0.8, 0.6, 0.2, Verdict.HOLDS),  # adversarial examples shift more bins; transfer follows agreement
        (0.2, 0.2, 0.6, Verdict.FAILS),
        (0.52, 0.4, 0.38, Verdict.INCONCLUSIVE),
    ],
)
def test_transfer_mechanism_claim(shift: float, aligned: float, misaligned: float, expected: Verdict) -> None:
    record = {
        "bin_shift/adversarial_above_noise/eps=0.1": count(shift),
        "transfer_success/aligned/eps=0.1": count(aligned, 200),
        "transfer_success/misaligned/eps=0.1": count(misaligned, 200),
    }
    (finding,) = [f for f in judge([], analysed({}, record)) if f.key == "bernhard2019_transfer_mechanism"]
    assert finding.verdict is expected


@pytest.mark.parametrize(
    ("quant", "float_", "expected"),
    [(1.0, 0.0, Verdict.HOLDS), (0.0, 0.3, Verdict.FAILS), (0.01, 0.0, Verdict.INCONCLUSIVE)],
)
def test_vanishing_gradient_claim(quant: float, float_: float, expected: Verdict) -> None:
    scope = analysed({"zero_gradient": count(float_)}, {"zero_gradient/exact": count(quant)})
    (finding,) = [f for f in judge([], scope) if f.key == "costa2024_vanishing_gradients"]
    assert finding.verdict is expected


@pytest.mark.parametrize(
    ("quant", "float_", "expected"),
    [
        ((0.0, 0.6), (0.2, 0.3), Verdict.HOLDS),  # fewer flips under small noise, more under large
        ((0.3, 0.6), (0.1, 0.3), Verdict.FAILS),  # more flips under small noise too
        ((0.1, 0.31), (0.1, 0.3), Verdict.INCONCLUSIVE),
    ],
)
def test_noise_claim(quant: tuple[float, float], float_: tuple[float, float], expected: Verdict) -> None:
    tags = ("eps=0.02", "eps=0.3")
    scope = analysed(
        {f"flip/noise/{t}": count(v) for t, v in zip(tags, float_, strict=True)},
        {f"flip/noise/{t}": count(v) for t, v in zip(tags, quant, strict=True)},
    )
    (finding,) = [f for f in judge([], scope) if f.key == "costa2024_noise"]
    assert finding.verdict is expected


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(0.2, 0.9, Verdict.HOLDS), (-0.9, -0.1, Verdict.FAILS), (-0.3, 0.4, Verdict.INCONCLUSIVE)],
)
def test_boundary_distance_claim(low: float, high: float, expected: Verdict) -> None:
    gap = {"difference": (low + high) / 2, "low": low, "high": high, "n_a": 50, "n_b": 48}
    (finding,) = [
        f for f in judge([], analysed({}, {"boundary_distance_l2": gap})) if f.key == "costa2024_boundary_distance"
    ]
    assert finding.verdict is expected
    assert expected is Verdict.INCONCLUSIVE or "n=48/50" in finding.record()["evidence"][0]


@pytest.mark.parametrize(
    ("share", "expected"),
    [(0.8, Verdict.HOLDS), (0.2, Verdict.FAILS), (0.52, Verdict.INCONCLUSIVE)],
)
def test_amplification_claim(share: float, expected: Verdict) -> None:
    scope = analysed({}, {"output_change/quantized_above_float/eps=0.1": count(share)})
    (finding,) = [f for f in judge([], scope) if f.key == "lin2019_amplification"]
    assert finding.verdict is expected and len(finding.evidence) == 1


def recipes_scope(metrics: dict) -> Scope:
    return Scope(**{**SCOPE.__dict__, "recipes": {"trades": metrics}})


@pytest.mark.parametrize(
    ("float_gap", "quant_gap", "expected"),
    [
        ((0.1, 0.5), (0.05, 0.3), Verdict.HOLDS),  # farther from the boundary, and still after quantization
        ((0.1, 0.5), (-0.4, -0.1), Verdict.INCONCLUSIVE),  # raised in float, lost after quantization: both ways
        ((-0.5, -0.1), (-0.4, -0.1), Verdict.FAILS),
        ((-0.1, 0.2), (-0.2, 0.1), Verdict.INCONCLUSIVE),
    ],
)
def test_train_defenses_boundary_claim(float_gap: tuple, quant_gap: tuple, expected: Verdict) -> None:
    gap = lambda low, high: {"difference": (low + high) / 2, "low": low, "high": high, "n_a": 90, "n_b": 80}  # noqa: E731
    metrics = {
        "lenet-trades/boundary_distance_l2": gap(*float_gap),
        "lenet-trades.q8/boundary_distance_l2": gap(*quant_gap),
        "lenet-trades/clean": 0.8,  # other metrics are not read
    }
    (finding,) = [f for f in judge([], recipes_scope(metrics)) if f.key == "costa2024_train_defenses_boundary"]
    assert finding.verdict is expected and len(finding.evidence) == 2
    assert "trades minus standard" in finding.record()["evidence"][0]


@pytest.mark.parametrize(
    ("standard", "defended", "expected"),
    [
        (0.9, 0.8, Verdict.HOLDS),  # most float successes still fool the quantized models
        (0.9, 0.2, Verdict.INCONCLUSIVE),  # the defended model's do not: checks both ways
        (0.1, 0.2, Verdict.FAILS),
        (0.52, 0.5, Verdict.INCONCLUSIVE),
    ],
)
def test_transfer_persists_claim(standard: float, defended: float, expected: Verdict) -> None:
    scope = Scope(
        **{
            **analysed({}, {"transfer_retention/eps=0.1": count(standard)}).__dict__,
            "recipes": {"trades": {"lenet-trades.q8/transfer_retention/eps=0.1": count(defended)}},
        }
    )
    (finding,) = [f for f in judge([], scope) if f.key == "costa2024_transfer_persists"]
    assert finding.verdict is expected
    assert {e.label.split()[0] for e in finding.evidence} == {str(QUANT), "lenet-trades.q8"}


def test_crossing_names_the_epsilons_where_each_curve_is_above() -> None:
    rows = [
        row(0.8, ThreatModel.WHITE_QNN_STE, 0.02, QUANT),
        row(0.5, ThreatModel.WHITE_FLOAT, 0.02, FLOAT_MODEL),
        row(0.1, ThreatModel.WHITE_QNN_STE, 0.1, QUANT),
        row(0.4, ThreatModel.WHITE_FLOAT, 0.1, FLOAT_MODEL),
    ]
    (finding,) = [f for f in judge(rows, SCOPE) if f.key == "gorsline2021_crossing"]
    assert "quantized above at eps [0.02], float above at eps [0.1]" in finding.evidence[0].label
