"""benchmarks/before_after.py: the earlier study's work applies to this params.yaml and this schema accepts
it, every count it sets is at most the study's own, and the phases follow the params' threat models."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import yaml

from qrobust.settings.study import validate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def before_after():
    spec = importlib.util.spec_from_file_location("before_after", ROOT / "benchmarks" / "before_after.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_old_work_validates_and_only_lowers_the_work(before_after, params):
    def lookup(tree, dotted):
        node, leaf = before_after.parent_of(tree, dotted)
        return node[leaf]

    study = copy.deepcopy(params)
    old = before_after.with_old_work(copy.deepcopy(params))
    validate(old)
    for dotted, value in before_after.OLD_WORK.items():
        if value is before_after.DELETE:
            node, leaf = before_after.parent_of(old, dotted)
            assert leaf not in node
        elif isinstance(value, int):
            own = lookup(study, dotted)  # one count, or one per threat model
            assert all(value <= count for count in (own.values() if isinstance(own, dict) else [own])), dotted
    assert lookup(old, "attack.attacks.linf_pgd.samples") == 100
    assert old["train"] == study["train"] and old["quantize"] == study["quantize"]


def test_a_key_the_params_lack_fails_naming_it(before_after, params, monkeypatch):
    monkeypatch.setitem(before_after.OLD_WORK, "attack.attacks.no_such_attack.steps", 1)
    with pytest.raises(SystemExit, match="attack.attacks.no_such_attack.steps"):
        before_after.with_old_work(params)


def test_phases_split_attacks_by_threat_model(before_after, params):
    black_box = before_after.black_box_attacks(params)
    assert "square" in black_box and "linf_pgd" not in black_box
    seconds = {"prepare": 1.0, "train@lenet-standard": 2.0, "attack@square": 4.0, "attack@linf_pgd": 8.0,
               "analyse@lenet-standard": 16.0, "report": 32.0}  # fmt: skip
    assert before_after.by_phase(seconds, black_box) == {
        "prepare, train, train_defense": 3.0,
        "black-box attacks": 4.0,
        "gradient attacks": 8.0,
        "analyse, findings, report": 48.0,
    }
