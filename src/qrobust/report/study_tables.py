"""Tables about the study's verdicts: the defense study, the sign-off, provenance (the findings have their own module)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import Result
from qrobust.pipeline.model_id import ModelId
from qrobust.report.format import Metrics, Table, _index, pct, points
from qrobust.report.model_tables import _precision_order


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
    settings: str = "",
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
        + (f" {settings}" if settings else "")
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
