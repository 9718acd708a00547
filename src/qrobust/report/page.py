"""Report: tables and figures rendered only from result records and stage metrics.

``build_report`` is pure (records and metrics in, a ``Report`` out); ``render_markdown`` and
``render_html`` turn it into text, the HTML with every figure embedded so it is one file.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import Result
from qrobust.pipeline.io import write_bytes, write_text
from qrobust.pipeline.model_id import ModelId
from qrobust.report.bit_width import Width, bit_width_figure, bit_width_table, trend_table
from qrobust.report.evasion import evasion_table
from qrobust.report.figures import robustness_figure, transfer_figure
from qrobust.report.findings_tables import findings_conditions_tables, findings_table, hypotheses_table
from qrobust.report.format import Figure, Metrics, Report, Table
from qrobust.report.model_tables import (
    WHITE_BOX,
    analysis_table,
    attack_tables,
    boundary_table,
    clean_table,
    convergence_table,
    headline_table,
    masking_table,
    quantization_table,
)
from qrobust.report.study_tables import (
    defense_table,
    provenance_table,
    signoff_table,
)
from qrobust.report.substitutes import substitute_table


def write_pages(report: Report, out: Path, markdown: str) -> Path:
    """``index.html`` (figures embedded), the Markdown twin named ``markdown``, and the PNGs it links under
    ``figures/``; returns the HTML page's path."""
    for part in report.sections:
        if isinstance(part, Figure):
            write_bytes(out / "figures" / f"{part.name}.png", part.png)
    write_text(out / markdown, render_markdown(report))
    write_text(out / "index.html", render_html(report))
    return out / "index.html"


def _anchor(index: int) -> str:
    return f"s{index + 1}"


def render_markdown(report: Report) -> str:
    out = [f"# {report.title}", "", *report.summary, ""]
    contents = [f"{i + 1}. {part.title}" for i, part in enumerate(report.sections)] + [""]
    for i, part in enumerate(report.sections):
        if i == report.lead:
            out += contents
        if isinstance(part, Table):
            out += [f"## {part.title}", "", "| " + " | ".join(part.headers) + " |", "|" + "---|" * len(part.headers)]
            out += ["| " + " | ".join(row) + " |" for row in part.rows]
        else:
            out += [f"## {part.title}", "", f"![{part.title}](figures/{part.name}.png)"]
        out += ["", part.note, ""] if part.note else [""]
    return "\n".join(out)


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
    "nav ol{columns:2;font-size:.85em;margin:.5em 0 1.5em}"
    "table{border-collapse:collapse;margin:.5em 0;font-size:.85em;max-width:100%}"
    "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top;overflow-wrap:anywhere}"
    "td.n{text-align:right;white-space:nowrap}th{background:#f3f3f3}img{max-width:100%}"
    ".note{color:#666;font-size:.85em}.holds{color:#176b2c;font-weight:600}.fails{color:#a01818;font-weight:600}"
)
VERDICT_CLASS = {"holds": "holds", "does not hold": "fails"}


def _cell(text: str) -> str:
    """A table cell: numbers (a rate, a count, a size) right-aligned on one line, verdicts coloured."""
    if text in VERDICT_CLASS:
        return f'<td class="{VERDICT_CLASS[text]}">{html.escape(text)}</td>'
    numeric = len(text) < 40 and re.match(r"^[-+]?(\d|n/a)", text) is not None
    return f'<td class="n">{html.escape(text)}</td>' if numeric else f"<td>{html.escape(text)}</td>"


def render_html(report: Report) -> str:
    """One self-contained page: the title, the summary, the leading sections (the answer), a numbered
    contents list linking every section, then the rest in order (figures embedded as PNG data)."""
    esc = html.escape
    body = [f"<h1>{esc(report.title)}</h1>", *(f"<p>{esc(line)}</p>" for line in report.summary if line)]
    items = "".join(f'<li><a href="#{_anchor(i)}">{esc(p.title)}</a></li>' for i, p in enumerate(report.sections))
    for i, part in enumerate(report.sections):
        if i == report.lead:
            body.append(f"<nav><h2>Contents</h2><ol>{items}</ol></nav>")
        body.append(f'<h2 id="{_anchor(i)}">{esc(part.title)}</h2>')
        if isinstance(part, Table):
            head = "".join(f"<th>{esc(h)}</th>" for h in part.headers)
            rows = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in part.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            data = base64.b64encode(part.png).decode("ascii")
            body.append(f'<img alt="{esc(part.title)}" src="data:image/png;base64,{data}">')
        if part.note:
            body.append(f'<p class="note">{esc(part.note)}</p>')
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(report.title)}</title>'
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


@dataclass(frozen=True)
class DefenseResults:
    """What the defense table reads: the defend stages' rows and the settings that made them."""

    rows: Sequence[Result]
    attack: str
    composite: str  # run after the adaptive attack on the samples it left
    epsilons: Sequence[float]
    baselines: Sequence[str]  # the undefended standard models the defenses are compared with
    defenses: Sequence[str]  # test-time defenses, then train-based recipes, in params order
    note: str = ""
    settings: str = ""  # how the composite's settings depart from its defaults (AutoAttack's standard version)


def replicates_summary(
    seeds: Mapping[str, Sequence[int]], models: Collection[str], quantizers: Sequence[str]
) -> list[str]:
    """The summary's line on the replicates (none without): which archs at which seeds, how many models."""
    if not models:
        return []
    at = ", ".join(map(str, sorted({s for v in seeds.values() for s in v})))
    return [
        f"Replicates: {', '.join(seeds)} trained again at seeds {at} ({len(models)} deployed models, quantized by "
        f"{', '.join(quantizers)}), attacked and analysed like the rest: the headline gives the spread across seeds, "
        "and each verdict's interval carries the between-seed variance. The tables below show the models of the "
        "study's seed."
    ]


def build_report(
    rows: Sequence[Result],
    float_metrics: Sequence[Metrics],
    quant_metrics: Sequence[Metrics],
    *,
    attacks: Mapping[str, Sequence[float]],
    departures: Mapping[str, str] | None = None,
    curves: Mapping[ThreatModel, str],
    heat_maps: Sequence[tuple[str, float]],
    defense: DefenseResults | None,
    min_float_accuracy: float,
    max_drop_points: float,
    findings: Mapping[str, Mapping[str, Any]] | None = None,
    masking: tuple[Sequence[Mapping[str, str]], Sequence[str]] | None = None,
    analysis: Mapping[str, Mapping[str, Any]] | None = None,
    convergence: Sequence[Mapping[str, Any]] = (),
    provenance: Mapping[str, Any] | None = None,
    headline: tuple[str, float] | None = None,
    summary: Sequence[str] = (),
    replicates: Sequence[Result] = (),
    bit_width: tuple[Sequence[Width], Sequence[Result], Mapping[str, Any]] | None = None,
    evasion: Mapping[str, Mapping[str, Any]] | None = None,
    substitutes: tuple[Sequence[Result], Sequence[ModelId], Sequence[ModelId], Sequence[ModelId]] | None = None,
) -> Report:
    """The report's sections from the rows of the models of the study's seed; ``replicates`` (the rows of
    the models trained at train.seeds) give the headline its spread across seeds; ``bit_width`` (the sweep's
    widths, their rows and reports/worst_case.json's per-threat worst cases) its own table and figure."""
    sections: list[Table | Figure] = [*([findings_table(findings)] if findings else [])]
    if headline is not None:
        sections.append(headline_table([*rows, *replicates], *headline, curves.get(ThreatModel.WHITE_FLOAT)))
    if bit_width is not None and headline is not None:
        widths, sweep_rows, by_threat = bit_width
        norm, epsilon = headline
        # The white-box figure's attack's grid: every epsilon of it met the same suite (others, fewer attacks).
        grid = attacks.get(curves.get(ThreatModel.WHITE_FLOAT, ""), [epsilon])
        sections += [
            bit_width_table(widths, sweep_rows, by_threat, norm, epsilon),
            bit_width_figure(widths, sweep_rows, by_threat, norm, grid),
            *filter(None, [trend_table((findings or {}).get("xiao2023_low_bits"))]),
        ]
    sections += [
        *(robustness_figure(rows, threat, attack) for threat, attack in curves.items()),
        signoff_table(
            float_metrics, quant_metrics, min_float_accuracy=min_float_accuracy, max_drop_points=max_drop_points
        ),
        clean_table(rows, float_metrics, quant_metrics),
        quantization_table(float_metrics, quant_metrics),
        *attack_tables(rows, attacks, departures),
        # One table per norm and kind of attack, so each fits the page.
        *(
            boundary_table(rows, convergence, norm, white)
            for norm in sorted({r.norm for r in rows if math.isinf(r.epsilon)})
            for white in (True, False)
            if any(math.isinf(r.epsilon) and r.norm == norm and (r.threat_model in WHITE_BOX) == white for r in rows)
        ),
        *([convergence_table(convergence)] if convergence else []),
    ]
    evasive = evasion_table(evasion or {})
    if evasive is not None:
        sections.append(evasive)
    if findings:
        sections += [hypotheses_table(findings), *findings_conditions_tables(findings)]
    if masking is not None:
        sections.append(masking_table(*masking))
    if analysis:
        sections.append(analysis_table(analysis))
    for attack, epsilon in heat_maps:
        for source_threat in sorted({r.source_threat_model for r in rows if r.attack == attack}):
            sections.append(transfer_figure(rows, attack, epsilon, source_threat))
    if substitutes is not None and heat_maps:
        # At the first heat map's attack and epsilon: the same sets, from the sweep's low-bit models too.
        table = substitute_table(substitutes[0], *heat_maps[0], *substitutes[1:])
        sections += [table] if table is not None else []
    if defense is not None:
        sections.append(
            defense_table(
                rows,
                defense.rows,
                attack=defense.attack,
                composite=defense.composite,
                epsilons=defense.epsilons,
                baselines=defense.baselines,
                defenses=defense.defenses,
                note=defense.note,
                settings=defense.settings,
            )
        )
    if provenance is not None:
        sections.append(provenance_table(provenance))
    lead = int(bool(findings)) + int(headline is not None)
    return Report("qrobust report", list(summary), sections, lead)
