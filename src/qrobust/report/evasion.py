"""The differential-evasion table: per quantized model and epsilon, the share of samples a differential attack
(DIVA) makes evasive, its quantized runtime wrong while its float parent's runtime is right, beside the
white-box figures' attack on the same samples (reports/evasion.json, written by evaluate)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qrobust.pipeline.model_id import ModelId
from qrobust.report.format import Table, pct, points


def _rate(record: Mapping[str, Any]) -> str:
    return f"{pct(record['rate'])} [{100 * record['low']:.1f}, {100 * record['high']:.1f}] ({record['evasive']})"


def evasion_table(records: Mapping[str, Mapping[str, Any]]) -> Table | None:
    """One row per (attack, threat model, quantized model at the study's seed, epsilon); None without any."""
    rows = []
    for key, record in records.items():
        attack, threat, model, eps = key.split("/")
        if ModelId.parse(model).seed is not None:
            continue
        baseline = next(name for name in record if name not in ("n", "difference", attack))
        d = record["difference"]
        p = d.get("mcnemar_p")
        rows.append(
            (model, eps.removeprefix("eps="), str(record["n"]), _rate(record[attack]), _rate(record[baseline]),
             points(d["difference"], d["low"], d["high"]), "n/a" if p is None else f"{p:.2g}")
        )  # fmt: skip
    if not rows:
        return None
    return Table(
        f"Differential evasion: {attack} against {baseline} ({threat})",
        ("quantized model", "epsilon", "n", f"{attack} evasive", f"{baseline} evasive", "difference (points)",
         "McNemar p"),
        tuple(rows),
        f"Evasive: the quantized model's deployed runtime gets the adversarial input wrong while its float parent's "
        f"runtime (the model validated and monitored) still gets it right (Hao et al. 2022). Both attacks are made "
        f"through the quantized model's straight-through twin on the same samples, n of which both runtimes get "
        f"right clean; {attack} also differentiates the float model, to keep it right. Each rate: 95% Wilson "
        f"interval and the count; the difference is {attack}'s minus {baseline}'s, with Newcombe's paired 95% "
        "interval and McNemar's exact p.",
    )  # fmt: skip
