"""An edit re-runs what imports it: on the reproduced smoke study, a comment appended to one module of each
family makes `dvc status` report exactly the stages whose code imports that module, and nothing else.

The expected sets are written out by hand from the smoke study (studies/smoke.yaml: one arch, the standard
recipe, five quantizers and one width of the bit-width sweep, the quantization-aware model at one width, one replicate at seed 1 quantized by two of
them, distillation as the defense study's recipe, six test-time defenses), not derived
from the import walk that writes dvc.yaml, so a wrong walk or a wrong dvc.yaml fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qrobust.tools.pipelines import stage_name
from tests.conftest import dvc

pytestmark = pytest.mark.slow

DEFENSES = ("bit_depth", "median", "gaussian_noise", "squeeze_detector", "ensemble", "random_precision")
RUN_AUTOATTACK = {f"defend@{d}" for d in DEFENSES} | {"defend_recipe@distillation"}  # defend.composite

EDITS = {
    # An attack written here: its own stage, and every stage that runs it inside AutoAttack.
    "src/qrobust/attacks/square.py": {"attack@square", "attack@autoattack", *RUN_AUTOATTACK},
    # Another: DeepFool is also the recipes' boundary attack and a minimisation attack the analysis re-runs.
    "src/qrobust/attacks/deepfool.py": {
        "attack@deepfool_l2",
        "analyse@lenet-standard",
        "analyse_replicate@lenet-standard-1",
        "defend_recipe@distillation",
    },
    # A preprocessing defense: the test-time defense stages alone.
    "src/qrobust/defenses/preprocessors.py": {f"defend@{d}" for d in DEFENSES},
    # A quantizer: the quantize stages alone, one per float model with all its quantizers (attacks open the
    # artefacts through deploy/, not the quantizer).
    "src/qrobust/quantization/quantizers.py": {
        "quantize@lenet-standard",
        "quantize_replicate@lenet-standard-1",
        "quantize_qat@lenet-qat",
        "quantize_defense@lenet-distillation",
    },
    # A training recipe: the models it trains, and the defense study that builds the recipe's attacker view.
    "src/qrobust/training/recipes.py": {
        "train@lenet-standard",
        "train_replicate@lenet-standard-1",
        "train_defense@lenet-distillation",
        "train_qat@lenet-qat",
        "defend_recipe@distillation",
    },
    "src/qrobust/findings/costa2024.py": {"findings"},  # a claim's rule, beside its text
    "src/qrobust/report/page.py": {"report"},
}


def changed_stages(project: Path) -> set[str]:
    return {stage_name(s) for s in json.loads(dvc(project, "status", "--json") or "{}")}


def test_a_fresh_study_has_nothing_to_re_run(smoke: Path) -> None:
    assert changed_stages(smoke) == set()


@pytest.mark.parametrize("module", sorted(EDITS))
def test_an_edit_re_runs_exactly_the_stages_that_import_it(smoke: Path, module: str) -> None:
    path = smoke / module
    original = path.read_text(encoding="utf-8")
    path.write_text(original + "# an edit\n", encoding="utf-8")
    try:
        assert changed_stages(smoke) == EDITS[module]
    finally:
        path.write_text(original, encoding="utf-8")
    assert changed_stages(smoke) == set()
