import copy

import pytest

from qrobust.attacks.threats import ThreatModel
from qrobust.data.datasets import FASHION_MNIST_SHA256
from qrobust.models import ARCHITECTURES
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.params import load_params
from qrobust.settings.attack import AttackSettings
from qrobust.settings.study import validate
from qrobust.settings.train import TrainSettings
from qrobust.tools.study import merge, study_params
from tests.conftest import ROOT


@pytest.fixture()
def params() -> dict:
    return load_params(ROOT / "params.yaml")


@pytest.mark.parametrize("study", ["default", "smoke"])
def test_shipped_studies_validate(study: str) -> None:
    validate(study_params(ROOT, study))


def test_unknown_architecture_lists_valid_names(params: dict) -> None:
    params["train"]["archs"] = ["lenet", "alexnet"]
    with pytest.raises(ConfigError) as error:
        validate(params)
    message = str(error.value)
    assert "train.archs" in message and "'alexnet'" in message
    for name in ARCHITECTURES.names():
        assert name in message


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("train", "epochs", 0, "train.epochs"),
        ("train", "lr", -1.0, "train.lr"),
        ("data", "eval_size", "many", "data.eval_size"),
        ("attack", "batch_size", 2.5, "attack.batch_size"),
        ("train", "device", "tpu", "train.device"),
    ],
)
def test_bad_number_names_key_and_value(params: dict, section: str, key: str, value: object, expected: str) -> None:
    params[section][key] = value
    with pytest.raises(ConfigError, match=expected) as error:
        validate(params)
    assert repr(value) in str(error.value)


def test_unknown_key_is_refused(params: dict) -> None:
    params["train"]["epoch"] = 3
    with pytest.raises(ConfigError, match=r"train: unknown keys \['epoch'\]"):
        TrainSettings.from_params(params)


def test_attack_options_and_epsilons_checked(params: dict) -> None:
    bad = copy.deepcopy(params)
    bad["attack"]["attacks"]["linf_pgd"]["stepz"] = 3
    with pytest.raises(ConfigError, match="allowed options"):
        AttackSettings.from_params(bad)
    bad = copy.deepcopy(params)
    bad["attack"]["attacks"]["fgsm"]["epsilons"] = [0.1, 0.05]
    with pytest.raises(ConfigError, match="strictly increasing"):
        AttackSettings.from_params(bad)
    bad = copy.deepcopy(params)
    bad["attack"]["attacks"]["deepfoolz"] = {"epsilons": [0.1]}
    with pytest.raises(ConfigError, match="valid attack names: .*linf_pgd"):
        AttackSettings.from_params(bad)


def test_quantizer_option_validated(params: dict) -> None:
    params["quantize"]["options"]["ort_int8"]["calibrate_method"] = "median"
    with pytest.raises(ConfigError, match="calibrate_method.*'median'.*minmax, entropy, percentile"):
        validate(params)


def test_study_merge_removes_a_key_set_to_null(params: dict) -> None:
    merged = merge(params, {"attack": {"attacks": {"bim": None}}, "defend": {"defenses": {"jpeg": None}}})
    assert "bim" not in merged["attack"]["attacks"] and "linf_pgd" in merged["attack"]["attacks"]
    assert "jpeg" not in merged["defend"]["defenses"] and "bim" in params["attack"]["attacks"]
    with pytest.raises(ConfigError, match="attack.attacks.bimm: not a key"):
        merge(params, {"attack": {"attacks": {"bimm": None}}})


def test_study_merge_refuses_unknown_keys(params: dict) -> None:
    assert merge(params, {"train": {"epochs": 1}})["train"]["epochs"] == 1
    with pytest.raises(ConfigError, match="train.epochz"):
        merge(params, {"train": {"epochz": 1}})
    with pytest.raises(ConfigError, match="valid studies: default, smoke"):
        study_params(ROOT, "huge")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda a: a["fgsm"].pop("samples"), r"attack.attacks.fgsm.samples: missing"),
        (lambda a: a["fgsm"].update(samples=0), r"attack.attacks.fgsm.samples: expected a positive integer, got 0"),
        (
            lambda a: a["fgsm"].update(samples={"white_float": 5}),
            r"fgsm.samples: expected a count for each of the threat models \['white_float', 'white_qnn_exact'",
        ),
        (
            lambda a: a["fgsm"].update(samples={"white_float": 5, "white_qnn_exact": 0, "white_qnn_ste": 5}),
            r"fgsm.samples.white_qnn_exact: expected a positive integer, got 0",
        ),
        (lambda a: a["fgsm"].update(threat_models=[]), r"threat_models: expected a non-empty list"),
        (lambda a: a["square"].update(threat_models=["white_float"]), r"not possible for a score attack"),
        (lambda a: a["fgsm"].update(epsilons=[0.1, 1.5]), r"fgsm.epsilons\[1\]: expected a number in \(0.0, 1.0\]"),
        (lambda a: a["l2_pgd"].update(epsilons=[0.5, 1e4]), r"l2_pgd.epsilons\[1\]"),
        (
            lambda a: a["square"].update(p_init=2.0),
            r"attack.attacks.square.p_init: expected a number in \(0.0, 1.0\], got 2.0",
        ),
    ],
)
def test_attack_settings_name_the_bad_key(params: dict, change, expected: str) -> None:
    change(params["attack"]["attacks"])
    with pytest.raises(ConfigError, match=expected):
        AttackSettings.from_params(params)


def test_samples_per_threat_model_nest_and_the_defense_attack_needs_one_count(params: dict) -> None:
    params["attack"]["attacks"]["linf_pgd"]["samples"] = {"white_float": 40, "white_qnn_exact": 10, "white_qnn_ste": 40}
    config = next(a for a in AttackSettings.from_params(params).attacks if a.name == "linf_pgd")
    assert (config.samples, config.samples_for(ThreatModel.WHITE_QNN_EXACT)) == (40, 10)
    validate(params)
    params["attack"]["attacks"]["linf_pgd"]["samples"]["white_qnn_ste"] = 30
    with pytest.raises(
        ConfigError, match=r"linf_pgd.samples: .* need one count; got \{'white_float': 40, 'white_qnn_ste': 30\}"
    ):
        validate(params)


def test_report_and_defend_refer_only_to_attacks_that_run(params: dict) -> None:
    bad = copy.deepcopy(params)
    bad["report"]["curves"]["black_runtime"] = "linf_pgd"
    with pytest.raises(ConfigError, match="'linf_pgd' does not run under black_runtime; attacks that do: .*square"):
        validate(bad)
    bad = copy.deepcopy(params)
    bad["report"]["curves"]["gray_box"] = "fgsm"
    with pytest.raises(ConfigError, match="report.curves.gray_box: unknown threat model; valid: white_float"):
        validate(bad)
    bad = copy.deepcopy(params)
    bad["report"]["heat_maps"] = [{"attack": "fgsm", "epsilon": 0.07}]
    with pytest.raises(ConfigError, match=r"0.07 is not in fgsm's grid"):
        validate(bad)
    bad = copy.deepcopy(params)
    bad["defend"]["attack"] = "pgd"
    with pytest.raises(ConfigError, match="defend.attack: 'pgd' is not in attack.attacks; attacks: fgsm, linf_pgd"):
        validate(bad)


@pytest.mark.parametrize(
    ("family", "change", "expected"),
    [
        ("attack", lambda p: p["attack"]["attacks"]["linf_pgd"].update(steps=2.5), r"linf_pgd.steps: expected a positive integer, got 2.5"),
        ("attack", lambda p: p["attack"]["attacks"]["linf_pgd"].update(rel_stepsize=-1), r"linf_pgd.rel_stepsize: expected a number in \(0.0, 1.0\], got -1"),
        ("attack", lambda p: p["attack"]["attacks"]["linf_pgd"].update(random_start="yes"), r"linf_pgd.random_start: expected true or false, got 'yes'"),
        ("attack", lambda p: p["attack"]["attacks"]["cw_l2"].update(confidence=-0.5), r"cw_l2.confidence: expected a number in \[0.0, inf\], got -0.5"),
        ("attack", lambda p: p["attack"]["attacks"]["boundary"].update(step_adaptation=0.5), r"boundary.step_adaptation: expected a number in \(1.0, inf\]"),
        ("attack", lambda p: p["attack"]["attacks"]["square"].update(queries="300"), r"square.queries: expected a positive integer, got '300'"),
        ("defense", lambda p: p["defend"]["defenses"]["jpeg"].update(quality=80.5), r"jpeg.quality: expected a positive integer, got 80.5"),
        ("defense", lambda p: p["defend"]["defenses"]["gaussian_noise"].update(sigma=2.0), r"gaussian_noise.sigma: expected a number in \(0.0, 1.0\], got 2.0"),
        ("quantizer", lambda p: p["quantize"]["options"]["inc_w4"].update(group_size=0), r"inc_w4.group_size: expected a positive integer, got 0"),
        ("quantizer", lambda p: p["quantize"]["options"]["ort_int8"].update(per_channel="no"), r"ort_int8.per_channel: expected true or false, got 'no'"),
        ("recipe", lambda p: p["train"]["recipe_options"]["adversarial"].update(steps=1.5), r"adversarial.steps: expected a positive integer, got 1.5"),
        ("recipe", lambda p: p["train"]["recipe_options"]["trades"].update(epsilon=3.0), r"trades.epsilon: expected a number in \(0.0, 1.0\], got 3.0"),
        ("data", lambda p: p["data"].update(sha256=["ab"]), r"data.sha256: expected a mapping of file -> SHA-256, got \['ab'\]"),
        ("data", lambda p: p["data"].update(sha256={"train-images-idx3-ubyte.gz": "0" * 64}), r"data.sha256: pins \['train-images-idx3-ubyte.gz'\]; expected a digest for each of \['t10k-images-idx3-ubyte.gz', .*or \{\} for the published"),
        ("data", lambda p: p["data"].update(sha256={name: "AB" for name in FASHION_MNIST_SHA256}), r"data.sha256.t10k-images-idx3-ubyte.gz: expected 64 lowercase hex digits \(sha256sum\), got 'AB'"),
    ],
)  # fmt: skip
def test_check_rejects_bad_hyper_parameter_values(params: dict, tmp_path, family: str, change, expected: str) -> None:
    """`make check` (python -m qrobust.tools.check) refuses a wrong type or range in every family, before any compute."""
    import yaml

    from qrobust.tools.check import main

    change(params)
    with pytest.raises(ConfigError, match=expected):
        validate(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert main([str(path)]) == 2


def test_epsilon_limits_follow_the_input_shape(params: dict) -> None:
    """L2 distances between two 1x28x28 images in [0, 1] are at most 28: a larger budget is refused; a
    3x32x32 dataset (CIFAR-10) allows up to sqrt(3072)."""
    params["attack"]["attacks"]["l2_pgd"]["epsilons"] = [0.5, 30.0]
    with pytest.raises(ConfigError, match=r"l2_pgd.epsilons\[1\]: expected a number in \(0.0, 28.0\], got 30.0"):
        AttackSettings.from_params(params)
    params["data"]["dataset"] = "cifar10"
    assert AttackSettings.from_params(params).get("l2_pgd").epsilons == (0.5, 30.0)
