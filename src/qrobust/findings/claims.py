"""The literature's claims in the order the report lists them; each paper's module holds its claims' text
beside their rules. ``judge`` gives every verdict."""

from __future__ import annotations

from collections.abc import Iterable

from qrobust.evaluation.results import Result
from qrobust.findings import bernhard2019, costa2024, gorsline2021, lin2019
from qrobust.findings.evidence import ClaimEntry, Finding, Rows, Scope, decide

CLAIMS: tuple[ClaimEntry, ...] = (
    bernhard2019.MASKING,
    bernhard2019.TRANSFER,
    bernhard2019.TRANSFER_MECHANISM,
    bernhard2019.ENSEMBLE,
    gorsline2021.CROSSING,
    lin2019.AMPLIFICATION,
    lin2019.DEFENSIVE_QUANTIZATION,
    costa2024.BOUNDARY_DISTANCE,
    costa2024.VANISHING_GRADIENTS,
    costa2024.NOISE,
    costa2024.PREPROCESSING,
    costa2024.TRAIN_DEFENSES_BOUNDARY,
    costa2024.TRANSFER_PERSISTS,
)


def judge(rows: Iterable[Result], scope: Scope) -> list[Finding]:
    indexed = Rows(rows)
    findings = []
    for entry in CLAIMS:
        evidence = entry.checks(indexed, scope)
        findings.append(Finding(entry.key, entry.claim, entry.source, entry.rule, decide(evidence), evidence))
    return findings
