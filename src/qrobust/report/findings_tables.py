"""The findings tables: one line per claim (its verdict over its conditions, the placebo's, the threshold
and what it stands for), then one line per condition (the quantity, the effect with its interval, n, the
Holm-adjusted p-values, the power and the verdict)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qrobust.report.format import Table


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
    for key, record in findings.items():
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
                f"{record['quantity']}: {_threshold(record)}",
                str(record["reason"]),
            )
        )
    alpha = next(iter(findings.values()))["alpha"] if findings else 0.05
    return Table(
        "Findings: the literature's claims on this run",
        ("claim", "source", "verdict", "conditions", "placebo (16-bit)", "primary quantity and threshold", "reason"),
        tuple(lines),
        f"One primary hypothesis per claim, tested per condition: 'holds' when the data put the quantity beyond the "
        f"boundary (one-sided test), 'does not hold' when they rule out every effect of the smallest size that counts; "
        f"Holm's procedure keeps each claim's family-wise error at {alpha:g}. 'Underpowered': the test could not find "
        "the smallest effect 80% of the time at this n (the per-condition table names the n needed). A claim reads "
        "'depends on the condition' when some conditions hold and others do not; the per-condition table says which. "
        "The placebo (the same quantization path at 16 bits) is judged apart; no claim of an effect may hold on it.",
    )


def findings_conditions_table(findings: Mapping[str, Mapping[str, Any]]) -> Table:
    """Per claim and condition: the quantity, the effect with its 95% interval (points), n, the adjusted
    p-values of both directions, the power at the smallest effect, and the verdict."""
    lines = []
    for key, record in findings.items():
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
                    key,
                    str(c["condition"]),
                    "n/a" if c["value"] is None else f"{100 * c['value']:.1f}",
                    f"{_signed(c['effect'])} [{_signed(c['low'])}, {_signed(c['high'])}]",
                    f"{100 * record['delta']:g}",
                    str(c["n"]),
                    _p(c["adjusted_p_holds"]),
                    _p(c["adjusted_p_fails"]),
                    "n/a" if c["power"] is None else f"{c['power']:.2f}",
                    verdict,
                    "; ".join(c["detail"]),
                )
            )
    return Table(
        "Findings per condition",
        (
            "claim", "condition", "quantity (points)", "effect beyond the boundary [95% interval]", "smallest effect",
            "n", "adj. p (holds)", "adj. p (does not hold)", "power", "verdict", "counts",
        ),
        tuple(lines),
        "Quantities and effects in percentage points (a share of 0.62 reads 62.0; a difference of 0.05 reads 5.0, "
        "its effect +5.0). Conditions without data are counted in the claim's line as 'not tested' and left out here. "
        "The effect is the quantity's distance beyond the claim's boundary in the claimed direction; 'adj. p' are "
        "Holm-adjusted over the claim's conditions. Each claim's test is in reports/findings_evidence.json.",
    )  # fmt: skip
