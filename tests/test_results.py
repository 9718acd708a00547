import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import pytest

from qrobust.attacks.runner import perturbation_norms
from qrobust.attacks.sets import AdversarialSet
from qrobust.attacks.threats import NORMS, ThreatModel
from qrobust.evaluation.results import Result, paired_difference, read_results, wilson_interval, write_results
from qrobust.evaluation.scoring import (
    Distinct,
    Target,
    clean_row,
    cross_evaluate,
    flat_metrics,
    paired,
    predict_distinct,
    set_rows,
)
from qrobust.findings.claims import judge
from qrobust.findings.evidence import Scope
from qrobust.findings.masking import CHECKS
from qrobust.pipeline.model_id import ModelId
from qrobust.pipeline.params import load_params
from qrobust.report.figures import plot_rows
from qrobust.report.page import DefenseResults, build_report, render_html, render_markdown
from qrobust.settings.study import Study
from tests.conftest import ROOT


def test_wilson_interval_matches_known_values() -> None:
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_success_counts_only_attackable_samples() -> None:
    # A transfer row: sample 3 the target got right clean but the source did not (not attackable);
    # sample 2 the target got wrong clean, and the perturbation fixed it (not robust).
    correct = np.array([True, False, True, True, False])
    clean = np.array([True, True, False, True, True])
    attackable = np.array([True, True, False, False, True])
    norms = np.array([0.1, 0.2, 0.3, 0.4, 0.5], dtype=np.float32)
    row = Result.score(
        correct=correct,
        clean=clean,
        attackable=attackable,
        sizes={norm: norms for norm in NORMS},
        attack="a",
        norm="linf",
        epsilon=0.1,
        threat_model="transfer",
        source_threat_model="white_float",
        source="s",
        target="t",
        target_arch="x",
        target_precision="float",
        defense="none",
    )
    assert (row.n, row.n_correct, row.n_attackable, row.n_success) == (5, 2, 3, 2)
    assert row.success_rate == pytest.approx(2 / 3) and row.robust_accuracy == pytest.approx(0.4)
    assert row.linf_mean_success == pytest.approx(0.35) and row.linf_mean_failed == pytest.approx(0.1)
    assert row.l2_median_success == pytest.approx(0.35) and row.l0_median_failed == pytest.approx(0.1)
    assert math.isnan(row.queries_per_sample)


@pytest.mark.parametrize("seed", range(5))
def test_robust_accuracy_never_exceeds_clean_accuracy_on_the_same_samples(seed: int) -> None:
    """The standard definition: a perturbation that fixes a misclassified input does not count."""
    rng = np.random.default_rng(seed)
    clean, correct = rng.random(50) < 0.7, rng.random(50) < 0.6
    row = Result.score(
        correct=correct, clean=clean, attackable=clean, sizes={norm: np.zeros(50) for norm in NORMS},
        attack="a", norm="linf", epsilon=0.1, threat_model="white_float", source_threat_model="white_float",
        source="s", target="s", target_arch="x", target_precision="float", defense="none",
    )  # fmt: skip
    assert row.n_correct == int((clean & correct).sum()) and row.robust_accuracy <= clean.mean()


@pytest.mark.parametrize(("found", "expected"), [(5, 0.3), (3, 0.3), (2, math.inf)])
def test_boundary_distance_is_censored_by_the_failures(found: int, expected: float) -> None:
    """A sample the minimisation attack found nothing for lies beyond every distance it tried: the
    median over all attackable samples, not over the successes (0.2 with three found: closer)."""
    sizes = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 9.0], dtype=np.float32)
    attackable = np.array([True] * 5 + [False])  # the last sample was wrong clean: not counted
    correct = ~attackable | (np.arange(6) >= found)  # the first ``found`` samples were fooled
    keys = dict(
        attack="deepfool_l2", norm="l2", threat_model="white_float", source_threat_model="white_float",
        source="lenet-standard", target="lenet-standard", target_arch="lenet", target_precision="float",
        defense="none",
    )  # fmt: skip
    row = Result.score(
        correct=correct, clean=attackable, attackable=attackable, sizes={k: sizes for k in NORMS},
        epsilon=math.inf, **keys,
    )  # fmt: skip
    assert row.median_distance_censored == pytest.approx(expected)
    assert row.l2_median_success == pytest.approx(np.median(sizes[:found]))
    metrics = flat_metrics([row])
    assert metrics["boundary_found/l2/deepfool_l2/lenet-standard"] == pytest.approx(found / 5)
    assert metrics["boundary_distance/l2/deepfool_l2/lenet-standard"] == pytest.approx(expected)
    bounded = Result.score(
        correct=correct, clean=attackable, attackable=attackable, sizes={k: sizes for k in NORMS}, epsilon=0.5, **keys
    )
    assert math.isnan(bounded.median_distance_censored)


def test_paired_difference_interval_and_mcnemar() -> None:
    from scipy.stats import binomtest

    rng = np.random.default_rng(0)
    same = rng.random(200) < 0.6
    assert paired_difference(same, same) == {"difference": 0.0, "low": pytest.approx(0.0, abs=0.02),
                                              "high": pytest.approx(0.0, abs=0.02), "mcnemar_p": 1.0,
                                              "n": 200, "only_reference": 0, "only_other": 0}  # fmt: skip
    for n, flip in ((30, 0.2), (200, 0.1), (2000, 0.05)):
        reference = rng.random(n) < 0.7
        other = reference & (rng.random(n) > flip)  # the other system loses some samples
        other[: n // 50] = True
        result = paired_difference(reference, other)
        f, g = int((reference & ~other).sum()), int((~reference & other).sum())
        assert result["difference"] == pytest.approx(other.mean() - reference.mean())
        assert -1 <= result["low"] <= result["difference"] <= result["high"] <= 1
        assert result["mcnemar_p"] == pytest.approx(binomtest(f, f + g, 0.5).pvalue)
        assert (result["n"], result["only_reference"], result["only_other"]) == (n, f, g)
        if n == 2000:  # large samples: close to the Wald interval of paired proportions
            d = result["difference"]
            se = math.sqrt((f + g) / n - d**2) / math.sqrt(n)
            assert (result["low"], result["high"]) == pytest.approx((d - 1.96 * se, d + 1.96 * se), abs=0.004)


@dataclass(frozen=True)
class ThresholdRuntime:
    """A real (if tiny) classifier: the class is the brightest of ten image rows."""

    shift: int = 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        rows = x.reshape(len(x), 10, -1).mean(-1)
        return (rows.argmax(1) + self.shift) % 10


def _scene():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 40)
    x = rng.uniform(0, 0.2, (40, 1, 10, 10)).astype(np.float32)
    x[np.arange(40), 0, y, :] = 0.9
    adv = x.copy()
    adv[np.arange(20), 0, (y[:20] + 1) % 10, :] = 1.0  # half the samples pushed to the next class
    adv = np.stack([x, adv])
    index = np.arange(40)
    targets = [Target(ModelId("toy", "m"), ThresholdRuntime()), Target(ModelId("toy", "m", "q"), ThresholdRuntime(1))]
    sizes = perturbation_norms(adv, x)
    sets = [
        AdversarialSet(
            "push", "linf", ThreatModel.WHITE_FLOAT, ModelId("toy", "m"), index, y, (0.01, 0.5), adv, sizes, math.nan
        ),
        AdversarialSet(
            "push",
            "linf",
            ThreatModel.BLACK_RUNTIME,
            ModelId("toy", "m", "q"),
            index[:10],
            y[:10],
            (0.5,),
            adv[1:, :10],
            {k: v[1:, :10] for k, v in sizes.items()},
            120.0,
        ),
    ]
    return targets, sets, x, y


def _comparable(row: Result) -> dict:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(row).items()}


def test_cross_evaluation_scores_every_set_on_every_target(tmp_path) -> None:
    targets, sets, x, y = _scene()
    rows, worst = cross_evaluate(targets, sets, x, y)
    # clean: 2 targets; sets: (2 + 1 epsilons) x 2 targets; worst case: 2 epsilons x 2 targets
    assert len(rows) == 2 + 3 * 2 + 2 * 2
    for r in (r for r in rows if r.threat_model == "worst_case"):
        same = [s for s in rows if (s.target, s.epsilon) == (r.target, r.epsilon) and s.threat_model != "worst_case"]
        clean = next(s for s in rows if s.target == r.target and s.threat_model == "clean")
        # Robust only where every set left the sample correct: at most each set's count plus what it did not cover.
        assert r.n_correct <= min(s.n_correct + r.n - s.n for s in same) and r.robust_accuracy <= clean.robust_accuracy
    assert set(worst.attribution()) == {f"{t}/linf/eps={e:g}" for t in ("toy-m", "toy-m.q") for e in (0.01, 0.5)}
    assert {r.defense for r in rows} == {"none"} and not any(r.adaptive for r in rows)
    index = {(r.source, r.threat_model, r.epsilon, r.target, r.defense): r for r in rows}
    assert index[("toy-m", "clean", 0.0, "toy-m", "none")].robust_accuracy == 1.0
    assert index[("toy-m.q", "clean", 0.0, "toy-m.q", "none")].robust_accuracy == 0.0  # shifted labels: always wrong
    assert index[("toy-m", "white_float", 0.01, "toy-m", "none")].robust_accuracy == 1.0
    white = index[("toy-m", "white_float", 0.5, "toy-m", "none")]
    assert white.robust_accuracy == pytest.approx(0.5) and white.success_rate == pytest.approx(0.5)
    assert white.n_attackable == 40 and white.source_threat_model == "white_float"
    # Transfer counts only samples both models got right: m.q gets none right.
    transfer = index[("toy-m", "transfer", 0.5, "toy-m.q", "none")]
    assert transfer.n_attackable == 0 and transfer.source_threat_model == "white_float" and transfer.target == "toy-m.q"
    black = index[("toy-m.q", "black_runtime", 0.5, "toy-m.q", "none")]
    assert black.n == 10 and black.queries_per_sample == 120.0
    back = index[("toy-m.q", "transfer", 0.5, "toy-m", "none")]
    assert back.source_threat_model == "black_runtime" and math.isnan(back.queries_per_sample)
    # A quantized target's rows are paired with its float parent on the same set and samples.
    clean_q = index[("toy-m.q", "clean", 0.0, "toy-m.q", "none")]
    assert clean_q.paired_reference == "toy-m" and clean_q.paired_difference == -1.0
    assert clean_q.paired_low >= -1.0 and clean_q.paired_high < 0 and clean_q.paired_mcnemar_p < 1e-10
    assert transfer.paired_reference == "toy-m" and transfer.paired_difference == pytest.approx(-0.5)
    assert white.paired_reference == "" and math.isnan(white.paired_difference)
    # Wilson's 95% interval for 20 of 40: 0.5 -+ 0.148.
    assert (white.robust_accuracy_low, white.robust_accuracy_high) == pytest.approx((0.352, 0.648), abs=1e-3)
    write_results(tmp_path / "results.csv", rows)
    assert [_comparable(r) for r in read_results(tmp_path / "results.csv")] == [_comparable(r) for r in rows]
    metrics = flat_metrics(rows)
    assert metrics["clean_accuracy/toy-m/none"] == 1.0
    assert metrics["robust_accuracy/white_float/push/eps=0.5/toy-m/none"] == 0.5
    assert metrics["robust_accuracy/black_runtime/push/eps=0.5/toy-m.q/none"] == black.robust_accuracy


def test_each_distinct_input_is_scored_once() -> None:
    targets, sets, x, _ = _scene()
    stack = np.concatenate([sets[0].x_adv.reshape(-1, *x.shape[1:]), x, x[::-1]])

    class Counting(ThresholdRuntime):
        scored = 0

        def predict(self, batch: np.ndarray) -> np.ndarray:
            Counting.scored += len(batch)
            return super().predict(batch)

    runtime = Counting()
    np.testing.assert_array_equal(predict_distinct(runtime, stack), runtime.predict(stack))
    # The clean copies and the 20 samples the attack left alone are scored once: 40 clean + 20 pushed.
    assert Counting.scored == len(stack) + 60


def test_distinct_inputs_rebuild_the_batch_and_each_occurs_once() -> None:
    _, sets, x, _ = _scene()
    stack = np.concatenate([sets[0].x_adv.reshape(-1, *x.shape[1:]), x, x[::-1]])
    distinct = Distinct.of(stack)
    np.testing.assert_array_equal(distinct.inputs[distinct.inverse], stack)
    assert len(np.unique(distinct.inputs.reshape(len(distinct.inputs), -1), axis=0)) == len(distinct.inputs) == 60
    empty = Distinct.of(x[:0])
    assert empty.inputs.shape == (0, *x.shape[1:]) and empty.inverse.shape == (0,)


def test_a_set_from_an_unknown_source_is_refused_with_the_targets() -> None:
    targets, sets, x, y = _scene()
    with pytest.raises(ValueError, match=r"adversarial set from toy-m.q has no matching target; targets: \['toy-m'\]"):
        cross_evaluate(targets[:1], sets, x, y)


FINDINGS_SCOPE = Scope(
    floats=(ModelId("toy", "m"),),
    quantizers=("q",),
    placebos=(),
    bits={"q": "w8a8"},
    headline=0.5,
    defense_epsilons=(0.5,),
    preprocessors=(),
    ensembles={},
    recipes=(),
    dq_recipe=None,
    analysis={"toy-m": {"float": {}, "toy-m.q": {"transfer_retention/eps=0.5": {"rate": 0.75, "k": 6, "n": 8}}}},
)


def test_report_renders_tables_figures_and_plot_data() -> None:
    targets, sets, x, y = _scene()
    rows, _ = cross_evaluate(targets, sets, x, y)
    float_m = [
        {
            "model": "toy-m",
            "val_accuracy": 0.96,
            "val_samples": 50,
            "test_accuracy": 0.9,
            "test_samples": 40,
            "onnx_bytes": 2048,
            "latency_ms_batch1": 0.1,
            "latency_ms_batch256": 2.0,
            "parameters": 100,
            "macs": 1000,
        }
    ]
    twin = {
        f"twin_{m}_{k}": v
        for m in ("exact", "ste")
        for k, v in (("top1_agreement", 1.0), ("max_abs_logit_diff", 0.01), ("zero_gradient_share", 0.5))
    }
    quant_m = [
        {
            "model": "toy-m.q",
            "float_model": "toy-m",
            "quantizer": "q",
            "backend": "onnxruntime",
            "weight_bits": 8,
            "activation_bits": 8,
            "weights_quantized_share": 1.0,
            "bits_per_weight": 8.0,
            "val_accuracy": 0.93,
            "val_samples": 50,
            "test_accuracy": 0.88,
            "test_samples": 40,
            "artefact_bytes": 1024,
            "latency_ms_batch1": 0.1,
            "latency_ms_batch256": 2.0,
            "top1_agreement_with_float": 0.97,
            **twin,
        }
    ]
    report = build_report(
        rows,
        float_m,
        quant_m,
        attacks={"push": (0.01, 0.5)},
        curves={ThreatModel.WHITE_FLOAT: "push", ThreatModel.TRANSFER: "push"},
        heat_maps=[("push", 0.5)],
        defense=DefenseResults(
            rows=[
                clean_row(np.ones(40, dtype=bool), target=ModelId("toy", "m"), defense="blur"),
                *(
                    paired(row, "non-adaptive", np.arange(40) < 36, np.arange(40) < hits) if adaptive else row
                    for adaptive, hits, threat in ((False, 36, None), (True, 16, None), (True, 12, "worst_case"))
                    for row in (
                        replace(r, adaptive=adaptive, threat_model=threat or r.threat_model)
                        for r in set_rows(
                            sets[0].at([0.5]),
                            (np.arange(40) < hits)[None],
                            np.ones(40, dtype=bool),
                            np.ones(40, dtype=bool),
                            target=ModelId("toy", "m"),
                            defense="blur",
                        )
                    )
                ),
            ],
            attack="push",
            composite="push_harder",
            epsilons=(0.5,),
            baselines=("toy-m",),
            defenses=("blur",),
        ),
        min_float_accuracy=0.95,
        max_drop_points=1.5,
        headline=("linf", 0.5),
        findings={
            f.entry.key: f.record()
            for f in judge(FINDINGS_SCOPE, Study.from_params(load_params(ROOT / "params.yaml")).findings)
        },
        masking=(
            [{"model": "toy-m.q", "threat_model": "white_qnn_exact", "check": "zero_gradients", "detail": "all zero"}],
            CHECKS,
        ),
        analysis={
            "toy-m": {
                "samples": 40,
                "float": {"flip/adversarial/eps=0.5": {"rate": 0.5}, "flip/noise/eps=0.5": {"rate": 0.0}},
                "toy-m.q": {
                    "grad_cosine/ste": {"median": 0.9, "q1": 0.8, "q3": 0.95},
                    "zero_gradient/exact": {"rate": 1.0},
                    "bin_shift/adversarial/eps=0.5": {"act0": 0.3, "act1": 0.1},
                    "bin_shift/noise/eps=0.5": {"act0": 0.1, "act1": 0.1},
                    "flip/adversarial/eps=0.5": {"rate": 0.25, "n": 20},
                    "flip/noise/eps=0.5": {"rate": 0.05, "n": 20},
                    "output_change/adversarial/eps=0.5": {"quantized": {"median": 0.4}, "float": {"median": 0.2}},
                    "transfer_retention/eps=0.5": {"rate": 0.75, "n": 8},
                },
            }
        },
    )
    markdown, page = render_markdown(report), render_html(report)
    # The report opens with the findings, each verdict beside its rule and the checks that separated.
    assert "| toy-m.q | white_qnn_exact |  |  |  |  | all zero |" in markdown
    assert report.sections[0].title.startswith("Findings") and page.index("Findings") < page.index("Clean accuracy")
    # Six of eight float successes transfer: too few samples to tell 75% (the boundary of "poorly") from
    # 60%, and the table says so with the n that would; claims without records are not tested.
    assert (
        "| Attacks transfer poorly from float to quantized models. (bernhard2019_transfer) | Bernhard et al. 2019 | "
        "inconclusive: underpowered "
        "| 1 inconclusive: underpowered | n/a |" in markdown
    )
    assert (
        "| toy-m.q (w8a8) | 8 | 75.0 | -0.0 [-17.9, +34.1] | 0.6329 / 0.3154 | 0.28 "
        "| inconclusive: underpowered (n >= 57 needed) | 6 of 8 float successes also fool toy-m.q |"
    ) in markdown
    assert (
        "| Quantization is no defense: the apparent robustness of low-bit models is gradient masking. | toy-m.q"
        not in markdown
    )
    # Then float vs quantized per architecture: clean, and the per-sample worst case at the headline budget.
    assert (
        report.sections[1].title.startswith("Float vs quantized")
        and "| toy | clean 100.0%; worst case 50.0%" in markdown
    )
    assert (
        "| toy-m.q | 0.900 [0.800, 0.950] | 100.0% | 20.0% / 10.0% | 25.0% / 50.0% | 5.0% / 0.0% | 0.400 / 0.200 | 75.0% of 8 | "
        "40 (20 moved) at eps 0.5 |" in markdown
    )
    assert "| toy-m.q | q | 88.0% (n=40) | +2.00 |" in markdown
    assert "| toy-m.q | onnxruntime | 8 / 8 | 100.0% | 8.0 | 1 KiB (0.50x) |" in markdown
    # The sign-off reads the validation split: 96% holds the 95% floor (the test split's 90% would not), and
    # quantization costs 3 points > 1.5 there (2 on the test split).
    assert "| toy-m | validation accuracy >= 95.0% | 96.0% (n=50) | holds |" in markdown
    assert "| toy-m.q | validation drop vs float <= 1.5 points | +3.00 points | does not hold |" in markdown
    assert "| push | black_runtime | 0.5 (linf) | 120 |" in markdown  # the attack table, with query counts
    # The defense table: the undefended baseline, then the three figures on the defense, and the gap
    # between the non-adaptive one and the worst case with its paired interval.
    assert "| none | toy-m | float | 100.0% | 50.0% | 50.0% | 50.0% |  |  |" in markdown
    assert "| blur | toy-m | float | 100.0% | 90.0% | 40.0% | 30.0% | +60.0 [+41.1, +72.7] |  |" in markdown
    # Two curve figures and one heat map per source threat model (white_float, black_runtime).
    assert page.count("data:image/png;base64,") == 4 and "<table>" in page
    plots = plot_rows(rows, {ThreatModel.WHITE_FLOAT: "push", ThreatModel.TRANSFER: "push"}, [("push", 0.5)])
    assert {p["model"] for p in plots["robust_vs_epsilon/white_float"]} == {"toy-m"}
    assert {p["model"] for p in plots["robust_vs_epsilon/transfer"]} == {"toy-m", "toy-m.q"}
    assert len(plots["transfer/transfer_push_eps0.5_white_float"]) == 2
    assert len(plots["transfer/transfer_push_eps0.5_black_runtime"]) == 2


def test_cluster_interval_counts_samples_not_draws() -> None:
    """One trial per sample: about Wald's interval (n = 2,000). Ten identical draws per sample: the same
    interval, not one over 20,000 independent trials; every sample alike: Wilson's on the samples."""
    from qrobust.evaluation.results import cluster_interval

    robust = np.random.default_rng(0).random(2000) < 0.3
    p = robust.mean()
    half = 1.959964 * math.sqrt(p * (1 - p) / robust.size)
    one = cluster_interval(robust.astype(int), np.ones(robust.size))
    assert one == pytest.approx((p - half, p + half), abs=2e-3)
    ten = cluster_interval(10 * robust.astype(int), np.full(robust.size, 10))
    assert ten == pytest.approx(one)
    pooled = wilson_interval(10 * int(robust.sum()), 10 * robust.size)
    assert ten[1] - ten[0] > 2.5 * (pooled[1] - pooled[0])
    assert cluster_interval(np.full(50, 10), np.full(50, 10)) == wilson_interval(50, 50)


@pytest.mark.parametrize("share", [0.02, 0.5, 0.98])
def test_cluster_interval_keeps_its_coverage_near_0_and_1(share: float) -> None:
    """A randomised defense's robust share over 10 draws of 200 samples, each sample with its own chance
    (beta-distributed around ``share``, from nearly alike to very unlike): the 95% interval covers the
    true share in at least 93% of 1,000 studies, near 0 and 1 too (the Wald interval fell to 86% there)."""
    from qrobust.evaluation.results import cluster_interval

    rng = np.random.default_rng(0)
    for spread in (2.0, 20.0):
        covered = 0
        for _ in range(1000):
            chance = rng.beta(share * spread, (1 - share) * spread, 200)
            low, high = cluster_interval(rng.binomial(10, chance), np.full(200, 10))
            covered += low <= share <= high
        assert covered >= 930, (spread, covered)


def test_paired_difference_matches_a_published_newcombe_interval() -> None:
    """Fagerland, Lydersen and Laake (2017, ch. 8), complete response before and after consolidation
    therapy (Cavo et al. 2012): 59 both, 6 before only, 16 after only, 80 neither; Newcombe's
    square-and-add interval for before minus after is -0.0621 (-0.1186 to -0.0046). Newcombe's
    continuity-corrected correlation moves the interval's third decimal."""
    after = np.array([True] * 59 + [False] * 6 + [True] * 16 + [False] * 80)
    before = np.array([True] * 65 + [False] * 96)
    result = paired_difference(after, before)
    assert (result["difference"], result["low"], result["high"]) == pytest.approx((-0.0621, -0.1186, -0.0046), abs=6e-5)


def test_paired_difference_over_draws() -> None:
    """One draw: exactly the per-sample test. Several: the mean difference over draws, an interval from
    the per-sample means, and no McNemar p-value (it needs one outcome per sample)."""
    rng = np.random.default_rng(1)
    a, b = rng.random((1, 300)) < 0.6, rng.random((1, 300)) < 0.4
    assert paired_difference(a, b) == paired_difference(a[0], b[0])
    a, b = rng.random((10, 300)) < 0.6, rng.random((10, 300)) < 0.4
    d = paired_difference(a, b)
    assert d["difference"] == pytest.approx(b.mean() - a.mean())
    assert d["low"] < d["difference"] < d["high"] and math.isnan(d["mcnemar_p"])


def test_defense_note_gives_detector_rates_and_view_agreement() -> None:
    from qrobust.report.study_tables import defense_note

    note = defense_note(
        {
            "squeeze": {
                "m/threshold_false_positive_rate": 0.05,
                "m/clean_rejection_rate": 0.06,
                "m/detection_rate/adaptive/eps=0.1": {"rate": 0.25, "n": 80},
                "m/detection_rate/adaptive/eps=0.02": {"rate": 0.9, "n": 10},
            },
            "ensemble": {"m.ensemble/view_agreement": {"clean": 1.0, "all": 0.995, "n": 700}},
        },
        0.1,
    )
    assert note.startswith("Measured beside the table (eps 0.1): squeeze on m: flags 5.0% of the clean validation")
    assert (
        "rejects 6.0% of clean evaluation inputs, rejects 25.0% of adaptive inputs that fool the bare model (n=80)"
        in note
    )
    assert "90.0%" not in note and "ensemble on m.ensemble: the attacker's combiner" in note
    assert "99.5% of 700 clean and adversarial inputs" in note
