"""Training seeds as the unit of replication: model ids and settings, the between-seed variance in the
verdicts (calibrated under a null where seeds disagree) and in the headline's spread."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from qrobust.attacks.threats import ThreatModel
from qrobust.findings.evidence import Condition, Verdict, judge_family, pool_seeds
from qrobust.findings.headline import headlines, seed_spread
from qrobust.findings.replicates import across_seeds, between_seeds
from qrobust.findings.tests import binomial
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.model_id import ModelId
from qrobust.pipeline.params import load_params
from qrobust.report.model_tables import headline_table
from qrobust.settings.study import Study
from tests.conftest import ROOT
from tests.test_findings import row

BOUNDARY, DELTA, N = 0.5, 0.15, 500


@pytest.fixture
def params() -> dict:
    return load_params(ROOT / "params.yaml")


def test_a_replicate_carries_its_seed_through_its_id() -> None:
    model = ModelId.parse("lenet-standard-s1.ort_int8")
    assert (model.arch, model.recipe, model.quantizer, model.seed) == ("lenet", "standard", "ort_int8", 1)
    assert str(model) == "lenet-standard-s1.ort_int8" and str(model.parent) == "lenet-standard-s1"
    assert model.unseeded == ModelId.parse("lenet-standard.ort_int8")
    assert ModelId.parse("lenet-standard").seed is None
    with pytest.raises(ConfigError, match=r"<arch>-<recipe>\[-s<seed>\]"):
        ModelId.parse("lenet-standard-x1")


def test_replicates_are_models_of_their_own_quantized_by_their_subset(params: dict) -> None:
    params = copy.deepcopy(params)
    params["train"].update(seeds=[1, 2], seed_archs=["lenet"])
    params["quantize"]["replicate_quantizers"] = ["ort_int8"]
    study = Study.from_params(params)
    replicates = [m for m in study.models() if m.seed is not None]
    assert [str(m) for m in replicates] == [
        "lenet-standard-s1",
        "lenet-standard-s1.ort_int8",
        "lenet-standard-s2",
        "lenet-standard-s2.ort_int8",
    ]
    assert study.primary_models() == tuple(m for m in study.models() if m.seed is None)
    assert study.train.seed_of(ModelId.parse("lenet-standard-s2")) == 2
    assert study.train.seed_of(ModelId.parse("lenet-standard")) == params["seed"]


def test_a_replicate_is_attacked_on_at_most_the_replicate_samples_and_the_study_seed_on_all(params: dict) -> None:
    params = copy.deepcopy(params)
    params["attack"]["replicate_samples"] = 150
    params["attack"]["attacks"]["linf_pgd"]["samples"] = {
        "white_float": 500,
        "white_qnn_exact": 100,
        "white_qnn_ste": 500,
    }
    settings = Study.from_params(params).attack
    pgd = settings.get("linf_pgd")
    primary, replicate = ModelId.parse("resnet8-standard.ort_int8"), ModelId.parse("resnet8-standard-s2.ort_int8")
    on = {t: (settings.samples_on(pgd, t, primary), settings.samples_on(pgd, t, replicate)) for t in pgd.threat_models}
    assert on == {
        ThreatModel.WHITE_FLOAT: (500, 150),
        ThreatModel.WHITE_QNN_EXACT: (100, 100),
        ThreatModel.WHITE_QNN_STE: (500, 150),
    }
    del params["attack"]["replicate_samples"]  # absent: every model on all of them
    uncapped = Study.from_params(params).attack
    assert uncapped.samples_on(pgd, ThreatModel.WHITE_FLOAT, replicate) == 500


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda p: p["train"].update(seeds=[0, 1]),
            r"train.seeds: \[0, 1\] must be distinct and differ from the study's seed 0",
        ),
        (lambda p: p["train"].update(seeds=[1, 1]), "must be distinct"),
        (
            lambda p: p["train"].update(seeds=[1], seed_archs=["vgg"]),
            "train.seed_archs: unknown name 'vgg'; valid names",
        ),
        (lambda p: p["train"].update(seeds=[-1]), r"train.seeds: expected an integer >= 0, got -1"),
        (
            lambda p: p["quantize"].update(replicate_quantizers=["inc_w8"]),
            "quantize.replicate_quantizers: unknown name 'inc_w8'; valid names",
        ),
        (
            lambda p: p["attack"].update(replicate_samples=0),
            "attack.replicate_samples: expected a positive integer, got 0",
        ),
    ],
)
def test_bad_seeds_name_the_key_and_what_is_allowed(params: dict, change, expected: str) -> None:
    params = copy.deepcopy(params)
    change(params)
    with pytest.raises(ConfigError, match=expected):
        Study.from_params(params)


def share_condition(label: str, seed: int | None, share: float, n: int = N) -> Condition:
    test = binomial(round(share * n), n, BOUNDARY, 1, DELTA)
    return Condition(label, "w8a8", test, seed=seed)


def test_seeds_that_agree_hold_and_seeds_that_disagree_do_not() -> None:
    agree = pool_seeds([share_condition("q8", s, v) for s, v in ((None, 0.70), (1, 0.72), (2, 0.71))], DELTA)
    (pooled,) = agree
    assert pooled.seeds == 3 and pooled.test.effect == pytest.approx(0.21, abs=1e-3)
    assert judge_family(agree, 0.05)[0].verdict is Verdict.HOLDS
    # The study's seed alone (75%) holds by far; with two more seeds at 45% and 60% the mean effect (+10
    # points) is not told apart from training randomness.
    alone = share_condition("q8", None, 0.75)
    assert judge_family([alone], 0.05)[0].verdict is Verdict.HOLDS
    disagree = pool_seeds([alone, share_condition("q8", 1, 0.45), share_condition("q8", 2, 0.60)], DELTA)
    assert judge_family(disagree, 0.05)[0].verdict is not Verdict.HOLDS
    assert disagree[0].test.low < 0 < disagree[0].test.high
    assert "between-seed sd 15.0 points" in disagree[0].detail[-1]


def test_a_condition_at_one_seed_borrows_its_claims_between_seed_variance() -> None:
    family = [
        *(share_condition("lenet q8", s, v) for s, v in ((None, 0.75), (1, 0.55), (2, 0.65))),
        share_condition("resnet q8", None, 0.65),
    ]
    pooled = {c.label: c for c in pool_seeds(family, DELTA)}
    exact = binomial(round(0.65 * N), N, BOUNDARY, 1, DELTA)
    borrowed = pooled["resnet q8"]
    assert borrowed.seeds == 1 and "borrows" in borrowed.detail[-1]
    assert borrowed.test.high - borrowed.test.low > 2 * (exact.high - exact.low)
    # Nothing replicated in a family: its exact tests stand unchanged, one per label.
    assert pool_seeds([share_condition("resnet q8", None, 0.65)], DELTA)[0].test == exact
    empty = Condition("placebo", "g", binomial(0, 0, BOUNDARY, 1, DELTA), seed=1)
    (kept,) = pool_seeds([share_condition("placebo", None, 0.65), empty], DELTA)
    assert kept.test == exact and kept.seed is None


def test_the_between_seed_variance_keeps_false_holds_at_the_level_where_one_seed_does_not() -> None:
    """A null world: each seed's model has its own true share, centred on the boundary with a between-seed
    sd of 8 points; 4 conditions per family, 3 seeds each. Holm over the family at 5%."""
    rng = np.random.default_rng(0)
    trials, pooled_holds, single_holds = 400, 0, 0
    for _ in range(trials):
        conditions = []
        for label in ("a", "b", "c", "d"):
            shares = np.clip(BOUNDARY + rng.normal(0, 0.08, 3), 0, 1)
            counts = rng.binomial(N, shares)
            conditions += [
                Condition(label, "g", binomial(int(k), N, BOUNDARY, 1, DELTA), seed=s)
                for s, k in zip((None, 1, 2), counts, strict=True)
            ]
        pooled = judge_family(pool_seeds(conditions, DELTA), 0.05)
        single = judge_family([c for c in conditions if c.seed is None], 0.05)
        pooled_holds += any(j.verdict is Verdict.HOLDS for j in pooled)
        single_holds += any(j.verdict is Verdict.HOLDS for j in single)
    assert pooled_holds / trials <= 0.06  # the level (4 conditions, Holm): at most 5%, with simulation error
    assert single_holds / trials > 0.3  # the study's seed alone mistakes training randomness for an effect


def test_parts_pool_part_by_part() -> None:
    from qrobust.findings.tests import combined

    def part(share: float) -> object:
        return binomial(round(share * N), N, BOUNDARY, 1, DELTA)

    tests = [combined([part(a), part(b)], DELTA) for a, b in ((0.70, 0.60), (0.72, 0.62), (0.68, 0.64))]
    between = between_seeds([tests])
    assert between.df == 4  # two parts, three seeds each
    merged = across_seeds(tests, between, DELTA)
    assert len(merged.parts) == 2 and merged.effect == pytest.approx(min(p.effect for p in merged.parts))


def test_the_headline_gives_each_replicated_models_spread_across_seeds() -> None:
    base = ModelId("lenet", "standard")
    rows = []
    for seed, robust in ((None, 0.40), (1, 0.30), (2, 0.35)):
        model = ModelId("lenet", "standard", None, seed)
        rows += [row(0.9, ThreatModel.CLEAN, 0.0, model), row(robust, ThreatModel.WORST_CASE, 0.02, model)]
    spread = seed_spread(headlines(rows, "linf", 0.02))[str(base)]
    assert spread.values == pytest.approx((0.40, 0.30, 0.35)) and spread.mean == pytest.approx(0.35)
    assert spread.sd == pytest.approx(0.05) and spread.low < 0.30 and spread.high > 0.40
    table = headline_table(rows, "linf", 0.02)
    assert len(table.rows) == 1  # one row per architecture: the replicates are not models of the grid
    assert "across 3 seeds 40.0% / 30.0% / 35.0%: mean 35.0%" in table.rows[0][1]


def test_each_arch_pools_its_own_between_seed_variance_and_an_arch_without_replicates_borrows_the_claims() -> None:
    def at(unit: str, seed: int | None, share: float) -> Condition:
        return Condition(f"{unit} q8", "w8a8", binomial(round(share * N), N, BOUNDARY, 1, DELTA), seed=seed, unit=unit)

    family = [
        *(at("lenet", s, v) for s, v in ((None, 0.70), (1, 0.71), (2, 0.69))),  # seeds agree
        *(at("resnet8", s, v) for s, v in ((None, 0.75), (1, 0.55), (2, 0.65))),  # seeds disagree
        at("dscnn", None, 0.70),
    ]
    pooled = {c.label: c for c in pool_seeds(family, DELTA)}
    width = {label: c.test.high - c.test.low for label, c in pooled.items()}
    assert width["resnet8 q8"] > 2 * width["lenet q8"]  # ResNet-8's seeds do not lend LeNet their spread
    assert "pooled over its arch" in pooled["lenet q8"].detail[-1]
    assert "its arch has no replicates" in pooled["dscnn q8"].detail[-1]
    assert width["dscnn q8"] > width["lenet q8"]  # borrowed from both archs, at one seed
