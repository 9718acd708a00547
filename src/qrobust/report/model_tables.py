"""Tables about the study's models: clean and quantized accuracy, attacks, headline, convergence, boundary, masking, mechanisms."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import Result
from qrobust.findings.headline import HEADLINE_RULE, Headline, headlines, seed_spread
from qrobust.pipeline.model_id import ModelId
from qrobust.report.format import Metrics, Table, _distance, num, pct, points, with_ci


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


def attack_tables(
    rows: Sequence[Result], attacks: Mapping[str, Sequence[float]], departures: Mapping[str, str] | None = None
) -> list[Table]:
    """Every attack on every model it was made on, at the middle of its epsilon grid: one table per
    architecture (its float model and quantized models as columns), so none is wider than the page.
    ``departures`` names, per attack, the settings the study runs that depart from its defaults (for
    AutoAttack, its standard version); the note lists them."""
    cut = "; ".join(f"{name}: {text}" for name, text in (departures or {}).items() if text and name in attacks)
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
        # Columns by precision only (the title names the architecture): six models fit the page.
        precisions = [ModelId.parse(m).precision for m in models]
        tables.append(
            Table(
                f"Every attack on {arch} ({', '.join(models)}): robust accuracy at the middle of its epsilon grid",
                ("attack", "threat model", "epsilon (norm)", "queries / sample", *precisions),
                tuple(lines),
                "White-box attacks on quantized models go through the twin (exact: rounding as deployed; ste: "
                "straight-through); black-box attacks query the deployed runtime. Every number is the deployed "
                "runtime's accuracy on the adversarial examples; an empty cell means the attack is not made on that "
                "model under that threat model."
                + (
                    f" Settings that depart from the attack's defaults (AutoAttack's: its standard version): {cut}."
                    if cut
                    else ""
                ),
            )
        )
    return tables


def headline_table(rows: Sequence[Result], norm: str, epsilon: float, reference: str | None = None) -> Table:
    """Float vs each quantized model, per architecture: clean accuracy and the per-sample worst-case robust
    accuracy at the headline budget (``qrobust.findings.headline``), beside the ``reference`` attack's own figure."""
    every = headlines(rows, norm, epsilon, reference)
    seeds = seed_spread(every)
    found = {h.model: h for h in every if ModelId.parse(h.model).seed is None}
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
        text += "" if r is None else f"; {r.attack} alone {pct(r.robust_accuracy)} n={r.n}"
        spread = seeds.get(h.model)
        if spread is not None:
            each = " / ".join(pct(v) for v in spread.values)
            text += (
                f"; across {len(spread.values)} seeds {each}: mean {pct(spread.mean)} "
                f"[{pct(spread.low)}, {pct(spread.high)}], sd {100 * spread.sd:.1f} points"
            )
        return text

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
        "numbers reports/headline.json gives DVC (dvc exp show, dvc metrics diff). 'across seeds': the same model "
        "trained again at train.seeds (first the study's seed), each seed's worst case, their mean with a 95% "
        "interval that holds training randomness as well as the samples drawn (docs/reproducibility.md), and the "
        "between-seed sd.",
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


WHITE_BOX = (ThreatModel.WHITE_FLOAT.value, ThreatModel.WHITE_QNN_EXACT.value, ThreatModel.WHITE_QNN_STE.value)


def boundary_table(
    rows: Sequence[Result],
    convergence: Sequence[Mapping[str, Any]] = (),
    norm: str | None = None,
    white: bool | None = None,
) -> Table:
    """Median minimal perturbation of the minimisation attacks: the distance to the decision boundary,
    flagged where the attack's convergence check failed; one ``norm``'s attacks (every norm: None), the
    white-box ones or the others (black-box and the worst case; both: None)."""
    checked = {(c["attack"], c["threat_model"], c["source"]): c for c in convergence}
    unbounded = [
        r
        for r in rows
        if _own(r)
        and r.defense == "none"
        and math.isinf(r.epsilon)
        and norm in (None, r.norm)
        and white in (None, r.threat_model in WHITE_BOX)
    ]
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
        "Distance to the decision boundary"
        + (
            f" ({norm}{'' if white is None else ', white-box' if white else ', black-box and worst case'})"
            if norm
            else ""
        )
        + ": median minimal perturbation over every sample, a sample without an adversarial counting as farther "
        "than any distance tried (share of samples one was found for)",
        ("model", *(f"{a} ({norm}, {t})" for a, t, norm in attacks)),
        tuple(lines),
        "Unclipped outputs of the minimisation attacks, scored on the deployed runtime, over the samples the model gets "
        "right clean. 'beyond' when the attack failed on half or more: the median lies past every distance it tried. "
        "The median over found samples alone (results.csv, *_median_success) would make a model the attack fails on "
        "more often look closer to the boundary. NOT CONVERGED: doubling the attack's steps moved its median by 5% or "
        "more (the convergence table).",
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
