"""What the rules read beside the result rows: a model's white-box row, the analysis stage's measurements
and their per-epsilon keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import Result
from qrobust.findings.evidence import (
    Rows,
    Scope,
    model_pairs,
)
from qrobust.pipeline.model_id import ModelId


def white_row(rows: Rows, attack: str, eps: float, model: ModelId) -> Result | None:
    """The strongest white-box row the suite has on ``model``: white_float on a float model, the
    straight-through twin on a quantized one."""
    threat = ThreatModel.WHITE_FLOAT if model.quantizer is None else ThreatModel.WHITE_QNN_STE
    return rows.own(attack, threat, eps, model)


def measured(scope: Scope) -> list[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]]:
    """(float model, quantized model, float record, quantized record) for every analysed pair."""
    out = []
    for float_model, quant in model_pairs(scope):
        record = scope.analysis.get(str(float_model))
        if record is not None and str(quant) in record:
            out.append((str(float_model), str(quant), record["float"], record[str(quant)]))
    return out


def epsilon_keys(record: Mapping[str, Any], prefix: str) -> list[str]:
    """The ``eps=<e>`` tags a record has under ``prefix``, smallest epsilon first."""
    tags = {k[len(prefix) :] for k in record if k.startswith(prefix)}
    return sorted(tags, key=lambda t: float(t.split("=")[1]))
