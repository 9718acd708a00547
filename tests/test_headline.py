"""The headline metrics on constructed rows whose answer is known."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import yaml

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import paired
from qrobust.findings.headline import headline_budget, headline_metrics, headlines
from qrobust.pipeline.io import dumps_json
from qrobust.report.model_tables import headline_table
from tests.test_findings import FLOAT_MODEL, QUANT, N, row


def test_budget_is_the_middle_of_the_grid() -> None:
    assert headline_budget("linf", (0.01, 0.02, 0.05, 0.1)) == ("linf", 0.02)  # lower middle of an even grid
    assert headline_budget("l2", (0.5, 1.0, 2.0, math.inf)) == ("l2", 1.0)  # the unbounded output is no budget


def test_the_strongest_attack_over_every_threat_model_reaching_the_model_is_the_headline() -> None:
    rows = [
        row(0.9, ThreatModel.CLEAN, 0.0, QUANT),
        row(0.9, ThreatModel.CLEAN, 0.0, FLOAT_MODEL),
        row(0.6, ThreatModel.WHITE_QNN_EXACT, 0.05, QUANT),  # masked: looks robust
        row(0.3, ThreatModel.WHITE_QNN_STE, 0.05, QUANT),
        row(0.2, ThreatModel.TRANSFER, 0.05, QUANT, source=FLOAT_MODEL),  # the float model's sets do best
        row(0.1, ThreatModel.WHITE_QNN_STE, 0.1, QUANT),  # another budget
        row(0.0, ThreatModel.WHITE_QNN_STE, 0.05, QUANT, defense="blur"),  # a defended row
        dataclasses.replace(row(0.05, ThreatModel.WHITE_QNN_STE, 0.05, QUANT), norm="l2"),  # another norm
        row(0.5, ThreatModel.WHITE_FLOAT, 0.05, FLOAT_MODEL),
    ]
    found = {h.model: h for h in headlines(rows, "linf", 0.05)}
    assert found[str(QUANT)].strongest.threat_model == ThreatModel.TRANSFER.value
    assert found[str(QUANT)].strongest.robust_accuracy == 0.2
    assert found[str(FLOAT_MODEL)].strongest.robust_accuracy == 0.5
    assert headlines(rows, "linf", 0.02)[0].strongest is None  # no attack at that budget


def test_ties_go_to_the_first_attack_by_name_whatever_the_row_order() -> None:
    rows = [
        row(0.9, ThreatModel.CLEAN, 0.0, QUANT),
        row(0.3, ThreatModel.WHITE_QNN_STE, 0.05, QUANT, attack="pgd"),
        row(0.3, ThreatModel.BLACK_RUNTIME, 0.05, QUANT, attack="apgd"),
    ]
    assert {headlines(order, "linf", 0.05)[0].strongest.attack for order in (rows, rows[::-1])} == {"apgd"}


def test_metrics_file_holds_clean_robust_and_verdicts_and_null_where_no_attack_reached() -> None:
    rows = [row(0.9, ThreatModel.CLEAN, 0.0, QUANT), row(0.25, ThreatModel.WHITE_QNN_STE, 0.05, QUANT)]
    rows.append(row(0.8, ThreatModel.CLEAN, 0.0, FLOAT_MODEL))
    metrics = headline_metrics(headlines(rows, "linf", 0.05), "linf", 0.05, {"claim": "holds"})
    written = json.loads(dumps_json(metrics))
    assert written == {
        "clean": {str(QUANT): 0.9, str(FLOAT_MODEL): 0.8},
        "robust_linf_0.05": {str(QUANT): 0.25, str(FLOAT_MODEL): None},
        "verdict": {"claim": "holds"},
    }


def test_the_default_study_gives_dvc_at_most_50_metrics() -> None:
    """dvc exp show and metrics diff show the declared metrics files only: the headline file, two numbers
    per model of the study's seed (replicates, the bit-width sweep and the placebo are in the report) and one
    verdict per claim."""
    from qrobust.findings.claims import CLAIMS
    from qrobust.quantization.catalogue import QUANTIZERS
    from qrobust.settings.study import load_study
    from qrobust.tools.pipelines import PIPELINES
    from tests.conftest import ROOT

    declared = [
        path
        for pipeline in PIPELINES
        for stage in yaml.safe_load((ROOT / pipeline).read_text())["stages"].values()
        for entry in stage.get("metrics", [])
        for path in (entry if isinstance(entry, dict) else {entry: None})
    ]
    assert declared == ["reports/headline.json"]
    study = load_study(str(ROOT / "params.yaml"))
    placebos = {q for q in study.quantize.quantizers if QUANTIZERS.get(q).placebo}
    models = [m for m in study.primary_models() if not study.sweep_only(m) and m.quantizer not in placebos]
    columns = 2 * len(models) + len(CLAIMS)
    assert columns <= 50, columns


def test_the_worst_case_row_is_the_headline_and_says_when_it_is_an_upper_bound() -> None:
    rows = [
        row(0.9, ThreatModel.CLEAN, 0.0, QUANT),
        row(0.2, ThreatModel.WHITE_QNN_STE, 0.05, QUANT),  # own attack on all N samples
        row(0.1, ThreatModel.TRANSFER, 0.05, QUANT, source=FLOAT_MODEL),
        row(0.15, ThreatModel.WORST_CASE, 0.05, QUANT, attack="worst_case"),
    ]
    (h,) = headlines(rows, "linf", 0.05, reference="pgd")
    # The worst case, not the lowest single row (their samples may differ), and PGD beside it.
    assert h.strongest.threat_model == ThreatModel.WORST_CASE.value and h.strongest.robust_accuracy == 0.15
    assert h.reference.robust_accuracy == 0.2 and not h.upper_bound
    # The model's own attack reached only part of the worst case's samples: the rest saw transfer only.
    partial = dataclasses.replace(rows[1], n=rows[1].n // 5)
    (h,) = headlines([rows[0], partial, *rows[2:]], "linf", 0.05, reference="pgd")
    assert h.upper_bound and h.own_n == partial.n


def test_attacks_made_on_the_float_parent_only_are_named_beside_the_quantized_models_comparison() -> None:
    rows = [
        row(0.9, ThreatModel.CLEAN, 0.0, FLOAT_MODEL),
        row(0.9, ThreatModel.CLEAN, 0.0, QUANT),
        row(0.3, ThreatModel.WHITE_FLOAT, 0.05, FLOAT_MODEL),
        row(0.2, ThreatModel.WHITE_FLOAT, 0.05, FLOAT_MODEL, attack="apgd"),
        row(0.1, ThreatModel.WORST_CASE, 0.05, FLOAT_MODEL, attack="worst_case"),
        row(0.3, ThreatModel.WHITE_QNN_STE, 0.05, QUANT),
        row(0.25, ThreatModel.TRANSFER, 0.05, QUANT, source=FLOAT_MODEL, attack="apgd"),
        row(0.2, ThreatModel.WORST_CASE, 0.05, QUANT, attack="worst_case"),
    ]
    found = {h.model: h for h in headlines(rows, "linf", 0.05, reference="pgd")}
    # apgd reached the quantized model by transfer only; pgd was made on both; the worst case is no attack.
    assert found[str(QUANT)].float_only == ("apgd",)
    assert found[str(FLOAT_MODEL)].float_only == ()
    own = [r for r in rows if not (r.attack == "apgd" and r.source == str(FLOAT_MODEL))]
    assert {h.model: h.float_only for h in headlines(own, "linf", 0.05, reference="pgd")}[str(QUANT)] == ()

    # The report names them beside 'vs float'.
    rows[-1] = paired(rows[-1], FLOAT_MODEL, np.arange(N) < 10, np.arange(N) < 20)
    table = headline_table(rows, "linf", 0.05, reference="pgd")
    (cells,) = table.rows
    assert "vs float +" in cells[2] and cells[2].endswith("(float only: apgd); pgd alone 30.0% n=400")
    assert "float only" not in cells[1] and "'float only'" in table.note
