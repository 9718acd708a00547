"""The smoke study through a real `dvc repro` in a temporary copy of the project."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import yaml

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import read_results
from qrobust.findings.claims import CLAIMS
from qrobust.findings.evidence import Verdict
from qrobust.pipeline.io import PARTIAL, load_json
from qrobust.pipeline.model_id import ModelId
from qrobust.quantization.catalogue import QUANTIZERS
from qrobust.settings.study import Study
from qrobust.tools.pipelines import LOCKS, address, stage_name
from qrobust.tools.study import materialize
from tests.browser import assert_reads_in_the_window
from tests.conftest import DVC, ROOT, dvc, locked_outs, venv_env
from tests.test_quantizers import LOGIT_TOLERANCE

pytestmark = pytest.mark.slow


def test_results_are_complete_and_sane(smoke: Path) -> None:
    check_results(smoke)


def check_results(smoke: Path) -> None:
    """Every model is attacked every way, and the strongest PGD lowers every float model's accuracy."""
    params = yaml.safe_load((smoke / "params.yaml").read_text())
    rows = read_results(smoke / "reports" / "results.csv")
    models = [f"{a}-{r}" for a in params["train"]["archs"] for r in params["train"]["recipes"]]
    targets = {*models, *(f"{m}.{q}" for m in models for q in params["quantize"]["quantizers"])}
    swept = [m for m in models if m.partition("-")[0] in params["quantize"]["sweep_archs"]]
    targets |= {f"{m}.{q}" for m in swept for q in params["quantize"]["sweep"]}  # the bit-width sweep
    qat = [f"{a}-{r}" for a in params["quantize"]["sweep_archs"] for r in params["quantize"]["qat_recipes"]]
    targets |= {*qat, *(f"{m}.{q}" for m in qat for q in params["quantize"]["qat_widths"])}  # and its QAT models
    for key in replicate_stage_keys(params):
        arch, recipe, seed = key.split("-")
        replicate = f"{arch}-{recipe}-s{seed}"
        targets |= {replicate, *(f"{replicate}.{q}" for q in params["quantize"]["replicate_quantizers"])}
    assert {r.target for r in rows} == targets
    assert {r.source for r in rows} == targets  # black-box attacks are made on every deployed runtime
    # Each seed is a family of its own: no set made at one seed is scored on a model of another.
    assert all(ModelId.parse(r.source).seed == ModelId.parse(r.target).seed for r in rows)
    assert {r.threat_model for r in rows} == {t.value for t in ThreatModel}
    assert {r.attack for r in rows} - {"none", "worst_case"} == set(params["attack"]["attacks"])
    for r in rows:
        assert (r.threat_model == ThreatModel.TRANSFER.value) == (r.source != r.target), r
    # The per-sample worst case: robust only where clean-correct, and never above any set that reached the model.
    for w in (r for r in rows if r.threat_model == ThreatModel.WORST_CASE.value):
        sets = [
            r
            for r in rows
            if (r.target, r.norm, r.epsilon, r.defense) == (w.target, w.norm, w.epsilon, "none")
            and r.attack != w.attack
        ]
        assert sets and w.n_correct <= w.n_attackable, w
        assert w.n_correct <= min(r.n_correct + w.n - r.n for r in sets), w
    # Per threat model, the worst case over its sets alone: never below the worst case over all sets, never
    # above any one of its sets (each on its own samples), and its threat models are those of the sets.
    by_threat = load_json(smoke / "reports" / "worst_case.json")["by_threat"]
    for w in (r for r in rows if r.threat_model == ThreatModel.WORST_CASE.value and math.isfinite(r.epsilon)):
        per_threat = by_threat[f"{w.target}/{w.norm}/eps={w.epsilon:g}"]
        sets = [
            r for r in rows if (r.target, r.norm, r.epsilon) == (w.target, w.norm, w.epsilon) and r.attack != w.attack
        ]
        assert set(per_threat) == {r.threat_model for r in sets}, w
        for threat, counts in per_threat.items():
            assert counts["robust"] >= w.n_correct - (w.n - counts["n"]), (w, threat)
            for r in (r for r in sets if r.threat_model == threat):
                assert counts["robust"] <= r.n_correct + counts["n"] - r.n, (w, threat, r)
    # Each set made on its source holds the samples params give it there: a replicate at most attack.replicate_samples.
    study = Study.from_params(params)
    settings = study.attack
    made = [r for r in rows if r.source == r.target and r.attack in params["attack"]["attacks"]]
    assert any(r.n < settings.get(r.attack).samples_for(ThreatModel(r.threat_model)) for r in made)  # the cap bites
    for r in made:
        source = ModelId.parse(r.source)
        config = settings.get(r.attack)
        assert r.n == settings.samples_on(
            config, ThreatModel(r.threat_model), source, swept=study.sweep_only(source)
        ), r
    pgd_eps = max(params["attack"]["attacks"]["linf_pgd"]["epsilons"])
    for model in models:
        clean = next(r for r in rows if r.threat_model == "clean" and r.target == model and r.defense == "none")
        attacked = next(
            r
            for r in rows
            if r.threat_model == "white_float"
            and r.attack == "linf_pgd"
            and r.epsilon == pgd_eps
            and r.target == model
            and r.defense == "none"
        )
        assert attacked.robust_accuracy < clean.robust_accuracy, model


# Test-accuracy points a quantized model may lose against its float parent on the smoke study, by nominal
# weight bits. Measured on LeNet (1,000 test images): at most 0.3 at 8 bits, 0.6 at 4 bits (DS-CNN lost 4.9).
MAX_DROP_POINTS = {16: 0.2, 8: 1.5, 4: 6.0}  # 16: the placebo, numerically the float model


def test_every_quantizer_keeps_accuracy_and_a_faithful_twin(smoke: Path) -> None:
    check_quantizers(smoke)


def check_quantizers(smoke: Path) -> None:
    params = yaml.safe_load((smoke / "params.yaml").read_text())
    quantize = params["quantize"]
    narrow = (*quantize["sweep"], *quantize["qat_widths"])  # one width for weights and activations, below 8
    deployed = [
        *((a, "standard", q) for a in params["train"]["archs"] for q in quantize["quantizers"]),
        *((a, "standard", q) for a in quantize["sweep_archs"] for q in quantize["sweep"]),
        *((a, r, q) for a in quantize["sweep_archs"] for r in quantize["qat_recipes"] for q in quantize["qat_widths"]),
    ]
    for arch, recipe, quantizer in deployed:
        m = load_json(smoke / "models" / "quant" / f"{arch}-{recipe}" / quantizer / "metrics.json")
        if quantizer in narrow:  # no accuracy floor
            assert m["activation_bits"] == m["nominal_weight_bits"] < 8, m
        else:
            drop = 100 * (m["float_test_accuracy"] - m["test_accuracy"])
            assert drop <= MAX_DROP_POINTS[m["nominal_weight_bits"]], m
            assert m["top1_agreement_with_float"] >= 0.85, m
        for mode in ("exact", "ste"):
            assert m[f"twin_{mode}_top1_agreement"] >= params["quantize"]["twin_min_agreement"], m
            assert m[f"twin_{mode}_max_abs_logit_diff"] <= LOGIT_TOLERANCE, m


def test_report_metrics_and_plots(smoke: Path) -> None:
    page = (smoke / "reports" / "index.html").read_text()
    assert "Clean accuracy" in page and page.count("data:image/png;base64,") >= 2
    markdown = (smoke / "reports" / "report.md").read_text()
    assert "## Transfer heat map" in markdown and "## Distance to the decision boundary" in markdown
    assert {p.stem for p in (smoke / "reports" / "plots" / "robust_vs_epsilon").glob("*.csv")} == {
        t.value for t in ThreatModel if t not in (ThreatModel.CLEAN, ThreatModel.WORST_CASE)
    }
    # The report opens with the findings, then float vs quantized per architecture; the verdicts and the
    # headline numbers are the study's only DVC metrics: two per model and one per claim.
    assert page.index("Findings: the literature") < page.index("Float vs quantized") < page.index("Clean accuracy")
    findings = load_json(smoke / "reports" / "findings.json")["findings"]
    assert set(findings) == {c.key for c in CLAIMS}
    assert {f["verdict"] for f in findings.values()} <= {v.value for v in Verdict}
    # The placebo (16-bit, numerically the float model) goes through every rule, judged apart; no claim of
    # an effect of quantization holds on it.
    evidence = load_json(smoke / "reports" / "findings_evidence.json")["findings"]
    assert all(c["condition"].startswith("lenet-standard.ort_w16a16") for f in evidence.values() for c in f["placebo"])
    assert any(f["placebo"] for f in evidence.values())
    for key, record in evidence.items():
        if record["asserts_effect"]:
            assert "holds" not in {c["verdict"] for c in record["placebo"]}, (key, record["placebo"])
    assert "[placebo]" in markdown
    metrics = json.loads(dvc(smoke, "metrics", "show", "--json"))
    (files,) = [rev["data"] for rev in metrics.values()]
    assert list(files) == ["reports/headline.json"]
    headline = files["reports/headline.json"]["data"]
    models = read_results(smoke / "reports" / "results.csv")
    study = Study.from_params(yaml.safe_load((smoke / "params.yaml").read_text()))
    primary = {  # replicates, the bit-width sweep and the placebo: in the report
        r.target
        for r in models
        if (t := ModelId.parse(r.target)).seed is None
        and not study.sweep_only(t)
        and not (t.quantizer and QUANTIZERS.get(t.quantizer).placebo)
    }
    assert set(headline["clean"]) == primary and set(headline["verdict"]) == set(findings)
    assert "across 2 seeds" in markdown and " x 2 seeds" in markdown
    (robust,) = (key for key in headline if key.startswith("robust_"))
    assert set(headline[robust]) == set(headline["clean"])
    # Any other file is shown on request.
    (shown,) = json.loads(dvc(smoke, "metrics", "show", "--json", "reports/metrics.json")).values()
    assert any(key.startswith("clean_accuracy/") for key in shown["data"]["reports/metrics.json"]["data"])
    provenance = load_json(smoke / "reports" / "provenance.json")
    assert len(provenance["git"]["commit"]) == 40 and provenance["dataset"]["raw_sha256"]
    assert sum(len(g["stages"]) for g in provenance["stage_machines"]) == len(
        list((smoke / "reports" / "timing").rglob("*.json"))
    )
    assert "## Provenance" in markdown
    # Differential evasion: DIVA beside linf_pgd on every quantized model it was made on, on the same samples.
    evasion = load_json(smoke / "reports" / "evasion.json")
    quantized = {r.target for r in models if ModelId.parse(r.target).quantizer is not None}
    assert {key.split("/")[2] for key in evasion} == quantized
    for record in evasion.values():
        assert 0 <= record["diva"]["evasive"] <= record["n"] and 0 <= record["linf_pgd"]["evasive"] <= record["n"]
        assert record["difference"]["low"] <= record["difference"]["difference"] <= record["difference"]["high"]
    assert "## Differential evasion: diva against linf_pgd (white_qnn_ste)" in markdown
    # The bit-width sweep's own section: its table names every swept model, and its figure is on the page.
    assert "## Bit width: accuracy and worst-case robust accuracy" in markdown
    assert "## Robust accuracy vs bit width" in markdown and "lenet-standard.ort_w4a4" in markdown
    assert "lenet-qat.ort_w2a2" in markdown  # the quantization-aware model beside post-training quantization
    # The sweep's low-bit models as transfer sources beside the float models (Yang et al. 2024).
    assert "## Low-bit substitutes for transfer" in markdown and "lenet-standard.ort_w4a4 (white_qnn_ste)" in markdown
    dvc(smoke, "plots", "show", "-o", "plots_out")
    assert (smoke / "plots_out" / "index.html").is_file()


def test_the_report_reads_in_a_browser_window(smoke: Path, tmp_path: Path) -> None:
    """Headless Chromium at 1,400 pixels: every figure decodes and no table is wider than the window."""
    page = smoke / "reports" / "index.html"
    figures = page.read_text().count("data:image/png;base64,")
    assert figures == len(list((smoke / "reports" / "figures").glob("*.png")))
    assert_reads_in_the_window(page, tmp_path, images=figures)


def test_defense_study_scores_every_defense_both_ways(smoke: Path) -> None:
    params = yaml.safe_load((smoke / "params.yaml").read_text())
    defend = params["defend"]
    quantizers = defend["quantizers"]
    for name in [*defend["defenses"], *defend["recipes"]]:
        rows = read_results(smoke / "reports" / "defenses" / f"{name}.csv")
        assert {r.defense for r in rows} == {name}
        attacked = [r for r in rows if r.threat_model != "clean"]
        assert {r.epsilon for r in attacked} == set(defend["epsilons"])
        assert {r.adaptive for r in attacked} == {False, True}
        precisions = {r.target_precision for r in rows}
        if name in ("ensemble", "random_precision"):
            assert precisions == {"+".join(defend["defenses"][name]["members"])}
        else:
            assert precisions == {"float", *quantizers}, name
        clean = {r.target: r for r in rows if r.threat_model == "clean"}
        draws = defend["eval_draws"] if name in ("gaussian_noise", "resize_pad", "random_precision") else 1
        for (target, eps), group in itertools.groupby(
            sorted(attacked, key=lambda r: (r.target, r.epsilon)), key=lambda r: (r.target, r.epsilon)
        ):
            group = list(group)
            worst = [r for r in group if r.threat_model == "worst_case"]
            adaptive = [r for r in group if r.adaptive and r.threat_model != "worst_case"]
            plain = [r for r in group if not r.adaptive]
            # Three figures on the same samples: non-adaptive, adaptive alone, and the per-sample worst case,
            # never above either, nor above the system's clean accuracy on those samples.
            # The plain adaptive attack, then the composite on what it left; a detector meets the
            # detector-aware attack too.
            assert len(worst) == 1 and len(adaptive) == (3 if name == "squeeze_detector" else 2) and plain
            by_attack = {r.attack: r.robust_accuracy for r in adaptive}
            if draws == 1:
                assert by_attack[defend["composite"]] <= by_attack[defend["attack"]], (target, by_attack)
            if name == "squeeze_detector" and eps == max(defend["epsilons"]):
                assert by_attack["detector_aware_pgd"] < by_attack[defend["attack"]], (target, by_attack)
            assert {r.n for r in group} == {clean[target].n} and clean[target].draws == draws
            assert worst[0].robust_accuracy <= min(r.robust_accuracy for r in [*plain, *adaptive])
            assert max(r.robust_accuracy for r in group) <= clean[target].robust_accuracy
            assert worst[0].paired_low <= worst[0].paired_difference <= min(worst[0].paired_high, 1e-9)
        metrics = load_json(smoke / "reports" / "defenses" / f"{name}.json")["defense"][name]
        assert len([k for k in metrics if "/gap/" in k]) == len({r.target for r in attacked}) * len(defend["epsilons"])
    # Boundary distance against the standard model (on the samples of the suite's boundary-attack sets),
    # transfer float -> quantized.
    boundary_samples = params["attack"]["attacks"][defend["boundary_attack"]]["samples"]
    for name in defend["recipes"]:
        metrics = load_json(smoke / "reports" / "defenses" / f"{name}.json")["defense"][name]
        gaps = [v for k, v in metrics.items() if k.endswith("/boundary_distance_l2")]
        assert len(gaps) == 1 + len(quantizers)
        assert all(0 < g["n_a"] <= boundary_samples and g["n_b"] <= boundary_samples for g in gaps), gaps
        assert len([k for k in metrics if "/transfer_retention/" in k]) == len(quantizers) * len(defend["epsilons"])
    metrics = load_json(smoke / "reports" / "defenses" / "squeeze_detector.json")["defense"]["squeeze_detector"]
    fprs = [v for k, v in metrics.items() if k.endswith("threshold_false_positive_rate")]
    assert len(fprs) == 1 + len(quantizers) and all(v <= defend["defenses"]["squeeze_detector"]["fpr"] for v in fprs)
    assert len([k for k in metrics if k.endswith("/clean_rejection_rate")]) == 1 + len(quantizers)
    # Detection is reported for every attacked set: non-adaptive, plain adaptive, composite and detector-aware.
    assert len([k for k in metrics if "/detection_rate/" in k]) == 4 * (1 + len(quantizers)) * len(defend["epsilons"])
    metrics = load_json(smoke / "reports" / "defenses" / "ensemble.json")["defense"]["ensemble"]
    (agreement,) = [v for k, v in metrics.items() if k.endswith("/view_agreement")]
    assert agreement["clean"] >= 0.99 and agreement["all"] >= 0.99, agreement
    markdown = (smoke / "reports" / "report.md").read_text()
    assert "## Defenses against linf_pgd, then autoattack" in markdown
    # The composite's cut-down settings are named beside the table: deterministic, then randomised systems.
    assert (
        "autoattack as run here, against its defaults (AutoAttack's standard version): on deterministic systems, "
        "steps 10 (default 100)" in markdown
    )


def test_second_repro_runs_nothing(smoke: Path) -> None:
    out = dvc(smoke, "repro")
    assert "Running stage" not in out
    assert "Data and pipelines are up to date" in dvc(smoke, "status")


def test_a_hand_edited_model_is_named_by_dvc_and_restored_by_checkout(smoke: Path) -> None:
    """The README's bad-input row no stage can see: the file is valid ONNX, only its hash is wrong."""
    model = smoke / "models" / "float" / "lenet-standard" / "model.onnx"
    original = model.read_bytes()
    model.write_bytes(original + b"\0")
    train = address(smoke, "train@lenet-standard")
    status = dvc(smoke, "status", train)
    assert "modified:" in status and "models/float/lenet-standard" in status
    dvc(smoke, "checkout", "--force", "models/float/lenet-standard")
    assert model.read_bytes() == original
    assert "Data and pipelines are up to date" in dvc(smoke, "status", train)


def stage_script(session: int) -> psutil.Process | None:
    """The stage script DVC started in process group ``session``, once it runs."""
    children = psutil.Process(session).children(recursive=True)
    return next((p for p in children if any(a.startswith("stages/") for a in p.cmdline())), None)


def kill_midway(project: Path, stage: str, after_s: float) -> None:
    """Force ``stage`` to re-run and SIGKILL DVC, the shell and the script together ``after_s`` seconds
    into the script, as a power cut or the OOM killer would: no handler, no cleanup."""
    proc = subprocess.Popen(
        [DVC, "repro", "--force", "--single-item", address(project, stage)],
        cwd=project,
        env=venv_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while (script := stage_script(proc.pid)) is None:
        assert proc.poll() is None and time.monotonic() < deadline, f"{stage} never started"
        time.sleep(0.05)
    while time.time() - script.create_time() < after_s:  # create_time is on the epoch clock
        time.sleep(0.05)
    assert proc.poll() is None, f"{stage} finished within {after_s} s, before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_a_stage_killed_midway_leaves_nothing_recorded_and_the_rerun_is_identical(smoke: Path) -> None:
    # Training's determinism is unit-tested too; re-runs of the split, INC's export and ONNX Runtime's
    # quantization are compared in tests/test_sharing.py, from scratch in another folder.
    killed = ("train@lenet-standard", "attack@linf_pgd", "evaluate")
    locks, before = [(smoke / lock).read_bytes() for lock in LOCKS], locked_outs(smoke, killed, timings=False)
    for stage in killed:
        kill_midway(smoke, stage, after_s=3.0)
        assert [(smoke / lock).read_bytes() for lock in LOCKS] == locks, f"killing {stage} changed a lock"
        where = address(smoke, stage)
        assert where in json.loads(dvc(smoke, "status", "--json", where)), f"{stage}'s partial outputs pass as done"
        dvc(smoke, "checkout", where)  # the recorded outputs come back from the cache
    dvc(smoke, "repro", "--force", "--single-item", *(address(smoke, s) for s in killed))
    assert locked_outs(smoke, killed, timings=False) == before
    # Each killed write's temporary file or folder (hidden from DVC by .dvcignore) went with the re-run.
    assert not list(smoke.rglob(f"*{PARTIAL}*"))
    # Only wall-clock timings differ: with the first run's locks, every output is the first run's again.
    for lock, recorded in zip(LOCKS, locks, strict=True):
        (smoke / lock).write_bytes(recorded)
    dvc(smoke, "checkout", "--force")
    assert "Data and pipelines are up to date" in dvc(smoke, "status")


def test_attack_change_reruns_no_training_or_quantization(smoke: Path) -> None:
    params_file = smoke / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["attack"]["attacks"]["linf_pgd"]["steps"] += 1
    try:
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        changed = {stage_name(s) for s in json.loads(dvc(smoke, "status", "--json"))}
    finally:
        params_file.write_text(original)
    # Only that attack's stage, the two stages that read every attack's sets, and the defense study,
    # whose non-adaptive sets are that attack's and whose adaptive attack runs with its settings.
    defend = {f"defend@{d}" for d in params["defend"]["defenses"]} | {
        f"defend_recipe@{r}" for r in params["defend"]["recipes"]
    }
    # The analysis attacks each float model with the analysis attack (linf_pgd here) and its options; the
    # findings take the headline budget from the grid of the attack the white-box figure draws.
    analyse = {f"analyse@{a}-{r}" for a in params["train"]["archs"] for r in params["train"]["recipes"]}
    analyse |= {f"analyse_replicate@{m}" for m in replicate_stage_keys(params)}
    assert changed == {"attack@linf_pgd", "evaluate", "findings", "report", *defend, *analyse}, changed


def replicate_stage_keys(params: dict) -> list[str]:
    """The replicate stages' matrix keys: <arch>-<recipe>-<seed>."""
    train = params["train"]
    return [f"{a}-{r}-{s}" for a in train["seed_archs"] for r in train["recipes"] for s in train["seeds"]]


def test_analysis_covers_every_pair_and_its_settings_rerun_only_the_analysis(smoke: Path) -> None:
    params_file = smoke / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    models = [f"{a}-{r}" for a in params["train"]["archs"] for r in params["train"]["recipes"]]
    for model in models:
        record = load_json(smoke / "reports" / "analysis" / f"{model}.json")["analysis"][model]
        assert set(record) == {"samples", "float", *(f"{model}.{q}" for q in params["quantize"]["quantizers"])}
    for key in replicate_stage_keys(params):  # a replicate: its own quantizers only
        arch, recipe, seed = key.split("-")
        model = f"{arch}-{recipe}-s{seed}"
        record = load_json(smoke / "reports" / "analysis" / f"{model}.json")["analysis"][model]
        assert set(record) == {
            "samples",
            "float",
            *(f"{model}.{q}" for q in params["quantize"]["replicate_quantizers"]),
        }
    # The report may be stale from a forced re-run's timings.
    before = {stage_name(s) for s in json.loads(dvc(smoke, "status", "--json"))}
    params["analysis"]["samples"] -= 1
    try:
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        changed = {stage_name(s) for s in json.loads(dvc(smoke, "status", "--json"))} - before
    finally:
        params_file.write_text(original)
    # findings and report read the analysis outputs, so they follow once those change.
    replicates = {f"analyse_replicate@{m}" for m in replicate_stage_keys(params)}
    assert changed == {f"analyse@{m}" for m in models} | replicates, changed


def test_unknown_architecture_fails_before_any_compute(smoke: Path, tmp_path: Path) -> None:
    project = materialize(ROOT, "smoke", tmp_path / "bad")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["archs"] = ["lenet", "resnet50"]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = subprocess.run([DVC, "repro"], cwd=project, env=venv_env(), capture_output=True, text=True)
    assert result.returncode != 0
    assert "'resnet50'" in result.stdout + result.stderr and "dscnn, lenet, resnet8" in result.stdout + result.stderr
    assert not (project / "data" / "prepared").exists()
