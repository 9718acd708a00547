"""The smoke study on small files written in each other dataset's published format: MNIST's IDX, CIFAR-10's
pickled batches, SVHN's MATLAB files.

In ``make test``, CIFAR-10 runs the whole smoke study with one attack of each kind the later stages read
(``FORMAT_STUDY``): three-channel 32 x 32 images through training, every quantizer, the twins, white-box,
straight-through, black-box and transfer attacks, the defense study, the analysis and the report. MNIST and
SVHN run it up to the first trained model: past `prepare` their images have the shapes of Fashion-MNIST's
and CIFAR-10's, so every later stage runs the code those two runs already cover. ``make test-formats`` runs
the same whole study on all three formats (marked ``formats``: 4 minutes each on 2 cores, outside the
15-minute suite)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import yaml

from qrobust.data.datasets import DATASETS
from qrobust.pipeline.io import load_json
from qrobust.tools import code_deps
from qrobust.tools.pipelines import address
from qrobust.tools.study import materialize
from tests.conftest import ROOT, dvc
from tests.formats import write_release
from tests.test_end_to_end import check_quantizers, check_results

pytestmark = pytest.mark.slow


# The smoke study less what repeats code the format does not reach: one gradient attack (white-box,
# straight-through, transfer), one score-based and one decision-based black-box attack (the analysis's
# boundary distances), the minimisation attack the defense study's recipe comparison needs, and the
# defenses that treat channels on their own (median smoothing) or combine runtimes (the ensemble, random precision).
FORMAT_STUDY = {
    "attack": {"fgsm": None, "l2_pgd": None, "gaussian_noise": None, "uniform_noise": None},
    "defend": {"bit_depth": None, "gaussian_noise": None, "squeeze_detector": None},
}


def study_on(name: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The smoke study less FORMAT_STUDY's removals, its data.root pointing at small files of ``name``'s
    format pinned by data.sha256."""
    pins = write_release(name, tmp_path / "raw", train=1200, test=300)
    project = materialize(ROOT, "smoke", tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"].update(
        dataset=name,
        root=str(tmp_path / "raw"),
        sha256=pins,
        calib_size=200,
        val_size=200,
        train_size=0,
        test_size=0,
        eval_size=100,
    )
    for attack in FORMAT_STUDY["attack"]:
        del params["attack"]["attacks"][attack]
    for defense in FORMAT_STUDY["defend"]:
        del params["defend"]["defenses"][defense]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert code_deps.main(["--root", str(project)]) == 0  # `make deps`: one attack@ stage per attack left
    return project, pins


def check_prepared_and_trained(project: Path, name: str, pins: dict[str, str]) -> None:
    manifest = load_json(project / "data" / "prepared" / "manifest.json")
    assert manifest["dataset"] == name and manifest["raw_sha256"] == pins
    assert manifest["files"]["train.npz"]["samples"] == 800 and manifest["files"]["eval.npz"]["samples"] == 100
    graph = onnx.load(str(project / "models" / "float" / "lenet-standard" / "model.onnx")).graph
    spec = DATASETS.get(name)
    shape = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]]
    assert shape == [spec.channels, spec.size, spec.size]
    # The stripes the files carry are learnable: far above chance (10%) after the smoke study's one epoch.
    assert load_json(project / "models" / "float" / "lenet-standard" / "metrics.json")["test_accuracy"] >= 0.5


def run_whole(name: str, tmp_path: Path) -> None:
    project, pins = study_on(name, tmp_path)
    dvc(project, "repro")
    check_prepared_and_trained(project, name, pins)
    check_results(project)
    check_quantizers(project)
    defend = yaml.safe_load((project / "params.yaml").read_text())["defend"]
    defended = {p.stem for p in (project / "reports" / "defenses").glob("*.csv")}
    assert defended == {"ensemble", "median", "random_precision", *defend["recipes"]}
    assert (project / "reports" / "index.html").is_file()


def test_smoke_study_runs_whole_on_cifar10_format(tmp_path: Path) -> None:
    run_whole("cifar10", tmp_path)


@pytest.mark.formats
@pytest.mark.parametrize("name", ["mnist", "svhn"])
def test_smoke_study_runs_whole_on_each_other_format(tmp_path: Path, name: str) -> None:
    run_whole(name, tmp_path)


@pytest.mark.parametrize("name", ["mnist", "svhn"])
def test_smoke_study_trains_on_each_other_format(tmp_path: Path, name: str) -> None:
    project, pins = study_on(name, tmp_path)
    dvc(project, "repro", address(project, "train@lenet-standard"))
    check_prepared_and_trained(project, name, pins)
