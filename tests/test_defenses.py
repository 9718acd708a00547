"""Test-time defenses on tiny data: bounds, seeds, BPDA/EOT views, the detector's false-positive rate,
ensembles, and adaptive attacks that do at least as well as non-adaptive ones."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from qrobust.attacks.runner import craft
from qrobust.attacks.victims import module_victim
from qrobust.defenses.catalogue import DEFENSES, DefenseKind, Transform, create_defense
from qrobust.defenses.deployed import REJECTED
from qrobust.defenses.preprocessors import PREPROCESSORS as PREPROCESSOR_CLASSES
from qrobust.defenses.preprocessors import ResizePad, apply, preprocessor
from qrobust.defenses.system import attacker_view, deploy, detection_view
from qrobust.defenses.views import view_agreement
from qrobust.deploy.runtime import OrtRuntime
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.params import load_params
from qrobust.settings.defend import DefendSettings
from qrobust.settings.study import validate
from tests.conftest import ROOT

PREPROCESSORS = [n for n in DEFENSES.names() if create_defense(n, {}).kind is DefenseKind.PREPROCESSOR]


def _stream(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", PREPROCESSORS)
def test_preprocessor_keeps_bounds_and_draws_from_its_stream(name: str) -> None:
    x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    pre = preprocessor(create_defense(name, {}).pre[0])
    stream = _stream(3)
    out = apply(pre, x, stream)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.array_equal(out, x)
    # A stream seeded alike repeats the draws; the next draw of the same stream differs when randomised.
    assert np.array_equal(out, apply(pre, x, _stream(3)))
    assert np.array_equal(out, apply(pre, x, stream)) != pre.randomised


@pytest.mark.parametrize("name", [n for n in PREPROCESSORS if create_defense(n, {}).randomised])
def test_deployed_randomised_defense_answers_afresh_yet_reproduces(name: str, lenet_onnx, tiny_data) -> None:
    """Two queries of the same inputs get independent draws; a system deployed again under the same seed
    answers the same sequence of queries with the same labels."""
    defense = create_defense(name, {"sigma": 0.5} if name == "gaussian_noise" else {"min_size": 14})
    x = tiny_data["test"][0][:200]
    system = deploy(defense, [OrtRuntime(lenet_onnx)], seed=5)
    first, second = system.predict(x), system.predict(x)
    assert (first != second).any()
    again = deploy(defense, [OrtRuntime(lenet_onnx)], seed=5)
    assert np.array_equal(again.predict(x), first) and np.array_equal(again.predict(x), second)


def test_bit_depth_and_median_compute_what_they_claim() -> None:
    x = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(1, 1, 28, 28)
    bits = preprocessor(create_defense("bit_depth", {"bits": 2}).pre[0])
    assert np.allclose(np.unique(apply(bits, x, 0)), [0.0, 1 / 3, 2 / 3, 1.0])
    image = np.zeros((1, 1, 28, 28), dtype=np.float32)
    image[0, 0, 10, 10] = 1.0  # one bright pixel: a 3x3 median removes it, and keeps a 3x3 block
    image[0, 0, 20:23, 20:23] = 1.0
    median = preprocessor(create_defense("median", {"size": 3}).pre[0])
    out = apply(median, image, 0)
    assert out[0, 0, 10, 10] == 0.0 and out[0, 0, 21, 21] == 1.0


@pytest.mark.parametrize("name", PREPROCESSORS)
def test_attacker_view_has_gradients_through_every_preprocessor(name: str, trained_lenet) -> None:
    """BPDA passes a non-differentiable step (bit depth's rounding has zero gradient on its own)."""
    view = attacker_view(create_defense(name, {}), [trained_lenet], seed=0, eot_samples=2)
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    torch.nn.functional.cross_entropy(view(x), torch.arange(4)).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0.0


def test_eot_view_averages_fresh_draws(trained_lenet) -> None:
    noise = create_defense("gaussian_noise", {"sigma": 0.3})
    x = torch.rand(4, 1, 28, 28)
    one = attacker_view(noise, [trained_lenet], seed=0, eot_samples=1)
    many = attacker_view(noise, [trained_lenet], seed=0, eot_samples=16)
    with torch.no_grad():
        # A mean of log-probabilities over draws (at most 0), and two single draws differ.
        assert float(many(x).max()) <= 0.0 and many(x).shape == (4, 10)
        assert not torch.equal(one(x), one(x))


def test_detector_flags_close_to_its_target_rate_on_clean_data(lenet_onnx, tiny_data) -> None:
    detector = create_defense("squeeze_detector", {"bits": 1, "median_size": 2, "fpr": 0.1})
    calib = np.concatenate([tiny_data["calib"][0], tiny_data["train"][0][:300]])
    system = deploy(detector, [OrtRuntime(lenet_onnx)], seed=0, calib=calib)
    x, y = tiny_data["test"]
    flagged = system.predict(x) == REJECTED
    # Held-out clean data (n = 200), never seen by fit: within about three standard errors of the 10% target.
    assert 0.02 <= flagged.mean() <= 0.1 + 3 * (0.1 * 0.9 / len(x)) ** 0.5, flagged.mean()
    plain = OrtRuntime(lenet_onnx).predict(x)
    assert np.array_equal(system.predict(x)[~flagged], plain[~flagged])
    with pytest.raises(ValueError, match="calibration data"):
        deploy(detector, [OrtRuntime(lenet_onnx)], seed=0)


def test_ensemble_of_identical_members_predicts_as_one(lenet_onnx, tiny_data) -> None:
    x, _ = tiny_data["test"]
    runtime = OrtRuntime(lenet_onnx)
    for combine in ("average", "vote"):
        ensemble = create_defense("ensemble", {"members": ["float", "ort_int8", "ort_w4a8"], "combine": combine})
        assert np.array_equal(deploy(ensemble, [runtime, runtime, runtime], seed=0).predict(x), runtime.predict(x))


def _robust(system, adv: np.ndarray, y: np.ndarray) -> float:
    predicted = system.predict(adv)
    return float(((predicted == y) | (predicted == REJECTED)).mean())


@pytest.mark.parametrize(
    ("name", "options", "eps", "gain"),
    [
        # BPDA through rounding and Pillow's codec: the plain attack already transfers on this toy task,
        # so the adaptive one must match it; with no gradient through the defense it would not move.
        ("bit_depth", {"bits": 2}, 0.2, None),
        ("jpeg", {"quality": 75}, 0.2, None),
        # Where the defense changes the gradient, the attack through it must beat the plain one
        # (measured on this fixture: median 13% -> 0%, noise 42% -> 23% at eps 0.2).
        ("median", {"size": 2}, 0.2, 0.08),
        ("gaussian_noise", {"sigma": 0.2}, 0.2, 0.1),  # EOT
        # squeeze_detector is left out: it rejects every attack here, adaptive or not (a detector-aware
        # attack is issue 16's subject).
    ],
)
def test_adaptive_attack_through_the_defense(
    name: str, options: dict, eps: float, gain: float | None, trained_lenet, lenet_onnx, tiny_data
) -> None:
    """The adaptive attack on its own (no per-sample choice of the plain set) against the deployed system."""
    defense = create_defense(name, options)
    x, y = tiny_data["test"][0][:100], tiny_data["test"][1][:100]
    system = deploy(defense, [OrtRuntime(lenet_onnx)], seed=0, calib=tiny_data["calib"][0])
    pgd = {"steps": 20, "rel_stepsize": 0.1}
    plain = craft(
        module_victim(trained_lenet, torch.device("cpu")), "linf_pgd", pgd, [eps], x, y, batch_size=50, seed=0
    )
    view = attacker_view(defense, [trained_lenet], seed=1, eot_samples=8)
    adaptive = craft(module_victim(view, torch.device("cpu")), "linf_pgd", pgd, [eps], x, y, batch_size=50, seed=0)
    assert np.abs(adaptive.x_adv[0] - x).max() <= eps + 1e-6
    clean = _robust(system, x, y)
    non_adaptive_acc, adaptive_acc = _robust(system, plain.x_adv[0], y), _robust(system, adaptive.x_adv[0], y)
    if gain is None:
        assert adaptive_acc <= non_adaptive_acc + 0.05 and adaptive_acc < clean - 0.5, (adaptive_acc, clean)
    else:
        assert adaptive_acc <= non_adaptive_acc - gain, (adaptive_acc, non_adaptive_acc)


class _Torch:
    """A torch module as a deployed runtime (logits on numpy batches)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def logits(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.module(torch.from_numpy(x)).numpy()


def test_ensemble_view_agrees_with_the_deployed_combiner() -> None:
    """What the adaptive attack differentiates gives the deployed label: the log of the mean softmax for
    ``average`` (always), the soft vote for ``vote`` (on at least 99% of inputs). The members are three
    linear models near one another that disagree now and then; there vote and mean softmax differ on 3%
    of inputs, so a view of the other combiner fails the same bar."""
    torch.manual_seed(0)
    base = torch.randn(10, 64)
    members = []
    for _ in range(3):
        linear = torch.nn.Linear(64, 10, bias=False)
        linear.weight.data = 5.0 * (base + 0.5 * torch.randn(10, 64)) / 8.0  # logits of a few units, as trained nets
        members.append(torch.nn.Sequential(torch.nn.Flatten(), linear))
    x = np.random.default_rng(0).standard_normal((4000, 1, 8, 8)).astype(np.float32)
    systems, views = {}, {}
    for combine in ("average", "vote"):
        ensemble = create_defense("ensemble", {"members": ["float", "ort_int8", "ort_w4a8"], "combine": combine})
        systems[combine] = deploy(ensemble, [_Torch(m) for m in members], seed=0)
        views[combine] = attacker_view(ensemble, members, seed=0, eot_samples=1)
    assert (systems["average"].predict(x) != systems["vote"].predict(x)).mean() > 0.02
    assert view_agreement(views["average"], systems["average"].predict, x) == 1.0
    assert view_agreement(views["vote"], systems["vote"].predict, x) >= 0.99
    assert view_agreement(views["vote"], systems["average"].predict, x) < 0.99
    assert view_agreement(views["average"], systems["vote"].predict, x) < 0.99


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("jpeg2", {}, "valid defense names: " + ", ".join(DEFENSES.names())),
        ("bit_depth", {"bits": 12}, r"bit_depth.bits: expected 1..8, got 12"),
        ("median", {"size": 1}, r"median.size: expected a window of 2..7 pixels, got 1"),
        ("jpeg", {"quality": 100}, r"jpeg.quality: expected 1..95"),
        ("gaussian_noise", {"sigma": -0.1}, r"gaussian_noise.sigma: expected a number in \(0.0, 1.0\], got -0.1"),
        ("squeeze_detector", {"fpr": 0.7}, r"squeeze_detector.fpr: expected a number in \(0.0, 0.5\], got 0.7"),
        ("ensemble", {"members": ["float"]}, r"needs at least two members, got \['float'\]"),
        ("ensemble", {"members": ["float", "tflite"]}, r"unknown name 'tflite'; valid names: float, inc_int8"),
        ("ensemble", {"combine": "max"}, r"combine: unknown value 'max'; valid values: average, vote"),
        ("resize_pad", {"size": 3}, r"unknown options \['size'\]; allowed options: \['min_size'\]"),
    ],
)
def test_bad_defense_settings_are_refused(name: str, options: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        create_defense(name, options)


@pytest.fixture
def params() -> dict:
    return load_params(ROOT / "params.yaml")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p["defend"].update(archs=["vgg"]), r"defend.archs: unknown name 'vgg'; valid names: dscnn, lenet"),
        (
            lambda p: p["defend"].update(recipes=["mixup"]),
            r"defend.recipes: unknown name 'mixup'; valid names: adversarial",
        ),
        (lambda p: p["defend"].update(recipes=["standard"]), r"'standard' is already trained on every arch"),
        (lambda p: p["defend"].update(epsilons=[0.03]), r"defend.epsilons: 0.03 is not in linf_pgd's grid"),
        (lambda p: p["defend"].update(attack="square"), r"'square' must run under white_float and white_qnn_ste"),
        (
            lambda p: p["defend"].update(composite="l2_pgd"),
            r"defend.composite: 'l2_pgd' is not a fixed-epsilon gradient attack of attack.attacks in linf_pgd's norm; "
            r"such attacks: \[.*'autoattack'",
        ),
        (lambda p: p["attack"]["attacks"].pop("autoattack"), r"defend.composite: 'autoattack' is not a fixed-epsilon"),
        (
            lambda p: p["defend"]["composite_options"].update(steps=0),
            r"defend.composite_options.steps: expected a positive integer, got 0",
        ),
        (lambda p: p["defend"]["composite_options"].update(restarts=2), r"defend.composite_options.*restarts"),
        (
            lambda p: p["defend"]["randomised_composite_options"].update(p_init=1.5),
            r"defend.randomised_composite_options.p_init",
        ),
        (lambda p: p["defend"].pop("randomised_composite_options"), r"defend.randomised_composite_options"),
        (lambda p: p["defend"].update(quantizers=["tflite"]), r"defend.quantizers: unknown name 'tflite'; valid names"),
        (lambda p: p["defend"].update(eot_samples=0), r"defend.eot_samples: expected a positive integer, got 0"),
        (lambda p: p["defend"]["defenses"].update(blur={}), r"valid defense names: bit_depth"),
        (
            lambda p: p["defend"]["defenses"]["ensemble"].update(members=["float", "inc_w4"]),
            r"members: \['inc_w4'\] not in defend.quantizers \['ort_int8', 'ort_w4a8'\]",
        ),  # fmt: skip
        (lambda p: p["train"].update(recipes=["trades"]), r"compares with the 'standard' recipe"),
        (
            lambda p: p["train"]["recipe_options"]["distillation"].update(temperature=-1.0),
            r"temperature: expected a number in \(0.0",
        ),
        (
            lambda p: p["defend"]["defenses"]["resize_pad"].update(min_size=29),
            r"defend.defenses.resize_pad: needs images of at least 29x29 pixels; the dataset's are 28x28",
        ),
        (
            lambda p: p["train"]["recipe_options"]["dq"].update(beta=-0.1),
            r"train.recipe_options.dq.beta: expected a number in \[0.0",
        ),
    ],
)
def test_defense_study_settings_name_the_bad_key(params: dict, change, expected: str) -> None:
    """Every bad value fails at validation, before any stage computes."""
    bad = copy.deepcopy(params)
    change(bad)
    with pytest.raises(ConfigError, match=expected):
        validate(bad)


def test_default_study_includes_every_defense(params: dict) -> None:
    defend = DefendSettings.from_params(params)
    assert set(defend.defenses) == set(DEFENSES.names())
    assert set(defend.recipes) == {"adversarial", "trades", "distillation", "dq"}


def _study(params: dict, tiny_data, shifts: tuple[float, ...] = (0.0,)):
    """A defense study on the toy data (40 samples), and one hand-made set per shift: each epsilon's
    inputs shifted by that epsilon plus the shift, so sets are told apart by their inputs."""
    from qrobust.attacks.runner import perturbation_norms
    from qrobust.attacks.sets import AdversarialSet
    from qrobust.attacks.threats import ThreatModel
    from qrobust.defenses.study import DefenseStudy
    from qrobust.pipeline.model_id import ModelId
    from qrobust.settings.attack import AttackConfig
    from tests.conftest import SPEC

    x_eval, y_eval = tiny_data["test"]
    attack = AttackConfig.from_params(
        "linf_pgd", {"threat_models": ["white_float"], "epsilons": [0.1], "samples": 40}, 28 * 28
    )
    boundary = AttackConfig.from_params(
        "deepfool_l2", {"threat_models": ["white_float", "white_qnn_ste"], "epsilons": [1.0], "samples": 40}, 28 * 28
    )
    study = DefenseStudy(
        settings=DefendSettings.from_params(params), attack=attack, composite=attack, randomised_composite=attack, boundary=boundary, spec=SPEC,
        device=torch.device("cpu"), batch_size=40, x_eval=x_eval, y_eval=y_eval,
    )  # fmt: skip
    epsilons = study.settings.epsilons
    sets = []
    for shift in shifts:
        x_adv = np.stack([np.clip(study.x + e + shift, 0, 1) for e in epsilons]).astype(np.float32)
        sets.append(
            AdversarialSet(
                attack="linf_pgd",
                norm="linf",
                threat_model=ThreatModel.WHITE_FLOAT,
                source=ModelId("lenet", "standard"),
                index=study.index,
                labels=study.y,
                epsilons=tuple(epsilons),
                x_adv=x_adv,
                sizes=perturbation_norms(x_adv, study.x),
                queries_per_sample=1.0,
            )  # fmt: skip
        )
    return study, sets


@pytest.mark.parametrize("refuse_clean", [True, False])
def test_detector_scoring_is_the_standard_one(params: dict, tiny_data, refuse_clean: bool) -> None:
    """A sample counts as robust only if the system gets its clean input right and, on the adversarial
    input, the right class or a refusal: a detector that refuses everything scores 0, and one that refuses
    every adversarial input scores its clean accuracy, never more."""
    study, (adv,) = _study(params, tiny_data)
    wrong_clean = np.arange(len(study.y)) % 4 == 0  # the system misclassifies a quarter of the clean inputs

    def predict(x: np.ndarray) -> np.ndarray:
        if len(x) == len(study.y) and np.array_equal(x, study.x):  # the clean inputs
            if refuse_clean:
                return np.full(len(x), REJECTED)
            return np.where(wrong_clean, (study.y + 1) % 10, study.y)
        return np.full(len(x), REJECTED)

    def bare(x: np.ndarray) -> np.ndarray:  # the model behind the detector: every adversarial input fools it
        labels = np.tile(study.y, len(x) // len(study.y))
        return labels if np.array_equal(x, study.x) else (labels + 1) % 10

    study.score("detector", predict, adv.source, [adv], [adv], bare=bare, detector=True)
    clean = study.rows[0].robust_accuracy
    assert clean == (0.0 if refuse_clean else 0.75)
    assert study.metrics[f"{adv.source}/clean_rejection_rate"] == (1.0 if refuse_clean else 0.0)
    for label in ("non_adaptive", "adaptive"):
        detection = study.metrics[f"{adv.source}/detection_rate/{label}/eps={study.settings.epsilons[-1]:g}"]
        assert detection == ({"rate": None, "n": 0} if refuse_clean else {"rate": 1.0, "n": 30})
    assert all(row.robust_accuracy == clean for row in study.rows[1:])
    figures = [v for k, v in study.metrics.items() if "/eps=" in k and not isinstance(v, dict)]
    assert figures and all(value == clean for value in figures)


def test_defense_rows_give_three_figures_and_paired_gaps(params: dict, tiny_data) -> None:
    """Per epsilon: the non-adaptive set's row, the adaptive set's own row, and the per-sample worst
    case (robust only if neither fooled the system), the latter two paired with the non-adaptive one."""
    from qrobust.attacks.threats import ThreatModel
    from qrobust.evaluation.results import paired_difference

    study, (plain, adaptive) = _study(params, tiny_data, shifts=(0.0, 0.01))
    n = len(study.y)
    fooled = {0: np.arange(n) % 3 == 0, 1: np.arange(n) % 2 == 0}  # the plain set fools a third, the adaptive half

    def predict(x: np.ndarray) -> np.ndarray:
        out = study.y.copy() if len(x) == n else np.tile(study.y, len(x) // n)
        for which, adv in enumerate((plain, adaptive)):
            hit = np.isclose(x, adv.x_adv.reshape(-1, *x.shape[1:])[: len(x)]).all(axis=(1, 2, 3)) if len(x) > n else 0
            if np.any(hit):
                out = np.where(np.tile(fooled[which], len(x) // n), (out + 1) % 10, out)
        return out

    study.score("bit_depth", predict, plain.source, [plain], [adaptive], bare=predict)
    for eps in study.settings.epsilons:
        rows = [r for r in study.rows if r.epsilon == eps]
        non, own, worst = (
            next(r for r in rows if not r.adaptive),
            next(r for r in rows if r.adaptive and r.threat_model != ThreatModel.WORST_CASE.value),
            next(r for r in rows if r.threat_model == ThreatModel.WORST_CASE.value),
        )
        assert non.robust_accuracy == pytest.approx(1 - fooled[0].mean())
        assert own.robust_accuracy == pytest.approx(1 - fooled[1].mean())
        assert worst.robust_accuracy == pytest.approx(1 - (fooled[0] | fooled[1]).mean())
        expected = paired_difference(~fooled[0], ~(fooled[0] | fooled[1]))
        assert worst.paired_difference == pytest.approx(expected["difference"])
        assert worst.paired_difference < 0
        assert worst.paired_low <= worst.paired_difference <= worst.paired_high
        assert worst.paired_mcnemar_p == pytest.approx(expected["mcnemar_p"])
        assert worst.paired_reference == own.paired_reference == "non-adaptive"
        gap = study.metrics[f"{plain.source}/gap/eps={eps:g}"]
        assert gap["difference"] == pytest.approx(-expected["difference"], abs=1e-4)
        effect = study.metrics[f"{plain.source}/vs_undefended/eps={eps:g}"]
        assert effect["difference"] == pytest.approx(worst.robust_accuracy - non.robust_accuracy, abs=1e-4)


def test_randomised_system_is_scored_over_draws(params: dict, tiny_data) -> None:
    """A system right on each query with probability 0.7, independently: the rows give the mean over the
    draws, an interval clustered by sample that covers it, and the share of samples right in every draw."""
    study, (adv,) = _study(params, tiny_data)
    rng = np.random.default_rng(0)

    def predict(x: np.ndarray) -> np.ndarray:
        labels = np.tile(study.y, len(x) // len(study.y))
        return np.where(rng.random(len(x)) < 0.7, labels, (labels + 1) % 10)

    study.score("gaussian_noise", predict, adv.source, [adv], [adv], draws=10)
    clean = study.rows[0]
    assert clean.draws == 10 and clean.n == 10 * len(study.y) and clean.samples == len(study.y)
    assert clean.robust_accuracy == pytest.approx(0.7, abs=0.06)
    assert clean.robust_accuracy_low < clean.robust_accuracy < clean.robust_accuracy_high
    assert clean.robust_accuracy_every_draw == pytest.approx(0.7**10, abs=0.05)
    for row in study.rows[1:]:
        assert row.draws == 10 and row.robust_accuracy_every_draw <= row.robust_accuracy <= clean.robust_accuracy
        # Right on the clean query and the adversarial one; in the worst case, on both sets' queries.
        expected = 0.7**3 if row.attack == "worst_case" else 0.7**2
        assert row.robust_accuracy == pytest.approx(expected, abs=0.08)
        assert row.robust_accuracy_low < row.robust_accuracy < row.robust_accuracy_high


def test_detector_aware_attack_stays_in_bounds_and_keeps_only_unflagged_successes(trained_lenet, tiny_data) -> None:
    """Every output lies within epsilon and [0, 1]; at a large budget many outputs are misclassified
    and pass the attacker's detector; with the detector out of the way (infinite threshold) it is a PGD
    that lowers accuracy."""
    from qrobust.defenses.detector_attack import detector_aware_pgd

    defense = create_defense("squeeze_detector", {"bits": 1, "median_size": 2})
    score = detection_view(defense, trained_lenet, seed=1)
    x, y = tiny_data["test"][0][:60], tiny_data["test"][1][:60]
    with torch.no_grad():
        clean_logits, clean_score = score(torch.from_numpy(x))
    threshold = float(np.quantile(clean_score.numpy(), 0.9))
    for norm, epsilons in (("linf", [0.1, 0.5]), ("l2", [2.0, 10.0])):
        common = {"norm": norm, "steps": 20, "rel_stepsize": 0.1, "seed": 0}
        out = detector_aware_pgd(score, x, y, epsilons, threshold, **common)
        assert out.shape == (2, *x.shape) and out.min() >= 0.0 and out.max() <= 1.0
        for e, eps in enumerate(epsilons):
            delta = (out[e] - x).reshape(len(x), -1)
            size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
            assert size.max() <= eps * (1 + 1e-5)
            with torch.no_grad():
                logits, detection = score(torch.from_numpy(out[e]))
            wrong = logits.argmax(1).numpy() != y
            if eps == epsilons[-1]:  # the large budget finds inputs the classifier gets wrong and the detector passes
                assert (wrong & (detection.numpy() <= threshold)).mean() > 0.2, norm
        free = detector_aware_pgd(score, x, y, epsilons[-1:], np.inf, **common)[0]
        with torch.no_grad():
            accuracy = (score(torch.from_numpy(free))[0].argmax(1).numpy() == y).mean()
        assert accuracy < (clean_logits.argmax(1).numpy() == y).mean() - 0.2, norm
    with pytest.raises(ValueError, match="only a detector"):
        detection_view(create_defense("median", {}), trained_lenet, seed=0)


def test_composite_runs_after_the_adaptive_attack_on_the_samples_it_left(
    params: dict, tiny_data, trained_lenet, lenet_onnx
) -> None:
    """AutoAttack's protocol in the defense study: the composite attacks only what the plain adaptive
    attack left right on the deployed system; elsewhere the adaptive example stands, so the sequence never
    scores above the adaptive attack alone, and here (a one-step first attack) it breaks more."""
    from qrobust.attacks.runner import check_bounds
    from qrobust.attacks.threats import Norm, ThreatModel
    from qrobust.pipeline.model_id import ModelId
    from qrobust.settings.attack import AttackConfig

    study, _ = _study(params, tiny_data)
    body = {"threat_models": ["white_float"], "epsilons": [0.1], "samples": 40}
    study.attack = AttackConfig.from_params("linf_pgd", {**body, "steps": 1}, 28 * 28)
    study.composite = AttackConfig.from_params(
        "autoattack", {**body, "steps": 10, "targets": 1, "queries": 50}, 28 * 28
    )
    predict = OrtRuntime(lenet_onnx).predict
    plain, composite = study.adaptive_sets(
        trained_lenet, predict, ModelId("lenet", "standard"), ThreatModel.WHITE_FLOAT
    )
    assert (plain.attack, composite.attack) == ("linf_pgd", "autoattack")
    check_bounds(composite.x_adv, study.x, composite.epsilons, Norm.LINF, "autoattack")
    left, after = study.robust(predict, plain), study.robust(predict, composite)
    assert not (after & ~left).any()
    assert after.sum() < left.sum(), (after.sum(axis=1), left.sum(axis=1))
    assert np.array_equal(composite.x_adv[~left], plain.x_adv[~left])


def test_the_boundary_attack_must_have_made_the_standard_models_reference_sets(params: dict, tiny_data) -> None:
    """The recipes' reference distances are the boundary attack's suite sets on the standard models, so an
    attack the suite does not run through the straight-through twins is refused before any attack runs."""
    from qrobust.defenses.study import DefenseStudy
    from qrobust.settings.attack import AttackConfig
    from tests.conftest import SPEC

    x_eval, y_eval = tiny_data["test"]
    attack = AttackConfig.from_params(
        "linf_pgd", {"threat_models": ["white_float"], "epsilons": [0.1], "samples": 40}, 28 * 28
    )
    boundary = AttackConfig.from_params(
        "deepfool_l2", {"threat_models": ["white_float"], "epsilons": [1.0], "samples": 40}, 28 * 28
    )
    with pytest.raises(ConfigError, match=r"defend.boundary_attack: 'deepfool_l2' must run under white_float and "):
        DefenseStudy(
            settings=DefendSettings.from_params(params), attack=attack, composite=attack, randomised_composite=attack, boundary=boundary,
            spec=SPEC, device=torch.device("cpu"), batch_size=40, x_eval=x_eval, y_eval=y_eval,
        )  # fmt: skip


def test_recipe_boundary_distances_are_made_on_the_given_samples(params: dict, tiny_data, trained_lenet) -> None:
    """The recipe model's distances come from the samples of the standard model's suite set: every
    verified distance is positive and there is at most one per given sample."""
    from qrobust.attacks.runner import attack_subset

    study, _ = _study(params, tiny_data)
    index = attack_subset(len(study.x_eval), 12, 1)
    predict = lambda x: trained_lenet(torch.from_numpy(x)).argmax(1).numpy()  # noqa: E731
    distances = study.boundary_distances(trained_lenet, predict, index)
    assert 0 < len(distances) <= len(index)
    assert (distances > 0).all()


def test_resize_pad_pastes_each_resized_image_at_its_own_offset() -> None:
    """The batched paste against the definition written per image: the same draws from the stream give
    the same pixels and, through the view, the same input gradient."""
    torch.manual_seed(0)
    x = torch.rand(40, 1, 12, 12)
    pre = ResizePad(min_size=7)

    def one_at_a_time(t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = t.shape
        sides = torch.randint(pre.min_size, min(h, w) + 1, (n,), generator=generator)
        offsets = torch.rand((n, 2), generator=generator)
        out = torch.zeros_like(t)
        for i, side in enumerate(sides.tolist()):
            top, left = int(offsets[i, 0] * (h - side + 1)), int(offsets[i, 1] * (w - side + 1))
            resized = torch.nn.functional.interpolate(t[i : i + 1], size=(side, side), mode="bilinear")
            out[i, :, top : top + side, left : left + side] = resized[0]
        return out

    results = []
    for transform in (pre.transform, one_at_a_time):
        xg = x.clone().requires_grad_(True)
        out = transform(xg, torch.Generator().manual_seed(5))
        (grad,) = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(), xg)
        results.append((out.detach(), grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    assert len({int((o > 0).sum()) for o in results[0][0]}) > 1  # the sides drawn differ between images


@pytest.mark.parametrize("name", sorted(PREPROCESSOR_CLASSES))
def test_the_catalogue_states_each_transforms_facts(name: str) -> None:
    """The catalogue (torch-free) says which transform is randomised; the code must agree."""
    transform = Transform(name, 2)
    assert preprocessor(transform).randomised is transform.randomised
