import copy

import pytest

from qrobust.config import load_params
from qrobust.errors import ConfigError
from qrobust.models import ARCHITECTURES
from qrobust.settings import AttackSettings, TrainSettings, validate
from qrobust.study import merge, study_params
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
        (lambda a: a["fgsm"].update(threat_models=[]), r"threat_models: expected a non-empty list"),
        (lambda a: a["square"].update(threat_models=["white_float"]), r"not possible for a score attack"),
        (lambda a: a["fgsm"].update(epsilons=[0.1, 1.5]), r"fgsm.epsilons\[1\]: expected a number in \(0.0, 1.0\]"),
        (lambda a: a["l2_pgd"].update(epsilons=[0.5, 1e4]), r"l2_pgd.epsilons\[1\]"),
        (lambda a: a["square"].update(p_init=2.0), r"attack.attacks.square: .* rejected by the attack: p_init"),
    ],
)
def test_attack_settings_name_the_bad_key(params: dict, change, expected: str) -> None:
    change(params["attack"]["attacks"])
    with pytest.raises(ConfigError, match=expected):
        AttackSettings.from_params(params)


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
