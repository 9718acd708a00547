"""Sharing a study between machines through DVC's own machinery, with local stand-ins for the servers:
a bare git repository for the git host and a local-directory DVC remote for S3 or SSH.

Every clone lives in a folder of its own name, so these tests also show that no artefact depends on
where the project was checked out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qrobust.tools.pipelines import LOCKS, address, locked_stages, stage_name
from tests.browser import assert_reads_in_the_window
from tests.conftest import dvc, git, locked_outs, venv_env

pytestmark = pytest.mark.slow


def params(project: Path) -> dict:
    return yaml.safe_load((project / "params.yaml").read_text())


def ran(output: str) -> set[str]:
    return {stage_name(line.split("'")[1]) for line in output.splitlines() if line.startswith("Running stage")}


@pytest.fixture(scope="module")
def servers(smoke: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke study committed and pushed: its git history to a bare repo, its artefacts and run-cache
    to a DVC remote whose address is committed in .dvc/config, as a team's project would have it."""
    base = tmp_path_factory.mktemp("servers")
    git(base, "init", "-q", "--bare", "project.git")
    assert ran(dvc(smoke, "repro")) == set()  # the project as the smoke study left it
    dvc(smoke, "remote", "add", "--default", "--force", "store", str(base / "dvc-store"))
    git(smoke, "add", "-A")
    git(smoke, "commit", "-q", "--allow-empty", "-m", "smoke study with a remote")
    git(smoke, "remote", "add", "origin", str(base / "project.git"))
    git(smoke, "push", "-q", "origin", "HEAD:main")
    dvc(smoke, "push", "--run-cache")
    return base


def clone(servers: Path, folder: Path) -> Path:
    folder.parent.mkdir(parents=True, exist_ok=True)
    git(folder.parent, "clone", "-q", "--branch", "main", str(servers / "project.git"), folder.name)
    return folder


def test_pull_restores_every_artefact_and_repro_runs_nothing(smoke: Path, servers: Path, tmp_path: Path) -> None:
    other = clone(servers, tmp_path / "elsewhere")
    dvc(other, "pull")
    assert "Data and pipelines are up to date" in dvc(other, "status")
    assert ran(dvc(other, "repro")) == set()
    for name in ("report.md", "index.html", "metrics.json", "findings.json"):
        assert (other / "reports" / name).read_bytes() == (smoke / "reports" / name).read_bytes(), name


def test_run_cache_lets_a_second_clone_skip_stages_another_machine_ran(servers: Path, tmp_path: Path) -> None:
    """Without its locks a clone knows nothing of the first machine's runs but what the run-cache holds: each
    stage's command, deps and params hashed, with its outputs. `dvc pull --run-cache` fetches only those
    records, not the outputs they name (DVC 3.67); `dvc repro --pull` fetches both, stage by stage."""
    other = clone(servers, tmp_path / "second-machine")
    committed = locked_outs(other)
    stages = locked_stages(other)
    for lock in LOCKS:
        (other / lock).unlink()
    out = dvc(other, "repro", "--pull")
    assert ran(out) == set(), out
    assert out.count("is cached - skipping run") == len(stages), out
    assert locked_outs(other) == committed


def test_an_experiment_pushed_from_one_clone_is_shown_applied_and_pulled_in_another(
    smoke: Path, servers: Path, tmp_path: Path
) -> None:
    """`dvc exp run --temp` (how the queue runs a sweep) starts from a clean checkout of the commit: every
    output, timings and metrics included, comes back from the cache, so a report change runs only the report."""
    out = dvc(smoke, "exp", "run", "--temp", "-n", "shared-lenient", "-S", "report.min_float_accuracy=0.4")
    assert ran(out) == {"report"}, out
    dvc(smoke, "exp", "push", "origin", "shared-lenient")
    other = clone(servers, tmp_path / "teammate")
    dvc(other, "exp", "pull", "origin", "shared-lenient")
    assert "shared-lenient" in json.dumps(json.loads(dvc(other, "exp", "show", "--json")))
    # The two revisions compare on one page, read through DVC (the teammate's clone fetches main's outputs
    # from the remote): a report-only change moves no result.
    compare = subprocess.run(
        [sys.executable, "-m", "qrobust.tools.compare", "main", "shared-lenient", "--out", str(tmp_path / "compare")],
        cwd=other, env=venv_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert compare.returncode == 0, compare.stderr
    assert "0 result rows differ beyond their sampling noise; 0 verdicts changed" in compare.stdout, compare.stdout
    assert_reads_in_the_window(
        tmp_path / "compare" / "index.html", tmp_path, images=len(params(other)["report"]["curves"])
    )
    dvc(other, "exp", "apply", "shared-lenient")
    dvc(other, "pull")
    assert yaml.safe_load((other / "params.yaml").read_text())["report"]["min_float_accuracy"] == 0.4
    assert "Data and pipelines are up to date" in dvc(other, "status")
    # The experiment's report, made on the first machine with the lower floor, is the one the teammate has.
    assert "validation accuracy >= 40.0%" in (other / "reports" / "report.md").read_text()


def test_two_clones_in_different_folders_reproduce_the_same_bytes(smoke: Path, servers: Path, tmp_path: Path) -> None:
    """The stages whose bytes once carried the checkout's path (ONNX export, INC's programs) and the data
    behind them, run from scratch in another folder: every output hash equals the first clone's."""
    other = clone(servers, tmp_path / "a" / "much" / "longer" / "checkout path")
    # ONNX Runtime's QDQ model and INC's exported program; the 4-bit variants share their writers.
    stages = ("prepare", "train@lenet-standard", "quantize@lenet-standard")
    dvc(other, "repro", "--force", "--single-item", *(address(other, s) for s in stages))
    assert locked_outs(other, stages, timings=False) == locked_outs(smoke, stages, timings=False)
