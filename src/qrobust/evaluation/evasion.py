"""Differential evasion, as deployed: how often a differential attack (DIVA) made on a quantized model gives an
input its deployed runtime gets wrong while the float parent's runtime still gets it right, beside PGD made on
the same model (the same threat model, epsilon and samples): Hao et al. 2022's "evasive success".

Read from the per-sample outcomes evaluate scores anyway (``outcomes``: each set's rows on its own model and, by
transfer, on the float parent), over the samples both runtimes get right clean. The two attacks are compared on
the same samples with Newcombe's paired interval and McNemar's test (``paired_difference``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.threats import Kind, ThreatModel
from qrobust.evaluation.results import paired_difference, wilson_interval
from qrobust.evaluation.scoring import outcome_key, set_index_key
from qrobust.pipeline.model_id import ModelId
from qrobust.settings.study import Study


def evasive(
    outcomes: Mapping[str, np.ndarray], attack: str, threat: str, epsilon: float, source: ModelId, samples: np.ndarray
) -> np.ndarray | None:
    """Per sample of ``samples`` (indices of the evaluation subset): the attack's set made on ``source`` fools
    its runtime while the float parent's runtime still classifies it right (both right clean: the outcomes
    are robust-and-clean). None when the set, or its row on the parent, is missing."""
    index = outcomes.get(set_index_key(attack, threat, source))
    own = outcomes.get(outcome_key(attack, threat, epsilon, source, source))
    parent = outcomes.get(outcome_key(attack, ThreatModel.TRANSFER.value, epsilon, source, source.parent))
    if index is None or own is None or parent is None:
        return None
    position = {int(i): k for k, i in enumerate(index)}
    if any(int(i) not in position for i in samples):
        return None
    at = np.array([position[int(i)] for i in samples], dtype=np.int64)
    return ~own[at] & parent[at]


def evasion_records(
    outcomes: Mapping[str, np.ndarray],
    clean: Mapping[ModelId, np.ndarray],
    differential: str,
    baseline: str,
    threat: str,
    epsilons: Sequence[float],
    sources: Sequence[ModelId],
) -> dict[str, dict[str, Any]]:
    """Per ``source/eps``: n (the differential set's samples both runtimes get right clean), each attack's
    evasive count and rate with its Wilson interval, and the differential attack's minus the baseline's,
    paired on those samples."""
    records: dict[str, dict[str, Any]] = {}
    for source in sources:
        index = outcomes.get(set_index_key(differential, threat, source))
        if index is None or source.parent not in clean:
            continue
        samples = index[clean[source][index] & clean[source.parent][index]]
        for eps in epsilons:
            ours = evasive(outcomes, differential, threat, eps, source, samples)
            theirs = evasive(outcomes, baseline, threat, eps, source, samples)
            if ours is None or theirs is None:
                continue
            record: dict[str, Any] = {"n": int(samples.size)}
            for name, hits in ((differential, ours), (baseline, theirs)):
                low, high = wilson_interval(int(hits.sum()), int(hits.size))
                record[name] = {"evasive": int(hits.sum()), "rate": float(hits.mean()) if hits.size else None,
                                "low": low, "high": high}  # fmt: skip
            record["difference"] = paired_difference(theirs, ours)
            records[f"{source}/eps={eps:g}"] = record
    return records


def study_evasion(
    study: Study, outcomes: Mapping[str, np.ndarray], clean: Mapping[ModelId, np.ndarray], family: Sequence[ModelId]
) -> dict[str, dict[str, Any]]:
    """Each differential attack's evasive success beside the white_qnn_ste figure's attack (report.curves) on
    the same quantized models, samples and epsilons (qrobust.evaluation.evasion)."""
    baseline = study.report.curves.get(ThreatModel.WHITE_QNN_STE)
    records = {}
    for config in study.attack.attacks:
        if ATTACKS.get(config.name).kind is not Kind.DIFFERENTIAL or baseline is None:
            continue
        for threat in config.threat_models:
            grid = [e for e in config.epsilons if e in study.attack.get(baseline).epsilons]
            quantized = [m for m in family if m.quantizer is not None]
            found = evasion_records(outcomes, clean, config.name, baseline, threat.value, grid, quantized)
            records.update({f"{config.name}/{threat.value}/{key}": record for key, record in found.items()})
    return records
