"""The literature's claims in the order the report lists them; each paper's module holds its claims' text
beside their primary hypotheses. ``judge`` gives every verdict."""

from __future__ import annotations

from typing import Any

from qrobust.defenses.catalogue import DefenseKind, create_defense
from qrobust.findings import bernhard2019, costa2024, gorsline2021, hao2022, lin2019, xiao2023
from qrobust.findings.evidence import ClaimEntry, Finding, Scope, judge_claim
from qrobust.findings.headline import study_budget
from qrobust.quantization.catalogue import QUANTIZERS
from qrobust.settings.findings import FindingsSettings
from qrobust.settings.study import Study

DQ_RECIPE = "dq"  # Defensive Quantization (Lin et al. 2019), judged when the defense study trains it

CLAIMS: tuple[ClaimEntry, ...] = (
    bernhard2019.MASKING,
    bernhard2019.TRANSFER,
    bernhard2019.TRANSFER_MECHANISM,
    bernhard2019.ENSEMBLE,
    gorsline2021.CROSSING,
    lin2019.AMPLIFICATION,
    lin2019.DEFENSIVE_QUANTIZATION,
    costa2024.BOUNDARY_DISTANCE,
    costa2024.GRADIENTS,
    costa2024.NOISE,
    costa2024.PREPROCESSING,
    costa2024.TRAIN_DEFENSES_BOUNDARY,
    costa2024.TRANSFER_PERSISTS,
    xiao2023.LOW_BITS,
    hao2022.EVASION,
)


def judge(scope: Scope, settings: FindingsSettings) -> list[Finding]:
    """Every claim's verdicts, per condition, with its threshold from ``findings.claims``."""
    return [judge_claim(entry, scope, settings.thresholds[entry.key], settings.alpha) for entry in CLAIMS]


def widths(quantizer: str) -> str:
    """How the report names a quantizer's widths: w8a8, w4a8, w4 (float activations), w16a16 (placebo)."""
    entry = QUANTIZERS.get(quantizer)
    activations = f"a{entry.activation_bits}" if entry.activation_bits < 32 else " (float activations)"
    return f"w{entry.weight_bits}{activations}" + (", placebo" if entry.placebo else "")


def study_scope(study: Study, **records: Any) -> Scope:
    """What the claims are judged on in ``study``: its models, quantizers (the placebo named), headline
    budget and defense study, with ``records`` (pairs, analysis, defenses, defended) as read or simulated."""
    defend = study.defend
    defenses = {name: create_defense(name, options) for name, options in defend.defenses.items()}
    quantizers = study.quantize.quantizers
    sweep = tuple(m for m in study.sweep_models() if m.quantizer is not None)
    return Scope(
        floats=study.train.model_ids(),
        quantizers=quantizers,
        placebos=tuple(q for q in quantizers if QUANTIZERS.get(q).placebo),
        replicate_quantizers=study.quantize.replicate_quantizers,
        bits={q: widths(q) for q in (*quantizers, *(m.quantizer for m in sweep))},
        sweep=sweep,
        headline=study_budget(study)[1],
        defense_epsilons=defend.epsilons,
        preprocessors=tuple(n for n, d in defenses.items() if d.kind is DefenseKind.PREPROCESSOR),
        ensembles={n: tuple(d.members) for n, d in defenses.items() if d.kind is DefenseKind.ENSEMBLE},
        recipes=defend.recipes,
        dq_recipe=DQ_RECIPE if DQ_RECIPE in defend.recipes else None,
        **records,
    )
