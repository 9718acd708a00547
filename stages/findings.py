"""findings: result rows of the attack suite and the defense study, and the analysis of each float model
-> verdicts on the literature's claims.

Writes ``reports/headline.json`` (the study's DVC metrics: per model its clean accuracy and the robust
accuracy the strongest attack left at the headline budget, per claim its verdict), ``reports/findings.json``
(per claim its verdict and how many checks support or contradict it; per gradient-masking indicator how many
flags it raised) and ``reports/findings_evidence.json`` (per claim the rule and every check's numbers; every
flag with its numbers), which the report renders first.
"""

from __future__ import annotations

from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.threats import Kind
from qrobust.defenses.catalogue import DefenseKind, create_defense
from qrobust.evaluation.results import read_results
from qrobust.findings.claims import judge
from qrobust.findings.evidence import Scope
from qrobust.findings.headline import headline_metrics, headlines, study_budget
from qrobust.findings.masking import CHECKS, masking_flags
from qrobust.pipeline.io import load_json, save_json
from qrobust.pipeline.layout import REPORTS
from qrobust.pipeline.process import run_stage
from qrobust.settings.study import load_study

DQ_RECIPE = "dq"  # Defensive Quantization (Lin et al. 2019), judged when the defense study trains it


def main() -> None:
    study = load_study()
    defend = study.defend
    kinds = {name: create_defense(name, options).kind for name, options in defend.defenses.items()}
    scope = Scope(
        attack=defend.attack,
        floats=study.train.model_ids(),
        quantizers=study.quantize.quantizers,
        defense_epsilons=defend.epsilons,
        preprocessors=tuple(n for n, k in kinds.items() if k is DefenseKind.PREPROCESSOR),
        ensembles=tuple(n for n, k in kinds.items() if k is DefenseKind.ENSEMBLE),
        dq_recipe=DQ_RECIPE if DQ_RECIPE in defend.recipes else None,
        analysis={
            str(m): load_json(REPORTS / "analysis" / f"{m}.json")["analysis"][str(m)] for m in study.train.model_ids()
        },
        recipes={n: load_json(REPORTS / "defenses" / f"{n}.json")["defense"][n] for n in defend.recipes},
    )
    suite = read_results(REPORTS / "results.csv")
    rows = list(suite)
    for name in [*defend.defenses, *defend.recipes]:
        rows += read_results(REPORTS / "defenses" / f"{name}.csv")
    findings = judge(rows, scope)
    records = {f.key: f.record() for f in findings}
    noise = [a.name for a in study.attack.attacks if ATTACKS.get(a.name).kind is Kind.NOISE]
    flags = [f.record() for f in masking_flags(rows, noise, scope.analysis)]
    save_json(REPORTS / "findings_evidence.json", {"findings": records, "masking_flags": flags})
    keep = ("source", "verdict", "checks", "supporting", "contradicting")
    counts = {check: sum(f["check"] == check for f in flags) for check in CHECKS}
    metrics = {"findings": {k: {f: r[f] for f in keep} for k, r in records.items()}, "masking_flags": counts}
    save_json(REPORTS / "findings.json", metrics)
    norm, epsilon = study_budget(study)
    verdicts = {k: r["verdict"] for k, r in records.items()}
    save_json(REPORTS / "headline.json", headline_metrics(headlines(suite, norm, epsilon), norm, epsilon, verdicts))
    for f in findings:
        print(f"{f.source}: {f.claim} -> {f.verdict.value} ({len(f.evidence)} checks)")


if __name__ == "__main__":
    run_stage("findings", main)
