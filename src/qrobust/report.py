"""Report: tables and figures rendered only from result records and stage metrics.

``build_report`` is pure (records and metrics in, a ``Report`` out); ``render_markdown`` and
``render_html`` turn it into text, the HTML with every figure embedded so it is one file.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qrobust.core.io import write_bytes, write_text
from qrobust.core.model_id import ModelId
from qrobust.core.results import Result, ThreatModel
from qrobust.findings import AGGREGATE_RULE
from qrobust.headline import HEADLINE_RULE, Headline, headlines

Metrics = Mapping[str, Any]


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Figure:
    name: str
    title: str
    png: bytes
    note: str = ""


@dataclass
class Report:
    title: str
    summary: list[str] = field(default_factory=list)
    sections: list[Table | Figure] = field(default_factory=list)
    lead: int = 0  # sections shown before the contents list (the answer first)


def _distance(value: float) -> str:
    """A censored median distance: "beyond" when it lies past every distance the attack tried."""
    return "beyond" if math.isinf(value) else "n/a" if math.isnan(value) else f"{value:.3g}"


def pct(value: float | None) -> str:
    """A rate as a percentage; "n/a" where there was nothing to measure (nan, or null in JSON)."""
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def num(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def points(difference: float, low: float, high: float) -> str:
    """A difference of proportions in percentage points with its interval: ``+3.0 [-1.2, +7.1]``."""
    return f"{100 * difference:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def with_ci(r: Result) -> str:
    return f"{pct(r.robust_accuracy)} [{pct(r.robust_accuracy_low)}, {pct(r.robust_accuracy_high)}]"


def _index(rows: Sequence[Result]) -> dict[tuple[str, str, float, str, str, str], Result]:
    return {(r.attack, r.threat_model, r.epsilon, r.source, r.target, r.defense): r for r in rows}


def clean_table(rows: Sequence[Result], float_metrics: Sequence[Metrics], quant_metrics: Sequence[Metrics]) -> Table:
    clean = {r.target: r for r in rows if r.threat_model == ThreatModel.CLEAN.value and r.defense == "none"}
    by_float = {m["model"]: m for m in float_metrics}
    lines = []
    for m in [*float_metrics, *quant_metrics]:
        name = m["model"]
        parent = by_float[m.get("float_model", name)]
        drop = 100 * (parent["test_accuracy"] - m["test_accuracy"])
        quantized = "quantizer" in m
        lines.append(
            (
                name,
                m.get("quantizer", "float"),
                f"{pct(m['test_accuracy'])} (n={m['test_samples']})",
                f"{drop:+.2f}" if quantized else "(is the float model)",
                f"{with_ci(clean[name])} (n={clean[name].n})",
                pct(m["top1_agreement_with_float"]) if quantized else "(is the float model)",
                f"{(m['artefact_bytes'] if quantized else m['onnx_bytes']) / 1024:.0f} KiB",
                f"{m['latency_ms_batch1']:.3f} / {m['latency_ms_batch256']:.2f}",
                f"{parent['parameters']:,}",
                f"{parent['macs'] / 1e6:.2f} M",
            )
        )
    return Table(
        "Clean accuracy on the deployed runtime",
        (
            "model",
            "precision",
            "test accuracy",
            "drop vs float (points)",
            "eval-subset accuracy [95% CI]",
            "top-1 agreement with float",
            "deployed size",
            "latency ms (batch 1 / 256)",
            "parameters",
            "MACs",
        ),
        tuple(lines),
        "Test accuracy is on the whole prepared test split; the evaluation subset is the seeded subset every attack uses. "
        "Deployed size is the float ONNX file, or the files the quantized artefact deploys.",
    )


def quantization_table(float_metrics: Sequence[Metrics], quant_metrics: Sequence[Metrics]) -> Table:
    by_float = {m["model"]: m for m in float_metrics}
    lines = []
    for m in quant_metrics:
        parent = by_float[m["float_model"]]
        activations = "float" if m["activation_bits"] >= 32 else f"{m['activation_bits']}"
        lines.append(
            (
                m["model"],
                m["backend"],
                f"{m['weight_bits']:g} / {activations}",
                pct(m["weights_quantized_share"]),
                f"{m['bits_per_weight']:.1f}",
                f"{m['artefact_bytes'] / 1024:.0f} KiB ({m['artefact_bytes'] / parent['onnx_bytes']:.2f}x)",
                f"{m['latency_ms_batch1']:.3f} / {m['latency_ms_batch256']:.2f} "
                f"(float {parent['latency_ms_batch1']:.3f} / {parent['latency_ms_batch256']:.2f})",
                f"{pct(m['twin_exact_top1_agreement'])} / {pct(m['twin_ste_top1_agreement'])}",
                f"{max(m['twin_exact_max_abs_logit_diff'], m['twin_ste_max_abs_logit_diff']):.3g}",
                f"{pct(m['twin_exact_zero_gradient_share'])} / {pct(m['twin_ste_zero_gradient_share'])}",
            )
        )
    return Table(
        "Quantized models: what was quantized, what it costs, and how faithful the twin is",
        (
            "model",
            "deployed runtime",
            "weight grid bits / activation bits",
            "weights quantized",
            "bits per weight",
            "size (vs float ONNX)",
            "latency ms b1 / b256",
            "twin agreement (exact / ste)",
            "twin max |logit diff|",
            "zero input-gradient entries (exact / ste)",
        ),
        tuple(lines),
        "Weight grid bits and bits per weight are measured from the stored tensors: log2 of the widest integer range a "
        "quantized weight spans (129 levels, 7.01 bits, for ONNX Runtime's int8 with reduce_range), and the bits the "
        "artefact spends on conv/linear weights, scales and zero points included, per weight (an INC PT2E program stores "
        "float32 weights and quantizes them on every call, so it spends more than 32). Twins are rebuilt from each artefact's scales, zero points and integer weights and checked against the deployed "
        "runtime on the evaluation subset. Exact mode gives rounding zero gradient, as the integer graph does; a share of "
        "zero input-gradient entries near 100% there is gradient masking, not robustness. Latency is measured on this "
        "machine's CPU: ONNX Runtime for ONNX artefacts, torch eager for INC modules.",
    )


def _own(r: Result) -> bool:
    return r.source == r.target and r.threat_model != ThreatModel.CLEAN.value


def _precision_order(name: str) -> tuple[str, bool, str]:
    """Models grouped by float parent, the float model first."""
    model = ModelId.parse(name)
    return (str(model.parent), model.quantizer is not None, name)


def attack_tables(rows: Sequence[Result], attacks: Mapping[str, Sequence[float]]) -> list[Table]:
    """Every attack on every model it was made on, at the middle of its epsilon grid: one table per
    architecture (its float model and quantized models as columns), so none is wider than the page."""
    own = [r for r in rows if _own(r) and r.defense == "none"]
    index = {(r.attack, r.threat_model, r.epsilon, r.target): r for r in own}
    tables = []
    for arch in sorted({r.target_arch for r in own}):
        models = sorted({r.target for r in own if r.target_arch == arch}, key=_precision_order)
        lines = []
        for attack, grid in attacks.items():
            eps = grid[len(grid) // 2]
            for threat in sorted({r.threat_model for r in own if r.attack == attack and r.target_arch == arch}):
                cells = [index.get((attack, threat, eps, m)) for m in models]
                found = [c for c in cells if c is not None]
                if not found:
                    continue
                queries = [c.queries_per_sample for c in found if not math.isnan(c.queries_per_sample)]
                lines.append(
                    (
                        attack,
                        threat,
                        f"{eps:g} ({found[0].norm})",
                        f"{sum(queries) / len(queries):.0f}" if queries else "",
                        *("" if c is None else f"{pct(c.robust_accuracy)} (n={c.n})" for c in cells),
                    )
                )
        tables.append(
            Table(
                f"Every attack on {arch}: robust accuracy at the middle of its epsilon grid",
                ("attack", "threat model", "epsilon (norm)", "queries / sample (whole grid)", *models),
                tuple(lines),
                "White-box attacks on quantized models go through the twin (exact: rounding as deployed; ste: "
                "straight-through); black-box attacks query the deployed runtime. Every number is the deployed "
                "runtime's accuracy on the adversarial examples; an empty cell means the attack is not made on that "
                "model under that threat model.",
            )
        )
    return tables


def headline_table(rows: Sequence[Result], norm: str, epsilon: float, reference: str | None = None) -> Table:
    """Float vs each quantized model, per architecture: clean accuracy and the per-sample worst-case robust
    accuracy at the headline budget (``qrobust.headline``), beside the ``reference`` attack's own figure."""
    found = {h.model: h for h in headlines(rows, norm, epsilon, reference)}
    models = sorted(found, key=_precision_order)
    precisions = sorted({ModelId.parse(m).precision for m in models}, key=lambda p: (p != "float", p))
    by_cell = {(ModelId.parse(m).arch, ModelId.parse(m).precision): found[m] for m in models}

    def cell(h: Headline | None) -> str:
        if h is None:
            return ""
        if h.strongest is None:
            return f"clean {pct(h.clean.robust_accuracy)}; no attack at this budget"
        s = h.strongest
        if s.threat_model == ThreatModel.WORST_CASE.value:
            # Clean accuracy on the worst case's own samples: the figure robust accuracy is bounded by.
            text = f"clean {pct(s.n_attackable / s.n)}; worst case {with_ci(s)} n={s.n}"
            if h.upper_bound:
                text += f" (upper bound: own attacks on {h.own_n}, transfer only on the rest)"
            if s.paired_reference:
                text += f"; vs float {points(s.paired_difference, s.paired_low, s.paired_high)}"
                if h.float_only:
                    text += f" (float only: {', '.join(h.float_only)})"
        else:
            text = f"clean {pct(h.clean.robust_accuracy)}; {with_ci(s)} n={s.n}, by {s.attack} ({s.threat_model})"
        r = h.reference
        return text + ("" if r is None else f"; {r.attack} alone {pct(r.robust_accuracy)} n={r.n}")

    archs = sorted({ModelId.parse(m).arch for m in models})
    return Table(
        f"Float vs quantized: clean and worst-case robust accuracy at {norm} epsilon {epsilon:g}",
        ("architecture", *precisions),
        tuple((arch, *(cell(by_cell.get((arch, p))) for p in precisions)) for arch in archs),
        f"Robust accuracy here is {HEADLINE_RULE}; beside it the suite's {reference} on the model itself, on "
        "its own subset. 'vs float': the quantized model's worst case minus its float parent's, in points, on the "
        "samples both cover, with the 95% paired interval (Newcombe's; results.csv has McNemar's p). 'float only': "
        "attacks made on the float model itself that reached the quantized model by transfer only, so a positive "
        "'vs float' there can be attack strength, not robustness (the masking finding also compares both under "
        "the same attack). Where the attacks made on a model itself covered fewer samples than its worst case, the "
        "rest met only sets made on other models: the figure is an upper bound, and comparing it with a model "
        "attacked directly on every sample favours it. reports/worst_case.json says which attacks broke how many samples. These are the "
        "numbers reports/headline.json gives DVC (dvc exp show, dvc metrics diff).",
    )


def _median_of(check: Mapping[str, Any], key: str, found_key: str) -> str:
    """A convergence record's median as written to JSON (null: beyond every size tried, or no sample)."""
    value = check[key]
    if value is not None:
        return _distance(value)
    return "n/a" if check["n"] == 0 else f"beyond ({check[found_key]} of {check['n']} found)"


def _unconverged(check: Mapping[str, Any]) -> str:
    """The flag beside a boundary distance whose attack moved when its steps doubled."""
    change = check["change"]
    moved = "no median at either" if change is None else f"median {100 * change:+.0f}%"
    return f"NOT CONVERGED: {moved} at {2 * check['steps']} steps"


def convergence_table(checks: Sequence[Mapping[str, Any]]) -> Table:
    """Each white-box minimisation set's check: its median at the suite's steps and at twice as many."""
    lines = tuple(
        (
            c["source"],
            f"{c['attack']} ({c['norm']}, {c['threat_model']})",
            str(c["n"]),
            f"{_median_of(c, 'median', 'found')} / {_median_of(c, 'median_doubled', 'found_doubled')}",
            f"{c['steps']} / {2 * c['steps']}",
            "n/a" if c["change"] is None else f"{100 * c['change']:+.1f}%",
            "converged" if c["converged"] else "NOT CONVERGED",
        )
        for c in checks
    )
    return Table(
        "Convergence of the boundary distances: each white-box minimisation attack again at twice its steps",
        ("model", "attack", "samples", "median distance (steps / doubled)", "steps", "change", "verdict"),
        lines,
        f"Rule: converged when {checks[0]['rule']}; on the set's first analysis.convergence_samples "
        "samples that the runtime gets right clean; both medians are verified on the deployed runtime. A median "
        "'beyond' (half the samples or more not fooled) is not converged. Decision-based attacks are not checked.",
    )


def boundary_table(rows: Sequence[Result], convergence: Sequence[Mapping[str, Any]] = ()) -> Table:
    """Median minimal perturbation of the minimisation attacks: the distance to the decision boundary,
    flagged where the attack's convergence check failed."""
    checked = {(c["attack"], c["threat_model"], c["source"]): c for c in convergence}
    unbounded = [r for r in rows if _own(r) and r.defense == "none" and math.isinf(r.epsilon)]
    attacks = sorted({(r.attack, r.threat_model, r.norm) for r in unbounded})
    models = sorted({r.target for r in unbounded}, key=_precision_order)
    # One column per (attack, threat model, norm): the worst case has a row in every norm.
    index = {(r.attack, r.threat_model, r.norm, r.target): r for r in unbounded}
    lines = []
    for m in models:
        cells = []
        for attack, threat, norm in attacks:
            r = index.get((attack, threat, norm, m))
            if r is None:
                cells.append("")
                continue
            cell = f"{_distance(r.median_distance_censored)} (found {pct(r.success_rate)} of {r.n_attackable})"
            check = checked.get((attack, threat, m))
            cells.append(cell if check is None or check["converged"] else f"{cell} {_unconverged(check)}")
        lines.append((m, *cells))
    return Table(
        "Distance to the decision boundary: median minimal perturbation over every sample, a sample without an "
        "adversarial counting as farther than any distance tried (share of samples one was found for)",
        ("model", *(f"{a} ({norm}, {t})" for a, t, norm in attacks)),
        tuple(lines),
        "Unclipped outputs of the minimisation attacks, scored on the deployed runtime, over the samples the model gets "
        "right clean. 'beyond' when the attack failed on half or more: the median lies past every distance it tried. "
        "The median over found samples alone (results.csv, *_median_success) would make a model the attack fails on "
        "more often look closer to the boundary. NOT CONVERGED: doubling the attack's steps moved its median by 5% or "
        "more (the convergence table).",
    )


def defense_table(
    rows: Sequence[Result],
    defended: Sequence[Result],
    *,
    attack: str,
    composite: str,
    epsilons: Sequence[float],
    baselines: Sequence[str],
    defenses: Sequence[str],
    note: str = "",
) -> Table:
    """Each defense on each precision: clean accuracy and robust accuracy at each epsilon, against the
    attack made without knowing the defense (non-adaptive), through it (adaptive), and per sample the
    worst of both; the gap between the first and the last with its paired interval. The undefended
    baseline rows come from the attack suite's own rows. A non-adaptive cell with several sources (an
    ensemble's members) shows the strongest, lowest one."""
    index = _index(rows)
    lines = []
    for base in baselines:
        family = sorted({r.target for r in rows if str(ModelId.parse(r.target).parent) == base}, key=_precision_order)
        for t in family:
            clean = index[("none", ThreatModel.CLEAN.value, 0.0, t, t, "none")]
            threat = ThreatModel.WHITE_FLOAT.value if t == base else ThreatModel.WHITE_QNN_STE.value
            own = [index.get((attack, threat, eps, t, t, "none")) for eps in epsilons]
            cells = [pct(r.robust_accuracy) if r else "" for r in own for _ in range(3)]
            # Clean accuracy on the attack's own samples, as in every defense row, not on the whole subset.
            first = next((r for r in own if r), None)
            clean_here = first.n_attackable / first.n if first else clean.robust_accuracy
            lines.append(("none", t, clean.target_precision, pct(clean_here), *cells, "", ""))
    for name in defenses:
        mine = [r for r in defended if r.defense == name]
        targets = sorted({r.target for r in mine}, key=_precision_order)
        for t in targets:
            clean = next(r for r in mine if r.target == t and r.threat_model == ThreatModel.CLEAN.value)
            cells, gap = [], ""
            for eps in epsilons:
                here = [r for r in mine if (r.target, r.epsilon) == (t, eps)]
                non_adaptive = [r.robust_accuracy for r in here if not r.adaptive]
                adaptive = [r for r in here if r.adaptive and r.threat_model != ThreatModel.WORST_CASE.value]
                worst = [r for r in here if r.threat_model == ThreatModel.WORST_CASE.value]
                cells += [
                    pct(min(non_adaptive)) if non_adaptive else "",
                    pct(min(r.robust_accuracy for r in adaptive)) if adaptive else "",
                    pct(worst[0].robust_accuracy) if worst else "",
                ]
                if worst:
                    w = worst[0]
                    gap = points(-w.paired_difference, -w.paired_high, -w.paired_low)
            draws = f"x{clean.draws} draws" if clean.draws > 1 else ""
            lines.append((name, t, clean.target_precision, pct(clean.robust_accuracy), *cells, gap, draws))
    headers = ["defense", "deployed model", "precision", "clean"]
    for eps in epsilons:
        headers += [f"eps {eps:g} non-adaptive", f"eps {eps:g} adaptive", f"eps {eps:g} worst case"]
    return Table(
        f"Defenses against {attack}, then {composite}: non-adaptive (made without knowing the defense), adaptive, "
        "and the worst case",
        (*headers, f"gap at eps {epsilons[-1]:g} (points, 95% paired interval)", "randomness"),
        tuple(lines),
        "Robust accuracy on each deployed system, clean accuracy included, on the attack's seeded samples (n in "
        "results); a sample counts only if the system gets its clean input right and "
        "its adversarial input right or refused (a refusal of a clean input is an error). Non-adaptive: the suite's sets "
        "made on the undefended standard model (white-box on float, straight-through on quantized models; for an "
        "ensemble, the strongest member's). Adaptive: the attack through the defense (BPDA through "
        "non-differentiable preprocessing, EOT over randomised ones, all squeezed branches of a detector, the ensemble's "
        f"combiner, or the recipe model itself), then {composite} through the same view on the samples it left "
        "(AutoAttack's protocol); the cell is the lowest adaptive row: that sequence, or for a detector the "
        "detector-aware attack. Worst case: per sample, robust only if no set fooled the deployed system. The gap is how much the non-adaptive figure flatters the defense (non-adaptive minus worst case, "
        "with its paired interval: Newcombe's, or over the draws' per-sample means for a randomised defense). A "
        "randomised defense is queried afresh on every input; its figures are the mean over the draws."
        + (f" {note}" if note else ""),
    )


def defense_note(metrics: Mapping[str, Mapping[str, Any]], epsilon: float) -> str:
    """What the defense study measured beside the table (``reports/defenses/<name>.json``), one clause per
    defense and deployed model: a detector's false-positive rate on the clean validation images that set
    its threshold, its rejection rate on the clean evaluation inputs and, at ``epsilon``, per attack the
    share of the adversarial inputs fooling the bare model that it rejects; an ensemble view's agreement
    with the deployed combiner."""
    clauses: dict[tuple[str, str], list[str]] = {}
    for name, values in metrics.items():
        for key, value in values.items():
            model, _, what = key.partition("/")
            said = clauses.setdefault((name, model), [])
            if what == "threshold_false_positive_rate":
                said.append(f"flags {pct(value)} of the clean validation images that set its threshold")
            elif what == "clean_rejection_rate":
                said.append(f"rejects {pct(value)} of clean evaluation inputs")
            elif what.startswith("detection_rate/") and what.endswith(f"/eps={epsilon:g}") and value["n"]:
                attack = what.split("/")[1].replace("_", "-")
                said.append(
                    f"rejects {pct(value['rate'])} of {attack} inputs that fool the bare model (n={value['n']})"
                )
            elif what == "view_agreement":
                said.append(
                    f"the attacker's combiner gives the deployed label on {pct(value['all'])} of "
                    f"{value['n']} clean and adversarial inputs"
                )
    parts = [f"{name} on {model}: " + ", ".join(said) for (name, model), said in clauses.items() if said]
    return (f"Measured beside the table (eps {epsilon:g}): " + "; ".join(parts) + ".") if parts else ""


def curve_rows(rows: Sequence[Result], threat: ThreatModel, attack: str) -> list[Result]:
    """The rows one threat model's robust-accuracy figure draws: each model under its own attack (for
    transfer, each quantized model on sets made white-box on its float parent), with the float
    models' own white-box (or black-box) curve as the reference in every figure."""
    reference = ThreatModel.BLACK_RUNTIME if threat is ThreatModel.BLACK_RUNTIME else ThreatModel.WHITE_FLOAT

    def drawn(r: Result) -> bool:
        if r.attack != attack or r.defense != "none" or math.isinf(r.epsilon):
            return False
        if r.target_precision == "float":
            return _own(r) and r.threat_model == reference.value
        if threat is ThreatModel.TRANSFER:
            return (
                r.source == str(ModelId.parse(r.target).parent)
                and r.source_threat_model == ThreatModel.WHITE_FLOAT.value
            )
        return _own(r) and r.threat_model == threat.value

    return [r for r in rows if drawn(r)]


@dataclass(frozen=True)
class Curves:
    """One set of robust-accuracy curves in a figure: its rows, its line style (None: float solid,
    quantized dashed) and what its legend labels add after the precision."""

    rows: Sequence[Result]
    style: str | None = None
    label: str = ""


def curves_png(series: Sequence[Curves], precisions: Iterable[str], *, bands: bool) -> bytes:
    """One panel per architecture, one line per model of each series in its precision's colour (float in
    black; ``precisions`` fixes the order, so every figure of a page colours alike), with 95% Wilson bands
    when ``bands``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = sorted({r.target_arch for s in series for r in s.rows})
    fig, axes = plt.subplots(1, max(len(archs), 1), figsize=(4.2 * max(len(archs), 1), 3.4), sharey=True, squeeze=False)
    ordered = sorted(set(precisions), key=lambda p: (p != "float", p))
    colours = dict(zip(ordered, ["black", *plt.get_cmap("tab10").colors], strict=False))
    norm = next((r.norm for s in series for r in s.rows), "")
    for ax, arch in zip(axes[0], archs, strict=False):
        for s in series:
            for target in sorted({r.target for r in s.rows if r.target_arch == arch}, key=_precision_order):
                pts = sorted(
                    (r.epsilon, r.robust_accuracy, r.robust_accuracy_low, r.robust_accuracy_high)
                    for r in s.rows
                    if r.target == target
                )
                eps, acc, low, high = zip(*pts, strict=True)
                precision = ModelId.parse(target).precision
                colour = colours[precision]
                style = s.style or ("-" if precision == "float" else "--")
                ax.plot(eps, acc, style, color=colour, marker="o", ms=3, label=precision + s.label)
                if bands:
                    ax.fill_between(eps, low, high, color=colour, alpha=0.08)
        ax.set(title=arch, xlabel=f"epsilon ({norm})", xscale="log", ylim=(0, 1))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("robust accuracy")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def robustness_figure(rows: Sequence[Result], threat: ThreatModel, attack: str) -> Figure:
    """Robust accuracy vs epsilon per architecture: float vs each quantized model (Gorsline et al. 2021)."""
    png = curves_png([Curves(curve_rows(rows, threat, attack))], {r.target_precision for r in rows}, bands=True)
    reference = "black-box" if threat is ThreatModel.BLACK_RUNTIME else "white-box"
    return Figure(
        f"robust_vs_epsilon_{threat.value}",
        f"Robust accuracy vs epsilon, {threat.value}: {attack} (float: its own {reference} curve)",
        png,
        "Read: a quantized curve above the float one, bands apart, is robustness the quantized model gained at "
        f"that epsilon (curves that cross: Gorsline et al. 2021). {THREAT_NOTES[threat]} Shaded bands are 95% "
        "Wilson intervals.",
    )


THREAT_NOTES = {
    ThreatModel.WHITE_FLOAT: "Quantized models are not drawn: white_float attacks only float models.",
    ThreatModel.WHITE_QNN_EXACT: "Each quantized model attacked through its twin with the deployed rounding, whose "
    "gradient is zero almost everywhere: high accuracy here is gradient masking, not robustness.",
    ThreatModel.WHITE_QNN_STE: "Each quantized model attacked through its twin with straight-through rounding (BPDA), "
    "the adaptive white-box attack.",
    ThreatModel.BLACK_RUNTIME: "Each deployed runtime attacked with its scores or labels only.",
    ThreatModel.TRANSFER: "Each quantized model scored on the sets made white-box on its float parent.",
}


def transfer_figure(rows: Sequence[Result], attack: str, epsilon: float, source_threat: str) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = heat_map_rows(rows, attack, epsilon, source_threat)
    sources = sorted({r.source for r in cells}, key=_precision_order)
    targets = sorted({r.target for r in cells}, key=_precision_order)
    value = {(r.source, r.target): r.robust_accuracy for r in cells}
    grid = [[value[(s, t)] for t in targets] for s in sources]
    fig, ax = plt.subplots(figsize=(0.6 * len(targets) + 3.0, 0.4 * len(sources) + 2.2))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(targets)), targets, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(len(sources)), sources, fontsize=7)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", color="white" if v < 0.5 else "black", fontsize=7)
    ax.set(xlabel="target (deployed runtime)", ylabel=f"source (attacked, {source_threat})")
    fig.colorbar(image, ax=ax, label="robust accuracy")
    fig.tight_layout()
    return Figure(
        heat_map_name(attack, epsilon, source_threat),
        f"Transfer heat map: {attack} at epsilon {epsilon:g}, sets made {source_threat}",
        _png(fig),
        "Read: each cell is the target's robust accuracy (%) on the source's adversarial examples; the diagonal is "
        "each model attacked itself, and a row much darker off the diagonal than on it transfers well.",
    )


def heat_map_name(attack: str, epsilon: float, source_threat: str) -> str:
    return f"transfer_{attack}_eps{epsilon:g}_{source_threat}"


def heat_map_rows(rows: Sequence[Result], attack: str, epsilon: float, source_threat: str) -> list[Result]:
    return [
        r
        for r in rows
        if r.attack == attack
        and r.epsilon == epsilon
        and r.defense == "none"
        and r.source_threat_model == source_threat
    ]


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


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
    "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top;overflow-wrap:break-word}"
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


def signoff_table(
    float_metrics: Sequence[Metrics],
    quant_metrics: Sequence[Metrics],
    *,
    min_float_accuracy: float,
    max_drop_points: float,
) -> Table:
    """Deployment sign-off: float accuracy floor and the largest accuracy drop quantization may cost,
    both read on the validation split (drawn from the training data), never on the test split."""
    by_float = {m["model"]: m for m in float_metrics}
    lines = [
        (
            m["model"],
            f"validation accuracy >= {pct(min_float_accuracy)}",
            f"{pct(m['val_accuracy'])} (n={m['val_samples']})",
            "holds" if m["val_accuracy"] >= min_float_accuracy else "does not hold",
        )
        for m in float_metrics
    ]
    for m in quant_metrics:
        drop = 100 * (by_float[m["float_model"]]["val_accuracy"] - m["val_accuracy"])
        lines.append(
            (
                m["model"],
                f"validation drop vs float <= {max_drop_points:g} points",
                f"{drop:+.2f} points",
                "holds" if drop <= max_drop_points else "does not hold",
            )
        )
    return Table(
        "Sign-off checks",
        ("model", "check", "measured", "verdict"),
        tuple(lines),
        "Every choice reads the validation split (data.val_size images of the training set, disjoint from the "
        "images trained on and from the calibration split): this sign-off and the detector's threshold. The test "
        "split is only reported (the clean accuracy table).",
    )


def findings_table(findings: Mapping[str, Mapping[str, Any]]) -> Table:
    """The findings stage's verdicts, one line per claim, beside the check counts and the rule of its checks."""
    lines = tuple(
        (
            str(record["claim"]),
            str(record["source"]),
            str(record["verdict"]),
            f"{record['supporting']} / {record['contradicting']} / {record['checks']}",
            str(record["check_rule"]),
        )
        for record in findings.values()
    )
    return Table(
        "Findings: the literature's claims on this run",
        ("claim", "source", "verdict", "checks supporting / contradicting / all", "check (one per row of the data)"),
        lines,
        f"Each verdict is computed from this run's result rows and the analysis stage's counts: a claim {AGGREGATE_RULE}. "
        "A check separates when the two 95% intervals do not overlap (Wilson for rates, bootstrap for differences of "
        "medians); the checks that separated are listed in 'Findings: the separating checks', every check in "
        "reports/findings_evidence.json.",
    )


def findings_evidence_table(findings: Mapping[str, Mapping[str, Any]]) -> Table:
    """Per claim, the first checks that separated, with their numbers."""
    lines = []
    for record in findings.values():
        decisive = [e for e in record["evidence"] if not e.endswith("-> undecided")]
        shown = "; ".join(decisive[:3]) + (f"; ... {len(decisive) - 3} more" if len(decisive) > 3 else "")
        lines.append((str(record["claim"]), str(record["verdict"]), shown or "no check separates"))
    return Table(
        "Findings: the separating checks",
        ("claim", "verdict", "checks that separated (first three)"),
        tuple(lines),
        "Each check gives its two rates or its difference with the 95% interval and n, then what it supports.",
    )


def masking_table(flags: Sequence[Mapping[str, str]], checks: Sequence[str]) -> Table:
    """One line per model and threat model with a flag; each check's cell names what it found."""
    cells: dict[tuple[str, str], dict[str, list[str]]] = {}
    for f in flags:
        cells.setdefault((f["model"], f["threat_model"]), {}).setdefault(f["check"], []).append(f["detail"])
    lines = []
    for (model, threat), found in sorted(cells.items()):
        row = [model, threat]
        for check in checks:
            details = found.get(check, [])
            row.append("" if not details else details[0] + (f" (+{len(details) - 1} more)" if len(details) > 1 else ""))
        lines.append(tuple(row))
    return Table(
        "Gradient-masking indicators",
        ("model", "threat model", *checks),
        tuple(lines),
        "Flags of AutoAttack's and Pintor et al.'s (2022) checks that the rows can answer, raised only when the 95% "
        "intervals separate: a black-box attack below the strongest white-box one of its norm and epsilon; robust "
        "accuracy rising with epsilon; an unbounded attack fooling under 95%; random noise below a gradient attack; most "
        "input gradients all zero; most samples a traced PGD could not flip stopped improving their loss by a quarter "
        "of its steps (analysis.trace). Models and threat models with no flag are not listed.",
    )


def analysis_table(analysis: Mapping[str, Mapping[str, Any]]) -> Table:
    """Per quantized model, the analysis stage's mechanism measurements at the largest analysed epsilon."""
    lines = []
    for record in analysis.values():
        f = record["float"]
        for name, m in record.items():
            if name in ("float", "samples"):
                continue
            eps = max((k.split("eps=")[1] for k in m if k.startswith("flip/adversarial/")), key=float)
            tag = f"eps={eps}"

            def shift(kind: str, m: Mapping[str, Any] = m, tag: str = tag) -> str:
                values = list(m.get(f"bin_shift/{kind}/{tag}", {}).values())
                return f"{100 * sum(values) / len(values):.1f}%" if values else "(no quantized activations)"

            cos, change = m["grad_cosine/ste"], m[f"output_change/adversarial/{tag}"]
            lines.append(
                (
                    name,
                    f"{cos['median']:.3f} [{cos['q1']:.3f}, {cos['q3']:.3f}]",
                    pct(m["zero_gradient/exact"]["rate"]),
                    f"{shift('adversarial')} / {shift('noise')}",
                    f"{pct(m[f'flip/adversarial/{tag}']['rate'])} / {pct(f[f'flip/adversarial/{tag}']['rate'])}",
                    f"{pct(m[f'flip/noise/{tag}']['rate'])} / {pct(f[f'flip/noise/{tag}']['rate'])}",
                    f"{num(change['quantized']['median'])} / {num(change['float']['median'])}",
                    f"{pct(m[f'transfer_retention/{tag}']['rate'])} of {m[f'transfer_retention/{tag}']['n']}",
                    f"{record['samples']} ({m[f'flip/adversarial/{tag}']['n']} moved) at eps {eps}",
                )
            )
    return Table(
        "Mechanisms: gradient agreement, quantization shift and flip rates",
        (
            "quantized model",
            "gradient cosine with float, straight-through (median [quartiles])",
            "all-zero gradients, exact twin",
            "activation values changing bin: adversarial / same-size noise",
            "prediction flips under the float model's attack: quantized / float",
            "prediction flips under same-size random noise: quantized / float",
            "relative change of the logits, median: quantized / float",
            "float examples that fooled the float model and fool this one",
            "samples",
        ),
        tuple(lines),
        "Measured by the analysis stage on the float model's white-box examples and on random noise of each example's L2 "
        "size, counting only the samples the attack moved; per-layer figures are in reports/analysis/<model>.json.",
    )


@dataclass(frozen=True)
class DefenseStudy:
    """What the defense table reads: the defend stages' rows and the settings that made them."""

    rows: Sequence[Result]
    attack: str
    composite: str  # run after the adaptive attack on the samples it left
    epsilons: Sequence[float]
    baselines: Sequence[str]  # the undefended standard models the defenses are compared with
    defenses: Sequence[str]  # test-time defenses, then train-based recipes, in params order
    note: str = ""


def build_report(
    rows: Sequence[Result],
    float_metrics: Sequence[Metrics],
    quant_metrics: Sequence[Metrics],
    *,
    attacks: Mapping[str, Sequence[float]],
    curves: Mapping[ThreatModel, str],
    heat_maps: Sequence[tuple[str, float]],
    defense: DefenseStudy | None,
    min_float_accuracy: float,
    max_drop_points: float,
    findings: Mapping[str, Mapping[str, Any]] | None = None,
    masking: tuple[Sequence[Mapping[str, str]], Sequence[str]] | None = None,
    analysis: Mapping[str, Mapping[str, Any]] | None = None,
    convergence: Sequence[Mapping[str, Any]] = (),
    provenance: Mapping[str, Any] | None = None,
    headline: tuple[str, float] | None = None,
    summary: Sequence[str] = (),
) -> Report:
    sections: list[Table | Figure] = [*([findings_table(findings)] if findings else [])]
    if headline is not None:
        sections.append(headline_table(rows, *headline, curves.get(ThreatModel.WHITE_FLOAT)))
    sections += [
        *(robustness_figure(rows, threat, attack) for threat, attack in curves.items()),
        signoff_table(
            float_metrics, quant_metrics, min_float_accuracy=min_float_accuracy, max_drop_points=max_drop_points
        ),
        clean_table(rows, float_metrics, quant_metrics),
        quantization_table(float_metrics, quant_metrics),
        *attack_tables(rows, attacks),
        boundary_table(rows, convergence),
        *([convergence_table(convergence)] if convergence else []),
    ]
    if findings:
        sections.append(findings_evidence_table(findings))
    if masking is not None:
        sections.append(masking_table(*masking))
    if analysis:
        sections.append(analysis_table(analysis))
    for attack, epsilon in heat_maps:
        for source_threat in sorted({r.source_threat_model for r in rows if r.attack == attack}):
            sections.append(transfer_figure(rows, attack, epsilon, source_threat))
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
            )
        )
    if provenance is not None:
        sections.append(provenance_table(provenance))
    lead = int(bool(findings)) + int(headline is not None)
    return Report("qrobust report", list(summary), sections, lead)


def provenance_table(record: Mapping[str, Any]) -> Table:
    """Where and with what this study ran, from reports/provenance.json."""
    git = record["git"]
    lines = [
        ("git commit", f"{git['commit'] or 'n/a'}{' (work tree dirty)' if git['dirty'] else ''}"),
        ("Python", record["python"]),
        ("packages", ", ".join(f"{k} {v}" for k, v in record["packages"].items() if v)),
        ("seed", str(record["seed"])),
        *((f"dataset {k}", json.dumps(v, sort_keys=True)) for k, v in record["dataset"].items()),
    ]
    for group in record["stage_machines"]:
        m = group["machine"]
        if m is None:
            lines.append(
                (f"machine of {len(group['stages'])} timed stages", "not recorded (timing files of an older run)")
            )
            continue
        cpu, threads = m["cpu"], m["threads"]
        lines.append(
            (
                f"machine of {len(group['stages'])} timed stages",
                f"{cpu['model']}; VNNI {'yes' if cpu['vnni'] else 'no'}; flags {' '.join(cpu['kernel_flags'])}; "
                f"{threads['usable_cpus']} usable CPUs, torch {threads['torch_threads']} threads"
                f"{'; CUDA ' + m['cuda'] if m['cuda'] else ''}",
            )
        )
    return Table(
        "Provenance",
        ("what", "value"),
        tuple(lines),
        "Timings depend on the machine (int8 kernels on VNNI); no cached model or attack output does.",
    )


def plot_rows(
    rows: Sequence[Result], curves: Mapping[ThreatModel, str], heat_maps: Sequence[tuple[str, float]]
) -> dict[str, list[dict[str, Any]]]:
    """Long-format tables for the plots dvc.yaml declares (templates in .dvc/plots/), keyed by the
    file name under reports/plots/: robust_vs_epsilon/<threat>.csv and transfer/<heat map>.csv."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for threat, attack in curves.items():
        tables[f"robust_vs_epsilon/{threat.value}"] = [
            {
                "arch": r.target_arch,
                "model": r.target,
                "attack": r.attack,
                "epsilon": r.epsilon,
                "robust_accuracy": round(r.robust_accuracy, 4),
            }
            for r in curve_rows(rows, threat, attack)
        ]
    for attack, epsilon in heat_maps:
        for source_threat in sorted({r.source_threat_model for r in rows if r.attack == attack}):
            tables[f"transfer/{heat_map_name(attack, epsilon, source_threat)}"] = [
                {"source": r.source, "target": r.target, "robust_accuracy": round(r.robust_accuracy, 4)}
                for r in heat_map_rows(rows, attack, epsilon, source_threat)
            ]
    return tables
