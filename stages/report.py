"""report: results.csv + stage metrics -> reports/index.html, reports/report.md, figures, plot data."""

from __future__ import annotations

from pathlib import Path

from qrobust.attacks.catalogue import departures
from qrobust.evaluation.results import read_results
from qrobust.findings.headline import study_budget
from qrobust.findings.masking import CHECKS
from qrobust.pipeline.io import load_json, save_json, write_text
from qrobust.pipeline.layout import PREPARED, REPORTS, TIMING, model_dir, timing_path
from qrobust.pipeline.model_id import ModelId
from qrobust.pipeline.process import run_stage
from qrobust.pipeline.provenance import provenance
from qrobust.report.bit_width import sweep_section
from qrobust.report.figures import plot_csv, plot_rows
from qrobust.report.page import DefenseResults, build_report, replicates_summary, write_pages
from qrobust.report.study_tables import defense_note
from qrobust.report.substitutes import study_substitutes
from qrobust.settings.defend import DefendSettings
from qrobust.settings.study import load_study


def main() -> None:
    study = load_study()
    settings, data, defend = study.report, study.prepare, study.defend
    attacks = {a.name: a.epsilons for a in study.attack.attacks}
    heat_maps = [(h.attack, h.epsilon) for h in settings.heat_maps]
    # The tables read the models of the study's seed; the replicates (train.seeds) give the headline its spread.
    # The bit-width sweep's own models have a section of their own, and stay out of the others.
    rows, replicates, every_row = [], [], read_results(REPORTS / "results.csv")
    for r in every_row:
        if not (study.sweep_only(ModelId.parse(r.target)) or study.sweep_only(ModelId.parse(r.source))):
            (rows if ModelId.parse(r.target).seed is None else replicates).append(r)
    timing = {
        m: load_json(timing_path("quantize", str(m.parent)))[m.quantizer]
        if m.quantizer
        else load_json(timing_path("train", str(m)))
        for m in study.primary_models()
    }
    metrics = {
        m: {**load_json(model_dir(m) / "metrics.json"), **{k: v for k, v in t.items() if k != "machine"}}
        for m, t in timing.items()
    }
    float_metrics = [v for m, v in metrics.items() if m.quantizer is None and not study.sweep_only(m)]
    quant_metrics = [v for m, v in metrics.items() if m.quantizer is not None and not study.sweep_only(m)]
    n_eval = max(r.n for r in rows)
    names = [*defend.defenses, *defend.recipes]
    defense_metrics = {name: load_json(REPORTS / "defenses" / f"{name}.json")["defense"][name] for name in names}
    composite = {
        randomised: departures(defend.composite, defend.composite_attack(study.attack, randomised).options)
        for randomised in (False, True)
    }
    defense = DefenseResults(
        rows=[r for name in names for r in read_results(REPORTS / "defenses" / f"{name}.csv")],
        attack=defend.attack,
        composite=defend.composite,
        epsilons=defend.epsilons,
        baselines=[str(ModelId(a, DefendSettings.BASELINE)) for a in defend.archs],
        defenses=names,
        note=defense_note(defense_metrics, defend.epsilons[-1]),
        settings=(
            f"{defend.composite} as run here, against its defaults (AutoAttack's standard version): on "
            f"deterministic systems, {composite[False] or 'the defaults'}; through a randomised defense and on "
            f"the bare model it is compared with, {composite[True] or 'the defaults'}."
        ),
    )
    evidence = load_json(REPORTS / "findings_evidence.json")
    record = provenance(
        Path.cwd(),
        load_json(PREPARED / "manifest.json"),
        data.seed,
        {f"{p.parent.name}@{p.stem}": load_json(p).get("machine") for p in sorted(TIMING.rglob("*.json"))},
    )
    save_json(REPORTS / "provenance.json", record)
    analysed = {m: load_json(REPORTS / "analysis" / f"{m}.json") for m in study.train.primary_ids()}
    report = build_report(
        rows,
        float_metrics,
        quant_metrics,
        attacks=attacks,
        departures={a.name: departures(a.name, a.options) for a in study.attack.attacks},
        curves=settings.curves,
        heat_maps=heat_maps,
        defense=defense,
        min_float_accuracy=settings.min_float_accuracy,
        max_drop_points=settings.max_quant_drop_points,
        findings=evidence["findings"],
        masking=(evidence["masking_flags"], CHECKS),
        analysis={str(m): a["analysis"][str(m)] for m, a in analysed.items()},
        convergence=[check for a in analysed.values() for check in a["convergence"]],
        provenance=record,
        headline=study_budget(study),
        summary=[
            f"Dataset {data.dataset}, seed {data.seed}; {len(float_metrics)} float models, {len(quant_metrics)} quantized models; "
            f"{len(attacks)} attacks; every adversarial set scored on every model's deployed runtime (ONNX Runtime session or "
            f"INC module); evaluation subset n={n_eval}, each attack on a seeded part of it (its n is in each cell).",
            "Rates carry 95% Wilson intervals in brackets.",
            *replicates_summary(study.train.seeds, {r.target for r in replicates}, study.quantize.replicate_quantizers),
        ],
        replicates=replicates,
        evasion=load_json(REPORTS / "evasion.json"),
        substitutes=study_substitutes(study, every_row),
        bit_width=sweep_section(
            study.sweep_models(), metrics, every_row, load_json(REPORTS / "worst_case.json")["by_threat"]
        ),
    )
    write_pages(report, REPORTS, "report.md")
    for name, records in plot_rows(rows, settings.curves, heat_maps).items():
        if records:
            write_text(REPORTS / "plots" / f"{name}.csv", plot_csv(records))
    print(f"wrote {REPORTS / 'index.html'} and {REPORTS / 'report.md'}")


if __name__ == "__main__":
    run_stage("report", main)
