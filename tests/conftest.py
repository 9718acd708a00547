"""Fixtures: tiny data made here (class k lights up stripe k) and a LeNet trained on it in a second."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from qrobust.models import InputSpec, create_model
from qrobust.pipeline.blas import thread_invariant_products
from qrobust.pipeline.device import seed_everything
from qrobust.tools.pipelines import locked_stages
from qrobust.tools.study import materialize
from qrobust.training.loop import TrainConfig, fit
from qrobust.training.recipes import Standard

ROOT = Path(__file__).resolve().parents[1]
SPEC = InputSpec(channels=1, size=28, num_classes=10, mean=(0.3,), std=(0.3,))


def make_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images in [0, 1]: background noise plus a bright horizontal stripe whose row encodes the class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.uniform(0.0, 0.3, (n, 1, 28, 28)).astype(np.float32)
    for i, label in enumerate(y):
        x[i, 0, 2 + 2 * label : 4 + 2 * label, 4:24] = rng.uniform(0.7, 1.0)
    return x, y.astype(np.int64)


@pytest.fixture(scope="session")
def tiny_data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"train": make_images(800, 0), "calib": make_images(100, 1), "test": make_images(200, 2)}


@pytest.fixture(scope="session")
def trained_lenet(tiny_data: dict[str, tuple[np.ndarray, np.ndarray]]) -> torch.nn.Module:
    seed_everything(0)
    model = create_model("lenet", SPEC)
    x, y = tiny_data["train"]
    fit(model, Standard(), x, y, TrainConfig(epochs=2, batch_size=64, lr=0.003, weight_decay=0.0, seed=0, device="cpu"))
    return model.eval()


@pytest.fixture(scope="session")
def lenet_onnx(
    trained_lenet: torch.nn.Module,
    tiny_data: dict[str, tuple[np.ndarray, np.ndarray]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    from qrobust.deploy.runtime import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(trained_lenet, torch.from_numpy(tiny_data["test"][0][:2]), path)
    return path


class Noisy(torch.nn.Module):
    """``inner`` on the input plus fresh Gaussian noise each call (clipped to [0, 1]): a randomised model,
    declared as such (``randomised``, which ``victims.draws_randomness`` reads)."""

    randomised = True

    def __init__(self, inner: torch.nn.Module, sigma: float) -> None:
        super().__init__()
        self.inner, self.sigma = inner, sigma

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.inner((t + self.sigma * torch.randn_like(t)).clamp(0, 1))


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float((predictions == labels).mean())


DVC = str(Path(sys.executable).parent / "dvc")


# Under pytest-xdist every worker runs beside the others: one thread each for torch, OpenMP and ONNX Runtime,
# in the workers and in the stages they start, instead of every process spinning one thread per core.
SHARED_CORES = "PYTEST_XDIST_WORKER" in os.environ
thread_invariant_products()  # as in every stage: the tests compare bits across thread counts
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} if SHARED_CORES else {}
if SHARED_CORES:
    torch.set_num_threads(1)


# What a probe script (``run_probe``) runs first, by its argument: a stage's set-up (``run_stage``), a
# spawned worker's (``worker``), or nothing (any other word, which the script may act on itself).
PROCESS_SETUP = """
import json, sys
how = sys.argv[1]
if how == "run_stage":
    from qrobust.pipeline.process import run_stage
    run_stage("probe", lambda: None)
elif how == "worker":
    from qrobust.pipeline.workers import _one_thread
    _one_thread()
"""


def run_probe(script: str, how: str, *, unset: tuple[str, ...], **env: str) -> dict:
    """``PROCESS_SETUP`` then ``script`` in a fresh interpreter, with the variables named (or prefixed)
    by ``unset`` removed from the environment and ``env`` added; the JSON its last output line holds."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(unset)}
    command = [sys.executable, "-c", PROCESS_SETUP + script, how]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env={**clean, **env})
    return json.loads(done.stdout.splitlines()[-1])


def venv_env() -> dict[str, str]:
    """The environment with the venv's bin first on PATH (DVC's stages call `python`), and one thread per
    process when the cores are shared between test workers."""
    return {**os.environ, **ONE_THREAD, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def dvc(project: Path, *args: str) -> str:
    """Run the venv's dvc in ``project`` and return its stdout; a failure shows both streams."""
    result = subprocess.run([DVC, *args], cwd=project, env=venv_env(), capture_output=True, text=True)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def git(project: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=qrobust", "-c", "user.email=qrobust@localhost", *args]
    return subprocess.run(command, cwd=project, check=True, capture_output=True, text=True).stdout


TIMINGS = "reports/timing/"


def locked_outs(project: Path, stages: tuple[str, ...] | None = None, *, timings: bool = True) -> dict[str, str]:
    """Each cached output's hash in ``project``'s locks: of ``stages`` or all; wall-clock timings optional."""
    return {
        o["path"]: o["md5"]
        for name, stage in locked_stages(project).items()
        if stages is None or name in stages
        for o in stage["outs"]
        if timings or not o["path"].startswith(TIMINGS)
    }


@pytest.fixture(scope="session")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke study reproduced once per test session, in a temporary copy of the project."""
    project = materialize(ROOT, "smoke", tmp_path_factory.mktemp("e2e") / "smoke")
    dvc(project, "repro")
    return project


# `make test` runs on every core (pytest-xdist). The modules that share the smoke study go to one worker as
# one unit, first, so the study is built once and its long tail overlaps everything else. This is done with
# xdist's scheduler hook because its own `--dist loadgroup` renames items through an attribute pytest 9 no
# longer reads, so its groups are silently split.
# Sharing runs first: it pushes the run-cache, whose newest record of a stage is the one a clone restores, and
# the end-to-end tests re-run stages (kill, edits) whose timing outputs then differ from the pushed lock's.
SMOKE_MODULES = ("tests/test_sharing.py", "tests/test_edit_reruns.py", "tests/test_end_to_end.py")
ORDER = (*SMOKE_MODULES, "tests/test_formats_end_to_end.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::")[0]
        return ORDER.index(module) if module in ORDER else len(ORDER)

    items.sort(key=rank)  # stable: each module keeps its own order


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    from xdist.scheduler import LoadScopeScheduling

    class SmokeTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "smoke" if nodeid.split("::")[0] in SMOKE_MODULES else nodeid

    return SmokeTogether(config, log)
