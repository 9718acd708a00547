"""Each quantized model against its float parent under the same attacks on the same samples: the counts
the findings' paired tests read (``reports/pairs.json``).

- *Matched worst case*, per (norm, epsilon): a sample is robust on a model if the model gets it right clean
  and no set of the attacks both models faced fooled it: the attacks run white-box on both (on the float
  model itself, through the quantized model's straight-through twin) and the black-box ones run on both
  runtimes. Transfer sets and attacks run on one side only stay out, so neither side faces more attacks.
  The counts (n, each side's robust samples, the discordant pairs) give McNemar's test and Tango's interval.
- *Boundary distance*, per white-box minimisation attack run on both: per sample the verified distance on
  each runtime, over the samples both get right clean and both outputs fool (``sign_counts``); how many are
  farther on the quantized runtime by more than 10%, how many nearer, and how many outputs made through the
  twin did not fool its runtime (``unverified``: their distance is unknown). The sign test reads them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import sign_counts
from qrobust.evaluation.worstcase import WorstCase
from qrobust.pipeline.model_id import ModelId

# The threat model under which each side of a pair runs the same attack.
_SIDES = (
    (ThreatModel.WHITE_FLOAT.value, ThreatModel.WHITE_QNN_STE.value),
    (ThreatModel.BLACK_RUNTIME.value, ThreatModel.BLACK_RUNTIME.value),
)


def _matched_names(float_names: set[str], quant_names: set[str]) -> tuple[set[str], set[str], list[str]]:
    """The set names each side keeps, and the attacks behind them."""
    keep_float, keep_quant, attacks = set(), set(), set()
    for float_threat, quant_threat in _SIDES:
        on_float = {n.rsplit("/", 1)[0] for n in float_names if n.endswith(f"/{float_threat}")}
        on_quant = {n.rsplit("/", 1)[0] for n in quant_names if n.endswith(f"/{quant_threat}")}
        for attack in on_float & on_quant:
            keep_float.add(f"{attack}/{float_threat}")
            keep_quant.add(f"{attack}/{quant_threat}")
            attacks.add(attack)
    return keep_float, keep_quant, sorted(attacks)


def discordant(reference: np.ndarray, other: np.ndarray) -> dict[str, int]:
    """Two per-sample outcomes on the same samples: n, each side's count, and the discordant pairs."""
    return {
        "n": int(reference.size),
        "reference": int(reference.sum()),
        "other": int(other.sum()),
        "only_reference": int((reference & ~other).sum()),
        "only_other": int((~reference & other).sum()),
    }


def matched_worst_case(worst: WorstCase, parent: ModelId, quant: ModelId) -> dict[str, Any]:
    """Per ``norm/eps=<e>`` the matched worst case of ``quant`` (other) against ``parent`` (reference)."""
    out: dict[str, Any] = {}
    for (target, norm, epsilon), budget in sorted(worst.budgets.items(), key=lambda kv: (str(kv[0][0]), kv[0][1:])):
        if target != parent or (quant, norm, epsilon) not in worst.budgets:
            continue
        other = worst.budgets[(quant, norm, epsilon)]
        keep_float, keep_quant, attacks = _matched_names(budget.attacks, other.attacks)
        if not attacks:
            continue
        rows = np.flatnonzero(budget.covered & other.covered)
        robust_float = worst.clean[parent][rows] & np.array(
            [not keep_float.intersection(budget.broken_by[i]) for i in rows], dtype=bool
        )
        robust_quant = worst.clean[quant][rows] & np.array(
            [not keep_quant.intersection(other.broken_by[i]) for i in rows], dtype=bool
        )
        out[f"{norm}/eps={epsilon:g}"] = {**discordant(robust_float, robust_quant), "attacks": attacks}
    return out


def boundary_signs(worst: WorstCase, parent: ModelId, quant: ModelId) -> dict[str, Any]:
    """Per ``norm/attack``: the per-sample verified distances of the same white-box minimisation attack on
    both runtimes, compared over the samples both attacked and both get right clean."""
    out: dict[str, Any] = {}
    white_float, white_ste = _SIDES[0]
    for (target, norm, name), near_float in sorted(worst.by_set.items(), key=lambda kv: (str(kv[0][0]), kv[0][1:])):
        if target != parent or not name.endswith(f"/{white_float}"):
            continue
        attack = name.rsplit("/", 1)[0]
        near_quant = worst.by_set.get((quant, norm, f"{attack}/{white_ste}"))
        if near_quant is None:
            continue
        both = ~np.isnan(near_float) & ~np.isnan(near_quant) & worst.clean[parent] & worst.clean[quant]
        f, q = near_float[both], near_quant[both]
        out[f"{norm}/{attack}"] = {
            **sign_counts(f, q),
            "unverified": int((~np.isfinite(f) | ~np.isfinite(q)).sum()),
            "median_float": _median(f),
            "median_quantized": _median(q),
        }
    return out


def _median(sizes: np.ndarray) -> float | None:
    """The censored median (None when half or more were never fooled, or nothing was attacked)."""
    median = float(np.median(sizes)) if sizes.size else float("inf")
    return median if np.isfinite(median) else None


def pairs(worst: WorstCase, models: list[ModelId]) -> dict[str, Any]:
    """Every quantized model among ``models`` whose parent is there too: its matched worst case and its
    boundary-distance signs against the parent."""
    present = set(models)
    return {
        str(m): {
            "float": str(m.parent),
            "worst_case": matched_worst_case(worst, m.parent, m),
            "boundary": boundary_signs(worst, m.parent, m),
        }
        for m in models
        if m.quantizer is not None and m.parent in present
    }
