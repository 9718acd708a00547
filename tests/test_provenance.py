"""Provenance: the checkout, environment, machine per timed stage and dataset hashes, in one record."""

from __future__ import annotations

import subprocess

from qrobust.pipeline.provenance import KERNEL_FLAGS, cpu, machine, packages, provenance


def test_provenance_names_commit_dirtiness_dataset_and_groups_stage_machines(tmp_path) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "a.txt").write_text("one\n")
    subprocess.run([*git, "add", "a.txt"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "c"], cwd=tmp_path, check=True)
    here = machine()
    elsewhere = {**here, "cuda": "Some GPU"}
    manifest = {"dataset": "fashion_mnist", "raw_sha256": {"t10k.gz": "ab" * 32}, "files": {"x": 1}}
    stages = {"train@lenet": here, "attack@fgsm": elsewhere, "train@dscnn": here, "defend@jpeg": None}
    record = provenance(tmp_path, manifest, 7, stages)
    assert len(record["git"]["commit"]) == 40 and record["git"]["dirty"] is False
    assert record["dataset"] == {"dataset": "fashion_mnist", "raw_sha256": {"t10k.gz": "ab" * 32}}
    assert record["seed"] == 7 and record["packages"]["torch"] and record["packages"]["onnxruntime"]
    assert sorted(sorted(g["stages"]) for g in record["stage_machines"]) == [
        ["attack@fgsm"],
        ["defend@jpeg"],
        ["train@dscnn", "train@lenet"],
    ]
    (tmp_path / "a.txt").write_text("two\n")
    assert provenance(tmp_path, manifest, 7, stages)["git"]["dirty"] is True
    plain = tmp_path.parent / f"{tmp_path.name}-plain"  # not a git work tree
    plain.mkdir()
    assert provenance(plain, manifest, 7, {})["git"] == {"commit": None, "dirty": None}


def test_cpu_flags_are_the_kernel_relevant_ones() -> None:
    found = cpu()
    assert found["model"] and all(KERNEL_FLAGS.match(f) for f in found["kernel_flags"])
    assert found["vnni"] == any("vnni" in f for f in found["kernel_flags"])
    assert machine()["threads"]["torch_threads"] >= 1
    assert "neural-compressor" in packages()


def test_the_report_renders_provenance_with_its_machine(tmp_path) -> None:
    from qrobust.report.study_tables import provenance_table

    record = provenance(tmp_path, {"raw_sha256": {"a.gz": "cd" * 32}}, 3, {"train@lenet": machine(), "defend@x": None})
    table = provenance_table(record)
    cells = dict(table.rows)
    assert cells["git commit"] == "n/a" and cells["seed"] == "3" and "cd" * 32 in cells["dataset raw_sha256"]
    assert any(what == "machine of 1 timed stages" and "VNNI" in value for what, value in table.rows)
    assert ("machine of 1 timed stages", "not recorded (timing files of an older run)") in table.rows
