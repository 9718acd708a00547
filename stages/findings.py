"""findings: result rows of the attack suite and the defense study, and the analysis of each float model
-> verdicts on the literature's claims.

Each claim is one primary hypothesis (qrobust.findings.evidence) judged per condition against
``findings.claims`` with Holm's procedure over the claim's conditions; the placebo quantizer is judged
apart, as the negative control. Writes ``reports/headline.json`` (the study's DVC metrics: per model its
clean accuracy and the robust accuracy the strongest attack left at the headline budget, per claim its
verdict), ``reports/findings.json`` (per claim its verdict, how many conditions gave each verdict, and the
placebo's; per gradient-masking indicator how many flags it raised) and ``reports/findings_evidence.json``
(per claim its hypothesis, threshold and every condition's test; every flag with its numbers), which the
report renders first.
"""

from __future__ import annotations

from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.threats import Kind, ThreatModel
from qrobust.evaluation.results import read_results
from qrobust.findings.claims import judge, study_scope
from qrobust.findings.headline import headline_metrics, headlines, study_budget
from qrobust.findings.masking import CHECKS, masking_flags
from qrobust.pipeline.io import load_json, save_json
from qrobust.pipeline.layout import REPORTS
from qrobust.pipeline.model_id import ModelId
from qrobust.pipeline.process import run_stage
from qrobust.settings.study import load_study


def main() -> None:
    study = load_study()
    defend = study.defend
    suite = read_results(REPORTS / "results.csv")
    rows = list(suite)
    metrics = {}
    for name in [*defend.defenses, *defend.recipes]:
        rows += read_results(REPORTS / "defenses" / f"{name}.csv")
        metrics[name] = load_json(REPORTS / "defenses" / f"{name}.json")["defense"][name]
    norm, epsilon = study_budget(study)
    scope = study_scope(
        study,
        defended={
            (r.defense, r.target, r.epsilon): r
            for r in rows
            if r.defense != "none" and r.threat_model == ThreatModel.WORST_CASE.value
        },
        pairs=load_json(REPORTS / "pairs.json"),
        analysis={
            str(m): load_json(REPORTS / "analysis" / f"{m}.json")["analysis"][str(m)] for m in study.train.model_ids()
        },
        defenses=metrics,
        evasion=load_json(REPORTS / "evasion.json"),
    )
    findings = judge(scope, study.findings)
    records = {f.entry.key: f.record() for f in findings}
    noise = [a.name for a in study.attack.attacks if ATTACKS.get(a.name).kind is Kind.NOISE]
    flags = [f.record() for f in masking_flags(rows, noise, scope.analysis)]
    save_json(REPORTS / "findings_evidence.json", {"findings": records, "masking_flags": flags})
    keep = ("source", "verdict", "counts")
    counts = {check: sum(f["check"] == check for f in flags) for check in CHECKS}
    summary = {
        k: {**{f: r[f] for f in keep}, "placebo": [c["verdict"] for c in r["placebo"]]} for k, r in records.items()
    }
    save_json(REPORTS / "findings.json", {"findings": summary, "masking_flags": counts})
    verdicts = {k: r["verdict"] for k, r in records.items()}
    # DVC's headline (at most 50 numbers for `dvc exp show`): the study's models; the bit-width sweep's have their
    # own table in the report, and the placebo's numbers are its float model's by construction.
    main = [r for r in suite if not study.sweep_only(t := ModelId.parse(r.target)) and not scope.is_placebo(t)]
    save_json(REPORTS / "headline.json", headline_metrics(headlines(main, norm, epsilon), norm, epsilon, verdicts))
    for f in findings:
        placebo = f" (placebo: {', '.join(j.verdict.value for j in f.placebo)})" if f.placebo else ""
        print(f"{f.entry.source}: {f.entry.claim} -> {f.verdict.value} over {len(f.judged)} conditions{placebo}")


if __name__ == "__main__":
    run_stage("findings", main)
