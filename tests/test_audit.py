"""The audit on two run folders written here: a planted change beyond noise and one within it, the seeds'
share of the noise, verdicts, the exit status and the page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import Result, read_results, write_results
from qrobust.pipeline.model_id import ModelId
from qrobust.tools.audit import BEYOND, IDENTICAL, ONE_RUN, WITHIN, audit, main, read_run
from tests.browser import assert_reads_in_the_window
from tests.test_findings import row

LENET = [ModelId("lenet", "standard", "q8", seed) for seed in (None, 1, 2)]
RESNET = ModelId("resnet8", "standard", "q8")


def rates(lenet: float = 0.60, resnet: float = 0.50) -> dict[ModelId, float]:
    """The white-box robust accuracy of each model: the replicates spread 4 points either side."""
    return {LENET[0]: lenet, LENET[1]: 0.56, LENET[2]: 0.64, RESNET: resnet}


def write_run(folder: Path, robust: dict[ModelId, float], verdict: str = "holds", condition: str = "holds") -> Path:
    rows: list[Result] = []
    for model, rate in robust.items():
        rows += [row(0.9, ThreatModel.CLEAN, 0.0, model), row(rate, ThreatModel.WHITE_QNN_STE, 0.05, model)]
    (folder / "reports" / "defenses").mkdir(parents=True)
    write_results(folder / "reports" / "results.csv", rows)
    write_results(
        folder / "reports" / "defenses" / "blur.csv",
        [row(0.7, ThreatModel.WHITE_FLOAT, 0.05, LENET[0], defense="blur")],
    )
    (folder / "reports" / "findings.json").write_text(json.dumps({"findings": {"masking": {"verdict": verdict}}}))
    evidence = {
        "masking": {"conditions": [{"condition": "lenet-standard.q8 (w8a8)", "verdict": condition}], "placebo": []}
    }
    (folder / "reports" / "findings_evidence.json").write_text(json.dumps({"findings": evidence}))
    params = {"report": {"curves": {"white_float": "pgd"}}, "defend": {"defenses": {"blur": {}}, "recipes": []}}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder


def statuses(result) -> dict[str, str]:
    return {n.label: n.status for n in result.numbers}


def test_a_change_beyond_noise_fails_the_audit_and_one_within_it_does_not(tmp_path: Path) -> None:
    committed = write_run(tmp_path / "committed", rates())
    # Planted: LeNet's row drops 30 points (beyond any noise); ResNet-8's moves by 4 samples of 400 (within).
    rerun = write_run(
        tmp_path / "rerun", rates(lenet=0.30, resnet=0.49), verdict="inconclusive", condition="does not hold"
    )
    # And a model the committed run lacks: listed apart, and failing the audit as well.
    extra = ModelId("dscnn", "standard")
    results = rerun / "reports" / "results.csv"
    added = [row(0.9, ThreatModel.CLEAN, 0.0, extra), row(0.4, ThreatModel.WHITE_FLOAT, 0.05, extra)]
    write_results(results, [*read_results(results), *added])
    result = audit(read_run(tmp_path, str(committed)), read_run(tmp_path, str(rerun)))
    found = statuses(result)
    assert found[f"{LENET[0]}: pgd white_qnn_ste eps 0.05"] == BEYOND
    assert found[f"{RESNET}: pgd white_qnn_ste eps 0.05"] == WITHIN
    assert found[f"{LENET[1]}: pgd white_qnn_ste eps 0.05"] == IDENTICAL
    assert found[f"{LENET[0]}: pgd clean eps 0"] == IDENTICAL
    assert found[f"{LENET[0]}: pgd white_float eps 0.05"] == IDENTICAL  # the defense study's row
    assert found[f"{extra}: pgd white_float eps 0.05"] == ONE_RUN
    verdicts = {v[0]: v[3] for v in result.verdicts}
    assert verdicts["masking: overall"] == WITHIN  # holds -> inconclusive: one run decides, the other cannot
    assert verdicts["masking: lenet-standard.q8 (w8a8)"] == BEYOND  # holds -> does not hold
    out = tmp_path / "page"
    assert main([str(rerun), "--against", str(committed), "--repo", str(tmp_path), "--out", str(out)]) == 1
    assert (
        "FAILS: of 11 numbers, 7 identical, 1 within noise, 1 beyond, 2 in one run only"
        in (out / "audit.md").read_text()
    )
    assert_reads_in_the_window(out / "index.html", tmp_path, images=0)


def test_the_seeds_widen_the_noise_and_a_run_within_it_passes(tmp_path: Path) -> None:
    # An 8-point move: beyond sampling noise alone (400 samples), within it once the replicates' spread
    # (4 points either side) counts.
    committed = write_run(tmp_path / "committed", rates())
    rerun = write_run(tmp_path / "rerun", rates(lenet=0.52))
    result = audit(read_run(tmp_path, str(committed)), read_run(tmp_path, str(rerun)))
    assert result.seed_df > 0 and statuses(result)[f"{LENET[0]}: pgd white_qnn_ste eps 0.05"] == WITHIN
    assert main([str(rerun), "--against", str(committed), "--repo", str(tmp_path), "--out", str(tmp_path / "p")]) == 0

    alone = {m: r for m, r in rates().items() if m.seed is None}
    no_seeds = write_run(tmp_path / "no_seeds", alone)
    moved = write_run(tmp_path / "moved", {**alone, LENET[0]: 0.52})
    result = audit(read_run(tmp_path, str(no_seeds)), read_run(tmp_path, str(moved)))
    assert result.seed_df == 0 and statuses(result)[f"{LENET[0]}: pgd white_qnn_ste eps 0.05"] == BEYOND


def test_a_run_audited_against_itself_is_identical_and_a_missing_file_is_named(tmp_path: Path) -> None:
    committed = write_run(tmp_path / "committed", rates())
    shutil.copytree(committed, tmp_path / "copy")
    result = audit(read_run(tmp_path, str(committed)), read_run(tmp_path, str(tmp_path / "copy")))
    assert {n.status for n in result.numbers} == {IDENTICAL} and not result.beyond
    (tmp_path / "copy" / "reports" / "findings.json").unlink()
    try:
        main(
            [str(tmp_path / "copy"), "--against", str(committed), "--repo", str(tmp_path), "--out", str(tmp_path / "p")]
        )
    except SystemExit as exc:
        assert "findings.json: missing" in str(exc)
    else:
        raise AssertionError("a run without its findings must not be audited")
