"""The bit-width sweep as a part of the study: which models it adds, how params are checked, the worst case per
threat model it is drawn from, and its table and figure (tests/test_quantizers.py checks the widths themselves)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from qrobust.attacks.threats import Norm, ThreatModel
from qrobust.evaluation.worstcase import WorstCase
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.model_id import ModelId
from qrobust.pipeline.params import load_params
from qrobust.report.bit_width import PANELS, Width, bit_width_figure, bit_width_table, point
from qrobust.settings.study import Study
from tests.conftest import ROOT

PARAMS = load_params(ROOT / "params.yaml")
SWEEP = PARAMS["quantize"]["sweep"]  # the default study's: random precision draws among its widths


@pytest.fixture
def params() -> dict:
    params = copy.deepcopy(PARAMS)
    params["quantize"].update(sweep=SWEEP, sweep_archs=["lenet"])
    return params


def test_the_sweep_adds_its_widths_to_the_standard_models_of_its_archs_only(params: dict) -> None:
    study = Study.from_params(params)
    models = set(study.models())
    lenet, resnet = ModelId("lenet", "standard"), ModelId("resnet8", "standard")
    assert {lenet.quantized(q) for q in SWEEP} <= models
    assert not {resnet.quantized(q) for q in SWEEP} & models
    assert not {ModelId("lenet", "standard", q, 1) for q in SWEEP} & models  # not on the replicates
    # The analysis and the verdicts keep to quantize.quantizers.
    assert study.quantize.of(lenet, sweep=False) == study.quantize.quantizers
    assert study.quantize.of(lenet) == (*study.quantize.quantizers, *SWEEP)


@pytest.mark.parametrize(("sweep_norms", "l2_reaches_the_sweep"), [(["linf"], False), (None, True)])
def test_the_sweep_meets_only_the_attacks_of_its_norms(params: dict, sweep_norms, l2_reaches_the_sweep: bool) -> None:
    params["attack"]["sweep_norms"] = sweep_norms
    study = Study.from_params(params)
    swept = {m for m in study.models() if study.sweep_only(m)}
    assert swept and set(study.reached_by(Norm.LINF)) == set(study.models())
    assert set(study.reached_by(Norm.L2)) == set(study.models()) - (set() if l2_reaches_the_sweep else swept)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda q: q.update(sweep_archs=[]), "give both or neither"),
        (lambda q: q.update(sweep=["ort_int8"]), "quantize.sweep: ['ort_int8'] are in quantize.quantizers already"),
        (lambda q: q.update(sweep=["ort_w9a9"]), "quantize.sweep: unknown name 'ort_w9a9'; valid names"),
        (
            lambda q: q.update(sweep_archs=["vgg"]),
            "quantize.sweep_archs: unknown name 'vgg'; valid names: dscnn, lenet",
        ),
        (lambda q: q["options"].update(ort_w2a2={"per_chanel": True}), "quantize.options.ort_w2a2"),
    ],
)
def test_a_bad_sweep_names_the_key_and_what_is_allowed(params: dict, change, expected: str) -> None:
    change(params["quantize"])
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        Study.from_params(params)


def worst_case() -> WorstCase:
    """A model and 4 samples, all right clean: a white-box set breaks 0 and 1, a transfer set breaks 1 and 2."""
    target = ModelId("lenet", "standard", "ort_w2a2")
    worst = WorstCase({target: np.ones(4, dtype=bool)})
    sizes = {k: np.zeros(4, np.float32) for k in ("l0", "l1", "l2", "linf")}
    every = np.arange(4)
    worst.add(target, "linf_pgd/white_qnn_ste", "linf", 0.02, every, np.array([False, False, True, True]), sizes)
    worst.add(target, "linf_pgd/transfer", "linf", 0.02, every, np.array([True, False, False, True]), sizes)
    return worst


def test_the_worst_case_per_threat_model_counts_only_that_threat_models_sets() -> None:
    per_threat = worst_case().by_threat()["lenet-standard.ort_w2a2/linf/eps=0.02"]
    assert per_threat == {
        "white_qnn_ste": {"n": 4, "attackable": 4, "robust": 2},
        "transfer": {"n": 4, "attackable": 4, "robust": 2},
    }
    (overall,) = (r for r in worst_case().rows() if math.isfinite(r.epsilon))
    assert overall.n_correct == 1  # only sample 3 survives both


def widths() -> list[Width]:
    metrics = {"nominal_weight_bits": 2, "activation_bits": 2, "bits_per_weight": 8.06, "val_accuracy": 0.3}
    return [
        Width("lenet-standard.ort_w2a2", 2, metrics),
        Width("lenet-standard", None, {"val_accuracy": 0.91}),
    ]


def test_the_float_model_meets_its_own_white_box_attack_in_the_quantized_panels() -> None:
    by_threat = {
        "lenet-standard/linf/eps=0.02": {"white_float": {"n": 10, "attackable": 9, "robust": 6}},
        "lenet-standard.ort_w2a2/linf/eps=0.02": worst_case().by_threat()["lenet-standard.ort_w2a2/linf/eps=0.02"],
    }
    float_model, quantized = widths()[1], widths()[0]
    for panel in (ThreatModel.WHITE_QNN_STE, ThreatModel.WHITE_QNN_EXACT):
        assert point(float_model, panel, [], by_threat, "linf", 0.02).robust == 0.6
    assert point(quantized, ThreatModel.WHITE_QNN_EXACT, [], by_threat, "linf", 0.02) is None  # no such set
    assert point(quantized, ThreatModel.TRANSFER, [], by_threat, "linf", 0.02).robust == 0.5


def test_the_table_has_a_row_per_width_and_the_figure_a_panel_per_threat_model() -> None:
    rows = worst_case().rows()
    by_threat = worst_case().by_threat()
    table = bit_width_table(widths(), rows, by_threat, "linf", 0.02)
    assert [r[0] for r in table.rows] == ["lenet-standard.ort_w2a2", "lenet-standard"]
    assert table.rows[0][1] == "2 / 2 (8.06)" and table.rows[0][3].startswith("25.0%")  # 1 of 4 survives all sets
    assert len(table.headers) == 3 + len(PANELS)
    figure = bit_width_figure(widths(), rows, by_threat, "linf", [0.02])
    assert figure.png.startswith(b"\x89PNG")


def test_the_trend_starts_at_the_widest_width_from_which_every_narrower_one_holds() -> None:
    from qrobust.report.bit_width import trend_table

    def condition(model: str, verdict: str) -> dict:
        return {"condition": f"{model} at eps 0.02", "effect": 0.06, "low": 0.01, "high": 0.1, "n": 500,
                "power": 0.9, "verdict": verdict}  # fmt: skip

    claim = {
        "source": "Xiao et al. 2023", "claim": "Lower bit widths are more resilient.", "quantity": "worst case",
        "conditions": [
            condition("lenet-standard.ort_w4a4", "inconclusive"),
            condition("lenet-standard.ort_w2a2", "holds"),
            condition("lenet-standard.ort_w3a3", "holds"),
            condition("lenet-qat.ort_w2a2", "does not hold"),
        ],
    }  # fmt: skip
    table = trend_table(claim)
    assert [row[0].split()[0] for row in table.rows] == [
        "lenet-qat.ort_w2a2", "lenet-standard.ort_w2a2", "lenet-standard.ort_w3a3", "lenet-standard.ort_w4a4",
    ]  # fmt: skip
    assert "standard: it holds at 2, 3 bits; as a trend, from 3 bits down" in table.note
    assert "qat: it holds at no width; as a trend, nowhere (not at the narrowest width)" in table.note
    assert trend_table(None) is None and trend_table({**claim, "conditions": []}) is None
