"""Where the claims find their counts: evaluate's pairs (``reports/pairs.json``), the analysis records
and the defense study's metrics, each turned into one condition's primary test."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from qrobust.findings.evidence import Condition, Scope
from qrobust.findings.tests import Test, missing, normal, paired
from qrobust.pipeline.model_id import ModelId
from qrobust.settings.findings import Threshold


def tag(epsilon: float) -> str:
    return f"eps={epsilon:g}"


def label(scope: Scope, model: ModelId, *extra: str) -> str:
    """A condition's label: the model at the study's seed (its replicates share it), with its widths."""
    return " ".join([f"{model.unseeded} ({scope.group(model)})", *extra])


def condition(scope: Scope, model: ModelId, test: Test, *detail: str, extra: tuple[str, ...] = ()) -> Condition:
    """One quantized model's condition: labelled with its widths, the placebo marked, the seed kept."""
    return Condition(
        label(scope, model, *extra),
        scope.group(model),
        test,
        tuple(detail),
        scope.is_placebo(model),
        model.seed,
        unit=model.arch,
    )


def matched(scope: Scope, quant: ModelId, epsilon: float, norm: str = "linf") -> Mapping[str, Any] | None:
    """The matched worst case of ``quant`` against its float parent (reference) at ``epsilon``."""
    return scope.pairs.get(str(quant), {}).get("worst_case", {}).get(f"{norm}/{tag(epsilon)}")


def matched_test(record: Mapping[str, Any] | None, direction: int, delta: float, boundary: float = 0.0) -> Test:
    """Quantized minus float robust accuracy on the same samples under the same attacks."""
    if not record:
        return missing(delta)
    return paired(record["only_reference"], record["only_other"], record["n"], direction, delta, boundary)


def matched_detail(record: Mapping[str, Any] | None) -> tuple[str, ...]:
    if not record:
        return ("no matched worst case",)
    n = record["n"]
    return (
        f"float {record['reference']}/{n}, quantized {record['other']}/{n} robust; "
        f"discordant {record['only_reference']} / {record['only_other']}",
        f"attacks on both: {', '.join(record['attacks'])}",
    )


def headline_conditions(scope: Scope, models: Iterable[ModelId], direction: int, t: Threshold) -> list[Condition]:
    """Per quantized model: its matched worst case at the headline epsilon against its float parent's."""
    out = []
    for quant in models:
        record = matched(scope, quant, scope.headline)
        out.append(
            condition(scope, quant, matched_test(record, direction, t.delta, t.boundary), *matched_detail(record))
        )
    return out


def measured(scope: Scope) -> list[tuple[ModelId, ModelId, Mapping[str, Any], Mapping[str, Any]]]:
    """(float model, quantized model, float record, quantized record) for every analysed pair."""
    out = []
    for float_model, quant in scope.quantized():
        record = scope.analysis.get(str(float_model))
        if record is not None and str(quant) in record:
            out.append((float_model, quant, record["float"], record[str(quant)]))
    return out


def count(record: Mapping[str, Any], key: str) -> tuple[int, int]:
    """(k, n) of a proportion an analysis or defense record holds; (0, 0) when absent."""
    value = record.get(key) or {}
    return int(value.get("k", 0) or 0), int(value.get("n", 0) or 0)


def paired_record(
    record: Mapping[str, Any] | None, n: int, direction: int, delta: float, boundary: float = 0.0
) -> Test:
    """A defense-study paired difference (``paired_difference``'s record, other minus reference): the
    exact counts when it has them, else (a randomised system's clustered difference) its normal interval."""
    if not record or record.get("difference") is None:
        return missing(delta)
    b, c, m = record.get("only_reference"), record.get("only_other"), record.get("n")
    if b is not None and c is not None and m:
        return paired(int(b), int(c), int(m), direction, delta, boundary)
    low, high = record.get("low"), record.get("high")
    if low is None or high is None:
        return missing(delta)
    return normal(record["difference"] - boundary, low - boundary, high - boundary, n, direction, delta)


def sign_test(record: Mapping[str, Any], t: Threshold) -> Test:
    """Per-sample distances, farther minus nearer (``sign_counts``' record), against the claim's threshold."""
    return paired(record["nearer"], record["farther"], record["n"], 1, t.delta, t.boundary)


def sign_detail(record: Mapping[str, Any]) -> str:
    return f"farther on {record['farther']}, nearer on {record['nearer']} of {record['n']}"
