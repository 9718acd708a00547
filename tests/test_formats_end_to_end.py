"""The smoke study on small files written in each other dataset's published format: MNIST's IDX, CIFAR-10's
pickled batches, SVHN's MATLAB files. CIFAR-10 and SVHN send three-channel 32 x 32 images through training,
every quantizer, the twins, the attacks, the defense study, the analysis and the report."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import yaml

from qrobust.data import DATASETS
from qrobust.io import load_json
from qrobust.study import materialize
from tests.conftest import ROOT, dvc
from tests.formats import write_release
from tests.test_end_to_end import check_quantizers, check_results

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["mnist", "cifar10", "svhn"])
def test_smoke_study_runs_on_each_format(tmp_path: Path, name: str) -> None:
    pins = write_release(name, tmp_path / "raw", train=1200, test=300)
    project = materialize(ROOT, "smoke", tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"].update(
        dataset=name, root=str(tmp_path / "raw"), sha256=pins, calib_size=200, train_size=0, test_size=0, eval_size=100
    )
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(project, "repro")
    manifest = load_json(project / "data" / "prepared" / "manifest.json")
    assert manifest["dataset"] == name and manifest["raw_sha256"] == pins
    assert manifest["files"]["train.npz"]["samples"] == 1000 and manifest["files"]["eval.npz"]["samples"] == 100
    check_results(project)
    check_quantizers(project)
    defended = sorted(p.name for p in (project / "reports" / "defenses").glob("*.csv"))
    assert defended, "the defense study wrote no table"
    assert (project / "reports" / "index.html").is_file()
    graph = onnx.load(str(project / "models" / "float" / "lenet-standard" / "model.onnx")).graph
    assert graph.input[0].type.tensor_type.shape.dim[1].dim_value == DATASETS.get(name).channels
