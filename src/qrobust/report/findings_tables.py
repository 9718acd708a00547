"""The findings tables: one line per claim (its verdict over its conditions, the placebo's, the threshold
and what it stands for), then one line per condition (the quantity, the effect with its interval, n, the
Holm-adjusted p-values, the power and the verdict)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qrobust.report.format import Table
from qrobust.settings.findings import CLAIM_KEYS


def _in_order(findings: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    """The claims in the order params and the papers give them (the JSON file sorts its keys)."""
    rank = {key: i for i, key in enumerate(CLAIM_KEYS)}
    return sorted(findings.items(), key=lambda kv: rank.get(kv[0], len(rank)))


def _p(v: Any) -> str:
    if v is None:
        return "n/a"
    return "<0.0001" if v < 1e-4 else f"{v:.4f}"


def _signed(v: Any) -> str:
    return "n/a" if v is None else f"{100 * v:+.1f}"


def _threshold(record: Mapping[str, Any]) -> str:
    side = "above" if record["direction"] == "above" else "below"
    return f"{side} {record['boundary']:g}; smallest effect {record['delta']:g}"


def findings_table(findings: Mapping[str, Mapping[str, Any]]) -> Table:
    """Per claim: its verdict over its conditions, how many gave each verdict, the placebo's verdicts, the
    threshold and the paper's words it stands for."""
    lines = []
    for key, record in _in_order(findings):
        counts = record["counts"]
        tally = ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "no condition"
        placebo = ", ".join(sorted({c["verdict"] for c in record["placebo"]})) or "n/a"
        if record["placebo"] and record["asserts_effect"]:
            placebo += " (must not hold)"
        lines.append(
            (
                f"{record['claim']} ({key})",
                str(record["source"]),
                str(record["verdict"]),
                tally,
                placebo,
                _threshold(record),
                str(record["reason"]),
            )
        )
    alpha = next(iter(findings.values()))["alpha"] if findings else 0.05
    return Table(
        "Findings: the literature's claims on this run",
        ("claim", "source", "verdict", "conditions", "placebo (16-bit)", "threshold", "reason"),
        tuple(lines),
        f"One primary hypothesis per claim, tested per condition: 'holds' when the data put the quantity beyond the "
        f"boundary (one-sided test), 'does not hold' when they rule out every effect of the smallest size that counts; "
        f"Holm's procedure keeps each claim's family-wise error at {alpha:g}. 'Underpowered': the test could not find "
        "the smallest effect 80% of the time at this n (the per-condition table names the n needed). A claim reads "
        "'depends on the condition' when some conditions hold and others do not; the per-condition table says which. "
        "The placebo (the same quantization path at 16 bits) is judged apart; no claim of an effect may hold on it. "
        "Each claim's quantity and test: 'Findings: the primary hypotheses'.",
    )


def hypotheses_table(findings: Mapping[str, Mapping[str, Any]]) -> Table:
    """Per claim: the quantity its verdict rests on, the test, and the threshold."""
    return Table(
        "Findings: the primary hypotheses",
        ("claim", "quantity", "test", "threshold"),
        tuple((key, str(r["quantity"]), str(r["test"]), _threshold(r)) for key, r in _in_order(findings)),
        "The boundary is where the paper's words put the quantity (params.yaml, findings.claims, with the words as "
        "the reason); the smallest effect is how far beyond it an effect must reach to count, and what the study "
        "is powered to find.",
    )


SEED_NOTES = ("training randomness", "one seed")  # the notes evidence.pool_seeds adds


def findings_conditions_tables(findings: Mapping[str, Mapping[str, Any]]) -> list[Table]:
    """Per claim, one line per condition: n, the quantity, the effect with its 95% interval (points), the
    Holm-adjusted p-values of both directions, the power at the smallest effect, and the verdict."""
    tables = []
    for key, record in _in_order(findings):
        lines = []
        for c in [
            *record["conditions"],
            *({**p, "condition": f"{p['condition']} [placebo]"} for p in record["placebo"]),
        ]:
            verdict = c["verdict"]
            if verdict == "not tested":
                continue
            if verdict.endswith("underpowered") and c["n_needed"]:
                verdict += f" (n >= {c['n_needed']} needed)"
            lines.append(
                (
                    str(c["condition"]),
                    str(c["n"]) + (f" x {c['seeds']} seeds" if c.get("seeds", 1) > 1 else ""),
                    "n/a" if c["value"] is None else f"{100 * c['value']:.1f}",
                    f"{_signed(c['effect'])} [{_signed(c['low'])}, {_signed(c['high'])}]",
                    f"{_p(c['adjusted_p_holds'])} / {_p(c['adjusted_p_fails'])}",
                    "n/a" if c["power"] is None else f"{c['power']:.2f}",
                    verdict,
                    "; ".join(c["detail"][:1] + [d for d in c["detail"][1:] if d.startswith(SEED_NOTES)]),
                )
            )
        if not lines:
            continue
        tables.append(
            Table(
                f"Findings per condition: {key}",
                (
                    "condition",
                    "n",
                    "quantity",
                    "effect [95% interval]",
                    "adj. p: holds / does not hold",
                    "power",
                    "verdict",
                    "counts",
                ),  # fmt: skip
                tuple(lines),
                f"{record['claim']} Quantity: {record['quantity']}; {_threshold(record)} (points: a share of 0.62 reads "
                "62.0, an effect of 0.05 reads +5.0). 'adj. p': Holm over the claim's conditions; power at the "
                "smallest effect; conditions without data are left out; reports/findings_evidence.json has every "
                "condition's detail. 'n x k seeds': the condition measured on k training runs (train.seeds), n the "
                "smallest seed's (a replicate is attacked on at most attack.replicate_samples), its effect their "
                "mean and its interval and tests with the between-seed variance (docs/reproducibility.md); a "
                "condition at one seed borrows that variance.",
            )
        )
    return tables
